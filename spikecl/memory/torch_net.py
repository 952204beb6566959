"""The CA3 memory as a discrete-time torch stepper: 1 ms steps, batched over independent memories, CPU or CUDA.

It implements the same step as :mod:`spikecl.memory.brian2_net` (and reproduces its spikes): all neurons of all
populations live in one vector ``[B, N]``; a step is

1. membrane: ``v = v_rest + (v - v_rest) alpha + gain I`` for cells out of refraction (``alpha = exp(-dt/tau_m)``,
   ``gain = R (1 - alpha)``), inputs are forced;
2. threshold: ``s = v > v_thresh`` (not refractory); ``I *= exp(-dt/tau_syn)``;
3. static synapses: ``I += W_D s[t - D]`` for every delay D in steps (one-to-one pairs and population sums, O(N));
4. plastic synapses: traces decay; delayed post spikes ``apost += A-; W = clip(W + apre)``; pre spikes
   ``apre += A+; W = clip(W - apost)``; then ``I_post += k (s_pre @ W)``;
5. reset ``v = v_reset`` where ``s``.

:func:`step` is a pure function of (network constants, state, inputs); :class:`TorchCA3` wraps it and keeps state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikecl.errors import ConfigError, ShapeError, require
from spikecl.memory.params import INPUTS, PLASTIC, CA3Params, POOL_POPULATIONS, POPULATIONS, connections, \
    population_sizes


class StaticDelay(NamedTuple):
    """The static synapses of one delay, in O(N) form: one-to-one pairs ``source -> target`` with signed
    ``value`` (nA per spike, already times the event factor), plus all-to-all blocks as a population sum
    (``pool_in [N, G]``) spread to targets (``pool_out [G, N]``). ``all_but_self`` = block + a negative pair."""

    source: object
    target: object
    value: object
    pool_in: object
    pool_out: object


class CA3Constants(NamedTuple):
    """Per-network constants (tensors on the device). ``slices``: population -> (start, stop) in the vector."""

    v_rest: float
    v_reset: float
    alpha: object            # [N]
    gain: object             # [N] mV per nA
    v_thresh: object         # [N] (inf for inputs)
    syn_decay: float
    k_syn: float
    refractory_steps: int
    static: dict             # delay steps -> StaticDelay
    slices: dict
    plastic_pre_steps: int
    post_lag_steps: int
    trace_decay_pre: float
    trace_decay_post: float
    a_plus: float
    a_minus: float
    w_min: float
    w_max: float
    gain_content_to_cue: float


class CA3State(NamedTuple):
    """Network state of B memories: ``v``, ``i`` ``[B, N]`` (mV, nA), ``history`` ``[H, B, N]`` the last H steps'
    spikes (0 = latest; it also times the refractory period), plastic ``weights`` (nA, ``[B, pre, post]``) and STDP
    traces ``pre_trace``/``post_trace`` (nA, ``[B, pre]``/``[B, post]``) keyed by projection."""

    v: object
    i: object
    history: object
    weights: dict
    pre_trace: dict
    post_trace: dict


def build_constants(params: CA3Params, n_cues: int, n_bits: int, device="cpu", dtype=None) -> CA3Constants:
    """Lay every population out in one vector and turn the wiring into sparse matrices per delay."""
    torch = require("torch", "torch")
    dtype = dtype or torch.float64
    sizes = population_sizes(n_cues, n_bits, params)
    kinds = {**POPULATIONS, **(POOL_POPULATIONS if params.inhibition == "pool" else {})}
    slices, start = {}, 0
    for name, n in sizes.items():
        slices[name] = (start, start + n)
        start += n
    n_total = start
    alpha, gain, v_thresh = np.zeros(n_total), np.zeros(n_total), np.full(n_total, np.inf)
    for name, (_, kind) in kinds.items():
        c_m, tau_m, threshold = params.cell(kind)
        a, b = slices[name]
        alpha[a:b] = np.exp(-params.dt_ms / tau_m)
        gain[a:b] = tau_m / c_m * (1.0 - alpha[a:b])
        v_thresh[a:b] = threshold
    as_t = lambda x: torch.as_tensor(x, dtype=dtype, device=device)  # noqa: E731
    static = {}
    for c in connections(params, n_bits):
        (s0, s1), (t0, t1) = slices[c.source], slices[c.target]
        value = c.sign * c.weight_nA * params.syn_event_factor
        pairs, sums = static.setdefault(params.steps(c.delay_ms), ([], []))
        if c.pattern == "one_to_one":
            pairs.append((np.arange(s0, s1), np.arange(t0, t1), np.full(s1 - s0, value)))
            continue
        sums.append((s0, s1, t0, t1, value))
        if c.pattern == "all_but_self":                 # all-to-all minus each neuron's own share
            pairs.append((np.arange(s0, s1), np.arange(t0, t1), np.full(s1 - s0, -value)))
    for delay, (pairs, sums) in static.items():
        pairs = pairs or [(np.zeros(0, int), np.zeros(0, int), np.zeros(0))]
        src, tgt, val = (np.concatenate(x) for x in zip(*pairs))
        pool_in, pool_out = np.zeros((n_total, len(sums))), np.zeros((len(sums), n_total))
        for g, (s0, s1, t0, t1, value) in enumerate(sums):
            pool_in[s0:s1, g], pool_out[g, t0:t1] = 1.0, value
        static[delay] = StaticDelay(torch.as_tensor(src, dtype=torch.int64, device=device),
                                    torch.as_tensor(tgt, dtype=torch.int64, device=device), as_t(val),
                                    as_t(pool_in), as_t(pool_out))
    assert list(slices)[:len(INPUTS)] == list(INPUTS), "the input populations must lead the vector"
    return CA3Constants(
        v_rest=params.v_rest_mV, v_reset=params.v_reset_mV, alpha=as_t(alpha), gain=as_t(gain),
        v_thresh=as_t(v_thresh), syn_decay=params.syn_decay,
        k_syn=params.syn_event_factor, refractory_steps=params.refractory_steps, static=static, slices=slices,
        plastic_pre_steps=params.steps(params.delay_plastic_ms), post_lag_steps=int(params.stdp_post_lag_ms),
        trace_decay_pre=float(np.exp(-params.dt_ms / params.tau_plus_ms)),
        trace_decay_post=float(np.exp(-params.dt_ms / params.tau_minus_ms)), a_plus=params.a_plus_nA,
        a_minus=params.a_minus_nA, w_min=params.w_min_nA, w_max=params.w_max_nA,
        gain_content_to_cue=params.content_to_cue_gain)


def initial_state(consts: CA3Constants, batch_size: int, w_init_nA: float = 0.0) -> CA3State:
    """Resting state of ``batch_size`` empty memories (plastic weights ``w_init_nA``)."""
    torch = require("torch", "torch")
    like = consts.alpha
    n = like.shape[0]
    history = max([*consts.static, consts.plastic_pre_steps, consts.post_lag_steps, consts.refractory_steps - 1]) + 1
    zeros = lambda *shape: torch.zeros(*shape, dtype=like.dtype, device=like.device)  # noqa: E731
    sizes = {name: b - a for name, (a, b) in consts.slices.items()}
    return CA3State(
        v=torch.full((batch_size, n), consts.v_rest, dtype=like.dtype, device=like.device), i=zeros(batch_size, n),
        history=zeros(history, batch_size, n),
        weights={k: torch.full((batch_size, sizes[pre], sizes[post]), float(w_init_nA), dtype=like.dtype,
                               device=like.device) for k, (pre, post) in PLASTIC.items()},
        pre_trace={k: zeros(batch_size, sizes[pre]) for k, (pre, _) in PLASTIC.items()},
        post_trace={k: zeros(batch_size, sizes[post]) for k, (_, post) in PLASTIC.items()})


def step(consts: CA3Constants, state: CA3State, inputs, gate) -> tuple[CA3State, object]:
    """Advance B memories by one 1 ms step. ``inputs [B, C + M]``: the spikes of the input populations (the first
    C + M entries of the vector); ``gate [B]``: 1 where plasticity is on. Returns the new state and the spikes
    ``[B, N]`` (float). Tensors created here are updated in place; the given state is never modified."""
    torch = require("torch", "torch")
    awake = state.history[: consts.refractory_steps - 1].sum(0) == 0      # no spike in the refractory window
    v = torch.where(awake, consts.v_rest + (state.v - consts.v_rest) * consts.alpha + consts.gain * state.i, state.v)
    n_in = inputs.shape[1]
    spikes = torch.cat([inputs, ((v[:, n_in:] > consts.v_thresh[n_in:]) & awake[:, n_in:]).to(v.dtype)], dim=1)
    v.masked_fill_(spikes > 0, consts.v_reset)
    history = torch.cat([spikes[None], state.history[:-1]])
    active = history.flatten(1).any(1).tolist()    # the network is silent most steps: skip empty products
    current = state.i * consts.syn_decay
    for delay, syn in consts.static.items():
        if active[delay]:
            x = history[delay]
            current.index_add_(1, syn.target, x[:, syn.source] * syn.value)
            current += (x @ syn.pool_in) @ syn.pool_out
    weights, pre_trace, post_trace = {}, {}, {}
    for name, (pre, post) in PLASTIC.items():
        (p0, p1), (q0, q1) = consts.slices[pre], consts.slices[post]
        s_pre, s_post = history[consts.plastic_pre_steps, :, p0:p1], history[consts.post_lag_steps, :, q0:q1]
        a_pre = state.pre_trace[name] * consts.trace_decay_pre
        a_post = state.post_trace[name] * consts.trace_decay_post
        w = state.weights[name]
        if active[consts.post_lag_steps]:           # post spikes (seen late): apost += A-, w += apre
            a_post += consts.a_minus * s_post
            w = torch.baddbmm(w, (gate[:, None] * a_pre)[:, :, None], s_post[:, None, :]).clamp_(consts.w_min,
                                                                                                  consts.w_max)
        if active[consts.plastic_pre_steps]:        # pre spikes: apre += A+, w -= apost, deliver the new weight
            a_pre += consts.a_plus * s_pre
            w = torch.baddbmm(w, s_pre[:, :, None], -(gate[:, None] * a_post)[:, None, :]).clamp_(consts.w_min,
                                                                                                   consts.w_max)
            scale = consts.k_syn * (consts.gain_content_to_cue if name == "content_to_cue" else 1.0)
            current[:, q0:q1] += torch.bmm(s_pre[:, None, :], w)[:, 0] * scale
        weights[name], pre_trace[name], post_trace[name] = w, a_pre, a_post
    return CA3State(v, current, history, weights, pre_trace, post_trace), spikes


class TorchCA3:
    """B independent CA3 memories stepped in torch; :meth:`run` continues the simulation.

    >>> net = TorchCA3(CA3Params(), n_cues=5, n_bits=10, batch_size=4, device="cpu")     # doctest: +SKIP
    >>> spikes = net.run(cue_input, content_input)   # dict population -> bool tensor [T, B, N]  # doctest: +SKIP
    """

    def __init__(self, params: CA3Params, n_cues: int, n_bits: int, batch_size: int = 1, device="cpu",
                 dtype=None) -> None:
        torch = require("torch", "torch")
        if isinstance(device, str) and device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.params, self.n_cues, self.n_bits, self.batch_size = params, n_cues, n_bits, batch_size
        self.device = torch.device(device)
        self.consts = build_constants(params, n_cues, n_bits, self.device, dtype)
        self.state = initial_state(self.consts, batch_size, params.w_plastic_init_nA)
        self.t_ms = 0

    def run(self, cue_input, content_input, gate=None) -> dict:
        """Simulate T more steps. ``cue_input [T, B, C]``, ``content_input [T, B, M]`` (bool or 0/1; ``[T, C]`` and
        ``[T, M]`` drive every memory alike); ``gate [T, B]`` or ``[T]``: 1 where plasticity is on.
        Returns every population's spikes as a bool tensor ``[T, B, N]`` (on the device)."""
        torch = require("torch", "torch")
        consts, B = self.consts, self.batch_size
        cue = self._input(cue_input, self.n_cues, "cue_input")
        content = self._input(content_input, self.n_bits, "content_input")
        n_steps = cue.shape[0]
        if content.shape[0] != n_steps:
            raise ShapeError(f"cue_input has {n_steps} steps but content_input has {content.shape[0]}")
        gate = torch.ones(n_steps, B) if gate is None else torch.as_tensor(np.asarray(gate), dtype=torch.float64)
        gate = gate.reshape(n_steps, -1).expand(n_steps, B).to(consts.alpha)
        drive = torch.cat([cue, content], dim=2)          # the input populations lead the vector
        raster = torch.zeros(n_steps, B, consts.alpha.shape[0], dtype=torch.bool, device=self.device)
        state = self.state
        for t in range(n_steps):
            state, spikes = step(consts, state, drive[t].to(consts.alpha.dtype), gate[t])
            raster[t] = spikes > 0
        self.state = state
        self.t_ms += n_steps
        return {name: raster[:, :, a:b] for name, (a, b) in consts.slices.items()}

    def _input(self, x, width: int, what: str):
        torch = require("torch", "torch")
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if x.ndim == 2:
            x = x[:, None, :].expand(-1, self.batch_size, -1)
        if x.ndim != 3 or x.shape[1:] != (self.batch_size, width):
            raise ShapeError(f"{what} has shape {tuple(x.shape)}; expected [T, {self.batch_size}, {width}]")
        return x.to(device=self.device, dtype=torch.bool)

    def weights(self) -> dict[str, np.ndarray]:
        """Both plastic matrices in nA as numpy: ``cue_to_content [B, C, M]`` and ``content_to_cue [B, M, C]``."""
        return {k: w.detach().cpu().numpy().copy() for k, w in self.state.weights.items()}
