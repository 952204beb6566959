"""Data-parallel continual learning: one run (method, seed) trained by every process of a process group.

Every rank builds the same network (same seed), the same stream and the same strategy, walks the same sequence of
global batches (shuffles are seeded by (seed, task, epoch); the strategy's ``batch`` event, e.g. replay, runs on the
global batch with its own seeded generator) and trains on its contiguous shard of each batch. The gradient step is
made equal to the 1-process step on the whole batch ``B``:

* gradients are summed over ranks with weights ``n_r / B`` (``n_r`` the shard size), so the task loss is the mean
  over the whole batch and a penalty that every rank computes identically (EWC, SI) counts once; a parameter keeps
  ``grad = None`` only if it has none on every rank (unused heads, as in one process);
* before the strategy's ``after_backward``, the presynaptic activity recorded by each layer is gathered from all
  ranks, so HLOP's Hebbian/anti-Hebbian updates use the whole batch (``y xᵀ`` and ``E‖x‖²`` over B samples);
* strategies that consolidate from data reduce their statistics (GPM gathers activity before its SVD, EWC sums its
  Fisher over shards of its samples); SI's path integral uses the reduced gradients; replay buffers are chosen with
  a shared seed and are identical on every rank;
* Poisson input spikes of a training batch are drawn for the whole batch on every rank and then sharded, so they
  are the 1-process draws (EWC's and GPM's consolidation passes draw per shard: same distribution, other draws);
* batch-norm running statistics are averaged over ranks after every step (the normalisation itself uses each
  shard's statistics, as DistributedDataParallel does without SyncBatchNorm).

Only rank 0 writes checkpoints and results; on ``resume`` every rank loads the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from spikecl.continual import distributed as dd
from spikecl.continual.runner import ContinualRun, checkpoint_path
from spikecl.continual.strategy import Strategy, TaskData
from spikecl.io import RunResult
from spikecl.snn.encoders import encode
from spikecl.snn.trainers import TrainingHooks, make_trainer


def reduce_gradients(params: list[nn.Parameter], weight: float) -> None:
    """``p.grad ← Σ_r weight_r · p.grad_r`` over ranks for every parameter (one flat all-reduce); a parameter whose
    gradient is None on every rank stays None."""
    grads = [p.grad.mul_(weight) if p.grad is not None else torch.zeros_like(p) for p in params]
    present = torch.tensor([float(p.grad is not None and weight > 0) for p in params],   # weight 0: placeholder
                           dtype=grads[0].dtype if grads else None)
    dd.all_reduce_sum_([*grads, present])
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
        dd.all_reduce_sum_(stats)


class ShardedHooks(TrainingHooks):
    """The strategy's hooks for a shard that holds a fraction ``weight`` of the global batch (``counts``: shard
    size of every rank). Gradients and activity are combined across ranks before the strategy sees them."""

    def __init__(self, strategy: Strategy, weight: float, counts: list[int]) -> None:
        self.strategy, self.weight, self.counts = strategy, weight, counts

    def penalty(self):
        return self.strategy.penalty()

    def after_backward(self) -> None:
        model = self.strategy.model
        reduce_gradients([p for p in model.parameters() if p.requires_grad], self.weight)
        dd.gather_presynaptic(model, self.counts)
        self.strategy.after_backward()

    def after_step(self) -> None:
        average_norm_statistics(self.strategy.model, self.weight)
        self.strategy.after_step()


def _shard(data: TaskData | tuple, part: slice) -> tuple:
    return tuple(t[part] for t in data)


class DataParallelRun(ContinualRun):
    """A :class:`ContinualRun` whose batches and evaluations are split over the ranks of the process group."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        with torch.no_grad():                                               # every rank starts from rank 0's net
            dd.broadcast_([*self.net.parameters(), *self.net.buffers()])

    def train_step(self, x, y, heads, mask, generator) -> None:
        """Train on this rank's shard of the global batch. Poisson inputs are drawn for the whole batch on every
        rank (the same draws as one process) and then sharded."""
        n = x.shape[0]
        counts = dd.shard_sizes(n)
        weight = counts[dd.rank()] / n
        part = dd.local_slice(n)
        trainer = self.trainer
        if self.sim.encoder == "poisson":
            x = encode(x, self.sim.num_steps, "poisson", generator).transpose(0, 1)       # [B, T, ...]
            trainer = make_trainer(self.cfg.train.trainer, self.net, self.sim.num_steps, "sequence")
        xs, ys, hs = _shard((x, y, heads), part)
        if self.sim.encoder == "poisson":
            xs = xs.transpose(0, 1)                                                       # [T, b, ...]
        trainer.train_batch(xs, ys, hs, mask, self.optimizer, ShardedHooks(self.strategy, weight, counts), generator)

    def _accuracy(self, data: TaskData, stage: int, limit: int | None = None) -> float:
        """Accuracy from the correct predictions of every rank's shard (Poisson inputs: every rank evaluates
        everything, so that spike draws match a 1-process run)."""
        n = len(data) if limit is None else min(limit, len(data))
        if n == 0 or self.sim.encoder == "poisson":
            return super()._accuracy(data, stage, limit)
        start, stop = dd.shard_bounds(n)
        correct = torch.zeros(1, dtype=torch.float64)
        if stop > start:
            part = TaskData(data.task, *_shard((data.x, data.y, data.heads), slice(start, stop)))
            correct += round(super()._accuracy(part, stage) * (stop - start))
        dd.all_reduce_sum_([correct])
        return correct.item() / n

    def save_checkpoint(self, path: Path) -> None:
        if dd.is_main():
            super().save_checkpoint(path)

    def execute(self, results: Path | None = None, resume: bool = False, overwrite: bool = False,
                progress_bar: bool = True) -> RunResult:
        """As :meth:`ContinualRun.execute`; ranks other than 0 load the checkpoint on ``resume`` but write
        nothing and show no progress bar."""
        if dd.is_main():
            return super().execute(results, resume, overwrite, progress_bar)
        if results is not None and resume and checkpoint_path(results).exists():
            self.load_checkpoint(checkpoint_path(results))
        return super().execute(None, progress_bar=False)
