"""The fused engine's LIF dynamics as two Triton kernels (``network.engine = "triton"``): each program takes a block of
neurons through the whole sequence, so a forward or backward pass is one kernel launch instead of several per time
step — what a GPU needs when the layers are small and launches, not arithmetic, set the pace.

The maths and the order of its rounded operations are those of :class:`spikecl.snn.fused._LIFSequence`: no fused
multiply-adds, correctly rounded division. Spikes and current gradients therefore equal the torch engine's bit for
bit: checked on CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``), in the PTX compiled for a Hopper GPU
(:func:`ptx_for_gpu`), and on CUDA by ``benchmarks/gpu_check.sh``. The kernels run on CUDA tensors, or on CPU tensors
under the interpreter (slow: for tests). ``beta`` and the threshold are read on the device, so a pass never waits
for the host.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable
from torch.autograd.graph import increment_version

from spikecl.config import triton_interpreted as interpreted   # the kernels below took the mode in force at import
from spikecl.errors import DependencyError, SpikeCLError, require

triton = require("triton", "triton")
if int(triton.__version__.split(".")[0]) < 3:    # its kernels' language; torch brings triton 3 from torch 2.4 on
    raise DependencyError(f"network.engine = 'triton' needs triton >= 3.0 (found {triton.__version__}, which torch "
                          f"{torch.__version__} requires: the triton engine needs torch >= 2.4)")
tl = triton.language
BLOCK = 256                     # neurons per program


@triton.jit
def _forward(current, spikes, denominator, beta_ptr, threshold_ptr, n, slope,
             STEPS: tl.constexpr, ZERO_RESET: tl.constexpr, BLOCK: tl.constexpr):
    """``current`` [STEPS, n] → ``spikes`` and ``denominator`` = (slope |U − thr| + 1)², both [STEPS, n]."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    beta = tl.load(beta_ptr)
    threshold = tl.load(threshold_ptr)
    mem = tl.load(current + offsets, mask=inside, other=0.0)                     # U[0] = I[0], from rest
    fired = tl.zeros([BLOCK], dtype=tl.float32)
    for t in tl.static_range(STEPS):
        if t > 0:
            if ZERO_RESET:
                mem = mem * (1.0 - fired)                     # as the torch engine: an infinite one becomes NaN
            mem = mem * beta + tl.load(current + t * n + offsets, mask=inside, other=0.0)
            if not ZERO_RESET:
                mem = mem - fired * threshold                                    # exact: S is 0 or 1
        shifted = mem - threshold
        fired = (shifted > 0).to(tl.float32)
        tl.store(spikes + t * n + offsets, fired, mask=inside)
        scaled = tl.abs(shifted) * slope + 1.0
        tl.store(denominator + t * n + offsets, scaled * scaled, mask=inside)


@triton.jit
def _backward(grad_spikes, denominator, spikes, grad_current, beta_ptr, n,
              STEPS: tl.constexpr, ZERO_RESET: tl.constexpr, BLOCK: tl.constexpr):
    """dL/dU[t] = dL/dS[t] / denominator[t] + a[t+1] dL/dU[t+1], swept back in time; a = beta, or beta (1 − S[t])
    for the zero reset (the mask applied after the product, as the torch engine does)."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    beta = tl.load(beta_ptr)
    carried = tl.zeros([BLOCK], dtype=tl.float32)
    for back in tl.static_range(STEPS):
        t = STEPS - 1 - back
        grad = tl.math.div_rn(tl.load(grad_spikes + t * n + offsets, mask=inside, other=0.0),
                              tl.load(denominator + t * n + offsets, mask=inside, other=1.0))
        if back > 0:
            if ZERO_RESET:
                carried = carried * (1.0 - tl.load(spikes + t * n + offsets, mask=inside, other=0.0))
            grad = grad + carried
        tl.store(grad_current + t * n + offsets, grad, mask=inside)
        carried = grad * beta


OPTIONS = {"enable_fp_fusion": False}          # no fused multiply-adds: the torch engine rounds every product
SIGNATURES = {
    _forward: {"current": "*fp32", "spikes": "*fp32", "denominator": "*fp32", "beta_ptr": "*fp32",
               "threshold_ptr": "*fp32", "n": "i32", "slope": "fp32"},
    _backward: {"grad_spikes": "*fp32", "denominator": "*fp32", "spikes": "*fp32", "grad_current": "*fp32",
                "beta_ptr": "*fp32", "n": "i32"},
}


def _launch(kernel, n: int, *args, **constants) -> None:
    """Run ``kernel`` over ``n`` neurons: one program per block, multiply-adds left unfused on a GPU."""
    grid = (triton.cdiv(n, BLOCK),)
    kernel[grid](*args, BLOCK=BLOCK, **constants, **({} if interpreted() else OPTIONS))


def ptx_for_gpu(capability: int, steps: int, zero_reset: bool) -> dict[str, str]:
    """The PTX of both kernels compiled for a CUDA GPU of compute ``capability`` (90: Hopper) with the options a
    launch uses, {kernel name: PTX}; needs no GPU (Triton's own compiler and ptxas), but not the interpreter."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if interpreted():
        raise SpikeCLError("ptx_for_gpu: Triton's interpreter is on (TRITON_INTERPRET); it compiles nothing")
    constants = {"STEPS": steps, "ZERO_RESET": zero_reset, "BLOCK": BLOCK}
    return {kernel.__name__.strip("_"): triton.compile(
                ASTSource(fn=kernel, signature={**signature, **dict.fromkeys(constants, "constexpr")},
                          constexprs=constants),
                target=GPUTarget("cuda", capability, 32), options=OPTIONS).asm["ptx"]
            for kernel, signature in SIGNATURES.items()}


class _TritonLIFSequence(torch.autograd.Function):
    """:class:`spikecl.snn.fused._LIFSequence` with one kernel per pass; as there, the gradient is written over
    the saved denominators (each step's after the program has read it: no [T, B, ...] buffer of its own), so a
    second backward through the same graph is autograd's in-place error, not a wrong gradient. ``overwrite``: the
    denominators go into the currents' memory (each step's after the program has read it)."""

    @staticmethod
    def forward(ctx, current, beta, threshold, slope: float, zero_reset: bool, overwrite: bool):
        given, current = current, current.contiguous()
        steps, n = current.shape[0], current[0].numel()
        spikes = torch.empty_like(current)
        denominator = current if overwrite and current is given else torch.empty_like(current)
        _launch(_forward, n, current, spikes, denominator, beta, threshold, n, slope,
                STEPS=steps, ZERO_RESET=zero_reset)
        ctx.save_for_backward(denominator, spikes if zero_reset else None, beta)   # the subtract reset reads none
        ctx.zero_reset = zero_reset
        return spikes

    @staticmethod
    @once_differentiable            # a kernel: a second derivative is refused, not wrong
    def backward(ctx, grad_spikes):
        denominator, spikes, beta = ctx.saved_tensors
        spikes = denominator if spikes is None else spikes     # a pointer the kernel does not read (subtract reset)
        grad = denominator                                     # dL/dU, written over the denominators
        steps, n = grad.shape[0], grad[0].numel()
        _launch(_backward, n, grad_spikes.contiguous(), denominator, spikes, grad, beta, n,
                STEPS=steps, ZERO_RESET=ctx.zero_reset)
        increment_version(denominator)                         # a kernel's write: autograd is told, as by an out=
        return grad, None, None, None, None, None


def triton_lif_sequence(current: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, slope: float,
                        zero_reset: bool, overwrite_current: bool = False) -> torch.Tensor:
    """Spikes [T, B, ...] for float32 ``current`` [T, B, ...] (CUDA, or CPU under the interpreter); ``beta``
    (already clamped) and ``threshold`` are 0-d tensors on the same device; ``overwrite_current``: as in
    :func:`spikecl.snn.fused.lif_sequence`."""
    if current.dtype != torch.float32:
        raise SpikeCLError(f"network.engine = 'triton' runs float32 currents, not {current.dtype}")
    if current.numel() >= 2 ** 31:
        raise SpikeCLError(f"network.engine = 'triton' indexes currents with 32-bit offsets; {current.numel()} "
                           "elements are too many (use 'fused')")
    if not (current.is_cuda or interpreted()):
        raise SpikeCLError("network.engine = 'triton' needs a CUDA device (or TRITON_INTERPRET=1, Triton's slow CPU "
                           f"interpreter); the currents are on {current.device}")
    beta = beta.to(current.device, torch.float32).reshape(1)
    threshold = threshold.to(current.device, torch.float32).reshape(1)
    return _TritonLIFSequence.apply(current, beta, threshold, float(slope), zero_reset, overwrite_current)
