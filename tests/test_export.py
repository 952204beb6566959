"""Export to Loihi fixed point: quantisation ranges, the bit-accurate reference, netx and NIR files, resources,
and the export/deploy commands (Lava itself: tests/test_lava.py)."""

import copy
import dataclasses
import re
import shutil

import numpy as np
import pytest
import torch
from hdf5_files import tamper

from spikecl.errors import ConfigError, ExistsError, ExportError, ResultsError, ShapeError
from spikecl.export import fixed_point as fp
from spikecl.export import resources
from spikecl.export.axons import LayerAxons
from spikecl.export.conv import conv2d
from spikecl.export.float_model import float_forward, float_logits
from spikecl.export.inputs import encode, encode_values
from spikecl.export.lava_dl_weights import lava_dl_dense_mismatch
from spikecl.export.netx import read_netx, write_netx
from spikecl.export.nir_io import read_nir, write_nir
from spikecl.export.nir_readers import run_nir
from spikecl.export.quantize import (FixedLayer, FixedNetwork, QuantConfig, effective_weights, lava_weights,
                                     quantize)
from spikecl.export.spec import LayerSpec, NetworkSpec, load_trained, spec_from_state
from spikecl.network_keys import part_of
from spikecl.snn.networks import build_mlp


def random_spec(rng, widths=(12, 20, 15, 4), steps=5, encoder="direct", reset="zero", bias=True, sign=0,
                threshold=1.0, beta=0.9):
    """A random MLP spec; ``sign`` > 0 makes every weight positive (excitatory synapses)."""
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        w = rng.normal(0, 0.4, (b, a))
        if sign > 0:
            w = np.abs(w)
        readout = i == len(widths) - 2
        layers.append(LayerSpec("readout" if readout else f"hidden{i}", w, rng.normal(0, 0.1, b) if bias else None,
                                beta, threshold, "none" if readout else reset))
    return NetworkSpec(tuple(layers), steps, encoder, widths[-1])


def test_quantised_weights_are_lava_mantissas_and_track_the_float_weights():
    rng = np.random.default_rng(0)
    spec = random_spec(rng)
    net = quantize(spec, QuantConfig(exponents=True))
    for layer, fl in zip(net.layers, spec.layers):
        assert layer.weight.min() >= -256 and layer.weight.max() <= 254
        assert np.all(layer.weight % 2 == 0)
        assert np.array_equal(lava_weights(layer.weight, 8), layer.weight)
        assert -8 <= layer.weight_exp <= 7 and 0 <= layer.vth <= 131071
        err = np.abs(effective_weights(layer) - fl.weight).max()
        assert err <= 1.01 * np.abs(fl.weight).max() / 254  # half a step of the even grid
    assert net.layers[0].weight_exp < 0
    # the default folds the exponent into the mantissas (lava-dl's netx has no exponent): coarser, same rounding
    folded = quantize(spec)
    for layer, fl in zip(folded.layers, spec.layers):
        assert layer.weight_exp == 0 and layer.bias_exp <= 6
        step = 2 * (2**layer.input_bits - 1 if layer.input_bits else 1) / layer.scale
        assert np.abs(effective_weights(layer) - fl.weight).max() <= 0.5 * step + 1e-12
    assert np.abs(folded.layers[0].weight).max() < 254 and folded.layers[0].vth >= net.layers[0].vth
    hidden = net.layers[0]
    assert (hidden.du, hidden.dv) == (4095, 410)          # current = this step's input; beta 0.9
    assert hidden.vth == round(spec.layers[0].threshold * hidden.scale)
    assert hidden.input_bits == 8 and net.layers[1].input_bits == 0
    assert (net.readout.du, net.readout.dv, net.readout.vth) == (409, 0, 131071)
    four_bit = quantize(spec, QuantConfig(weight_bits=4))
    assert np.all(four_bit.layers[1].weight % 32 == 0)


@pytest.mark.parametrize("change, message", [
    (dict(reset="subtract"), "reset 'subtract' is not representable"),
    (dict(threshold=1e-9), "rounds to vth = 0"),
    (dict(threshold=1e9), "every weight rounds to 0 without a weight exponent"),
    (dict(beta=0.0), "dv = 4096, outside 0..4095"),
])
def test_unrepresentable_networks_fail_with_one_line_naming_the_layer(change, message):
    spec = random_spec(np.random.default_rng(1), **change)
    with pytest.raises(ExportError) as err:
        quantize(spec)
    text = str(err.value)
    assert message in text and "\n" not in text and "hidden0" in text


def test_a_one_step_network_exports_whichever_reset_it_trained_with():
    """At T = 1 no membrane outlives its step, so a subtract reset acts as Loihi's reset to zero (the config refuses
    network.reset there as unread): the network exports as its zero-reset twin; at T = 2 it is refused."""
    subtract, zero = (random_spec(np.random.default_rng(3), steps=1, reset=r) for r in ("subtract", "zero"))
    fixed = [quantize(spec).layers for spec in (subtract, zero)]
    assert all(np.array_equal(getattr(a, f.name), getattr(b, f.name))
               for a, b in zip(*fixed) for f in dataclasses.fields(a))
    x = np.random.default_rng(4).random((1, 6, 12))                    # [T, B, n]
    assert np.array_equal(float_logits(subtract, x), float_logits(zero, x))
    with pytest.raises(ExportError, match="reset 'subtract' is not representable"):
        quantize(dataclasses.replace(subtract, num_steps=2))


def test_a_one_step_network_exports_to_nir_whichever_reset_it_trained_with(tmp_path):
    """The same for NIR, whose readers reset to zero: the two one-step networks write the same graph's arrays."""
    subtract, zero = (random_spec(np.random.default_rng(3), steps=1, reset=r) for r in ("subtract", "zero"))
    graphs = [read_nir(write_nir(tmp_path / f"{name}.nir", spec)) for name, spec in (("s", subtract), ("z", zero))]
    assert graphs[0].nodes.keys() == graphs[1].nodes.keys() and "lif0" in graphs[0].nodes
    for key in graphs[0].nodes:
        a, b = (vars(g.nodes[key]) for g in graphs)
        assert a.keys() == b.keys()
        assert all(np.array_equal(a[f], b[f]) for f in a if isinstance(a[f], np.ndarray)), key
    with pytest.raises(ExportError, match="reset 'subtract' has no NIR equivalent"):
        write_nir(tmp_path / "t2.nir", dataclasses.replace(subtract, num_steps=2))


def one_neuron(weight, dv, vth, bias_mant=0, bias_exp=0, du=4095, weight_exp=0):
    return FixedLayer("n", np.array([[weight]], dtype=np.int32), weight_exp, 8, du, dv, vth,
                      np.array([bias_mant], dtype=np.int32), bias_exp, 1.0)


def test_lif_step_matches_hand_computed_fixed_point():
    # weight 100, dv 1024 (keep 3072/4096), vth 200 (<< 6 = 12800): v = 6400, 11200, 14800 -> spike, then 0
    layer = one_neuron(100, 1024, 200)
    net = FixedNetwork((layer,), 4, "latency", 0, 1)
    trace = fp.simulate(net, np.array([1, 1, 1, 0]).reshape(4, 1, 1))
    assert trace.spikes[0][:, 0, 0].tolist() == [False, False, True, False]
    # decay truncates towards zero: -6464 * 3096 / 4096 = -4885.875 -> -4885 (floor would give -4886)
    state, _, _ = fp.lif_step(fp.zero_state((1,)), np.array([-101]), one_neuron(-101, 1000, 200))
    assert state.v.tolist() == [-6464]
    state, _, _ = fp.lif_step(state, np.array([0]), one_neuron(-101, 1000, 200))
    assert state.v.tolist() == [-4885]
    # bias is added to v unshifted by the activation shift: 3 << 2 = 12 per step
    state, _, _ = fp.lif_step(fp.zero_state((1,)), np.array([0]), one_neuron(1, 0, 200, bias_mant=3, bias_exp=2))
    assert state.v.tolist() == [12]
    # the 24-bit current wraps once: (131073 << 6) = 2**23 + 64 -> -2**23 + 64
    state, _, over = fp.lif_step(fp.zero_state((1,)), np.array([131073]), one_neuron(1, 0, 131071))
    assert state.u.tolist() == [-2**23 + 64] and over.u_wraps.tolist() == [True]


def test_dense_activation_shifts_with_floor_and_weight_exponent():
    layer = one_neuron(3, 0, 1, weight_exp=-1)
    assert fp.dense_activation(layer, np.array([[1]])).tolist() == [[1]]   # 3 >> 1
    neg = one_neuron(-3, 0, 1, weight_exp=-1)
    assert fp.dense_activation(neg, np.array([[1]])).tolist() == [[-2]]    # -3 >> 1 = floor(-1.5)
    up = one_neuron(3, 0, 1, weight_exp=2)
    assert fp.dense_activation(up, np.array([[1]])).tolist() == [[12]]


def test_back_to_back_stream_with_dense_latency_equals_independent_samples():
    rng = np.random.default_rng(2)
    net = quantize(random_spec(rng, widths=(10, 16, 12, 8, 3), steps=4))
    inputs = encode(rng.random((6, 10)), net)
    trace = fp.simulate(net, inputs)
    windows = fp.sample_windows(net, fp.simulate_stream(net, inputs), 6)
    for a, b in zip(trace.spikes, windows.spikes):
        assert np.array_equal(a, b)
    assert np.array_equal(trace.readout_v, windows.readout_v)
    assert 0.02 < trace.spikes[0].mean() < 0.9  # the test exercises spiking, not silence


def torch_net(rng, reset):
    from spikecl.snn.neurons import LIFParams

    torch.manual_seed(int(rng.integers(1000)))
    return build_mlp(12, [20, 15], 4, LIFParams(beta=0.9, threshold=1.0, reset=reset), bias=True)


def spec_of(net, reset, steps=5):
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    return spec_from_state(state, {"network": {"kind": "mlp", "beta": 0.9, "threshold": 1.0, "reset": reset,
                                               "num_steps": steps, "encoder": "direct"}})


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_float_model_reproduces_the_torch_network(reset):
    rng = np.random.default_rng(4)
    net = torch_net(rng, reset)
    spec = spec_of(net, reset)
    x = rng.random((16, 12)).astype(np.float32)
    x_seq = np.broadcast_to(x, (5, 16, 12))
    with torch.no_grad():
        expected = net(torch.as_tensor(x_seq.copy())).numpy()
        spikes = net.layers[0](torch.as_tensor(x_seq.copy())).numpy()
    assert np.allclose(float_logits(spec, x_seq), expected, atol=1e-5)
    assert np.array_equal(float_forward(spec, x_seq).spikes[0], spikes)


def test_float_subtract_reset_removes_the_threshold_not_one():
    """Reset "subtract" takes the threshold (2) off the membrane, and a spike needs mem > threshold: a current of
    1.5 gives membranes 1.5, 3, 2.5, 2 and spikes at steps 1 and 2 only."""
    hidden = LayerSpec("hidden0", np.array([[1.5]]), None, 1.0, 2.0, "subtract")
    readout = LayerSpec("readout", np.array([[1.0]]), None, 1.0, 1.0, "none")
    trace = float_forward(NetworkSpec((hidden, readout), 4, "direct", 1), np.ones((4, 1, 1)))
    assert trace.spikes[0].ravel().tolist() == [0.0, 1.0, 1.0, 0.0]
    assert trace.readout_mem.ravel().tolist() == [0.0, 1.0, 2.0, 2.0]


@pytest.mark.parametrize("extra", ["layers.9.synapse.weight", "readout.heads.3.weight", "decoder.weight"])
def test_trained_parameters_nothing_reads_are_refused(extra):
    """An array no part of the rebuilt network reads (a layer past the last, a head past the last, a foreign module)
    means a damaged file or another network: refused, not dropped without a word."""
    net = torch_net(np.random.default_rng(1), "zero")
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    config = {"network": {"kind": "mlp", "reset": "zero"}}
    spec_from_state(state, config)
    with pytest.raises(ExportError, match=re.escape(f"trained parameters hold '{extra}', which no part")):
        spec_from_state({**state, extra: np.zeros((4, 15), np.float32)}, config)
    lacking = next(k for k in state if k.endswith("synapse.weight"))           # a weight deleted: named as missing
    with pytest.raises(ExportError, match=re.escape(f"trained parameters lack '{lacking}' beside")):
        spec_from_state({k: v for k, v in state.items() if k != lacking}, config)


def test_layers_and_heads_numbered_from_ten_on_are_read_by_the_export():
    """network_keys reads a layer's or head's whole number: an MLP of 11 hidden layers and 11 heads exports with
    layers.10.* and readout.heads.10.* read as parts of their own, not refused as arrays no part reads."""
    net = build_mlp(4, [3] * 11, 2, n_heads=11, bias=True)
    assert part_of("layers.10.synapse.weight") == "layers.10.synapse."
    assert part_of("readout.heads.10.bias") == "readout.heads.10."
    spec = spec_from_state({k: v.detach().numpy() for k, v in net.state_dict().items()}, {"network": {"kind": "mlp"}})
    assert [layer.name for layer in spec.layers][-2:] == ["hidden10", "readout"] and spec.n_heads == 11


def test_a_layer_lava_dl_would_rescale_into_other_weights_is_refused_for_lava_dl(tmp_path):
    """No positive weight and a power-of-two smallest: lava-dl's netx scales it to -256, which Lava's Dense clips
    and truncates (tests/test_lavadl.py checks the rule against lava-dl itself). Such a file is not marked runnable
    there; spikecl's runner still takes it."""
    from spikecl.export.lava_dl_weights import lava_dl_dense_mismatch

    assert lava_dl_dense_mismatch(np.array([[-8, -3, 0], [-1, -5, -2]])) == 1
    assert lava_dl_dense_mismatch(np.array([[-8, -3, -1]])) == 1                  # all negative as well
    for fine in ([[-7, -3, 0]], [[-8, 3, 0]], [[8, 3, 0]], [[0, 0]]):
        assert lava_dl_dense_mismatch(np.array(fine)) == 0, fine
    w0 = -np.array([[.5, .1, .3], [.2, .45, 0], [.05, .3, .5], [.5, .5, .5]]) * 8 / 9
    spec = NetworkSpec((LayerSpec("hidden0", w0, np.full(4, .9), .9, 1., "zero"),
                        LayerSpec("readout", np.array([[1, -1, .5, .2], [-.5, 1, 1, -.3]]), None, .8, 1., "none")),
                       4, "direct", 2)
    net = quantize(spec)
    assert net.layers[0].weight.max() == 0 and net.layers[0].weight.min() == -8
    with pytest.raises(ExportError, match="layer hidden0: lava-dl's netx loader would rescale its weights"):
        write_netx(tmp_path / "inhibitory.h5", net)
    import h5py

    with h5py.File(write_netx(tmp_path / "inhibitory.h5", net, lava_dl=False)) as f:
        assert not f["spikecl"].attrs["lava_dl"]


def test_the_lava_dl_weight_rule_at_9_bit_and_out_of_range_mantissas():
    """Values lava-dl 0.6 / lava-nc 0.10 give (checked there): mixed weights beyond +-128 run exactly at 9 bits (0);
    [-256, 0] is truncated by 128 units; [-255, 0] needs 9 bits without a sign to spare and a weight of 300 leaves
    the synapse (-1, refused)."""
    for weight, changed in (([[-255, 3]], 0), ([[-256, 1]], 0), ([[-256, 0]], 128), ([[-255, 0]], -1),
                            ([[300, 0]], -1)):
        assert lava_dl_dense_mismatch(np.array(weight)) == changed, weight


def test_netx_round_trip_and_refusals(tmp_path):
    rng = np.random.default_rng(5)
    net = quantize(random_spec(rng))
    path = write_netx(tmp_path / "net.h5", net)
    back = read_netx(path)
    assert (back.num_steps, back.encoder, back.input_bits, back.n_outputs) == (5, "direct", 8, 4)
    for a, b in zip(net.layers, back.layers):
        for name in ("weight", "weight_exp", "du", "dv", "vth", "bias_mant", "bias_exp", "scale", "input_bits",
                     "readout"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    import h5py

    with h5py.File(path) as f:  # the keys lava-dl's netx reads
        assert f["layer/0/type"][()] == b"input" and f["layer/1/type"][()] == b"dense"
        assert f["layer/1/neuron/iDecay"][()] == 4096 and f["layer/1/neuron/vThMant"][()] == net.layers[0].vth
        assert f["simulation/tSample"][()] == 5
    with pytest.raises(ExistsError):
        write_netx(path, net)
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ResultsError, match="corrupt"):
        read_netx(tmp_path / "bad.h5")


@pytest.mark.parametrize("where, value, message", [
    ("spikecl/n_heads", 0, "n_heads = 0 must be an integer in 1..1000000"),
    ("spikecl/n_outputs", 7, "n_heads = 1 x n_outputs = 7 does not match the readout's 4 neurons"),
    ("spikecl/num_steps", 0, "num_steps = 0 must be an integer in 1"),
    ("spikecl/num_steps", 3, "num_steps = 3 disagrees with /simulation/tSample = 5"),
    ("spikecl/input_bits", 17, "input_bits = 17 must be an integer in 0..16"),
    ("spikecl/schema_version", 2.7, "schema_version = 2.7 must be an integer in 1.."),
    ("spikecl/schema_version", True, "schema_version = True must be an integer in 1.."),
    ("spikecl/layer/1/scale", np.nan, "scale = nan must be a positive number"),
    ("spikecl/layer/1/scale", -5.0, "scale = -5.0 must be a positive number"),
    ("layer/1/neuron/vThMant", 0, "vThMant = 0 outside 1..131071"),
    ("layer/1/weight", np.full((8, 12), np.nan), "weight holds float64 values, not integer Loihi mantissas"),
    ("spikecl/config", "[1, 2]", "its config attribute is not a JSON table"),
    ("spikecl/metrics", "{broken", "its metrics attribute is not a JSON table"),
])
def test_tampered_network_values_are_one_line_errors(tmp_path, where, value, message):
    """A network file edited by hand (or damaged) with values its writer never produces is refused by name,
    never run into a wrong accuracy or a traceback."""
    path = write_netx(tmp_path / "net.h5", quantize(random_spec(np.random.default_rng(5))))
    read_netx(path)
    tamper(path, where, value)
    with pytest.raises(ResultsError, match=re.escape(message)) as info:
        read_netx(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("reader", ["snntorch", "norse"])
def test_nir_file_runs_like_the_torch_network_in_snntorch_and_norse(tmp_path, reader):
    nir = pytest.importorskip("nir")
    pytest.importorskip("nirtorch")
    pytest.importorskip(reader)
    from spikecl.export.nir_io import graph_metadata, read_nir, write_nir
    from spikecl.export.nir_readers import nir_logits, run_nir

    rng = np.random.default_rng(6)
    net = torch_net(rng, "zero")
    spec = spec_of(net, "zero")
    graph = read_nir(write_nir(tmp_path / "net.nir", spec))
    assert isinstance(graph.nodes["lif0"], nir.CubaLIF) and graph.nodes["fc0"].weight.shape == (20, 12)
    meta = graph_metadata(graph)
    assert (meta["dt"], meta["num_steps"], meta["encoder"], meta["n_outputs"], meta["n_heads"]) == (1e-4, 5, "direct",
                                                                                                   4, 1)
    assert meta["readout"] == "readout" and "mean" in meta["readout_rule"] and meta["spikecl_version"]
    assert meta["config"]["network"]["reset"] == "zero"
    x_seq = np.broadcast_to(rng.random((8, 12)), (5, 8, 12)).astype(np.float32)
    run = run_nir(graph, x_seq, reader)
    with torch.no_grad():
        logits = net(torch.as_tensor(x_seq.copy())).numpy()
        spikes = net.layers[0](torch.as_tensor(x_seq.copy())).numpy()
    assert np.allclose(nir_logits(graph, run.readout_mem), logits, atol=1e-5)
    assert np.allclose(run.readout_mem, float_forward(spec, x_seq).readout_mem, atol=1e-5)
    assert np.array_equal(run.spikes["lif0"], spikes) and 0.05 < spikes.mean() < 0.9


@pytest.mark.parametrize("reader", ["snntorch", "norse"])
def test_run_nir_gives_every_hidden_layers_spikes_and_refuses_an_unknown_reader(tmp_path, reader):
    """run_nir's spikes hold each hidden node, lif0 and lif1 of a [20, 15] MLP, each the torch network's spikes
    there; a reader it does not know is refused by name (not run as Norse)."""
    pytest.importorskip("nirtorch")
    pytest.importorskip(reader)
    rng = np.random.default_rng(6)
    net = torch_net(rng, "zero")
    graph = read_nir(write_nir(tmp_path / "net.nir", spec_of(net, "zero")))
    x_seq = np.broadcast_to(rng.random((8, 12)), (5, 8, 12)).astype(np.float32)
    run = run_nir(graph, x_seq, reader)
    with torch.no_grad():
        first = net.layers[0](torch.as_tensor(x_seq.copy()))
        second = net.layers[1](first).numpy()
    assert sorted(run.spikes) == ["lif0", "lif1"] and run.spikes["lif1"].shape == (5, 8, 15)
    assert np.array_equal(run.spikes["lif0"], first.numpy()) and np.array_equal(run.spikes["lif1"], second)
    assert 0.05 < second.mean() < 0.9
    with pytest.raises(ConfigError, match="NIR reader 'sinabs': choose one of snntorch, norse"):
        run_nir(graph, x_seq, "sinabs")


@pytest.mark.slow
def test_trained_network_reads_back_exactly_in_snntorch_and_norse(zero_reset_run, tmp_path):
    pytest.importorskip("nirtorch")
    pytest.importorskip("norse")
    from spikecl.export.samples import stream_samples
    from spikecl.export.nir_io import graph_metadata, read_nir, write_nir
    from spikecl.export.nir_readers import nir_logits, run_nir

    spec = load_trained(zero_reset_run[0])
    graph = read_nir(write_nir(tmp_path / "net.nir", spec))
    assert graph_metadata(graph)["config"] == spec.config
    x, y, heads = stream_samples(spec.config, 200)
    x_seq = encode_values(x, spec.num_steps, spec.encoder)
    expected = float_forward(spec, x_seq)
    predictions = np.argmax(float_logits(spec, x_seq, heads), axis=1)
    assert len(y) == 200 and np.mean(predictions == y) > 0.8
    for reader in ("snntorch", "norse"):
        run = run_nir(graph, x_seq, reader)
        assert np.abs(run.readout_mem - expected.readout_mem).max() < 1e-4, reader
        assert np.array_equal(np.argmax(nir_logits(graph, run.readout_mem, heads), axis=1), predictions), reader
        assert np.mean(run.spikes["lif0"] == expected.spikes[0]) > 0.999, reader


@pytest.mark.parametrize("change, message", [
    ("subtract", "layer hidden0: reset 'subtract' has no NIR equivalent"),
    ("beta", "layer readout: beta 1 has no finite NIR time constant"),
    ("threshold", "layer hidden0: threshold -1 must be positive"),
])
def test_nir_refusals_are_one_line_and_write_nothing(tmp_path, change, message):
    pytest.importorskip("nir")
    from dataclasses import replace

    from spikecl.export.nir_io import write_nir

    spec = random_spec(np.random.default_rng(8), reset="subtract" if change == "subtract" else "zero")
    with pytest.raises(ExportError, match=message) as err:
        if change == "beta":
            spec = replace(spec, layers=(*spec.hidden, replace(spec.readout, beta=1.0)))
        if change == "threshold":                     # refused where the spec is built, for netx and NIR alike
            spec = replace(spec, layers=(replace(spec.layers[0], threshold=-1.0), *spec.layers[1:]))
        write_nir(tmp_path / "net.nir", spec)
    assert len(str(err.value).splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_nir_graphs_without_spikecl_metadata_and_unknown_readers_are_refused(tmp_path):
    nir = pytest.importorskip("nir")
    from spikecl.errors import ConfigError
    from spikecl.export.nir_io import graph_metadata, read_nir
    from spikecl.export.nir_readers import import_graph

    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])),
                                "output": nir.Output(output_type=np.array([2]))}, edges=[("input", "output")])
    with pytest.raises(ResultsError, match="no spikecl metadata"):
        graph_metadata(graph)
    graph.metadata = {"dt": 1e-3, "num_steps": 4, "source": "another tool"}     # common words, not spikecl's
    nir.write(tmp_path / "foreign.nir", graph)
    assert read_nir(tmp_path / "foreign.nir").metadata["source"] == "another tool"     # read as it is
    with pytest.raises(ConfigError, match="choose one of snntorch, norse"):
        import_graph(graph, "sinabs")


def test_resource_report_on_a_known_network():
    layers = (LayerSpec("h0", np.ones((3000, 100)) * 0.1, None, 0.9, 1.0, "zero"),
              LayerSpec("readout", np.ones((10, 3000)) * 0.1, None, 0.9, 1.0, "none"))
    net = quantize(NetworkSpec(layers, 4, "latency", 10))
    g = resources.network_graph(net)
    assert g.nodes["h0"]["neurons"] == 3000 and g.edges["input", "h0"]["synapses"] == 300_000
    assert g.edges["h0", "readout"]["fan_in"] == 3000 and g.edges["input", "h0"]["fan_out"] == 3000
    loihi1 = resources.partition(net, resources.preset("loihi1"))
    # 1,024 neurons per core bind h0 (100 inputs x 8 bits = 800 bits per neuron, 1,310 fit the memory); the readout's
    # 10 fit one core, which no limit binds (it said "synaptic memory")
    assert [(p.cores, p.neurons_per_core, p.limited_by) for p in loihi1] == [(3, 1024, "neurons"),
                                                                              (1, 10, "layer size")]
    loihi2 = resources.partition(net, resources.preset("loihi2"))
    assert loihi2[0].cores == 3 and loihi2[0].neurons_per_core == 1310 and loihi2[0].limited_by == "synaptic memory"
    assert resources.summary(net, resources.preset("loihi1"))["synaptic_memory_bytes"] == 330_000
    inputs = np.zeros((4, 2, 100), dtype=np.int64)
    inputs[0, :, :10] = 1                         # 10 input spikes per sample, each fanning out to 3,000
    trace = fp.simulate(net, inputs)
    ops = resources.synaptic_operations(net, inputs, trace.spikes)
    assert ops["dense_synops"] == 4 * (300_000 + 30_000)
    assert ops["effective_acs"] == 10 * 3000 + 10 * trace.spikes[0].sum() / 2


def test_a_layer_that_exactly_fills_a_core_is_bound_by_its_own_size():
    """1,024 neurons fill a Loihi core exactly: one core, which no limit binds (the layer fits); 1,025 take two cores
    of 1,024, bound by the core's neurons. Either core holds 1,024 neurons x 4 synapses x 8 bits."""
    for n, placed in ((1024, (1, 1024, "layer size")), (1025, (2, 1024, "neurons"))):
        layers = (LayerSpec("h0", np.ones((n, 4)) * 0.1, None, 0.9, 1.0, "zero"),
                  LayerSpec("readout", np.ones((2, n)) * 0.1, None, 0.9, 1.0, "none"))
        hidden = resources.partition(quantize(NetworkSpec(layers, 2, "latency", 2)), resources.preset("loihi1"))[0]
        assert (hidden.cores, hidden.neurons_per_core, hidden.limited_by) == placed
        assert hidden.memory_bits_per_core == 1024 * 4 * 8 and hidden.input_axons == 4


@pytest.mark.slow
def test_trained_network_loads_from_results_and_checkpoint(zero_reset_run):
    results, ckpt, net = zero_reset_run
    a, b = load_trained(results), load_trained(ckpt)
    assert [layer.name for layer in a.layers] == ["hidden0", "readout"]
    assert a.layers[0].reset == "zero" and a.layers[-1].reset == "none"
    assert np.allclose(a.layers[0].weight, net.layers[0].synapse.weight.detach().numpy())
    assert np.array_equal(a.layers[-1].weight, b.layers[-1].weight)
    capitals = shutil.copy(ckpt, results.parent / "copy.CKPT")       # a suffix in capitals is a checkpoint too
    assert np.array_equal(load_trained(capitals).layers[-1].weight, b.layers[-1].weight)
    with pytest.raises(ResultsError):
        load_trained(results.parent / "missing.h5")


@pytest.mark.slow
def test_export_and_deploy_commands(zero_reset_run, tmp_path, capsys):
    from spikecl.cli import main

    results, _, _ = zero_reset_run
    out = tmp_path / "net.h5"
    assert main(["export", str(results), "-o", str(out), "--samples", "300"]) == 0
    printed = capsys.readouterr().out
    assert "quantised" in printed and out.exists()
    metrics = read_netx(out).metrics
    assert metrics["reference_accuracy"] >= metrics["float_accuracy"] - 0.01
    assert "samples asked" not in printed
    assert main(["export", str(results), "-o", str(tmp_path / "all.h5"), "--samples", "100000"]) == 0
    assert re.search(r"accuracy on 3\d\d test samples \(of 100000 asked: each trained task gave its share, or all it "
                     r"holds\): float", capsys.readouterr().out)
    assert main(["export", str(results), "-o", str(out)]) == 2          # exists, no --overwrite
    assert "exists" in capsys.readouterr().err
    assert main(["deploy", str(out), "--backend", "reference", "--samples", "100"]) == 0
    printed = capsys.readouterr().out
    assert "backend reference: accuracy" in printed and "on 100 samples (reference" in printed
    assert main(["deploy", str(out), "--backend", "reference", "--samples", "100000"]) == 0     # more than there are
    assert re.search(r"on 3\d\d samples \(of 100000 asked: each trained task gave its share, or all it holds\) "
                     r"\(reference",
                     capsys.readouterr().out)
    assert main(["export", str(results), "-o", str(tmp_path / "net.nir"), "--format", "nir"]) == 0
    capsys.readouterr()
    assert main(["deploy", str(tmp_path / "net.nir"), "--samples", "10"]) == 2       # a float graph: named
    assert capsys.readouterr().err.strip() == (f"spikecl: error: {tmp_path / 'net.nir'} is a NIR graph, a float "
                                               "network; deploy runs netx files (spikecl export --format netx), and "
                                               "spikecl.export.nir_readers.run_nir runs a NIR graph")


def test_export_of_a_subtract_reset_run_writes_nothing(tmp_path, capsys):
    from spikecl.cli import main
    from spikecl.continual.results import ContinualResult, write_continual

    rng = np.random.default_rng(7)
    net = torch_net(rng, "subtract")
    model = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    config = {"network": {"kind": "mlp", "hidden": [20, 15], "reset": "subtract", "num_steps": 4}}
    acc = np.array([[0.1], [0.9]])
    write_continual(tmp_path / "r.h5", ContinualResult("finetune", 0, config, acc, np.zeros(0), np.zeros(0),
                                                       np.zeros((0, 1)), np.ones(1), {"acc": 0.9}, model=model))
    assert main(["export", str(tmp_path / "r.h5"), "-o", str(tmp_path / "net.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert "reset 'subtract' is not representable" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "net.h5").exists() and list(tmp_path.iterdir()) == [tmp_path / "r.h5"]


@pytest.fixture(scope="module")
def flyhash_run(tmp_path_factory):
    """A digits MLP (256-64-10, reset to zero) trained 1 epoch on fly-hash codes of the images: (results path,
    run result)."""
    from spikecl.config import experiment_from_dict
    from spikecl.continual.runner import ContinualRun

    cfg = experiment_from_dict({
        "name": "digits-flyhash", "seeds": [0], "data": {"dataset": "digits"},
        "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 1, "first_task_identity": True,
                   "input_code": "flyhash", "code_units": 256},
        "network": {"kind": "mlp", "hidden": [64], "num_steps": 4, "reset": "zero"},
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.05}, "strategy": {"methods": ["finetune"]}})
    results = tmp_path_factory.mktemp("flyhash_run") / "finetune-seed0.h5"
    return results, ContinualRun(cfg, "finetune", 0).execute(results, progress_bar=False)


@pytest.mark.slow
def test_export_of_an_input_coded_run_takes_the_codes(flyhash_run, tmp_path, capsys):
    from spikecl.cli import main

    results, run = flyhash_run
    out = tmp_path / "net.h5"
    assert main(["export", str(results), "-o", str(out)]) == 0
    net = read_netx(out)
    m = net.metrics
    assert net.n_inputs == 256 and m["samples"] == 359                  # every test image of digits, as its code
    # the same 241 of 359 right as the trained network scored at the end of training (torch, float32)
    assert round(359 * m["float_accuracy"]) == round(359 * run.acc_matrix[-1, 0]) == 241
    assert m["reference_accuracy"] >= m["float_accuracy"] - 0.01 and m["float_accuracy"] > 0.6
    assert main(["deploy", str(out), "--backend", "reference", "--samples", "359"]) == 0
    assert f"accuracy {100 * m['reference_accuracy']:.2f}% on 359 samples" in capsys.readouterr().out


def test_export_refuses_samples_the_network_does_not_take_in_one_line(tmp_path, capsys):
    from spikecl.cli import main
    from spikecl.continual.results import ContinualResult, write_continual

    net = torch_net(np.random.default_rng(7), "zero")                   # 12 inputs; digits images have 64 pixels
    model = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    config = {"data": {"dataset": "digits"}, "stream": {"kind": "permuted", "n_tasks": 1},
              "network": {"kind": "mlp", "hidden": [20, 15], "reset": "zero", "num_steps": 4}}
    write_continual(tmp_path / "r.h5", ContinualResult("finetune", 0, config, np.array([[0.1], [0.9]]), np.zeros(0),
                                                       np.zeros(0), np.zeros((0, 1)), np.ones(1), {"acc": 0.9},
                                                       model=model))
    assert main(["export", str(tmp_path / "r.h5"), "-o", str(tmp_path / "net.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert "samples have 64 features; the network takes 12" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "net.h5").exists()


def test_inputs_are_encoded_like_the_torch_encoders():
    from spikecl.snn.encoders import latency

    rng = np.random.default_rng(8)
    x = rng.random((5, 7))
    train = lambda x, steps: latency(torch.as_tensor(x, dtype=torch.float32), steps).numpy()   # noqa: E731
    assert np.array_equal(encode_values(x, 6, "latency", 1), train(x, 6))
    # float32 inputs whose step sits (almost) exactly halfway, as a rotated image's interpolated pixels can: the
    # trained network's float32 rounding, not float64's; 0.3135593 fired at 41 instead of 40 at T = 60
    for steps in (25, 38, 60):
        halfway = np.float32(1) - (np.arange(steps - 1, dtype=np.float32) + np.float32(0.5)) / np.float32(steps - 1)
        near = np.stack([halfway + k * np.spacing(halfway) for k in range(-3, 4)], axis=1).clip(0, 1)
        assert np.array_equal(encode_values(near, steps, "latency", 1), train(near, steps))
    assert np.argmax(encode_values(np.float32([[0.3135593]]), 60, "latency", 1)[:, 0, 0]) == 40
    direct = encode_values(x, 3, "direct", 255)
    assert direct.shape == (3, 5, 7) and direct.max() <= 255 and np.array_equal(direct[0], np.round(x * 255))


def test_direct_inputs_are_a_writable_array_whose_steps_do_not_share_memory():
    """Direct coding returns its own [T, B, n] array: a step edited in place leaves the other steps as encoded."""
    direct = encode_values(np.array([[0.2, 0.8]]), 3, "direct", 255)
    direct[0, 0, 0] = 7
    assert direct[:, 0, 0].tolist() == [7, 51, 51] and direct[:, 0, 1].tolist() == [204, 204, 204]


def test_poisson_inputs_of_a_sample_do_not_depend_on_the_batch():
    """Export (all its samples) and deploy (the first --samples) give a sample the same spikes."""
    x = np.random.default_rng(1).random((500, 64))
    whole, first = encode_values(x, 5, "poisson", 1, seed=3), encode_values(x[:200], 5, "poisson", 1, seed=3)
    assert whole.shape == (5, 500, 64) and np.array_equal(first, whole[:, :200])
    assert abs(whole.mean() - x.mean()) < 0.01 and not np.array_equal(whole[0], whole[1])


def test_poisson_inputs_spike_at_the_rate_of_each_value_from_the_given_seed():
    """Poisson coding: a value x spikes at rate x (0 never, 1 always, 0.9 about 90 %); the seed picks the spikes."""
    x = np.tile([0.0, 0.1, 0.9, 1.0], (200, 1))
    spikes = encode_values(x, 10, "poisson", 1, seed=5)
    rates = spikes.mean(axis=(0, 1))
    assert rates[0] == 0 and rates[3] == 1 and abs(rates[1] - 0.1) < 0.02 and abs(rates[2] - 0.9) < 0.02
    assert np.array_equal(spikes, encode_values(x, 10, "poisson", 1, seed=5))
    assert not np.array_equal(spikes, encode_values(x, 10, "poisson", 1, seed=6))


def test_multi_head_readout_decodes_each_samples_head():
    from spikecl.snn.neurons import LIFParams

    torch.manual_seed(0)
    net = build_mlp(12, [20], 4, LIFParams(reset="zero"), n_heads=3)
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    spec = spec_from_state(state, {"network": {"kind": "mlp", "reset": "zero", "num_steps": 5}})
    assert (spec.n_heads, spec.n_outputs, spec.readout.n_out) == (3, 4, 12)
    rng = np.random.default_rng(9)
    x = rng.random((9, 12)).astype(np.float32)
    heads = np.arange(9) % 3
    x_seq = np.broadcast_to(x, (5, 9, 12)).copy()
    with torch.no_grad():
        expected = net(torch.as_tensor(x_seq), torch.as_tensor(heads)).numpy()
    assert np.allclose(float_logits(spec, x_seq, heads), expected, atol=1e-5)
    fixed = quantize(spec)
    q = fp.logits(fixed, fp.simulate(fixed, encode(x, fixed)).readout_v, heads)
    assert q.shape == (9, 4) and np.mean(q.argmax(1) == expected.argmax(1)) >= 0.8


def test_bad_options_and_files_are_one_line_errors(tmp_path, capsys, monkeypatch):
    from spikecl.cli import main

    assert main(["deploy", str(tmp_path / "missing.h5")]) == 2
    assert "network file not found" in capsys.readouterr().err
    net = quantize(random_spec(np.random.default_rng(10)))
    path = write_netx(tmp_path / "net.h5", net)
    monkeypatch.setenv("SPIKECL_LAVA_PYTHON", str(tmp_path / "no-venv" / "python"))
    from spikecl.errors import DependencyError
    from spikecl.export.lava_client import run_lava

    with pytest.raises(DependencyError, match="the Lava environment is missing"):
        run_lava(path, np.zeros((5, 1, 12), dtype=np.int64))
    with pytest.raises(ExportError, match="weight_bits = 9"):
        QuantConfig(weight_bits=9)
    with pytest.raises(ShapeError, match=r"inputs must lie in 0\.\.255"):
        fp.simulate(net, np.full((5, 2, 12), 300))
    with pytest.raises(ShapeError, match="expected"):
        fp.simulate(net, np.zeros((4, 2, 12), dtype=np.int64))
    with pytest.raises(ExportError, match="weight_bits"):
        QuantConfig(weight_bits=0)


def test_neuron_parameters_come_from_the_stored_snntorch_buffers():
    rng = np.random.default_rng(13)
    net = torch_net(rng, "zero")
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    spec = spec_from_state(state, {"network": {"kind": "mlp"}})          # a config that contradicts them: refused
    assert [(layer.beta, layer.reset) for layer in spec.layers] == [(pytest.approx(0.9), "zero")] * 2 + \
        [(pytest.approx(0.9), "none")]
    with pytest.raises(ExportError, match="layer hidden0: its neurons hold beta 0.9, the config records "):
        spec_from_state(state, {"network": {"kind": "mlp", "beta": 0.5, "reset": "subtract"}})
    state["layers.1.lif.threshold"] = np.array([1.0, 2.0])
    with pytest.raises(ExportError, match="layer hidden1: per-neuron threshold"):
        spec_from_state(state, {"network": {"kind": "mlp"}})
    with pytest.raises(ExportError, match="input grid of a CNN export is unknown"):
        spec_from_state(state, {"network": {"kind": "cnn"}})


def small_cnn(seed=0, shape=(1, 8, 8), channels=(4, 6)):
    """A spiking CNN with batch norm whose running statistics moved away from their initial values."""
    from spikecl.snn.networks import build_cnn
    from spikecl.snn.neurons import LIFParams

    torch.manual_seed(seed)
    net = build_cnn(shape, list(channels), 10, LIFParams(reset="zero"), bias=True, init_gain=2.0)
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(16, *shape).expand(4, 16, *shape))
    return net.eval()


def cnn_spec(net, dataset="digits"):
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    return spec_from_state(state, {"network": {"kind": "cnn", "reset": "zero", "num_steps": 4},
                                   "data": {"dataset": dataset}})


def _spec_arrays(spec):
    return [a for layer in spec.layers for a in (layer.weight, layer.bias, layer.beta, layer.threshold)
            if a is not None]


@pytest.mark.parametrize("kind", ["mlp", "multi-head mlp", "cnn"])
def test_every_stored_array_is_named_as_network_keys_says_and_every_parameter_reaches_the_export(kind):
    from spikecl.snn.neurons import LIFParams

    net = {"mlp": lambda: torch_net(np.random.default_rng(0), "zero"),
           "multi-head mlp": lambda: build_mlp(12, [20], 4, LIFParams(reset="zero"), n_heads=3, bias=True),
           "cnn": small_cnn}[kind]()
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    assert [k for k in state if part_of(k) is None] == []
    read = cnn_spec if kind == "cnn" else \
        lambda n: spec_from_state({k: v.detach().numpy() for k, v in n.state_dict().items()},
                                  {"network": {"kind": "mlp"}})
    before = _spec_arrays(read(net))
    moved = [name for name, _ in net.named_parameters()] + [k for k in state if k.endswith((".beta", ".threshold"))]
    for name in moved:
        changed = copy.deepcopy(net)
        with torch.no_grad():
            changed.get_parameter(name).add_(0.01) if name in dict(net.named_parameters()) else \
                changed.get_buffer(name).mul_(0.99)
        after = _spec_arrays(read(changed))
        assert any(np.any(a != b) for a, b in zip(before, after)), f"{name} does not reach the export"


def test_snntorch_graded_spikes_are_refused_by_the_export():
    state = {k: v.detach().numpy() for k, v in torch_net(np.random.default_rng(0), "zero").state_dict().items()}
    state["layers.0.lif.graded_spikes_factor"] = np.array(2.0)
    with pytest.raises(ExportError, match="layer hidden0: graded spikes .* not representable"):
        spec_from_state(state, {"network": {"kind": "mlp"}})


def test_cnn_batch_norm_and_pooling_fold_into_the_weights_exactly():
    net = small_cnn()
    spec = cnn_spec(net)
    geometry = [(layer.weight.shape, layer.conv.stride, layer.conv.padding, layer.conv.out_shape)
                for layer in spec.hidden]
    assert geometry == [((4, 1, 3, 3), 1, 1, (4, 8, 8)), ((6, 4, 6, 6), 2, 2, (6, 4, 4))]
    assert spec.readout.weight.shape == (10, 96)                       # over the unpooled 6x4x4 spikes
    x = torch.rand(12, 1, 8, 8)
    x_seq = x.expand(4, 12, 1, 8, 8)
    with torch.no_grad():
        expected = net(x_seq).numpy()
    assert np.allclose(float_logits(spec, x_seq.numpy().reshape(4, 12, -1)), expected, atol=1e-5)
    fixed = quantize(spec)
    assert all(layer.weight_exp == 0 for layer in fixed.layers[:-1])  # Lava's Conv has no exponent
    inputs = encode(x.numpy(), fixed)
    trace = fp.simulate(fixed, inputs)
    # the fixed-point conv is torch's correlation of the integer weights, exact and wrapped to signed 24 bits
    for layer, s_in in zip(fixed.layers[:2], (inputs[0], trace.spikes[0][0])):   # graded input, then spikes
        conv = layer.conv
        expected = torch.nn.functional.conv2d(torch.as_tensor(s_in, dtype=torch.float64).reshape(-1, *conv.in_shape),
                                              torch.as_tensor(layer.weight, dtype=torch.float64), stride=conv.stride,
                                              padding=conv.padding).reshape(len(s_in), -1).numpy().astype(np.int64)
        assert np.array_equal(fp.dense_activation(layer, s_in), ((expected + 2**23) % 2**24) - 2**23)
    assert trace.spikes[0].mean() > 0.02 and trace.spikes[1].mean() > 0.002


def test_conv_network_file_round_trips(tmp_path):
    fixed = quantize(cnn_spec(small_cnn(1)))
    back = read_netx(write_netx(tmp_path / "cnn.h5", fixed))
    for a, b in zip(fixed.layers, back.layers):
        assert a.conv == b.conv and np.array_equal(a.weight, b.weight) and np.array_equal(a.bias_mant, b.bias_mant)
    import h5py

    with h5py.File(tmp_path / "cnn.h5") as f:
        assert f["layer/1/type"][()] == b"conv" and f["layer/1/weight"].shape == (4, 1, 3, 3)
        assert list(f["layer/0/shape"][()]) == [1, 8, 8] and list(f["layer/2/stride"][()]) == [2, 2]


def test_cnn_to_nir_is_refused_and_writes_nothing(tmp_path):
    pytest.importorskip("nir")
    from spikecl.export.nir_io import write_nir

    with pytest.raises(ExportError, match="layer hidden0: NIR export covers fully connected networks"):
        write_nir(tmp_path / "cnn.nir", cnn_spec(small_cnn(4)))
    assert list(tmp_path.iterdir()) == []


def test_cnn_pooling_an_odd_grid_before_a_conv_is_refused():
    net = small_cnn(2, shape=(1, 28, 28), channels=(2, 2, 2, 2))   # 28 -> 14 -> 7: the 4th conv sees 7 x 7
    with pytest.raises(ExportError, match="layer hidden3: average pooling of an odd 7x7 grid"):
        cnn_spec(net, dataset="mnist5k")


def test_conv_resources_count_boundary_synapses():
    weight = np.ones((2, 1, 3, 3)) * 0.1
    spec = NetworkSpec((
        LayerSpec("c0", weight, None, 0.9, 1.0, "zero", conv=_conv((1, 4, 4), (2, 4, 4))),
        LayerSpec("readout", np.ones((3, 32)) * 0.1, None, 0.9, 1.0, "none")), 2, "latency", 3)
    g = resources.network_graph(quantize(spec))
    # per output channel, a 4x4 grid with padding 1: 4 corners x 4 + 8 edges x 6 + 4 inside x 9 = 100 synapses
    assert g.edges["input", "c0"]["synapses"] == 200 and g.edges["input", "c0"]["fan_in"] == 9
    assert g.edges["input", "c0"]["fan_out"] == 18 and g.edges["input", "c0"]["unique_weights"] == 18


def _conv(in_shape, out_shape, stride=1, padding=1):
    from spikecl.export.spec import ConvGeometry

    return ConvGeometry(in_shape, out_shape, stride, padding)


def test_export_refuses_a_large_accuracy_drop_unless_forced(zero_reset_run, tmp_path, capsys):
    """An outlier weight (1e4) stretches the quantisation scale until most weights round to zero: export measures
    float against quantised accuracy and refuses, in one line with the numbers, writing nothing; --force writes."""
    import torch

    from spikecl.cli import main

    _, ckpt, _ = zero_reset_run
    state = torch.load(ckpt, weights_only=True)
    name = next(k for k, v in state["model"].items() if k.endswith("weight") and v.ndim == 2)
    state["model"][name][0, 0] = 1e4
    bad = tmp_path / "outlier.ckpt"
    torch.save(state, bad)
    out = tmp_path / "net.h5"
    assert main(["export", str(bad), "-o", str(out), "--samples", "200"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "points below float" in err and "on 200 test samples" in err
    assert "change --weight-bits, --input-bits or --headroom" in err          # direct input: graded, 8 bits
    assert not out.exists()
    assert main(["export", str(bad), "-o", str(out), "--samples", "200", "--force"]) == 0
    m = read_netx(out).metrics
    assert m["float_accuracy"] - m["reference_accuracy"] > 0.03 and out.exists()


def test_the_resource_report_names_only_chips_that_run_the_network(zero_reset_run, capsys):
    """Loihi 1 carries binary spikes only: a direct-encoded (graded-input) network is reported for Loihi 2 alone;
    a latency-encoded one for both."""
    from spikecl.export.pipeline import print_export
    from spikecl.export.quantize import QuantConfig, quantize
    from spikecl.export.spec import load_trained

    results, _, _ = zero_reset_run
    spec = load_trained(results)
    graded = quantize(spec, QuantConfig())
    assert "binary spikes" in resources.cannot_run(graded, resources.preset("loihi1"))
    assert resources.cannot_run(graded, resources.preset("loihi2")) is None
    print_export(graded)
    printed = capsys.readouterr().out
    assert "loihi2:" in printed and "loihi1" not in printed
    assert "no accuracy, synaptic operations, NeuroBench measures or energy estimate" in printed   # none measured
    binary = quantize(dataclasses.replace(spec, encoder="latency"), QuantConfig())
    print_export(binary)
    printed = capsys.readouterr().out
    assert "loihi1:" in printed and "loihi2:" in printed


def _random_conv_layer(rng, c_in: int, c_out: int, k: int, height: int, width: int, stride: int, padding: int):
    """(quantized conv layer, out_h, out_w) of a latency-coded conv + readout network whose k x k taps are random,
    about half of them zero."""
    out_h, out_w = ((size + 2 * padding - k) // stride + 1 for size in (height, width))
    weight = rng.normal(size=(c_out, c_in, k, k)) * (rng.random((c_out, c_in, k, k)) < 0.5)
    spec = NetworkSpec((LayerSpec("c0", weight, None, 0.9, 1.0, "zero",
                                  conv=_conv((c_in, height, width), (c_out, out_h, out_w), stride, padding)),
                        LayerSpec("readout", np.ones((3, c_out * out_h * out_w)) * 0.1, None, 0.9, 1.0, "none")),
                       2, "latency", 3)
    return quantize(spec).layers[0], out_h, out_w


@pytest.mark.parametrize("stride, padding, k, height, width",
                         [(1, 1, 3, 6, 6), (2, 2, 3, 6, 6), (1, 0, 3, 6, 6), (1, 1, 3, 5, 7), (1, 1, 1, 4, 4)])
def test_a_conv_core_counts_the_union_of_its_neurons_receptive_fields_as_input_axons(stride, padding, k, height,
                                                                                       width):
    """Checked against the connectivity probed input by input through the convolution itself: on a square grid,
    a grid wider than high (rows of 7 spots), and a 1 x 1 kernel whose padding ring of neurons reads no input."""
    from spikecl.export.conv import conv2d

    c_in, c_out = 3, 4
    layer, out_h, out_w = _random_conv_layer(np.random.default_rng(stride + padding), c_in, c_out, k, height, width,
                                             stride, padding)
    connected = np.zeros((c_out * out_h * out_w, c_in * height * width), dtype=bool)
    for i in range(connected.shape[1]):
        probe = np.zeros((1, c_in, height, width))
        probe.reshape(-1)[i] = 1
        connected[:, i] = conv2d(probe, (layer.weight != 0).astype(float), stride, padding).reshape(-1) != 0
    axons = LayerAxons(layer)
    for per_core in (1, 5, 17, out_h * out_w, 1000):
        got = list(axons.inputs(per_core))
        want = [connected[s:s + per_core].any(0) for s in range(0, connected.shape[0], per_core)]
        assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
        assert axons.most_inputs(per_core) == max(int(w.sum()) for w in want)       # the counting path too
        assert np.array_equal(axons.reach(per_core), np.sum(want, axis=0))


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 2)])
def test_conv_synapse_counts_per_neuron_equal_the_links_probed_through_the_convolution(stride, padding):
    """A conv's nonzero synapses into each output neuron and out of each input neuron (what SynOps and the fan-out
    of the resource graph count), on a 5 x 7 grid with random nonzero taps, against the convolution itself: input
    i's links are the nonzero-weight outputs of a one-hot probe at i. With ``structural`` zero weights count too."""
    from spikecl.export.conv import connection_counts, conv2d

    c_in, c_out, k, height, width = 3, 4, 3, 5, 7
    layer, out_h, out_w = _random_conv_layer(np.random.default_rng(stride + 3 * padding), c_in, c_out, k, height,
                                             width, stride, padding)
    for structural, taps in ((False, layer.weight != 0), (True, np.ones(layer.weight.shape, dtype=bool))):
        links = np.zeros((c_in * height * width, c_out * out_h * out_w))
        for i in range(len(links)):
            probe = np.zeros((1, c_in, height, width))
            probe.reshape(-1)[i] = 1
            links[i] = conv2d(probe, taps.astype(float), stride, padding).reshape(-1)
        fan_in, fan_out = connection_counts(layer, structural)
        assert np.array_equal(fan_in, links.sum(axis=0)) and np.array_equal(fan_out, links.sum(axis=1))


def test_core_input_axon_counts_match_the_connectivity_for_shared_and_empty_channel_taps_and_dense_layers():
    """Input channels sharing their taps count once each (2 of them here), a channel without taps not at all; a
    dense core counts the nonzero columns of all its rows; a count cut short at a limit is not kept."""
    rng = np.random.default_rng(7)
    mask = rng.random((4, 1, 3, 3)) < 0.5
    weight = np.concatenate([mask, mask, np.zeros_like(mask)], axis=1) * rng.normal(size=(4, 3, 3, 3))
    conv = LayerSpec("c0", weight, None, 0.9, 1.0, "zero", conv=_conv((3, 6, 6), (4, 6, 6), 1, 1))
    dense = LayerSpec("d0", rng.normal(size=(12, 30)) * (rng.random((12, 30)) < 0.2), None, 0.9, 1.0, "zero")
    connected = np.zeros((4 * 36, 3 * 36), dtype=bool)
    for i in range(connected.shape[1]):
        probe = np.zeros((1, 3, 6, 6))
        probe.reshape(-1)[i] = 1
        connected[:, i] = conv2d(probe, (weight != 0).astype(float), 1, 1).reshape(-1) != 0
    for layer, links in ((conv, connected), (dense, dense.weight != 0)):
        axons = LayerAxons(layer)
        for per_core in (5, 36):
            want = max(int(links[s:s + per_core].any(0).sum()) for s in range(0, len(links), per_core))
            assert axons.most_inputs(per_core, limit=0) > 0
            assert axons.most_inputs(per_core) == want


def test_a_count_cut_short_at_a_limit_passes_a_core_that_meets_it_exactly_and_partitions_stay_within_it():
    """A 3 x 3 conv (padding 1) on one 6 x 6 channel: a corner neuron reads 4 inputs, an edge one 6, an inner one 9.
    Cut short at 4, the count goes past the corner core to the first above it (6). Cores of a row's 3 neurons read
    8 (first row) or 12 (inner rows: 3 rows x 4 columns), cores of 4 neurons up to 18: 9 input axons per core hold
    1 neuron each, 12 hold 3 (no core above the limit, none reported above it)."""
    net = quantize(NetworkSpec((LayerSpec("c0", np.ones((1, 1, 3, 3)), None, 0.9, 1.0, "zero",
                                          conv=_conv((1, 6, 6), (1, 6, 6))),
                                LayerSpec("readout", np.pad(np.ones((2, 4)), ((0, 0), (0, 32))), None, 0.9, 1.0,
                                          "none")), 2, "latency", 2))
    axons = LayerAxons(net.layers[0])
    assert axons.most_inputs(1, limit=4) == 6 and axons.most_inputs(1) == 9
    assert [axons.most_inputs(n) for n in (2, 3, 4)] == [12, 12, 18]
    for limit, per_core in ((9, 1), (12, 3)):
        tiny = resources.CoreLimits("tiny", neurons=1024, synaptic_memory_bits=2**20, input_axons=limit,
                                    output_axons=4096, cores_per_chip=128)
        conv = resources.partition(net, tiny)[0]
        assert (conv.neurons_per_core, conv.input_axons, conv.cores) == (per_core, limit, 36 // per_core)


def test_conv_cores_are_bound_by_input_and_output_axons_not_one_neurons_fan_in():
    """A 16 -> 32 channel 3 x 3 conv on 32 x 32: one neuron reads 144 inputs, but 910 neurons on a core (the memory
    bound) read 15,360; and a 32-32 CNN is placed (each neuron's axons go to the cores it reaches), not refused
    for every neuron of a core reaching every core of the next layer."""
    conv = LayerSpec("hidden0", np.ones((32, 16, 3, 3)) * 0.1, None, 0.9, 1.0, "zero",
                     conv=_conv((16, 32, 32), (32, 32, 32)))
    readout = LayerSpec("readout", np.pad(np.ones((10, 2000)), ((0, 0), (0, 32 * 32 * 32 - 2000))) * 0.01, None,
                        0.9, 1.0, "none")
    net = quantize(NetworkSpec((conv, readout), 2, "latency", 10))
    hidden = resources.partition(net, resources.preset("loihi2"))[0]
    assert hidden.limited_by == "input axons" and hidden.input_axons <= 4096 and hidden.cores > 128
    assert LayerAxons(net.layers[0]).most_inputs(hidden.neurons_per_core) <= 4096
    assert LayerAxons(net.layers[0]).most_inputs(hidden.neurons_per_core + 1) > 4096
    rng = np.random.default_rng(0)
    layers = (LayerSpec("c0", rng.normal(size=(32, 3, 3, 3)), None, 0.9, 1.0, "zero",
                        conv=_conv((3, 32, 32), (32, 32, 32))),
              LayerSpec("c1", rng.normal(size=(32, 32, 6, 6)), None, 0.9, 1.0, "zero",
                        conv=_conv((32, 32, 32), (32, 16, 16), 2, 2)),
              LayerSpec("readout", np.pad(rng.normal(size=(10, 3000)), ((0, 0), (0, 32 * 256 - 3000))), None, 0.9,
                        1.0, "none"))
    placed = resources.partition(quantize(NetworkSpec(layers, 2, "latency", 10)), resources.preset("loihi2"))
    assert all(p.input_axons <= 4096 and p.output_axons_per_core <= 4096 for p in placed)
    assert placed[0].limited_by == "output axons"


def test_conv_cores_whose_neurons_sit_alike_are_counted_once():
    """A block of a row's neurons moved along the row reads as many inputs: 32 cores of one 32 x 32 channel are 3
    block shapes (the first row, the inner ones, the last)."""
    layer = quantize(NetworkSpec((LayerSpec("c0", np.ones((1, 1, 3, 3)), None, 0.9, 1.0, "zero",
                                            conv=_conv((1, 32, 32), (1, 32, 32))),
                                  LayerSpec("readout", np.ones((2, 1024)), None, 0.9, 1.0, "none")),
                                 2, "latency", 2)).layers[0]
    axons = LayerAxons(layer)
    assert axons.most_inputs(32) == 3 * 32 and len(axons._counts[0]) == 3


def test_specs_and_networks_compare_by_value_and_a_netx_file_reads_back_equal(tmp_path):
    """== on a NetworkSpec or FixedNetwork compares every field, arrays element for element (it raised on the arrays'
    truth value): a network read back from its netx file equals the one written; one weight changed differs; neither
    is hashable (their arrays are mutable)."""
    rng = np.random.default_rng(31)
    for spec in (random_spec(rng), cnn_spec(small_cnn(3))):
        assert spec == copy.deepcopy(spec) and not spec != copy.deepcopy(spec)
        held = dataclasses.replace(spec, config={"data": {"mean": np.array([0.1, 0.2])}})     # arrays in its config
        assert held == copy.deepcopy(held) and held != spec
        net = quantize(spec)
        assert read_netx(write_netx(tmp_path / "net.h5", net, overwrite=True)) == net
        weight = net.layers[0].weight.copy()
        weight.flat[0] += 1
        changed = dataclasses.replace(net, layers=(dataclasses.replace(net.layers[0], weight=weight),
                                                   *net.layers[1:]))
        assert changed != net and net.layers[0] != changed.layers[0] and net != spec
        with pytest.raises(TypeError, match="unhashable"):
            hash(net)
