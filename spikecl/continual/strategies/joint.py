"""The two upper bounds: joint training (cumulative) and multitask training (all tasks at once)."""

from __future__ import annotations

from dataclasses import replace

from spikecl.continual.strategy import Strategy, TaskData


class Joint(Strategy):
    """At task k, train on the union of tasks 1..k; the model keeps training, so early tasks get k times the
    epochs of a sequential method (the generous, cumulative upper bound)."""

    name = "joint"
    supports_data_parallel = True

    def before_task(self, task, train, seen):
        return TaskData.concat(seen)


class Multitask(Strategy):
    """One model trained once, on the first task's turn, on every task's data for ``train.epochs`` epochs: as
    many SGD steps as a sequential method gets over the stream (the HLOP paper's "multitask" bound). Later
    tasks train nothing, so the accuracy matrix has BWT 0 by construction; read its ACC."""

    name = "multitask"
    supports_data_parallel = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: list[TaskData] = []

    def begin(self, tasks):
        self._tasks = list(tasks)                     # concatenated only for the one training turn

    def before_task(self, task, train, seen):
        if not self._tasks:
            raise RuntimeError("multitask training needs the whole stream: call begin(tasks) before the first task")
        if task == 0:
            return TaskData.concat(self._tasks)       # labelled with the last stage: every output active
        return replace(train, x=train.x[:0], y=train.y[:0], heads=train.heads[:0])
