"""Trainers: one optimisation step on a batch, by BPTT, online trace-based or rate-based (DSR-style) learning.

Every trainer encodes the batch, computes a cross-entropy loss on the readout, calls the continual-learning hooks in a
fixed order and steps the optimiser::

    zero_grad → task loss backward → penalty backward → hooks.after_backward(activity) → optimizer.step()
    → hooks.after_step()

``activity`` is the presynaptic activity of the task loss's forward pass (:class:`~spikecl.snn.activity.Activity`),
recorded only for hooks that declare ``uses_activity``; otherwise None. That pass runs with the projectors the hooks
hand it (``hooks.projections()``, GPM's and HLOP's, set on the layers for that pass only:
:meth:`~spikecl.snn.networks.SpikingNetwork.projecting`). ``precision = "bfloat16"`` runs that forward pass under
``torch.autocast`` (synapses in bfloat16, membranes and everything after the logits in float32).

* :class:`BPTTTrainer`: logits = readout membrane averaged over T; gradients through time with surrogate spikes.
  Runs on the network's engine (``network.engine``): the fused LIF function or snnTorch's ``Leaky``.
* :class:`OnlineTrainer` (OTTT-style): at each step the loss on the readout membrane is backpropagated through that
  step only; each synapse's weight gradient is ``error × presynaptic trace`` (trace decay = beta), so memory does not
  grow with T. Gradients of the T steps accumulate before one optimiser step. The loss and the trace update
  interleave with the dynamics step by step, so the fused engine fuses each step (one autograd node per layer and
  step) rather than the sequence; the snnTorch engine steps ``Leaky``.
* :class:`RateTrainer` (DSR-style): the forward pass is BPTT's, on the network's engine; gradients flow through each
  layer's firing rate as a clipped function of its mean input current, so each weight gradient is ``error ×
  presynaptic firing rate``.
"""

from __future__ import annotations

import contextlib
import getpass
import math
import os
import tempfile
from collections.abc import Callable

import torch
import torch.nn.functional as F

from spikecl.config import (BFLOAT16_NOT_COMPILED, BFLOAT16_NOT_GRAPHED, BFLOAT16_NOT_SNNTORCH, COMPILED_NOT_GRAPHED,
                            ONLINE_IN_FLOAT32, ONLINE_NOT_COMPILED, PRECISIONS)
from spikecl.errors import ConfigError, DataError, NumericalError, ShapeError, check_type
from spikecl.snn.activity import Activity
from spikecl.snn.cuda_graphs import GraphedPasses
from spikecl.snn.checks import (as_input, check_parameters, count, finite_flag, in_range, indices, output_mask,
                                parameters_flag)
from spikecl.snn.encoders import ENCODERS, encode
from spikecl.snn.networks import BUILD_NETWORK, SpikingNetwork, evaluating

#: an inactive output's logit: never predicted, and no softmax weight, however low the active logits are
MASKED_LOGIT = float("-inf")


#: training steps between reads of the non-finite-loss flag on an accelerator (each read waits for the device).
CHECK_EVERY = 50
#: what to try when training diverges
TRAINING_REMEDY = "lower train.lr (or the strategy's penalty strength) or check the input data"


class TrainingHooks:
    """What a trainer asks of a continual-learning strategy (all no-ops here).

    ``uses_activity``: the trainer records the presynaptic activity of the training pass and hands it to
    :meth:`after_backward`.
    """

    uses_activity = False

    def penalty(self) -> torch.Tensor | None:
        """Extra loss term (e.g. EWC's quadratic penalty), or None."""
        return None

    def projections(self) -> dict[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
        """{spiking layer: projector of its presynaptic rows x [N, n] → x⊥} for the task loss's pass (GPM, HLOP),
        which runs inside :meth:`~spikecl.snn.networks.SpikingNetwork.projecting` with them; none here."""
        return {}

    def after_backward(self, activity: Activity | None = None) -> None:
        """Gradients are in ``param.grad``: project or mask them here. ``activity``: the batch's presynaptic
        activity when ``uses_activity``, else None."""

    def after_step(self) -> None:
        """The optimiser has updated the parameters."""


def checked_penalty(name: str, term):
    """A ``penalty()`` value, None or a scalar tensor, else a one-line ConfigError naming the method ``name`` (a
    vector would fail in backward with a message about implicit gradients). A non-zero term without a gradient
    (computed from ``.data``, ``.detach()`` or under ``no_grad``) would change no weight: refused too, and a
    non-finite one is a :class:`NumericalError`."""
    if term is not None and not (isinstance(term, torch.Tensor) and term.dim() == 0):
        got = f"a tensor of shape {tuple(term.shape)}" if isinstance(term, torch.Tensor) else type(term).__name__
        raise ConfigError(f"strategy {name!r}: penalty() returned {got}; return None or a scalar tensor")
    if term is not None and not term.requires_grad:
        value = float(term)
        if not math.isfinite(value):
            raise NumericalError(f"strategy {name!r}: penalty() returned {value}")
        if value != 0.0:
            raise ConfigError(f"strategy {name!r}: penalty() returned {value:g} without a gradient, which changes no "
                              "weight (computed from .data, .detach() or under no_grad?); return None for no penalty")
    return term


def mask_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Suppress outputs that are not active (``mask`` [n_outputs] bool, class-incremental heads)."""
    return logits if mask is None else logits.masked_fill(~mask, MASKED_LOGIT)


def separate_inductor_cache() -> None:
    """Unless ``TORCHINDUCTOR_CACHE_DIR`` is set, give ``torch.compile``'s on-disk cache a folder of its own per
    CPU kernel set (torch's default folder with ``_avx512``, ``_avx2``, … appended). Its key leaves out
    ``ATEN_CPU_CAPABILITY``: kernels cached under one setting and loaded under another gave NaN losses and heap
    corruption (torch 2.13)."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
        folder = default_cache_dir()
    except ImportError:                                  # another torch: its documented default
        folder = os.path.join(tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{folder}_{torch.backends.cpu.get_cpu_capability().lower()}"


class BPTTTrainer:
    """Backpropagation through time with surrogate gradients.

    ``net``: the spiking network; ``num_steps``: T; ``encoder``: ``direct``, ``poisson``, ``latency`` or ``events``
    (batches are event frames [B, T, ...] already); ``precision``: ``float32`` or ``bfloat16`` (mixed precision:
    the training forward pass under ``torch.autocast``).
    """

    def __init__(self, net: SpikingNetwork, num_steps: int, encoder: str = "direct",
                 precision: str = "float32") -> None:
        check_type(net, SpikingNetwork, f"{type(self).__name__}: net", BUILD_NETWORK)
        if precision not in PRECISIONS:
            raise ConfigError(f"train.precision: {precision!r} is not allowed; choose one of {', '.join(PRECISIONS)}")
        if encoder not in ENCODERS:
            raise ConfigError(f"network.encoder: {encoder!r} is not allowed; choose one of {', '.join(ENCODERS)}")
        if precision != "float32" and net.uses_engine("snntorch"):
            raise ConfigError(BFLOAT16_NOT_SNNTORCH)
        self.net = net
        self.forward = net                                   # the training pass; compile() swaps in a compiled one
        self.graphs: GraphedPasses | None = None             # use_cuda_graphs() replays the task-loss pass
        self.num_steps = count(num_steps, "network.num_steps")
        self.encoder = encoder
        self.precision = precision
        self.read_every: int | None = None                   # steps between flag reads; None: by device
        self._finite: torch.Tensor | None = None             # losses finite since the last read (on the device)
        self._unread = 0
        self._reads = 0                                      # flag reads so far (the weights' check paces by them)

    def check_finite(self, loss: torch.Tensor, data_ok: torch.Tensor | None = None) -> None:
        """Raise NumericalError once a training loss is NaN or infinite, DataError once a batch had non-finite inputs
        or labels or heads out of range (``data_ok``, a 0-dim bool on the device). The flags stay on the loss's device
        and are read every ``read_every`` steps (default: every step on the CPU, :data:`CHECK_EVERY` on an
        accelerator, where a read makes the host wait for the device: no per-batch synchronisation in the training
        loop, but for a multi-head readout's one, :meth:`~spikecl.snn.layers.Readout.release_unused_heads`)."""
        ok = torch.stack([torch.isfinite(loss), torch.ones((), dtype=torch.bool, device=loss.device)
                          if data_ok is None else data_ok.to(loss.device)])
        self._finite = ok if self._finite is None else self._finite & ok
        self._unread += 1
        every = self.read_every or (1 if loss.device.type == "cpu" else CHECK_EVERY)
        if self._unread >= every:
            self.flush_checks()

    def flush_checks(self) -> None:
        """Read the flags of the steps :meth:`check_finite` has not read yet and raise as it does (at the end of a
        task: a divergence in its last steps is reported before anything is evaluated or saved). NaN or infinite
        weights, which silence their layer and so leave the loss finite, are checked with the first read and then
        with every read on an accelerator, every :data:`CHECK_EVERY` th on the CPU (one sum per weight)."""
        if self._finite is None:
            return
        flags = self._finite
        if self._reads % (CHECK_EVERY if flags.device.type == "cpu" else 1) == 0:   # NaN weights stay NaN
            flags = torch.cat([flags, parameters_flag(self.net, buffers=False).to(flags.device).view(1)])
        (loss_ok, data_ok, *weights_ok), self._finite, self._unread = flags.tolist(), None, 0
        self._reads += 1
        if not data_ok:                    # the cause before its effects (a NaN step leaves NaN weights)
            raise DataError("a training batch had NaN or infinite inputs, or labels or heads outside the readout's "
                            "range or its active outputs")
        if not all(weights_ok):            # named; dead layers would even give a finite loss
            check_parameters(self.net, TRAINING_REMEDY)
        if not loss_ok:
            raise NumericalError(f"training loss became NaN or infinite; {TRAINING_REMEDY}")

    def compile(self) -> None:
        """Run the training forward pass through ``torch.compile`` (static shapes: a new batch shape compiles
        again). The network itself stays uncompiled for evaluation and the strategies' own passes."""
        if self.precision != "float32":
            raise ConfigError(BFLOAT16_NOT_COMPILED)
        if self.graphs is not None:
            raise ConfigError(COMPILED_NOT_GRAPHED)
        separate_inductor_cache()
        self.forward = torch.compile(self.net, dynamic=False)

    def use_cuda_graphs(self) -> None:
        """Replay the task loss's forward and backward pass from CUDA graphs, one captured per input signature
        (:mod:`spikecl.snn.cuda_graphs`): far fewer kernel launches per step on a GPU. The network must be on a CUDA
        device, in float32 and uncompiled."""
        if self.precision != "float32":
            raise ConfigError(BFLOAT16_NOT_GRAPHED)
        if self.forward is not self.net:
            raise ConfigError(COMPILED_NOT_GRAPHED)
        device = next(self.net.parameters()).device
        if device.type != "cuda":
            raise ConfigError(f"train.cuda_graph: the network is on {device}; CUDA graphs need a CUDA device")
        self.graphs = GraphedPasses(self.net, self.task_loss_backward)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Inputs ``x`` [B, ...] → input sequence ``[T, B, ...]`` (Poisson draws from ``generator``; see
        :func:`~spikecl.snn.encoders.encode` for the checks)."""
        return encode(x, self.num_steps, self.encoder, generator)

    def logits(self, x_seq: torch.Tensor, heads: torch.Tensor | None) -> torch.Tensor:
        """Differentiable logits ``[B, n_outputs]`` for ``x_seq`` [T, B, ...] (gradients through time)."""
        return self.forward(x_seq, heads)

    def task_loss_backward(self, x_seq: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                           mask: torch.Tensor | None) -> torch.Tensor:
        """Forward ``x_seq`` [T, B, ...], backpropagate the cross-entropy against ``y`` [B]; returns the loss (a
        detached 0-dim tensor on the network's device: reading it is left to the caller)."""
        with self.mixed_precision(x_seq.device):
            logits = self.logits(x_seq, heads)
        loss = F.cross_entropy(mask_logits(logits.float(), mask), y)
        loss.backward()
        return loss.detach()

    def loss_pass(self, x_seq: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                  mask: torch.Tensor | None, record: bool) -> tuple[torch.Tensor, Activity | None]:
        """:meth:`task_loss_backward`, replayed from a CUDA graph after :meth:`use_cuda_graphs`: (the loss, the
        presynaptic activity of the pass when ``record``, else None)."""
        if self.graphs is not None:
            return self.graphs(x_seq, y, heads, mask, record)
        with self.net.recording() if record else contextlib.nullcontext() as activity:
            loss = self.task_loss_backward(x_seq, y, heads, mask)
        return loss, activity

    def check_simulation(self, sim) -> None:
        """A one-line ConfigError where ``sim`` (a strategy's :class:`~spikecl.continual.strategy.Simulation`, the
        hooks'; None: none) presents samples or computes gradients otherwise than this trainer: its Fisher or
        activity passes would then see other inputs than training does."""
        if sim is None:
            return
        name = next((k for k, v in TRAINERS.items() if type(self) is v), sim.trainer)   # a subclass: its own rule
        mine, theirs = (self.num_steps, self.encoder, name), (sim.num_steps, sim.encoder, sim.trainer)
        if mine != theirs:
            raise ConfigError(f"the strategy was built for num_steps = {theirs[0]}, encoder {theirs[1]!r}, trainer "
                              f"{theirs[2]!r}, this trainer runs num_steps = {mine[0]}, encoder {mine[1]!r}, trainer "
                              f"{mine[2]!r}; give build_strategy the trainer's own Simulation(num_steps, encoder, "
                              "trainer)")

    def mixed_precision(self, device: torch.device):
        """The context the training forward pass runs in: autocast to bfloat16 on ``device`` under
        ``precision = "bfloat16"`` (refused where a layer runs on the snnTorch engine), else none."""
        if self.precision == "bfloat16":
            if self.net.uses_engine("snntorch"):            # switched since the trainer was built
                raise ConfigError(BFLOAT16_NOT_SNNTORCH)
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None, mask: torch.Tensor | None,
                    optimizer: torch.optim.Optimizer, hooks: TrainingHooks = TrainingHooks(),
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """One optimisation step on a batch of static inputs ``x`` [B, ...]; returns the task loss (0-dim)."""
        x = as_input(x, "training batch", finite=False,       # checked once, by the encoder
                     intensities=self.encoder != "events")
        if x.dim() < 2:
            raise ShapeError(f"training batch of shape {tuple(x.shape)} has no sample axis; expected [B, ...] "
                             "(x[None] for one sample)")
        if x.shape[0] == 0:
            raise ShapeError(f"training batch of shape {tuple(x.shape)} is empty; expected [B, ...] with B >= 1")
        return self.train_encoded(self.encode(x, generator), y, heads, mask, optimizer, hooks)

    def train_encoded(self, x_seq: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                      mask: torch.Tensor | None, optimizer: torch.optim.Optimizer,
                      hooks: TrainingHooks = TrainingHooks()) -> torch.Tensor:
        """One optimisation step on an encoded batch ``x_seq`` [T, B, ...]; returns the task loss (0-dim). A
        non-finite loss raises NumericalError; non-finite inputs NumericalError on the CPU (at once) and DataError
        on an accelerator (deferred: see :meth:`check_finite`); out-of-range labels or heads DataError."""
        if not isinstance(x_seq, torch.Tensor) or x_seq.dim() < 3:
            raise ShapeError(f"encoded batch of shape {tuple(getattr(x_seq, 'shape', ()))} is not [T, B, ...]; "
                             "encode static inputs first (encode(x, num_steps)) or use train_batch")
        if x_seq.shape[0] != self.num_steps:         # the online loss is a mean over num_steps
            raise ShapeError(f"encoded batch has T = {x_seq.shape[0]} time steps; this trainer was made for "
                             f"num_steps = {self.num_steps}")
        self.check_simulation(getattr(hooks, "sim", None))
        batch = x_seq.shape[1]
        if batch == 0:
            raise ShapeError(f"training batch of shape {tuple(x_seq.shape)} is empty; expected [T, B, ...], B >= 1")
        y = indices(y, self.net.n_outputs, batch, "labels", x_seq.device)
        mask = output_mask(mask, self.net.n_outputs, x_seq.device)
        data_ok, finite = None, finite_flag(x_seq[0] if x_seq.stride(0) == 0 else x_seq)
        if x_seq.device.type != "cpu":               # the CPU checked at once; here a flag read with the loss's
            data_ok = finite & in_range(y, self.net.n_outputs)
            y = y.clamp(0, self.net.n_outputs - 1)    # no device-side assert before the flag is read
            if heads is not None:
                heads = torch.as_tensor(heads, device=x_seq.device)
                data_ok = data_ok & in_range(heads, len(self.net.readout.heads))
                heads = heads.clamp(0, len(self.net.readout.heads) - 1)
        elif not bool(finite):
            raise NumericalError("training input contains NaN or infinity")
        elif heads is not None:                       # here, not in a compiled forward pass (a graph break)
            heads = indices(heads, len(self.net.readout.heads), batch, "heads")
        if mask is not None:                          # a label the mask leaves inactive can never be learned
            if data_ok is not None:
                data_ok = data_ok & mask[y].all()
            elif not bool(mask[y].all()):
                raise DataError(f"labels: {int(y[~mask[y]][0])} is an output the mask leaves inactive (active: "
                                f"{', '.join(map(str, mask.nonzero().flatten().tolist()))})")
        self.check_optimizer(optimizer)
        self.net.train()
        optimizer.zero_grad(set_to_none=True)
        with self.net.projecting(getattr(hooks, "projections", dict)()):      # hooks without any: none
            loss, activity = self.loss_pass(x_seq, y, heads, mask, hooks.uses_activity)
        penalty = checked_penalty(getattr(hooks, "name", type(hooks).__name__), hooks.penalty())
        penalised = penalty is not None and penalty.requires_grad
        if penalised:
            penalty.backward()
            self.check_finite(loss + penalty.detach(), data_ok)
        else:
            self.check_finite(loss, data_ok)
        if heads is not None:                         # heads no sample read: no gradient, not a zero one
            self.net.readout.release_unused_heads(heads, penalised)
        hooks.after_backward(activity)
        optimizer.step()
        hooks.after_step()
        return loss


    def check_optimizer(self, optimizer) -> None:
        """A one-line ConfigError unless ``optimizer`` is a torch optimizer holding trainable parameters of this
        trainer's network (one made for a network built anew would step other tensors: nothing would learn).
        Checked once per optimizer."""
        if optimizer is not None and optimizer is getattr(self, "_checked_optimizer", None):
            return
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ConfigError(f"optimizer: expected a torch.optim.Optimizer over the network's parameters, got "
                              f"{type(optimizer).__name__}")
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not any(id(p) in held for p in self.net.parameters() if p.requires_grad):
            raise ConfigError("optimizer: it holds none of this network's trainable parameters (made for another "
                              "network, or for this one before it was built anew?); build it from net.parameters()")
        self._checked_optimizer = optimizer


class OnlineTrainer(BPTTTrainer):
    """Online trace-based training (OTTT-style): per-step losses, ``dW = error × presynaptic trace``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.precision != "float32":
            raise ConfigError(ONLINE_IN_FLOAT32)

    def compile(self) -> None:
        raise ConfigError(ONLINE_NOT_COMPILED)

    def task_loss_backward(self, x_seq: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                           mask: torch.Tensor | None) -> torch.Tensor:
        """As :meth:`BPTTTrainer.task_loss_backward`, one backward pass per time step (each step's readout membrane
        against ``y``, divided by T): no graph through time is kept."""
        total = torch.zeros((), device=x_seq.device)
        for mem_t in self.net.online_steps(x_seq, heads):
            loss_t = F.cross_entropy(mask_logits(mem_t, mask), y) / self.num_steps
            loss_t.backward()
            total += loss_t.detach()
        return total


class RateTrainer(BPTTTrainer):
    """DSR-style rate training: the network spikes as usual, gradients flow through each layer's firing rate as a
    clipped linear function of its mean input current (:func:`~spikecl.snn.layers.rate_coded`), not through time.
    The weight gradient is ``error × presynaptic firing rate``; no membrane history is differentiated."""

    def logits(self, x_seq: torch.Tensor, heads: torch.Tensor | None) -> torch.Tensor:
        return self.forward(x_seq, heads, rate_gradient=True)


TRAINERS = {"bptt": BPTTTrainer, "online": OnlineTrainer, "dsr": RateTrainer}


def make_trainer(name: str, net: SpikingNetwork, num_steps: int, encoder: str = "direct",
                 precision: str = "float32") -> BPTTTrainer:
    """The trainer called ``name`` (``bptt``, ``online`` or ``dsr``) for ``net``, its training pass in
    ``precision``."""
    if name not in TRAINERS:
        raise ConfigError(f"train.trainer: {name!r} is not allowed; choose one of {', '.join(TRAINERS)}")
    return TRAINERS[name](net, num_steps, encoder, precision)


def sample_batch(x, encoder: str) -> torch.Tensor:
    """Evaluation input ``x`` as a float tensor of samples ``[N, ...]`` (:func:`as_input`), else a one-line error."""
    x = as_input(x, "evaluation input", intensities=encoder != "events")
    if x.dim() < 2:
        raise ShapeError(f"evaluation input of shape {tuple(x.shape)} has no sample axis; expected samples [N, ...] "
                         "(x[None] for one sample)")
    return x


@torch.no_grad()
def fitting_batch(net: SpikingNetwork, x: torch.Tensor, num_steps: int, encoder: str, heads: torch.Tensor | None,
                  batch_size: int) -> int:
    """``batch_size``, or on the CPU as many samples as fit in half the memory free where fewer do (an evaluation
    batch of the CIFAR CNN at T = 20 takes ~14 MB a sample: 7 GB at the default 500, and Linux kills rather than
    refuses): each sample's share sized by a one-sample pass (once per network and input shape), every layer's
    output counted (an upper bound). The predictions are the same however the samples are batched."""
    from spikecl.environment import available_memory

    free = available_memory() if x.device.type == "cpu" and min(batch_size, x.shape[0]) > 1 else None
    if free is None:
        return batch_size
    sized = net.__dict__.setdefault("_activation_bytes", {})    # per input shape: the layers' sizes do not change
    key = (num_steps, encoder, tuple(x.shape[1:]))
    if key not in sized:
        sized[key] = activation_bytes(net, x[:1], num_steps, encoder, heads)
    return int(max(1, min(batch_size, free // 2 // sized[key])))


def activation_bytes(net: SpikingNetwork, x: torch.Tensor, num_steps: int, encoder: str,
                     heads: torch.Tensor | None) -> int:
    """Bytes of every layer's output in a pass of ``net`` over one sample ``x`` [1, ...] (in evaluation mode, without
    gradients): what a batch's activations take per sample, at least (its own generator: no caller's Poisson draws
    are taken)."""
    sizes: list[int] = []

    def count(module, inputs, output):
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        sizes.append(sum(t.numel() * t.element_size() for t in outputs if torch.is_tensor(t)))

    hooks = [m.register_forward_hook(count) for m in net.modules() if not any(m.children())]
    try:
        with torch.no_grad(), evaluating(net):    # normalisation statistics read, not moved
            net(encode(x[:1], num_steps, encoder, torch.Generator(x.device).manual_seed(0)),
                None if heads is None else heads[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return max(sum(sizes), 1)


def predict(net: SpikingNetwork, x: torch.Tensor, num_steps: int, encoder: str = "direct",
            heads: torch.Tensor | None = None, mask: torch.Tensor | None = None, batch_size: int = 500,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Predicted class of every sample of ``x`` [N, ...] → ``[N]`` (network in eval mode, its mode restored); a
    network with NaN or infinite weights, or finite ones whose logits overflow, raises NumericalError (its silent
    layers, or argmax over NaN, would predict one class)."""
    num_steps, batch_size = count(num_steps, "network.num_steps"), count(batch_size, "batch_size")
    x = sample_batch(x, encoder)
    if not bool(parameters_flag(net)):
        check_parameters(net, "it cannot be evaluated")
    mask = output_mask(mask, net.n_outputs, x.device)
    out, finite = [], torch.ones((), dtype=torch.bool, device=x.device)
    with evaluating(net):
        batch_size = fitting_batch(net, x, num_steps, encoder, heads, batch_size)
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            hb = None if heads is None else heads[start:start + batch_size]
            logits = net(encode(xb, num_steps, encoder, generator), hb)
            finite = finite & torch.isfinite(logits).all()               # read once, after the last batch
            out.append(mask_logits(logits, mask).argmax(dim=1))
    if not bool(finite):
        raise NumericalError("the network's logits are NaN or infinite (its inputs are, or its weights are too "
                             "large for them); it cannot be evaluated")
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def evaluate(net: SpikingNetwork, x: torch.Tensor, y: torch.Tensor, num_steps: int, encoder: str = "direct",
             heads: torch.Tensor | None = None, mask: torch.Tensor | None = None, batch_size: int = 500,
             generator: torch.Generator | None = None) -> float:
    """Accuracy (fraction in [0, 1]) of ``net`` on ``x`` [N, ...], ``y`` [N] (integer labels of the readout's
    outputs; ShapeError / DataError otherwise, also for no samples; NaN or infinite inputs or weights:
    NumericalError)."""
    x = sample_batch(x, encoder)
    y = indices(y, net.n_outputs, x.shape[0], "labels", x.device)
    ok = finite_flag(x) & in_range(y, net.n_outputs)
    if heads is not None:
        heads = torch.as_tensor(heads)
        if heads.device.type != "cpu" and not heads.is_floating_point():    # checked with the accuracy's read
            ok = ok & in_range(heads, len(net.readout.heads))
            heads = heads.clamp(0, len(net.readout.heads) - 1)
        heads = net.check_heads(heads, x.shape[0])
    if x.shape[0] == 0:
        raise ShapeError(f"evaluation input of shape {tuple(x.shape)} is empty; an accuracy needs N >= 1 samples")
    pred = predict(net, x, num_steps, encoder, heads, mask, batch_size, generator)
    correct, ok = torch.stack([(pred == y).sum(), ok.long()]).tolist()              # one read of the device
    if not ok:
        raise DataError("evaluation inputs are NaN or infinite, or labels or heads are outside the readout's range")
    return correct / y.shape[0]                      # exact in float64, as over a process group's shares
