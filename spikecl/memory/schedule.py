"""Operations on the CA3 memory, their timing, the input spikes that encode them and the decoding of the output layer.

An operation starting at step ``t`` (1 ms steps) is encoded as input spikes and read on the output layer at steps
after ``t`` that follow from the delays (:func:`readout`; the published timing):

===============  ================================================  =============================================
operation        input spikes                                      output layer
===============  ================================================  =============================================
learn (c, X)     cue c and bits X at t, t+1, t+2                   c and X at t+5 (and t+7); bits of c's previous
                                                                   content that X lacks (forgotten) at t+6
recall by cue c  cue c at t                                        c at t+5, its content at t+6
recall by F      bits F at t                                       F at t+5, every cue sharing a bit with F at t+6
===============  ================================================  =============================================

Consecutive operations must start at least 7 ms after a learn and 6 ms after a recall (documented minimums). Longer
delays (``CA3Params``) move the answers later: the echo of the input (5 above) by ``delay_input_ms +
delay_s1_merge_ms + delay_output_ms`` and what a plastic projection recalls (6 above) by ``delay_plastic_ms`` more.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from spikecl.errors import ConfigError, ShapeError
from spikecl.memory.params import CA3Params, as_params, check_spikes

LEARN, RECALL_CUE, RECALL_CONTENT = "learn", "recall_cue", "recall_content"
KINDS = (LEARN, RECALL_CUE, RECALL_CONTENT)
#: shortest allowed gap (ms) from an operation's start to the next one's, by kind of the earlier operation
MIN_SPACING_MS = {LEARN: 7, RECALL_CUE: 6, RECALL_CONTENT: 6}
DEFAULT_SPACING_MS = 14
#: steps after an operation's start at which the output layer answers with the published delays (other delays:
#: :func:`readout`)
CUE_OUT_STEP = {LEARN: 5, RECALL_CUE: 5, RECALL_CONTENT: 6}
CONTENT_OUT_STEP = {LEARN: 5, RECALL_CUE: 6, RECALL_CONTENT: 5}
FORGOTTEN_STEP = 6
#: the longest schedule one simulation runs (ms): its input and recorded rasters are [T, N] arrays
MAX_DURATION_MS = 10_000_000
TAIL_STEPS = 8


@dataclass(frozen=True)
class Operation:
    """One memory operation. ``cue``: cue index (learn, recall by cue); ``bits``: sorted content bit indices
    (learn: the content, recall by content: the fragment)."""

    kind: str
    cue: int | None = None
    bits: tuple[int, ...] = ()
    mask_width: int | None = field(default=None, compare=False, repr=False)   # M of a boolean mask given as content

    def __str__(self) -> str:
        bits = "{" + ", ".join(map(str, self.bits)) + "}"
        if self.kind == LEARN:
            return f"learn cue {self.cue} -> {bits}"
        if self.kind == RECALL_CUE:
            return f"recall by cue {self.cue}"
        return f"recall by content {bits}"


def _as_bits(content, n_bits: int | None, what: str) -> tuple[int, ...]:
    """Bit indices from a boolean mask ``[M]`` or an iterable of indices; validates width, range and emptiness."""
    if isinstance(content, np.ndarray) and content.dtype == bool:
        if content.ndim != 1 or (n_bits is not None and content.shape[0] != n_bits):
            raise ShapeError(f"{what}: boolean mask has shape {content.shape}; expected ({n_bits},)")
        bits = np.flatnonzero(content).tolist()
    else:
        try:
            values = list(content)
        except TypeError:
            raise ShapeError(f"{what}: expected bit indices or a boolean mask, got {content!r}") from None
        bits = []
        for b in values:
            if isinstance(b, (bool, np.bool_)) or not isinstance(b, (int, np.integer)):
                raise ShapeError(f"{what}: bit indices must be integers, got {b!r} (pass a boolean mask as a numpy "
                                 f"bool array)")
            bits.append(int(b))
    if not bits:
        raise ConfigError(f"{what}: empty; at least one content bit is needed")
    if len(set(bits)) != len(bits):
        mask = " (a mask of zeros and ones? pass it as a bool array)" if set(bits) <= {0, 1} else ""
        raise ConfigError(f"{what}: repeated bit indices {sorted(bits)}{mask}")
    if n_bits is not None:
        bad = [b for b in bits if not 0 <= b < n_bits]
        if bad:
            raise ConfigError(f"{what}: bit {bad[0]} is out of range [0, {n_bits})")
    return tuple(sorted(bits))


def _check_cue(cue, n_cues: int | None) -> int:
    if isinstance(cue, (bool, np.bool_)) or not isinstance(cue, (int, np.integer)):
        raise ConfigError(f"cue: expected an integer index, got {cue!r}")
    if n_cues is not None and not 0 <= int(cue) < n_cues:
        raise ConfigError(f"cue {int(cue)} is out of range [0, {n_cues})")
    return int(cue)


def _mask_width(content) -> int | None:
    """The width of a boolean mask ``[M]`` (checked against the memory's M when it runs), else None."""
    is_mask = isinstance(content, np.ndarray) and content.dtype == bool and content.ndim == 1
    return int(content.shape[0]) if is_mask else None


def learn(cue: int, content, *, n_cues: int | None = None, n_bits: int | None = None) -> Operation:
    """Store ``content`` (bit indices or a boolean mask ``[M]``) under ``cue``; relearning a cue replaces it."""
    return Operation(LEARN, _check_cue(cue, n_cues), _as_bits(content, n_bits, "content"), _mask_width(content))


def recall_by_cue(cue: int, *, n_cues: int | None = None) -> Operation:
    """Ask for the content stored under ``cue``."""
    return Operation(RECALL_CUE, _check_cue(cue, n_cues))


def recall_by_content(fragment, *, n_bits: int | None = None) -> Operation:
    """Ask which cues hold content sharing bits with ``fragment`` (bit indices or a boolean mask ``[M]``)."""
    return Operation(RECALL_CONTENT, None, _as_bits(fragment, n_bits, "fragment"), _mask_width(fragment))


def check_operation(op: Operation, n_cues: int, n_bits: int) -> Operation:
    """Validate ``op`` for a memory of C = ``n_cues`` cues and M = ``n_bits`` bits (one-line errors)."""
    if not isinstance(op, Operation):
        raise ConfigError(f"expected an Operation (learn, recall_by_cue, recall_by_content), got {op!r}")
    if op.mask_width is not None and op.mask_width != n_bits:
        what = "content" if op.kind == LEARN else "fragment"
        raise ShapeError(f"{what}: boolean mask has shape ({op.mask_width},); expected ({n_bits},)")
    if op.kind == LEARN:
        return learn(op.cue, op.bits, n_cues=n_cues, n_bits=n_bits)
    if op.kind == RECALL_CUE:
        if op.bits:
            raise ConfigError(f"{op!r}: a recall by cue takes no bits (recall_by_cue(cue))")
        return recall_by_cue(op.cue, n_cues=n_cues)
    if op.kind == RECALL_CONTENT:
        if op.cue is not None:
            raise ConfigError(f"{op!r}: a recall by content takes no cue (recall_by_content(bits))")
        return recall_by_content(op.bits, n_bits=n_bits)
    raise ConfigError(f"operation kind {op.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class Schedule:
    """Operations with their start steps (ms, relative to the schedule's start) and the total duration (ms)."""

    operations: tuple[Operation, ...]
    starts_ms: tuple[int, ...]
    duration_ms: int

    def __len__(self) -> int:
        return len(self.operations)


def whole_ms(value, what: str) -> int:
    """``value`` as a whole number of ms; a one-line ConfigError naming ``what`` otherwise."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)                            # (a huge int is no float: np.isfinite would refuse it)
    if not isinstance(value, (float, np.floating)) or not np.isfinite(value) or float(value) != int(value):
        raise ConfigError(f"{what}: expected a whole number of ms, got {value!r}")
    return int(value)


def as_schedule(operations: Sequence[Operation] | Schedule, n_cues: int, n_bits: int,
                spacing_ms: float | Sequence[float] = DEFAULT_SPACING_MS) -> Schedule:
    """A ready :class:`Schedule`, its operations checked for a memory of ``n_cues`` cues and ``n_bits`` bits, or
    :func:`make_schedule` of an operation list."""
    if not isinstance(operations, Schedule):
        return make_schedule(operations, n_cues, n_bits, spacing_ms)
    ops, starts = operations.operations, operations.starts_ms
    for name, value in (("operations", ops), ("starts_ms", starts)):
        if not isinstance(value, (tuple, list, np.ndarray)) or np.ndim(value) != 1:
            raise ConfigError(f"Schedule.{name}: expected a sequence, one per operation, got {value!r}")
    ops = tuple(check_operation(op, n_cues, n_bits) for op in ops)
    if not ops:
        raise ConfigError("a schedule needs at least one operation")
    if len(starts) != len(ops):
        raise ConfigError(f"Schedule: {len(starts)} starts_ms for {len(ops)} operations; give one start per "
                          "operation (make_schedule lays them out)")
    starts = [whole_ms(t, f"Schedule.starts_ms[{i}]") for i, t in enumerate(starts)]
    if starts[0] < 0:
        raise ConfigError(f"Schedule.starts_ms: the first operation starts at {starts[0]} ms, before the schedule")
    duration = whole_ms(operations.duration_ms, "Schedule.duration_ms")
    gaps = [end - start for start, end in zip(starts, [*starts[1:], duration])]
    _check_gaps(ops, gaps)
    if gaps[-1] < TAIL_STEPS:
        raise ConfigError(f"Schedule.duration_ms: the schedule ends {gaps[-1]} ms after its last operation starts; "
                          f"at least {TAIL_STEPS} ms, so that every answer is simulated")
    _check_duration(duration, "Schedule.duration_ms")
    return Schedule(ops, tuple(starts), duration)               # whole ms as ints (60.0 -> 60)


def _check_gaps(ops: Sequence[Operation], gaps: Sequence[int]) -> None:
    """Each operation followed by the next one (the last: by the schedule's end) ``gaps[i]`` ms after its start,
    at least its minimum (7 ms after a learn, 6 after a recall); else a one-line ConfigError."""
    for i, (op, gap) in enumerate(zip(ops, gaps)):
        if gap < MIN_SPACING_MS[op.kind]:
            raise ConfigError(f"operation {i} ({op}) is followed after {gap} ms; the minimum after a "
                              f"{op.kind.replace('_', ' by ')} is {MIN_SPACING_MS[op.kind]} ms")


def _check_duration(duration: int, what: str) -> None:
    if duration > MAX_DURATION_MS:
        shown = f"{duration}" if duration < 10 ** 40 else f"{float(duration):.3g}"     # 1e300 ms: not 300 digits
        raise ConfigError(f"{what}: the schedule would last {shown} ms, more than the {MAX_DURATION_MS} ms "
                          "(about 2.8 hours of model time) one simulation holds")


def make_schedule(operations: Sequence[Operation], n_cues: int, n_bits: int,
                  spacing_ms: float | Sequence[float] = DEFAULT_SPACING_MS) -> Schedule:
    """Lay ``operations`` out in time. ``spacing_ms``: one gap for all, or one gap per operation (the gap after
    operation i; the last one sets the tail, at least ``TAIL_STEPS`` = 8 ms so every published answer is simulated;
    :func:`check_readout` checks other delays against it).

    Raises :class:`ConfigError` for an invalid operation (or a single one not in a list) or a gap below the minimum
    (7 ms after a learn, 6 ms after a recall)."""
    if isinstance(operations, Operation) or not isinstance(operations, Iterable):
        raise ConfigError(f"operations: expected a list of operations (learn, recall_by_cue, recall_by_content), got "
                          f"{operations!r}" + ("; wrap it in a list" if isinstance(operations, Operation) else ""))
    ops = tuple(check_operation(op, n_cues, n_bits) for op in operations)
    if not ops:
        raise ConfigError("a schedule needs at least one operation")
    if np.ndim(spacing_ms) == 0:
        gaps = [spacing_ms] * len(ops)
    else:
        gaps = list(spacing_ms)
        if len(gaps) != len(ops):
            raise ConfigError(f"spacing_ms: got {len(gaps)} gaps for {len(ops)} operations")
    gaps = [whole_ms(g, "spacing_ms") for g in gaps]
    _check_gaps(ops, gaps)
    starts = [0, *itertools.accumulate(gaps[:-1])]
    duration = starts[-1] + max(gaps[-1], TAIL_STEPS)
    _check_duration(duration, "spacing_ms")
    return Schedule(ops, tuple(starts), duration)


def encode(schedule: Schedule, n_cues: int, n_bits: int, hold_steps: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Input spikes of a schedule (its operations checked for ``n_cues`` cues and ``n_bits`` bits): ``(cue [T, C],
    content [T, M])`` booleans, T = ``schedule.duration_ms``; a learn holds its input ``hold_steps`` ms (an integer
    ≥ 1), which must end before the next operation (else a one-line ConfigError)."""
    if isinstance(hold_steps, bool) or not isinstance(hold_steps, (int, np.integer)) or hold_steps < 1:
        raise ConfigError(f"hold_steps must be an integer >= 1 (ms a learn holds its input), got {hold_steps!r}")
    schedule = as_schedule(schedule, n_cues, n_bits)
    cue = np.zeros((schedule.duration_ms, n_cues), dtype=bool)
    content = np.zeros((schedule.duration_ms, n_bits), dtype=bool)
    ends = (*schedule.starts_ms[1:], schedule.duration_ms)
    for i, (op, t, end) in enumerate(zip(schedule.operations, schedule.starts_ms, ends)):
        if op.kind == LEARN and t + hold_steps > end:
            raise ConfigError(f"CA3Params.learn_hold_steps: operation {i} ({op}) holds its input {hold_steps} ms, "
                              f"longer than the {end - t} ms to the next operation")
        steps = slice(t, t + (hold_steps if op.kind == LEARN else 1))
        if op.cue is not None:
            cue[steps, op.cue] = True
        content[steps, list(op.bits)] = True
    return cue, content


def plasticity_gate(schedule: Schedule, read_only_recall: bool) -> np.ndarray:
    """``[T]`` float: 1 where the plastic weights may change, 0 from a recall's start to the next operation's
    start when ``read_only_recall``."""
    gate = np.ones(schedule.duration_ms)
    if read_only_recall:
        ends = list(schedule.starts_ms[1:]) + [schedule.duration_ms]
        for op, t, end in zip(schedule.operations, schedule.starts_ms, ends):
            if op.kind != LEARN:
                gate[t:end] = 0.0
    return gate


@dataclass(frozen=True)
class OperationResult:
    """What the output layer said about one operation. ``cues``/``bits``: output cues and content bits at the
    documented steps; ``forgotten``: (learn only) bits echoed at t+6 (``Readout.recall``), the previous content the
    new one lacks; ``start_ms``: the operation's start within the schedule it ran in (from 0 at each ``run`` call;
    the memory's clock at that call's start is :attr:`MemoryRun.start_ms`)."""

    operation: Operation
    start_ms: int
    cues: tuple[int, ...]
    bits: tuple[int, ...]
    forgotten: tuple[int, ...] = ()

    @property
    def answer(self) -> tuple[int, ...]:
        """The recalled part: the content for a recall by cue, the cues for a recall by content, else the bits."""
        return self.cues if self.operation.kind == RECALL_CONTENT else self.bits


@dataclass(frozen=True)
class Readout:
    """Steps after an operation's start at which the output layer answers. ``echo``: the input itself (a learn's
    cue and content, a recall's cue or fragment); ``recall``: what a plastic projection recalls (a recall by cue's
    content, a recall by content's cues, a learn's forgotten bits), the last step an operation is read at."""

    echo: int = 5
    recall: int = 6

    def cue(self, kind: str) -> int:
        """Step of the cue output of an operation of ``kind``."""
        return self.recall if kind == RECALL_CONTENT else self.echo

    def content(self, kind: str) -> int:
        """Step of the content output of an operation of ``kind``."""
        return self.recall if kind == RECALL_CUE else self.echo


def readout(params: CA3Params | None = None) -> Readout:
    """The readout steps of ``params`` (default: the published model, 5 and 6)."""
    params = as_params(params)
    return Readout(params.echo_steps, params.recall_steps)


def check_readout(schedule: Schedule, params: CA3Params | None = None) -> Readout:
    """The readout steps of ``params`` for ``schedule``; a one-line ConfigError where an operation would be read
    after the next operation's first output (its echo) or after the schedule's end (delays too long for the
    spacing)."""
    steps = readout(params)
    ends = [*(t + steps.echo for t in schedule.starts_ms[1:]), schedule.duration_ms]
    for i, (op, t, end) in enumerate(zip(schedule.operations, schedule.starts_ms, ends)):
        if t + steps.recall >= end:
            where = "the next operation's first output" if i + 1 < len(schedule) else "the end of the schedule"
            raise ConfigError(f"CA3Params delays: operation {i} ({op}) is answered {steps.recall} ms after its start "
                              f"(delay_input_ms + delay_s1_merge_ms + delay_plastic_ms + delay_output_ms), not before "
                              f"{where} {end - t} ms after it; lengthen spacing_ms or shorten the delays")
    return steps


def _active(raster: np.ndarray, step: int) -> tuple[int, ...]:
    return tuple(np.flatnonzero(raster[step]).tolist())


def _checked_raster(raster, name: str, schedule: Schedule, width: int) -> np.ndarray:
    """``raster`` as a 2-D array of at least the schedule's steps and ``width`` neurons; a one-line ShapeError
    otherwise (a batch's ``[T, B, N]`` raster, one cut short, or the cue and content rasters swapped)."""
    raster = check_spikes(np.asarray(raster), name)            # NaN or 0.5 read as a spike: a wrong answer
    if raster.ndim != 2 or len(raster) < schedule.duration_ms or raster.shape[1] < width:
        raise ShapeError(f"{name} has shape {raster.shape}; expected [T >= {schedule.duration_ms}, N >= {width}], "
                         "one memory's raster of the whole schedule (index a batch's [T, B, N] as [:, b])")
    return raster


def decode(schedule: Schedule, out_cue: np.ndarray, out_content: np.ndarray,
           params: CA3Params | None = None) -> list[OperationResult]:
    """Read every operation's answer from one memory's output rasters ``out_cue [T, C]`` and ``out_content [T, M]``
    of the whole schedule at the steps the delays of ``params`` give (default: the published model); see
    :func:`check_readout`. Rasters of another rank, shorter than the schedule or narrower than its largest cue or
    bit are a one-line ShapeError."""
    if not isinstance(schedule, Schedule):
        raise ConfigError(f"decode takes a Schedule (make_schedule(operations, C, M, spacing_ms) makes one), got "
                          f"{type(schedule).__name__}")
    steps = check_readout(schedule, params)
    out_cue = _checked_raster(out_cue, "out_cue", schedule, 1 + max(
        (op.cue for op in schedule.operations if op.cue is not None), default=-1))
    out_content = _checked_raster(out_content, "out_content", schedule, 1 + max(
        (b for op in schedule.operations for b in op.bits), default=-1))
    results = []
    for op, t in zip(schedule.operations, schedule.starts_ms):
        forgotten = _active(out_content, t + steps.recall) if op.kind == LEARN else ()
        results.append(OperationResult(op, t, _active(out_cue, t + steps.cue(op.kind)),
                                       _active(out_content, t + steps.content(op.kind)), forgotten))
    return results


def events(raster: np.ndarray, offset_ms: int = 0) -> set[tuple[int, int]]:
    """``{(step, neuron)}`` of a raster ``[T, N]`` (steps shifted by ``offset_ms``)."""
    steps, neurons = np.nonzero(np.asarray(raster))
    return {(int(t) + offset_ms, int(i)) for t, i in zip(steps, neurons)}


def raster_from_events(spikes: Iterable[tuple[int, int]], n_steps: int, n_neurons: int) -> np.ndarray:
    """Boolean raster ``[T, N]`` from ``(step, neuron)`` pairs; raises :class:`ShapeError` for one outside it."""
    raster = np.zeros((n_steps, n_neurons), dtype=bool)
    for t, i in spikes:
        if not (0 <= t < n_steps and 0 <= i < n_neurons):
            raise ShapeError(f"spike (step {t}, neuron {i}) lies outside a [{n_steps}, {n_neurons}] raster")
        raster[t, i] = True
    return raster


def recorded_schedule(attrs: dict) -> Schedule:
    """The schedule a functional part ran, from its attributes ``kinds``, ``starts_ms`` (JSON) and ``duration_ms``;
    a one-line ValueError where they do not read back."""
    duration = attrs.get("duration_ms")
    if isinstance(duration, (bool, np.bool_)) or not isinstance(duration, (int, np.integer)) or duration < 1:
        raise ValueError(f"its attribute 'duration_ms' is {duration!r}, not a whole number of ms >= 1")
    values = []
    for name in ("kinds", "starts_ms"):
        if name not in attrs:
            raise ValueError(f"its attribute '{name}' is missing")
        try:
            values.append(json.loads(attrs[name]))
        except (TypeError, ValueError):
            raise ValueError(f"its attribute '{name}' is not JSON") from None
    kinds, starts = values
    if not (isinstance(kinds, list) and isinstance(starts, list) and len(kinds) == len(starts)
            and all(isinstance(k, str) and k in KINDS for k in kinds)
            and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < duration for t in starts)):
        raise ValueError(f"its attributes 'kinds' and 'starts_ms' are not one operation kind ({', '.join(KINDS)}) "
                         "and one start within duration_ms per operation")
    return Schedule(tuple(Operation(k) for k in kinds), tuple(starts), int(duration))
