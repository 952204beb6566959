"""Reading HDF5 files that may be damaged: a byte-level check that keeps libhdf5 from looping for ever, and h5py's
errors on damaged bytes as one line.

libhdf5 (2.0.0 and earlier) reads a global heap collection (signature ``GCOL``; it holds h5py's variable-length
strings and arrays: string attributes, NIR's string datasets, SHD's spike trains) object by object, moving on by
each object's size. A damaged header whose size reads 0 (or wraps the 64-bit sum) keeps it in place for ever,
inside C code that Ctrl-C and SIGTERM do not reach. :func:`heap_loop` walks every collection as libhdf5 does,
before libhdf5 opens the file. spikecl's results files and learning graphs are also sealed whole
(:func:`spikecl.integrity.check_seal`); this check is for the HDF5 files it reads without a seal: exported
networks, NIR graphs, datasets and files written before the seal. :func:`check_stored_lengths` reads the element
counts of a variable-length dataset's rows before libhdf5 does, which allocates a row by its count before finding it
damaged; :func:`check_stored_size` bounds the values a dataset declares before it is read.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from spikecl.errors import ResultsError, SpikeCLError

_COLLECTION = b"GCOL"
#: libhdf5's smallest collection (bytes): a "GCOL" declaring less is not a collection header but data
_MIN_COLLECTION = 4096
_OBJECT = struct.Struct("<HHIQ")                 # object index, references, reserved, size


def heap_loop(path: str | Path) -> int | None:
    """The byte offset of the first global heap object of the HDF5 file ``path`` on which libhdf5's walk would not
    move on, or None (also for a file that cannot be mapped: opening it names the problem)."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _first_loop(data)
    except (OSError, ValueError):                # ValueError: an empty file
        return None


def _first_loop(data) -> int | None:
    """:func:`heap_loop` on the bytes ``data``: the first collection (in file order) whose walk reaches an object
    that does not move it on before the collection's end. Collections that lie apart (every file libhdf5 writes)
    are walked each to its end, in constant memory; where one starts inside another (crafted data can nest
    thousands), the walks share what they found (:func:`_first_stuck`)."""
    reach, nested = -1, False
    for at, end in _collections(data):
        nested, reach = nested or at < reach, max(reach, end)
    stuck: dict[int, int | None] | None = {} if nested else None
    for at, end in _collections(data):
        loop = _first_stuck(data, at + 16, stuck, len(data) if nested else end)
        if loop is not None and loop + _OBJECT.size <= end:
            return loop
    return None


def _collections(data):
    """(offset, end) of each global heap collection header in ``data``, in file order (the end within ``data``)."""
    at = data.find(_COLLECTION)
    while at >= 0:
        if at + 16 <= len(data) and data[at + 4] == 1:                    # version 1
            size = struct.unpack_from("<Q", data, at + 8)[0]
            if size >= _MIN_COLLECTION:
                yield at, min(at + size, len(data))
        at = data.find(_COLLECTION, at + 1)


def _first_stuck(data, p: int, stuck: dict[int, int | None] | None, stop: int) -> int | None:
    """The first object on the walk from offset ``p`` up to byte ``stop`` that does not move the walk on (None: the
    walk passes ``stop``). Every step moves forward, so a collection's walk loops exactly where this object lies
    inside the collection. ``stuck`` (None: not kept) keeps the answer of every offset walked, so that the walks
    from nested collections cost one walk over the file, not one each (they walk to the end of the data)."""
    path = []
    while p + _OBJECT.size <= stop and (stuck is None or p not in stuck):
        index, _, _, length = _OBJECT.unpack_from(data, p)
        step = length if index == 0 else _OBJECT.size + (length + 7) // 8 * 8        # free space: whole
        step %= 1 << 64                                          # libhdf5 adds in 64 bits: a huge size wraps
        if step == 0 or step >= 1 << 63:                         # no move, or a move back: the walk never ends
            if stuck is None:
                return p
            stuck[p] = p
            break
        if stuck is not None:
            path.append(p)
        p += step
    if stuck is None:
        return None
    found = stuck.get(p)                                         # None where the walk left the data
    for q in path:
        stuck[q] = found
    return found


def check_heaps(path: str | Path, error: type[SpikeCLError]) -> None:
    """A one-line ``error`` where libhdf5 would loop for ever on the HDF5 file ``path`` (:func:`heap_loop`)."""
    at = heap_loop(path)
    if at is not None:
        raise error(f"{path} is damaged (the size of a global heap object at byte {at} would keep libhdf5 looping "
                    "for ever)")


#: HDF5's filter id of deflate (gzip); the largest variable-length descriptor (bytes: count, address, index)
_DEFLATE, _MAX_DESCRIPTOR = 1, 20


def stored_lengths(dataset) -> np.ndarray | None:
    """The element counts int64 [N] that the 1-D variable-length h5py ``dataset`` stores for its rows, read from
    its raw descriptors (a 4-byte count, then the row's global heap address and index) without libhdf5 reading a
    row, which it allocates by that count first; None for a layout or filter not read here (compact data, a filter
    other than deflate applied, a chunk larger than its descriptors or that does not inflate: libhdf5 names it)."""
    n, plist = dataset.shape[0], dataset.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if n == 0:
        return None
    if dataset.chunks is None:
        offset, size = dataset.id.get_offset(), dataset.id.get_storage_size()
        if filters or offset is None or size % n or size > n * _MAX_DESCRIPTOR:
            return None
        with open(dataset.file.filename, "rb") as f:
            f.seek(offset)
            raw = f.read(size)
        return _counts(raw, n) if len(raw) == size else None
    rows, counts, chunks = dataset.chunks[0], np.zeros(n, np.int64), []    # a chunk never written: empty rows
    try:
        dataset.id.chunk_iter(chunks.append)                 # one pass over the chunk index (get_chunk_info: n²)
    except (AttributeError, RuntimeError):                   # h5py built on libhdf5 < 1.12.3: left to libhdf5
        return None
    for chunk in chunks:
        applied = [code for k, code in enumerate(filters) if not chunk.filter_mask >> k & 1]   # set bit: skipped
        if set(applied) - {_DEFLATE} or chunk.size > rows * _MAX_DESCRIPTOR + 1024:     # deflate may add bytes
            return None
        _, raw = dataset.id.read_direct_chunk(chunk.chunk_offset)
        if applied:
            try:
                raw = zlib.decompressobj().decompress(raw, rows * _MAX_DESCRIPTOR)
            except zlib.error:
                return None
        start = chunk.chunk_offset[0]
        if len(raw) % rows or start >= n:
            return None
        counts[start: start + rows] = _counts(raw, rows)[: n - start]
    return counts


def _counts(raw: bytes, rows: int) -> np.ndarray:
    """The leading little-endian uint32 count of each of the ``rows`` equal descriptors packed in ``raw``."""
    return np.frombuffer(raw, np.uint8).reshape(rows, -1)[:, :4].copy().view("<u4").ravel().astype(np.int64)


def check_stored_lengths(dataset, path: str | Path, error: type[SpikeCLError]) -> None:
    """A one-line ``error`` where a row of the variable-length ``dataset`` of the file ``path`` declares more bytes
    than the whole file holds (a damaged count, on which libhdf5 would allocate up to 16 GiB before refusing)."""
    lengths = stored_lengths(dataset)
    if lengths is None:
        return
    import h5py

    limit = os.path.getsize(path) // max(np.dtype(h5py.check_vlen_dtype(dataset.dtype)).itemsize, 1)
    too_long = np.flatnonzero(lengths > limit)
    if too_long.size:
        row = too_long[0]
        raise error(f"{path}: {dataset.name} row {row} declares {lengths[row]} elements, more than the whole file "
                    "holds; the file is damaged")


#: what h5py (and numpy, json) raise on the damaged bytes of an opened file or a dangling link
READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError, UnicodeDecodeError)


@contextmanager
def damage_as(path: str | Path, error: type[SpikeCLError]):
    """Within the block, h5py's errors on damaged bytes of ``path`` become one line of ``error`` naming the file
    and the first line of the reason (spikecl's own errors pass as they are)."""
    try:
        yield
    except SpikeCLError:
        raise
    except READ_ERRORS as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{path}: unreadable or damaged HDF5 file ({reason})") from None


#: the most values a dataset of a file from elsewhere may declare before spikecl reads it (1 GiB of float64)
MAX_STORED_VALUES = 2**27


def check_stored_size(dataset, where: str, limit: int = MAX_STORED_VALUES) -> None:
    """A one-line :class:`ResultsError` when the HDF5 ``dataset`` declares more than ``limit`` values (its shape
    is read from the file's metadata, so a few bytes on disk cannot make spikecl allocate terabytes)."""
    size = int(np.prod(dataset.shape, dtype=object)) if dataset.shape else 1
    if size > limit:
        raise ResultsError(f"{where}: {dataset.name.lstrip('/')} declares shape {dataset.shape} ({size} values), "
                           f"more than the {limit} a file may hold here; the file is damaged or not spikecl's")
