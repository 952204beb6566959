"""Path probes that tell a missing file from one that cannot be looked at.

``Path.is_file()``, ``is_dir()`` and ``exists()`` raise PermissionError where a folder on the way cannot be searched
(a data folder in another user's home), and ``os.path`` returns False, which would read as "not found". These
probes answer True/False where the answer is known and otherwise raise the caller's one-line error class naming
the path and the reason.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from spikecl.errors import SpikeCLError


def _probe(path: str | Path, test: str, error: type[SpikeCLError]) -> bool:
    path = Path(path)
    try:
        return getattr(path, test)()
    except PermissionError:
        raise error(f"{path}: permission denied (a folder on its way cannot be searched)") from None
    except OSError as exc:
        raise error(f"{path}: cannot be looked at ({exc.strerror or exc})") from None


def is_file(path: str | Path, error: type[SpikeCLError]) -> bool:
    """Whether ``path`` is a file (following links); ``error`` where that cannot be found out."""
    return _probe(path, "is_file", error)


def is_dir(path: str | Path, error: type[SpikeCLError]) -> bool:
    """Whether ``path`` is a folder (following links); ``error`` where that cannot be found out."""
    return _probe(path, "is_dir", error)


def exists(path: str | Path, error: type[SpikeCLError]) -> bool:
    """Whether ``path`` exists (following links); ``error`` where that cannot be found out."""
    return _probe(path, "exists", error)


def is_link(path: str | Path, error: type[SpikeCLError]) -> bool:
    """Whether ``path`` is a symbolic link (whether or not it leads anywhere); ``error`` where that cannot be found
    out."""
    return _probe(path, "is_symlink", error)


def missing(path: str | Path, message: str, error: type[SpikeCLError]) -> SpikeCLError:
    """The error to raise where ``path`` is no file or folder: ``error(message)`` (a "not found" line) where nothing is
    there, or one saying it is not a regular file where a device, pipe or socket is (not "not found"), or one naming
    the target where a link points at nothing."""
    if not exists(path, error) and os.path.islink(path):
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return error(f"{path} cannot be followed to a file ({exc.strerror}); is it a loop of links?")
        return error(f"{path} is a link to {os.readlink(path)}, which does not exist")
    return not_regular(path, error) if exists(path, error) else error(message)


def not_regular(path: str | Path, error: type[SpikeCLError]) -> SpikeCLError:
    """The error to raise where a device, pipe or socket is at ``path``, where a file is to be read."""
    return error(f"{path} is not a regular file (a device, pipe or socket)")
