"""The SDR input layer of continual-learning streams: fly-hash k-winners codes in place of pixels."""

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
