"""Task streams: permuted, rotated, split; task-, domain- and class-incremental; reproducible from a seed."""

import numpy as np
import pytest

from spikecl.data.datasets import Dataset, load_dataset
from spikecl.data.streams import make_stream, rotate
from spikecl.errors import ConfigError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_permuted_stream_is_consistent_and_reproducible(digits):
    s = make_stream(digits, "permuted", 3, "domain", seed=4)
    assert len(s) == 3 and s.n_outputs == 10 and s.n_heads == 1 and s.input_shape == (1, 8, 8)
    flat_train = digits.x_train.reshape(len(digits.x_train), -1)
    flat_test = digits.x_test.reshape(len(digits.x_test), -1)
    for task in s:
        # recover the permutation from the training set and check the test set used the same one
        t_train = task.x_train.reshape(len(task.x_train), -1)
        perm = [int(np.flatnonzero((flat_train == t_train[:, [k]]).all(axis=0))[0]) for k in range(64)
                if (flat_train == t_train[:, [k]]).all(axis=0).sum() == 1]
        assert len(perm) > 50
        np.testing.assert_array_equal(task.y_train, digits.y_train)
    np.testing.assert_array_equal(s[1].x_test.reshape(len(flat_test), -1).sum(1), flat_test.sum(1))
    again = make_stream(digits, "permuted", 3, "domain", seed=4)
    other = make_stream(digits, "permuted", 3, "domain", seed=5)
    np.testing.assert_array_equal(s[2].x_train, again[2].x_train)
    assert not np.array_equal(s[2].x_train, other[2].x_train)
    assert not np.array_equal(s[0].x_train, s[1].x_train)
    identity = make_stream(digits, "permuted", 2, "domain", first_task_identity=True)
    np.testing.assert_array_equal(identity[0].x_train, digits.x_train)


def test_permuted_scenarios(digits):
    task_il = make_stream(digits, "permuted", 3, "task")
    assert task_il.n_heads == 3 and task_il.head(2) == 2 and task_il.n_outputs == 10
    class_il = make_stream(digits, "permuted", 3, "class")
    assert class_il.n_outputs == 30 and class_il.head(2) == 0
    assert class_il[2].y_train.min() == 20 and class_il[2].classes == tuple(range(20, 30))
    assert class_il.active_outputs(1).tolist() == [True] * 20 + [False] * 10


def test_rotation():
    x = np.random.default_rng(0).random((3, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(rotate(x, 0.0), x)
    np.testing.assert_allclose(rotate(x, 90.0), np.rot90(x, 1, axes=(-2, -1)), atol=1e-6)
    np.testing.assert_allclose(rotate(x, 180.0), x[..., ::-1, ::-1], atol=1e-6)
    small = rotate(x, 10.0)
    assert small.shape == x.shape and 0 < np.abs(small - x).mean() < np.abs(rotate(x, 45.0) - x).mean()


def test_rotated_stream_angles(digits):
    s = make_stream(digits, "rotated", 4, "domain", max_angle_deg=360.0)
    np.testing.assert_array_equal(s[0].x_train, digits.x_train)
    np.testing.assert_allclose(s[1].x_test, rotate(digits.x_test, 90.0), atol=1e-6)


def test_split_stream_partitions_classes(digits):
    for scenario in ("task", "domain", "class"):
        s = make_stream(digits, "split", 5, scenario)
        assert len(s) == 5
        total = sum(len(t.y_train) for t in s)
        assert total == len(digits.y_train)
        for i, task in enumerate(s):
            originals = {int(c) for c in np.unique(digits.y_train)} & {2 * i, 2 * i + 1}
            if scenario == "class":
                assert set(np.unique(task.y_train)) == originals and task.classes == (2 * i, 2 * i + 1)
            else:
                assert set(np.unique(task.y_train)) == {0, 1} and task.classes == (0, 1)
    class_il = make_stream(digits, "split", 5, "class")
    assert class_il.n_outputs == 10 and class_il.active_outputs(1).tolist() == [True] * 4 + [False] * 6
    assert make_stream(digits, "split", 5, "task").n_heads == 5
    assert make_stream(digits, "split", 5, "domain").n_outputs == 2
    three = make_stream(digits, "split", 3, "class", classes_per_task=3)
    assert three[2].classes == (6, 7, 8)


def test_subsampling_is_stratified_and_seeded(digits):
    s = make_stream(digits, "permuted", 2, "domain", train_per_task=200, test_per_task=50, seed=1)
    assert len(s[0].y_train) == 200 and len(s[1].y_test) == 50
    assert np.bincount(s[0].y_train).min() >= 18
    again = make_stream(digits, "permuted", 2, "domain", train_per_task=200, test_per_task=50, seed=1)
    np.testing.assert_array_equal(s[1].y_train, again[1].y_train)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "shuffled"}, "stream.kind: 'shuffled' is not allowed"),
    ({"scenario": "instance"}, "stream.scenario: 'instance' is not allowed"),
    ({"kind": "split", "n_tasks": 4, "classes_per_task": 3}, "do not fit in the 10 classes"),
    ({"n_tasks": 0}, "stream.n_tasks"),
])
def test_bad_stream_options(digits, kwargs, message):
    args = {"kind": "permuted", "n_tasks": 2, "scenario": "domain", **kwargs}
    with pytest.raises(ConfigError, match=message):
        make_stream(digits, args.pop("kind"), args.pop("n_tasks"), args.pop("scenario"), **args)


def test_dataset_validates_shapes():
    from spikecl.errors import ShapeError

    x = np.zeros((2, 1, 2, 2), np.float32)
    with pytest.raises(ShapeError, match="y_train"):
        Dataset("t", x, np.zeros(3, np.int64), x, np.zeros(2, np.int64), 2)
    with pytest.raises(Exception, match="NaN"):
        Dataset("t", np.full_like(x, np.nan), np.zeros(2, np.int64), x, np.zeros(2, np.int64), 2)
