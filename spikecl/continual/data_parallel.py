"""Data-parallel execution: one run (method, seed) trained by every process of a process group.

:class:`DataParallel` is the :class:`~spikecl.continual.execution.Execution` that the continual kind's job injects into
a :class:`~spikecl.continual.runner.ContinualRun` when the process group has more than one process.

Every rank builds the same network (same seed), the same stream and the same strategy, walks the same sequence of
global batches (shuffles are seeded by (seed, task, epoch); the strategy's ``batch`` event, e.g. replay, runs on the
global batch with its own seeded generator) and trains on its contiguous shard of each batch. The gradient step is
made equal to the 1-process step on the whole batch ``B``:

* gradients are summed over ranks with weights ``n_r / B`` (``n_r`` the shard size), so the task loss is the mean
  over the whole batch and a penalty that every rank computes identically (EWC, SI) counts once; a parameter keeps
  ``grad = None`` only if it has none on every rank (unused heads, as in one process);
* the presynaptic activity handed to the strategy's ``after_backward`` is gathered from all ranks, so HLOP's
  Hebbian/anti-Hebbian updates use the whole batch (``y xᵀ`` and ``E‖x‖²`` over B samples);
* strategies that consolidate from data reduce their statistics through the strategy helpers (GPM's
  ``activity_of`` gathers activity before its SVD, EWC sums its Fisher over shards of its samples with
  ``sum_over_ranks``); SI's path integral uses the reduced gradients; replay buffers are chosen with a shared seed
  and are identical on every rank;
* Poisson input spikes of a training batch are drawn for the whole batch on every rank and then sharded, so they
  are the 1-process draws (so are those of EWC's and GPM's consolidation passes: a generator of (seed, task, 0, pass)
  advanced past the samples of earlier shards);
* batch-norm running statistics are averaged over ranks after every step (the normalisation itself uses each
  shard's statistics, as DistributedDataParallel does without SyncBatchNorm).

Only rank 0 writes checkpoints and results (``writes_files``); on ``resume`` every rank loads the checkpoint.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from spikecl.continual import distributed
from spikecl.continual.execution import Execution
from spikecl.errors import DataError
from spikecl.snn.activity import Activity
from spikecl.snn.trainers import BPTTTrainer, TrainingHooks


def reduce_gradients(params: list[nn.Parameter], weight: float) -> None:
    """``p.grad ← Σ_r weight_r · p.grad_r`` over ranks for every parameter (one flat all-reduce); a parameter whose
    gradient is None on every rank stays None."""
    grads = [p.grad.mul_(weight) if p.grad is not None else torch.zeros_like(p) for p in params]
    present = torch.tensor([float(p.grad is not None and weight > 0) for p in params],   # weight 0: placeholder
                           dtype=grads[0].dtype if grads else None)
    distributed.all_reduce_sum_([*grads, present])
    for p, g, has in zip(params, grads, present.tolist()):
        p.grad = g if has > 0 else None


def average_norm_statistics(model: nn.Module, weight: float) -> None:
    """Running mean/variance of batch-norm layers still in training mode ← their ``weight``-weighted sum over
    ranks."""
    stats = [t for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
             and m.track_running_stats for t in (m.running_mean, m.running_var)]
    if stats:
        for t in stats:
            t.mul_(weight)
        distributed.all_reduce_sum_(stats)


class ShardedHooks(TrainingHooks):
    """The strategy's ``hooks`` for a shard that holds a fraction ``weight`` of the global batch (``counts``: shard
    size of every rank). Gradients of ``model`` and the recorded activity are combined across ranks before the
    strategy sees them."""

    def __init__(self, hooks: TrainingHooks, model: nn.Module, weight: float, counts: list[int]) -> None:
        self.hooks, self.model, self.weight, self.counts = hooks, model, weight, counts
        self.uses_activity = hooks.uses_activity
        self.name = getattr(hooks, "name", type(hooks).__name__)      # errors name the strategy

    def penalty(self):
        return self.hooks.penalty()

    def projections(self):
        return self.hooks.projections()

    def after_backward(self, activity: Activity | None = None) -> None:
        reduce_gradients([p for p in self.model.parameters() if p.requires_grad], self.weight)
        if activity is not None:
            activity = activity.map(lambda x: distributed.gather_shards(x, self.counts, dim=1))
        self.hooks.after_backward(activity)

    def after_step(self) -> None:
        average_norm_statistics(self.model, self.weight)
        self.hooks.after_step()


class DataParallel(Execution):
    """Every batch and evaluation split over the ranks of the initialised process group; rank 0 writes."""

    data_parallel = True

    @property
    def writes_files(self) -> bool:
        return distributed.is_main()

    @property
    def processes(self) -> int:
        return distributed.world_size()

    def start(self, net: nn.Module) -> None:
        """Every rank starts from rank 0's parameters and buffers."""
        with torch.no_grad():
            distributed.broadcast_([*net.parameters(), *net.buffers()])

    def check_same_data(self, crc: int | None) -> None:
        """A one-line DataError on every rank where any rank's data (its CRC: a registered loader that ignores its
        seed, files that differ between hosts) differs from rank 0's; raised everywhere, so none waits on the
        others in a collective."""
        if crc is None:
            return
        mine = torch.tensor([crc], dtype=torch.int64, device=distributed._comm_device())
        first = mine.clone()
        distributed.broadcast_([first])
        differ = (first != mine).to(torch.int64)
        distributed.all_reduce_sum_([differ])
        if int(differ):
            raise DataError(f"{int(differ)} of {distributed.world_size()} processes read other data than rank 0 "
                            "(another CRC of the images and labels): a data-parallel run needs the same data in "
                            "every process (a registered dataset's loader must return the same data for a seed)")

    def train_step(self, trainer: BPTTTrainer, x, y, heads, mask, optimizer, hooks, generator) -> torch.Tensor:
        """Train on this rank's shard of the global batch. The inputs are encoded for the whole batch on every rank
        (Poisson: the same draws as one process) and then sharded."""
        n = x.shape[0]
        counts = distributed.shard_sizes(n)
        part = distributed.local_slice(n)
        x_seq = trainer.encode(x, generator)[:, part]                                      # [T, b, ...]
        return trainer.train_encoded(x_seq, y[part], heads[part], mask, optimizer,
                                     ShardedHooks(hooks, trainer.net, counts[distributed.rank()] / n, counts))

    def accuracy(self, score: Callable[[int, int], float], n: int, random_inputs: bool) -> float:
        """Accuracy from the correct predictions of every rank's shard (random inputs: every rank scores
        everything, so that spike draws match a 1-process run)."""
        if n == 0 or random_inputs:
            return score(0, n)
        start, stop = distributed.shard_bounds(n)
        correct = torch.zeros(1, dtype=torch.float64)
        if stop > start:
            correct += round(score(start, stop) * (stop - start))
        distributed.all_reduce_sum_([correct])
        return correct.item() / n

    def own_samples(self, n: int) -> range:
        return range(*distributed.shard_bounds(n))

    def gather(self, local: torch.Tensor, n: int, dim: int = 0) -> torch.Tensor:
        return distributed.gather_shards(local, distributed.shard_sizes(n), dim)

    def sum_over_ranks(self, tensors: Sequence[torch.Tensor]) -> None:
        distributed.all_reduce_sum_(tensors)

    def barrier(self) -> None:
        distributed.barrier()
