"""Integer inputs for a quantised network (numpy, torch-free) and the test samples a network was trained for.

Encoders mirror :mod:`spikecl.snn.encoders`, producing integers ``[T, B, n_inputs]``:
``direct`` graded values ``round(x * Q)`` at every step (Q = 2**input_bits - 1), ``latency`` one spike at step
``round((1 - x)(T - 1))``, ``poisson`` Bernoulli spikes from a numpy generator (not torch's random stream).
"""

from __future__ import annotations

import numpy as np

from spikecl.errors import ConfigError, DataError, ShapeError
from spikecl.export.quantize import FixedNetwork


def encode(x: np.ndarray, net: FixedNetwork, seed: int = 0) -> np.ndarray:
    """Encode samples ``x`` [B, ...] (values in [0, 1]) for ``net`` → int64 ``[T, B, n_inputs]``."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if x.shape[1] != net.n_inputs:
        raise ShapeError(f"samples have {x.shape[1]} features; the network takes {net.n_inputs}")
    if not np.all(np.isfinite(x)):
        raise DataError("samples contain NaN or infinity")
    x = np.clip(x, 0.0, 1.0)
    steps = net.num_steps
    if net.encoder == "direct":
        q = np.round(x * net.input_scale).astype(np.int64)
        return np.broadcast_to(q, (steps, *q.shape)).copy()
    if net.encoder == "latency":
        fire_at = np.round((1.0 - x) * (steps - 1))
        t = np.arange(steps).reshape(-1, 1, 1)
        return ((t == fire_at[None]) & (x[None] > 0)).astype(np.int64)
    if net.encoder == "poisson":
        rng = np.random.default_rng(seed)
        return (rng.random((steps, *x.shape)) < x[None]).astype(np.int64)
    raise ConfigError(f"encoder {net.encoder!r} is not supported")


def test_samples(config: dict, max_samples: int | None = None, data_dir: str | None = None):
    """Test samples of every task of the stream a network was trained on: (x [N, ...], y [N], heads [N]).

    ``config`` is the training config stored with the network (dataset, stream, seed). Tasks are interleaved
    evenly when ``max_samples`` cuts the set.
    """
    from spikecl.data.datasets import load_dataset
    from spikecl.data.streams import make_stream

    try:
        data, s = config["data"], config["stream"]
    except (KeyError, TypeError):
        raise ConfigError("the exported network carries no training config (data, stream); pass samples "
                          "explicitly") from None
    dataset = load_dataset(data["dataset"], data_dir or data.get("data_dir") or None, seed=0)
    stream = make_stream(dataset, s["kind"], s["n_tasks"], s["scenario"], seed=int(config.get("seed", 0)),
                         classes_per_task=s.get("classes_per_task") or None, max_angle_deg=s.get("max_angle_deg",
                                                                                                  180.0),
                         first_task_identity=s.get("first_task_identity", False),
                         train_per_task=s.get("train_per_task") or None, test_per_task=s.get("test_per_task") or None)
    xs, ys, hs = [], [], []
    per_task = None if max_samples is None else -(-max_samples // len(stream))
    for task in stream:
        n = len(task.y_test) if per_task is None else min(per_task, len(task.y_test))
        xs.append(task.x_test[:n])
        ys.append(task.y_test[:n])
        hs.append(np.full(n, stream.head(task.index), dtype=np.int64))
    x, y, heads = np.concatenate(xs), np.concatenate(ys), np.concatenate(hs)
    if max_samples is not None:
        x, y, heads = x[:max_samples], y[:max_samples], heads[:max_samples]
    return x, y, heads
