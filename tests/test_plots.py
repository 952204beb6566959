"""Plots are real PNG images with content."""

import numpy as np

from spikecl import plots

PNG = b"\x89PNG\r\n\x1a\n"


def check_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 150 and image.shape[1] > 150
    assert image[..., :3].std() > 0.05                      # not a blank canvas


def test_accuracy_matrix_png(tmp_path):
    R = np.array([[0.1, 0.1, 0.1], [0.9, 0.2, 0.1], [0.7, 0.9, 0.3], [0.6, 0.8, 0.9]])
    check_png(plots.plot_accuracy_matrix(R, tmp_path / "sub" / "m.png", title="x"))


def test_task_curves_png(tmp_path):
    evals = np.array([[0.5, np.nan], [0.9, np.nan], [0.5, 0.4], [0.8, 0.9]])
    check_png(plots.plot_task_curves(np.array([10, 20, 30, 40]), evals, np.array([0, 0, 1, 1]), tmp_path / "c.png"))


def test_method_comparison_png_and_overwrites_atomically(tmp_path):
    summary = {"finetune": {"acc": (0.45, 0.01), "bwt": (-0.45, 0.02)}, "hlop": {"acc": (0.75, 0.01), "bwt": (-0.02, 0.01)}}
    path = plots.plot_method_comparison(summary, tmp_path / "cmp.png")
    check_png(path)
    plots.plot_method_comparison(summary, path)                # plots are derived files: replaced in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp.png"]
