"""Documented export contracts at their edges: quantisation limits, the readout range, fixed-point input checks
and readout cuts, resource counts, netx bias and checksum."""

import numpy as np
import pytest

from spikecl.errors import ExportError
from spikecl.export import fixed_point as fp
from spikecl.export.float_model import readout_range
from spikecl.export.pipeline import calibrated
from spikecl.export.quantize import (UV_LIMIT, FixedLayer, QuantConfig, quantize, readout_gain,
                                     worst_case_readout_range)
from spikecl.export.spec import LayerSpec, NetworkSpec


@pytest.mark.parametrize("changes, message", [
    ({"weight_bits": 1}, "weight_bits = 1: Loihi's mixed-sign synapses hold 2 to 8 bits"),
    ({"headroom": 0.5}, r"headroom = 0\.5: expected 1 \.\. 131072"),
    ({"input_bits": 17}, "input_bits = 17: graded input spikes carry 1 to 16 bits"),
])
def test_quantisation_settings_just_outside_their_range_are_refused(changes, message):
    with pytest.raises(ExportError, match=message):
        QuantConfig(**changes)
    edge = {"weight_bits": 2, "headroom": 1.0, "input_bits": 16}          # the documented limits themselves pass
    key = next(iter(changes))
    assert getattr(QuantConfig(**{key: edge[key]}), key) == edge[key]


def _wide_readout(steps=10):
    """A readout-only network of 10 binary inputs: weights 0.5, bias 5 (the bias half the worst-case drive)."""
    readout = LayerSpec("readout", np.full((2, 10), 0.5), np.array([5.0, 5.0]), 0.5, 1.0, "none")
    return NetworkSpec((readout,), steps, "latency", 2)


def test_worst_case_readout_range_counts_the_bias():
    spec = _wide_readout()
    gain = readout_gain(0.5, 10)
    assert gain == pytest.approx(18.001953125)
    assert worst_case_readout_range(spec.readout, 10) == pytest.approx((10 * 0.5 + 5.0) * gain)   # 180.02


@pytest.mark.parametrize("cfg", [QuantConfig(), QuantConfig(exponents=True)])
def test_readout_voltage_stays_below_2_22_when_every_input_spikes_every_step(cfg):
    """The module promises the readout's summed voltage stays below 2**22 for the worst-case |sum mem|."""
    spec = _wide_readout()
    net = quantize(spec, cfg)
    trace = fp.simulate(net, np.ones((10, 1, 10), dtype=np.int64))
    assert np.abs(trace.readout_v).max() <= 2**22
    assert 2**6 * net.readout.scale * worst_case_readout_range(spec.readout, 10) <= 2**22 * (1 + 1e-12)


def test_an_explicit_readout_range_bounds_the_readout_scale():
    spec = _wide_readout()
    net = quantize(spec, QuantConfig(readout_range=1000.0))        # the range, not the weights, sets the scale
    assert 2**6 * net.readout.scale * 1000.0 <= 2**22 * (1 + 1e-12)
    assert net.readout.scale == pytest.approx(2**22 / (2**6 * 1000.0))           # 65.536


def test_the_calibrated_readout_range_is_the_largest_summed_or_single_step_membrane_times_1_5():
    """readout_range = 1.5 x max(|sum_t mem[t]|, |mem[t]|) on the calibration inputs."""
    readout = LayerSpec("readout", np.array([[1.0]]), None, 1.0, 1.0, "none")
    rising = NetworkSpec((readout,), 3, "direct", 1)
    assert readout_range(rising, np.ones((3, 1, 1))) == pytest.approx(9.0)                  # mem 1, 2, 3: sum 6
    swinging = NetworkSpec((readout,), 2, "direct", 1)
    assert readout_range(swinging, np.array([3.0, -6.0]).reshape(2, 1, 1)) == pytest.approx(4.5)   # mem 3, -3


def test_calibration_measures_the_readout_range_only_when_none_is_given():
    """An explicit QuantConfig.readout_range is kept; without one, calibration samples set it (1.5 x 3 steps x 1)."""
    readout = LayerSpec("readout", np.array([[1.0]]), None, 0.0, 1.0, "none")
    spec = NetworkSpec((readout,), 3, "direct", 1)
    x_cal = np.ones((2, 1))
    assert calibrated(spec, QuantConfig(readout_range=40.0), x_cal).readout_range == 40.0
    assert calibrated(spec, QuantConfig(), x_cal).readout_range == pytest.approx(4.5)
    assert calibrated(spec, QuantConfig(), None).readout_range is None


def test_the_threshold_mantissa_is_rounded_not_truncated():
    """vth = round(S * threshold): a bias of 0.8 thresholds bounds the scale to 4095 / 0.8 = 5118.75 -> vth 5119."""
    from spikecl.export.quantize import quantize_hidden

    layer = LayerSpec("hidden0", np.array([[0.5, -0.3], [0.2, 0.4]]), np.array([0.8, -0.1]), 0.5, 1.0, "zero")
    fixed = quantize_hidden(layer, QuantConfig(), 8)
    assert fixed.scale == pytest.approx(5118.75)
    assert fixed.vth == 5119
    assert fixed.bias_mant.tolist() == [4095, -512] and fixed.bias_exp == 6


def test_a_layer_whose_largest_weight_is_negative_reaches_the_mantissa_minus_256():
    """Mixed-sign 8-bit mantissas run from -256 to 254 (Lava's grid): the weight -1 beside 0.5 sets S_w = 256 / 1,
    so -1 -> -256, 0.5 -> 128, 0.25 -> 64, -0.75 -> -192 and vth = round(256 * 1.0), not the 254 of a range
    symmetric about 0."""
    from spikecl.export.quantize import quantize_hidden

    layer = LayerSpec("hidden0", np.array([[-1.0, 0.5], [0.25, -0.75]]), None, 0.9, 1.0, "zero")
    fixed = quantize_hidden(layer, QuantConfig(), 0)
    assert fixed.weight.tolist() == [[-256, 128], [64, -192]]
    assert (fixed.scale, fixed.vth, fixed.weight_exp) == (256.0, 256, 0)


def test_quantize_hidden_refuses_a_zero_threshold_in_one_line():
    """NetworkSpec refuses it too, but quantize_hidden is called on single layers: no ZeroDivisionError."""
    from spikecl.export.quantize import quantize_hidden

    layer = LayerSpec("hidden0", np.array([[0.5, -0.3], [0.2, 0.4]]), np.array([0.1, -0.1]), 0.5, 0.0, "zero")
    with pytest.raises(ExportError, match="^layer hidden0: threshold 0 must be positive$"):
        quantize_hidden(layer, QuantConfig(), 8)


def test_network_graph_counts_only_nonzero_weights_as_synapses_and_unique_weights():
    from spikecl.export.resources import network_graph

    hidden = LayerSpec("hidden0", np.array([[0.5, 0.0, -0.3], [0.0, 0.2, 0.4]]), None, 0.5, 1.0, "zero")
    readout = LayerSpec("readout", np.array([[0.3, -0.2]]), None, 0.5, 1.0, "none")
    net = quantize(NetworkSpec((hidden, readout), 4, "latency", 1))
    assert np.count_nonzero(net.layers[0].weight) == 4                 # the two zeros stay zero
    edge = network_graph(net).edges["input", "hidden0"]
    assert (edge["synapses"], edge["unique_weights"], edge["memory_bits"]) == (4, 4, 32)
    assert (edge["fan_in"], edge["fan_out"]) == (2, 2)


def test_effective_macs_count_nonzero_graded_inputs_not_their_values():
    """NeuroBench's effective MACs: one per synapse whose presynaptic value is nonzero, whatever that value."""
    from spikecl.export.resources import synaptic_operations

    hidden = LayerSpec("hidden0", np.array([[0.5, 0.0, -0.3], [0.1, 0.2, 0.4]]), None, 0.5, 1.0, "zero")
    readout = LayerSpec("readout", np.array([[0.3, -0.2]]), None, 0.5, 1.0, "none")
    net = quantize(NetworkSpec((hidden, readout), 4, "direct", 1))        # 8-bit graded input
    inputs = np.zeros((4, 2, 3), dtype=np.int64)
    inputs[:, 0, 0] = 255                    # sample 0: input 0 (fan-out 2) at every step, full scale
    inputs[:2, 1, 1] = 3                     # sample 1: input 1 (fan-out 1) at two steps, a small value
    trace = fp.simulate(net, inputs)
    ops = synaptic_operations(net, inputs, trace.spikes)
    assert ops["effective_macs"] == (4 * 2 + 2 * 1) / 2                 # 5.0 per sample
    assert ops["dense_synops"] == 4 * (6 + 2)
    assert ops["effective_acs"] == trace.spikes[0].sum() / 2            # hidden spikes x readout fan-out 1


def test_graded_dense_activation_wraps_the_int32_dot_product_before_the_exponent_shift():
    """Graded input: 'a dot product in int32 then shifted' (Lava's Dense): a sum past 2**31 wraps first."""
    layer = FixedLayer("hidden0", np.full((1, 256), 254, dtype=np.int32), -2, 8, 4095, 0, 100,
                       np.zeros(1, np.int32), 0, 1.0, input_bits=16)
    acc = 254 * 65535 * 256                                              # 4,261,478,400 > 2**31
    a = fp.dense_activation(layer, np.full((1, 256), 65535, dtype=np.int64))
    assert a.tolist() == [[(acc - 2**32) >> 2]]                          # -8,372,224 (not acc >> 2 = 1,065,369,600)


def test_negative_inputs_are_refused_like_too_large_ones():
    from spikecl.errors import ShapeError

    net = quantize(NetworkSpec((LayerSpec("readout", np.array([[0.3, -0.2]]), None, 0.5, 1.0, "none"),), 4,
                               "direct", 1))
    inputs = np.zeros((4, 1, 2), dtype=np.int64)
    inputs[0, 0, 0] = -1
    with pytest.raises(ShapeError, match=r"^inputs must lie in 0\.\.255, got -1\.\.0$"):
        fp.simulate(net, inputs)


def test_a_network_on_a_few_cores_needs_one_chip():
    from spikecl.export.resources import partition, preset, summary

    hidden = LayerSpec("hidden0", np.random.default_rng(0).normal(0, 0.3, (2000, 4)), None, 0.5, 1.0, "zero")
    readout = LayerSpec("readout", np.random.default_rng(1).normal(0, 0.3, (2, 2000)), None, 0.5, 1.0, "none")
    net = quantize(NetworkSpec((hidden, readout), 4, "latency", 2))
    assert [p.cores for p in partition(net, preset("loihi1"))] == [2, 1]      # 2,000 neurons, 1,024 per core
    totals = summary(net, preset("loihi1"))
    assert (totals["cores"], totals["chips"]) == (3, 1)


def _one_neuron_readout(vth=1, bias_mant=0, bias_exp=0, weight=254):
    from spikecl.export.quantize import FixedNetwork

    layer = FixedLayer("readout", np.array([[weight]], dtype=np.int32), 0, 8, 4095, 0, vth,
                       np.array([bias_mant], dtype=np.int32), bias_exp, 1.0, readout=True)
    return FixedNetwork((layer,), 3, "latency", 0, 1)


def test_a_readout_reset_at_the_top_counts_as_a_cut():
    """Trace.readout_cuts: the steps a readout voltage was 'saturated at either end, or reset at the top'."""
    net = _one_neuron_readout(vth=1)                      # 254 << 6 = 16,256 > 1 << 6: a spike (reset) every step
    trace = fp.simulate(net, np.ones((3, 1, 1), dtype=np.int64))
    assert trace.spikes[0][:, 0, 0].tolist() == [True, True, True] and trace.v_clips.tolist() == [0]
    assert trace.readout_cuts.tolist() == [[3]]
    clips = np.zeros(1, dtype=np.int64)
    fp.predict(net, np.ones((3, 1, 1), dtype=np.int64), clips=clips)
    assert clips.tolist() == [3]


def test_a_bias_netx_cannot_express_at_exponent_6_is_not_lava_dl_compatible():
    from spikecl.export.netx import lava_dl_refusal, netx_bias

    odd = _one_neuron_readout(bias_mant=1, bias_exp=0).readout          # 1 is not a multiple of 2**6
    assert netx_bias(odd) is None
    assert netx_bias(_one_neuron_readout(bias_mant=3, bias_exp=6).readout).tolist() == [3]
    assert netx_bias(_one_neuron_readout(bias_mant=1, bias_exp=7).readout).tolist() == [2]
    assert "bias exponent 0 does not fit netx's 13-bit bias" in lava_dl_refusal(_one_neuron_readout(bias_mant=1))


def test_the_network_file_crc_covers_attributes(tmp_path):
    """content_crc covers 'every dataset's path and bytes and every attribute': a changed encoder attribute (still a
    valid, consistent value) is a CRC error, not a silently different network."""
    import h5py

    from spikecl.errors import ResultsError
    from spikecl.export.netx import read_netx, write_netx

    hidden = LayerSpec("hidden0", np.array([[0.5, -0.3], [0.2, 0.4]]), None, 0.5, 1.0, "zero")
    readout = LayerSpec("readout", np.array([[0.3, -0.2]]), None, 0.5, 1.0, "none")
    path = write_netx(tmp_path / "net.h5", quantize(NetworkSpec((hidden, readout), 4, "latency", 1)))
    assert read_netx(path).encoder == "latency"
    with h5py.File(path, "r+") as f:
        f["spikecl"].attrs["encoder"] = "poisson"                       # another binary encoder: consistent
    with pytest.raises(ResultsError, match="is corrupt: its contents fail their CRC-32"):
        read_netx(path)


def _neuron(weight, dv, vth, bias_mant=0, bias_exp=0, du=4095, weight_exp=0):
    return FixedLayer("n", np.array([[weight]], dtype=np.int32), weight_exp, 8, du, dv, vth,
                      np.array([bias_mant], dtype=np.int32), bias_exp, 1.0)


def test_a_current_of_exactly_two_to_the_23_does_not_wrap():
    # Lava wraps u only where it exceeds 2**23 (u_raw > max_uv_val): 131072 << 6 = 2**23 stays as it is
    state, _, over = fp.lif_step(fp.zero_state((1,)), np.array([131072]), _neuron(1, 0, 131071))
    assert state.u.tolist() == [UV_LIMIT] and over.u_wraps.tolist() == [False]


def test_a_voltage_exactly_at_the_threshold_does_not_spike():
    # Lava's LIF spikes where v > vth << 6, strictly: an input of 200 with vth 200 puts v at 12800 = 200 << 6 and
    # keeps it (no spike, no reset); 201 crosses, spikes and resets v to 0
    for a_in, spiked, v in ((200, False, 12800), (201, True, 0)):
        state, spikes, _ = fp.lif_step(fp.zero_state((1,)), np.array([a_in]), _neuron(1, 0, 200))
        assert spikes.tolist() == [spiked] and state.v.tolist() == [v]


def test_the_voltage_saturates_at_minus_two_to_the_23_plus_one():
    # v is clipped to [-2**23 + 1, 2**23 - 1] (symmetric, as Lava's LIF): a bias of -2**24 saturates there
    state, _, over = fp.lif_step(fp.zero_state((1,)), np.array([0]), _neuron(1, 0, 100, bias_mant=-4096,
                                                                                 bias_exp=12))
    assert state.v.tolist() == [-UV_LIMIT + 1] and over.v_clips.tolist() == [True]


def test_a_conv_activation_wraps_to_signed_24_bits_as_lavas_conv_does():
    # Lava's fixed-point Conv wraps its output (lava.proc.conv.utils.signed_clamp, bits=24):
    # 255 * 65535 = 16711425 -> 16711425 - 2**24 = -65791
    from spikecl.export.spec import ConvGeometry

    layer = FixedLayer("c", np.full((1, 1, 1, 1), 255, dtype=np.int32), 0, 8, 4095, 0, 100,
                       np.zeros(1, dtype=np.int32), 0, 1.0, input_bits=16,
                       conv=ConvGeometry((1, 1, 1), (1, 1, 1), 1, 0))
    assert fp.dense_activation(layer, np.array([[65535]])).tolist() == [[16711425 - 2**24]]


def _one_layer_net(num_steps=4, input_bits=0, encoder="latency", **layer):
    from spikecl.export.quantize import FixedNetwork

    return FixedNetwork((_neuron(**{"weight": 100, "dv": 1024, "vth": 200, **layer}),), num_steps, encoder,
                        input_bits, 1)


def test_graded_inputs_that_are_not_whole_numbers_are_refused():
    # a float input must hold whole numbers (0.5 would be silently truncated to 0)
    from spikecl.errors import ShapeError

    net = _one_layer_net(input_bits=8, encoder="direct")
    assert fp.check_inputs(net, np.full((4, 1, 1), 3.0)).tolist() == [[[3]]] * 4
    with pytest.raises(ShapeError, match="must be integers"):
        fp.check_inputs(net, np.full((4, 1, 1), 0.5))


def test_a_netx_weight_off_the_layers_weight_grid_is_refused_by_name(tmp_path):
    # 6-bit mixed-sign mantissas lie on a grid of 8; a weight moved off it is named, not run (nor only
    # caught by the file's CRC, which files written before it and other writers' files lack)
    import re

    from hdf5_files import tamper
    from test_export import random_spec

    from spikecl.errors import ResultsError
    from spikecl.export.netx import read_netx, write_netx

    net = quantize(random_spec(np.random.default_rng(5)), QuantConfig(weight_bits=6))
    path = write_netx(tmp_path / "net.h5", net)
    weight = read_netx(path).layers[0].weight.copy()
    assert not np.any(weight % 8)
    weight[0, 0] += 1 if weight[0, 0] < 200 else -1
    tamper(path, "layer/1/weight", weight)
    with pytest.raises(ResultsError, match=re.escape("weight is not a matrix of 6-bit Loihi mantissas")):
        read_netx(path)


def test_a_netx_file_of_a_newer_schema_version_is_refused_by_its_version(tmp_path):
    # a file from a newer spikecl is named as such (not read as this version's layout, nor only "corrupt")
    import re

    from hdf5_files import tamper
    from test_export import random_spec

    from spikecl.errors import ResultsError
    from spikecl.export.netx import SCHEMA_VERSION, read_netx, write_netx

    path = write_netx(tmp_path / "net.h5", quantize(random_spec(np.random.default_rng(5))))
    tamper(path, "spikecl/schema_version", SCHEMA_VERSION + 1)
    with pytest.raises(ResultsError, match=re.escape(f"has schema version {SCHEMA_VERSION + 1}; this spikecl reads "
                                                     f"up to {SCHEMA_VERSION}")):
        read_netx(path)
