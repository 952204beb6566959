"""The two neuron populations of HLOP's lateral circuit on Lava's learning engine (floating-point CPU models).

Each sample occupies one cycle of ``PERIOD`` = 3 time steps; ``phase = t mod 3`` (t from 1, so phase 1 opens a
cycle)::

    phase 1   residual r = x            lateral silent (y = 0)
    phase 2   residual r = x            lateral y = H r(phase 1) = H x          (graded spikes to G)
    phase 0   residual r = x − G y      lateral y = H r(phase 2) = H x          learning step

Both populations send graded spikes (their values) and, on a separate port, the post-synaptic trace ``y1`` that a
three-factor learning synapse reads (:class:`~lava.magma.core.learning.learning_rule.Loihi3FLearningRule`): their
value at phase 0 and 0 otherwise, so a learning rule with a ``y1`` factor changes weights only at phase 0, from
the pair (x⊥ = x − Gy, y). The residual neuron ignores its feedback input at phase 1 (the previous sample's
phase-0 feedback arrives then).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

PERIOD = 3          # time steps per sample
LEARN_PHASE = 0     # time_step % PERIOD at which the y1 traces carry values (the learning step)


class ResidualNeuron(AbstractProcess):
    """Presynaptic residual neurons [n]: ``a_in`` the activity x, ``a_fb`` the feedback G y; ``s_out`` the graded
    residual r, ``y1`` its learning trace (r at phase 0, else 0)."""

    def __init__(self, *, shape: tuple) -> None:
        super().__init__(shape=shape)
        self.a_in = InPort(shape=shape)
        self.a_fb = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.y1 = OutPort(shape=shape)


class LateralNeuron(AbstractProcess):
    """Lateral neurons [k]: ``a_in`` the input H r; ``s_out`` the graded response y (0 at phase 1), ``y1`` its
    learning trace (y at phase 0, else 0)."""

    def __init__(self, *, shape: tuple) -> None:
        super().__init__(shape=shape)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.y1 = OutPort(shape=shape)


def phase(time_step: int) -> int:
    return time_step % PERIOD


@implements(proc=ResidualNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyResidualNeuronModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_fb: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    y1: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        x, fb, p = self.a_in.recv(), self.a_fb.recv(), phase(self.time_step)
        r = x if p == 1 else x - fb
        self.s_out.send(r)
        self.y1.send(r if p == LEARN_PHASE else np.zeros_like(r))


@implements(proc=LateralNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyLateralNeuronModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    y1: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        a, p = self.a_in.recv(), phase(self.time_step)
        y = np.zeros_like(a) if p == 1 else a
        self.s_out.send(y)
        self.y1.send(y if p == LEARN_PHASE else np.zeros_like(y))
