"""2 × 2 average pooling of spike maps, in passes that stream memory.

torch's CPU ``avg_pool2d`` on NCHW tensors walks each 2 × 2 window with strided reads; on the [T·B, C, H, W] spike
maps of a convolutional SNN it took 20–40 ms forward and about 55 ms backward per layer (T·B = 128, 64 channels,
32 × 32), a fifth of a training step. :class:`AvgPool2x2` computes the same pooling as two sums of contiguous halves
(rows 2i and 2i+1, then columns 2j and 2j+1) and its gradient as two duplications, 4–5× faster forward.

For spikes (values 0 and 1) every partial sum is exact, so the result equals ``nn.AvgPool2d(2)`` bit for bit; for
other inputs it differs only in the order of the four additions (float rounding). The gradient, ``grad / 4`` copied
to the four inputs of each window, is ``avg_pool2d``'s exactly. An odd height or width falls back to
``avg_pool2d``, which drops the last row or column.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _AvgPool2x2(torch.autograd.Function):
    """``x`` [..., H, W] (H, W even) → the means of its 2 × 2 windows [..., H/2, W/2]."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        rows = x.reshape(-1, height // 2, 2 * width)                           # rows 2i and 2i+1 side by side
        pairs = (rows[..., :width] + rows[..., width:]).view(-1, height // 2, width // 2, 2)
        return (pairs[..., 0] + pairs[..., 1]).mul_(0.25).view(*x.shape[:-2], height // 2, width // 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        height, width = grad.shape[-2:]
        quarter = grad * 0.25
        columns = torch.stack([quarter, quarter], dim=-1).view(*grad.shape[:-2], height, 1, 2 * width)
        return torch.cat([columns, columns], dim=-2).view(*grad.shape[:-2], 2 * height, 2 * width)


def avg_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2 × 2 average pooling, stride 2, of ``x`` [N, C, H, W] (or any [..., H, W]) → [..., H // 2, W // 2]."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        return F.avg_pool2d(x, 2)
    return _AvgPool2x2.apply(x)


class AvgPool2x2(nn.Module):
    """``nn.AvgPool2d(2)`` for spike maps, computed by :func:`avg_pool_2x2`: [N, C, H, W] → [N, C, H/2, W/2]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return avg_pool_2x2(x)
