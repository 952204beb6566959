"""``spikecl run EXPERIMENT.toml``: run an experiment file of any kind through :mod:`spikecl.experiment_kind`."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
from pathlib import Path

from spikecl.commands import bounded, user_path
from spikecl.config import MAX_THREADS, SEED_MAX
from spikecl.errors import ConfigError
from spikecl.toml_files import sets_key, toml_literal


def _seeds(text: str) -> list[int]:
    """``--seeds 0,1,2``: distinct integers ≥ 0, at least one."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers ≥ 0, e.g. 0,1,2; got {text!r}") from None
    if min(seeds) < 0 or max(seeds) > SEED_MAX or len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct integers in 0..{SEED_MAX}, got {text!r}")
    return seeds


def _seed(text: str) -> int:
    """``--seed 3``: one integer in 0..SEED_MAX (a config's seeds' range), named as the argument where it is not."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}") from None
    if not 0 <= seed <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer in 0..{SEED_MAX}, got {text!r}")
    return seed


def add_command(sub) -> None:
    run = sub.add_parser("run", help="run an experiment file (any kind), write results files, a summary and plots",
                         description="Run the experiment described by a TOML file; its top-level kind (continual, "
                                     "ca3, sparsey) decides what runs. Results files go to <output_dir>/<name>/ "
                                     "(continual: one per method and seed), then a summary and plots.")
    run.add_argument("experiment", type=user_path,
                     help="experiment file (TOML), e.g. models/pmnist5k_demo.toml; or a results file (.h5) of a "
                          "continual run, to make that run again beside it (with its recorded thread count where "
                          "--nproc is its recorded process count; otherwise a note says what makes it bit for bit)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set train.epochs=3 (value as TOML; repeatable)")
    run.add_argument("--device", choices=("cpu", "cuda", "auto"), help="where to run (default: the config's)")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_seed, help="run a single seed")
    seeds.add_argument("--seeds", type=_seeds, help="run several seeds, e.g. 0,1,2 (reports mean ± std)")
    run.add_argument("--resume", action="store_true",
                     help="keep finished results files, run missing or damaged ones (from checkpoints where kept)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace existing results files; with --resume only those (and checkpoints) made with "
                          "other settings: how an interrupted --overwrite continues")
    run.add_argument("--output-dir", help="folder for results (default: the config's output_dir)")
    run.add_argument("--data-dir", help="folder holding downloaded datasets in their standard formats")
    run.add_argument("--no-progress", action="store_true",
                     help="hide progress bars (drawn only when stderr is a terminal)")
    run.add_argument("--no-plots", action="store_true", help="skip writing PNG plots")
    run.add_argument("--nproc", type=bounded(int, 1, MAX_THREADS, what="a number of processes (at most 4 per CPU)"),
                     default=1, metavar="N",
                     help="data-parallel training in N processes spawned here (like torchrun; see docs/distributed.md)")
    run.add_argument("--threads", type=bounded(int, 1, MAX_THREADS, what="a number of threads (at most 4 per CPU)"),
                     metavar="N",
                     help="CPU threads per process: torch's intra-op threads and numpy's BLAS (Sparsey, Brian2; "
                          "through threadpoolctl, which comes with scikit-learn) (default: one per core; under "
                          "--nproc, each process's share of the cores; at most 4 per CPU). CPU results depend on it, "
                          "and results files record it; on a loaded machine 1 avoids threads waiting for busy cores")
    run.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                     help="a Python file or module of your own to import first, registering its methods, "
                          "experiment kinds or datasets (repeatable; see spikecl.plugins)")
    run.set_defaults(handler=cmd_run)


def overrides_of(args: argparse.Namespace) -> list[str]:
    """The ``key=value`` overrides that ``--set`` and the shortcut flags (``--device``, ``--seed`` …) ask for; a
    key set by both is a one-line :class:`ConfigError` (neither silently wins)."""
    overrides = list(args.overrides)
    for flag, key in (("--device", "device"), ("--seed", "seeds"), ("--seeds", "seeds"),
                      ("--output-dir", "output_dir"), ("--data-dir", "data.data_dir")):
        given = next((o for o in overrides if sets_key(o, key)), None) \
            if getattr(args, flag[2:].replace("-", "_")) is not None else None
        if given is not None:
            raise ConfigError(f"{flag} and --set {given!r} both set {key}; give one of them")
    if args.device:
        overrides.append(f"device={toml_literal(args.device)}")
    if args.seed is not None:
        overrides.append(f"seeds=[{args.seed}]")
    if args.seeds:
        overrides.append(f"seeds={toml_literal(args.seeds)}")
    if args.output_dir is not None:
        overrides.append(f"output_dir={toml_literal(args.output_dir)}")
    if args.data_dir is not None:
        overrides.append(f"data.data_dir={toml_literal(args.data_dir)}")
    return overrides


def recorded_setup(path: Path) -> tuple[int, int] | None:
    """(torch threads, processes) a results file ``path`` that ``spikecl run`` makes again was computed with, as its
    kind records them (:meth:`~spikecl.experiment_kind.Kind.recorded_setup`), else None (an experiment file, a kind
    whose numbers do not depend on them or that this process does not know, a run resumed on other counts)."""
    from spikecl.errors import ResultsError
    from spikecl.experiment_kind import kind, kind_names
    from spikecl.toml_files import is_hdf5_file
    from spikecl.io import read_run

    if not is_hdf5_file(path):
        return None
    try:
        run = read_run(path)
    except ResultsError:                          # said when the file is read as the experiment
        return None
    return kind(run.kind).recorded_setup(run) if run.kind in kind_names() else None


def check_reads_data(path: Path, overrides: list[str]) -> None:
    """``--data-dir``: a one-line :class:`ConfigError` where the experiment's kind reads no dataset (its config has
    no ``data`` table), rather than an unknown key the user never wrote, or where every run reads a dataset that
    comes with its package or is registered (:func:`spikecl.config.reads_no_folder`), as its kind names them
    (:meth:`~spikecl.experiment_kind.Kind.datasets_read`)."""
    import dataclasses

    from spikecl.config import reads_no_folder
    from spikecl.experiment_kind import experiment_toml, kind
    from spikecl.toml_files import apply_overrides

    raw = apply_overrides(experiment_toml(path), overrides)
    k = kind(raw.get("kind", "continual"))
    if k.config is not None and "data" not in {field.name for field in dataclasses.fields(k.config)}:
        raise ConfigError(f"--data-dir: {k.name!r} experiments read no dataset; drop --data-dir")
    read = k.datasets_read(raw)
    if all(map(reads_no_folder, read)):
        why = " or ".join(dict.fromkeys(map(reads_no_folder, sorted(read))))
        raise ConfigError(f"--data-dir: every run of this experiment reads {', '.join(sorted(read))}, which {why} "
                          "and is read from no folder; drop --data-dir")


@contextlib.contextmanager
def limited_threads(count: int | None):
    """``--threads``: while the block runs, at most ``count`` threads (None: no limit) in torch's intra-op pool and in
    the BLAS and OpenMP pools (a Sparsey run's matrix products are numpy's): those loaded already through
    threadpoolctl where it is installed, those loaded later (scipy's own BLAS, by scikit-learn's datasets) and those
    of spawned processes (``--nproc``) through the variables they read when they load. Afterwards the variables,
    torch's pool and the pools limited at the start are as before (``spikecl.cli.main`` called from Python leaves its
    process as it found it; a pool loaded during the block keeps the limit). Neither package is required: a Sparsey
    install may have no torch."""
    if count is None:
        yield
        return
    variables = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    before = {variable: os.environ.get(variable) for variable in variables}
    torch = importlib.import_module("torch") if importlib.util.find_spec("torch") is not None else None
    torch_threads = torch.get_num_threads() if torch is not None else None
    limiter = None
    try:
        os.environ.update({variable: str(count) for variable in variables})
        if torch is not None:
            torch.set_num_threads(count)
        if importlib.util.find_spec("threadpoolctl") is not None:
            import numpy  # noqa: F401 - its BLAS loaded, so that the limit reaches it
            from threadpoolctl import threadpool_limits

            limiter = threadpool_limits(count)
        yield
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        if torch is not None:
            torch.set_num_threads(torch_threads)
        for variable, value in before.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def cmd_run(args: argparse.Namespace) -> int:
    from spikecl.experiment_kind import check_plot_files, load, preflight, run_file
    from spikecl.plugins import load_plugins, run_file_with_plugins

    plugins = load_plugins(args.plugin)
    if args.data_dir is not None:
        check_reads_data(args.experiment, args.overrides)
    overrides = overrides_of(args)
    options = dict(resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                   plots=not args.no_plots)
    if args.threads and args.nproc * args.threads > MAX_THREADS:
        raise ConfigError(f"--nproc {args.nproc} x --threads {args.threads}: at most {MAX_THREADS} threads in all "
                          "(4 per CPU)")
    if recorded := recorded_setup(args.experiment):
        threads, processes = recorded
        if processes != args.nproc:               # its batches split and summed otherwise
            print(f"note: {args.experiment} was computed by {processes} process{'es' * (processes != 1)} of {threads} "
                  f"torch thread{'s' * (threads != 1)}; --nproc {processes} --threads {threads} makes it again bit "
                  "for bit")
        elif args.threads is None:                # as the run it makes again: the same sums in the same order
            args.threads = threads
            print(f"note: {args.experiment} was computed with {threads} torch thread{'s' * (threads != 1)}"
                  f"{' per process' * (processes > 1)}; so is this run (--threads chooses)")
    with limited_threads(args.threads):
        if args.nproc == 1:
            return run_file(args.experiment, overrides, **options)
        k, cfg = load(args.experiment, overrides)             # bad input is reported here once, not once per rank
        k.check_data_parallel(cfg)
        preflight(k, cfg, resume=args.resume, overwrite=args.overwrite, plots=not args.no_plots)
        if not args.no_plots:
            check_plot_files(k, cfg)
        return k.launch(args.nproc, run_file_with_plugins, plugins, args.experiment, overrides,
                        threads=args.threads, **options)
