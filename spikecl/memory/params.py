"""Parameters and wiring of the CA3 content-addressable memory (Casanueva-Morato et al., Neural Networks 2024).

:class:`CA3Params` holds every published constant with its unit in the name; :func:`connections` turns it into the
list of static projections for a memory of ``C`` cues and ``M`` content bits, which both simulators (Brian2 and the
torch stepper) build from, so the two cannot drift apart.

Populations (recording names; sizes)::

    INcue (C), INcont (M)                 spike sources: the one-hot cue and the content bits
    CA3cueCueRecall (C)   "S1Cue"         slow cells driven by the cue input
    CA3contCueRecall (M)  "S1Cont"        slow cells driven by the content input or by S1Cue (recall by cue)
    CA3contCond (M)       "Cond"          fast gate: passes S1Cont on to S2Cont unless a cue is active
    CA3contCondInt (1)                    fast interneuron: S1Cont -> it -> Cond (excitatory feedback)
    CA3contContRecall (M) "S2Cont"        slow cells driven by Cond
    CA3cueContRecall (C)  "S2Cue"         fast cells driven by S1Cue or by S2Cont (recall by content)
    CA3MergeCue (C), CA3MergeCont (M)     slow cells merging the two paths
    OUTcue (C), OUTcont (M)               the output layer (slow cells, threshold -57.5 mV)

Discrete-time semantics that reproduce the SpiNNaker recordings spike for spike (dt = 1 ms): the membrane is
integrated exactly over a step with the synaptic current held constant; the current decays once per step after the
threshold test; a synaptic event adds ``w * syn_event_factor`` to the current, so it first moves the membrane one
step later, and every transmission delay ``d`` is simulated as ``d - 1`` steps; the refractory period is one skipped
update (``tau_refrac + dt``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from spikecl.errors import ConfigError, ShapeError

#: population name -> (size symbol, cell kind); size symbol "C" (cues), "M" (content bits) or "1".
POPULATIONS: dict[str, tuple[str, str]] = {
    "CA3cueCueRecall": ("C", "slow"),
    "CA3contCueRecall": ("M", "slow"),
    "CA3contCond": ("M", "fast"),
    "CA3contCondInt": ("1", "fast"),
    "CA3contContRecall": ("M", "slow"),
    "CA3cueContRecall": ("C", "fast"),
    "CA3MergeCue": ("C", "slow"),
    "CA3MergeCont": ("M", "slow"),
    "OUTcue": ("C", "out"),
    "OUTcont": ("M", "out"),
}
#: the spike sources: the cue (one-hot) and the content bits
INPUTS: dict[str, str] = {"INcue": "C", "INcont": "M"}
#: populations added by the pooled winner-take-all option: one shared inhibitory interneuron per inhibition path
POOL_POPULATIONS: dict[str, tuple[str, str]] = {"CA3cuePoolCue": ("1", "fast"), "CA3cuePoolCont": ("1", "fast")}
#: the two plastic projections: recall by cue (S1Cue -> S1Cont) and recall by content (S2Cont -> S2Cue)
PLASTIC: dict[str, tuple[str, str]] = {
    "cue_to_content": ("CA3cueCueRecall", "CA3contCueRecall"),
    "content_to_cue": ("CA3contContRecall", "CA3cueContRecall"),
}
INHIBITION_SCHEMES = ("all_to_all", "pool")


class Connection(NamedTuple):
    """A static projection. ``pattern``: "one_to_one", "all_to_all" or "all_but_self"; ``sign``: +1 excitatory,
    -1 inhibitory; ``weight_nA`` > 0; ``delay_ms``: the published delay (simulated as ``delay_ms - dt_ms``)."""

    source: str
    target: str
    pattern: str
    weight_nA: float
    delay_ms: float
    sign: int


_TYPE_NAMES = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "a name"}


def _is_a(value, type_name: str) -> bool:
    """``value`` is of the field type ``type_name`` (an int is a float; a bool is neither a number nor a count)."""
    if type_name == "bool" or isinstance(value, bool):
        return type_name == "bool" and isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, (int, float, np.integer, np.floating))
    if type_name == "int":
        return isinstance(value, (int, np.integer))
    return isinstance(value, str)


#: the longest delay, refractory period or STDP lag (ms) a CA3 model may have: the simulators keep a buffer of
#: this many steps per neuron (a memory operation lasts tens of ms)
MAX_DELAY_MS = 10_000.0


@dataclass(frozen=True)
class CA3Params:
    """Every constant of the published CA3 CAM (PyNN ``IF_curr_exp`` cells), units in the names.

    The defaults are the published model; the three options at the end are off by default:
    ``read_only_recall`` locks both plastic matrices during recall operations, ``match_k`` >= 2 makes recall by
    content answer only cues sharing at least k bits with the fragment (0 or 1: the published OR-matching), and
    ``inhibition = "pool"`` replaces the all-to-all cue inhibition (quadratic in C) by shared inhibitory
    interneurons with self-compensation (linear in C).
    """

    dt_ms: float = 1.0
    # neurons
    v_rest_mV: float = -60.0
    v_reset_mV: float = -60.0
    v_thresh_mV: float = -57.0
    v_thresh_out_mV: float = -57.5
    tau_refrac_ms: float = 1.0
    tau_syn_ms: float = 0.3              # tau_syn_E = tau_syn_I
    c_m_slow_nF: float = 0.27
    tau_m_slow_ms: float = 3.0
    c_m_fast_nF: float = 0.14
    tau_m_fast_ms: float = 0.5
    # static projections (weight nA, delay ms)
    w_input_nA: float = 6.0
    delay_input_ms: float = 1.0
    w_s1cue_s2cue_nA: float = 6.0
    delay_s1cue_s2cue_ms: float = 2.0
    w_s1cue_s2cue_inh_per_bit_nA: float = 6.0     # x M, all-to-all without self
    delay_s1cue_s2cue_inh_ms: float = 3.0
    w_s1cue_cond_inh_nA: float = 6.0
    delay_s1cue_cond_inh_ms: float = 2.0
    w_s1cont_cond_nA: float = 9.0
    delay_s1cont_cond_ms: float = 1.0
    w_cond_s2cont_nA: float = 6.0
    delay_cond_s2cont_ms: float = 1.0
    w_s1cont_condint_nA: float = 6.0
    delay_s1cont_condint_ms: float = 1.0
    w_condint_cond_nA: float = 2.0
    delay_condint_cond_ms: float = 1.0
    w_s2cue_s2cue_inh_per_bit_nA: float = 6.0     # x M, all-to-all without self
    delay_s2cue_s2cue_inh_ms: float = 2.0
    w_merge_nA: float = 6.0
    delay_s1_merge_ms: float = 3.0
    delay_s2_merge_ms: float = 1.0
    w_output_nA: float = 6.0
    delay_output_ms: float = 1.0
    # plastic projections: pair-based additive STDP, all-pairs traces
    w_plastic_init_nA: float = 0.0
    delay_plastic_ms: float = 1.0
    tau_plus_ms: float = 3.0
    tau_minus_ms: float = 3.0
    a_plus_nA: float = 6.0
    a_minus_nA: float = 6.0
    w_min_nA: float = 0.0
    w_max_nA: float = 6.0
    stdp_post_lag_ms: float = 1.0                 # the rule sees a post spike this late (>= delay_plastic_ms)
    # operations
    learn_hold_steps: int = 3                     # a learn holds cue and content input for this many steps
    # (relearning forgets only if the held cue spikes again after the rule saw the forgotten echo: see docs/ca3.md)
    # options (off by default = the published model)
    read_only_recall: bool = False
    match_k: int = 0
    inhibition: str = "all_to_all"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not _is_a(value, f.type):
                raise ConfigError(f"CA3Params.{f.name}: expected {_TYPE_NAMES[f.type]}, got {value!r}")
            if isinstance(value, (np.integer, np.floating)):      # a numpy number is held, checked, as Python's
                value = int(value) if f.type == "int" else float(value)
                object.__setattr__(self, f.name, value)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"CA3Params.{f.name}: expected a finite number, got {value!r}")
        if self.dt_ms != 1.0:
            raise ConfigError(f"CA3Params.dt_ms: the model is defined at 1 ms steps, got {self.dt_ms}")
        positive = ("tau_syn_ms", "c_m_slow_nF", "tau_m_slow_ms", "c_m_fast_nF", "tau_m_fast_ms", "tau_plus_ms",
                    "tau_minus_ms")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"CA3Params.{name}: must be > 0, got {getattr(self, name)}")
        for f in fields(self):
            if f.name.startswith("delay_") and not (self.dt_ms <= getattr(self, f.name) <= MAX_DELAY_MS
                                                    and float(getattr(self, f.name)).is_integer()):
                raise ConfigError(f"CA3Params.{f.name}: delays are whole milliseconds in 1..{MAX_DELAY_MS:g}, got "
                                  f"{getattr(self, f.name)}")
        for name in ("stdp_post_lag_ms", "tau_refrac_ms"):
            if getattr(self, name) > MAX_DELAY_MS:
                raise ConfigError(f"CA3Params.{name}: at most {MAX_DELAY_MS:g} ms, got {getattr(self, name):g}")
        if self.stdp_post_lag_ms < 0 or not float(self.stdp_post_lag_ms).is_integer():
            raise ConfigError(f"CA3Params.stdp_post_lag_ms: a whole number of ms >= 0, got {self.stdp_post_lag_ms}")
        if self.stdp_post_lag_ms < self.delay_plastic_ms:
            raise ConfigError(f"CA3Params.stdp_post_lag_ms: {self.stdp_post_lag_ms:g} ms is shorter than "
                              f"delay_plastic_ms = {self.delay_plastic_ms:g} ms: the rule would see each post spike "
                              "before the pre spike that drove it arrives and learn nothing; set it to "
                              f"{self.delay_plastic_ms:g} (the published pairing: lag = plastic delay)")
        self._check_signs()
        self._check_drive()
        if not self.w_min_nA <= self.w_plastic_init_nA <= self.w_max_nA:
            raise ConfigError("CA3Params: need w_min_nA <= w_plastic_init_nA <= w_max_nA")
        if self.tau_refrac_ms < 0 or not float(self.tau_refrac_ms).is_integer():
            raise ConfigError(f"CA3Params.tau_refrac_ms: a whole number of ms >= 0 (the model steps 1 ms), got "
                              f"{self.tau_refrac_ms}")
        if self.learn_hold_steps < 1:
            raise ConfigError(f"CA3Params.learn_hold_steps: must be >= 1, got {self.learn_hold_steps}")
        if self.match_k < 0:
            raise ConfigError(f"CA3Params.match_k: must be >= 0, got {self.match_k}")
        if self.match_k >= 2 and self.w_max_nA <= 0:
            raise ConfigError(f"CA3Params.w_max_nA: match_k = {self.match_k} counts fully potentiated bits of "
                              f"w_max_nA each, so it must be > 0, got {self.w_max_nA}")
        if self.inhibition not in INHIBITION_SCHEMES:
            raise ConfigError(f"CA3Params.inhibition: {self.inhibition!r}; choose one of {INHIBITION_SCHEMES}")
        self._check_pool_delays()
        self._check_readout_timing()

    def _check_signs(self) -> None:
        """Weights are magnitudes (a connection's sign is its own), STDP amplitudes too, and a threshold lies above
        the resting potential: otherwise inhibition turns into excitation, or a cell fires at rest."""
        for f in fields(self):
            if f.name.endswith("_nA") and getattr(self, f.name) < 0:
                raise ConfigError(f"CA3Params.{f.name}: weights and STDP amplitudes are magnitudes >= 0 (each "
                                  f"connection carries its sign), got {getattr(self, f.name)}")
        for name in ("v_thresh_mV", "v_thresh_out_mV"):
            if getattr(self, name) <= self.v_rest_mV:
                raise ConfigError(f"CA3Params.{name}: {getattr(self, name):g} mV is not above v_rest_mV = "
                                  f"{self.v_rest_mV:g} mV; a cell would fire at rest")

    def _check_pool_delays(self) -> None:
        """Pooled inhibition relays each cue inhibition through an interneuron that costs one step, so its delay
        must leave at least one step for the pool -> S2Cue projection (>= 2 dt)."""
        if self.inhibition != "pool":
            return
        for name in ("delay_s1cue_s2cue_inh_ms", "delay_s2cue_s2cue_inh_ms"):
            if getattr(self, name) < 2 * self.dt_ms:
                raise ConfigError(f"CA3Params.{name}: {getattr(self, name):g} ms; inhibition = \"pool\" relays it "
                                  f"through an interneuron that costs {self.dt_ms:g} ms, so it must be >= "
                                  f"{2 * self.dt_ms:g} ms (2 dt_ms)")

    def _check_readout_timing(self) -> None:
        """Refuse delays whose answers have no single readout step: the routes into the merge layers must arrive
        together, and a learn's forgotten bits must not reach the output with the echo of its held input."""
        routes = {"delay_s1cue_s2cue_ms + delay_s2_merge_ms": self.delay_s1cue_s2cue_ms + self.delay_s2_merge_ms,
                  "delay_s1cont_cond_ms + delay_cond_s2cont_ms + delay_s2_merge_ms":
                      self.delay_s1cont_cond_ms + self.delay_cond_s2cont_ms + self.delay_s2_merge_ms}
        for names, total in routes.items():
            if total != self.delay_s1_merge_ms:
                raise ConfigError(f"CA3Params.delay_s1_merge_ms: {self.delay_s1_merge_ms:g} ms, but {names} = "
                                  f"{total:g} ms; both routes into the merge layers must take the same time, or the "
                                  "answer has no single step to be read at")
        lag, every = self.recall_steps - self.echo_steps, self.refractory_steps
        if lag % every == 0 and lag < self.learn_hold_steps:
            raise ConfigError(f"CA3Params: a learn's forgotten bits reach the output delay_plastic_ms = "
                              f"{self.delay_plastic_ms:g} ms after its echo, when its held input (learn_hold_steps = "
                              f"{self.learn_hold_steps}, a spike every {every} steps by tau_refrac_ms = "
                              f"{self.tau_refrac_ms:g}) echoes again, so the two cannot be told apart; change one")

    def _check_drive(self) -> None:
        """A one-line ConfigError where a time constant or capacitance leaves a 1 ms step no finite, non-zero drive
        (``1 - exp(-dt/tau)`` rounds to 0 beyond about 1e16 ms; ``tau/c`` overflows for a capacitance near 0): the
        membranes would never move, or turn NaN, and every answer would be empty without a word."""
        cells = {"slow": ("c_m_slow_nF", "tau_m_slow_ms"), "fast": ("c_m_fast_nF", "tau_m_fast_ms")}
        for kind, names in cells.items():
            c_m, tau_m, _ = self.cell(kind)
            gain = tau_m / c_m * (1.0 - math.exp(-self.dt_ms / tau_m)) if c_m > 0 else math.inf
            if not (math.isfinite(gain) and gain > 0):
                raise ConfigError(f"CA3Params.{names[0]} = {c_m:g}, {names[1]} = {tau_m:g}: a 1 ms step's drive of "
                                  f"the {kind} cells is {gain:g} mV per nA; choose values the step can resolve")
        if not (math.isfinite(self.syn_event_factor) and self.syn_event_factor > 0):
            raise ConfigError(f"CA3Params.tau_syn_ms = {self.tau_syn_ms:g}: a synaptic event adds "
                              f"{self.syn_event_factor:g} of its weight in a 1 ms step; choose a value it can resolve")

    # --- derived quantities of the 1 ms discretisation -------------------------------------------------------
    @property
    def syn_event_factor(self) -> float:
        """Current added per nA of weight by one synaptic event: ``(tau_syn/dt)(1 - exp(-dt/tau_syn))`` (0.289)."""
        return self.tau_syn_ms / self.dt_ms * (1.0 - math.exp(-self.dt_ms / self.tau_syn_ms))

    @property
    def syn_decay(self) -> float:
        """Synaptic current kept from one step to the next, ``exp(-dt/tau_syn)``."""
        return math.exp(-self.dt_ms / self.tau_syn_ms)

    @property
    def refractory_steps(self) -> int:
        """Steps from a spike until the membrane integrates again (2: the step after a spike is skipped)."""
        return int(round((self.tau_refrac_ms + self.dt_ms) / self.dt_ms))

    def cell(self, kind: str) -> tuple[float, float, float]:
        """(c_m nF, tau_m ms, v_thresh mV) of a cell kind: "slow", "fast" or "out"."""
        if kind == "fast":
            return self.c_m_fast_nF, self.tau_m_fast_ms, self.v_thresh_mV
        threshold = self.v_thresh_out_mV if kind == "out" else self.v_thresh_mV
        return self.c_m_slow_nF, self.tau_m_slow_ms, threshold

    def steps(self, delay_ms: float, what: str = "a projection") -> int:
        """Simulated transmission delay in steps for a published delay: ``delay/dt - 1``; a one-line ConfigError
        naming ``what`` where that is below 0 (a delay shorter than one step cannot be simulated)."""
        steps = int(round(delay_ms / self.dt_ms)) - 1
        if steps < 0:
            raise ConfigError(f"CA3Params: {what} has a delay of {delay_ms:g} ms, simulated as {steps} steps; every "
                              f"delay must be at least dt_ms = {self.dt_ms:g} ms")
        return steps

    @property
    def echo_steps(self) -> int:
        """Steps from an operation's start to the echo of its input on the output layer (IN -> S1 -> Merge -> OUT:
        ``delay_input_ms + delay_s1_merge_ms + delay_output_ms``; 5 published)."""
        return int(round((self.delay_input_ms + self.delay_s1_merge_ms + self.delay_output_ms) / self.dt_ms))

    @property
    def recall_steps(self) -> int:
        """Steps from an operation's start to what a plastic projection recalls on the output layer (the echo's
        route plus ``delay_plastic_ms``; 6 published)."""
        return self.echo_steps + int(round(self.delay_plastic_ms / self.dt_ms))

    @property
    def content_to_cue_gain(self) -> float:
        """Scale of the content -> cue transmission: 1 for OR-matching; for ``match_k`` = k >= 2 the fast S2Cue cell
        crosses threshold with k, never with k - 1, simultaneous fully-potentiated bits (k - 1/2 bits' worth)."""
        if self.match_k <= 1:
            return 1.0
        c_m, tau_m, v_thresh = self.cell("fast")
        alpha = math.exp(-self.dt_ms / tau_m)
        one_bit_mV = self.w_max_nA * self.syn_event_factor * (tau_m / c_m) * (1.0 - alpha)
        return (v_thresh - self.v_rest_mV) / ((self.match_k - 0.5) * one_bit_mV)


def as_params(params: CA3Params | None) -> CA3Params:
    """``params``, or the published model's for None; a one-line ConfigError for anything else (e.g. a dict)."""
    if params is None:
        return CA3Params()
    if not isinstance(params, CA3Params):
        raise ConfigError(f"params: expected CA3Params (or None for the published model), got "
                          f"{type(params).__name__}")
    return params


def check_sizes(n_cues, n_bits, params: CA3Params | None = None) -> tuple[int, int]:
    """(C, M) as ints: each a positive integer, and M at least ``params.match_k`` (a fragment needs k matching
    content bits to answer); else a one-line ConfigError."""
    for value, what in ((n_cues, "n_cues"), (n_bits, "n_bits")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{what}: expected a positive integer, got {value!r}")
    if as_params(params).match_k > n_bits:
        raise ConfigError(f"match_k = {as_params(params).match_k} exceeds the {n_bits} content bits: recall by "
                          f"content could never answer")
    return int(n_cues), int(n_bits)


def check_spikes(x, what: str):
    """``x`` (numpy array or torch tensor) as it is when every value is 0 or 1 (bool, integers or floats); else a
    one-line ShapeError naming ``what`` and a value found (NaN included)."""
    if str(x.dtype) not in ("bool", "torch.bool"):
        wrong = (x != 0) & (x != 1)
        if bool(wrong.any()):
            raise ShapeError(f"{what}: spikes are 0 or 1, found {x[wrong].reshape(-1)[0].item()!r}")
    return x


def population_sizes(n_cues: int, n_bits: int, params: CA3Params | None = None) -> dict[str, int]:
    """Number of neurons of every population (inputs included) for C = ``n_cues``, M = ``n_bits`` (checked:
    :func:`check_sizes`)."""
    n_cues, n_bits = check_sizes(n_cues, n_bits, params)
    size = {"C": n_cues, "M": n_bits, "1": 1}
    pops = dict(POPULATIONS)
    if as_params(params).inhibition == "pool":
        pops.update(POOL_POPULATIONS)
    return {**{k: size[s] for k, s in INPUTS.items()}, **{k: size[s] for k, (s, _) in pops.items()}}


def population_slices(n_cues: int, n_bits: int, params: CA3Params | None = None) -> dict[str, tuple[int, int]]:
    """population -> its neurons ``[start, stop)`` in one vector of every population (inputs first), the layout
    of the torch stepper's rasters."""
    slices, start = {}, 0
    for name, n in population_sizes(n_cues, n_bits, params).items():
        slices[name] = (start, start + n)
        start += n
    return slices


def connections(params: CA3Params, n_bits: int) -> list[Connection]:
    """The static projections of the memory with M = ``n_bits`` (the plastic ones are in :data:`PLASTIC`)."""
    p = params
    inh_cue = p.w_s1cue_s2cue_inh_per_bit_nA * n_bits
    inh_lateral = p.w_s2cue_s2cue_inh_per_bit_nA * n_bits
    out = [
        Connection("INcue", "CA3cueCueRecall", "one_to_one", p.w_input_nA, p.delay_input_ms, +1),
        Connection("INcont", "CA3contCueRecall", "one_to_one", p.w_input_nA, p.delay_input_ms, +1),
        Connection("CA3cueCueRecall", "CA3cueContRecall", "one_to_one", p.w_s1cue_s2cue_nA, p.delay_s1cue_s2cue_ms,
                   +1),
        Connection("CA3cueCueRecall", "CA3contCond", "all_to_all", p.w_s1cue_cond_inh_nA, p.delay_s1cue_cond_inh_ms,
                   -1),
        Connection("CA3contCueRecall", "CA3contCond", "one_to_one", p.w_s1cont_cond_nA, p.delay_s1cont_cond_ms, +1),
        Connection("CA3contCond", "CA3contContRecall", "one_to_one", p.w_cond_s2cont_nA, p.delay_cond_s2cont_ms, +1),
        Connection("CA3contCueRecall", "CA3contCondInt", "all_to_all", p.w_s1cont_condint_nA,
                   p.delay_s1cont_condint_ms, +1),
        Connection("CA3contCondInt", "CA3contCond", "all_to_all", p.w_condint_cond_nA, p.delay_condint_cond_ms, +1),
        Connection("CA3cueCueRecall", "CA3MergeCue", "one_to_one", p.w_merge_nA, p.delay_s1_merge_ms, +1),
        Connection("CA3cueContRecall", "CA3MergeCue", "one_to_one", p.w_merge_nA, p.delay_s2_merge_ms, +1),
        Connection("CA3contCueRecall", "CA3MergeCont", "one_to_one", p.w_merge_nA, p.delay_s1_merge_ms, +1),
        Connection("CA3contContRecall", "CA3MergeCont", "one_to_one", p.w_merge_nA, p.delay_s2_merge_ms, +1),
        Connection("CA3MergeCue", "OUTcue", "one_to_one", p.w_output_nA, p.delay_output_ms, +1),
        Connection("CA3MergeCont", "OUTcont", "one_to_one", p.w_output_nA, p.delay_output_ms, +1),
    ]
    if p.inhibition == "all_to_all":
        out += [
            Connection("CA3cueCueRecall", "CA3cueContRecall", "all_but_self", inh_cue, p.delay_s1cue_s2cue_inh_ms, -1),
            Connection("CA3cueContRecall", "CA3cueContRecall", "all_but_self", inh_lateral,
                       p.delay_s2cue_s2cue_inh_ms, -1),
        ]
    else:
        out += _pooled_inhibition("CA3cueCueRecall", "CA3cuePoolCue", inh_cue, p.delay_s1cue_s2cue_inh_ms, p)
        out += _pooled_inhibition("CA3cueContRecall", "CA3cuePoolCont", inh_lateral, p.delay_s2cue_s2cue_inh_ms, p)
    return out


def _pooled_inhibition(source: str, pool: str, weight_nA: float, delay_ms: float, p: CA3Params) -> list[Connection]:
    """All-but-self inhibition source -> S2Cue with 3C synapses: source -> pool (all-to-one, 1 ms), pool -> S2Cue
    (one-to-all, ``delay - 1`` ms: the pool cell's spike costs one step), and a one-to-one excitation of the same
    weight and total delay cancelling each active cue's own share. Any number of active sources gives one pool
    spike, so the inhibition no longer scales with the number of active cues."""
    return [
        Connection(source, pool, "all_to_all", p.w_input_nA, p.dt_ms, +1),
        Connection(pool, "CA3cueContRecall", "all_to_all", weight_nA, delay_ms - p.dt_ms, -1),
        Connection(source, "CA3cueContRecall", "one_to_one", weight_nA, delay_ms, +1),
    ]


def synapse_count(n_cues: int, n_bits: int, params: CA3Params | None = None) -> dict[str, int]:
    """Synapses of the memory: ``plastic`` (2CM), ``static`` and ``internal`` (both without the input and output
    layers' projections; the published model has 3CM + 2C(C-1) + 3C + 6M internal ones) and ``total`` (all)."""
    params = as_params(params)
    sizes = population_sizes(n_cues, n_bits, params)
    count = {"one_to_one": lambda s, t: sizes[t], "all_to_all": lambda s, t: sizes[s] * sizes[t],
             "all_but_self": lambda s, t: sizes[s] * (sizes[t] - 1)}
    static = internal = 0
    for c in connections(params, n_bits):
        n = count[c.pattern](c.source, c.target)
        static += n
        internal += 0 if (c.source in INPUTS or c.target.startswith("OUT")) else n
    plastic = 2 * n_cues * n_bits
    return {"plastic": plastic, "static": internal, "internal": internal + plastic, "total": static + plastic}
