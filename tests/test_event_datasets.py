"""Event datasets (N-MNIST, SHD, DVS Gesture) read from tiny files in their real formats, binned to frames, cut into
streams and trained on without an encoder."""

import os
import re
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("tonic")
pytest.importorskip("h5py")

from event_files import (ENGLISH, GERMAN, standin_gesture, standin_nmnist, standin_shd,  # noqa: E402
                         write_gesture, write_nmnist, write_shd)

from spikecl.config import DataConfig, StreamConfig, experiment_from_dict, load_experiment  # noqa: E402
from spikecl.data.datasets import dataset_files, load_dataset  # noqa: E402
from spikecl.data.events import EventBinning, bin_events  # noqa: E402
from spikecl.data.streams import make_stream, stream_from_config  # noqa: E402
from spikecl.errors import ConfigError, DataError, ShapeError  # noqa: E402
from spikecl.snn.encoders import encode  # noqa: E402
from hdf5_files import edited


# -- binning ----------------------------------------------------------------------------------------------------
def test_fixed_width_bins_match_a_hand_count():
    # events (t µs, c, y, x) on a (2, 4, 4) sensor; 3 frames of 1 ms, 2x2 pooling -> frames [3, 2, 2, 2]
    t = [0, 999, 1000, 1500, 2999, 3000]
    c, y, x = [0, 0, 1, 1, 0, 1], [0, 1, 3, 2, 0, 0], [0, 1, 3, 0, 2, 0]
    frames = bin_events(np.array(t), np.array(c), np.array(y), np.array(x), (2, 4, 4), EventBinning(3, 1.0, 2))
    expected = np.zeros((3, 2, 2, 2), np.float32)
    expected[0, 0, 0, 0] = 2         # t=0 at (0,0) and t=999 at (1,1): the same 2x2 block
    expected[1, 1, 1, 1] = 1         # t=1000 at (3,3)
    expected[1, 1, 1, 0] = 1         # t=1500 at (2,0)
    expected[2, 0, 0, 1] = 1         # t=2999 at (0,2); t=3000 falls after 3 frames and is dropped
    np.testing.assert_array_equal(frames, expected)


def test_an_event_on_a_frame_edge_opens_the_next_frame():
    """k · bin_ms ≤ t / 1000 < (k + 1) · bin_ms for whole-µs times, whatever the decimal width (4.03 ms · 1000 is
    4030.0000000000005 as a float, which put t = 4030 µs into frame 0)."""
    zero = np.zeros(1, np.int64)
    for hundredths in range(1, 1000):                            # widths 0.01 .. 9.99 ms
        width = hundredths / 100
        t = np.array([hundredths * 10.0])                         # exactly one width, in µs
        frames = bin_events(t, zero, zero, zero, (1, 1, 1), EventBinning(3, width))
        assert frames[:, 0, 0, 0].tolist() == [0, 1, 0], width


def test_span_bins_keep_every_event():
    t = np.array([0, 10, 50, 99])                # span 100 µs in 4 bins of 25 µs
    frames = bin_events(t, np.zeros(4), np.zeros(4), np.array([0, 1, 1, 2]), (1, 1, 3), EventBinning(4))
    assert frames.shape == (4, 1, 1, 3)
    np.testing.assert_array_equal(frames[:, 0, 0], [[1, 1, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_events_off_the_sensor_are_a_data_error():
    with pytest.raises(DataError, match="x outside 0..3"):
        bin_events(np.array([0]), np.array([0]), np.array([0]), np.array([4]), (1, 4, 4), EventBinning(2))


# -- readers ----------------------------------------------------------------------------------------------------
def test_nmnist_bin_files_are_read_through_tonic(tmp_path):
    # two events of digit 3: (x=5, y=7, on, 100 µs) and (x=33, y=0, off, 70000 µs); 40-bit records
    write_nmnist(tmp_path / "Train/3/00001.bin", [5, 33], [7, 0], [1, 0], [100, 70_000])
    write_nmnist(tmp_path / "Test/1/00001.bin", [0], [0], [0], [0])
    d = load_dataset("nmnist", str(tmp_path), binning=EventBinning(frames=2, bin_ms=50.0))
    assert d.x_train.shape == (1, 2, 2, 34, 34) and d.y_train.tolist() == [3] and d.y_test.tolist() == [1]
    assert d.x_train[0, 0, 1, 7, 5] == 1 and d.x_train[0, 1, 0, 0, 33] == 1 and d.x_train.sum() == 2
    assert d.input_shape == (2, 34, 34) and d.time_steps == 2


@pytest.mark.parametrize("keys", [ENGLISH + GERMAN,
                                  [f"english-{w}" for w in ENGLISH] + [f"german-{w}" for w in GERMAN]])
def test_shd_hdf5_gives_frames_and_languages(tmp_path, keys):
    standin_shd(tmp_path, per_class=2, keys=keys)
    d = load_dataset("shd", str(tmp_path), binning=EventBinning(frames=8, bin_ms=100.0, pool=10))
    assert d.x_train.shape == (40, 8, 1, 1, 70) and d.x_test.shape == (20, 8, 1, 1, 70)
    assert d.x_train.sum() == 40 * 40                      # every spike lies in the 800 ms window
    assert d.domains == ("english", "german") and d.class_domain == (0,) * 10 + (1,) * 10


def test_shd_spike_times_are_seconds(tmp_path):
    """SHD stores seconds: spikes at 0.05 s and 0.15 s fall into frames 0 and 1 of 100 ms."""
    standin_shd(tmp_path, per_class=1)
    write_shd(tmp_path / "SHD" / "shd_train.h5", [[0.05, 0.15]] * 20, [[3, 3]] * 20, np.arange(20), np.zeros(20))
    d = load_dataset("shd", str(tmp_path), binning=EventBinning(frames=2, bin_ms=100.0))
    assert d.x_train[:, :, 0, 0, 3].sum(axis=0).tolist() == [20, 20] and d.x_train.sum() == 40


def test_shd_keys_without_a_language_are_refused(tmp_path):
    standin_shd(tmp_path, per_class=1, keys=[f"word{i}" for i in range(20)])
    with pytest.raises(DataError, match="names no single language"):
        load_dataset("shd", str(tmp_path))


def test_shd_keys_that_are_not_utf8_are_a_one_line_error_naming_the_file(tmp_path):
    standin_shd(tmp_path, per_class=1)
    path = tmp_path / "SHD" / "shd_train.h5"
    with edited(path) as f:
        keys = [bytes(k) for k in f["extra/keys"][()]]
        keys[15] = "fünf".encode("latin-1")
        del f["extra/keys"]
        f.create_dataset("extra/keys", data=np.asarray(keys))
    with pytest.raises(DataError, match=re.escape(f"{path}: extra/keys entry b'f\\xfcnf' is not UTF-8 text")):
        load_dataset("shd", str(tmp_path))


def test_dvs_gesture_npy_times_are_milliseconds(tmp_path):
    write_gesture(tmp_path / "ibmGestureTrain/user01_led/4.npy", np.array([127, 0]), np.array([3, 0]),
                  np.array([1, 0]), np.array([150, 250]))
    write_gesture(tmp_path / "ibmGestureTest/user24_led/0.npy", np.array([0]), np.array([0]), np.array([0]),
                  np.array([0]))
    d = load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(frames=2, bin_ms=200.0, pool=4))
    assert d.x_train.shape == (1, 2, 2, 32, 32) and d.y_train.tolist() == [4]
    assert d.x_train[0, 0, 1, 0, 31] == 1 and d.x_train[0, 1, 0, 0, 0] == 1


@pytest.mark.parametrize("name, expected", [("shd", "SHD/shd_train.h5 or ./shd_train.h5"),
                                            ("nmnist", "NMNIST/Train or ./Train"),
                                            ("dvs_gesture", "DVSGesture/ibmGestureTrain or ./ibmGestureTrain")])
def test_a_missing_file_is_a_one_line_error_naming_it(tmp_path, name, expected):
    with pytest.raises(DataError, match=f"expected {expected}") as info:
        load_dataset(name, str(tmp_path))
    assert "\n" not in str(info.value) and not list(tmp_path.iterdir())     # nothing downloaded


@pytest.mark.parametrize("name, present, missing", [("shd", "shd_train.h5", "shd_test.h5"),
                                                     ("nmnist", "Train", "Test")])
def test_both_splits_of_an_event_dataset_must_be_in_one_folder(tmp_path, name, present, missing):
    """The train split directly under --data-dir and the test split in the dataset's folder (perhaps another copy)
    were taken together; the message named only the dataset's folder."""
    (tmp_path / present).mkdir() if name == "nmnist" else (tmp_path / present).write_bytes(b"not read")
    other = tmp_path / ("SHD" if name == "shd" else "NMNIST") / missing
    other.parent.mkdir()
    other.mkdir() if name == "nmnist" else other.write_bytes(b"not read")
    with pytest.raises(DataError, match=rf"^{tmp_path}: holds only some of {name}'s files, missing {missing} \(both "
                                        r"splits must be in one folder\); "):
        dataset_files(name, str(tmp_path))
    (tmp_path / missing).mkdir() if name == "nmnist" else (tmp_path / missing).write_bytes(b"not read")
    assert dataset_files(name, str(tmp_path)) == [tmp_path / present, tmp_path / missing]   # the folder with both
    (tmp_path / present).rename(other.parent / present)
    assert dataset_files(name, str(tmp_path)) == [other.parent / present, other]


def test_event_dataset_files_are_found_without_reading_them(event_root):
    assert dataset_files("shd", str(event_root)) == [event_root / "SHD/shd_train.h5", event_root / "SHD/shd_test.h5"]
    assert dataset_files("nmnist", str(event_root)) == [event_root / "NMNIST/Train", event_root / "NMNIST/Test"]
    with pytest.raises(DataError, match="expected DVSGesture/ibmGestureTrain"):
        dataset_files("dvs_gesture", str(event_root / "SHD"))


def test_a_corrupt_nmnist_file_is_a_data_error(tmp_path):
    (tmp_path / "Train/0").mkdir(parents=True)
    (tmp_path / "Train/0/x.bin").write_bytes(b"abc")
    (tmp_path / "Test").mkdir()
    with pytest.raises(DataError, match="multiple of 5"):
        load_dataset("nmnist", str(tmp_path))


HUGE_NPY = (b"\x93NUMPY\x01\x00" + (118).to_bytes(2, "little")
            + b"{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 4), }".ljust(117) + b"\n" + bytes(64))


@pytest.mark.parametrize("content, message", [(b"", "unreadable .npy file (No data left in file)"),
                                               (np.array([["a"] * 4]), "expected numeric events [E, 4]"),
                                               (np.zeros((2, 3)), "expected numeric events [E, 4] (x, y, p, t in "
                                                                  "ms), got float64 (2, 3)"),
                                               (np.zeros((2, 5)), "got float64 (2, 5)"),
                                               (HUGE_NPY, "unreadable .npy file (its header declares float64 "
                                                          "(1099511627776, 4), 35184372088832 bytes, more than the "
                                                          "file holds)")])
def test_a_damaged_dvs_gesture_recording_is_a_data_error(tmp_path, content, message):
    write_gesture(tmp_path / "ibmGestureTest/user24_led/0.npy", np.array([0]), np.array([0]), np.array([0]),
                  np.array([5.0]))
    bad = tmp_path / "ibmGestureTrain/user01_led/1.npy"
    bad.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        np.save(bad, content)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_dataset("dvs_gesture", str(tmp_path))
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name, remove, kind, message", [
    ("nmnist", "NMNIST/Train/3", "split", "task 2 has no training samples of class 3 (nmnist holds none; a partial"),
    ("nmnist", "NMNIST/Test/7", "split", "task 4 has no test samples of class 7 (nmnist holds none"),
    ("dvs_gesture", "DVSGesture/ibmGestureTest/user24_fluorescent/9.npy", "split", "task 5 has no test samples of "
                                                                                   "class 9"),
    ("shd", None, "domains", "task 2 has no test samples of class 19 (shd holds none"),
])
def test_a_dataset_missing_a_class_is_refused(tmp_path, name, remove, kind, message):
    """A partial unzip or copy would train or score a task on part of its classes: refused, naming the class."""
    {"nmnist": standin_nmnist, "dvs_gesture": standin_gesture, "shd": standin_shd}[name](tmp_path)
    if remove:
        target = tmp_path / remove
        for f in (target.glob("*") if target.is_dir() else ()):
            f.unlink()
        target.rmdir() if target.is_dir() else target.unlink()
    else:                                              # a test file whose labels stop at 18
        rng = np.random.default_rng(0)
        labels = np.arange(19)
        write_shd(tmp_path / "SHD/shd_test.h5", [np.sort(rng.uniform(0, 0.8, 5)) for _ in labels],
                  [rng.integers(0, 700, 5) for _ in labels], labels, np.zeros(19, int), ENGLISH + GERMAN)
    d = load_dataset(name, str(tmp_path), binning=EventBinning(4, 50.0, 1))
    for scenario in ("task", "class"):                 # the dataset's class is named in every scenario
        with pytest.raises(DataError, match=re.escape(message)) as info:
            make_stream(d, kind, 2 if kind == "domains" else 5, scenario,
                        classes_per_task=2 if kind == "split" else None)
        assert "\n" not in str(info.value)


# -- streams and input ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def event_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("events")
    standin_shd(root), standin_nmnist(root), standin_gesture(root)
    return root


@pytest.mark.parametrize("name, n_tasks, per", [("nmnist", 5, 2), ("shd", 5, 4), ("dvs_gesture", 5, 2)])
@pytest.mark.parametrize("scenario", ["class", "task"])
def test_split_streams_of_event_frames(event_root, name, n_tasks, per, scenario):
    data = DataConfig(dataset=name, data_dir=str(event_root), time_bins=6, pool=2)
    s = stream_from_config(StreamConfig(kind="split", scenario=scenario, n_tasks=n_tasks, classes_per_task=per),
                           data, seed=0)
    assert len(s) == n_tasks and s.input_shape == load_dataset(name, str(event_root),
                                                               binning=EventBinning(6, 0.0, 2)).input_shape
    assert s[1].x_train.shape[1] == 6 and s[1].x_train.ndim == 5
    labels = set(np.unique(s[1].y_train))
    assert labels == (set(range(per, 2 * per)) if scenario == "class" else set(range(per)))


def test_shd_by_language_is_domain_incremental(event_root):
    data = DataConfig(dataset="shd", data_dir=str(event_root), time_bins=4, pool=10)
    s = stream_from_config(StreamConfig(kind="domains", scenario="domain", n_tasks=2), data, seed=0)
    d = load_dataset("shd", str(event_root), binning=EventBinning(4, 0.0, 10))
    assert s.n_outputs == 10 and s.n_heads == 1 and [t.classes for t in s] == [tuple(range(10))] * 2
    german = d.y_test >= 10
    np.testing.assert_array_equal(np.sort(s[1].y_test), np.sort(d.y_test[german] - 10))
    assert sorted(make_stream(d, "domains", 2, "class")[1].classes) == list(range(10, 20))
    with pytest.raises(ConfigError, match="set n_tasks = 2"):
        make_stream(d, "domains", 3, "domain")
    with pytest.raises(ConfigError, match="holds event frames"):
        make_stream(d, "permuted", 2, "domain")


def test_events_encoder_moves_time_first_and_checks_it():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 1, 1, 4)
    seq = encode(x, 3, "events")
    assert seq.shape == (3, 2, 1, 1, 4) and torch.equal(seq[1, 0], x[0, 1])
    with pytest.raises(ShapeError, match="T=5"):
        encode(x, 5, "events")


@pytest.mark.parametrize("changes, message", [
    ({"network": {"encoder": "direct", "num_steps": 20}}, 'needs "events"'),
    ({"network": {"encoder": "events", "num_steps": 4}}, "must equal data.time_bins"),
    ({"stream": {"kind": "permuted"}}, "transforms images"),
    ({"data": {"dataset": "nmnist"}, "stream": {"kind": "domains"}}, "needs a dataset with recording domains"),
])
def test_event_configs_are_checked(changes, message):
    raw = {"data": {"dataset": "shd"}, "stream": {"kind": "split", "n_tasks": 5},
           "network": {"encoder": "events", "num_steps": 20}}
    for section, values in changes.items():
        raw[section] = {**raw[section], **values}
    with pytest.raises(ConfigError, match=message):
        experiment_from_dict(raw)
    with pytest.raises(ConfigError, match="images"):
        experiment_from_dict({"data": {"dataset": "digits"}, "network": {"encoder": "events"}})


@pytest.mark.parametrize("model", ["split_shd", "shd_languages", "split_nmnist", "split_dvs_gesture"])
def test_reference_experiments_load(model):
    cfg = load_experiment(f"models/{model}.toml")
    assert cfg.network.encoder == "events" and cfg.network.num_steps == cfg.data.time_bins


def test_split_shd_runs_end_to_end_on_stand_in_data(tmp_path):
    from spikecl.continual.runner import ContinualRun

    standin_shd(tmp_path / "data", per_class=6)
    cfg = load_experiment("models/split_shd.toml", [f"data.data_dir={tmp_path / 'data'}", "seeds=[0]",
                                                    f"output_dir={tmp_path}", "train.epochs=6", "train.lr=0.01",
                                                    "data.time_bins=10", "network.num_steps=10", "data.bin_ms=100.0",
                                                    "data.pool=10", "network.hidden=[64]", "train.batch_size=8",
                                                    "train.eval_every=0"])
    result = ContinualRun(cfg, "finetune", 0).execute(progress_bar=False)
    acc = np.asarray(result.acc_matrix)
    assert acc.shape == (6, 5)
    assert np.mean(np.diag(acc[1:])) > 0.6           # each task learned right after training (chance 1/20 .. 1/4)


@pytest.mark.parametrize("name", ["nmnist", "dvs_gesture"])
def test_recordings_are_not_kept_in_class_order(event_root, name):
    """The files list recordings by class (N-MNIST's digit folders); a task's first samples, which GPM, EWC and the
    measures take, must hold its classes mixed: the recordings come in a fixed random order, the same every load."""
    data = load_dataset(name, str(event_root), binning=EventBinning(6, 0.0, 2))
    for labels in (data.y_train, make_stream(data, "split", 5, "class", classes_per_task=2)[0].y_train):
        assert np.any(np.diff(labels) < 0), labels                   # not grouped by class
    again = load_dataset(name, str(event_root), binning=EventBinning(4, 0.0, 2))
    assert np.array_equal(again.y_train, data.y_train)


def test_the_event_cache_reads_changed_files_again_and_lends_only_read_only_arrays(tmp_path):
    """A cached load kept serving the files' old contents after they were replaced, and its labels were writable:
    zeroing them changed every later load. The cache is keyed by the files' times and sizes, and nothing it returns
    can be written."""
    import os

    standin_shd(tmp_path, per_class=2)
    first = load_dataset("shd", str(tmp_path))
    with pytest.raises(ValueError, match="read-only"):
        first.y_train[:] = 0
    standin_shd(tmp_path, per_class=4, seed=1)
    for split in ("train", "test"):                        # a copy can keep the time; the size tells them apart
        os.utime(tmp_path / "SHD" / f"shd_{split}.h5", ns=(1, 1))
    assert len(load_dataset("shd", str(tmp_path)).y_train) == 2 * len(first.y_train)


def test_the_event_cache_reads_a_changed_sample_file_inside_a_split_folder_again(tmp_path):
    """A file two levels down changes no folder's time: the cache is keyed by every sample file it reads."""
    standin_nmnist(tmp_path)
    first = load_dataset("nmnist", str(tmp_path), binning=EventBinning(2))
    target = tmp_path / "NMNIST" / "Train" / "3" / "00000.bin"
    write_nmnist(target, np.arange(200) % 34, np.arange(200) % 34, np.zeros(200, int), np.arange(200) * 100)
    again = load_dataset("nmnist", str(tmp_path), binning=EventBinning(2))
    assert again.x_train.sum() == first.x_train.sum() - 30 + 200        # the file's 30 events became 200


def test_the_event_cache_reads_a_sample_file_rewritten_at_the_same_size_again(tmp_path):
    """The same number of events at other pixels keeps the file's size: its modification time keys the cache."""
    standin_nmnist(tmp_path)
    first = load_dataset("nmnist", str(tmp_path), binning=EventBinning(2))
    target = tmp_path / "NMNIST" / "Train" / "3" / "00000.bin"
    write_nmnist(target, np.zeros(30, int), np.zeros(30, int), np.zeros(30, int), np.arange(30))    # 30 events
    os.utime(target, ns=(10**18, 10**18))                        # another time, whatever the clock's resolution
    again = load_dataset("nmnist", str(tmp_path), binning=EventBinning(2))
    assert again.x_train.sum() == first.x_train.sum() and not np.array_equal(again.x_train, first.x_train)


def test_the_dataset_folder_is_read_before_a_copy_directly_in_the_data_dir(tmp_path):
    """Both SHD/ and the data dir itself hold both files: SHD/ is the one read."""
    standin_shd(tmp_path)
    for split in ("train", "test"):
        shutil.copy(tmp_path / "SHD" / f"shd_{split}.h5", tmp_path / f"shd_{split}.h5")
    assert dataset_files("shd", str(tmp_path)) == [tmp_path / "SHD" / "shd_train.h5", tmp_path / "SHD" / "shd_test.h5"]


def test_a_test_file_copied_over_the_training_file_is_refused(tmp_path):
    import shutil

    standin_shd(tmp_path)
    shutil.copy(tmp_path / "SHD" / "shd_test.h5", tmp_path / "SHD" / "shd_train.h5")
    with pytest.raises(DataError, match=r"shd_train\.h5: holds exactly the samples of the test file .*shd_test\.h5"):
        load_dataset("shd", str(tmp_path))
