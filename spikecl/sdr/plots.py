"""PNG figures of SDR experiments (matplotlib Agg via :mod:`spikecl.figures`; written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikecl.figures import colors, figure, legend_layout, save
from spikecl.sdr.results import SIMILARITY_ORDER


#: panel titles of the coders, as the comparison table names them
CODER_TITLES = {"sparsey": "Sparsey", "pooler": "k-WTA spatial pooler", "fly-hash": "fly-hash control (fixed)",
                "flyhash": "fly-hash control (fixed)", "mac-activity": "Sparsey mac activity only",
                "macactivity": "Sparsey mac activity only"}


def plot_overlap_scatter(series: dict[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path,
                         title: str = "") -> Path:
    """Code overlap vs input overlap, one panel per coder: ``{name: (input_overlap [P], code_overlap [P], rho)}``.
    Both are whole counts: the input overlap is jittered by up to ±0.3 so that pairs of one count do not hide
    each other; the code overlap is drawn as measured."""
    cols = int(np.ceil(np.sqrt(len(series))))
    rows = -(-len(series) // cols)
    fig = figure(figsize=(4.4 * cols, 3.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    rng = np.random.default_rng(0)
    for ax, color, (name, (x, c, rho)) in zip(axes, colors(len(series)), series.items()):
        jitter = rng.uniform(-0.3, 0.3, len(x))
        ax.scatter(x + jitter, c, s=3, alpha=0.3, color=color)
        ax.set_title(f"{CODER_TITLES.get(name, name)}\nSpearman ρ = {rho:.3f}")       # two lines: never cut
        ax.set_xlabel("input overlap (active pixels in common, jittered ±0.3)")
        ax.set_ylabel("code overlap (active cells in common)")
    for ax in axes[len(series):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def plot_lines(x: np.ndarray, lines: dict[str, np.ndarray], path: str | Path, *, xlabel: str, ylabel: str,
               title: str, percent: bool = True, logx: bool = False) -> Path:
    """Several named curves over one x axis (values in [0, 1] drawn in percent when ``percent``, on an axis of 0 to
    100 %), the legend beside the axes (never over the data); a logarithmic x axis of at most 12 points is labelled
    at each (10 and 100 alone left 25 and 50 unread)."""
    legend, columns = legend_layout(lines, 4.0)
    fig = figure(figsize=(5.0 + legend, 4.0), layout="constrained")
    ax = fig.subplots()
    scale = 100.0 if percent else 1.0
    for color, (name, y) in zip(colors(len(lines)), lines.items()):
        ax.plot(x, np.asarray(y) * scale, marker="o", color=color, label=name, clip_on=not percent)
    if percent:                                          # the whole 0-100 % (markers drawn whole at the edge)
        ax.set_ylim(0.0, 100.0)
    if logx:
        from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

        ax.set_xscale("log")
        points = np.unique(np.asarray(x, dtype=float))
        if 0 < len(points) <= 12:
            ax.xaxis.set_major_locator(FixedLocator(points))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=columns)
    return save(fig, path)


#: the capacity plots' y axis: recalls are % of the items stored, the overlap and active macs % of a code's
CAPACITY_PERCENT = "% (recalls: of items; overlap, active macs: of a code)"


#: the plots each seed of a Sparsey experiment draws, ``<name>_seed<seed>.png``
SEED_PLOTS = ("overlap_scatter", "capacity", "capacity_random", "cue_recall")


def seed_plot(folder: Path, name: str, seed: int) -> Path:
    """Where seed ``seed``'s plot ``name`` (one of :data:`SEED_PLOTS`) goes in ``folder``."""
    return folder / f"{name}_seed{seed}.png"


def heading(config: dict, seed: int) -> str:
    """The first line of a seed's figure titles: the experiment's name, its dataset and the seed, as its results
    file records them (e.g. "sparsey-digits (digits), seed 0")."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    dataset = f" ({data['dataset']})" if data.get("dataset") else ""
    return f"{config.get('name') or 'sparsey'}{dataset}, seed {seed}"


def write_plots(folder: Path, seed: int, out: dict, first_line: str = "") -> list[Path]:
    """The plots of one seed's outcome (:data:`SEED_PLOTS`) into ``folder``, their titles led by ``first_line``
    (:func:`heading`)."""
    lead = f"{first_line}\n" if first_line else ""
    cap, levels = out["capacity"], out["cue_levels"] * 100
    paths = [plot_overlap_scatter(out["similarity"], seed_plot(folder, "overlap_scatter", seed), first_line),
             plot_lines(cap["items"], {"exact code (the macs that learned it)": cap["exact"],
                                       "exact code per learning mac": cap["mac_exact"],
                                       "nearest stored code is its own": cap["identity"],
                                       "mean code overlap": cap["overlap"],
                                       **({"active macs that learned it (not frozen)": cap["learning"]}
                                          if "learning" in cap else {})},
                        seed_plot(folder, "capacity", seed), xlabel="items stored", ylabel=CAPACITY_PERCENT,
                        title=f"{lead}Sparsey: recall of stored items cued by themselves")]
    rnd = out["random_capacity"]
    paths.append(plot_lines(rnd["items"], {"exact code": rnd["exact"], "nearest stored code is its own":
                                           rnd["identity"], "mean code overlap": rnd["overlap"]},
                            seed_plot(folder, "capacity_random", seed), xlabel="random patterns stored",
                            ylabel=CAPACITY_PERCENT, title=f"{lead}one mac (same Q, K): recall of random patterns",
                            logx=True))
    lines = {f"{CODER_TITLES[name]}, inputs {how}": out["cues"][f"{how}_{name}_identity"]
             for how in ("removed", "flipped") for name in SIMILARITY_ORDER[:3]}
    paths.append(plot_lines(levels, lines, seed_plot(folder, "cue_recall", seed),
                            xlabel="active inputs removed or flipped (%)", ylabel="stored item recalled (%)",
                            title=f"{lead}recall among {out['cue_items']} stored items from degraded cues"))
    return paths
