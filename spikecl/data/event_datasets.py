"""Event datasets read from their standard files under ``data_dir`` in Tonic's layouts (never downloaded), binned to
frames ``x`` float32 ``[N, T, C, H, W]`` (:mod:`spikecl.data.events`); the ``events`` extra installs Tonic.

* ``nmnist`` — N-MNIST: ``NMNIST/{Train,Test}/<digit>/*.bin`` (or ``{Train,Test}/…`` directly in ``data_dir``);
  40-bit events read by Tonic's ``read_mnist_file``; sensor (2 polarities, 34, 34); 10 classes.
* ``shd`` — Spiking Heidelberg Digits: ``SHD/shd_{train,test}.h5`` (or directly in ``data_dir``); HDF5 with
  ``spikes/times`` (s) and ``spikes/units`` (0..699) per sample, ``labels``, ``extra/keys`` (the word of every
  label) and ``extra/speaker``; sensor (1, 1, 700); 20 classes; domains: the language of every class, read from
  ``extra/keys`` (English "zero".."nine", German "null".."neun", with or without a language prefix).
* ``dvs_gesture`` — DVS Gesture as Tonic stores it:
  ``DVSGesture/ibmGesture{Train,Test}/user<NN>_<lighting>/<label>.npy`` (or ``ibmGesture{Train,Test}/…`` directly),
  each an array [E, 4] of (x, y, polarity, t in ms); sensor (2, 128, 128); 11 classes.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np

from spikecl.data.base import Dataset, check_not_test_copy, find_path, fixed_order
from spikecl.data.events import EventBinning, bin_events, pooled_shape
from spikecl.environment import available_memory
from spikecl.errors import ConfigError, DataError, require
from spikecl.hdf5_guard import check_heaps, check_stored_lengths, damage_as
from spikecl.paths import is_dir, is_file

#: how an event camera's recording names the coordinates (c, y, x) of an event, in a message
CAMERA_FIELDS = ("polarity", "y", "x")
#: (C, H, W) of every event dataset's sensor, and its number of classes
SENSORS = {"nmnist": (2, 34, 34), "shd": (1, 1, 700), "dvs_gesture": (2, 128, 128)}
N_CLASSES = {"nmnist": 10, "shd": 20, "dvs_gesture": 11}
LANGUAGES = {"english": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
             "german": ("null", "eins", "zwei", "drei", "vier", "fuenf", "fünf", "sechs", "sieben", "acht", "neun")}


def frame_shape(name: str, binning: EventBinning | None = None) -> tuple[int, int, int]:
    """(C, H, W) of one frame of event dataset ``name`` under ``binning`` (default: no pooling)."""
    if name not in SENSORS:
        raise ConfigError(f"data.dataset: {name!r} is not an event dataset; choose one of {', '.join(SENSORS)}")
    return pooled_shape(SENSORS[name], (binning or EventBinning()).pool)




class SplitFrames:
    """The frames of one split's ``n`` recordings, binned one by one into a single float32 array [n, T, C, H', W']
    in a fixed random order (:func:`fixed_order`) rather than the files' order (no second copy while loading), with
    the checks of their time unit. ``source`` (the split's file or folder) is read in ``unit``."""

    def __init__(self, n: int, binning: EventBinning, sensor: tuple[int, int, int], source: Path, unit: str):
        shape = (n, binning.frames, *pooled_shape(sensor, binning.pool))
        check_fits(shape, source)
        self.x, self.binning, self.sensor, self.source, self.unit = (np.zeros(shape, np.float32), binning, sensor,
                                                                      source, unit)
        self.order = fixed_order(n)
        self.slot = np.empty(n, np.int64)              # where recording i goes: the inverse of the order
        self.slot[self.order] = np.arange(n)
        self.held = self.blank = self.empty = self.spread = self.later = 0

    def put(self, i: int, t_us, c, y, x, name: str, fields: tuple[str, str, str]) -> None:
        """Bin recording ``i`` (its events as :func:`bin_events` takes them; ``name`` names it in an error)."""
        frames = self.x[self.slot[i]]
        frames[...] = bin_events(t_us, c, y, x, self.sensor, self.binning, name, fields)
        self.empty += not len(t_us)
        if len(t_us):
            self.held += 1
            self.blank += not frames.any()
            if self.binning.frames > 1 and self.binning.bin_ms > 0 and np.ptp(t_us) > 0:    # events at two times
                self.spread += 1
                self.later += bool(frames[1:].any())

    def done(self, labels) -> tuple[np.ndarray, np.ndarray]:
        """(frames [n, T, C, H', W'] read-only, labels [n] int64) in the fixed order. A DataError where at least half
        the recordings hold no event or none inside the binning's window (the split would be blank frames), where at
        least half of those that hold events keep none inside the window, or (T > 1 frames of a fixed width) where
        none with events at two times or more has one after the first frame: times in another unit than the one
        read, or a frame width given in µs, would otherwise train on blank frames or on one frame."""
        window = f"the window of {self.binning.frames} frames x {self.binning.bin_ms:g} ms"
        if self.blank and 2 * self.blank >= self.held:
            raise DataError(f"{self.source}: {self.blank} of {len(self.x)} recordings have no event inside {window} "
                            f"(their times are read in {self.unit}; given in another unit, or a window too short?)")
        if self.empty and 2 * (self.empty + self.blank) >= len(self.x):
            raise DataError(f"{self.source}: {self.empty} of {len(self.x)} recordings hold no event at all"
                            + (f" and {self.blank} none inside {window}" if self.blank else "")
                            + ": the split would be blank frames (files written without their events?)")
        if self.spread and not self.later:
            raise DataError(f"{self.source}: every recording holds all its events in the first frame of {window}, "
                            f"the other frames blank in every sample (their times are read in "
                            f"{self.unit}; given in a coarser unit, or data.bin_ms given in µs?)")
        self.x.flags.writeable = False                    # cached: streams index copies out of it
        return self.x, np.asarray(labels, dtype=np.int64)[self.order]


def check_fits(shape: tuple[int, ...], source: Path) -> None:
    """A DataError where frames of ``shape`` as float32 need more than :func:`available_memory` (unchecked where it
    is unknown): the load would fail allocating, or be killed, while binning."""
    need, available = math.prod(shape) * 4, available_memory()
    if available is not None and need > available:
        n, steps, *frame = shape
        raise DataError(f"{source}: {n} recordings of {steps} frames x {'x'.join(map(str, frame))} take "
                        f"{need / 2**30:.1f} GiB as float32, more than the {available / 2**30:.1f} GiB of memory "
                        "available; fewer data.time_bins or a larger data.pool would fit")


# -- N-MNIST ----------------------------------------------------------------------------------------------------
def read_nmnist(path: Path) -> np.ndarray:
    """Events of one N-MNIST ``.bin`` file (5 bytes each: x, y, polarity bit and 23-bit µs time) as Tonic's
    structured array with fields x, y, t, p. A file with time overflow marks (a recording longer than 8.4 s) is
    refused: Tonic's reader misplaces the times after them."""
    tonic = require("tonic", "events")
    if path.is_dir():
        raise DataError(f"{path}: a folder, not an N-MNIST event file")
    try:
        size = path.stat().st_size
        if size == 0:
            raise DataError(f"{path}: an empty N-MNIST file (0 bytes; a damaged download or unzip?)")
        if size % 5:
            raise DataError(f"{path}: not an N-MNIST event file (size is not a multiple of 5 bytes)")
        events = tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
    except OSError as exc:
        raise DataError(f"{path}: unreadable N-MNIST file ({exc.strerror or exc})") from None
    marks = size // 5 - len(events)                      # Tonic's reader drops them from the events
    if marks:
        raise DataError(f"{path}: holds {marks} time overflow mark(s) (records with y = 240), which Tonic's reader "
                        "advances by 2^13 µs, not the 23-bit clock's 2^23 (times would run backwards); N-MNIST's "
                        "recordings (about 0.3 s) hold none")
    return events


def check_readable_folders(folder: Path, pattern: str) -> None:
    """A DataError naming the first folder matching ``pattern`` under ``folder`` that cannot be read: a glob into it
    would skip it, and its samples would be missing without a word."""
    closed = next((d for d in sorted(folder.glob(pattern)) if d.is_dir() and not os.access(d, os.R_OK | os.X_OK)),
                  None)
    if closed:
        raise DataError(f"{closed}: permission denied (the folder cannot be read)")


#: the sample files of a split folder, below its class (N-MNIST) or user (DVS Gesture) folders
SAMPLE_FILES = {"nmnist": "[0-9]/*.bin", "dvs_gesture": "user*_*/*.npy"}


def check_all_read(folder: Path, files: list[Path], suffix: str, layout: str) -> None:
    """A DataError naming the first file ending in ``suffix`` (any case) under ``folder``, at any depth, that is not
    among the ``files`` read (a near-miss layout: a double unzip, a user folder one level down, ``.BIN``), and how
    many more there are: they would be left out of the dataset without a word."""
    read = set(files)
    stray = sorted(f for f in folder.rglob("*") if f.suffix.lower() == suffix and f not in read)
    if stray:
        more = f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""
        raise DataError(f"{stray[0]}: a recording outside the layout read ({layout}){more} would be left out; move "
                        f"it into place or out of {folder}")


def _nmnist_split(folder: Path, binning: EventBinning) -> tuple[np.ndarray, np.ndarray]:
    check_readable_folders(folder, "[0-9]")
    files = sorted(folder.glob(SAMPLE_FILES["nmnist"]))
    if not files:
        raise DataError(f"{folder}: no N-MNIST .bin files in digit folders 0..9")
    check_all_read(folder, files, ".bin", "<digit 0..9>/<name>.bin")
    frames = SplitFrames(len(files), binning, SENSORS["nmnist"], folder, "µs")
    for i, f in enumerate(files):
        ev = read_nmnist(f)
        frames.put(i, ev["t"], ev["p"], ev["y"], ev["x"], str(f), CAMERA_FIELDS)
    return frames.done([int(f.parent.name) for f in files])


# -- SHD --------------------------------------------------------------------------------------------------------
#: other spellings of a digit word (SHD writes "fuenf")
SPELLINGS = {"fünf": "fuenf"}


def _digit(tokens: set[str], lang: str) -> int | None:
    """The digit that the words ``tokens`` of a key name in language ``lang``; None for none or several."""
    words = [w for w in LANGUAGES[lang] if w not in SPELLINGS]
    named = {words.index(SPELLINGS.get(t, t)) for t in tokens if t in LANGUAGES[lang]}
    return named.pop() if len(named) == 1 else None


def class_languages(keys, path: Path) -> tuple[int, ...]:
    """The language (index into :data:`LANGUAGES`) of every class from SHD's ``extra/keys`` words, each language's
    classes naming its ten digits in label order (a domains stream's shared head gives a language's k-th class
    output k: the same digit in every language); else a DataError."""
    names = list(LANGUAGES)
    out, digits = [], []
    for key in keys:
        try:
            word = key.decode() if isinstance(key, bytes) else str(key)
        except UnicodeDecodeError:
            raise DataError(f"{path}: extra/keys entry {bytes(key)!r} is not UTF-8 text") from None
        tokens = set(re.split(r"[^a-zäöüß]+", word.lower()))
        found = [i for i, lang in enumerate(names) if lang in tokens or tokens & set(LANGUAGES[lang])]
        if len(found) != 1:
            raise DataError(f"{path}: extra/keys entry {word!r} names no single language of {', '.join(names)}")
        out.append(found[0])
        digits.append(_digit(tokens, names[found[0]]))
    for i, lang in enumerate(names):
        named = [d for d, owner in zip(digits, out) if owner == i]
        if named and named != list(range(10)):
            shown = ", ".join("?" if d is None else str(d) for d in named)
            raise DataError(f"{path}: extra/keys: the {lang} words name the digits {shown} in label order; a shared "
                            "digit head needs each language's ten digits, 0 to 9, in label order")
    return tuple(out)


#: SHD's datasets and what each holds per entry: an array of numbers (ragged), a number or a word
SHD_DATASETS = {"spikes/times": "ragged arrays of numbers", "spikes/units": "ragged arrays of numbers",
                "labels": "numbers", "extra/keys": "words", "extra/speaker": "numbers"}


#: the most entries an SHD dataset may declare before it is read (SHD's training file holds 8,156 samples)
MAX_SHD_ENTRIES = 10**6


def _shd_dataset(f, name: str, path: Path) -> np.ndarray:
    """Dataset ``name`` of the open SHD file ``f``, read once it is checked to be 1-D and of its
    :data:`SHD_DATASETS` kind (else a DataError naming it)."""
    import h5py
    kind, item = SHD_DATASETS[name], f[name]
    if not isinstance(item, h5py.Dataset):
        raise DataError(f"{path}: {name} must be a 1-D dataset of {kind}, got a group")
    base = h5py.check_vlen_dtype(item.dtype)
    dtype = item.dtype if base is None else np.dtype(base)
    text = dtype.kind in "SU"
    ok = text if kind == "words" else dtype.kind in "iuf" and (base is not None) == kind.startswith("ragged")
    if len(item.shape or ()) != 1 or not ok:
        shown = "strings" if text else f"ragged {dtype}" if base is not None else str(dtype)
        raise DataError(f"{path}: {name} must be a 1-D dataset of {kind}, got {shown} {item.shape}")
    if item.shape[0] > MAX_SHD_ENTRIES:
        raise DataError(f"{path}: {name} declares {item.shape[0]} entries, more than the {MAX_SHD_ENTRIES} an SHD "
                        "file holds here; the file is damaged or not SHD's")
    if base is not None:
        check_stored_lengths(item, path, DataError)
    return item[()]


def _shd_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    """SHD ``labels`` as int64, or a DataError unless they are whole numbers in 0..19."""
    whole = np.isfinite(labels) & (labels == np.floor(labels))
    if not np.all(whole):
        raise DataError(f"{path}: labels must be whole numbers, got {labels[~whole][0]:g}")
    n = N_CLASSES["shd"]
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise DataError(f"{path}: labels outside 0..{n - 1}")
    return labels.astype(np.int64)


def read_shd(path: Path, binning: EventBinning) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Frames [N, T, 1, 1, 700 / pool], labels [N] and the language of every class of one SHD HDF5 file."""
    import h5py
    check_heaps(path, DataError)
    with damage_as(path, DataError), h5py.File(path, "r") as f:
        missing = next((name for name in SHD_DATASETS if name not in f), None)
        if missing:
            raise DataError(f"{path}: not an SHD file (missing {missing}; expected {', '.join(SHD_DATASETS)})")
        times, units, labels, keys, speakers = (_shd_dataset(f, name, path) for name in SHD_DATASETS)
    if not len(times) == len(units) == len(labels) == len(speakers):
        raise DataError(f"{path}: spikes/times, spikes/units, labels and extra/speaker differ in length")
    if len(keys) != N_CLASSES["shd"]:
        raise DataError(f"{path}: extra/keys names {len(keys)} classes; SHD has {N_CLASSES['shd']}")
    labels = _shd_labels(labels, path)
    frames = SplitFrames(len(times), binning, SENSORS["shd"], path, "s (spikes/times)")
    for i, (t, u) in enumerate(zip(times, units)):
        z = np.zeros(len(u), np.int64)
        frames.put(i, np.asarray(t, np.float64) * 1e6, z, z, u, f"{path} sample {i}",
                   ("channel", "row", "spikes/units"))
    return (*frames.done(labels), class_languages(keys, path))


# -- DVS Gesture ------------------------------------------------------------------------------------------------
def read_gesture(path: Path) -> np.ndarray:
    """Events [E, 4] (x, y, polarity, t in ms) of one recording in Tonic's DVS Gesture layout (no pickles); an
    array the file is too short to hold is refused before any is allocated."""
    try:
        check_npy_size(path)
        events = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: unreadable .npy file ({exc or 'empty'})") from None
    if not isinstance(events, np.ndarray):            # np.load opens a zip archive as an NpzFile
        events.close()
        raise DataError(f"{path}: an .npz archive, not a .npy array of events")
    if events.ndim != 2 or events.shape[1] != 4 or events.dtype.kind not in "iuf":
        raise DataError(f"{path}: expected numeric events [E, 4] (x, y, p, t in ms), got {events.dtype} "
                        f"{events.shape}")
    return events


def check_npy_size(path: Path) -> None:
    """A ValueError where the ``.npy`` file ``path`` is shorter than the array its header declares (a few bytes
    declaring terabytes), or is no ``.npy`` file at all (``np.load`` would call it pickled data and suggest
    ``allow_pickle``); an .npz archive is left to ``np.load``."""
    with open(path, "rb") as f:
        start = f.read(6)
        if not start or start.startswith(b"PK"):               # empty: np.load says so
            return
        if start != b"\x93NUMPY":
            raise ValueError("no NumPy signature at its start: not a .npy array")
        f.seek(0)
        version = np.lib.format.read_magic(f)
        shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)(f)
        declared = math.prod(shape) * dtype.itemsize
        if declared > os.fstat(f.fileno()).st_size - f.tell():
            raise ValueError(f"its header declares {dtype} {shape}, {declared} bytes, more than the file holds")


def _gesture_split(folder: Path, binning: EventBinning) -> tuple[np.ndarray, np.ndarray]:
    check_readable_folders(folder, "user*_*")
    files = sorted(f for f in folder.glob(SAMPLE_FILES["dvs_gesture"]) if f.stem.isascii() and f.stem.isdigit())
    if not files:
        raise DataError(f"{folder}: no DVS Gesture recordings user<NN>_<lighting>/<label>.npy")
    check_all_read(folder, files, ".npy", "user<NN>_<lighting>/<label>.npy")
    n = N_CLASSES["dvs_gesture"]
    outside = next((f for f in files if int(f.stem) >= n), None)
    if outside:
        raise DataError(f"{outside}: class {outside.stem} of the file name is outside 0..{n - 1}")
    frames = SplitFrames(len(files), binning, SENSORS["dvs_gesture"], folder, "ms")
    for i, f in enumerate(files):
        ev = read_gesture(f)
        t_us = ev[:, 3].astype(np.float64) * 1000.0           # in float64: float16 ms overflow once in µs
        frames.put(i, t_us, ev[:, 2], ev[:, 1], ev[:, 0], str(f), CAMERA_FIELDS)
    return frames.done([int(f.stem) for f in files])


# -- loading ----------------------------------------------------------------------------------------------------
FOLDERS = {"nmnist": ("NMNIST", "Train", "Test"), "dvs_gesture": ("DVSGesture", "ibmGestureTrain", "ibmGestureTest")}
HOW = {"nmnist": "unzip N-MNIST's Train.zip and Test.zip (digit folders 0..9 of .bin files)",
       "shd": "gunzip SHD's shd_train.h5.gz and shd_test.h5.gz",
       "dvs_gesture": "unpack Tonic's ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz"}


def event_dataset_paths(name: str, data_dir: str | None) -> list[Path]:
    """Where event dataset ``name`` is read from, train then test (SHD: its two HDF5 files; N-MNIST, DVS Gesture:
    their two split folders), found without reading them."""
    if name == "shd":
        base, splits, folder = "SHD", ["shd_train.h5", "shd_test.h5"], False
    else:
        base, *splits = FOLDERS[name]
        folder = True
    first = find_path(data_dir, name, [f"{rel}/{split}" for split in splits for rel in (base, ".")], HOW[name], folder)
    present = is_dir if folder else is_file
    root = Path(data_dir).expanduser()
    for where in (root / base, root):                  # the first folder holding both splits
        if all(present(where / split, DataError) for split in splits):
            return [where / split for split in splits]
    missing = [split for split in splits if not present(first.parent / split, DataError)]
    raise DataError(f"{first.parent}: holds only some of {name}'s files, missing {', '.join(missing)} (both "
                    f"splits must be in one folder); {HOW[name]}")


def files_stamp(name: str, paths: list[Path], samples: bool = True) -> str:
    """A digest of the name, modification time (ns) and size of every file a load of ``name`` reads (the HDF5 files;
    each sample file of the split folders; any dataset's files): a file changed, added or removed since a load is
    read again. ``samples=False``: of the ``paths`` alone (a split folder's own time changes where entries are added,
    removed or renamed in it, not where a sample file is rewritten in place), cheap for a folder of 70,000 files."""
    digest = hashlib.sha1()
    for path in paths:
        for f in sorted(path.glob(SAMPLE_FILES[name])) if samples and name in SAMPLE_FILES else [path]:
            try:
                info = f.stat()
            except OSError:                                  # unreadable: the load names it
                info = f.lstat()
            digest.update(f"{f}\0{info.st_mtime_ns}\0{info.st_size}\n".encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, data_dir: str | None, binning: EventBinning, stamp: str) -> Dataset:
    """The dataset as :func:`load_event_dataset` returns it, cached by its files' ``stamp`` too; every array of it
    read-only (a caller's change would reach the next load)."""
    paths = event_dataset_paths(name, data_dir)
    if name == "shd":
        parts = [read_shd(path, binning) for path in paths]
        if parts[0][2] != parts[1][2]:
            raise DataError(f"{name}: the train and test files' extra/keys name different languages")
        (x_tr, y_tr, lang), (x_te, y_te, _) = parts
        data = Dataset(name, x_tr, y_tr, x_te, y_te, N_CLASSES[name], tuple(LANGUAGES), lang)
    else:
        read = _nmnist_split if name == "nmnist" else _gesture_split
        splits = [read(path, binning) for path in paths]
        data = Dataset(name, *splits[0], *splits[1], N_CLASSES[name])
    check_not_test_copy([(paths[0], data.x_train)], paths[1], data.x_test)
    for value in vars(data).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return data


def load_event_dataset(name: str, data_dir: str | None, binning: EventBinning | None = None) -> Dataset:
    """Event dataset ``name`` (``nmnist``, ``shd``, ``dvs_gesture``) from ``data_dir``, binned by ``binning``; the
    last four loads are cached (read-only arrays)."""
    frame_shape(name, binning)
    where = str(data_dir) if data_dir else None
    return _load_cached(name, where, binning or EventBinning(), files_stamp(name, event_dataset_paths(name, where)))
