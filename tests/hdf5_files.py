"""Hand edits of HDF5 files for the tests of damaged or tampered files."""

from contextlib import contextmanager

import h5py

from spikecl.io import SEAL_SIZE, seal


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
