"""A tqdm progress bar over item indices (tqdm imported only when the bar is shown)."""

from __future__ import annotations

from typing import Iterable


def progress_range(n: int, enabled: bool, desc: str) -> Iterable[int]:
    """``range(n)``, wrapped in a tqdm bar labelled ``desc`` when ``enabled``."""
    if not enabled:
        return range(n)
    from tqdm.auto import tqdm

    return tqdm(range(n), desc=desc, unit="item", leave=False, dynamic_ncols=True)
