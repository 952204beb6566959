"""Hand edits of HDF5 files for the tests of damaged or tampered files."""

import struct
from contextlib import contextmanager
from pathlib import Path

import h5py
import pytest

from spikecl.integrity import SEAL_SIZE, seal


@contextmanager
def edited(path, mode="r+"):
    """``h5py.File(path, mode)``, sealed again afterwards where it is a sealed results file: the edit is then read
    as written, for the checks inside the file to judge, not refused by the seal over its bytes."""
    with h5py.File(path, mode) as f:
        sealed = f.userblock_size == SEAL_SIZE
        yield f
    if sealed:
        seal(path)


def unseal(f):
    """Drop the CRC-32 of a results file's attributes and the list of its arrays (an open ``h5py.File``): the file
    then reads as one written before attributes carried them, or as a crafted one, whose attributes and arrays are
    still checked one by one."""
    for name in ("attrs_crc32", "contents"):
        if name in f.attrs:
            del f.attrs[name]


def tamper(path, where, value):
    """Replace the attribute or dataset ``where`` (``group/key``) of the HDF5 file ``path`` with ``value``."""
    with edited(path) as f:
        group, key = where.rsplit("/", 1)
        if key in f[group].attrs:
            f[group].attrs[key] = value
        else:
            del f[where]
            f[group].create_dataset(key, data=value)


def zero_heap_object(path) -> int:
    """Zero the header of the first object of the first global heap collection of the HDF5 file ``path`` (its index
    and size read 0: libhdf5 2.0 walks such a heap for ever); returns the header's offset."""
    data = bytearray(Path(path).read_bytes())
    at = data.find(b"GCOL")
    while data[at + 4] != 1 or struct.unpack_from("<Q", data, at + 8)[0] < 4096:     # "GCOL" in data, not a heap
        at = data.find(b"GCOL", at + 1)
        assert at >= 0, f"{path} has no global heap"
    data[at + 16:at + 32] = bytes(16)
    Path(path).write_bytes(bytes(data))
    return at + 16


def zeroed_blocks(path, blocks: int = 60, size: int = 200, resealed: bool = False):
    """Write ``blocks`` damaged copies of the file ``path`` over it in turn, each with ``size`` bytes zeroed at a
    start spread evenly over the file (yields each start); ``resealed``: each also sealed over its damage, as a file
    written before the seal (where the damage left a user block to seal), yielded again."""
    path = Path(path)
    clean = path.read_bytes()
    for start in range(0, len(clean), max(1, len(clean) // blocks)):
        damaged = bytearray(clean)
        damaged[start:start + size] = bytes(len(damaged[start:start + size]))
        path.write_bytes(bytes(damaged))
        yield start
        if resealed and damaged[SEAL_SIZE:SEAL_SIZE + 8] == b"\x89HDF\r\n\x1a\n":
            seal(path)
            yield start


def damage_reads_or_is_one_line(path, read, errors) -> None:
    """``read(path)`` of every :func:`zeroed_blocks` copy of ``path`` (also sealed over its damage) returns or
    raises one of ``errors`` in one line; anything else fails the test."""
    for _ in zeroed_blocks(path, resealed=True):
        try:
            read(path)
        except errors as exc:
            assert "\n" not in str(exc), exc


def heap_damage_is_refused(path, read, error) -> None:
    """A zeroed global heap object in the sealed file ``path`` (libhdf5 would walk it for ever): ``read`` refuses
    it by the seal and, sealed over the damage (as a file written before the seal), by the heap check, each in one
    ``error`` naming the file."""
    at = zero_heap_object(path)
    with pytest.raises(error, match=rf"{path.name} is damaged or was changed after it was written"):
        read(path)
    seal(path)
    with pytest.raises(error, match=rf"{path.name} is damaged \(the size of a global heap object at byte {at} would "):
        read(path)
