"""Quantised networks as netx-compatible HDF5 (lava-dl's network exchange layout), written atomically.

Layout (netx keys plus spikecl's own, which netx ignores)::

    /layer/0/          type "input", shape (n_inputs,) (no neuron group: netx passes its input to layer 1)
    /layer/<i>/        type "dense", shape (n_out,), weight int [n_out, n_in] (Loihi mantissas), or
                       type "conv", shape (C, H, W), weight [C_out, C_in, k, k] (torch layout), stride, padding,
                       dilation, groups, in_shape (spikecl),
                       bias (netx units: activation, bias_exp 6; only when exactly representable),
                       neuron/ type "CUBA", iDecay (du + 1), vDecay (dv), vThMant (vth), refDelay 1, messageBits 0
                       spikecl extras: weight_exp, num_weight_bits, bias_mant, bias_exp, scale, input_bits, readout
    /simulation/       Ts 1, tSample T
    /spikecl/          attrs: schema "spikecl-netx", schema_version, encoder, num_steps, input_bits, n_outputs,
                       n_heads, config (JSON of the training config), metrics (JSON: accuracies at export)

lava-dl's netx reads a layer exactly as written when its ``weight_exp`` is 0 and its bias is stored as ``bias``
(netx derives the weight exponent from the weights and ignores spikecl's keys); see docs/export.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spikecl.errors import ResultsError
from spikecl.export.quantize import (BIAS_EXP_MAX, BIAS_MANT_MAX, DECAY_MAX, VTH_MAX, WEIGHT_EXP_RANGE,
                                     FixedLayer, FixedNetwork, lava_weights)
from spikecl.export.spec import ConvGeometry, conv_output_shape
from spikecl.io import atomic_write, open_for_reading

SCHEMA = "spikecl-netx"
SCHEMA_VERSION = 1
NETX_BIAS_EXP = 6


def _neuron(group, du: int, dv: int, vth: int, message_bits: int) -> None:
    n = group.create_group("neuron")
    n.create_dataset("type", data=np.bytes_("CUBA"))
    for key, value in (("iDecay", du + 1), ("vDecay", dv), ("vThMant", vth), ("refDelay", 1),
                       ("messageBits", message_bits)):
        n.create_dataset(key, data=np.int64(value))


def _netx_bias(layer: FixedLayer) -> np.ndarray | None:
    """The bias in netx units (added as ``bias << 6``), or None when not exactly expressible that way."""
    total = np.left_shift(layer.bias_mant.astype(np.int64), layer.bias_exp)
    if np.any(total % 2**NETX_BIAS_EXP) or np.abs(total >> NETX_BIAS_EXP).max(initial=0) > BIAS_MANT_MAX:
        return None
    return (total >> NETX_BIAS_EXP).astype(np.int32)


def _write_layer(group, layer: FixedLayer) -> None:
    group.create_dataset("type", data=np.bytes_("conv" if layer.conv else "dense"))
    if layer.conv is not None:
        group.create_dataset("shape", data=np.array(layer.conv.out_shape, dtype=np.int64))
        group.create_dataset("in_shape", data=np.array(layer.conv.in_shape, dtype=np.int64))
        for key, value in (("stride", layer.conv.stride), ("padding", layer.conv.padding), ("dilation", 1),
                           ("groups", 1)):
            group.create_dataset(key, data=np.array([value, value], dtype=np.int64) if key != "groups"
                                 else np.int64(value))
    else:
        group.create_dataset("shape", data=np.array([layer.n_out], dtype=np.int64))
    group.create_dataset("weight", data=layer.weight.astype(np.int32))
    bias = _netx_bias(layer)
    if bias is not None and np.any(bias):
        group.create_dataset("bias", data=bias)
    _neuron(group, layer.du, layer.dv, layer.vth, 0)
    for key, value in (("weight_exp", layer.weight_exp), ("num_weight_bits", layer.num_weight_bits),
                       ("bias_exp", layer.bias_exp), ("input_bits", layer.input_bits),
                       ("readout", int(layer.readout))):
        group.create_dataset(key, data=np.int64(value))
    group.create_dataset("bias_mant", data=layer.bias_mant.astype(np.int32))
    group.create_dataset("scale", data=np.float64(layer.scale))
    group.attrs["name"] = layer.name


def write_netx(path: str | Path, net: FixedNetwork, overwrite: bool = False) -> Path:
    """Write ``net`` to ``path`` atomically (refuses an existing file unless ``overwrite``)."""
    import h5py

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            layers = f.create_group("layer")
            inp = layers.create_group("0")
            inp.create_dataset("type", data=np.bytes_("input"))
            first = net.layers[0].conv
            in_shape = first.in_shape if first else (net.n_inputs,)
            inp.create_dataset("shape", data=np.array(in_shape, dtype=np.int64))  # no neuron: netx feeds it
            for i, layer in enumerate(net.layers, start=1):
                _write_layer(layers.create_group(str(i)), layer)
            sim = f.create_group("simulation")
            sim.create_dataset("Ts", data=np.int64(1))
            sim.create_dataset("tSample", data=np.int64(net.num_steps))
            meta = f.create_group("spikecl")
            meta.attrs.update(schema=SCHEMA, schema_version=SCHEMA_VERSION, encoder=net.encoder,
                              num_steps=net.num_steps, input_bits=net.input_bits, n_outputs=net.n_outputs,
                              n_heads=net.n_heads, config=json.dumps(net.config),
                              metrics=json.dumps(net.metrics))

    return atomic_write(path, write, overwrite=overwrite)


def _int(group, key: str, low: int, high: int, where: str) -> int:
    value = int(group[key][()])
    if not low <= value <= high:
        raise ResultsError(f"{where}: {key} = {value} outside {low}..{high}")
    return value


def _conv_geometry(group, where: str) -> ConvGeometry | None:
    kind = group["type"][()].decode()
    if kind == "dense":
        return None
    if kind != "conv":
        raise ResultsError(f"{where}: layer type {kind!r} is not supported (dense and conv only)")
    out_shape, in_shape = tuple(int(v) for v in group["shape"][()]), tuple(int(v) for v in group["in_shape"][()])
    stride, padding = int(group["stride"][()][0]), int(group["padding"][()][0])
    k = group["weight"].shape[-1]
    if len(in_shape) != 3 or conv_output_shape(in_shape, out_shape[0], k, stride, padding) != out_shape:
        raise ResultsError(f"{where}: conv shapes {in_shape} -> {out_shape} do not match its kernel and stride")
    return ConvGeometry(in_shape, out_shape, stride, padding)


def _read_layer(group, where: str) -> FixedLayer:
    conv = _conv_geometry(group, where)
    neuron = group["neuron"]
    weight = group["weight"][()].astype(np.int32)
    bits = _int(group, "num_weight_bits", 1, 8, where)
    if weight.ndim != (4 if conv else 2) or not np.array_equal(lava_weights(weight, bits), weight):
        raise ResultsError(f"{where}: weight is not a matrix of {bits}-bit Loihi mantissas")
    n_out = int(np.prod(conv.out_shape)) if conv else weight.shape[0]
    bias_mant = group["bias_mant"][()].astype(np.int32)
    if bias_mant.shape != (n_out,) or np.abs(bias_mant).max(initial=0) > BIAS_MANT_MAX:
        raise ResultsError(f"{where}: bias_mant must be [{n_out}] 13-bit integers")
    return FixedLayer(
        name=str(group.attrs.get("name", where)), weight=weight,
        weight_exp=_int(group, "weight_exp", *WEIGHT_EXP_RANGE, where), num_weight_bits=bits,
        du=_int(neuron, "iDecay", 1, DECAY_MAX + 1, where) - 1, dv=_int(neuron, "vDecay", 0, DECAY_MAX, where),
        vth=_int(neuron, "vThMant", 0, VTH_MAX, where), bias_mant=bias_mant,
        bias_exp=_int(group, "bias_exp", 0, BIAS_EXP_MAX, where), scale=float(group["scale"][()]),
        input_bits=_int(group, "input_bits", 0, 16, where), readout=bool(_int(group, "readout", 0, 1, where)),
        conv=conv)


def read_netx(path: str | Path) -> FixedNetwork:
    """Read a file written by :func:`write_netx`; a missing, corrupt or foreign file is a :class:`ResultsError`."""
    path = Path(path)
    with open_for_reading(path, "network file") as f:
        meta = f.get("spikecl")
        if meta is None or meta.attrs.get("schema") != SCHEMA:
            raise ResultsError(f"{path} is not a spikecl network file (no /spikecl schema)")
        if int(meta.attrs["schema_version"]) > SCHEMA_VERSION:
            raise ResultsError(f"{path} has schema version {int(meta.attrs['schema_version'])}; this spikecl "
                               f"reads up to {SCHEMA_VERSION}")
        n_layers = len(f["layer"])
        layers = tuple(_read_layer(f[f"layer/{i}"], f"{path}: layer {i}") for i in range(1, n_layers))
        net = FixedNetwork(layers, int(meta.attrs["num_steps"]), str(meta.attrs["encoder"]),
                           int(meta.attrs["input_bits"]), int(meta.attrs["n_outputs"]),
                           int(meta.attrs["n_heads"]), json.loads(meta.attrs["config"]),
                           json.loads(meta.attrs.get("metrics", "{}")))
        n_inputs = int(np.prod(f["layer/0/shape"][()]))
    if not layers or not layers[-1].readout or layers[0].n_in != n_inputs:
        raise ResultsError(f"{path}: layers do not chain from {n_inputs} inputs to a readout")
    for a, b in zip(layers[:-1], layers[1:]):
        if a.n_out != b.n_in:
            raise ResultsError(f"{path}: layer {b.name} takes {b.n_in} inputs but {a.name} has {a.n_out}")
    return net
