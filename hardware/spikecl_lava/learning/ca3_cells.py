"""CA3 cells on Lava: a floating-point neuron process with spikecl's 1 ms discretisation of PyNN ``IF_curr_exp``.

Lava's ``LIFRefractory`` has the same update order once the membrane gain is folded into the weights
(:mod:`spikecl_lava.learning.ca3_lif`), but forms its products in another order; this custom
``PyLoihiProcessModel`` performs the stepper's own float operations in the stepper's order, so its values equal the
stepper's bit for bit, and it also takes ``v_reset != v_rest``. One Lava step ``t`` is stepper row ``t - 1``:

1. current: ``i = i * syn_decay + a_in + plastic_scale * a_plastic`` (``a_in``: static synaptic currents, nA;
   ``a_plastic``: summed plastic weights of spiking sources, nA) -- the end of the previous row;
2. membrane: ``v = (v - v_rest) alpha + v_rest + gain i``; a cell that fired in the last ``refractory_steps - 1``
   steps holds ``v_reset``;
3. threshold ``s = v > v_thresh``, reset ``v = v_reset``; ``s_out`` sends ``s`` and ``s_out_bap`` (to a learning
   synapse) the spikes of ``bap_lag`` steps ago: the STDP rule sees post spikes that late.

The spikes are kept in the process and saved once to ``record`` (``.npy``, bool ``[steps, n]``) at the last step.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, NamedTuple

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class Population(NamedTuple):
    """The ports of one population in the process graph. ``current_scale``: factor folded into the static weights
    onto it; ``plastic_scale``: factor folded into the plastic weights onto it (1: the cells scale themselves);
    ``read()``: its raster, bool ``[steps, n]``, once the run has ended."""

    a_in: object
    a_plastic: object
    s_out: object
    s_bap: object
    current_scale: float
    plastic_scale: float
    read: Callable[[], np.ndarray]


def custom_population(name: str, attrs: dict, net: dict, bap_lag: int, steps: int, record: str) -> Population:
    """One population as :class:`CA3Cells` (``attrs``: its file attributes; ``net``: the network's); its raster
    is saved to ``record`` as bool ``[steps, n]``."""
    cells = CA3Cells(n=attrs["size"], alpha=attrs["alpha"], gain=attrs["gain"], v_thresh=attrs["v_thresh_mV"],
                     v_rest=net["v_rest_mV"], v_reset=net["v_reset_mV"], syn_decay=net["syn_decay"],
                     refractory_steps=int(net["refractory_steps"]),
                     reset_below_threshold=bool(net["reset_below_threshold"]), plastic_scale=attrs["plastic_scale"],
                     bap_lag=bap_lag, steps=steps, record=record, name=name)
    return Population(cells.a_in, cells.a_plastic, cells.s_out, cells.s_out_bap, 1.0, 1.0,
                      lambda: np.load(record).astype(bool))


class CA3Cells(AbstractProcess):
    """``n`` cells of one population. ``alpha``: membrane decay per step; ``gain``: mV per nA of held current;
    ``v_thresh``, ``v_rest``, ``v_reset``: mV; ``syn_decay``: current decay per step; ``refractory_steps``: steps
    from a spike until the membrane integrates again; ``reset_below_threshold``: ``v_reset < v_thresh`` (then the
    refractory hold alone keeps the cell silent); ``plastic_scale``: nA of current per nA of plastic weight;
    ``bap_lag``: steps by which ``s_out_bap`` lags ``s_out``; ``steps``, ``record``: where to save the raster."""

    def __init__(self, *, n: int, alpha: float, gain: float, v_thresh: float, v_rest: float, v_reset: float,
                 syn_decay: float, refractory_steps: int, reset_below_threshold: bool, plastic_scale: float = 0.0,
                 bap_lag: int = 0, steps: int, record: str, name: str | None = None) -> None:
        super().__init__(n=n, alpha=alpha, gain=gain, v_thresh=v_thresh, v_rest=v_rest, v_reset=v_reset,
                         syn_decay=syn_decay, refractory_steps=refractory_steps,
                         reset_below_threshold=reset_below_threshold, plastic_scale=plastic_scale, bap_lag=bap_lag,
                         steps=steps, record=str(record), name=name)
        self.a_in = InPort(shape=(n,))
        self.a_plastic = InPort(shape=(n,))
        self.s_out = OutPort(shape=(n,))
        self.s_out_bap = OutPort(shape=(n,))
        self.v = Var(shape=(n,), init=v_rest)
        self.i = Var(shape=(n,), init=0.0)


@implements(proc=CA3Cells, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyCA3CellsModelFloat(PyLoihiProcessModel):
    """Float64 model: the stepper's operations in the stepper's order (see the module docstring)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_plastic: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    s_out_bap: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    i: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        p = proc_params
        n = int(p["n"])
        self.alpha, self.gain, self.v_thresh = float(p["alpha"]), float(p["gain"]), float(p["v_thresh"])
        self.v_rest, self.v_reset, self.syn_decay = float(p["v_rest"]), float(p["v_reset"]), float(p["syn_decay"])
        self.reset_below = bool(p["reset_below_threshold"])
        self.plastic_scale = float(p["plastic_scale"])
        silent = np.zeros(n, dtype=bool)
        hold = max(0, int(p["refractory_steps"]) - 1)
        self.fired = deque([silent] * hold, maxlen=hold)
        self.bap = deque([silent] * int(p["bap_lag"]), maxlen=int(p["bap_lag"]))
        self.steps, self.path = int(p["steps"]), p["record"]
        self.raster = np.zeros((self.steps, n), dtype=bool)

    def run_spk(self) -> None:
        static, plastic = self.a_in.recv(), self.a_plastic.recv()
        i = self.i * self.syn_decay + static
        if self.plastic_scale:
            i = i + plastic * self.plastic_scale
        self.i = i
        v = (self.v - self.v_rest) * self.alpha + self.v_rest + self.gain * i
        refractory = np.logical_or.reduce(list(self.fired)) if self.fired else np.zeros_like(v, dtype=bool)
        v[refractory] = self.v_reset
        spikes = v > self.v_thresh
        if not self.reset_below:
            spikes &= ~refractory
        v[spikes] = self.v_reset
        self.v = v
        if self.fired.maxlen:
            self.fired.append(spikes)
        self.s_out.send(spikes)
        if self.bap.maxlen:
            self.s_out_bap.send(self.bap[0])
            self.bap.append(spikes)
        else:
            self.s_out_bap.send(spikes)
        if self.time_step <= self.steps:
            self.raster[self.time_step - 1] = spikes
        if self.time_step == self.steps:
            np.save(self.path, self.raster)
