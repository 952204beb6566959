"""Argument checks of the torch side, one-line :mod:`spikecl.errors` on bad input (config's value checks reused).

Per-element checks (finite values, labels and heads in range) run at once on CPU tensors; on an accelerator they
return a flag on the device for a deferred read (no host synchronisation per batch)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from spikecl.config import NetworkConfig
from spikecl.errors import DataError, NumericalError, ShapeError
from spikecl.options import check_bounds, check_value


def count(value, key: str, low: int = 1) -> int:
    """``value`` as an int >= ``low`` (numpy integers accepted, bool refused), else ConfigError naming ``key``."""
    value = check_value(value, int, key)
    check_bounds(value, {"low": low}, key)
    return value


def network_option(value, name: str):
    """``value`` checked as the config's ``network.<name>`` (same type and bounds), else ConfigError."""
    spec = {f.name: f for f in dataclasses.fields(NetworkConfig)}[name]
    key = f"network.{name}"
    value = check_value(value, {"beta": float, "threshold": float, "surrogate_slope": float}.get(name, str), key)
    check_bounds(value, spec.metadata, key)
    return value


def as_input(x, what: str = "input", finite: bool = True, intensities: bool = False) -> torch.Tensor:
    """``x`` (tensor or numpy array) as a float32 tensor (from float64, float16, bfloat16 or integers); with
    ``finite``, on the CPU non-finite values raise NumericalError (on an accelerator see :func:`finite_flag`); with
    ``intensities`` (static inputs, [0, 1]), integers above 1 (raw 8-bit images) raise DataError."""
    if not isinstance(x, torch.Tensor):
        if isinstance(x, np.ndarray) and any(step < 0 for step in x.strides):
            x = np.ascontiguousarray(x)                 # a flipped view: torch takes no negative strides
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ShapeError(f"{what}: expected a tensor or numeric array, got {type(x).__name__}") from exc
    integer = not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)
    if x.dtype in (torch.float64, torch.float16, torch.bfloat16) or not (x.is_floating_point() or x.is_complex()):
        x = x.to(torch.float32)                            # before any max: torch has none for uint16..uint64
    if intensities and integer and x.numel() and float(x.max()) > 1:
        raise DataError(f"{what}: integer values up to {float(x.max()):g}, but static inputs are intensities in "
                        "[0, 1]; scale them first (x / 255 for 8-bit images)")
    if x.is_complex():
        raise ShapeError(f"{what} has dtype {x.dtype}; expected a real floating-point tensor")
    if finite and x.device.type == "cpu" and x.numel() and not bool(finite_flag(x)):
        raise NumericalError(f"{what} contains NaN or infinity")
    return x


def finite_flag(x: torch.Tensor) -> torch.Tensor:
    """0-dim bool on ``x``'s device: every value of ``x`` is finite, read from their sum (NaN and infinities carry
    through a sum; about 15x cheaper than ``isfinite(x).all()`` on a CPU). A sum overflowing float range also reads
    as non-finite: inputs that large (|x| ~ 1e34 per value) are no valid network input either."""
    return torch.isfinite(x.sum())


def parameters_flag(module: torch.nn.Module, buffers: bool = True) -> torch.Tensor:
    """0-dim bool: every floating-point parameter of ``module`` and, with ``buffers``, every buffer (batch norm's
    running statistics) is finite (:func:`finite_flag` of their sums; not read here)."""
    tensors = [t.detach() for t in (*module.parameters(), *(module.buffers() if buffers else ()))
               if t.is_floating_point()]
    if not tensors:
        return torch.ones((), dtype=torch.bool)
    return finite_flag(torch.stack([t.sum() for t in tensors]))


def nonfinite_state(module: torch.nn.Module) -> str | None:
    """The name of ``module``'s first floating-point parameter or buffer holding NaN or infinity, or None."""
    state = (*module.named_parameters(), *module.named_buffers())
    return next((name for name, t in state if t.is_floating_point() and not bool(torch.isfinite(t).all())), None)


def check_parameters(module: torch.nn.Module, remedy: str) -> None:
    """NumericalError naming the first NaN or infinite parameter or buffer of ``module``, with ``remedy``."""
    bad = nonfinite_state(module)
    if bad is not None:
        raise NumericalError(f"network parameter {bad} is NaN or infinite; {remedy}")


def indices(t, n: int, batch: int, what: str, device: torch.device | None = None) -> torch.Tensor:
    """Integer indices ``t`` [batch] (labels, heads) as int64; ShapeError for a wrong shape or dtype, DataError for
    values outside [0, n) when on the CPU (elsewhere: :func:`in_range`; inside a compiled graph the caller checks
    them before it, as :meth:`~spikecl.snn.trainers.Trainer.train_encoded` does)."""
    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(t)
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ShapeError(f"{what} has dtype {t.dtype}; expected integer indices")
    if tuple(t.shape) != (batch,):
        raise ShapeError(f"{what} has shape {tuple(t.shape)}; expected [{batch}] (one per sample)")
    t = t.to(device=device or t.device, dtype=torch.long)
    if t.device.type == "cpu" and batch and not torch.compiler.is_compiling() and not bool(in_range(t, n)):
        bad = t[(t < 0) | (t >= n)][0].item()
        raise DataError(f"{what}: {bad} is outside 0..{n - 1}")
    return t


def output_mask(mask, n: int, device: torch.device | None = None) -> torch.Tensor | None:
    """``mask`` (None, or bool [n]: which of the readout's ``n`` outputs are active) as a bool tensor on ``device``;
    ShapeError for another dtype or shape, DataError when no output is active (checked on the CPU only)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool:
        raise ShapeError(f"output mask has dtype {mask.dtype}; expected bool (True: the output is active)")
    if tuple(mask.shape) != (n,):
        raise ShapeError(f"output mask has shape {tuple(mask.shape)}; expected [{n}] (one per readout output)")
    if mask.device.type == "cpu" and not bool(mask.any()):
        raise DataError("output mask leaves no readout output active")
    return mask.to(device or mask.device)


def in_range(t: torch.Tensor, n: int) -> torch.Tensor:
    """0-dim bool on ``t``'s device: every index lies in [0, n)."""
    return ((t >= 0) & (t < n)).all()


def choice(value, key: str, choices) -> str:
    """``value`` if it is one of ``choices``, else ConfigError naming ``key``."""
    check_bounds(value, {"choices": tuple(choices)}, key)
    return value
