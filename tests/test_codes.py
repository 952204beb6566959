"""Fixed input codes (spikecl.data.codes): the fly hash refuses options out of range, and settings that sample no
input per output, in one line, whether it is built directly or through a continual stream's input code."""

import numpy as np
import pytest

from spikecl.data.codes import FlyHash, FlyHashConfig, kwta
from spikecl.data.datasets import load_dataset
from spikecl.data.streams import code_stream, make_stream
from spikecl.errors import ConfigError, ShapeError


def one_line(info) -> str:
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("options, message", [
    (dict(sparsity=-0.3, sample_frac=0.0), r"^sparsity: -0.3 is below the minimum"),
    (dict(sample_frac=0.0), r"^sample_frac: 0.0 is below the minimum"),
    (dict(sparsity=0.9), r"^sparsity: 0.9 is above the maximum 0.5"),
    (dict(n_outputs=1), r"^n_outputs: 1 is below the minimum 2"),
    (dict(n_outputs=64.0), r"^n_outputs: expected an integer"),
    (dict(sample_frac=float("nan")), r"^sample_frac: expected a finite number"),
    (dict(seed=-1), r"^seed: -1 is below the minimum 0"),
])
def test_options_out_of_range_are_refused_when_the_config_is_built(options, message):
    with pytest.raises(ConfigError, match=message) as info:
        FlyHashConfig(**options)
    one_line(info)


def test_numpy_numbers_are_accepted_as_python_ones():
    cfg = FlyHashConfig(n_outputs=np.int64(64), sparsity=np.float32(0.125), seed=np.uint32(3))
    assert (type(cfg.n_outputs), type(cfg.sparsity), type(cfg.seed)) == (int, float, int)
    assert FlyHash(cfg, 16).encode(np.eye(16)).sum(axis=1).tolist() == [8] * 16


@pytest.mark.parametrize("sample_frac, n_inputs, message", [
    (0.01, 64, r"sample_frac 0.01 of 64 inputs samples fewer than one input per output; it must be at least 1/64"),
    (1e-4, 784, r"sample_frac 0.0001 of 784 inputs samples fewer than one"),
])
def test_a_hash_that_samples_no_input_per_output_is_refused(sample_frac, n_inputs, message):
    with pytest.raises(ConfigError, match=message) as info:
        FlyHash(FlyHashConfig(sample_frac=sample_frac), n_inputs)
    one_line(info)
    FlyHash(FlyHashConfig(sample_frac=1 / n_inputs), n_inputs)                 # one input per output on average


@pytest.mark.parametrize("n_inputs", [0, 2.5, True])
def test_a_hash_needs_a_whole_number_of_inputs(n_inputs):
    with pytest.raises(ConfigError, match="fly hash n_inputs") as info:
        FlyHash(FlyHashConfig(), n_inputs)
    one_line(info)


@pytest.mark.parametrize("options, message", [
    (dict(units=16, sparsity=0.9, sample_frac=0.0), r"^sparsity: 0.9 is above the maximum"),
    (dict(units=16, sparsity=0.25, sample_frac=0.0), r"^sample_frac: 0.0 is below the minimum"),
    (dict(units=16, sparsity=0.25, sample_frac=0.001), r"samples fewer than one input per output"),
])
def test_a_stream_code_that_would_give_every_image_one_code_is_refused(options, message):
    stream = make_stream(load_dataset("digits"), "permuted", 1, "domain", seed=0)
    with pytest.raises(ConfigError, match=message) as info:
        code_stream(stream, **options)
    one_line(info)
    codes = code_stream(stream, units=16, sparsity=0.25, sample_frac=0.1)[0].x_train.reshape(-1, 16)
    assert len(np.unique(codes, axis=0)) > 10                                  # images get distinct codes


def test_kwta_refuses_zero_winners_and_nan_values():
    """k = 0 is no code, and NaN values cannot be ranked: both a ShapeError."""
    with pytest.raises(ShapeError, match=r"^k = 0 winners out of 3 units is impossible$"):
        kwta(np.ones((1, 3)), 0)
    with pytest.raises(ShapeError, match="^kwta: the values hold NaN"):
        kwta(np.array([[np.nan, 1.0, 2.0]]), 1)


def test_kwta_ties_go_to_the_lower_index_in_a_long_row():
    """41 equal values after a smaller one: the 5 winners are indices 1..5 (a stable sort), whatever the row length."""
    assert np.flatnonzero(kwta(np.array([[1.0] + [2.0] * 41]), 5)).tolist() == [1, 2, 3, 4, 5]


def test_fly_hash_inputs_must_be_finite_numbers_of_its_width():
    """Inputs of another width, infinities or text are one-line ShapeErrors, not a matmul error or a cast."""
    hasher = FlyHash(FlyHashConfig(n_outputs=32), 16)
    with pytest.raises(ShapeError, match=r"^inputs must be \[B, 16\], got shape \(2, 8\)$"):
        hasher.encode(np.zeros((2, 8)))
    with pytest.raises(ShapeError, match="^inputs contain NaN or infinity$"):
        hasher.encode(np.full((2, 16), np.inf))
    with pytest.raises(ShapeError, match="^inputs must be numbers, got dtype <U1$"):
        hasher.encode(np.full((2, 16), "1"))


def test_fly_hash_projection_samples_sample_frac_of_the_inputs_and_follows_its_seed():
    """Each of the 100 x 256 projection entries is 1 with probability sample_frac = 0.1; the seed fixes them."""
    def projection(seed):
        return FlyHash(FlyHashConfig(n_outputs=256, sample_frac=0.1, seed=seed), 100).projection

    assert abs(projection(1).mean() - 0.1) < 0.01
    assert np.array_equal(projection(1), projection(1)) and not np.array_equal(projection(1), projection(2))
