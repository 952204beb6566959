"""What a quantised network needs on a neuromorphic chip: a networkx graph, a partition onto cores, SynOps.

* :func:`network_graph`: a ``networkx.DiGraph`` whose nodes are populations (``input``, hidden layers, readout;
  attribute ``neurons``) and whose edges are synapse blocks (``synapses`` = connections through nonzero weights, a
  conv's expanded as Loihi 1 stores them; ``unique_weights``; ``weight_bits``; ``memory_bits`` = synapses x bits;
  ``fan_in`` / ``fan_out`` = the most synapses into one neuron / out of one presynaptic neuron).
* :func:`partition`: every layer's neurons split onto cores of consecutive neurons so that no core exceeds the
  limits of a :class:`CoreLimits` preset: neurons, synaptic memory, input axons (the distinct presynaptic neurons a
  core's neurons read: a conv core's union of receptive fields, not one neuron's fan-in) and output axons (one per
  core of the next layer a neuron reaches). Equal cores per layer, layer by layer: an estimate, not the proprietary
  compiler's placement.
* :func:`synaptic_operations`: per inference, by NeuroBench's definitions: *dense* SynOps count every synapse (zero
  weights too) at every step; *effective* SynOps count only synapses whose presynaptic value is nonzero (ACs for binary
  spikes, MACs for graded input).

Core limits are published figures, approximate: Loihi (Davies et al., IEEE Micro 2018): 128 cores, 1,024
compartments, 128 KiB synaptic memory, 4,096 input and 4,096 output axons per core. Loihi 2 (Intel brief, 2021):
128 cores, up to 8,192 neurons and 128 KiB of flexibly partitioned memory per core; its axon limits are assumed equal
to Loihi's. Pass your own :class:`CoreLimits` where you know better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from spikecl.errors import ConfigError, ExportError, check_type
from spikecl.export.axons import LayerAxons
from spikecl.export.conv import connection_counts
from spikecl.export.quantize import FixedNetwork


@dataclass(frozen=True)
class CoreLimits:
    """Per-core capacity and cores per chip."""

    name: str
    neurons: int
    synaptic_memory_bits: int
    input_axons: int
    output_axons: int
    cores_per_chip: int
    max_message_bits: int = 0        # graded spike payload bits a core receives; 0: binary spikes only


PRESETS = {
    "loihi1": CoreLimits("loihi1", neurons=1024, synaptic_memory_bits=128 * 1024 * 8, input_axons=4096,
                         output_axons=4096, cores_per_chip=128),
    "loihi2": CoreLimits("loihi2", neurons=8192, synaptic_memory_bits=128 * 1024 * 8, input_axons=4096,
                         output_axons=4096, cores_per_chip=128, max_message_bits=24),
}


def preset(name: str) -> CoreLimits:
    if name not in PRESETS:
        raise ConfigError(f"core preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def network_graph(net: FixedNetwork) -> nx.DiGraph:
    """Populations as nodes, synapse blocks as edges (see the module docstring for the attributes)."""
    check_type(net, FixedNetwork, "the network", "quantize(spec) first")
    g = nx.DiGraph()
    g.add_node("input", neurons=net.n_inputs, kind="input", message_bits=net.input_bits)
    previous = "input"
    for layer in net.layers:
        g.add_node(layer.name, neurons=layer.n_out, kind="readout" if layer.readout else "lif", message_bits=0)
        fan_in, fan_out = connection_counts(layer)
        synapses = int(fan_in.sum())
        g.add_edge(previous, layer.name, synapses=synapses, weight_bits=layer.num_weight_bits,
                   memory_bits=synapses * layer.num_weight_bits, fan_in=int(fan_in.max()),
                   fan_out=int(fan_out.max()), kind="conv" if layer.conv else "dense",
                   unique_weights=int(np.count_nonzero(layer.weight)))
        previous = layer.name
    return g


@dataclass(frozen=True)
class LayerPlacement:
    """How one layer is split: ``cores`` cores of at most ``neurons_per_core`` neurons; what bound them (a core's
    neurons, synaptic memory, input or output axons, or the layer's own size)."""

    layer: str
    neurons: int
    cores: int
    neurons_per_core: int
    limited_by: str
    memory_bits_per_core: int
    input_axons: int
    output_axons_per_core: int


def partition(net: FixedNetwork, limits: CoreLimits) -> list[LayerPlacement]:
    """Split every layer onto cores within ``limits``: each core takes consecutive neurons (flattened (C, H, W)
    order), as many as its neurons, synaptic memory, input axons (the distinct presynaptic neurons its neurons
    read) and output axons (one per core of the next layer that a neuron reaches) allow
    (:class:`~spikecl.export.axons.LayerAxons`). A layer that fits no core is an :class:`ExportError`."""
    check_type(limits, CoreLimits, "partition: limits", "preset('loihi2'), say")
    g = network_graph(net)
    names = [layer.name for layer in net.layers]
    axons = [LayerAxons(layer) for layer in net.layers]
    sizes, bounds = map(list, zip(*(_memory_fit(g, pre, name, limits) for pre, name in zip(["input", *names], names))))

    def inputs_fit(i: int, n: int) -> bool:
        return axons[i].most_inputs(n, limits.input_axons) <= limits.input_axons

    for i in range(len(names)):
        fitted = _largest(lambda n: inputs_fit(i, n), sizes[i])
        sizes[i], bounds[i] = fitted, bounds[i] if fitted == sizes[i] else "input axons"
    outputs = [0] * len(names)
    for i in reversed(range(len(names) - 1)):      # the next layer's cores are known: each neuron's axon count
        reach = axons[i + 1].reach(sizes[i + 1])
        if reach.max(initial=0) > limits.output_axons:
            raise ExportError(f"layer {names[i]}: a neuron reaches {int(reach.max())} cores of {names[i + 1]}, more "
                              f"than the {limits.output_axons} output axons of a core ({limits.name})")
        fitted = _largest(lambda n: _block_sums(reach, n).max() <= limits.output_axons and inputs_fit(i, n),
                          sizes[i])
        sizes[i], bounds[i] = fitted, bounds[i] if fitted == sizes[i] else "output axons"
        outputs[i] = int(_block_sums(reach, fitted).max())
    placements = []
    for i, name in enumerate(names):
        neurons, edge = g.nodes[name]["neurons"], g.edges[(["input", *names])[i], name]
        placements.append(LayerPlacement(name, neurons, math.ceil(neurons / sizes[i]), sizes[i], bounds[i],
                                         sizes[i] * edge["fan_in"] * edge["weight_bits"],
                                         axons[i].most_inputs(sizes[i]), outputs[i]))
    return placements


def _memory_fit(g: nx.DiGraph, pre: str, name: str, limits: CoreLimits) -> tuple[int, str]:
    """Neurons per core of layer ``name`` that its neurons and synaptic memory allow, and which of them binds
    ("layer size" where the whole layer fits: no limit binds it)."""
    edge = g.edges[pre, name]
    if edge["fan_in"] > limits.input_axons:
        raise ExportError(f"layer {name}: fan-in {edge['fan_in']} exceeds {limits.input_axons} input axons per "
                          f"core ({limits.name})")
    bits_per_neuron = edge["fan_in"] * edge["weight_bits"]
    caps = {"neurons": limits.neurons, "synaptic memory": limits.synaptic_memory_bits // max(bits_per_neuron, 1)}
    if caps["synaptic memory"] < 1:
        raise ExportError(f"layer {name}: one neuron's {bits_per_neuron} synapse bits exceed a core's "
                          f"synaptic memory ({limits.name})")
    bound = min(caps, key=caps.get)
    neurons = g.nodes[name]["neurons"]
    return (neurons, "layer size") if neurons <= caps[bound] else (caps[bound], bound)   # one core holds it all


def _largest(fits, cap: int) -> int:
    """The largest ``n`` in 1..``cap`` with ``fits(n)``, by bisection (fitting shrinks with larger blocks);
    1 when none does (one neuron per core: its own limits were checked)."""
    if fits(cap):
        return cap
    low, high = 1, cap                              # fits(low) is assumed, fits(high) is not
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def _block_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sums of ``values`` [n] over consecutive blocks of ``size``."""
    return np.add.reduceat(values, np.arange(0, len(values), size)) if len(values) else np.zeros(1, np.int64)


def synaptic_operations(net: FixedNetwork, inputs: np.ndarray, spikes: list) -> dict:
    """SynOps per inference (mean over samples): ``inputs`` [T, B, n_in], ``spikes`` per layer [T, B, n]."""
    batch = inputs.shape[1]
    dense, effective, macs = 0.0, 0.0, 0.0
    presyn = [np.asarray(inputs)] + [np.asarray(s) for s in spikes[:-1]]
    for layer, pre in zip(net.layers, presyn):
        dense += net.num_steps * int(connection_counts(layer, structural=True)[0].sum())
        per_input = connection_counts(layer)[1]  # fan-out of each presynaptic neuron
        ops = float(((pre != 0).reshape(-1, layer.n_in).astype(np.float64) @ per_input).sum()) / batch
        if layer.input_bits:
            macs += ops
        else:
            effective += ops
    return {"dense_synops": float(dense), "effective_acs": effective, "effective_macs": macs}


def cannot_run(net: FixedNetwork, limits: CoreLimits) -> str | None:
    """Why a chip of ``limits`` cannot run ``net`` at all (before any capacity question), or None: graded input
    spikes wider than the chip carries (Loihi 1 carries binary spikes only)."""
    bits = max(layer.input_bits for layer in net.layers)
    if bits > limits.max_message_bits:
        carries = f"{limits.max_message_bits}-bit graded" if limits.max_message_bits else "binary"
        return f"{limits.name} carries {carries} spikes, this network receives {bits}-bit graded input"
    return None


def summary(net: FixedNetwork, limits: CoreLimits) -> dict:
    """Totals: neurons, synapses, synaptic memory (bytes), cores and chips."""
    g = network_graph(net)
    placements = partition(net, limits)
    cores = sum(p.cores for p in placements)
    return {"neurons": int(sum(d["neurons"] for n, d in g.nodes(data=True) if n != "input")),
            "synapses": int(sum(d["synapses"] for *_, d in g.edges(data=True))),
            "synaptic_memory_bytes": int(sum(d["memory_bits"] for *_, d in g.edges(data=True)) // 8),
            "cores": cores, "chips": math.ceil(cores / limits.cores_per_chip), "preset": limits.name}
