"""Spiking layers that expose their presynaptic input to the learning machinery.

A layer is a synapse (``nn.Linear`` or ``nn.Conv2d``) feeding LIF neurons. Two ways to run it:

* ``forward(x_seq)``: the whole sequence ``[T, B, ...]`` at once — the synapse runs on all ``T·B`` inputs in one
  call, then the neurons step through time. Gradients flow through time (BPTT).
* ``step(x_t, trace_t, mem)``: one time step for online training. The value is ``synapse(x_t)`` but the weight
  gradient is ``delta · trace_tᵀ`` (presynaptic trace instead of the current input, OTTT-style) and the membrane
  history is detached, so memory does not grow with T.

With ``forward(x_seq, rate_gradient=True)`` (the DSR-style trainer) the layer emits the same spikes, but gradients
flow through the firing rate as a function of the mean input current instead of through time (see
:func:`rate_coded`).

Inside a recording (:func:`spikecl.snn.activity.recording`, opened by ``SpikingNetwork.recording()``) every call
hands its presynaptic input to the recording, in both modes the per-step input ``x_t`` that drives the neurons (not
the trace: protecting responses means protecting ``W x_t``); strategies such as HLOP and GPM read it as
``activity.of(name)`` (``[T, B, *in_shape]``).

Whole-sequence passes run on one of three engines (attribute ``engine``, see :mod:`spikecl.snn.fused`): "snntorch"
steps snnTorch's ``Leaky`` through time (the reference); "fused" runs the same dynamics as one autograd function, feeds
a static input (direct encoding) through the synapse once instead of T times, and collapses the readout to one
synapse call on a time-weighted sum of its input; "triton" is the fused engine with each LIF pass as one Triton
kernel (:mod:`spikecl.snn.lif_triton`; CUDA). Online steps on the fused engines are one autograd node per layer
(:func:`~spikecl.snn.fused.lif_step`), and a linear synapse takes its weight gradient from the trace in one call.

A projection method may hand a Linear layer a ``weight_projection`` (x [N, n] → x⊥ [N, n]) for one training pass,
which the trainer runs inside ``SpikingNetwork.projecting`` (set for that pass only, restored after it): the weight
gradient is then ``deltaᵀ · x⊥`` (:func:`projected_linear`), the presynaptic trace of HLOP's lateral circuit, which
equals the projected gradient ``(deltaᵀ x)(I − P)`` at N·n·k instead of out·n·k multiply-adds. The layer uses it
only when its input has fewer rows than outputs (N < out) and then marks it ``used``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from spikecl.errors import ConfigError
from spikecl.snn.activity import Recordable
from spikecl.snn.checks import choice, count
from spikecl.snn.fused import ENGINES, full_precision, integrator_step, is_static, lif_sequence, lif_step, \
    readout_weights, time_weighted_sum
from spikecl.snn.neurons import LIFParams, emptied
from spikecl.snn.pooling import AvgPool2x2


def trace_synapse(synapse: nn.Module, x_t: torch.Tensor, trace_t: torch.Tensor) -> torch.Tensor:
    """``synapse(x_t)`` whose parameter gradients come from the presynaptic trace instead of ``x_t``.

    For a linear synapse the weight gradient is ``delta · trace_tᵀ``; the input gradient (error propagated to the
    layer below) is the usual ``Wᵀ · delta``. Works for any synapse that is linear in its input (Linear, Conv2d).
    """
    frozen = {name: p.detach() for name, p in synapse.named_parameters()}
    value = functional_call(synapse, frozen, (x_t,))
    via_trace = synapse(trace_t.detach())
    return value + (via_trace - via_trace.detach())


def fused_trace_synapse(synapse: nn.Module, x_t: torch.Tensor, trace_t: torch.Tensor) -> torch.Tensor:
    """:func:`trace_synapse` in one call for a Linear synapse (the same values and gradients); others unchanged."""
    if not isinstance(synapse, nn.Linear):
        return trace_synapse(synapse, x_t, trace_t)
    trace_t = trace_t.detach()
    return projected_linear(x_t, synapse.weight, synapse.bias, lambda _: trace_t)


class _ProjectedLinear(torch.autograd.Function):
    """``F.linear(x, weight, bias)`` whose weight gradient is ``gradᵀ · project(x)``; see
    :func:`projected_linear`."""

    @staticmethod
    def forward(ctx, x, weight, bias, project):
        ctx.save_for_backward(x, weight)
        ctx.project, ctx.has_bias = project, bias is not None
        return nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        grad_x = grad @ weight.to(grad.dtype) if need_x else None        # bfloat16 where autocast ran the forward
        with torch.autocast(x.device.type, enabled=False):                # the projection in the weights' precision
            grad_w = grad.to(weight.dtype).T @ ctx.project(x) if need_w else None
        grad_b = grad.sum(0) if ctx.has_bias and need_b else None
        return grad_x, grad_w, grad_b, None


def projected_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, project) -> torch.Tensor:
    """A linear synapse on rows ``x`` [N, n] (``weight`` [out, n]) whose weight gradient is computed from the
    presynaptic rows ``project(x)`` [N, n] instead of ``x``; the input and bias gradients are the usual ones."""
    return _ProjectedLinear.apply(x, weight, bias, project)


def rate_coded(spikes: torch.Tensor, current: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """``spikes`` [T, B, ...] whose gradient is that of the firing rate ``clamp(mean_t current / threshold, 0, 1)``.

    The differentiation-on-spike-representation (DSR) view of an integrate-and-fire neuron with reset by
    subtraction: over a window its rate is the mean input current over the threshold, clipped to [0, 1]. The
    value is ``spikes`` unchanged; the gradient reaching ``current[t]`` is ``sum_s grad[s] / (T · threshold)``
    where the mean current lies strictly inside (0, threshold), else 0 (also at 0 and at the threshold, where
    ``torch.clamp`` would pass it). The presynaptic factor of the weight gradient is thereby the presynaptic
    firing rate.
    """
    rate = current.mean(dim=0) / threshold
    rate = torch.where((rate > 0) & (rate < 1), rate, torch.zeros_like(rate))     # an infinite rate: 0, not inf·0
    return spikes.detach() + (rate - rate.detach())


def _over_time(module: nn.Module, x_seq: torch.Tensor) -> torch.Tensor:
    """Apply a per-sample ``module`` to ``[T, B, ...]`` in one call on ``[T·B, ...]``."""
    steps, batch = x_seq.shape[:2]
    out = module(x_seq.reshape(steps * batch, *x_seq.shape[2:]))
    return out.reshape(steps, batch, *out.shape[1:])


class EngineLayer(Recordable):
    """A recordable layer that runs whole sequences on the engine named by ``engine`` ("fused", "snntorch" or
    "triton")."""

    def __init__(self, neuron: LIFParams, engine: str = "fused") -> None:
        super().__init__()
        self.neuron = neuron
        self.engine = engine

    @property
    def engine(self) -> str:
        return self._engine

    @engine.setter
    def engine(self, name: str) -> None:
        self._engine = choice(name, "network.engine", ENGINES)

    @property
    def fused(self) -> bool:
        """Whole sequences run on the fused engine (hoists included), its LIF passes in torch or as Triton kernels."""
        return self._engine in ("fused", "triton")

    def fused_constants(self, neuron: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """``neuron``'s (beta, threshold) for the fused engine, which treats them as constants: a ConfigError when
        either learns (``requires_grad``; snnTorch's ``learn_beta``/``learn_threshold``), whose gradient it would
        drop."""
        if neuron.beta.requires_grad or neuron.threshold.requires_grad:
            raise ConfigError(f"network.engine: the {self._engine} engine takes beta and threshold as constants; "
                              "learnable ones (requires_grad) run on the 'snntorch' engine")
        return neuron.beta, neuron.threshold

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Refuse (ConfigError) a state dict whose neurons' beta, threshold or reset differ from this layer's
        :class:`~spikecl.snn.neurons.LIFParams` (``network.*``), which the trainers' traces and the fused engine's
        surrogate and reset also follow: loaded alone they would run a mix of both settings; likewise a graded spike
        size other than the built one (1), which only the snnTorch engine would apply."""
        for child in ("lif", "integrator"):
            module = getattr(self, child, None)
            for name in NEURON_BUFFERS:
                saved = state_dict.get(f"{prefix}{child}.{name}")
                built = None if module is None else getattr(module, name)
                if built is None or not isinstance(saved, torch.Tensor) or saved.shape != built.shape:
                    continue                                      # torch's own load names what is missing or misshapen
                if isinstance(built, nn.Parameter):
                    continue                                      # learned (snnTorch's learn_beta): its value loads
                if not torch.equal(saved.to(built), built):
                    raise ConfigError(f"{prefix}{child}.{name}: the state dict holds {_shown(name, saved)}, this "
                                      f"network was built with {_shown(name, built)}; " + (
                                          "spikecl's neurons send spikes of 1" if name == "graded_spikes_factor"
                                          else "build it with the same network.beta, threshold and reset"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


#: the buffers of snnTorch's ``Leaky`` that :class:`~spikecl.snn.neurons.LIFParams` sets, and its spike size
NEURON_BUFFERS = ("beta", "threshold", "reset_mechanism_val", "graded_spikes_factor")


#: snnTorch's codes of the reset mechanisms (``reset_mechanism_val``)
RESET_CODES = {0: "subtract", 1: "zero", 2: "none"}


def _unrolled(neuron: nn.Module, current: torch.Tensor, mem: torch.Tensor | None = None,
              membranes: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
    """snnTorch's ``neuron`` (a ``Leaky``) stepped through ``current`` [T, B, ...] from ``mem`` [B, ...] (rest when
    None) → (each step's spikes in ``current``'s dtype, or with ``membranes`` each step's membrane: T tensors
    [B, ...]; the last membrane). The membrane the neuron keeps as a buffer is emptied afterwards: it is never read
    again, and kept it would hold the batch's memory and, with its history, the pass's autograd graph until the next
    pass (under CUDA graphs tying the next capture's gradient accumulation to the stream of the pass before)."""
    mem = torch.zeros_like(current[0]) if mem is None else mem
    outputs = []
    for cur_t in current:
        spk, mem = neuron(cur_t, mem)
        outputs.append(mem if membranes else spk.to(cur_t.dtype))       # snnTorch fires float32 spikes
    neuron.mem = emptied(neuron, mem)
    return outputs, mem


def _shown(name: str, value: torch.Tensor) -> str:
    """Neuron buffer ``name`` (a number) for an error message; a reset by its name."""
    return RESET_CODES.get(int(value), f"{value.item():g}") if name == "reset_mechanism_val" else f"{value.item():g}"


class SpikingLayer(EngineLayer):
    """A synapse, optional normalisation, LIF neurons, optional pooling of the spikes.

    Input ``[T, B, *in_shape]`` → spikes ``[T, B, *out_shape]``.
    """

    def __init__(self, synapse: nn.Module, neuron: LIFParams, norm: nn.Module | None = None,
                 pool: nn.Module | None = None, engine: str = "fused") -> None:
        super().__init__(neuron, engine)
        self.synapse = synapse
        self.norm = norm if norm is not None else nn.Identity()
        self.lif = neuron.spiking()
        self.pool = pool if pool is not None else nn.Identity()
        self.norm_frozen = False
        self.weight_projection = None           # x [N, n] → x⊥ inside SpikingNetwork.projecting (a training pass)

    def freeze_norm(self) -> None:
        """Fix the normalisation: running statistics are used and kept, affine parameters stop learning."""
        self.norm_frozen = True
        for p in self.norm.parameters():
            p.requires_grad_(False)
        self.norm.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.norm_frozen:
            self.norm.eval()
        return self

    def forward(self, x_seq: torch.Tensor, rate_gradient: bool = False) -> torch.Tensor:
        """Spikes for ``x_seq`` [T, B, *in_shape]; ``rate_gradient``: differentiate the firing rate (DSR), not
        through time."""
        self._keep_sequence(x_seq)
        current = self._current(x_seq)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not rate_gradient):
            spikes = self._fire(current, overwrite=not (rate_gradient or self._current_hooked()))
        if rate_gradient:
            spikes = rate_coded(spikes, current, self.lif.threshold)
        return _over_time(self.pool, spikes)

    def _current(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Input currents ``[T, B, ...]``. The fused engine runs the synapse once on a static input and repeats its
        output over time (a view); the normalisation still sees all T·B samples, so its batch statistics and
        running averages are the reference's. Currents are float32 even where autocast ran the synapse in bfloat16."""
        if not (self.fused and is_static(x_seq)):
            return _over_time(lambda x: self.norm(full_precision(self._synapse(x))), x_seq)
        once = full_precision(self._synapse(x_seq[0]))
        current = once.unsqueeze(0).expand(x_seq.shape[0], *once.shape)
        return current if isinstance(self.norm, nn.Identity) else _over_time(self.norm, current)

    def _current_hooked(self) -> bool:
        """Whether forward hooks may hold the currents (the synapse's or normalisation's output), which the fused
        engine must then leave as they are."""
        return bool(nn.modules.module._global_forward_hooks) or any(m._forward_hooks for m in (self.synapse, self.norm))

    def _synapse(self, x: torch.Tensor) -> torch.Tensor:
        """The synapse on inputs ``x`` [N, ...]; through ``weight_projection`` (marked used) when it is set, the
        synapse is Linear and N < out."""
        project = self.weight_projection
        if project is None or not isinstance(self.synapse, nn.Linear) or x.shape[0] >= self.synapse.out_features:
            return self.synapse(x)
        project.used = True
        return projected_linear(x, self.synapse.weight, self.synapse.bias, project)

    def _fire(self, current: torch.Tensor, overwrite: bool = False) -> torch.Tensor:
        """The LIF neurons driven by ``current`` [T, B, ...] → spikes [T, B, ...]. ``overwrite``: ``current`` is not
        needed afterwards; the fused engine may then keep its own buffers in it unless it is a repeated (stride-0)
        view of one step's currents."""
        if self.fused:
            return lif_sequence(current, *self.fused_constants(self.lif), self.neuron.surrogate_slope,
                                self.neuron.reset, kernels=self._engine == "triton",
                                overwrite_current=overwrite and current.stride(0) != 0)
        return torch.stack(_unrolled(self.lif, current)[0])

    def step(self, x_t: torch.Tensor, trace_t: torch.Tensor, mem: torch.Tensor | None,
             first: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One online step: ``x_t``, ``trace_t`` ``[B, *in_shape]`` → (spikes ``[B, *out_shape]``, membrane)."""
        self._keep_step(x_t, first)
        if self.fused:
            current = self.norm(fused_trace_synapse(self.synapse, x_t, trace_t))
            spk, mem = lif_step(current, mem, *self.fused_constants(self.lif), self.neuron.surrogate_slope,
                                self.neuron.reset)
            return self.pool(spk), mem
        current = self.norm(trace_synapse(self.synapse, x_t, trace_t))
        spikes, mem = _unrolled(self.lif, current[None], None if mem is None else mem.detach())
        return self.pool(spikes[0]), mem


class SpikingLinear(SpikingLayer):
    """Fully connected synapse + LIF. ``[T, B, n_in]`` → ``[T, B, n_out]``."""

    def __init__(self, n_in: int, n_out: int, neuron: LIFParams, bias: bool = False, engine: str = "fused") -> None:
        n_in, n_out = count(n_in, "SpikingLinear: n_in"), count(n_out, "SpikingLinear: n_out")
        super().__init__(nn.Linear(n_in, n_out, bias=bias), neuron, engine=engine)


class SpikingConv2d(SpikingLayer):
    """3×3 convolution (padding 1) + optional BatchNorm + LIF + optional 2×2 average pooling
    (:class:`~spikecl.snn.pooling.AvgPool2x2`).

    ``[T, B, C_in, H, W]`` → ``[T, B, C_out, H', W']`` (H' = H/2 when pooling).
    """

    def __init__(self, c_in: int, c_out: int, neuron: LIFParams, bias: bool = False, batch_norm: bool = True,
                 pool: bool = True, kernel_size: int = 3, engine: str = "fused") -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=bias), neuron,
                         norm=nn.BatchNorm2d(c_out) if batch_norm else None,
                         pool=AvgPool2x2() if pool else None, engine=engine)


class Readout(EngineLayer):
    """Linear synapses into non-spiking leaky integrators; the logits are the membrane averaged over T.

    ``n_heads > 1`` gives one head per task (task-incremental learning); each sample reads the head named by its
    entry of ``heads`` ``[B]`` (every head is computed: one graph for any mix of heads, also when compiled; a
    trainer then drops the gradients of the heads no sample named, :meth:`release_unused_heads`). Input
    ``[T, B, n_in]`` → logits ``[B, n_outputs]``.
    """

    def __init__(self, n_in: int, n_outputs: int, neuron: LIFParams, n_heads: int = 1, bias: bool = False,
                 engine: str = "fused") -> None:
        super().__init__(neuron, engine)
        n_in, n_outputs = count(n_in, "Readout: n_in"), count(n_outputs, "Readout: n_outputs")
        self.heads = nn.ModuleList(nn.Linear(n_in, n_outputs, bias=bias)
                                   for _ in range(count(n_heads, "Readout: n_heads")))
        self.integrator = neuron.integrator()

    def _current(self, synapse_call, heads: torch.Tensor | None) -> torch.Tensor:
        if len(self.heads) == 1:
            return synapse_call(self.heads[0])
        if heads is None:
            raise ConfigError(f"heads: this readout has {len(self.heads)} heads; give the head index of every sample")
        stacked = torch.stack([synapse_call(head) for head in self.heads], dim=-2)  # [..., B, H, out]
        return stacked[..., torch.arange(heads.shape[0], device=heads.device), heads, :]

    def release_unused_heads(self, heads: torch.Tensor, penalised: bool = False) -> None:
        """After a batch's backward passes: the parameters of heads that no entry of ``heads`` [B] names get
        ``grad = None`` (not zeros), so no optimiser's weight decay or momentum moves them, as a head outside the
        batch would not be; where a penalty's backward pass ran too (``penalised``), only those whose gradient is
        zero (a penalty at its anchor gives zero): a penalty's nonzero pull stays. Reading which those are waits for
        the device once per batch on CUDA."""
        if len(self.heads) < 2:
            return
        unused = torch.bincount(heads, minlength=len(self.heads)).eq(0)
        params = [(h, p) for h, head in enumerate(self.heads) for p in head.parameters() if p.grad is not None]
        if penalised and params:
            zero = torch.stack([p.grad.abs().amax() for _, p in params]).eq(0)
            flags = torch.cat([unused, zero]).tolist()                        # one read of the device
            unused, zero = flags[:len(self.heads)], flags[len(self.heads):]
        else:
            unused, zero = unused.tolist(), [True] * len(params)
        for (h, param), released in zip(params, zero):
            if unused[h] and released:
                param.grad = None

    def forward(self, x_seq: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        self._keep_sequence(x_seq)
        if self.fused:
            return self._mean_membrane(x_seq, heads)
        current = full_precision(self._current(lambda head: head(x_seq), heads))     # the membrane in float32
        total = torch.zeros_like(current[0])
        for mem in _unrolled(self.integrator, current, membranes=True)[0]:
            total = total + mem
        return total / current.shape[0]

    def _mean_membrane(self, x_seq: torch.Tensor, heads: torch.Tensor | None) -> torch.Tensor:
        """The fused engine's logits: the integrator is linear and starts at rest, so the mean membrane is one
        synapse call on ``sum_s w[s] x[s] / T`` (:func:`~spikecl.snn.fused.readout_weights`), the bias weighted by
        ``sum_s w[s] / T``."""
        beta, _ = self.fused_constants(self.integrator)
        weights = readout_weights(beta, x_seq.shape[0], x_seq.dtype) / x_seq.shape[0]
        mixed = time_weighted_sum(x_seq, weights)
        return self._current(lambda head: nn.functional.linear(
            mixed, head.weight, None if head.bias is None else head.bias * weights.sum()), heads)

    def step(self, x_t: torch.Tensor, trace_t: torch.Tensor, mem: torch.Tensor | None,
             heads: torch.Tensor | None = None, first: bool = False) -> torch.Tensor:
        """One online step → membrane ``[B, n_outputs]`` (history detached)."""
        self._keep_step(x_t, first)
        if self.fused:
            current = self._current(lambda head: fused_trace_synapse(head, x_t, trace_t), heads)
            return integrator_step(current, mem, self.fused_constants(self.integrator)[0])
        current = self._current(lambda head: trace_synapse(head, x_t, trace_t), heads)
        return _unrolled(self.integrator, current[None], None if mem is None else mem.detach())[1]
