"""Progress bars for long runs (tqdm, from the ``plots`` extra, where installed: without it a run shows no bar)."""

from __future__ import annotations

from typing import Iterable


def _tqdm():
    """tqdm's bar class, or None where tqdm is not installed (a bar is a convenience, never a reason to fail)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _disable(enabled: bool) -> bool | None:
    """tqdm's ``disable``: always off when not ``enabled``, else off unless stderr is a terminal (None), so a log
    file or a pipe gets no redrawn frames."""
    return None if enabled else True


class _Unseen:
    """A bar that counts and draws nothing: what :func:`progress_bar` gives without tqdm."""

    def __init__(self, total: int) -> None:
        self.total, self.n = total, 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_description(self, *args, **kwargs) -> None:
        pass

    set_postfix = refresh = close = set_description

    @staticmethod
    def write(line: str) -> None:
        print(line)

    def __enter__(self) -> "_Unseen":
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(total: int, unit: str, desc: str | None = None, enabled: bool = True, leave: bool = True):
    """A tqdm bar over ``total`` ``unit``s (e.g. "batch", "job"), drawn when ``enabled`` and stderr is a terminal
    (else it counts and draws nothing). ``leave``: keep the finished bar on screen."""
    tqdm = _tqdm()
    if tqdm is None:
        return _Unseen(total)
    return tqdm(total=total, desc=desc, unit=unit, disable=_disable(enabled), leave=leave, dynamic_ncols=True)


def progress_range(n: int, enabled: bool, desc: str) -> Iterable[int]:
    """``range(n)``, wrapped in a passing bar labelled ``desc`` when ``enabled``, stderr is a terminal and tqdm is
    installed."""
    tqdm = _tqdm() if enabled else None
    if tqdm is None:
        return range(n)
    return tqdm(range(n), desc=desc, unit="item", leave=False, dynamic_ncols=True, disable=_disable(enabled))


def write_line(line: str) -> None:
    """Print ``line`` above the bars on screen, without breaking them."""
    tqdm = _tqdm()
    if tqdm is None:
        print(line)
    else:
        tqdm.write(line)
