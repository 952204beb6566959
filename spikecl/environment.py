"""What a run ran on, recorded in its results file for reproducibility: versions, commit, host, CPU, threads; and
the memory available now, which loaders and simulators check before large allocations."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np


#: the plugins this process loaded (``--plugin``): {file name or module: CRC-32 of its source, hex}, recorded by
#: :func:`environment` (a run made with another version of a plugin's method is told apart in the report)
PLUGINS: dict[str, str] = {}


def environment() -> dict:
    """Versions of spikecl (and, run from a git checkout, its commit: :func:`source_commit`), Python and the
    numerical stack, the platform, host and CPU, torch's intra-op threads and vector instruction set, (after
    ``--threads``) numpy's BLAS threads (for reproducibility records: CPU results depend on them) and the plugins
    loaded (:data:`PLUGINS`)."""
    import h5py  # noqa: F401 - the file's writer: recorded even before the first write imports it

    import spikecl

    env = {"spikecl": spikecl.__version__, **({"spikecl_source": source} if (source := source_commit()) else {}),
           "python": sys.version.split()[0], "platform": platform.platform(), "host": platform.node(),
           "cpu": cpu_model(), "numpy": np.__version__}
    for name in ("h5py", "torch", "snntorch", "brian2", "networkx"):
        module = sys.modules.get(name)
        if module is not None:
            env[name] = getattr(module, "__version__", "?")
    if "torch" in sys.modules:                  # CPU results depend on it: threads split sums in other orders
        torch = sys.modules["torch"]
        env["torch_threads"] = torch.get_num_threads()
        env["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()     # e.g. AVX2, AVX512
    if "threadpoolctl" in sys.modules:          # --threads limited the BLAS pools: record what they run
        blas = [pool["num_threads"] for pool in sys.modules["threadpoolctl"].threadpool_info()
                if pool["user_api"] == "blas"]
        if blas:
            env["blas_threads"] = max(blas)
    if PLUGINS:
        env["plugins"] = dict(PLUGINS)
    return env


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The commit of the git checkout spikecl runs from, ``-dirty`` when its files differ from it (``git describe
    --always --dirty``), or None for an installed copy or without git; asked once per process."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name, with its family and model numbers where Linux reports them in ``cpuinfo`` (two CPUs of
    one name may be other generations, whose vectorised kernels round differently), e.g.
    ``"AMD EPYC (family 25, model 17)"``; ``platform.processor()`` elsewhere."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return platform.processor() or "unknown"
    fields: dict[str, str] = {}
    for line in text.splitlines():                   # the first processor's fields
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", platform.processor() or "unknown")
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


def machine_kernels() -> str:
    """The CPU (:func:`cpu_model`) and the vector instruction set torch dispatches to there, e.g.
    ``"AMD EPYC (family 25, model 17), AVX512 kernels"``: what, with the thread count, decides a CPU run's rounding."""
    import torch

    return f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()} kernels"


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux's MemAvailable), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
