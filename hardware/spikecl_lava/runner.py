"""Run an exported spikecl network on Lava: fixed-point CPU simulation, or Loihi 2 when lava-loihi is installed.

Process graph (one ``Dense`` or ``Conv`` + ``LIFReset`` per layer; conv grids are Lava's (X, Y, C))::

    RingBuffer source ──► Dense ──► LIFReset ──► Dense ──► LIFReset ... ──► Dense ──► LIFReset (readout)
      [n_in, steps]                   │ SpikeFile (spikes, saved at the end)              │ Monitor (voltage)

Samples are presented back to back (T steps each). Every Dense delays by one step, so layer k (0-based) is
cleared by ``LIFReset`` at steps ``t % T == (k + 2) % T``, exactly when a new sample reaches it; the last sample
needs ``len(layers)`` extra steps to reach the readout. Logits are the readout voltage at each sample's last step
(see :mod:`spikecl.export.fixed_point`, whose ``simulate_stream`` is the bit-exact reference of this run).

    python -m spikecl_lava.runner net.h5 --inputs inputs.h5 -o run.h5 [--record-layers] [--hardware | --lava-dl]

``--lava-dl`` builds the same run from the file by lava-dl's own loader (``netx.hdf5.Network``, see
:mod:`spikecl_lava.lavadl`; needs lava-dl, e.g. ``.venv-lavadl``) instead of spikecl's process graph.

``inputs.h5``: ``inputs`` int [T, B, n_inputs], optional ``labels`` [B] and ``heads`` [B].
``run.h5``: ``spikes/<k>`` uint8 [n, steps] (with --record-layers), ``readout_v`` int64 [n_out, steps],
``logits`` [B, n_outputs], ``predictions`` [B]; attrs ``accuracy``, ``build_s`` (process graph), ``start_s``
(compile and first step), ``run_s`` (the other steps), ``steps``, ``ms_per_step``, ``backend``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikecl.errors import DependencyError, SpikeCLError
from spikecl.export import fixed_point
from spikecl.export.netx import read_netx
from spikecl.export.quantize import FixedNetwork
from spikecl.io import atomic_write


@dataclass
class Graph:
    """The Lava processes of one network run."""

    source: object
    synapses: list
    lif: list
    sinks: list
    monitor: object
    steps: int


def hardware_available() -> bool:
    """Whether Intel's proprietary lava-loihi (Loihi 2 compiler and runtime) is importable."""
    from lava.utils.loihi import is_installed

    return is_installed()  # Lava's own probe: lava.utils.loihi2_profiler ships with lava-loihi


def build_graph(net: FixedNetwork, inputs: np.ndarray, record_to: Path | None = None) -> Graph:
    """Processes and connections for ``inputs`` int ``[T, B, n_inputs]`` presented back to back; with
    ``record_to`` (a folder) every hidden layer's spikes are saved there as ``spikes_<k>.npy``."""
    from lava.proc.io.source import RingBuffer as Source

    from spikecl_lava.processes.recorder import SpikeFile
    from lava.proc.lif.process import LIFReset
    from lava.proc.monitor.process import Monitor

    data = fixed_point.source_data(net, inputs)
    steps = data.shape[1]
    first = net.layers[0].conv
    source = Source(data=to_lava_grid(data, first.in_shape) if first else data.astype(np.int32))
    port = source.s_out
    synapses, lif, sinks = [], [], []
    for k, layer in enumerate(net.layers):
        shape = tuple(reversed(layer.conv.out_shape)) if layer.conv else (layer.n_out,)
        if port.shape != (layer.n_in,) and layer.conv is None:
            port = port.flatten()                                   # conv (X, Y, C) grid into a Dense
        d = synapse(layer, f"synapse_{k}")
        bias = layer.bias_mant.reshape(layer.conv.out_shape).transpose(2, 1, 0) if layer.conv else layer.bias_mant
        n = LIFReset(shape=shape, du=layer.du, dv=layer.dv, vth=layer.vth, bias_mant=bias.astype(np.int32),
                     bias_exp=layer.bias_exp, reset_interval=net.num_steps,
                     reset_offset=fixed_point.reset_offset(net, k), name=f"lif_{k}")
        port.connect(d.s_in)
        d.a_out.connect(n.a_in)
        port = n.s_out
        synapses.append(d)
        lif.append(n)
        if record_to is not None and not layer.readout:
            sink = SpikeFile(shape=shape, steps=steps, path=str(record_to / f"spikes_{k}.npy"))
            n.s_out.connect(sink.a_in)
            sinks.append(sink)
    monitor = Monitor()
    monitor.probe(lif[-1].v, steps)
    return Graph(source, synapses, lif, sinks, monitor, steps)


def to_lava_grid(data: np.ndarray, shape: tuple) -> np.ndarray:
    """[C*H*W, steps] in (C, H, W) order → Lava's (X, Y, C, steps) = (W, H, C, steps), int32."""
    return data.reshape(*shape, -1).transpose(2, 1, 0, 3).astype(np.int32)


def from_lava_grid(data: np.ndarray) -> np.ndarray:
    """Lava's (W, H, C, steps) → [C*H*W, steps] in (C, H, W) order."""
    return data.transpose(2, 1, 0, 3).reshape(-1, data.shape[-1])


def synapse(layer, name: str):
    """Lava's fixed-point Dense, or Conv (weights (C_out, X, Y, C_in), spatially flipped: Lava convolves)."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense

    if layer.conv is None:
        return Dense(weights=layer.weight.astype(np.int32), weight_exp=layer.weight_exp,
                     num_weight_bits=layer.num_weight_bits, num_message_bits=layer.input_bits, name=name)
    c = layer.conv
    weight = layer.weight.transpose(0, 3, 2, 1)[:, ::-1, ::-1].astype(np.int32)
    return Conv(weight=np.ascontiguousarray(weight), input_shape=tuple(reversed(c.in_shape)),
                padding=(c.padding, c.padding), stride=(c.stride, c.stride), weight_exp=0,
                num_weight_bits=layer.num_weight_bits, num_message_bits=layer.input_bits, name=name)


def dense_after_conv(net: FixedNetwork) -> FixedNetwork:
    """Dense layers fed by a conv grid take Lava's flattened (X, Y, C) order: permute their weight columns."""
    from dataclasses import replace

    layers = list(net.layers)
    for k in range(1, len(layers)):
        prev, layer = layers[k - 1], layers[k]
        if prev.conv is not None and layer.conv is None:
            c, h, w = prev.conv.out_shape
            weight = layer.weight.reshape(-1, c, h, w).transpose(0, 3, 2, 1).reshape(layer.weight.shape)
            layers[k] = replace(layer, weight=np.ascontiguousarray(weight))
    return replace(net, layers=tuple(layers))


def run_config(hardware: bool):
    """Lava's fixed-point CPU models, or Loihi 2 hardware when asked for (needs lava-loihi)."""
    if hardware:
        if not hardware_available():
            raise DependencyError("--hardware needs Intel's lava-loihi (INRC members); it is not installed")
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg()
    from lava.magma.core.run_configs import Loihi2SimCfg

    return Loihi2SimCfg(select_tag="fixed_pt")


def run(net: FixedNetwork, inputs: np.ndarray, record_layers: bool = True, hardware: bool = False,
        build=None) -> dict:
    """Run ``inputs`` ``[T, B, n_inputs]`` on Lava: raw spike streams per hidden layer ``[n, steps]`` (with
    ``record_layers``), the readout voltage ``[n_out, steps]`` and timings. ``build(net, inputs, record_to)``
    makes the :class:`Graph` (default: spikecl's own, :func:`build_graph`)."""
    build = build or (lambda n, x, to: build_graph(dense_after_conv(n), x, to))
    with tempfile.TemporaryDirectory(prefix="spikecl-lava-spikes-") as folder:
        record_to = Path(folder) if record_layers else None
        started = time.perf_counter()
        graph = build(net, inputs, record_to)
        built = time.perf_counter()
        first, ran, readout_v = _execute(graph, hardware)
        spikes = [np.load(record_to / f"spikes_{k}.npy") for k in range(len(graph.sinks))] if record_to else []
    spikes = [from_lava_grid(s) if s.ndim == 4 else s for s in spikes]
    return {"spikes": spikes, "readout_v": readout_v, "build_s": built - started, "start_s": first - built,
            "run_s": ran - first, "steps": graph.steps}


def _execute(graph: Graph, hardware: bool) -> tuple[float, float, np.ndarray]:
    """Compile and run one step (timed apart), run the rest, read the readout voltage; always stop the runtime."""
    from lava.magma.core.run_conditions import RunSteps

    try:
        graph.source.run(condition=RunSteps(num_steps=1), run_cfg=run_config(hardware))
        first = time.perf_counter()
        if graph.steps > 1:
            graph.source.run(condition=RunSteps(num_steps=graph.steps - 1), run_cfg=run_config(hardware))
        ran = time.perf_counter()
        probed = graph.monitor.get_data()[graph.lif[-1].name]["v"]
        readout_v = np.rint(np.asarray(probed)).astype(np.int64).reshape(graph.steps, -1).T
    finally:
        graph.source.stop()
    return first, ran, readout_v


def _read_inputs(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            inputs = f["inputs"][()]
            labels = f["labels"][()] if "labels" in f else None
            heads = f["heads"][()] if "heads" in f else None
    except (OSError, KeyError) as exc:
        raise SpikeCLError(f"{path}: not an inputs file ({str(exc).splitlines()[0]})") from None
    return inputs, labels, heads


def write_run(path: Path, net: FixedNetwork, result: dict, labels, heads, overwrite: bool) -> dict:
    """Decode the readout, compute accuracy, write the run file atomically; returns the summary."""
    import h5py
    import lava

    n_samples = (result["steps"] - len(net.layers)) // net.num_steps
    last = len(net.layers) + np.arange(n_samples) * net.num_steps + net.num_steps - 1
    logits = fixed_point.logits(net, result["readout_v"][:, last].T, heads)
    predictions = np.argmax(logits, axis=1)
    accuracy = float(np.mean(predictions == labels)) if labels is not None else float("nan")
    summary = {"accuracy": accuracy, "build_s": result["build_s"], "start_s": result["start_s"],
               "run_s": result["run_s"], "steps": result["steps"],
               "ms_per_step": 1e3 * result["run_s"] / max(result["steps"] - 1, 1),
               "samples": n_samples, "backend": result.get("backend", "lava-sim"),
               "lava": getattr(lava, "__version__", "0.10.0")}

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(summary)
            for k, s in enumerate(result["spikes"]):
                f.create_dataset(f"spikes/{k}", data=s, compression="gzip")
            f.create_dataset("readout_v", data=result["readout_v"])
            f.create_dataset("logits", data=logits)
            f.create_dataset("predictions", data=predictions)

    atomic_write(path, write, overwrite=overwrite)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spikecl-lava", description=__doc__.splitlines()[0])
    parser.add_argument("network", type=Path, help="exported network file (spikecl export)")
    parser.add_argument("--inputs", type=Path, required=True, help="HDF5 with inputs [T, B, n], labels, heads")
    parser.add_argument("-o", "--output", type=Path, required=True, help="run file to write (HDF5)")
    parser.add_argument("--record-layers", action="store_true", help="store every hidden layer's spikes")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--hardware", action="store_true", help="run on Loihi 2 (needs lava-loihi)")
    mode.add_argument("--lava-dl", action="store_true", help="build the network with lava-dl's netx loader")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    args = parser.parse_args(argv)
    try:
        net = read_netx(args.network)
        inputs, labels, heads = _read_inputs(args.inputs)
        fixed_point.check_inputs(net, inputs)
        build = None
        if args.lava_dl:
            from spikecl_lava.lavadl import netx_builder

            build = netx_builder(args.network)
        result = run(net, inputs, record_layers=args.record_layers, hardware=args.hardware, build=build)
        result["backend"] = "loihi2" if args.hardware else "lava-dl-netx" if args.lava_dl else "lava-sim"
        summary = write_run(args.output, net, result, labels, heads, args.overwrite)
    except SpikeCLError as exc:
        print(f"spikecl-lava: error: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
