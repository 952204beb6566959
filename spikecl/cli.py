"""The ``spikecl`` command line.

    spikecl run EXPERIMENT.toml [--set key=value ...] [--device cpu|cuda|auto] [--seed N | --seeds 0,1,2]
                                [--resume] [--overwrite] [--output-dir DIR] [--nproc N]
    spikecl report RESULTS.h5|DIR ... [--plots DIR]

An experiment file's top-level ``kind`` (default ``"continual"``) picks the module that runs it
(:data:`EXPERIMENT_KINDS`); further commands live in their own modules (:data:`COMMAND_MODULES`).
Errors a user can fix are printed as one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from spikecl.errors import ConfigError, SpikeCLError

#: experiment kind -> module with ``run_experiment_file(path, overrides, *, resume, overwrite, progress, plots)``
#: returning an exit code; ``overrides`` are ``key=value`` strings applied to the file (as ``--set``).
EXPERIMENT_KINDS = {
    "continual": "spikecl.continual.experiment",
    "ca3": "spikecl.memory.experiment",
    "sparsey": "spikecl.sdr.experiment",
}

#: modules adding a subcommand: ``add_command(subparsers)`` registers a parser whose defaults set ``handler``.
COMMAND_MODULES: tuple[str, ...] = ("spikecl.export.commands", "spikecl.continual.sweep_ray")

EPILOG = """examples:
  spikecl run models/pmnist5k_demo.toml                 run every method and seed of an experiment
  spikecl run models/pmnist5k_demo.toml --seeds 0,1,2 --set train.epochs=3 --set 'strategy.methods=["ewc"]'
  spikecl run models/pmnist5k_demo.toml --resume        continue a killed run; completed runs are kept
  spikecl report results/pmnist5k-demo                  tables and PNG plots of finished runs
  spikecl run models/ca3_cam.toml                       CA3 memory: recorded experiment, stress suite, plots
  spikecl run models/sparsey_mnist5k.toml               Sparsey coder: one pass over MNIST-5k
  spikecl export results/X/finetune-seed0.h5 -o net.h5  quantise to Loihi fixed point (netx HDF5)
  spikecl deploy net.h5 --backend lava-sim              run it on Lava's fixed-point simulation
  spikecl sweep models/sweeps/pmnist5k_lr.toml          many runs as Ray tasks, mean ± std at the end
"""


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikecl", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Continual learning in spiking neural networks, spiking memories (CA3, Sparsey SDRs) and their "
                    "export to neuromorphic hardware: run experiments, report, export, deploy, sweep.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="train every method and seed of an experiment, write results and plots",
                         description="Run a continual-learning experiment described by a TOML file: one results "
                                     "file per (method, seed) under <output_dir>/<name>/, then a table and plots.")
    run.add_argument("experiment", type=Path, help="experiment file (TOML), e.g. models/pmnist5k_demo.toml")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set train.epochs=3 (value as TOML; repeatable)")
    run.add_argument("--device", choices=("cpu", "cuda", "auto"), help="where to train (default: the config's)")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="run a single seed")
    seeds.add_argument("--seeds", type=_seeds, help="run several seeds, e.g. 0,1,2 (reports mean ± std)")
    run.add_argument("--resume", action="store_true",
                     help="continue interrupted runs from their checkpoints; keep completed results")
    run.add_argument("--overwrite", action="store_true", help="replace existing results files")
    run.add_argument("--output-dir", help="folder for results (default: the config's output_dir)")
    run.add_argument("--data-dir", help="folder holding downloaded datasets in their standard formats")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--no-plots", action="store_true", help="skip writing PNG plots")
    run.add_argument("--nproc", type=int, default=1, metavar="N",
                     help="data-parallel training in N processes spawned here (like torchrun; see docs/distributed.md)")

    report = sub.add_parser("report", help="print tables and write plots from results files",
                            description="Print accuracy matrices and a method comparison (mean ± std over seeds) "
                                        "from results files or folders of them, and write PNG plots.")
    report.add_argument("paths", nargs="+", type=Path, help="results files (.h5) or folders of them")
    report.add_argument("--plots", type=Path, help="folder for PNG plots (default: beside the first results)")
    report.add_argument("--no-plots", action="store_true", help="print tables only")
    report.add_argument("--no-matrices", action="store_true", help="print only the comparison table")
    report.set_defaults(handler=cmd_report)
    run.set_defaults(handler=cmd_run)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(sub)
    return parser


def _version() -> str:
    from spikecl import __version__

    return __version__


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string literal."""
    import json

    return json.dumps(text)


def cmd_run(args: argparse.Namespace) -> int:
    from spikecl.config import load_toml

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device={_toml_string(args.device)}")
    if args.seed is not None:
        overrides.append(f"seeds=[{args.seed}]")
    if args.seeds:
        overrides.append(f"seeds={args.seeds}")
    if args.output_dir:
        overrides.append(f"output_dir={_toml_string(args.output_dir)}")
    if args.data_dir:
        overrides.append(f"data.data_dir={_toml_string(args.data_dir)}")
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    kind = load_toml(args.experiment).get("kind", "continual")
    if kind not in EXPERIMENT_KINDS:
        raise ConfigError(f"kind: {kind!r} is not an experiment kind; choose from {sorted(EXPERIMENT_KINDS)}")
    module = importlib.import_module(EXPERIMENT_KINDS[kind])
    options = dict(resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                   plots=not args.no_plots)
    if args.nproc != 1:
        if kind != "continual":
            raise ConfigError(f"--nproc: {kind!r} experiments do not train data-parallel; drop --nproc")
        from spikecl.continual.distributed import launch

        return launch(args.nproc, module.run_experiment_file, args.experiment, overrides, **options)
    return module.run_experiment_file(args.experiment, overrides, **options)


def cmd_report(args: argparse.Namespace) -> int:
    from spikecl.report import collect, print_report

    results = collect(args.paths)
    first = args.paths[0]
    plots_dir = args.plots or (first if first.is_dir() else first.parent)
    print_report(results, plots_dir, plots=not args.no_plots, matrices=not args.no_matrices)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except SpikeCLError as exc:
        print(f"spikecl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikecl: interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
