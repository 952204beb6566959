"""The trained network in float, in numpy (torch-free): snnTorch ``Leaky`` semantics, for calibration and checks.

Hidden layers: ``mem[t] = beta * mem[t-1] * (1 - s[t-1]) + W x[t] + b`` (reset ``zero``) or
``beta * mem[t-1] + W x[t] + b - s[t-1] * threshold`` (``subtract``); ``s[t] = mem[t] > threshold``.
Readout: ``mem[t] = beta * mem[t-1] + W x[t] + b``, logits = mean over t of ``mem[t]``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikecl.errors import ConfigError, ResultsError, ShapeError
from spikecl.export.conv import synaptic_input
from spikecl.export.spec import NetworkSpec


class FloatTrace(NamedTuple):
    """Spikes per hidden layer ``[T, B, n]``, readout membranes ``[T, B, n_readout]``."""

    spikes: list
    readout_mem: np.ndarray


def float_forward(spec: NetworkSpec, x_seq: np.ndarray) -> FloatTrace:
    """Run the float network on input currents or spikes ``x_seq`` ``[T, B, n_inputs]`` (else a one-line
    ShapeError)."""
    h = np.asarray(x_seq, dtype=np.float64)
    if h.ndim != 3 or h.shape[2] != spec.n_inputs:
        raise ShapeError(f"inputs have shape {h.shape}; expected [T, B, {spec.n_inputs}]")
    spikes = []
    for layer in spec.hidden:
        current = synaptic_input(layer, h) + (0.0 if layer.bias is None else layer.bias)
        mem = np.zeros(current.shape[1:])
        s = np.zeros_like(mem)
        out = []
        for cur in current:
            if layer.reset == "zero":
                mem = layer.beta * mem * (1.0 - s) + cur
            else:
                mem = layer.beta * mem + cur - s * layer.threshold
            s = (mem > layer.threshold).astype(np.float64)
            out.append(s)
        h = np.stack(out)
        spikes.append(h)
    r = spec.readout
    current = synaptic_input(r, h) + (0.0 if r.bias is None else r.bias)
    mem = np.zeros(current.shape[1:])
    mems = []
    for cur in current:
        mem = r.beta * mem + cur
        mems.append(mem)
    return FloatTrace(spikes, np.stack(mems))


def float_logits(spec: NetworkSpec, x_seq: np.ndarray, heads: np.ndarray | None = None) -> np.ndarray:
    """Logits ``[B, n_outputs]`` (mean readout membrane) of each sample's head; outputs the training stream never
    made active are ``-inf`` (:func:`select_heads`)."""
    return select_heads(float_forward(spec, x_seq).readout_mem.mean(axis=0), spec.n_heads, spec.n_outputs, heads,
                        spec.config)


def check_heads(heads, n_samples: int, n_heads: int) -> np.ndarray:
    """``heads`` as int64 ``[n_samples]`` (zeros when None, for a one-head readout only): integers in 0..n_heads-1,
    else a one-line :class:`ShapeError` (never truncated, wrapped or broadcast); None for several heads is a
    :class:`ConfigError`, as in the torch network."""
    if heads is None:
        if n_heads > 1:
            raise ConfigError(f"heads: this readout has {n_heads} heads; give the head index of every sample")
        return np.zeros(n_samples, dtype=np.int64)
    h = np.asarray(heads)
    if h.shape != (n_samples,):
        raise ShapeError(f"heads have shape {h.shape}; expected [{n_samples}] (one per sample)")
    if h.size and (h.dtype.kind not in "iu" or h.min() < 0 or h.max() >= n_heads):
        shown = f"{h.min()}..{h.max()}" if h.dtype.kind in "iuf" else str(h.dtype)
        raise ShapeError(f"heads must be integers in 0..{n_heads - 1} (the readout has {n_heads} heads), got {shown}")
    return h.astype(np.int64)


def select_heads(values: np.ndarray, n_heads: int, n_outputs: int, heads: np.ndarray | None = None,
                 config: dict | None = None) -> np.ndarray:
    """Each sample's head ``[B, n_outputs]`` of readout values ``[B, n_heads * n_outputs]`` (``heads`` None: one
    head only, see :func:`check_heads`); outputs the training stream of ``config`` never made active
    (:func:`trained_outputs`) are ``-inf``, as training and evaluation masked them."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != n_heads * n_outputs:
        raise ShapeError(f"readout values have shape {values.shape}; expected [B, {n_heads} heads x {n_outputs} "
                         "outputs]")
    values = values.reshape(values.shape[0], n_heads, n_outputs)
    values = values[np.arange(values.shape[0]), check_heads(heads, values.shape[0], n_heads)]
    active = trained_outputs(config or {}, n_outputs)
    return values if active is None else np.where(active, values, -np.inf)


def trained_outputs(config: dict, n_outputs: int) -> np.ndarray | None:
    """``[n_outputs]`` bool: the outputs the training stream of ``config`` made active by the last task trained
    (``config["tasks_trained"]``, which a run checkpoint's progress gives, else every task), or None when they are
    all active. Only class-incremental streams keep some inactive: a split stream whose tasks leave classes out
    (``classes_per_task · n_tasks`` below the dataset's classes), and a split, permuted or rotated one stopped
    before its last task (each task of a permuted or rotated one adds its own block of the dataset's classes).
    Their outputs were never trained, and every prediction of the run was taken among the others. (A class-IL
    domains stream stopped early is not recognised: every output is taken as active.)"""
    from spikecl.recorded import recorded_as_now

    stream = recorded_as_now(config).get("stream") if isinstance(config, dict) else None
    if not isinstance(stream, dict) or stream.get("kind") not in ("split", "permuted", "rotated") \
            or stream.get("scenario") != "class":
        return None
    tasks, per = stream.get("n_tasks"), stream.get("classes_per_task") or 0 if stream["kind"] == "split" else 0
    if not isinstance(tasks, int) or not isinstance(per, int) or tasks < 1:
        return None
    seen = (per or n_outputs // tasks) * (tasks_trained(config) or tasks)
    return None if not 0 < seen < n_outputs else np.arange(n_outputs) < seen


def tasks_trained(config: dict) -> int | None:
    """The tasks a network had trained when it was exported, ``config["tasks_trained"]`` (a checkpoint of a run
    stopped between tasks), or None (every task of its stream). A value that is not a whole number from 1 to the
    stream's ``n_tasks`` is a one-line :class:`~spikecl.errors.ResultsError`."""
    if not isinstance(config, dict) or "tasks_trained" not in config:
        return None
    done, stream = config["tasks_trained"], config.get("stream")
    tasks = stream.get("n_tasks") if isinstance(stream, dict) else None
    top = tasks if isinstance(tasks, int) and not isinstance(tasks, bool) and tasks >= 1 else None
    if isinstance(done, bool) or not isinstance(done, int) or done < 1 or (top is not None and done > top):
        raise ResultsError(f"the stored config's tasks_trained = {done!r} is not a number of tasks from 1 to the "
                           f"stream's {top if top is not None else 'n_tasks'}; the file is damaged")
    return done


def readout_range(spec: NetworkSpec, x_seq: np.ndarray, margin: float = 1.5) -> float:
    """``margin`` x the largest ``|sum_t mem[t]|`` or ``|mem[t]|`` of the readout on calibration inputs."""
    mem = float_forward(spec, x_seq).readout_mem
    largest = max(float(np.abs(mem.sum(axis=0)).max()), float(np.abs(mem).max()))
    return margin * max(largest, 1e-6)
