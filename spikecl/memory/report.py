"""Plots of a finished ``ca3`` experiment, read back from its part files (see :mod:`spikecl.memory.experiment`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spikecl.errors import ResultsError
from spikecl.memory.plots import plot_capacity, plot_quality_maps, plot_raster
from spikecl.memory.schedule import recorded_schedule
from spikecl.memory.stress import CAM_CEILING_BITS_PER_SYNAPSE, WILLSHAW_BITS_PER_SYNAPSE


def params_text(attrs: dict, prefix: str = "") -> str:
    """The ``[params]`` overrides a part ran with, as ``prefix`` + "key = value, ..." ("" when none)."""
    params = json.loads(attrs.get("params", "{}"))
    return prefix + ", ".join(f"{k} = {v}" for k, v in sorted(params.items())) if params else ""


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
        written.append(plot_raster(part["spikes"], schedule, out_dir / RASTER,
                                   title="recorded functional experiment (C = 5, M = 10)"))
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
    for (C, M), variants in sorted(by_size.items()):
        tables = list(variants.values())                  # parts from several runs: every value any of them has
        densities = np.unique(np.concatenate([t["density"] for t in tables]))
        spacings = np.unique(np.concatenate([t["spacing_ms"] for t in tables]))
        spacing = spacings[np.argmin(np.abs(spacings - 14))]
        sizes = sorted({int(k.rsplit("f", 1)[1]) for t in tables for k in t if k.startswith("content_precision_f")})
        labels = dict(row_labels=[f"{d:g}" for d in densities], row_name="content density")
        for metric, name in (("cue_exact", "recall by cue: exact"), ("relearned_exact", "forgetting: relearned "
                                                                                          "cue exact")):
            maps = {v: _mean_map(t, metric, "density", densities, "spacing_ms", spacings) for v, t in variants.items()}
            written.append(plot_quality_maps(maps, col_labels=[str(int(s)) for s in spacings], col_name="spacing (ms)",
                                             path=out_dir / size_map(metric, C, M), title=f"{name}, C={C} M={M}",
                                             **labels))
        maps = {v: _precision_map(t, densities, sizes, spacing) for v, t in variants.items()}
        written.append(plot_quality_maps(maps, col_labels=[str(f) for f in sizes], col_name="fragment bits",
                                         path=out_dir / size_map("content_precision", C, M),
                                         title=f"recall by content: precision at {int(spacing)} ms, C={C} M={M}",
                                         **labels))
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
