"""NeuroBench measures of a quantised network on the fixed-point reference, and an energy estimate per inference
from Loihi's published per-operation energies.

Energies (Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning", IEEE Micro 38(1), 2018,
Table 2, measured on Loihi 1 at nominal voltage; minimum figures): 23.6 pJ per synaptic spike operation and 52 pJ
per active neuron (compartment) update. The estimate is ``SOPs x 23.6 pJ + neuron updates x 52 pJ``: core
operations only, without spike routing between cores, static power or host I/O, so a lower bound of the dynamic
energy, not a measurement. Graded (Loihi 2) input operations are charged as synaptic operations.
"""

from __future__ import annotations

import numpy as np

from spikecl.export.quantize import FixedNetwork
from spikecl.export.resources import synaptic_operations

#: joules per synaptic spike operation and per active neuron update (Davies et al., IEEE Micro 2018, Table 2)
SYNOP_J = 23.6e-12
NEURON_UPDATE_J = 52e-12


def neuron_updates(net: FixedNetwork) -> int:
    """Compartment updates per inference: every neuron of every layer (readout included) at each of T steps, as
    Loihi's cores update every configured compartment each time step."""
    return int(net.num_steps * sum(layer.n_out for layer in net.layers))


def energy_joules(synops: float, updates: float) -> float:
    """Dynamic core energy per inference (J) of ``synops`` synaptic operations and ``updates`` neuron updates."""
    return synops * SYNOP_J + updates * NEURON_UPDATE_J


def fixed_measures(net: FixedNetwork, inputs: np.ndarray, spikes: list) -> dict:
    """Per inference on the reference: SynOps (:func:`~spikecl.export.resources.synaptic_operations`), connection
    sparsity of the integer weights, activation sparsity of the spiking layers' outputs (``spikes`` per layer
    ``[T, B, n]``; the readout never spikes and is left out, so the key is ``hidden_activation_sparsity``:
    :func:`spikecl.snn.measures.workload`'s ``activation_sparsity`` counts the readout's outputs too),
    neuron updates and the energy estimate (J)."""
    ops = synaptic_operations(net, inputs, spikes)
    weights = [np.asarray(layer.weight) for layer in net.layers]
    hidden = [np.asarray(s) for s in spikes[:-1]]
    outputs = sum(s.size for s in hidden)
    active = sum(int(np.count_nonzero(s)) for s in hidden)
    updates = neuron_updates(net)
    return {**ops,
            "connection_sparsity": float(sum(int(np.sum(w == 0)) for w in weights) / sum(w.size for w in weights)),
            "hidden_activation_sparsity": 1.0 - active / outputs if outputs else 0.0,
            "neuron_updates": float(updates),
            "energy_j": energy_joules(ops["effective_acs"] + ops["effective_macs"], updates)}
