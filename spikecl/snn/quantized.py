"""Quantised evaluation in torch: the Loihi fixed-point equations of :mod:`spikecl.export.fixed_point` on tensors.

Gives the accuracy a network will have after export before it is deployed, on CPU or CUDA (large test sets).
Integer state is int64; synaptic sums are exact in float64 (products and sums stay below 2**53). Its spikes and
readout voltages equal the numpy reference bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from spikecl.export.quantize import ACT_SHIFT, DECAY_UNITY, UV_LIMIT, FixedLayer, FixedNetwork


def _wrap_int32(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + 2**31, 2**32) - 2**31


def _shift(x: torch.Tensor, exp: int) -> torch.Tensor:
    return x << exp if exp > 0 else x >> -exp


def _decay(x: torch.Tensor, keep: int) -> torch.Tensor:
    prod = x * keep
    return torch.sign(prod) * (torch.abs(prod) >> 12)


class QuantizedLayer:
    """One fixed-point Dense + LIF on a device: ``step(state, s_in)`` → (state, spikes)."""

    def __init__(self, layer: FixedLayer, device: torch.device) -> None:
        self.layer = layer
        self.weight = torch.as_tensor(layer.weight, dtype=torch.float64, device=device)
        self.bias = torch.as_tensor(np.left_shift(layer.bias_mant.astype(np.int64), layer.bias_exp), device=device)
        self.vth = int(layer.vth) << ACT_SHIFT

    def activation(self, s_in: torch.Tensor) -> torch.Tensor:
        x, conv = s_in.to(torch.float64), self.layer.conv
        if conv is None:
            return self._dense(torch.round(x @ self.weight.T).to(torch.int64))
        out = torch.nn.functional.conv2d(x.reshape(-1, *conv.in_shape), self.weight, stride=conv.stride,
                                         padding=conv.padding)
        acc = torch.round(out.reshape(x.shape[0], -1)).to(torch.int64)
        return torch.remainder(acc + 2**23, 2**24) - 2**23   # Lava's Conv: no exponent, 24-bit wrap

    def _dense(self, acc: torch.Tensor) -> torch.Tensor:
        if self.layer.input_bits:
            return _wrap_int32(_shift(_wrap_int32(acc), self.layer.weight_exp))
        return _wrap_int32(_shift(acc, self.layer.weight_exp))

    def step(self, u: torch.Tensor, v: torch.Tensor, s_in: torch.Tensor):
        a = self.activation(s_in)
        u_raw = _wrap_int32(_decay(u, DECAY_UNITY - (self.layer.du + 1)) + _wrap_int32(a << ACT_SHIFT))
        u = torch.where(u_raw > UV_LIMIT, u_raw - 2 * UV_LIMIT, u_raw)
        u = torch.where(u <= -UV_LIMIT, u_raw + 2 * UV_LIMIT, u)
        v = torch.clamp(_decay(v, DECAY_UNITY - self.layer.dv) + u + self.bias, -UV_LIMIT + 1, UV_LIMIT - 1)
        spikes = v > self.vth
        return u, torch.where(spikes, torch.zeros_like(v), v), spikes


class QuantizedNetwork:
    """A :class:`FixedNetwork` evaluated in torch. ``forward(inputs [T, B, n_inputs] int)`` →
    (readout voltage at the last step ``[B, n_readout]`` int64, spikes per layer ``[T, B, n]`` bool)."""

    def __init__(self, net: FixedNetwork, device: str | torch.device = "cpu") -> None:
        self.net = net
        self.device = torch.device(device)
        self.layers = [QuantizedLayer(layer, self.device) for layer in net.layers]

    @torch.no_grad()
    def forward(self, inputs, record: bool = True):
        x = torch.as_tensor(np.asarray(inputs), device=self.device).to(torch.int64)
        batch = x.shape[1]
        state = [(torch.zeros(batch, q.layer.n_out, dtype=torch.int64, device=self.device),) * 2
                 for q in self.layers]
        spikes = [[] for _ in self.layers]
        for x_t in x:
            s = x_t
            for k, q in enumerate(self.layers):
                u, v, s = q.step(*state[k], s)
                state[k] = (u, v)
                if record:
                    spikes[k].append(s)
        stacked = [torch.stack(s) for s in spikes] if record else []
        return state[-1][1], stacked

    def logits(self, inputs, heads=None) -> torch.Tensor:
        """Decoded logits ``[B, n_outputs]`` (readout voltage / (64 S T)) of each sample's head."""
        v, _ = self.forward(inputs, record=False)
        net = self.net
        out = v.to(torch.float64) / (2**ACT_SHIFT * net.readout.scale * net.num_steps)
        out = out.reshape(out.shape[0], net.n_heads, net.n_outputs)
        idx = torch.zeros(out.shape[0], dtype=torch.long, device=self.device) if heads is None else \
            torch.as_tensor(np.asarray(heads), device=self.device)
        return out[torch.arange(out.shape[0], device=self.device), idx]


def evaluate_quantized(net: FixedNetwork, x: np.ndarray, y: np.ndarray, heads: np.ndarray | None = None,
                       device: str = "cpu", batch_size: int = 500) -> float:
    """Accuracy (fraction) of the quantised network on samples ``x`` [N, ...] with labels ``y`` [N]."""
    from spikecl.export.inputs import encode

    model = QuantizedNetwork(net, device)
    correct = 0
    for start in range(0, len(x), batch_size):
        sl = slice(start, start + batch_size)
        pred = model.logits(encode(x[sl], net), None if heads is None else heads[sl]).argmax(dim=1).cpu().numpy()
        correct += int((pred == np.asarray(y[sl])).sum())
    return correct / max(len(x), 1)
