"""Run an exported spikecl network on Lava: fixed-point CPU simulation, or Loihi 2 when lava-loihi is installed.

Process graph (one ``Dense`` + ``LIFReset`` per layer)::

    RingBuffer source ──► Dense ──► LIFReset ──► Dense ──► LIFReset ... ──► Dense ──► LIFReset (readout)
      [n_in, steps]                   │ sink RingBuffer (spikes)                          │ Monitor (voltage)

Samples are presented back to back (T steps each). Every Dense delays by one step, so layer k (0-based) is
cleared by ``LIFReset`` at steps ``t % T == (k + 2) % T``, exactly when a new sample reaches it; the last sample
needs ``len(layers)`` extra steps to reach the readout. Logits are the readout voltage at each sample's last step
(see :mod:`spikecl.export.fixed_point`, whose ``simulate_stream`` is the bit-exact reference of this run).

    python -m spikecl_lava.runner net.h5 --inputs inputs.h5 -o run.h5 [--record-layers] [--hardware]

``inputs.h5``: ``inputs`` int [T, B, n_inputs], optional ``labels`` [B] and ``heads`` [B].
``run.h5``: ``spikes/<k>`` uint8 [n, steps] (with --record-layers), ``readout_v`` int64 [n_out, steps],
``logits`` [B, n_outputs], ``predictions`` [B]; attrs ``accuracy``, ``build_s`` (process graph), ``start_s``
(compile and first step), ``run_s`` (the other steps), ``steps``, ``ms_per_step``, ``backend``.
"""

from __future__ import annotations

import argparse
import sys
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
    dense: list
    lif: list
    sinks: list
    monitor: object
    steps: int


def hardware_available() -> bool:
    """Whether Intel's proprietary lava-loihi (Loihi 2 compiler and runtime) is importable."""
    from lava.utils.loihi import is_installed

    return is_installed()  # Lava's own probe: lava.utils.loihi2_profiler ships with lava-loihi


def build_graph(net: FixedNetwork, inputs: np.ndarray, record_layers: bool = True) -> Graph:
    """Processes and connections for ``inputs`` int ``[T, B, n_inputs]`` presented back to back."""
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIFReset
    from lava.proc.monitor.process import Monitor

    data = fixed_point.source_data(net, inputs)
    steps = data.shape[1]
    source = Source(data=data.astype(np.int32))
    port = source.s_out
    dense, lif, sinks = [], [], []
    for k, layer in enumerate(net.layers):
        d = Dense(weights=layer.weight.astype(np.int32), weight_exp=layer.weight_exp,
                  num_weight_bits=layer.num_weight_bits, num_message_bits=layer.input_bits, name=f"dense_{k}")
        n = LIFReset(shape=(layer.n_out,), du=layer.du, dv=layer.dv, vth=layer.vth,
                     bias_mant=layer.bias_mant.astype(np.int32), bias_exp=layer.bias_exp,
                     reset_interval=net.num_steps, reset_offset=fixed_point.reset_offset(net, k), name=f"lif_{k}")
        port.connect(d.s_in)
        d.a_out.connect(n.a_in)
        port = n.s_out
        dense.append(d)
        lif.append(n)
        if record_layers and not layer.readout:
            sink = Sink(shape=(layer.n_out,), buffer=steps)
            n.s_out.connect(sink.a_in)
            sinks.append(sink)
    monitor = Monitor()
    monitor.probe(lif[-1].v, steps)
    return Graph(source, dense, lif, sinks, monitor, steps)


def run_config(hardware: bool):
    """Lava's fixed-point CPU models, or Loihi 2 hardware when asked for (needs lava-loihi)."""
    if hardware:
        if not hardware_available():
            raise DependencyError("--hardware needs Intel's lava-loihi (INRC members); it is not installed")
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg()
    from lava.magma.core.run_configs import Loihi2SimCfg

    return Loihi2SimCfg(select_tag="fixed_pt")


def run(net: FixedNetwork, inputs: np.ndarray, record_layers: bool = True, hardware: bool = False) -> dict:
    """Run ``inputs`` ``[T, B, n_inputs]`` on Lava: raw streams, per-sample windows and timings."""
    from lava.magma.core.run_conditions import RunSteps

    started = time.perf_counter()
    graph = build_graph(net, inputs, record_layers)
    built = time.perf_counter()
    try:
        graph.source.run(condition=RunSteps(num_steps=1), run_cfg=run_config(hardware))  # compiles, starts
        first = time.perf_counter()
        if graph.steps > 1:
            graph.source.run(condition=RunSteps(num_steps=graph.steps - 1), run_cfg=run_config(hardware))
        ran = time.perf_counter()
        spikes = [np.rint(s.data.get()).astype(np.uint8) for s in graph.sinks]
        probed = graph.monitor.get_data()[graph.lif[-1].name]["v"]
        readout_v = np.rint(np.asarray(probed)).astype(np.int64).reshape(graph.steps, -1).T
    finally:
        graph.source.stop()
    return {"spikes": spikes, "readout_v": readout_v, "build_s": built - started, "start_s": first - built,
            "run_s": ran - first, "steps": graph.steps}


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
    parser.add_argument("--hardware", action="store_true", help="run on Loihi 2 (needs lava-loihi)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    args = parser.parse_args(argv)
    try:
        net = read_netx(args.network)
        inputs, labels, heads = _read_inputs(args.inputs)
        fixed_point.check_inputs(net, inputs)
        result = run(net, inputs, record_layers=args.record_layers, hardware=args.hardware)
        result["backend"] = "loihi2" if args.hardware else "lava-sim"
        summary = write_run(args.output, net, result, labels, heads, args.overwrite)
    except SpikeCLError as exc:
        print(f"spikecl-lava: error: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
