"""Plots are real, non-blank PNG images, written atomically."""

from dataclasses import replace

import numpy as np
import pytest

from spikecl.continual import plots
from spikecl.errors import ShapeError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
R = np.array([[0.1, 0.1, 0.1], [0.9, 0.2, 0.1], [0.7, 0.9, 0.3], [0.6, 0.8, 0.9]])
EVALS = np.array([[0.5, np.nan], [0.9, np.nan], [0.5, 0.4], [0.8, 0.9]])
TASK = np.array([0, 0, 1, 1])


def check_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert 150 < image.shape[0] < 3000 and 150 < image.shape[1] < 3000
    assert image[..., :3].std() > 0.05                      # not a blank single-colour canvas
    assert [p.name for p in path.parent.iterdir()] == [path.name]   # no temporary file left behind


def test_accuracy_matrix_png(tmp_path):
    path = tmp_path / "sub" / "m.png"
    assert plots.plot_accuracy_matrix(R, path, title="x", labels=["a", "b", "c"]) == path
    check_png(path)
    with pytest.raises(ShapeError, match="labels"):
        plots.plot_accuracy_matrix(R, tmp_path / "bad.png", labels=["a"])


def test_task_curves_png(tmp_path):
    check_png(plots.plot_task_curves(np.array([10, 20, 30, 40]), EVALS, TASK, tmp_path / "c.png"))
    with pytest.raises(ShapeError, match="iterations"):
        plots.plot_task_curves(np.arange(3), EVALS, TASK, tmp_path / "bad.png")


def test_task_boundaries_are_drawn_where_the_tasks_ended(tmp_path, monkeypatch):
    """Tasks ending at iterations 18, 36, 56 with evaluations every 20: the dotted lines sit at 18 and 36 (not at
    the evaluations 20 and 40 after them); a file without task ends keeps the last evaluation of each task."""
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.setdefault(path, fig) and path)

    def boundaries(path):
        return sorted({line.get_xdata()[0] for line in drawn[path].axes[0].lines if line.get_linestyle() == ":"})

    iterations, task = np.array([10, 20, 30, 40]), np.array([0, 1, 1, 2])
    evals = np.array([[0.5, np.nan, np.nan], [0.9, 0.3, np.nan], [0.5, 0.4, np.nan], [0.8, 0.9, 0.2]])
    plots.plot_task_curves(iterations, evals, task, tmp_path / "a.png", task_ends=[18, 36, 56])
    plots.plot_task_curves(iterations, evals, task, tmp_path / "b.png")
    assert boundaries(tmp_path / "a.png") == [18, 36] and boundaries(tmp_path / "b.png") == [10, 30]


def test_task_curves_go_on_to_the_matrix_rows_at_each_task_end(tmp_path, monkeypatch):
    """Evaluations every 20 iterations of tasks ending at 18, 36, 56 stopped at 40: the curves ended 16 iterations
    before training did, task 1 at 80 % where the last row says 60 %. Given the matrix, each task's curve goes on to
    its rows at the task ends (an evaluation at an end gives way to the row), marked by hollow squares."""
    saved = kept_figures(monkeypatch)
    iterations, task = np.array([10, 20, 36, 40]), np.array([0, 1, 1, 2])
    evals = np.array([[0.5, np.nan, np.nan], [0.9, 0.3, np.nan], [0.5, 0.4, np.nan], [0.8, 0.9, 0.2]])
    rows = np.array([[0.1, 0.1, 0.1], [0.95, 0.1, 0.1], [0.7, 0.85, 0.1], [0.6, 0.8, 0.9]])
    plots.plot_task_curves(iterations, evals, task, tmp_path / "a.png", task_ends=[18, 36, 56], rows=rows)
    lines = {line.get_label(): line for line in saved[0].axes[0].lines}
    assert list(lines["task 1"].get_xdata()) == [10, 18, 20, 36, 40, 56]       # 36: the row, not the evaluation
    np.testing.assert_allclose(lines["task 1"].get_ydata(), [50, 95, 90, 70, 80, 60])
    assert list(lines["task 3"].get_xdata()) == [40, 56] and lines["task 3"].get_ydata()[-1] == pytest.approx(90)
    squares = [line for line in saved[0].axes[0].lines if line.get_marker() == "s" and len(line.get_xdata())]
    assert [len(line.get_xdata()) for line in squares] == [3, 2, 1]
    assert "after each task\n(whole split)" in [t.get_text() for t in saved[0].axes[0].get_legend().get_texts()]


def kept_figures(monkeypatch) -> list:
    """The figures ``plots`` saves from now on, in order (they are still written)."""
    saved, save = [], plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path: saved.append(fig) or save(fig, path))
    return saved


def bars_of(ax) -> dict[str, tuple[list, list]]:
    """{label: (bar heights, error bar half-lengths)} of the bar groups drawn on ``ax``."""
    from matplotlib.container import BarContainer

    drawn = {}
    for bars in (c for c in ax.containers if isinstance(c, BarContainer)):
        spans = [] if bars.errorbar is None else [np.ptp(np.reshape(segment, (-1, 2))[:, 1]) / 2 if np.size(segment)
                                                  else np.nan for segment in bars.errorbar.lines[2][0].get_segments()]
        drawn[bars.get_label()] = ([patch.get_height() for patch in bars.patches], spans)
    return drawn


def test_method_comparison_draws_each_methods_mean_and_std_and_is_replaced_in_place(tmp_path, monkeypatch):
    saved = kept_figures(monkeypatch)
    summary = {"finetune": {"acc": (0.45, 0.01), "bwt": (-0.45, 0.02)},
               "hlop": {"acc": (0.75, 0.01), "bwt": (-0.02, 0.01)},
               "joint": {"acc": (0.88, 0.005)}}                  # no BWT: a gap, not an error
    path = plots.plot_method_comparison(summary, tmp_path / "cmp" / "cmp.png")
    check_png(path)
    drawn = bars_of(saved[0].axes[0])
    assert drawn["finetune"] == (pytest.approx([45.0, -45.0]), pytest.approx([1.0, 2.0]))
    assert drawn["hlop"] == (pytest.approx([75.0, -2.0]), pytest.approx([1.0, 1.0]))
    assert drawn["joint"][0][0] == pytest.approx(88.0) and np.isnan(drawn["joint"][0][1])
    assert [t.get_text() for t in saved[0].axes[0].get_xticklabels()] == ["ACC", "BWT"]
    plots.plot_method_comparison({"a": {"acc": (0.5, 0.1)}}, tmp_path / "one" / "one.png")
    assert [t.get_text() for t in saved[1].axes[0].get_xticklabels()] == ["ACC"]    # one task: no BWT group
    plots.plot_method_comparison(summary, path)                # plots are derived files: replaced in place
    check_png(path)


def test_accuracy_vs_synops_error_bars_are_the_tables_sample_std(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    bars = []
    errorbar = Axes.errorbar
    monkeypatch.setattr(Axes, "errorbar", lambda ax, *a, **k: bars.append(k) or errorbar(ax, *a, **k))
    path = plots.plot_accuracy_vs_synops({"a": ([0.70, 0.80, 0.90], [100.0, 200.0, 300.0]),
                                          "b": ([0.50], [150.0])}, tmp_path / "s.png")
    check_png(path)
    # sample std (ddof = 1) as in the tables: ACC 70, 80, 90 % → 10 points; SynOps 100, 200, 300 → 100; 1 seed: 0
    assert [(k["xerr"], k["yerr"]) for k in bars] == [pytest.approx((100.0, 10.0)), (0.0, 0.0)]


def test_the_linear_synops_axis_starts_at_zero_and_the_log_axis_where_values_span_decades(tmp_path, monkeypatch):
    """SynOps of 197,150 and 197,380 (0.1 % apart) filled the axis's width, one method looking far costlier: a
    linear axis starts at 0; values spanning two decades or more keep the logarithmic axis."""
    saved = kept_figures(monkeypatch)
    plots.plot_accuracy_vs_synops({"a": ([0.7], [197150.0]), "b": ([0.8], [197380.0])}, tmp_path / "l.png")
    plots.plot_accuracy_vs_synops({"a": ([0.7], [100.0]), "b": ([0.8], [20000.0])}, tmp_path / "g.png")
    linear, log = (fig.axes[0] for fig in saved)
    assert linear.get_xscale() == "linear" and linear.get_xlim() == pytest.approx((0, 1.06 * 197380))   # markers whole
    assert log.get_xscale() == "log" and log.get_xlim()[0] > 0


def test_the_accuracy_synops_plot_names_methods_drawn_at_one_point(tmp_path, monkeypatch):
    """A one-task run where fine-tuning, EWC and replay end alike showed one point (the last drawn) for a legend of
    three: the note names the methods that share a point."""
    notes = []
    monkeypatch.setattr(plots, "add_note", lambda fig, note: notes.append(note))
    same = ([0.7, 0.8], [1000.0, 1100.0])
    plots.plot_accuracy_vs_synops({"finetune": same, "ewc": same, "gpm": ([0.7], [900.0]), "replay": same},
                                  tmp_path / "s.png", note="not drawn: x")
    assert notes == ["not drawn: x; one point: finetune, ewc, replay"]
    plots.plot_accuracy_vs_synops({"gpm": ([0.7], [900.0])}, tmp_path / "s.png")
    assert notes[-1] == ""


def test_a_method_keeps_one_colour_of_its_own_in_every_plot_of_a_report(tmp_path, monkeypatch):
    """15 methods (as models/hlop_pmnist5k.toml lists) get 15 colours (tab10 repeated after 10 before), and the
    accuracy/SynOps plot, which leaves out methods without measures, colours the rest as the comparison does."""
    from matplotlib.axes import Axes

    from spikecl.figures import colors

    assert len({tuple(c) for c in colors(15)}) == 15 and len({tuple(c) for c in colors(40)}) == 40
    assert len({tuple(c) for c in colors(50)}) == 50 and len({tuple(c) for c in colors(1000)}) == 1000
    drawn = []
    bar, errorbar = Axes.bar, Axes.errorbar
    monkeypatch.setattr(Axes, "bar", lambda ax, *a, **k: drawn.append((k.get("label"), k.get("color")))
                        or bar(ax, *a, **k))
    monkeypatch.setattr(Axes, "errorbar", lambda ax, *a, **k: drawn.append((k.get("label"), k.get("color")))
                        or errorbar(ax, *a, **k))
    from spikecl.continual.report import write_plots
    from spikecl.continual.results import ContinualResult

    def run(method, synops):
        measures = {"synops": np.array([synops, synops])} if synops else {}
        return ContinualResult(method, 0, {"strategy": {"methods": ["a", "b", "c"]}},
                               np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.9]]), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)), np.ones(2),
                               {"acc": 0.85, "bwt": -0.1}, measures=measures)

    monkeypatch.setattr("spikecl.continual.report.final_measures",
                        lambda rs: {r.method: {"synops": float(r.measures["synops"][-1])} for r in rs if r.measures})
    write_plots([run("a", 100.0), run("b", 0), run("c", 300.0)], tmp_path)
    colours = {}
    for label, colour in (item for item in drawn if item[0] in ("a", "b", "c")):
        assert colours.setdefault(label, colour) == colour, label            # c: the same colour in both plots
    assert set(colours) == {"a", "b", "c"} and len({tuple(c) for c in colours.values()}) == 3


def test_the_overlap_scatter_draws_code_overlaps_as_measured_under_the_tables_names(tmp_path, monkeypatch):
    """The jitter that keeps pairs of one count apart moves the input overlap (the control), never the measured
    code overlap (which drew negative overlaps before); panels are titled as the comparison table's rows."""
    from matplotlib.axes import Axes

    from spikecl.sdr.plots import plot_overlap_scatter

    drawn, titles = [], []
    scatter, set_title = Axes.scatter, Axes.set_title
    monkeypatch.setattr(Axes, "scatter", lambda ax, x, y, **k: drawn.append((x, y)) or scatter(ax, x, y, **k))
    monkeypatch.setattr(Axes, "set_title", lambda ax, t, **k: titles.append(t) or set_title(ax, t, **k))
    x, c = np.array([0, 1, 2, 3]), np.array([0, 0, 1, 2])
    plot_overlap_scatter({"pooler": (x, c, 0.9), "fly-hash": (x, c, 0.8)}, tmp_path / "s.png")
    assert all(np.array_equal(y, c) and np.abs(xs - x).max() <= 0.3 for xs, y in drawn)
    assert titles == ["k-WTA spatial pooler\nSpearman ρ = 0.900", "fly-hash control (fixed)\nSpearman ρ = 0.800"]


def test_legends_of_many_long_labels_fit_beside_the_axes(tmp_path, monkeypatch):
    """24 and 40 methods with sweep-style labels: the legend takes columns and the figure widens, so constrained layout
    still fits the axes (it warned that they collapsed to zero, and cut the labels, before)."""
    import warnings

    summary = {f"m{i} @ strategy.ewc.lam = 10.0": {"acc": (0.5, 0.01), "bwt": (-0.1, 0.01)} for i in range(24)}
    points = {f"m{i} @ strategy.ewc.lam = 10.0": ([0.5 + i / 100], [4000.0 + i]) for i in range(40)}
    (tmp_path / "c").mkdir(), (tmp_path / "s").mkdir()
    saved = kept_figures(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_png(plots.plot_method_comparison(summary, tmp_path / "c" / "c.png"))
        check_png(plots.plot_accuracy_vs_synops(points, tmp_path / "s" / "s.png"))
    for fig, names in zip(saved, (summary, points)):
        legend = fig.axes[0].get_legend()
        assert [t.get_text() for t in legend.get_texts()] == list(names) and legend._ncols >= 2
        assert fig.axes[0].get_position().width > 0.2             # the axes keep their room beside the legend


def test_task_curves_of_many_tasks_keep_their_axes_and_name_every_task(tmp_path, monkeypatch):
    """30 tasks: the legend takes columns (it ran off the figure after task 24 and squeezed the axes before); a
    multitask run's task ends, all at the end of training, draw no boundary."""
    import warnings

    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.setdefault(path, fig) and path)
    n = 30
    task = np.repeat(np.arange(n), 2)
    evals = np.where(np.arange(n)[None] <= task[:, None], 0.5, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.plot_task_curves(np.arange(2 * n) * 10, evals, task, tmp_path / "c.png", task_ends=np.arange(n) * 20)
        drawn[tmp_path / "c.png"].canvas.draw()              # constrained layout runs: no collapsed axes
    legend = drawn[tmp_path / "c.png"].axes[0].get_legend()
    assert len(legend.get_texts()) == n and legend._ncols >= 2
    assert drawn[tmp_path / "c.png"].axes[0].get_position().height > 0.5
    plots.plot_task_curves(np.array([10, 20]), np.array([[0.5, 0.4], [0.6, 0.5]]), np.array([1, 1]),
                           tmp_path / "m.png", task_ends=[20, 20])
    assert [line for line in drawn[tmp_path / "m.png"].axes[0].lines if line.get_linestyle() == ":"] == []
    plots.plot_task_curves(np.array([5, 15]), np.array([[0.5, np.nan], [0.6, 0.5]]), np.array([0, 1]),
                           tmp_path / "t.png", task_ends=[10, 20])
    ax = drawn[tmp_path / "t.png"].axes[0]
    assert [line.get_markersize() for line in ax.lines if line.get_linestyle() == "-"] == [3, 7]   # lone: visible
    assert ax.xaxis.get_major_locator()._integer                                  # iterations are whole numbers


def test_comparison_draws_no_error_bar_for_one_seed_and_says_what_it_leaves_out(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from spikecl.continual.report import comparison_summary
    from spikecl.continual.results import ContinualResult

    bars = []
    bar = Axes.bar
    monkeypatch.setattr(Axes, "bar", lambda ax, *a, **k: bars.append(k) or bar(ax, *a, **k))

    def run(method, seed, acc):
        return ContinualResult(method, seed, {}, np.array([[0.1, 0.1], [0.9, 0.2], [acc, 0.9]]), np.zeros(0, np.int64),
                               np.zeros(0, np.int64), np.zeros((0, 2)), np.ones(2), {})

    summary = comparison_summary([run("a", 0, 0.8), run("a", 1, 0.6), run("b", 0, 0.7)])
    assert np.isnan(summary["b"]["acc"][1]) and summary["a"]["acc"][1] > 0
    path = plots.plot_method_comparison(summary, tmp_path / "c.png", title="sweep x", note="not drawn, failed: y")
    check_png(path)
    assert bars[1]["yerr"] is None and not np.isnan(bars[0]["yerr"]).any()    # matplotlib 3.7.0 failed on NaNs


def test_the_curves_title_says_how_many_evaluation_samples_at_most(tmp_path, monkeypatch):
    from spikecl.continual.report import write_plots
    from spikecl.continual.results import ContinualResult

    titles = []
    monkeypatch.setattr(plots, "plot_task_curves", lambda *a, title=None, **k: titles.append(title) or a[3])
    run = ContinualResult("a", 0, {"train": {"eval_samples": 50}}, np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.9]]),
                          np.array([5, 15]), np.array([0, 1]), np.array([[0.5, np.nan], [0.6, 0.5]]), np.ones(2),
                          {"acc": 0.85, "bwt": -0.1})
    write_plots([run], tmp_path)
    assert titles == ["a, seed 0 (up to 50 evaluation samples of each task)"]


def test_an_accuracy_synops_plot_of_runs_now_without_measures_is_removed(tmp_path):
    from spikecl.continual.report import write_plots
    from spikecl.continual.results import ContinualResult

    stale = tmp_path / "accuracy-synops.png"
    stale.write_bytes(b"an earlier report's plot")
    run = ContinualResult("a", 0, {}, np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.9]]), np.zeros(0, np.int64),
                          np.zeros(0, np.int64), np.zeros((0, 2)), np.ones(2), {"acc": 0.85, "bwt": -0.1})
    written = write_plots([run], tmp_path)
    assert not stale.exists() and stale not in written


def test_the_ca3_raster_keys_its_operation_markers_under_any_title(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from spikecl.memory import learn, make_schedule, recall_by_cue
    from spikecl.memory.plots import plot_raster

    titles = []
    set_title = Axes.set_title
    monkeypatch.setattr(Axes, "set_title", lambda ax, t, **k: titles.append(t) or set_title(ax, t, **k))
    schedule = make_schedule([learn(0, [1]), recall_by_cue(0)], 1, 2)
    plot_raster({"OUTcue": np.zeros((schedule.duration_ms, 1), bool)}, schedule, tmp_path / "r.png", title="run")
    assert titles == ["run; markers: L learn, C recall by cue, F recall by content"]


def test_accuracy_matrix_heatmap_leaves_out_the_init_row_and_draws_percent(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    shown = []
    imshow = Axes.imshow
    monkeypatch.setattr(Axes, "imshow", lambda ax, data, *a, **k: shown.append(np.array(data)) or
                        imshow(ax, data, *a, **k))
    acc = np.array([[0.1, 0.2], [0.9, 0.3], [0.8, 0.95]])
    plots.plot_accuracy_matrix(acc, tmp_path / "m.png")
    np.testing.assert_allclose(shown[0], [[90, 30], [80, 95]])    # after task 1, after task 2; init row left out


def test_comparison_bars_and_error_bars_are_in_percent(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    drawn = []
    bar = Axes.bar
    monkeypatch.setattr(Axes, "bar", lambda ax, x, h, *a, **k: drawn.append((np.array(h), np.array(k["yerr"])))
                        or bar(ax, x, h, *a, **k))
    plots.plot_method_comparison({"ewc": {"acc": (0.8, 0.05), "bwt": (-0.1, 0.02)}}, tmp_path / "c.png")
    heights, errors = drawn[0]
    np.testing.assert_allclose(heights, [80, -10])
    np.testing.assert_allclose(errors, [5, 2])                 # ± std in points, as the table prints it


@pytest.mark.parametrize("draw", [
    lambda path: plots.plot_method_comparison({"ewc": {"acc": (65.7, 1.9), "bwt": (-0.1, 0.01)}}, path),
    lambda path: plots.plot_method_comparison({"ewc": {"acc": (0.657, 0.019), "bwt": (-17.8, 1.8)}}, path),
    lambda path: plots.plot_accuracy_vs_synops({"ewc": ([65.7, 66.1], [1e4, 1.1e4])}, path),
    lambda path: plots.plot_accuracy_vs_synops({"ewc": ([-0.5, 0.7], [1e4, 1.1e4])}, path),
], ids=["comparison ACC", "comparison BWT", "synops percent", "synops negative"])
def test_plots_of_summaries_refuse_percentages_as_the_other_plots_do(tmp_path, draw):
    """The comparison and the accuracy-SynOps plot drew ACC = 6,570 % from percentages; every plot now takes
    fractions only (BWT in [-1, 1]), a one-line DataError naming the method otherwise, and writes nothing."""
    from spikecl.errors import DataError

    with pytest.raises(DataError, match=r"^ewc: .* holds .*; accuracies are fractions in \[0, 1\], not percentages$"):
        draw(tmp_path / "p.png")
    assert not list(tmp_path.iterdir())


def test_the_comparison_plots_say_which_runs_they_leave_out_and_how_many_seeds_each_method_has(tmp_path, monkeypatch):
    """The table names runs its experiment planned but no file holds; the figures, which would otherwise show a
    one-method "comparison" or a 2-seed bar like a 3-seed one, say it under their axes."""
    from spikecl.continual import report
    from spikecl.continual.results import ContinualResult

    def run(method, seed):
        return ContinualResult(method, seed, {"strategy": {"methods": ["a", "b"]}, "seeds": [0, 1, 2]},
                               np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.9]]), np.zeros(0, np.int64),
                               np.zeros(0, np.int64), np.zeros((0, 2)), np.ones(2), {"acc": 0.85, "bwt": -0.1})

    results = [run("a", 0), run("a", 1), run("a", 2), run("b", 0), run("b", 2)]
    assert report.plot_note(results) == "not drawn (no results file read): b seed 1; seeds per method: a 3, b 2"
    assert report.plot_note(results[:3]) == "not drawn (no results file read): b seed 0, b seed 1, b seed 2"
    assert report.plot_note([run("a", s) for s in range(3)] + [run("b", s) for s in range(3)]) == ""
    from spikecl.run_files import write_divergence                 # a run that diverged: named as such

    placed = [replace(r, config={**r.config, "output_dir": str(tmp_path), "name": "x"}) for r in results]
    (tmp_path / "x").mkdir()
    write_divergence(tmp_path / "x" / "b-seed1.h5", "loss became NaN")
    assert report.plot_note(placed) == "not drawn (diverged): b seed 1; seeds per method: a 3, b 2"
    notes, compare = [], plots.plot_method_comparison
    monkeypatch.setattr(plots, "plot_method_comparison", lambda *a, **k: notes.append(k["note"]) or compare(*a, **k))
    report.write_plots(results, tmp_path)
    assert notes == [report.plot_note(results)]
    wrapped = tmp_path / "wrapped.png"              # a long note wraps to the figure's width rather than run off it
    plots.plot_method_comparison({"a": {"acc": (0.5, 0.1)}}, wrapped, note="x " * 200)
    assert wrapped.stat().st_size > 0


def test_the_comparison_leaves_out_a_bwt_group_no_method_has(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    ticks = []
    set_xticks = Axes.set_xticks
    monkeypatch.setattr(Axes, "set_xticks", lambda ax, t, labels=None, **k: ticks.append(labels)
                        or set_xticks(ax, t, labels, **k))
    plots.plot_method_comparison({"a": {"acc": (0.5, 0.1), "bwt": (np.nan, np.nan)}, "b": {"acc": (0.6, 0.1)}},
                                 tmp_path / "one-task.png")
    plots.plot_method_comparison({"a": {"acc": (0.5, 0.1), "bwt": (-0.1, 0.0)}, "b": {"acc": (0.6, 0.1)}},
                                 tmp_path / "two-tasks.png")
    assert ticks == [["ACC"], ["ACC", "BWT"]]


def test_matrix_cells_show_the_tables_decimal(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    texts = []
    text = Axes.text
    monkeypatch.setattr(Axes, "text", lambda ax, x, y, s, **k: texts.append(s) or text(ax, x, y, s, **k))
    plots.plot_accuracy_matrix(np.array([[0.1, 0.1], [0.705, 0.105], [0.125, 0.9]]), tmp_path / "m.png")
    assert texts == ["70.5", "10.5", "12.5", "90.0"]
    texts.clear()                       # a tie (7,275 of 10,000) as the tables round it, whatever the float's last bit
    plots.plot_accuracy_matrix(np.array([[0.1, 0.1], [0.7275, 0.9], [0.9, 0.0125]]), tmp_path / "m.png")
    assert texts == ["72.8", "90.0", "90.0", "1.3"]


def test_a_matrix_shows_unlearned_class_incremental_tasks_as_dashes_and_fits_its_title(tmp_path, monkeypatch):
    """Class-incremental learning masks the classes of tasks not yet learned: their cells (above the diagonal) were
    drawn as measured 0.0; now dashes on grey. A long title (a long variant's name) was cut at both sides: the
    figure widens to it, and a long row label is wrapped to the axes' height."""
    from matplotlib.axes import Axes

    texts, saved = [], kept_figures(monkeypatch)
    text = Axes.text
    monkeypatch.setattr(Axes, "text", lambda ax, x, y, s, **k: texts.append(s) or text(ax, x, y, s, **k))
    R = np.array([[0.1, 0.1, 0.1], [0.9, 0.0, 0.0], [0.1, 0.8, 0.0], [0.0, 0.2, 0.7]])
    plots.plot_accuracy_matrix(R, tmp_path / "m.png", unlearned_blank=True)
    assert texts == ["90.0", "–", "–", "10.0", "80.0", "–", "0.0", "20.0", "70.0"]
    texts.clear()
    title = "split-digits (digits)\nreplay-with-a-very-long-descriptive-variant-name-lr0.01, seed 0"
    plots.plot_accuracy_matrix(R[:2, :1], tmp_path / "t.png", title=title, rows="after turn (all tasks trained in "
                                                                                   "the first)")
    assert texts == ["90.0"]                                        # drawn as it is without the option
    fig = saved[-1]
    assert fig.get_figwidth() >= len(title.splitlines()[1]) * 0.075
    assert "\n" in fig.axes[0].get_ylabel()


def test_points_without_a_result_keep_their_place_in_a_sweeps_plots(tmp_path, monkeypatch):
    """A joint search whose λ = 30 diverged at every rate drew no λ = 30 row (the chosen cell looked inside a range
    it was not): every planned point keeps its place, crossed where it has no result, on grids and on curves."""
    from matplotlib.axes import Axes

    from spikecl.continual.sweep_plot import plot_sweep

    texts, crosses = [], []
    text, plot = Axes.text, Axes.plot
    monkeypatch.setattr(Axes, "text", lambda ax, x, y, s, **k: texts.append((x, y, s)) or text(ax, x, y, s, **k))
    monkeypatch.setattr(Axes, "plot", lambda ax, *a, **k: (crosses.append(list(a[0])) if k.get("marker") == "x"
                                                           else None) or plot(ax, *a, **k))
    points = {f"ewc @ lr={lr}_lam={lam}": ["ewc", {"train.lr": lr, "strategy.ewc.lam": lam}]
              for lr in (0.1, 0.2) for lam in (1.0, 30.0)}
    summary = {label: {"acc": [0.7, 0.0], "bwt": [-0.1, 0.0]} for label in points if "lam=1.0" in label}
    record = {"name": "s", "seeds": {label: 1 for label in summary}, "summary": summary, "failures": {},
              "points": points}
    plot_sweep(record, tmp_path / "grid.png")
    assert sorted((x, y) for x, y, s in texts if s == "×") == [(0, 1), (1, 1)]   # the λ = 30 row, both rates
    curve_points = {f"ewc @ lr={lr}": ["ewc", {"train.lr": lr}] for lr in (0.1, 0.2, 0.4, 0.8)}
    record.update(points=curve_points, summary={label: {"acc": [0.7, 0.0]} for label in list(curve_points)[:2]})
    plot_sweep(record, tmp_path / "curves.png")
    assert crosses == [[0.4, 0.8]]


def test_quality_map_and_settings_grid_cells_round_ties_as_the_tables_do(tmp_path, monkeypatch):
    """The cells printed 62 for a recall quality of 0.625 (Python's formatting rounds a tie to even) where the
    CA3 table rounds it up; a settings grid's cell would print 72.2 / −11.2 where the sweep's table prints 72.3 /
    −11.3."""
    from matplotlib.axes import Axes

    from spikecl.memory.plots import plot_quality_maps

    texts = []
    text = Axes.text
    monkeypatch.setattr(Axes, "text", lambda ax, x, y, s, **k: texts.append(s) or text(ax, x, y, s, **k))
    plot_quality_maps({"quality": np.array([[0.625, np.nan]])}, ["a"], ["1", "2"], tmp_path / "q.png")
    assert texts == ["63", "–"]
    texts.clear()
    plots.plot_setting_grids({"si": (("train.lr", "strategy.si.c"), {(0.2, 0.1): {"acc": (0.7225, 0.0),
                                                                                "bwt": (-0.1125, 0.0)}})},
                             tmp_path / "g.png", chosen={"si": (0.2, 0.1)})
    assert texts == ["72.3\n-11.3"]


def test_figure_titles_name_the_experiment_its_dataset_and_a_validation_split(tmp_path, monkeypatch):
    from spikecl.continual import report
    from spikecl.continual.results import ContinualResult

    def run(method, **data):
        return ContinualResult(method, 0, {"name": "split-digits", "data": {"dataset": "digits", **data}},
                               np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.9]]), np.zeros(0, np.int64),
                               np.zeros(0, np.int64), np.zeros((0, 2)), np.ones(2), {"acc": 0.85, "bwt": -0.1})

    titles = []
    for name in ("plot_accuracy_matrix", "plot_method_comparison"):
        draw = getattr(plots, name)
        monkeypatch.setattr(plots, name, lambda *a, draw=draw, **k: titles.append(a[3] if len(a) > 3 else k["title"])
                            or draw(*a, **k))
    report.write_plots([run("a"), run("b", eval_split="validation")], tmp_path)
    assert titles == ["split-digits (digits)\na, seed 0",
                      "split-digits (digits, validation split)\nb, seed 0",
                      "split-digits (digits, validation split)\nmethods compared"]
    assert report.experiment_title([run("a")]) == "split-digits (digits)\n"
    titles.clear()
    from matplotlib.axes import Axes

    ylabels, set_ylabel = [], Axes.set_ylabel
    monkeypatch.setattr(Axes, "set_ylabel", lambda ax, text, **k: ylabels.append(text) or set_ylabel(ax, text, **k))
    report.write_plots([run("multitask")], tmp_path)          # its rows are not "after training task i" alone
    assert titles[0] == "split-digits (digits)\nmultitask, seed 0 (every task trained at once)"
    assert ylabels[0].replace("\n", " ") == "after turn (all tasks trained in the first)"
