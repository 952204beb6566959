"""PNG figures of continual-learning results (matplotlib, Agg backend, imported lazily).

Every function writes its PNG atomically (temporary file + rename), creates parent folders, closes its figure and
returns the path. Accuracies are fractions in [0, 1] and are drawn in percent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikecl.errors import require
from spikecl.io import atomic_write


def _pyplot():
    matplotlib = require("matplotlib", "torch")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"),
                            overwrite=True)
    finally:
        plt.close(fig)


def plot_accuracy_matrix(R: np.ndarray, path: str | Path, title: str | None = None) -> Path:
    """Heatmap of the accuracy matrix ``R`` [T+1, T] (rows: untrained, after task 1..T; columns: tested task)."""
    plt = _pyplot()
    R = np.asarray(R, dtype=float)
    n = R.shape[1]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 1.0 + 0.5 * (n + 1)))
    image = ax.imshow(100 * R, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    for i in range(R.shape[0]):
        for j in range(n):
            value = 100 * R[i, j]
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if value < 60 else "black")
    ax.set_xticks(range(n), [str(j + 1) for j in range(n)])
    ax.set_yticks(range(R.shape[0]), ["init"] + [str(i) for i in range(1, R.shape[0])])
    ax.set_xlabel("tested on task")
    ax.set_ylabel("after training task")
    ax.set_title(title or "accuracy (%)")
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    return _save(fig, path)


def plot_task_curves(iterations: np.ndarray, evals: np.ndarray, eval_task: np.ndarray, path: str | Path,
                     title: str | None = None) -> Path:
    """Accuracy of each task over training iterations, from when it is first trained; dotted lines mark task
    boundaries, so drops right after a boundary (the stability gap) are visible."""
    plt = _pyplot()
    iterations, evals, eval_task = np.asarray(iterations), np.asarray(evals, dtype=float), np.asarray(eval_task)
    fig, ax = plt.subplots(figsize=(8, 4))
    colors = plt.get_cmap("tab10")
    for j in range(evals.shape[1]):
        seen = eval_task >= j
        if np.any(seen):
            ax.plot(iterations[seen], 100 * evals[seen, j], color=colors(j % 10), lw=1.2, label=f"task {j + 1}")
    for b in np.flatnonzero(np.diff(eval_task)) + 1:
        ax.axvline(iterations[b], color="grey", ls=":", lw=0.8)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or "accuracy on each task during training")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return _save(fig, path)


def plot_method_comparison(summary: dict[str, dict[str, tuple[float, float]]], path: str | Path) -> Path:
    """Bars of ACC and BWT (percent, mean ± std over seeds) per method; ``summary[method][metric] = (mean, std)``."""
    plt = _pyplot()
    methods = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(2 + 1.1 * len(methods), 3.5))
    for ax, key, label in ((axes[0], "acc", "ACC (%)"), (axes[1], "bwt", "BWT (points)")):
        means = [100 * summary[m].get(key, (np.nan, 0))[0] for m in methods]
        stds = [100 * summary[m].get(key, (np.nan, 0))[1] for m in methods]
        ax.bar(range(len(methods)), means, yerr=stds, capsize=3, color=[plt.get_cmap("tab10")(i % 10)
                                                                       for i in range(len(methods))])
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.axhline(0, color="black", lw=0.6)
    axes[0].set_ylim(0, 100)
    fig.suptitle("methods compared (mean ± std over seeds)")
    fig.tight_layout()
    return _save(fig, path)
