"""An SDR input layer for continual-learning streams.

Every image of every task becomes a k-winners sparse code before it reaches the network: a fly-hash (each of
``units`` code cells sums a random ``sample_frac`` of the pixels, the top ``sparsity · units`` cells win). Codes of
different inputs overlap little (about ``k²/units`` bits for unrelated inputs) while similar inputs keep similar
codes, so learning a new task moves fewer of the weights old tasks rely on. The code is fixed (not learned) and the
same for every task of a run.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikecl.data.streams import Stream
from spikecl.sdr.baselines import FlyHash, FlyHashConfig


def code_stream(stream: Stream, units: int = 2048, sparsity: float = 0.05, sample_frac: float = 0.1,
                seed: int = 0) -> Stream:
    """``stream`` with every image [N, C, H, W] replaced by its binary code float32 [N, 1, 1, ``units``]."""
    n_inputs = int(np.prod(stream.input_shape))
    hasher = FlyHash(FlyHashConfig(n_outputs=units, sparsity=sparsity, sample_frac=sample_frac, seed=seed), n_inputs)

    def code(x: np.ndarray) -> np.ndarray:
        return hasher.encode(x.reshape(len(x), -1)).astype(np.float32).reshape(len(x), 1, 1, units)

    tasks = tuple(dataclasses.replace(t, x_train=code(t.x_train), x_test=code(t.x_test)) for t in stream.tasks)
    return dataclasses.replace(stream, name=f"{stream.name}-flyhash", tasks=tasks, input_shape=(1, 1, units))
