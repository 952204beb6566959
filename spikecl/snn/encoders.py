"""Input encoders: static inputs in [0, 1] to sequences over T time steps.

All encoders map ``x`` of shape ``[B, ...]`` to ``[T, B, ...]`` (float, same device); ``events`` takes inputs that
are sequences already (event frames ``[B, T, ...]``) and only moves time to the front.
"""

from __future__ import annotations

import torch

from spikecl.errors import ConfigError, ShapeError
from spikecl.snn.checks import as_input, count

ENCODERS = ("direct", "poisson", "latency", "events")


def direct(x: torch.Tensor, num_steps: int) -> torch.Tensor:
    """The input as a constant current repeated at every step (a view, no copy)."""
    return x.unsqueeze(0).expand(num_steps, *x.shape)


def poisson(x: torch.Tensor, num_steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli spikes with probability ``x`` (clamped to [0, 1]) per step (rate coding); reproducible with
    ``generator``. Drawn sample by sample ([B, T, ...], then laid out time first), so encoding a batch in chunks
    from one CPU generator gives the spikes of encoding it whole (an evaluation's accuracy does not depend on its
    batch size)."""
    probs = x.clamp(0.0, 1.0).unsqueeze(1).expand(x.shape[0], num_steps, *x.shape[1:])
    return torch.bernoulli(probs, generator=generator).transpose(0, 1).contiguous()


def latency(x: torch.Tensor, num_steps: int) -> torch.Tensor:
    """One spike per input at step ``round((1 - x) * (T - 1))`` (``x`` clamped to [0, 1]): brighter fires earlier;
    zeros never fire. The comparison is written straight into the float sequence (no [T, B, ...] bool tensors,
    which are slow on a CPU)."""
    steps = torch.arange(num_steps, device=x.device, dtype=x.dtype).view(-1, *([1] * x.dim()))
    fire_at = torch.round((1.0 - x.clamp(0.0, 1.0)) * (num_steps - 1)).masked_fill_(x <= 0, -1.0)   # -1: never
    return torch.eq(steps, fire_at.unsqueeze(0), out=x.new_empty((num_steps, *x.shape)))


def events(x: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Event frames ``x`` [B, T, ...] as the sequence ``[T, B, ...]`` (no encoding); T must be ``num_steps``."""
    if x.dim() < 2 or x.shape[1] != num_steps:
        raise ShapeError(f"event input {tuple(x.shape)} must be [B, T={num_steps}, ...] frames")
    return x.transpose(0, 1).contiguous()


def encode(x: torch.Tensor, num_steps: int, kind: str = "direct",
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Encode ``x`` [B, ...] into ``[T, B, ...]`` with the named encoder (``direct``, ``poisson``, ``latency``;
    ``events``: ``x`` is [B, T, ...] frames already). ``x`` may be a numpy array; float64 and integer inputs become
    float32; ``num_steps`` must be an integer >= 1 (ConfigError); NaN or infinite inputs on the CPU raise
    NumericalError; integer inputs above 1 (raw 8-bit images) DataError. Poisson and latency encoding clamp
    ``x`` to [0, 1]."""
    num_steps = count(num_steps, "network.num_steps")
    x = as_input(x, "encoder input", intensities=kind != "events")
    if x.dim() < 1:
        raise ShapeError(f"encoder input of shape {tuple(x.shape)} has no sample axis; expected [B, ...]")
    if kind == "direct":
        return direct(x, num_steps)
    if kind == "poisson":
        return poisson(x, num_steps, generator)
    if kind == "latency":
        return latency(x, num_steps)
    if kind == "events":
        return events(x, num_steps)
    raise ConfigError(f"network.encoder: {kind!r} is not allowed; choose one of {', '.join(ENCODERS)}")
