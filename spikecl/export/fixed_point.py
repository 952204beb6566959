"""Bit-accurate numpy reference of Lava's fixed-point ``Dense`` + ``LIF``/``LIFReset`` (lava-nc 0.10.0).

Per step, for a layer with integer weights ``w`` (mantissas), exponent ``e``, decays ``du``, ``dv``, threshold ``vth``::

    a  = (sum_j w_ij s_j) << e          (>> -e for e < 0, floor), sent over an int32 channel
    u  = sign(u (4096 - du - 1)) (|u (4096 - du - 1)| >> 12) + (a << 6)      wrapped once at +-2**23
    v  = clip(sign(v (4096 - dv)) (|v (4096 - dv)| >> 12) + u + (bias_mant << bias_exp), +-(2**23 - 1))
    s  = v > (vth << 6);   v[s] = 0

Two drivers share these step functions:

* :func:`simulate` runs samples independently (state zero at each sample's start), all layers in lockstep:
  spikes ``[T, B, n]`` per layer and the readout voltage at the last step. This is what accuracy is computed from.
* :func:`simulate_stream` reproduces a whole Lava run step by step: samples back to back, one step of latency per
  ``Dense`` (it sends the activation computed from the previous step's spikes), ``LIFReset`` of layer k (0-based)
  at steps ``t % T == (k + 2) % T`` (:func:`reset_offset`), so that every layer's state is cleared exactly when a
  new sample reaches it. Its raw streams equal the Lava runner's bit for bit; :func:`sample_windows` cuts them back
  to :func:`simulate`'s frame.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikecl.errors import ConfigError, ShapeError
from spikecl.export.conv import synaptic_input
from spikecl.export.float_model import check_heads, select_heads
from spikecl.export.quantize import ACT_SHIFT, DECAY_UNITY, UV_LIMIT, FixedLayer, FixedNetwork

DECAY_SHIFT = 12


class LIFState(NamedTuple):
    """Current and voltage, int64 ``[..., n]`` holding 24-bit values."""

    u: np.ndarray
    v: np.ndarray


class Overflow(NamedTuple):
    """How often the 24-bit current wrapped and the voltage saturated (per layer, summed over steps and samples)."""

    u_wraps: np.ndarray
    v_clips: np.ndarray


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32 (what Lava's int32 channels and buffers do)."""
    return ((np.asarray(x, dtype=np.int64) + 2**31) % 2**32) - 2**31


def _shift(x: np.ndarray, exp: int) -> np.ndarray:
    return np.left_shift(x, exp) if exp > 0 else np.right_shift(x, -exp)


def dense_activation(layer: FixedLayer, s_in: np.ndarray) -> np.ndarray:
    """Synaptic activation ``[..., n_out]`` (int64) of presynaptic spikes or graded values ``s_in [..., n_in]``.

    Dense: graded input is a dot product in int32 then shifted; binary input is summed in int64, shifted, then sent
    through the int32 channel. Conv: the correlation wrapped to signed 24 bits (Lava applies no weight exponent).
    Products stay below 2**53, so the sum is computed exactly in float64 (BLAS).
    """
    acc = np.rint(synaptic_input(layer, s_in)).astype(np.int64)
    if layer.conv is not None:  # Lava's fixed-point Conv: no weight exponent, output wrapped to signed 24 bits
        return ((acc + 2**23) % 2**24) - 2**23
    if layer.input_bits:
        return wrap_int32(_shift(wrap_int32(acc), layer.weight_exp))
    return wrap_int32(_shift(acc, layer.weight_exp))


def _decay(x: np.ndarray, keep: int) -> np.ndarray:
    """``sign(x * keep) * (|x * keep| >> 12)``: truncation towards zero."""
    prod = x * keep
    return np.sign(prod) * np.right_shift(np.abs(prod), DECAY_SHIFT)


def effective_bias(layer: FixedLayer) -> np.ndarray:
    """``bias_mant << bias_exp`` as int64 ``[n_out]``."""
    return np.left_shift(layer.bias_mant.astype(np.int64), layer.bias_exp)


def lif_step(state: LIFState, a_in: np.ndarray, layer: FixedLayer) -> tuple[LIFState, np.ndarray, Overflow]:
    """One step of Lava's bit-accurate LIF given the step's integer synaptic input ``a_in`` ``[..., n]`` (weights
    times spikes, before the ``<< ACT_SHIFT``): (new state, spikes bool ``[..., n]``, overflow flags)."""
    u_decayed = _decay(state.u, DECAY_UNITY - (layer.du + 1))
    u_raw = wrap_int32(u_decayed + wrap_int32(np.left_shift(a_in.astype(np.int64), ACT_SHIFT)))
    u = np.where(u_raw > UV_LIMIT, u_raw - 2 * UV_LIMIT, u_raw)
    u = np.where(u <= -UV_LIMIT, u_raw + 2 * UV_LIMIT, u)
    v_raw = _decay(state.v, DECAY_UNITY - layer.dv) + u + effective_bias(layer)
    v = np.clip(v_raw, -UV_LIMIT + 1, UV_LIMIT - 1)
    spikes = v > (layer.vth << ACT_SHIFT)
    v = np.where(spikes, 0, v)
    return LIFState(u, v), spikes, Overflow(u != u_raw, v_raw != np.clip(v_raw, -UV_LIMIT + 1, UV_LIMIT - 1))


def zero_state(shape: tuple[int, ...]) -> LIFState:
    """Currents and voltages of neurons of ``shape`` at rest (int64 zeros)."""
    return LIFState(np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64))


class Trace(NamedTuple):
    """Result of :func:`simulate`: spikes per layer ``[T, B, n]`` (bool; a readout spike is a voltage reset at the
    top), the readout voltage at the last step ``[B, n_readout]`` (int64), overflow counts per layer and, from
    :func:`simulate`, the steps each readout neuron's voltage was cut ``[B, n_readout]`` (int64: saturated at
    either end, or reset at the top; ``None`` from :func:`sample_windows`)."""

    spikes: list
    readout_v: np.ndarray
    u_wraps: np.ndarray
    v_clips: np.ndarray
    readout_cuts: np.ndarray | None = None


#: the most input values ``T x B x n_inputs`` one run encodes (2**28: 2 GiB as int64), a bound against huge
#: ``num_steps`` or sample counts
MAX_INPUT_VALUES = 2**28


def check_input_size(num_steps: int, batch: int, n_inputs: int) -> None:
    """A one-line :class:`ShapeError` unless ``T x B x n_inputs`` input values fit :data:`MAX_INPUT_VALUES`."""
    if num_steps * batch * n_inputs > MAX_INPUT_VALUES:
        raise ShapeError(f"{num_steps} steps x {batch} samples x {n_inputs} inputs = {num_steps * batch * n_inputs} "
                         f"input values exceed {MAX_INPUT_VALUES}; run fewer samples")


def check_input_shape(net: FixedNetwork, shape: tuple) -> None:
    """A one-line :class:`ShapeError` unless inputs of ``shape`` are ``[T, B, n_inputs]`` of a bounded size."""
    if len(shape) != 3 or shape[0] != net.num_steps or shape[2] != net.n_inputs:
        raise ShapeError(f"inputs have shape {tuple(shape)}; expected [T={net.num_steps}, B, {net.n_inputs}]")
    check_input_size(*shape)


def check_inputs(net: FixedNetwork, inputs: np.ndarray) -> np.ndarray:
    """Integer inputs ``[T, B, n_inputs]`` within the input's message range."""
    x = np.asarray(inputs)
    check_input_shape(net, x.shape)
    if x.dtype.kind not in "biuf" or (x.dtype.kind == "f" and not np.array_equal(x, np.round(x))):
        raise ShapeError(f"inputs must be integers (binary spikes or graded values), got {x.dtype} values")
    if x.size and (x.min() < 0 or x.max() > net.input_scale):
        raise ShapeError(f"inputs must lie in 0..{net.input_scale}, got {x.min()}..{x.max()}")
    return x.astype(np.int64)


def simulate(net: FixedNetwork, inputs: np.ndarray, record: bool = True) -> Trace:
    """Run samples independently: ``inputs`` int ``[T, B, n_inputs]`` → :class:`Trace`.

    All layers advance in lockstep (layer k at step t sees layer k-1's spikes of step t), which is Lava's pipeline
    with the one-step Dense latency removed by aligning each layer's sample window. ``record=False`` keeps only
    the readout (saves memory on large batches).
    """
    x = check_inputs(net, inputs)
    steps, batch = x.shape[:2]
    states = [zero_state((batch, layer.n_out)) for layer in net.layers]
    spikes = [[] for _ in net.layers]
    wraps = np.zeros(len(net.layers), dtype=np.int64)
    clips = np.zeros(len(net.layers), dtype=np.int64)
    cuts = np.zeros((batch, net.readout.n_out), dtype=np.int64)
    for t in range(steps):
        s = x[t]
        for k, layer in enumerate(net.layers):
            states[k], s, over = lif_step(states[k], dense_activation(layer, s), layer)
            wraps[k] += int(over.u_wraps.sum())
            clips[k] += int(over.v_clips.sum())
            if record or k == len(net.layers) - 1:
                spikes[k].append(s)
        cuts += over.v_clips | s
    return Trace([np.stack(s) if s else np.zeros((0, batch, 0), bool) for s in spikes], states[-1].v, wraps, clips,
                 cuts)


def logits(net: FixedNetwork, readout_v: np.ndarray, heads: np.ndarray | None = None) -> np.ndarray:
    """Decoded logits ``[B, n_outputs]`` = readout voltage / (64 S T), the head of each sample (``heads [B]``);
    outputs the training stream never made active are ``-inf`` (:func:`~spikecl.export.float_model.select_heads`)."""
    v = np.asarray(readout_v, dtype=np.float64) / (2**ACT_SHIFT * net.readout.scale * net.num_steps)
    return select_heads(v, net.n_heads, net.n_outputs, heads, net.config)


def predict(net: FixedNetwork, inputs: np.ndarray, heads: np.ndarray | None = None,
            batch_size: int = 500, wraps: np.ndarray | None = None, clips: np.ndarray | None = None) -> np.ndarray:
    """Predicted classes ``[B]`` of integer inputs ``[T, B, n_inputs]``. ``wraps`` and ``clips`` (int64
    [n_layers]), if given, have each layer's 24-bit current wraps and voltage saturations added to them; the
    readout's entry counts only the outputs decoded (each sample's head, outputs its stream trained), and a reset
    at the top too: the cuts that can change a logit compared."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"predict: batch_size must be a whole number >= 1, got {batch_size!r}")
    inputs = np.asarray(inputs)                           # a list too, as simulate takes; checked batch by batch
    check_input_shape(net, inputs.shape)
    heads = check_heads(heads, inputs.shape[1], net.n_heads)            # whole: a batch's slice could hide a misfit
    out = []
    for start in range(0, inputs.shape[1], batch_size):
        trace = simulate(net, inputs[:, start:start + batch_size], record=False)
        if wraps is not None:
            wraps += trace.u_wraps
        h = heads[start:start + batch_size]
        if clips is not None:
            decoded = select_heads(trace.readout_cuts, net.n_heads, net.n_outputs, h, net.config)
            clips += np.append(trace.v_clips[:-1], decoded[np.isfinite(decoded)].sum().astype(np.int64))
        out.append(np.argmax(logits(net, trace.readout_v, h), axis=1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


class Stream(NamedTuple):
    """Raw per-step records of a back-to-back run: spikes per layer ``[n, steps]`` (bool) and the readout
    voltage ``[n_readout, steps]`` (int64), as Lava's sink RingBuffers and Monitor record them."""

    spikes: list
    readout_v: np.ndarray


def stream_steps(net: FixedNetwork, n_samples: int) -> int:
    """Steps a back-to-back run of ``n_samples`` needs: the last sample must reach the readout."""
    return n_samples * net.num_steps + len(net.layers)


def source_data(net: FixedNetwork, inputs: np.ndarray) -> np.ndarray:
    """Source RingBuffer contents ``[n_inputs, steps]``: samples back to back, then zeros while the pipe drains."""
    x = check_inputs(net, inputs)
    steps, batch, n = x.shape
    data = np.zeros((n, stream_steps(net, batch)), dtype=np.int64)
    data[:, : steps * batch] = x.transpose(2, 1, 0).reshape(n, batch * steps)
    return data


def reset_offset(net: FixedNetwork, k: int) -> int:
    """``LIFReset`` offset of layer ``k`` (0-based): cleared when sample data first reaches it."""
    return (k + 2) % net.num_steps


def simulate_stream(net: FixedNetwork, inputs: np.ndarray) -> Stream:
    """Reproduce a Lava run of ``inputs`` ``[T, B, n_inputs]`` presented back to back (see module docstring)."""
    data = source_data(net, inputs)
    steps = data.shape[1]
    states = [zero_state((layer.n_out,)) for layer in net.layers]
    buffers = [np.zeros(layer.n_out, dtype=np.int64) for layer in net.layers]
    spikes = [np.zeros((layer.n_out, steps), dtype=bool) for layer in net.layers]
    readout_v = np.zeros((net.readout.n_out, steps), dtype=np.int64)
    for t in range(1, steps + 1):
        for k, layer in enumerate(net.layers):
            a_in = buffers[k]
            presyn = data[:, t - 1] if k == 0 else spikes[k - 1][:, t - 1]  # sent this step
            buffers[k] = dense_activation(layer, presyn)
            if t % net.num_steps == reset_offset(net, k):
                states[k] = zero_state((layer.n_out,))
            states[k], s, _ = lif_step(states[k], a_in, layer)
            spikes[k][:, t - 1] = s
        readout_v[:, t - 1] = states[-1].v
    return Stream(spikes, readout_v)


def sample_windows(net: FixedNetwork, stream: Stream, n_samples: int) -> Trace:
    """Cut a back-to-back stream into per-sample windows: spikes ``[T, B, n]`` per layer and the readout voltage at
    each sample's last step, aligned like :func:`simulate`'s output."""
    steps = net.num_steps
    out = []
    for k, s in enumerate(stream.spikes):
        start = k + 1  # layer k's first step of sample 0 is Lava step k + 2, stored in column k + 1
        window = s[:, start:start + n_samples * steps]
        out.append(window.reshape(s.shape[0], n_samples, steps).transpose(2, 1, 0))
    n_layers = len(net.layers)
    return Trace(out, stream.readout_v[:, sample_end_columns(net, n_samples)].T, np.zeros(n_layers, np.int64),
                 np.zeros(n_layers, np.int64))


def sample_end_columns(net: FixedNetwork, n_samples: int) -> np.ndarray:
    """Columns [n_samples] of a back-to-back stream's readout voltage that hold each sample's last step."""
    return len(net.layers) + np.arange(n_samples) * net.num_steps + net.num_steps - 1
