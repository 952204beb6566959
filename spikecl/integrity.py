"""Integrity of the files spikecl writes: HDF5 results files and learning graphs carry a seal (the size and
CRC-32 of their bytes in HDF5's user block, which libhdf5 skips), checked before libhdf5 parses them; exported
networks (netx, NIR) carry the CRC-32 of their contents in an attribute other readers skip (:func:`content_crc`);
checkpoint archives are checked against the CRC-32 torch writes for each member.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Callable

from spikecl.errors import ForeignFileError, ResultsError


def write_hdf5_image(tmp: Path, build: Callable, sealed_file: bool = False) -> None:
    """Write to ``tmp`` the HDF5 file that ``build(f)`` makes in the open h5py file ``f``, built in memory first: a
    full disk or a file-size limit is then one plain OSError on one write (a one-line error), never libhdf5's
    half-flushed chunks, whose failure can crash the process. ``sealed_file``: with the user block and
    :func:`sealed` (results files, learning graphs)."""
    import h5py

    image = io.BytesIO()
    with h5py.File(image, "w", **({"userblock_size": SEAL_SIZE} if sealed_file else {})) as f:
        build(f)
    with image.getbuffer() as data, open(tmp, "wb") as out:
        out.write(sealed(data) if sealed_file else data)


#: a results file's mark at the start of its HDF5 user block (:func:`sealed`); the block's size in bytes
SEAL, SEAL_SIZE = b"spikecl-sealed\0", 512
_SEAL_FIELDS = struct.Struct("<QI")                 # the size and CRC-32 of the bytes after the user block
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def sealed(data: bytes | bytearray | memoryview) -> bytearray | memoryview:
    """The HDF5 image ``data`` (written with ``userblock_size = SEAL_SIZE``) with its user block holding :data:`SEAL`,
    the size and the CRC-32 of the bytes after the block: a writable buffer is changed in place and returned (no copy
    of a file the size of its weights), read-only bytes are copied first."""
    if isinstance(data, bytes):
        data = bytearray(data)
    body = memoryview(data)[SEAL_SIZE:]
    crc, size = _body_crc(bytes(body[:_SUPERBLOCK_BYTES]), [body[_SUPERBLOCK_BYTES:]])
    head = SEAL + _SEAL_FIELDS.pack(size, crc)
    body.release()
    data[:len(head)] = head
    return data


#: the bytes at the start of an HDF5 image (its superblock) that :func:`_unflagged` reads
_SUPERBLOCK_BYTES = 96


def _body_crc(start: bytes, rest) -> tuple[int, int]:
    """(CRC-32, size in bytes) of an HDF5 image given as its ``start`` (:data:`_SUPERBLOCK_BYTES`) and the buffers
    ``rest``, with the fields HDF5 rewrites while a writer holds the file open read as zeros."""
    crc, size = zlib.crc32(_unflagged(start)), len(start)
    for chunk in rest:
        crc, size = zlib.crc32(chunk, crc), size + len(chunk)
    return crc, size


def _unflagged(start: bytes) -> bytes:
    """The first bytes ``start`` of an HDF5 image (from its superblock on) with the superblock's file consistency
    flags, and for superblock versions 2 and 3 its checksum, read as zeros: HDF5 sets the flags while a writer
    holds the file open, which changes no content."""
    if not start.startswith(_HDF5_SIGNATURE) or len(start) < 24:
        return start
    if start[8] in (0, 1):                                   # versions 0 and 1: 4 bytes of flags at 20
        spans = [(20, 4)]
    else:                                                    # 2 and 3: 1 byte at 11; the checksum after 4 addresses
        spans = [(11, 1), (12 + 4 * start[9], 4)]
    out = bytearray(start)
    for at, size in spans:
        out[at:at + size] = bytes(len(out[at:at + size]))
    return bytes(out)


def seal(path: str | Path) -> None:
    """Seal the results file ``path`` again after changing it in place (h5py's ``"r+"``), so that it reads as
    intact: its new bytes are taken as they are."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    if data[SEAL_SIZE:SEAL_SIZE + len(_HDF5_SIGNATURE)] != _HDF5_SIGNATURE:
        raise ResultsError(f"{path} has no user block to seal (not a results file written by this spikecl)")
    path.write_bytes(sealed(data))


def sealed_crc(path: str | Path) -> int | None:
    """The CRC-32 the seal of file ``path`` records (read from its first bytes, not computed), or None for a missing,
    unreadable or unsealed one, or one whose length is not the sealed length (truncated or extended since): what
    tells a file rewritten since apart from the one written then."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(SEAL) + _SEAL_FIELDS.size)
            length = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    if not head.startswith(SEAL) or len(head) < len(SEAL) + _SEAL_FIELDS.size:
        return None
    size, crc = _SEAL_FIELDS.unpack_from(head, len(SEAL))
    return crc if length == SEAL_SIZE + size else None


def check_seal(path: Path, what: str = "results file") -> None:
    """A one-line :class:`ResultsError` where the bytes of the sealed file ``path`` (:func:`sealed`) are not
    those written; :class:`ForeignFileError` where another process holds it open to write (its HDF5 lock). A file
    without the seal passes (written before it, or by another tool); a pipe, device or socket at ``path`` is refused
    before it is opened (reading a pipe would wait for ever)."""
    from spikecl.paths import exists, is_file, not_regular

    if exists(path, ResultsError) and not is_file(path, ResultsError):
        raise not_regular(path, ResultsError)
    try:
        with open(path, "rb") as f:
            head = f.read(SEAL_SIZE + len(_HDF5_SIGNATURE))
            if not head.startswith(SEAL):            # not sealed, unless most of the mark is there (a damaged one)
                if _damaged_mark(head):
                    raise ResultsError(f"{path} is damaged (the mark of its seal is changed)")
                return
            if len(head) < len(SEAL) + _SEAL_FIELDS.size:
                raise ResultsError(f"{path} is incomplete (it ends inside its seal)")
            size, crc = _SEAL_FIELDS.unpack_from(head, len(SEAL))
            f.seek(SEAL_SIZE)
            found, read = _body_crc(f.read(_SUPERBLOCK_BYTES), iter(lambda: f.read(1 << 20), b""))
    except OSError as exc:
        raise ResultsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if (read, found) == (size, crc):
        return
    if _held_open(path):
        raise ForeignFileError(f"{path} is held open by another process (its HDF5 lock)")
    if read < size:
        raise ResultsError(f"{path} is incomplete ({read} of the {size} bytes written after its seal)")
    raise ResultsError(f"{path} is damaged or was changed after it was written (its bytes fail their CRC-32"
                       + (f"; {read} bytes after its seal where {size} were written)" if read != size else ")"))


def _damaged_mark(head: bytes) -> bool:
    """Whether the first bytes ``head`` of a file are a sealed HDF5 file's with a few bytes of :data:`SEAL` changed
    (all but at most 3 of its 15 in place, and HDF5's signature after the user block): a flipped byte there would
    otherwise turn the whole-file check off, the file reading as one written before the seal."""
    same = sum(a == b for a, b in zip(head, SEAL))
    return same >= len(SEAL) - 3 and head[SEAL_SIZE:SEAL_SIZE + len(_HDF5_SIGNATURE)] == _HDF5_SIGNATURE


def _held_open(path: Path) -> bool:
    """Another process holds ``path`` open to write: HDF5's exclusive ``flock`` (False where none can be asked)."""
    try:
        import fcntl
    except ImportError:                                  # pragma: no cover - not POSIX
        return False
    try:
        with open(path, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def archive_problem(path: Path) -> str | None:
    """What is wrong with the checkpoint archive ``path`` ("its member X fails its CRC-32", or a member that would
    unpack to more than the file holds), None if nothing; a file that is not a zip archive is left to ``torch.load``
    to refuse. torch stores every member uncompressed, so a compressed member, or members declaring more bytes than
    the file has, come from a crafted archive (a 2.9 MB one unpacked to 3 GB before torch refused it); they are
    refused before any member is unpacked."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        packed = next((m.filename for m in members if m.compress_type != zipfile.ZIP_STORED), None)
        if packed is not None:
            return f"its member {packed} is compressed, which torch never writes"
        declared, size = sum(m.file_size for m in members), path.stat().st_size
        if declared > size:
            return f"its members declare {declared} bytes, more than the file's {size}"
        damaged = archive.testzip()
        return None if damaged is None else f"its member {damaged} fails its CRC-32"


def content_crc(f, crc_at: tuple[str, str]):
    """CRC-32 (a numpy int64) of an open HDF5 file's contents as stored: every group's and dataset's path and
    attributes and every dataset's bytes, in sorted order, leaving out the attribute ``crc_at`` = (object path, name)
    that holds this CRC; a byte damaged on disk in a weight or a threshold then is a read error, not a silently
    different network. Sizes must be checked before (it reads every dataset whole)."""
    import h5py
    import numpy as np

    def plain(value):                                    # numpy scalars and arrays, byte strings: as Python's
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if isinstance(value, np.generic):
            return value.item()
        return value.tolist() if hasattr(value, "tolist") else repr(value)   # complex, object references: repr

    names: list[str] = [""]
    f.visit(names.append)
    crc = 0
    for name in sorted(names):
        item = f[name] if name else f
        attrs = {k: v for k, v in item.attrs.items() if (item.name, k) != tuple(crc_at)}
        crc = zlib.crc32(json.dumps([name, attrs], sort_keys=True, default=plain).encode(), crc)
        if isinstance(item, h5py.Dataset):
            crc = zlib.crc32(_stored_bytes(item[()]), crc)
    return np.int64(crc)


def crc_intact(f, crc_at: tuple[str, str]) -> bool | None:
    """Whether the open HDF5 file ``f``'s contents are those its CRC-32 at ``crc_at`` = (object path, attribute name)
    was computed over (:func:`content_crc`; a stored value that is not an integer does not match); None where
    none is stored (a file written before it, or by another tool). Sizes must be checked before."""
    import numpy as np

    where, name = crc_at
    stored = f[where].attrs.get(name) if where in f else None
    if stored is None:
        return None
    return isinstance(stored, (int, np.integer)) and int(stored) == int(content_crc(f, crc_at))


def _stored_bytes(value) -> bytes:
    """The bytes of a dataset's value as read: a numeric or fixed-length array's buffer; for variable-length strings
    (an object array, whose buffer holds pointers) each element's bytes after its length."""
    import numpy as np

    array = np.ascontiguousarray(value)
    if array.dtype != object:
        return array.tobytes()
    parts = [np.ascontiguousarray(x).tobytes() for x in array.flat]
    return b"".join(len(part).to_bytes(8, "little") + part for part in parts)
