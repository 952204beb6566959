"""Progress bars for long runs (tqdm, from the ``plots`` extra; imported only where a bar is made)."""

from __future__ import annotations

from typing import Iterable

from spikecl.errors import require


def _disable(enabled: bool) -> bool | None:
    """tqdm's ``disable``: always off when not ``enabled``, else off unless stderr is a terminal (None), so a log
    file or a pipe gets no redrawn frames."""
    return None if enabled else True


def progress_bar(total: int, unit: str, desc: str | None = None, enabled: bool = True, leave: bool = True):
    """A tqdm bar over ``total`` ``unit``s (e.g. "batch", "job"), drawn when ``enabled`` and stderr is a terminal
    (else it counts and draws nothing). ``leave``: keep the finished bar on screen."""
    tqdm = require("tqdm.auto", "plots").tqdm
    return tqdm(total=total, desc=desc, unit=unit, disable=_disable(enabled), leave=leave, dynamic_ncols=True)


def progress_range(n: int, enabled: bool, desc: str) -> Iterable[int]:
    """``range(n)``, wrapped in a passing bar labelled ``desc`` when ``enabled`` and stderr is a terminal (tqdm not
    imported when not ``enabled``)."""
    if not enabled:
        return range(n)
    tqdm = require("tqdm.auto", "plots").tqdm
    return tqdm(range(n), desc=desc, unit="item", leave=False, dynamic_ncols=True, disable=_disable(enabled))


def write_line(line: str) -> None:
    """Print ``line`` above the bars on screen, without breaking them."""
    require("tqdm.auto", "plots").tqdm.write(line)
