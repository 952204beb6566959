"""Continual-learning metrics as pure functions (numpy only).

Accuracy matrix ``R`` ``[T+1, T]``: row 0 holds the accuracies of the untrained network, row ``i`` (1..T) the
accuracies on every task after training task ``i``; column ``j`` is task ``j+1``. Every entry is measured (the
entries of tasks not yet trained are needed for FWT) and must be finite. Accuracies are fractions in [0, 1].
With tasks numbered 1..T:

* ACC = (1/T) Σ_j R[T, j]                                       (mean of the last row, unweighted)
* BWT = 1/(T−1) Σ_{j<T} (R[T, j] − R[j, j])                     (negative = forgetting)
* FWT = 1/(T−1) Σ_{j≥2} (R[j−1, j] − R[0, j])                   (accuracy on a task just before training it)
* forgetting (after Chaudhry et al. 2018): f_j = max_{j ≤ l < T} R[l, j] − R[T, j], averaged over j < T; it
  differs from −BWT when a task peaks after its own training. Their max runs over every earlier row (l ≥ 1), which
  differs where a task scored higher before it was trained than at any point after
* intransigence: I_k = a*_k − R[k, k], a*_k from joint training on tasks 1..k (spikecl's ``joint`` method: one
  model that trains on the union of tasks 1..k at task k, warm-started from task k−1's, where Chaudhry et al.
  train a reference afresh)

BWT, FWT and forgetting average over T−1 tasks and are NaN for a single task (undefined, not zero).

Continual evaluation (De Lange, van de Ven & Tuytelaars, ICLR 2023): ``evals`` ``[E, T]`` holds accuracies measured
every ρ iterations and ``eval_task`` ``[E]`` the (0-based, non-decreasing) task being trained at each evaluation.
Entries of tasks not yet trained are ignored and may be NaN (a finite one must still be a fraction in [0, 1]). Given
the run's accuracy matrix ``R`` as well, min-ACC, WC-ACC and WF^w count its rows as the evaluations at the task ends
(which ρ need not line up with): task j's lowest accuracy after it was learned includes R[i, j] for i > j, WC-ACC's
current accuracy is R[T, T], and WF^w's sequence of task j starts at R[j+1, j].
"""

from __future__ import annotations

import numpy as np

from spikecl.data.streams import SCENARIOS
from spikecl.errors import ConfigError, DataError, NumericalError, ShapeError
from spikecl.options import check_bounds, check_value
from spikecl.rounding import half_up

#: the date the metrics' definitions last changed (min-ACC and WC-ACC at every task's end 2026-12-03/04,
#: class-incremental FWT undefined 2026-12-03, WF^w and WP^w averaged over tasks 2026-12-05, WF^w from each task's
#: end 2026-12-06): results files are computed again by today's, but a sweep's stored means and stds cannot be, so
#: it records this (bump it with a change)
DEFINITIONS = "2026-12-06"
#: the metrics a run records as undefined (NaN) where its strategy trains every task at once (no task is learned
#: before another: no transfer to it, no stability gap)
AT_ONCE_UNDEFINED = ("fwt", "min_acc", "wc_acc", "wf")


def _floats(values, what: str) -> np.ndarray:
    """``values`` as a float64 array; ShapeError for ragged or non-numeric input."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{what}: expected a rectangular array of numbers ({str(exc).splitlines()[0]})") from None


def check_fractions(values: np.ndarray, what: str) -> None:
    """DataError naming the first finite value of ``values`` outside [0, 1] (accuracies are fractions)."""
    bad = np.flatnonzero(np.isfinite(values) & ((values < 0) | (values > 1)))
    if bad.size:
        raise DataError(f"{what} holds {float(values.flat[bad[0]])!r}; accuracies are fractions in [0, 1], not "
                        "percentages")


def as_matrix(R) -> np.ndarray:
    """Validate an accuracy matrix (fractions in [0, 1]) and return it as float64 ``[T+1, T]``."""
    R = _floats(R, "accuracy matrix")
    if R.ndim != 2 or R.shape[1] < 1 or R.shape[0] != R.shape[1] + 1:
        raise ShapeError(f"accuracy matrix has shape {R.shape}; expected [T+1, T] (row 0 = at initialisation)")
    if not np.all(np.isfinite(R)):
        raise NumericalError("accuracy matrix contains NaN or infinity")
    check_fractions(R, "accuracy matrix")
    return R


def as_evals(evals, eval_task) -> tuple[np.ndarray, np.ndarray]:
    """Validate continual evaluations; return ``evals`` float64 ``[E, T]`` and ``eval_task`` int64 ``[E]``."""
    evals = _floats(evals, "continual evaluations")
    try:
        eval_task = np.asarray(eval_task)
    except (TypeError, ValueError):
        raise ShapeError("eval_task: expected a one-dimensional array of task indices") from None
    if evals.ndim != 2 or evals.shape[0] < 1 or evals.shape[1] < 1 or eval_task.shape != (evals.shape[0],):
        raise ShapeError(f"continual evaluations have shapes {evals.shape} and {eval_task.shape}; "
                         "expected [E, T] and [E] with E, T ≥ 1")
    if not np.issubdtype(eval_task.dtype, np.integer):
        raise ShapeError(f"eval_task has dtype {eval_task.dtype}; expected integer task indices")
    eval_task = eval_task.astype(np.int64)
    if eval_task.min() < 0 or eval_task.max() >= evals.shape[1] or np.any(np.diff(eval_task) < 0):
        raise ShapeError(f"eval_task must be non-decreasing task indices in [0, {evals.shape[1]})")
    for e, task in enumerate(eval_task):
        if not np.all(np.isfinite(evals[e, :task + 1])):
            raise NumericalError(f"continual evaluation {e} has NaN for a task already trained")
    check_fractions(evals, "continual evaluations")
    return evals, eval_task


def acc(R) -> float:
    """ACC: mean accuracy over all T tasks after the last task."""
    return float(as_matrix(R)[-1].mean())


def acc_per_step(R) -> np.ndarray:
    """``[T]``: mean accuracy over the tasks seen so far (1..i) after each task i."""
    R = as_matrix(R)
    return np.array([R[i, :i].mean() for i in range(1, R.shape[0])])


def bwt(R) -> float:
    """BWT: mean over tasks 1..T−1 of final minus just-learned accuracy; NaN for T = 1."""
    R = as_matrix(R)
    T = R.shape[1]
    return float(np.mean(R[T, :-1] - np.diag(R[1:T, :-1]))) if T > 1 else float("nan")


def fwt(R) -> float:
    """FWT: mean over tasks 2..T of the accuracy just before training the task minus at init; NaN for T = 1."""
    R = as_matrix(R)
    T = R.shape[1]
    return float(np.mean(np.diag(R[1:T, 1:]) - R[0, 1:])) if T > 1 else float("nan")


def forgetting_per_task(R) -> np.ndarray:
    """``[T−1]``: for tasks 1..T−1, best accuracy after learning it (rows j..T−1) minus final accuracy."""
    R = as_matrix(R)
    T = R.shape[1]
    return np.array([R[j + 1:T, j].max() - R[T, j] for j in range(T - 1)])


def forgetting(R) -> float:
    """Average max-based forgetting F_T after the last task; NaN for T = 1. Not the same as −BWT."""
    per_task = forgetting_per_task(R)
    return float(per_task.mean()) if per_task.size else float("nan")


def intransigence(R, joint_diag) -> np.ndarray:
    """``[T]``: I_k = a*_k − R[k, k], where ``joint_diag[k-1]`` = a*_k is the accuracy on task k of a model
    trained jointly on tasks 1..k. Positive = the continual learner could not learn task k as well; average the
    vector for a single number (as :func:`summarize` does)."""
    R = as_matrix(R)
    ref = _floats(joint_diag, "joint reference")
    if ref.shape != (R.shape[1],):
        raise ShapeError(f"joint reference has shape {ref.shape}; expected ({R.shape[1]},)")
    if not np.all(np.isfinite(ref)):
        raise NumericalError("joint reference contains NaN or infinity")
    check_fractions(ref, "joint reference")
    return ref - np.diag(R[1:])


def _with_matrix(R, evals: np.ndarray) -> np.ndarray | None:
    """``R`` validated (:func:`as_matrix`) for the run of ``evals`` (same task count), or None."""
    if R is None:
        return None
    R = as_matrix(R)
    if R.shape[1] != evals.shape[1]:
        raise ShapeError(f"accuracy matrix has {R.shape[1]} tasks, continual evaluations {evals.shape[1]}")
    return R


def min_acc(evals, eval_task, R=None) -> float:
    """min-ACC: mean over previous tasks of the lowest accuracy measured after the task was learned (while later
    tasks were trained; with the accuracy matrix ``R`` also at their ends, R[i, j] for i > j; ``evals`` None: at
    their ends only). Previous tasks: those before the last one trained (with ``R``: tasks 1..T−1). NaN when only
    one task has been trained. A run's evaluations while training (``train.eval_samples`` samples per task) are
    noisier than its task-end rows (the whole test split), so the minimum over many of them lies lower by noise as
    well: compare min-ACC between runs evaluated alike (the same ``eval_every`` and ``eval_samples``)."""
    evals, eval_task, R = _evals_or_matrix(evals, eval_task, R)
    last = int(eval_task[-1]) if R is None else R.shape[1] - 1
    lows = []
    for j in range(last):
        after = evals[eval_task > j, j]
        if R is not None:                       # row j + 1 ends task j itself (learned, not after): from j + 2 on
            after = np.concatenate([after, R[j + 2:, j]])
        lows.append(after.min())
    return float(np.mean(lows)) if lows else float("nan")


def _evals_or_matrix(evals, eval_task, R) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(evals, eval_task, R) validated; no ``evals`` (None) with a matrix ``R``: no evaluation between task ends."""
    if evals is None and eval_task is None and R is not None:
        R = as_matrix(R)
        return np.zeros((0, R.shape[1])), np.zeros(0, np.int64), R
    evals, eval_task = as_evals(evals, eval_task)
    return evals, eval_task, _with_matrix(R, evals)


def wc_acc(evals, eval_task, R=None) -> float:
    """WC-ACC = (1/k)·A_current + (1 − 1/k)·min-ACC, with k = tasks seen and A_current = the accuracy on the task
    being trained at the last evaluation (with the accuracy matrix ``R``: after the last task, R[T, T], k = T);
    just A_current when k = 1."""
    given = (evals, eval_task)
    evals, eval_task, R = _evals_or_matrix(evals, eval_task, R)
    k = int(eval_task[-1]) + 1 if R is None else R.shape[1]
    current = float(evals[-1, k - 1] if R is None else R[-1, -1])
    return current if k == 1 else current / k + (1 - 1 / k) * min_acc(*given, R)


def _largest_change(evals, eval_task, window: int, sign: float, R=None) -> float:
    """The mean over learned tasks (those evaluated after their own training) of each task's largest
    ``sign·(acc[a] − acc[b])``, a < b within ``window`` consecutive evaluations (0 where it never changes that way);
    NaN when no task was evaluated after its training. With the accuracy matrix ``R`` its rows are evaluations at
    the task ends, in time order among the others, and task j's sequence starts at its learned accuracy R[j+1, j]."""
    evals, eval_task, R = _evals_or_matrix(evals, eval_task, R)
    window = check_value(window, int, "window")
    check_bounds(window, {"low": 2}, "window")
    points, starts = _timeline(evals, eval_task, R)
    per_task = []
    for j in range(evals.shape[1]):
        seq = points[starts[j]:, j]
        if len(seq) < 2:
            continue
        per_task.append(max([0.0] + [float(np.max(sign * (seq[:-lag] - seq[lag:])))
                                     for lag in range(1, min(window, len(seq)))]))
    return float(np.mean(per_task)) if per_task else float("nan")


def _timeline(evals: np.ndarray, eval_task: np.ndarray, R: np.ndarray | None) -> tuple[np.ndarray, list[int]]:
    """Every evaluation in time order ``[E', T]`` (with ``R``: each task's end row after the evaluations made while
    it was trained) and, per task, the index its sequence starts at: its end row, or without ``R`` the last
    evaluation while it was trained (else the first one after it)."""
    n_tasks = evals.shape[1]
    if R is None:
        starts = []
        for j in range(n_tasks):
            during, after = np.flatnonzero(eval_task == j), np.flatnonzero(eval_task > j)
            starts.append(int(during[-1]) if during.size else int(after[0]) if after.size else len(evals))
        return evals, starts
    rows, starts = [], []
    for j in range(n_tasks):
        rows.extend(evals[eval_task == j])
        starts.append(len(rows))
        rows.append(R[j + 1])
    return np.array(rows), starts


def windowed_forgetting(evals, eval_task, window: int = 10, R=None) -> float:
    """WF^w (De Lange et al. 2023): for each task j evaluated after its training, the largest drop
    max_{a<b}(acc[a] − acc[b]) within ``window`` consecutive evaluations, averaged over those tasks (as the
    authors' code averages each task's value); NaN for a single task.

    Task j's evaluations start at its learned accuracy, so a drop right after the next task starts (the stability
    gap) counts: with the run's accuracy matrix ``R`` (as results files are scored since 2026-12-06) at R[j+1, j],
    its rows counting as the evaluations at the task ends; without it at the last evaluation made while j was
    trained. The authors' code starts at its first evaluation and counts the task being trained at the end (a 0)
    in its mean."""
    return _largest_change(evals, eval_task, window, 1.0, R)


def windowed_plasticity(evals, eval_task, window: int = 10, R=None) -> float:
    """WP^w: each learned task's largest rise max_{a<b}(acc[b] − acc[a]) on the same windows as
    :func:`windowed_forgetting` (e.g. the recovery after a stability gap), averaged over those tasks."""
    return _largest_change(evals, eval_task, window, -1.0, R)


def learning_acc(R) -> float:
    """LA (learning accuracy, plasticity): mean over tasks of the accuracy just after learning each, ``R[i, i]``."""
    R = as_matrix(R)
    return float(np.mean(np.diag(R[1:])))


def summarize(R, joint_diag=None, evals=None, eval_task=None, window: int = 10,
              scenario: str | None = None, continual: bool = False, eval_iterations=None,
              task_ends=None) -> dict[str, float]:
    """Named metrics for results files: acc, bwt, learning_acc, fwt, forgetting; intransigence (mean of the vector) when
    ``joint_diag`` is given; min_acc, wc_acc and wf (WF^window; all three counting ``R``'s rows as the task-end
    evaluations) when ``evals`` and ``eval_task`` are given (one without the other is a ShapeError); ``continual``
    (continual evaluation was on, yet no point fell within training): min_acc and wc_acc from ``R``'s rows alone.
    FWT is defined in the domain scenario only, NaN otherwise: in ``"class"`` the outputs of classes not yet seen
    are masked, so a task's accuracy before it is learned is 0 by construction; in ``"task"`` its head has had no
    gradient yet, so that accuracy is the untrained head's. ``eval_iterations`` [E] and ``task_ends`` [T] (the
    iteration of each evaluation and of each task's end): an evaluation made at a task's end is left out, ``R``'s
    row measuring that state on the whole split (kept beside it, the two samples' difference read as forgetting);
    give none where the network trained after a task's batches (replay's after-task phase), whose row measures
    another state than that evaluation."""
    if (evals is None) != (eval_task is None):
        raise ShapeError("summarize: evals and eval_task go together (the curves and the task each point trained)")
    if scenario not in (None, *SCENARIOS):
        raise ConfigError(f"summarize: scenario {scenario!r} is not one of {', '.join(SCENARIOS)} (None: domain)")
    out = {"acc": acc(R), "bwt": bwt(R), "learning_acc": learning_acc(R),
           "fwt": float("nan") if scenario in ("class", "task") else fwt(R), "forgetting": forgetting(R)}
    if joint_diag is not None:
        out["intransigence"] = float(intransigence(R, joint_diag).mean())
    measured = evals is not None
    if measured and eval_iterations is not None and task_ends is not None:
        evals, eval_task = _off_task_ends(evals, eval_task, eval_iterations, task_ends, as_matrix(R).shape[1])
    if measured or continual:
        out["min_acc"] = min_acc(evals, eval_task, R)
        out["wc_acc"] = wc_acc(evals, eval_task, R)
    if measured:
        out["wf"] = windowed_forgetting(evals, eval_task, window, R)
    return out


def _off_task_ends(evals, eval_task, iterations, task_ends, n_tasks: int):
    """``(evals, eval_task)`` without the evaluations made at a task's end (their iteration in ``task_ends``, one
    per task; otherwise, as in files from before task ends were recorded, all kept); ``(None, None)`` when none
    is left."""
    evals, eval_task = as_evals(evals, eval_task)
    ends, iterations = np.asarray(task_ends), np.asarray(iterations)
    if ends.shape != (n_tasks,) or iterations.shape != eval_task.shape:
        return evals, eval_task
    keep = ~np.isin(iterations, ends)
    return (evals[keep], eval_task[keep]) if keep.any() else (None, None)


def mean_std(values) -> tuple[float, float]:
    """Mean and standard deviation over seeds: sample std (ddof = 1) for n > 1, 0.0 for a single value."""
    v = _floats(values, "mean_std values").ravel()
    if v.size == 0:
        raise ShapeError("mean_std needs at least one value")
    if not np.all(np.isfinite(v)):
        raise NumericalError("mean_std values contain NaN or infinity")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def points(fraction: float, digits: int = 1) -> float:
    """``100 * fraction`` in points rounded to ``digits`` decimals, a tie away from zero whatever the last bit of the
    float (:func:`spikecl.rounding.half_up`); NaN and infinity stay as they are.

    >>> points(0.7274999999999999), points(0.7275000000000001), points(-0.0225), points(0.0)
    (72.8, 72.8, -2.3, 0.0)
    """
    return half_up(100 * float(fraction), digits)


def headline(summary: dict[str, float]) -> str:
    """A finished run in one line, e.g. ``ACC 41.3%  BWT -48.6`` (points, as :func:`points` rounds them; BWT left out
    where it is undefined: one task)."""
    bwt_points = points(summary.get("bwt", float("nan")))
    return f"ACC {points(summary['acc']):.1f}%" + (f"  BWT {bwt_points:+.1f}" if np.isfinite(bwt_points) else "")
