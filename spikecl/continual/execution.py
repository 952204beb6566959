"""Where a run executes, chosen outside it (as Brian2's devices are): this module's :class:`Execution` is one
process; :class:`spikecl.continual.data_parallel.DataParallel` spreads every batch over a process group.

A :class:`~spikecl.continual.runner.ContinualRun` and its strategy describe *what* is trained and never ask how many
processes there are; they call the execution for the steps whose work is spread:

* ``start(net)``: make every process begin from the same network; ``check_same_data(crc)``: and the same data;
* ``train_step(trainer, x, y, heads, mask, optimizer, hooks, generator)``: one optimiser step on a batch;
* ``accuracy(score, n, random_inputs)``: accuracy on ``n`` samples from ``score(start, stop)``;
* ``own_samples(n)``, ``gather(local, n, dim)``, ``sum_over_ranks(tensors)``: the pieces strategies use to
  consolidate from data (through the :class:`~spikecl.continual.strategy.Strategy` helpers);
* ``writes_files``: whether this process writes results and checkpoints and prints; ``barrier()``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from spikecl.snn.trainers import BPTTTrainer, TrainingHooks


class Execution:
    """One process: every sample is trained and evaluated here, and this process writes the run's files."""

    data_parallel = False
    writes_files = True
    processes = 1             # how many processes share the run's batches (results depend on it, as on threads)

    def start(self, net: nn.Module) -> None:
        """Called once on the freshly built network, before the strategy sees it."""

    def check_same_data(self, crc: int | None) -> None:
        """Every process read the data of CRC ``crc`` (None: nothing to compare); here, the one process did."""

    def train_step(self, trainer: BPTTTrainer, x: torch.Tensor, y: torch.Tensor, heads: torch.Tensor,
                   mask: torch.Tensor | None, optimizer: torch.optim.Optimizer, hooks: TrainingHooks,
                   generator: torch.Generator | None) -> torch.Tensor:
        """One optimiser step on the batch ``x`` [B, ...], ``y`` [B], ``heads`` [B]; returns the task loss (0-dim)."""
        return trainer.train_batch(x, y, heads, mask, optimizer, hooks, generator)

    def accuracy(self, score: Callable[[int, int], float], n: int, random_inputs: bool) -> float:
        """Accuracy on samples ``0 … n-1``; ``score(start, stop)`` is the accuracy on ``start … stop-1``.
        ``random_inputs``: inputs are drawn at random (Poisson), so the samples must be scored together."""
        return score(0, n)

    def own_samples(self, n: int) -> range:
        """The samples among ``0 … n-1`` that this process handles (all of them)."""
        return range(n)

    def gather(self, local: torch.Tensor, n: int, dim: int = 0) -> torch.Tensor:
        """The ``n`` samples along ``dim`` from every process's :meth:`own_samples` (here: ``local`` itself)."""
        return local

    def sum_over_ranks(self, tensors: Sequence[torch.Tensor]) -> None:
        """Sum each tensor over the processes, in place (nothing to do in one process)."""

    def barrier(self) -> None:
        """Wait for every process."""
