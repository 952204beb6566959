"""The SDR value type: views and their copy semantics, set operations, noise, seeding and validation."""

import numpy as np
import pytest

from spikecl.errors import ConfigError, ShapeError
from spikecl.sdr import SDR, code_statistics, stack_dense
from spikecl.sdr.baselines import kwta


def test_views_agree_and_copy_semantics_are_as_documented():
    sdr = SDR.from_coordinates((4, 5), ([0, 3, 1], [2, 4, 0]))
    assert sdr.shape == (4, 5) and sdr.size == 20 and sdr.n_active == 3
    assert sdr.sparse.tolist() == [2, 5, 19]                      # sorted flat indices
    assert np.array_equal(np.argwhere(sdr.dense), np.stack(sdr.coordinates, axis=1))
    # sparse shares the stored array and is read-only
    assert sdr.sparse is sdr.sparse and not sdr.sparse.flags.writeable
    with pytest.raises(ValueError):
        sdr.sparse[0] = 7
    # dense and coordinates are fresh copies: writing to them leaves the SDR alone
    dense = sdr.dense
    dense[:] = True
    rows, _ = sdr.coordinates
    rows[:] = 0
    assert sdr.n_active == 3 and sdr.sparse.tolist() == [2, 5, 19]
    # constructors copy their input
    src = np.array([1, 2, 3])
    a = SDR.from_sparse(10, src)
    src[0] = 9
    assert a.sparse.tolist() == [1, 2, 3]
    assert SDR.from_dense(a.dense) == a and a.reshape((2, 5)).reshape(10) == a


def test_pickled_and_deep_copied_sdrs_stay_read_only_and_a_tampered_pickle_is_refused():
    import copy
    import pickle

    a = SDR.from_coordinates((2, 5), ([0, 1], [4, 2]))
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a), copy.copy(a)):
        assert b == a and hash(b) == hash(a) and b.shape == (2, 5) and not b.sparse.flags.writeable
        with pytest.raises(ValueError):
            b.sparse[0] = 9
    tampered = pickle.dumps(SDR(10, [1, 2])).replace(pickle.dumps(1)[2:-1], pickle.dumps(2)[2:-1], 1)
    with pytest.raises(ShapeError, match="duplicate 2"):
        pickle.loads(tampered)


def test_set_operations_and_sparsity():
    a, b = SDR.from_sparse(10, [1, 4, 7]), SDR.from_sparse(10, [9, 4, 7])
    assert a.overlap(b) == 2
    assert a.intersection(b).sparse.tolist() == [4, 7]
    assert a.union(b).sparse.tolist() == [1, 4, 7, 9]
    assert a.sparsity == pytest.approx(0.3)
    assert a != b and a == SDR(10, [7, 1, 4]) and hash(a) == hash(SDR(10, [4, 7, 1]))
    assert len({a, SDR(10, [1, 4, 7]), b}) == 2


def test_noise_and_random_are_seeded_and_keep_sparsity():
    base = SDR.random((32, 32), 0.05, seed=3)
    assert base == SDR.random((32, 32), 0.05, seed=3) and base != SDR.random((32, 32), 0.05, seed=4)
    assert base.n_active == round(0.05 * 1024)
    noisy = base.add_noise(0.25, seed=1)
    assert noisy == base.add_noise(0.25, seed=1)
    assert noisy.n_active == base.n_active
    assert base.overlap(noisy) == base.n_active - round(0.25 * base.n_active)
    dropped = base.drop(0.5, seed=0)
    assert dropped.n_active == base.n_active - round(0.5 * base.n_active)
    assert dropped.overlap(base) == dropped.n_active
    assert base.add_noise(0.0) == base and base.add_noise(1.0).overlap(base) == 0


@pytest.mark.parametrize("make, message", [
    (lambda: SDR.from_sparse(10, [1, 10]), "out of range"),
    (lambda: SDR.from_sparse(10, [-1, 2]), "out of range"),
    (lambda: SDR.from_sparse(10, [3, 3]), "duplicate 3"),
    (lambda: SDR.from_sparse(10, np.array([1.0, 2.0])), "integers"),
    (lambda: SDR.from_sparse(10, np.array([True, False])), "integers"),
    (lambda: SDR.from_sparse(10, [[1, 2]]), "1-D"),
    (lambda: SDR.from_dense(np.array([0.0, 1.0])), "bool or integer"),
    (lambda: SDR.from_dense(np.array([0, 2])), "only 0 and 1"),
    (lambda: SDR.from_dense(np.array([0, -1, 1])), r"only 0 and 1, got values in \[-1, 1\]"),
    (lambda: SDR.from_coordinates((3, 3), ([0, 1],)), "2 coordinate arrays"),
    (lambda: SDR.from_coordinates((3, 3), None), r"one index array per dimension \(as np.nonzero returns\), got None"),
    (lambda: SDR.from_dense([[0, 1], [1]]), r"rectangular array of 0/1 \(its rows differ in length\)"),
    (lambda: SDR.from_coordinates((3, 3), ([0, 3], [0, 1])), "out of range in dimension 0"),
    (lambda: SDR((0, 3)), "positive integers"),
    (lambda: SDR(10, [1]).overlap(SDR(11, [1])), "sizes differ"),
    (lambda: SDR((4, 5), [1]).overlap(SDR((5, 4), [1])), r"SDR shapes differ: \(4, 5\) and \(5, 4\); reshape"),
    (lambda: SDR((4, 5), [1]).union(SDR(20, [1])), r"SDR shapes differ: \(4, 5\) and \(20,\)"),
    (lambda: SDR(10, [1]).reshape(7), "cannot reshape"),
    (lambda: stack_dense([SDR(4, [1]), [1, 2]]), "takes SDRs, got list"),
])
def test_bad_input_is_a_one_line_shape_error(make, message):
    with pytest.raises(ShapeError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_bad_fractions_are_config_errors():
    with pytest.raises(ConfigError, match="noise fraction"):
        SDR(10, [1]).add_noise(1.5)
    with pytest.raises(ConfigError, match="exactly one"):
        SDR.random(10)
    with pytest.raises(ConfigError, match="n_active"):
        SDR.random(10, n_active=11)


def test_stack_and_statistics_and_kwta():
    sdrs = [SDR(6, [0, 1]), SDR(6, [1, 2])]
    dense = stack_dense(sdrs)
    assert dense.shape == (2, 6) and dense.sum() == 4
    stats = code_statistics(dense)
    assert stats["sparsity"] == pytest.approx(4 / 12)
    assert stats["fraction_used"] == pytest.approx(3 / 6)
    assert stats["mean_frequency_used"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert stats["entropy"] == pytest.approx((1 + 0 + 1 + 0 + 0 + 0) / 6)   # binary entropy: 1 bit at p = 0.5
    winners = kwta(np.array([[3.0, 1.0, 3.0, 2.0]]), 2)
    assert winners.tolist() == [[True, False, True, False]]
    with pytest.raises(ShapeError):
        kwta(np.zeros((1, 3)), 4)


def test_add_noise_moves_only_as_many_bits_as_there_are_inactive_positions():
    sdr = SDR.from_sparse(10, range(8))                # 2 inactive places: fraction 0.5 (4 bits) moves 2
    noisy = sdr.add_noise(0.5, seed=0)
    assert noisy.n_active == 8 and sdr.overlap(noisy) == 6
    assert {8, 9} <= set(noisy.sparse.tolist())


def test_sdrs_of_equal_bits_but_other_shapes_are_not_equal():
    a = SDR.from_sparse((4, 5), [1, 7])
    assert a != SDR.from_sparse((5, 4), [1, 7])
    assert a == SDR.from_sparse((4, 5), [7, 1])


def test_random_rounds_sparsity_times_size():
    assert SDR.random(10, 0.29, seed=0).n_active == 3      # round(2.9), not int(2.9)
    assert SDR.random(100, 0.015, seed=0).n_active == 2


def test_stack_dense_refuses_sdrs_of_other_sizes():
    with pytest.raises(ShapeError, match="sizes differ: 20 and 10"):
        stack_dense([SDR.from_sparse(20, [1, 15]), SDR.from_sparse(10, [1])])
    with pytest.raises(ShapeError, match="sizes differ: 10 and 20"):
        stack_dense([SDR.from_sparse(10, [1]), SDR.from_sparse(20, [1])])   # indices that would fit the first row


def test_coordinate_arrays_of_different_lengths_are_refused_not_broadcast():
    """A length-1 coordinate array is not broadcast against a longer one: one-line ShapeError, no SDR."""
    with pytest.raises(ShapeError, match="^SDR coordinate arrays must all have the same length$"):
        SDR.from_coordinates((3, 3), ([0, 1], [2]))


@pytest.mark.parametrize("shape", [(0, 4), (3, 0)])
def test_code_statistics_refuse_codes_without_items_or_bits(shape):
    """Statistics of no items or no bits are a one-line ShapeError, not NaN values with a numpy warning."""
    with pytest.raises(ShapeError, match=r"codes must be \[B, N\] with B, N >= 1"):
        code_statistics(np.zeros(shape, bool))


def test_repr_marks_only_active_bits_beyond_the_eighth_as_left_out():
    assert repr(SDR(20, range(8))) == "SDR(shape=(20,), n_active=8, sparse=[0, 1, 2, 3, 4, 5, 6, 7])"
    assert repr(SDR(20, range(9))) == "SDR(shape=(20,), n_active=9, sparse=[0, 1, 2, 3, 4, 5, 6, 7, ...])"
