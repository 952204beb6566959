"""A spike sink that saves what it received to an ``.npy`` file at its last step.

Lava's ``Var.get()`` moves a variable to the host one element at a time, so reading a sink RingBuffer of
``neurons x steps`` values takes longer than the run itself. This process keeps the spikes in its own process and
writes them once, as uint8 ``[*shape, steps]``, when the run reaches ``steps``.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class SpikeFile(AbstractProcess):
    """Records ``steps`` steps of spikes of ``shape`` and saves them to ``path`` (``.npy``) at the last one."""

    def __init__(self, *, shape: tuple, steps: int, path: str) -> None:
        super().__init__(shape=shape, steps=steps, path=str(path))
        self.a_in = InPort(shape=shape)


@implements(proc=SpikeFile, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PySpikeFileModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.steps = int(proc_params["steps"])
        self.path = proc_params["path"]
        self.record = np.zeros((*proc_params["shape"], self.steps), dtype=np.uint8)

    def run_spk(self) -> None:
        self.record[..., (self.time_step - 1) % self.steps] = self.a_in.recv()
        if self.time_step == self.steps:
            np.save(self.path, self.record)
