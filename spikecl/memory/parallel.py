"""A batch of independent CA3 memories split over CPU processes: the throughput of every core.

The torch stepper (:mod:`spikecl.memory.torch_net`) runs a batch on one thread, where per-step dispatch and memory
traffic leave a second core idle. Memories never interact, so a batch splits into contiguous shares, each
simulated by its own process (one torch thread each) and stitched back together in order: every memory gets the
spikes and weights it gets in one process. Rasters travel bit-packed (8 steps' spikes per byte).

>>> with memory_pool(2) as pool:                                                       # doctest: +SKIP
...     runs = run_batch(schedules, 100, 100, workers=2, pool=pool)
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import numpy as np

from spikecl.memory.params import CA3Params


def memory_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh processes (spawned, so no torch thread pool is inherited) that import the
    stepper once, up front; use it as a context manager and pass it to ``run_batch(..., pool=)``."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_setup)
    list(pool.map(_ready, range(workers)))                         # start them now, not in the first batch
    return pool


def simulate(params: CA3Params, n_cues: int, n_bits: int, cue: np.ndarray, content: np.ndarray, gate: np.ndarray,
             device: str = "cpu", workers: int = 1, pool: ProcessPoolExecutor | None = None
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every population's spikes (bool ``[T, B, N]``) and the plastic weights (nA, ``[B, ...]``) of the batch
    ``cue [T, B, C]``, ``content [T, B, M]``, ``gate [T, B]``, on ``workers`` processes when > 1."""
    batch = cue.shape[1]
    workers = min(workers, batch)
    if workers == 1:
        return _run_share(params, n_cues, n_bits, cue, content, gate, device, packed=False)
    bounds = np.linspace(0, batch, workers + 1).round().astype(int)
    shares = [(params, n_cues, n_bits, cue[:, a:b], content[:, a:b], gate[:, a:b], "cpu", True)
              for a, b in zip(bounds[:-1], bounds[1:])]
    with _pool_or(pool, workers) as executor:
        parts = list(executor.map(_run_share_args, shares))
    spikes = {}
    for name, (packed, steps) in parts[0][0].items():
        spikes[name] = out = np.empty((steps, batch, packed.shape[2]), dtype=bool)
        for (a, b), part in zip(zip(bounds[:-1], bounds[1:]), parts):
            out[:, a:b] = np.unpackbits(part[0][name][0], axis=0, count=steps).view(bool)
    weights = {name: np.concatenate([p[1][name] for p in parts]) for name in parts[0][1]}
    return spikes, weights


@contextmanager
def _pool_or(pool: ProcessPoolExecutor | None, workers: int):
    if pool is not None:
        yield pool
        return
    with memory_pool(workers) as fresh:
        yield fresh


def _worker_setup() -> None:
    import torch

    torch.set_num_threads(1)
    import spikecl.memory.torch_net  # noqa: F401  (imported once per worker)


def _ready(_: int) -> bool:
    return True


def _run_share_args(args: tuple):
    return _run_share(*args)


def _run_share(params, n_cues, n_bits, cue, content, gate, device, packed: bool):
    """One share of the batch in this process: (spikes by population, weights); ``packed``: each raster as
    (``np.packbits`` along time, number of steps)."""
    from spikecl.memory.torch_net import TorchCA3

    net = TorchCA3(params, n_cues, n_bits, batch_size=cue.shape[1], device=device)
    spikes = {k: v.cpu().numpy() for k, v in net.run(cue, content, gate).items()}
    if packed:
        spikes = {k: (np.packbits(v, axis=0), v.shape[0]) for k, v in spikes.items()}
    return spikes, net.weights()
