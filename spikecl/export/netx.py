"""Quantised networks as netx HDF5 files (lava-dl's network exchange format), written atomically.

Layout: only keys, shapes and types lava-dl 0.6's ``netx.hdf5.Network`` reads under ``/layer``; spikecl's own
per-layer values live under ``/spikecl`` (netx never opens that group)::

    /layer/0/          type "input", shape (n_inputs,) or (C, H, W)   (no neuron: netx feeds its input port on)
    /layer/<i>/        type "dense": shape (n_out,), weight int32 [n_out, n_in] (Loihi mantissas, exponent 0)
                       type "conv": shape (C, H, W), weight int32 [C_out, C_in, k, k] (torch layout), stride [2],
                       padding [2], dilation [2], groups ()
                       bias int32, optional: added as ``bias << 6`` (netx's fixed exponent); dense [n_out], conv
                       per channel [C] or per neuron in netx's grid [W, H, C]
                       neuron/ type "CUBA", iDecay (du + 1), vDecay (dv), vThMant (vth), refDelay 1 (int64 scalars)
                       type "flatten" (no other key) before a dense layer that follows a conv: netx flattens the
                       conv grid in (C, H, W) order, as torch does
    /simulation/       Ts 1, tSample T
    /spikecl/          attrs: schema "spikecl-netx", schema_version, encoder, num_steps, input_bits, n_outputs,
                       n_heads, lava_dl (whether netx runs the file exactly), config (JSON), metrics (JSON)
    /spikecl/layer/<k>/  per quantised layer k (0-based): weight_exp, num_weight_bits, bias_mant [n_out], bias_exp,
                       scale, input_bits, readout, netx (its /layer index), in_shape (conv); attr name

lava-dl's netx re-derives each weight exponent from the stored weights and applies every bias with exponent 6, so
a file runs exactly there only when every ``weight_exp`` is 0, every bias exponent at most 6 (the default
quantisation) and no dense layer's weights change in its rescaling (:mod:`spikecl.export.lava_dl_weights`);
:func:`write_netx` refuses other networks unless ``lava_dl=False`` (spikecl's runner only).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from spikecl.atomic import atomic_write
from spikecl.errors import ConfigError, ExportError, ResultsError, check_type
from spikecl.export.float_model import tasks_trained
from spikecl.export.lava_dl_weights import lava_dl_dense_mismatch
from spikecl.export.quantize import (BIAS_EXP_MAX, BIAS_MANT_MAX, DECAY_MAX, NETX_BIAS_EXP, VTH_MAX,
                                     WEIGHT_EXP_RANGE, FixedLayer, FixedNetwork, lava_weights)
from spikecl.export.spec import INPUT_ENCODERS, MAX_COUNT, NEXT_STEP, ConvGeometry, conv_output_shape
from spikecl.integrity import content_crc, crc_intact, write_hdf5_image
from spikecl.io import NETX_SCHEMA as SCHEMA
from spikecl.io import SCHEMA as RESULTS_SCHEMA
from spikecl.io import check_declared_sizes, open_for_reading

SCHEMA_VERSION = 2
#: the most synapses one layer of a network file may hold (2**27 int32 mantissas: 512 MiB), checked before reading
MAX_WEIGHTS = 2**27


def lava_dl_refusal(net: FixedNetwork) -> str | None:
    """Why lava-dl's netx would not run ``net`` exactly (one line), or None when it would."""
    for layer in net.layers:
        if layer.weight_exp != 0:
            return (f"layer {layer.name}: weight_exp {layer.weight_exp} has no netx key (lava-dl re-derives "
                    "exponents from the weights); quantise with QuantConfig(exponents=False) or write with "
                    "lava_dl=False for spikecl's runner")
        changed = lava_dl_dense_mismatch(layer.weight) if layer.conv is None else 0
        if changed:
            why = ("beyond the 8-bit synapse" if changed < 0 else f"by up to {changed} mantissa units: no positive "
                   "weight, the smallest a power of two")
            return (f"layer {layer.name}: lava-dl's netx loader would rescale its weights and Lava's Dense truncate "
                    f"them ({why}); write with lava_dl=False for spikecl's runner")
        bias = netx_bias(layer)
        if bias is None or np.abs(bias).max(initial=0) > BIAS_MANT_MAX:
            return (f"layer {layer.name}: bias exponent {layer.bias_exp} does not fit netx's 13-bit bias at "
                    "exponent 6; quantise with QuantConfig(exponents=False) or write with lava_dl=False")
    return None


def netx_bias(layer: FixedLayer) -> np.ndarray | None:
    """The bias ``[n_out]`` in netx units (added as ``bias << 6``), or None when not exactly expressible."""
    total = np.left_shift(layer.bias_mant.astype(np.int64), layer.bias_exp)
    if np.any(total % 2**NETX_BIAS_EXP):
        return None
    return total >> NETX_BIAS_EXP


def _netx_bias_array(layer: FixedLayer, bias: np.ndarray) -> np.ndarray:
    """Dense: [n_out]. Conv: per channel [C] when constant over each channel, else netx's grid [W, H, C]."""
    if layer.conv is None:
        return bias
    grid = bias.reshape(layer.conv.out_shape)
    if np.all(grid == grid[:, :1, :1]):
        return grid[:, 0, 0]
    return grid.transpose(2, 1, 0)


def _scalars(group, values: dict) -> None:
    for key, value in values.items():
        group.create_dataset(key, data=value)


def _write_layer(group, layer: FixedLayer) -> None:
    """One dense or conv layer with the keys netx reads."""
    group.create_dataset("type", data=np.bytes_("conv" if layer.conv else "dense"))
    shape = layer.conv.out_shape if layer.conv else (layer.n_out,)
    group.create_dataset("shape", data=np.array(shape, dtype=np.int64))
    group.create_dataset("weight", data=layer.weight.astype(np.int32))
    if layer.conv is not None:
        pair = lambda v: np.array([v, v], dtype=np.int64)  # noqa: E731
        _scalars(group, {"stride": pair(layer.conv.stride), "padding": pair(layer.conv.padding),
                         "dilation": pair(1), "groups": np.int64(1)})
    bias = netx_bias(layer)
    if bias is not None and np.any(bias):
        group.create_dataset("bias", data=_netx_bias_array(layer, bias).astype(np.int32))
    neuron = group.create_group("neuron")
    neuron.create_dataset("type", data=np.bytes_("CUBA"))
    _scalars(neuron, {"iDecay": np.int64(layer.du + 1), "vDecay": np.int64(layer.dv),
                      "vThMant": np.int64(layer.vth), "refDelay": np.int64(1)})


def _write_extras(group, layer: FixedLayer, netx_index: int) -> None:
    """spikecl's own values of one layer (its runner's exponents and the decoding scale)."""
    _scalars(group, {key: np.int64(value) for key, value in (
        ("weight_exp", layer.weight_exp), ("num_weight_bits", layer.num_weight_bits), ("bias_exp", layer.bias_exp),
        ("input_bits", layer.input_bits), ("readout", int(layer.readout)), ("netx", netx_index))})
    group.create_dataset("bias_mant", data=layer.bias_mant.astype(np.int32))
    group.create_dataset("scale", data=np.float64(layer.scale))
    if layer.conv is not None:
        group.create_dataset("in_shape", data=np.array(layer.conv.in_shape, dtype=np.int64))
    group.attrs["name"] = layer.name


def write_netx(path: str | Path, net: FixedNetwork, overwrite: bool = False, lava_dl: bool = True) -> Path:
    """Write ``net`` to ``path`` atomically (refuses an existing file unless ``overwrite``). ``lava_dl``: refuse
    (one-line :class:`ExportError`) a network lava-dl's netx would not run exactly; False writes it for spikecl's
    runner only (marked ``lava_dl = False``)."""
    check_type(net, FixedNetwork, "write_netx", "it writes a quantised network: quantize(spec) first")
    refusal = lava_dl_refusal(net)
    if lava_dl and refusal:
        raise ExportError(refusal)

    def build(f) -> None:
        layers, meta = f.create_group("layer"), f.create_group("spikecl")
        inp = layers.create_group("0")
        inp.create_dataset("type", data=np.bytes_("input"))
        first = net.layers[0].conv
        inp.create_dataset("shape", data=np.array(first.in_shape if first else (net.n_inputs,), dtype=np.int64))
        index = 1
        for k, layer in enumerate(net.layers):
            if k > 0 and net.layers[k - 1].conv is not None and layer.conv is None:
                layers.create_group(str(index)).create_dataset("type", data=np.bytes_("flatten"))
                index += 1
            _write_layer(layers.create_group(str(index)), layer)
            _write_extras(meta.create_group(f"layer/{k}"), layer, index)
            index += 1
        _scalars(f.create_group("simulation"), {"Ts": np.int64(1), "tSample": np.int64(net.num_steps)})
        meta.attrs.update(schema=SCHEMA, schema_version=SCHEMA_VERSION, encoder=net.encoder,
                          num_steps=net.num_steps, input_bits=net.input_bits, n_outputs=net.n_outputs,
                          n_heads=net.n_heads, lava_dl=refusal is None, config=json.dumps(net.config),
                          metrics=json.dumps(net.metrics))
        meta.attrs[CRC] = content_crc(f, CRC_AT)

    return atomic_write(path, lambda tmp: write_hdf5_image(tmp, build), overwrite=overwrite)


#: the /spikecl attribute holding the CRC-32 of a network file's contents (:func:`spikecl.integrity.content_crc`);
#: lava-dl's netx reads no attribute of /spikecl
CRC = "crc32"
CRC_AT = ("/spikecl", CRC)


def _scalar(group, key: str, where: str):
    """The value of the scalar dataset ``key`` of ``group`` (read only after its shape is checked)."""
    data = group[key]
    if getattr(data, "shape", None) != ():
        raise ResultsError(f"{where}: {key} is not a scalar")
    return data[()]


def _int(group, key: str, low: int, high: int, where: str) -> int:
    """An integer scalar dataset within low..high (a float, string or boolean is refused, never truncated)."""
    value = _scalar(group, key, where)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        shown = value.item() if isinstance(value, np.generic) else value
        raise ResultsError(f"{where}: {key} = {shown!r} is not an integer")
    if not low <= int(value) <= high:
        raise ResultsError(f"{where}: {key} = {value} outside {low}..{high}")
    return int(value)


def _shape(group, key: str, lengths: tuple, where: str, low: int = 1) -> tuple:
    """A shape dataset: one of ``lengths`` integers in ``low``..:data:`MAX_COUNT`, checked before it is read."""
    data = group[key]
    if (getattr(data, "ndim", None) != 1 or data.shape[0] not in lengths or data.dtype.kind not in "iu"):
        raise ResultsError(f"{where}: {key} must hold {' or '.join(map(str, lengths))} integers")
    values = tuple(int(v) for v in data[()])
    if not all(low <= v <= MAX_COUNT for v in values):
        raise ResultsError(f"{where}: {key} = {values} must hold integers in {low}..{MAX_COUNT}")
    return values


def _integers(group, key: str, what: str, where: str):
    """The integer dataset ``key`` of ``group``, unread (its type checked)."""
    data = group[key]
    if getattr(data, "dtype", None) is None or data.dtype.kind not in "iu":
        raise ResultsError(f"{where}: {key} holds {getattr(data, 'dtype', 'no')} values, not {what}")
    return data


def _array(group, key: str, shape: tuple, what: str, where: str) -> np.ndarray:
    """An integer dataset of exactly ``shape``, its shape and type checked before it is read."""
    data = _integers(group, key, what, where)
    if data.shape != shape:
        raise ResultsError(f"{where}: {key} has shape {data.shape}; expected {shape}")
    return data[()]


def _text(group, key: str, where: str) -> str:
    """The string scalar dataset ``key`` of ``group``."""
    value = _scalar(group, key, where)
    if not isinstance(value, (bytes, str)):
        shown = value.item() if isinstance(value, np.generic) else value
        raise ResultsError(f"{where}: {key} = {shown!r} is not a string")
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _conv_geometry(group, extras, where: str) -> ConvGeometry | None:
    kind = _text(group, "type", where)
    if kind == "dense":
        return None
    if kind != "conv":
        raise ResultsError(f"{where}: layer type {kind!r} is not supported (dense and conv only)")
    out_shape, in_shape = _shape(group, "shape", (3,), where), _shape(extras, "in_shape", (3,), where)
    for key, grid in (("shape", out_shape), ("in_shape", in_shape)):
        if int(np.prod(grid)) > MAX_COUNT:
            raise ResultsError(f"{where}: conv {key} {grid} holds more than {MAX_COUNT} neurons")
    stride, padding = _shape(group, "stride", (2,), where)[0], _shape(group, "padding", (2,), where, low=0)[0]
    if ("dilation" in group and _shape(group, "dilation", (2,), where) != (1, 1)) or \
            ("groups" in group and _int(group, "groups", 0, MAX_COUNT, where) != 1):
        raise ResultsError(f"{where}: conv dilation or groups is not 1 (lava-dl's netx would run another conv than "
                           "spikecl's runner)")
    weight = group["weight"]
    k = weight.shape[-1] if getattr(weight, "ndim", 0) == 4 else 0
    if not (0 < k <= min(in_shape[1:]) + 2 * padding) or weight.shape[:3] != (out_shape[0], in_shape[0], k) \
            or conv_output_shape(in_shape, out_shape[0], k, stride, padding) != out_shape:
        raise ResultsError(f"{where}: conv shapes {in_shape} -> {out_shape} do not match its kernel and stride")
    return ConvGeometry(in_shape, out_shape, stride, padding)


def _check_netx_bias(group, layer: FixedLayer, version: int, where: str) -> None:
    """The netx group's ``bias`` (what lava-dl's netx runs, with exponent 6) must be what :func:`write_netx` writes
    for ``layer`` (spikecl's runner runs ``bias_mant << bias_exp``): present exactly when that is non-zero and
    expressible, dense [n_out], conv per channel [C] or on netx's grid [W, H, C] (version 1: [n_out])."""
    expected = netx_bias(layer)
    written = expected is not None and bool(np.any(expected))
    if "bias" not in group:
        if written:
            raise ResultsError(f"{where}: bias is missing, so lava-dl's netx would run the layer without the bias "
                               "spikecl's runner adds (bias_mant << bias_exp); the file is damaged")
        return
    data = _integers(group, "bias", "integers", where)
    shapes = {(layer.n_out,)} if layer.conv is None or version < 2 else set()
    if layer.conv is not None:
        c, h, w = layer.conv.out_shape
        shapes |= {(c,), (w, h, c)}
    if data.shape not in shapes:
        raise ResultsError(f"{where}: bias has shape {data.shape}; expected one of {sorted(shapes)}")
    stored = data[()]
    wraps = stored.dtype.kind == "u" and stored.size and int(stored.max()) > np.iinfo(np.int64).max
    stored = stored.astype(np.int64)                     # exact unless it wraps, which is refused below
    if layer.conv is not None and stored.shape != (layer.n_out,):
        c, h, w = layer.conv.out_shape
        grid = stored.transpose(2, 1, 0) if stored.ndim == 3 else np.broadcast_to(stored[:, None, None], (c, h, w))
        stored = grid.reshape(-1)
    if wraps or expected is None or not np.array_equal(stored, expected):
        raise ResultsError(f"{where}: bias differs from spikecl's bias_mant << bias_exp (lava-dl's netx would run "
                           "the one, spikecl's runner the other); the file is damaged")


#: the entries of each netx group :func:`write_netx` writes; lava-dl's netx runs others (``delay``, ``weight_rec``,
#: ``neuron/messageBits``, a neuron on the input, ...) that spikecl's runner does not, so a file holding one is refused
NETX_KEYS = {"input": {"type", "shape"}, "flatten": {"type"}, "dense": {"type", "shape", "weight", "bias", "neuron"},
             "conv": {"type", "shape", "weight", "bias", "neuron", "stride", "padding", "dilation", "groups"},
             "neuron": {"type", "iDecay", "vDecay", "vThMant", "refDelay"}}
#: spikecl's own entries of a layer, which version 1 files kept in the netx group
EXTRA_KEYS = {"weight_exp", "num_weight_bits", "bias_exp", "input_bits", "readout", "netx", "bias_mant", "scale",
              "in_shape"}
#: what version 1 writers added besides: ``neuron/messageBits`` (0: binary spikes) and a neuron on the input layer
V1_KEYS = {"neuron": {"messageBits"}, "input": {"neuron"}}


def _check_keys(group, kind: str, where: str, extra: set = frozenset()) -> None:
    """Refuse (one-line :class:`ResultsError`) an entry of the netx ``group`` of ``kind`` that spikecl never writes."""
    unknown = sorted(set(group.keys()) - NETX_KEYS[kind] - extra)
    if unknown:
        raise ResultsError(f"{where}: entry {unknown[0]!r} is not one spikecl writes (lava-dl's netx would run it, "
                           "spikecl's runner not)")


#: the entries of a netx group that lava-dl's netx reads without a default (schema version 2 files hold them)
NETX_REQUIRED = {"dense": ("type", "shape", "weight"),
                 "conv": ("type", "shape", "weight", "stride", "padding", "dilation", "groups")}


def _read_layer(group, extras, n_in: int, where: str, version: int = SCHEMA_VERSION) -> FixedLayer:
    """One layer taking ``n_in`` inputs, from its netx group and spikecl's extras (version 1 files kept both in the
    netx group). Every dataset's shape and type is checked before it is read; the netx keys spikecl's runner does
    not read (``bias``, ``neuron/type``) must agree with what it runs, and those lava-dl's netx needs are present."""
    data = _integers(group, "weight", "integer Loihi mantissas", where)
    if version >= 2:
        kind = _text(group, "type", where)
        missing = [key for key in NETX_REQUIRED.get(kind, ()) if key not in group]
        if missing:
            raise ResultsError(f"{where}: {kind} layer lacks {', '.join(missing)} (lava-dl's netx could not load "
                               "the file); the file is damaged")
        if "neuron" not in group:
            raise ResultsError(f"{where}: {kind} layer lacks neuron (lava-dl's netx would give it a default neuron, "
                               "not the one spikecl's runner runs); the file is damaged")
    conv = _conv_geometry(group, extras, where)
    _check_keys(group, "conv" if conv else "dense", where, EXTRA_KEYS if version < 2 else set())
    if conv is None:
        shape = (data.shape[0] if getattr(data, "ndim", 0) == 2 else 0, n_in)
        if not 1 <= shape[0] <= MAX_COUNT or ("shape" in group and _shape(group, "shape", (1,), where) != shape[:1]):
            raise ResultsError(f"{where}: weight has shape {getattr(data, 'shape', None)}; expected [n_out, {n_in}] "
                               "matching the layer's shape")
    else:
        if int(np.prod(conv.in_shape)) != n_in:
            raise ResultsError(f"{where}: conv input grid {conv.in_shape} does not take {n_in} inputs")
        shape = data.shape
    if int(np.prod(shape)) > MAX_WEIGHTS:
        raise ResultsError(f"{where}: weight {shape} holds more than {MAX_WEIGHTS} synapses")
    weight = _array(group, "weight", shape, "integer Loihi mantissas", where)
    bits = _int(extras, "num_weight_bits", 1, 8, where)
    if weight.size and (weight.min() < -(1 << 8) or weight.max() >= 1 << 8):      # checked before the int32 cast
        raise ResultsError(f"{where}: weight is not a matrix of {bits}-bit Loihi mantissas (values up to "
                           f"{max(abs(int(weight.min())), int(weight.max()))})")
    weight = weight.astype(np.int32)
    if not np.array_equal(lava_weights(weight, bits), weight):
        raise ResultsError(f"{where}: weight is not a matrix of {bits}-bit Loihi mantissas")
    n_out = int(np.prod(conv.out_shape)) if conv else weight.shape[0]
    bias_mant = _array(extras, "bias_mant", (n_out,), f"[{n_out}] 13-bit integers", where)
    if bias_mant.size and max(-int(bias_mant.min()), int(bias_mant.max())) > BIAS_MANT_MAX:   # before any cast
        raise ResultsError(f"{where}: bias_mant must be [{n_out}] 13-bit integers")
    scale = _scalar(extras, "scale", where)
    if not isinstance(scale, (float, np.floating)) or not (np.isfinite(scale) and scale > 0):
        shown = scale.item() if isinstance(scale, np.generic) else scale
        raise ResultsError(f"{where}: scale = {shown} must be a positive number (activation units per current unit)")
    neuron = group["neuron"]
    _check_keys(neuron, "neuron", f"{where}: neuron", V1_KEYS["neuron"] if version < 2 else set())
    kind = _text(neuron, "type", where)
    if kind != "CUBA":
        raise ResultsError(f"{where}: neuron/type {kind!r} is not 'CUBA' (the LIF neuron spikecl's runner and "
                           "lava-dl's netx both run)")
    layer = FixedLayer(
        name=str(extras.attrs.get("name", group.attrs.get("name", where))), weight=weight,
        weight_exp=_int(extras, "weight_exp", *WEIGHT_EXP_RANGE, where), num_weight_bits=bits,
        du=_int(neuron, "iDecay", 1, DECAY_MAX + 1, where) - 1,
        dv=_int(neuron, "vDecay", 0, DECAY_MAX, where), vth=_int(neuron, "vThMant", 1, VTH_MAX, where),
        bias_mant=bias_mant.astype(np.int32), bias_exp=_int(extras, "bias_exp", 0, BIAS_EXP_MAX, where),
        scale=float(scale), input_bits=_int(extras, "input_bits", 0, 16, where),
        readout=bool(_int(extras, "readout", 0, 1, where)), conv=conv)
    _check_netx_bias(group, layer, version, where)
    return layer


def _layer_groups(f, version: int, path: Path) -> list:
    """(netx group, extras group, where) per quantised layer, skipping netx's input and flatten entries (the
    entries lava-dl's netx runs: ``input`` first, ``flatten`` only between quantised layers, nothing after them)."""
    first = _text(f["layer/0"], "type", f"{path}: layer 0")
    if first != "input":
        raise ResultsError(f"{path}: layer 0: type {first!r} is not 'input'")
    _check_keys(f["layer/0"], "input", f"{path}: layer 0", V1_KEYS["input"] if version < 2 else set())
    if version < 2:
        return [(f[f"layer/{i}"], f[f"layer/{i}"], f"layer {i}") for i in range(1, len(f["layer"]))]
    groups, last, previous = [], 0, "input"
    for k in range(len(f["spikecl/layer"])):
        extras = f[f"spikecl/layer/{k}"]
        index = _int(extras, "netx", last + 1, len(f["layer"]) - 1, f"{path}: /spikecl/layer/{k}")
        for skipped in range(last + 1, index):
            kind = _text(f[f"layer/{skipped}"], "type", f"{path}: layer {skipped}")
            if kind != "flatten" or k == 0:
                raise ResultsError(f"{path}: layer {skipped}: type {kind!r} between spikecl's layers (only a "
                                   "'flatten' after a conv may be; lava-dl's netx would run it)")
            _check_keys(f[f"layer/{skipped}"], "flatten", f"{path}: layer {skipped}")
        kind = _text(f[f"layer/{index}"], "type", f"{path}: layer {index}")
        _check_flatten(previous, index > last + 1, kind, last, index, path)
        groups.append((f[f"layer/{index}"], extras, f"layer {index}"))
        last, previous = index, kind
    if last != len(f["layer"]) - 1:
        raise ResultsError(f"{path}: layer {last + 1} follows the readout (lava-dl's netx would run it, spikecl's "
                           "runner not)")
    return groups


def _check_flatten(previous: str, flattened: bool, kind: str, last: int, index: int, path: Path) -> None:
    """Whether netx layer ``index`` (of type ``kind``), after layer ``last`` (of type ``previous``) with ``flatten``
    entries between them or not (``flattened``), is connected as lava-dl's netx connects: a conv's 3-D output reaches
    a dense layer only through a ``flatten``, and a ``flatten`` stands only there (lava-dl refuses the file
    otherwise, its shapes incompatible)."""
    if previous == "conv" and kind == "dense" and not flattened:
        raise ResultsError(f"{path}: layer {index}: a dense layer after the conv of layer {last} needs a 'flatten' "
                           "entry between them (lava-dl's netx could not connect them)")
    if flattened and not (previous == "conv" and kind == "dense"):
        raise ResultsError(f"{path}: layer {last + 1}: a 'flatten' between a {previous} and a {kind} layer (it may "
                           "stand only between a conv and the dense layer after it, where lava-dl's netx flattens)")


def is_network_file(path: str | Path) -> bool:
    """Whether ``path``, a file that passed :func:`spikecl.io.open_for_reading`'s checks, is a network file (this
    module's schema); False for a file h5py cannot open."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            meta = f.get("spikecl")
            return isinstance(meta, h5py.Group) and meta.attrs.get("schema") == SCHEMA
    except OSError:
        return False


def is_nir_file(path: str | Path) -> bool:
    """Whether ``path``, a file that passed :func:`spikecl.io.open_for_reading`'s checks, is a NIR graph (HDF5 with
    a ``node`` group and no spikecl metadata); False for a file h5py cannot open."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f.get("spikecl") is None and isinstance(f.get("node"), h5py.Group)
    except OSError:
        return False


def read_netx(path: str | Path) -> FixedNetwork:
    """Read a file written by :func:`write_netx`; a missing, corrupt, foreign or internally inconsistent file is a
    one-line :class:`ResultsError`."""
    path = Path(path)
    if path.suffix.lower() == ".ckpt":
        raise ResultsError(f"{path} is a run checkpoint, not an exported network; export it first: spikecl export "
                           f"{path} -o net.h5")
    import h5py

    with open_for_reading(path, "network file") as f:
        meta = f.get("spikecl")
        if meta is None and isinstance(f.get("node"), h5py.Group):
            raise ResultsError(f"{path} is a NIR graph, a float network; deploy runs netx files (spikecl export "
                               "--format netx), and spikecl.export.nir_readers.run_nir runs a NIR graph")
        if meta is None and f.attrs.get("schema") == RESULTS_SCHEMA:
            kind = f.attrs.get("kind")
            if isinstance(kind, str) and kind in NEXT_STEP:                # nothing of it exports as it is
                raise ResultsError(f"{path} is a {kind} results file, not an exported network{NEXT_STEP[kind]}")
            raise ResultsError(f"{path} is a results file, not an exported network; export it first: spikecl "
                               f"export {path} -o net.h5")
        if meta is None or meta.attrs.get("schema") != SCHEMA:
            raise ResultsError(f"{path} is not a spikecl network file (no /spikecl schema)")
        version = _attr_int(meta.attrs, "schema_version", 1, MAX_COUNT, path)   # 2.7 or True: refused
        if version > SCHEMA_VERSION:
            raise ResultsError(f"{path} has schema version {version}; this spikecl reads up to {SCHEMA_VERSION}")
        steps = _attr_int(meta.attrs, "num_steps", 1, MAX_COUNT, path)
        samples = f.get("simulation/tSample")
        if samples is not None and _int(f["simulation"], "tSample", 1, MAX_COUNT, f"{path}: /simulation") != steps:
            raise ResultsError(f"{path}: num_steps = {steps} disagrees with /simulation/tSample = {int(samples[()])}")
        input_shape = _shape(f["layer/0"], "shape", (1, 3), f"{path}: layer 0")
        n_in = int(np.prod(input_shape))
        layers = []
        for group, extras, where in _layer_groups(f, version, path):
            layers.append(_read_layer(group, extras, n_in, f"{path}: {where}", version))
            n_in = layers[-1].n_out
        first = layers[0].conv if layers else None
        expected = first.in_shape if first else (layers[0].n_in,) if layers else input_shape
        if version >= 2 and input_shape != expected:
            grid = " (lava-dl's netx would build another input grid)" if first else ""
            raise ResultsError(f"{path}: layer 0: shape {input_shape} is not the network's input {expected}{grid}; "
                               "the file is damaged")
        net = FixedNetwork(tuple(layers), steps, _attr_str(meta.attrs, "encoder", path),
                           _attr_int(meta.attrs, "input_bits", 0, 16, path),
                           _attr_int(meta.attrs, "n_outputs", 1, MAX_COUNT, path),
                           _attr_int(meta.attrs, "n_heads", 1, MAX_COUNT, path),
                           _attr_table(meta.attrs, "config", path), _attr_table(meta.attrs, "metrics", path))
        marked = meta.attrs.get("lava_dl")
        stored = meta.attrs.get(CRC)                     # absent in files written before it, and in others' files
        if stored is not None:
            check_declared_sizes(f, path)
            intact = crc_intact(f, CRC_AT)
    _check_consistent(net, path)
    _check_lava_dl_mark(marked, net, path)
    if stored is not None and not intact:                # after the checks that name a part: they say more
        raise ResultsError(f"{path} is corrupt: its contents fail their CRC-32 (a byte changed on disk); export "
                           "the network again")
    return net


def _check_lava_dl_mark(marked, net: FixedNetwork, path: Path) -> None:
    """The ``lava_dl`` attribute must be true or false (absent in files written before it) and true only where
    lava-dl's netx runs the network exactly (:func:`lava_dl_refusal`): else lava-dl and spikecl's runner would run
    two networks from one file that claims to be one."""
    if marked is None:
        return
    if not isinstance(marked, (bool, np.bool_)):
        raise ResultsError(f"{path}: /spikecl attribute lava_dl = {marked!r} is not true or false; the file is "
                           "damaged")
    refusal = lava_dl_refusal(net) if marked else None
    if refusal:
        raise ResultsError(f"{path}: marked lava_dl = true, but lava-dl's netx would run another network than "
                           f"spikecl's runner: {refusal.split('; ')[0]}; the file is damaged or edited")


def _check_consistent(net: FixedNetwork, path: Path) -> None:
    """The file's parts must agree: a readout last and only last, the encoder and every layer's input bits, the
    heads with the readout and with the training stream the config describes, the metrics' numbers."""
    if not net.layers or not net.layers[-1].readout:
        raise ResultsError(f"{path}: layers do not chain from {net.layers[0].n_in if net.layers else '?'} inputs to "
                           "a readout")
    flagged = next((layer for layer in net.layers[:-1] if layer.readout), None)
    if flagged is not None:
        raise ResultsError(f"{path}: layer {flagged.name} is flagged as the readout but is not the last layer")
    if net.encoder not in INPUT_ENCODERS:
        raise ResultsError(f"{path}: encoder {net.encoder!r} is not one of {', '.join(INPUT_ENCODERS)}")
    if (net.encoder == "direct") != (net.input_bits > 0):
        raise ResultsError(f"{path}: encoder {net.encoder!r} with input_bits = {net.input_bits} (graded input bits "
                           "belong to 'direct' only, which needs at least 1)")
    for k, layer in enumerate(net.layers):
        if layer.input_bits != (net.input_bits if k == 0 else 0):
            raise ResultsError(f"{path}: layer {layer.name} has input_bits = {layer.input_bits}; the network's input "
                               f"is {net.input_bits} bits and later layers receive binary spikes (0)")
    if net.n_heads * net.n_outputs != net.readout.n_out:
        raise ResultsError(f"{path}: n_heads = {net.n_heads} x n_outputs = {net.n_outputs} does not match the "
                           f"readout's {net.readout.n_out} neurons")
    try:                                                 # a damaged count is named on reading, not on use
        tasks_trained(net.config)
        heads = stream_heads(net.config)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    if heads is not None and heads != net.n_heads:
        raise ResultsError(f"{path}: n_heads = {net.n_heads}, but the training stream in its config needs {heads} "
                           "(task scenario: one head per task, else one)")
    bad = next((k for k, v in net.metrics.items()
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)), None)
    if bad is not None:
        raise ResultsError(f"{path}: metrics {bad} = {net.metrics[bad]!r} is not a finite number; the file is damaged")
    if "float_accuracy" in net.metrics and not {"reference_accuracy", "samples"} <= set(net.metrics):
        raise ResultsError(f"{path}: metrics hold float_accuracy without reference_accuracy and samples; the file is "
                           "damaged")


def stream_heads(config: dict) -> int | None:
    """The readout heads the training stream of the stored ``config`` needs (task scenario: ``n_tasks``, else 1);
    None without a stream. An invalid stream section is a one-line :class:`~spikecl.errors.ResultsError` (the file
    that stored it is damaged)."""
    from spikecl.config import StreamConfig
    from spikecl.options import from_dict

    if not isinstance(config.get("stream"), dict):
        return None
    try:
        stream = from_dict(StreamConfig, config["stream"], "stream.")
    except ConfigError as exc:
        raise ResultsError(f"the stored config is damaged ({exc})") from None
    return stream.n_tasks if stream.scenario == "task" else 1


def _attr_table(attrs, key: str, path: Path) -> dict:
    """The JSON table held by the attribute ``key`` of ``/spikecl`` (absent: empty); anything else is a one-line
    :class:`ResultsError`."""
    try:
        value = json.loads(attrs.get(key, "{}"))
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise ResultsError(f"{path}: its {key} attribute is not a JSON table; the file is damaged")
    return value


def _attr_int(attrs, key: str, low: int, high: int, path: Path) -> int:
    """The integer attribute ``key`` of ``/spikecl`` (a one-line :class:`ResultsError` outside low..high)."""
    value = attrs[key]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        shown = value.item() if isinstance(value, np.generic) else value
        raise ResultsError(f"{path}: {key} = {shown!r} must be an integer in {low}..{high}")
    return int(value)


def _attr_str(attrs, key: str, path: Path) -> str:
    """The string attribute ``key`` of ``/spikecl``."""
    value = attrs[key]
    if not isinstance(value, str):
        raise ResultsError(f"{path}: {key} = {value!r} is not a string")
    return value
