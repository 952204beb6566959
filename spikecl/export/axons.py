"""Input and output axons of cores that hold consecutive neurons of a layer (flattened (C, H, W) order).

A core's input axons are the distinct presynaptic neurons that reach its neurons through a nonzero weight; a
presynaptic neuron needs one output axon per core it reaches. Dense layer: the nonzero columns of a block of weight
rows. Convolution: the union of the block's receptive fields, per input channel only over the kernel taps whose
weight is nonzero; input channels sharing the same taps (usually all of an output channel's) are counted together,
so a core costs about its neurons' taps, never the layer's expanded connections.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class LayerAxons:
    """The axon counts of one quantised layer (``weight`` [n_out, n_in] or a conv kernel with its ``conv``
    geometry) split into cores of ``per_core`` consecutive neurons (the last core takes the rest)."""

    def __init__(self, layer) -> None:
        self.nonzero = layer.weight != 0
        self.conv = layer.conv
        if self.conv is None:
            self.n_out, self.n_in = self.nonzero.shape
            return
        self.n_out, self.n_in = int(np.prod(self.conv.out_shape)), int(np.prod(self.conv.in_shape))
        self.taps = tap_inputs(self.conv, self.nonzero.shape[-1])             # [k·k, H'·W']
        self.plane, self.spots = self.taps.shape[1], self.conv.in_shape[1] * self.conv.in_shape[2]
        self.groups = [_channel_groups(kernel.reshape(kernel.shape[0], -1)) for kernel in self.nonzero]
        self._most: dict[int, int] = {}
        self._counts: list[dict[bytes, int]] = [{} for _ in self.groups]     # per output channel: block shape -> count

    def most_inputs(self, per_core: int, limit: int | None = None) -> int:
        """The most input axons of any core; with ``limit``, the first count above it once one is found."""
        if self.conv is None:
            return max(int(np.count_nonzero(self.nonzero[s:s + per_core].any(axis=0)))
                       for s in range(0, self.n_out, per_core))
        if per_core not in self._most:
            most = 0
            for start in range(0, self.n_out, per_core):
                most = max(most, self._conv_count(start, min(start + per_core, self.n_out)))
                if limit is not None and most > limit:
                    return most                                  # not kept: another limit may read further
            self._most[per_core] = most
        return self._most[per_core]

    def inputs(self, per_core: int) -> Iterator[np.ndarray]:
        """For each core, a bool [n_in]: the presynaptic neurons that reach it."""
        for start in range(0, self.n_out, per_core):
            stop = min(start + per_core, self.n_out)
            yield self.nonzero[start:stop].any(axis=0) if self.conv is None else self._conv_mask(start, stop)

    def reach(self, per_core: int) -> np.ndarray:
        """For each presynaptic neuron [n_in], how many cores it reaches (its output axons into this layer)."""
        if self.conv is None:
            return sum((reached.astype(np.int64) for reached in self.inputs(per_core)), np.zeros(self.n_in, np.int64))
        counts = np.zeros((self.conv.in_shape[0], self.spots), dtype=np.int64)
        for start in range(0, self.n_out, per_core):
            spots, reached = self._conv_reached(start, min(start + per_core, self.n_out))
            counts[:, spots] += reached                  # only the spots the core reads: no [n_in] pass per core
        return counts.reshape(-1)

    def _blocks(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        """(output channel, input spots that each kernel tap of its neurons in ``start..stop - 1`` reads
        [k·k, J], -1 in the padding) for every output channel the neurons span."""
        for o in range(start // self.plane, (stop - 1) // self.plane + 1):
            yield o, self.taps[:, max(start - o * self.plane, 0):min(stop - o * self.plane, self.plane)]

    def _conv_count(self, start: int, stop: int) -> int:
        """Input axons of a conv core holding neurons ``start..stop - 1`` (within one output channel: per group of
        input channels, the distinct spots its taps read times the group's channels)."""
        blocks = list(self._blocks(start, stop))
        if len(blocks) > 1:
            return int(self._conv_reached(start, stop)[1].sum())
        o, block = blocks[0]
        valid = block >= 0
        shape = np.where(valid, block - (block[valid].min() if valid.any() else 0), -1).tobytes()
        if shape not in self._counts[o]:                 # a block moved by whole spots reads as many inputs
            taps, channels = self.groups[o]
            _, read = _group_reads(taps, block)
            self._counts[o][shape] = int(read.sum(axis=1) @ channels.sum(axis=1))
        return self._counts[o][shape]

    def _conv_mask(self, start: int, stop: int) -> np.ndarray:
        reached = np.zeros((self.conv.in_shape[0], self.spots), dtype=bool)
        spots, block_reached = self._conv_reached(start, stop)
        reached[:, spots] = block_reached
        return reached.reshape(-1)

    def _conv_reached(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(the input spots [U] that conv neurons ``start..stop - 1`` read, bool [C_in, U]: which input channel at
        which of them reaches one of the neurons)."""
        reads = [(o, *_group_reads(self.groups[o][0], block)) for o, block in self._blocks(start, stop)]
        spots = np.unique(np.concatenate([read[1] for read in reads]))
        reached = np.zeros((self.conv.in_shape[0], len(spots)), dtype=bool)
        for o, read_spots, read in reads:
            channels = self.groups[o][1].T.astype(np.float32)                  # [C_in, G]
            reached[:, np.searchsorted(spots, read_spots)] |= (channels @ read.astype(np.float32)) > 0
        return spots, reached


def _group_reads(taps: np.ndarray, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct input spots [U] that ``block`` [k·k, J] reads (-1 = padding), bool [G, U]: which of them
    each channel group's ``taps`` [G, k·k] read)."""
    tap, column = np.nonzero(block >= 0)
    spots, which = np.unique(block[tap, column], return_inverse=True)
    seen = np.zeros((block.shape[0], len(spots)), dtype=np.float32)
    seen[tap, which] = 1.0
    return spots, (taps @ seen) > 0


def _channel_groups(taps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An output channel's nonzero taps ``taps`` [C_in, k·k] as groups of the input channels with the same nonzero
    taps: (float [G, k·k] each group's taps, bool [G, C_in] its channels); channels without any are left out."""
    patterns, which = np.unique(taps, axis=0, return_inverse=True)
    used = patterns.any(axis=1)
    members = which.reshape(-1)[None, :] == np.flatnonzero(used)[:, None]
    return patterns[used].astype(np.float32), members


def tap_inputs(conv, k: int) -> np.ndarray:
    """[k·k, H'·W']: the input spot (y·W + x) that each kernel tap of each output spot reads, -1 in the padding."""
    _, height, width = conv.out_shape
    oy, ox = np.divmod(np.arange(height * width), width)
    ky, kx = np.divmod(np.arange(k * k), k)
    iy = oy[None, :] * conv.stride - conv.padding + ky[:, None]
    ix = ox[None, :] * conv.stride - conv.padding + kx[:, None]
    inside = (iy >= 0) & (iy < conv.in_shape[1]) & (ix >= 0) & (ix < conv.in_shape[2])
    return np.where(inside, iy * conv.in_shape[2] + ix, -1)
