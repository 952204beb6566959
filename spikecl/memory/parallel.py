"""A batch of independent CA3 memories split over CPU processes: the throughput of every core.

The torch stepper (:mod:`spikecl.memory.torch_net`) runs a batch on one thread, leaving other cores idle. Memories
never interact, so a batch splits into contiguous shares, each simulated by its own process (one torch thread each):
every memory gets the spikes and weights it gets in one process. The workers write their rasters straight into one
shared-memory block ``[T, B, N]`` (bool, every population side by side in the stepper's order); only the plastic
weights travel back pickled.

>>> with memory_pool(2) as pool:                                                       # doctest: +SKIP
...     runs = run_batch(schedules, 100, 100, workers=2, pool=pool)
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import shared_memory

import numpy as np

from spikecl.memory.params import CA3Params, population_slices


def memory_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh processes (spawned, so no torch thread pool is inherited) that import the
    stepper once, up front; use it as a context manager and pass it to ``run_batch(..., pool=)``."""
    main = threading.current_thread() is threading.main_thread()
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_setup, initargs=(os.getpid() if main else None,))
    try:
        list(pool.map(_ready, range(workers)))                     # start them now, not in the first batch
    except BaseException:                                          # a worker that failed to start, or Ctrl-C
        stop_pool(pool)
        raise
    return pool


def simulate(params: CA3Params, n_cues: int, n_bits: int, cue: np.ndarray, content: np.ndarray, gate: np.ndarray,
             device: str = "cpu", workers: int = 1, pool: ProcessPoolExecutor | None = None,
             precision: str = "float64") -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every population's spikes (bool ``[T, B, N]``) and the plastic weights (nA, ``[B, ...]``) of the batch
    ``cue [T, B, C]``, ``content [T, B, M]``, ``gate [T, B]``, on ``workers`` processes when > 1, in ``precision``
    (:data:`~spikecl.memory.torch_net.PRECISIONS`)."""
    from spikecl.memory.torch_net import TorchCA3

    steps, batch = cue.shape[:2]
    workers = min(workers, batch)
    if workers == 1:
        net = TorchCA3(params, n_cues, n_bits, batch_size=batch, device=device, dtype=precision)
        return {k: v.cpu().numpy() for k, v in net.run(cue, content, gate).items()}, net.weights()
    layout = population_slices(n_cues, n_bits, params)
    width = max(b for a, b in layout.values())
    block = shared_memory.SharedMemory(create=True, size=steps * batch * width)
    try:
        bounds = np.linspace(0, batch, workers + 1).round().astype(int)
        shares = [(params, n_cues, n_bits, cue[:, a:b], content[:, a:b], gate[:, a:b], block.name,
                   (steps, batch, width), a, precision) for a, b in zip(bounds[:-1], bounds[1:])]
        with _pool_or(pool, workers) as executor:
            parts = list(executor.map(_run_share, shares))
        raster = np.ndarray((steps, batch, width), dtype=bool, buffer=block.buf).copy()
    finally:
        block.close()
        block.unlink()
    spikes = {name: raster[:, :, a:b] for name, (a, b) in layout.items()}
    weights = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    return spikes, weights


@contextmanager
def _pool_or(pool: ProcessPoolExecutor | None, workers: int):
    """``pool``, or a fresh one for the call: shut down when done, its workers stopped at once when the call is
    interrupted (Ctrl-C, or the SIGTERM the CLI turns into one), rather than waited for until the batch ends."""
    if pool is not None:
        yield pool
        return
    fresh = memory_pool(workers)
    try:
        yield fresh
    except BaseException:
        stop_pool(fresh)
        raise
    fresh.shutdown()


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` without waiting for its work: queued tasks cancelled, its worker processes terminated."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


def _worker_setup(parent: int | None) -> None:
    if parent is not None:
        _exit_with_parent(parent)
    import torch

    torch.set_num_threads(1)
    import spikecl.memory.torch_net  # noqa: F401  (imported once per worker)


def _exit_with_parent(parent: int) -> None:
    """On Linux, have the kernel stop this worker when its parent (process ``parent``) dies, of a SIGKILL it cannot
    pass on, rather than let the worker finish its share of a batch no one will read. The kernel ties this to the
    thread that started the worker, so :func:`memory_pool` asks for it only for a pool made on the main thread."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:                                     # it died before the request
        os._exit(1)


#: Linux prctl option: the signal a process gets when its parent dies
PR_SET_PDEATHSIG = 1


def _ready(_: int) -> bool:
    return True


def _run_share(args: tuple) -> dict[str, np.ndarray]:
    """One share of the batch in a worker: writes its rasters into the shared block at memories ``lo:``, returns
    its plastic weights."""
    from spikecl.memory.torch_net import TorchCA3

    params, n_cues, n_bits, cue, content, gate, block_name, shape, lo, precision = args
    net = TorchCA3(params, n_cues, n_bits, batch_size=cue.shape[1], device="cpu", dtype=precision)
    spikes = net.run(cue, content, gate)
    block = shared_memory.SharedMemory(name=block_name)
    try:
        raster = np.ndarray(shape, dtype=bool, buffer=block.buf)
        hi = lo + cue.shape[1]
        for name, (a, b) in population_slices(n_cues, n_bits, params).items():
            raster[:, lo:hi, a:b] = spikes[name].numpy()
        del raster
    finally:
        block.close()
    return net.weights()
