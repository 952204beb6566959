"""Spiking networks: a stack of spiking layers and a leaky-integrator readout, and builders for the MLP and CNN.

* MLP: ``784-800-800-10`` (the HLOP paper's PMNIST network) or smaller, no biases by default.
* CNN: the HLOP paper's 3-layer network for CIFAR — conv(64)-conv(128)-conv(256), each 3×3 + BN + LIF + 2×2
  average pooling, then the readout.

Module names are a contract: the export reads trained networks by their ``state_dict`` keys, listed in
:mod:`spikecl.network_keys` (``layers.{i}.synapse.weight``, ``readout.heads.{h}.weight``, …).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Callable, ContextManager, Iterator, Mapping, Sequence

import torch
from torch import nn

from spikecl.errors import ConfigError, NumericalError, ShapeError
from spikecl.snn.activity import Activity, recording
from spikecl.snn.checks import count, finite_flag, indices
from spikecl.snn.fused import LOW_PRECISION
from spikecl.snn.layers import Readout, SpikingConv2d, SpikingLayer, SpikingLinear
from spikecl.snn.neurons import LIFParams


#: how to get a network spikecl's strategies and trainers work with, said where something else is given
BUILD_NETWORK = ("build it with spikecl.snn.build_mlp or build_cnn, or SpikingNetwork(SpikingLinear/SpikingConv2d "
                 "layers, Readout, ...)")


def check_chain(layers: Sequence[SpikingLayer], readout: Readout) -> None:
    """A one-line ConfigError unless ``layers`` are spikecl's spiking layers (SpikingLinear, SpikingConv2d), the
    readout a :class:`Readout` and each fully connected or convolutional layer takes what the one before gives."""
    for i, layer in enumerate(layers):
        if not isinstance(layer, SpikingLayer):
            raise ConfigError(f"SpikingNetwork: layer {i} is a {type(layer).__name__}; give SpikingLinear or "
                              "SpikingConv2d layers (HLOP, GPM and the trainers read their synapses and neurons)")
    if not isinstance(readout, Readout):
        raise ConfigError(f"SpikingNetwork: the readout is a {type(readout).__name__}; give a Readout")
    synapses = [layer.synapse for layer in layers] + [readout.heads[0]]
    for i, (before, after) in enumerate(zip(synapses, synapses[1:])):
        linear = isinstance(before, nn.Linear)
        given, taken = ((before.out_features, after.in_features) if linear else
                        (getattr(before, "out_channels", None), getattr(after, "in_channels", None)))
        if type(before) is type(after) and given != taken:
            what = "the readout" if i == len(layers) - 1 else f"layer {i + 1}"
            raise ConfigError(f"SpikingNetwork: layer {i} gives {given} {'features' if linear else 'channels'} but "
                              f"{what} takes {taken}")


class SpikingNetwork(nn.Module):
    """Spiking feature layers followed by a readout.

    ``forward(x_seq [T, B, *input_shape], heads [B] | None)`` → logits ``[B, n_outputs]``.
    ``online_steps`` yields the readout membrane at every step for online (trace-based) training.
    """

    def __init__(self, layers: Sequence[SpikingLayer], readout: Readout, input_shape: tuple[int, ...],
                 flatten_input: bool, trace_decay: float) -> None:
        super().__init__()
        layers = list(layers)                         # read twice: a generator would be empty the second time
        check_chain(layers, readout)
        self.layers = nn.ModuleList(layers)
        self.readout = readout
        self.input_shape = tuple(input_shape)
        self.flatten_input = flatten_input
        self.trace_decay = trace_decay

    def _prepare(self, x: torch.Tensor, lead: int) -> torch.Tensor:
        """Check the shape, dtype and (on the CPU, outside a compiled graph) finiteness, and flatten the input for an
        MLP (``lead`` leading dims kept)."""
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"network input is a {type(x).__name__}; expected a torch tensor [T, B, "
                             f"*{self.input_shape}] (spikecl.snn.encode makes one from a numpy array)")
        if x.dim() < lead + 1 or 0 in x.shape[:lead]:
            raise ShapeError(f"network input has shape {tuple(getattr(x, 'shape', ()))}; expected [T, B, "
                             f"*{self.input_shape}], T and B >= 1 (encode static inputs with spikecl.snn.encode)")
        dtype = self.readout.heads[0].weight.dtype
        if dtype in LOW_PRECISION:
            raise ShapeError(f"network weights are {dtype}: spikecl's networks run in float32 or float64; for "
                             "bfloat16 synapses train with train.precision = 'bfloat16' (autocast)")
        if x.dtype != dtype:
            raise ShapeError(f"network input has dtype {x.dtype}; expected the network's {dtype} "
                             + ("(spikecl.snn.encode converts)" if dtype == torch.float32 else
                                "(spikecl's encoders and trainers feed float32: keep the network in float32)"))
        if x.device.type == "cpu" and not torch.compiler.is_compiling() and not bool(
                finite_flag(x[0] if x.stride(0) == 0 else x)):    # NaN never crosses a threshold: silent zeros
            raise NumericalError("network input contains NaN or infinity")
        if self.flatten_input:
            x = x.flatten(lead)
        if tuple(x.shape[lead:]) != self.input_shape:
            raise ShapeError(f"network input has {tuple(x.shape[lead:])} features per sample; expected "
                             f"{self.input_shape}")
        return x

    def forward(self, x_seq: torch.Tensor, heads: torch.Tensor | None = None,
                rate_gradient: bool = False) -> torch.Tensor:
        """Logits ``[B, n_outputs]`` of the input sequence ``x_seq`` ``[T, B, *input_shape]`` (the inputs of every time
        step), read from each sample's head ``heads`` ``[B]`` (int64; None only for a single-head readout);
        ``rate_gradient``: spiking layers pass gradients through their firing rates (DSR-style,
        :func:`~spikecl.snn.layers.rate_coded`) instead of through time."""
        h = self._prepare(x_seq, lead=2)
        heads = self.check_heads(heads, h.shape[1])
        for layer in self.layers:
            h = layer(h, rate_gradient=rate_gradient)
        return self.readout(h.flatten(2), heads)

    def online_steps(self, x_seq: torch.Tensor, heads: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """Run ``x_seq`` one step at a time, yielding readout membranes ``[B, n_outputs]``.

        Each layer sees its presynaptic trace ``a[t] = trace_decay · a[t-1] + s[t]`` for the weight gradient;
        membrane histories are detached between steps (no backpropagation through time).
        """
        x_seq = self._prepare(x_seq, lead=2)
        heads = self.check_heads(heads, x_seq.shape[1])
        n = len(self.layers) + 1
        mems: list[torch.Tensor | None] = [None] * n
        traces: list[torch.Tensor | None] = [None] * n
        for t, x_t in enumerate(x_seq):
            h = x_t
            for i in range(n):
                if i == n - 1:
                    h = h.flatten(1)
                traces[i] = h.detach() if t == 0 else self.trace_decay * traces[i] + h.detach()
                if i < n - 1:
                    h, mems[i] = self.layers[i].step(h, traces[i], mems[i], first=t == 0)
                else:
                    mems[i] = self.readout.step(h, traces[i], mems[i], heads, first=t == 0)
            yield mems[-1]

    @property
    def n_outputs(self) -> int:
        """Outputs of each readout head."""
        return self.readout.heads[0].out_features

    def check_heads(self, heads: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """``heads`` [batch] as int64 head indices (None for a one-head readout: head 0). ShapeError for a wrong
        shape or dtype; ConfigError for None on a multi-head readout; DataError for an index out of range (on the
        CPU; on an accelerator the trainers and :func:`~spikecl.snn.trainers.evaluate` check it deferred)."""
        n = len(self.readout.heads)
        if heads is None:
            if n > 1:
                raise ConfigError(f"heads: this readout has {n} heads; give the head index of every sample")
            return None
        return indices(heads, n, batch, "heads")

    @property
    def engine(self) -> str:
        """How whole sequences run: "fused" or "snntorch" (:mod:`spikecl.snn.fused`), read from the readout (layers
        built by hand may mix engines: :meth:`uses_engine`); setting it sets every layer's, same parameters."""
        return self.readout.engine

    @engine.setter
    def engine(self, name: str) -> None:
        for layer in self.plastic_layers().values():
            layer.engine = name

    def uses_engine(self, name: str) -> bool:
        """Whether any layer runs on engine ``name`` (layers built by hand may mix engines; :attr:`engine` is the
        readout's)."""
        return any(layer.engine == name for layer in self.plastic_layers().values())

    def plastic_layers(self) -> dict[str, nn.Module]:
        """Feature layers then the readout, by name (``layers.0``, …, ``readout``): every module whose synapse
        sees presynaptic activity."""
        return {**{f"layers.{i}": layer for i, layer in enumerate(self.layers)}, "readout": self.readout}

    def recording(self) -> ContextManager[Activity]:
        """``with net.recording() as activity:`` keeps every plastic layer's presynaptic input of the passes run
        in the block (the latest pass per layer); recordings nest (:mod:`spikecl.snn.activity`)."""
        return recording(self.plastic_layers())

    @contextlib.contextmanager
    def projecting(self, projections: Mapping[nn.Module, Callable[[torch.Tensor], torch.Tensor]]) -> Iterator[None]:
        """``with net.projecting({layer: project}):`` the passes run in the block give each of these spiking layers
        (of ``net.layers``) a weight gradient from its projected presynaptic rows ``project(x)`` [N, n] where that
        is cheaper (:attr:`~spikecl.snn.layers.SpikingLayer.weight_projection`); each layer's previous projection is
        restored after the block, also when it raises, so no pass outside it sees one."""
        unknown = [type(layer).__name__ for layer in projections if not any(layer is mine for mine in self.layers)]
        if unknown:
            raise ConfigError(f"projecting: {', '.join(unknown)} is not a spiking layer of this network")
        previous = [(layer, layer.weight_projection) for layer in projections]
        try:
            for layer, project in projections.items():
                layer.weight_projection = project
            yield
        finally:
            for layer, project in previous:
                layer.weight_projection = project


@contextlib.contextmanager
def evaluating(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in evaluation mode for the block, its training mode restored after (normalisation statistics are
    read, not updated, inside)."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


def _scale_weights(layers: Sequence[SpikingLayer], gain: float) -> None:
    """Multiply the synaptic weights of ``layers`` by ``gain`` (so deeper spiking layers fire at init); a gain that
    is not a finite number >= 0 is a ConfigError."""
    if isinstance(gain, bool) or not isinstance(gain, numbers.Real) or not math.isfinite(gain) or gain < 0:
        raise ConfigError(f"init_gain: expected a finite number >= 0, got {gain!r}")
    with torch.no_grad():
        for layer in layers:
            layer.synapse.weight.mul_(gain)
            if not torch.isfinite(torch.stack(torch.aminmax(layer.synapse.weight))).all():   # no copy of them
                raise ConfigError(f"init_gain: {gain:g} makes the initial weights overflow "
                                  f"{str(layer.synapse.weight.dtype).removeprefix('torch.')}")


def _widths(sizes: Sequence[int], key: str) -> list[int]:
    """Layer widths: a list of integers >= 1 (ConfigError naming ``key``)."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise ConfigError(f"{key}: expected a list of integers, got {sizes!r}")
    return [count(v, f"{key}[{i}]") for i, v in enumerate(sizes)]


def build_mlp(n_inputs: int, hidden: Sequence[int], n_outputs: int, neuron: LIFParams = LIFParams(),
              n_heads: int = 1, bias: bool = False, init_gain: float = 3.0,
              engine: str = "fused") -> SpikingNetwork:
    """Spiking MLP ``n_inputs - hidden... - n_outputs`` (e.g. ``build_mlp(784, [800, 800], 10)``); sizes are
    integers >= 1 (ConfigError)."""
    widths = [count(n_inputs, "n_inputs"), *_widths(hidden, "network.hidden")]
    n_outputs, n_heads = count(n_outputs, "n_outputs"), count(n_heads, "n_heads")
    layers = [SpikingLinear(a, b, neuron, bias=bias, engine=engine) for a, b in zip(widths[:-1], widths[1:])]
    _scale_weights(layers, init_gain)
    readout = Readout(widths[-1], n_outputs, neuron, n_heads=n_heads, bias=bias, engine=engine)
    return SpikingNetwork(layers, readout, (n_inputs,), flatten_input=True, trace_decay=neuron.beta)


def build_cnn(input_shape: tuple[int, int, int], channels: Sequence[int], n_outputs: int,
              neuron: LIFParams = LIFParams(), n_heads: int = 1, bias: bool = False, batch_norm: bool = True,
              init_gain: float = 1.0, engine: str = "fused") -> SpikingNetwork:
    """Spiking CNN: per entry of ``channels`` a 3×3 conv + BN + LIF + 2×2 average pool, then the readout.

    ``input_shape`` is ``(C, H, W)``; H and W must stay ≥ 1 after ``len(channels)`` halvings. ``init_gain`` is 1
    here (batch norm rescales the currents); a config's ``network.init_gain`` (default 3) is passed by
    :func:`build_network`, so without batch norm give it explicitly to build the same network.
    """
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__") or len(input_shape) != 3:
        raise ConfigError(f"input_shape: expected (C, H, W), got {input_shape!r}")
    c, h, w = (count(v, f"input_shape[{i}]") for i, v in enumerate(input_shape))
    channels = _widths(channels, "network.channels")
    if not channels:
        raise ConfigError("network.channels: a CNN needs at least one convolution layer")
    n_outputs, n_heads = count(n_outputs, "n_outputs"), count(n_heads, "n_heads")
    widths = [c, *channels]
    layers = [SpikingConv2d(a, b, neuron, bias=bias, batch_norm=batch_norm, engine=engine)
              for a, b in zip(widths[:-1], widths[1:])]
    _scale_weights(layers, init_gain)
    size = (h >> len(channels)) * (w >> len(channels))
    if size < 1:
        raise ConfigError(f"network.channels: {len(channels)} pooling layers shrink a {h}x{w} input to nothing")
    readout = Readout(widths[-1] * size, n_outputs, neuron, n_heads=n_heads, bias=bias, engine=engine)
    return SpikingNetwork(layers, readout, (c, h, w), flatten_input=False, trace_decay=neuron.beta)


def build_network(cfg, input_shape: tuple[int, int, int], n_outputs: int, n_heads: int = 1) -> SpikingNetwork:
    """Build the network described by a :class:`spikecl.config.NetworkConfig` for a stream's input and heads."""
    neuron = LIFParams(beta=cfg.beta, threshold=cfg.threshold, reset=cfg.reset,
                       surrogate_slope=cfg.surrogate_slope)
    if cfg.kind == "mlp":
        return build_mlp(math.prod(input_shape), cfg.hidden, n_outputs, neuron, n_heads=n_heads, bias=cfg.bias,
                         init_gain=cfg.init_gain, engine=cfg.engine)
    return build_cnn(input_shape, cfg.channels, n_outputs, neuron, n_heads=n_heads, bias=cfg.bias,
                     batch_norm=cfg.batch_norm, init_gain=cfg.init_gain, engine=cfg.engine)
