"""``spikecl sweep SWEEP.toml``: run a sweep's runs on Ray (:mod:`spikecl.continual.sweep_ray`), then report them.

The report is the comparison table (mean ± std over seeds per method and point), written to
``<output_dir>/<name>/sweep-summary.txt`` and as a results file of kind ``sweep`` (``sweep.h5``), with a comparison
plot. With ``select``, the trials are validation runs; then each method's chosen point (``selection.json``) runs on
the test split into ``<name>/final/``, reported the same way. The command exits with 1 when a run FAILED (a
selecting sweep's failed trial too, after its final runs, unless it diverged: a trial whose training loss became NaN
or infinite is an outcome of its point, never chosen), 0 when every run is complete.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from spikecl.atomic import atomic_write, check_place_for_file, check_writable_folder, output_lock
from spikecl.commands import bounded, user_path
from spikecl.continual.results import ContinualResult, read_continual
from spikecl.continual.sweep import (Sweep, SweepRun, changed_setting, checkpoint_setting, final_paths, final_runs,
                                     labelled, load_sweep, made_otherwise, refuse_other_settings,
                                     run_config, select_points, settings_text, stale_checkpoints, summary_record,
                                     summary_text, sweep_dir, write_sweep_results)
from spikecl.continual.sweep_plot import plot_sweep
from spikecl.continual.sweep_ray import (UNFINISHED, check_cluster_options, check_output_folders, execute_sweep,
                                        kept_divergence, kept_result, refuse_unfinished, unfinished_runs)
from spikecl.errors import ConfigError, NumericalError, clear_interrupt
from spikecl.experiment_kind import check_datasets, launched_world_size, removed_if_empty_on_error
from spikecl.figures import require_plots
from spikecl.paths import exists
from spikecl.rounding import half_up
from spikecl.run_files import checkpoint_path, end_marks, live_pid, live_writer, remove_temporaries, replacing


def report_sweep(sweep: Sweep, done: dict[str, ContinualResult], failures: dict[str, list[str]],
                 plots: bool = True) -> str:
    """Print and write (``sweep-summary.txt``, ``sweep.h5``, ``sweep-comparison.png`` in the sweep's folder) the
    comparison table; returns the text. Runs that failed at first and then succeeded are listed as recovered."""
    results, final = labelled(done, sweep), lasting(failures, done)
    text = summary_text(results, sweep, final)
    recovered = [f"recovered {k} after {len(v)} failed attempt(s): {v[-1]}" for k, v in failures.items() if k in done]
    if recovered:
        text += "\n" + "\n".join(recovered)
    atomic_write(sweep_dir(sweep) / "sweep-summary.txt", lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"),
                 overwrite=True)
    write_sweep_results(results, sweep, final)
    print(text)                                         # the table first: a plot that cannot be written loses none
    if plots:
        draw_sweep(sweep, done, failures)
    return text


def record_choice(sweep: Sweep, done: dict[str, ContinualResult], failures: dict[str, list[str]], selection: dict,
                  plots: bool = True) -> None:
    """After the selection (:func:`select_points`): the trials' ``sweep.h5`` again with each method's choice, and
    their plot with it marked (the trials' report comes first, so a stop during the selection leaves it)."""
    write_sweep_results(labelled(done, sweep), sweep, lasting(failures, done), selection)
    if plots:
        draw_sweep(sweep, done, failures, selection)


def draw_sweep(sweep: Sweep, done: dict[str, ContinualResult], failures: dict[str, list[str]],
               selection: dict | None = None) -> None:
    """``sweep-comparison.png`` of the runs ``done`` (:func:`plot_sweep`), each method's chosen point marked given
    the ``selection``; with no run done, an earlier sweep's plot there is removed."""
    results, target = labelled(done, sweep), sweep_dir(sweep) / "sweep-comparison.png"
    if results:
        plot_sweep(summary_record(results, sweep, lasting(failures, done), selection), target)
    else:                                                # nothing finished: an earlier sweep's plot would stay
        target.unlink(missing_ok=True)


def lasting(failures: dict[str, list[str]], done: dict) -> dict[str, list[str]]:
    """The ``failures`` of runs that never succeeded (not among those ``done``)."""
    return {k: v for k, v in failures.items() if k not in done}


def cmd_sweep(args: argparse.Namespace) -> int:
    from spikecl.plugins import load_plugins

    check_cluster_options(args.address, args.num_cpus)   # before planning, so --dry-run refuses it too
    size = launched_world_size()
    if size:                                             # Ray's workers would inherit it: every run refused or hung
        raise ConfigError(f"WORLD_SIZE={size} (torchrun, or a leftover export): a sweep trains each run in one "
                          "process on Ray's workers; unset WORLD_SIZE")
    plugins = load_plugins(args.plugin)                  # before the sweep file: it may name the plugins' methods
    # the CPUs a run may have: --num-cpus, or a cluster's own (--address), take the place of the file's num_cpus
    cpus = [f"num_cpus={args.num_cpus}"] if args.num_cpus is not None else ["num_cpus=0"] if args.address else []
    sweep = load_sweep(args.sweep, [*args.overrides, *cpus])
    for path in final_paths(sweep) if sweep.config.select else ():
        check_place_for_file(path)                           # before the trials train
    if not args.no_plots:                                # the plots each stage draws, before any run
        if not args.dry_run:                             # which draws none
            require_plots()
        for folder in (sweep_dir(sweep), sweep_dir(sweep) / "final") if sweep.config.select else (sweep_dir(sweep),):
            check_place_for_file(folder / "sweep-comparison.png", "the sweep's comparison plot")
    if args.dry_run:
        return dry_run(sweep, args.overwrite)
    folder = sweep_dir(sweep)
    check_writable_folder(folder, "sweep output: folder")                   # named as such, before its lock
    with removed_if_empty_on_error([folder]), output_lock(folder / "sweep.h5", "give the sweep another name or "
                                                          "output_dir", "spikecl sweep"):   # one sweep at a time
        for path in sweep_files(folder):
            remove_temporaries(path)                    # what a killed sweep's writes of its own files left
        check_summary_kept(sweep, args.overwrite)        # before any run: a refusal changes nothing
        try:
            return run_sweep(args, sweep, plugins)
        finally:                                         # what the --overwrite did not replace: left unfinished
            end_marks([*(r.results for r in sweep.runs), *(final_paths(sweep) if sweep.config.select else ()),
                       *sweep_files(folder)])


def sweep_files(folder: Path) -> list[Path]:
    """The files a sweep writes itself in its ``folder`` (and its final stage's): summary, results, selection,
    comparison plot."""
    names = ("sweep.h5", "sweep-summary.txt", "selection.json", "sweep-comparison.png")
    return [where / name for where in (folder, folder / "final") for name in names]


def run_sweep(args: argparse.Namespace, sweep: Sweep, plugins) -> int:
    """The sweep's runs, then (selecting) its selection and final runs, each stage reported; the exit code."""
    try:                                                 # a TERM stops it as Ctrl-C does (spikecl.cli)
        finals = [*final_paths(sweep), sweep_dir(sweep) / "final" / "sweep.h5"] if sweep.config.select else []
        done, failures = execute_sweep(sweep, args.address, args.num_cpus, progress=not args.no_progress,
                                       plugins=plugins, overwrite=args.overwrite, replaced_too=finals)
        if sweep.runs:
            report_sweep(sweep, done, failures, plots=not args.no_plots)
        if not sweep.config.select:
            return 0 if len(done) == len(sweep.runs) else 1
        failed = [k for k in failures if k not in done]      # never chosen
        broken = [k for k in failed if not diverged(failures[k])]         # the command exits with 1
        selection = select_points(sweep, done, failed)
        if sweep.runs:
            record_choice(sweep, done, failures, selection, plots=not args.no_plots)
        print_selection(selection)
        broken += [m for m, choice in selection.items() if choice["point"] is None]   # no final runs: exit 1
        if args.overwrite:                               # marked with the trials, replaced by no run: removed
            drop_finals(sweep, [m for m, choice in selection.items() if choice["point"] is None])
        final = final_runs(sweep, selection)
        check_kept(final, args.overwrite)              # before selection.json changes: a refusal changes nothing
        write_selection(sweep, selection)
        done, failures = execute_sweep(final, args.address, args.num_cpus, progress=not args.no_progress,
                                       plugins=plugins, overwrite=args.overwrite)
    except KeyboardInterrupt:
        clear_interrupt()                                # said here: the command's wrapper has nothing to add
        print("spikecl: sweep interrupted; run the same command again to train only the missing runs",
              file=sys.stderr)
        return 130
    report_sweep(final, done, failures, plots=not args.no_plots)
    return 0 if len(done) == len(final.runs) and not broken else 1


def drop_finals(sweep: Sweep, methods: list[str]) -> None:
    """``--overwrite``: remove the final results that ``methods`` (now without a chosen point, so without final runs)
    kept from settings the sweep no longer plans, saying so; otherwise they would stay marked for a replacement that
    no run makes."""
    for path in final_paths(sweep):
        if any(path.name.startswith(f"{method}-seed") for method in methods) and path.exists():
            path.unlink()
            replacing(path).unlink(missing_ok=True)
            print(f"removed {path}: made with other settings, and its method has no chosen point now")


def diverged(errors: list[str]) -> bool:
    """Whether a trial's last attempt stopped because its training loss diverged (``NumericalError``)."""
    return errors[-1].startswith(f"{NumericalError.__name__}:")


def dry_run_state(run: SweepRun, overwrite: bool = False) -> str:
    """``complete``, ``to run``, ``to resume`` (from the checkpoint an unfinished run of these settings left),
    ``training now (PID n)`` (another process writes it now), ``to be replaced now (PID n)`` (an ``--overwrite``
    running now marked it), ``diverged`` (its training diverged with the planned settings before: not trained
    again), ``replaced`` (a damaged results file, or with ``overwrite`` another tool's file or one an unfinished
    ``--overwrite`` marked, trained again) or ``differs (<key>)``: a kept results file made with other settings or
    so marked (``differs (checkpoint: <key>)``: the checkpoint an unfinished run left; ``replaced (<key>)`` with
    ``overwrite``, which trains it again)."""
    if writer := live_writer(run.results):
        return f"training now (PID {writer})"               # by a sweep or run started before this one
    result = kept_result(run.results, overwrite) if exists(run.results, ConfigError) else None
    if result is None:
        key = checkpoint_setting(run)
        if not key and not run.results.exists() and kept_divergence(run) is not None:
            return "diverged"                               # with these settings: an outcome, not trained again
        resume = "to resume" if checkpoint_path(run.results).exists() else "to run  "
        if key:
            return f"{'replaced' if overwrite else 'differs'} (checkpoint: {key})"
        return "replaced" if run.results.exists() else resume
    if replacing(run.results).exists():
        if overwriting := live_pid(replacing(run.results)):
            return f"to be replaced now (PID {overwriting})"   # by a sweep --overwrite running now
        return "replaced" if overwrite else f"differs ({UNFINISHED})"
    key = changed_setting(run, result.config)
    return f"{'replaced' if overwrite else 'differs'} ({key})" if key else "complete"


def dry_run(sweep: Sweep, overwrite: bool = False) -> int:
    """``--dry-run``: every run and its state; for a selecting sweep whose trials are all kept (complete, made with
    the planned settings), the final runs of the points they choose, else where those will go."""
    if writer := live_writer(sweep_dir(sweep) / "sweep.h5"):
        print(f"note: a sweep (PID {writer}) is running in {sweep_dir(sweep)} now; its runs are listed as their "
              "files stand, and this sweep would wait for nothing: it is refused until that one ends")
    states = [dry_run_state(run, overwrite) for run in sweep.runs]
    check_datasets(run_config(run) for run, state in zip(sweep.runs, states) if state != "complete")
    to_train = [run for run, state in zip(sweep.runs, states) if state != "complete"]
    if to_train:                                          # a complete sweep's dry run writes nothing anywhere
        check_output_folders(sweep, to_train)
    for run, state in zip(sweep.runs, states):
        print(f"{state}  {run.id}  -> {run.results}")
    differing = sum(state.startswith("differs") for state in states)
    if differing:
        print(f"note: the sweep would refuse {differing} run(s) made with other settings (or left by an unfinished "
              "--overwrite); --overwrite trains them again")
    if not sweep.config.select:
        return 0
    if any(state not in ("complete", "diverged") for state in states):
        print(f"then every method at its chosen point on the test split, seeds {sweep.final_seeds}, into "
              f"{sweep_dir(sweep) / 'final'}")
        return 0
    selection = select_points(sweep, {run.id: read_continual(run.results) for run, state in zip(sweep.runs, states)
                                      if state == "complete"},
                              [run.id for run, state in zip(sweep.runs, states) if state == "diverged"])
    print_selection(selection)
    for run in final_runs(sweep, selection).runs:
        print(f"{dry_run_state(run, overwrite)}  {run.id} @ {run.point}  -> {run.results}")
    return 0


def check_kept(sweep: Sweep, overwrite: bool) -> None:
    """A one-line :class:`ConfigError` when a kept results file or checkpoint of ``sweep`` was made with other
    settings than it plans, or an unfinished ``--overwrite`` marked it, unless ``overwrite`` (then
    :func:`execute_sweep` trains it again)."""
    if not overwrite:
        read = {r.id: kept_result(r.results, False) for r in sweep.runs if exists(r.results, ConfigError)}
        kept = {key: result for key, result in read.items() if result is not None}      # damaged: trained again
        other = made_otherwise(sweep, kept)
        refuse_unfinished(sweep, unfinished_runs(sweep, kept, other))
        refuse_other_settings(sweep, other, stale_checkpoints(sweep, kept))


def check_summary_kept(sweep: Sweep, overwrite: bool) -> None:
    """A one-line :class:`ConfigError`, unless ``overwrite``, where the sweep's ``sweep.h5`` summarises results
    files that are still there and that ``sweep`` does not plan (run again with fewer methods, seeds or points):
    its summary, plot and selection, rewritten, would leave them out. A summary that cannot be read, or predates
    recording its runs, is replaced as before."""
    from spikecl.errors import ResultsError
    from spikecl.io import read_run

    folder = sweep_dir(sweep)
    if overwrite or not (folder / "sweep.h5").is_file():
        return
    try:
        recorded = json.loads(read_run(folder / "sweep.h5", "sweep").attrs.get("runs", "{}"))
    except (ResultsError, ValueError):
        return
    planned = {(folder / run.results).resolve() for run in sweep.runs}
    dropped = sorted(rel for rel in recorded if (folder / rel).resolve() not in planned and (folder / rel).is_file())
    if dropped:
        more = f" and {len(dropped) - 1} more" if len(dropped) > 1 else ""
        raise ConfigError(f"{folder / 'sweep.h5'} summarises runs this sweep does not plan ({folder / dropped[0]}"
                          f"{more}; fewer methods, seeds or points?): its summary, plot and selection would leave "
                          "them out; run it as it was, give this one another name (--set name=...), or pass "
                          "--overwrite to summarise this sweep's runs alone (the others' files stay)")


def print_selection(selection: dict) -> None:
    """One line per method: its chosen point, the settings that concern it and its validation scores."""
    for method, choice in selection.items():
        if choice["point"] is None:
            print(f"selected no point of {method}: every one of its {len(choice['candidates'])} candidate(s) failed "
                  "a validation trial; it gets no final runs")
            continue
        scores = choice["candidates"][choice["point"]]
        defined = scores["bwt"] is not None and math.isfinite(scores["bwt"])             # one task: no BWT
        bwt = f", BWT {half_up(scores['bwt']):+.1f}" if defined else ""          # ties as the sweep's table rounds them
        measured = (f"validation ACC {half_up(scores['acc']):.1f}{bwt}" if scores["acc"] is not None
                    else "the only candidate")
        settings = settings_text(choice["settings"]) if choice["settings"] else "the base settings"
        floor = "" if choice.get("bwt_floor_met", True) else "; no candidate reached min_bwt: the best ACC of all"
        count = f", {len(choice['candidates'])} candidate(s)" if scores["acc"] is not None else ""
        print(f"selected {method} @ {choice['point']}: {settings} ({measured}{count}{floor})")


def write_selection(sweep: Sweep, selection: dict) -> None:
    """``selection.json``: every method's chosen point (:func:`select_points`), with the selection's rule."""
    def strict(value):                                    # NaN (a one-task stream's BWT) as JSON's null
        if isinstance(value, dict):
            return {k: strict(v) for k, v in value.items()}
        return None if isinstance(value, float) and not math.isfinite(value) else value

    text = json.dumps({"select": sweep.config.select, "min_bwt": sweep.config.min_bwt,
                       "select_seeds": sorted({run.seed for run in sweep.runs}),
                       "split": "validation", "methods": strict(selection)}, indent=2, allow_nan=False)
    atomic_write(sweep_dir(sweep) / "selection.json", lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"),
                 overwrite=True)


def add_command(subparsers) -> None:
    """Register ``spikecl sweep``."""
    p = subparsers.add_parser(
        "sweep", help="run a grid of experiments (methods x seeds x hyperparameters) on Ray",
        description="Run every (point, method, seed) of a sweep file as a Ray task (local instance by default), "
                    "retry failed runs, skip runs whose results exist (made with the same settings), and print "
                    "mean ± std per method and point.")
    p.add_argument("sweep", type=user_path, help="sweep file (TOML) naming a base experiment file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a sweep-file value, e.g. --set max_retries=0 (repeatable)")
    p.add_argument("--address", help="Ray cluster to use (e.g. auto or ray://head:10001); default: start a local one")
    p.add_argument("--num-cpus", type=bounded(int, 0, 1 << 12, what="a number of CPUs"),
                   help="CPUs of the local Ray instance, 0 = all (default: the sweep's num_cpus; not with --address)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                   help="import this Python file or module first, in this process and in every Ray worker, to sweep "
                        "the methods and datasets it registers (repeatable; see spikecl.plugins)")
    p.add_argument("--overwrite", action="store_true",
                   help="train again the runs whose kept results file (or an unfinished run's checkpoint) was made "
                        "with other settings than the sweep now plans (a changed [set] value or base file, or a final "
                        "run whose chosen point changed), replacing it; without it such a file is an error")
    p.add_argument("--dry-run", action="store_true", help="list the runs and whether they are complete; run nothing")
    p.add_argument("--no-progress", action="store_true",
                   help="hide the progress bar (drawn only when stderr is a terminal)")
    p.add_argument("--no-plots", action="store_true", help="skip the comparison plot")
    p.set_defaults(handler=cmd_sweep)
