"""Write a CA3 memory and an operation schedule as a learning-graph file for Lava (format:
:mod:`spikecl.export.ca3_graph`), with the torch stepper's run of the same schedule stored as the reference.

Example: ``write_ca3_graph("ca3.h5", [learn(0, [0, 1]), recall_by_cue(0)], n_cues=2, n_bits=4)``.

``spikecl export CA3.toml -o ca3.h5`` writes the recorded functional experiment with the file's ``[params]``
(:func:`write_functional_graph`).

The file holds the wiring expanded to matrices in the stepper's units (current per spike = weight x event factor,
delays already ``d - 1`` steps), so the Lava side needs no model code; ``params`` is kept as JSON for provenance.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from spikecl.atomic import atomic_write
from spikecl.errors import ConfigError
from spikecl.integrity import write_hdf5_image
from spikecl.memory.params import INPUTS, PLASTIC, POOL_POPULATIONS, POPULATIONS, CA3Params, as_params, check_sizes, \
    connections, population_sizes
from spikecl.memory.schedule import (DEFAULT_SPACING_MS, LEARN, RECALL_CUE, Operation, Schedule, as_schedule,
                                     check_readout, encode)

VERSION = 1


def expected_answers(schedule: Schedule, match_k: int = 0) -> list[tuple[int, ...]]:
    """The ideal memory's answer to every operation: a learn echoes its content, a recall by cue gives the cue's
    last learned content (() if none), a recall by content every cue sharing >= max(1, k) bits with the fragment."""
    stored: dict[int, set[int]] = {}
    out = []
    for op in schedule.operations:
        if op.kind == LEARN:
            stored[op.cue] = set(op.bits)
            out.append(op.bits)
        elif op.kind == RECALL_CUE:
            out.append(tuple(sorted(stored.get(op.cue, ()))))
        else:
            need = max(1, match_k)
            out.append(tuple(sorted(c for c, bits in stored.items() if len(bits & set(op.bits)) >= need)))
    return out


#: the longest synaptic delay a CA3 learning graph may hold, in steps: Lava's DelayDense and Loihi's per-synapse
#: delays (0-62); :mod:`spikecl.export.ca3_graph` refuses longer ones when it reads a graph
MAX_DELAY_STEPS = 62


def check_delays(params: CA3Params, n_cues: int, n_bits: int) -> None:
    """A one-line ConfigError when a static projection's delay or the STDP post lag of ``params`` exceeds
    :data:`MAX_DELAY_STEPS` (the file would be written, then refused by every reader)."""
    lags = [(f"{src} -> {tgt} delay", delay) for src, tgt, delay, _ in static_matrices(params, n_cues, n_bits)]
    for what, steps in lags + [("stdp_post_lag_ms", int(params.stdp_post_lag_ms))]:
        if steps > MAX_DELAY_STEPS:
            raise ConfigError(f"CA3Params: the {what} is {steps} steps; a Lava CA3 graph holds delays of at most "
                              f"{MAX_DELAY_STEPS} steps (Loihi's per-synapse delays)")


def static_matrices(params: CA3Params, n_cues: int, n_bits: int) -> list[tuple[str, str, int, np.ndarray]]:
    """Every static projection as (source, target, delay steps, weights [n_target, n_source]) in nA of current
    per spike (weight x sign x event factor), the values the torch stepper adds."""
    sizes = population_sizes(n_cues, n_bits, params)
    out = []
    for c in connections(params, n_bits):
        n_src, n_tgt = sizes[c.source], sizes[c.target]
        value = c.sign * c.weight_nA * params.syn_event_factor
        if c.pattern == "one_to_one":
            w = np.eye(n_tgt, n_src) * value
        else:
            w = np.full((n_tgt, n_src), value)
            if c.pattern == "all_but_self":
                np.fill_diagonal(w, 0.0)
        out.append((c.source, c.target, params.steps(c.delay_ms, f"{c.source} -> {c.target}"), w))
    return out


def _readout(schedule: Schedule, params: CA3Params) -> dict[str, np.ndarray]:
    """Every operation's readout steps for the delays of ``params`` (the steps ``decode`` reads)."""
    steps = check_readout(schedule, params)
    starts = np.asarray(schedule.starts_ms, dtype=np.int64)
    kinds = [op.kind for op in schedule.operations]
    return {"start_ms": starts,
            "cue_step": starts + [steps.cue(k) for k in kinds],
            "content_step": starts + [steps.content(k) for k in kinds],
            "forgotten_step": np.where([k == LEARN for k in kinds], starts + steps.recall, -1)}


def reference_run(params: CA3Params, n_cues: int, n_bits: int, cue: np.ndarray, content: np.ndarray) -> dict:
    """The torch stepper on the input rasters: spikes (population -> bool [T, N]), weights ([pre, post]), timing."""
    from spikecl.memory.torch_net import TorchCA3

    net = TorchCA3(params, n_cues, n_bits)
    started = time.perf_counter()
    spikes = net.run(cue, content)
    seconds = time.perf_counter() - started
    return {"spikes": {k: v[:, 0].numpy() for k, v in spikes.items()},
            "weights": {k: v[0] for k, v in net.weights().items()},
            "run_s": seconds, "ms_per_step": 1e3 * seconds / len(cue)}


def write_ca3_graph(path: str | Path, operations: Sequence[Operation] | Schedule, n_cues: int, n_bits: int,
                    params: CA3Params | None = None, spacing_ms: int | Sequence[int] = DEFAULT_SPACING_MS,
                    overwrite: bool = False) -> Path:
    """Lay ``operations`` out (or take a ready :class:`Schedule`), run them on the torch stepper and write the
    learning graph (network, input rasters, readout steps, ideal answers, reference run) to ``path``."""
    params = as_params(params)
    n_cues, n_bits = check_sizes(n_cues, n_bits, params)
    if params.read_only_recall:
        raise ConfigError("read_only_recall: the Lava CA3 graph has no plasticity gate; use the published rule")
    if params.steps(params.delay_plastic_ms) != 0:
        raise ConfigError("delay_plastic_ms: the Lava CA3 graph needs the published 1 ms")
    check_delays(params, n_cues, n_bits)
    schedule = as_schedule(operations, n_cues, n_bits, spacing_ms)
    readout = _readout(schedule, params)
    cue, content = encode(schedule, n_cues, n_bits, params.learn_hold_steps)
    reference = reference_run(params, n_cues, n_bits, cue, content)

    def build(f) -> None:
        f.attrs.update(learning_graph="ca3", version=VERSION, n_cues=n_cues, n_bits=n_bits,
                       steps=schedule.duration_ms, params=json.dumps(asdict(params)))
        _write_network(f.create_group("network"), params, n_cues, n_bits)
        f.create_dataset("inputs/INcue", data=cue)
        f.create_dataset("inputs/INcont", data=content)
        ro = f.create_group("readout")
        for key, value in readout.items():
            ro.create_dataset(key, data=value)
        ro.attrs.update(kinds=json.dumps([op.kind for op in schedule.operations]),
                        expected=json.dumps(expected_answers(schedule, params.match_k)))
        ref = f.create_group("reference")
        ref.attrs.update(backend="torch", run_s=reference["run_s"], ms_per_step=reference["ms_per_step"])
        for pop, raster in reference["spikes"].items():
            ref.create_dataset(f"spikes/{pop}", data=raster)
        for key, w in reference["weights"].items():
            ref.create_dataset(f"weights/{key}", data=w)

    return atomic_write(path, lambda tmp: write_hdf5_image(tmp, build, sealed_file=True), overwrite=overwrite)


def _write_network(net, params: CA3Params, n_cues: int, n_bits: int) -> None:
    """The ``/network`` group ``net`` of a CA3 learning graph: its attributes, populations (in order, inputs first)
    and static and plastic projections."""
    sizes = population_sizes(n_cues, n_bits, params)
    kinds = {**POPULATIONS, **(POOL_POPULATIONS if params.inhibition == "pool" else {})}
    plastic_post = {post: name for name, (_, post) in PLASTIC.items()}
    net.attrs.update(v_rest_mV=params.v_rest_mV, v_reset_mV=params.v_reset_mV, syn_decay=params.syn_decay,
                     refractory_steps=params.refractory_steps, post_lag_steps=int(params.stdp_post_lag_ms),
                     reset_below_threshold=params.v_reset_mV < min(params.v_thresh_mV, params.v_thresh_out_mV))
    for order, (name, size) in enumerate(sizes.items()):
        g = net.create_group(f"populations/{name}")
        g.attrs.update(order=order, size=size, input=name in INPUTS)
        if name in INPUTS:
            continue
        c_m, tau_m, v_thresh = params.cell(kinds[name][1])
        alpha = float(np.exp(-params.dt_ms / tau_m))
        scale = 0.0
        if name in plastic_post:
            gain = params.content_to_cue_gain if plastic_post[name] == "content_to_cue" else 1.0
            scale = params.syn_event_factor * gain
        g.attrs.update(alpha=alpha, gain=tau_m / c_m * (1.0 - alpha), v_thresh_mV=v_thresh,
                       plastic_scale=scale)
    for k, (src, tgt, delay, w) in enumerate(static_matrices(params, n_cues, n_bits)):
        g = net.create_group(f"static/{k:02d}")
        g.create_dataset("weights", data=w)
        g.attrs.update(source=src, target=tgt, delay_steps=delay)
    for name, (pre, post) in PLASTIC.items():
        g = net.create_group(f"plastic/{name}")
        g.create_dataset("w_init", data=np.full((sizes[pre], sizes[post]), params.w_plastic_init_nA))
        g.attrs.update(source=pre, target=post, a_plus_nA=params.a_plus_nA, a_minus_nA=params.a_minus_nA,
                       tau_plus_ms=params.tau_plus_ms, tau_minus_ms=params.tau_minus_ms,
                       w_min_nA=params.w_min_nA, w_max_nA=params.w_max_nA)


def write_functional_graph(path: str | Path, params: CA3Params | None = None, overwrite: bool = False) -> Path:
    """The recorded functional experiment (C = 5, M = 10, 9 operations) as a learning graph."""
    from spikecl.memory.recordings import RECORDED

    n_cues, n_bits, ops, spacing = RECORDED["exp1_functional"]
    return write_ca3_graph(path, ops, n_cues, n_bits, params, spacing, overwrite)
