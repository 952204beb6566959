"""Process-group plumbing for data-parallel runs: init/teardown, rank, collectives, batch sharding.

A data-parallel run has ``N`` processes (ranks) that each hold the whole model and data. Every global mini-batch of
``B`` samples is cut into ``N`` contiguous shards of ``B // N`` or ``B // N + 1`` samples (:func:`shard_bounds`);
rank ``r`` trains on shard ``r`` and gradients are combined with weights ``n_r / B``, which makes the N-process
step equal to the 1-process step on the whole batch. Processes find each other through the environment variables
``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``);
:func:`spikecl.launcher.launch` sets them for ``N`` processes it spawns itself (``spikecl run --nproc N``). Backend:
``gloo`` on CPU, ``nccl`` on CUDA.

Every helper is a no-op (or the identity) in a single process, so library code can call them unconditionally.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

import torch
import torch.distributed as dist

from spikecl.errors import ConfigError
from spikecl.launcher import launched_world_size


# -- process group --------------------------------------------------------------------------------------------
def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment: the number of processes this one belongs to (1 when unset or not above
    1; :func:`spikecl.launcher.launched_world_size` reads it)."""
    return launched_world_size() or 1


def world_size() -> int:
    """Number of processes in the initialised process group (1 when there is none)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank: the process group's; before it is joined, ``RANK`` from the environment of a launch of
    several processes (``WORLD_SIZE`` above 1); 0 in a single process, whatever ``RANK`` a shell left behind."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    if env_world_size() <= 1:
        return 0
    return _env_int("RANK")


def _env_int(name: str) -> int:
    """The integer environment variable ``name`` (0 when unset); a one-line ConfigError when it is not one."""
    try:
        return int(os.environ.get(name, "0"))
    except ValueError:
        raise ConfigError(f"{name}={os.environ[name]!r} is not an integer") from None


def is_main() -> bool:
    """True on rank 0, the only process that prints, writes results and checkpoints."""
    return rank() == 0


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA tensors, ``gloo`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def session(device_name: str = "cpu") -> Iterator[int]:
    """Join the process group described by the environment for the duration of the block; yields the world size.

    Does nothing in a single process (``WORLD_SIZE`` unset or 1) or when a group is already initialised (then the
    caller owns it). With CUDA each process uses ``cuda:LOCAL_RANK``.
    """
    size = env_world_size()
    if size <= 1 or dist.is_initialized():
        yield world_size()
        return
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={size} but {', '.join(missing)} not set: start the processes with torchrun "
                          "(or spikecl run --nproc N), or unset WORLD_SIZE for one process")
    if not 0 <= rank() < size:                       # torch would wait for the missing ranks for ever
        raise ConfigError(f"RANK={os.environ['RANK']!r} is not a rank of WORLD_SIZE={size} (0..{size - 1})")
    cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(_env_int("LOCAL_RANK"))
    dist.init_process_group(backend_for(torch.device("cuda" if cuda else "cpu")))
    try:
        yield world_size()
    finally:
        dist.destroy_process_group()


def gathered(value) -> list:
    """``value`` (any picklable object) of every rank, in rank order; ``[value]`` in a single process."""
    if world_size() <= 1:
        return [value]
    values: list = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if world_size() > 1:
        dist.barrier()


# -- collectives ----------------------------------------------------------------------------------------------
def shard_sizes(n: int, size: int | None = None) -> list[int]:
    """Samples of each rank when ``n`` samples are split into contiguous shards (the first ``n % size`` get one
    more)."""
    size = world_size() if size is None else size
    return [n // size + (1 if r < n % size else 0) for r in range(size)]


def shard_bounds(n: int, size: int | None = None, index: int | None = None) -> tuple[int, int]:
    """``(start, stop)`` of rank ``index``'s contiguous shard of ``n`` samples (whole range in one process)."""
    sizes = shard_sizes(n, size)
    index = rank() if index is None else index
    start = sum(sizes[:index])
    return start, start + sizes[index]


def local_slice(n: int) -> slice:
    """This rank's shard of ``n`` samples as a slice; an empty shard becomes the first sample as a placeholder
    (so every rank runs the same collectives), which callers weight by 0 or drop with :func:`gather_shards`."""
    start, stop = shard_bounds(n)
    return slice(start, stop) if stop > start else slice(0, min(1, n))


def _comm_device() -> torch.device:
    """Where collective buffers must live: the current CUDA device for ``nccl``, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum_(tensors: Sequence[torch.Tensor]) -> None:
    """Sum each tensor over all ranks in place (one flat all-reduce; no-op in a single process)."""
    tensors = list(tensors)
    if world_size() == 1 or not tensors:
        return
    dtype = tensors[0].dtype if all(t.dtype == tensors[0].dtype for t in tensors) else torch.float64
    flat = torch.cat([t.reshape(-1).to(_comm_device(), dtype) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def gather_shards(local: torch.Tensor, counts: Sequence[int], dim: int = 0) -> torch.Tensor:
    """Concatenate every rank's ``local`` along ``dim`` in rank order; rank ``r`` contributes its first
    ``counts[r]`` entries along ``dim`` (shards may differ in size; a rank with 0 samples may hold a dummy one)."""
    if world_size() == 1:
        return local.narrow(dim, 0, counts[0])
    longest = max(max(counts), 1)
    shape = list(local.shape)
    shape[dim] = longest
    padded = local.new_zeros(shape)
    take = min(local.shape[dim], longest)
    padded.narrow(dim, 0, take).copy_(local.narrow(dim, 0, take))
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part.narrow(dim, 0, c) for part, c in zip(parts, counts)], dim=dim)


def broadcast_(tensors: Sequence[torch.Tensor], src: int = 0) -> None:
    """Overwrite each tensor with rank ``src``'s value (no-op in a single process)."""
    if world_size() == 1:
        return
    for t in tensors:
        dist.broadcast(t, src)


#: the launcher's names that were here, before it moved to :mod:`spikecl.launcher` (every kind's ``--nproc``)
MOVED = ("launch", "cores", "free_port", "stopped_on_interrupt")


def __getattr__(name: str):
    """A one-line ImportError naming the new place of a name :data:`MOVED` from here."""
    if name in MOVED:
        raise ImportError(f"spikecl.continual.distributed.{name} is now spikecl.launcher.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
