"""The float network as a NIR graph (Neuromorphic Intermediate Representation, ``nir`` 1.0.8).

Nodes: ``input`` → (``fc<i>`` Affine or Linear → ``lif<i>`` LIF) per hidden layer → ``fc_out`` → ``readout`` →
``output``. Discrete steps follow snnTorch's NIR convention (``dt = 1e-4``, ``tau = dt / (1 - beta)``,
``r = tau / dt``, so one step of NIR's LIF equals ``mem = beta * mem + I``). NIR has no reset-mode field: readers
(snnTorch included) assume reset to zero, so a ``subtract`` network is refused. The readout (a non-resetting
integrator) is a LIF whose threshold is never reached (``READOUT_THRESHOLD``); decode it from its membrane, as
spikecl does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikecl.errors import ExportError, ResultsError, require
from spikecl.export.spec import LayerSpec, NetworkSpec
from spikecl.io import atomic_write

DT = 1e-4
READOUT_THRESHOLD = 1e9


def _lif(layer: LayerSpec, threshold: float):
    nir = require("nir", "export")
    if not 0.0 <= layer.beta < 1.0:
        raise ExportError(f"layer {layer.name}: beta {layer.beta:g} has no finite NIR time constant")
    n = layer.n_out
    tau = np.full(n, DT / (1.0 - layer.beta))
    return nir.LIF(tau=tau, r=tau / DT, v_leak=np.zeros(n), v_threshold=np.full(n, threshold),
                   v_reset=np.zeros(n))


def _synapse(layer: LayerSpec):
    nir = require("nir", "export")
    weight = layer.weight.astype(np.float32)
    if layer.bias is None:
        return nir.Linear(weight=weight)
    return nir.Affine(weight=weight, bias=layer.bias.astype(np.float32))


def to_nir(spec: NetworkSpec):
    """The NIR graph of ``spec`` (hidden layers must reset to zero)."""
    nir = require("nir", "export")
    nodes = {"input": nir.Input(input_type=np.array([spec.n_inputs]))}
    edges = []
    previous = "input"
    for i, layer in enumerate(spec.hidden):
        if layer.conv is not None:
            raise ExportError(f"layer {layer.name}: NIR export covers fully connected networks; export CNNs as netx")
        if layer.reset != "zero":
            raise ExportError(f"layer {layer.name}: reset {layer.reset!r} has no NIR equivalent (NIR readers reset "
                              "to zero); train with network.reset = \"zero\"")
        nodes[f"fc{i}"], nodes[f"lif{i}"] = _synapse(layer), _lif(layer, layer.threshold)
        edges += [(previous, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        previous = f"lif{i}"
    nodes["fc_out"], nodes["readout"] = _synapse(spec.readout), _lif(spec.readout, READOUT_THRESHOLD)
    nodes["output"] = nir.Output(output_type=np.array([spec.readout.n_out]))
    edges += [(previous, "fc_out"), ("fc_out", "readout"), ("readout", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def write_nir(path: str | Path, spec: NetworkSpec, overwrite: bool = False) -> Path:
    """Write ``spec`` as a NIR HDF5 file, atomically (the graph is built before anything is written)."""
    nir = require("nir", "export")
    graph = to_nir(spec)
    return atomic_write(path, lambda tmp: nir.write(tmp, graph), overwrite=overwrite)


def read_nir(path: str | Path):
    """Read a NIR file; a missing or corrupt file is a :class:`ResultsError`."""
    nir = require("nir", "export")
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"NIR file not found: {path}")
    try:
        return nir.read(path)
    except (OSError, KeyError, ValueError) as exc:
        raise ResultsError(f"{path} is not a readable NIR file ({str(exc).splitlines()[0]})") from None
