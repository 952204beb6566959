"""Writers of tiny event-dataset files in their real formats (N-MNIST .bin, SHD HDF5, Tonic's DVS Gesture .npy),
and stand-in datasets built from them whose classes are separable."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ENGLISH = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
GERMAN = ["null", "eins", "zwei", "drei", "vier", "fuenf", "sechs", "sieben", "acht", "neun"]


def write_nmnist(path: Path, x, y, p, t_us) -> None:
    """One N-MNIST file: 5 bytes per event — x, y, polarity (bit 7) with time bits 22..16, time bits 15..0."""
    t = np.asarray(t_us, dtype=np.uint32)
    raw = np.stack([np.asarray(x), np.asarray(y), (np.asarray(p) << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF,
                    t & 0xFF], axis=1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.tobytes())


def write_shd(path: Path, times_s: list, units: list, labels, speakers, keys=ENGLISH + GERMAN) -> None:
    """One SHD file: ragged ``spikes/times`` (s, float) and ``spikes/units`` (uint16), ``labels``, ``extra/keys``,
    ``extra/speaker``."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for name, rows, dtype in (("spikes/times", times_s, np.float32), ("spikes/units", units, np.uint16)):
            ragged = np.empty(len(rows), dtype=object)
            ragged[:] = [np.asarray(r, dtype) for r in rows]
            f.create_dataset(name, data=ragged, dtype=h5py.vlen_dtype(dtype))
        f.create_dataset("labels", data=np.asarray(labels, np.uint8))
        f.create_dataset("extra/keys", data=np.asarray([k.encode() for k in keys]))
        f.create_dataset("extra/speaker", data=np.asarray(speakers, np.uint8))


def write_gesture(path: Path, x, y, p, t_ms) -> None:
    """One DVS Gesture recording as Tonic stores it: int array [E, 4] of (x, y, p, t in ms)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.stack([x, y, p, t_ms], axis=1).astype(np.int64))


def _band(rng, label: int, n: int, width: int, size: int, n_classes: int) -> np.ndarray:
    """``n`` coordinates in class ``label``'s band of a ``size``-wide axis."""
    start = label * (size - width) // max(n_classes - 1, 1)
    return rng.integers(start, start + width, n)


def standin_shd(root: Path, per_class: int = 3, seed: int = 0, keys=ENGLISH + GERMAN) -> Path:
    """SHD train/test files under ``root/SHD`` whose class ``c`` fires units in its own band of 700 channels."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", max(1, per_class // 2))):
        labels = np.repeat(np.arange(20), n)
        units = [_band(rng, c, 40, 30, 700, 20) for c in labels]
        times = [np.sort(rng.uniform(0, 0.8, 40)) for _ in labels]
        write_shd(root / "SHD" / f"shd_{split}.h5", times, units, labels, rng.integers(0, 12, len(labels)), keys)
    return root


def standin_nmnist(root: Path, per_class: int = 2, seed: int = 0) -> Path:
    """N-MNIST Train/Test folders under ``root/NMNIST``; digit ``c``'s events lie in its own column band."""
    rng = np.random.default_rng(seed)
    for split, n in (("Train", per_class), ("Test", 1)):
        for c in range(10):
            for i in range(n):
                e = 30
                write_nmnist(root / "NMNIST" / split / str(c) / f"{i:05d}.bin", _band(rng, c, e, 6, 34, 10),
                             rng.integers(0, 34, e), rng.integers(0, 2, e), np.sort(rng.integers(0, 300_000, e)))
    return root


def standin_gesture(root: Path, seed: int = 0) -> Path:
    """DVS Gesture train/test folders under ``root/DVSGesture``: one recording per class and user."""
    rng = np.random.default_rng(seed)
    for split, users in (("ibmGestureTrain", (1, 2)), ("ibmGestureTest", (24,))):
        for user in users:
            for c in range(11):
                e = 50
                write_gesture(root / "DVSGesture" / split / f"user{user:02d}_fluorescent" / f"{c}.npy",
                              _band(rng, c, e, 12, 128, 11), rng.integers(0, 128, e), rng.integers(0, 2, e),
                              np.sort(rng.integers(0, 6000, e)))
    return root
