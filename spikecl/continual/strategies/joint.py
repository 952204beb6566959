"""Joint (multitask) training: at task k, train on the union of tasks 1..k — the usual upper bound."""

from __future__ import annotations

from spikecl.continual.strategy import Strategy, TaskData


class Joint(Strategy):
    """Replaces each task's training set by all training data seen so far (the model keeps training)."""

    name = "joint"

    def before_task(self, task, train, seen):
        return TaskData.concat(seen)
