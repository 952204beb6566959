"""Run an exported spikecl network on Lava: fixed-point CPU simulation, or Loihi 2 when lava-loihi is installed.

Process graph (one ``Dense`` or ``Conv`` + ``LIFReset`` per layer; conv grids are Lava's (X, Y, C))::

    RingBuffer source ──► Dense ──► LIFReset ──► Dense ──► LIFReset ... ──► Dense ──► LIFReset (readout)
      [n_in, steps]                   │ SpikeFile (spikes, saved at the end)              │ Monitor (voltage)

Samples are presented back to back (T steps each). Every Dense delays by one step, so layer k (0-based) is
cleared by ``LIFReset`` at steps ``t % T == (k + 2) % T``, exactly when a new sample reaches it; the last sample
needs ``len(layers)`` extra steps to reach the readout. Logits are the readout voltage at each sample's last step
(see :mod:`spikecl.export.fixed_point`, whose ``simulate_stream`` is the bit-exact reference of this run).

Readout: ``every-step`` probes the readout voltage at every step with a host ``Monitor`` (CPU only; what ``deploy``
compares with the reference). ``sample-end`` reads it once per sample, at the end of each sample's last step,
with a reader process (lava-loihi's ``eio.state.Read`` on a board,
:class:`~spikecl_lava.processes.hostio.VoltageRead` on the CPU) into a host
:class:`~spikecl_lava.processes.hostio.SampleFile`; the reader sends one step later, so the run takes one more step.

Board graph (``--hardware``, or ``--cpu-adapters`` to build the same graph with CPU stand-ins and run it on the
fixed-point simulation): an embedded-I/O adapter between every host process and the network (source ──►
``PyToNxAdapter`` ──► network; each recorded layer ──► ``NxToPyAdapter`` ──► SpikeFile), the
sample-end readout, and binary input unless ``--allow-graded-input`` (graded host→chip spikes are untested on a board
and do not exist on Loihi 1).

    python -m spikecl_lava.runner net.h5 --inputs inputs.h5 -o run.h5 [--record-layers]
        [--readout every-step|sample-end] [--hardware | --cpu-adapters | --lava-dl] [--allow-graded-input]

``--lava-dl`` builds the same run from the file by lava-dl's own loader (``netx.hdf5.Network``, see
:mod:`spikecl_lava.lavadl`; needs lava-dl, e.g. ``.venv-lavadl``) instead of spikecl's process graph.

``inputs.h5``: ``inputs`` int [T, B, n_inputs] (B >= 1; an integer dtype: floats, booleans and strings are
refused), optional ``labels`` [B] and ``heads`` [B] (integers in 0..n_heads-1), all checked before the run, as
``-o`` is.
``run.h5``: ``spikes/<k>`` uint8 [n, steps] (with --record-layers), ``readout_v`` int64 [n_out, steps],
``readout_v`` only with the every-step readout; ``readout_sample_v`` int64 [B, n_out] (the readout voltage at each
sample's last step, both readouts), ``logits`` [B, n_outputs], ``predictions`` [B]; attrs ``accuracy``,
``build_s`` (process graph), ``start_s`` (compile and first step), ``run_s`` (the other steps), ``steps``,
``ms_per_step``, ``backend``, ``readout``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from spikecl.atomic import atomic_write, check_not_source, check_output
from spikecl.environment import check_same_source
from spikecl.errors import ConfigError, DependencyError, ShapeError, SpikeCLError
from spikecl.export import fixed_point
from spikecl.export.float_model import check_heads
from spikecl.export.netx import lava_dl_refusal, read_netx
from spikecl.export.quantize import FixedNetwork
from spikecl.remedies import command_line
from spikecl_lava.graph import Graph, from_lava_grid, to_lava_grid


READOUTS = ("every-step", "sample-end")


@dataclass(frozen=True)
class BoardIO:
    """Makers of the host<->chip adapters: ``spike_in(shape, num_message_bits)`` (and ``spike_in_conv`` for a
    conv input grid), ``spike_out(shape)``, ``read(shape, interval, offset)`` with ``connect_var``; each with
    ports ``inp``/``out`` (``read``: ``out``)."""

    spike_in: Callable
    spike_in_conv: Callable
    spike_out: Callable
    read: Callable
    name: str


def hardware_available() -> bool:
    """Whether Intel's proprietary lava-loihi (Loihi 2 compiler and runtime) is importable."""
    from lava.utils.loihi import is_installed

    return is_installed()  # Lava's own probe: lava.utils.loihi2_profiler ships with lava-loihi


def require_hardware() -> None:
    if not hardware_available():
        raise DependencyError("--hardware needs Intel's lava-loihi (INRC members); it is not installed")


def _bits(bits: int) -> dict:
    return {"num_message_bits": bits} if bits else {}


def board_io() -> BoardIO:
    """lava-loihi's ``lava.proc.embedded_io`` adapters (Loihi 2); a one-line DependencyError without lava-loihi."""
    try:
        from lava.proc import embedded_io as eio
    except ImportError:
        raise DependencyError("--hardware needs Intel's lava-loihi (INRC members) for lava.proc.embedded_io; it is "
                              "not installed") from None
    return BoardIO(spike_in=lambda shape, bits: eio.spike.PyToNxAdapter(shape=shape, **_bits(bits)),
                   spike_in_conv=lambda shape, bits: eio.spike.PyToN3ConvAdapter(shape=shape, **_bits(bits)),
                   spike_out=lambda shape: eio.spike.NxToPyAdapter(shape=shape),
                   read=lambda shape, interval, offset: eio.state.Read(shape=shape, interval=interval, offset=offset),
                   name="lava.proc.embedded_io")


def cpu_board_io() -> BoardIO:
    """CPU stand-ins with the adapters' ports (:mod:`spikecl_lava.processes.hostio`): the board graph on Lava's
    fixed-point simulation."""
    from spikecl_lava.processes.hostio import PassThrough, VoltageRead

    def passing(shape, bits=0):
        return PassThrough(shape=shape, num_message_bits=bits)

    return BoardIO(spike_in=passing, spike_in_conv=passing, spike_out=passing,
                   read=lambda shape, interval, offset: VoltageRead(shape=shape, interval=interval, offset=offset),
                   name="cpu-stand-ins")


def check_board_inputs(net: FixedNetwork, allow_graded: bool = False) -> None:
    """The board graph sends the input host→chip as spikes: binary (latency, poisson) unless ``allow_graded``."""
    if net.input_bits and not allow_graded:
        raise ConfigError(f"the {net.encoder!r} encoder sends graded {net.input_bits}-bit input spikes host->chip, "
                          "which Loihi 1 lacks and no board run has checked: export a latency or poisson network, "
                          "or pass --allow-graded-input")


def readout_offset(net: FixedNetwork) -> int:
    """Step phase of each sample's last step at the readout: ``(t - 1) % T`` for the 1-based Lava step t."""
    return (len(net.layers) - 1) % net.num_steps


def build_graph(net: FixedNetwork, inputs: np.ndarray, record_to: Path | None = None, readout: str = "every-step",
                io: BoardIO | None = None, reads_to: Path | None = None) -> Graph:
    """Processes and connections for ``inputs`` int ``[T, B, n_inputs]`` presented back to back; with
    ``record_to`` (a folder) every hidden layer's spikes are saved there as ``spikes_<k>.npy``. ``io``: the board
    graph, every host process behind an adapter (needs ``readout="sample-end"``); ``reads_to``: the folder of the
    sample-end readout's ``readout.npy`` (default ``record_to``, else a temporary folder)."""
    from lava.proc.io.source import RingBuffer as Source

    from spikecl_lava.processes.recorder import SpikeFile
    from lava.proc.lif.process import LIFReset
    from lava.proc.monitor.process import Monitor

    if readout not in READOUTS:
        raise ConfigError(f"--readout {readout!r}: choose one of {', '.join(READOUTS)}")
    if io is not None and readout != "sample-end":
        raise ConfigError("--readout every-step probes the readout with a host Monitor, which cannot read a chip "
                          "variable every step; use --readout sample-end (the default with --hardware)")
    data = fixed_point.source_data(net, inputs)
    steps = data.shape[1]
    if readout == "sample-end":
        data = np.concatenate([data, np.zeros((data.shape[0], 1), dtype=data.dtype)], axis=1)
    first = net.layers[0].conv
    source = Source(data=to_lava_grid(data, first.in_shape) if first else data.astype(np.int32))
    adapters = []
    port = source.s_out if io is None else _through(
        source.s_out, (io.spike_in_conv if first else io.spike_in)(tuple(source.s_out.shape),
                                                                    net.layers[0].input_bits), adapters)
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
            out = n.s_out if io is None else _through(n.s_out, io.spike_out(shape), adapters)
            out.connect(sink.a_in)
            sinks.append(sink)
    if readout == "every-step":
        monitor = Monitor()
        monitor.probe(lif[-1].v, steps)
        return Graph(source, synapses, lif, sinks, monitor, steps, adapters=tuple(adapters))
    folder = reads_to or record_to or Path(tempfile.mkdtemp(prefix="spikecl-lava-reads-"))
    reader = _sample_end_reader(net, lif[-1].v, steps, folder / "readout.npy", io)
    return Graph(source, synapses, lif, sinks, None, steps, folder / "readout.npy", tuple(adapters + [reader]))


def _through(port, adapter, adapters: list):
    """``port`` connected into a board ``adapter`` (kept in ``adapters``); returns the adapter's output port."""
    port.connect(adapter.inp)
    adapters.append(adapter)
    return adapter.out


def _sample_end_reader(net: FixedNetwork, voltage, steps: int, path: Path, io: BoardIO | None):
    """The process that reads the readout's ``voltage`` at each sample's last step into ``path`` (a host
    ``VoltageRead``, or the board's reader behind ``io``), connected to its ``SampleFile``."""
    from spikecl_lava.processes.hostio import SampleFile, VoltageRead

    shape, offset = tuple(voltage.shape), readout_offset(net)
    reader = (io.read if io is not None else
              lambda s, i, o: VoltageRead(shape=s, interval=i, offset=o))(shape, net.num_steps, offset)
    reader.connect_var(voltage)
    sink = SampleFile(shape=shape, interval=net.num_steps, offset=offset, steps=steps + 1, path=str(path))
    reader.out.connect(sink.a_in)
    return reader


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
        require_hardware()
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg()
    from lava.magma.core.run_configs import Loihi2SimCfg

    return Loihi2SimCfg(select_tag="fixed_pt")


def run(net: FixedNetwork, inputs: np.ndarray, record_layers: bool = True, hardware: bool = False,
        build=None, readout: str = "every-step", io: BoardIO | None = None) -> dict:
    """Run ``inputs`` ``[T, B, n_inputs]`` on Lava: raw spike streams per hidden layer ``[n, steps]`` (with
    ``record_layers``), the readout voltage ``[n_out, steps]`` (every-step readout, else None), the readout
    voltage at each sample's last step ``[B, n_out]`` and timings. ``build(net, inputs, record_to)`` makes the
    :class:`Graph` (default: spikecl's own, :func:`build_graph` with ``readout`` and the adapters ``io``)."""
    build = build or (lambda n, x, to: build_graph(dense_after_conv(n), x, to, readout, io, reads_to=reads))
    with tempfile.TemporaryDirectory(prefix="spikecl-lava-spikes-") as folder:
        record_to = Path(folder) if record_layers else None
        reads = Path(folder)
        started = time.perf_counter()
        graph = build(net, inputs, record_to)
        built = time.perf_counter()
        first, ran, readout_v = _execute(graph, hardware)
        spikes = [np.load(record_to / f"spikes_{k}.npy") for k in range(len(graph.sinks))] if record_to else []
        n_samples = np.asarray(inputs).shape[1]
        if graph.reads is not None:
            sample_v = np.load(graph.reads).reshape(-1, graph.lif[-1].v.shape[0])[-n_samples:].astype(np.int64)
        else:
            sample_v = readout_v[:, fixed_point.sample_end_columns(net, n_samples)].T
    spikes = [from_lava_grid(s) if s.ndim == 4 else s for s in spikes]
    return {"spikes": spikes, "readout_v": readout_v, "readout_sample_v": sample_v, "build_s": built - started,
            "start_s": first - built, "run_s": ran - first, "steps": graph.steps, "run_steps": graph.run_steps,
            "readout": "sample-end" if graph.reads is not None else "every-step"}


def _execute(graph: Graph, hardware: bool) -> tuple[float, float, np.ndarray | None]:
    """Compile and run one step (timed apart), run the rest, read the Monitor (if any); always stop the runtime."""
    from lava.magma.core.run_conditions import RunSteps

    try:
        graph.source.run(condition=RunSteps(num_steps=1), run_cfg=run_config(hardware))
        first = time.perf_counter()
        if graph.run_steps > 1:
            graph.source.run(condition=RunSteps(num_steps=graph.run_steps - 1), run_cfg=run_config(hardware))
        ran = time.perf_counter()
        readout_v = None
        if graph.monitor is not None:
            probed = graph.monitor.get_data()[graph.lif[-1].name]["v"]
            readout_v = np.rint(np.asarray(probed)).astype(np.int64).reshape(graph.steps, -1).T
    finally:
        graph.source.stop()
    return first, ran, readout_v


def _read_inputs(path: Path, net: FixedNetwork) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``inputs`` [T, B, n_inputs] (B >= 1), optional ``labels`` and ``heads`` [B] of ``path``, for ``net``: shapes and
    types checked before anything is read or run (one-line errors)."""
    import h5py

    def dataset(f, key: str):
        entry = f[key]
        if not isinstance(entry, h5py.Dataset):
            raise ShapeError(f"{path}: {key} is an HDF5 {type(entry).__name__.lower()}, not a dataset of integers")
        return entry

    if not path.exists():
        raise SpikeCLError(f"{path}: inputs file not found")
    if path.is_dir():
        raise SpikeCLError(f"{path}: a folder, not an inputs file")
    try:
        with h5py.File(path, "r") as f:
            data = dataset(f, "inputs")
            fixed_point.check_input_shape(net, data.shape)
            if data.dtype.kind not in "iu":
                raise ShapeError(f"{path}: inputs hold {data.dtype} values; expected integers (binary spikes or "
                                 "graded values)")
            n_samples = data.shape[1]
            if n_samples < 1:
                raise ShapeError(f"{path}: inputs hold no samples (B = 0)")
            vectors = {}
            for key in ("labels", "heads"):
                if key in f:
                    entry = dataset(f, key)
                    if entry.shape != (n_samples,) or entry.dtype.kind not in "iu":
                        raise ShapeError(f"{path}: {key} must be {n_samples} integers (one per sample), got "
                                         f"{entry.dtype} {entry.shape}")
                    vectors[key] = entry[()]
            inputs = data[()]
    except (OSError, KeyError) as exc:
        raise SpikeCLError(f"{path}: not an inputs file ({str(exc).splitlines()[0]})") from None
    heads, labels = vectors.get("heads"), vectors.get("labels")
    check_heads(heads, n_samples, net.n_heads)           # none given: only a one-head readout, before any run
    if labels is not None and labels.size and (labels.min() < 0 or labels.max() >= net.n_outputs):
        raise ShapeError(f"{path}: labels must be classes in 0..{net.n_outputs - 1} (the readout's outputs), got "
                         f"{labels.min()}..{labels.max()}")
    return inputs, labels, heads


def write_run(path: Path, net: FixedNetwork, result: dict, labels, heads, overwrite: bool) -> dict:
    """Decode the readout, compute accuracy, write the run file atomically; returns the summary."""
    import h5py
    import lava

    n_samples = (result["steps"] - len(net.layers)) // net.num_steps
    sample_v = result.get("readout_sample_v")
    if sample_v is None:
        sample_v = result["readout_v"][:, fixed_point.sample_end_columns(net, n_samples)].T
    logits = fixed_point.logits(net, sample_v, heads)
    predictions = np.argmax(logits, axis=1)
    accuracy = float(np.mean(predictions == labels)) if labels is not None else float("nan")
    run_steps = result.get("run_steps", result["steps"])
    summary = {"accuracy": accuracy, "build_s": result["build_s"], "start_s": result["start_s"],
               "run_s": result["run_s"], "steps": result["steps"], "run_steps": run_steps,
               "ms_per_step": 1e3 * result["run_s"] / max(run_steps - 1, 1),
               "samples": n_samples, "backend": result.get("backend", "lava-sim"),
               "readout": result.get("readout", "every-step"), "lava": getattr(lava, "__version__", "0.10.0")}

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(summary)
            for k, s in enumerate(result["spikes"]):
                f.create_dataset(f"spikes/{k}", data=s, compression="gzip")
            if result["readout_v"] is not None:
                f.create_dataset("readout_v", data=result["readout_v"])
            f.create_dataset("readout_sample_v", data=np.asarray(sample_v, dtype=np.int64))
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
    parser.add_argument("--readout", choices=READOUTS, default=None,
                        help="probe the readout voltage every step (Monitor, CPU only; default without a board "
                             "graph) or read it once at each sample's end (default with --hardware/--cpu-adapters)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--hardware", action="store_true", help="run on Loihi 2 (needs lava-loihi)")
    mode.add_argument("--cpu-adapters", action="store_true",
                      help="build the Loihi 2 graph with CPU stand-ins for the embedded-I/O adapters and run it on "
                           "the fixed-point simulation")
    mode.add_argument("--lava-dl", action="store_true", help="build the network with lava-dl's netx loader")
    parser.add_argument("--allow-graded-input", action="store_true",
                        help="send graded (direct-encoded) input host->chip on a board graph")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    args = parser.parse_args(argv)
    board = args.hardware or args.cpu_adapters
    readout = args.readout or ("sample-end" if board else "every-step")
    try:
        with command_line():                 # remedies name this command's flags
            check_same_source()              # this environment's spikecl is the caller's
            if args.hardware:
                require_hardware()
            if args.allow_graded_input and not board:
                raise ConfigError("--allow-graded-input applies to a board graph (--hardware or --cpu-adapters); the "
                                  "fixed-point simulation takes graded input without it")
            if args.lava_dl and readout != "every-step":
                raise ConfigError("--lava-dl reads the readout with a Monitor: --readout sample-end needs spikecl's "
                                  "graph")
            check_not_source(args.network, args.output, "network file", "the network with the run's results")
            check_not_source(args.inputs, args.output, "inputs file", "the inputs with the run's results")
            check_output(args.output, args.overwrite, flag="-o", what="run file", example="run.h5")
            net = read_netx(args.network)
            inputs, labels, heads = _read_inputs(args.inputs, net)
            fixed_point.check_inputs(net, inputs)
            build, io = None, None
            if board:
                check_board_inputs(net, args.allow_graded_input)
                io = board_io() if args.hardware else cpu_board_io()
            if args.lava_dl:
                from spikecl_lava.lavadl import netx_builder

                refusal = lava_dl_refusal(net)
                if refusal:
                    raise ConfigError(f"--lava-dl: {args.network} runs on spikecl's runner only: "
                                      f"{refusal.split(';')[0]}")

                build = netx_builder(args.network)
            result = run(net, inputs, record_layers=args.record_layers, hardware=args.hardware, build=build,
                         readout=readout, io=io)
            result["backend"] = ("loihi2" if args.hardware else "lava-sim-board-graph" if args.cpu_adapters
                                 else "lava-dl-netx" if args.lava_dl else "lava-sim")
            summary = write_run(args.output, net, result, labels, heads, args.overwrite)
    except SpikeCLError as exc:
        print(f"spikecl-lava: error: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
