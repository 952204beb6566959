"""The comparison plot of a sweep's summary (:func:`~spikecl.continual.sweep.summary_record`): a line per method
against the one numeric setting its points vary (a learning-rate grid; a method the setting does not concern, run
once, as a level), a grid of cells per method over two (a rate with a penalty's strength), else grouped bars per
method and point; ``spikecl sweep`` and ``spikecl report`` draw it alike."""

from __future__ import annotations

import json
import math
from pathlib import Path


def plot_sweep(record: dict, target: Path, stale: int = 0) -> Path:
    """The comparison PNG of a sweep's :func:`~spikecl.continual.sweep.summary_record` at ``target``: ACC and BWT
    (mean ± std) per method and point, a cell over one seed without a spread (its value alone, as the table shows
    it), the failed runs named under it, and ``stale``: how many of its runs' files are gone or rewritten since;
    ``spikecl sweep`` and ``spikecl report`` draw it alike. Where the methods' points vary one numeric key and one
    was run at three values of it or more (a learning-rate grid), each method is a line against that key, a
    method run at one point a level (:func:`setting_curves`); where every method's points vary two numeric keys (a
    joint search), a grid of cells per method (:func:`setting_grids`); each with the chosen point marked; else
    grouped bars."""
    from spikecl.continual.plots import plot_method_comparison, plot_setting_curves, plot_setting_grids

    seeds = record["seeds"]
    summary = {m: {k: (s[k][0], s[k][1] if seeds.get(m, 0) > 1 else float("nan")) for k in ("acc", "bwt") if k in s}
               for m, s in record["summary"].items()}
    failed = sorted(record["failures"])
    note = (f"not drawn, failed: {', '.join(failed[:3])}" + (f" and {len(failed) - 3} more" if len(failed) > 3
                                                              else "")) if failed else ""
    if stale:
        note += ("; " if note else "") + (f"drawn from the summary: {stale} of its runs' files are gone or rewritten "
                                         "since, so these means are not those of the files there")
    split = record.get("eval_split", "")                 # older summaries: not recorded
    within = f" ({split} split)" if split else ""
    points = record.get("points") or {}
    chosen = {method: points[label][1] for method, label in (record.get("chosen") or {}).items()     # a row drawn
              if label in summary and points.get(label, [None])[0] == method}                      # of the method
    if curves := setting_curves(summary, points):
        key, by_method, levels = curves
        return plot_setting_curves(by_method, key, target, chosen={m: s[key] for m, s in chosen.items() if key in s},
                                   levels=levels, note=note,
                                   title=f"sweep {record['name']}: ACC and BWT against {key}{within}")
    if grids := setting_grids(summary, points):
        return plot_setting_grids(grids, target, note=note, title=f"sweep {record['name']}: ACC and BWT{within}",
                                  chosen={m: tuple(chosen[m][k] for k in grids[m][0]) for m in chosen if m in grids})
    return plot_method_comparison(summary, target, title=f"sweep {record['name']}: ACC and BWT per method and point"
                                  + within, note=note)


def varied_settings(summary: dict, points: dict) -> dict[str, tuple[tuple[str, ...], dict]] | None:
    """{method: (the keys its rows' points set to more than one value, in grid order; {those values: stats})} of a
    sweep's ``summary`` {label: stats} (``points``: :func:`~spikecl.continual.sweep.point_settings`, every point
    planned: one without a row, failed or not run, has empty stats, so the axes keep it); None where a row's point
    is not recorded (a summary written before points were) or a varied value is not a real number."""
    if any(label not in points for label in summary):
        return None
    rows: dict[str, list] = {}
    for label, (method, setting) in points.items():
        rows.setdefault(method, []).append((setting, summary.get(label, {})))
    varied = {}
    for method, settings in rows.items():
        ordered = list(dict.fromkeys(key for setting, _ in settings for key in setting))
        keys = tuple(key for key in ordered if len({json.dumps(s.get(key)) for s, _ in settings}) > 1)
        values = [tuple(setting.get(key) for key in keys) for setting, _ in settings]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for value in values for v in value):
            return None
        varied[method] = (keys, {tuple(float(v) for v in value): stats for value, (_, stats) in zip(values, settings)})
    return varied


def setting_curves(summary: dict, points: dict) -> tuple[str, dict, dict] | None:
    """(key, {method: {value: stats}}, {method: stats}) of a sweep's ``summary`` where the methods' rows vary one and
    the same key (:func:`varied_settings`) and some method has three values of it or more; the last dict holds the
    methods run at one point (a setting they do not read, e.g. fine-tuning in a sweep over EWC's λ), drawn as levels;
    else None."""
    varied = varied_settings(summary, points)
    key_sets = {keys for keys, _ in varied.values() if keys} if varied else set()
    if len(key_sets) != 1:
        return None
    (keys,) = key_sets
    if len(keys) != 1 or max(len(cells) for _, cells in varied.values()) < 3:
        return None
    curves = {method: {value: stats for (value,), stats in cells.items()} for method, (found, cells) in
              varied.items() if found}
    if not any(stats for points in curves.values() for stats in points.values()):
        return None                                      # no curve has a result: bars of what there is
    return keys[0], curves, {method: cells[()] for method, (found, cells) in varied.items() if not found}


def setting_grids(summary: dict, points: dict) -> dict[str, tuple[tuple[str, str], dict]] | None:
    """{method: ((x key, y key), {(x, y): stats})} of a sweep's ``summary`` where every method's rows vary two keys
    (:func:`varied_settings`; each its own two, e.g. a rate with EWC's λ or with SI's c); else None."""
    varied = varied_settings(summary, points)
    if not varied or any(len(keys) != 2 for keys, _ in varied.values()):
        return None
    return varied
