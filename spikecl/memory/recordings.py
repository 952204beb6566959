"""The SpiNNaker recordings of the published CA3 memory (shipped in ``spikecl/memory/data/``) and the operation
schedules their input spikes encode.

Each file maps population -> {step (str): [neuron, ...]}; ``INcue``/``INcont`` are the inputs that define the
experiment, every other population is what a faithful model must reproduce spike for spike.
"""

from __future__ import annotations

import json
from pathlib import Path

from spikecl.errors import DataError
from spikecl.memory.schedule import Operation, events, learn, recall_by_content, recall_by_cue

DATA_DIR = Path(__file__).parent / "data"

#: the recording the functional part of a ``ca3`` experiment replays and is compared with, spike for spike
FUNCTIONAL = "exp1_functional"

#: name -> (C, M, operations, gap after each operation in ms). In exp1 the third learn's recorded input is
#: cue 3 -> {4, 5, 6} (the data README says {4, 5, 6, 8}; the spikes say otherwise).
RECORDED: dict[str, tuple[int, int, list[Operation], int | list[int]]] = {
    "exp1_functional": (5, 10, [learn(0, [0, 1, 8, 9]), learn(4, [1, 5, 6]), learn(3, [4, 5, 6]),
                                recall_by_cue(0), recall_by_content([6]), recall_by_content([0, 4]),
                                learn(3, [1, 3, 4, 8]), recall_by_cue(3), recall_by_content([6])], 10),
    "exp3_state_map": (16, 6, [learn(c, [b]) for c, b in enumerate([0, 5, 1, 3, 0, 3, 4, 5, 0, 5, 4, 3, 2, 4, 4, 3])]
                       + [recall_by_content([1, 2, 4]), recall_by_content([3]), recall_by_content([5]),
                          recall_by_content([0])], [7] * 16 + [6] * 4),
}


def load_recording(name: str, data_dir: str | Path | None = None) -> dict[str, set[tuple[int, int]]]:
    """``{population: {(step, neuron)}}`` of a recording (``name`` without ``.json``); one-line DataError if the
    file is missing or malformed."""
    path = Path(data_dir or DATA_DIR) / f"{name}.json"
    if not path.is_file():
        raise DataError(f"recording not found: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {pop: {(int(t), int(i)) for t, idx in steps.items() for i in idx} for pop, steps in raw.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{path} is not a spike recording ({exc})") from None


def functional_mismatch(rasters: dict) -> int:
    """How many spikes of the functional part's rasters ``{population: bool [T, N]}`` differ from the
    :data:`FUNCTIONAL` recording (missing plus extra, input populations aside)."""
    differ = mismatches(load_recording(FUNCTIONAL), {pop: events(raster) for pop, raster in rasters.items()})
    return int(sum(len(missing) + len(extra) for missing, extra in differ.values()))


def mismatch_text(mismatched: int) -> str:
    """The functional part's line on :func:`functional_mismatch`'s count (a spike one step off counts twice)."""
    return f"{mismatched} spikes differ from SpiNNaker (missing plus extra)"


def mismatches(recorded: dict[str, set], simulated_events: dict[str, set]) -> dict[str, tuple[list, list]]:
    """Per recorded non-input population whose spikes differ: (missing, extra) sorted ``(step, neuron)`` lists."""
    out = {}
    for pop, expected in sorted(recorded.items()):
        if pop.startswith("IN"):
            continue
        got = simulated_events.get(pop, set())
        if got != expected:
            out[pop] = (sorted(expected - got), sorted(got - expected))
    return out
