"""Metrics against small matrices and evaluation sequences computed by hand (in the comments)."""

import subprocess
import sys

import numpy as np
import pytest

from spikecl.continual import metrics
from spikecl.errors import ConfigError, DataError, NumericalError, ShapeError, SpikeCLError

# 3 tasks. Row 0: untrained; row i: after task i; column j: task j+1.
R = np.array([
    [0.10, 0.20, 0.30],
    [0.90, 0.25, 0.35],
    [0.70, 0.95, 0.40],
    [0.60, 0.85, 0.80],
])


def test_acc_bwt_fwt_by_hand():
    # ACC = mean of the last row = (0.60 + 0.85 + 0.80) / 3
    assert metrics.acc(R) == pytest.approx(0.75)
    # BWT = ((0.60 − 0.90) + (0.85 − 0.95)) / 2
    assert metrics.bwt(R) == pytest.approx(-0.20)
    # FWT = ((R[1,2] − R[0,2]) + (R[2,3] − R[0,3])) / 2 = ((0.25 − 0.20) + (0.40 − 0.30)) / 2 (1-based);
    # the trap R[i,i] − R[0,i] (after training it) would give ((0.95 − 0.20) + (0.80 − 0.30)) / 2 = 0.625
    assert metrics.fwt(R) == pytest.approx(0.075)


def test_acc_per_step_averages_only_seen_tasks():
    # [0.90, (0.70 + 0.95) / 2, 0.75]; averaging unseen tasks too would give 0.50 after task 1
    np.testing.assert_allclose(metrics.acc_per_step(R), [0.90, 0.825, 0.75])


def test_forgetting_uses_best_accuracy_after_learning_not_the_diagonal():
    peak_later = np.array([
        [0.10, 0.99, 0.10],   # task 2 is easy at init: rows before it was learned must not count
        [0.90, 0.98, 0.10],
        [0.95, 0.90, 0.10],   # task 1 peaks after task 2
        [0.75, 0.80, 0.90],
    ])
    # f_1 = max(0.90, 0.95) − 0.75 = 0.20;  f_2 = max(0.90) − 0.80 = 0.10 (not 0.99 − 0.80)
    np.testing.assert_allclose(metrics.forgetting_per_task(peak_later), [0.20, 0.10])
    assert metrics.forgetting(peak_later) == pytest.approx(0.15)
    # −BWT = −((0.75 − 0.90) + (0.80 − 0.90)) / 2 = 0.125 ≠ forgetting
    assert -metrics.bwt(peak_later) == pytest.approx(0.125)
    # every task but the last is counted: with R, f = [0.90 − 0.60, 0.95 − 0.85]
    np.testing.assert_allclose(metrics.forgetting_per_task(R), [0.30, 0.10])


def test_forgetting_excludes_the_final_row_from_the_max():
    improved = np.array([[0.1, 0.1], [0.8, 0.1], [0.9, 0.9]])
    # f_1 = R[1,1] − R[2,1] = 0.8 − 0.9 = −0.1 (backward transfer); a max over l ≤ T would clip it to 0
    np.testing.assert_allclose(metrics.forgetting_per_task(improved), [-0.1])


def test_intransigence_against_joint_reference():
    joint_diag = np.array([0.92, 0.96, 0.85])
    # a* − diag(R[1:]) = [0.92 − 0.90, 0.96 − 0.95, 0.85 − 0.80]
    np.testing.assert_allclose(metrics.intransigence(R, joint_diag), [0.02, 0.01, 0.05])
    with pytest.raises(ShapeError, match="joint reference"):
        metrics.intransigence(R, [0.9, 0.9])
    with pytest.raises(NumericalError, match="joint reference"):
        metrics.intransigence(R, [0.9, np.nan, 0.9])


def test_single_task_has_no_transfer_or_forgetting():
    one = np.array([[0.1], [0.9]])
    assert metrics.acc(one) == pytest.approx(0.9)
    np.testing.assert_allclose(metrics.acc_per_step(one), [0.9])
    assert np.isnan(metrics.bwt(one)) and np.isnan(metrics.fwt(one)) and np.isnan(metrics.forgetting(one))
    assert metrics.forgetting_per_task(one).shape == (0,)


# Continual evaluation: 3 tasks, evaluated every ρ iterations; NaN = task not yet trained.
EVALS = np.array([
    # task 1, task 2, task 3
    [0.20, np.nan, np.nan],   # training task 1
    [0.90, np.nan, np.nan],   # end of task 1
    [0.40, 0.30, np.nan],     # training task 2: stability gap on task 1 (0.90 → 0.40)
    [0.70, 0.80, np.nan],
    [0.85, 0.90, np.nan],     # end of task 2
    [0.60, 0.50, 0.40],       # training task 3: gap on tasks 1 and 2
    [0.80, 0.85, 0.85],
    [0.75, 0.88, 0.95],
])
TASK = np.array([0, 0, 1, 1, 1, 2, 2, 2])


def test_min_acc_and_wc_acc_by_hand():
    # task 1: min over evaluations 2..7 = 0.40 (the 0.20 while it was trained does not count);
    # task 2: min over evaluations 5..7 = 0.50; task 3 is current. min-ACC = (0.40 + 0.50) / 2
    assert metrics.min_acc(EVALS, TASK) == pytest.approx(0.45)
    # k = 3, A_current = 0.95: 0.95 / 3 + (2 / 3) · 0.45
    assert metrics.wc_acc(EVALS, TASK) == pytest.approx(0.95 / 3 + 0.30)


def test_min_acc_and_wc_acc_count_the_task_ends_evaluations_missed():
    # ρ does not line up with the task ends: one evaluation early in each task, none at its end
    R_ = np.array([[0.10, 0.10, 0.10],
                   [0.90, 0.10, 0.10],
                   [0.30, 0.35, 0.10],      # task 1 forgotten at the end of task 2; task 2 learned poorly
                   [0.50, 0.45, 0.80]])     # task 2 improves while task 3 is trained
    evals = np.array([[0.50, np.nan, np.nan], [0.60, 0.20, np.nan], [0.70, 0.40, 0.00]])
    task = np.array([0, 1, 2])
    # evaluations alone: task 1 min(0.60, 0.70), task 2 0.40: min-ACC 0.50, above the earlier tasks' final mean
    # 0.475 (impossible), and WC-ACC's current term 0.00 from early in task 3
    assert metrics.min_acc(evals, task) == pytest.approx(0.50)
    # with R: task 1 min(0.60, 0.70, R[2,1] 0.30, R[3,1] 0.50) = 0.30; task 2 min(0.40, R[3,2] 0.45) = 0.40 (its
    # own end R[2,2] = 0.35 is the learned accuracy, not one after learning). min-ACC = (0.30 + 0.40) / 2
    assert metrics.min_acc(evals, task, R_) == pytest.approx(0.35)
    # k = 3, A_current = R[3,3] = 0.80: 0.80 / 3 + (2 / 3) · 0.35 = 0.50
    assert metrics.wc_acc(evals, task, R_) == pytest.approx(0.50)
    assert metrics.summarize(R_, evals=evals, eval_task=task)["wc_acc"] == pytest.approx(0.50)
    with pytest.raises(ShapeError, match="accuracy matrix has 2 tasks, continual evaluations 3"):
        metrics.min_acc(evals, task, R_[:3, :2])
    # no evaluation point within training (tasks shorter than train.eval_every): the task ends alone, task 1
    # min(R[2,1] 0.30, R[3,1] 0.50), task 2 R[3,2] 0.45: min-ACC 0.375, WC-ACC 0.80 / 3 + (2 / 3) · 0.375 = 0.5167
    assert metrics.min_acc(None, None, R_) == pytest.approx(0.375)
    summary = metrics.summarize(R_, continual=True)
    assert summary["min_acc"] == pytest.approx(0.375) and summary["wc_acc"] == pytest.approx(0.80 / 3 + 0.25)
    assert "wf" not in summary and "min_acc" not in metrics.summarize(R_)


def test_task_end_rows_change_nothing_when_evaluations_line_up():
    # EVALS evaluates at every task end (evaluations 1, 4 and 7): an R whose rows are those evaluations
    aligned = np.vstack([[0.10, 0.10, 0.10], EVALS[1], EVALS[4], EVALS[7]])
    aligned[np.isnan(aligned)] = 0.10                          # tasks not yet trained: any accuracy
    assert metrics.min_acc(EVALS, TASK, aligned) == pytest.approx(metrics.min_acc(EVALS, TASK))
    assert metrics.wc_acc(EVALS, TASK, aligned) == pytest.approx(metrics.wc_acc(EVALS, TASK))


def test_continual_metrics_with_a_single_task():
    evals, task = EVALS[:2, :1], TASK[:2]
    assert np.isnan(metrics.min_acc(evals, task))
    assert metrics.wc_acc(evals, task) == pytest.approx(0.90)      # k = 1: just A_current
    assert np.isnan(metrics.windowed_forgetting(evals, task))       # no task evaluated after its training


def test_windowed_forgetting_and_plasticity_by_hand():
    # task 1 from its learned accuracy: [0.90, 0.40, 0.70, 0.85, 0.60, 0.80, 0.75]; task 2: [0.90, 0.50, 0.85, 0.88]
    # each task's largest drop of adjacent evaluations, averaged over the two (De Lange et al.'s code averages over
    # tasks): task 1 0.90 → 0.40 across the boundary (excluding evaluation 1 would give 0.25), task 2 0.90 → 0.50
    assert metrics.windowed_forgetting(EVALS, TASK, window=2) == pytest.approx((0.50 + 0.40) / 2)
    # largest adjacent rises: task 1 0.40 → 0.70, task 2 0.50 → 0.85 (task 3's own learning does not count)
    assert metrics.windowed_plasticity(EVALS, TASK, window=2) == pytest.approx((0.30 + 0.35) / 2)
    # within 3 evaluations: task 1 0.40 → 0.85, task 2 0.50 → 0.88
    assert metrics.windowed_plasticity(EVALS, TASK, window=3) == pytest.approx((0.45 + 0.38) / 2)


def test_windowed_forgetting_starts_at_each_tasks_end_row():
    """With the accuracy matrix, task j's sequence starts at its learned accuracy R[j+1, j] and the task-end rows
    count among the evaluations: a drop right after the next task starts counts even where no evaluation fell
    within task j (without R, WF missed it: 0.0 here, where task 1 fell from 0.9 to 0.3)."""
    R = np.array([[0.1, 0.1], [0.9, 0.1], [0.8, 0.9]])
    evals, task = np.array([[0.3, 0.4], [0.6, 0.7], [0.8, 0.9]]), np.array([1, 1, 1])
    assert metrics.windowed_forgetting(evals, task, 10) == 0.0
    # task 1: R[1,1] 0.9, then 0.3, 0.6, 0.8 and its end row R[2,1] 0.8: largest drop 0.6; task 2 is the last
    assert metrics.windowed_forgetting(evals, task, 10, R) == pytest.approx(0.6)
    assert metrics.windowed_plasticity(evals, task, 10, R) == pytest.approx(0.5)
    assert metrics.summarize(R, evals=evals, eval_task=task)["wf"] == pytest.approx(0.6)
    # evaluations in task 1 as well: they come before its end row and are not in its sequence
    evals2, task2 = np.vstack([[0.95, np.nan], evals]), np.array([0, 1, 1, 1])
    assert metrics.windowed_forgetting(evals2, task2, 2, R) == pytest.approx(0.6)
    assert metrics.windowed_forgetting(evals2, task2, 2) == pytest.approx(0.65)      # from 0.95, a mid-task point


def test_an_evaluation_at_a_task_end_gives_way_to_the_matrix_row():
    """With train.eval_every dividing a task's iterations the last evaluation of a task measures the weights its
    matrix row measures, on eval_samples samples instead of the whole split: kept beside the row, the two samples'
    difference (0.72 against 0.70) was the whole stored WF. Given the iterations, it is left out."""
    R = np.array([[0.1, 0.1], [0.7056, 0.2905], [0.70, 0.5810]])
    evals, task = np.array([[0.74, np.nan], [0.72, 0.56]]), np.array([0, 1])
    assert metrics.summarize(R, evals=evals, eval_task=task)["wf"] == pytest.approx(0.02)
    out = metrics.summarize(R, evals=evals, eval_task=task, eval_iterations=[23, 46], task_ends=[23, 46])
    assert out["wf"] == pytest.approx(0.0056)                          # R[1, 1] 0.7056 → R[2, 1] 0.70
    assert out["min_acc"] == pytest.approx(0.70) and out["wc_acc"] == pytest.approx(0.5810 / 2 + 0.70 / 2)
    mid = metrics.summarize(R, evals=evals, eval_task=task, eval_iterations=[12, 46], task_ends=[23, 46])
    assert mid["wf"] == pytest.approx(0.0056)              # the mid-task point precedes task 1's end row: not in its WF
    kept = metrics.summarize(R, evals=evals, eval_task=task, eval_iterations=[12, 40], task_ends=[23, 46])
    assert kept["wf"] == pytest.approx(0.02)                            # no evaluation at an end: all kept
    old = metrics.summarize(R, evals=evals, eval_task=task, eval_iterations=[23, 46], task_ends=[])
    assert old["wf"] == pytest.approx(0.02)                 # a file without task ends (before they were recorded)


def test_windowed_forgetting_grows_with_the_window():
    # a slow decline of task 1: 0.9, 0.8, 0.7, 0.6 → drop 0.1 per window of 2, 0.2 per 3, 0.3 per 4 or more
    decline = np.array([[0.9, np.nan], [0.8, 0.5], [0.7, 0.6], [0.6, 0.7]])
    task = [0, 1, 1, 1]
    got = [metrics.windowed_forgetting(decline, task, window=w) for w in (2, 3, 4, 10)]
    np.testing.assert_allclose(got, [0.1, 0.2, 0.3, 0.3])
    assert metrics.windowed_plasticity(decline, task, window=10) == 0.0
    with pytest.raises(ConfigError, match="window"):
        metrics.windowed_forgetting(decline, task, window=1)


def test_summarize_names_every_metric():
    # R's rows after tasks 1 and 2 are above the evaluations' lows (min-ACC stays 0.45); WC-ACC takes its current
    # accuracy from R's last row: 0.80 / 3 + (2 / 3) · 0.45. WF^2 starts task 2 at R[2, 2] = 0.95 (its end row),
    # then 0.50: a drop of 0.45; task 1 0.90 → 0.40 as without R: (0.50 + 0.45) / 2
    summary = metrics.summarize(R, joint_diag=[0.92, 0.96, 0.85], evals=EVALS, eval_task=TASK, window=2)
    assert summary == pytest.approx({"acc": 0.75, "bwt": -0.20, "learning_acc": (0.90 + 0.95 + 0.80) / 3,
                                     "fwt": 0.075, "forgetting": 0.20,
                                     "intransigence": 0.08 / 3, "min_acc": 0.45, "wc_acc": 0.80 / 3 + 0.30,
                                     "wf": 0.475})
    assert set(metrics.summarize(R)) == {"acc", "bwt", "learning_acc", "fwt", "forgetting"}
    for scenario, defined in (("domain", True), ("task", False), ("class", False)):
        assert np.isfinite(metrics.summarize(R, scenario=scenario)["fwt"]) == defined
    with pytest.raises(ConfigError, match=r"^summarize: scenario 'Class' is not one of task, domain, class"):
        metrics.summarize(R, scenario="Class")                            # not silently domain-IL
    for alone in ({"evals": EVALS}, {"eval_task": TASK}):                 # one without the other was dropped
        with pytest.raises(ShapeError, match="evals and eval_task go together"):
            metrics.summarize(R, **alone)


def test_mean_std_over_seeds():
    assert metrics.mean_std([0.8]) == (0.8, 0.0)
    for bad in (["a"], [[1, 2], [3]]):
        with pytest.raises(ShapeError, match="mean_std values: expected a rectangular array of numbers"):
            metrics.mean_std(bad)
    # sample std: sqrt((0.1² + 0 + 0.1²) / 2) = 0.1 (population std would be 0.0816)
    mean, std = metrics.mean_std([0.7, 0.8, 0.9])
    assert mean == pytest.approx(0.8) and std == pytest.approx(0.1)
    with pytest.raises(ShapeError):
        metrics.mean_std([])
    with pytest.raises(NumericalError):
        metrics.mean_std([0.5, np.nan])


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros((3, 3)), ShapeError, r"expected \[T\+1, T\]"),
    (np.zeros(4), ShapeError, r"expected \[T\+1, T\]"),
    (np.zeros((1, 0)), ShapeError, r"expected \[T\+1, T\]"),
    (np.array([[0.1, np.nan], [0.5, 0.2], [0.4, 0.9]]), NumericalError, "NaN"),
    (np.array([[0.1], [np.inf]]), NumericalError, "NaN"),
])
def test_bad_matrices(bad, error, message):
    for metric in (metrics.acc, metrics.bwt, metrics.fwt, metrics.forgetting, metrics.acc_per_step):
        with pytest.raises(error, match=message) as info:
            metric(bad)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("evals, task, error, message", [
    (EVALS, TASK[:-1], ShapeError, r"expected \[E, T\] and \[E\]"),
    (EVALS[0], TASK[:1], ShapeError, r"expected \[E, T\]"),
    (np.zeros((0, 3)), [], ShapeError, r"expected \[E, T\]"),
    (EVALS, TASK[::-1], ShapeError, "non-decreasing"),
    (EVALS, TASK + 1, ShapeError, r"in \[0, 3\)"),
    (EVALS, TASK.astype(float), ShapeError, "integer"),
    (np.array([[np.nan, np.nan]]), [0], NumericalError, "already trained"),
])
def test_bad_continual_evaluations(evals, task, error, message):
    with pytest.raises(error, match=message):
        metrics.min_acc(evals, task)


def test_metrics_module_imports_neither_torch_nor_matplotlib():
    code = "import sys, spikecl.continual.metrics; print(sorted({'torch', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert issubclass(ShapeError, SpikeCLError) and issubclass(NumericalError, SpikeCLError)


def test_summarize_passes_its_window_to_windowed_forgetting():
    """``summarize(window=...)`` is WF^window."""
    evals = np.array([[0.9, 0.0], [0.9, 0.5], [0.8, 0.6], [0.7, 0.6], [0.2, 0.7]])
    task = np.array([0, 1, 1, 1, 1])
    R = np.array([[0.1, 0.1], [0.9, 0.1], [0.2, 0.7]])
    out = metrics.summarize(R, evals=evals, eval_task=task, window=2)
    assert out["wf"] == pytest.approx(metrics.windowed_forgetting(evals, task, window=2)) == pytest.approx(0.5)
    assert metrics.summarize(R, evals=evals, eval_task=task)["wf"] == pytest.approx(0.7)


def test_accuracies_just_above_one_and_a_percentage_joint_reference_are_refused():
    """Accuracies are fractions in [0, 1]: 1.2 is refused, as is a joint reference given in percent (which would
    make every intransigence about 90)."""
    with pytest.raises(DataError, match="1.2"):
        metrics.acc([[0.5], [1.2]])
    R = [[0.1, 0.1], [0.9, 0.2], [0.8, 0.9]]
    with pytest.raises(DataError, match="joint reference holds 95.0"):
        metrics.intransigence(R, [95.0, 92.0])


def test_a_tie_prints_alike_whatever_the_last_bit_of_its_float():
    """HLOP's 72.75 % (7,275 of 10,000 test images) printed 72.7 or 72.8 by the order of a float sum; the summary
    table, the headline and the accuracy matrix print ties away from zero, as a reader rounds."""
    from spikecl.continual.report import format_matrix, format_summary

    for acc in (0.7274999999999999, 0.7275, 0.7275000000000001):
        assert metrics.headline({"acc": acc, "bwt": -0.0225}) == "ACC 72.8%  BWT -2.3"
        table = format_summary({"hlop": {"acc": (acc, 0.0025), "bwt": (-0.0225, 0.0)}}, {"hlop": 2})
        assert " ".join(table.splitlines()[2].split()) == "hlop 2 72.8 ± 0.3 -2.3 ± 0.0"
        assert format_matrix(np.array([[0.1], [acc]])).splitlines()[-1].split() == ["task", "1", "72.8"]
    assert metrics.headline({"acc": 0.5, "bwt": -1e-12}) == "ACC 50.0%  BWT +0.0"         # no -0.0
