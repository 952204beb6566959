"""Learning graphs: exported files that Lava runs with plasticity on (HLOP's lateral Hebbian neurons, the CA3
memory's STDP), as opposed to frozen networks (:mod:`spikecl.export.netx`).

A learning-graph file is HDF5 whose root attribute ``learning_graph`` names its kind. Each kind registers, in
:data:`KINDS`, the module that runs it for ``spikecl deploy`` (``deploy(path, backend, samples, data_dir, **options)
-> dict``, the options it takes named in its ``DEPLOY_OPTIONS``) and prints its report (``print_report(report,
out)``). Torch-free, like the rest of :mod:`spikecl.export`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from spikecl.errors import ConfigError, ResultsError
from spikecl.hdf5_guard import READ_ERRORS, heap_loop
from spikecl.integrity import check_seal

KINDS: dict[str, str] = {          # kind -> module with deploy() and print_report()
    "ca3": "spikecl.export.ca3_graph",
    "hlop-lateral": "spikecl.export.hlop_graph",
}


def kind_of(path: str | Path) -> str | None:
    """The file's learning-graph kind, or None for a frozen network (or a file that is not HDF5: the netx reader
    then names the problem)."""
    import h5py

    try:
        check_seal(Path(path))
    except ResultsError:                                 # damaged: the netx reader names it
        return None
    if heap_loop(path) is not None:                      # libhdf5 would loop on it: the netx reader names it
        return None
    try:
        with h5py.File(path, "r") as f:
            kind = f.attrs.get("learning_graph")
        if kind is None:
            return None
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    except READ_ERRORS:                                  # damaged: the netx reader names it
        return None
    if not kind.strip("\0 "):                            # zeroed bytes where the name was: damaged, as above
        return None
    if kind not in KINDS:
        raise ConfigError(f"{path}: unknown learning graph {kind!r} (known: {', '.join(sorted(KINDS)) or 'none'})")
    return kind


def module(kind: str):
    """The module that runs learning graphs of ``kind``."""
    return importlib.import_module(KINDS[kind])


def deploy(kind: str, path: Path, backend: str, samples: int, data_dir: str | None, options: dict) -> dict:
    """Run the learning graph ``path`` of ``kind`` with the kind's deploy ``options`` (a one-line ConfigError
    names an option the kind does not take)."""
    runner = module(kind)
    unknown = [name for name in options if name not in getattr(runner, "DEPLOY_OPTIONS", ())]
    if unknown:
        raise ConfigError(f"{option_flag(unknown[0])} does not apply to {kind} learning graphs ({path})")
    if options and backend == "reference":
        raise ConfigError(f"{option_flag(next(iter(options)))} applies to --backend lava-sim; the reference backend "
                          "reads the run stored in the graph")
    return runner.deploy(path, backend, samples, data_dir, **options)


def option_flag(name: str) -> str:
    """The command-line flag of a deploy option (``stock_engine`` -> ``--stock-engine``)."""
    return "--" + name.replace("_", "-")
