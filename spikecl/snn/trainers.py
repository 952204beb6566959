"""Trainers: one optimisation step on a batch, by BPTT, online trace-based or rate-based (DSR-style) learning.

Every trainer computes a cross-entropy loss on the readout, calls the continual-learning hooks in a fixed order and
step the optimiser::

    zero_grad → task loss backward → penalty backward → hooks.after_backward() → optimizer.step() → hooks.after_step()

* :class:`BPTTTrainer`: logits = readout membrane averaged over T; gradients through time with surrogate spikes.
* :class:`OnlineTrainer` (OTTT-style): at each step the loss on the readout membrane is backpropagated through that
  step only; each synapse's weight gradient is ``error × presynaptic trace`` (trace decay = beta), so memory does not
  grow with T. Gradients of the T steps accumulate before one optimiser step.
* :class:`RateTrainer` (DSR-style): the forward pass is BPTT's; gradients flow through each layer's firing rate as a
  clipped function of its mean input current, so each weight gradient is ``error × presynaptic firing rate``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from spikecl.errors import ConfigError, NumericalError
from spikecl.snn.encoders import encode
from spikecl.snn.networks import SpikingNetwork

MASKED_LOGIT = -1e4


class TrainingHooks:
    """What a trainer asks of a continual-learning strategy (all no-ops here)."""

    def penalty(self) -> torch.Tensor | None:
        """Extra loss term (e.g. EWC's quadratic penalty), or None."""
        return None

    def after_backward(self) -> None:
        """Gradients are in ``param.grad``: project or mask them here."""

    def after_step(self) -> None:
        """The optimiser has updated the parameters."""


def mask_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Suppress outputs that are not active (``mask`` [n_outputs] bool, class-incremental heads)."""
    return logits if mask is None else logits.masked_fill(~mask, MASKED_LOGIT)


class BPTTTrainer:
    """Backpropagation through time with surrogate gradients.

    ``net``: the spiking network; ``num_steps``: T; ``encoder``: ``direct``, ``poisson`` or ``latency``.
    """

    def __init__(self, net: SpikingNetwork, num_steps: int, encoder: str = "direct") -> None:
        self.net = net
        self.num_steps = num_steps
        self.encoder = encoder

    def task_loss_backward(self, x: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                           mask: torch.Tensor | None, generator: torch.Generator | None) -> float:
        """Forward ``x`` [B, ...], backpropagate the cross-entropy against ``y`` [B]; returns the loss."""
        x_seq = encode(x, self.num_steps, self.encoder, generator)
        loss = F.cross_entropy(mask_logits(self.net(x_seq, heads), mask), y)
        loss.backward()
        return loss.item()

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None, mask: torch.Tensor | None,
                    optimizer: torch.optim.Optimizer, hooks: TrainingHooks = TrainingHooks(),
                    generator: torch.Generator | None = None) -> float:
        """One optimisation step on a batch; returns the task loss. A non-finite loss raises NumericalError."""
        self.net.train()
        optimizer.zero_grad(set_to_none=True)
        loss = self.task_loss_backward(x, y, heads, mask, generator)
        penalty = hooks.penalty()
        if penalty is not None and penalty.requires_grad:
            penalty.backward()
            loss_and_penalty = loss + penalty.item()
        else:
            loss_and_penalty = loss
        if not math.isfinite(loss_and_penalty):
            raise NumericalError(f"training loss became {loss_and_penalty}; lower train.lr (or the strategy's "
                                 "penalty strength) or check the input data")
        hooks.after_backward()
        optimizer.step()
        hooks.after_step()
        return loss


class OnlineTrainer(BPTTTrainer):
    """Online trace-based training (OTTT-style): per-step losses, ``dW = error × presynaptic trace``."""

    def task_loss_backward(self, x: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                           mask: torch.Tensor | None, generator: torch.Generator | None) -> float:
        x_seq = encode(x, self.num_steps, self.encoder, generator)
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

    def task_loss_backward(self, x: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                           mask: torch.Tensor | None, generator: torch.Generator | None) -> float:
        layers = [layer for layer in self.net.layers if hasattr(layer, "rate_gradient")]
        for layer in layers:
            layer.rate_gradient = True
        try:
            return super().task_loss_backward(x, y, heads, mask, generator)
        finally:
            for layer in layers:
                layer.rate_gradient = False


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
