"""What a Lava run of an exported network is made of, shared by spikecl's process graph
(:mod:`spikecl_lava.runner`) and lava-dl's (:mod:`spikecl_lava.lavadl`): the processes of one run, and the
conversion between spikecl's (C, H, W) order and Lava's (W, H, C) grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Graph:
    """The Lava processes of one network run."""

    source: object
    synapses: list
    lif: list
    sinks: list
    monitor: object
    steps: int
    reads: Path | None = None  # sample-end readout: the SampleFile's .npy
    adapters: tuple = ()

    @property
    def run_steps(self) -> int:
        """Steps to run: one more with the sample-end readout (its reader sends the last read a step later)."""
        return self.steps + (self.reads is not None)


def to_lava_grid(data: np.ndarray, shape: tuple) -> np.ndarray:
    """[C*H*W, steps] in (C, H, W) order → Lava's (X, Y, C, steps) = (W, H, C, steps), int32."""
    return data.reshape(*shape, -1).transpose(2, 1, 0, 3).astype(np.int32)


def from_lava_grid(data: np.ndarray) -> np.ndarray:
    """Lava's (W, H, C, steps) → [C*H*W, steps] in (C, H, W) order."""
    return data.transpose(2, 1, 0, 3).reshape(-1, data.shape[-1])
