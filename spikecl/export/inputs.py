"""Integer inputs for a quantised network (numpy, torch-free); the samples they encode come from
:mod:`spikecl.export.samples`.

Encoders mirror :mod:`spikecl.snn.encoders`, producing integers ``[T, B, n_inputs]``:
``direct`` graded values ``round(x * Q)`` at every step (Q = 2**input_bits - 1), ``latency`` one spike at step
``round((1 - x)(T - 1))``, ``poisson`` Bernoulli spikes from a numpy generator (not torch's random stream).
"""

from __future__ import annotations

import numpy as np

from spikecl.data.base import ROUNDING
from spikecl.errors import ConfigError, DataError, ShapeError
from spikecl.export.fixed_point import check_input_size
from spikecl.export.quantize import FixedNetwork
from spikecl.export.spec import check_num_steps


def encode_values(x: np.ndarray, num_steps: int, encoder: str, scale: int | None = None,
                  seed: int = 0) -> np.ndarray:
    """Encode samples ``x`` [B, ...] (values in [0, 1]) → ``[T, B, features]``.

    ``direct``: ``x`` at every step, as integers ``round(x * scale)`` when ``scale`` is given (graded spikes),
    else float. ``latency`` and ``poisson`` give binary spikes (int64 with a scale, float without); ``poisson``
    draws sample by sample from ``seed``, so the first k samples get the same spikes in any batch that starts
    with them.
    """
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ShapeError(f"samples: expected a numeric array [B, ...], got {type(x).__name__}") from None
    if x.ndim < 2 or not x.size:
        raise ShapeError(f"samples have shape {x.shape}; expected [B, ...] with at least one sample and one value")
    x = x.reshape(len(x), -1)
    num_steps = check_num_steps(num_steps, "num_steps")
    check_input_size(num_steps, *x.shape)
    if not np.all(np.isfinite(x)):
        raise DataError("samples contain NaN or infinity")
    if x.min() < -ROUNDING or x.max() > 1 + ROUNDING:    # raw 8-bit images, say: clipped they would all read as 1
        raise DataError(f"samples hold values in {x.min():.7g}..{x.max():.7g}, but the network's inputs are "
                        "intensities in [0, 1]; scale them first (x / 255 for 8-bit images)")
    x = np.clip(x, 0.0, 1.0)                           # float32 rounding (a rotated pixel of 1.0000001)
    dtype = np.int64 if scale is not None else np.float64
    if encoder == "direct":
        q = np.round(x * scale).astype(np.int64) if scale is not None else x
        return np.broadcast_to(q, (num_steps, *q.shape)).copy()
    if encoder == "latency":                           # in float32, as training encodes (a step exactly halfway
        xf = x.astype(np.float32)                      # rounds to even there, and float64 lands just off it)
        fire_at = np.round((np.float32(1.0) - xf) * np.float32(num_steps - 1))
        t = np.arange(num_steps).reshape(-1, 1, 1)
        return ((t == fire_at[None]) & (x[None] > 0)).astype(dtype)
    if encoder == "poisson":
        draws = np.random.default_rng(seed).random((len(x), num_steps, x.shape[1]))   # [B, T, n]: by sample
        return (draws < x[:, None]).astype(dtype).transpose(1, 0, 2).copy()
    raise ConfigError(f"encoder {encoder!r} is not supported; choose direct, latency or poisson")


def check_features(x: np.ndarray, n_inputs: int) -> None:
    """A :class:`ShapeError` unless every sample of ``x`` [B, ...] has ``n_inputs`` features."""
    if int(np.prod(np.shape(x)[1:])) != n_inputs:
        raise ShapeError(f"samples have {int(np.prod(np.shape(x)[1:]))} features; the network takes {n_inputs}")


def encode(x: np.ndarray, net: FixedNetwork, seed: int = 0) -> np.ndarray:
    """Encode samples ``x`` [B, ...] for the quantised ``net`` → int64 ``[T, B, n_inputs]``."""
    check_features(x, net.n_inputs)
    return encode_values(x, net.num_steps, net.encoder, net.input_scale, seed)
