"""Synaptic intelligence (Zenke, Poole & Ganguli 2017).

Along the training trajectory each parameter accumulates ``ω_i = −Σ_t g_i(t) Δθ_i(t)`` (g: the gradient used for
the step, read after the step: in ``si+gpm`` or ``si+hlop`` the projected one, so that with plain SGD every
``ω_i = lr · g_i² ≥ 0`` in either order). At the end of a task ``Ω_i += ω_i / (Δ_i² + ξ)`` with Δ_i the
parameter's total change over the task's training steps, the trajectory ω is integrated along; the penalty is
``c · Σ_i Ω_i (θ_i − θ*_i)²``, anchored at θ* = the weights the next task starts from. In a combination with
replay's after-task phase (``si+gpm+replay``) the phase's change is in θ* but neither in ω nor in Δ.

g is the gradient of the whole loss, the penalty's part included, as in van de Ven et al.'s continual-learning
code; Zenke et al.'s integrate the gradient of the task's loss alone. The two agree on the first task (no penalty
yet) and differ on later ones wherever the penalty pulls a weight back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikecl.continual.strategy import Strategy
from spikecl.options import option


@dataclass
class SIOptions:
    c: float = option(1.0, low=0.0, doc="penalty strength")
    xi: float = option(0.1, low=1e-12, doc="damping of the importance denominator")


class SI(Strategy):
    name = "si"
    supports_data_parallel = True
    Options = SIOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.omega = {n: torch.zeros_like(p) for n, p in self.named_trainable()}       # importance so far (Ω)
        self.path = {n: torch.zeros_like(p) for n, p in self.named_trainable()}        # ω of the current task
        self.anchor = {n: p.detach().clone() for n, p in self.named_trainable()}       # θ* = start of the task
        self._last: dict[str, torch.Tensor] | None = None       # θ after the task's last step (None: no step yet)

    def penalty(self):
        total = sum((self.omega[n] * (p - self.anchor[n]) ** 2).sum() for n, p in self.named_trainable())
        return self.options.c * total

    def after_backward(self, activity=None):
        if self._last is None:                              # the task's first step (or the first after a resume)
            self._last = {n: p.detach().clone() for n, p in self.named_trainable()}

    def after_step(self):
        for n, p in self.named_trainable():                 # p.grad: what the step used, after every part's hooks
            if p.grad is not None:
                self.path[n] -= p.grad.detach() * (p.detach() - self._last[n])
            self._last[n].copy_(p.detach())

    def after_task(self, task, train):
        for n, p in self.named_trainable():
            trained = p.detach() if self._last is None else self._last[n]      # before any after-task phase
            self.omega[n] += self.path[n] / ((trained - self.anchor[n]) ** 2 + self.options.xi)
            self.path[n].zero_()
            self.anchor[n] = p.detach().clone()
        self._last = None

    def state_dict(self):
        return {"omega": self.omega, "path": self.path, "anchor": self.anchor}

    def load_state_dict(self, state):
        omega, path, anchor = self.state_entries(state, ("omega", "path", "anchor"))
        self.check_per_parameter({"omega": omega, "path": path, "anchor": anchor})
        self.omega, self.path, self.anchor = dict(omega), dict(path), dict(anchor)
