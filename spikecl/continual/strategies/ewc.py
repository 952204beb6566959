"""Online elastic weight consolidation (Kirkpatrick et al. 2017; online variant, Schwarz et al. 2018).

Penalty ``(lambda / 2) · Σ_i F_i (θ_i − θ*_i)²`` with one anchor θ* (the parameters after the latest task) and a
running Fisher ``F ← gamma · F + F_task``. ``F_task`` is the empirical Fisher: the mean over ``fisher_samples``
training samples of the squared gradient of the log-likelihood of the true label, one sample per backward pass.
The gradients are back-propagated through the unrolled network with its surrogate spike derivative whatever the
trainer (``online`` and ``dsr`` train with other gradients; the Fisher measures the loss's sensitivity to each
weight, which BPTT gives exactly for the surrogate network).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from spikecl.continual.strategy import FISHER_PASS, Strategy
from spikecl.options import option


@dataclass
class EWCOptions:
    lam: float = option(100.0, low=0.0, doc="penalty strength lambda")
    gamma: float = option(1.0, low=0.0, high=1.0, doc="decay of the running Fisher (1 = plain sum)")
    fisher_samples: int = option(200, low=1, doc="training samples used to estimate the Fisher per task")


class EWC(Strategy):
    name = "ewc"
    supports_data_parallel = True
    own_spike_gradients = True                 # the Fisher's per-sample gradients pass through the surrogate
    Options = EWCOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def penalty(self):
        if not self.fisher:
            return None
        total = sum((self.fisher[n] * (p - self.anchor[n]) ** 2).sum() for n, p in self.named_trainable())
        return 0.5 * self.options.lam * total

    def empirical_fisher(self, train) -> dict[str, torch.Tensor]:
        """Mean squared per-sample gradient of log p(y|x) over the first ``fisher_samples`` samples (the outputs
        of ``train.mask``, as trained; the model in evaluation mode)."""
        params = self.named_trainable()
        fisher = {n: torch.zeros_like(p) for n, p in params}
        count = min(self.options.fisher_samples, len(train))
        share = self.own_samples(count)                          # data-parallel: a share of the samples per rank
        draws = self.pass_generator(train.x, share, train.task, FISHER_PASS)
        with self.reading():
            for i in share:
                self.model.zero_grad(set_to_none=True)
                logits = self.logits(train.x[i:i + 1], train.heads[i:i + 1], train.mask, draws)
                F.cross_entropy(logits, train.y[i:i + 1]).backward()
                for n, p in params:
                    if p.grad is not None:
                        fisher[n] += p.grad.detach() ** 2 / count
        self.model.zero_grad(set_to_none=True)
        self.sum_over_ranks(list(fisher.values()))
        return fisher

    def after_task(self, task, train):
        new = self.empirical_fisher(train)
        for n, f in new.items():
            self.fisher[n] = self.options.gamma * self.fisher[n] + f if n in self.fisher else f
        self.anchor = {n: p.detach().clone() for n, p in self.named_trainable()}

    def state_dict(self):
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_state_dict(self, state):
        fisher, anchor = self.state_entries(state, ("fisher", "anchor"))
        self.check_per_parameter({"fisher": fisher, "anchor": anchor})
        self.fisher, self.anchor = dict(fisher), dict(anchor)
