"""Experience replay with a per-class buffer.

After each task, ``per_class`` random training samples of every (task, class) pair are kept. Two ways to use them:

* ``mode = "mixed"``: every later training batch is extended by ``batch_size`` samples drawn uniformly from the
  buffer (with their labels and readout heads), so replayed samples share the batch's update (and, combined with a
  projection method, its projection).
* ``mode = "after_task"`` (the phase of HLOP+replay in Xiao et al., 2024, whose DSR script stores 50 samples per
  class and replays 50 per task at each step): after every task from the second on, the network
  takes ``phase_epochs`` passes over the buffer (the finished task's samples included) with a fresh SGD optimiser
  at ``phase_lr``, without gradient projection or the penalties of EWC and SI. Each step sums the losses of
  ``batch_size`` samples of every stored task; gradients come from the run's trainer (``train.trainer``), as in
  training. In a combination the phase runs after projection methods have taken the task's subspace and before EWC
  and SI take their anchors, in either order of the names
  (:attr:`~spikecl.continual.strategy.Strategy.after_task_stage`); SI's importance leaves the phase's steps out.

The default, ``mode = "auto"``, is ``after_task`` when replay is combined with a projection method (``hlop+replay``,
``gpm+replay``) and ``mixed`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikecl.continual.projection import ProjectionStrategy
from spikecl.continual.strategy import SEED_RANGE, Strategy, TaskData, sent_to
from spikecl.options import option

MODES = ("auto", "mixed", "after_task")


@dataclass
class ReplayOptions:
    per_class: int = option(20, low=1, doc="stored samples per (task, class)")
    batch_size: int = option(64, low=1, high=1 << 16,
                             doc="replayed samples per training batch (after_task: per stored task)")
    mode: str = option("auto", choices=MODES,
                       doc="replay inside every training batch ('mixed') or in a phase after each task "
                           "('after_task'); 'auto': after_task when combined with a projection method, else mixed")
    phase_epochs: int = option(1, low=1, doc="after_task: passes over the buffer")
    phase_lr: float = option(0.01, low=0.0, high=100.0, doc="after_task: SGD learning rate of the replay phase")
    seed: int = option(0, low=0, high=SEED_RANGE - 1,
                       doc="seed of buffer selection and sampling, paired with the run seed")

    #: options another option makes unused (under "auto" the phase runs beside a projection method)
    ONLY_FOR = {"phase_epochs": ("mode", ("after_task", "auto")), "phase_lr": ("mode", ("after_task", "auto"))}


def phase_runs(mode: str, parts) -> bool:
    """Whether replay in a run of ``parts`` (method names) trains on its buffer after each task: ``mode =
    "after_task"``, or ``"auto"`` beside a projection method."""
    from spikecl.continual.strategies import strategy_class

    return mode == "after_task" or mode == "auto" and any(issubclass(strategy_class(p), ProjectionStrategy)
                                                          for p in parts)


class Replay(Strategy):
    name = "replay"
    supports_data_parallel = True
    Options = ReplayOptions
    after_task_stage = 1            # after the subspaces of the task as trained, before EWC's and SI's anchors

    @classmethod
    def unread_options(cls, options, parts):
        if phase_runs(options.mode, parts):
            return {}
        why = ('replay\'s after-task phase runs with mode = "after_task", or "auto" beside a projection method, e.g. '
               'hlop+replay')
        return {"phase_epochs": why, "phase_lr": why}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.buffer: TaskData | None = None
        self.task_sizes: list[int] = []            # stored samples of each task, in buffer order
        self.generator = self.random_generator(self.options.seed)
        self.mode = "mixed" if self.options.mode == "auto" else self.options.mode

    def combined_with(self, parts) -> None:
        if self.options.mode == "auto" and any(isinstance(p, ProjectionStrategy) for p in parts):
            self.mode = "after_task"

    @property
    def trains_unprojected(self) -> bool:
        return self.mode == "after_task" and self.options.phase_lr > 0

    def batch(self, x, y, heads):
        if self.buffer is None or self.mode != "mixed":
            return x, y, heads
        pick = sent_to(torch.randint(len(self.buffer), (self.options.batch_size,), generator=self.generator),
                       self.buffer.x.device)
        heads = torch.zeros_like(y) if heads is None else heads        # a single-head readout's batch
        return (torch.cat([x, self.buffer.x[pick]]), torch.cat([y, self.buffer.y[pick]]),
                torch.cat([heads, self.buffer.heads[pick]]))

    def after_task(self, task, train):
        keep = []
        labels = train.y.cpu()
        for label in torch.unique(labels):
            members = torch.nonzero(labels == label).flatten()
            order = torch.randperm(len(members), generator=self.generator)[: self.options.per_class]
            keep.append(members[order])
        index = (torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long)).to(train.x.device)   # empty task
        stored = TaskData(task, train.x[index], train.y[index], train.heads[index])
        self.buffer = stored if self.buffer is None else TaskData.concat([self.buffer, stored])
        self.task_sizes.append(len(stored))
        if self.mode == "after_task" and len(self.task_sizes) > 1:
            self.replay_phase(train.mask)

    @torch.enable_grad()
    def replay_phase(self, mask: torch.Tensor | None = None) -> None:
        """Train on the buffer without projection: each step sums the losses of one chunk of every stored task's
        samples, differentiated by the run's trainer (``train.trainer``: BPTT, online or DSR), with the outputs of
        ``mask`` active (those of the task just trained)."""
        o = self.options
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=o.phase_lr)
        starts = torch.tensor([0] + self.task_sizes[:-1]).cumsum(0).tolist()
        self.model.train()
        for _ in range(o.phase_epochs):
            orders = [start + torch.randperm(size, generator=self.generator)
                      for start, size in zip(starts, self.task_sizes)]
            for first in range(0, max(self.task_sizes), o.batch_size):
                optimizer.zero_grad(set_to_none=True)
                for order in orders:
                    idx = order[first:first + o.batch_size].to(self.buffer.x.device)
                    if len(idx):
                        self.loss_backward(self.buffer.x[idx], self.buffer.y[idx], self.buffer.heads[idx], mask)
                optimizer.step()

    def state_dict(self):
        buffer = None if self.buffer is None else vars(self.buffer)
        return {"buffer": buffer, "task_sizes": list(self.task_sizes), "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        buffer, generator = self.state_entries(state, ("buffer", "generator"))
        self.buffer = None if buffer is None else TaskData(**buffer)
        self.task_sizes = list(state.get("task_sizes", []))
        self.generator.set_state(generator.cpu())       # a CPU generator; the file may map it
