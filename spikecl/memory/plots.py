"""PNG figures of the CA3 memory: a raster of every population with operation markers, and recall-quality maps."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from spikecl.errors import ShapeError
from spikecl.memory.schedule import LEARN, RECALL_CUE, Schedule
from spikecl.figures import colors, figure, save

#: raster order, top to bottom: inputs, the cue-recall path, the content-recall path, merge, output
RASTER_ORDER = ("INcue", "INcont", "CA3cueCueRecall", "CA3contCueRecall", "CA3contCond", "CA3contCondInt",
                "CA3contContRecall", "CA3cueContRecall", "CA3cuePoolCue", "CA3cuePoolCont", "CA3MergeCue",
                "CA3MergeCont", "OUTcue", "OUTcont")
_OP_STYLE = {LEARN: ("tab:green", "L"), RECALL_CUE: ("tab:blue", "C"), "recall_content": ("tab:red", "F")}


def plot_raster(spikes: dict[str, np.ndarray], schedule: Schedule, path: str | Path, start_ms: int = 0,
                title: str | None = None) -> Path:
    """Every population's spikes (``spikes[pop]`` bool ``[T, N]``) stacked in one panel, with a dotted line at each
    operation's start labelled L (learn), C (recall by cue) or F (recall by content)."""
    pops = [p for p in RASTER_ORDER if p in spikes] + sorted(set(spikes) - set(RASTER_ORDER))
    if not pops:
        raise ShapeError("raster needs at least one population")
    n_steps = {spikes[p].shape[0] for p in pops}
    if len(n_steps) != 1:
        raise ShapeError(f"populations have different numbers of steps: {sorted(n_steps)}")
    fig = figure(figsize=(10, 1.5 + 0.35 * len(pops) + 0.02 * sum(spikes[p].shape[1] for p in pops)),
                  layout="constrained")
    ax = fig.add_subplot()
    offset, ticks = 0, []
    for pop, color in zip(reversed(pops), colors(len(pops))):
        raster = np.asarray(spikes[pop], dtype=bool)
        t, i = np.nonzero(raster)
        ax.scatter(t + start_ms, i + offset, s=6, marker="|", color=color)
        ticks.append((offset + (raster.shape[1] - 1) / 2, pop))
        offset += raster.shape[1] + 1
        ax.axhline(offset - 1, color="lightgrey", lw=0.5)
    for op, t in zip(schedule.operations, schedule.starts_ms):
        color, letter = _OP_STYLE[op.kind]
        ax.axvline(t + start_ms, color=color, ls=":", lw=0.8)
        ax.text(t + start_ms, offset, letter, color=color, fontsize=7, ha="center", va="bottom")
    ax.set_yticks([y for y, _ in ticks], [name for _, name in ticks], fontsize=7)
    ax.set_xlabel("time (ms)")
    ax.set_ylim(-1, offset + 1.5)
    key = "markers: L learn, C recall by cue, F recall by content"      # whatever the title
    ax.set_title(f"{title or 'CA3 memory spikes'}; {key}", fontsize=9)
    return save(fig, path)


def plot_quality_maps(maps: dict[str, np.ndarray], row_labels: Sequence[str], col_labels: Sequence[str],
                      path: str | Path, row_name: str = "", col_name: str = "", title: str | None = None) -> Path:
    """One heatmap per entry of ``maps`` (values in [0, 1] ``[R, K]``, NaN = not measured), side by side with shared
    axes, each cell annotated in percent."""
    if not maps:
        raise ShapeError("quality maps need at least one map")
    shape = (len(row_labels), len(col_labels))
    for name, values in maps.items():
        if np.shape(values) != shape:
            raise ShapeError(f"map {name!r} has shape {np.shape(values)}; expected {shape}")
    fig = figure(figsize=(1.2 + (1.0 + 0.55 * shape[1]) * len(maps), 1.4 + 0.45 * shape[0]), layout="constrained")
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    for ax, (name, values) in zip(axes, maps.items()):
        values = np.asarray(values, dtype=float)
        image = ax.imshow(100 * values, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, "–" if np.isnan(v) else f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if not np.isnan(v) and v < 0.6 else "black")
        ax.set_xticks(range(shape[1]), [str(c) for c in col_labels], fontsize=7)
        ax.set_yticks(range(shape[0]), [str(r) for r in row_labels], fontsize=7)
        ax.set_xlabel(col_name, fontsize=8)
        ax.set_title(name, fontsize=8)
    axes[0].set_ylabel(row_name, fontsize=8)
    fig.colorbar(image, ax=list(axes), label="%", shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save(fig, path)


def plot_capacity(bits: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | Path,
                  willshaw: float, ceiling: float, title: str | None = None) -> Path:
    """Bits stored per plastic synapse against content density: ``bits`` {label: (densities, bits per synapse)}, one
    line each, beside the Willshaw bound and the CAM's ceiling (horizontal lines)."""
    fig = figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for (label, (densities, values)), color in zip(bits.items(), colors(len(bits))):
        if len(values) != len(densities):
            raise ShapeError(f"{label}: {len(values)} values for {len(densities)} densities")
        ax.plot(densities, values, marker="o", color=color, label=label)
    ax.axhline(willshaw, color="black", ls="--", lw=0.8, label=f"Willshaw bound ({willshaw:.2f})")
    ax.axhline(ceiling, color="grey", ls=":", lw=0.8, label=f"CAM ceiling CM/2CM ({ceiling:.2f})")
    ax.set_xlabel("content density")
    ax.set_ylabel("bits per plastic synapse")
    ax.set_ylim(0, max(willshaw, ceiling) * 1.15)
    ax.set_title(title or "stored information per plastic synapse", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return save(fig, path)
