"""Dataset loaders at their edges: which folder's IDX files are read, damaged pickles, missing keys, wrong shapes."""

import pickle
import re
import shutil
import struct

import numpy as np
import pytest

from spikecl.data.base import Dataset, dataset_crc, fixed_order
from spikecl.data.datasets import load_dataset
from spikecl.data.pickles import load_data_pickle
from spikecl.data.streams import make_stream
from spikecl.errors import ConfigError, DataError, ShapeError
from test_bad_input_corpus import mini_folder
from test_datasets import tiny_mnist, write_idx
from test_safe_loading import _cifar10_folder


def _one_line_error(match, *args):
    with pytest.raises(DataError, match=match) as info:
        load_dataset(*args)
    assert "\n" not in str(info.value)


def test_idx_files_come_from_the_dataset_folder_first_and_all_from_one_folder(tmp_path):
    mnist = tiny_mnist(tmp_path, seed=0)                               # MNIST directly in data_dir
    fashion = tiny_mnist(tmp_path / "FashionMNIST" / "raw", compress=True, seed=1)
    d = load_dataset("fashion_mnist", str(tmp_path))
    train = fixed_order(len(d.y_train))                      # each split in its fixed order
    np.testing.assert_allclose(d.x_train[:, 0], fashion["train-images-idx3-ubyte"][train] / 255.0, rtol=1e-6)
    test = fixed_order(len(d.y_test))
    np.testing.assert_allclose(d.x_test[:, 0], fashion["t10k-images-idx3-ubyte"][test] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(load_dataset("mnist", str(tmp_path)).y_test,
                                  mnist["t10k-labels-idx1-ubyte"][fixed_order(len(d.y_test))])
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # data_dir keeps MNIST's train files only
        (tmp_path / name).unlink()
    d = load_dataset("fashion_mnist", str(tmp_path))
    train = fixed_order(len(d.y_train))                      # each split in its fixed order
    np.testing.assert_allclose(d.x_train[:, 0], fashion["train-images-idx3-ubyte"][train] / 255.0, rtol=1e-6)
    _one_line_error(f"{re.escape(str(tmp_path))}: holds only some of mnist's IDX files, missing "
                    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte", "mnist", str(tmp_path))
    tiny_mnist(tmp_path)                                               # a half-copied FashionMNIST/raw: no MNIST
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    _one_line_error(r"FashionMNIST/raw: holds only some of fashion_mnist's IDX files, missing t10k-labels-idx1-ubyte "
                    r"\(all four must be in one folder\)", "fashion_mnist", str(tmp_path))


def _framed(length: int) -> bytes:
    data = bytearray(pickle.dumps({"image_data": np.zeros((2, 8, 8, 3), np.uint8)}, protocol=4))
    assert data[2] == 0x95                                             # FRAME, then an 8-byte little-endian length
    data[3:11] = struct.pack("<Q", length)
    return bytes(data)


@pytest.mark.parametrize("damaged", [
    _framed(1 << 44),                                                  # MemoryError
    _framed(1 << 63),                                                  # OverflowError
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2).replace(b"latin1", b"latinX", 1),  # Lookup
])
def test_damaged_pickles_are_one_line_data_errors(tmp_path, damaged):
    path = tmp_path / "batch.pkl"
    path.write_bytes(damaged)
    with pytest.raises(DataError, match=re.escape(f"{path}: unreadable pickle (")):
        load_data_pickle(path)


def test_missing_image_keys_are_named(tmp_path):
    _cifar10_folder(tmp_path, {b"labels": [0, 1]})
    _one_line_error(r"cifar-10-batches-py/test_batch: missing 'data'$", "cifar10", str(tmp_path))
    mini_folder(tmp_path, {"class_dict": {"n01": [0, 1]}})
    _one_line_error(r"mini-imagenet-cache-test\.pkl: missing 'image_data'$", "miniimagenet", str(tmp_path / "data"))


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_idx_images_of_the_wrong_shape_name_the_file(tmp_path, split):
    n = len(tiny_mnist(tmp_path)[f"{split}-labels-idx1-ubyte"])
    write_idx(tmp_path / f"{split}-images-idx3-ubyte", np.zeros((n, 32, 32), np.uint8))
    _one_line_error(re.escape(f"{tmp_path / f'{split}-images-idx3-ubyte'}: mnist: images are (1, 32, 32) (C, H, W); "
                              "mnist images are (1, 28, 28)"), "mnist", str(tmp_path))


@pytest.mark.parametrize("name, array, message", [
    ("train-labels-idx1-ubyte", np.zeros(11, np.uint8),
     "{labels}: mnist: 11 labels for the 12 images of {images}"),
    ("train-labels-idx1-ubyte", np.zeros((12, 2), np.uint8),
     "{labels}: IDX file of 2 dimensions; images have 3 (N, H, W), labels 1"),
    ("train-images-idx3-ubyte", np.zeros(12, np.uint8),
     "{images}: mnist: images of shape (12,); an IDX image file holds [N, H, W]"),
    ("empty", None, "{images}: mnist: the file holds no images"),
])
def test_idx_images_and_labels_that_do_not_pair_name_the_files(tmp_path, name, array, message):
    tiny_mnist(tmp_path)
    if name == "empty":                                      # both training files empty (and so the test files)
        for split in ("train", "t10k"):
            write_idx(tmp_path / f"{split}-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
            write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.zeros(0, np.uint8))
    else:
        write_idx(tmp_path / name, array)
    _one_line_error(re.escape(message.format(labels=tmp_path / "train-labels-idx1-ubyte",
                                             images=tmp_path / "train-images-idx3-ubyte")) + "$",
                    "mnist", str(tmp_path))


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_a_python3_pickle_of_old_protocol_with_empty_bytes_is_read(tmp_path, protocol):
    """Protocols 0-2 store an empty bytes value as a call of ``bytes()`` (CIFAR's batch_label may be b'')."""
    _cifar10_folder(tmp_path, {b"batch_label": b"", b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 4]})
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"", b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 4]}, f,
                    protocol=protocol)
    assert load_data_pickle(path)[b"batch_label"] == b""
    np.testing.assert_array_equal(load_dataset("cifar10", str(tmp_path)).y_test, [3, 4])


def _denied_below(monkeypatch, folder):
    """Make path probes below ``folder`` raise PermissionError, as Python 3.11 does for a folder that cannot be
    searched (the suite runs as root, which may search every folder)."""
    import pathlib

    for name in ("is_file", "is_dir", "exists"):
        probe = getattr(pathlib.Path, name)

        def denied(self, probe=probe):
            if folder in self.parents:
                raise PermissionError(13, "Permission denied", str(self))
            return probe(self)
        monkeypatch.setattr(pathlib.Path, name, denied)


def test_a_folder_that_cannot_be_searched_is_one_line_error_not_a_missing_file(tmp_path, monkeypatch, capsys):
    from spikecl.cli import main

    tiny_mnist(tmp_path / "locked")
    _denied_below(monkeypatch, tmp_path / "locked")
    _one_line_error(r"locked/MNIST/raw/train-images-idx3-ubyte: permission denied \(a folder on its way cannot be "
                    r"searched\)$", "mnist", str(tmp_path / "locked"))
    _one_line_error(r"cifar-10-batches-py/data_batch_1: permission denied", "cifar10", str(tmp_path / "locked"))
    denied = "permission denied (a folder on its way cannot be searched)"
    assert main(["report", str(tmp_path / "locked" / "run.h5"), "--no-plots"]) == 2
    assert capsys.readouterr().err == f"spikecl: error: {tmp_path / 'locked' / 'run.h5'}: {denied}\n"
    assert main(["run", "models/split_digits.toml", "--output-dir", str(tmp_path / "locked" / "out")]) == 2
    assert capsys.readouterr().err == f"spikecl: error: {tmp_path / 'locked' / 'out' / 'split-digits'}: {denied}\n"
    for args, where in ((["run", str(tmp_path / "locked" / "exp.toml")], "exp.toml"),
                        (["run", "models/split_digits.toml", "--plugin", str(tmp_path / "locked" / "p.py")], "p.py"),
                        (["report", str(tmp_path / "locked")], "sweep.h5"),
                        (["export", str(tmp_path / "locked" / "run.ckpt"), "-o", str(tmp_path / "n.h5")], "run.ckpt")):
        assert main(args) == 2, args
        assert capsys.readouterr().err == f"spikecl: error: {tmp_path / 'locked' / where}: {denied}\n", args


@pytest.mark.parametrize("call, message", [
    (lambda d: load_dataset("digits", seed=None), "load_dataset: seed must be an integer in 0..2^32-1, got None"),
    (lambda d: make_stream(d, "permuted", 2, "domain", split_seed=1.5), "make_stream: split_seed must be an integer"),
    (lambda d: make_stream(d, "permuted", 2, "domain", validation="0.1"), "data.validation: expected a number"),
])
def test_library_seeds_and_fractions_are_checked_in_one_line(call, message):
    """seed=None drew another train/test split at every call; a string fraction or a float seed was numpy's
    traceback."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        call(load_dataset("digits"))


# a test file in a training file's place, a class in two caches, files from two folders -----------------------
def test_a_test_file_copied_into_a_training_files_place_is_refused(tmp_path):
    """The network would be tested on the very samples it trained on, without a word."""
    folder = _cifar10_folder(tmp_path, {b"data": np.full((2, 3072), 7, np.uint8), b"labels": [0, 1]})
    assert len(load_dataset("cifar10", str(tmp_path)).x_train) == 10
    shutil.copy(folder / "test_batch", folder / "data_batch_5")
    _one_line_error(r"data_batch_5: holds exactly the samples of the test file .*test_batch", "cifar10", str(tmp_path))
    with open(folder / "data_batch_5", "wb") as f:                     # a real test batch says what it is
        pickle.dump({b"batch_label": b"testing batch 1 of 1", b"data": np.zeros((2, 3072), np.uint8),
                     b"labels": [0, 1]}, f, protocol=2)
    _one_line_error(r"data_batch_5: its batch_label 'testing batch 1 of 1' is a test batch, but it sits in the train "
                    "file's place", "cifar10", str(tmp_path))
    mnist = tmp_path / "mnist"
    tiny_mnist(mnist, n_train=5, n_test=5)
    for kind in ("images-idx3", "labels-idx1"):
        shutil.copy(mnist / f"t10k-{kind}-ubyte", mnist / f"train-{kind}-ubyte")
    _one_line_error(r"train-images-idx3-ubyte: holds exactly the samples of the test file", "mnist", str(mnist))


def test_an_idx_file_that_is_a_folder_or_a_broken_link_says_so(tmp_path):
    tiny_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    (tmp_path / "train-images-idx3-ubyte").mkdir()
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte").symlink_to(tmp_path / "gone")
    _one_line_error(r"missing train-images-idx3-ubyte \(a folder\), t10k-labels-idx1-ubyte \(a broken link\) ",
                    "mnist", str(tmp_path))


@pytest.mark.parametrize("emptied", ["data_batch_1", "test_batch"])
def test_a_cifar_batch_holding_no_images_is_refused(tmp_path, emptied):
    """An emptied batch (a 10,000-image batch re-packed wrong) would lose a fifth of the training set unsaid."""
    folder = _cifar10_folder(tmp_path, {b"data": np.full((2, 3072), 7, np.uint8), b"labels": [0, 1]})
    with open(folder / emptied, "wb") as f:
        pickle.dump({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, f, protocol=2)
    _one_line_error(rf"{emptied}: the batch holds no images$", "cifar10", str(tmp_path))


def test_cifar_files_all_come_from_one_folder(tmp_path):
    folder = _cifar10_folder(tmp_path, {b"data": np.full((2, 3072), 7, np.uint8), b"labels": [0, 1]})
    shutil.move(folder / "data_batch_3", tmp_path / "data_batch_3")   # a stray batch of another copy beside it
    _one_line_error(r"cifar-10-batches-py: holds only some of cifar10's files, missing data_batch_3 \(all must be in "
                    "one folder\\)", "cifar10", str(tmp_path))


def test_a_miniimagenet_class_in_two_caches_is_refused(tmp_path):
    mini_folder(tmp_path, {"image_data": np.zeros((2, 84, 84, 3), np.uint8), "class_dict": {"test1": [0, 1]}})
    shutil.copy(tmp_path / "data" / "mini-imagenet-cache-train.pkl", tmp_path / "data" / "mini-imagenet-cache-val.pkl")
    _one_line_error(r"mini-imagenet-cache-val\.pkl: class 'train1' is also in .*mini-imagenet-cache-train\.pkl",
                    "miniimagenet", str(tmp_path / "data"))


def test_task_sizes_too_small_for_every_class_and_uneven_splits_are_refused():
    digits = load_dataset("digits")
    with pytest.raises(ConfigError, match=r"stream.train_per_task: 5 samples cannot hold one of each of task 1's 10 "
                                          r"classes \(some would never be trained\)$"):
        make_stream(digits, "permuted", 2, "domain", train_per_task=5)
    with pytest.raises(ConfigError, match=r"stream.test_per_task: 1 samples .* 2 classes \(some would never be tested"):
        make_stream(digits, "split", 5, "task", test_per_task=1)
    with pytest.raises(ConfigError, match=r"stream.n_tasks: 3 tasks do not split the 10 classes of digits evenly "
                                          r"\(class 9 would be left out\); set stream.classes_per_task = 3"):
        make_stream(digits, "split", 3, "class")
    assert make_stream(digits, "split", 3, "class", classes_per_task=3)[2].classes == (6, 7, 8)
    assert len(make_stream(digits, "permuted", 2, "domain", train_per_task=10)[0].y_train) == 10
    with pytest.raises(ConfigError, match=r"stream.train_per_task: 100000 samples, but task 1 holds 288 training "
                                          r"samples; ask for at most that many \(0 = all\)$"):
        make_stream(digits, "split", 5, "task", train_per_task=100000)
    with pytest.raises(ConfigError, match=r"stream.test_per_task: 73 samples, but task 1 holds 72 test samples"):
        make_stream(digits, "split", 5, "task", test_per_task=73)
    assert [len(t.y_test) for t in make_stream(digits, "split", 5, "task", test_per_task=71)] == [71] * 5
    from spikecl.export.samples import trained_stream                # a network trained before: all, as then

    recorded = trained_stream({"data": {"dataset": "digits"}, "seed": 0, "stream": {
        "kind": "split", "scenario": "class", "n_tasks": 5, "train_per_task": 1000, "test_per_task": 100}})
    assert [len(t.y_train) for t in recorded.tasks] == [288, 288, 291, 288, 283]


def test_the_fixed_order_is_a_shuffle_that_stays_the_same_across_versions():
    """The order every loader keeps a split in is a seeded shuffle (no class-sorted prefix), pinned: another order
    would change which samples a run's evaluation and measures take first, and every dataset's CRC (resumes)."""
    assert fixed_order(8).tolist() == [2, 4, 3, 6, 5, 0, 1, 7]
    assert fixed_order(8).dtype == np.int64


def test_the_dataset_crc_covers_labels_as_well_as_images():
    """Data relabelled in another folder is other data to a resume: one changed label changes the CRC."""
    x, y = np.zeros((4, 1, 2, 2), np.float32), np.array([0, 1, 0, 1], np.int64)
    d = Dataset("d", x, y, x, y, 2)
    relabelled = Dataset("d", x, np.array([0, 1, 1, 1], np.int64), x, y, 2)
    assert dataset_crc(d) == dataset_crc(Dataset("d", x.copy(), y.copy(), x, y, 2)) != dataset_crc(relabelled)


def _images(n=4, shape=(1, 2, 2)):
    return np.zeros((n, *shape), np.float32), np.arange(n, dtype=np.int64) % 2


@pytest.mark.parametrize("make, error, message", [
    (lambda: Dataset("d", *_images(), *_images(), n_classes=True), ConfigError,
     "d: n_classes must be a whole number >= 1, got True"),
    (lambda: Dataset("d", _images()[0] - 0.5, _images()[1], *_images(), n_classes=2), DataError,
     "d: x_train holds pixel values outside 0..1"),
    (lambda: Dataset("d", *_images(), *_images(shape=(1, 3, 3)), n_classes=2), ShapeError,
     "d: train and test images differ in shape"),
    (lambda: Dataset("d", *_images(), *_images(), n_classes=2, domains=("en", "de"), class_domain=(0, 2)),
     DataError, "d: class_domain must give each of 2 classes a domain index below 2"),
    (lambda: Dataset("d", *_images(), *_images(), n_classes=2, domains=("en", "de"), class_domain=(0,)),
     DataError, "d: class_domain must give each of 2 classes a domain index below 2"),
])
def test_a_dataset_refuses_bad_pixels_class_counts_shapes_and_class_domains(make, error, message):
    """Images below 0 (not only above 1), n_classes=True (a bool is no count), test images of another shape than
    the training ones, and a class domain past the domains or not one per class are one-line errors when the
    Dataset is built."""
    with pytest.raises(error, match=f"^{re.escape(message)}"):
        make()
