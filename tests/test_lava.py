"""Lava (lava-nc 0.10.0, Python 3.10, fixed-point CPU models) runs exported networks exactly like the numpy reference.

Each test drives the real runner in .venv-lava as a subprocess. `make test` builds .venv-lava (`make lava`); without
any Python 3.10 on the machine these tests skip loudly.
"""

import numpy as np
import pytest

from spikecl.export.inputs import encode
from spikecl.export.netx import write_netx
from spikecl.export.quantize import QuantConfig, quantize

from lava_support import require_environment, run_and_compare, side_python
from test_export import cnn_spec, random_spec, small_cnn

pytestmark = pytest.mark.lava


@pytest.fixture(scope="module", autouse=True)
def lava_environment():
    require_environment(".venv-lava", "lava")


LAVA_PYTHON = side_python(".venv-lava")


@pytest.mark.parametrize("case", [
    dict(widths=(12, 20, 4), encoder="direct", bias=True),                       # graded input, biases
    dict(widths=(12, 20, 4), encoder="latency", bias=False, sign=1),             # excitatory-only weights
    dict(widths=(16, 24, 18, 12, 5), encoder="poisson", bias=True),              # 3 hidden layers, binary input
    dict(widths=(12, 20, 15, 4), encoder="direct", bias=True, threshold=0.05),   # positive weight exponents
    dict(widths=(12, 20, 15, 4), encoder="latency", bias=True, weight_bits=4),   # 4-bit synapses
])
def test_lava_spikes_equal_the_reference_layer_by_layer(tmp_path, case):
    case = dict(case)
    bits = case.pop("weight_bits", 8)
    rng = np.random.default_rng(len(case["widths"]) + case.get("sign", 0) + int(100 * case.get("threshold", 1)) + bits)
    spec = random_spec(rng, steps=4, **case)
    net = quantize(spec, QuantConfig(headroom=4.0, weight_bits=bits, exponents=True))  # spikecl's runner only
    assert all(layer.num_weight_bits == bits for layer in net.layers)
    exps = [layer.weight_exp for layer in net.layers]
    if case.get("threshold") == 0.05:
        assert max(exps) > 0
    if case["encoder"] == "direct":
        assert min(exps) < 0
    lava, windows = run_and_compare(tmp_path, net, rng.random((6, spec.n_inputs)))
    assert 0.01 < windows.spikes[0].mean() < 0.95, "the case must exercise spiking"


@pytest.mark.slow
def test_deployed_trained_network_reaches_quantised_and_float_accuracy(zero_reset_run, tmp_path):
    import io

    from spikecl.export.pipeline import deploy, export_file, print_deploy

    results, _, _ = zero_reset_run
    out = tmp_path / "net.h5"
    spec, net = export_file(results, out, samples=300)
    report = deploy(out, "lava-sim", samples=300)
    floating = net.metrics["float_accuracy"]
    assert report["samples"] == 300 and report["readout_equal"] and report["prediction_agreement"] == 1.0
    assert report["spike_agreement"] == [1.0]
    # the same 300 samples at export (numpy fixed point) and on Lava: the same accuracy, to the sample
    assert report["accuracy"] == report["reference_accuracy"] == net.metrics["reference_accuracy"]
    assert report["accuracy"] >= floating - 0.01
    assert report["accuracy"] > 0.85
    # the every-step readout runs N T + layers steps; the sample-end readout one more (its last read)
    assert report["steps"] == 300 * spec.num_steps + len(net.layers) and report["run_steps"] in (report["steps"],
                                                                                                 report["steps"] + 1)
    out = io.StringIO()
    print_deploy(report, out)
    assert f"{report['run_steps'] - 1} more steps" in out.getvalue()


def test_export_core_imports_under_python310_without_torch():
    import subprocess

    script = ("import sys, numpy; assert sys.version_info[:2] == (3, 10) and numpy.__version__.startswith('1.26'); "
              "import spikecl.export, spikecl.export.fixed_point, spikecl.export.netx, spikecl.export.resources, "
              "spikecl.export.float_model, spikecl.export.inputs, spikecl.export.samples, spikecl.export.pipeline, "
              "spikecl.export.nir_io, spikecl.commands.export, spikecl_lava.runner; "
              "assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([str(LAVA_PYTHON), "-c", script], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_runner_refuses_hardware_without_lava_loihi(tmp_path):
    import subprocess

    from spikecl.export.lava_client import write_inputs

    net = quantize(random_spec(np.random.default_rng(12), widths=(6, 5, 3), steps=2))
    write_netx(tmp_path / "net.h5", net)
    write_inputs(tmp_path / "in.h5", encode(np.full((2, 6), 0.5), net), None, None)
    out = subprocess.run([str(LAVA_PYTHON), "-m", "spikecl_lava.runner", str(tmp_path / "net.h5"), "--inputs",
                          str(tmp_path / "in.h5"), "-o", str(tmp_path / "run.h5"), "--hardware"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "lava-loihi" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run.h5").exists()


def test_a_lava_environment_holding_other_spikecl_code_says_so(tmp_path):
    """A Lava environment whose spikecl is another build than the caller's (upgraded on one side only) read a fresh
    export as "damaged": the runner is told the digest of the caller's modules (:func:`run_side` passes it; a
    checkout and an install of the same code agree) and names both."""
    import subprocess

    from spikecl.environment import CALLER_SOURCE, source_digest
    from spikecl.export.lava_client import checkout_env, run_lava, write_inputs

    net = quantize(random_spec(np.random.default_rng(12), widths=(6, 5, 3), steps=2))
    write_netx(tmp_path / "net.h5", net)
    write_inputs(tmp_path / "in.h5", encode(np.full((2, 6), 0.5), net), None, None)
    cmd = [str(LAVA_PYTHON), "-m", "spikecl_lava.runner", str(tmp_path / "net.h5"), "--inputs",
           str(tmp_path / "in.h5"), "-o", str(tmp_path / "run.h5")]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env={**checkout_env(), CALLER_SOURCE: "0123456789ab"})
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"spikecl-lava: error: this environment's spikecl (sources {source_digest()}) is not the spikecl that called "
        "it (sources 0123456789ab): install the same one here (from its checkout: pip install --force-reinstall . "
        "./hardware with this environment's pip)"]
    assert not (tmp_path / "run.h5").exists()
    assert run_lava(tmp_path / "net.h5", encode(np.full((2, 6), 0.5), net))["spikes"] is not None   # the same: runs


def test_lava_conv_network_equals_the_reference(tmp_path):
    from dataclasses import replace

    from test_export import cnn_spec, small_cnn

    spec = cnn_spec(small_cnn(5))   # conv 3x3 on graded input, then the pooled 6x6 stride-2 conv, then the readout
    louder = replace(spec.layers[1], weight=3 * spec.layers[1].weight)
    net = quantize(replace(spec, layers=(spec.layers[0], louder, spec.layers[2])))
    lava, windows = run_and_compare(tmp_path, net, np.random.default_rng(14).random((4, 64)))
    assert windows.spikes[0].mean() > 0.05 and windows.spikes[1].mean() > 0.05


def test_lava_conv_bias_that_varies_over_the_grid_equals_the_reference(tmp_path):
    """A conv bias set neuron by neuron, not per channel, reaches each neuron at its own place of Lava's (X, Y, C)
    grid (on a square grid a transposed one would hand neuron (c, y, x) the bias of (c, x, y) without an error)."""
    from dataclasses import replace

    spec = cnn_spec(small_cnn(5))
    rng = np.random.default_rng(16)
    first = replace(spec.layers[0], bias=rng.normal(0.2, 0.4, spec.layers[0].bias.shape))
    net = quantize(replace(spec, layers=(first, *spec.layers[1:])))
    grid = net.layers[0].bias_mant.reshape(net.layers[0].conv.out_shape)
    assert not np.array_equal(grid, grid.transpose(0, 2, 1)), "the bias must differ from its transpose"
    lava, windows = run_and_compare(tmp_path, net, rng.random((4, 64)))
    assert 0.05 < windows.spikes[0].mean() < 0.95, "the case must exercise spiking"


def test_lava_runs_a_dense_readout_right_after_the_first_conv_layer(tmp_path):
    """One conv layer straight into the readout (layers 0 and 1): the readout's weight columns are permuted into
    Lava's flattened (X, Y, C) order there too, so the readout voltage equals the reference's."""
    net = quantize(cnn_spec(small_cnn(5, channels=(4,))))
    assert [layer.conv is not None for layer in net.layers] == [True, False]
    lava, windows = run_and_compare(tmp_path, net, np.random.default_rng(15).random((4, 64)))
    assert 0.05 < windows.spikes[0].mean() < 0.95, "the case must exercise spiking"


@pytest.fixture(scope="module")
def trained_cnn(tmp_path_factory):
    """A digits CNN (conv 8 - conv 16 with batch norm and pooling, reset zero) trained by the continual runner."""
    from spikecl.config import experiment_from_dict
    from spikecl.continual.runner import ContinualRun

    cfg = experiment_from_dict({
        "name": "digits-cnn", "seeds": [0], "data": {"dataset": "digits"},
        "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 1, "first_task_identity": True},
        "network": {"kind": "cnn", "channels": [8, 16], "num_steps": 4, "reset": "zero", "init_gain": 2.0},
        "train": {"epochs": 3, "batch_size": 32, "lr": 0.05}, "strategy": {"methods": ["finetune"]}})
    results = tmp_path_factory.mktemp("trained_cnn") / "finetune-seed0.h5"
    ContinualRun(cfg, "finetune", 0).execute(results, progress_bar=False)
    return results


@pytest.mark.slow
def test_deployed_trained_cnn_reaches_quantised_and_float_accuracy(trained_cnn, tmp_path):
    from spikecl.export.pipeline import deploy, export_file

    out = tmp_path / "cnn.h5"
    _, net = export_file(trained_cnn, out, samples=150, calibration_samples=64)
    assert [layer.conv is not None for layer in net.layers] == [True, True, False]
    report = deploy(out, "lava-sim", samples=150)
    assert report["readout_equal"] and report["spike_agreement"] == [1.0, 1.0]
    assert report["accuracy"] == report["reference_accuracy"] == net.metrics["reference_accuracy"]
    assert report["accuracy"] >= net.metrics["float_accuracy"] - 0.02 and report["accuracy"] > 0.8   # 3 of 150
