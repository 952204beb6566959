"""Run a CA3 learning graph (:mod:`spikecl.export.ca3_graph`) on Lava's floating-point simulation, learning on-line.

Process graph: one ``RingBuffer`` source per input population (INcue, INcont), one
:class:`~spikecl_lava.learning.ca3_cells.CA3Cells` per neuron population (or, with ``--cells lif``, Lava's
``LIFRefractory``: :mod:`spikecl_lava.learning.ca3_lif`), one ``Dense``/``DelayDense`` per static
projection (delays in steps: spikecl's ``d - 1``; Lava's delay 0 already lands on the next step, as a stepper
delivery with ``d - 1 = 0`` does), and one :class:`~spikecl_lava.learning.ca3_stdp.BoundedLearningDense` per plastic
projection (cue -> content, content -> cue) with the STDP rule of :mod:`spikecl_lava.learning.ca3_stdp`; the
post population's lagged spikes (``s_out_bap``, or a relay LIF's) feed its ``s_in_bap``::

    RingBuffer INcue ─► DelayDense ─► CA3Cells S1Cue ─► BoundedLearningDense ─► CA3Cells S1Cont ─► ...
                                                              ▲ s_in_bap ◄── s_out_bap (1 step late) ┘

    python -m spikecl_lava.learning.ca3 GRAPH.h5 -o OUT.h5 [--stock-engine] [--cells custom|lif]

``OUT.h5``: ``spikes/<population>`` bool [T, N], ``weights/<projection>`` [pre, post] (nA) after the last step;
attrs ``build_s`` (process graph), ``start_s`` (compile and first step), ``run_s`` (the other steps),
``ms_per_step``, ``steps``, ``backend``, ``stock_engine``, ``cells``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spikecl.atomic import atomic_write
from spikecl.environment import check_same_source
from spikecl.errors import ConfigError, SpikeCLError
from spikecl.export.ca3_graph import CA3Graph, read_ca3_graph
from spikecl.remedies import command_line
from spikecl_lava.learning import check_learning_output
from spikecl_lava.learning.ca3_cells import custom_population
from spikecl_lava.learning.ca3_fixed import WEIGHT_UNITS, fixed_models, fixed_plastic
from spikecl_lava.learning.ca3_lif import lif_population
from spikecl_lava.learning.ca3_stdp import BoundedLearningDense, stdp_rule

#: how a population is built: spikecl's cells (exact) or Lava's LIFRefractory
CELLS = {"custom": custom_population, "lif": lif_population}
#: the learning engine of the plastic projections: float (the port's rule and order) or fixed point (stock)
LEARNING = ("float", "fixed")


def build(graph: CA3Graph, folder: Path, split_update: bool = True, transmit_after_learning: bool = True,
          cells: str = "custom", learning: str = "float") -> dict:
    """The process graph of ``graph``; populations save their rasters and plastic projections their weights in
    ``folder``; ``split_update``, ``transmit_after_learning``: see
    :class:`~spikecl_lava.learning.ca3_stdp.BoundedLearningDense`; ``cells``: "custom"
    (:class:`~spikecl_lava.learning.ca3_cells.CA3Cells`) or "lif" (Lava's ``LIFRefractory``, see
    :mod:`spikecl_lava.learning.ca3_lif`); ``learning``: "float" (``BoundedLearningDense``) or "fixed" (Lava's
    fixed-point engine, :mod:`spikecl_lava.learning.ca3_fixed`; custom cells only). Returns ``{"sources",
    "populations", "static", "plastic"}`` (name -> process or :class:`~spikecl_lava.learning.ca3_cells.Population`)
    and ``"weight_scale"`` (plastic projection -> weight units per nA)."""
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.source import RingBuffer

    if cells not in CELLS or learning not in LEARNING or (cells, learning) == ("lif", "fixed"):
        raise ConfigError(f"cells {cells!r}, learning {learning!r}: cells one of {', '.join(CELLS)}, learning one "
                          f"of {', '.join(LEARNING)} (fixed-point learning with the custom cells only)")
    net, T = graph.network, graph.steps
    post_of = {post: name for name, (_, post, _, _) in graph.plastic.items()}
    unit = {post: rule["w_max_nA"] / WEIGHT_UNITS if learning == "fixed" else 1.0
            for _, post, rule, _ in graph.plastic.values()}
    sources = {p: RingBuffer(data=graph.inputs[p].T.astype(float)) for p in ("INcue", "INcont")}
    attrs = {name: {**a, "plastic_scale": a["plastic_scale"] * unit[name]} if name in unit else a
             for name, a in graph.populations.items()}
    pops = {name: CELLS[cells](name, attrs[name], net, int(net["post_lag_steps"]) if name in post_of else 0, T,
                               str(folder / f"{name}.npy"))
            for name in graph.cells()}
    out = {**{p: src.s_out for p, src in sources.items()}, **{p: pop.s_out for p, pop in pops.items()}}
    static = []
    for src, tgt, delay, weights in graph.static:
        w = weights * pops[tgt].current_scale
        conn = Dense(weights=w) if delay == 0 else DelayDense(weights=w, delays=np.where(w != 0, delay, 0))
        out[src].connect(conn.s_in)
        conn.a_out.connect(pops[tgt].a_in)
        static.append(conn)
    plastic, weight_scale = {}, {}
    for name, (src, tgt, rule, w_init) in graph.plastic.items():
        if learning == "fixed":
            conn, nA = fixed_plastic(w_init.T, rule, name)
            weight_scale[name] = 1.0 / nA
        else:
            conn = _float_plastic(name, rule, w_init, pops[tgt].plastic_scale, T, folder, split_update,
                                  transmit_after_learning)
            weight_scale[name] = pops[tgt].plastic_scale
        out[src].connect(conn.s_in)
        conn.a_out.connect(pops[tgt].a_plastic)
        pops[tgt].s_bap.connect(conn.s_in_bap)
        plastic[name] = conn
    return {"sources": sources, "populations": pops, "static": static, "plastic": plastic,
            "weight_scale": weight_scale}


def _float_plastic(name: str, rule: dict, w_init: np.ndarray, g: float, steps: int, folder: Path,
                   split_update: bool, transmit_after_learning: bool):
    """A plastic projection on the float engine, weights and amplitudes times ``g``; saves its weights."""
    return BoundedLearningDense(
        weights=w_init.T * g, w_min=rule["w_min_nA"] * g, w_max=rule["w_max_nA"] * g, steps=steps,
        learning_rule=stdp_rule(rule["a_plus_nA"] * g, rule["a_minus_nA"] * g, rule["tau_plus_ms"],
                                rule["tau_minus_ms"]),
        save=str(folder / f"w_{name}.npy"), split_update=split_update,
        transmit_after_learning=transmit_after_learning, name=name)


def run(graph: CA3Graph, split_update: bool = True, transmit_after_learning: bool = True,
        cells: str = "custom", learning: str = "float") -> dict:
    """Build and run ``graph`` for its ``steps`` (flags: see :func:`build`); rasters (population -> bool [T, N]),
    final weights ([pre, post], nA) and timings."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    with tempfile.TemporaryDirectory(prefix="spikecl-ca3-lava-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        procs = build(graph, folder, split_update, transmit_after_learning, cells, learning)
        build_s = time.perf_counter() - started
        source = procs["sources"]["INcue"]
        config = Loihi2SimCfg(select_tag="floating_pt",
                              exception_proc_model_map=fixed_models() if learning == "fixed" else {})
        started = time.perf_counter()
        source.run(condition=RunSteps(num_steps=1), run_cfg=config)
        start_s = time.perf_counter() - started
        started = time.perf_counter()
        if graph.steps > 1:
            source.run(condition=RunSteps(num_steps=graph.steps - 1), run_cfg=config)
        run_s = time.perf_counter() - started
        held = {name: conn.weights.get() for name, conn in procs["plastic"].items()} if learning == "fixed" else {}
        source.stop()
        spikes = {name: pop.read() for name, pop in procs["populations"].items()}
        weights = {name: (held[name] if name in held else np.load(folder / f"w_{name}.npy")).T / g
                   for name, g in procs["weight_scale"].items()}
    return {"spikes": spikes, "weights": weights, "build_s": build_s, "start_s": start_s, "run_s": run_s,
            "ms_per_step": 1e3 * run_s / max(1, graph.steps - 1), "steps": graph.steps}


def write_run(path: Path, result: dict, stock_engine: bool, cells: str, learning: str, overwrite: bool = False) -> None:
    """The run file: spikes, final weights and timings, written atomically (an existing file only with
    ``overwrite``)."""
    import h5py

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for name, raster in result["spikes"].items():
                f.create_dataset(f"spikes/{name}", data=raster)
            for name, w in result["weights"].items():
                f.create_dataset(f"weights/{name}", data=w)
            f.attrs.update({k: result[k] for k in ("build_s", "start_s", "run_s", "ms_per_step", "steps")})
            f.attrs.update(backend=f"lava-sim floating_pt, {learning}-point learning", stock_engine=stock_engine,
                           cells=cells, learning=learning)

    atomic_write(path, write, overwrite=overwrite)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikecl_lava.learning.ca3", description=__doc__.split("\n")[0])
    parser.add_argument("graph", type=Path, help="CA3 learning graph (HDF5)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="run file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    parser.add_argument("--stock-engine", action="store_true",
                        help="Lava's stock learning order: one saturated update per step, weights sent before learning")
    parser.add_argument("--cells", choices=tuple(CELLS), default="custom",
                        help="custom: spikecl's cells (exact); lif: Lava's LIFRefractory (gains folded into weights)")
    parser.add_argument("--learning", choices=LEARNING, default="float",
                        help="float: the port's rule and order (exact); fixed: Lava's fixed-point engine, stock order")
    args = parser.parse_args(argv)
    try:
        with command_line():                 # remedies name this command's flags
            check_same_source()              # this environment's spikecl is the caller's
            check_learning_output(args.graph, args.output, args.overwrite)
            result = run(read_ca3_graph(args.graph), not args.stock_engine, not args.stock_engine, args.cells,
                         args.learning)
            write_run(args.output, result, args.stock_engine, args.cells, args.learning, args.overwrite)
    except SpikeCLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result['steps']} steps, {result['ms_per_step']:.2f} ms/step (build {result['build_s']:.2f} s, "
          f"compile + first step {result['start_s']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
