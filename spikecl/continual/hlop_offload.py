"""HLOP's lateral neurons learned off the torch process, e.g. on Lava's learning engine: the torch side of the
round trip. Record a protected layer's presynaptic activity on a task's data (:func:`presynaptic_activity`), make
and learn a learning graph from it with :mod:`spikecl.export.hlop_graph` (a peer of this package: the caller joins
the two), and load the learned rows back as that layer's frozen subspace
(:meth:`~spikecl.continual.strategies.hlop.HLOP.load_subspace`)::

    rows = presynaptic_activity(hlop, train, "layers.0", samples=500)             # [N, n] float64
    graph = hlop_graph.make_graph(rows, k=80, h_old=frozen_rows(hlop, "layers.0"))
    learned = hlop_graph.learned_basis(graph, hlop_graph.learn(graph, "lava-sim")["h"])
    hlop.load_subspace("layers.0", learned)
"""

from __future__ import annotations

import numpy as np
import torch

from spikecl.continual.projection import activity_matrix
from spikecl.continual.strategies.hlop import HLOP
from spikecl.continual.strategy import TaskData
from spikecl.errors import ConfigError, SpikeCLError


def hlop_part(strategy) -> HLOP:
    """``strategy`` itself if it is HLOP, its HLOP part if it is a combination (``hlop+replay``); a one-line
    ConfigError otherwise."""
    parts = [strategy, *getattr(strategy, "parts", ())]
    found = next((part for part in parts if isinstance(part, HLOP)), None)
    if found is None:
        raise ConfigError(f"hlop offload: {type(strategy).__name__} is not HLOP nor a combination with it")
    return found


def _synapse(strategy: HLOP, name: str):
    synapses = {p.name: p for p in strategy.synapses}
    if name not in synapses:
        raise SpikeCLError(f"hlop offload: no protected synapse {name!r} (known: {', '.join(synapses)})")
    return synapses[name]


def _count(value, what: str) -> None:
    """A one-line ConfigError unless ``value`` is an integer ≥ 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"hlop offload: {what} must be an integer ≥ 1, got {value!r}")


def presynaptic_activity(strategy: HLOP, data: TaskData, name: str, samples: int, max_rows: int | None = None,
                         seed: int = 0) -> np.ndarray:
    """Rows [N, n] (float64) of protected synapse ``name``'s presynaptic input in the strategy's network on the
    first ``samples`` samples of ``data``, as its Hebbian update sees them (``options.activity``: one row per sample
    for ``rate``, per sample and time step for ``steps``; conv patches unfolded); at most ``max_rows``, drawn at
    random with ``seed``. ``strategy``: HLOP, or a combination with it (:func:`hlop_part`)."""
    strategy = hlop_part(strategy)
    p = _synapse(strategy, name)
    _count(samples, "samples")
    if max_rows is not None:
        _count(max_rows, "max_rows")
    recorded = strategy.activity_of(data, min(samples, len(data)))
    rows = activity_matrix(recorded.of(name), p.synapse, max_rows, torch.Generator().manual_seed(seed),
                           strategy.options.activity)
    return rows.double().cpu().numpy()


def frozen_rows(strategy: HLOP, name: str) -> np.ndarray:
    """The consolidated rows H_old [k_old, n] of synapse ``name`` (float64), e.g. the frozen neurons of the next
    task's learning graph, or the torch-learned basis to compare a graph's result with. ``strategy``: HLOP, or a
    combination with it."""
    strategy = hlop_part(strategy)
    _synapse(strategy, name)
    return strategy.h_old[name].double().cpu().numpy()
