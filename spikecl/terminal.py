"""The standard streams a command writes to: kept usable whatever terminal or redirection it was started with."""

from __future__ import annotations

import contextlib
import os
import sys


def guard_standard_streams() -> None:
    """Text a terminal cannot encode (``±``, ``—`` under an ASCII locale) is written escaped rather than stopping the
    command; a closed stdout or stderr is opened on /dev/null, so that no file opened later (a lock, a result) takes
    its descriptor and receives what is printed."""
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_WRONLY)             # the lowest free descriptor: fd itself, or 0
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):     # not a text stream, or a closed one
            stream.reconfigure(errors="backslashreplace")
