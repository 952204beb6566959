"""The :class:`SDR` value type: a binary pattern over a fixed shape, stored as sorted active indices (numpy only).

An SDR is immutable. Its one stored array is the sorted, duplicate-free int64 vector of flat active indices.
Copy semantics of the three views:

* ``sdr.sparse`` — **shares memory** with the SDR: the stored index array itself, marked read-only (no copy; writing
  to it raises ``ValueError``).
* ``sdr.dense`` — a **new** bool array of ``shape`` on every call; changing it never changes the SDR.
* ``sdr.coordinates`` — a **new** tuple of int64 arrays (one per dimension) on every call.

Constructors copy their input (``from_dense``, ``from_sparse``, ``from_coordinates``), so later changes to the
caller's array never change an SDR. Bad input (indices out of range, duplicate indices, a non-integer index array,
a non-binary or float dense array, shape mismatches) raises :class:`~spikecl.errors.ShapeError` in one line.

>>> a = SDR.from_sparse(10, [1, 4, 7]); b = SDR.from_sparse(10, [4, 7, 9])
>>> a.overlap(b), a.union(b).sparse.tolist(), a.sparsity
(2, [1, 4, 7, 9], 0.3)
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from spikecl.errors import ConfigError, ShapeError


def _as_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    try:
        dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    except TypeError:
        dims = None
    if not dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in dims):
        raise ShapeError(f"SDR shape must be positive integers, got {shape!r}")
    dims = tuple(int(d) for d in dims)
    if math.prod(dims) >= 2**63:
        raise ShapeError(f"SDR shape {dims} has {math.prod(dims)} bits; bit indices are int64 (fewer than 2**63)")
    return dims


def _check_fraction(fraction: float, name: str) -> float:
    number = (int, float, np.integer, np.floating)
    if isinstance(fraction, bool) or not isinstance(fraction, number) or not 0 <= fraction <= 1:
        raise ConfigError(f"{name} must be a number in [0, 1], got {fraction!r}")
    return float(fraction)


def check_int(value, name: str, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int (Python or numpy integer, not bool) in [low, high]; else a one-line ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):
        where = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be an integer {where}, got {value!r}")
    return int(value)


def _rng(seed) -> np.random.Generator:
    """A generator from a non-negative integer seed or a generator itself; else a one-line ConfigError."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_int(seed, "seed (a numpy Generator or an integer)"))


class SDR:
    """A binary pattern of ``size`` bits laid out as ``shape``; equality compares shape and active bits."""

    __slots__ = ("_shape", "_sparse")

    def __init__(self, shape: int | Sequence[int], sparse: Iterable[int] = ()):
        """Same as :meth:`from_sparse`: ``sparse`` are flat active indices (any order, no duplicates)."""
        self._shape = _as_shape(shape)
        self._sparse = self._validated(sparse)

    # -- construction -------------------------------------------------------------------------------------
    def _validated(self, sparse: Iterable[int]) -> np.ndarray:
        array_like = hasattr(sparse, "__array__") or isinstance(sparse, (list, tuple, str, bytes))
        if isinstance(sparse, Iterable) and not array_like:
            sparse = list(sparse)                              # a set, range or generator of indices
        arr = np.asarray(sparse)
        if arr.size == 0 and arr.ndim == 1:                    # [], (), np.array([]) (float64): no active bit
            arr = np.empty(0, np.int64)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise ShapeError(f"SDR indices must be integers, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ShapeError(f"SDR indices must be a 1-D array, got shape {arr.shape}")
        if arr.dtype.kind == "u" and arr.size and arr.max() >= self.size:     # before int64 could wrap it negative
            raise ShapeError(f"SDR index {arr.max()} is out of range for size {self.size}")
        idx = np.sort(arr.astype(np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= self.size):
            bad = idx[0] if idx[0] < 0 else idx[-1]
            raise ShapeError(f"SDR index {bad} is out of range for size {self.size}")
        if idx.size > 1 and np.any(idx[1:] == idx[:-1]):
            dup = idx[1:][idx[1:] == idx[:-1]][0]
            raise ShapeError(f"SDR indices contain duplicate {dup}")
        idx.setflags(write=False)
        return idx

    @classmethod
    def _trusted(cls, shape: tuple[int, ...], idx: np.ndarray) -> "SDR":
        """An SDR over already sorted, unique, in-range int64 indices (internal; no validation, no copy)."""
        out = cls.__new__(cls)
        out._shape = shape
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        idx.setflags(write=False)
        out._sparse = idx
        return out

    @classmethod
    def from_sparse(cls, shape: int | Sequence[int], indices: Iterable[int]) -> "SDR":
        """From flat active indices (copied, sorted; duplicates and out-of-range indices are errors)."""
        return cls(shape, indices)

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> "SDR":
        """From a bool or integer 0/1 array (copied); its shape becomes the SDR's shape."""
        try:
            arr = np.asarray(dense)
        except ValueError:                                  # a ragged nesting of lists
            raise ShapeError("dense SDR must be a rectangular array of 0/1 (its rows differ in length)") from None
        if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
            raise ShapeError(f"dense SDR must be bool or integer 0/1, got dtype {arr.dtype}")
        if arr.dtype != bool and arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ShapeError(f"dense SDR must hold only 0 and 1, got values in [{arr.min()}, {arr.max()}]")
        shape = _as_shape(arr.shape)
        return cls._trusted(shape, np.flatnonzero(arr).astype(np.int64))

    @classmethod
    def from_coordinates(cls, shape: Sequence[int], coordinates: Sequence[Iterable[int]]) -> "SDR":
        """From one index array per dimension (as ``np.nonzero`` returns); copied and validated."""
        shape = _as_shape(shape)
        try:
            coords = [np.asarray(c) for c in coordinates]
        except (TypeError, ValueError):
            raise ShapeError(f"SDR coordinates must be one index array per dimension (as np.nonzero returns), got "
                             f"{coordinates!r}"[:200]) from None
        coords = [np.empty(0, np.int64) if c.ndim == 1 and c.size == 0 else c for c in coords]   # [] is no bit
        if len(coords) != len(shape):
            raise ShapeError(f"SDR of shape {shape} needs {len(shape)} coordinate arrays, got {len(coords)}")
        if len({c.shape for c in coords}) > 1:
            raise ShapeError("SDR coordinate arrays must all have the same length")
        for dim, (c, n) in enumerate(zip(coords, shape)):
            if c.dtype == bool or not np.issubdtype(c.dtype, np.integer):
                raise ShapeError(f"SDR coordinates must be integers, got dtype {c.dtype} in dimension {dim}")
            if c.size and (c.min() < 0 or c.max() >= n):
                raise ShapeError(f"SDR coordinate out of range in dimension {dim} (size {n})")
        flat = np.ravel_multi_index(coords, shape) if coords[0].size else np.empty(0, np.int64)
        return cls(shape, flat.astype(np.int64))

    @classmethod
    def random(cls, shape: int | Sequence[int], sparsity: float | None = None, *, n_active: int | None = None,
               seed: int | np.random.Generator = 0) -> "SDR":
        """Uniformly random active bits: ``n_active`` of them, or ``round(sparsity * size)``; reproducible."""
        shape = _as_shape(shape)
        size = math.prod(shape)
        if (sparsity is None) == (n_active is None):
            raise ConfigError("SDR.random needs exactly one of sparsity or n_active")
        if n_active is None:
            n_active = int(round(_check_fraction(sparsity, "sparsity") * size))
        n_active = check_int(n_active, "n_active", 0, size)
        rng = _rng(seed)
        return cls._trusted(shape, np.sort(rng.choice(size, n_active, replace=False)))

    # -- views --------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def size(self) -> int:
        """Number of bits (product of the shape)."""
        return math.prod(self._shape)

    @property
    def sparse(self) -> np.ndarray:
        """Sorted flat active indices, int64 ``[n_active]``: the stored array itself (shared, read-only)."""
        return self._sparse

    @property
    def dense(self) -> np.ndarray:
        """A new bool array of ``shape`` (a copy: writing to it does not change the SDR)."""
        out = np.zeros(self.size, dtype=bool)
        out[self._sparse] = True
        return out.reshape(self._shape)

    @property
    def coordinates(self) -> tuple[np.ndarray, ...]:
        """A new tuple of int64 index arrays, one per dimension (as ``np.nonzero(sdr.dense)``)."""
        return tuple(np.asarray(c, dtype=np.int64) for c in np.unravel_index(self._sparse, self._shape))

    @property
    def n_active(self) -> int:
        return int(self._sparse.size)

    @property
    def sparsity(self) -> float:
        """Fraction of active bits, in [0, 1]."""
        return self.n_active / self.size

    def reshape(self, shape: int | Sequence[int]) -> "SDR":
        """The same bits over another shape of equal size (shares the index array: both are immutable)."""
        shape = _as_shape(shape)
        if math.prod(shape) != self.size:
            raise ShapeError(f"cannot reshape an SDR of size {self.size} to {shape}")
        return SDR._trusted(shape, self._sparse)

    # -- set operations -----------------------------------------------------------------------------------
    def _check_same_size(self, other: "SDR") -> None:
        """Set operations pair bits by position: both SDRs must have one shape (a (4, 5) and a (5, 4) SDR hold
        the same number of bits in different cells; :meth:`reshape` one of them first where that is meant)."""
        if not isinstance(other, SDR):
            raise ShapeError(f"expected an SDR, got {type(other).__name__}")
        if other.size != self.size:
            raise ShapeError(f"SDR sizes differ: {self.size} and {other.size}")
        if other.shape != self.shape:
            raise ShapeError(f"SDR shapes differ: {self.shape} and {other.shape}; reshape one to the other's "
                             "first if their bits are meant to correspond")

    def overlap(self, other: "SDR") -> int:
        """Number of bits active in both (the SDR similarity measure)."""
        self._check_same_size(other)
        return int(np.intersect1d(self._sparse, other._sparse, assume_unique=True).size)

    def intersection(self, other: "SDR") -> "SDR":
        """Bits active in both, as a new SDR of this shape."""
        self._check_same_size(other)
        return SDR._trusted(self._shape, np.intersect1d(self._sparse, other._sparse, assume_unique=True))

    def union(self, other: "SDR") -> "SDR":
        """Bits active in either, as a new SDR of this shape."""
        self._check_same_size(other)
        return SDR._trusted(self._shape, np.union1d(self._sparse, other._sparse))

    # -- noise --------------------------------------------------------------------------------------------
    def add_noise(self, fraction: float, seed: int | np.random.Generator = 0) -> "SDR":
        """Move ``round(fraction * n_active)`` active bits to random inactive positions (sparsity kept); at most as
        many as there are inactive positions, so an SDR with more active than inactive bits moves fewer."""
        fraction = _check_fraction(fraction, "noise fraction")
        rng = _rng(seed)
        n_move = int(round(fraction * self.n_active))
        inactive = np.setdiff1d(np.arange(self.size), self._sparse, assume_unique=True)
        n_move = min(n_move, inactive.size)
        keep = rng.choice(self._sparse, self.n_active - n_move, replace=False)
        added = rng.choice(inactive, n_move, replace=False)
        return SDR._trusted(self._shape, np.sort(np.concatenate([keep, added])))

    def drop(self, fraction: float, seed: int | np.random.Generator = 0) -> "SDR":
        """Silence ``round(fraction * n_active)`` randomly chosen active bits (a partial cue)."""
        fraction = _check_fraction(fraction, "drop fraction")
        rng = _rng(seed)
        keep = rng.choice(self._sparse, self.n_active - int(round(fraction * self.n_active)), replace=False)
        return SDR._trusted(self._shape, np.sort(keep))

    # -- value semantics ----------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SDR):
            return NotImplemented
        return self._shape == other._shape and np.array_equal(self._sparse, other._sparse)

    def __hash__(self) -> int:
        return hash((self._shape, self._sparse.tobytes()))

    def __reduce__(self):
        """Pickled (and deep-copied) as its shape and indices, rebuilt through the validating constructor, so a
        copy is read-only like the original and a tampered pickle is refused."""
        return SDR, (self._shape, self._sparse.tolist())

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        head = ", ".join(map(str, self._sparse[:8].tolist())) + (", ..." if self.n_active > 8 else "")
        return f"SDR(shape={self._shape}, n_active={self.n_active}, sparse=[{head}])"

    def copy(self) -> "SDR":
        """Another SDR equal to this one (the immutable index array is shared)."""
        return SDR._trusted(self._shape, self._sparse)


def stack_dense(sdrs: Sequence[SDR]) -> np.ndarray:
    """Bool matrix ``[B, size]`` of a list of equally sized SDRs (a new array)."""
    if not sdrs:
        raise ShapeError("stack_dense needs at least one SDR")
    for s in sdrs:
        if not isinstance(s, SDR):
            raise ShapeError(f"stack_dense takes SDRs, got {type(s).__name__}")
    size = sdrs[0].size
    out = np.zeros((len(sdrs), size), dtype=bool)
    for row, s in enumerate(sdrs):
        if s.size != size:
            raise ShapeError(f"SDR sizes differ: {size} and {s.size}")
        out[row, s.sparse] = True
    return out


def check_binary(codes: np.ndarray, name: str = "codes") -> np.ndarray:
    """``codes`` as an array whose values are all 0 or 1 (bool, integers or floats); else a one-line ShapeError
    (NaN and infinity included)."""
    codes = np.asarray(codes)
    if codes.dtype == bool:
        return codes
    if codes.dtype.kind not in "iuf" or not ((codes == 0) | (codes == 1)).all():
        found = "" if codes.dtype.kind not in "iuf" else (
            " with NaN or infinite values" if not np.isfinite(codes).all()
            else f" with values in [{codes.min()}, {codes.max()}]")
        raise ShapeError(f"{name} must be binary (bool or 0/1), got dtype {codes.dtype}{found}")
    return codes


def code_statistics(codes: np.ndarray) -> dict[str, float]:
    """Statistics of binary codes ``[B, N]``: mean sparsity, fraction of bits ever used, mean activation
    frequency of used bits, and the mean binary entropy of the bits (bits, normalised to [0, 1])."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or 0 in codes.shape:
        raise ShapeError(f"codes must be [B, N] with B, N >= 1, got shape {codes.shape}")
    check_binary(codes)
    freq = codes.astype(np.float64).mean(axis=0)
    p = np.clip(freq, 1e-12, 1 - 1e-12)
    entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    used = freq > 0
    return {"sparsity": float(freq.mean()), "fraction_used": float(used.mean()),
            "mean_frequency_used": float(freq[used].mean()) if used.any() else 0.0,
            "entropy": float(entropy.mean())}
