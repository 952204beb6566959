"""The CA3 memory as a Brian2 network (1 ms clock, numpy target by default), continued across runs.

Every cell: ``dv/dt = (v_rest - v + R I) / tau_m`` integrated exactly over a step with ``I`` held (``I`` is a
parameter), ``I *= exp(-dt/tau_syn)`` once per step after the threshold test, an event adds
``w * syn_event_factor``; refractory ``tau_refrac + dt``; delays ``d - 1`` ms (see :mod:`spikecl.memory.params`).

Plastic synapses (pair-based additive STDP, all-pairs traces, ``tau_plus = tau_minus``)::

    post pathway (delayed by stdp_post_lag_ms, processed first):  apost += A-;  w = clip(w + apre)
    pre pathway (no delay):  apre += A+;  w = clip(w - apost);  I_post += w * syn_event_factor

so the delivered weight already includes the update of the arriving pre spike, and a post spike seen in the same
step as a pre spike counts as depression. These are the semantics that reproduce the SpiNNaker recordings.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from spikecl.errors import ConfigError, ShapeError, require
from spikecl.memory.params import (INPUTS, PLASTIC, POOL_POPULATIONS, POPULATIONS, CA3Params, as_params, check_sizes,
                                   check_spikes, connections, population_sizes)

TARGETS = ("numpy", "cython")


def drive_arrays(cue_input, content_input, gate, gated: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The inputs as bool arrays and the gate as a float array [T] (or None), each checked to hold only 0 and 1; a
    gate that turns plasticity off is refused unless the synapses are ``gated`` (built with ``read_only_recall``)."""
    cue_input = check_spikes(np.asarray(cue_input), "cue_input").astype(bool)
    content_input = check_spikes(np.asarray(content_input), "content_input").astype(bool)
    if cue_input.ndim and content_input.ndim and not cue_input.shape[0] and not content_input.shape[0]:
        raise ShapeError("cue_input and content_input hold no time step (T = 0): nothing to simulate")   # as torch's
    if gate is not None:
        gate = check_spikes(np.asarray(gate), "gate").astype(float)
        if gate.shape != cue_input.shape[:1]:
            raise ShapeError(f"gate has shape {gate.shape}; expected one value per step of the inputs, "
                             f"{cue_input.shape[:1]}")
        if not gated and not gate.all():
            raise ConfigError("gate: these Brian2 synapses learn at every step (built without read_only_recall); "
                              "build them with CA3Params(read_only_recall=True) to gate plasticity, or pass no gate")
    return cue_input, content_input, gate


@contextlib.contextmanager
def _quiet_if_unfinished(b2):
    """Where the block stops early (Ctrl-C, an error), Brian2's warning for every object it made that no network
    holds (``unused_brian_object``, several lines each) is silenced: the error or interruption says what happened."""
    try:
        yield
    except BaseException:
        b2.BrianLogger.suppress_name("unused_brian_object")
        raise


@contextlib.contextmanager
def _codegen_target(b2, target: str):
    """Brian2's ``codegen.target`` (a preference global to the process) set to ``target`` while the block builds or
    runs a network, then put back: a user's own Brian2 networks keep the target they chose."""
    previous = b2.prefs.codegen.target
    b2.prefs.codegen.target = target
    try:
        yield
    finally:
        b2.prefs.codegen.target = previous


#: the :class:`CompiledBrian2CA3` holding Brian2's (process-global) device in standalone mode, if any
STANDALONE: dict = {"owner": None}


class Brian2CA3:
    """A CA3 memory of ``n_cues`` cues and ``n_bits`` bits in Brian2; :meth:`run` continues the simulation.

    >>> net = Brian2CA3(CA3Params(), 5, 10)                                    # doctest: +SKIP
    >>> spikes = net.run(cue_input, content_input)  # dict population -> bool raster [T, N]  # doctest: +SKIP
    """

    def __init__(self, params: CA3Params, n_cues: int, n_bits: int, target: str = "numpy") -> None:
        self._check_device()
        params = as_params(params)
        n_cues, n_bits = check_sizes(n_cues, n_bits, params)
        if target not in TARGETS:
            raise ConfigError(f"Brian2 target {target!r}: choose one of {TARGETS} (runtime targets)")
        b2 = require("brian2", "brian2")
        self._b2 = b2
        self._stimuli: dict[tuple, object] = {}       # (name, shape) -> the TimedArray its runs refill
        self._target = target
        self.params, self.n_cues, self.n_bits = params, n_cues, n_bits
        self.sizes = population_sizes(n_cues, n_bits, params)
        # delays in steps before any Brian2 object exists, so that a refused one leaves none behind
        static = [(c, params.steps(c.delay_ms, f"{c.source} -> {c.target}")) for c in connections(params, n_bits)]
        self._plastic_steps = params.steps(params.delay_plastic_ms, "the plastic projections")
        with _quiet_if_unfinished(b2), _codegen_target(b2, target):   # an interrupted build: no warning per object
            ms, mV, nA, nF = b2.ms, b2.mV, b2.nA, b2.nF
            self.dt = params.dt_ms * ms
            clock = b2.Clock(self.dt)
            self._namespace = {"v_rest": params.v_rest_mV * mV, "v_reset": params.v_reset_mV * mV,
                               "syn_decay": params.syn_decay, "k_syn": params.syn_event_factor,
                               "w_min": params.w_min_nA * nA, "w_max": params.w_max_nA * nA,
                               "a_plus": params.a_plus_nA * nA, "a_minus": params.a_minus_nA * nA,
                               "tau_plus": params.tau_plus_ms * ms, "tau_minus": params.tau_minus_ms * ms,
                               "gain_content_to_cue": params.content_to_cue_gain}
            eqs = """dv/dt = (v_rest - v + R * I) / tau_m : volt (unless refractory)
                     I : amp
                     R : ohm (constant)
                     tau_m : second (constant)
                     v_thresh : volt (constant)"""
            # inputs fire where the TimedArray stim_<name>(t - t_offset, i) is 1 (same slot as a spike generator)
            # (t_offset, the run's start, is a shared variable, not a constant of the run's namespace: Brian2 keeps
            # what it generates per namespace object for good, so new ones per run would grow the process)
            self.inputs = {name: b2.NeuronGroup(self.sizes[name], "t_offset : second (shared)",
                                                threshold=f"stim_{name}(t - t_offset, i) > 0.5", reset="",
                                                clock=clock, name=f"{name}*") for name in INPUTS}
            kinds = {**POPULATIONS, **(POOL_POPULATIONS if params.inhibition == "pool" else {})}
            self.groups = {}
            for name, (_, kind) in kinds.items():
                c_m, tau_m, v_thresh = params.cell(kind)
                g = b2.NeuronGroup(self.sizes[name], eqs, threshold="v > v_thresh", reset="v = v_reset",
                                   refractory=params.refractory_steps * self.dt, method="exact", clock=clock,
                                   name=f"{name}*")
                g.R = tau_m * ms / (c_m * nF)
                g.tau_m = tau_m * ms
                g.v_thresh = v_thresh * mV
                g.v = params.v_rest_mV * mV
                g.run_regularly("I = I * syn_decay", when="after_thresholds", name=f"{name}_decay*")
                self.groups[name] = g
            every = {**self.inputs, **self.groups}
            self.synapses = []
            for k, (c, delay) in enumerate(static):
                op = "+=" if c.sign > 0 else "-="
                s = b2.Synapses(every[c.source], every[c.target], "w : amp (constant)", on_pre=f"I_post {op} w * k_syn",
                                delay=delay * self.dt, clock=clock, name=f"static{k}*")
                s.connect(**_connect_args(c.pattern))
                s.w = c.weight_nA * nA
                self.synapses.append(s)
            self.plastic = {name: self._plastic(every[pre], every[post], name, clock)
                            for name, (pre, post) in PLASTIC.items()}
            self.monitors = {name: b2.SpikeMonitor(g, name=f"mon_{name}*") for name, g in every.items()}
            self.network = b2.Network(*every.values(), *self.synapses, *self.plastic.values(), *self.monitors.values())

    def _plastic(self, pre, post, name: str, clock):
        b2, p = self._b2, self.params
        gate = "gate(t - t_offset) * " if p.read_only_recall else ""
        gain = "gain_content_to_cue * " if name == "content_to_cue" else ""
        model = """w : amp
                   dapre/dt = -apre / tau_plus : amp (event-driven)
                   dapost/dt = -apost / tau_minus : amp (event-driven)""" + ("""
                   t_offset : second (shared)""" if p.read_only_recall else "")
        on_pre = f"""apre += a_plus
                     w = clip(w - {gate}apost, w_min, w_max)
                     I_post += {gain}w * k_syn"""
        on_post = f"""apost += a_minus
                      w = clip(w + {gate}apre, w_min, w_max)"""
        s = b2.Synapses(pre, post, model, on_pre=on_pre, on_post=on_post, clock=clock, name=f"{name}*")
        s.connect()
        s.w = p.w_plastic_init_nA * b2.nA
        s.pre.delay = self._plastic_steps * self.dt
        s.post.delay = p.stdp_post_lag_ms * b2.ms
        s.pre.order, s.post.order = 1, 0
        return s

    @property
    def t_ms(self) -> int:
        """Simulated time so far (ms)."""
        return int(round(float(self.network.t / self._b2.ms)))

    def run(self, cue_input: np.ndarray, content_input: np.ndarray, gate: np.ndarray | None = None,
            ) -> dict[str, np.ndarray]:
        """Simulate ``T`` more steps driven by ``cue_input [T, C]`` and ``content_input [T, M]`` (booleans; step 0 is
        the current time). ``gate [T]``: 1 where plasticity is on (used with ``read_only_recall``).
        Returns every population's boolean raster ``[T, N]``."""
        self._check_device()
        cue_input, content_input, gate = drive_arrays(cue_input, content_input, gate, self.params.read_only_recall)
        n_steps = cue_input.shape[0]
        if cue_input.shape != (n_steps, self.n_cues) or content_input.shape != (n_steps, self.n_bits):
            raise ShapeError(f"inputs have shapes {cue_input.shape} and {content_input.shape}; expected "
                             f"[T, {self.n_cues}] and [T, {self.n_bits}]")
        t0 = self.t_ms
        for group in (*self.inputs.values(), *(self.plastic.values() if self.params.read_only_recall else ())):
            group.t_offset = t0 * self.dt
        namespace = {**self._namespace, **self._drive(cue_input, content_input, gate)}
        with _codegen_target(self._b2, self._target):
            self.network.run(n_steps * self.dt, namespace=namespace)
        rasters = self._rasters(t0, n_steps)        # read even when cut short, so a later run reads only its own
        self._forget_spikes()
        if self.t_ms != t0 + n_steps:      # Brian2 turns Ctrl-C into a stop after the step: not a finished run
            raise KeyboardInterrupt(f"the Brian2 simulation stopped at {self.t_ms - t0} of {n_steps} ms")
        return rasters

    def _rasters(self, t0: int, n_steps: int) -> dict[str, np.ndarray]:
        """Boolean rasters ``[T, N]`` of the spikes the monitors hold, steps counted from ``t0``."""
        out = {}
        for name, mon in self.monitors.items():
            steps = np.round(np.asarray(mon.t[:] / self._b2.ms)).astype(int) - t0
            keep = steps < n_steps
            out[name] = np.zeros((n_steps, self.sizes[name]), dtype=bool)
            out[name][steps[keep], np.asarray(mon.i[:])[keep]] = True
        return out

    def _forget_spikes(self) -> None:
        """Empty the monitors (Brian2 has no public clear): a long-lived memory keeps no spikes it answered with."""
        for mon in self.monitors.values():
            mon.resize(0)
            mon.variables["N"].set_value(0)

    def _drive(self, cue_input: np.ndarray, content_input: np.ndarray, gate: np.ndarray | None) -> dict:
        """TimedArrays of one run (step 0 = its start; one silent / plastic step appended, which later times
        read): ``stim_INcue [T+1, C]``, ``stim_INcont [T+1, M]`` and, for read-only recall, ``gate [T+1]``. Runs of
        one length refill the same ones (see ``t_offset`` in ``__init__``)."""
        n_steps = len(cue_input)
        pad = lambda x: np.concatenate([np.asarray(x, dtype=float), np.zeros((1,) + np.shape(x)[1:])])  # noqa: E731
        out = {"stim_INcue": self._stimulus("stim_INcue", pad(cue_input)),
               "stim_INcont": self._stimulus("stim_INcont", pad(content_input))}
        if self.params.read_only_recall:
            g = np.ones(n_steps) if gate is None else np.asarray(gate, dtype=float)
            out["gate"] = self._stimulus("gate", np.concatenate([g, [1.0]]))
        return out

    def _stimulus(self, name: str, values: np.ndarray):
        """The TimedArray of ``name`` for ``values`` (float64): this memory's one of that shape, refilled."""
        array = self._stimuli.get((name, values.shape))
        if array is None:
            array = self._stimuli[name, values.shape] = self._b2.TimedArray(values, dt=self.dt)
        else:
            array.values[...] = values
        return array

    def _check_device(self) -> None:
        """A ConfigError where Brian2's device (global to the process) is not this network's: a runtime network while
        a :class:`CompiledBrian2CA3` holds it in standalone mode or your own ``brian2.set_device`` set another, or
        a compiled one after its :meth:`close` (Brian2 would fail deep inside, saying the simulation has not been
        run)."""
        owner = STANDALONE["owner"]
        if owner is not None and owner is not self:
            raise ConfigError("a CompiledBrian2CA3 holds Brian2's device in standalone mode (the device is global to "
                              "the process); close() it before building or running another Brian2 CA3 memory")
        devices = sys.modules.get("brian2.devices.device")   # not imported yet: in runtime mode
        if owner is None and devices is not None and not isinstance(devices.get_device(), devices.RuntimeDevice):
            raise ConfigError(f"Brian2's device is {type(devices.get_device()).__name__}, set outside spikecl (the "
                              "device is global to the process); brian2.set_device('runtime') before building or "
                              "running a Brian2 CA3 memory")

    def weights(self) -> dict[str, np.ndarray]:
        """Both plastic matrices in nA: ``cue_to_content [C, M]`` and ``content_to_cue [M, C]``."""
        self._check_device()
        out = {}
        for name, s in self.plastic.items():
            w = np.zeros((len(s.source), len(s.target)))
            w[np.asarray(s.i[:]), np.asarray(s.j[:])] = np.asarray(s.w[:] / self._b2.nA)
            out[name] = w
        return out


def _connect_args(pattern: str) -> dict:
    return {"one_to_one": {"j": "i"}, "all_to_all": {}, "all_but_self": {"condition": "i != j"}}[pattern]


#: Brian2's own value of ``devices.cpp_standalone.extra_make_args_unix``: ``make -j``, as many compilers at once as
#: the build has source files
BRIAN2_MAKE_ARGS = ["-j"]


@contextlib.contextmanager
def _bounded_make(b2, cpus: int | None = None):
    """Within the block, Brian2's standalone build runs ``make -j<cpus>`` (default: the CPUs this process may use)
    where its make arguments are still Brian2's ``-j``, which starts a compiler for each of this network's ~150
    source files at once (dozens of ``g++ -O3`` sharing a laptop's cores and memory); a value of the user's own is
    kept. Put back after the block."""
    previous = list(b2.prefs.devices.cpp_standalone.extra_make_args_unix)
    if previous == BRIAN2_MAKE_ARGS:
        cpus = cpus or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{cpus}"]
    try:
        yield
    finally:
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = previous


class CompiledBrian2CA3(Brian2CA3):
    """The same network on Brian2's ``cpp_standalone`` device, compiled once for schedules of up to ``max_steps``
    steps; every :meth:`run` simulates a fresh (empty) memory with new inputs passed to the compiled binary as
    ``run_args`` (no recompilation). Compiling takes minutes; call :meth:`close` to return Brian2 to runtime mode.

    >>> net = CompiledBrian2CA3(CA3Params(), 5, 10, max_steps=200, directory="build/ca3")   # doctest: +SKIP
    >>> spikes = net.run(cue_input, content_input)                                            # doctest: +SKIP
    """

    def __init__(self, params: CA3Params, n_cues: int, n_bits: int, max_steps: int, directory: str) -> None:
        b2 = require("brian2", "brian2")
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ConfigError(f"max_steps: expected a positive integer, got {max_steps!r}")
        self.directory, self.max_steps, self._closed = str(directory), int(max_steps), False
        self._check_device()                           # another compiled network holding the device
        b2.set_device("cpp_standalone", directory=self.directory, build_on_run=False)
        STANDALONE["owner"] = self
        try:
            super().__init__(params, n_cues, n_bits)
            self._arrays = self._drive(np.zeros((max_steps, n_cues)), np.zeros((max_steps, n_bits)), None)
            self.network.run(max_steps * self.dt, namespace={**self._namespace, **self._arrays})
            with _bounded_make(b2):
                b2.device.build(directory=self.directory, compile=True, run=False, with_output=False)
        except BaseException:                          # Ctrl-C too: Brian2 is not left in standalone mode
            self.close()
            raise

    @property
    def t_ms(self) -> int:
        return 0

    def run(self, cue_input: np.ndarray, content_input: np.ndarray, gate: np.ndarray | None = None,
            ) -> dict[str, np.ndarray]:
        """Simulate a fresh memory driven by ``cue_input [T, C]`` and ``content_input [T, M]`` (T <= max_steps);
        returns every population's boolean raster ``[T, N]``; :meth:`weights` then gives its weights after the T
        steps (refused where activity went on past them)."""
        self._check_device()
        cue_input, content_input, gate = drive_arrays(cue_input, content_input, gate, self.params.read_only_recall)
        n_steps = cue_input.shape[0]
        if cue_input.shape != (n_steps, self.n_cues) or content_input.shape != (n_steps, self.n_bits) \
                or n_steps > self.max_steps:
            raise ShapeError(f"inputs have shapes {cue_input.shape} and {content_input.shape}; expected "
                             f"[T <= {self.max_steps}, {self.n_cues}] and [T, {self.n_bits}]")
        grow = lambda x: np.concatenate([x, np.zeros((self.max_steps - n_steps,) + x.shape[1:], x.dtype)])  # noqa
        gate = None if gate is None else grow(np.asarray(gate, dtype=float))
        fresh = self._drive(grow(cue_input), grow(content_input), gate)
        self._b2.device.run(directory=self.directory, with_output=False,
                            run_args={self._arrays[k]: fresh[k].values for k in self._arrays})
        completed = getattr(self._b2.device, "_last_run_completed_fraction", 1.0)
        if completed < 1.0:                # the binary, like Brian2, stops after the step on Ctrl-C and exits 0
            raise KeyboardInterrupt(f"the compiled Brian2 simulation stopped at {completed:.0%} of its "
                                    f"{self.max_steps} ms")
        whole = self._rasters(0, self.max_steps)
        settled = n_steps - int(self.params.stdp_post_lag_ms / self.params.dt_ms)   # no STDP event from here on
        self._learned_after = n_steps < self.max_steps and any(r[max(settled, 0):].any() for r in whole.values())
        return {name: r[:n_steps] for name, r in whole.items()}

    def weights(self) -> dict[str, np.ndarray]:
        """Both plastic matrices in nA after the last :meth:`run`'s T steps; refused (ConfigError) where spikes
        went on past them: the binary simulates all ``max_steps`` steps, so they learned after T."""
        if getattr(self, "_learned_after", False):
            raise ConfigError("CompiledBrian2CA3.weights: activity went on past the inputs' last step, and the "
                              "compiled run of max_steps steps learned from it; end the inputs with silent steps "
                              "(schedules from make_schedule do) or compile with max_steps = T")
        return super().weights()

    def _check_device(self) -> None:
        if self._closed:
            raise ConfigError("this CompiledBrian2CA3 was closed (Brian2 is back in runtime mode); build a new one")
        super()._check_device()

    def close(self) -> None:
        """Leave standalone mode (Brian2's device is global); the network cannot run after it."""
        if self._closed:
            return
        self._closed = True
        if STANDALONE["owner"] is self:
            STANDALONE["owner"] = None
        b2 = require("brian2", "brian2")
        b2.device.reinit()
        b2.set_device("runtime")
