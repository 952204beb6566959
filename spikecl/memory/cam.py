"""``CA3Memory``: learn, recall by cue, recall by content, forget by relearning, on Brian2 or the torch stepper.

>>> from spikecl.memory import CA3Memory, learn, recall_by_cue, recall_by_content
>>> mem = CA3Memory(n_cues=5, n_bits=10, backend="torch")
>>> run = mem.run([learn(0, [0, 1, 8, 9]), recall_by_cue(0), recall_by_content([8])])
>>> [r.answer for r in run.results]
[(0, 1, 8, 9), (0, 1, 8, 9), (0,)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from spikecl.errors import ConfigError
from spikecl.memory.params import CA3Params, as_params, check_sizes
from spikecl.memory.schedule import (DEFAULT_SPACING_MS, LEARN, MIN_SPACING_MS, Operation, OperationResult, Schedule,
                                     as_schedule, check_readout, decode, encode, learn, make_schedule,
                                     plasticity_gate, recall_by_content, recall_by_cue, whole_ms)
from spikecl.memory.torch_net import check_fits, check_precision, footprint, torch_device

BACKENDS = ("brian2", "torch")


@dataclass
class MemoryRun:
    """One simulated schedule: ``results`` (decoded, one per operation), ``spikes`` (population -> bool raster
    ``[T, N]``, step 0 = ``start_ms``), and the plastic ``weights`` (nA) at its end."""

    schedule: Schedule
    start_ms: int
    results: list[OperationResult]
    spikes: dict[str, np.ndarray]
    weights: dict[str, np.ndarray] = field(default_factory=dict)


def check_device(device) -> str:
    """``device`` as torch names it ("cpu", "cuda", "cuda:1"); anything else (another kind of torch device
    included) is a one-line ConfigError."""
    return str(torch_device(device))


class CA3Memory:
    """A spiking content-addressable memory of ``n_cues`` one-hot cues and ``n_bits`` content bits.

    ``params``: :class:`CA3Params` (default: the published model). ``backend``: "brian2" (numpy target by
    default, ``target=``) or "torch" (``device=`` "cpu"/"cuda"). ``spacing_ms``: default gap between operations.
    State (membranes, plastic weights) carries over from one call to the next, as one continuous simulation.
    """

    def __init__(self, n_cues: int, n_bits: int, params: CA3Params | None = None, *, backend: str = "brian2",
                 device: str | None = None, target: str | None = None, spacing_ms: int = DEFAULT_SPACING_MS) -> None:
        self.params = as_params(params)
        self.n_cues, self.n_bits = check_sizes(n_cues, n_bits, self.params)
        if backend not in BACKENDS:
            raise ConfigError(f"backend {backend!r}: choose one of {BACKENDS}")
        if target is not None if backend == "torch" else device is not None:
            option, owner = ("target", "brian2") if backend == "torch" else ("device", "torch")
            raise ConfigError(f"{option}= applies to backend={owner!r}, not {backend!r}")
        device, target = "cpu" if device is None else device, "numpy" if target is None else target
        self.backend, self.spacing_ms = backend, spacing_ms
        if np.ndim(spacing_ms) != 0:
            raise ConfigError(f"spacing_ms: one gap (ms) for every run of the memory, got {spacing_ms!r}; a list of "
                              "gaps goes to run(operations, spacing_ms=[...])")
        if whole_ms(spacing_ms, "spacing_ms") < MIN_SPACING_MS[LEARN]:       # the longest minimum, a learn's
            raise ConfigError(f"spacing_ms {spacing_ms}: below the {MIN_SPACING_MS[LEARN]} ms a learn needs before "
                              "the next operation")
        make_schedule([learn(0, [0])], 1, 1, spacing_ms)  # the schedule's own checks
        if backend == "brian2":
            from spikecl.memory.brian2_net import Brian2CA3

            self._net = Brian2CA3(self.params, self.n_cues, self.n_bits, target=target)
        else:
            from spikecl.memory.torch_net import TorchCA3

            self._net = TorchCA3(self.params, self.n_cues, self.n_bits, batch_size=1, device=check_device(device))

    @property
    def t_ms(self) -> int:
        """Simulated time so far (ms)."""
        return self._net.t_ms

    def run(self, operations: Sequence[Operation] | Schedule, spacing_ms: int | Sequence[int] | None = None
            ) -> MemoryRun:
        """Run ``operations`` (or a ready :class:`Schedule`, whose own starts hold) as one simulation, ``spacing_ms``
        apart (one gap or one per operation; default the memory's), and decode every answer from the output layer."""
        schedule = as_schedule(operations, self.n_cues, self.n_bits,
                               self.spacing_ms if spacing_ms is None else spacing_ms)
        check_readout(schedule, self.params)
        cue, content = encode(schedule, self.n_cues, self.n_bits, self.params.learn_hold_steps)
        gate = plasticity_gate(schedule, self.params.read_only_recall)
        start = self.t_ms
        spikes = self._net.run(cue, content, gate)
        if self.backend == "torch":
            spikes = {k: v[:, 0].cpu().numpy() for k, v in spikes.items()}
        return MemoryRun(schedule, start, decode(schedule, spikes["OUTcue"], spikes["OUTcont"], self.params), spikes,
                         self.weights())

    def learn(self, cue: int, content) -> OperationResult:
        """Store ``content`` (bit indices or a boolean mask ``[M]``) under ``cue``, replacing what it held for recall
        by cue (its old bits keep about half their links to the cue: docs/ca3.md, Limits)."""
        return self.run([learn(cue, content, n_cues=self.n_cues, n_bits=self.n_bits)]).results[0]

    def recall_by_cue(self, cue: int) -> OperationResult:
        """The content stored under ``cue`` (``result.answer``: its bits)."""
        return self.run([recall_by_cue(cue, n_cues=self.n_cues)]).results[0]

    def recall_by_content(self, fragment) -> OperationResult:
        """Cues whose content shares a bit with ``fragment`` (``result.answer``: the cues)."""
        return self.run([recall_by_content(fragment, n_bits=self.n_bits)]).results[0]

    def weights(self) -> dict[str, np.ndarray]:
        """Stored weights in nA: ``cue_to_content [C, M]`` (recall by cue) and ``content_to_cue [M, C]``."""
        w = self._net.weights()
        return {k: v[0] for k, v in w.items()} if self.backend == "torch" else w


def run_batch(schedules: Sequence[Sequence[Operation] | Schedule], n_cues: int, n_bits: int,
              params: CA3Params | None = None, spacing_ms: int | Sequence[int] = DEFAULT_SPACING_MS,
              device: str = "cpu", workers: int = 1, pool=None, precision: str = "float64") -> list[MemoryRun]:
    """Run B independent memories, one per operation list (laid out ``spacing_ms`` apart) or ready
    :class:`Schedule`, together in the torch stepper, padded to the longest schedule. Returns one
    :class:`MemoryRun` per schedule (its spikes cut to its own duration).

    ``workers > 1`` (CPU): the memories are split into that many contiguous shares, each simulated by its own
    process with one thread (:mod:`spikecl.memory.parallel`; ``pool``: a ready process pool, e.g. from
    :func:`~spikecl.memory.parallel.memory_pool`, else one is started for the call). Every memory gets the same
    spikes and weights as in one process. ``precision``: "float64" (the reference) or "float32" (faster on a CPU;
    see :class:`~spikecl.memory.torch_net.TorchCA3`)."""
    from spikecl.memory.parallel import simulate

    params = as_params(params)
    n_cues, n_bits = check_sizes(n_cues, n_bits, params)
    if not schedules:
        raise ConfigError("run_batch needs at least one schedule")
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    check_precision(precision)
    device = check_device(device)
    if workers > 1 and not device.startswith("cpu"):
        raise ConfigError(f"workers = {workers} splits a batch over CPU processes; device {device!r} runs one batch")
    laid = [as_schedule(s, n_cues, n_bits, spacing_ms) for s in schedules]
    n_steps = max(s.duration_ms for s in laid)
    inputs = 3 * n_steps * len(laid) * (n_cues + n_bits)      # cue and content, as given and as the stepper's copies
    check_fits(footprint(params, n_cues, n_bits, len(laid), n_steps, 8 if precision == "float64" else 4) + inputs,
               device, f"{len(laid)} memor{'y' if len(laid) == 1 else 'ies'} of {n_steps:,} steps at C = {n_cues}, "
               f"M = {n_bits} (their inputs, spikes and plastic weights)",
               "fewer or shorter memories per batch, or fewer cues (C) or content bits (M)")
    cue = np.zeros((n_steps, len(laid), n_cues), dtype=bool)
    content = np.zeros((n_steps, len(laid), n_bits), dtype=bool)
    gate = np.zeros((n_steps, len(laid)))        # the padding past a memory's own schedule learns nothing
    for b, s in enumerate(laid):
        check_readout(s, params)
        c, x = encode(s, n_cues, n_bits, params.learn_hold_steps)
        cue[: s.duration_ms, b], content[: s.duration_ms, b] = c, x
        gate[: s.duration_ms, b] = plasticity_gate(s, params.read_only_recall)
    spikes, weights = simulate(params, n_cues, n_bits, cue, content, gate, device, workers, pool, precision)
    runs = []
    for b, s in enumerate(laid):
        own = {k: v[: s.duration_ms, b] for k, v in spikes.items()}
        runs.append(MemoryRun(s, 0, decode(s, own["OUTcue"], own["OUTcont"], params), own,
                              {k: v[b] for k, v in weights.items()}))
    return runs
