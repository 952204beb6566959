"""PNG figures of the CA3 memory: a raster of every population with operation markers, recall-quality maps and
capacity curves, and the plots of a finished ``ca3`` experiment read back from its part files (:func:`write_plots`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from spikecl.errors import ResultsError, ShapeError
from spikecl.figures import colors, figure, save, title_inches
from spikecl.memory.recordings import mismatch_text
from spikecl.memory.results import params_text
from spikecl.memory.schedule import LEARN, RECALL_CUE, Schedule, recorded_schedule
from spikecl.memory.stress import CAM_CEILING_BITS_PER_SYNAPSE, WILLSHAW_BITS_PER_SYNAPSE, variant_order
from spikecl.rounding import half_up

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
    titled = title_inches(title)                                                                 # not cut off
    fig = figure(figsize=(max(1.2 + (1.0 + 0.55 * shape[1]) * len(maps), titled), 1.4 + 0.45 * shape[0]),
                 layout="constrained")
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    for ax, (name, values) in zip(axes, maps.items()):
        values = np.asarray(values, dtype=float)
        image = ax.imshow(100 * values, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, "–" if np.isnan(v) else f"{half_up(100 * v, 0):.0f}", ha="center", va="center", fontsize=7,
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
    import textwrap

    titled = title_inches(title)
    fig = figure(figsize=(max(6.0, 3.2 + titled), 3.6), layout="constrained")   # the legend takes about 2.2 in
    ax = fig.add_subplot()
    for (label, (densities, values)), color in zip(bits.items(), colors(len(bits))):
        if len(values) != len(densities):
            raise ShapeError(f"{label}: {len(values)} values for {len(densities)} densities")
        ax.plot(densities, values, marker="o", color=color, label=textwrap.fill(label, 34))
    ax.axhline(willshaw, color="black", ls="--", lw=0.8, label=f"Willshaw bound ({willshaw:.2f})")
    ax.axhline(ceiling, color="grey", ls=":", lw=0.8, label=f"CAM ceiling CM/2CM ({ceiling:.2f})")
    ax.set_xlabel("content density")
    ax.set_ylabel("bits per plastic synapse")
    ax.set_ylim(0, max(willshaw, ceiling) * 1.15)
    ax.set_title(title or "stored information per plastic synapse", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return save(fig, path)


def _mean_map(table: dict, metric: str, rows: str, row_values, cols: str, col_values) -> np.ndarray:
    """Mean of ``table[metric]`` over seeds (and anything else) for each (row value, column value)."""
    out = np.full((len(row_values), len(col_values)), np.nan)
    if metric not in table:
        return out
    for r, rv in enumerate(row_values):
        for c, cv in enumerate(col_values):
            sel = (table[rows] == rv) & (table[cols] == cv) & np.isfinite(table[metric])
            if np.any(sel):
                out[r, c] = table[metric][sel].mean()
    return out


def _precision_map(table: dict, densities, fragment_sizes, spacing) -> np.ndarray:
    """Recall-by-content precision ``[density, fragment size]`` at one spacing (mean over seeds)."""
    out = np.full((len(densities), len(fragment_sizes)), np.nan)
    for c, f in enumerate(fragment_sizes):
        key = f"content_precision_f{f}"
        if key in table:
            sub = {"density": table["density"], "spacing_ms": table["spacing_ms"], key: table[key]}
            out[:, c] = _mean_map(sub, key, "density", densities, "spacing_ms", [spacing])[:, 0]
    return out


#: the maps drawn per memory size, ``<map>_C<C>_M<M>.png``
SIZE_MAPS = ("cue_exact", "relearned_exact", "content_precision")


def plot_names(functional: bool, sizes: list[tuple[int, int]], published: bool) -> list[str]:
    """The names of the PNG files :func:`write_plots` may write for an experiment with a functional part
    (``functional``), stress parts of ``sizes`` (C, M) and (``published``) the published variant among them."""
    return ([RASTER] if functional else []) + [size_map(m, C, M) for C, M in sizes for m in SIZE_MAPS] \
        + ([CAPACITY] if published and sizes else [])


def size_map(metric: str, C: int, M: int) -> str:
    """The file name of the map of ``metric`` at memory size (``C``, ``M``)."""
    return f"{metric}_C{C}_M{M}.png"


RASTER, CAPACITY = "functional_raster.png", "capacity.png"


def write_plots(results: dict[str, dict], out_dir: str | Path) -> list[Path]:
    """Raster of the functional run; per memory size, maps of recall-by-cue exactness and forgetting (density x
    spacing) and of recall-by-content precision (density x fragment size at 14 ms or the nearest spacing), one
    panel per variant; bits per plastic synapse against density beside the Willshaw bound. ``results``: {file:
    part as :func:`spikecl.memory.results.read_part` gives it}."""
    out_dir = Path(out_dir)
    written = []
    for part in [p for p in results.values() if p["attrs"]["part"] == "functional"][:1]:
        schedule = recorded_schedule(part["attrs"])
        changed = params_text(part["attrs"], ", with ")
        mismatch = f"\n{mismatch_text(int(part['attrs']['mismatched_spikes']))}" if changed else ""
        written.append(plot_raster(part["spikes"], schedule, out_dir / RASTER,
                                   title=f"recorded functional experiment (C = 5, M = 10){changed}{mismatch}"))
    by_size: dict[tuple[int, int], dict[str, dict]] = {}
    files: dict[tuple[int, int, str], str] = {}
    for file, part in results.items():
        if part["attrs"]["part"] == "stress":
            a = part["attrs"]
            key = (int(a["n_cues"]), int(a["n_bits"]), str(a["variant"]))
            if key in files:
                raise ResultsError(f"{file} and {files[key]} both hold the stress part C={key[0]} M={key[1]} "
                                   f"{key[2]}; plot them separately")
            files[key] = file
            by_size.setdefault(key[:2], {})[key[2]] = part["table"]
    capacity = {}
    for (C, M), unordered in sorted(by_size.items()):
        variants = dict(sorted(unordered.items(), key=lambda item: variant_order(item[0])))
        overrides = _overrides([results[files[C, M, v]]["attrs"] for v in variants])
        tables = list(variants.values())                  # parts from several runs: every value any of them has
        densities = np.unique(np.concatenate([t["density"] for t in tables]))
        spacings = np.unique(np.concatenate([t["spacing_ms"] for t in tables]))
        spacing = spacings[np.argmin(np.abs(spacings - 14))]
        sizes = sorted({int(k.rsplit("f", 1)[1]) for t in tables for k in t if k.startswith("content_precision_f")})
        labels = dict(row_labels=[f"{d:g}" for d in densities], row_name="content density")
        seeds = len(np.unique(np.concatenate([t["seed"] for t in tables])))
        averaged = f", mean of {seeds} seeds" if seeds > 1 else ""             # each cell: the trials' mean
        for metric, name in (("cue_exact", "recall by cue: exact"), ("relearned_exact", "forgetting: relearned "
                                                                                          "cue exact")):
            maps = {v: _mean_map(t, metric, "density", densities, "spacing_ms", spacings) for v, t in variants.items()}
            unmeasured = "\nnot measured: no cue relearned (stress.relearn_fraction = 0)" if metric == \
                "relearned_exact" and all(np.isnan(m).all() for m in maps.values()) else ""
            written.append(plot_quality_maps(maps, col_labels=[str(int(s)) for s in spacings], col_name="spacing (ms)",
                                             path=out_dir / size_map(metric, C, M),
                                             title=f"{name}, C={C} M={M}{averaged}{overrides}{unmeasured}",
                                             **labels))
        maps = {v: _precision_map(t, densities, sizes, spacing) for v, t in variants.items()}
        written.append(plot_quality_maps(maps, col_labels=[str(f) for f in sizes], col_name="fragment bits",
                                         path=out_dir / size_map("content_precision", C, M),
                                         title=f"recall by content: precision at {int(spacing)} ms, C={C} "
                                               f"M={M}{averaged}{overrides}", **labels))
        if "published" in variants:
            t, changed = variants["published"], params_text(results[files[C, M, "published"]]["attrs"], ", with ")
            own, widest = np.unique(t["density"]), np.unique(t["spacing_ms"]).max()
            capacity[f"C={C} M={M}, {widest:g} ms{changed}"] = (
                own, _mean_map(t, "bits_per_synapse", "density", own, "spacing_ms", [widest])[:, 0])
    if capacity:
        written.append(plot_capacity(capacity, out_dir / CAPACITY, WILLSHAW_BITS_PER_SYNAPSE,
                                     CAM_CEILING_BITS_PER_SYNAPSE, title="published model: bits per plastic synapse\n"
                                     "(exactly recalled contents, at each size's widest spacing)"))
    return written


def _overrides(attrs: list[dict]) -> str:
    """A title's note of the ``[params]`` overrides the parts (their attributes) ran with: "" for none, the
    overrides where every part shares them, else that they differ (the text report names them)."""
    texts = {params_text(a) for a in attrs}
    if texts == {""}:
        return ""
    return f"\nwith {texts.pop()}" if len(texts) == 1 else "\nparts with other [params] (see the text report)"

