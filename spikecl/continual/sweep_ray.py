"""``spikecl sweep SWEEP.toml``: the runs of a sweep (:mod:`spikecl.continual.sweep`) as Ray tasks.

Runs whose results file exists are skipped; the others are submitted at once, each reserving ``cpus_per_run`` Ray
CPUs, and a run that fails is submitted again up to ``max_retries`` times (a retry resumes from the run's last
checkpoint). The driver shows a progress bar over runs, reports every failure, and ends with the comparison table
(mean ± std over seeds per method and point), written with a comparison plot to ``<output_dir>/<name>/``.
With ``select``, the trials are validation runs; then each method's chosen point (``selection.json``) runs on the
test split into ``<name>/final/``, reported the same way.

Ray: a local instance (``num_cpus`` from the sweep file or ``--num-cpus``, default all cores) unless ``--address``
names a cluster (``auto``, ``ray://head:10001``); on a cluster every node needs spikecl installed and the results
folder on a shared file system.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

import spikecl
from spikecl.continual.sweep import (Sweep, SweepRun, final_runs, labelled, load_sweep, select_points,
                                     summary_text, sweep_dir)
from spikecl.errors import require
from spikecl.io import RunResult, atomic_write, read_results


class InjectedFailure(RuntimeError):
    """Raised by a run on purpose (sweep option ``fail_attempts``) to exercise retries."""


def train_run(raw: dict, attempt: int, fail_attempts: int, threads: int) -> RunResult:
    """Body of one Ray task: train one (method, seed) experiment ``raw`` to its results file (resuming from its
    checkpoint if an earlier attempt left one) and return its results."""
    import torch

    from spikecl.config import experiment_from_dict
    from spikecl.continual.runner import run_experiment

    if attempt < fail_attempts:
        raise InjectedFailure(f"injected failure on attempt {attempt + 1} (sweep option fail_attempts)")
    torch.set_num_threads(threads)
    [result] = run_experiment(experiment_from_dict(raw), resume=True, progress_bar=False, log=lambda _: None)
    return result


def start_ray(address: str | None = None, num_cpus: int = 0):
    """Connect to the Ray cluster at ``address``, or start a local instance with ``num_cpus`` CPUs (0: all).

    Returns ``(ray, started)``; ``started`` is False when Ray was already initialised by the caller. Local workers
    import this copy of spikecl (its folder is put on their PYTHONPATH) and run single-threaded BLAS.
    """
    ray = require("ray", "ray")
    if ray.is_initialized():
        return ray, False
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
               "logging_level": "WARNING"}
    if address:
        ray.init(address=address, **options)
    else:
        source = str(Path(spikecl.__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(num_cpus=num_cpus or os.cpu_count(),
                 runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}}, **options)
    return ray, True


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of the exception a Ray task raised (its first line)."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"


def execute_sweep(sweep: Sweep, address: str | None = None, num_cpus: int | None = None, progress: bool = True,
                  log: Callable[[str], None] = print) -> tuple[dict[str, RunResult], dict[str, list[str]]]:
    """Run the missing runs of ``sweep`` on Ray. Returns ``({run id: results}, {run id: error of each failed
    attempt})``; a run absent from the first dict failed ``max_retries + 1`` times."""
    from tqdm.auto import tqdm

    cfg = sweep.config
    done = {r.id: read_results(r.results) for r in sweep.runs if r.results.exists()}
    todo = [r for r in sweep.runs if r.id not in done]
    log(f"sweep {sweep.name}: {len(sweep.runs)} runs, {len(done)} complete (kept), {len(todo)} to run")
    failures: dict[str, list[str]] = {}
    if not todo:
        return done, failures
    ray, started = start_ray(address, cfg.num_cpus if num_cpus is None else num_cpus)
    remote = ray.remote(num_cpus=cfg.cpus_per_run, max_retries=0)(train_run)
    threads = max(1, int(cfg.cpus_per_run))

    def submit(run: SweepRun, attempt: int):
        return remote.remote(run.raw, attempt, int(cfg.fail_attempts.get(run.id, 0)), threads)

    pending = {submit(run, 0): (run, 0) for run in todo}
    bar = tqdm(total=len(todo), unit="run", desc=f"sweep {sweep.name}", disable=not progress, dynamic_ncols=True)
    say = tqdm.write if progress else log
    try:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            run, attempt = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                failures.setdefault(run.id, []).append(_one_line(exc))
                if attempt < cfg.max_retries:
                    say(f"retry  {run.id} (attempt {attempt + 2} of {cfg.max_retries + 1}): {_one_line(exc)}")
                    pending[submit(run, attempt + 1)] = (run, attempt + 1)
                    continue
                say(f"FAILED {run.id} after {attempt + 1} attempt(s): {_one_line(exc)}")
            else:
                done[run.id] = result
                say(f"done   {run.id}: ACC {100 * result.metrics['acc']:.1f}%  BWT {100 * result.metrics['bwt']:+.1f}"
                    + (f"  (attempt {attempt + 1})" if attempt else ""))
            bar.update()
            bar.set_postfix(failed=sum(1 for r in failures if r not in done and r not in _ids(pending)))
    finally:
        bar.close()
        if started:
            ray.shutdown()
    return done, failures


def _ids(pending: dict) -> set[str]:
    return {run.id for run, _ in pending.values()}


def report_sweep(sweep: Sweep, done: dict[str, RunResult], failures: dict[str, list[str]],
                 plots: bool = True) -> str:
    """Print and write (``sweep-summary.txt``, ``sweep-comparison.png`` in the sweep's folder) the comparison
    table; returns the text. Runs that failed at first and then succeeded are listed as recovered."""
    results = labelled(done, sweep)
    final = {k: v for k, v in failures.items() if k not in done}
    text = summary_text(results, sweep, final)
    recovered = [f"recovered {k} after {len(v)} failed attempt(s): {v[-1]}" for k, v in failures.items() if k in done]
    if recovered:
        text += "\n" + "\n".join(recovered)
    out = sweep_dir(sweep)
    atomic_write(out / "sweep-summary.txt", lambda tmp: tmp.write_text(text + "\n"), overwrite=True)
    if plots and results:
        from spikecl import plots as figures
        from spikecl.report import method_summary

        summary = {m: {k: s[k] for k in ("acc", "bwt") if k in s} for m, s in method_summary(results).items()}
        figures.plot_method_comparison(summary, out / "sweep-comparison.png")
    print(text)
    return text


def cmd_sweep(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.sweep, args.overrides)
    if args.dry_run:
        for run in sweep.runs:
            print(f"{'complete' if run.results.exists() else 'to run  '}  {run.id}  -> {run.results}")
        if sweep.config.select:
            print(f"then every method at its chosen point on the test split, seeds {sweep.final_seeds}, into "
                  f"{sweep_dir(sweep) / 'final'}")
        return 0
    try:
        done, failures = execute_sweep(sweep, args.address, args.num_cpus, progress=not args.no_progress)
        if sweep.runs:
            report_sweep(sweep, done, failures, plots=not args.no_plots)
        if not sweep.config.select:
            return 0 if len(done) == len(sweep.runs) else 1
        final = final_runs(sweep, write_selection(sweep, done, failures))
        done, failures = execute_sweep(final, args.address, args.num_cpus, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("spikecl: sweep interrupted; run the same command again to train only the missing runs",
              file=sys.stderr)
        return 130
    report_sweep(final, done, failures, plots=not args.no_plots)
    return 0 if len(done) == len(final.runs) else 1


def write_selection(sweep: Sweep, done: dict[str, RunResult], failures: dict[str, list[str]]) -> dict:
    """Choose every method's point on its validation trials (a point whose trial failed, e.g. diverged, is not
    chosen), print the choice and write ``selection.json``."""
    selection = select_points(sweep, done, [k for k in failures if k not in done])
    for method, choice in selection.items():
        scores = choice["candidates"][choice["point"]]
        measured = (f"validation ACC {scores['acc']:.1f}, BWT {scores['bwt']:+.1f}" if scores["acc"] is not None
                    else "the only candidate")
        print(f"selected {method} @ {choice['point']} ({measured}, {len(choice['candidates'])} candidate(s))")
    text = json.dumps({"select": sweep.config.select, "min_bwt": sweep.config.min_bwt,
                       "split": "validation", "methods": selection}, indent=2)
    atomic_write(sweep_dir(sweep) / "selection.json", lambda tmp: tmp.write_text(text + "\n"), overwrite=True)
    return selection


def add_command(subparsers) -> None:
    """Register ``spikecl sweep``."""
    p = subparsers.add_parser(
        "sweep", help="run a grid of experiments (methods x seeds x hyperparameters) on Ray",
        description="Run every (point, method, seed) of a sweep file as a Ray task (local instance by default), "
                    "retry failed runs, skip runs whose results exist, and print mean ± std per method and point.")
    p.add_argument("sweep", type=Path, help="sweep file (TOML) naming a base experiment file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a sweep-file value, e.g. --set max_retries=0 (repeatable)")
    p.add_argument("--address", help="Ray cluster to use (e.g. auto or ray://head:10001); default: start a local one")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: the sweep's num_cpus)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and whether they are complete; run nothing")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the comparison plot")
    p.set_defaults(handler=cmd_sweep)
