"""The figure base of every kind: standalone Agg figures, a colour cycle and atomic PNG writes.

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never registered with pyplot, so no global backend
is switched and no figure stays open. :func:`save` writes the PNG atomically (temporary file in the target folder,
then ``os.replace``), creating parent folders, and replaces an existing plot: plots are derived files.
"""

from __future__ import annotations

from pathlib import Path

from spikecl.errors import require
from spikecl.io import atomic_write


def figure(**kwargs):
    """A new Agg-backed ``matplotlib.figure.Figure`` (``kwargs`` go to ``Figure``, e.g. ``figsize``)."""
    require("matplotlib", "plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def colors(n: int) -> list:
    """``n`` RGBA colours from matplotlib's ``tab10`` cycle (repeating after 10)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (120 dpi) to ``path`` atomically, replacing any earlier plot; returns the path."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120), overwrite=True)
