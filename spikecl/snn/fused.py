"""The fused LIF engine: whole-sequence LIF dynamics as one autograd function, and the hoists that a static input
and a linear readout allow.

Same neuron as snnTorch's ``Leaky`` (reset detached, as snnTorch does by default), for currents ``I`` [T, B, ...]:

    r[t] = S[t-1]                                      (the reset is the previous spike, no gradient)
    U[t] = beta * U[t-1] + I[t] - r[t] * thr           (reset "subtract")
    U[t] = beta * (1 - r[t]) * U[t-1] + I[t]           (reset "zero")
    S[t] = Heaviside(U[t] - thr),   dS/dU = 1 / (1 + slope * |U[t] - thr|)^2   (fast sigmoid)

The forward pass runs in place and builds no graph; the backward pass is one surrogate pass and one reverse sweep
``dL/dU[t] = g[t] dS/dU[t] + a[t+1] dL/dU[t+1]`` with ``a = beta`` (subtract) or ``beta (1 - S[t])`` (zero) — the
same products and sums, in the same order, as autograd through the snnTorch loop, so the currents' gradient matches
it bit for bit.

Under ``train.precision = "bfloat16"`` the synapses run in bfloat16 (``torch.autocast``) while the membranes integrate
in float32: :func:`full_precision` casts each layer's currents back before the LIF dynamics, and the readout's
time-weighted sum of spikes stays in float32.

Online (trace-based) training steps one time bin at a time with the previous membrane detached: :func:`lif_step` is
that step as one autograd node (``r = U[t-1] > thr`` from the detached ``U[t-1]``; gradient to ``I[t]`` only).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

ENGINES = ("fused", "snntorch", "triton")          # triton: the fused engine with its LIF passes as Triton kernels
#: dtypes that ``torch.autocast`` may give synapse outputs; membranes never integrate in them
LOW_PRECISION = (torch.bfloat16, torch.float16)


def full_precision(current: torch.Tensor) -> torch.Tensor:
    """``current`` as float32 where autocast computed it in a lower precision (else unchanged, no copy)."""
    return current.float() if current.dtype in LOW_PRECISION else current


class _LIFSequence(torch.autograd.Function):
    """Currents ``[T, B, ...]`` → spikes ``[T, B, ...]`` (float 0/1); see the module docstring.

    The forward pass keeps the surrogate's denominator ``(slope |U - thr| + 1)^2`` (computed in place over the
    whole sequence) rather than ``U - thr``; the backward pass divides by it in place (so one backward per forward:
    a second raises autograd's in-place error) and sweeps back through time. No [T, B, ...] temporaries; with
    ``overwrite`` the denominators are written over the currents, each step's once it has been integrated, so the
    pass allocates only its spikes."""

    @staticmethod
    def forward(ctx, current: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, slope: float,
                zero_reset: bool, overwrite: bool) -> torch.Tensor:
        shape = current.shape
        spikes = current.new_empty(shape)
        denominator = current if overwrite else current.new_empty(shape)   # (slope |U[t] - thr| + 1)^2
        mem = current[0].clone()                    # U[0] = I[0], from rest
        if zero_reset:                              # keep: 1 − S[t-1]
            one, keep = current.new_ones(()), current.new_empty(shape[1:])
        for t in range(shape[0]):
            if t:
                if zero_reset:                      # (1 − S)·U as snnTorch (no bool mask: slow on a CPU)
                    mem.mul_(torch.sub(one, spikes[t - 1], out=keep))
                mem.mul_(beta).add_(current[t])
                if not zero_reset:
                    mem.addcmul_(spikes[t - 1], threshold, value=-1)     # − S·thr, exact: S is 0 or 1
            torch.sub(mem, threshold, out=denominator[t])              # current[t] is not read again
            torch.gt(denominator[t], 0, out=spikes[t])
        denominator.abs_().mul_(slope).add_(1.0).square_()
        ctx.save_for_backward(denominator, spikes if zero_reset else None, beta)
        ctx.zero_reset = zero_reset
        return spikes

    @staticmethod
    @once_differentiable            # in place and out= (no graph): a second derivative is refused, not wrong
    def backward(ctx, grad_spikes: torch.Tensor):
        denominator, spikes, beta = ctx.saved_tensors
        grad = denominator                                 # dL/dU, written over the denominators
        carried = grad.new_empty(grad.shape[1:])
        if ctx.zero_reset:
            one, keep = grad.new_ones(()), grad.new_empty(grad.shape[1:])
        torch.div(grad_spikes, denominator, out=grad)
        for t in range(grad.shape[0] - 2, -1, -1):
            torch.mul(grad[t + 1], beta, out=carried)
            if ctx.zero_reset:
                carried.mul_(torch.sub(one, spikes[t], out=keep))                      # (1 − S[t])·a
            grad[t].add_(carried)
        return grad, None, None, None, None, None


class _LIFStep(torch.autograd.Function):
    """One step from a detached membrane: (current ``I`` [B, ...], ``U[t-1]``) → (spikes ``S``, membrane ``U``)."""

    @staticmethod
    def forward(ctx, current, mem, beta, threshold, slope: float, zero_reset: bool):
        # comparisons written into float buffers: bool tensors are slow on a CPU
        fired = torch.gt(mem, threshold, out=torch.empty_like(current))    # r = S[t-1], snnTorch's delayed reset
        if zero_reset:
            mem = beta * ((1 - fired) * mem) + current                       # (1 − r)·U, as snnTorch
        else:
            mem = beta * mem + current - fired * threshold
        shifted = mem - threshold
        ctx.save_for_backward(shifted)
        ctx.slope = slope
        return torch.gt(shifted, 0, out=torch.empty_like(current)), mem

    @staticmethod
    def backward(ctx, grad_spikes, grad_mem):
        (shifted,) = ctx.saved_tensors
        grad = grad_spikes / (ctx.slope * torch.abs(shifted) + 1.0) ** 2
        if grad_mem is not None:
            grad = grad + grad_mem
        return grad, None, None, None, None, None


def lif_step(current: torch.Tensor, mem: torch.Tensor | None, beta: torch.Tensor, threshold: torch.Tensor,
             slope: float, reset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One LIF step of an online pass: (spikes, membrane ``U[t]``), both [B, ...], for ``current`` [B, ...] and the
    previous membrane ``mem`` (detached here; None: rest). ``snn.Leaky``'s values; the gradient reaches ``current``
    through the surrogate and through the returned membrane."""
    if reset not in ("subtract", "zero"):
        raise ValueError(f"the fused LIF engine has no reset {reset!r}")
    mem = torch.zeros_like(current) if mem is None else mem.detach()
    return _LIFStep.apply(current, mem, beta.clamp(0, 1), threshold, float(slope), reset == "zero")


def integrator_step(current: torch.Tensor, mem: torch.Tensor | None, beta: torch.Tensor) -> torch.Tensor:
    """One step of the readout's non-resetting integrator from a detached membrane: ``beta U[t-1] + I[t]``."""
    return current if mem is None else beta.clamp(0, 1) * mem.detach() + current


def lif_sequence(current: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, slope: float,
                 reset: str, kernels: bool = False, overwrite_current: bool = False) -> torch.Tensor:
    """Spikes ``[T, B, ...]`` of LIF neurons driven by ``current`` [T, B, ...] from rest.

    ``beta`` (clamped to [0, 1]) and ``threshold``: 0-d tensors (snnTorch's buffers); ``slope``: fast-sigmoid slope;
    ``reset``: "subtract" or "zero"; ``kernels``: run each pass as one Triton kernel
    (:mod:`spikecl.snn.lif_triton`, the same bits) instead of torch operations step by step.
    ``overwrite_current``: the caller no longer needs ``current`` (a tensor of its own, not a view of a shared or
    expanded one, that no other autograd node saved): the surrogate's denominators are kept in its memory, one
    [T, B, ...] buffer less at the forward pass's peak.
    """
    if reset not in ("subtract", "zero"):
        raise ValueError(f"the fused LIF engine has no reset {reset!r}")
    if kernels:
        from spikecl.snn.lif_triton import triton_lif_sequence

        return triton_lif_sequence(current, beta.clamp(0, 1), threshold, float(slope), reset == "zero",
                                   overwrite_current)
    return _LIFSequence.apply(current, beta.clamp(0, 1), threshold, float(slope), reset == "zero",
                              overwrite_current)


def is_static(x_seq: torch.Tensor) -> bool:
    """True when every step of ``x_seq`` [T, B, ...] is the same tensor (direct encoding: a stride-0 time axis)."""
    return x_seq.shape[0] == 1 or x_seq.stride(0) == 0


def readout_weights(beta: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    """``w`` [T] with ``mean_t U[t] = (1/T) sum_s w[s] I[s]`` for a non-resetting integrator from rest:
    ``w[s] = sum_{k=0}^{T-1-s} beta^k``."""
    powers = beta.clamp(0, 1).to(dtype) ** torch.arange(steps, dtype=dtype, device=beta.device)
    return powers.cumsum(0).flip(0)


def time_weighted_sum(x_seq: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_s weights[s] x_seq[s]``: [T, B, ...] → [B, ...] in one matrix product, in ``x_seq``'s precision even
    under autocast."""
    steps = x_seq.shape[0]
    with torch.autocast(x_seq.device.type, enabled=False):
        return (weights.to(x_seq.dtype) @ x_seq.reshape(steps, -1)).reshape(x_seq.shape[1:])
