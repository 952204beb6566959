"""Experience replay with a per-class buffer.

After each task, ``per_class`` random training samples of every (task, class) pair are kept. Every later training
batch is extended by ``batch_size`` samples drawn uniformly from the buffer (with their labels and readout heads).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikecl.config import option
from spikecl.continual.strategy import Strategy, TaskData


@dataclass
class ReplayOptions:
    per_class: int = option(20, low=1, doc="stored samples per (task, class)")
    batch_size: int = option(64, low=1, doc="replayed samples added to every training batch")
    seed: int = option(0, doc="seed of buffer selection and sampling")


class Replay(Strategy):
    name = "replay"
    Options = ReplayOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.buffer: TaskData | None = None
        self.generator = torch.Generator().manual_seed(self.options.seed)

    def batch(self, x, y, heads):
        if self.buffer is None:
            return x, y, heads
        pick = torch.randint(len(self.buffer), (self.options.batch_size,), generator=self.generator)
        pick = pick.to(self.buffer.x.device)
        return (torch.cat([x, self.buffer.x[pick]]), torch.cat([y, self.buffer.y[pick]]),
                torch.cat([heads, self.buffer.heads[pick]]))

    def after_task(self, task, train):
        keep = []
        labels = train.y.cpu()
        for label in torch.unique(labels):
            members = torch.nonzero(labels == label).flatten()
            order = torch.randperm(len(members), generator=self.generator)[: self.options.per_class]
            keep.append(members[order])
        index = torch.cat(keep).to(train.x.device)
        stored = TaskData(task, train.x[index], train.y[index], train.heads[index])
        self.buffer = stored if self.buffer is None else TaskData.concat([self.buffer, stored])

    def state_dict(self):
        buffer = None if self.buffer is None else vars(self.buffer)
        return {"buffer": buffer, "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.buffer = None if state["buffer"] is None else TaskData(**state["buffer"])
        self.generator.set_state(state["generator"])
