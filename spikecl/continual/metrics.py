"""Continual-learning metrics as pure functions of the accuracy matrix (numpy only).

Convention: ``R`` has shape ``[T+1, T]``. Row 0 holds the accuracies of the untrained network; row ``i`` (1..T)
the accuracies on every task after training task ``i``. Column ``j`` is task ``j+1``. Accuracies are fractions in
[0, 1]. With tasks numbered 1..T:

* ACC = (1/T) Σ_j R[T, j]                                      (mean of the last row)
* BWT = 1/(T−1) Σ_{j<T} (R[T, j] − R[j, j])                    (negative = forgetting)
* FWT = 1/(T−1) Σ_{j≥2} (R[j−1, j] − R[0, j])                  (accuracy on a task before training it, vs init)
* forgetting (Chaudhry et al. 2018): f_j = max_{j ≤ l < T} R[l, j] − R[T, j], averaged over j < T
* intransigence: I_k = a*_k − R[k, k], a*_k from joint training on tasks 1..k

Continual evaluation (De Lange, van de Ven & Tuytelaars, ICLR 2023): ``evals`` ``[E, T]`` are accuracies measured
every few iterations, ``eval_task`` ``[E]`` the (0-based) task being trained at each evaluation; entries for tasks
not yet trained may be NaN and are ignored.
"""

from __future__ import annotations

import numpy as np

from spikecl.errors import NumericalError, ShapeError


def _matrix(R) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] + 1 or R.shape[1] < 1:
        raise ShapeError(f"accuracy matrix has shape {R.shape}; expected [T+1, T] (row 0 = at initialisation)")
    if not np.all(np.isfinite(R)):
        raise NumericalError("accuracy matrix contains NaN or infinity")
    return R


def acc(R) -> float:
    """Average accuracy over all tasks after the last task."""
    return float(_matrix(R)[-1].mean())


def acc_per_step(R) -> np.ndarray:
    """``[T]``: average accuracy over the tasks seen so far, after each task."""
    R = _matrix(R)
    return np.array([R[i, :i].mean() for i in range(1, R.shape[0])])


def bwt(R) -> float:
    """Backward transfer; 0.0 for a single task (nothing to forget)."""
    R = _matrix(R)
    T = R.shape[1]
    if T == 1:
        return 0.0
    return float(np.mean([R[T, j] - R[j + 1, j] for j in range(T - 1)]))


def fwt(R) -> float:
    """Forward transfer against the untrained network; 0.0 for a single task."""
    R = _matrix(R)
    T = R.shape[1]
    if T == 1:
        return 0.0
    return float(np.mean([R[j, j] - R[0, j] for j in range(1, T)]))


def forgetting_per_task(R) -> np.ndarray:
    """``[T−1]``: for each task but the last, its best accuracy after being learned minus its final accuracy."""
    R = _matrix(R)
    T = R.shape[1]
    return np.array([R[j + 1:T, j].max() - R[T, j] for j in range(T - 1)])


def forgetting(R) -> float:
    """Average (max-based) forgetting after the last task; 0.0 for a single task. Not the same as −BWT."""
    per_task = forgetting_per_task(R)
    return float(per_task.mean()) if per_task.size else 0.0


def intransigence(R, joint_diagonal) -> np.ndarray:
    """``[T]``: I_k = a*_k − R[k, k] with ``joint_diagonal[k-1]`` = a*_k (joint training on tasks 1..k)."""
    R = _matrix(R)
    ref = np.asarray(joint_diagonal, dtype=np.float64)
    if ref.shape != (R.shape[1],):
        raise ShapeError(f"joint reference has shape {ref.shape}; expected ({R.shape[1]},)")
    return ref - np.diag(R[1:])


def _evals(evals, eval_task) -> tuple[np.ndarray, np.ndarray]:
    evals = np.asarray(evals, dtype=np.float64)
    eval_task = np.asarray(eval_task, dtype=np.int64)
    if evals.ndim != 2 or eval_task.shape != (evals.shape[0],):
        raise ShapeError(f"continual evaluations have shapes {evals.shape} and {eval_task.shape}; "
                         "expected [E, T] and [E]")
    if np.any(np.diff(eval_task) < 0):
        raise ShapeError("eval_task must not decrease (tasks are trained in order)")
    for e, task in enumerate(eval_task):
        if not np.all(np.isfinite(evals[e, : task + 1])):
            raise NumericalError(f"continual evaluation {e} has NaN for a task already trained")
    return evals, eval_task


def min_acc(evals, eval_task) -> float:
    """Mean over previous tasks of the lowest accuracy seen while later tasks were trained (NaN if none)."""
    evals, eval_task = _evals(evals, eval_task)
    last = int(eval_task.max()) if eval_task.size else 0
    lows = [evals[eval_task > j, j].min() for j in range(last) if np.any(eval_task > j)]
    return float(np.mean(lows)) if lows else float("nan")


def wc_acc(evals, eval_task) -> float:
    """Worst-case accuracy (1/k)·A_current + (1 − 1/k)·min-ACC, k = tasks seen, A_current = final accuracy on the
    current task."""
    evals, eval_task = _evals(evals, eval_task)
    if not eval_task.size:
        return float("nan")
    k = int(eval_task[-1]) + 1
    current = evals[-1, k - 1]
    if k == 1:
        return float(current)
    return float(current / k + (1 - 1 / k) * min_acc(evals, eval_task))


def _windowed(evals, eval_task, window: int, sign: float) -> float:
    evals, eval_task = _evals(evals, eval_task)
    if window < 2:
        raise ShapeError(f"window must be at least 2 evaluations, got {window}")
    best = 0.0
    for j in range(int(eval_task.max()) + 1 if eval_task.size else 0):
        seq = evals[eval_task > j, j]                 # task j after it was learned
        for start in range(max(len(seq) - window + 1, 1)):
            w = seq[start:start + window]
            for a in range(len(w) - 1):
                best = max(best, float((sign * (w[a] - w[a + 1:])).max()))
    return best


def windowed_forgetting(evals, eval_task, window: int = 10) -> float:
    """WF^w: the largest drop max_{a<b}(acc[a] − acc[b]) of any learned task inside any window of ``window``
    consecutive evaluations after it was learned (0.0 if there is none)."""
    return _windowed(evals, eval_task, window, 1.0)


def windowed_plasticity(evals, eval_task, window: int = 10) -> float:
    """WP^w: the largest rise inside any window (the counterpart of :func:`windowed_forgetting`)."""
    return _windowed(evals, eval_task, window, -1.0)


def summarize(R, joint_diagonal=None, evals=None, eval_task=None, window: int = 10) -> dict[str, float]:
    """Every metric that the inputs allow, by name (fractions; BWT/FWT signed)."""
    out = {"acc": acc(R), "bwt": bwt(R), "fwt": fwt(R), "forgetting": forgetting(R)}
    if joint_diagonal is not None:
        out["intransigence"] = float(intransigence(R, joint_diagonal).mean())
    if evals is not None and eval_task is not None and len(eval_task):
        out["min_acc"] = min_acc(evals, eval_task)
        out["wc_acc"] = wc_acc(evals, eval_task)
        out["wf"] = windowed_forgetting(evals, eval_task, window)
    return out


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0.0 for a single value) over seeds."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ShapeError("mean_std of no values")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
