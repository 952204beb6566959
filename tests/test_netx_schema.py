"""What lava-dl 0.6's netx loader (``netx.hdf5.Network``) needs from a spikecl netx file, checked without lava-dl.

Encoded from lava-dl's reader: ``/layer/<i>`` numbered from 0; ``type`` an ASCII string; ``input`` has a ``shape``
and no neuron (netx feeds its input port to the next layer); ``dense`` weight [prod(shape), n_in]; ``conv`` weight
[C_out, C_in, k, k] with stride, padding, dilation (2 ints) and groups; ``bias`` dense [n], conv [C] or netx's grid
[W, H, C] (added with exponent 6: it must be the whole bias); ``flatten`` before a dense layer fed by a conv;
neuron keys only ``type, iDecay, vDecay, vThMant, refDelay`` (``messageBits`` breaks the loader); netx re-derives
the weight exponent from the weights, so every ``weight_exp`` must be 0.
"""

import h5py
import numpy as np
import pytest

from spikecl.errors import ExportError
from spikecl.export.netx import read_netx, write_netx
from spikecl.export.quantize import QuantConfig, quantize

from test_export import cnn_spec, random_spec, small_cnn

NEURON = {"type", "iDecay", "vDecay", "vThMant", "refDelay"}
KEYS = {"input": {"type", "shape"}, "flatten": {"type"}, "dense": {"type", "shape", "weight", "bias", "neuron"},
        "conv": {"type", "shape", "weight", "bias", "neuron", "stride", "padding", "dilation", "groups"}}


def networks():
    rng = np.random.default_rng(20)
    return {"direct": quantize(random_spec(rng, steps=4)),
            "latency": quantize(random_spec(rng, steps=4, encoder="latency")),
            "poisson": quantize(random_spec(rng, widths=(10, 16, 12, 3), steps=4, encoder="poisson")),
            "cnn": quantize(cnn_spec(small_cnn(3))),
            "one-conv": quantize(cnn_spec(small_cnn(5, channels=(4,))))}           # conv straight into the readout


def layer_types(f) -> list:
    assert sorted(f["layer"], key=int) == [str(i) for i in range(len(f["layer"]))]
    return [f[f"layer/{i}/type"][()].decode("ascii") for i in range(len(f["layer"]))]


def check_neuron(group, layer):
    assert set(group) == NEURON and "messageBits" not in group
    assert group["type"][()] == b"CUBA"
    for key in NEURON - {"type"}:
        assert group[key].shape == () and np.issubdtype(group[key].dtype, np.integer), key
    assert (group["iDecay"][()] - 1, group["vDecay"][()], group["vThMant"][()]) == (layer.du, layer.dv, layer.vth)


def check_bias(group, layer, shape):
    if "bias" not in group:
        assert not np.any(layer.bias_mant)
        return
    bias = group["bias"][()]
    assert np.issubdtype(bias.dtype, np.integer) and np.abs(bias).max() <= 4095      # 13-bit mantissa, exponent 6
    if layer.conv is None:
        full = bias
    elif bias.shape == (shape[0],):                                                  # per channel
        full = np.repeat(bias, np.prod(shape[1:]))
    else:
        assert bias.shape == tuple(reversed(shape))                                  # netx's (W, H, C) grid
        full = bias.transpose(2, 1, 0).reshape(-1)
    assert np.array_equal(full.astype(np.int64) << 6, layer.bias_mant.astype(np.int64) << layer.bias_exp)


@pytest.mark.parametrize("kind", ["direct", "latency", "poisson", "cnn", "one-conv"])
def test_file_has_only_what_lava_dls_netx_reads(tmp_path, kind):
    net = networks()[kind]
    path = write_netx(tmp_path / "net.h5", net)
    with h5py.File(path) as f:
        types = layer_types(f)
        assert types[0] == "input" and set(f["layer/0"]) == KEYS["input"]
        first = net.layers[0].conv
        assert tuple(f["layer/0/shape"][()]) == (first.in_shape if first else (net.n_inputs,))
        expected = ["input"]
        for k, layer in enumerate(net.layers):
            if k and net.layers[k - 1].conv is not None and layer.conv is None:
                expected.append("flatten")
            expected.append("conv" if layer.conv else "dense")
        assert types == expected
        quantised = iter(net.layers)
        n_in = int(np.prod(f["layer/0/shape"][()]))
        for i, kind_i in enumerate(types):
            group = f[f"layer/{i}"]
            assert set(group) <= KEYS[kind_i], f"layer {i}: keys lava-dl does not read: {set(group) - KEYS[kind_i]}"
            if kind_i in ("input", "flatten"):
                continue
            layer = next(quantised)
            shape = tuple(group["shape"][()])
            weight = group["weight"]
            assert np.issubdtype(weight.dtype, np.integer) and np.array_equal(weight[()], layer.weight)
            assert weight[()].min() >= -256 and weight[()].max() <= 255
            if kind_i == "dense":
                assert shape == (layer.n_out,) and weight.shape == (layer.n_out, n_in)
            else:
                assert shape == layer.conv.out_shape and weight.ndim == 4 and weight.shape[1] == layer.conv.in_shape[0]
                for key in ("stride", "padding", "dilation"):
                    assert group[key].shape == (2,) and np.issubdtype(group[key].dtype, np.integer)
                assert group["groups"][()] == 1
            check_neuron(group["neuron"], layer)
            check_bias(group, layer, shape)
            assert layer.weight_exp == 0 and layer.bias_exp <= 6  # netx has no exponent keys
            n_in = int(np.prod(shape))
        assert f["simulation/tSample"][()] == net.num_steps and f["simulation/Ts"][()] == 1
        assert bool(f["spikecl"].attrs["lava_dl"])
    back = read_netx(path)
    for a, b in zip(net.layers, back.layers):
        assert a.conv == b.conv and np.array_equal(a.weight, b.weight) and np.array_equal(a.bias_mant, b.bias_mant)
        assert (a.weight_exp, a.bias_exp, a.scale, a.input_bits) == (b.weight_exp, b.bias_exp, b.scale, b.input_bits)


def test_a_network_with_weight_exponents_is_refused_for_lava_dl_in_one_line(tmp_path):
    net = quantize(random_spec(np.random.default_rng(21), steps=4), QuantConfig(exponents=True))
    assert net.layers[0].weight_exp < 0
    with pytest.raises(ExportError) as err:
        write_netx(tmp_path / "net.h5", net)
    assert "layer hidden0: weight_exp" in str(err.value) and "\n" not in str(err.value)
    assert "exponents=False" in str(err.value) and not (tmp_path / "net.h5").exists()
    path = write_netx(tmp_path / "runner.h5", net, lava_dl=False)                     # spikecl's runner only
    with h5py.File(path) as f:
        assert not f["spikecl"].attrs["lava_dl"] and "weight_exp" not in f["layer/1"]
    assert read_netx(path).layers[0].weight_exp == net.layers[0].weight_exp


def test_first_conv_bias_is_kept_at_exponent_six(tmp_path):
    spec = cnn_spec(small_cnn(3))
    folded = quantize(spec)
    assert np.any(folded.layers[0].bias_mant) and all(layer.bias_exp <= 6 for layer in folded.layers)
    with h5py.File(write_netx(tmp_path / "cnn.h5", folded)) as f:
        assert f["layer/1/bias"].shape == (folded.layers[0].conv.out_shape[0],)
