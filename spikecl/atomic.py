"""Writing files so that nothing is lost: every file spikecl writes goes to a temporary name in its folder, is
flushed to disk and moved into place (:func:`atomic_write`), so a killed process never leaves a half-written file,
and an existing file is only replaced when the caller says ``overwrite=True``. The checks a command makes before any
work (a writable folder, a name that fits, an output that is not its own source) and the lock that keeps two runs
from writing one file (:func:`output_lock`) live here too.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from spikecl.errors import ConfigError, ExistsError, ResultsError
from spikecl.paths import exists, is_dir, is_file, is_link

#: a temporary file of :func:`atomic_write` older than this (seconds) was left by a killed writer and is removed
STALE_TMP_SECONDS = 600.0


def check_writable_folder(folder: str | Path, what: str = "folder") -> None:
    """Refuse, before any work, a folder that is a file, lies below a file or cannot be written (one-line
    :class:`ConfigError` naming ``what`` and the culprit); a missing folder is fine where it can be created."""
    folder = Path(folder)
    for part in (folder, *folder.parents):
        if not exists(part, ConfigError):
            if is_link(part, ConfigError):
                raise ConfigError(f"{what} {folder}: {part} is a link to {os.readlink(part)}, which does not exist")
            continue
        if not is_dir(part, ConfigError):
            raise ConfigError(f"{what} {folder}: {part} is not a folder")
        if not os.access(part, os.W_OK | os.X_OK):
            raise ConfigError(f"{what} {folder}: {part} is not writable")
        return


#: the bytes atomic_write's temporary file (".NAME.XXXXXXXX.tmp") adds to the name of the file it writes; the other
#: files written beside a results file add less (a ".replacing" marker 10, a ".lock" 5)
TEMPORARY_EXTRA = 14
#: the bytes a run's ".diverged" record, written through a temporary file, adds to its results file's name
DIVERGED_EXTRA = len(".diverged") + TEMPORARY_EXTRA


def divergence_file(results: Path) -> Path:
    """``<results>.diverged``: the record (JSON: its ``error``, a sweep's run its ``config`` too) of a run whose
    training diverged, left beside its checkpoint: with the same settings it would diverge again."""
    results = Path(results)
    return results.with_name(results.name + ".diverged")


def file_state(path: Path) -> tuple[int, int, int, int] | None:
    """(device, inode, size, modification time in ns) of the file at ``path``; None where there is none."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


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


def check_name_fits(path: str | Path, what: str = "a results file", extra: int = TEMPORARY_EXTRA) -> None:
    """Refuse, before any work (one-line :class:`ConfigError`), a file name too long for its folder's file system
    once ``extra`` bytes are added to it (its temporary file's suffixes; more for a file another is named from):
    the write would fail only after the work."""
    path = Path(path)
    folder = next((p for p in path.parents if p.is_dir()), Path("."))
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):          # no limit to ask for (not POSIX)
        return
    size = len(os.fsencode(path.name)) + extra
    if size > limit:
        raise ConfigError(f"{path.name}: the name of {what} is too long for its file system ({size} bytes with the "
                          f"suffixes of the files written from it, at most {limit}); choose a shorter name")


def check_place_for_file(path: str | Path, what: str = "a results file") -> None:
    """Refuse (one-line :class:`ConfigError`) a folder, device, pipe or socket where ``what`` goes: no flag lets a
    run replace it."""
    if is_dir(path, ConfigError):
        raise ConfigError(f"{path} is a folder where {what} goes; move it away")
    if exists(path, ConfigError) and not is_file(path, ConfigError):
        raise ConfigError(f"{path} is not a regular file (a device, pipe or socket) where {what} goes; move it away")


def check_not_source(source: str | Path, output: str | Path, what: str = "source file",
                     lost: str = "the trained network with the export") -> None:
    """Refuse (one-line :class:`ConfigError`) an ``output`` that is the file ``source`` (``what``) itself, even with
    --overwrite, which would replace ``lost``."""
    src, out = Path(source), Path(output)
    try:
        same = src.resolve() == out.resolve() or (src.exists() and out.exists() and os.path.samefile(src, out))
    except (OSError, RuntimeError):                       # a symlink loop or an unreadable path: named later
        same = False
    if same:
        raise ConfigError(f"-o {output} is the {what} {source}; name another file (--overwrite would replace {lost})")


def check_output(path: str | Path, overwrite: bool = False, flag: str = "", what: str = "file",
                 example: str = "") -> Path:
    """Before any work: ``path`` can be written, or a one-line error says why (a folder there, a device, pipe or
    socket there, an existing file without ``overwrite``: :class:`ExistsError`, a folder that cannot be written).
    ``flag`` names the option that gave it (``-o``), ``what`` the file and ``example`` a name to suggest inside a
    folder. Returns it as a Path."""
    path = Path(path)
    named = f"{flag} {path}" if flag else str(path)
    if is_dir(path, ConfigError):
        raise ConfigError(f"{named} is a folder; name the {what} to write"
                          + (f", e.g. {path / example}" if example else ""))
    if exists(path, ConfigError) and not is_file(path, ConfigError):      # even with --overwrite: never replaced
        raise ConfigError(f"{named} is not a regular file (a device, pipe or socket); name a file to write")
    if exists(path, ConfigError) and not overwrite:
        raise ExistsError(f"{path} exists; pass --overwrite to replace it")
    check_writable_folder(path.parent, f"{flag}: folder" if flag else "folder")
    check_name_fits(path, f"the {what}")
    return path


def atomic_write(path: str | Path, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``, durably.

    Parent folders are created. Raises :class:`ExistsError` if ``path`` exists and ``overwrite`` is false. The
    file is flushed to disk (fsync) before the rename and its folder after it, so a crash leaves the old file or
    the new one, never a partial one; it gets the permissions of the user's umask. Temporary files of ``path``
    left by a killed writer (older than :data:`STALE_TMP_SECONDS`) are removed.
    """
    path = check_output(path, overwrite)
    try:                      # root passes os.access everywhere: /sys, /proc or a read-only mount fail only here
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        _move_into_place(Path(tmp), path, overwrite)
        _fsync_folder(path.parent)
    except OSError as exc:                  # a full disk, a file-size limit, a folder made unwritable meanwhile
        raise ResultsError(f"cannot write {path}: {_first_line(exc.strerror or exc)}; the previous file, if any, is "
                           "kept") from None
    except RuntimeError as exc:             # torch.save and h5py report a failed write as a RuntimeError
        if not _failed_write(exc):
            raise
        why = _why_cut_short(path.parent)          # a full disk said alone: torch's "unexpected pos" says no more
        said = why if why.startswith("the disk is full") else f"{_first_line(exc)} ({why})"
        raise ResultsError(f"cannot write {path}: {said}; the previous file, if any, is kept") from None
    finally:
        if os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename ``tmp`` onto ``path``; without ``overwrite`` by a hard link, which fails where a file appeared at
    ``path`` since it was checked (another writer): :class:`ExistsError`. A file system without hard links gets the
    rename."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        if os.path.islink(path) and not os.path.exists(path):     # a dangling link: replaced, as before
            os.replace(tmp, path)
            return
        raise ExistsError(f"{path} was written by another process meanwhile; pass --overwrite to replace it") \
            from None
    except OSError:                         # no hard links here (FAT, some FUSE mounts: EPERM, ENOSYS, EINVAL ...)
        os.replace(tmp, path)               # the check made before writing stands
        return
    os.unlink(tmp)


#: words of the RuntimeErrors torch.save ("unexpected pos", "iostream error") and h5py ("unable to extend file",
#: "errno = 27") raise when the disk is full or a file-size limit is reached
WRITE_FAILURE_WORDS = ("write", "unexpected pos", "iostream", "extend file", "errno", "no space", "too large")


def _failed_write(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it arose from) says that writing a file failed."""
    seen = [exc, exc.__context__, exc.__cause__]
    return any(word in str(e).lower() for e in seen if e is not None for word in WRITE_FAILURE_WORDS)


def _first_line(message) -> str:
    """The first line of an error message, at most 160 characters (h5py's run over several lines), without the
    source location torch's C++ checks put first ("[enforce fail at inline_container.cc:672] . ")."""
    lines = re.sub(r"^\[enforce fail at [^\]]*\][\s.]*", "", str(message).strip()).splitlines()
    return (lines[0] if lines else type(message).__name__)[:160]


@contextmanager
def output_lock(path: str | Path, elsewhere: str = "choose another --output-dir", holder: str = "spikecl run"):
    """Hold ``<path>.lock`` (an exclusive ``flock``, released when the process ends, even when killed) while a run
    writes the results file ``path``; a second writer of the same file fails at once with a one-line
    :class:`ResultsError` naming the holder (``holder``: what holds such a lock) and its PID. The lock file is
    removed on release. Where ``fcntl`` is missing (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:                                  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    try:                      # root passes os.access everywhere: /sys, /proc or a read-only mount fail only here
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        f = open(lock, "a+")
    except OSError as exc:
        raise ConfigError(f"cannot write {lock} (the lock of {path.name}): {exc.strerror or exc}") from None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            pid = f.read().strip() or "?"
            raise ResultsError(f"another {holder} (PID {pid}) is writing {path}; wait for it to end or "
                               f"{elsewhere}") from None
        if not _same_file(f, lock):     # its holder removed the file as it let go: a later writer's is another
            raise ResultsError(f"another {holder} was writing {path} just now; run again")
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):      # a folder made unwritable meanwhile: the run's own error stands
                lock.unlink(missing_ok=True)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


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


#: where Linux lists the locks held now (:func:`live_writer`)
PROC_LOCKS = "/proc/locks"


def live_writer(path: str | Path) -> int | None:
    """The PID of the process that holds the flock of ``<path>.lock`` now (a run writing ``path``), as Linux's
    ``/proc/locks`` lists it: read, never taken, so a run starting meanwhile is not turned away, and a lock file a
    killed run left (whose PID another process may have by now) is not mistaken for a live one. A holder in another
    PID namespace (another container sharing the folder), listed as PID 0, is named by the PID its lock file
    records; where ``/proc/locks`` cannot be read the lock is tried (shared, at once let go). None where no process
    holds it (this one aside)."""
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
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
    """The PID the lock file ``lock`` records (:func:`output_lock`), -1 where it records none; None where that is
    this process."""
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


def remove_stale_lock(path: str | Path) -> bool:
    """Remove ``<path>.lock`` that a killed writer of ``path`` left (its flock went with it), where no process holds
    it now; returns whether one was removed. Where ``fcntl`` is missing nothing is done."""
    try:
        import fcntl
    except ImportError:                                  # pragma: no cover - not POSIX
        return False
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    try:
        f = open(lock, "r")
    except OSError:                                      # none left (or unreadable: left to the next writer)
        return False
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:                                  # a live writer holds it
            return False
        try:
            if not _same_file(f, lock):
                return False
            lock.unlink(missing_ok=True)
            return True
        except OSError:
            return False
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _same_file(f, path: Path) -> bool:
    """Whether the open file ``f`` is still the one at ``path``."""
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temporaries(path: Path) -> None:
    import time

    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                tmp.unlink()
        except OSError:
            pass


#: free bytes below which a write cut short is put down to a full disk
NEARLY_FULL_BYTES = 1 << 20


def _why_cut_short(folder: Path) -> str:
    """Why a write into ``folder`` that torch or h5py report as cut short failed: a full disk where its file system
    has less than :data:`NEARLY_FULL_BYTES` free, else a guess."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < NEARLY_FULL_BYTES:
        return f"the disk is full: {free} bytes free in {folder}"
    return "is the disk full, or a file-size limit reached?"


def checkpoint_path(results: Path) -> Path:
    """The checkpoint beside a results file, removed once the results are written: ``run.h5`` keeps ``run.ckpt``;
    a results name without the ``.h5`` suffix keeps its whole name (``lr0.1`` keeps ``lr0.1.ckpt``, not the
    ``lr0.ckpt`` that ``lr0.5`` would share)."""
    results = Path(results)
    if results.suffix.lower() == ".h5":
        return results.with_suffix(".ckpt")
    return results.with_name(f"{results.name}.ckpt")


def remove_temporaries(results: Path) -> None:
    """Remove every temporary file a killed :func:`atomic_write` left of ``results`` or of its checkpoint
    (``.ckpt``), whatever its age: for the holder of ``results``' :func:`output_lock`, which covers those two files
    only (not ``run.ewc.h5`` beside ``run.h5``)."""
    results = Path(results)
    for name in (results.name, checkpoint_path(results).name):
        for tmp in results.parent.glob(f".{glob.escape(name)}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
