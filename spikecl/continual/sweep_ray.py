"""The runs of a sweep (:mod:`spikecl.continual.sweep`) as Ray tasks (the command is :mod:`spikecl.commands.sweep`).

Runs whose results file exists are skipped, unless it was made with other settings than the sweep now plans (a
changed ``[set]`` value or base file, or a final run whose chosen point changed): that is a one-line error, or
with ``overwrite`` the run is trained again, its old file kept (marked ``.replacing``) until the new one replaces it;
so is a checkpoint an unfinished run left (with ``overwrite`` its run discards it). The others are submitted at
once, each reserving ``cpus_per_run`` Ray CPUs, and a run that crashes is submitted again up to ``max_retries`` times
(a retry resumes from the run's last checkpoint; one failing on a spikecl error, its settings' or files', is not).
The driver shows a progress bar over runs and reports every failure.

Ray: a local instance (``num_cpus`` from the sweep file or ``--num-cpus``, default all cores) unless ``--address``
names a cluster (``auto``, ``ray://head:10001``); on a cluster every node needs spikecl installed, the results
folder on a shared file system, and any plugin file at the same path.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import spikecl
from spikecl.atomic import check_name_fits, check_place_for_file, check_writable_folder, remove_stale_lock
from spikecl.config import MAX_THREADS
from spikecl.continual import metrics
from spikecl.continual.results import ContinualResult, read_continual
from spikecl.continual.sweep import (Sweep, SweepConfig, SweepRun, changed_setting, final_paths, made_otherwise,
                                     refuse_other_settings, run_config, stale_checkpoints, sweep_dir)
from spikecl.errors import (ConfigError, ForeignFileError, NumericalError, ResultsError, SpikeCLError,
                            raise_if_interrupted, require)
from spikecl.experiment_kind import check_datasets, mark_replacing
from spikecl.paths import exists
from spikecl.progress import progress_bar, write_line
from spikecl.remedies import command_line, on_command_line, option
from spikecl.run_files import (DIVERGED_EXTRA, divergence_file, process_mark, read_divergence, replacing,
                               write_divergence)


class PluginCrash(RuntimeError):
    """A run's failure in code of the user's own (a plugin's method): a crash, tried again, not an outcome."""


def train_run(raw: dict, threads: int, plugins: tuple[str, ...] = (), overwrite: bool = False,
              driver: str = "", flags: bool = False) -> ContinualResult:
    """Body of one Ray task: import ``plugins`` (:mod:`spikecl.plugins`; the worker is another process), then train
    one (method, seed) experiment ``raw`` to its results file (resuming from its checkpoint if an earlier attempt
    left one; with ``overwrite``, as ``spikecl run --resume --overwrite``, starting afresh from one made with other
    settings) and return its results. ``driver``: the sweep driver's :func:`~spikecl.run_files.process_mark`, whose
    ``--overwrite`` marks are this run's own to replace; ``flags``: its errors' remedies name command-line flags
    (the driver's did: :func:`spikecl.remedies.on_command_line`)."""
    import torch

    from spikecl.continual.experiment import KIND
    from spikecl.experiment_kind import RAISED_IN, RunsFailed, run_plan
    from spikecl.plugins import load_plugins
    from spikecl.run_files import OWN_MARKS

    load_plugins(plugins)
    OWN_MARKS.add(driver)
    torch.set_num_threads(threads)
    try:
        with command_line(flags):
            [path], _ = run_plan(KIND, KIND.load(raw), resume=True, overwrite=overwrite, progress=False,
                                 log=lambda _: None)
    except RunsFailed as exc:                    # the one run diverged (a sweep outcome), or a plugin's code crashed
        error = exc.failed[0][1]
        raise (PluginCrash if RAISED_IN in error else NumericalError)(error) from None
    return read_continual(path)


def check_cluster_options(address: str | None, num_cpus: int | None) -> None:
    """Refuse (one-line :class:`ConfigError`) CPUs for a local instance given beside a cluster's ``address``."""
    if address and num_cpus:
        raise ConfigError(f"{option('--num-cpus')} {num_cpus} sizes a local Ray instance; the cluster at "
                          f"{option('--address')} {address} has its own CPUs: drop one of the two")


def start_ray(address: str | None = None, num_cpus: int = 0):
    """Connect to the Ray cluster at ``address``, or start a local instance with ``num_cpus`` CPUs (0: all).

    Returns ``(ray, started)``; ``started`` is False when Ray was already initialised by the caller. Local workers
    import this copy of spikecl (its folder is put on their PYTHONPATH) and run single-threaded BLAS.
    """
    hook = sys.excepthook                            # importing Ray replaces it
    ray = require("ray", "ray")
    if ray.is_initialized():
        return ray, False
    _BEFORE_RAY["excepthook"] = hook
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
               "logging_level": "WARNING"}
    check_cluster_options(address, num_cpus)
    _ENVIRONMENT_BEFORE_RAY.clear()
    _ENVIRONMENT_BEFORE_RAY.update(os.environ)
    try:
        with _python_sigterm_kept(), _random_state_kept():
            _init(ray, address, num_cpus, options)
    except BaseException as exc:                     # what a start that failed half-way set or started goes too
        interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
        started = _ray_processes() if interrupted else []    # before shutdown: agents outlive a raylet that is gone
        with contextlib.suppress(Exception), _random_state_kept():
            ray.shutdown()
        for pid in started:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        _restore_environment()
        if isinstance(exc, SystemExit):              # Ray's SIGTERM handler, set while ray.init runs: as Ctrl-C
            raise KeyboardInterrupt from None
        raise
    return ray, True


def _ray_processes() -> list[int]:
    """Ray's processes (raylet, GCS, agents, workers) that this one started, read from ``/proc`` (none where there is
    none): its descendants whose command line is Ray's, and every process whose command line names a session folder
    of this process (``session_<time>_<this PID>``: agents whose raylet has gone are no one's descendants)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text(encoding="utf-8")
            children.setdefault(int(stat[stat.rfind(")") + 2:].split()[1]), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    descendants, todo = set(), [os.getpid()]
    while todo:
        found = children.get(todo.pop(), [])
        descendants.update(found)
        todo += found
    session = re.compile(rb"session_[0-9_-]+_%d(?![0-9])" % os.getpid())
    processes = {pid for pids in children.values() for pid in pids} - {os.getpid()}
    return sorted(pid for pid in processes
                  if session.search(command := _command_line(pid)) or pid in descendants and _is_ray(command))


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _is_ray(command: bytes) -> bool:
    return command.startswith(b"ray::") or b"/ray/" in command


#: the process environment before :func:`start_ray` started Ray, which ``ray.init`` extends (``RAY_*``,
#: ``PYTHONBREAKPOINT``) and :func:`stop_ray` restores
_ENVIRONMENT_BEFORE_RAY: dict[str, str] = {}
#: what else :func:`start_ray` found before Ray changed it (``excepthook``)
_BEFORE_RAY: dict[str, object] = {}


def stop_ray(ray) -> None:
    """Shut down the Ray instance :func:`start_ray` started and restore the environment variables it set and the
    exception hook Ray's import replaced."""
    with _random_state_kept():                       # ray.shutdown draws from it too
        ray.shutdown()
    _restore_environment()


def _restore_environment() -> None:
    """The environment and exception hook as :func:`start_ray` found them (nothing to do when it started no
    instance)."""
    sys.excepthook = _BEFORE_RAY.pop("excepthook", sys.excepthook)
    if _ENVIRONMENT_BEFORE_RAY:
        for key in os.environ.keys() - _ENVIRONMENT_BEFORE_RAY.keys():
            del os.environ[key]
        os.environ.update(_ENVIRONMENT_BEFORE_RAY)
        _ENVIRONMENT_BEFORE_RAY.clear()


@contextlib.contextmanager
def _random_state_kept():
    """Python's global ``random`` as before the block: ``ray.init`` and ``ray.shutdown`` draw from it, so a caller's
    sequence after a sweep would depend on whether the sweep started Ray."""
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


@contextlib.contextmanager
def _python_sigterm_kept():
    """Restore the SIGTERM handler ``ray.init`` replaces with its own (which dumps and kills the driver), so that a
    sweep's handler still stops it cleanly and a Python caller keeps the default (one set outside Python, which
    :func:`signal.getsignal` reports as None, cannot be put back)."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)


def _init(ray, address: str | None, num_cpus: int, options: dict) -> None:
    """``ray.init``: join the cluster at ``address`` or start a local instance of this process's own, even where a
    cluster runs on this machine (one-line ConfigError otherwise)."""
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **options)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
            if "ray[client]" in str(exc):                  # a ray:// address needs the client's packages
                raise ConfigError(f"{option('--address')} {address}: Ray's client is not installed; install it with "
                                  "pip install 'ray[client]' (or join from the cluster's head node)") from None
            raise ConfigError(f"{option('--address')} {address}: no Ray cluster to join ({_one_line(exc)})") from None
    else:
        source = str(Path(spikecl.__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
        try:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(),   # not a cluster `ray start` left running
                     runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}}, **options)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError, OSError) as exc:
            raise ConfigError(f"a local Ray instance with {num_cpus or os.cpu_count()} CPUs did not start "
                              f"({_one_line(exc)})") from None


#: seconds to wait for a TCP connection to a cluster's ``host:port`` before refusing the address
CONNECT_TIMEOUT_S = 5.0


def _check_reachable(address: str) -> None:
    """A one-line ConfigError when nothing accepts a connection at a ``host:port`` address (``ray.init`` would
    retry for ever, deaf to SIGTERM); ``auto`` and ``ray://`` addresses are left to Ray."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or type(exc).__name__
        raise ConfigError(f"{option('--address')} {address}: no Ray cluster to join (nothing accepts a connection "
                          f"there: {reason})") from None


def _settled(exc: BaseException) -> bool:
    """Whether a Ray task failed on a problem of its settings or files (a :class:`SpikeCLError`: a diverged loss, a
    missing dataset, a config a plugin refuses), which another attempt would meet again."""
    return isinstance(getattr(exc, "cause", None) or exc, SpikeCLError)


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of the exception a Ray task raised (its first line)."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"


def kept_and_missing(sweep: Sweep, overwrite: bool,
                     log: Callable[[str], None]) -> tuple[dict[str, ContinualResult], list[SweepRun]]:
    """({run id: results} of the runs already complete, the runs still to train), said in one line by ``log``; a
    run made with other settings is a ConfigError, or with ``overwrite`` it is to train (its files are replaced as
    its new ones are written, not before).
    A damaged results file is trained again (as ``spikecl run --resume`` does); a foreign one is a ConfigError
    unless ``overwrite``; so is a folder the runs to train, or the summary, could not be written in."""
    results = {r.id: kept_result(r.results, overwrite) for r in sweep.runs if exists(r.results, ConfigError)}
    done = {key: result for key, result in results.items() if result is not None}
    damaged = len(results) - len(done)
    other, restart = made_otherwise(sweep, done), stale_checkpoints(sweep, done)
    unfinished = unfinished_runs(sweep, done, other)
    if not overwrite:
        refuse_unfinished(sweep, unfinished)
        refuse_other_settings(sweep, other, restart)
    stale = {**unfinished, **other}
    check_datasets(run_config(r) for r in sweep.runs if r.id not in done or r.id in stale)   # before any change
    check_output_folders(sweep, [r for r in sweep.runs if r.id not in done or r.id in stale])   # before Ray starts
    for run_id in stale:                             # --overwrite: trained again; each old file stays (marked
        del done[run_id]                             # .replacing) until its new one replaces it (run_plan)
    diverged = {r.id for r in sweep.runs if r.id not in done and not exists(r.results, ConfigError)
                and kept_divergence(r) is not None}
    todo = [r for r in sweep.runs if r.id not in done and r.id not in diverged]
    log(f"sweep {sweep.name}: {len(sweep.runs)} runs, {len(done)} complete (kept), {len(todo)} to run"
        + (f", {len(diverged)} diverged with these settings before (not trained again)" if diverged else "")
        + (f" ({len(other)} made with other settings, trained again)" if other else "")
        + (f" ({len(unfinished)} left by an unfinished --overwrite, trained again)" if unfinished else "")
        + (f" ({damaged} damaged or not readable, trained again)" if damaged else "")
        + (f" ({len(restart)} checkpoint(s) made with other settings, started afresh)" if restart else ""))
    return done, todo


#: the state of a kept results file an interrupted or failed ``--overwrite`` marked for replacement
UNFINISHED = "an unfinished --overwrite"


def record_divergence(run: SweepRun, error: str) -> None:
    """Keep the outcome of ``run`` whose training diverged (its config and error) beside its results path: with the
    same settings it would diverge again, so a later sweep counts it as failed instead of training it again."""
    write_divergence(run.results, error, config=run_config(run))


def kept_divergence(run: SweepRun) -> str | None:
    """The error of ``run``'s recorded divergence when it was made with the settings the sweep now plans, else None
    (none recorded, a damaged record (:func:`~spikecl.run_files.read_divergence`) or other settings: the run is to
    train)."""
    record = read_divergence(run.results)
    config = record.get("config") if record is not None else None
    if not isinstance(config, dict) or changed_setting(run, config) is not None:
        return None
    return record["error"]


def unfinished_runs(sweep: Sweep, kept: dict[str, ContinualResult], other: dict[str, str]) -> dict[str, str]:
    """{run id: :data:`UNFINISHED`} of the ``kept`` results files, made with the planned settings (not in
    ``other``), that an ``--overwrite`` which did not finish marked for replacement."""
    return {r.id: UNFINISHED for r in sweep.runs
            if r.id in kept and r.id not in other and replacing(r.results).exists()}


def refuse_unfinished(sweep: Sweep, unfinished: dict[str, str]) -> None:
    """A one-line :class:`ConfigError` naming the first results file of ``unfinished`` run ids: an ``--overwrite``
    that did not finish marked it (``<file>.replacing``) and only ``--overwrite`` trains it again, as ``spikecl run
    --resume`` asks."""
    if unfinished:
        run = next(r for r in sweep.runs if r.id in unfinished)
        more = f" (and {len(unfinished) - 1} more)" if len(unfinished) > 1 else ""
        raise ConfigError(f"{run.results} is still to be replaced by an --overwrite that did not finish (interrupted "
                          f"or failed){more}; pass {option('--overwrite')} to finish replacing it")


def check_output_folders(sweep: Sweep, runs: Sequence[SweepRun]) -> None:
    """One-line :class:`ConfigError` where the folder of ``runs``' results files, of the sweep's summary or (a
    selecting sweep) of its final runs is a file or cannot be written (a missing one is fine where it can be made)."""
    folders = {sweep_dir(sweep), *(run.results.parent for run in runs)}
    if sweep.config.select:
        folders.add(sweep_dir(sweep) / "final")
    for folder in sorted(folders):
        check_writable_folder(folder, "sweep output: folder")
    finals = [path for path in final_paths(sweep) if not path.exists()] if sweep.config.select else []
    for path in [*(run.results for run in runs), *finals]:    # the checkpoint's name (.ckpt) is the results'
        check_name_fits(path, "a sweep run's results file", DIVERGED_EXTRA)   # + 2, within the .diverged record's


def mark_replaced(results: list[Path], summary: Path) -> None:
    """Mark (``<file>.replacing``) the existing results files a ``sweep --overwrite`` is to train again and the
    sweep's summary, before any run starts: until each is rewritten, ``spikecl report`` does not read it as
    current."""
    for path in [*results, summary]:
        if exists(path, ConfigError):
            mark_replacing(path)


def kept_result(path: Path, overwrite: bool) -> ContinualResult | None:
    """The results in ``path``, or None for a damaged file (trained again); a file that is not a continual results
    file of this spikecl (:class:`ForeignFileError`) is a ConfigError unless ``overwrite`` (then None), a folder
    always one."""
    check_place_for_file(path)
    try:
        return read_continual(path)
    except ForeignFileError as exc:
        if not overwrite:
            raise ConfigError(f"{exc}; pass {option('--overwrite')} to replace it, or choose another output "
                              "folder") from None
    except ResultsError:
        pass
    return None


def execute_sweep(sweep: Sweep, address: str | None = None, num_cpus: int | None = None, progress: bool = True,
                  log: Callable[[str], None] = print, plugins: Sequence[str] = (), overwrite: bool = False,
                  replaced_too: Sequence[Path] = ()) -> tuple[dict[str, ContinualResult], dict[str, list[str]]]:
    """Run the missing runs of ``sweep`` on Ray, each worker importing ``plugins`` first (as
    :func:`spikecl.plugins.load_plugins` returns them); a kept results file or checkpoint made with other settings
    is a :class:`ConfigError`, or with ``overwrite`` it is removed (a checkpoint: discarded by its run) and its run
    trained again, and the existing files of ``replaced_too`` (what depends on these runs: a selecting sweep's final
    runs) are marked for replacement with them (not where the runs to train replace no kept file: a new point, a
    missing run). Returns ``({run id: results}, {run id: error of each failed
    attempt})``; a run absent from the first dict failed ``max_retries + 1`` times (or diverged with the same
    settings before: its recorded error)."""
    cfg = sweep.config
    done, todo = kept_and_missing(sweep, overwrite, log)
    to_train = {r.id for r in todo}
    failures = {r.id: [f"{kept_divergence(r)} (diverged with these settings before, recorded in "
                       f"{divergence_file(r.results).name}: not trained again)"]
                for r in sweep.runs if r.id not in done and r.id not in to_train}
    if not todo:
        return done, failures
    raise_if_interrupted()                           # a stop swallowed since the last stage: no new stage starts
    # the file's num_cpus sizes a local instance only; beside --address just an explicit --num-cpus is refused
    ray, started = start_ray(address, (0 if address else cfg.num_cpus) if num_cpus is None else num_cpus)
    threads = _check_cpus(ray, cfg, started)
    if overwrite:                                    # what depends on the runs, only where a kept one is replaced
        replaced = [r.results for r in todo if exists(r.results, ConfigError)]
        mark_replaced(replaced + (list(replaced_too) if replaced else []), sweep_dir(sweep) / "sweep.h5")
    remote = ray.remote(num_cpus=cfg.cpus_per_run, max_retries=0)(train_run)

    driver = process_mark()                          # its marks are the runs' own to replace

    def submit(run: SweepRun):
        return remote.remote(run.raw, threads, tuple(plugins), overwrite, driver, on_command_line())

    pending = {submit(run): (run, 0) for run in todo}
    bar = progress_bar(len(todo), "run", f"sweep {sweep.name}", enabled=progress)
    say = write_line if progress else log
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_ROUND_S)
            raise_if_interrupted()                   # a stop whose KeyboardInterrupt CPython swallowed
            if not ready:
                continue
            run, attempt = pending.pop(ready[0])
            if _handle_result(ray, ready[0], run, attempt, cfg.max_retries, done, failures, say):
                pending[submit(run)] = (run, attempt + 1)
                continue
            bar.update()
            bar.set_postfix(failed=sum(1 for r in failures if r not in done and r not in _ids(pending)))
    finally:
        bar.close()
        if pending:                                  # interrupted: stop the runs still queued or training
            _stop_pending(ray, pending)
        if started:
            stop_ray(ray)
    return done, failures


def _check_cpus(ray, cfg: SweepConfig, started: bool) -> int:
    """The torch threads each run gets (``cpus_per_run``, at least 1); a one-line :class:`ConfigError`, with Ray
    stopped where the sweep ``started`` it, where ``cpus_per_run`` is more than the CPUs of the Ray cluster, or gives
    a run of a local instance more than :data:`~spikecl.config.MAX_THREADS` threads."""
    cpus = ray.cluster_resources().get("CPU", 0)
    threads = max(1, int(cfg.cpus_per_run))
    too_many = (f"is more than the {cpus:g} CPUs of the Ray cluster: no run could start" if cfg.cpus_per_run > cpus
                else f"gives each run {threads} threads, more than {MAX_THREADS} (4 per CPU of this machine)"
                if started and threads > MAX_THREADS else None)
    if too_many:
        if started:
            stop_ray(ray)
        raise ConfigError(f"cpus_per_run = {cfg.cpus_per_run:g} {too_many}")
    return threads


def _handle_result(ray, ref, run: SweepRun, attempt: int, max_retries: int, done: dict[str, ContinualResult],
                   failures: dict[str, list[str]], say: Callable[[str], None]) -> bool:
    """Take in the outcome of the finished task ``ref``, attempt ``attempt`` (0: the first) of ``run``, saying it:
    its results into ``done``, or its error into ``failures`` (a diverged run's also kept beside its results path,
    :func:`record_divergence`). Returns whether to submit ``run`` again (a crash with attempts left)."""
    try:
        result = ray.get(ref)
    except ray.exceptions.RayError as exc:
        failures.setdefault(run.id, []).append(_one_line(exc))
        diverged = failures[run.id][-1].startswith(f"{NumericalError.__name__}:")  # an outcome of its settings
        if attempt < max_retries and not _settled(exc):       # a worker lost, a crash: worth another try
            say(f"retry  {run.id} (attempt {attempt + 2} of {max_retries + 1}): {_one_line(exc)}")
            return True
        say(f"FAILED {run.id} after {attempt + 1} attempt(s): {_one_line(exc)}"
            + (" (not tried again: the same settings and files fail alike)"
               if _settled(exc) and attempt < max_retries and not diverged else ""))
        if diverged:
            record_divergence(run, failures[run.id][-1])
    else:
        done[run.id] = result
        divergence_file(run.results).unlink(missing_ok=True)       # diverged with other settings before
        say(f"done   {run.id}: {metrics.headline(result.metrics)}" + (f"  (attempt {attempt + 1})" if attempt else ""))
    return False


#: seconds the driver waits for a run to finish before it looks for a stop signal again
WAIT_ROUND_S = 1.0
#: seconds between an interrupted sweep's rounds of cancelling the runs that have not stopped yet
CANCEL_ROUND_S = 0.5
#: seconds an interrupted sweep waits for its cancelled runs to stop
CANCEL_WAIT_S = 60.0


def _stop_pending(ray, pending: dict) -> None:
    """Cancel the runs an interrupted sweep left ``pending`` {task: (run, attempt)}; once all stopped, remove the
    lock files their killed workers left, else say on stderr that one may still write its results file."""
    if not _cancel(ray, list(pending)):
        print(f"spikecl: {len(pending)} run(s) of the sweep did not confirm they stopped within "
              f"{CANCEL_WAIT_S:g} s; one may still write its results file", file=sys.stderr)
        return
    for run, _ in pending.values():
        remove_stale_lock(run.results)


def _cancel(ray, refs: list) -> bool:
    """Cancel the Ray tasks ``refs`` (their workers killed: a results file is written whole or not at all, and a
    checkpoint lets the next sweep resume) and wait for them to stop, also on a cluster the sweep joined
    (``--address``), where they would otherwise train on and write after the sweep reported the interruption (a
    task that finishes as its cancel arrives has written its complete results file by then). Returns whether every
    one stopped within :data:`CANCEL_WAIT_S`."""
    deadline, left = time.monotonic() + CANCEL_WAIT_S, list(refs)
    try:
        while left and time.monotonic() < deadline:
            for ref in left:                     # again each round: a cancel that met a task as it was handed to
                _cancel_one(ray, ref)            # its worker could be lost (the task trained on and wrote results)
            _, left = ray.wait(left, num_returns=len(left), timeout=CANCEL_ROUND_S)
        return not left
    except Exception:  # noqa: BLE001 - a failing wait must not hide the interruption being reported
        return False


def _cancel_one(ray, ref) -> None:
    """Cancel the task ``ref``, its worker killed; a refusal (e.g. a task that has just finished) is left to the
    caller's next round and its wait."""
    try:
        ray.cancel(ref, force=True)
    except Exception:  # noqa: BLE001 - one refusal must not leave the other tasks running
        pass


def _ids(pending: dict) -> set[str]:
    return {run.id for run, _ in pending.values()}
