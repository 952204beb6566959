"""Event recordings to frames: counts of events per time bin, polarity channel and (pooled) pixel.

A recording is a set of events ``(t, c, y, x)``: time ``t`` in µs from the recording's start, channel ``c``
(polarity for cameras, 0 for SHD's cochlea), row ``y`` and column ``x`` on a sensor of shape ``(C, H, W)``.
:func:`bin_events` turns it into float32 frames ``[T, C, ceil(H / pool), ceil(W / pool)]``:

* ``bin_ms > 0`` — frame ``k`` counts the events with ``k · bin_ms ≤ t / 1000 < (k + 1) · bin_ms``; events after
  ``T · bin_ms`` are dropped.
* ``bin_ms = 0`` — the recording's span ``[0, t_last]`` is cut into ``T`` equal bins: frame ``floor(t · T /
  (t_last + 1))`` (every event is kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikecl.errors import ConfigError, DataError


@dataclass(frozen=True)
class EventBinning:
    """``frames``: T frames per recording; ``bin_ms``: each frame's width in ms (0 = the recording's span in T equal
    bins); ``pool``: events summed over ``pool × pool`` pixels (a 1-row sensor such as SHD: ``pool`` channels)."""

    frames: int = 20
    bin_ms: float = 0.0
    pool: int = 1

    def __post_init__(self) -> None:
        for name in ("frames", "pool"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"event binning: {name} {value!r} must be an integer >= 1")
        ms = self.bin_ms
        real = isinstance(ms, (int, float, np.integer, np.floating)) and not isinstance(ms, bool)
        if not (real and math.isfinite(ms) and ms >= 0):
            raise ConfigError(f"event binning: bin_ms {ms!r} must be a finite number >= 0")


def pooled_shape(sensor: tuple[int, int, int], pool: int) -> tuple[int, int, int]:
    """(C, H, W) of a frame of a ``sensor`` (C, H, W) after summing ``pool × pool`` pixels (ceil for a remainder)."""
    c, h, w = sensor
    return c, -(-h // pool), -(-w // pool)


def bin_events(t_us: np.ndarray, c: np.ndarray, y: np.ndarray, x: np.ndarray, sensor: tuple[int, int, int],
               binning: EventBinning, source: str = "recording", fields: tuple[str, str, str] = ("c", "y", "x")
               ) -> np.ndarray:
    """Frames float32 ``[T, C, H', W']`` of the events ``(t_us, c, y, x)`` (1-D arrays of one length) on ``sensor``
    (C, H, W); see the module docstring. ``source`` names the recording, ``fields`` its coordinates as its file
    names them, in a DataError (coordinates not whole numbers on the sensor, negative times)."""
    t = np.asarray(t_us, dtype=np.float64)
    coords = [_coordinates(a, size, axis, sensor, source) for a, size, axis in zip((c, y, x), sensor, fields)]
    if any(a.shape != t.shape for a in coords) or t.ndim != 1:
        raise DataError(f"{source}: event fields differ in length")
    if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
        raise DataError(f"{source}: event times must be finite and non-negative")
    steps = binning.frames
    if binning.bin_ms > 0:
        width = float(f"{binning.bin_ms * 1000.0:.12g}")   # µs to 12 digits: 4.03 ms is 4030, not 4030.0000000000005
        k = np.floor(t / width)                        # compared as floats: a huge t / bin_ms overflows int64
    else:
        span = t.max() + 1.0 if t.size else 1.0
        k = np.minimum(np.floor(t * steps / span), steps - 1)
    keep = k < steps
    shape = (steps, *pooled_shape(sensor, binning.pool))
    cc, yy, xx = coords[0][keep], coords[1][keep] // binning.pool, coords[2][keep] // binning.pool
    flat = np.ravel_multi_index((k[keep].astype(np.int64), cc, yy, xx), shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).astype(np.float32).reshape(shape)


def _coordinates(a, size: int, axis: str, sensor: tuple[int, int, int], source: str) -> np.ndarray:
    """Event coordinates ``a`` as int64, or a DataError unless they are whole numbers in ``0..size - 1``."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{source}: event {axis} must be numbers, got {a.dtype}")
    if a.dtype.kind == "f":
        whole = np.isfinite(a) & (a == np.floor(a))
        if not np.all(whole):
            raise DataError(f"{source}: event {axis} must be whole numbers, got {a[~whole].flat[0]:g}")
    if a.size and (a.min() < 0 or a.max() >= size):
        raise DataError(f"{source}: event {axis} outside 0..{size - 1} (sensor {sensor})")
    return a.astype(np.int64)
