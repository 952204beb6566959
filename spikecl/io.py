"""Results files and atomic writes.

Every run writes one HDF5 file (schema below); memories and exports use the same helpers. Files are written to a
temporary name in the target folder and renamed into place, so a killed process never leaves a half-written file,
and an existing file is only replaced when the caller says ``overwrite=True``.

Results schema (version 1)::

    /                      attrs: schema = "spikecl-results", schema_version, method, seed, kind = "continual",
                                  eval_split = "test" | "validation" (what the accuracies were measured on)
    /config                attrs: json (the experiment config, method and seed)
    /environment           attrs: json (versions, device, host)
    /acc_matrix            float64 [T+1, T]  row 0: untrained network; row i: after task i (fractions)
    /curves/iterations     int64 [E]         training iteration of each continual evaluation
    /curves/task           int64 [E]         task being trained at that evaluation (0-based)
    /curves/accuracy       float64 [E, T]    accuracy on every task at that evaluation
    /timings/task_seconds  float64 [T]       wall time of each task's training
    /metrics               attrs: one float per metric (acc, bwt, ...)
    /model/<param>         the trained network's parameters and buffers (for export)
    /extra/<name>          strategy-specific arrays (e.g. subspace dimensions)
"""

from __future__ import annotations

import json
from contextlib import contextmanager
import os
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from spikecl.errors import ExistsError, ResultsError

SCHEMA = "spikecl-results"
SCHEMA_VERSION = 1


def atomic_write(path: str | Path, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    Parent folders are created. Raises :class:`ExistsError` if ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExistsError(f"{path} exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def environment() -> dict:
    """Versions of Python and the numerical stack, the platform and host (for reproducibility records)."""
    env = {"python": sys.version.split()[0], "platform": platform.platform(), "host": platform.node(),
           "numpy": np.__version__}
    for name in ("h5py", "torch", "snntorch", "brian2", "networkx"):
        module = sys.modules.get(name)
        if module is not None:
            env[name] = getattr(module, "__version__", "?")
    return env


@dataclass
class RunResult:
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

    @property
    def n_tasks(self) -> int:
        return self.acc_matrix.shape[1]


def _write_arrays(group, arrays: dict[str, np.ndarray]) -> None:
    for name, value in arrays.items():
        group.create_dataset(name, data=np.asarray(value))


def write_results(path: str | Path, result: RunResult, overwrite: bool = False) -> Path:
    """Write ``result`` atomically to ``path`` (HDF5). Refuses to replace an existing file unless ``overwrite``."""
    import h5py

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(schema=SCHEMA, schema_version=SCHEMA_VERSION, kind="continual",
                           method=result.method, seed=result.seed,
                           eval_split=(result.config.get("data") or {}).get("eval_split", "test"))
            f.create_group("config").attrs["json"] = json.dumps(result.config)
            f.create_group("environment").attrs["json"] = json.dumps(result.environment)
            f.create_dataset("acc_matrix", data=np.asarray(result.acc_matrix, dtype=np.float64))
            _write_arrays(f.create_group("curves"), {
                "iterations": np.asarray(result.curve_iterations, dtype=np.int64),
                "task": np.asarray(result.curve_task, dtype=np.int64),
                "accuracy": np.asarray(result.curve_accuracy, dtype=np.float64).reshape(-1, result.n_tasks)})
            _write_arrays(f.create_group("timings"),
                          {"task_seconds": np.asarray(result.task_seconds, dtype=np.float64)})
            f.create_group("metrics").attrs.update({k: float(v) for k, v in result.metrics.items()})
            _write_arrays(f.create_group("model"), result.model)
            _write_arrays(f.create_group("extra"), result.extra)

    return atomic_write(path, write, overwrite=overwrite)


@contextmanager
def open_for_reading(path: str | Path, what: str = "results file"):
    """Open the HDF5 file ``path`` for reading (yields the ``h5py.File``). A missing file, a non-HDF5 or truncated
    one, or a missing/invalid entry met inside the block is a one-line :class:`ResultsError`."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{what} not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            yield f
    except ResultsError:
        raise
    except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultsError(f"{path} is corrupt or incomplete ({reason})") from None


def read_results(path: str | Path) -> RunResult:
    """Read a results file written by :func:`write_results`.

    Raises :class:`ResultsError` (one line) if the file is missing, not HDF5, truncated, from another schema, or
    lacks a required entry.
    """
    path = Path(path)
    with open_for_reading(path) as f:
        if f.attrs.get("schema") != SCHEMA:
            raise ResultsError(f"{path} is not a spikecl results file (schema attribute missing)")
        if f.attrs.get("kind", "continual") != "continual":
            raise ResultsError(f"{path} holds a {f.attrs['kind']!r} run, not a continual-learning run; its "
                               f"numbers are in /metrics and /curves (h5py)")
        version = int(f.attrs["schema_version"])
        if version > SCHEMA_VERSION:
            raise ResultsError(f"{path} has schema version {version}; this spikecl reads up to "
                               f"{SCHEMA_VERSION} (upgrade spikecl)")
        result = RunResult(
            method=str(f.attrs["method"]), seed=int(f.attrs["seed"]),
            config=json.loads(f["config"].attrs["json"]),
            environment=json.loads(f["environment"].attrs["json"]),
            acc_matrix=f["acc_matrix"][()],
            curve_iterations=f["curves/iterations"][()], curve_task=f["curves/task"][()],
            curve_accuracy=f["curves/accuracy"][()], task_seconds=f["timings/task_seconds"][()],
            metrics={k: float(v) for k, v in f["metrics"].attrs.items()},
            model={k: v[()] for k, v in f["model"].items()},
            extra={k: v[()] for k, v in f["extra"].items()})
    acc = result.acc_matrix
    if acc.ndim != 2 or acc.shape[0] != acc.shape[1] + 1:
        raise ResultsError(f"{path}: acc_matrix has shape {acc.shape}, expected [T+1, T]")
    return result
