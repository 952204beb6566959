"""The figure base of every kind: standalone Agg figures, a colour cycle and atomic PNG writes.

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never registered with pyplot, so no global backend
is switched and no figure stays open. :func:`save` writes the PNG atomically (temporary file in the target folder,
then ``os.replace``), creating parent folders, and replaces an existing plot: plots are derived files.
"""

from __future__ import annotations

from pathlib import Path

from spikecl.atomic import atomic_write
from spikecl.errors import DependencyError, import_failure, require


def require_plots() -> None:
    """Before any work: a one-line :class:`DependencyError` where matplotlib, which draws the PNG plots, is missing
    (found only when the first plot was drawn, after hours of training or a printed table)."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401  (what plots draw with; a build for another numpy fails)
    except Exception as exc:
        raise DependencyError(f"{import_failure('matplotlib', 'plots', exc, needed_for=', which the PNG plots need')}"
                              ", or pass --no-plots (plots=False)") from None


def figure(**kwargs):
    """A new Agg-backed ``matplotlib.figure.Figure`` (``kwargs`` go to ``Figure``, e.g. ``figsize``)."""
    require("matplotlib", "plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def colors(n: int) -> list:
    """``n`` RGBA colours, all distinct: matplotlib's ``tab10``, then the light shades of ``tab20``, then
    ``tab20b``'s; beyond 40, every colour sampled evenly from ``turbo`` (neighbours in order then differ by hue
    steps too small to tell apart at a glance, but no two lines share one)."""
    import matplotlib

    if n > 40:
        from matplotlib.colors import LinearSegmentedColormap

        turbo = LinearSegmentedColormap.from_list("turbo", matplotlib.colormaps["turbo"].colors, N=n)   # its 256,
        return [turbo(i) for i in range(n)]                                                              # blended
    tab10, tab20, tab20b = (matplotlib.colormaps[name] for name in ("tab10", "tab20", "tab20b"))
    cycle = [tab10(i) for i in range(10)] + [tab20(2 * i + 1) for i in range(10)] + [tab20b(i) for i in range(20)]
    return cycle[:n]


def palette(names) -> dict:
    """{name: colour} for ``names`` in order (:func:`colors`): one colour per method in every plot of a report,
    whichever of them a plot leaves out."""
    names = list(dict.fromkeys(names))
    return dict(zip(names, colors(len(names))))


def legend_layout(labels, height: float) -> tuple[float, int]:
    """(inches of width, columns) a font-size-8 legend of ``labels`` beside the axes needs in a figure ``height``
    inches tall: as many columns as its entries need to fit the height, each wide enough for the longest label and
    its handle (a figure widened by it keeps its axes)."""
    labels = [str(label) for label in labels]
    rows = max(1, int((height - 0.5) / 0.2))
    columns = max(1, -(-len(labels) // rows))
    return 0.1 + columns * (0.55 + 0.062 * max((len(label) for label in labels), default=0)), columns


#: inches a character of a 9-point title takes (figures grow to their titles' width rather than cut them off)
TITLE_INCHES_PER_CHARACTER = 0.075


def title_inches(title: str | None) -> float:
    """Inches of width the longest line of a 9-point ``title`` takes."""
    return max(map(len, (title or "").splitlines()), default=0) * TITLE_INCHES_PER_CHARACTER


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (120 dpi) to ``path`` atomically, replacing any earlier plot; returns the path."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120), overwrite=True)
