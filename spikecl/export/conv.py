"""Synaptic input of a layer in numpy: fully connected or a square 2-D convolution (cross-correlation, as torch).

Neurons are flattened in (C, H, W) order. Sums are computed in float64, exact for the integer products of the
fixed-point model (they stay below 2**53).
"""

from __future__ import annotations

import numpy as np


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """``x`` [B, C, H, W] correlated with ``weight`` [O, C, k, k] → [B, O, H', W'] (float64)."""
    x = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = weight.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("bchwij,ocij->bohw", windows, weight.astype(np.float64), optimize=True)


def synaptic_input(layer, x: np.ndarray) -> np.ndarray:
    """``W x`` for presynaptic values ``x`` [..., n_in] → [..., n_out] (float64), dense or conv by ``layer.conv``."""
    x = np.asarray(x, dtype=np.float64)
    if layer.conv is None:
        return x @ layer.weight.T.astype(np.float64)
    lead = x.shape[:-1]
    grid = x.reshape(-1, *layer.conv.in_shape)
    out = conv2d(grid, layer.weight, layer.conv.stride, layer.conv.padding)
    return out.reshape(*lead, -1)


def connection_counts(layer, structural: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Nonzero synapses (``structural``: all synapses, zero weights too) into each postsynaptic neuron ``[n_out]``
    and out of each presynaptic one ``[n_in]``."""
    nonzero = np.ones(layer.weight.shape, dtype=bool) if structural else layer.weight != 0
    if layer.conv is None:
        return nonzero.sum(axis=1), nonzero.sum(axis=0)
    c = layer.conv
    fan_in = conv2d(np.ones((1, *c.in_shape)), nonzero, c.stride, c.padding).reshape(-1)
    fan_out = np.zeros(c.in_shape)
    k = layer.weight.shape[-1]
    for ky in range(k):
        rows = np.arange(c.out_shape[1]) * c.stride - c.padding + ky
        rows = rows[(rows >= 0) & (rows < c.in_shape[1])]
        for kx in range(k):
            cols = np.arange(c.out_shape[2]) * c.stride - c.padding + kx
            cols = cols[(cols >= 0) & (cols < c.in_shape[2])]
            fan_out[:, rows[:, None], cols[None, :]] += nonzero[:, :, ky, kx].sum(axis=0)[:, None, None]
    return np.rint(fan_in).astype(np.int64), fan_out.reshape(-1).astype(np.int64)
