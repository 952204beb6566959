"""HLOP's lateral neurons learning on Lava's learning engine (``LearningDense``, floating-point CPU models).

Builds the circuit of :mod:`spikecl.export.hlop_graph` from a learning-graph file, presents each activity row for
3 time steps (:mod:`spikecl_lava.processes.oja_neurons`), and writes the learned weights::

    python -m spikecl_lava.learning.oja IN.h5 -o OUT.h5

``OUT.h5``: ``h`` [k, n] (the H synapse's weights), ``g`` [n, k] (the feedback synapse's); attributes ``steps``,
``build_s`` (process graph), ``start_s`` (compile and first step), ``run_s`` (the other steps), ``ms_per_step``
(run_s per step), ``backend``, ``equals_reference`` (h and g equal :func:`~spikecl.export.hlop_graph.reference_learn`
bit for bit, computed in this process: with another numpy build the dot products may round differently).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from spikecl.atomic import atomic_write
from spikecl.environment import check_same_source
from spikecl.errors import SpikeCLError
from spikecl.export.hlop_graph import (PERIOD, TRACE_TAU, HLOPGraph, check_learned, rate_split, read_graph,
                                       reference_learn, rule)
from spikecl.remedies import command_line
from spikecl_lava.learning import check_learning_output


def learning_rule(lr_log2: int):
    """Lava's three-factor rule object (a new one per synapse: LearningDense edits the rule it is given)."""
    from lava.magma.core.learning.learning_rule import Loihi3FLearningRule

    return Loihi3FLearningRule(dw=rule(lr_log2), x1_tau=TRACE_TAU, x2_tau=TRACE_TAU, t_epoch=1)


def build(graph: HLOPGraph):
    """The process graph for ``graph``: returns (processes to run from, H synapse, G synapse)."""
    from lava.magma.core.learning.constants import GradedSpikeCfg
    from lava.proc.dense.process import Dense, LearningDense
    from lava.proc.io.source import RingBuffer

    from spikecl_lava.processes.oja_neurons import LateralNeuron, ResidualNeuron

    s, n = graph.activity.shape
    k = graph.h_init.shape[0]
    a = rate_split(graph.lr_log2)[1]
    source = RingBuffer(data=np.repeat(graph.activity.T * 2.0 ** a, PERIOD, axis=1))      # [n, 3 S]
    res, lat = ResidualNeuron(shape=(n,)), LateralNeuron(shape=(k,))
    graded = dict(num_message_bits=24, graded_spike_cfg=GradedSpikeCfg.OVERWRITE)
    h = LearningDense(weights=graph.h_init.copy(), learning_rule=learning_rule(graph.lr_log2), **graded)
    g = LearningDense(weights=graph.h_init.T.copy(), learning_rule=learning_rule(graph.lr_log2), **graded)
    source.s_out.connect(res.a_in)
    res.s_out.connect(h.s_in)
    h.a_out.connect(lat.a_in)
    lat.y1.connect(h.s_in_y1)
    lat.s_out.connect(g.s_in)
    g.a_out.connect(res.a_fb)
    res.y1.connect(g.s_in_y1)
    if graph.h_old.shape[0]:                          # frozen lateral neurons: plain synapses, no learning
        old = LateralNeuron(shape=(graph.h_old.shape[0],))
        h_old = Dense(weights=graph.h_old.copy(), num_message_bits=24)
        g_old = Dense(weights=graph.h_old.T.copy(), num_message_bits=24)
        res.s_out.connect(h_old.s_in)
        h_old.a_out.connect(old.a_in)
        old.s_out.connect(g_old.s_in)
        g_old.a_out.connect(res.a_fb)
    return source, h, g


def learn(graph: HLOPGraph) -> dict:
    """Run the learning on Lava's floating-point simulation; returns ``h``, ``g`` and timings."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    started = time.perf_counter()
    source, h, g = build(graph)
    build_s = time.perf_counter() - started
    config = Loihi2SimCfg(select_tag="floating_pt")
    steps = graph.steps
    try:
        started = time.perf_counter()
        source.run(condition=RunSteps(num_steps=1), run_cfg=config)
        start_s = time.perf_counter() - started
        started = time.perf_counter()
        if steps > 1:
            source.run(condition=RunSteps(num_steps=steps - 1), run_cfg=config)
        run_s = time.perf_counter() - started
        out = {"h": h.weights.get().copy(), "g": g.weights.get().copy()}
    finally:
        source.stop()
    return {**out, "steps": steps, "build_s": build_s, "start_s": start_s, "run_s": run_s,
            "ms_per_step": 1000 * run_s / max(steps - 1, 1), "backend": "lava-sim floating_pt"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikecl_lava.learning.oja",
                                     description="Learn HLOP's lateral weights on Lava's learning engine.")
    parser.add_argument("graph", type=Path, help="hlop-lateral learning-graph file (spikecl.export.hlop_graph)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="file for the learned weights and timings")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    try:
        with command_line():                 # remedies name this command's flags
            check_same_source()              # this environment's spikecl is the caller's
            check_learning_output(args.graph, args.output, args.overwrite)
            graph = read_graph(args.graph)
            h_ref, g_ref = reference_learn(graph)               # first: a diverging rate is refused before Lava runs
            result = learn(graph)
            check_learned(graph, result["h"], result["g"])
            result["equals_reference"] = bool(np.array_equal(result["h"], h_ref) and np.array_equal(result["g"], g_ref))

            def write(tmp: Path) -> None:
                import h5py

                with h5py.File(tmp, "w") as f:
                    for key in ("h", "g"):
                        f.create_dataset(key, data=result[key])
                    f.attrs.update({key: value for key, value in result.items() if key not in ("h", "g")})

            atomic_write(args.output, write, overwrite=args.overwrite)
    except SpikeCLError as e:
        print(f"spikecl_lava.learning.oja: error: {e}", file=sys.stderr)
        return 2
    print(f"learned H {result['h'].shape} in {result['steps']} steps, {result['ms_per_step']:.2f} ms/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
