"""From a trained run to a deployable file, and from that file to verified runs (reference or Lava).

``export_file``: results/checkpoint → (calibrate the readout on training samples) → quantise → measure float and
quantised accuracy on test samples → write netx HDF5 (or NIR). ``deploy``: run an exported file on the numpy
reference or on Lava (the runner in ``.venv-lava``, as a subprocess) and compare the two spike for spike.
"""

from __future__ import annotations

import inspect
import numbers
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from spikecl.atomic import check_not_source, check_output
from spikecl.errors import ConfigError, ExportError, check_type
from spikecl.export import energy, fixed_point, resources
from spikecl.export.float_model import float_logits, readout_range
from spikecl.export.inputs import check_features, encode, encode_values
from spikecl.export.samples import check_reads_data_dir, data_dir_option, stream_samples
from spikecl.export.lava_client import lava_python, run_lava
from spikecl.export.quantize import FixedNetwork, QuantConfig, check_encoder, quantize
from spikecl.export.spec import NetworkSpec, load_trained
from spikecl.remedies import option

FORMATS = ("netx", "nir")
BACKENDS = ("reference", "lava-sim")


def calibrated(spec: NetworkSpec, quant: QuantConfig, x_cal: np.ndarray | None) -> QuantConfig:
    """``quant`` with the readout range measured on calibration samples ``x_cal`` [N, ...] (if any)."""
    if x_cal is None or len(x_cal) == 0 or quant.readout_range is not None:
        return quant
    check_features(x_cal, spec.n_inputs)
    x_seq = encode_values(x_cal, spec.num_steps, spec.encoder, None)
    return replace(quant, readout_range=readout_range(spec, x_seq))


#: samples that SynOps, sparsity and energy are measured on (per inference), spread over the export's samples
MEASURED_SAMPLES = 100


def spread(n: int, count: int) -> np.ndarray:
    """``min(n, count)`` indices evenly spaced over ``0 .. n-1`` (every task of samples laid out task by task)."""
    return np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(np.int64))


def accuracies(spec: NetworkSpec, net: FixedNetwork, x: np.ndarray, y: np.ndarray,
               heads: np.ndarray | None) -> dict:
    """Float and quantised (numpy reference) accuracy on samples ``x`` [N, ...], how often they agree, how often
    a 24-bit current wrapped (``u_wraps``, over layers, steps and samples: a drive beyond the headroom turned
    negative; ``u_wraps_readout``: those of the readout, where any; ``u_wraps_headroom``: the headroom in effect at
    the hidden layers that wrapped,
    :meth:`~spikecl.export.quantize.FixedNetwork.headroom_at`) and the readout's 24-bit voltage was cut
    (``readout_clips``, saturated at either end or reset at the top, over the outputs decoded, steps and samples: a
    logit cut where the float one is not; a hidden layer's voltage saturates only far below its threshold, where it
    changes no spike), and the reference's SynOps, sparsity and energy per inference on :data:`MEASURED_SAMPLES` of
    them spread over all (so over every task)."""
    check_features(x, spec.n_inputs)
    float_pred = np.argmax(float_logits(spec, encode_values(x, spec.num_steps, spec.encoder, None), heads), axis=1)
    inputs = encode(x, net)
    wraps, clips = np.zeros(len(net.layers), np.int64), np.zeros(len(net.layers), np.int64)
    fixed_pred = fixed_point.predict(net, inputs, heads, wraps=wraps, clips=clips)
    sample = inputs[:, spread(inputs.shape[1], MEASURED_SAMPLES)]
    synops = energy.fixed_measures(net, sample, fixed_point.simulate(net, sample).spikes)
    wrapped = net.headroom_at(np.flatnonzero(wraps))
    return {"samples": int(len(y)), "float_accuracy": float(np.mean(float_pred == y)),
            "reference_accuracy": float(np.mean(fixed_pred == y)),
            "prediction_agreement": float(np.mean(float_pred == fixed_pred)), "u_wraps": int(wraps.sum()),
            **({"u_wraps_headroom": wrapped} if wrapped is not None else {}),
            **({"u_wraps_readout": int(wraps[-1])} if wraps[-1] else {}),
            "readout_clips": int(clips[-1]), **synops}


#: the most quantised accuracy may fall below float accuracy at export (points) before export refuses.
MAX_DROP_POINTS = 3.0


def evaluated_split(config: dict) -> str:
    """The split export and deploy measure accuracy on: the one the run was evaluated on (``data.eval_split``)."""
    data = config.get("data") if isinstance(config, dict) else None
    return "validation" if isinstance(data, dict) and data.get("eval_split") == "validation" else "test"


def check_accuracy_drop(metrics: dict, max_drop: float | None, graded_input: bool = False,
                        split: str = "test", headroom: float | None = None) -> None:
    """Refuse (one-line :class:`ExportError` with the numbers) a quantised network whose accuracy on the export's
    test samples is more than ``max_drop`` points below the float network's; ``None`` never refuses.
    ``graded_input``: the first layer takes graded input, whose bits (and the headroom) are remedies too;
    ``headroom``: the one in effect (:attr:`FixedNetwork.headroom`), named where 24-bit currents wrapped."""
    if max_drop is None or "float_accuracy" not in metrics:
        return
    float_acc, fixed_acc = 100 * metrics["float_accuracy"], 100 * metrics["reference_accuracy"]
    bits = (f"{option('--weight-bits')}, {option('--input-bits')} or {option('--headroom')}" if graded_input
            else option("--weight-bits"))
    points = round(float_acc - fixed_acc, 9)          # a drop of exactly max_drop points passes, whatever rounding
    if points > max_drop:
        d = next(d for d in range(1, 10) if float(f"{points:.{d}f}") > max_drop)     # digits that show 3.04 > 3
        drop = (f"quantised accuracy {fixed_acc:.{d}f} % is {points:.{d}f} points below float "
                f"{float_acc:.{d}f} % on {metrics['samples']} {split} samples (limit {max_drop:g})")
        if metrics.get("u_wraps"):
            raise ExportError(f"{drop}: the 24-bit current wrapped {metrics['u_wraps']} times (a drive beyond the "
                              f"headroom turned negative); {wrap_remedy(metrics, headroom)}, "
                              f"raise {option('--max-drop')}, or {option('--force')}")
        raise ExportError(f"{drop}; an outlier weight or too few bits? Retrain, change {bits}, raise "
                          f"{option('--max-drop')}, or {option('--force')}")


def readout_range_remedy() -> str:
    """Where the readout's range comes from, and what widens it, in the caller's spelling
    (:func:`spikecl.remedies.option`)."""
    return (f"its range comes from the calibration samples ({option('--calibration-samples')}: more of them, or 0 "
            "for the weights' worst case)")


def wrap_remedy(metrics: dict, headroom: float | None = None) -> str:
    """What to export with where 24-bit currents wrapped (export's ``metrics``): at hidden layers a --headroom above
    the one in effect there (``u_wraps_headroom``, else ``headroom``); at the readout, whose scale no headroom
    sets, more calibration."""
    hidden, readout = metrics.get("u_wraps", 0) - metrics.get("u_wraps_readout", 0), metrics.get("u_wraps_readout", 0)
    headroom = metrics.get("u_wraps_headroom", headroom)
    remedies = []
    if hidden:
        remedies.append(f"export with a larger {option('--headroom')}" if headroom is None else
                        f"export with {option('--headroom')} above the {headroom:.4g} in effect (a smaller one changes "
                        "nothing)")
    if readout:
        remedies.append(f"{readout} of them at the readout, which no {option('--headroom')} changes: "
                        f"{readout_range_remedy()}")
    return "; ".join(remedies)


def export_file(source: str | Path, output: str | Path, fmt: str = "netx", quant: QuantConfig = QuantConfig(),
                samples: int = 500, calibration_samples: int = 256, overwrite: bool = False,
                data_dir: str | None = None, max_drop: float | None = MAX_DROP_POINTS
                ) -> tuple[NetworkSpec, FixedNetwork | None]:
    """Export a trained run to ``output``; returns the float spec and (netx) the quantised network with its
    measured accuracies in ``metrics``. Nothing is written when any check fails, including quantised accuracy more
    than ``max_drop`` points below float on the ``samples`` test samples (``None``: no limit)."""
    from spikecl.export.netx import lava_dl_refusal, write_netx
    from spikecl.export.nir_io import write_nir

    if fmt not in FORMATS:
        raise ConfigError(f"{option('--format')} {fmt!r}: choose one of {', '.join(FORMATS)}")
    check_type(quant, QuantConfig, "export_file: quant", "e.g. QuantConfig(weight_bits=8)")
    if fmt == "nir":
        given = {"quant": quant, "samples": samples, "calibration_samples": calibration_samples,
                 "data_dir": data_dir, "max_drop": max_drop}
        defaults = inspect.signature(export_file).parameters
        netx_only = next((name for name, value in given.items() if value != defaults[name].default), None)
        if netx_only:
            raise ConfigError(f"{netx_only} applies to netx exports; fmt = 'nir' writes the float network (no "
                              "quantisation, calibration, accuracy check or samples) and takes no such option")
    check_not_source(source, output)
    check_output(output, overwrite, flag=option("-o"), example="net.h5")
    spec = load_trained(source)
    check_reads_data_dir(spec.config, data_dir)
    has_data = "data" in spec.config and "stream" in spec.config
    check_encoder(spec, None if fmt == "nir" else quant)   # netx and NIR alike; before any samples are drawn
    if fmt == "nir":
        write_nir(output, spec, overwrite=overwrite)
        return spec, None
    x_cal = None
    if has_data and calibration_samples:
        x_cal = stream_samples(spec.config, calibration_samples, data_dir, split="train")[0]
    net = quantize(spec, calibrated(spec, quant, x_cal))
    metrics = {}
    if has_data and samples:
        x, y, heads = stream_samples(spec.config, samples, data_dir)
        metrics = accuracies(spec, net, x, y, heads)
        check_accuracy_drop(metrics, max_drop, bool(net.layers[0].input_bits), evaluated_split(spec.config),
                            net.headroom)
    net = replace(net, metrics=metrics)
    write_netx(output, net, overwrite=overwrite, lava_dl=lava_dl_refusal(net) is None)   # else spikecl's runner only
    return spec, net


#: test samples ``deploy`` runs an exported network on when ``samples`` is None
DEPLOY_SAMPLES = 200


def deploy(network: str | Path, backend: str = "reference", samples: int | None = None, data_dir: str | None = None,
           record_layers: bool = True, options: dict | None = None) -> dict:
    """Run an exported file on ``samples`` (None: :data:`DEPLOY_SAMPLES`) test samples of the stream it was trained
    on; accuracy, agreement, timings. ``options``: a learning graph's deploy options (e.g. ``{"cells": "lif"}`` for a
    CA3 graph); a learning graph holds its own inputs and refuses ``samples`` and ``data_dir``."""
    from spikecl.export import learning_graphs
    from spikecl.export.netx import read_netx

    if backend not in BACKENDS:
        raise ConfigError(f"{option('--backend')} {backend!r}: choose one of {', '.join(BACKENDS)}")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, numbers.Integral)):
        raise ConfigError(f"deploy: samples must be a whole number of test samples or None, got {samples!r}")
    if samples is not None and samples < 1:
        raise ConfigError(f"{option('--samples')} {samples}: expected at least 1")
    kind = learning_graphs.kind_of(network)
    options = options or {}
    if kind is not None:                                  # plasticity on: the kind's own runner and report
        unused = option("--samples") if samples is not None else \
            data_dir_option() if data_dir is not None else None
        if unused:
            raise ConfigError(f"{unused} applies to exported networks; {network} is a {kind} learning graph, which "
                              "holds its own inputs")
        report = learning_graphs.deploy(kind, Path(network), backend, 0, None, options)
        return {"learning_graph": kind, "backend": backend, **report}
    if options and Path(network).is_file():              # (a missing file is named as such by read_netx)
        raise ConfigError(f"{learning_graphs.option_flag(next(iter(options)))} applies to learning graphs only; "
                          f"{network} is an exported network")
    net = read_netx(network)
    check_reads_data_dir(net.config, data_dir)
    samples = DEPLOY_SAMPLES if samples is None else samples
    fixed_point.check_input_size(net.num_steps, samples, net.n_inputs)   # before any samples are drawn
    if backend == "lava-sim":
        lava_python()                                                     # a missing .venv-lava: before the work
    x, y, heads = stream_samples(net.config, samples, data_dir)
    inputs = encode(x, net)
    started = time.perf_counter()
    reference = fixed_point.predict(net, inputs, heads)
    report = {"backend": backend, "samples": int(len(y)), "samples_asked": samples,
              "reference_accuracy": float(np.mean(reference == y)),
              "reference_s": time.perf_counter() - started, "export_metrics": net.metrics}
    if backend == "reference":
        report["accuracy"] = report["reference_accuracy"]
        return report
    lava = run_lava(Path(network), inputs, y, heads, record_layers)
    started = time.perf_counter()
    stream = fixed_point.simulate_stream(net, inputs)
    report["reference_stream_s"] = time.perf_counter() - started
    report.update(accuracy=float(lava["accuracy"]), build_s=float(lava["build_s"]), start_s=float(lava["start_s"]),
                  run_s=float(lava["run_s"]),
                  ms_per_step=float(lava["ms_per_step"]), steps=int(lava["steps"]),
                  run_steps=int(lava.get("run_steps", lava["steps"])),
                  prediction_agreement=float(np.mean(lava["predictions"] == reference)),
                  readout_equal=bool(np.array_equal(lava["readout_v"], stream.readout_v)),
                  spike_agreement=[spike_agreement(a, b) for a, b in zip(lava["spikes"], stream.spikes)])
    return report


def spike_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """The share of the spikes of ``a`` and ``b`` (0/1 arrays of one shape) that both fired: shared / fired by
    either (1.0 where neither fired). Silent neuron-steps do not count as agreement: a layer that never fired
    against one firing at 17 % would score 83 % by equal bits."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    either = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / either) if either else 1.0


#: why a run on some number of samples measured fewer
FEWER_SAMPLES = "each trained task gave its share, or all it holds"


def print_export(net: FixedNetwork, out=None, asked: int | None = None) -> None:
    """A table of the quantised layers and the accuracies measured at export (on fewer samples than the ``asked``:
    said)."""
    out = out or sys.stdout
    print(f"{'layer':10s} {'shape':>11s} {'w_exp':>5s} {'vth':>6s} {'du':>5s} {'dv':>5s} {'b_exp':>5s} "
          f"{'scale':>10s}", file=out)
    for layer in net.layers:
        print(f"{layer.name:10s} {layer.n_in:>5d}->{layer.n_out:<5d} {layer.weight_exp:>5d} {layer.vth:>6d} "
              f"{layer.du:>5d} {layer.dv:>5d} {layer.bias_exp:>5d} {layer.scale:>10.4g}", file=out)
    m = net.metrics
    if "float_accuracy" in m:
        fewer = f" (of {asked} asked: {FEWER_SAMPLES})" if asked is not None and asked > m["samples"] else ""
        print(f"accuracy on {m['samples']} {evaluated_split(net.config)} samples{fewer}: float "
              f"{100 * m['float_accuracy']:.2f}%  quantised {100 * m['reference_accuracy']:.2f}%  (same prediction "
              f"{100 * m['prediction_agreement']:.1f}%)", file=out)
        if m.get("u_wraps"):
            print(f"warning: the 24-bit current wrapped {m['u_wraps']} times on these samples: a drive beyond the "
                  f"headroom turned negative, as it would on Loihi; "
                  f"{wrap_remedy(m, net.headroom)}", file=out)
        if m.get("readout_clips"):
            print(f"warning: the readout's 24-bit voltage was cut {m['readout_clips']} times on these samples "
                  "(steps of the outputs decoded), as it would be on Loihi: those logits are cut where the float ones "
                  f"are not (held at the bottom, or reset to 0 at the top); {readout_range_remedy()}", file=out)
        print(f"synaptic operations per inference: dense {m['dense_synops']:.4g}, effective ACs "
              f"{m['effective_acs']:.4g} + MACs {m['effective_macs']:.4g}", file=out)
    else:
        print("no accuracy, synaptic operations, NeuroBench measures or energy estimate: they are measured on test "
              "samples (--samples 0 skipped them, or the stream has no data here)", file=out)
    if "energy_j" in m:
        print(f"NeuroBench on the reference: connection sparsity {100 * m['connection_sparsity']:.1f}%, activation "
              f"sparsity of the hidden layers {100 * m['hidden_activation_sparsity']:.1f}% (the readout left out), "
              f"{m['neuron_updates']:.4g} neuron updates; Loihi "
              f"energy ~{1e9 * m['energy_j']:.3g} nJ per inference (23.6 pJ/SynOp, 52 pJ/update: Davies et al., "
              "IEEE Micro 2018; cores only, a lower bound)", file=out)
    if net.layers[0].input_bits:
        print(f"input: graded {net.layers[0].input_bits}-bit spikes (direct encoding): Loihi 2 and Lava's simulation "
              "only; a board run (python -m spikecl_lava.runner --hardware) refuses it unless --allow-graded-input: "
              "export a latency or poisson network for hardware", file=out)
    for name in resources.PRESETS:
        limits = resources.preset(name)
        if resources.cannot_run(net, limits):
            continue                                     # only the chips that can run the network are named
        try:
            r = resources.summary(net, limits)
            print(f"{name}: {r['neurons']} neurons, {r['synapses']} synapses, {r['synaptic_memory_bytes']} bytes of "
                  f"weights, {r['cores']} cores ({r['chips']} chip{'s' if r['chips'] > 1 else ''})", file=out)
        except ExportError as exc:
            print(f"{name}: does not fit ({exc})", file=out)


def print_deploy(report: dict, out=None) -> None:
    """The deployment report: accuracy against the reference, spike agreement per layer, timings."""
    out = out or sys.stdout
    if "learning_graph" in report:
        from spikecl.export import learning_graphs

        learning_graphs.module(report["learning_graph"]).print_report(report, out)
        return
    fewer = report.get("samples_asked", 0) > report["samples"]
    print(f"backend {report['backend']}: accuracy {100 * report['accuracy']:.2f}% on {report['samples']} samples"
          + (f" (of {report['samples_asked']} asked: {FEWER_SAMPLES})"
             if fewer else "")
          + f" (reference {100 * report['reference_accuracy']:.2f}%, reference time {report['reference_s']:.2f} s)",
          file=out)
    m = report.get("export_metrics", {})
    if "float_accuracy" in m:
        print(f"at export: float {100 * m['float_accuracy']:.2f}%, quantised {100 * m['reference_accuracy']:.2f}% "
              f"on {m['samples']} samples", file=out)
    if report["backend"] == "lava-sim":
        agree = ", ".join(f"{100 * a:.2f}%" for a in report["spike_agreement"])
        print(f"Lava vs reference: predictions {100 * report['prediction_agreement']:.2f}% equal, hidden spikes "
              f"[{agree}] shared (of those either fired), readout voltages "
              f"{'identical' if report['readout_equal'] else 'DIFFER'}", file=out)
        print(f"Lava time: build {report['build_s']:.2f} s, compile + first step {report['start_s']:.2f} s, "
              f"{report.get('run_steps', report['steps']) - 1} more steps {report['run_s']:.2f} s "
              f"({report['ms_per_step']:.2f} ms/step); "
              f"reference stream {report['reference_stream_s']:.2f} s",
              file=out)
