"""A continual-learning run's results file, one per (method, seed): the :class:`ContinualResult` a run produced,
writing it (:func:`write_continual`, through :func:`spikecl.io.write_run`) and reading it back checked
(:func:`read_continual`; :func:`as_continual` of a file :func:`~spikecl.io.read_run` read). Numpy and spikecl's core
only, never torch: reports and export read results where torch is not installed.

Results file (``kind = "continual"``, besides the common schema of :mod:`spikecl.io`)::

    /                      attrs: method, seed, eval_split = "test" | "validation" (what accuracies were measured on),
                           trained_after_task (bool, absent in files written before it: False; a part of the
                           strategy trained after each task's batches, e.g. replay's after-task phase, so an
                           evaluation at a task's end measured the network before it, the matrix's row after it)
    /acc_matrix            float64 [T+1, T]  row 0: untrained network; row i: after task i (fractions)
    /curves/iterations     int64 [E]         training iteration of each continual evaluation
    /curves/task           int64 [E]         task being trained at that evaluation (0-based; multitask: the last)
    /curves/accuracy       float64 [E, T]    accuracy on every task at that evaluation
    /curves/task_end       int64 [T]         the iteration each task's training ended at (absent in files written
                                             before it, or resumed from a checkpoint that did not record it)
    /timings/task_seconds  float64 [T]       wall time of each task's training
    /metrics               acc, bwt, ...
    /model/<param>         the trained network's parameters and buffers (for export)
    /extra/<name>          strategy-specific arrays (e.g. subspace dimensions)
    /neurobench/<measure>  float64 [T]       NeuroBench measures after each task (:mod:`spikecl.snn.measures`):
                                             footprint_bytes, connection_sparsity, activation_sparsity,
                                             dense_synops, effective_acs, effective_macs, membrane_updates
                                             (per inference); absent in files written before them
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from spikecl.config import SEED_MAX, plain_label
from spikecl.environment import environment
from spikecl.errors import ForeignFileError, ResultsError
from spikecl.io import Run, read_run, write_run


@dataclass
class ContinualResult:
    """Everything one continual-learning run produced. Accuracies are fractions in [0, 1]."""

    method: str
    seed: int
    config: dict
    acc_matrix: np.ndarray                       # [T+1, T]
    curve_iterations: np.ndarray                 # [E]
    curve_task: np.ndarray                       # [E]
    curve_accuracy: np.ndarray                   # [E, T]
    task_seconds: np.ndarray                     # [T]
    metrics: dict[str, float]
    environment: dict = field(default_factory=environment)
    model: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    measures: dict[str, np.ndarray] = field(default_factory=dict)     # {NeuroBench measure: [T]}, may be empty
    task_ends: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # [T] or empty (not recorded)
    trained_after_task: bool = False             # weights changed after each task's batches (replay's phase)
    source: str | None = field(default=None, compare=False, repr=False)   # the file read (None: not read from one)

    @property
    def n_tasks(self) -> int:
        return self.acc_matrix.shape[1]


def write_continual(path: str | Path, result: ContinualResult, overwrite: bool = False) -> Path:
    """Write a continual-learning run atomically to ``path`` (HDF5). Refuses to replace an existing file unless
    ``overwrite``, and a ``result`` that :func:`read_continual` would read as corrupt (accuracies in percent, no
    row 0 in the matrix, a seed that is not an integer)."""
    whole = {k: _as_whole(getattr(result, k)) for k in ("curve_iterations", "curve_task", "task_ends")}
    result = replace(result, acc_matrix=np.asarray(result.acc_matrix), **whole)
    _check_seed(result.seed, f"the result to write to {path}")
    _check_result(result, f"the result to write to {path}")
    arrays = {"acc_matrix": np.asarray(result.acc_matrix, dtype=np.float64),
              "curves": {"iterations": np.asarray(result.curve_iterations, dtype=np.int64),
                         "task": np.asarray(result.curve_task, dtype=np.int64),
                         "accuracy": np.asarray(result.curve_accuracy, dtype=np.float64).reshape(-1, result.n_tasks),
                         **({"task_end": np.asarray(result.task_ends, dtype=np.int64)} if len(result.task_ends)
                            else {})},
              "timings": {"task_seconds": np.asarray(result.task_seconds, dtype=np.float64)},
              "model": dict(result.model), "extra": dict(result.extra)}
    if result.measures:
        arrays["neurobench"] = {k: np.asarray(v, dtype=np.float64) for k, v in result.measures.items()}
    attrs = {"method": result.method, "seed": result.seed, "trained_after_task": bool(result.trained_after_task),
             "eval_split": (result.config.get("data") or {}).get("eval_split", "test")}
    return write_run(path, "continual", result.config, result.metrics, arrays, attrs, result.environment,
                     overwrite=overwrite)


def read_continual(path: str | Path) -> ContinualResult:
    """Read a continual-learning results file written by :func:`write_continual` (one-line :class:`ResultsError` as
    :func:`read_run`, also for another kind's file)."""
    return as_continual(read_run(path, "continual"))


def as_continual(run: Run) -> ContinualResult:
    """The :class:`ContinualResult` of a continual-learning results file read by :func:`read_run`."""
    if run.kind != "continual":
        raise ForeignFileError(f"{run.path} holds a {run.kind!r} run, not a 'continual' run")
    seed = run.attr("seed")
    _check_seed(seed, str(run.path))
    method, split = run.attr("method"), (run.config.get("data") or {}).get("eval_split", "test")
    if not isinstance(method, str) or not method or not plain_label(method):
        raise ResultsError(f"{run.path} is corrupt: attribute 'method' is {method!r}, not a method's name (a "
                           "name has no '/', '\\' or control characters)")
    if run.attrs.get("eval_split", split) != split:
        raise ResultsError(f"{run.path} is corrupt: attribute 'eval_split' is {run.attrs['eval_split']!r}, but its "
                           f"config's data.eval_split is {split!r}")
    trained_after = run.attrs.get("trained_after_task", False)
    if not isinstance(trained_after, (bool, np.bool_)):
        raise ResultsError(f"{run.path} is corrupt: attribute 'trained_after_task' is {trained_after!r}, not true or "
                           "false")
    result = ContinualResult(
        method=method, seed=int(seed), config=run.config,
        environment=run.environment, acc_matrix=run.array("acc_matrix"),
        curve_iterations=run.array("curves/iterations"), curve_task=run.array("curves/task"),
        curve_accuracy=run.array("curves/accuracy"), task_seconds=run.array("timings/task_seconds"),
        metrics=dict(run.metrics), model=run.array("model"), extra=run.array("extra"),
        measures=dict(run.arrays.get("neurobench", {})),
        task_ends=np.asarray(run.arrays.get("curves", {}).get("task_end", np.zeros(0, np.int64))),
        trained_after_task=bool(trained_after), source=str(run.path))
    _check_result(result, str(run.path))
    return result


def _as_whole(values) -> np.ndarray:
    """``values`` as an array, whole-number floats as int64 (iterations and stages counted in floats)."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values


def _check_seed(seed, name: str) -> None:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= SEED_MAX:
        raise ResultsError(f"{name} is corrupt: seed {seed!r} is not an integer in 0..2^32-1")


def _check_result(result: ContinualResult, name: str) -> None:
    """A one-line :class:`ResultsError` (naming the file or result ``name``) unless ``result`` holds what a
    continual results file holds: an accuracy matrix ``[T+1, T]`` of fractions, task ends, curves, task times."""
    acc, ends = np.asarray(result.acc_matrix), np.asarray(result.task_ends)
    if acc.ndim != 2 or acc.shape[0] != acc.shape[1] + 1:
        raise ResultsError(f"{name}: acc_matrix has shape {acc.shape}, expected [T+1, T]")
    if ends.size and (ends.shape != acc.shape[1:] or ends.dtype.kind not in "iu" or np.any(np.diff(ends) < 0)
                      or ends[0] < 0):
        raise ResultsError(f"{name} is corrupt: curves/task_end is not one non-decreasing iteration per task")
    if acc.dtype.kind not in "iuf" or np.any(~np.isfinite(acc) | (acc < 0) | (acc > 1)):
        raise ResultsError(f"{name} is corrupt: acc_matrix holds accuracies outside 0..1 (or not numbers)")
    stream = result.config.get("stream") if isinstance(result.config, dict) else None
    planned = stream.get("n_tasks") if isinstance(stream, dict) else None
    if isinstance(planned, int) and not isinstance(planned, bool) and planned != acc.shape[1]:
        raise ResultsError(f"{name} is corrupt: acc_matrix holds {acc.shape[1]} tasks, its config's stream.n_tasks "
                           f"{planned}")
    short = next((k for k, v in result.measures.items() if np.shape(v) != acc.shape[1:]), None)
    if short is not None:
        raise ResultsError(f"{name} is corrupt: neurobench/{short} is not one value per task ({acc.shape[1]})")
    _check_curves(result, name)


def _check_curves(result: ContinualResult, path: Path | str) -> None:
    """A one-line :class:`ResultsError` unless the learning curves of ``result`` are P points of an iteration, a
    stage (non-decreasing, 0..T-1) and a row of T accuracies (in 0..1, defined for the tasks up to the stage, NaN
    or a number for the later ones), and its task times one number per task."""
    it, task, curves, seconds = (np.asarray(a) for a in (result.curve_iterations, result.curve_task,
                                                          result.curve_accuracy, result.task_seconds))
    n_tasks, points = result.acc_matrix.shape[1], it.shape[0] if it.ndim == 1 else -1
    if it.size or task.size or curves.size:             # none: no curves (train.eval_every = 0), whatever their shapes
        if not (it.ndim == 1 and task.shape == it.shape and it.dtype.kind in "iu" and task.dtype.kind in "iu"
                and curves.shape == (points, n_tasks) and curves.dtype.kind == "f"
                and not np.any((curves < 0) | (curves > 1))):
            raise ResultsError(f"{path} is corrupt: its learning curves are not {n_tasks} accuracies in 0..1 per point "
                               "of an iteration and a stage")
        if np.any(np.diff(task) < 0) or task[0] < 0 or task[-1] >= n_tasks \
                or np.isnan(curves[np.arange(n_tasks)[None, :] <= task[:, None]]).any():
            raise ResultsError(f"{path} is corrupt: its learning curves' stages are not in order, or a task learned "
                               "already has no accuracy")
    if seconds.shape != (n_tasks,) or seconds.dtype.kind not in "iuf":
        raise ResultsError(f"{path} is corrupt: timings/task_seconds is not one time per task ({n_tasks})")
