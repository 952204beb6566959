"""The CA3 memory as a discrete-time torch stepper: 1 ms steps, batched over independent memories, CPU or CUDA.

It implements the same step as :mod:`spikecl.memory.brian2_net` (and reproduces its spikes). Every population lives
in one vector of N neurons, the C + M input sources first; the membrane ``v`` and current ``i`` ``[B, N']`` cover
the N' = N - C - M cells. A step is

1. membrane: ``v = v_rest + (v - v_rest) alpha + gain i`` for cells out of refraction (``alpha = exp(-dt/tau_m)``,
   ``gain = R (1 - alpha)``); a refractory cell holds ``v_reset``;
2. threshold: ``s = v > v_thresh`` (inputs are forced); ``v = v_reset`` where ``s``; ``i *= exp(-dt/tau_syn)``;
3. static synapses of the populations that spiked D steps ago: a one-to-one block adds its weight times the source
   population's 0/1 spikes to the target population's currents; an all-to-all block adds the number of spiking
   sources times its weight;
4. plastic synapses on the spiking rows / columns only: traces decay; delayed post spikes ``apost += A-;
   W[:, j] = clip(W[:, j] + apre)``; pre spikes ``apre += A+; W[i] = clip(W[i] - apost)``; ``i_post += k sum W[i]``.

Each operation rounds exactly as the dense formulation (``s @ W`` etc.) would, up to the order in which a cell's
same-step synaptic events are summed (the membranes, currents and weights of the stress schedules come out bit for
bit equal to the dense step's). Spikes enter the arithmetic as 0/1 floats, whose products with a weight are exact:
holding a cell at ``v_reset`` is ``v - v s + v_reset s``, and a silent source adds an exact zero. Every operation is
per memory, so a memory's spikes do not depend on the rest of the batch. The spikes are written straight into the
returned raster, which also serves as the delay line; a CPU simulates the batch in chunks of :data:`CPU_CHUNK`
memories. :class:`TorchCA3` keeps the state between runs.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from spikecl.errors import ConfigError, ShapeError, require
from spikecl.memory.params import INPUTS, PLASTIC, CA3Params, as_params, POOL_POPULATIONS, POPULATIONS, check_sizes, \
    check_spikes, connections, population_sizes, population_slices
from spikecl.environment import available_memory
from spikecl.options import check_bounds, check_value

#: plastic projections stored ``[B, post, pre]``: the content bits, which spike ~density x M at a time (cues one
#: at a time), are then the rows that STDP reads and writes contiguously in both projections
POST_MAJOR = frozenset({"cue_to_content"})
#: the stepper's floating-point precisions: float64 (the reference) or float32 (spike-exact on the SpiNNaker
#: recordings, faster; weights within float32 rounding)
PRECISIONS = ("float64", "float32")
#: memories simulated together on a CPU (C = M = 100: 8 to 64 per chunk speeds up 2.7x, 64 to 256 gains nothing
#: measurable, while smaller chunks keep the scratch tensors small)
CPU_CHUNK = 64


def check_precision(name) -> str:
    """``name`` if it is one of :data:`PRECISIONS`, else a one-line ConfigError."""
    if name not in PRECISIONS:
        raise ConfigError(f"precision {name!r} is not one of {', '.join(PRECISIONS)}")
    return name


class StaticDelay(NamedTuple):
    """The static synapses of one delay, as blocks ``(population, s0, s1, t0, t1, value)``: sources ``[s0, s1)`` in
    the vector (``population`` their index), targets ``[t0, t1)`` among the cells, ``value`` nA per spike times the
    event factor. ``one_to_one``: source s0 + j drives target t0 + j, in source order (the order in which a cell's
    same-step events are summed); ``pools``: every source drives every target (``all_but_self`` = a pool plus a
    negative one-to-one block)."""

    one_to_one: tuple
    pools: tuple


class CA3Constants(NamedTuple):
    """Per-network constants (tensors on the device). ``slices``: population -> (start, stop) in the vector;
    ``n_inputs``: C + M; ``population [N]``: every neuron's population index (in ``slices`` order); cell arrays
    ``[N']``."""

    v_rest: float
    v_reset: float
    alpha: object            # [N']
    gain: object             # [N'] mV per nA
    v_thresh: object         # [N']
    syn_decay: float
    k_syn: float
    refractory_steps: int
    static: dict             # delay steps -> StaticDelay
    slices: dict
    population: object
    n_inputs: int
    reset_below_threshold: bool
    plastic_pre_steps: int
    post_lag_steps: int
    trace_decay: object      # [sum of trace widths]: the decay of every column of CA3State.traces
    a_plus: float
    a_minus: float
    w_min: float
    w_max: float
    gain_content_to_cue: float

    @property
    def n_neurons(self) -> int:
        """N, inputs included."""
        return self.n_inputs + self.alpha.shape[0]


@dataclass
class CA3State:
    """Network state of B memories: ``v``, ``i`` ``[B, N']`` (mV, nA, cells only), ``history`` ``[H, B, N]`` bool,
    the last H steps' spikes (0 = latest; it also times the refractory period), plastic ``weights`` (nA,
    ``[B, pre, post]``, or ``[B, post, pre]`` for :data:`POST_MAJOR`) and STDP ``traces`` (nA, ``[B, width]``), of which
    ``pre_trace``/``post_trace`` are views (``[B, pre]``/``[B, post]``) keyed by projection."""

    v: object
    i: object
    history: object
    weights: dict
    traces: object
    pre_trace: dict
    post_trace: dict

    def rows(self, lo: int, hi: int) -> "CA3State":
        """The state of memories ``lo:hi`` as views (updates write through)."""
        return CA3State(self.v[lo:hi], self.i[lo:hi], self.history[:, lo:hi],
                        {k: w[lo:hi] for k, w in self.weights.items()}, self.traces[lo:hi],
                        {k: a[lo:hi] for k, a in self.pre_trace.items()},
                        {k: a[lo:hi] for k, a in self.post_trace.items()})


def build_constants(params: CA3Params, n_cues: int, n_bits: int, device="cpu", dtype=None) -> CA3Constants:
    """Lay every population out in one vector (inputs first) and the wiring out in blocks per delay."""
    torch = require("torch", "torch")
    dtype = dtype or torch.float64
    kinds = {**POPULATIONS, **(POOL_POPULATIONS if params.inhibition == "pool" else {})}
    slices = population_slices(n_cues, n_bits, params)
    sizes = {name: b - a for name, (a, b) in slices.items()}
    start = sum(sizes.values())
    assert list(slices)[:len(INPUTS)] == list(INPUTS), "the input populations must lead the vector"
    n_in = sum(sizes[name] for name in INPUTS)
    alpha, gain, v_thresh = (np.zeros(start - n_in) for _ in range(3))
    for name, (_, kind) in kinds.items():
        c_m, tau_m, threshold = params.cell(kind)
        a, b = (x - n_in for x in slices[name])
        alpha[a:b] = np.exp(-params.dt_ms / tau_m)
        gain[a:b] = tau_m / c_m * (1.0 - alpha[a:b])
        v_thresh[a:b] = threshold
    as_t = lambda x: torch.as_tensor(x, dtype=dtype, device=device)  # noqa: E731
    population = np.repeat(np.arange(len(sizes)), list(sizes.values()))
    static = _static_synapses(params, n_bits, slices, population, n_in)
    widths = [(slices[pre][1] - slices[pre][0], slices[post][1] - slices[post][0]) for pre, post in PLASTIC.values()]
    decay_pre, decay_post = (float(np.exp(-params.dt_ms / tau)) for tau in (params.tau_plus_ms, params.tau_minus_ms))
    trace_decay = np.concatenate([np.r_[np.full(p, decay_pre), np.full(q, decay_post)] for p, q in widths])
    return CA3Constants(
        v_rest=params.v_rest_mV, v_reset=params.v_reset_mV, alpha=as_t(alpha), gain=as_t(gain),
        v_thresh=as_t(v_thresh), syn_decay=params.syn_decay, k_syn=params.syn_event_factor,
        refractory_steps=params.refractory_steps, static=static, slices=slices,
        population=torch.as_tensor(population, device=device), n_inputs=n_in,
        reset_below_threshold=bool(params.v_reset_mV < v_thresh.min()),
        plastic_pre_steps=params.steps(params.delay_plastic_ms, "the plastic projections"),
        post_lag_steps=int(params.stdp_post_lag_ms),
        trace_decay=as_t(trace_decay), a_plus=params.a_plus_nA, a_minus=params.a_minus_nA, w_min=params.w_min_nA,
        w_max=params.w_max_nA, gain_content_to_cue=params.content_to_cue_gain)


def _static_synapses(params: CA3Params, n_bits: int, slices: dict, population: np.ndarray, n_in: int) -> dict:
    """delay steps -> :class:`StaticDelay` of the static connections, in the vector's (sources) and the cells'
    (targets) indices; ``value`` in nA per spike times the event factor."""
    static = {}
    for c in connections(params, n_bits):
        (s0, s1), (t0, t1) = slices[c.source], slices[c.target]
        assert t0 >= n_in, "no synapse targets an input"
        value = c.sign * c.weight_nA * params.syn_event_factor
        delay = params.steps(c.delay_ms, f"{c.source} -> {c.target}")
        pairs, pools = static.setdefault(delay, ([], []))
        block = (int(population[s0]), s0, s1, t0 - n_in, t1 - n_in, value)
        if c.pattern == "one_to_one":
            pairs.append(block)
            continue
        pools.append(block)
        if c.pattern == "all_but_self":                 # all-to-all minus each neuron's own share
            pairs.append(block[:-1] + (-value,))
    return {delay: StaticDelay(tuple(sorted(pairs, key=lambda b: b[1])), tuple(pools))      # stable: source order
            for delay, (pairs, pools) in static.items()}


def _stored_shape(name: str, n_pre: int, n_post: int) -> tuple[int, int]:
    """Shape of a plastic matrix in the state: ``(pre, post)``, or ``(post, pre)`` for :data:`POST_MAJOR`."""
    return (n_post, n_pre) if name in POST_MAJOR else (n_pre, n_post)


def initial_state(consts: CA3Constants, batch_size: int, w_init_nA: float = 0.0) -> CA3State:
    """Resting state of ``batch_size`` empty memories (plastic weights ``w_init_nA``)."""
    torch = require("torch", "torch")
    like = consts.alpha
    cells = like.shape[0]
    depth = max([*consts.static, consts.plastic_pre_steps, consts.post_lag_steps, consts.refractory_steps - 1]) + 1
    zeros = lambda *shape: torch.zeros(*shape, dtype=like.dtype, device=like.device)  # noqa: E731
    sizes = {name: b - a for name, (a, b) in consts.slices.items()}
    traces = zeros(batch_size, consts.trace_decay.shape[0])
    pre_trace, post_trace, start = {}, {}, 0
    for k, (pre, post) in PLASTIC.items():
        pre_trace[k] = traces[:, start:start + sizes[pre]]
        post_trace[k] = traces[:, start + sizes[pre]:start + sizes[pre] + sizes[post]]
        start += sizes[pre] + sizes[post]
    return CA3State(
        v=torch.full((batch_size, cells), consts.v_rest, dtype=like.dtype, device=like.device),
        i=zeros(batch_size, cells),
        history=torch.zeros(depth, batch_size, consts.n_neurons, dtype=torch.bool, device=like.device),
        weights={k: torch.full((batch_size, *_stored_shape(k, sizes[pre], sizes[post])), float(w_init_nA),
                               dtype=like.dtype, device=like.device) for k, (pre, post) in PLASTIC.items()},
        traces=traces, pre_trace=pre_trace, post_trace=post_trace)


class _Chunk:
    """One run of memories ``lo:hi``. The delay line is ``inputs [H + T, b, C + M]`` and ``cells [H + T, b, N']``
    (bool; rows ``< H``: the steps before this run, latest last; row ``H + t``: step t, the returned raster). The
    last H rows also live as 0/1 floats for the arithmetic, ``recent_inputs[k % H] [b, C + M]`` and
    ``recent_cells[k % H] [b, N']``; ``active[k]``: which populations spiked in row k (a list of bools in
    ``slices`` order), or None if none did."""

    def __init__(self, consts: CA3Constants, state: CA3State, inputs, cells, gate) -> None:
        torch = self.torch = require("torch", "torch")
        self.consts, self.state, self.inputs, self.cells, self.gate = consts, state, inputs, cells, gate
        self.depth = depth = state.history.shape[0]
        n_in, b = consts.n_inputs, state.v.shape[0]
        members = torch.zeros(len(consts.slices), consts.n_neurons, dtype=state.v.dtype, device=state.v.device)
        members[consts.population, torch.arange(consts.n_neurons, device=state.v.device)] = 1
        self.members_in, self.members_cells = members[:, :n_in], members[:, n_in:].contiguous()
        spiking_inputs = inputs.view(torch.uint8).amax(1).to(state.v.dtype) @ self.members_in.T     # [H + T, P]
        self.inputs_active = (spiking_inputs > 0).tolist()
        self.recent_inputs = state.v.new_zeros(depth, b, n_in)
        self.recent_cells = state.v.new_zeros(depth, b, consts.alpha.shape[0])
        self.stale = [False] * depth              # recent_inputs[slot] holds an earlier row's spikes
        self.active = [None] * inputs.shape[0]
        for k in range(depth):
            self.recent_cells[k].copy_(cells[k])
            self._arrive(k)
        self.index = {name: p for p, name in enumerate(consts.slices)}
        ones, zeros = (gate == 1).all(1).tolist(), (gate == 0).all(1).tolist()
        self.gate_mode = [0 if z else 1 if o else 2 for o, z in zip(ones, zeros)]   # 0 off, 1 on, 2 per memory
        self.scratch = torch.empty_like(state.v)
        size = state.v.shape[0] * max(w[0].numel() for w in state.weights.values())
        self.gathered = [state.v.new_empty(size) for _ in range(2)]     # weight and trace vectors, reused every step

    def run(self) -> None:
        for t in range(self.cells.shape[0] - self.depth):
            self.step(self.depth + t, t)

    def _arrive(self, k: int) -> None:
        """Row k's inputs join ``recent_inputs`` (its cells are in ``recent_cells`` already); note which
        populations spiked."""
        slot, inputs_active = k % self.depth, self.inputs_active[k]
        if any(inputs_active) or self.stale[slot]:
            self.recent_inputs[slot].copy_(self.inputs[k])
            self.stale[slot] = any(inputs_active)
        cells = self.torch.mv(self.members_cells, self.recent_cells[slot].sum(0)).tolist()
        active = [a or c > 0 for a, c in zip(inputs_active, cells)]
        self.active[k] = active if any(active) else None

    def _recent(self, k: int, a: int, b: int):
        """The 0/1 spikes ``[b, stop - start]`` of row k (one of the last H) for the vector's neurons ``[a, b)``."""
        n_in, slot = self.consts.n_inputs, k % self.depth
        return self.recent_inputs[slot, :, a:b] if b <= n_in else self.recent_cells[slot, :, a - n_in:b - n_in]

    def step(self, k: int, t: int) -> None:
        """Simulate row k (step t of the run): membrane, threshold, static and plastic synapses."""
        torch, consts, st = self.torch, self.consts, self.state
        torch.mul(consts.gain, st.i, out=self.scratch)
        st.v.sub_(consts.v_rest).mul_(consts.alpha).add_(consts.v_rest).add_(self.scratch)
        refractory = [self.recent_cells[(k - r) % self.depth] for r in range(1, consts.refractory_steps)
                      if self.active[k - r] is not None]
        for spiked in refractory:                 # a refractory cell holds v_reset (it was reset when it fired)
            _hold(st.v, spiked, consts.v_reset)
        spiked = self.recent_cells[k % self.depth]
        torch.gt(st.v, consts.v_thresh, out=spiked)
        if not consts.reset_below_threshold:
            for before in refractory:
                spiked.addcmul_(spiked, before, value=-1)
        self.cells[k].copy_(spiked)
        self._arrive(k)
        if self.active[k] is not None:
            _hold(st.v, spiked, consts.v_reset)
        st.i.mul_(consts.syn_decay)
        for delay, syn in consts.static.items():
            if self.active[k - delay] is not None:
                _deliver(syn, st.i, self.active[k - delay], lambda a, b: self._recent(k - delay, a, b))
        self._plasticity(k, t)

    def _row(self, k: int, a: int, b: int):
        """Spikes ``[b, stop - start]`` of row k for the vector's neurons ``[a, b)`` (one population)."""
        n_in = self.consts.n_inputs
        return self.inputs[k, :, a:b] if b <= n_in else self.cells[k, :, a - n_in:b - n_in]

    def _plasticity(self, k: int, t: int) -> None:
        """STDP of both plastic projections on the spiking rows and columns; delivery of the pre spikes."""
        consts, st, mode = self.consts, self.state, self.gate_mode[t]
        gate = self.gate[t].unsqueeze(1) if mode == 2 else None
        st.traces.mul_(consts.trace_decay)
        for name, (pre, post) in PLASTIC.items():
            q0, q1 = consts.slices[post]
            w, a_pre, a_post = st.weights[name], st.pre_trace[name], st.post_trace[name]
            by_post = name in POST_MAJOR
            b, j = self._spikes(k - consts.post_lag_steps, post)
            if b is not None:                             # post spikes (seen late): apost += A-, w += apre
                a_post[b, j] += consts.a_minus
                if mode:
                    cols = _vectors(w, b, j, by_post, self.gathered[0])
                    _store(w, b, j, by_post, _clip(cols.add_(_gated(a_pre, gate, b, self.gathered[1])), consts))
            b, i = self._spikes(k - consts.plastic_pre_steps, pre)
            if b is not None:                             # pre spikes: apre += A+, w -= apost, deliver the row
                a_pre[b, i] += consts.a_plus
                rows = _vectors(w, b, i, not by_post, self.gathered[0])
                if mode:
                    rows = _clip(rows.sub_(_gated(a_post, gate, b, self.gathered[1])), consts)
                    _store(w, b, i, not by_post, rows)
                scale = consts.k_syn * (consts.gain_content_to_cue if name == "content_to_cue" else 1.0)
                total = rows.new_zeros(a_post.shape).index_add_(0, b, rows)
                st.i[:, q0 - consts.n_inputs:q1 - consts.n_inputs].add_(total.mul_(scale))

    def _spikes(self, k: int, population: str):
        """(memory, index in the population) tensors of the population's spikes in row k, memory-major, or
        (None, None)."""
        if self.active[k] is None or not self.active[k][self.index[population]]:
            return None, None
        return self._row(k, *self.consts.slices[population]).nonzero().unbind(1)


def _vectors(w, b, n, rows: bool, scratch):
    """The weight vectors ``[K, L]`` of neurons ``n [K]`` of memories ``b [K]``, gathered into ``scratch``: rows
    of ``w [B, R, L]`` where ``rows`` (a contiguous gather), else columns."""
    torch = require("torch", "torch")
    if not rows:
        return w[b, :, n]
    out = scratch[:len(b) * w.shape[2]].view(len(b), w.shape[2])
    return torch.index_select(w.view(-1, w.shape[2]), 0, b * w.shape[1] + n, out=out)


def _store(w, b, n, rows: bool, x) -> None:
    """Write ``x [K, L]`` back where :func:`_vectors` read it."""
    if rows:
        w.view(-1, w.shape[2]).index_copy_(0, b * w.shape[1] + n, x)
    else:
        w[b, :, n] = x


def _gated(trace, gate, b, scratch):
    """``trace [b, P]`` gathered at memories ``b [K]`` into ``scratch``, times their plasticity gate (``gate
    [b, 1]``, None where it is 1 for all)."""
    torch = require("torch", "torch")
    rows = torch.index_select(trace, 0, b, out=scratch[:len(b) * trace.shape[1]].view(len(b), trace.shape[1]))
    return rows if gate is None else rows.mul_(gate[b])


def _hold(v, spiked, value: float) -> None:
    """``v`` = ``value`` where ``spiked`` (0/1) is 1, exactly: ``v - v s + value s``."""
    v.addcmul_(v, spiked, value=-1).add_(spiked, alpha=value)


def _clip(w, consts: CA3Constants):
    return w.clamp_(consts.w_min, consts.w_max)


def _deliver(syn: StaticDelay, current, active: list, spikes) -> None:
    """Add the static synaptic input of the ``active`` populations to the cells' ``current [b, N']``: one-to-one
    blocks in source order, then all-to-all blocks (spike count x weight); ``spikes(a, b)`` gives the 0/1 spikes
    ``[b, stop - start]`` of the vector's neurons ``[a, b)``."""
    for population, s0, s1, t0, t1, value in syn.one_to_one:
        if active[population]:
            current[:, t0:t1].add_(spikes(s0, s1), alpha=value)
    for population, s0, s1, t0, t1, value in syn.pools:
        if active[population]:
            current[:, t0:t1].add_(spikes(s0, s1).sum(1, keepdim=True) * value)


@contextmanager
def flushed_subnormals(active: bool):
    """Within the block, this thread's CPU flushes subnormal floats to zero (``torch.set_flush_denormal``), then the
    previous mode returns. In float32 the traces, currents and membrane offsets that decay every step become
    subnormal (below 1.2e-38) after a few hundred silent steps, and x86 CPUs compute on those many times slower;
    flushing them changes nothing measurable."""
    torch = require("torch", "torch")
    if not active:
        yield
        return
    before = flushing_subnormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def flushing_subnormals() -> bool:
    """Whether this thread's CPU flushes subnormal floats to zero (torch has a setter but no getter)."""
    torch = require("torch", "torch")
    return bool(torch.tensor([1e-39], dtype=torch.float32).mul(1.0).eq(0).item())


def _count(value, key: str) -> int:
    """``value`` as an int >= 1 (numpy integers accepted, bool refused), else a one-line ConfigError naming ``key``."""
    value = check_value(value, int, key)
    check_bounds(value, {"low": 1}, key)
    return value


def footprint(params: CA3Params, n_cues: int, n_bits: int, batch_size: int, n_steps: int = 0,
              itemsize: int = 8) -> int:
    """Bytes that ``batch_size`` memories take: their plastic weights (``itemsize`` bytes each) and, over
    ``n_steps`` steps, every neuron's spikes (one byte per neuron and step, inputs included)."""
    sizes = population_sizes(n_cues, n_bits, params)
    weights = sum(sizes[pre] * sizes[post] for pre, post in PLASTIC.values())
    return batch_size * (weights * itemsize + n_steps * sum(sizes.values()))


def check_fits(need: int, device, what: str, hint: str) -> None:
    """A one-line ConfigError where ``need`` bytes (of ``what``) exceed the memory free now on ``device`` (a CPU:
    Linux's MemAvailable; a GPU: CUDA's free memory), rather than an allocation failing or the process killed
    partway; unchecked where the free memory is unknown."""
    cuda = str(device).startswith("cuda")       # a CPU is checked without torch (the torch-free core loads files)
    if cuda:
        torch = require("torch", "torch")
        device = torch_device(device)
        free = torch.cuda.mem_get_info(device)[0] if torch.cuda.is_available() else None
    else:
        free = available_memory()
    if free is not None and need > free:
        where = f" on {device}" if cuda else ""
        raise ConfigError(f"{what} take about {_size(need)}, more than the {_size(free)} of memory free{where}: "
                          f"{hint}")


def _size(n_bytes: int) -> str:
    unit = next(u for u in (3, 2, 1) if n_bytes >= 2 ** (10 * u) or u == 1)
    return f"{n_bytes / 2 ** (10 * unit):.1f} {' KMG'[unit]}iB"


def torch_device(device):
    """``device`` as a torch device of a kind the stepper runs on ("cpu", "cuda", "cuda:N"), else a one-line
    ConfigError."""
    torch = require("torch", "torch")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r}: not a torch device (\"cpu\", \"cuda\" or \"cuda:N\")") from exc
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {str(device)!r}: the CA3 stepper runs on \"cpu\" or \"cuda[:N]\", not "
                          f"{device.type!r} devices")
    return device


class TorchCA3:
    """B independent CA3 memories stepped in torch; :meth:`run` continues the simulation.

    >>> net = TorchCA3(CA3Params(), n_cues=5, n_bits=10, batch_size=4, device="cpu")     # doctest: +SKIP
    >>> spikes = net.run(cue_input, content_input)   # dict population -> bool tensor [T, B, N]  # doctest: +SKIP

    ``chunk``: memories simulated together (default: :data:`CPU_CHUNK` on a CPU, the whole batch on a GPU).
    ``dtype``: a torch float dtype or one of :data:`PRECISIONS` (default float64; the config's precision offers
    those two); float32 runs on a CPU with subnormals flushed (:func:`flushed_subnormals`).
    """

    def __init__(self, params: CA3Params, n_cues: int, n_bits: int, batch_size: int = 1, device="cpu",
                 dtype=None, chunk: int | None = None) -> None:
        torch = require("torch", "torch")
        params = as_params(params)
        n_cues, n_bits = check_sizes(n_cues, n_bits, params)
        device = torch_device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r} requested but CUDA is not available")
        batch_size, chunk = _count(batch_size, "batch_size"), None if chunk is None else _count(chunk, "chunk")
        if isinstance(dtype, np.dtype) or isinstance(dtype, type) and issubclass(dtype, np.generic):
            try:
                dtype = torch.from_numpy(np.zeros(0, dtype)).dtype    # numpy's float32: torch's
            except TypeError:
                raise ConfigError(f"dtype {dtype} is not one of {', '.join(PRECISIONS)}") from None
        if isinstance(dtype, str):
            dtype = getattr(torch, check_precision(dtype))
        if dtype is not None and dtype not in (torch.float16, torch.float32, torch.float64):
            raise ConfigError(f"dtype {dtype} is not a torch float16, float32 or float64 dtype nor one of "
                              f"{', '.join(PRECISIONS)} (rasters and weights are read back through numpy)")
        itemsize = torch.empty(0, dtype=dtype or torch.float64).element_size()
        check_fits(footprint(params, n_cues, n_bits, batch_size, itemsize=itemsize), device,
                   f"the plastic weights of {batch_size} memor{'y' if batch_size == 1 else 'ies'} at C = {n_cues}, "
                   f"M = {n_bits}", "fewer cues (C) or content bits (M), or fewer memories at once")
        self.params, self.n_cues, self.n_bits, self.batch_size = params, n_cues, n_bits, batch_size
        self.device = device
        self.chunk = chunk or (CPU_CHUNK if self.device.type == "cpu" else batch_size)
        self.consts = build_constants(params, n_cues, n_bits, self.device, dtype)
        self.state = initial_state(self.consts, batch_size, params.w_plastic_init_nA)
        self.t_ms = 0

    def run(self, cue_input, content_input, gate=None) -> dict:
        """Simulate T more steps. ``cue_input [T, B, C]``, ``content_input [T, B, M]`` (bool or 0/1; ``[T, C]`` and
        ``[T, M]`` drive every memory alike); ``gate [T, B]`` or ``[T]``: 1 where plasticity is on.
        Returns every population's spikes as a bool tensor ``[T, B, N]`` (on the device)."""
        torch = require("torch", "torch")
        consts, B, state = self.consts, self.batch_size, self.state
        cue = self._input(cue_input, self.n_cues, "cue_input")
        content = self._input(content_input, self.n_bits, "content_input")
        n_steps, depth = cue.shape[0], state.history.shape[0]
        if content.shape[0] != n_steps:
            raise ShapeError(f"cue_input has {n_steps} steps but content_input has {content.shape[0]}")
        if not n_steps:
            raise ShapeError("cue_input and content_input hold no time step (T = 0): nothing to simulate")
        check_fits(footprint(self.params, self.n_cues, self.n_bits, B, depth + n_steps, itemsize=0), self.device,
                   f"the spikes of {B} memor{'y' if B == 1 else 'ies'} over {n_steps:,} steps", "fewer steps per run")
        gate = torch.ones(n_steps, B) if gate is None else self._gate(gate, n_steps)
        gate = gate.reshape(n_steps, -1).expand(n_steps, B).to(consts.alpha)
        n_in = consts.n_inputs
        inputs = torch.cat([state.history[:, :, :n_in].flip(0), torch.cat([cue, content], dim=2)])
        cells = torch.empty(depth + n_steps, B, consts.alpha.shape[0], dtype=torch.bool, device=self.device)
        cells[:depth] = state.history[:, :, n_in:].flip(0)
        with flushed_subnormals(self.device.type == "cpu" and consts.alpha.dtype == torch.float32):
            for lo in range(0, B, self.chunk):
                hi = min(B, lo + self.chunk)
                _Chunk(consts, state.rows(lo, hi), inputs[:, lo:hi], cells[:, lo:hi], gate[:, lo:hi]).run()
        state.history = torch.cat([inputs[-depth:], cells[-depth:]], dim=2).flip(0)
        self.t_ms += n_steps
        return {name: inputs[depth:, :, a:b] if b <= n_in else cells[depth:, :, a - n_in:b - n_in]
                for name, (a, b) in consts.slices.items()}

    def _input(self, x, width: int, what: str):
        torch = require("torch", "torch")
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if x.ndim == 2:
            x = x[:, None, :].expand(-1, self.batch_size, -1)
        if x.ndim != 3 or x.shape[1:] != (self.batch_size, width):
            raise ShapeError(f"{what} has shape {tuple(x.shape)}; expected [T, {self.batch_size}, {width}]")
        return check_spikes(x, what).to(device=self.device, dtype=torch.bool)

    def _gate(self, gate, n_steps: int):
        """``gate`` [T], [T, 1] or [T, B] of 0/1 as a float64 tensor; else a one-line ShapeError."""
        torch = require("torch", "torch")
        gate = torch.as_tensor(np.asarray(gate) if not isinstance(gate, torch.Tensor) else gate)
        if tuple(gate.shape) not in ((n_steps,), (n_steps, 1), (n_steps, self.batch_size)):
            raise ShapeError(f"gate has shape {tuple(gate.shape)}; expected [{n_steps}] or [{n_steps}, "
                             f"{self.batch_size}]")
        return check_spikes(gate, "gate").to(torch.float64)

    def weights(self) -> dict[str, np.ndarray]:
        """Both plastic matrices in nA as numpy: ``cue_to_content [B, C, M]`` and ``content_to_cue [B, M, C]``."""
        return {k: (w.transpose(1, 2) if k in POST_MAJOR else w).detach().cpu().numpy().copy()
                for k, w in self.state.weights.items()}
