"""Trainers: one optimisation step on a batch, by BPTT, online trace-based or rate-based (DSR-style) learning.

Every trainer encodes the batch, computes a cross-entropy loss on the readout, calls the continual-learning hooks in a
fixed order and steps the optimiser::

    zero_grad → task loss backward → penalty backward → hooks.after_backward(activity) → optimizer.step()
    → hooks.after_step()

``activity`` is the presynaptic activity of the task loss's forward pass (:class:`~spikecl.snn.activity.Activity`),
recorded only for hooks that declare ``uses_activity``; otherwise None.

* :class:`BPTTTrainer`: logits = readout membrane averaged over T; gradients through time with surrogate spikes.
  Runs on the network's engine (``network.engine``): the fused LIF function or snnTorch's ``Leaky``.
* :class:`OnlineTrainer` (OTTT-style): at each step the loss on the readout membrane is backpropagated through that
  step only; each synapse's weight gradient is ``error × presynaptic trace`` (trace decay = beta), so memory does not
  grow with T. Gradients of the T steps accumulate before one optimiser step. Always steps snnTorch's ``Leaky``,
  whatever the engine: the loss and the trace update interleave with the dynamics step by step, so there is no
  whole-sequence function to fuse.
* :class:`RateTrainer` (DSR-style): the forward pass is BPTT's, on the network's engine; gradients flow through each
  layer's firing rate as a clipped function of its mean input current, so each weight gradient is ``error ×
  presynaptic firing rate``.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from spikecl.errors import ConfigError, NumericalError
from spikecl.snn.activity import Activity
from spikecl.snn.encoders import encode
from spikecl.snn.networks import SpikingNetwork

MASKED_LOGIT = -1e4


class TrainingHooks:
    """What a trainer asks of a continual-learning strategy (all no-ops here).

    ``uses_activity``: the trainer records the presynaptic activity of the training pass and hands it to
    :meth:`after_backward`.
    """

    uses_activity = False

    def penalty(self) -> torch.Tensor | None:
        """Extra loss term (e.g. EWC's quadratic penalty), or None."""
        return None

    def after_backward(self, activity: Activity | None = None) -> None:
        """Gradients are in ``param.grad``: project or mask them here. ``activity``: the batch's presynaptic
        activity when ``uses_activity``, else None."""

    def after_step(self) -> None:
        """The optimiser has updated the parameters."""


def mask_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Suppress outputs that are not active (``mask`` [n_outputs] bool, class-incremental heads)."""
    return logits if mask is None else logits.masked_fill(~mask, MASKED_LOGIT)


class BPTTTrainer:
    """Backpropagation through time with surrogate gradients.

    ``net``: the spiking network; ``num_steps``: T; ``encoder``: ``direct``, ``poisson``, ``latency`` or ``events``
    (batches are event frames [B, T, ...] already).
    """

    def __init__(self, net: SpikingNetwork, num_steps: int, encoder: str = "direct") -> None:
        self.net = net
        self.num_steps = num_steps
        self.encoder = encoder

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Inputs ``x`` [B, ...] → input sequence ``[T, B, ...]`` (Poisson draws from ``generator``)."""
        return encode(x, self.num_steps, self.encoder, generator)

    def logits(self, x_seq: torch.Tensor, heads: torch.Tensor | None) -> torch.Tensor:
        """Differentiable logits ``[B, n_outputs]`` for ``x_seq`` [T, B, ...] (gradients through time)."""
        return self.net(x_seq, heads)

    def task_loss_backward(self, x_seq: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                           mask: torch.Tensor | None) -> float:
        """Forward ``x_seq`` [T, B, ...], backpropagate the cross-entropy against ``y`` [B]; returns the loss."""
        loss = F.cross_entropy(mask_logits(self.logits(x_seq, heads), mask), y)
        loss.backward()
        return loss.item()

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None, mask: torch.Tensor | None,
                    optimizer: torch.optim.Optimizer, hooks: TrainingHooks = TrainingHooks(),
                    generator: torch.Generator | None = None) -> float:
        """One optimisation step on a batch of static inputs ``x`` [B, ...]; returns the task loss."""
        return self.train_encoded(self.encode(x, generator), y, heads, mask, optimizer, hooks)

    def train_encoded(self, x_seq: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                      mask: torch.Tensor | None, optimizer: torch.optim.Optimizer,
                      hooks: TrainingHooks = TrainingHooks()) -> float:
        """One optimisation step on an encoded batch ``x_seq`` [T, B, ...]; returns the task loss. A non-finite
        loss raises NumericalError."""
        self.net.train()
        optimizer.zero_grad(set_to_none=True)
        with self.net.recording() if hooks.uses_activity else contextlib.nullcontext() as activity:
            loss = self.task_loss_backward(x_seq, y, heads, mask)
        penalty = hooks.penalty()
        if penalty is not None and penalty.requires_grad:
            penalty.backward()
            loss_and_penalty = loss + penalty.item()
        else:
            loss_and_penalty = loss
        if not math.isfinite(loss_and_penalty):
            raise NumericalError(f"training loss became {loss_and_penalty}; lower train.lr (or the strategy's "
                                 "penalty strength) or check the input data")
        hooks.after_backward(activity)
        optimizer.step()
        hooks.after_step()
        return loss


class OnlineTrainer(BPTTTrainer):
    """Online trace-based training (OTTT-style): per-step losses, ``dW = error × presynaptic trace``."""

    def task_loss_backward(self, x_seq: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                           mask: torch.Tensor | None) -> float:
        total = 0.0
        for mem_t in self.net.online_steps(x_seq, heads):
            loss_t = F.cross_entropy(mask_logits(mem_t, mask), y) / self.num_steps
            loss_t.backward()
            total += loss_t.item()
        return total


class RateTrainer(BPTTTrainer):
    """DSR-style rate training: the network spikes as usual, gradients flow through each layer's firing rate as a
    clipped linear function of its mean input current (:func:`~spikecl.snn.layers.rate_coded`), not through time.
    The weight gradient is ``error × presynaptic firing rate``; no membrane history is differentiated."""

    def logits(self, x_seq: torch.Tensor, heads: torch.Tensor | None) -> torch.Tensor:
        return self.net(x_seq, heads, rate_gradient=True)


TRAINERS = {"bptt": BPTTTrainer, "online": OnlineTrainer, "dsr": RateTrainer}


def make_trainer(name: str, net: SpikingNetwork, num_steps: int, encoder: str = "direct") -> BPTTTrainer:
    """The trainer called ``name`` (``bptt``, ``online`` or ``dsr``) for ``net``."""
    if name not in TRAINERS:
        raise ConfigError(f"train.trainer: {name!r} is not allowed; choose one of {', '.join(TRAINERS)}")
    return TRAINERS[name](net, num_steps, encoder)


@torch.no_grad()
def predict(net: SpikingNetwork, x: torch.Tensor, num_steps: int, encoder: str = "direct",
            heads: torch.Tensor | None = None, mask: torch.Tensor | None = None, batch_size: int = 500,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Predicted class of every sample of ``x`` [N, ...] → ``[N]`` (network in eval mode)."""
    net.eval()
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        hb = None if heads is None else heads[start:start + batch_size]
        logits = mask_logits(net(encode(xb, num_steps, encoder, generator), hb), mask)
        out.append(logits.argmax(dim=1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def evaluate(net: SpikingNetwork, x: torch.Tensor, y: torch.Tensor, num_steps: int, encoder: str = "direct",
             heads: torch.Tensor | None = None, mask: torch.Tensor | None = None, batch_size: int = 500,
             generator: torch.Generator | None = None) -> float:
    """Accuracy (fraction in [0, 1]) of ``net`` on ``x`` [N, ...], ``y`` [N]."""
    if x.shape[0] == 0:
        return float("nan")
    pred = predict(net, x, num_steps, encoder, heads, mask, batch_size, generator)
    return (pred == y).float().mean().item()
