"""The two upper bounds: joint training (cumulative) and multitask training (all tasks at once)."""

from __future__ import annotations

from dataclasses import replace

from spikecl.continual.strategy import Strategy, TaskData


class Joint(Strategy):
    """At task k, train on the union of tasks 1..k; the model keeps training, so early tasks get k times the
    epochs of a sequential method (the generous, cumulative upper bound)."""

    name = "joint"
    supports_data_parallel = True
    combines = False

    def before_task(self, task, train, seen):
        """All of ``seen`` (tasks 0..task, ending with ``train``); ``seen`` that does not end with ``train`` itself is
        taken as the earlier tasks only and ``train`` appended (an empty ``seen``: the current task alone)."""
        return TaskData.concat(list(seen) if seen and seen[-1] is train else [*seen, train])

    def training_samples(self, task, sizes):
        return sum(sizes[: task + 1])


class Multitask(Strategy):
    """One model trained once, on the first task's turn, on every task's data for ``train.epochs`` epochs: as
    many SGD steps as a sequential method gets over the stream, up to the rounding of partial batches (one partial
    batch per epoch over the union, against one per task) (the HLOP paper's "multitask" bound). Later
    tasks train nothing, and every row after training is evaluated with every output of the stream active
    (class-incremental: all classes; row 0, the untrained network's, as every method's), so the accuracy matrix
    repeats one row and has BWT 0 by construction; read its ACC."""

    name = "multitask"
    supports_data_parallel = True
    combines = False
    trains_ahead = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: list[TaskData] = []

    def begin(self, tasks):
        self._tasks = list(tasks)                     # concatenated only for the one training turn

    def training_samples(self, task, sizes):
        return sum(sizes) if task == 0 else 0

    def before_task(self, task, train, seen):
        if not self._tasks:
            raise RuntimeError("multitask training needs the whole stream: call begin(tasks) before the first task")
        last = self._tasks[-1]                        # labelled with the last stage: every output active
        if task == 0:
            return TaskData.concat(self._tasks)
        return replace(last, x=last.x[:0], y=last.y[:0], heads=last.heads[:0])
