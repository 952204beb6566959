"""Export edge cases: the readout bias in fixed point, inconsistent or damaged network files, runner inputs,
sizes bounded before reading, and one-line errors from damaged metadata (tests/test_export.py: the main paths)."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hdf5_files import edited, tamper

from spikecl.errors import ConfigError, ExportError, ResultsError, ShapeError
from spikecl.export import fixed_point as fp
from spikecl.export import pipeline
from spikecl.export.float_model import float_forward, float_logits
from spikecl.export.inputs import encode, encode_values
from spikecl.export.netx import read_netx, write_netx
from spikecl.export.quantize import QuantConfig, quantize, readout_gain
from spikecl.export.samples import stream_samples
from spikecl.export.spec import LayerSpec, NetworkSpec
from spikecl.remedies import command_line


def small_spec(widths=(6, 8, 3), steps=6, beta=0.6, bias=0.5, n_heads=1, encoder="direct", seed=0):
    """A small MLP whose every layer has a bias of about ``bias`` (readout: ``n_heads`` heads)."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        readout = i == len(widths) - 2
        n = b * n_heads if readout else b
        layers.append(LayerSpec("readout" if readout else f"hidden{i}", rng.normal(0, 0.5, (n, a)),
                                rng.normal(bias, 0.1, n), beta, 1.0, "none" if readout else "zero"))
    return NetworkSpec(tuple(layers), steps, encoder, widths[-1], n_heads)


@pytest.mark.parametrize("field, layer", [("weight", 0), ("weight", 1), ("bias", 1), ("beta", 0), ("threshold", 0)])
def test_a_spec_with_nan_or_infinite_values_is_refused_naming_the_layer(field, layer):
    """quantize() from Python reached math errors (a ZeroDivisionError for an infinite readout weight); a spec built
    with a non-finite value is now one line naming it."""
    spec = small_spec(widths=(6, 4, 3))
    for bad in (np.nan, np.inf):
        value = getattr(spec.layers[layer], field)
        value = np.where(np.arange(np.size(value)).reshape(np.shape(value)) == 0, bad, value) \
            if np.ndim(value) else bad
        layers = list(spec.layers)
        layers[layer] = dataclasses.replace(layers[layer], **{field: value})
        with pytest.raises(ExportError, match=f"^layer {layers[layer].name}: {field} contains NaN or infinity$"):
            dataclasses.replace(spec, layers=tuple(layers))


@pytest.mark.parametrize("bias, shown", [(np.zeros(3), "(3,)"), (np.float64(0.5), "()")])
def test_a_spec_whose_bias_is_not_one_per_neuron_is_refused_not_broadcast(bias, shown):
    """A hidden bias must hold one value per neuron ([n_out]); a shorter or scalar one is refused, not broadcast."""
    spec = small_spec(widths=(6, 4, 3))
    layers = (dataclasses.replace(spec.layers[0], bias=bias), spec.layers[1])
    with pytest.raises(ExportError, match=re.escape(f"layer hidden0: bias has shape {shown}; expected [4]")):
        dataclasses.replace(spec, layers=layers)


def test_a_spec_with_a_hidden_threshold_of_zero_is_refused():
    """A hidden layer's threshold must be positive: 0 (every nonnegative membrane spiking) is refused."""
    spec = small_spec(widths=(6, 4, 3))
    layers = (dataclasses.replace(spec.layers[0], threshold=0.0), spec.layers[1])
    with pytest.raises(ExportError, match="^layer hidden0: threshold 0 must be positive$"):
        dataclasses.replace(spec, layers=layers)


# --- the readout bias ---
def test_fixed_point_readout_with_bias_equals_the_float_logits():
    """Lava adds the readout bias to the summed voltage at each step; the float readout adds it to the leaky membrane.
    The quantised readout must give the float logits (up to rounding), not T x b in place of b x gain."""
    spec = small_spec(widths=(6, 3), steps=8, beta=0.5, bias=2.0, encoder="latency")  # readout only, binary input
    x = np.random.default_rng(1).random((40, 6))
    net = quantize(spec)
    inputs = encode(x, net)
    fixed = fp.logits(net, fp.simulate(net, inputs).readout_v)
    expected = float_logits(spec, inputs)
    old_error = abs(1 - readout_gain(0.5, 8) / 8) * spec.readout.bias.min()   # T x b in place of gain x b: 1.5
    assert np.abs(fixed - expected).max() < 0.01 * old_error


def test_quantised_predictions_with_biases_agree_with_float():
    spec = small_spec(widths=(10, 16, 4), steps=6, beta=0.7, bias=0.3, seed=3)
    x = np.random.default_rng(2).random((200, 10))
    net = quantize(spec)
    inputs = encode(x, net)
    fixed = fp.logits(net, fp.simulate(net, inputs).readout_v)
    expected = float_logits(spec, encode_values(x, spec.num_steps, spec.encoder))
    assert np.mean(np.argmax(fixed, 1) == np.argmax(expected, 1)) > 0.95


@pytest.mark.parametrize("exponents, grain", [(False, 64), (True, 1)], ids=["netx grid", "exponents"])
def test_a_bias_is_rounded_to_its_grid_once(exponents, grain):
    """Each bias is ``64 * S * b`` in voltage units rounded once: to netx's grid of 64 by default, to the exponent's
    step with ``QuantConfig(exponents=True)`` (a 13-bit mantissa at the smallest exponent it fits), not first to 64
    and then to the finer step (errors up to 32 units where half the step is possible)."""
    spec = small_spec(widths=(12, 6, 3), steps=6, beta=0.7, seed=4)
    layers = tuple(dataclasses.replace(layer, bias=np.linspace(-0.02, 0.03, len(layer.bias))) for layer in spec.layers)
    spec = dataclasses.replace(spec, layers=layers)
    net = quantize(spec, QuantConfig(exponents=exponents))
    gain = readout_gain(0.7, 6) / 6
    for layer, fixed, factor in zip(spec.layers, net.layers, (1.0, gain)):
        exact = 64 * fixed.scale * layer.bias * factor
        stored = fp.effective_bias(fixed)
        step = max(grain, 2**fixed.bias_exp)
        assert np.all(stored % step == 0) and np.abs(stored - exact).max() <= step / 2
    assert [fixed.bias_exp for fixed in net.layers] == [3, 0]          # the smallest exponents that hold 13 bits


# --- inconsistent, mistyped or oversized network files ---
def refused(path, message):
    with pytest.raises(ResultsError, match=re.escape(message)) as info:
        read_netx(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("where, value, message", [
    ("spikecl/encoder", "latency", "encoder 'latency' with input_bits = 8"),
    ("spikecl/encoder", "events", "encoder 'events' is not one of direct, poisson, latency"),
    ("spikecl/input_bits", 0, "encoder 'direct' with input_bits = 0"),
    ("spikecl/layer/0/input_bits", 4, "layer hidden0 has input_bits = 4; the network's input is 8 bits"),
    ("spikecl/layer/0/readout", 1, "layer hidden0 is flagged as the readout but is not the last layer"),
    ("layer/1/neuron/vThMant", 100.6, "vThMant = 100.6 is not an integer"),
    ("layer/1/neuron/vThMant", np.bytes_("100"), "vThMant = b'100' is not an integer"),
    ("layer/1/neuron/iDecay", np.int64(0), "iDecay = 0 outside 1..4096"),        # du + 1: du = -1 is no decay
    ("layer/0/shape", np.array([6.5]), "shape must hold 1 or 3 integers"),
    ("layer/1/shape", np.array([9]), "weight has shape (8, 6); expected [n_out, 6] matching the layer's shape"),
    ("spikecl/layer/0/netx", 1.7, "netx = 1.7 is not an integer"),
    ("spikecl/layer/1/bias_mant", np.zeros(5, np.int32), "bias_mant has shape (5,); expected (3,)"),
    ("spikecl/layer/1/bias_mant", np.full(3, 2**64 - 1, np.uint64), "bias_mant must be [3] 13-bit integers"),
    ("spikecl/layer/1/bias_mant", np.full(3, 2**63, np.uint64), "bias_mant must be [3] 13-bit integers"),
    ("spikecl/layer/1/bias_mant", np.full(3, -2**63, np.int64), "bias_mant must be [3] 13-bit integers"),
    ("spikecl/metrics", json.dumps({"float_accuracy": "x", "reference_accuracy": 0.5, "samples": 9}),
     "metrics float_accuracy = 'x' is not a finite number"),
    ("spikecl/metrics", json.dumps({"float_accuracy": None}), "metrics float_accuracy = None is not a finite number"),
    ("spikecl/metrics", json.dumps({"float_accuracy": float("nan"), "reference_accuracy": 0.5, "samples": 9}),
     "metrics float_accuracy = nan is not a finite number"),
    ("spikecl/metrics", json.dumps({"float_accuracy": 0.5}), "metrics hold float_accuracy without"),
])
def test_inconsistent_or_mistyped_network_files_are_one_line_errors(tmp_path, where, value, message):
    """Parts of a network file that disagree, or values of the wrong type, are refused, never coerced or run."""
    tampered_is_refused(tmp_path, where, value, message)


def test_a_netx_bias_stored_as_unsigned_64_bit_is_refused_though_it_wraps_to_the_right_values(tmp_path):
    """2**64 - 58 read as int64 is -58: lava-dl's netx would run the huge value, spikecl's runner -58."""
    import h5py

    path = write_netx(tmp_path / "net.h5", quantize(small_spec(bias=-0.5)))
    with h5py.File(path, "r") as f:
        bias = f["layer/1/bias"][()]
    assert (bias < 0).any()
    tamper(path, "layer/1/bias", bias.astype(np.int64).view(np.uint64))
    refused(path, "bias differs from spikecl's bias_mant << bias_exp")


def test_a_network_file_damaged_on_disk_is_refused_by_its_crc_not_deployed_with_other_weights(tmp_path):
    """A weight or threshold changed within its valid range (a flipped bit of a mantissa) passes every range check;
    the file's CRC-32 refuses it. A file without the CRC (written before it, or by another tool) reads as before."""
    import h5py

    path = write_netx(tmp_path / "net.h5", quantize(small_spec()))
    net = read_netx(path)
    with h5py.File(path, "r") as f:
        weight = f["layer/1/weight"][()]
    for where, value in (("layer/1/weight", weight ^ 64), ("layer/1/neuron/vThMant", net.layers[0].vth - 1)):
        tamper(path, where, value)
        refused(path, "is corrupt: its contents fail their CRC-32 (a byte changed on disk); export the network again")
        write_netx(path, quantize(small_spec()), overwrite=True)
    with edited(path) as f:
        del f["spikecl"].attrs["crc32"]
        f["layer/1/weight"][...] = weight ^ 64
    assert not np.array_equal(read_netx(path).layers[0].weight, net.layers[0].weight)     # read as it now is


def tampered_is_refused(tmp_path, where, value, message) -> None:
    """A valid network file with ``where`` set to ``value`` is refused in one line holding ``message``."""
    path = write_netx(tmp_path / "net.h5", quantize(small_spec()))
    read_netx(path)
    tamper(path, where, value)
    refused(path, message)


@pytest.mark.parametrize("scenario, heads, outputs, message", [
    ("class", 2, 5, "n_heads = 2, but the training stream in its config needs 1"),
    ("task", 1, 10, "n_heads = 1, but the training stream in its config needs 2"),
])
def test_heads_must_match_the_training_stream_of_the_stored_config(tmp_path, scenario, heads, outputs, message):
    net = quantize(small_spec(widths=(6, 8, 10)))
    config = {"stream": {"kind": "split", "scenario": scenario, "n_tasks": 2}}
    path = write_netx(tmp_path / "net.h5", dataclasses.replace(net, config=config, n_heads=heads, n_outputs=outputs))
    refused(path, message)


def test_an_oversized_weight_dataset_is_refused_before_it_is_read(tmp_path):
    """A chunked 8 x 50,000,000 weight dataset (a small file) would need 1.6 GB to read: its shape is checked first."""
    path = write_netx(tmp_path / "net.h5", quantize(small_spec()))
    with edited(path) as f:
        del f["layer/1/weight"]
        f["layer/1"].create_dataset("weight", shape=(8, 50_000_000), dtype=np.int32, chunks=(8, 1000))
    assert path.stat().st_size < 100_000
    refused(path, "weight has shape (8, 50000000); expected (8, 6)")


def test_a_conv_grid_of_too_many_neurons_is_refused_before_its_bias_is_read(tmp_path):
    """A conv layer declaring a 999,999 x 999,999 grid (each side within bounds) would read a bias of 10^12 values."""
    from test_export import cnn_spec, small_cnn

    path = write_netx(tmp_path / "cnn.h5", quantize(cnn_spec(small_cnn(1))))
    with edited(path) as f:
        del f["layer/1/shape"]
        f["layer/1"].create_dataset("shape", data=np.array([1, 999_999, 999_999]))
    refused(path, "conv shape (1, 999999, 999999) holds more than 1000000 neurons")


def test_input_values_are_bounded_before_they_are_allocated(tmp_path, monkeypatch):
    from spikecl.export.pipeline import deploy

    with pytest.raises(ShapeError, match="1000000 steps x 300 samples x 6 inputs"):
        encode_values(np.zeros((300, 6)), 1_000_000, "direct", 255)
    path = write_netx(tmp_path / "net.h5", dataclasses.replace(quantize(small_spec()), num_steps=1_000_000))
    with pytest.raises(ShapeError, match="input values exceed"):          # before the samples are drawn
        deploy(path, "reference", samples=200)


@pytest.mark.parametrize("x, message", [
    (np.full((2, 6), 16, np.uint8), "samples hold values in 16..16, but the network's inputs are intensities in "
                                    "[0, 1]"),
    (np.full((2, 6), 255.0), "values in 255..255"),
    (np.full((2, 6), -0.5), "values in -0.5..-0.5"),
    (np.full((2, 6), 1.5), "values in 1.5..1.5"),
    (np.full((2, 6), np.nan), "samples contain NaN or infinity"),
    ([["a"] * 6] * 2, "samples: expected a numeric array [B, ...], got list"),
])
def test_inputs_outside_0_1_are_refused_not_clipped_into_other_images(x, message):
    """Raw 8-bit images clipped to [0, 1] would all read as ones: a silently wrong accuracy on the quantised network,
    where the torch network refuses the same input. float32 rounding of a [0, 1] image (a rotated stream's
    1.0000001) reads as its bound."""
    from spikecl.data.streams import rotate
    from spikecl.errors import DataError

    with pytest.raises((DataError, ShapeError), match=re.escape(message)):
        encode_values(x, 4, "direct", 255)
    turned = rotate(np.ones((1, 1, 8, 8), np.float32), 7.0)
    assert turned.max() > 1 and encode_values(turned, 4, "direct", 255).max() == 255


def test_a_value_a_rounding_above_1_encodes_as_the_top_graded_value_at_16_bits():
    """A value within float rounding above 1 (1 + 9e-6) reads as 1: 65535 at 16 input bits, not 65536 (17 bits)."""
    assert encode_values(np.full((1, 2), 1 + 9e-6), 2, "direct", 65535).max() == 65535


def test_poisson_inputs_of_a_quantised_network_come_from_the_seed_given():
    """encode(x, net, seed) draws a Poisson network's spikes from ``seed``, as encode_values does."""
    net = quantize(small_spec(encoder="poisson"))
    x = np.random.default_rng(0).random((50, 6))
    spikes = encode(x, net, seed=4)
    assert np.array_equal(spikes, encode_values(x, net.num_steps, "poisson", net.input_scale, seed=4))
    assert not np.array_equal(spikes, encode(x, net, seed=5))


def test_encoding_samples_of_another_width_than_the_network_takes_is_a_shape_error():
    """encode refuses samples whose feature count is not the network's input width, naming both."""
    with pytest.raises(ShapeError, match=re.escape("samples have 7 features; the network takes 6")):
        encode(np.full((4, 7), 0.5), quantize(small_spec()))


def test_deploy_on_the_reference_decodes_a_task_incremental_network_with_each_samples_head(tmp_path):
    """deploy (reference backend) predicts every sample through the head of its task, as predict with the heads."""
    net = quantize(small_spec(widths=(64, 8, 5), n_heads=2))
    config = {"data": {"dataset": "digits"}, "stream": {"kind": "split", "scenario": "task", "n_tasks": 2}, "seed": 0}
    path = write_netx(tmp_path / "net.h5", dataclasses.replace(net, config=config))
    x, y, heads = stream_samples(config, 40)
    assert heads.tolist() == [0] * 20 + [1] * 20
    report = pipeline.deploy(path, samples=40)
    expected = np.mean(fp.predict(net, encode(x, net), heads) == y)
    assert report["samples"] == 40 and report["accuracy"] == report["reference_accuracy"] == expected


def test_deploy_refuses_a_backend_it_does_not_know_before_reading_the_network(tmp_path):
    """A backend other than reference or lava-sim is a one-line ConfigError, before the file is read."""
    with pytest.raises(ConfigError, match=re.escape("backend 'loihi': choose one of reference, lava-sim")):
        pipeline.deploy(tmp_path / "missing.h5", backend="loihi")


def test_export_prediction_agreement_compares_float_and_quantised_predictions_not_labels():
    """accuracies' prediction_agreement is how often float and quantised predict alike, whatever the labels."""
    spec = small_spec()
    net = quantize(spec)
    x = np.random.default_rng(2).random((30, 6))
    metrics = pipeline.accuracies(spec, net, x, np.full(30, -1), None)
    float_pred = np.argmax(float_logits(spec, encode_values(x, spec.num_steps, spec.encoder)), axis=1)
    agree = np.mean(float_pred == fp.predict(net, encode(x, net), None))
    assert metrics["float_accuracy"] == metrics["reference_accuracy"] == 0
    assert agree > 0.5 and metrics["prediction_agreement"] == agree


def test_calibration_refuses_samples_of_another_width_than_the_network_takes():
    """calibrated names a feature-count misfit of the calibration samples in one line (not a numpy matmul error)."""
    with pytest.raises(ShapeError, match=re.escape("samples have 7 features; the network takes 6")):
        pipeline.calibrated(small_spec(), QuantConfig(), np.full((4, 7), 0.5))


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "validation"}, "split 'validation' is not one of 'test'"),
    ({"split": "Test"}, "split 'Test' is not one of 'test'"),
    ({"max_samples": -1}, "max_samples must be a whole number >= 0 or None, got -1"),
    ({"max_samples": 2.5}, "max_samples must be a whole number >= 0 or None, got 2.5"),
    ({"max_samples": True}, "max_samples must be a whole number >= 0 or None, got True"),
])
def test_stream_samples_refuses_a_split_or_count_it_does_not_know(kwargs, message):
    """Any split but "test" used to give the training samples: an accuracy on them passes for a test accuracy."""
    from spikecl.errors import ConfigError
    from spikecl.export.samples import stream_samples

    with pytest.raises(ConfigError, match=re.escape(message)):
        stream_samples(small_spec().config, **kwargs)


def test_latency_inputs_fire_once_at_round_of_1_minus_x_times_t_minus_1_and_zeros_never():
    """Latency coding as training encodes it: pixel x spikes once at step round((1 - x)(T - 1)); 0 never spikes."""
    spikes = encode_values(np.array([[0.0, 1.0, 0.5, 0.25]]), 5, "latency", scale=1)
    assert spikes.dtype == np.int64 and spikes[:, 0].T.tolist() == [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0],
                                                                    [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]]


def test_a_stored_seed_that_is_not_an_integer_is_a_config_error():
    from spikecl.errors import ConfigError
    from spikecl.export.samples import trained_stream

    with pytest.raises(ConfigError, match=r"config's seed must be an integer in 0..2\^32-1, got 'abc'"):
        trained_stream({"data": {"dataset": "digits"}, "stream": {"kind": "split", "scenario": "class",
                                                                   "n_tasks": 2}, "seed": "abc"})


# --- heads and labels, the runner's inputs and output ---
@pytest.mark.parametrize("heads, message", [
    (np.array([0, 3]), "heads must be integers in 0..1 (the readout has 2 heads), got 0..3"),
    (np.array([-1, 0]), "heads must be integers in 0..1"),
    (np.array([0.0, 1.0]), "heads must be integers in 0..1"),
    (np.array([0, 1, 1]), "heads have shape (3,); expected [2]"),
])
def test_logits_refuse_heads_out_of_range_or_of_the_wrong_shape(heads, message):
    net = quantize(small_spec(n_heads=2))
    v = np.zeros((2, net.readout.n_out), dtype=np.int64)
    with pytest.raises(ShapeError, match=re.escape(message)):
        fp.logits(net, v, heads)



@pytest.mark.parametrize("batch_size", [500, 5, 2])
def test_fixed_point_predict_checks_the_heads_whole_whatever_the_batch_size(batch_size):
    """predict sliced ``heads`` batch by batch before checking: 7 heads for 5 samples passed, cut to 5, where the
    batch size divided 5, and a refusal named a batch's slice; now the whole array is checked first."""
    net = quantize(small_spec(n_heads=2))
    inputs = np.zeros((net.num_steps, 5, 6), dtype=np.int64)
    assert fp.predict(net, inputs, np.array([0, 1, 1, 0, 1]), batch_size=batch_size).shape == (5,)
    with pytest.raises(ShapeError, match=re.escape("heads have shape (7,); expected [5] (one per sample)")):
        fp.predict(net, inputs, np.ones(7, dtype=np.int64), batch_size=batch_size)


def test_no_heads_for_a_multi_head_readout_is_refused_not_decoded_by_head_0(tmp_path):
    spec = small_spec(n_heads=2)
    x_seq = np.ones((spec.num_steps, 3, 6))
    message = re.escape("heads: this readout has 2 heads; give the head index of every sample")
    with pytest.raises(ConfigError, match=message):
        float_logits(spec, x_seq)
    with pytest.raises(ConfigError, match=message):
        fp.logits(quantize(spec), np.zeros((3, 6), dtype=np.int64))
    assert float_logits(spec, x_seq, np.array([0, 1, 1])).shape == (3, 3)
    assert float_logits(small_spec(), x_seq).shape == (3, 3)                  # one head: None means head 0
    pytest.importorskip("nir")
    from spikecl.export.nir_io import read_nir
    from spikecl.export.nir_readers import nir_logits

    graph = read_nir(nir_file(tmp_path))
    graph.metadata["n_heads"], graph.metadata["n_outputs"] = 2, 2
    with pytest.raises(ConfigError, match=message):
        nir_logits(graph, np.zeros((4, 3, 4)))


def run_runner_main(tmp_path, monkeypatch, capsys, labels=None, heads=None, inputs=None, output=None, n_heads=2):
    """``spikecl_lava.runner.main`` in this process (it imports Lava only to run): (exit code, stderr)."""
    import h5py

    from spikecl.export.lava_client import write_inputs

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "hardware"))
    from spikecl_lava.runner import main

    net = quantize(small_spec(n_heads=n_heads))
    write_netx(tmp_path / "net.h5", net, overwrite=True)
    x = encode(np.random.default_rng(0).random((4, 6)), net) if inputs is None else inputs
    if isinstance(x, tuple):                               # a declared shape, not written
        with h5py.File(tmp_path / "in.h5", "w") as f:
            f.create_dataset("inputs", shape=x, dtype=np.int32, chunks=(1, 1, x[2]))
    else:
        write_inputs(tmp_path / "in.h5", x, labels, heads)
    out = output or tmp_path / "run.h5"
    code = main([str(tmp_path / "net.h5"), "--inputs", str(tmp_path / "in.h5"), "-o", str(out)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case, message", [
    (dict(heads=np.array([0, 1, 2, 1])), "heads must be integers in 0..1"),
    (dict(heads=np.array([0, -1, 0, 1])), "heads must be integers in 0..1"),
    (dict(heads=np.array([0, 1])), "heads must be 4 integers (one per sample)"),
    (dict(labels=np.array([[0], [1], [2], [0]])), "labels must be 4 integers (one per sample), got int64 (4, 1)"),
    (dict(labels=np.array([0, 1])), "labels must be 4 integers"),
    (dict(labels=np.array([0, 1, 3, 0])), "labels must be classes in 0..2 (the readout's outputs), got 0..3"),
    (dict(labels=np.array([0, -1, 2, 0])), "labels must be classes in 0..2 (the readout's outputs), got -1..2"),
    (dict(inputs=np.zeros((6, 0, 6), np.int64)), "inputs hold no samples (B = 0)"),
    (dict(inputs=(6, 2**26, 6)), "input values exceed"),
    (dict(output="folder"), "is a folder; name the run file to write"),
    (dict(output="exists"), "exists; pass --overwrite"),
    (dict(output="net.h5"), "net.h5 is the network file"),
    (dict(output="in.h5"), "in.h5 is the inputs file"),
])
def test_runner_refuses_bad_inputs_and_outputs_before_running(tmp_path, monkeypatch, capsys, case, message):
    if case.get("output") in ("net.h5", "in.h5"):                   # refused even with --overwrite (not given)
        case = {"output": tmp_path / case["output"]}
    elif case.get("output") == "folder":
        (tmp_path / "out").mkdir()
        case = {"output": tmp_path / "out"}
    elif case.get("output") == "exists":
        (tmp_path / "old.h5").write_bytes(b"x")
        case = {"output": tmp_path / "old.h5"}
    if "labels" in case or "heads" in case:                          # the other one valid
        case = {"labels": np.array([0, 1, 2, 0]), "heads": np.array([0, 1, 0, 1]), **case}
    code, err = run_runner_main(tmp_path, monkeypatch, capsys, **case)
    assert code == 2 and err.startswith("spikecl-lava: error:") and message in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run.h5").exists()


def test_runner_refuses_no_heads_for_a_multi_head_readout_before_running(tmp_path, monkeypatch, capsys):
    code, err = run_runner_main(tmp_path, monkeypatch, capsys, labels=np.array([0, 1, 2, 0]))   # Lava never imported
    assert code == 2 and "heads: this readout has 2 heads; give the head index of every sample" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run.h5").exists()


def test_float_heads_in_the_runners_inputs_are_refused(tmp_path, monkeypatch, capsys):
    import h5py

    net = quantize(small_spec(n_heads=2))
    write_netx(tmp_path / "net.h5", net)
    with h5py.File(tmp_path / "in.h5", "w") as f:                    # write_inputs would store them as int64
        f.create_dataset("inputs", data=encode(np.full((4, 6), 0.5), net).astype(np.int32))
        f.create_dataset("heads", data=np.array([0.0, 1.5, 0.0, 1.0]))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "hardware"))
    from spikecl_lava.runner import main

    code = main([str(tmp_path / "net.h5"), "--inputs", str(tmp_path / "in.h5"), "-o", str(tmp_path / "r.h5")])
    err = capsys.readouterr().err
    assert code == 2 and "heads must be 4 integers (one per sample), got float64" in err


def test_a_missing_inputs_file_is_named_as_missing(tmp_path, monkeypatch, capsys):
    """It was called 'not an inputs file' with libhdf5's errno text."""
    write_netx(tmp_path / "net.h5", quantize(small_spec()))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "hardware"))
    from spikecl_lava.runner import main

    for given, said in ((tmp_path / "absent.h5", "inputs file not found"), (tmp_path, "a folder, not an inputs file")):
        code = main([str(tmp_path / "net.h5"), "--inputs", str(given), "-o", str(tmp_path / "r.h5")])
        err = capsys.readouterr().err
        assert code == 2 and err.strip().endswith(f"{given}: {said}") and err.count("\n") == 1


@pytest.mark.parametrize("dtype, shown", [("S1", "|S1"), (np.float64, "float64"), (bool, "bool")])
def test_the_runners_inputs_must_be_integers(tmp_path, monkeypatch, capsys, dtype, shown):
    """Strings, floats (even whole ones) and booleans in the inputs file are refused before the run, in one line."""
    import h5py

    net = quantize(small_spec())
    write_netx(tmp_path / "net.h5", net)
    with h5py.File(tmp_path / "in.h5", "w") as f:                    # write_inputs would store them as int32
        f.create_dataset("inputs", data=encode(np.full((4, 6), 0.5), net).astype(dtype))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "hardware"))
    from spikecl_lava.runner import main

    code = main([str(tmp_path / "net.h5"), "--inputs", str(tmp_path / "in.h5"), "-o", str(tmp_path / "r.h5")])
    err = capsys.readouterr().err
    assert code == 2 and f"in.h5: inputs hold {shown} values; expected integers" in err and err.count("\n") == 1
    with pytest.raises(ShapeError, match="inputs must be integers .*, got <U1 values"):
        fp.check_inputs(net, np.full((6, 2, 6), "1"))                # the array check too (was a TypeError)
    assert not (tmp_path / "r.h5").exists()


# --- damaged results files at export ---
def mlp_state(heads=1):
    """The state_dict arrays of a 6-8-3 MLP with biases (``heads`` readout heads), named as network_keys says."""
    from spikecl.network_keys import INTEGRATOR, LIF, SYNAPSE, head, hidden

    rng = np.random.default_rng(0)
    state = {hidden(0) + SYNAPSE + "weight": rng.normal(0, 0.5, (8, 6)), hidden(0) + SYNAPSE + "bias": np.zeros(8),
             hidden(0) + LIF + "reset_mechanism_val": np.array(1), INTEGRATOR + "beta": np.array(0.9)}
    for h in range(heads):
        state[head(h) + "weight"], state[head(h) + "bias"] = rng.normal(0, 0.5, (3, 8)), np.zeros(3)
    return state


MLP_CONFIG = {"network": {"kind": "mlp", "reset": "zero", "num_steps": 4}}


@pytest.mark.parametrize("hidden", [[8], None])
def test_a_config_that_records_other_hidden_layers_than_its_weights_is_refused(hidden):
    """A file whose config says network.hidden = [100000000] (or [32]) beside 8-unit weights was exported as the
    weights say, silently; the recorded widths must be the weights' (a config that records none is read as is)."""
    from spikecl.export.spec import spec_from_state

    network = {**MLP_CONFIG["network"], **({"hidden": hidden} if hidden else {})}
    spec_from_state(mlp_state(), {"network": network})
    for wrong in ([100000000], [32], [8, 8]):
        with pytest.raises(ExportError, match=re.escape(f"the trained config's network.hidden = {wrong} does not "
                                                        "match its weights' hidden layers [8]")):
            spec_from_state(mlp_state(), {"network": {**network, "hidden": wrong}})


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update({"layers.0.lif.reset_mechanism_val": np.array(5)}),
     "layer hidden0: reset_mechanism_val [5.0] is not one of snnTorch's codes 0..2"),
    (lambda s: s.pop("readout.heads.1.bias"), "the 2 readout heads differ in shape or in having a bias"),
    (lambda s: s.update({"layers.0.synapse.weight": np.ones((8, 6, 1))}),
     "layer hidden0: weight has shape (8, 6, 1); expected [n_out, n_in]"),
])
def test_damaged_trained_parameters_are_one_line_export_errors(change, message):
    from spikecl.export.spec import spec_from_state

    state = mlp_state(heads=2)
    spec_from_state(state, MLP_CONFIG)
    change(state)
    with pytest.raises(ExportError, match=re.escape(message)):
        spec_from_state(state, MLP_CONFIG)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update({"readout.heads.0.weight": np.ones((10, 33))}), "layer readout: weight (10, 33) does not take"),
    (lambda s: s.update({"layers.0.norm.running_var": -np.ones_like(s["layers.0.norm.running_var"])}),
     "'layers.0.norm.running_var' holds a negative variance"),
    (lambda s: s.update({"layers.0.norm.weight": np.full(s["layers.0.norm.weight"].shape, 1e308),
                         "layers.0.norm.running_var": np.zeros(s["layers.0.norm.running_var"].shape)}),
     "folding its batch norm gives NaN or infinite weights"),
])
def test_damaged_cnn_parameters_are_one_line_export_errors(change, message):
    pytest.importorskip("torch")
    from test_export import small_cnn

    from spikecl.export.spec import spec_from_state

    state = {k: v.detach().numpy().copy() for k, v in small_cnn().state_dict().items()}
    config = {"network": {"kind": "cnn", "reset": "zero", "num_steps": 4}, "data": {"dataset": "digits"}}
    spec_from_state(state, config)
    change(state)
    with pytest.raises(ExportError, match=re.escape(message)):
        spec_from_state(state, config)


# --- NIR files and their metadata ---
def nir_file(tmp_path, change=None):
    pytest.importorskip("nir")
    from spikecl.export.nir_io import write_nir

    path = write_nir(tmp_path / "net.nir", small_spec(widths=(6, 8, 4)), overwrite=True)
    if change is not None:
        with edited(path) as f:
            change(f)
    return path


def _set(f, where, value):
    del f[where]
    f.create_dataset(where, data=value)


def _edges(f, change):
    """Replace the NIR file's edges (pairs of node names) by ``change`` of them."""
    import h5py

    edges = [tuple(end.decode() for end in edge) for edge in f["node/edges"][()]]
    _set(f, "node/edges", np.array(change(edges), dtype=h5py.string_dtype()).reshape(-1, 2))


@pytest.mark.parametrize("change, message", [
    (lambda f: _set(f, "node/nodes/fc0/type", np.bytes_("Foo")), "is not a readable NIR file"),
    (lambda f: f.__delitem__("node/edges"), "is not a readable NIR file"),
    (lambda f: _set(f, "node/metadata/dt", np.nan), "metadata dt = nan must be a positive number"),
    (lambda f: _set(f, "node/metadata/dt", -1e-4), "metadata dt = -0.0001 must be a positive number"),
    (lambda f: _set(f, "node/metadata/num_steps", -3), "metadata num_steps = -3 must be an integer in 1.."),
    (lambda f: _set(f, "node/metadata/config", np.bytes_("{broken")), "metadata config is not a JSON table"),
    (lambda f: _set(f, "node/nodes/lif0/v_threshold", np.full(8, np.nan)),
     "node 'lif0': v_threshold holds NaN or infinity"),
    (lambda f: _set(f, "node/nodes/fc_out/weight", np.full((4, 8), np.inf, np.float32)),
     "node 'fc_out': weight holds NaN or infinity"),
    (lambda f: _set(f, "node/nodes/lif0/tau_mem", np.full(8, -1e-3)), "node 'lif0': tau_mem must be positive"),
    (lambda f: _set(f, "node/nodes/lif0/r", np.zeros(8)), "node 'lif0': r must be positive"),
    (lambda f: _set(f, "node/metadata/dt", 1e-3), "node 'lif0': tau_syn 0.0001 is not the metadata's dt = 0.001"),
    (lambda f: _set(f, "node/metadata/encoder", np.bytes_("events")),
     "metadata encoder = 'events' is not one of direct, latency, poisson"),
    (lambda f: _set(f, "node/metadata/encoder", np.array([1.0, 2.0])), "metadata encoder = array([1., 2.]) is not one"),
    (lambda f: _set(f, "node/metadata/config", np.bytes_(json.dumps({"stream": {"n_tasks": "x"}}))),
     "the stored config is damaged (stream.n_tasks: expected an integer"),
    (lambda f: _edges(f, lambda e: [x for x in e if x != ("readout", "output")]),     # snnTorch looped for ever
     "edges do not chain input -> ... -> readout -> output through every node once, as spikecl writes them "
     "(2 input nodes: input, input_output)"),                          # NIR gives each unreached node an input
    (lambda f: _edges(f, lambda e: []), "(6 input nodes: input, input_"),
    (lambda f: _edges(f, lambda e: [*e, ("input", "lif0")]), "is not a readable NIR file (Type inference error"),
    (lambda f: _edges(f, lambda e: [x if x != ("readout", "output") else ("readout", "outpt") for x in e]),
     "is not a readable NIR file (Edge ('readout', 'outpt') references destination node 'outpt'"),
    (lambda f: _set(f, "node/metadata/n_heads", 3),
     "metadata n_heads = 3 x n_outputs = 4 does not match the readout's 4 neurons"),
    (lambda f: _set(f, "node/metadata/n_outputs", 2),
     "metadata n_heads = 1 x n_outputs = 2 does not match the readout's 4 neurons"),
    (lambda f: _set(f, "node/metadata/config", np.bytes_(json.dumps({"stream": {
        "kind": "split", "scenario": "task", "n_tasks": 2, "classes_per_task": 2}}))),
     "metadata n_heads = 1, but the training stream in its config needs 2 (task scenario: one head per task"),
    (lambda f: _set(f, "node/metadata/readout", np.bytes_("out")),
     "metadata readout = 'out' is not one of its CubaLIF nodes"),
    (lambda f: _set(f, "node/metadata/readout", np.bytes_("fc0")),
     "metadata readout = 'fc0' is not one of its CubaLIF nodes"),
    (lambda f: _set(f, "node/nodes/fc0/bias", np.bytes_("x")), "node 'fc0': bias must be numbers, got str 'x'"),
    (lambda f: _set(f, "node/nodes/fc0/weight", np.bytes_("x")), "is not a readable NIR file"),
    (lambda f: _set(f, "node/nodes/lif0/tau_mem", np.bytes_("x")), "is not a readable NIR file"),
    (lambda f: (f.__delitem__("node/nodes"), f.create_dataset("node/nodes", data=1)), "is not a readable NIR file"),
    (lambda f: (f.__delitem__("node/nodes/fc0/weight"),                  # 73 KB that would allocate 134 GiB
                f.create_dataset("node/nodes/fc0/weight", shape=(8, 6 * 10**9), dtype="f4", chunks=(1, 10**6))),
     "node/nodes/fc0/weight declares (8, 6000000000), more than 134217728 values"),
    (lambda f: [(f.__delitem__(f"node/nodes/lif0/{key}"),                # each under the limit, 4 GiB together
                 f.create_dataset(f"node/nodes/lif0/{key}", shape=(2**26 + 1,), dtype="f8", chunks=(2**16,)))
                for key in ("tau_mem", "tau_syn", "r", "v_leak", "v_threshold")],
     "its datasets declare more than 268435456 values together (at node/nodes/lif0/"),
])
def test_damaged_nir_files_are_one_line_results_errors(tmp_path, change, message):
    from spikecl.export.nir_io import read_nir

    path = nir_file(tmp_path, change)
    with pytest.raises(ResultsError, match=f"^{re.escape(str(path))}.*{re.escape(message)}") as info:
        read_nir(path)   # spikecl's metadata is checked on reading, and the error names the file
    assert "\n" not in str(info.value)


def test_a_nir_graph_with_neurons_spikecl_does_not_write_is_refused(tmp_path):
    """spikecl's earlier files wrote NIR LIF, which Norse runs nearly silent (chance accuracy, one log warning):
    a graph with spikecl's metadata and such a population is refused before any reader runs it."""
    import nir

    from spikecl.export.nir_io import graph_metadata, read_nir
    from spikecl.export.nir_readers import run_nir

    graph = read_nir(nir_file(tmp_path))
    lif = graph.nodes["lif0"]
    graph.nodes["lif0"] = nir.LIF(tau=lif.tau_mem, r=lif.r, v_leak=lif.v_leak, v_threshold=lif.v_threshold)
    message = "the NIR graph's node 'lif0' is a LIF, which spikecl does not write"
    for check in (lambda: graph_metadata(graph), lambda: run_nir(graph, np.zeros((6, 1, 6)), "snntorch")):
        with pytest.raises(ResultsError, match=re.escape(message)):
            check()


@pytest.mark.parametrize("change, problem", [
    (lambda e: [*e, ("input", "lif0")], "two edges leave input"),
    (lambda e: [*e, ("output", "fc0")], "two edges reach fc0"),
    (lambda e: [x if x != ("readout", "output") else ("readout", "outpt") for x in e], "edge readout -> outpt names "
                                                                                       "no node 'outpt'"),
    (lambda e: [x for x in e if x[0] != "readout"] + [("readout", "fc0")], "two edges reach fc0"),
    (lambda e: [("input", "fc0"), ("fc0", "lif0"), ("lif0", "fc0")], "two edges reach fc0"),
    (lambda e: [("input", "fc_out"), ("fc_out", "readout"), ("readout", "output")], "fc0, lif0 not reached from the "
                                                                                    "input"),
    (lambda e: [("input", "fc0"), ("fc0", "lif0"), ("lif0", "readout"), ("readout", "fc_out"), ("fc_out", "output")],
     "the chain ends fc_out -> output, not readout -> output"),
])
def test_a_nir_graph_whose_edges_are_not_spikecls_chain_is_refused_before_a_reader_imports_it(tmp_path, change,
                                                                                              problem):
    """Graphs edited in memory (the file reader refuses some of these itself): the runners check the edges before
    snnTorch's importer, which looped for ever on a missing edge, or Norse, which guessed an input."""
    from spikecl.export.nir_io import graph_metadata, read_nir
    from spikecl.export.nir_readers import import_graph, run_nir

    graph = read_nir(nir_file(tmp_path))
    graph.edges = change(list(graph.edges))
    for check in (lambda: graph_metadata(graph), lambda: run_nir(graph, np.zeros((6, 1, 6)), "snntorch"),
                  lambda: import_graph(graph, "snntorch")):
        with pytest.raises(ResultsError, match=re.escape(f"as spikecl writes them ({problem})")):
            check()


@pytest.mark.parametrize("x, message", [
    (np.zeros((6, 2, 7)), "inputs have shape (6, 2, 7); expected [T, B, n_inputs] = [6, B >= 1, 6]"),
    (np.zeros((8, 2, 6)), "inputs have shape (8, 2, 6); expected"),           # another T: other logits, silently
    (np.zeros((2, 6)), "inputs have shape (2, 6); expected"),                 # no time axis: B steps of one sample
    (np.zeros((6, 0, 6)), "inputs have shape (6, 0, 6); expected"),
    (np.full((6, 2, 6), np.nan), "run_nir: inputs contain NaN or infinity"),
    ("abc", "inputs must be a numeric array [T, B, n_inputs], got str"),
])
@pytest.mark.parametrize("reader", ["snntorch", "norse"])
def test_run_nir_checks_its_inputs_against_the_graph(tmp_path, x, message, reader):
    """Inputs of another size were a reader's traceback; another T or no time axis ran silently into other
    logits; NaN gave a zero membrane."""
    from spikecl.errors import NumericalError
    from spikecl.export.nir_io import read_nir
    from spikecl.export.nir_readers import run_nir

    graph = read_nir(nir_file(tmp_path))
    with pytest.raises((ShapeError, NumericalError), match=re.escape(message)):
        run_nir(graph, x, reader)


def test_nir_logits_refuse_readout_values_of_another_shape(tmp_path):
    from spikecl.export.nir_io import read_nir
    from spikecl.export.nir_readers import nir_logits

    graph = read_nir(nir_file(tmp_path))
    assert nir_logits(graph, np.zeros((4, 2, 4))).shape == (2, 4)
    with pytest.raises(ShapeError, match=re.escape("have shape (2, 5); expected [B, 1 heads x 4 outputs]")):
        nir_logits(graph, np.zeros((4, 2, 5)))
    graph.metadata["n_heads"] = 2                      # metadata that disagrees with the graph: refused first
    with pytest.raises(ResultsError, match=re.escape("n_heads = 2 x n_outputs = 4 does not match the readout's 4")):
        nir_logits(graph, np.zeros((4, 2, 4)))


# --- the commands ---
def test_too_many_input_bits_name_the_remedy_as_the_caller_passes_it():
    with pytest.raises(ExportError, match=r"bounds vth to 6021\); lower QuantConfig\.input_bits, or"):   # its bias
        quantize(small_spec(), QuantConfig(input_bits=16))
    with command_line(), pytest.raises(ExportError, match=r"bounds vth to 6021\); lower --input-bits, or"):
        quantize(small_spec(), QuantConfig(input_bits=16))


@pytest.mark.parametrize("flag", [["--weight-bits", "4"], ["--samples", "10"], ["--max-drop", "5"], ["--force"]])
def test_nir_export_refuses_the_netx_options(tmp_path, capsys, flag):
    from spikecl.cli import main

    code = main(["export", str(tmp_path / "run.h5"), "-o", str(tmp_path / "net.nir"), "--format", "nir", *flag])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"{flag[0]} applies to netx exports" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["net.nir", "net.NIR"])
def test_a_nir_name_for_a_netx_file_is_refused(tmp_path, capsys, name):
    """A .nir name (in any case) for a netx file is refused in one line, writing nothing."""
    from spikecl.cli import main

    code = main(["export", str(tmp_path / "run.h5"), "-o", str(tmp_path / name)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "a .nir name for a netx (HDF5) file; pass --format nir" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_nir_graph_named_other_than_nir_is_refused(tmp_path, capsys):
    from spikecl.cli import main

    code = main(["export", str(tmp_path / "run.h5"), "-o", str(tmp_path / "net.h5"), "--format", "nir"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"-o {tmp_path / 'net.h5'}: a NIR graph is named .nir" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_max_drop_and_force_together_are_refused(tmp_path, capsys):
    from spikecl.cli import main

    code = main(["export", str(tmp_path / "run.h5"), "-o", str(tmp_path / "net.h5"), "--force", "--max-drop", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("--max-drop sets the accuracy check's limit, which --force lifts; pass one of "
                                      "them") and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["netx", "nir"])
def test_export_refuses_the_events_encoder_in_both_formats(tmp_path, monkeypatch, fmt):
    from spikecl.export import pipeline

    spec = dataclasses.replace(small_spec(), encoder="events")
    monkeypatch.setattr(pipeline, "load_trained", lambda source: spec)
    with pytest.raises(ExportError, match="encoder 'events': networks trained on event frames cannot be exported yet"):
        pipeline.export_file(tmp_path / "run.h5", tmp_path / "net.out", fmt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", [{"samples": 5}, {"calibration_samples": 3}, {"max_drop": 0.0},
                                    {"data_dir": "/nonexistent"}, {"quant": QuantConfig(weight_bits=2)}])
def test_a_nir_export_refuses_the_netx_options_from_python_as_the_cli_does(tmp_path, monkeypatch, option):
    from spikecl.export import pipeline

    monkeypatch.setattr(pipeline, "load_trained", lambda source: small_spec())
    with pytest.raises(ConfigError, match=f"{next(iter(option))} applies to netx exports; fmt = 'nir'"):
        pipeline.export_file(tmp_path / "run.h5", tmp_path / "net.nir", "nir", **option)
    assert list(tmp_path.iterdir()) == []
    pipeline.export_file(tmp_path / "run.h5", tmp_path / "net.nir", "nir")       # the defaults are no options
    assert (tmp_path / "net.nir").is_file()


def test_deploy_on_lava_names_a_missing_environment_before_any_work(tmp_path, monkeypatch):
    from spikecl.errors import DependencyError
    from spikecl.export import pipeline

    monkeypatch.setenv("SPIKECL_LAVA_PYTHON", str(tmp_path / "none" / "python"))
    monkeypatch.setattr(pipeline, "stream_samples", lambda *a, **k: pytest.fail("samples drawn before the check"))
    path = write_netx(tmp_path / "net.h5", quantize(small_spec()))
    with pytest.raises(DependencyError, match="the Lava environment is missing"):
        pipeline.deploy(path, "lava-sim")
    from spikecl.export import lava_client

    with pytest.raises(DependencyError, match=r"missing \(SPIKECL_LAVA_PYTHON = .*/none/python: no such file\); "
                                              "point SPIKECL_LAVA_PYTHON at that environment's python$"):
        lava_client.venv_python("SPIKECL_LAVA_PYTHON", ".venv-absent", "lava", "Lava")
    monkeypatch.delenv("SPIKECL_LAVA_PYTHON")
    monkeypatch.setattr(lava_client, "_checkout", lambda: None)          # an installed spikecl: no make, no .venv
    with pytest.raises(DependencyError, match=r"^the Lava environment is missing: install this spikecl and its Lava "
                                              r"side into a Python 3.10 environment \(from its checkout: pip install "
                                              r"\. \./hardware; or `make lava` there\) and set SPIKECL_LAVA_PYTHON to "
                                              "that environment's python$"):
        lava_client.venv_python("SPIKECL_LAVA_PYTHON", ".venv-absent", "lava", "Lava")


def test_the_runner_refuses_lava_dl_for_a_file_with_weight_exponents(tmp_path, monkeypatch, capsys):
    """A file written for spikecl's runner only (QuantConfig(exponents=True), marked lava_dl = False) would run as
    another network under lava-dl, which re-derives exponents: refused before lava-dl is looked for."""
    from spikecl.export.lava_client import write_inputs

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "hardware"))
    from spikecl_lava.runner import main

    net = quantize(small_spec(bias=0.0), QuantConfig(exponents=True, headroom=1000))
    assert any(layer.weight_exp for layer in net.layers)
    write_netx(tmp_path / "net.h5", net, lava_dl=False)
    write_inputs(tmp_path / "in.h5", encode(np.random.default_rng(0).random((4, 6)), net), None, None)
    code = main([str(tmp_path / "net.h5"), "--inputs", str(tmp_path / "in.h5"), "-o", str(tmp_path / "r.h5"),
                 "--lava-dl"])
    err = capsys.readouterr().err
    assert code == 2 and f"--lava-dl: {tmp_path / 'net.h5'} runs on spikecl's runner only: layer " in err
    assert "weight_exp" in err and err.count("\n") == 1


@pytest.mark.parametrize("input_bits", [8, 14])
def test_weight_exponents_keep_the_headroom_when_the_exponent_reaches_its_floor(input_bits):
    """With exponents, a small ideal scale clips the weight exponent at -8; the mantissas then shrink for the rest,
    so vth stays within 2**17 / headroom and a current of 20 thresholds neither wraps nor loses a spike."""
    w = np.full((2, 12), 20 / 12)
    w[1] = -0.1
    w[1, 0] = 2.0
    spec = NetworkSpec((LayerSpec("hidden0", w, None, 0.9, 1.0, "zero"),
                        LayerSpec("readout", np.array([[1.0, -1.0], [-1.0, 1.0]]), None, 0.9, 1.0, "none")),
                       4, "direct", 2)
    x = np.ones((1, 12))
    net = quantize(spec, QuantConfig(input_bits=input_bits, headroom=100, exponents=True))
    trace = fp.simulate(net, encode(x, net))
    assert net.layers[0].vth <= round(2**17 / 100) and trace.u_wraps.tolist() == [0, 0]
    float_spikes = float_forward(spec, encode_values(x, 4, "direct")).spikes[0]
    np.testing.assert_array_equal(trace.spikes[0][:, 0], float_spikes[:, 0])


def test_export_counts_and_reports_current_wraps(tmp_path):
    """A drive beyond the headroom wraps the 24-bit current (as on Loihi): export's metrics count the wraps per
    file's metrics hold the count (a number, as the reader requires) and its table warns, naming the remedy; a
    network without wraps gets no warning."""
    import io

    from spikecl.export.pipeline import accuracies, print_export

    w = np.full((2, 12), 20 / 12)
    w[1] = -0.1
    spec = NetworkSpec((LayerSpec("hidden0", w, None, 0.9, 1.0, "zero"),
                        LayerSpec("readout", np.array([[1.0, -1.0], [-1.0, 1.0]]), None, 0.9, 1.0, "none")),
                       4, "direct", 2)
    x, y = np.ones((3, 12)), np.zeros(3, np.int64)
    for headroom, wraps in ((8, 12), (100, 0)):
        net = quantize(spec, QuantConfig(input_bits=8, headroom=headroom, exponents=True))
        metrics = accuracies(spec, net, x, y, None)
        assert metrics["u_wraps"] == wraps
        out = io.StringIO()
        net = dataclasses.replace(net, metrics=metrics)
        print_export(net, out)
        warned = "warning: the 24-bit current wrapped 12 times on these samples" in out.getvalue()
        remedy = (f"export with QuantConfig.headroom above the {net.headroom:.4g} in effect (a smaller one changes "
                  "nothing)")
        assert warned == bool(wraps) and (remedy in out.getvalue()) == warned
        hidden = 100 * metrics["hidden_activation_sparsity"]       # the readout (never spiking) left out
        assert f"activation sparsity of the hidden layers {hidden:.1f}% (the readout left out)" in out.getvalue()
        if wraps:                                   # export refuses the drop naming the wraps, not the bits
            from spikecl.export.pipeline import check_accuracy_drop

            dropped = {**metrics, "float_accuracy": 1.0, "reference_accuracy": 0.5}
            with pytest.raises(ExportError, match=re.escape(f"(limit 3): the 24-bit current wrapped 12 times (a "
                                                            f"drive beyond the headroom turned negative); {remedy}")):
                check_accuracy_drop(dropped, 3.0, True, "test", net.headroom)
        write_netx(tmp_path / "net.h5", net, overwrite=True, lava_dl=False)
        assert read_netx(tmp_path / "net.h5").metrics["u_wraps"] == wraps


def test_the_wrap_remedy_names_the_headroom_of_the_layers_that_wrapped():
    """Two hidden layers: the second's mantissas cap its vth (headroom 516 in effect there) while the first wraps
    at 13.5. The remedy named 516 and said a smaller --headroom changes nothing; 100 (above 13.5) ends the wraps."""
    import io

    from spikecl.export.pipeline import accuracies, print_export

    w = np.full((2, 12), 20 / 12)
    w[1] = -0.1
    spec = NetworkSpec((LayerSpec("hidden0", w, None, 0.9, 1.0, "zero"),
                        LayerSpec("hidden1", np.array([[1.0, -1.0], [-1.0, 1.0]]), None, 0.9, 1.0, "zero"),
                        LayerSpec("readout", np.array([[1.0, -1.0], [-1.0, 1.0]]), None, 0.9, 1.0, "none")),
                       4, "direct", 2)
    x, y = np.ones((3, 12)), np.zeros(3, np.int64)
    net = quantize(spec, QuantConfig(input_bits=8, headroom=8, exponents=True))
    metrics = accuracies(spec, net, x, y, None)
    assert metrics["u_wraps"] > 0 and round(net.headroom) == 516 and round(metrics["u_wraps_headroom"], 2) == 13.49
    out = io.StringIO()
    with command_line():
        print_export(dataclasses.replace(net, metrics=metrics), out)
    assert "export with --headroom above the 13.49 in effect (a smaller one changes nothing)" in out.getvalue()
    dropped = {**metrics, "float_accuracy": 1.0, "reference_accuracy": 0.5}
    with pytest.raises(ExportError, match=r"QuantConfig\.headroom above the 13\.49 in effect"):
        pipeline.check_accuracy_drop(dropped, 3.0, True, "test", net.headroom)
    with command_line(), pytest.raises(ExportError, match=r"; export with --headroom above the 13\.49 in effect"):
        pipeline.check_accuracy_drop(dropped, 3.0, True, "test", net.headroom)
    fixed = quantize(spec, QuantConfig(input_bits=8, headroom=100, exponents=True))
    assert accuracies(spec, fixed, x, y, None)["u_wraps"] == 0


def test_a_wrap_at_the_readout_names_calibration_not_the_headroom():
    """The readout's scale comes from calibration, not --headroom; its wraps were blamed on --headroom, which
    changes nothing there."""
    import io

    from spikecl.export.pipeline import accuracies, print_export

    rng = np.random.default_rng(0)
    readout = 0.9 + 0.1 * rng.random((10, 256))
    spec = NetworkSpec((LayerSpec("hidden0", 0.1 * rng.standard_normal((256, 64)), np.full(256, 2.0), 0.9, 1.0,
                                  "zero"),
                        LayerSpec("readout", readout, np.zeros(10), 0.9, 1.0, "none")), 8, "direct", 10)
    x, y = rng.random((6, 64)), np.zeros(6, np.int64)
    net = quantize(spec, QuantConfig(readout_range=5.0))
    metrics = accuracies(spec, net, x, y, None)
    assert metrics["u_wraps"] == metrics["u_wraps_readout"] > 0 and "u_wraps_headroom" not in metrics
    remedy = (f"{metrics['u_wraps_readout']} of them at the readout, which no --headroom changes: its range comes "
              "from the calibration samples (--calibration-samples: more of them, or 0 for the weights' worst case)")
    out = io.StringIO()
    with command_line():
        print_export(dataclasses.replace(net, metrics=metrics), out)
    assert remedy in out.getvalue() and "larger --headroom" not in out.getvalue()
    dropped = {**metrics, "float_accuracy": 1.0, "reference_accuracy": 0.5}
    with command_line(), pytest.raises(ExportError, match=re.escape(f"turned negative); {remedy}, raise --max-drop, "
                                                                    "or --force")):
        pipeline.check_accuracy_drop(dropped, 3.0)
    in_python = (f"{metrics['u_wraps_readout']} of them at the readout, which no QuantConfig.headroom changes: its "
                 "range comes from the calibration samples (calibration_samples: more of them, or 0 for the weights' "
                 "worst case)")
    with pytest.raises(ExportError, match=re.escape(f"turned negative); {in_python}, raise max_drop, or "
                                                    "max_drop=None")):
        pipeline.check_accuracy_drop(dropped, 3.0)
    assert accuracies(spec, quantize(spec, QuantConfig()), x, y, None)["u_wraps"] == 0    # calibrated on the weights


def test_an_accuracy_drop_of_exactly_the_limit_is_accepted():
    """Export refuses a drop of *more* than --max-drop points: 75 % -> 50 % passes at 25, is refused at 24.9; 55 % ->
    52 % passes at 3 (100 * 0.55 - 100 * 0.52 is 3.000000000000007 in floating point); a refused drop shows the
    digits that put it above the limit."""
    metrics = {"samples": 4, "float_accuracy": 0.75, "reference_accuracy": 0.5}
    pipeline.check_accuracy_drop(metrics, 25.0)
    pipeline.check_accuracy_drop({"samples": 100, "float_accuracy": 0.55, "reference_accuracy": 0.52}, 3.0)
    with pytest.raises(ExportError, match=r"^quantised accuracy 51\.96 % is 3\.04 points below float 55\.00 % on 2500"):
        pipeline.check_accuracy_drop({"samples": 2500, "float_accuracy": 0.55, "reference_accuracy": 0.5196}, 3.0)
    with pytest.raises(ExportError, match=r"^quantised accuracy 50\.0 % is 25\.0 points below float 75\.0 % on 4 test "
                                          r"samples \(limit 24\.9\)"):
        pipeline.check_accuracy_drop(metrics, 24.9)


def test_export_measures_synops_on_samples_of_every_task():
    """SynOps per inference come from 100 samples spread over all of them (tasks are laid out one after another),
    not the first 100 (the first task's alone)."""
    from spikecl.export import energy, fixed_point
    from spikecl.export.pipeline import accuracies, spread

    assert spread(359, 100)[[0, -1]].tolist() == [0, 358] and len(spread(359, 100)) == 100
    assert spread(30, 100).tolist() == list(range(30))
    spec = small_spec()
    net = quantize(spec)
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.random((200, 6)) * 0.05, rng.random((200, 6))])      # task 1 drives far more
    metrics = accuracies(spec, net, x, np.zeros(400, np.int64), None)
    inputs = encode(x, net)[:, spread(400, 100)]
    expected = energy.fixed_measures(net, inputs, fixed_point.simulate(net, inputs).spikes)
    first = energy.fixed_measures(net, encode(x[:100], net), fixed_point.simulate(net, encode(x[:100], net)).spikes)
    key = next(k for k in expected if "effective" in k)
    assert metrics[key] == expected[key] != first[key]


def test_export_samples_take_an_equal_share_of_every_task(tmp_path):
    from spikecl.export.samples import stream_samples

    config = {"data": {"dataset": "digits"},
              "stream": {"kind": "split", "n_tasks": 3, "classes_per_task": 3, "scenario": "task"},
              "seed": 0}
    for n, shares in ((4, [2, 1, 1]), (7, [3, 2, 2]), (9, [3, 3, 3])):
        _, _, heads = stream_samples(config, n)
        assert np.bincount(heads, minlength=3).tolist() == shares


def test_export_calibrates_on_training_samples_and_measures_on_test_samples(tmp_path, monkeypatch):
    """The readout range comes from --calibration-samples of the train split; accuracy from --samples of the test."""
    config = {"data": {"dataset": "digits"},
              "stream": {"kind": "split", "n_tasks": 5, "classes_per_task": 2, "scenario": "class"}, "seed": 0}
    spec = dataclasses.replace(small_spec(widths=(64, 8, 10)), config=config)
    drawn, real = [], pipeline.stream_samples
    monkeypatch.setattr(pipeline, "load_trained", lambda source: spec)
    monkeypatch.setattr(pipeline, "stream_samples", lambda config, n, data_dir=None, split="test":
                        drawn.append((n, split)) or real(config, n, data_dir, split=split))
    (tmp_path / "run.h5").write_bytes(b"")
    _, net = pipeline.export_file(tmp_path / "run.h5", tmp_path / "net.h5", samples=5, calibration_samples=7,
                                  max_drop=None)
    assert drawn == [(7, "train"), (5, "test")] and net.metrics["samples"] == 5


@pytest.mark.parametrize("samples", [0, -3])
def test_deploy_refuses_fewer_than_one_sample_before_reading_the_network(tmp_path, samples):
    """deploy(samples=0) would measure accuracy on no samples (NaN): refused in one line, before any file is read."""
    with pytest.raises(ConfigError, match=f"^samples {samples}: expected at least 1$"):
        pipeline.deploy(tmp_path / "absent.h5", samples=samples)


def test_deploy_names_a_folder_and_a_checkpoint_for_what_they_are(tmp_path):
    from spikecl.export.pipeline import deploy

    with pytest.raises(ResultsError, match=re.escape(f"{tmp_path} is a folder, not a network file")):
        deploy(tmp_path)
    (tmp_path / "run.ckpt").write_bytes(b"PK")
    with pytest.raises(ResultsError, match=re.escape(f"{tmp_path / 'run.ckpt'} is a run checkpoint, not an exported "
                                                     f"network; export it first: spikecl export")):
        deploy(tmp_path / "run.ckpt")
    (tmp_path / "run.CKPT").write_bytes(b"PK")
    with pytest.raises(ResultsError, match="run.CKPT is a run checkpoint, not an exported network"):
        deploy(tmp_path / "run.CKPT")
    from spikecl.io import write_run

    results = write_run(tmp_path / "finetune-seed0.h5", "continual", {"name": "x"})
    with pytest.raises(ResultsError, match=re.escape(f"{results} is a results file, not an exported network; export "
                                                     f"it first: spikecl export {results} -o net.h5")):
        deploy(results)
    part = write_run(tmp_path / "stress_C5_M6_k2.h5", "ca3", {"name": "x"})    # export refuses it: say what exports
    with pytest.raises(ResultsError, match=re.escape(f"{part} is a ca3 results file, not an exported network (a CA3 "
                                                     "memory exports from its experiment file: spikecl export "
                                                     "models/ca3_cam.toml -o ca3.h5)")):
        deploy(part)


def test_weights_too_small_even_at_the_lowest_exponent_name_the_remedy_that_applies():
    spec = NetworkSpec((LayerSpec("hidden0", np.full((2, 12), 1e-4), None, 0.9, 1.0, "zero"),
                        LayerSpec("readout", np.eye(2), None, 0.9, 1.0, "none")), 4, "direct", 2)
    with pytest.raises(ExportError, match=r"^layer hidden0: every weight rounds to 0 even at weight_exp -8 \(the "
                                          r"weights are too small for the threshold\); lower QuantConfig\.headroom "
                                          r"or QuantConfig\.input_bits$"):
        quantize(spec, QuantConfig(headroom=1000, exponents=True))
    with command_line(), pytest.raises(ExportError, match=r"\); lower --headroom or --input-bits$"):
        quantize(spec, QuantConfig(headroom=1000, exponents=True))


def test_weights_that_round_to_zero_only_at_fewer_weight_bits_name_weight_bits():
    spec = NetworkSpec((LayerSpec("hidden0", np.full((2, 12), 0.5), None, 0.9, 10.0, "zero"),
                        LayerSpec("readout", np.eye(2), None, 0.9, 1.0, "none")), 4, "direct", 2)
    quantize(spec, QuantConfig(weight_bits=8))
    with command_line(), pytest.raises(ExportError, match=r"^layer hidden0: every weight rounds to 0 on the 3-bit "
                                                        r"grid \(steps of 32\); raise --weight-bits \(at 8 bits they "
                                                        r"do not\), or keep them and lower --input-bits or --headroom "
                                                        r"\(the graded input's scale holds the mantissas small\)$"):
        quantize(spec, QuantConfig(weight_bits=3))
    with pytest.raises(ExportError, match=r"\(steps of 32\); raise QuantConfig\.weight_bits \(at 8 bits they do "
                                          r"not\), or keep them and lower QuantConfig\.input_bits or "
                                          r"QuantConfig\.headroom \(the graded"):
        quantize(spec, QuantConfig(weight_bits=3))
    assert quantize(spec, QuantConfig(weight_bits=3, input_bits=4)).layers[0].num_weight_bits == 3   # as it says


def test_a_conv_layer_whose_weights_round_to_zero_is_not_told_to_use_exponents():
    """Lava's Conv applies no weight exponent, so QuantConfig(exponents=True) cannot help a conv layer."""
    from spikecl.export.quantize import quantize_hidden
    from spikecl.export.spec import ConvGeometry

    conv = LayerSpec("conv0", np.full((2, 1, 3, 3), 1e-7), None, 0.9, 1.0, "zero",
                     conv=ConvGeometry((1, 4, 4), (2, 4, 4), 1, 1))
    for exponents in (False, True):
        with command_line(), pytest.raises(ExportError, match=r"^layer conv0: every weight rounds to 0 \(Lava's Conv "
                                                            r"applies no weight exponent; .*\); lower --input-bits "
                                                            r"or --headroom$"):
            quantize_hidden(conv, QuantConfig(exponents=exponents), 8)
    with pytest.raises(ExportError, match=r"\); lower QuantConfig\.input_bits or QuantConfig\.headroom$"):
        quantize_hidden(conv, QuantConfig(), 8)


def test_weights_rounding_to_zero_under_a_large_bias_are_told_the_bias_bounds_vth():
    """A large bias (e.g. a folded stream.standardize with its mean outside [0, 1]) caps vth: --headroom cannot help
    then (it was the advice), --input-bits can."""
    from spikecl.export.quantize import quantize_hidden

    layer = LayerSpec("hidden0", np.full((3, 64), 0.1), np.full(3, -40.0), 0.9, 1.0, "zero")
    with pytest.raises(ExportError, match=r"^layer hidden0: every weight rounds to 0 without a weight exponent \(its "
                                          r"bias, up to 40 thresholds a step, e.g. a folded stream.standardize, bounds "
                                          r"vth to 102\); lower QuantConfig\.input_bits, or keep weight "
                                          r"exponents"):
        quantize_hidden(layer, QuantConfig(), 8)
    with command_line(), pytest.raises(ExportError, match="lower --input-bits, or keep weight exponents"):
        quantize_hidden(layer, QuantConfig(headroom=1.0), 8)
    assert quantize_hidden(layer, QuantConfig(input_bits=1), 1).weight.max() == 10             # 102 / 1 * 0.1


@pytest.mark.parametrize("changes, message", [
    ({"weight_bits": 4.5}, r"weight_bits = 4\.5: expected an integer"),
    ({"weight_bits": True}, "weight_bits = True: expected an integer"),
    ({"input_bits": "8"}, "input_bits = '8': expected an integer"),
    ({"headroom": "2"}, "headroom = '2': expected a number"),
    ({"headroom": float("nan")}, "headroom = nan: expected 1 .. 131072"),
    ({"readout_range": [1.0]}, r"readout_range = \[1\.0\]: expected a number"),
    ({"exponents": "no"}, "exponents = 'no': expected True or False")])
def test_quantisation_settings_of_the_wrong_type_are_one_line_errors(changes, message):
    with pytest.raises(ExportError, match=message):
        QuantConfig(**changes)
    assert QuantConfig(weight_bits=np.int64(4), headroom=2, exponents=np.bool_(True)).weight_bits == 4


@pytest.mark.parametrize("shape", [(0, 64), (3,), (), (2, 0)])
def test_encoding_no_samples_or_no_values_is_a_shape_error(shape):
    with pytest.raises(ShapeError, match=re.escape(f"samples have shape {shape}; expected [B, ...]")):
        encode_values(np.zeros(shape), 4, "direct")


# --- outputs a class-incremental stream never made active ---
LEFT_OUT = {"data": {"dataset": "digits"}, "seed": 0,
            "stream": {"kind": "split", "scenario": "class", "n_tasks": 2, "classes_per_task": 3}}


@pytest.mark.parametrize("stream, active", [
    ({"kind": "split", "scenario": "class", "n_tasks": 2, "classes_per_task": 3}, 6),
    ({"kind": "split", "scenario": "class", "n_tasks": 3}, 9),          # recorded before classes_per_task: 10 // 3
    ({"kind": "split", "scenario": "class", "n_tasks": 5}, None),
    ({"kind": "split", "scenario": "task", "n_tasks": 2, "classes_per_task": 3}, None),
    ({"kind": "permuted", "scenario": "class", "n_tasks": 2}, None)])
def test_the_outputs_a_training_stream_made_active_are_read_from_its_config(stream, active):
    from spikecl.export.float_model import trained_outputs

    got = trained_outputs({"data": {"dataset": "digits"}, "stream": stream}, 10)
    assert (got is None) if active is None else got.tolist() == [k < active for k in range(10)]


@pytest.mark.parametrize("kind", ["permuted", "rotated"])
def test_a_permuted_or_rotated_class_incremental_checkpoint_stopped_early_decodes_among_the_tasks_it_trained(kind):
    """Each task adds a block of the dataset's 10 classes: after 1 of 3 tasks only outputs 0..9 of 30 had trained
    (the run predicted among them), but the export took all 30 as active."""
    from spikecl.export.float_model import trained_outputs

    config = {"data": {"dataset": "digits"}, "stream": {"kind": kind, "scenario": "class", "n_tasks": 3}}
    assert trained_outputs({**config, "tasks_trained": 1}, 30).tolist() == [k < 10 for k in range(30)]
    assert trained_outputs({**config, "tasks_trained": 3}, 30) is None and trained_outputs(config, 30) is None


def test_outputs_a_class_incremental_stream_never_made_active_are_never_predicted(tmp_path):
    """A class-incremental split stream that leaves classes out trains and evaluates with their outputs masked; the
    float model, the fixed-point reference (hence Lava's runner, which decodes with it), a netx file read back and
    our NIR reader decode the same way: the untrained outputs never win, however large they are."""
    pytest.importorskip("nir")
    from spikecl.export.nir_io import read_nir, write_nir
    from spikecl.export.nir_readers import nir_logits

    spec = small_spec(widths=(6, 8, 10), bias=0.0, encoder="latency")
    readout = spec.readout
    bias = np.where(np.arange(10) < 6, 0.0, 50.0)                         # outputs 6..9 would always win
    spec = dataclasses.replace(spec, layers=(*spec.layers[:-1], dataclasses.replace(readout, bias=bias)),
                               config=LEFT_OUT)
    x = np.random.default_rng(1).random((30, 6))
    x_seq = encode_values(x, spec.num_steps, spec.encoder)
    unmasked = float_logits(dataclasses.replace(spec, config={}), x_seq)
    assert set(np.argmax(unmasked, 1)) <= {6, 7, 8, 9}
    masked = float_logits(spec, x_seq)
    assert np.isneginf(masked[:, 6:]).all() and np.array_equal(masked[:, :6], unmasked[:, :6])
    net = read_netx(write_netx(tmp_path / "net.h5", quantize(spec)))
    inputs = encode(x, net)
    assert fp.predict(net, inputs).max() < 6
    graph = read_nir(write_nir(tmp_path / "net.nir", spec))
    assert np.isneginf(nir_logits(graph, np.ones((4, 30, 10)))[:, 6:]).all()


def test_a_checkpoint_of_a_class_incremental_run_stopped_between_tasks_decodes_among_the_classes_it_trained(
        tmp_path):
    """A run checkpoint written after task 1 of 5 (digits, two classes per task) had trained outputs 0 and 1 only,
    and its run evaluated among them: exported, it decodes among them too, and export measures and calibrates on
    the tasks it had trained, not on classes it never saw."""
    torch = pytest.importorskip("torch")
    from spikecl.continual.experiment import KIND
    from spikecl.export.float_model import trained_outputs
    from spikecl.export.samples import stream_samples
    from spikecl.export.spec import load_trained
    from spikecl.snn import LIFParams, build_mlp

    config = KIND.load({"data": {"dataset": "digits"}, "stream": {"kind": "split", "scenario": "class",
                                                                  "n_tasks": 5},
                        "network": {"hidden": [12], "num_steps": 4}}).to_dict()
    net = build_mlp(64, [12], 10, LIFParams())
    for done, active in ((1, 2), (3, 6), (5, None)):
        path = tmp_path / f"after{done}.ckpt"
        torch.save({"model": net.state_dict(), "config": config, "seed": 0, "progress": {"next_task": done}}, path)
        spec = load_trained(path)
        got = trained_outputs(spec.config, 10)
        assert (got is None) if active is None else got.tolist() == [k < active for k in range(10)]
        x, y, _ = stream_samples(spec.config, max_samples=60)
        assert set(y.tolist()) == set(range(active or 10)) and len(y) == 60
        logits = float_logits(spec, encode_values(x, spec.num_steps, spec.encoder))
        assert np.isneginf(logits[:, active or 10:]).all() and np.isfinite(logits[:, :active or 10]).all()


@pytest.mark.parametrize("method, active", [("finetune", 2), ("multitask", None)])
def test_a_run_checkpoint_records_the_outputs_its_training_made_active(tmp_path, monkeypatch, method, active):
    """A class-incremental run stopped after its first task: fine-tuning had trained outputs 0 and 1, multitask
    training (every task in the first turn, every row evaluated with all outputs) all ten; the checkpoint's
    progress says which, and its export decodes and measures accordingly."""
    torch = pytest.importorskip("torch")
    from spikecl.config import experiment_from_dict
    from spikecl.run_files import checkpoint_path
    from spikecl.continual.runner import ContinualRun
    from spikecl.export.float_model import trained_outputs
    from spikecl.export.samples import stream_samples
    from spikecl.export.spec import load_trained

    cfg = experiment_from_dict({
        "name": "stopped", "seeds": [0], "data": {"dataset": "digits"},
        "stream": {"kind": "split", "scenario": "class", "n_tasks": 5, "train_per_task": 40, "test_per_task": 20},
        "network": {"kind": "mlp", "hidden": [16], "num_steps": 2}, "train": {"epochs": 1, "batch_size": 20},
        "strategy": {"methods": [method]}})
    saved = ContinualRun.save_checkpoint

    def save_then_stop(self, path):
        saved(self, path)
        raise KeyboardInterrupt
    monkeypatch.setattr(ContinualRun, "save_checkpoint", save_then_stop)
    results = tmp_path / f"{method}-seed0.h5"
    with pytest.raises(KeyboardInterrupt):
        ContinualRun(cfg, method, 0).execute(results, progress_bar=False)
    state = torch.load(checkpoint_path(results), weights_only=True)
    assert state["progress"]["next_task"] == 1 and state["progress"]["stage"] == (0 if active else 4)
    del state["progress"]["stage"]
    torch.save(state, tmp_path / "old.ckpt")               # as checkpoints were written before they kept the stage
    for path in (checkpoint_path(results), tmp_path / "old.ckpt"):
        spec = load_trained(path)
        got = trained_outputs(spec.config, 10)
        assert (got is None) if active is None else got.tolist() == [k < active for k in range(10)]
        assert set(stream_samples(spec.config)[1].tolist()) == set(range(active or 10))


def test_the_export_side_knows_every_built_in_method_that_trains_ahead():
    """Export reads old checkpoints without importing the strategies: its list must be theirs."""
    pytest.importorskip("torch")
    from spikecl.continual.strategies import REGISTRY, strategy_class
    from spikecl.export.spec import TRAINS_AHEAD

    assert {name for name in REGISTRY if strategy_class(name).trains_ahead} == set(TRAINS_AHEAD)


@pytest.mark.parametrize("value", ["2", -1, 0, 1.5, 6, None, True])
def test_a_damaged_count_of_tasks_trained_is_named_not_read_as_every_task(tmp_path, value):
    """An exported file whose config holds tasks_trained outside 1..n_tasks (or not a whole number) is refused in
    one line on reading (netx, NIR) and on use, rather than decoded among other outputs than it trained."""
    from spikecl.export.float_model import trained_outputs

    config = {**LEFT_OUT, "stream": {**LEFT_OUT["stream"], "n_tasks": 5, "classes_per_task": 2},
              "tasks_trained": value}
    message = re.escape(f"the stored config's tasks_trained = {value!r} is not a number of tasks from 1 to the "
                        "stream's 5; the file is damaged")
    with pytest.raises(ResultsError, match=f"{message}$"):
        trained_outputs(config, 10)
    path = write_netx(tmp_path / "net.h5", dataclasses.replace(quantize(small_spec(widths=(6, 8, 10))),
                                                                 config=config))
    with pytest.raises(ResultsError, match=f"{message}$"):
        read_netx(path)
    pytest.importorskip("nir")
    from spikecl.export.nir_io import read_nir, write_nir

    nir_path = write_nir(tmp_path / "net.nir", dataclasses.replace(small_spec(widths=(6, 8, 10)), config=config))
    with pytest.raises(ResultsError, match=f"^{re.escape(str(nir_path))}: {message}$"):
        read_nir(nir_path)


def test_a_readout_whose_weights_round_to_zero_names_its_range_not_the_hidden_layers_remedies():
    """The readout receives spikes: its scale comes from its range (about T x the largest logit), which
    --input-bits and --headroom do not change, so the error names the range, the steps and what does help."""
    spec = small_spec(widths=(6, 8, 3), steps=6, bias=0.0)
    with command_line(), pytest.raises(ExportError, match=r"^layer readout: every weight rounds to 0 without a "
                                                        r"weight exponent \(the readout range 1e\+09, .* over the 6 "
                                                        r"steps,") as caught:
        quantize(spec, QuantConfig(readout_range=1e9))
    assert "--headroom" not in str(caught.value) and "--input-bits" not in str(caught.value)
    assert "(it comes from --calibration-samples, or" in str(caught.value)
    with pytest.raises(ExportError, match=r"\(it comes from calibration_samples, or from the weights' worst case"):
        quantize(spec, QuantConfig(readout_range=1e9))


def test_export_names_the_split_it_measured_and_read_nir_names_a_folder(tmp_path):
    import io

    from spikecl.export.nir_io import read_nir
    from spikecl.export.pipeline import evaluated_split, print_export

    assert evaluated_split({"data": {"eval_split": "validation"}}) == "validation"
    assert evaluated_split({"data": {}}) == evaluated_split({}) == "test"
    net = dataclasses.replace(quantize(small_spec()), config={"data": {"eval_split": "validation"}},
                              metrics={"samples": 5, "float_accuracy": 0.6, "reference_accuracy": 0.6,
                                       "prediction_agreement": 1.0, "readout_clips": 7, "dense_synops": 1.0,
                                       "effective_acs": 1.0, "effective_macs": 1.0})
    out = io.StringIO()
    print_export(net, out)
    assert "accuracy on 5 validation samples" in out.getvalue()
    assert "the readout's 24-bit voltage was cut 7 times on these samples" in out.getvalue()
    pytest.importorskip("nir")
    with pytest.raises(ResultsError, match=f"^{re.escape(str(tmp_path))} is a folder; name a NIR file$"):
        read_nir(tmp_path)


def test_export_metrics_count_readout_clips_not_a_hidden_layers_saturated_voltage():
    """A hidden voltage held at its 24-bit floor (42 times here, no spike changed) is not a readout clip."""
    w = np.full((2, 12), -1.0)
    w[:, 0] = 2.0
    spec = NetworkSpec((LayerSpec("hidden0", w, None, 1.0, 1.0, "zero"),
                        LayerSpec("readout", np.array([[1.0, -1.0], [-1.0, 1.0]]), None, 0.9, 1.0, "none")),
                       8, "direct", 2)
    x, y = np.ones((3, 12)), np.zeros(3, np.int64)
    net = quantize(spec, QuantConfig(headroom=16))
    wraps, clips = np.zeros(2, np.int64), np.zeros(2, np.int64)
    fp.predict(net, encode(x, net), None, wraps=wraps, clips=clips)
    assert clips.tolist() == [42, 0] and wraps.tolist() == [0, 0]
    assert pipeline.accuracies(spec, net, x, y, None)["readout_clips"] == 0


def test_readout_clips_count_the_decoded_outputs_only():
    """``readout_clips`` counts the readout steps cut (saturated, or reset at the top) on the outputs compared: an
    output the stream never trained, or another task's head, may saturate without a warning; a decoded one counts."""
    from spikecl.export.pipeline import accuracies

    def readout(n_heads, n_outputs):
        w = np.array([[0.2] * 4, [8.0] * 4])  # output 1 drives 40x harder than output 0
        spec = NetworkSpec((LayerSpec("readout", w, None, 0.5, 1.0, "none"),), 6, "direct", n_outputs, n_heads)
        return spec, quantize(spec, QuantConfig(readout_range=6 * 0.8 * 0.1 * 3))  # output 0's range, 3x over

    x, y = np.full((5, 4), 0.1), np.zeros(5, np.int64)
    spec, net = readout(1, 2)
    trace = fp.simulate(net, encode(x, net))
    assert trace.u_wraps.tolist() == [0] and trace.v_clips.tolist() == [5]
    assert trace.readout_cuts.tolist() == [[0, 1]] * 5
    assert accuracies(spec, net, x, y, None)["readout_clips"] == 5
    class_il = {"stream": {"kind": "split", "scenario": "class", "n_tasks": 2, "classes_per_task": 1},
                "tasks_trained": 1}
    assert accuracies(spec, dataclasses.replace(net, config=class_il), x, y, None)["readout_clips"] == 0
    spec, net = readout(2, 1)
    for head, cut in ((0, 0), (1, 5)):
        assert accuracies(spec, net, x, y, np.full(5, head))["readout_clips"] == cut


def test_deploy_of_a_network_without_its_training_config_names_the_runner(tmp_path):
    """deploy draws its samples from the training stream a file records; a file without one is told where to run
    samples of one's own (deploy has no option for them)."""
    from spikecl.export.pipeline import deploy

    path = write_netx(tmp_path / "net.h5", quantize(small_spec()))
    with pytest.raises(ConfigError, match=r"^the exported network carries no training config \(data, stream\) to "
                                          r"draw samples from; run it on samples of your own with the Lava runner: "
                                          r"python -m spikecl_lava.runner NET --inputs FILE -o RUN.h5"):
        deploy(path)


@pytest.mark.parametrize("call, message", [
    (lambda spec, net: write_netx("n.h5", spec), "write_netx: expected a FixedNetwork, got NetworkSpec; it writes a "
                                                 "quantised network: quantize(spec) first"),
    (lambda spec, net: __import__("spikecl.export.nir_io", fromlist=["write_nir"]).write_nir("n.nir", net),
     "write_nir: expected a NetworkSpec, got FixedNetwork; a NIR graph is written from the float network"),
    (lambda spec, net: quantize(spec, {"weight_bits": 8}), "quantize: cfg: expected a QuantConfig, got dict"),
    (lambda spec, net: quantize(net), "quantize: spec: expected a NetworkSpec, got FixedNetwork"),
    (lambda spec, net: __import__("spikecl.export.resources", fromlist=["partition"]).partition(net, "loihi2"),
     "partition: limits: expected a CoreLimits, got str; preset('loihi2'), say"),
    (lambda spec, net: __import__("spikecl.export.resources", fromlist=["partition"]).partition(
        spec, __import__("spikecl.export.resources", fromlist=["preset"]).preset("loihi2")),
     "the network: expected a FixedNetwork, got NetworkSpec"),
    (lambda spec, net: __import__("spikecl.export.fixed_point", fromlist=["predict"]).predict(
        net, np.zeros((net.num_steps, 2, net.n_inputs), np.int64), batch_size=0),
     "predict: batch_size must be a whole number >= 1, got 0"),
])
def test_export_entry_points_name_the_network_they_take(tmp_path, monkeypatch, call, message):
    """A float network where a quantised one goes (or the reverse), a dict for a QuantConfig, a preset's name for
    its limits: one line naming what the function takes, never an AttributeError from inside."""
    from spikecl.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    spec = small_spec()
    with pytest.raises(ConfigError, match=re.escape(message)):
        call(spec, quantize(spec))


def test_predict_takes_a_list_as_simulate_does():
    from spikecl.export.fixed_point import predict

    net = quantize(small_spec())
    x = np.zeros((net.num_steps, 3, net.n_inputs), np.int64)
    assert predict(net, x.tolist()).tolist() == predict(net, x).tolist()


def test_a_large_compressed_nir_graph_of_another_tool_reads(tmp_path):
    """NIR gzips its datasets: 4 million weights of an identity take 89 KB on disk and are a valid graph, not a
    damaged one; only the declared values count."""
    nir = pytest.importorskip("nir")
    from spikecl.export.nir_io import read_nir

    n = 2000
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([n])),
                                "fc": nir.Linear(weight=np.eye(n, dtype=np.float64)),
                                "output": nir.Output(output_type=np.array([n]))},
                         edges=[("input", "fc"), ("fc", "output")])
    path = tmp_path / "other.nir"
    nir.write(path, graph)
    assert path.stat().st_size < 1_000_000
    assert read_nir(path).nodes["fc"].weight.shape == (n, n)


@pytest.mark.parametrize("where, value, message", [
    ("node/metadata/num_steps", 0, "metadata num_steps = 0 must be an integer in 1.."),
    ("node/nodes/lif0/w_in", np.zeros(8), "node 'lif0': w_in must be positive"),
])
def test_a_nir_file_with_zero_steps_or_a_zero_input_weight_is_refused(tmp_path, where, value, message):
    """num_steps = 0 would average the readout over no steps (NaN logits); w_in = 0 cuts every input of a layer."""
    from spikecl.export.nir_io import read_nir

    path = nir_file(tmp_path, lambda f: _set(f, where, value))
    with pytest.raises(ResultsError, match=re.escape(message)):
        read_nir(path)


def test_a_nir_graph_carries_each_hidden_layers_own_threshold():
    """network.threshold = 0.5 must reach NIR's v_threshold (the readout keeps its never-reached threshold)."""
    pytest.importorskip("nir")
    from spikecl.export.nir_io import READOUT_THRESHOLD, to_nir

    spec = small_spec(widths=(6, 8, 5, 4))
    spec = dataclasses.replace(spec, layers=tuple(dataclasses.replace(layer, threshold=0.5) if layer.name != "readout"
                                                  else layer for layer in spec.layers))
    graph = to_nir(spec)
    assert np.all(graph.nodes["lif0"].v_threshold == 0.5) and np.all(graph.nodes["lif1"].v_threshold == 0.5)
    assert np.all(graph.nodes["readout"].v_threshold == READOUT_THRESHOLD)


def test_api_edges_of_the_export_side_are_one_line_errors():
    """float_forward of the wrong input width (a raw numpy matmul error), encode_values of 0 or 3.0 steps (an empty
    array, a TypeError) and initial_rows of more rows than directions left (fewer rows came back)."""
    from spikecl.export.hlop_graph import initial_rows

    spec = small_spec()
    with pytest.raises(ShapeError, match=r"^inputs have shape \(2, 3, 5\); expected \[T, B, 6\]$"):
        float_forward(spec, np.ones((2, 3, 5)))
    for steps in (0, 3.0, -1):
        with pytest.raises(ExportError, match=rf"^num_steps = {steps!r} must be an integer in 1\.\."):
            encode_values(np.full((2, 4), 0.5), steps, "direct")
    assert initial_rows(4, 6, np.eye(6)[:2]).shape == (4, 6)
    with pytest.raises(ShapeError, match="^5 new rows cannot be orthonormal and orthogonal to 2 old ones in 6 "):
        initial_rows(5, 6, np.eye(6)[:2])
    with pytest.raises(ShapeError, match=r"^old rows have shape \(2, 5\); expected \[k_old, 6\]$"):
        initial_rows(1, 6, np.eye(5)[:2])


def test_exported_files_under_a_file_size_limit_are_one_line_errors_leaving_nothing(tmp_path):
    """netx, NIR and learning-graph files were written by libhdf5 straight to disk: a full disk or a file-size limit
    gave hundreds of lines of h5py tracebacks and then a segmentation fault (a graph's temporary file left behind).
    Each is now built in memory and written in one go, as results files are: one line, no file, no temporary."""
    import subprocess
    import sys

    code = f"""
import resource, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_export_edges import small_spec
from spikecl.errors import SpikeCLError
from spikecl.export.quantize import quantize
from spikecl.export.netx import write_netx
from spikecl.export.nir_io import write_nir
from spikecl.export.hlop_graph import make_graph, write_graph
import numpy as np
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
writers = {{"net.h5": lambda p: write_netx(p, quantize(small_spec())), "net.nir": lambda p: write_nir(p, small_spec()),
           "graph.h5": lambda p: write_graph(p, make_graph(np.random.default_rng(0).random((40, 6)), 2))}}
for name, write in writers.items():
    try:
        write({str(tmp_path)!r} + "/" + name)
        print(name, "written")
    except SpikeCLError as exc:
        print(name, "refused", len(str(exc).splitlines()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:3] == ["net.h5 refused 1", "net.nir refused 1", "graph.h5 refused 1"], \
        done.stdout + done.stderr[-2000:]
    assert not list(tmp_path.iterdir())


def test_spike_agreement_counts_spikes_not_silent_steps():
    """Equal bits called a layer that never fired 83 % equal to one firing at 17 %; now shared / fired by either."""
    from spikecl.export.pipeline import spike_agreement

    fired = np.zeros((100, 6), np.int8)
    fired[:17, 0] = 1
    assert spike_agreement(np.zeros_like(fired), fired) == 0.0
    assert spike_agreement(fired, fired) == 1.0 and spike_agreement(np.zeros(5), np.zeros(5)) == 1.0
    shifted = np.roll(fired, 1, axis=0)
    assert spike_agreement(fired, shifted) == pytest.approx(16 / 18)



@pytest.mark.parametrize("mark, message", [
    (True, r"marked lava_dl = true, but lava-dl's netx would run another network than spikecl's runner: layer "
           r"hidden0: weight_exp -?\d+ has no netx key \(lava-dl re-derives exponents from the weights\); the file "
           r"is damaged or edited$"),
    ("yes", r"/spikecl attribute lava_dl = 'yes' is not true or false; the file is damaged$")])
def test_a_netx_file_may_not_claim_lava_dl_runs_it_where_it_would_not(tmp_path, mark, message):
    """A file for spikecl's runner only (weight exponents), edited to say lava_dl = true, was read and run as one
    network by spikecl and as another by lava-dl's own loader; a string mark was accepted."""
    net = quantize(small_spec(bias=0.0), QuantConfig(exponents=True, headroom=1000))
    assert net.layers[0].weight_exp
    path = write_netx(tmp_path / "net.h5", net, lava_dl=False)
    read_netx(path)
    with edited(path) as f:
        f["spikecl"].attrs["lava_dl"] = mark
    with pytest.raises(ResultsError, match=f"^{re.escape(str(path))}: {message}"):
        read_netx(path)


@pytest.mark.parametrize("config, message", [
    ({"network": {"numsteps": 6}}, r"config\['network'\]: unknown key 'numsteps'; did you mean 'num_steps'\?$"),
    ({"num_steps": 6}, r"config\['num_steps'\]: a network setting outside config\['network'\], where it would be "
                       r"ignored; give \{'network': \{'num_steps': ...\}\}$"),
    ({"network": 4}, r"config\['network'\] must be a table of network settings, got int$")])
def test_spec_from_state_refuses_settings_it_would_not_read(config, message):
    """A hand-made config for a network trained in one's own loop: a misspelt or misplaced num_steps exported at
    T = 4 without a word."""
    from spikecl.export import spec_from_state
    from spikecl.snn import LIFParams, build_mlp

    state = build_mlp(8, [4], 3, neuron=LIFParams(reset="zero")).state_dict()
    with pytest.raises(ExportError, match=message):
        spec_from_state(state, config)
    assert spec_from_state(state, {"kind": "continual", "network": {"num_steps": 6}}).num_steps == 6


@pytest.mark.parametrize("recorded, message", [
    ({"threshold": 2.0, "beta": 0.5}, "layer hidden0: its neurons hold beta 0.9, the config records network.beta = 0.5"),
    ({"threshold": 2.0}, "layer hidden0: its neurons hold threshold 1, the config records network.threshold = 2.0"),
    ({"reset": "subtract"}, "layer hidden0: its neurons hold reset 'zero', the config records network.reset = "
                            "'subtract'")])
def test_spec_from_state_refuses_a_recorded_neuron_setting_its_buffers_contradict(recorded, message):
    """The buffers of a network built with other neurons than the hand-made config records ran the export while the
    file recorded the config's beta, threshold or reset; a config that records the built ones, or none, exports."""
    from spikecl.export import spec_from_state
    from spikecl.snn import LIFParams, build_mlp

    state = build_mlp(8, [4], 3, neuron=LIFParams(reset="zero")).state_dict()
    with pytest.raises(ExportError, match=f"^{re.escape(message)}; the file would record one and run the other"):
        spec_from_state(state, {"network": {"num_steps": 4, **recorded}})
    for network in ({}, {"beta": 0.9, "threshold": 1, "reset": "zero"}):
        layers = spec_from_state(state, {"network": {"num_steps": 4, **network}}).layers
        assert [(round(lay.beta, 6), lay.threshold, lay.reset) for lay in layers] == [(0.9, 1.0, "zero"),
                                                                                      (0.9, 1.0, "none")]



def test_export_refuses_a_file_an_overwrite_is_to_replace_and_names_a_checkpoint_removed_as_it_read(
        tmp_path, monkeypatch):
    """A results file marked .replacing holds the old settings' network, which the report refuses: export refuses
    it too; a checkpoint its run removed (finished) between the check and the read is said to be gone, not
    "not a readable checkpoint (FileNotFoundError)"."""
    torch = pytest.importorskip("torch")
    from spikecl import integrity
    from spikecl.continual.experiment import KIND
    from spikecl.export.spec import load_trained
    from spikecl.continual.results import ContinualResult, write_continual
    from spikecl.snn import LIFParams, build_mlp

    config = KIND.load({"data": {"dataset": "digits"}, "network": {"hidden": [12], "num_steps": 4}}).to_dict()
    net = build_mlp(64, [12], 10, LIFParams())
    model = {k: v.numpy() for k, v in net.state_dict().items()}
    results = write_continual(tmp_path / "finetune-seed0.h5", ContinualResult(
        "finetune", 0, config, np.full((11, 10), 0.5), np.zeros(0, np.int64), np.zeros(0, np.int64),
        np.zeros((0, 10)), np.ones(10), {"acc": 0.5}, model=model))
    assert load_trained(results).layers
    (tmp_path / "finetune-seed0.h5.replacing").write_text("")
    with pytest.raises(ResultsError, match=re.escape(f"{results} is still to be replaced by an --overwrite that did "
                                                     "not finish (its settings are the old ones)")):
        load_trained(results)
    link = tmp_path / "elsewhere" / "trained.h5"                   # named through a link: the mark beside its file
    link.parent.mkdir()
    link.symlink_to(results)
    with pytest.raises(ResultsError, match=re.escape(f"{link} is still to be replaced by an --overwrite")):
        load_trained(link)
    ckpt = tmp_path / "run.ckpt"
    torch.save({"model": net.state_dict(), "config": config, "seed": 0}, ckpt)
    check = integrity.archive_problem
    monkeypatch.setattr(integrity, "archive_problem", lambda path: ckpt.unlink() or check(path))
    with pytest.raises(ResultsError, match=re.escape(f"{ckpt} no longer exists: its run finished or was removed as "
                                                     "it was read")):
        load_trained(ckpt)


def test_snntorch_09s_nir_reader_is_refused_in_one_line(tmp_path, monkeypatch):
    """snnTorch 0.9, which ``spikecl[torch]`` allows, builds NIR's LIF neurons without a threshold: its graph failed
    deep in a forward pass (a TypeError); ``spikecl[export]`` asks for 1.0."""
    import snntorch

    from spikecl.errors import DependencyError
    from spikecl.export.nir_io import read_nir
    from spikecl.export.nir_readers import run_nir

    graph = read_nir(nir_file(tmp_path))
    monkeypatch.setattr(snntorch, "__version__", "0.9.0")
    with pytest.raises(DependencyError, match=re.escape("importing NIR needs snntorch >= 1.0 (found 0.9.0, whose "
                                                        "reader builds neurons without a threshold); install it with: "
                                                        "pip install 'spikecl[export]'")):
        run_nir(graph, np.zeros((6, 1, 6)), "snntorch")
    monkeypatch.undo()
    assert run_nir(graph, np.zeros((6, 1, 6)), "snntorch") is not None


def test_a_readout_whose_exponent_stops_at_minus_8_shrinks_its_mantissas_to_keep_the_voltage_in_range():
    """With weight exponents, a readout whose ideal exponent lies below -8 (small weights summed over a wide range)
    kept full-range mantissas at -8: its scale came out 18.8x the one that keeps the summed voltage below 2**22, so
    the worst-case input cut the 24-bit voltage 600 times and the decoded logit read -4.3 for 114. The mantissas
    now shrink for the rest, as a hidden layer's do."""
    from spikecl.export.quantize import ACT_SHIFT, UV_LIMIT, worst_case_readout_range

    weight = np.abs(np.random.default_rng(0).normal(0, 0.05, (10, 784)))
    spec = NetworkSpec((LayerSpec("readout", weight, None, 0.9, 1.0, "none"),), 8, "direct", 10)
    net = quantize(spec, QuantConfig(exponents=True))
    target = (UV_LIMIT // 2) / (2**ACT_SHIFT * worst_case_readout_range(spec.readout, 8))
    assert net.readout.weight_exp == -8 and net.readout.scale == pytest.approx(target, rel=1e-6)
    x = np.ones((2, 784))                                          # the worst case the range is sized for
    run = fp.simulate(net, encode(x, net))
    assert int(run.readout_cuts.sum()) == 0 and np.abs(run.readout_v).max() < 2**22
    float_mean = float_forward(spec, encode_values(x, 8, "direct", None)).readout_mem.mean(0)
    np.testing.assert_allclose(fp.logits(net, run.readout_v), float_mean, rtol=0.02)


def test_a_lava_side_that_exits_0_without_its_results_is_one_line(tmp_path, monkeypatch):
    """A Lava Python that exits 0 without writing its run file (SPIKECL_LAVA_PYTHON=/bin/true) ended `spikecl
    deploy` with a FileNotFoundError traceback; one that writes an incomplete file, with a KeyError. Both are one
    line naming the side, for the runner, the CA3 run and the HLOP learner alike."""
    import sys

    from spikecl.export import ca3_graph, hlop_graph, lava_client

    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\nexit 0\n")
    empty = tmp_path / "empty"                     # writes an HDF5 file without datasets where -o points
    empty.write_text(f"#!/bin/sh\nwhile [ \"$1\" != -o ]; do shift; done\n{sys.executable} -c "
                     "\"import h5py, sys; h5py.File(sys.argv[1], 'w').close()\" \"$2\"\n")
    for script in (silent, empty):
        script.chmod(0o755)
    net = write_netx(tmp_path / "net.h5", quantize(small_spec(bias=0.0)))
    for script, said in ((silent, r"exited without writing its results \(run\.h5\); is its Python spikecl's Lava "
                                  r"environment \(make lava\)\?$"),
                         (empty, r"wrote an unreadable or incomplete run\.h5 \(.*\)$")):
        monkeypatch.setenv("SPIKECL_LAVA_PYTHON", str(script))
        with pytest.raises(ResultsError, match="^the Lava runner " + said):
            lava_client.run_lava(net, np.zeros((6, 1, 6), dtype=np.int64))
        with pytest.raises(ResultsError, match="^the Lava CA3 run " + said):
            ca3_graph.run_lava(tmp_path / "graph.h5")
    monkeypatch.setenv("SPIKECL_LAVA_PYTHON", str(empty))
    with pytest.raises(ResultsError, match=r"^the Lava HLOP learner wrote an unreadable or incomplete learned\.h5"):
        hlop_graph.run_lava(tmp_path / "graph.h5")


def test_a_results_file_renamed_ckpt_is_said_to_be_hdf5(tmp_path):
    """Export goes by the suffix: a results file renamed .ckpt read 'not a readable checkpoint (IndexError)'; it now
    says the file holds HDF5 and to export it under its .h5 name. A damaged archive is not called HDF5."""
    from spikecl.export.spec import load_trained
    from spikecl.io import write_run

    renamed = tmp_path / "run.ckpt"
    write_run(tmp_path / "r.h5", "continual", {}).rename(renamed)
    with pytest.raises(ResultsError, match=r"run\.ckpt is not a readable checkpoint \(\w+\); it is an HDF5 file \(a "
                                           r"results file renamed \.ckpt\?\): export it under its \.h5 name$"):
        load_trained(renamed)
    renamed.write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(ResultsError, match=r"run\.ckpt is not a readable checkpoint \(\w+\)$"):
        load_trained(renamed)
