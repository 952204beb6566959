"""PNG figures of continual-learning results, on the figure base :mod:`spikecl.figures`.

Each function validates its input, writes its PNG atomically and returns the path. Accuracies are fractions in
[0, 1] and are drawn in percent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from spikecl.continual.metrics import as_evals, as_matrix, check_fractions, mean_std
from spikecl.errors import ShapeError
from spikecl.figures import TITLE_INCHES_PER_CHARACTER, colors, figure, legend_layout, palette, save, title_inches
from spikecl.rounding import half_up


def plot_accuracy_matrix(R, path: str | Path, title: str | None = None,
                         labels: Sequence[str] | None = None, rows: str = "after training task",
                         unlearned_blank: bool = False) -> Path:
    """Heatmap of ``R`` ``[T+1, T]`` without its init row: after training task i (rows) × tested task (columns),
    each cell annotated in percent to one decimal (as the report's tables). ``labels``: T task names (default
    "1".."T"); ``rows``: what a row is after (the y axis's label, wrapped to the axes' height); ``unlearned_blank``:
    the cells of tasks not yet learned (above the diagonal) are grey dashes, not values (class-incremental
    learning masks their classes: 0 by construction). The figure widens to its 9-point title."""
    import textwrap

    R = 100 * as_matrix(R)[1:]
    n = R.shape[1]
    labels = [str(j + 1) for j in range(n)] if labels is None else [str(s) for s in labels]
    if len(labels) != n:
        raise ShapeError(f"got {len(labels)} task labels for {n} tasks")
    height = 2.0 + 0.5 * n
    fig = figure(figsize=(max(2.2 + 0.6 * n, title_inches(title) + 0.3), height), layout="constrained")
    ax = fig.add_subplot()
    shown = np.where(np.triu(np.ones_like(R, dtype=bool), 1), np.nan, R) if unlearned_blank else R
    ax.set_facecolor("0.85")                                      # NaN cells: grey
    image = ax.imshow(shown, vmin=0, vmax=100, cmap="viridis")
    for (i, j), value in np.ndenumerate(shown):
        ax.text(j, i, "–" if np.isnan(value) else f"{half_up(value):.1f}", ha="center", va="center", fontsize=7,
                color="white" if value < 60 else "black")          # one decimal, rounded as the report's tables
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("tested on task")
    ax.set_ylabel(textwrap.fill(rows, max(12, int((height - 1.2) / TITLE_INCHES_PER_CHARACTER))))
    ax.set_title(title or "accuracy (%)", fontsize=9)
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    return save(fig, path)


def plot_task_curves(iterations, evals, eval_task, path: str | Path, title: str | None = None,
                     task_ends=None, rows=None) -> Path:
    """Accuracy on each task over training iterations, drawn from the first evaluation while the task is trained.

    ``iterations`` ``[E]``, ``evals`` ``[E, T]``, ``eval_task`` ``[E]`` (0-based task trained at each evaluation).
    Dotted lines mark the task boundaries, so a drop right after one (the stability gap) is visible: at each
    finished task's last iteration (``task_ends`` ``[T]``, as results files record it), else (files written before
    they recorded it) at the last evaluation made while it was trained. ``rows`` (the accuracy matrix ``[T+1, T]``,
    with ``task_ends``): each task's curve goes on to its matrix entries after each task, at the task's end (hollow
    squares; the whole evaluation split), so it reaches the end of training where the evaluations every
    ``eval_every`` iterations stop short of it (an evaluation at a task's end gives way to the row)."""
    evals, eval_task = as_evals(evals, eval_task)
    iterations = np.asarray(iterations)
    if iterations.shape != eval_task.shape:
        raise ShapeError(f"iterations have shape {iterations.shape}; expected {eval_task.shape}")
    from matplotlib.ticker import MaxNLocator

    n_tasks = evals.shape[1]
    legend, columns = legend_layout([f"task {n_tasks}"] * n_tasks, 4)
    fig = figure(figsize=(7 + legend, 4), layout="constrained")
    ax = fig.add_subplot()
    ends_known = task_ends is not None and rows is not None and np.shape(task_ends) == (n_tasks,)
    for j, color in enumerate(colors(n_tasks)):
        seen = eval_task >= j
        at, acc = iterations[seen], 100 * evals[seen, j]
        if ends_known:                                       # the rows after task j and each later one
            ends, after = np.asarray(task_ends)[j:], 100 * np.asarray(rows, dtype=float)[j + 1:, j]
            keep = ~np.isin(at, ends)
            at, acc = np.concatenate([at[keep], ends]), np.concatenate([acc[keep], after])
            order = np.argsort(at, kind="stable")
            at, acc = at[order], acc[order]
            ax.plot(ends, after, ls="none", marker="s", ms=5, mfc="none", color=color)
        if at.size:
            ax.plot(at, acc, color=color, lw=1.2, marker=".", ms=3 if at.size > 1 else 7,
                    label=f"task {j + 1}")                   # a single point: visible
    if ends_known:
        ax.plot([], [], ls="none", marker="s", mfc="none", color="grey", label="after each task\n(whole split)")
    if task_ends is None:
        ends = iterations[np.flatnonzero(np.diff(eval_task))]
    else:                                           # the tasks' boundaries: not the end of training (multitask's)
        ends = [end for end in np.asarray(task_ends)[:-1] if end < np.asarray(task_ends)[-1]]
    for end in ends:
        ax.axvline(end, color="grey", ls=":", lw=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training iteration")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or "accuracy on each task during training")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=columns)
    return save(fig, path)


def plot_method_comparison(summary: dict[str, dict[str, tuple[float, float]]], path: str | Path,
                           colours: dict | None = None, title: str = "methods compared", note: str = "") -> Path:
    """Grouped bars of ACC and BWT in percent, one bar per method with mean ± std error bars.

    ``summary[method][metric] = (mean, std)`` over seeds with metric ``"acc"`` or ``"bwt"``; a missing metric
    leaves a gap (the BWT group is left out where no method has one, as after a single task), a NaN std no error
    bar. ``colours``: {method: colour} shared with a report's other plots (default :func:`palette`); ``note``: a
    line under the axes (what is not drawn)."""
    if not summary:
        raise ShapeError("method comparison needs at least one method")
    for method, stats in summary.items():
        check_fractions(np.abs([stats[key][0] for key in ("acc", "bwt") if key in stats]), f"{method}: ACC or BWT")
    methods = list(summary)
    colours = {**palette(methods), **(colours or {})}
    keys = [(key, label) for key, label in (("acc", "ACC"), ("bwt", "BWT"))     # BWT: none after a single task
            if key == "acc" or any(np.isfinite(stats.get(key, (np.nan,))[0]) for stats in summary.values())]
    width = 0.8 / len(methods)
    legend, columns = legend_layout(methods, 3.8)
    fig = figure(figsize=(4 + 0.5 * len(methods) + legend, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for m, (method, color) in enumerate((method, colours[method]) for method in methods):
        stats = np.array([summary[method].get(key, (np.nan, np.nan)) for key, _ in keys], dtype=float)
        errors = 100 * stats[:, 1] if np.isfinite(stats[:, 1]).any() else None   # one seed: matplotlib < 3.7.2 fails
        ax.bar(np.arange(len(keys)) + (m - (len(methods) - 1) / 2) * width, 100 * stats[:, 0], width,
               yerr=errors, capsize=3, color=color, label=method)
    ax.set_xticks(range(len(keys)), [label for _, label in keys])
    ax.set_ylabel("percent (mean ± std over seeds)")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=columns)
    add_note(fig, note)
    return save(fig, path)


def add_note(fig, note: str) -> None:
    """``note`` (what a figure leaves out) in small type under the axes, wrapped to the figure's width."""
    if note:
        import textwrap

        fig.supxlabel(textwrap.fill(note, max(40, int(14 * fig.get_figwidth()))), fontsize=7, ha="left", x=0.01)


def plot_accuracy_vs_synops(points: dict[str, tuple], path: str | Path, colours: dict | None = None,
                            note: str = "", title: str = "accuracy against synaptic operations") -> Path:
    """Final accuracy (ACC, %) against effective synaptic operations per inference, one colour per method: each
    seed a small dot, the mean over seeds a large marker with ± std bars on both axes (the tables' sample std,
    :func:`~spikecl.continual.metrics.mean_std`). The SynOps axis is logarithmic when the values span two decades or
    more, else linear from 0 with plain numbers (close values stay legible, and close).

    ``points[method] = (acc [S] fractions, synops [S])`` for the methods' runs on the same stream; ``colours``:
    {method: colour} shared with a report's other plots (default :func:`palette`); ``note``: a line under the axes
    (what is not drawn), to which the methods drawn at one and the same point are added (the last drawn hides
    the others)."""
    if not points:
        raise ShapeError("accuracy against SynOps needs at least one method")
    colours = {**palette(points), **(colours or {})}
    legend, columns = legend_layout(points, 4.0)
    fig = figure(figsize=(6 + legend, 4), layout="constrained")
    ax = fig.add_subplot()
    all_ops, at = [], {}
    for (method, (acc, ops)), color in ((item, colours[item[0]]) for item in points.items()):
        check_fractions(np.asarray(acc, dtype=float), f"{method}: accuracies")
        acc, ops = 100 * np.asarray(acc, dtype=float), np.asarray(ops, dtype=float)
        if acc.shape != ops.shape or acc.ndim != 1 or not acc.size:
            raise ShapeError(f"{method}: {acc.shape} accuracies for {ops.shape} SynOps")
        ax.scatter(ops, acc, color=color, s=10, alpha=0.5)
        (ops_mean, ops_std), (acc_mean, acc_std) = mean_std(ops), mean_std(acc)
        ax.errorbar(ops_mean, acc_mean, xerr=ops_std, yerr=acc_std, color=color, marker="o", ms=7, capsize=3,
                    label=method)
        all_ops.extend([*ops, ops_mean + (ops_std if np.isfinite(ops_std) else 0.0)])     # a point, a bar's end
        at.setdefault((ops_mean, acc_mean), []).append(method)
    same = ["; ".join(f"one point: {', '.join(group)}" for group in at.values() if len(group) > 1)]
    if min(all_ops) > 0 and max(all_ops) >= 100 * min(all_ops):
        ax.set_xscale("log")                               # decades labelled, no crowded minor-tick labels
    else:
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.15g}"))
        ax.set_xlim(0, 1.06 * max(all_ops))               # a 0.1 % difference is not spread over the width; the
                                                           # last marker and bar whole (a margin of the axis's size)
    ax.set_xlabel("effective synaptic operations per inference (ACs + MACs)")
    ax.set_ylabel("ACC after the last task (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=columns)
    add_note(fig, "; ".join(filter(None, [note, *same])))
    return save(fig, path)


def plot_setting_curves(curves: dict[str, dict[float, dict[str, tuple[float, float]]]], setting: str,
                        path: str | Path, chosen: dict[str, float] | None = None,
                        levels: dict[str, dict[str, tuple[float, float]]] | None = None, title: str = "",
                        note: str = "") -> Path:
    """ACC and BWT in percent against one numeric setting (e.g. a sweep's ``train.lr``), one line per method, with
    ± std bars (a NaN std, one seed, draws none): how each method responds to the setting, and where it peaks.

    ``curves[method][value][metric] = (mean, std)`` with metric ``"acc"`` or ``"bwt"`` in fractions (a missing
    point or metric leaves a gap; the BWT panel is left out where no method has one); ``setting``: the x axis's
    name. The axis is logarithmic where every value is positive and they span a factor of 8 or more (a doubling
    grid), ticked at the values. ``chosen``: {method: value} ringed on both panels (a sweep's selection).
    ``levels``: {method: stats} of methods run at one point (the setting is not theirs), dashed across both panels.
    A point without ACC (failed or not run) is a cross at the panel's foot in its method's colour."""
    if not curves or not any(curves.values()):
        raise ShapeError(f"curves against {setting} need at least one method with a point")
    levels = levels or {}
    for method, points in curves.items():
        for value, stats in points.items():
            if not np.isfinite(value):
                raise ShapeError(f"{method}: {setting} = {value} is not a finite number")
            check_fractions(np.abs([stats[key][0] for key in ("acc", "bwt") if key in stats]),
                            f"{method} at {setting} = {value:g}: ACC or BWT")
    for method, stats in levels.items():
        check_fractions(np.abs([stats[key][0] for key in ("acc", "bwt") if key in stats]), f"{method}: ACC or BWT")
    drawn = [*curves.values(), *({0: s} for s in levels.values())]
    keys = [(key, label) for key, label in (("acc", "ACC (%)"), ("bwt", "BWT (points)"))
            if key == "acc" or any(np.isfinite(s.get(key, (np.nan,))[0]) for p in drawn for s in p.values())]
    values = sorted({value for points in curves.values() for value in points})
    crossed = [m for m, points in curves.items() if any("acc" not in stats for stats in points.values())]
    unmeasured_any = bool(crossed)
    logarithmic = values[0] > 0 and values[-1] >= 8 * values[0]
    colours = palette([*curves, *levels])
    legend, columns = legend_layout([*curves, *(f"{m} (one point)" for m in levels)], 3.8)
    fig = figure(figsize=(1 + 4 * len(keys) + legend, 3.8), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, (key, label) in zip(axes, keys):
        for method, points in curves.items():
            x = sorted(points)
            stats = np.array([points[v].get(key, (np.nan, np.nan)) for v in x], dtype=float).reshape(-1, 2)
            errors = 100 * stats[:, 1] if np.isfinite(stats[:, 1]).any() else None   # one seed: matplotlib < 3.7.2
            ax.errorbar(x, 100 * stats[:, 0], yerr=errors, color=colours[method], marker="o", ms=4, capsize=3,
                        lw=1.2, label=method)
            if chosen and method in chosen and chosen[method] in points:
                ax.plot([chosen[method]], [100 * points[chosen[method]].get(key, (np.nan,))[0]], ls="none",
                        marker="o", ms=11, mfc="none", mec=colours[method], mew=1.8)
            if unmeasured := [v for v in x if "acc" not in points[v]]:          # failed or not run: at the foot
                foot = 0.03 + 0.04 * crossed.index(method)                          # one row per method
                ax.plot(unmeasured, [foot] * len(unmeasured), ls="none", marker="x", ms=6, color=colours[method],
                        transform=ax.get_xaxis_transform(), clip_on=False)
        for method, stats in levels.items():
            if np.isfinite(stats.get(key, (np.nan,))[0]):
                ax.axhline(100 * stats[key][0], color=colours[method], ls="--", lw=1.2, label=f"{method} (one point)")
        if logarithmic:
            ax.set_xscale("log")
        from matplotlib.ticker import FixedLocator, NullLocator

        ax.xaxis.set_major_locator(FixedLocator(values))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{v:g}" for v in values], rotation=45 if len(values) > 6 else 0, fontsize=8)
        ax.set_xlabel(setting)
        ax.set_ylabel(label)
        if key == "bwt":
            ax.axhline(0, color="black", lw=0.6)
    fig.suptitle(title or f"ACC and BWT against {setting}", fontsize=10)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=columns,
                    title="ringed: chosen" + ("\n×: no result (failed\nor not run)" if unmeasured_any else "")
                    if chosen or unmeasured_any else None, title_fontsize=8)
    add_note(fig, note)
    return save(fig, path)


def plot_setting_grids(grids: dict[str, tuple[tuple[str, str], dict[tuple[float, float], dict]]], path: str | Path,
                       chosen: dict[str, tuple[float, float]] | None = None, title: str = "", note: str = "") -> Path:
    """One panel per method over the two settings its points vary (e.g. a learning rate and EWC's λ): each cell
    coloured by ACC (one scale for all panels, from the lowest ACC to the highest) and printed with ACC and BWT in
    percent (means over seeds; a point without a result, failed or not run, a cross), the chosen cell outlined.

    ``grids[method] = ((x key, y key), {(x, y): {"acc": (mean, std), "bwt": (mean, std)}})`` in fractions;
    ``chosen``: {method: (x, y)} (a sweep's selection)."""
    if not grids or not any(cells for _, cells in grids.values()):
        raise ShapeError("a grid of settings needs at least one method with a point")
    for method, ((x_key, y_key), cells) in grids.items():
        for (x, y), stats in cells.items():
            if not (np.isfinite(x) and np.isfinite(y)):
                raise ShapeError(f"{method}: {x_key} = {x}, {y_key} = {y} is not a pair of finite numbers")
            check_fractions(np.abs([stats[key][0] for key in ("acc", "bwt") if key in stats]),
                            f"{method} at {x_key} = {x:g}, {y_key} = {y:g}: ACC or BWT")
    from matplotlib.patches import Rectangle

    shapes = {m: (sorted({x for x, _ in cells}), sorted({y for _, y in cells})) for m, (_, cells) in grids.items()}
    width = sum(1.2 + 0.75 * len(xs) for xs, _ in shapes.values())
    height = 1.6 + 0.5 * max(len(ys) for _, ys in shapes.values())
    fig = figure(figsize=(width + 1.2, height), layout="constrained")
    axes = fig.subplots(1, len(grids), squeeze=False)[0]
    accs = [100 * stats["acc"][0] for _, cells in grids.values() for stats in cells.values() if "acc" in stats]
    low, high = (min(accs), max(accs)) if accs else (0.0, 100.0)
    low, high = (low - 0.5, high + 0.5) if high - low < 1 else (low, high)
    image = None
    for ax, (method, ((x_key, y_key), cells)) in zip(axes, grids.items()):
        xs, ys = shapes[method]
        acc = np.full((len(ys), len(xs)), np.nan)
        for (x, y), stats in cells.items():
            i, j = ys.index(y), xs.index(x)
            acc[i, j] = 100 * stats.get("acc", (np.nan,))[0]
            bwt = 100 * stats.get("bwt", (np.nan,))[0]
            if "acc" not in stats:                                   # failed or not run: its place kept, crossed
                ax.text(j, i, "×", ha="center", va="center", fontsize=9, color="0.3")
                continue
            ax.text(j, i, f"{half_up(acc[i, j]):.1f}" + (f"\n{half_up(bwt):+.1f}" if np.isfinite(bwt) else ""),
                    ha="center", va="center", fontsize=6.5, color="white" if acc[i, j] < (low + high) / 2 else "black")
        image = ax.imshow(acc, vmin=low, vmax=high, cmap="viridis", origin="lower", aspect="auto")
        if chosen and method in chosen and chosen[method] in cells:
            x, y = chosen[method]
            ax.add_patch(Rectangle((xs.index(x) - 0.5, ys.index(y) - 0.5), 1, 1, fill=False, ec="red", lw=2))
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs], rotation=45 if len(xs) > 4 else 0, fontsize=7)
        ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys], fontsize=7)
        ax.set_xlabel(x_key)
        ax.set_ylabel(y_key)
        ax.set_title(method, fontsize=9)
    fig.colorbar(image, ax=list(axes), label="ACC (%)")
    crossed = any("acc" not in stats for _, cells in grids.values() for stats in cells.values())
    fig.suptitle((title or "ACC and BWT over two settings") + "\nper cell: ACC, BWT (%)"
                 + ("; outlined: chosen" if chosen else "") + ("; ×: no result (failed or not run)" if crossed else ""),
                 fontsize=9)
    add_note(fig, note)
    return save(fig, path)
