"""``spikecl export`` and ``spikecl deploy``.

    spikecl export RESULTS.h5|CHECKPOINT.ckpt -o net.h5 [--format netx|nir] [--weight-bits 8] [--overwrite]
                                            [--plugin mine.py]  (a dataset of one's own: what registers it)
    spikecl export CA3.toml -o ca3.h5 [--overwrite]      the CA3 memory's functional experiment, a learning graph
    spikecl deploy net.h5 --backend lava-sim|reference [--samples N] [--data-dir DIR]
    spikecl deploy ca3.h5 --backend lava-sim [--cells custom|lif] [--learning float|fixed] [--stock-engine]
                                            (a learning graph holds its own inputs: no --samples or --data-dir)
"""

from __future__ import annotations

import argparse

from spikecl.commands import bounded, user_path
from spikecl.errors import ConfigError, ForeignFileError
from spikecl.export.ca3_graph import CELLS as CA3_CELLS
from spikecl.export.ca3_graph import LEARNING as CA3_LEARNING
from spikecl.export.lava_client import LAVA_TIMEOUT_S
from spikecl.export.pipeline import DEPLOY_SAMPLES
from spikecl.export.quantize import DEFAULT_INPUT_BITS

#: export options of trained networks, with their defaults (a CA3 experiment file takes none of them); input_bits
#: None: 8 for a direct-encoded network (others take none); data_dir None: the default datasets folder
NETWORK_OPTIONS = {"format": "netx", "weight_bits": 8, "headroom": 8.0, "input_bits": None, "samples": 500,
                   "calibration_samples": 256, "max_drop": 3.0, "force": False, "data_dir": None}


def add_command(sub) -> None:
    export = sub.add_parser(
        "export", help="quantise a trained network to Loihi fixed point and write netx HDF5 (or NIR)",
        description="Rebuild the trained network of a results file or run checkpoint, quantise it to Loihi's fixed "
                    "point (checking every range), measure float and quantised accuracy on the samples the run was "
                    "evaluated on (its test split, or validation under data.eval_split), and "
                    "write a netx-compatible HDF5 file (or a NIR graph of the float network).")
    export.add_argument("source", type=user_path, help="results file (.h5) or run checkpoint (.ckpt); a ca3 experiment "
                                                  "file (.toml): its functional experiment as a Lava learning graph")
    export.add_argument("-o", "--output", type=user_path, required=True, help="file to write, e.g. net.h5")
    export.add_argument("--format", choices=("netx", "nir"), help="netx HDF5 (the default) or a NIR graph")
    export.add_argument("--weight-bits", type=bounded(int, 2, 8, "a number of bits"),
                        help=f"synaptic weight bits, 2..8 (default {NETWORK_OPTIONS['weight_bits']}; mixed-sign "
                             "weights lose one to the sign)")
    export.add_argument("--headroom", type=bounded(float, 1, 2**17, "a number of thresholds"),
                        help="largest input current representable, in thresholds, 1..131072 "
                             f"(default {NETWORK_OPTIONS['headroom']:g})")
    export.add_argument("--input-bits", type=bounded(int, 1, 16, "a number of bits"),
                        help=f"graded input bits for direct encoding, 1..16 (default {DEFAULT_INPUT_BITS}; each bit "
                             "more halves the first layer's weight mantissas: above about 12 they round to 0); "
                             "refused for latency and poisson networks, whose input is binary spikes")
    export.add_argument("--samples", type=bounded(int, 0, what="a number of samples"),
                        help=f"evaluation samples (test split, or validation under data.eval_split) for the accuracy "
                             "check and the SynOps, NeuroBench and energy measures "
                             f"(default {NETWORK_OPTIONS['samples']}; 0: skip them)")
    export.add_argument("--calibration-samples", type=bounded(int, 0, what="a number of samples"),
                        help="training samples that set the readout's range "
                             f"(default {NETWORK_OPTIONS['calibration_samples']}; 0: worst case from weights)")
    export.add_argument("--max-drop", type=bounded(float, 0, 100, "a number of points"),
                        help="refuse when quantised accuracy is more than this many points below float "
                             f"(default {NETWORK_OPTIONS['max_drop']:g})")
    export.add_argument("--force", action="store_true", default=None,
                        help="write the file whatever the accuracy drop")
    export.add_argument("--data-dir", help="folder holding downloaded datasets (netx: calibration and test samples)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output file (never the source)")
    add_plugin_argument(export)
    export.set_defaults(handler=cmd_export)

    deploy = sub.add_parser(
        "deploy", help="run an exported network on Lava (fixed-point simulation) or the numpy reference",
        description="Run an exported network on evaluation samples of the stream it was trained on (the test "
                    "split, or the validation split under data.eval_split; of the tasks it had trained, for a "
                    "checkpoint of a run stopped between tasks): accuracy, and for lava-sim the agreement with the "
                    "bit-accurate reference layer by layer, and timings.")
    deploy.add_argument("network", type=user_path, help="exported network file (spikecl export)")
    deploy.add_argument("--backend", choices=("lava-sim", "reference"), default="reference",
                        help="'reference' (the default): spikecl's bit-accurate numpy fixed point; 'lava-sim': Lava's "
                             "fixed-point CPU simulation in .venv-lava, compared with the reference layer by layer")
    deploy.add_argument("--samples", type=bounded(int, 1, what="a number of samples"),
                        help=f"evaluation samples to run (test split, or validation under data.eval_split; "
                             f"default {DEPLOY_SAMPLES}; lava-sim stops after "
                             f"{LAVA_TIMEOUT_S} s); exported networks only: a learning graph holds its own inputs")
    deploy.add_argument("--data-dir", help="folder holding downloaded datasets (exported networks only)")
    add_plugin_argument(deploy)
    graph = deploy.add_argument_group("CA3 learning graphs (spikecl export models/ca3_cam.toml -o ca3.h5)")
    graph.add_argument("--cells", choices=CA3_CELLS, help="cells on Lava: spikecl's cell model ('custom', the "
                                                          "default) or Lava's LIFRefractory ('lif')")
    graph.add_argument("--learning", choices=CA3_LEARNING, help="Lava's learning engine: 'float' (the default) or "
                                                                "'fixed' (8-bit weights, 7-bit traces)")
    graph.add_argument("--stock-engine", action="store_true", help="Lava's stock learning order: no clip between "
                       "the potentiation and depression halves, pre spikes sent through the row before its update")
    deploy.set_defaults(handler=cmd_deploy)


def add_plugin_argument(parser) -> None:
    """``--plugin``: what registers the dataset a network was trained on, whose samples these commands draw."""
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                        help="a Python file or module of your own that registers the dataset the network was trained "
                             "on (repeatable; see spikecl.plugins)")


def print_folding_cost(spec, net, quant) -> None:
    """A note where the bias that folding ``stream.standardize`` into the first layer adds lowers that layer's
    threshold (and so its weight mantissas) below what the layer with its trained bias alone would get."""
    from dataclasses import replace

    from spikecl.export.quantize import quantize_hidden

    first, folded = net.layers[0], spec.layers[0]
    trained_bias = folded.bias + spec.config["standardize_folded"][0] * folded.weight.sum(axis=1)  # + (m / s) W 1
    unfolded = quantize_hidden(replace(folded, bias=trained_bias), quant, first.input_bits)
    if unfolded.vth > first.vth:
        measured = ": see the quantised accuracy above" if "float_accuracy" in net.metrics else ""
        print(f"note: {first.name} carries the folded standardisation (stream.standardize) as a bias, which lowers "
              f"its vth to {first.vth} (without the fold: {unfolded.vth}) and its weight mantissas to at most "
              f"±{abs(first.weight).max()} (±{abs(unfolded.weight).max()}){measured}")


def cmd_export(args: argparse.Namespace) -> int:
    from spikecl.atomic import check_not_source
    from spikecl.plugins import load_plugins

    load_plugins(args.plugin)
    check_not_source(args.source, args.output)
    given = [name for name in NETWORK_OPTIONS if getattr(args, name) is not None]     # None: not on the command line
    if args.source.suffix.lower() == ".toml":
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')} applies to trained networks; an experiment file "
                              "exports as its kind declares (a CA3 one as a Lava learning graph, HDF5) and takes no "
                              "such option")
        return export_experiment(args)
    netx_only = [name for name in given if name != "format"]
    if args.format == "nir" and netx_only:
        raise ConfigError(f"--{netx_only[0].replace('_', '-')} applies to netx exports; --format nir writes the float "
                          "network (no quantisation, calibration, accuracy check or samples) and takes no such "
                          "option")
    guard = next((name for name in ("max_drop", "force") if name in given), None)
    if guard and args.samples == 0:
        raise ConfigError(f"--{guard.replace('_', '-')} applies to the accuracy check, which --samples 0 skips")
    if {"max_drop", "force"} <= set(given):
        raise ConfigError("--max-drop sets the accuracy check's limit, which --force lifts; pass one of them")
    for name, default in NETWORK_OPTIONS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.format == "netx" and args.output.suffix.lower() == ".nir":
        raise ConfigError(f"-o {args.output}: a .nir name for a netx (HDF5) file; pass --format nir for a NIR graph "
                          "or name the file .h5")
    if args.format == "nir" and args.output.suffix.lower() != ".nir":
        raise ConfigError(f"-o {args.output}: a NIR graph is named .nir, as the nir package names them (.h5 names "
                          "netx networks here); name it .nir or pass --format netx")
    from spikecl.export import learning_graphs
    from spikecl.export.netx import is_network_file, is_nir_file, lava_dl_refusal
    from spikecl.export.pipeline import export_file, print_export
    from spikecl.export.quantize import QuantConfig

    quant = QuantConfig(weight_bits=args.weight_bits, headroom=args.headroom, input_bits=args.input_bits)
    try:
        spec, net = export_file(args.source, args.output, args.format, quant, samples=args.samples,
                                calibration_samples=args.calibration_samples, overwrite=args.overwrite,
                                data_dir=args.data_dir, max_drop=None if args.force else args.max_drop)
    except ForeignFileError:                         # not a results file: an exported network names its command
        if is_network_file(args.source):
            raise ForeignFileError(f"{args.source} is an exported network already; run it with: spikecl deploy "
                                   f"{args.source}") from None
        kind = learning_graphs.kind_of(args.source)
        if kind is not None:
            raise ForeignFileError(f"{args.source} is a {kind} learning graph, exported already; run it with: "
                                   f"spikecl deploy {args.source} --backend lava-sim") from None
        if is_nir_file(args.source):
            raise ForeignFileError(f"{args.source} is a NIR graph, exported already (the float network); run it with "
                                   "spikecl.export.nir_readers.run_nir, or export the run's results file") from None
        raise
    if net is not None:
        print_export(net, asked=args.samples)
        if "standardize_folded" in spec.config:
            print_folding_cost(spec, net, quant)
    print(f"wrote {args.output} ({args.format}, {len(spec.layers)} layers)")
    if net is not None and (why := lava_dl_refusal(net)):
        print(f"note: it runs on spikecl's runner only, not in lava-dl's netx loader ({why.split(';')[0]})")
    return 0


def export_experiment(args: argparse.Namespace) -> int:
    """``spikecl export EXPERIMENT.toml``: the exported form its kind writes
    (:attr:`~spikecl.experiment_kind.Kind.export`)."""
    from spikecl.experiment_kind import experiment_toml, kind

    name = experiment_toml(args.source).get("kind", "continual")
    k = kind(name)                                       # unknown: its one-line error names --plugin
    if k.export is None:
        raise ConfigError(f"{args.source} is a {name!r} experiment file, which has no exported form; export takes a "
                          "continual run's results file or a ca3 experiment file")
    print(k.export(args.source, args.output, args.overwrite))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from spikecl.export.pipeline import deploy, print_deploy
    from spikecl.plugins import load_plugins

    load_plugins(args.plugin)
    options = {name: getattr(args, name) for name in ("cells", "learning", "stock_engine") if getattr(args, name)}
    print_deploy(deploy(args.network, args.backend, args.samples, args.data_dir, options=options))
    return 0
