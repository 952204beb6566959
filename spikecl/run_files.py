"""The files beside a results file that say how its run stands: its checkpoint (:func:`checkpoint_path`), the
record of a run whose training diverged (:func:`divergence_file`), the mark of an ``--overwrite`` that is to replace
it (:func:`replacing`, holding its writer's :func:`process_mark`) and the process writing it now
(:func:`live_writer`, read from its lock). Files are written through :mod:`spikecl.atomic`.
"""

from __future__ import annotations

import contextlib
import glob
import os
from pathlib import Path
from typing import Iterable

from spikecl.atomic import TEMPORARY_EXTRA, atomic_write, check_name_fits, lock_file
from spikecl.errors import ConfigError, ResultsError
from spikecl.paths import is_file, is_link


def checkpoint_path(results: Path) -> Path:
    """The checkpoint beside a results file, removed once the results are written: ``run.h5`` keeps ``run.ckpt``;
    a results name without the ``.h5`` suffix keeps its whole name (``lr0.1`` keeps ``lr0.1.ckpt``, not the
    ``lr0.ckpt`` that ``lr0.5`` would share)."""
    results = Path(results)
    if results.suffix.lower() == ".h5":
        return results.with_suffix(".ckpt")
    return results.with_name(f"{results.name}.ckpt")


def remove_temporaries(results: Path) -> None:
    """Remove every temporary file a killed :func:`~spikecl.atomic.atomic_write` left of ``results`` or of its
    checkpoint (``.ckpt``), whatever its age: for the holder of ``results``' :func:`~spikecl.atomic.output_lock`,
    which covers those two files only (not ``run.ewc.h5`` beside ``run.h5``)."""
    results = Path(results)
    for name in (results.name, checkpoint_path(results).name):
        for tmp in results.parent.glob(f".{glob.escape(name)}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def file_state(path: Path) -> tuple[int, int, int, int] | None:
    """(device, inode, size, modification time in ns) of the file at ``path``; None where there is none."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


#: the bytes a run's ".diverged" record, written through a temporary file, adds to its results file's name
DIVERGED_EXTRA = len(".diverged") + TEMPORARY_EXTRA


def divergence_file(results: Path) -> Path:
    """``<results>.diverged``: the record (JSON: its ``error``, a sweep's run its ``config`` too) of a run whose
    training diverged, left beside its checkpoint: with the same settings it would diverge again."""
    results = Path(results)
    return results.with_name(results.name + ".diverged")


def write_divergence(results: Path, error: str, **fields) -> None:
    """Leave the record (:func:`divergence_file`) of the run of ``results`` whose training diverged with ``error``
    (and JSON ``fields``: a sweep's run its ``config``), naming the checkpoint it left (its :func:`file_state`: a
    checkpoint saved since is not the diverged run's), where its name fits the file system (else its checkpoint reads
    as unfinished, as before records: the FAILED line has said why)."""
    import json

    record = divergence_file(results)
    try:
        check_name_fits(record)
    except ConfigError:
        return
    text = json.dumps({**fields, "error": error, "checkpoint": file_state(checkpoint_path(results))})
    atomic_write(record, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"), overwrite=True)


def read_divergence(results: Path) -> dict | None:
    """The divergence record of ``results`` (:func:`write_divergence`'s JSON: its ``error`` a string), or None where
    there is none or it is damaged (a record no run could have written: the run is trained again, and writes a
    whole one if it diverges again)."""
    import json

    try:
        kept = json.loads(divergence_file(results).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kept if isinstance(kept, dict) and isinstance(kept.get("error"), str) else None


def diverged_error(results: Path) -> str | None:
    """The error the divergence record of ``results`` keeps, or None where there is none (or a damaged one: see
    :func:`read_divergence`), or where the checkpoint it names has been replaced since (a later run's)."""
    kept = read_divergence(results)
    if kept is None:
        return None
    state = kept.get("checkpoint")                                  # a record written before records named none
    if state is not None and list(file_state(checkpoint_path(results)) or []) != state:
        return None
    return kept["error"]


def replacing(path: Path) -> Path:
    """The marker of a results file ``path`` that an ``--overwrite`` is to replace (removed once it has)."""
    return path.with_name(path.name + ".replacing")


def pending_replacement(path: Path) -> str | None:
    """Why the results file ``path`` is not to be read as a result, where an ``--overwrite`` is to replace it (its
    :func:`replacing` mark, beside ``path`` or, for a link, beside the file it names; one running now, or one that
    did not finish); None where none is."""
    path = Path(path)
    marks = [replacing(path), *([replacing(path.resolve())] if is_link(path, ResultsError) else [])]
    mark = next((m for m in marks if is_file(m, ResultsError)), None)
    if mark is None:
        return None
    if writer := live_pid(mark):
        return (f"{path} is to be replaced by an --overwrite running now (PID {writer}; its settings are the old "
                "ones); read it again when that has finished")
    return (f"{path} is still to be replaced by an --overwrite that did not finish (its settings are the old ones); "
            "finish it with spikecl run --resume --overwrite, or spikecl sweep --overwrite")


#: marks (:func:`process_mark`) this process takes for its own besides its own PID's: a sweep's runs replace, on
#: Ray workers, the files their driver marked, which :func:`live_pid` then reads as no other live process's
OWN_MARKS: set[str] = set()


def process_mark() -> str:
    """This process as a mark file records it: its PID and start time (``/proc/<pid>/stat``; the PID alone where
    that cannot be read), so that a mark outliving its process is not taken for one of a later process given the
    same PID."""
    started = _start_time(os.getpid())
    return f"{os.getpid()} {started}" if started else str(os.getpid())


def end_marks(paths: Iterable[Path]) -> None:
    """Leave the :func:`replacing` marks of results files ``paths`` that still hold this process's
    :func:`process_mark` without it, as the command that wrote them ends: read from then on as an ``--overwrite`` that
    did not finish, though this process lives on (a notebook kernel that caught the interrupt, a Ray worker whose run
    failed) rather than as one running now."""
    mine = process_mark()
    for path in paths:
        mark = replacing(path)
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if mark.read_text().strip() == mine:
                mark.write_text("")


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat``'s 22nd field), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def live_pid(record: str | Path) -> int | None:
    """The PID of the process the mark file ``record`` holds (:func:`process_mark`) where that very process is alive
    on this machine and is not this one (whose marks are of an earlier call that ended, or in :data:`OWN_MARKS`);
    None where the file is missing or holds no PID, its process has ended, or the PID is another process's now
    (another start time)."""
    try:
        mark = Path(record).read_text().strip()
        pid, *started = mark.split()
        pid = int(pid)
    except (OSError, ValueError):
        return None
    if mark in OWN_MARKS:
        return None
    if pid <= 0 or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)                                  # signal 0: only whether the process exists
    except PermissionError:                              # another user's: alive
        pass
    except OSError:
        return None
    if started and _start_time(pid) not in (None, started[0]):
        return None
    return pid


#: where Linux lists the locks held now (:func:`live_writer`)
PROC_LOCKS = "/proc/locks"


def live_writer(path: str | Path) -> int | None:
    """The PID of the process that holds the flock of ``<path>.lock`` now (a run writing ``path``), as Linux's
    ``/proc/locks`` lists it: read, never taken, so a run starting meanwhile is not turned away, and a lock file a
    killed run left (whose PID another process may have by now) is not mistaken for a live one. A holder in another
    PID namespace (another container sharing the folder), listed as PID 0, is named by the PID its lock file
    records; where ``/proc/locks`` cannot be read the lock is tried (shared, at once let go). None where no process
    holds it (this one aside)."""
    lock = lock_file(path)
    try:
        st = lock.stat()
    except OSError:
        return None
    try:
        with open(PROC_LOCKS) as f:
            held = [line.split() for line in f]
    except OSError:
        return _tried_lock(lock)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for fields in held:
        if "FLOCK" in fields and inode in fields:
            pid = fields[fields.index(inode) - 1]
            if not pid.isdigit() or int(pid) == os.getpid():
                return None
            return int(pid) or _recorded_pid(lock)      # 0: a process the kernel cannot name in this namespace
    return None


def _recorded_pid(lock: Path) -> int | None:
    """The PID the lock file ``lock`` records (:func:`~spikecl.atomic.output_lock`), -1 where it records none; None
    where that is this process."""
    try:
        text = lock.read_text().strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    pid = int(text) if text.isdigit() else -1
    return None if pid == os.getpid() else pid


def _tried_lock(lock: Path) -> int | None:
    """:func:`live_writer` where ``/proc/locks`` cannot be read: whether a shared flock of ``lock`` is refused now
    (its holder's :func:`_recorded_pid`), else None; None too where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:                                  # pragma: no cover - not POSIX
        return None
    try:
        with open(lock) as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return _recorded_pid(lock)
    except OSError:
        return None
    return None
