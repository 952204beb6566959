"""The input of continual-learning streams: fly-hash k-winners codes in place of pixels, and standardised images
(stream.standardize) with their export."""

import re

import numpy as np
import pytest

from spikecl.config import experiment_from_dict
from spikecl.continual.runner import ContinualRun, build_stream
from spikecl.data.datasets import load_dataset
from spikecl.data.streams import code_stream, make_stream
from spikecl.errors import ConfigError


def test_codes_are_k_winners_and_fixed_for_a_run():
    stream = make_stream(load_dataset("digits"), "permuted", 2, "domain", seed=0)
    coded = code_stream(stream, units=512, sparsity=0.05, seed=3)
    x0, x1 = coded[0].x_train, coded[1].x_train
    assert coded.input_shape == (1, 1, 512) and x0.shape == (len(stream[0].x_train), 1, 1, 512)
    assert x0.dtype == np.float32 and set(np.unique(x0)) == {0.0, 1.0}
    np.testing.assert_array_equal(x0.reshape(len(x0), -1).sum(axis=1), 26)          # round(0.05 * 512) winners
    np.testing.assert_array_equal(code_stream(stream, 512, 0.05, seed=3)[0].x_test, coded[0].x_test)
    # the same digit under another task's permutation gets a nearly unrelated code (chance overlap k²/units ≈ 1.3)
    same = (x0.reshape(len(x0), -1) * x1.reshape(len(x1), -1)).sum(axis=1)
    assert same.mean() < 5.0
    np.testing.assert_array_equal(coded[0].y_train, stream[0].y_train)


def test_flyhash_stream_trains_a_spiking_mlp():
    cfg = experiment_from_dict({"data": {"dataset": "digits"},
                                "stream": {"kind": "split", "scenario": "task", "n_tasks": 2, "input_code": "flyhash",
                                           "code_units": 512},
                                "network": {"hidden": [64]}, "train": {"epochs": 3}})
    assert build_stream(cfg, 0).input_shape == (1, 1, 512)
    result = ContinualRun(cfg, "finetune", 0).execute(progress_bar=False)
    assert result.metrics["acc"] > 0.75                                                # 5 classes per task


def test_codes_need_an_mlp():
    with pytest.raises(ConfigError, match="stream.input_code"):
        experiment_from_dict({"stream": {"input_code": "flyhash"}, "network": {"kind": "cnn"}})


STANDARD = [0.1307, 0.3081]                          # the official HLOP and GPM loaders' MNIST mean and std


def _digits(**stream) -> dict:
    return {"data": {"dataset": "digits"}, "stream": {"kind": "permuted", "n_tasks": 2, **stream},
            "network": {"hidden": [64]}, "train": {"epochs": 2}}


def test_a_standardised_stream_is_the_plain_one_standardised_after_each_permutation():
    plain = build_stream(experiment_from_dict(_digits()), 3)
    standard = build_stream(experiment_from_dict(_digits(standardize=STANDARD)), 3)
    for a, b in zip(plain.tasks, standard.tasks):
        for x, z in ((a.x_train, b.x_train), (a.x_test, b.x_test)):
            assert z.dtype == np.float32
            np.testing.assert_array_equal(z, (x - np.float32(STANDARD[0])) / np.float32(STANDARD[1]))
        np.testing.assert_array_equal(a.y_train, b.y_train)
    assert standard[0].x_train.min() < -0.4 and standard[0].x_train.max() > 2.8     # background -0.42, ink 2.82
    result = ContinualRun(experiment_from_dict(_digits(standardize=STANDARD)), "finetune", 0).execute(
        progress_bar=False)
    assert result.config["stream"]["standardize"] == STANDARD and result.metrics["acc"] > 0.7


@pytest.mark.parametrize("value, message", [
    ([1.0], r"stream.standardize: \[1.0\] must be \[mean, std\] with a finite mean and std > 0"),
    ([0.1, 0.0], r"must be \[mean, std\] with a finite mean and std > 0"),
    ([0.1, -1.0, 2.0], r"must be \[mean, std\]"),
    ([float("inf"), 1.0], r"stream.standardize\[0\]: expected a finite number"),
    ([0.0, 1e-50], r"^stream.standardize: \[0.0, 1e-50\] takes pixels in \[0, 1\] to -0..1e\+50, beyond float32's "),
    ([1e39, 1.0], r"^stream.standardize: \[1e\+39, 1.0\] takes pixels in \[0, 1\] to -1e\+39..-1e\+39, beyond "),
    ([0.0, 1e39], r"^stream.standardize: \[0.0, 1e\+39\] takes pixels in \[0, 1\] to -0..1e-39, beyond float32's "),
    ([1e39, 1e39], r"^stream.standardize: \[1e\+39, 1e\+39\] takes pixels in \[0, 1\] to -1..-1, beyond float32's "),
    ([1e10, 1.0], r"^stream.standardize: \[10000000000.0, 1.0\] merges pixels 1/255 apart in float32 \(about 7 "),
    ([1e30, 1e-8], r"^stream.standardize: \[1e\+30, 1e-08\] merges pixels 1/255 apart in float32")])
def test_standardize_takes_a_mean_and_a_positive_std(value, message):
    with pytest.raises(ConfigError, match=message):
        experiment_from_dict(_digits(standardize=value))


@pytest.mark.parametrize("change", [{"network": {"encoder": "poisson"}}, {"network": {"encoder": "latency"}},
                                    {"stream": {"input_code": "flyhash"}}])
def test_standardize_applies_to_direct_currents_of_dense_images_only(change):
    raw = _digits(standardize=STANDARD)
    for table, values in change.items():
        raw[table] = {**raw[table], **values}
    with pytest.raises(ConfigError, match=r"^stream.standardize: applies to dense images under network.encoder = "
                                          r"\"direct\""):
        experiment_from_dict(raw)


def test_results_recorded_before_standardize_existed_read_as_pixels():
    from spikecl.recorded import recorded_as_now

    recorded = experiment_from_dict(_digits()).to_dict()
    del recorded["stream"]["standardize"]
    assert recorded_as_now(recorded)["stream"]["standardize"] == []


def test_export_folds_the_standardisation_into_the_first_layer_of_an_mlp_and_refuses_a_cnns(tmp_path, capsys):
    """The exported network takes the pixels: W (x - m) / s + b = (W / s) x + (b - (m / s) W 1), so its spikes and
    logits on pixels are the trained network's on standardised images."""
    from spikecl.errors import ExportError
    from spikecl.export.float_model import float_forward, float_logits
    from spikecl.export.spec import spec_from_state

    raw = _digits(standardize=[0.3, 0.4])
    raw["network"] = {"hidden": [32], "reset": "zero", "num_steps": 4}
    result = ContinualRun(experiment_from_dict(raw), "finetune", 0).execute(progress_bar=False)
    folded = spec_from_state(result.model, result.config)
    plain = spec_from_state(result.model, {**result.config, "stream": {**result.config["stream"], "standardize": []}})
    assert folded.config["stream"]["standardize"] == [] and folded.config["standardize_folded"] == [0.3, 0.4]
    x = build_stream(experiment_from_dict(_digits()), 0)[0].x_test[:64].reshape(64, -1).astype(np.float64)
    pixels = np.broadcast_to(x, (4, *x.shape))
    ours, trained = float_forward(folded, pixels), float_forward(plain, (pixels - 0.3) / 0.4)
    assert all(np.array_equal(a, b) for a, b in zip(ours.spikes, trained.spikes)) and ours.spikes[0].any()
    np.testing.assert_allclose(float_logits(folded, pixels), float_logits(plain, (pixels - 0.3) / 0.4), atol=1e-9)
    from spikecl.cli import main
    from spikecl.continual.results import write_continual

    write_continual(tmp_path / "run.h5", result)
    assert main(["export", str(tmp_path / "run.h5"), "-o", str(tmp_path / "net.h5"), "--samples", "50",
                 "--force"]) == 0
    assert re.search(r"note: hidden0 carries the folded standardisation \(stream.standardize\) as a bias, which "
                     r"lowers its vth to \d+ \(without the fold: \d+\) and its weight mantissas to at most ±\d+ "
                     r"\(±\d+\): see the quantised accuracy above", capsys.readouterr().out)
    import dataclasses

    centred = {**result.config, "stream": {**result.config["stream"], "standardize": [0.0, 0.4]}}   # no bias added
    write_continual(tmp_path / "centred.h5", dataclasses.replace(result, config=centred))
    assert main(["export", str(tmp_path / "centred.h5"), "-o", str(tmp_path / "c.h5"), "--samples", "50",
                 "--force"]) == 0
    assert "note: hidden0 carries" not in capsys.readouterr().out
    key = next(k for k in result.model if k.endswith("weight"))
    biased = {**result.model, key[:-len("weight")] + "bias": result.model[key][:, 0] * 0 - 3.0}  # bounds vth
    write_continual(tmp_path / "biased.h5", dataclasses.replace(result, config=centred, model=biased))
    assert main(["export", str(tmp_path / "biased.h5"), "-o", str(tmp_path / "b.h5"), "--samples", "50",
                 "--force"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"hidden0 +64->32 .* 1365 ", out) and "note: hidden0 carries" not in out  # the fold: none
    assert main(["export", str(tmp_path / "run.h5"), "-o", str(tmp_path / "n0.h5"), "--samples", "0"]) == 0
    assert re.search(r"note: hidden0 carries the folded .*\(±\d+\)$", capsys.readouterr().out, re.M)  # none measured
    with pytest.raises(ExportError, match=r"^the CNN was trained on standardised images \(stream.standardize\): "
                                          r"its zero padding"):
        spec_from_state({}, {"stream": {"standardize": STANDARD}, "network": {"kind": "cnn"}})
