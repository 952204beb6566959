"""Writing files so that nothing is lost: every file spikecl writes goes to a temporary name in its folder, is
flushed to disk and moved into place (:func:`atomic_write`), so a killed process never leaves a half-written file,
and an existing file is only replaced when the caller says ``overwrite=True``. The checks a command makes before any
work (a writable folder, a name that fits, an output that is not its own source) and the lock that keeps two runs
from writing one file (:func:`output_lock`) live here too. What the files beside a results file say of its run
(checkpoint, divergence record, replacing mark, live writer) is :mod:`spikecl.run_files`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from spikecl.errors import ConfigError, ExistsError, ResultsError
from spikecl.paths import exists, is_dir, is_file, is_link
from spikecl.remedies import option

#: a temporary file of :func:`atomic_write` older than this (seconds) was left by a killed writer and is removed
STALE_TMP_SECONDS = 600.0


def check_writable_folder(folder: str | Path, what: str = "folder") -> None:
    """Refuse, before any work, a folder that is a file, lies below a file or cannot be written (one-line
    :class:`ConfigError` naming ``what`` and the culprit); a missing folder is fine where one can be made (tried:
    /proc passes the permission check for root)."""
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
        if part != folder:                    # to be made: tried, since access() passes root where mkdir fails
            try:
                os.rmdir(tempfile.mkdtemp(prefix=".spikecl-probe-", dir=part))
            except OSError as exc:
                raise ConfigError(f"{what} {folder}: no folder can be made in {part} ({exc.strerror})") from None
        return


#: the bytes atomic_write's temporary file (".NAME.XXXXXXXX.tmp") adds to the name of the file it writes; the other
#: files written beside a results file add less (a ".replacing" marker 10, a ".lock" 5)
TEMPORARY_EXTRA = 14


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
        raise ConfigError(f"{option('-o')} {output} is the {what} {source}; name another file "
                          f"({option('--overwrite')} would replace {lost})")


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
        raise ExistsError(f"{path} exists; pass {option('--overwrite')} to replace it")
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
        raise ExistsError(f"{path} was written by another process meanwhile; pass {option('--overwrite')} to "
                          "replace it") from None
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


def lock_file(path: str | Path) -> Path:
    """``<path>.lock``: the file whose flock :func:`output_lock` holds while a run writes ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


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
    lock = lock_file(path)
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


def remove_stale_lock(path: str | Path) -> bool:
    """Remove ``<path>.lock`` that a killed writer of ``path`` left (its flock went with it), where no process holds
    it now; returns whether one was removed. Where ``fcntl`` is missing nothing is done."""
    try:
        import fcntl
    except ImportError:                                  # pragma: no cover - not POSIX
        return False
    path = Path(path)
    lock = lock_file(path)
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
    """Remove the temporaries of ``path`` that killed writers left over :data:`STALE_TMP_SECONDS` ago (its name
    matched literally: ``run[1].h5``'s pattern is not ``run1.h5``'s)."""
    import glob
    import time

    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
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


