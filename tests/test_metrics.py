"""Metrics against accuracy matrices computed by hand."""

import numpy as np
import pytest

from spikecl.continual import metrics
from spikecl.errors import NumericalError, ShapeError

# 3 tasks. Row 0: untrained; row i: after task i.
R = np.array([
    [0.10, 0.20, 0.30],
    [0.90, 0.25, 0.35],
    [0.70, 0.95, 0.40],
    [0.60, 0.85, 0.80],
])


def test_acc_bwt_fwt_by_hand():
    assert metrics.acc(R) == pytest.approx((0.60 + 0.85 + 0.80) / 3)
    # BWT = mean over tasks 1..2 of (final − just learned) = ((0.60−0.90) + (0.85−0.95)) / 2
    assert metrics.bwt(R) == pytest.approx(-0.20)
    # FWT = mean over tasks 2..3 of (accuracy before training it − at init) = ((0.25−0.20) + (0.40−0.30)) / 2
    assert metrics.fwt(R) == pytest.approx(0.075)
    np.testing.assert_allclose(metrics.acc_per_step(R), [0.90, 0.825, 0.75])


def test_forgetting_uses_the_best_earlier_accuracy_not_the_diagonal():
    # task 1 peaks after task 2 (0.95 > 0.90 at the diagonal): forgetting ≠ −BWT
    peak_later = np.array([
        [0.1, 0.1, 0.1],
        [0.90, 0.1, 0.1],
        [0.95, 0.90, 0.1],
        [0.75, 0.80, 0.90],
    ])
    np.testing.assert_allclose(metrics.forgetting_per_task(peak_later), [0.20, 0.10])
    assert metrics.forgetting(peak_later) == pytest.approx(0.15)
    assert -metrics.bwt(peak_later) == pytest.approx(0.125)
    # every task but the last is counted (no off-by-one): with R, f = [0.90−0.60, 0.95−0.85]
    np.testing.assert_allclose(metrics.forgetting_per_task(R), [0.30, 0.10])


def test_intransigence_against_joint_reference():
    joint_diag = np.array([0.92, 0.96, 0.85])
    np.testing.assert_allclose(metrics.intransigence(R, joint_diag), [0.02, 0.01, 0.05])
    with pytest.raises(ShapeError, match="joint reference"):
        metrics.intransigence(R, [0.9, 0.9])


def test_single_task_edge_case():
    one = np.array([[0.1], [0.9]])
    assert metrics.acc(one) == pytest.approx(0.9)
    assert metrics.bwt(one) == 0.0 and metrics.fwt(one) == 0.0 and metrics.forgetting(one) == 0.0


def test_continual_evaluation_stability_gap():
    # evaluations every ρ iterations; task 1 dips to 0.5 right after the switch to task 2, then recovers
    evals = np.array([
        [0.50, np.nan],
        [0.90, np.nan],
        [0.50, 0.40],     # stability gap
        [0.70, 0.80],
        [0.85, 0.90],
    ])
    task = np.array([0, 0, 1, 1, 1])
    assert metrics.min_acc(evals, task) == pytest.approx(0.50)
    # WC-ACC = (1/k)·A_current + (1 − 1/k)·min-ACC with k = 2, A_current = 0.90
    assert metrics.wc_acc(evals, task) == pytest.approx(0.5 * 0.90 + 0.5 * 0.50)
    # largest drop of task 1 after it was learned, within 3 evaluations: 0.50 → (0.70, 0.85) has none; the
    # windows only span evaluations after task 1 (rows 2..4): drops 0.5−0.7 < 0, so WF = 0
    assert metrics.windowed_forgetting(evals, task, window=3) == pytest.approx(0.0)
    assert metrics.windowed_plasticity(evals, task, window=3) == pytest.approx(0.35)
    later = np.array([[0.9, np.nan], [0.8, 0.5], [0.6, 0.7], [0.7, 0.8]])
    assert metrics.windowed_forgetting(later, [0, 1, 1, 1], window=2) == pytest.approx(0.2)
    assert metrics.windowed_forgetting(later, [0, 1, 1, 1], window=3) == pytest.approx(0.2)
    summary = metrics.summarize(R, joint_diagonal=[0.92, 0.96, 0.85], evals=evals, eval_task=task)
    assert set(summary) == {"acc", "bwt", "fwt", "forgetting", "intransigence", "min_acc", "wc_acc", "wf"}


def test_mean_std_over_seeds():
    assert metrics.mean_std([0.8]) == (0.8, 0.0)
    mean, std = metrics.mean_std([0.7, 0.8, 0.9])
    assert mean == pytest.approx(0.8) and std == pytest.approx(0.1)


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros((3, 3)), ShapeError, r"expected \[T\+1, T\]"),
    (np.zeros(4), ShapeError, "shape"),
    (np.array([[0.1, np.nan], [0.5, 0.2], [0.4, 0.9]]), NumericalError, "NaN"),
])
def test_bad_matrices(bad, error, message):
    with pytest.raises(error, match=message):
        metrics.acc(bad)


def test_nan_for_an_already_trained_task_is_an_error():
    with pytest.raises(NumericalError, match="already trained"):
        metrics.min_acc(np.array([[np.nan, np.nan]]), [0])
