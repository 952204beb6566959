"""How an error's remedy names an option: as the command line's flag (``pass --overwrite``) where ``spikecl``'s
command line called, as the keyword argument of the Python API (``pass overwrite=True``) where Python did.

Library code words a remedy with :func:`option`; :func:`spikecl.cli.main` runs each command inside
:func:`command_line`, and the processes a command starts (``--nproc``'s, a sweep's Ray tasks) take its spelling
with them (:func:`on_command_line`), so the command line's messages name its flags and a notebook's its keywords.
"""

from __future__ import annotations

import contextlib
import contextvars

#: a command-line flag -> the keyword argument that asks the same of the Python API
KEYWORDS = {"--resume": "resume=True", "--overwrite": "overwrite=True", "--no-plots": "plots=False",
            "--plots": "plots_dir", "--plots DIR": "plots_dir=DIR", "--output-dir": "output_dir",
            "--data-dir": "data.data_dir", "--set name=...": "name", "--format": "fmt", "--backend": "backend",
            "--samples": "samples"}

_COMMAND_LINE = contextvars.ContextVar("spikecl_command_line", default=False)


def option(*flags: str) -> str:
    """``flags`` (keys of :data:`KEYWORDS`) as the caller passes them: ``--resume --overwrite`` on the command line,
    ``resume=True, overwrite=True`` from Python."""
    if _COMMAND_LINE.get():
        return " ".join(flags)
    return ", ".join(KEYWORDS[flag] for flag in flags)


def on_command_line() -> bool:
    """Whether remedies now name command-line flags (inside :func:`command_line`)."""
    return _COMMAND_LINE.get()


@contextlib.contextmanager
def command_line(active: bool = True):
    """Within the block (in this thread), :func:`option` names command-line flags where ``active``."""
    token = _COMMAND_LINE.set(active)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)
