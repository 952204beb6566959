"""Edge cases of event binning, the event readers, event networks at export, the accuracy/SynOps plot and the
report's NeuroBench note."""

import re
from pathlib import Path
import numpy as np
import pytest

pytest.importorskip("tonic")
pytest.importorskip("h5py")

from event_files import (ENGLISH, GERMAN, standin_gesture, standin_nmnist, standin_shd, write_gesture,  # noqa: E402
                         write_nmnist, write_shd)

from spikecl.data.datasets import load_dataset  # noqa: E402
from spikecl.data.event_datasets import read_nmnist  # noqa: E402
from spikecl.data.events import EventBinning, bin_events  # noqa: E402
from spikecl.errors import ConfigError, DataError  # noqa: E402
from hdf5_files import edited

ONE = np.zeros(1)


@pytest.mark.parametrize("bin_ms", [float("nan"), float("inf"), -1.0])
def test_binning_refuses_a_width_that_is_not_finite_and_non_negative(bin_ms):
    with pytest.raises(ConfigError, match=f"bin_ms {bin_ms!r} must be a finite number >= 0"):
        EventBinning(5, bin_ms, 1)


@pytest.mark.parametrize("field, kwargs", [("frames", {"frames": 2.5}), ("frames", {"frames": True}),
                                           ("pool", {"frames": 4, "pool": 2.0}), ("pool", {"pool": 0})])
def test_binning_refuses_frames_and_pool_that_are_not_integers(field, kwargs):
    with pytest.raises(ConfigError, match=f"event binning: {field} .* must be an integer >= 1"):
        EventBinning(**kwargs)


def test_binning_takes_numpy_integers():
    b = EventBinning(np.int64(2), np.float32(1.0), np.int32(2))
    frames = bin_events(np.array([0.0, 1500.0]), np.zeros(2), np.zeros(2), np.array([0, 3]), (1, 1, 4), b)
    assert frames.shape == (2, 1, 1, 2) and frames[:, 0, 0].tolist() == [[1, 0], [0, 1]]


@pytest.mark.parametrize("bin_ms, t_us", [(1e-12, 1e12), (1e-300, 5.0), (1.0, 1e30)])
def test_a_tiny_width_or_a_huge_time_drops_the_late_event(bin_ms, t_us):
    frames = bin_events(np.array([0.0, t_us]), np.zeros(2), np.zeros(2), np.array([1, 2]), (1, 1, 4),
                        EventBinning(3, bin_ms))
    assert frames.sum() == 1 and frames[0, 0, 0, 1] == 1        # the event at t = 0 only


@pytest.mark.parametrize("x, shown", [(-0.7, "-0.7"), (127.9, "127.9"), (np.nan, "nan")])
def test_gesture_coordinates_that_are_not_whole_numbers_are_refused_naming_the_file(tmp_path, x, shown):
    for split in ("ibmGestureTrain", "ibmGestureTest"):
        path = tmp_path / "DVSGesture" / split / "user01_led" / "3.npy"
        path.parent.mkdir(parents=True)
        np.save(path, np.array([[1.0, 2.0, 0.0, 5.0], [x, 3.0, 1.0, 9.0]]))
    with pytest.raises(DataError, match=rf"ibmGestureTrain/user01_led/3\.npy: event x must be whole numbers, "
                                        rf"got {shown}$"):
        load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(2, 10.0, 4))


def test_negative_or_fractional_polarity_is_refused():
    with pytest.raises(DataError, match="rec: event c outside 0..1"):
        bin_events(ONE, np.array([-1.0]), ONE, ONE, (2, 4, 4), EventBinning(2), "rec")
    with pytest.raises(DataError, match="rec: event c must be whole numbers, got 0.5"):
        bin_events(ONE, np.array([0.5]), ONE, ONE, (2, 4, 4), EventBinning(2), "rec")


def test_whole_float_coordinates_are_binned():
    frames = bin_events(np.array([0.0, 10.0]), np.array([1.0, 0.0]), np.array([3.0, 0.0]), np.array([2.0, 0.0]),
                        (2, 4, 4), EventBinning(1))
    assert frames[0, 1, 3, 2] == 1 and frames[0, 0, 0, 0] == 1 and frames.sum() == 2


def test_an_unreadable_nmnist_file_is_one_data_error(tmp_path):
    for split, x in (("Train", 3), ("Test", 5)):
        write_nmnist(tmp_path / "NMNIST" / split / "1" / "a.bin", [x], [4], [1], [100])
    broken = tmp_path / "NMNIST" / "Train" / "2" / "b.bin"
    broken.parent.mkdir()
    broken.symlink_to(tmp_path / "missing.bin")
    with pytest.raises(DataError, match=r"Train/2/b\.bin: unreadable N-MNIST file \(No such file or directory\)$"):
        load_dataset("nmnist", str(tmp_path), binning=EventBinning(2))
    broken.unlink()
    broken.mkdir()
    with pytest.raises(DataError, match=r"Train/2/b\.bin: a folder, not an N-MNIST event file$"):
        load_dataset("nmnist", str(tmp_path), binning=EventBinning(2))



def test_an_empty_nmnist_file_is_refused_naming_it(tmp_path):
    for split, x in (("Train", 3), ("Test", 5)):
        write_nmnist(tmp_path / "NMNIST" / split / "1" / "a.bin", [x], [4], [1], [100])   # one event: valid
    assert load_dataset("nmnist", str(tmp_path), binning=EventBinning(2)).x_train.sum() == 1
    (tmp_path / "NMNIST" / "Train" / "1" / "b.bin").write_bytes(b"")
    with pytest.raises(DataError, match=r"Train/1/b\.bin: an empty N-MNIST file \(0 bytes; .*\)$"):
        load_dataset("nmnist", str(tmp_path), binning=EventBinning(3))          # another binning: not cached


def test_a_gesture_file_named_for_no_class_is_refused_naming_it(tmp_path):
    standin_gesture(tmp_path)
    write_gesture(tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_led" / "11.npy", *[np.zeros(1)] * 4)
    with pytest.raises(DataError, match=r"ibmGestureTrain/user01_led/11\.npy: class 11 of the file name is outside "
                                        r"0\.\.10$"):
        load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(2, pool=4))


def _shd_changed(root, where, value):
    """Stand-in SHD files whose training file's ``where`` is ``value`` (None: removed; "group": an HDF5 group)."""
    standin_shd(root, per_class=1)
    with edited(root / "SHD" / "shd_train.h5") as f:
        del f[where]
        if isinstance(value, str) and value == "group":
            f.create_group(where)
        elif isinstance(value, tuple):                      # a declared shape, chunked and never written
            f.create_dataset(where, shape=value, dtype="u2", chunks=(2**16,))
        elif value is not None:
            f.create_dataset(where, data=value)
    return root


NUMBERS, RAGGED = "a 1-D dataset of numbers", "a 1-D dataset of ragged arrays of numbers"


@pytest.mark.parametrize("where, value, message", [
    ("labels", np.arange(20) + 0.5, "labels must be whole numbers, got 0.5"),
    ("labels", np.full(20, np.nan), "labels must be whole numbers, got nan"),
    ("labels", np.arange(20) + 1, "labels outside 0..19"),
    ("labels", np.array([b"one"] * 20), f"labels must be {NUMBERS}, got strings (20,)"),
    ("labels", 3, f"labels must be {NUMBERS}, got int64 ()"),
    ("labels", "group", f"labels must be {NUMBERS}, got a group"),
    ("extra/keys", b"zero", "extra/keys must be a 1-D dataset of words, got strings ()"),
    ("extra/speaker", np.zeros((20, 2)), f"extra/speaker must be {NUMBERS}, got float64 (20, 2)"),
    ("spikes/times", 1.0, f"spikes/times must be {RAGGED}, got float64 ()"),
    ("spikes/times", "group", f"spikes/times must be {RAGGED}, got a group"),
    ("spikes/times", np.array([b"0.1"] * 20), f"spikes/times must be {RAGGED}, got strings (20,)"),
    ("spikes/units", np.arange(20), f"spikes/units must be {RAGGED}, got int64 (20,)"),
    ("extra/speaker", None, "not an SHD file (missing extra/speaker; expected spikes/times, spikes/units, labels, "
                            "extra/keys, extra/speaker)"),
    ("labels", (2**40,), "labels declares 1099511627776 entries, more than the 1000000 an SHD file holds here; the "
                         "file is damaged or not SHD's"),
])
def test_a_damaged_shd_file_is_one_data_error_naming_file_and_dataset(tmp_path, where, value, message):
    _shd_changed(tmp_path, where, value)
    with pytest.raises(DataError) as info:
        load_dataset("shd", str(tmp_path), binning=EventBinning(4))
    assert str(info.value) == f"{tmp_path / 'SHD' / 'shd_train.h5'}: {message}"


@pytest.mark.parametrize("keys, split, named", [
    (ENGLISH + GERMAN[::-1], "train", "german words name the digits 9, 8, 7, 6, 5, 4, 3, 2, 1, 0"),
    (ENGLISH + ["zero"] + GERMAN[1:], "train", "english words name the digits 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0"),
    ([f"english-{w}" for w in ENGLISH[:9]] + ["english-ten"] + GERMAN, "train", "english words name the digits "
                                                                                 "0, 1, 2, 3, 4, 5, 6, 7, 8, ?")])
def test_shd_keys_must_name_each_languages_digits_in_label_order(tmp_path, keys, split, named):
    standin_shd(tmp_path, per_class=1, keys=keys)      # else the shared digit head pairs other digits across languages
    path = tmp_path / "SHD" / f"shd_{split}.h5"
    message = (f"{path}: extra/keys: the {named} in label order; a shared digit head needs each language's ten "
               "digits, 0 to 9, in label order")
    with pytest.raises(DataError, match="^" + re.escape(message) + "$"):
        load_dataset("shd", str(tmp_path), binning=EventBinning(4))


def test_a_test_file_whose_keys_name_other_digits_is_refused(tmp_path):
    standin_shd(tmp_path, per_class=1)
    test = tmp_path / "SHD" / "shd_test.h5"
    write_shd(test, [[0.1]] * 20, [[3]] * 20, np.arange(20), np.zeros(20), keys=ENGLISH[::-1] + GERMAN)
    with pytest.raises(DataError, match=rf"^{re.escape(str(test))}: extra/keys: the english words name the digits "
                                        r"9, 8, "):
        load_dataset("shd", str(tmp_path), binning=EventBinning(4))


def test_train_and_test_files_whose_keys_name_other_languages_are_refused(tmp_path):
    """Each file names both languages' digits in order, but the test file puts German first: its class 0 is "null"."""
    standin_shd(tmp_path, per_class=1)
    write_shd(tmp_path / "SHD" / "shd_test.h5", [[0.1]] * 20, [[3]] * 20, np.arange(20), np.zeros(20),
              keys=GERMAN + ENGLISH)
    with pytest.raises(DataError, match="^shd: the train and test files' extra/keys name different languages$"):
        load_dataset("shd", str(tmp_path), binning=EventBinning(4))


@pytest.mark.parametrize("dataset, stray", [
    ("dvs_gesture", "user01_fluorescent/notes.npy"),             # no class number (Tonic's reader fails on it)
    ("dvs_gesture", "user01_fluorescent/three.npy"),
    ("dvs_gesture", "extra/user02_fluorescent/1.npy"),           # a user folder one level too deep
    ("dvs_gesture", "1.npy"),                                    # dropped beside the user folders
    ("nmnist", "4/sub/00000.bin"),                               # a double unzip
    ("nmnist", "5/00007.BIN"),
    ("nmnist", "00000.bin")])
def test_a_recording_outside_the_layout_read_is_named_not_left_out(tmp_path, dataset, stray):
    """A recording in a near-miss layout would be left out of the dataset without a word (a glob skips it): the
    loader names it, and counts the others."""
    if dataset == "dvs_gesture":
        split, source = standin_gesture(tmp_path) / "DVSGesture" / "ibmGestureTrain", "user01_fluorescent/4.npy"
    else:
        split, source = standin_nmnist(tmp_path) / "NMNIST" / "Train", "3/00000.bin"
    (split / stray).parent.mkdir(parents=True, exist_ok=True)
    (split / stray).write_bytes((split / source).read_bytes())
    with pytest.raises(DataError, match=rf"^{re.escape(str(split / stray))}: a recording outside the layout read "
                                        rf"\(.*\) would be left out; move it into place or out of "
                                        rf"{re.escape(str(split))}$"):
        load_dataset(dataset, str(tmp_path), binning=EventBinning(2, pool=4))
    (split / "more.npy" if dataset == "dvs_gesture" else split / "more.bin").write_bytes(b"")
    with pytest.raises(DataError, match=r"\(and 1 more\) would be left out"):
        load_dataset(dataset, str(tmp_path), binning=EventBinning(2, pool=4))


def test_an_shd_unit_off_the_700_channels_is_named_as_spikes_units(tmp_path):
    standin_shd(tmp_path, per_class=1)
    path = tmp_path / "SHD" / "shd_train.h5"
    write_shd(path, [[0.1, 0.2]] * 20, [[700, 2]] + [[3, 4]] * 19, np.arange(20), np.zeros(20))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))} sample 0: event spikes/units outside 0\.\.699 "):
        load_dataset("shd", str(tmp_path), binning=EventBinning(4))


def test_shd_labels_stored_as_whole_floats_are_read(tmp_path):
    data = load_dataset("shd", str(_shd_changed(tmp_path, "labels", np.arange(20.0))), binning=EventBinning(4))
    assert sorted(data.y_train.tolist()) == list(range(20))          # in the fixed random order (fixed_order)

def test_export_of_an_event_network_names_the_encoder_in_one_line(tmp_path, capsys):
    from spikecl.cli import main
    from spikecl.continual.results import ContinualResult, write_continual
    from spikecl.snn.networks import build_mlp
    from spikecl.snn.neurons import LIFParams

    standin_shd(tmp_path / "d", per_class=1)
    net = build_mlp(7, [5], 20, LIFParams(beta=0.9, threshold=1.0, reset="zero"), bias=False)  # 700 / pool 100
    model = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    config = {"data": {"dataset": "shd", "time_bins": 2, "pool": 100},
              "stream": {"kind": "split", "scenario": "class", "n_tasks": 2},
              "network": {"kind": "mlp", "hidden": [5], "reset": "zero", "num_steps": 2, "encoder": "events"}}
    acc = np.array([[0.1, 0.1], [0.9, 0.1], [0.8, 0.9]])                # two tasks, as the config says
    write_continual(tmp_path / "r.h5", ContinualResult("finetune", 0, config, acc, np.zeros(0), np.zeros(0),
                                                       np.zeros((0, 2)), np.ones(2), {"acc": 0.85}, model=model))
    out = tmp_path / "net.h5"
    assert main(["export", str(tmp_path / "r.h5"), "-o", str(out), "--data-dir", str(tmp_path / "d"), "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert "encoder 'events': networks trained on event frames cannot be exported yet" in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def _tick_labels(points, monkeypatch, tmp_path):
    """(x scale, visible x tick labels with their extents) of the accuracy/SynOps figure, drawn."""
    from spikecl.continual import plots

    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig) or path)
    plots.plot_accuracy_vs_synops(points, tmp_path / "p.png")
    fig = figures[0]
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    labels = [t for t in ax.get_xticklabels(which="both") if t.get_visible() and t.get_text()
              and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
    return ax.get_xscale(), [(t.get_text(), t.get_window_extent(renderer)) for t in labels]


@pytest.mark.parametrize("ops, scale", [((10905.6, 10909.6), "linear"), ((15.0, 150.0), "linear"),
                                        ((0.0, 3e6), "linear"), ((15.0, 3e6), "log")])
def test_synops_tick_labels_do_not_overlap(ops, scale, monkeypatch, tmp_path):
    points = {"finetune": ([0.0], [ops[0]]), "replay": ([0.1], [ops[1]])}
    got_scale, labels = _tick_labels(points, monkeypatch, tmp_path)
    assert got_scale == scale and len(labels) >= 2
    boxes = sorted((box.x0, box.x1) for _, box in labels)
    assert all(right < left for (_, right), (left, _) in zip(boxes, boxes[1:])), [text for text, _ in labels]
    if scale == "linear":                                        # plain numbers, no offset or power of ten
        assert all(set(text) <= set("0123456789,.") for text, _ in labels)


def test_the_neurobench_note_names_the_samples_measured():
    from spikecl.continual.report import MEASURES_NOTE
    from spikecl.continual.runner import MEASURE_SAMPLES

    assert f"first {MEASURE_SAMPLES} evaluation samples of every task" in MEASURES_NOTE
    assert 'validation split when data.eval_split = "validation"' in MEASURES_NOTE
    assert "test samples of all tasks" not in MEASURES_NOTE


def test_export_of_an_event_cnn_names_the_encoder_not_the_grid(tmp_path, capsys):
    """An N-MNIST CNN: the refusal is the encoder's (as for an MLP), not "the input grid ... is unknown"."""
    from spikecl.cli import main
    from spikecl.continual.results import ContinualResult, write_continual
    from spikecl.snn.networks import build_cnn

    net = build_cnn((2, 34, 34), [4], 10)
    model = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    config = {"data": {"dataset": "nmnist", "time_bins": 2},
              "stream": {"kind": "split", "scenario": "class", "n_tasks": 2},
              "network": {"kind": "cnn", "channels": [4], "num_steps": 2, "encoder": "events"}}
    acc = np.array([[0.1, 0.1], [0.9, 0.1], [0.8, 0.9]])                # two tasks, as the config says
    write_continual(tmp_path / "r.h5", ContinualResult("finetune", 0, config, acc, np.zeros(0), np.zeros(0),
                                                       np.zeros((0, 2)), np.ones(2), {"acc": 0.85}, model=model))
    for fmt in ("netx", "nir"):
        assert main(["export", str(tmp_path / "r.h5"), "-o", str(tmp_path / f"net.{fmt}"), "--format", fmt]) == 2
        err = capsys.readouterr().err.strip()
        assert "encoder 'events': networks trained on event frames cannot be exported yet" in err
    assert len(err.splitlines()) == 1


def test_an_shd_file_with_damaged_bytes_or_a_dangling_link_is_one_data_error(tmp_path):
    """h5py raises KeyError, RuntimeError or UnicodeDecodeError on damaged bytes and dangling links; each is the
    loader's one-line error naming the file."""
    import h5py

    standin_shd(tmp_path, per_class=1)
    path = tmp_path / "SHD" / "shd_test.h5"
    with edited(path) as f:
        del f["labels"]
        f["labels"] = h5py.SoftLink("/nowhere")
    with pytest.raises(DataError, match=re.escape(f"{path}: unreadable or damaged HDF5 file (")) as info:
        load_dataset("shd", str(tmp_path), binning=EventBinning(4))
    assert "\n" not in str(info.value)
    standin_shd(tmp_path, per_class=1)
    clean, refused = path.read_bytes(), 0
    for offset in range(8, 400, 8):                     # the superblock and the first object headers
        damaged = bytearray(clean)
        damaged[offset] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:                                            # any other exception fails the test
            load_dataset("shd", str(tmp_path), binning=EventBinning(4 + offset))     # no cached copy
        except DataError as exc:
            refused += "damaged HDF5 file" in str(exc)
    assert refused > 5


def test_gesture_npz_archives_float16_times_and_non_ascii_digits(tmp_path):
    """A .npz archive under a .npy name is refused by name; float16 times in ms (6,000 ms overflows float16 once
    multiplied by 1,000) are read; a file named with a non-ASCII digit is not a recording (and is named)."""
    standin_gesture(tmp_path)
    user = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_fluorescent"
    base = load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(2, pool=4))
    events = np.load(user / "3.npy")
    np.save(user / "3.npy", events.astype(np.float16))
    again = load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(3, pool=4))
    assert again.x_train.sum() == base.x_train.sum()
    (user / "\u00b2.npy").write_bytes((user / "4.npy").read_bytes())
    with pytest.raises(DataError, match="\u00b2.npy: a recording outside the layout read"):
        load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(4, pool=4))
    (user / "\u00b2.npy").unlink()
    with open(user / "5.npy", "wb") as f:
        np.savez(f, events=events)
    with pytest.raises(DataError, match=r"user01_fluorescent/5\.npy: an \.npz archive, not a \.npy array of events$"):
        load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(5, pool=4))


def test_an_unreadable_gesture_user_folder_is_named_not_skipped(tmp_path, monkeypatch):
    """A glob skips a folder it cannot read, and its recordings would be missing without a word (the suite runs as
    root, which reads every folder: os.access stands for a user's)."""
    import os

    standin_gesture(tmp_path)
    closed = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_fluorescent"
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != closed and access(path, mode))
    with pytest.raises(DataError, match=f"^{re.escape(str(closed))}: permission denied"):
        load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(6, pool=4))


def test_span_bins_cut_the_span_up_to_the_last_event_plus_one_microsecond():
    """bin_ms = 0: frame floor(t · T / (t_last + 1)); t = 50 of [0, 100] in 2 bins is frame 0 (50 · 2 / 101 < 1)."""
    zero = np.zeros(3)
    frames = bin_events(np.array([0.0, 50.0, 100.0]), zero, zero, zero, (1, 1, 1), EventBinning(2))
    assert frames[:, 0, 0, 0].tolist() == [2, 1]


def test_span_bins_keep_the_last_event_of_a_huge_time():
    """At 2**60 µs, t_last + 1 rounds to t_last in float64: the last event still lands in the last frame."""
    zero = np.zeros(2)
    frames = bin_events(np.array([0.0, 2.0**60]), zero, zero, zero, (1, 1, 1), EventBinning(2))
    assert frames[:, 0, 0, 0].tolist() == [1, 1]


def test_pooling_a_width_with_a_remainder_keeps_a_partial_last_column():
    """A 5-wide sensor pooled by 2 gives ceil(5 / 2) = 3 columns; the event at x = 4 is in the partial column 2."""
    zero = np.zeros(3)
    frames = bin_events(np.array([0.0, 1.0, 2.0]), zero, zero, np.array([0, 3, 4]), (1, 1, 5), EventBinning(1, 0.0, 2))
    assert frames.shape == (1, 1, 1, 3) and frames[0, 0, 0].tolist() == [1, 1, 1]


@pytest.mark.parametrize("t", [-0.5, -1e-9, np.nan])
def test_negative_or_nan_event_times_are_refused(t):
    """Even a time just below 0 (which floors to frame -1) is the one-line DataError naming the recording."""
    with pytest.raises(DataError, match="^rec: event times must be finite and non-negative$"):
        bin_events(np.array([0.0, t]), np.zeros(2), np.zeros(2), np.zeros(2), (1, 1, 1), EventBinning(2), "rec")


def test_event_coordinates_that_are_not_numbers_are_refused():
    """Text coordinates are a DataError naming the field, not cast to numbers."""
    with pytest.raises(DataError, match="^rec: event y must be numbers, got <U1$"):
        bin_events(ONE, ONE, np.array(["0"]), ONE, (1, 1, 1), EventBinning(2), "rec")


def test_shd_keys_may_spell_fuenf_with_an_umlaut(tmp_path):
    """The umlaut spelling "fünf" is read as SHD's "fuenf": the German five, class 15."""
    keys = ENGLISH + ["german-fünf" if w == "fuenf" else w for w in GERMAN]
    data = load_dataset("shd", str(standin_shd(tmp_path, per_class=1, keys=keys)), binning=EventBinning(4))
    assert data.domains == ("english", "german") and data.class_domain == (0,) * 10 + (1,) * 10


def test_an_shd_key_naming_two_digits_or_two_languages_is_refused(tmp_path):
    """A key naming two digits names none ("?"); a key naming words of two languages names no single language."""
    path = tmp_path / "SHD" / "shd_train.h5"
    standin_shd(tmp_path, per_class=1, keys=["zero", "one-two"] + ENGLISH[2:] + GERMAN)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: extra/keys: the english words name the digits "
                                        r"0, \?, 2, 3, "):
        load_dataset("shd", str(tmp_path), binning=EventBinning(4))
    standin_shd(tmp_path, per_class=1, keys=["english-null"] + ENGLISH[1:] + GERMAN)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: extra/keys entry 'english-null' names no single "
                                        "language of english, german$"):
        load_dataset("shd", str(tmp_path), binning=EventBinning(5))


@pytest.mark.parametrize("speakers, keys, message", [
    (np.zeros(19), ENGLISH + GERMAN, "spikes/times, spikes/units, labels and extra/speaker differ in length"),
    (np.zeros(20), ENGLISH, "extra/keys names 10 classes; SHD has 20")])
def test_shd_speakers_of_another_length_or_keys_of_other_than_20_classes_are_refused(tmp_path, speakers, keys,
                                                                                      message):
    """Every per-sample dataset has one entry per sample, and extra/keys names SHD's 20 classes."""
    standin_shd(tmp_path, per_class=1)
    path = tmp_path / "SHD" / "shd_train.h5"
    write_shd(path, [[0.1]] * 20, [[3]] * 20, np.arange(20), speakers, keys)
    with pytest.raises(DataError, match=f"^{re.escape(f'{path}: {message}')}$"):
        load_dataset("shd", str(tmp_path), binning=EventBinning(4))


def test_times_in_another_unit_that_blank_most_recordings_are_refused(tmp_path):
    """SHD times written in ms instead of s put every event past a 10 x 20 ms window: most recordings would train
    as blank frames. A window that cuts recordings short but keeps events is fine."""
    standin_shd(tmp_path, per_class=1)
    path = tmp_path / "SHD" / "shd_train.h5"
    rng = np.random.default_rng(0)
    write_shd(path, [np.sort(rng.uniform(0, 800, 10)) for _ in range(20)], [np.arange(10)] * 20, np.arange(20),
              np.zeros(20))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: 20 of 20 recordings have no event inside the "
                                        r"window of 10 frames x 20 ms \(their times are read in s \(spikes/times\); "
                                        r"given in another unit, or a window too short\?\)$"):
        load_dataset("shd", str(tmp_path), binning=EventBinning(10, 20.0))
    write_shd(path, [np.sort(rng.uniform(0, 0.8, 10)) for _ in range(20)], [np.arange(10)] * 20, np.arange(20),
              np.zeros(20))
    kept = load_dataset("shd", str(tmp_path), binning=EventBinning(10, 20.0)).x_train
    assert 0 < kept.sum() < 20 * 10 and (kept.sum(axis=(1, 2, 3, 4)) > 0).all()


def test_a_split_of_recordings_without_events_is_refused(tmp_path):
    """Recordings stored with no event count as blank: a test split of them (SHD spike trains, DVS Gesture arrays
    written empty) loaded as zero frames without a word. A few empty recordings among others load."""
    standin_shd(tmp_path, per_class=2)
    path = tmp_path / "SHD" / "shd_test.h5"
    write_shd(path, [[]] * 40, [[]] * 40, np.repeat(np.arange(20), 2), np.zeros(40))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: 40 of 40 recordings hold no event at all: the "
                                        r"split would be blank frames \(files written without their events\?\)$"):
        load_dataset("shd", str(tmp_path), binning=EventBinning(4))
    times = [[]] * 18 + [[0.5, 0.9]] * 4 + [[0.1, 0.2]] * 18           # 4 blank in a 4 x 100 ms window
    write_shd(path, times, [[3] * len(t) for t in times], np.repeat(np.arange(20), 2), np.zeros(40))
    with pytest.raises(DataError, match=r"18 of 40 recordings hold no event at all and 4 none inside the window of "
                                        r"4 frames x 100 ms: the split would be blank frames"):
        load_dataset("shd", str(tmp_path), binning=EventBinning(4, 100.0))
    write_shd(path, [[]] * 19 + [[0.1]] * 21, [[]] * 19 + [[3]] * 21, np.repeat(np.arange(20), 2), np.zeros(40))
    x = load_dataset("shd", str(tmp_path), binning=EventBinning(4)).x_test
    assert (x.reshape(40, -1).any(axis=1)).sum() == 21
    standin_gesture(tmp_path)
    for file in (tmp_path / "DVSGesture" / "ibmGestureTest").rglob("*.npy"):
        np.save(file, np.zeros((0, 4)))
    with pytest.raises(DataError, match=r"ibmGestureTest: \d+ of \d+ recordings hold no event at all"):
        load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(4, 100.0))


def test_a_window_too_long_for_the_times_is_refused(tmp_path):
    """A frame width given in µs (20000, as Tonic takes it) puts every event of every recording into the first of T
    frames: the run trained on one frame and T - 1 blank ones without a word. Recordings whose events reach a
    later frame in a window of the right width are kept; one-instant recordings say nothing about the unit."""
    standin_shd(tmp_path, per_class=1)
    with pytest.raises(DataError, match=r"shd_train.h5: every recording holds all its events in the first frame of "
                                        r"the window of 8 frames x 20000 ms, the other frames blank in every sample "
                                        r"\(their times are read in s \(spikes/times\); given in a coarser unit, or "
                                        r"data.bin_ms given in µs\?\)$"):
        load_dataset("shd", str(tmp_path), binning=EventBinning(8, 20000.0))
    kept = load_dataset("shd", str(tmp_path), binning=EventBinning(8, 100.0)).x_train
    assert kept[:, 1:].any()
    write_gesture(tmp_path / "ibmGestureTrain/user01_led/4.npy", np.array([3, 4]), np.array([3, 4]),
                  np.array([1, 0]), np.array([5, 6]))             # one recording, 1 ms apart, in a 1 s x 4 window
    write_gesture(tmp_path / "ibmGestureTest/user24_led/0.npy", np.array([0]), np.array([0]), np.array([0]),
                  np.array([0]))
    with pytest.raises(DataError, match=r"ibmGestureTrain: every recording holds all its events in the first frame"):
        load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(4, 1000.0))


def test_frames_that_do_not_fit_in_memory_are_refused_before_binning(tmp_path, monkeypatch):
    """Binning more frames than memory holds failed with an 18-frame MemoryError traceback (or the OOM killer);
    now one line names the size and the settings that shrink it."""
    from spikecl.data import event_datasets
    standin_shd(tmp_path, per_class=1)
    monkeypatch.setattr(event_datasets, "available_memory", lambda: 2**20)
    with pytest.raises(DataError, match=r"shd_train.h5: 20 recordings of 400 frames x 1x1x700 take 0.0 GiB as "
                                        r"float32, more than the 0.0 GiB of memory available; fewer data.time_bins "
                                        r"or a larger data.pool would fit$"):
        load_dataset("shd", str(tmp_path), binning=EventBinning(400, 2.0))
    monkeypatch.setattr(event_datasets, "available_memory", lambda: 2**30)
    assert load_dataset("shd", str(tmp_path), binning=EventBinning(400, 2.0)).x_train.shape == (20, 400, 1, 1, 700)


def test_frames_are_those_of_each_recording_in_the_fixed_order(tmp_path):
    """Frames are binned straight into their place in the split's fixed order (no list and stacked copy): each
    sample's frames are its own recording's, its label its own."""
    standin_shd(tmp_path, per_class=1)
    path = tmp_path / "SHD" / "shd_train.h5"
    write_shd(path, [[0.01 * (i + 1)] for i in range(20)], [[i] for i in range(20)], np.arange(20), np.zeros(20))
    d = load_dataset("shd", str(tmp_path), binning=EventBinning(1, 0.0))
    assert [int(np.flatnonzero(f[0, 0, 0])[0]) for f in d.x_train] == d.y_train.tolist()
    assert sorted(d.y_train.tolist()) == list(range(20)) and d.y_train.tolist() != list(range(20))


def test_nmnist_time_overflow_marks_are_refused(tmp_path):
    """Tonic's reader advances the time by 2^13 µs at an overflow mark (y = 240), not by the 23-bit clock's 2^23:
    times after it ran backwards without a word."""
    path = tmp_path / "Train/3/00001.bin"
    write_nmnist(path, [1, 0, 2], [1, 240, 2], [1, 0, 1], [8_000_000, 0, 100])
    with pytest.raises(DataError, match=r"00001.bin: holds 1 time overflow mark\(s\) \(records with y = 240\), "
                                        r"which Tonic's reader advances by 2\^13 µs"):
        read_nmnist(path)
    write_nmnist(path, [1, 2], [1, 2], [1, 1], [8_000_000, 8_000_100])
    assert read_nmnist(path)["t"].tolist() == [8_000_000, 8_000_100]


def test_camera_messages_name_polarity_and_a_file_that_is_no_npy(tmp_path):
    """A polarity outside 0..1 was called 'event c'; a text file named .npy got numpy's advice to allow pickles."""
    standin_gesture(tmp_path)
    bad = next((tmp_path / "DVSGesture" / "ibmGestureTrain").glob("user*/*.npy"))
    write_gesture(bad, np.array([0]), np.array([0]), np.array([2]), np.array([0]))
    with pytest.raises(DataError, match=rf"{re.escape(str(bad))}: event polarity outside 0..1"):
        load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(4, 100.0))
    bad.write_text("x y p t\n1 2 1 0\n")
    with pytest.raises(DataError, match=rf"{re.escape(str(bad))}: unreadable .npy file \(no NumPy signature at its "
                                        r"start: not a .npy array\)$"):
        load_dataset("dvs_gesture", str(tmp_path), binning=EventBinning(4, 100.0))
