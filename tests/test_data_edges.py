"""Dataset loaders at their edges: which folder's IDX files are read, damaged pickles, missing keys, wrong shapes."""

import pickle
import re
import struct

import numpy as np
import pytest

from spikecl.data.datasets import load_dataset
from spikecl.data.pickles import load_data_pickle
from spikecl.data.streams import make_stream
from spikecl.errors import ConfigError, DataError
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
    np.testing.assert_allclose(d.x_train[:, 0], fashion["train-images-idx3-ubyte"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(d.x_test[:, 0], fashion["t10k-images-idx3-ubyte"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(load_dataset("mnist", str(tmp_path)).y_test, mnist["t10k-labels-idx1-ubyte"])
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # data_dir keeps MNIST's train files only
        (tmp_path / name).unlink()
    d = load_dataset("fashion_mnist", str(tmp_path))
    np.testing.assert_allclose(d.x_train[:, 0], fashion["train-images-idx3-ubyte"] / 255.0, rtol=1e-6)
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
