"""Task streams: permuted, rotated, split; task-, domain- and class-incremental; reproducible from a seed."""

from dataclasses import replace

import numpy as np
import pytest

from spikecl.config import DataConfig, StreamConfig
from spikecl.data.datasets import Dataset, load_dataset
from spikecl.data.streams import code_stream, make_stream, rotate, stream_from_config
from spikecl.errors import ConfigError
from spikecl.export.samples import trained_stream


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


@pytest.mark.parametrize("kind", ["rotated", "split"])
def test_every_seed_is_scored_on_the_same_test_subsample(digits, kind):
    """``test_per_task`` draws the same evaluation images for every run seed (the report's "one data split for every
    seed"); on a rotated stream every task holds the same images, rotated; training subsamples still vary."""
    a, b = (make_stream(digits, kind, 2, "domain", train_per_task=100, test_per_task=30, seed=s) for s in (0, 1))
    for ta, tb in zip(a, b):
        np.testing.assert_array_equal(ta.x_test, tb.x_test)
        np.testing.assert_array_equal(ta.y_test, tb.y_test)
        assert not np.array_equal(ta.x_train, tb.x_train)
    if kind == "rotated":                              # task 1 is unrotated: its images are the dataset's own
        flat = digits.x_test.reshape(len(digits.x_test), -1)
        rows = [int(np.flatnonzero((flat == x.reshape(-1)).all(axis=1))[0]) for x in a[0].x_test]
        np.testing.assert_array_equal(a[1].x_test, rotate(digits.x_test[rows], 90.0))


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "shuffled"}, "stream.kind: 'shuffled' is not allowed"),
    ({"scenario": "instance"}, "stream.scenario: 'instance' is not allowed"),
    ({"kind": "split", "n_tasks": 4, "classes_per_task": 3}, "do not fit in the 10 classes"),
    ({"n_tasks": 0}, "stream.n_tasks"),
    ({"classes_per_task": 2}, "stream.classes_per_task: applies only to split streams, not 'permuted'"),
    ({"kind": "split", "first_task_identity": True}, "stream.first_task_identity: applies only to permuted"),
    ({"max_angle_deg": 90.0}, "stream.max_angle_deg: applies only to rotated streams"),
    ({"kind": "split", "n_tasks": 2, "classes_per_task": 1}, r"^stream.classes_per_task: 1: one class per task gives "
                                                            r"each task a one-output head under the 'domain' scenario"),
    ({"kind": "split", "n_tasks": 10, "scenario": "task"}, r"^stream.n_tasks: 10 tasks of 10 classes: one class per "
                                                           r"task gives each task a one-output head under the 'task'"),
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


def test_stream_from_config_honours_the_validation_protocol_and_the_input_code():
    data = DataConfig(dataset="digits", validation=0.2, eval_split="validation", vary_split=True)
    dense = StreamConfig(kind="permuted", n_tasks=2, train_per_task=300)
    plain = stream_from_config(dense, data, seed=3)
    # seed 3 draws its own validation images (vary_split) from seed 0's training split; the tasks evaluate on them
    expected = make_stream(load_dataset("digits", seed=0), "permuted", 2, "domain", seed=3, train_per_task=300,
                           validation=0.2, eval_split="validation", split_seed=3)
    for task, other in zip(plain, expected):
        assert task.eval_split == "validation" and len(task.y_train) == 300 and len(task.y_test) == 287
        np.testing.assert_array_equal(task.x_test, other.x_test)
        np.testing.assert_array_equal(task.x_train, other.x_train)
    fixed = stream_from_config(dense, replace(data, vary_split=False), seed=3)
    assert not np.array_equal(fixed[0].x_test, plain[0].x_test)               # seed 0's split for every seed
    coded = stream_from_config(replace(dense, input_code="flyhash", code_units=128, code_sparsity=0.1), data, seed=3)
    assert coded.input_shape == (1, 1, 128) and coded.name == "permuted-digits-flyhash"
    for task, other in zip(coded, code_stream(plain, 128, 0.1, 0.1, seed=3)):   # the code of those same images
        np.testing.assert_array_equal(task.x_test, other.x_test)
        np.testing.assert_array_equal(task.x_train.reshape(300, -1).sum(axis=1), 13)


def test_export_rebuilds_the_stream_training_used():
    from spikecl.config import experiment_from_dict
    from spikecl.continual.runner import build_stream
    from spikecl.export.samples import stream_samples, trained_stream

    cfg = experiment_from_dict({"data": {"dataset": "digits", "validation": 0.1, "vary_split": True},
                                "stream": {"kind": "split", "scenario": "task", "n_tasks": 2, "input_code": "flyhash",
                                           "code_units": 256}})
    stored = {**cfg.to_dict(), "method": "finetune", "seed": 2}              # as a results file stores it
    trained, exported = build_stream(cfg, 2), trained_stream(stored)
    assert exported.input_shape == trained.input_shape == (1, 1, 256)
    for a, b in zip(trained, exported):
        for key in ("x_train", "y_train", "x_test", "y_test"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    x, y, heads = stream_samples(stored, 100)
    assert x.shape == (100, 1, 1, 256) and heads.tolist() == [0] * 50 + [1] * 50
    np.testing.assert_array_equal(x[50:], trained[1].x_test[:50])


@pytest.mark.parametrize("scenario", ["class", "task"])
def test_a_task_without_training_samples_is_refused_before_training(scenario):
    """A dataset whose training split lacks some classes (a partial download) would train nothing on their task
    and still report numbers: the stream refuses it, naming the task and its classes (the dataset's, not the
    labels a task-incremental head gives them)."""
    from spikecl.errors import DataError

    x = np.zeros((10, 1, 2, 2), np.float32)
    partial = Dataset("partial", x, np.arange(10, dtype=np.int64) % 5, x, np.arange(10, dtype=np.int64), 10)
    with pytest.raises(DataError, match=r"stream: task 2 has no training samples \(partial holds none of its "
                                        r"classes, 5, 6, 7, 8, 9\)"):
        make_stream(partial, "split", 2, scenario)


def test_a_stored_config_with_another_kinds_option_still_rebuilds_its_stream():
    """Results written before such options were refused keep them in their config: export and deploy rebuild the
    stream the network was trained on (the option was ignored then too)."""
    from spikecl.export.samples import trained_stream

    stored = {"seed": 0, "data": {"dataset": "digits"},
              "stream": {"kind": "permuted", "n_tasks": 2, "scenario": "domain", "max_angle_deg": 90.0}}
    plain = {**stored, "stream": {k: v for k, v in stored["stream"].items() if k != "max_angle_deg"}}
    a, b = trained_stream(stored), trained_stream(plain)
    assert a.name == "permuted-digits" and all(np.array_equal(x.x_test, y.x_test) for x, y in zip(a, b))


def test_a_stored_config_without_a_seed_rebuilds_the_stream_of_seed_0():
    """A stored config that records no run seed rebuilds the stream of the default seed 0, not of another seed."""
    stored = {"data": {"dataset": "digits"}, "stream": {"kind": "permuted", "n_tasks": 2, "scenario": "domain"}}
    unseeded, zero, one = (list(trained_stream(c)) for c in (stored, {**stored, "seed": 0}, {**stored, "seed": 1}))
    assert all(np.array_equal(a.x_test, b.x_test) for a, b in zip(unseeded, zero))
    assert not np.array_equal(unseeded[1].x_test, one[1].x_test)



def test_consecutive_run_seeds_draw_independent_training_subsamples():
    """The subsample seed was seed + 1000 + task: run seed 1's task 0 drew exactly run seed 0's task 1. Each
    (seed, task) now draws its own."""
    from spikecl.data.datasets import load_dataset
    from spikecl.data.streams import make_stream

    data = load_dataset("digits")
    a, b = (make_stream(data, "permuted", 3, "domain", seed=s, train_per_task=100) for s in (0, 1))
    def images(task):                                 # each image's sorted pixels: the same under any permutation
        return {row.tobytes() for row in np.sort(task.x_train.reshape(len(task.x_train), -1), axis=1)}

    assert len(images(a[1]) & images(b[0])) < 50       # before: all 100 the same images


def test_a_configs_stream_cannot_be_edited_in_place_behind_the_results():
    """A run given a stream of its config records that config; the stream's arrays are read-only, so editing one in
    place (which a run would have trained on while recording the config's stream) fails where it is done. A copy is
    the user's own stream, which the run compares with its config's."""
    stream = stream_from_config(StreamConfig(kind="permuted", n_tasks=2), DataConfig(dataset="digits"), seed=0)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(stream.tasks[1], name)[:1] = 0
    edited = stream.tasks[1].x_train.copy()
    edited[:] = 0.0
    assert stream.tasks[1].x_train.any()


def test_a_subsample_keeps_every_class_and_breaks_ties_in_label_order_on_every_machine():
    """Largest remainders first: a class whose share rounds to 0 lost its only sample (never trained or tested)
    although n held one of each; tied remainders went by numpy's default sort, which orders ties by the CPU's
    vector unit (the same seed gave other tasks on another machine)."""
    from spikecl.data.streams import _subsample

    y = np.repeat([0, 1], [20, 1])
    _, kept = _subsample(np.arange(21), y, 10, 0)
    assert np.bincount(kept).tolist() == [9, 1]
    y = np.repeat(np.arange(40), [20, 30] * 20)                          # 40 classes, every remainder one of two
    _, kept = _subsample(np.arange(len(y)), y, 50, 0)
    per_class = np.bincount(kept, minlength=40)
    assert per_class.tolist() == [1, 2] * 10 + [1] * 20        # the ten extras go to the first ten tied classes


def test_a_subsample_comes_in_random_order_not_class_by_class():
    """_subsample promises "exactly n samples in random order": export's stream_samples takes each task's *first*
    samples, which class-by-class order would make one class."""
    from spikecl.data.streams import _subsample

    y = np.repeat(np.arange(4), 50)
    x = np.arange(200, dtype=np.float32)[:, None]
    xs, ys = _subsample(x, y, 40, 0)
    assert sorted(np.bincount(ys).tolist()) == [10, 10, 10, 10]
    assert np.any(np.diff(ys) < 0)                         # not sorted by class
    assert len(set(ys[:8].tolist())) >= 2                  # the first samples are not all of one class


def test_a_subsample_draws_distinct_samples():
    """A subsample takes samples without replacement: 90 of 100 samples (5 classes of 20) are 90 different ones,
    18 of each class."""
    from spikecl.data.streams import _subsample

    y = np.repeat(np.arange(5), 20)
    xs, ys = _subsample(np.arange(100), y, 90, 0)
    assert len(set(xs.tolist())) == 90 and np.bincount(ys).tolist() == [18] * 5
    np.testing.assert_array_equal(y[xs], ys)


def test_rotation_reproduces_an_affine_image_exactly_inside_the_frame():
    """Bilinear interpolation is exact for an affine image f(row, col) = 3·row + col: rotated by 30°, every pixel
    whose source lies inside the image holds f at its source point (cy + cos θ·dy + sin θ·dx, cx − sin θ·dy +
    cos θ·dx), the rotation read backwards about the centre (3.5, 3.5)."""
    rows, cols = np.mgrid[0:8, 0:8].astype(np.float64)
    image = (3 * rows + cols)[None, None]
    theta = np.deg2rad(30.0)
    dy, dx = rows - 3.5, cols - 3.5
    src_y, src_x = 3.5 + np.cos(theta) * dy + np.sin(theta) * dx, 3.5 - np.sin(theta) * dy + np.cos(theta) * dx
    inside = (src_y >= 0) & (src_y <= 7) & (src_x >= 0) & (src_x <= 7)
    assert inside.sum() > 30
    np.testing.assert_allclose(rotate(image, 30.0)[0, 0][inside], (3 * src_y + src_x)[inside], atol=1e-9)

def test_every_task_of_a_seed_draws_its_own_training_subsample():
    """train_subsample_seed(seed, task): the tasks of one run draw different training images (a permutation keeps
    every image's pixel sum, so equal multisets of sums would mean the same images)."""
    s = make_stream(load_dataset("digits"), "permuted", 2, "domain", train_per_task=100, seed=0)
    sums = [np.sort(t.x_train.reshape(len(t.x_train), -1).sum(1)) for t in s]
    assert not np.array_equal(sums[0], sums[1])


def test_check_samples_refuses_tasks_out_of_order():
    """Task-incremental heads and the accuracy matrix's rows follow Task.index: a stream whose tasks are not 0, 1, …
    in order is refused (DataError), not trained with crossed heads."""
    from spikecl.data.streams import check_samples
    from spikecl.errors import DataError

    s = make_stream(load_dataset("digits"), "split", 2, "task")
    assert check_samples(s) is s
    with pytest.raises(DataError, match=r"task indices \[1, 0\] are not 0..1 in order"):
        check_samples(replace(s, tasks=s.tasks[::-1]))
