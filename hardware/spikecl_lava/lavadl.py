"""The same Lava run as :mod:`spikecl_lava.runner`, with the network built by lava-dl's own netx loader.

``netx.hdf5.Network(file, input_message_bits, reset_interval=T, reset_offset=1)`` resets layer k (0-based) at
``t % T == (k + 2) % T``, as spikecl's graph does; a RingBuffer feeds its input port (graded values for the
``direct`` encoder, conv inputs on netx's (W, H, C) grid), spikecl's ``SpikeFile`` records each hidden block's
output and a ``Monitor`` the readout neuron's voltage. Needs lava-dl 0.6 (``make lava-dl``: ``.venv-lavadl``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikecl.errors import DependencyError, ResultsError
from spikecl.export import fixed_point
from spikecl.export.quantize import FixedNetwork
from spikecl_lava.graph import Graph, to_lava_grid


def load_network(path: Path, net: FixedNetwork):
    """lava-dl's ``netx.hdf5.Network`` of the file at ``path``, reset like spikecl's graph."""
    try:
        from lava.lib.dl import netx
    except ImportError as exc:
        raise DependencyError(f"--lava-dl needs lava-dl 0.6 (make lava-dl builds .venv-lavadl): {exc}") from None
    try:
        return netx.hdf5.Network(net_config=str(path), input_message_bits=net.input_bits,
                                 reset_interval=net.num_steps, reset_offset=1)
    except Exception as exc:                     # lava-dl's loader: KeyError, ValueError, RuntimeError, ... in depth
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultsError(f"{path}: lava-dl's netx loader refused the file ({type(exc).__name__}: {reason})") from None


def build_netx_graph(path: Path, net: FixedNetwork, inputs: np.ndarray, record_to: Path | None = None) -> Graph:
    """Source ─► netx Network; with ``record_to``, hidden blocks' spikes are saved there as ``spikes_<k>.npy``."""
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.monitor.process import Monitor

    from spikecl_lava.processes.recorder import SpikeFile

    network = load_network(path, net)
    data = fixed_point.source_data(net, inputs)
    steps = data.shape[1]
    first = net.layers[0].conv
    source = Source(data=to_lava_grid(data, first.in_shape) if first else data.astype(np.int32))
    source.s_out.connect(network.inp)
    sinks = []
    if record_to is not None:
        for k, block in enumerate(network.layers[:-1]):
            sink = SpikeFile(shape=block.out.shape, steps=steps, path=str(record_to / f"spikes_{k}.npy"))
            block.out.connect(sink.a_in)
            sinks.append(sink)
    neurons = [block.neuron for block in network.layers]
    monitor = Monitor()
    monitor.probe(neurons[-1].v, steps)
    return Graph(source, [block.synapse for block in network.layers], neurons, sinks, monitor, steps)


def netx_builder(path: Path):
    """A ``build`` for :func:`spikecl_lava.runner.run` that loads ``path`` with lava-dl."""
    return lambda net, inputs, record_to: build_netx_graph(Path(path), net, inputs, record_to)
