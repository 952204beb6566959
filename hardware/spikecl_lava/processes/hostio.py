"""Host <-> chip I/O of the Loihi 2 process graph, and CPU stand-ins for it.

On Loihi 2, host processes (RingBuffer source, spike files, Monitor) cannot connect to neuro-core processes
directly: lava-loihi's ``lava.proc.embedded_io`` (not part of lava-nc 0.10.0) provides the adapters that sit
between them, as lava-dl's netx examples use them:

* ``eio.spike.PyToNxAdapter(shape, num_message_bits)`` host spikes into the chip (``PyToN3ConvAdapter`` for a
  conv input grid), ports ``inp`` / ``out``;
* ``eio.spike.NxToPyAdapter(shape)`` chip spikes to the host, ports ``inp`` / ``out``;
* ``eio.state.Read(shape, interval, offset)`` reads a neuron variable once every ``interval`` steps
  (``connect_var(var)``) and sends it to the host on ``out``.

:class:`PassThrough` and :class:`VoltageRead` are CPU stand-ins with the same ports, so the board graph (adapters,
sample-end readout) is built and run on Lava's fixed-point CPU simulation. ``VoltageRead`` follows the timing of
the CPU reader in lava-dl's PilotNet tutorial: it reads at the end of steps ``(t - 1) % interval == offset`` and
sends the value at the next step. :class:`SampleFile` is the host sink of those reads; it receives only on the
steps the reader sends, and saves what it received once, at its last step.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class PassThrough(AbstractProcess):
    """CPU stand-in for a spike adapter (``PyToNxAdapter``, ``PyToN3ConvAdapter``, ``NxToPyAdapter``): forwards
    what ``inp`` receives to ``out`` in the same step."""

    def __init__(self, *, shape: tuple, num_message_bits: int = 0) -> None:
        super().__init__(shape=shape, num_message_bits=num_message_bits)
        self.inp = InPort(shape=shape)
        self.out = OutPort(shape=shape)


@implements(proc=PassThrough, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyPassThroughModel(PyLoihiProcessModel):
    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def run_spk(self) -> None:
        self.out.send(self.inp.recv())


def sends_at(time_step: int, interval: int, offset: int) -> bool:
    """Whether a reader with ``interval``/``offset`` sends at (1-based) ``time_step``."""
    return (time_step - 1) % interval == (offset + 1) % interval


class VoltageRead(AbstractProcess):
    """CPU stand-in for ``eio.state.Read``: reads a variable of ``shape`` at the end of every step with
    ``(t - 1) % interval == offset`` and sends it on ``out`` at the next step."""

    def __init__(self, *, shape: tuple, interval: int, offset: int = 0) -> None:
        super().__init__(shape=shape, interval=interval, offset=offset % interval)
        self.ref = RefPort(shape=shape)
        self.out = OutPort(shape=shape)

    def connect_var(self, var) -> None:
        self.ref.connect_var(var)


@implements(proc=VoltageRead, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyVoltageReadModel(PyLoihiProcessModel):
    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.interval = int(proc_params["interval"])
        self.offset = int(proc_params["offset"])
        self.data = np.zeros(proc_params["shape"], dtype=np.int32)

    def run_spk(self) -> None:
        if sends_at(self.time_step, self.interval, self.offset):
            self.out.send(self.data)

    def post_guard(self) -> bool:
        return (self.time_step - 1) % self.interval == self.offset

    def run_post_mgmt(self) -> None:
        self.data = np.rint(self.ref.read()).astype(np.int32)


class SampleFile(AbstractProcess):
    """Host sink of a reader with ``interval``/``offset``: receives on the steps it sends and saves the values,
    int32 ``[reads, *shape]``, to ``path`` (``.npy``) at step ``steps``."""

    def __init__(self, *, shape: tuple, interval: int, offset: int, steps: int, path: str) -> None:
        super().__init__(shape=shape, interval=interval, offset=offset % interval, steps=steps, path=str(path))
        self.a_in = InPort(shape=shape)


@implements(proc=SampleFile, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PySampleFileModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.interval = int(proc_params["interval"])
        self.offset = int(proc_params["offset"])
        self.steps = int(proc_params["steps"])
        self.path = proc_params["path"]
        self.shape = tuple(proc_params["shape"])
        self.record = []

    def run_spk(self) -> None:
        if sends_at(self.time_step, self.interval, self.offset):
            self.record.append(np.asarray(self.a_in.recv()).copy())
        if self.time_step == self.steps:
            data = np.stack(self.record) if self.record else np.zeros((0, *self.shape))
            np.save(self.path, data.astype(np.int32))
