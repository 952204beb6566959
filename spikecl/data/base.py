"""The container every dataset loader returns, and the lookup of a dataset's files under ``data_dir``."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikecl.errors import ConfigError, DataError, ShapeError
from spikecl.paths import is_dir, is_file


#: how far outside [0, 1] an intensity may lie and be read as its nearest bound: float32 rounding of images computed
#: from [0, 1] ones (a bilinear rotation turns 1.0 into 1.0000001)
ROUNDING = 1e-5


@dataclass(frozen=True)
class Dataset:
    """A train/test split. ``x_*`` float32 images [N, C, H, W] in [0, 1] or event frames [N, T, C, H, W] (counts);
    ``y_*`` int64 [N] in 0..n_classes-1. ``domains``: names of the recording domains (SHD: its languages) and
    ``class_domain`` the domain of every class, or both empty."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    domains: tuple[str, ...] = ()
    class_domain: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, (int, np.integer)) or self.n_classes < 1:
            raise ConfigError(f"{self.name}: n_classes must be a whole number >= 1, got {self.n_classes!r}")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
                raise ShapeError(f"{self.name}: x_{split} and y_{split} must be numpy arrays, got "
                                 f"{type(x).__name__} and {type(y).__name__}")
            if x.ndim not in (4, 5) or x.dtype != np.float32:
                raise ShapeError(f"{self.name}: x_{split} must be float32 [N, C, H, W] or [N, T, C, H, W], got "
                                 f"{x.dtype} {x.shape}")
            if y.shape != (x.shape[0],) or y.dtype != np.int64:
                raise ShapeError(f"{self.name}: y_{split} must be int64 [{x.shape[0]}], got {y.dtype} {y.shape}")
            if not x.shape[0]:
                raise DataError(f"{self.name}: the {split} split holds no samples")
            if not np.all(np.isfinite(x)):
                raise DataError(f"{self.name}: x_{split} contains NaN or infinity")
            if x.ndim == 4 and (x.min() < 0 or x.max() > 1):
                raise DataError(f"{self.name}: x_{split} holds pixel values outside 0..1 (images are uint8 / 255)")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise DataError(f"{self.name}: y_{split} has labels outside 0..{self.n_classes - 1}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ShapeError(f"{self.name}: train and test images differ in shape")
        if len(self.class_domain) not in (0, self.n_classes) or any(not 0 <= d < len(self.domains)
                                                                    for d in self.class_domain):
            raise DataError(f"{self.name}: class_domain must give each of {self.n_classes} classes a domain index "
                            f"below {len(self.domains)}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image, or of one frame of an event dataset."""
        return tuple(self.x_train.shape[-3:])

    @property
    def time_steps(self) -> int | None:
        """T frames per sample of an event dataset; None for images."""
        return self.x_train.shape[1] if self.x_train.ndim == 5 else None


def dataset_crc(dataset: Dataset) -> int:
    """CRC-32 of a dataset's images and labels as loaded (training, then test): the data a run read, whatever
    folder it came from (a resume from another ``data.data_dir`` may only continue on the same data)."""
    crc = 0
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        crc = zlib.crc32(np.ascontiguousarray(array).view(np.uint8).reshape(-1), crc)
    return crc


#: seed of the fixed order a loaded file's samples are kept in: files may list them by class (N-MNIST's digit
#: folders, DVS Gesture's users, a re-packed IDX or CIFAR file), and whatever takes a task's first samples
#: (continual evaluation's ``eval_samples``, the measures, GPM's and EWC's samples) must not see a single class
ORDER_SEED = 0


def fixed_order(n: int) -> np.ndarray:
    """The order (int64 [n]) a loader keeps a split of ``n`` samples in: random, the same on every load."""
    return np.random.default_rng(ORDER_SEED).permutation(n)


def _same_name(candidates: list[str]) -> list[str]:
    """The candidates naming the first one's file (its accepted places), for a message."""
    return [c for c in candidates if Path(c).name == Path(candidates[0]).name]


def find_path(data_dir: str | None, name: str, candidates: list[str], how: str, folder: bool = False) -> Path:
    """The first existing file (``folder``: directory) among ``candidates`` under ``data_dir``, else a DataError
    explaining ``how``."""
    if not data_dir:
        raise DataError(f"{name} needs its files: {how}; pass --data-dir DIR (or data.data_dir in the experiment)")
    root = Path(data_dir).expanduser()
    for rel in candidates:
        if is_dir(root / rel, DataError) if folder else is_file(root / rel, DataError):
            return root / rel
    raise DataError(f"{name} not found under {root}: expected {' or '.join(_same_name(candidates))}; {how}; point "
                    "--data-dir (data.data_dir) at the folder holding them")


def check_not_test_copy(train: list[tuple[Path, np.ndarray]], test_path: Path, test: np.ndarray) -> None:
    """A training file whose samples equal the test file's (a test file copied or linked in as training data) is a
    one-line DataError: the network would be tested on what it learned; so is one equal to another training file
    (its samples would count twice). ``train``: (file, its samples) pairs."""
    for i, (path, x) in enumerate(train):
        if x.shape == test.shape and np.array_equal(x, test):
            raise DataError(f"{path}: holds exactly the samples of the test file {test_path} (a test file in a "
                            "training file's place?); restore the original training file")
        twin = next((p for p, other in train[:i] if other.shape == x.shape and np.array_equal(other, x)), None)
        if twin is not None:
            raise DataError(f"{path}: holds exactly the samples of the training file {twin} (a file copied in "
                            "another's place?); restore the original training file")
