"""A run's checkpoint: where it lies beside the results file, reading it safely (tensors and plain data only, its
members' CRCs checked), whether it was written by the same run (:func:`checkpoint_difference`), the run loop's
checkpointed state (:class:`RunState`, checked on reading: :func:`check_progress`) and what each task was computed
with (its setup)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spikecl.config import ExperimentConfig
from spikecl.continual.run_record import unshown_difference
from spikecl.continual.strategies import as_read, effective_options, validate_method
from spikecl.differences import OtherMethodsIgnored, as_written, first_difference
from spikecl.errors import ResultsError
from spikecl.experiment_kind import RESUME_IGNORES
from spikecl.integrity import archive_problem
from spikecl.recorded import options_as_now, recorded_as_now
from spikecl.remedies import option


def numpy_rng_state() -> tuple:
    """numpy's global MT19937 state with its key as a tensor, so a checkpoint holds only tensors and plain data
    (loadable with ``torch.load(weights_only=True)``, which cannot run code from the file)."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    return name, torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(cached)


def set_numpy_rng_state(state: tuple) -> None:
    """Restore numpy's global generator from :func:`numpy_rng_state`'s tuple."""
    name, key, pos, has_gauss, cached = state
    np.random.set_state((name, key.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))


def damaged_remedy() -> str:
    """What to do with a damaged or foreign checkpoint (plain ``--overwrite`` would train the finished runs again
    too), in the caller's spelling (:func:`spikecl.remedies.option`)."""
    return (f"delete it, or run with {option('--resume', '--overwrite')} (keeps the finished runs; "
            f"{option('--overwrite')} alone trains all again)")


def start_again() -> str:
    """What to do with a checkpoint made otherwise, in the caller's spelling (:func:`spikecl.remedies.option`)."""
    return (f"run with {option('--overwrite')} to start again (with {option('--resume')} as well: keep the finished "
            "runs)")


#: what a run checkpoint holds at least
CHECKPOINT_KEYS = frozenset({"config", "method", "seed", "progress", "model", "optimizer", "strategy", "rng"})


def read_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict:
    """The state saved in the checkpoint ``path`` (tensors and plain data only, nothing run from the file); a
    damaged or foreign file is a one-line :class:`ResultsError`."""
    try:
        damaged = archive_problem(path)            # torch writes each member's CRC-32 but never checks it
        state = None if damaged else torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or crafted file
        raise ResultsError(f"{path} is not a readable checkpoint ({type(exc).__name__}); {damaged_remedy()}") from None
    if damaged:
        raise ResultsError(f"{path} is damaged ({damaged}); {damaged_remedy()}")
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= state.keys():
        raise ResultsError(f"{path} is not a spikecl run checkpoint (it lacks "
                           f"{', '.join(sorted(CHECKPOINT_KEYS - set(state if isinstance(state, dict) else ())))})"
                           f"; {damaged_remedy()}")
    wrong = next((key for key in ("config", "progress", "model", "rng") if not isinstance(state[key], dict)), None)
    if wrong:
        raise ResultsError(f"{path} is not a spikecl run checkpoint (its {wrong} is a {type(state[wrong]).__name__}, "
                           f"not a table); {damaged_remedy()}")
    return state


def checkpoint_difference(state: dict, method: str, seed: int, cfg: ExperimentConfig, runs_method: str) -> str | None:
    """The first setting (``method``, ``seed`` or a dotted key; :data:`RESUME_IGNORES` and the options of methods
    ``runs_method`` does not use aside) in which the checkpoint ``state`` was written otherwise than a run of
    (``cfg``, ``method``, ``seed``); None if none. A checkpoint that records its method's options with their
    defaults (``state["options"]``) is compared on those, so a default changed between a kill and a resume shows."""
    recorded, now = recorded_as_now(state.get("config"), seed), cfg.to_dict()
    if isinstance(recorded, dict) and isinstance(recorded.get("strategy"), dict) and "options" in state:
        options = as_read(runs_method, state["options"]) if isinstance(state["options"], dict) else state["options"]
        recorded = options_as_now({**recorded, "strategy": {**recorded["strategy"], "options": options}})
        now["strategy"]["options"] = effective_options(runs_method, cfg.strategy.options)
    return ("method" if state.get("method") != method else "seed" if state.get("seed") != seed
            else unshown_difference(state, cfg, runs_method) or as_written(first_difference(
                recorded, now, ignore=OtherMethodsIgnored(RESUME_IGNORES, runs_method))))


def checkpoint_mismatch(path: Path, cfg: ExperimentConfig, method: str, seed: int) -> str | None:
    """The first setting (as :func:`checkpoint_difference` names it) in which the checkpoint at ``path`` was written
    otherwise than a run of (``cfg``, ``method``, ``seed``) writes it; None if none. A damaged or foreign checkpoint
    is a one-line :class:`ResultsError` (:func:`read_checkpoint`)."""
    state = read_checkpoint(path)
    run_cfg, runs_method = validate_method(cfg, method)
    return checkpoint_difference(state, method, seed, run_cfg, runs_method)


@dataclass
class RunState:
    """The run loop's own state, checkpointed at every task boundary."""

    next_task: int = 0
    iteration: int = 0
    rows: list = field(default_factory=list)             # accuracy-matrix rows so far
    curve_iterations: list = field(default_factory=list)
    curve_task: list = field(default_factory=list)
    curve_accuracy: list = field(default_factory=list)
    task_seconds: list = field(default_factory=list)
    task_ends: list = field(default_factory=list)        # the iteration each task's training ended at
    stage: int = -1                                      # the stage whose outputs the last task trained made active
    measures: list = field(default_factory=list)         # NeuroBench measures after each task ({name: value})
    setups: list = field(default_factory=list)           # what each task was computed with (:meth:`setup`)


def check_progress(p: RunState, n_tasks: int) -> None:
    """A ValueError naming the first entry of a checkpoint's progress ``p`` that a run of ``n_tasks`` tasks could not
    have written (so that a damaged or crafted checkpoint stops before training, not after it): counts are whole
    numbers, the accuracy rows one per task learned plus the initial one, each of ``n_tasks`` values in [0, 1],
    curves of one length, task ends non-decreasing, measures and setups one table per task."""
    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def fractions(row, unmeasured: bool = False) -> bool:           # a curve's NaN: a task not yet learned
        return isinstance(row, (list, tuple)) and len(row) == n_tasks and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and (0 <= v <= 1 or unmeasured and v != v)
            for v in row)

    if not (whole(p.next_task) and 0 <= p.next_task <= n_tasks):
        raise ValueError(f"progress of {p.next_task!r} tasks does not fit a stream of {n_tasks}")
    if not (whole(p.iteration) and p.iteration >= 0 and whole(p.stage)):
        raise ValueError(f"progress iteration {p.iteration!r} or stage {p.stage!r} is not a count")
    rows_fit = len(p.rows) == p.next_task + 1 or not (p.rows or p.next_task)
    if not (isinstance(p.rows, list) and rows_fit and all(map(fractions, p.rows))):
        raise ValueError(f"accuracy rows do not fit {p.next_task} tasks learned of {n_tasks}")
    lists = ("curve_iterations", "curve_task", "curve_accuracy", "task_seconds", "task_ends", "measures", "setups")
    if not all(isinstance(getattr(p, name), list) for name in lists):
        raise ValueError("progress entries are not lists")
    if not (len(p.curve_iterations) == len(p.curve_task) == len(p.curve_accuracy)
            and all(map(whole, p.curve_iterations + p.curve_task))
            and all(fractions(row, unmeasured=True) for row in p.curve_accuracy)):
        raise ValueError("learning curves are not one iteration, stage and accuracy row per point")
    ends = p.task_ends
    if not (len(ends) <= p.next_task and all(map(whole, ends)) and ends == sorted(ends)
            and all(0 <= end <= p.iteration for end in ends)):
        raise ValueError(f"task ends {ends!r} are not one non-decreasing iteration per task learned")
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in p.task_seconds):
        raise ValueError("task times are not finite numbers")
    if not (len(p.measures) <= p.next_task and all(isinstance(m, dict) and all(
            isinstance(k, str) and isinstance(v, (int, float)) for k, v in m.items()) for m in p.measures)):
        raise ValueError("measures are not one table of numbers per task learned")
    if not (len(p.setups) == p.next_task and all(isinstance(setup, dict) for setup in p.setups)):
        raise ValueError(f"setups are not one table per task learned ({p.next_task})")


#: what :meth:`ContinualRun.setup` records per task: besides the config, what a task's numbers depend on
SETUP_KEYS = ("device", "torch_threads", "blas_threads", "cpu", "torch_cpu_capability", "processes", "spikecl_source",
              "torch", "numpy", "engine")


def checkpoint_setup(state: dict) -> dict:
    """The setup of the tasks in a checkpoint written before setups were recorded per task, from the fields its
    resume notices compare (None where it recorded none)."""
    cpu, _, kernels = (state.get("cpu") or "").rpartition(", ")       # machine_kernels(): "<cpu>, <set> kernels"
    return {"device": None, "torch_threads": state.get("torch_threads"), "blas_threads": None, "cpu": cpu or None,
            "torch_cpu_capability": kernels.removesuffix(" kernels") if cpu else None,
            "processes": state.get("processes"), "spikecl_source": None, "torch": None, "numpy": None,
            "engine": ((state.get("config") or {}).get("network") or {}).get("engine")}


def tasks_setup(setups: list[dict]) -> dict:
    """Environment entries of the setup the tasks were computed with: :func:`mixed_setups` where they differ, else
    their one setup's recorded values (a run resumed after its last task was trained, in a process of other
    threads, trained nothing there)."""
    mixed = mixed_setups(setups)
    if mixed or not setups:
        return mixed
    return {k: v for k, v in setups[-1].items() if k in SETUP_KEYS[:-1] and v is not None}


def mixed_setups(setups: list[dict]) -> dict:
    """Environment entries for a run whose tasks were computed with different setups (resumed from a checkpoint
    written with other threads, CPU, processes, engine, device or torch/numpy versions); empty when all tasks had
    one (None, unrecorded, differs from nothing). ``setups_by_task``: one entry per stretch of tasks, ``{"tasks": [first, last] (1-based),
    **setup}``; and each environment key that differs becomes the list of its values in the order used (e.g.
    ``torch_threads: [1, 2]``)."""
    stretches: list[dict] = []
    for task, setup in enumerate(setups, 1):
        if stretches and all(None in (stretches[-1][k], setup.get(k)) or stretches[-1][k] == setup.get(k)
                             for k in SETUP_KEYS):
            stretches[-1]["tasks"][1] = task
        else:
            stretches.append({"tasks": [task, task], **{k: setup.get(k) for k in SETUP_KEYS}})
    if len(stretches) < 2:
        return {}
    out: dict = {"setups_by_task": stretches}
    for key in SETUP_KEYS[:-1]:                    # the engine is no environment key: the config records the last
        used = list(dict.fromkeys(s[key] for s in stretches if s[key] is not None))
        if len(used) > 1:
            out[key] = used
    return out
