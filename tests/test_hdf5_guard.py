"""HDF5 files whose global heaps libhdf5 would walk for ever (a zeroed heap object: the reading process then loops
inside C, deaf to Ctrl-C) are refused in one line before libhdf5 opens them, whoever wrote them."""

import re
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
from event_files import standin_shd
from hdf5_files import zero_heap_object
from test_export_edges import small_spec

from spikecl import hdf5_guard
from spikecl.errors import DataError, ResultsError
from spikecl.hdf5_guard import _first_loop, check_stored_lengths, damage_as, heap_loop, stored_lengths


def test_a_zeroed_heap_object_is_found_and_intact_files_pass(tmp_path):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = np.frombuffer(b"GCOL\x01\x00\x00\x00" + bytes(56), np.uint8)     # "GCOL" in data: no heap
        f.attrs["name"] = "a variable-length string, kept in a global heap"
    assert heap_loop(path) is None and heap_loop(tmp_path / "absent.h5") is None
    (tmp_path / "empty.h5").write_bytes(b"")
    assert heap_loop(tmp_path / "empty.h5") is None
    at = zero_heap_object(path)
    assert heap_loop(path) == at
    data = bytearray(path.read_bytes())
    data[at:at + 2] = (1).to_bytes(2, "little")                         # object 1, whose size wraps libhdf5's sum
    data[at + 8:at + 16] = (2**64 - 16).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    assert heap_loop(path) == at


def _collection(size: int) -> bytes:
    """A global heap collection's header (version 1) declaring ``size`` bytes."""
    return b"GCOL\x01\x00\x00\x00" + struct.pack("<Q", size)


def _object(index: int, size: int, payload: bytes = b"") -> bytes:
    """A heap object's header (``index`` 0: free space of ``size`` bytes, header included) and ``payload``."""
    return struct.pack("<HHIQ", index, 0, 0, size) + payload


def test_thousands_of_nested_collections_are_walked_once_and_a_loop_past_them_is_found(tmp_path):
    """Crafted data of 2,000 collections, each declaring the rest of the file and holding the next one's header
    inside an object: every walk runs to the end (each collection before the change walked every later one, 0.3 s
    for 1,000 and 5 s for 4,000). A zeroed object in the last block is still found, at its offset."""
    block = _collection(1 << 40) + _object(1, 4096, bytes(4080))
    data = bytearray(block * 2000)
    path = tmp_path / "nested.bin"
    path.write_bytes(bytes(data))
    assert heap_loop(path) is None
    at = len(data) - len(block) + 16
    data[at:at + 16] = bytes(16)
    path.write_bytes(bytes(data))
    assert heap_loop(path) == at


def test_collections_that_lie_apart_are_walked_in_constant_memory():
    """The walks' shared answers are kept only where collections nest: a heap of 131,072 objects (2 MiB) is checked
    keeping nothing per object (the shared answers took about 5 bytes per byte of such a file, 100 MiB at 16 MiB);
    two collections side by side, the second holding a zeroed object, are walked each to its own end."""
    import tracemalloc

    from spikecl.hdf5_guard import _first_loop

    flat = _collection(2 << 20) + _object(1, 0) * ((2 << 20) // 16 - 1)
    tracemalloc.start()
    try:
        assert _first_loop(flat) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 << 10, peak
    apart = _collection(4096) + _object(1, 4064, bytes(4064)) + _collection(4096) + _object(1, 8, bytes(8))
    assert _first_loop(apart + bytes(16)) == len(apart) and _first_loop(apart) is None


def test_a_walk_ends_where_its_collection_does_and_a_later_one_that_joins_it_walks_on(tmp_path):
    """Collection A (4,096 bytes) ends before the zeroed object its walk would reach; collection B, held in A's
    first object, joins A's walk and declares the whole file: B's walk reaches the zeroed object. A heap that holds
    it only past its end is no loop."""
    steps = _object(1, 8, bytes(8)) * 300                                        # 300 objects of 24 bytes
    head = _collection(4096) + _object(1, 16, _collection(1 << 40)) + steps
    bad = len(head)
    assert bad + 16 > 4096
    (tmp_path / "joined.bin").write_bytes(head + bytes(16))
    (tmp_path / "short.bin").write_bytes(_collection(4096) + _object(1, 16, _collection(1000)) + steps + bytes(16))
    assert heap_loop(tmp_path / "joined.bin") == bad and heap_loop(tmp_path / "short.bin") is None


def test_only_a_version_1_header_of_a_whole_collection_is_walked():
    """"GCOL" in data is a collection only with version 1 and at least libhdf5's 4,096 bytes: zeros after a
    header declaring 4,095 bytes, or one of version 2, are no loop; after a real header the zeroed object is one."""
    assert _first_loop(_collection(4096) + bytes(4080)) == 16
    assert _first_loop(_collection(4095) + bytes(4080)) is None
    assert _first_loop(b"GCOL\x02\x00\x00\x00" + struct.pack("<Q", 4096) + bytes(4080)) is None


def test_an_object_whose_size_moves_the_walk_back_is_a_loop():
    """A size that wraps libhdf5's 64-bit sum to a step back (2^64 - 16 bytes) loops as a zero size does."""
    assert _first_loop(_collection(4096) + _object(1, 8, bytes(8)) + _object(1, 2**64 - 32) + bytes(4048)) == 40


def test_a_zeroed_object_past_the_end_of_nested_collections_is_no_loop():
    """Collection B (4,096 bytes) starts inside A's first object: their walks run on to the end of the data, but
    a zeroed object found there, past both collections' ends, is no loop of either."""
    head = _collection(4096) + _object(1, 16, _collection(4096)) + _object(1, 8, bytes(8)) * 300
    assert len(head) > 32 + 4096
    assert _first_loop(head + bytes(16)) is None


def test_nested_collections_share_their_walks(monkeypatch):
    """300 collections each declaring the rest of the data and holding the next one's header: 300 heap object
    reads in all, not one walk per collection (45,150 reads, quadratic in crafted data)."""
    reads = []

    class Counting:
        size = hdf5_guard._OBJECT.size

        def unpack_from(self, data, at):
            reads.append(at)
            return struct.unpack_from("<HHIQ", data, at)

    monkeypatch.setattr(hdf5_guard, "_OBJECT", Counting())
    assert _first_loop((_collection(1 << 40) + _object(1, 4096, bytes(4080))) * 300) is None
    assert len(reads) <= 2 * 300


def netx_file(tmp_path: Path) -> tuple[Path, type, object]:
    from spikecl.export.netx import read_netx, write_netx
    from spikecl.export.quantize import quantize

    return write_netx(tmp_path / "net.h5", quantize(small_spec())), ResultsError, read_netx


def nir_file(tmp_path: Path) -> tuple[Path, type, object]:
    from spikecl.export.nir_io import read_nir, write_nir

    return write_nir(tmp_path / "net.nir", small_spec()), ResultsError, read_nir


def shd_file(tmp_path: Path) -> tuple[Path, type, object]:
    from spikecl.data.event_datasets import read_shd
    from spikecl.data.events import EventBinning

    standin_shd(tmp_path, per_class=1)
    return tmp_path / "SHD" / "shd_test.h5", DataError, lambda path: read_shd(path, EventBinning(4))


@pytest.mark.parametrize("make", [netx_file, nir_file, shd_file], ids=["netx", "nir", "shd"])
def test_readers_refuse_a_heap_libhdf5_would_loop_on_before_opening_the_file(tmp_path, monkeypatch, make):
    from spikecl.export.learning_graphs import kind_of

    path, error, read = make(tmp_path)
    read(path)                                                        # intact: read as written
    at = zero_heap_object(path)
    monkeypatch.setattr(h5py, "File", lambda *a, **k: pytest.fail("libhdf5 reached"))
    with pytest.raises(error, match=rf"^{re.escape(str(path))} is damaged \(the size of a global heap object at byte "
                                    rf"{at} would keep libhdf5 looping for ever\)$"):
        read(path)
    assert kind_of(path) is None                     # deploy's look at a file: left to the reader, which refuses it


LAYOUTS = {"contiguous": {}, "chunked": {"chunks": (100,)}, "gzip": {"compression": "gzip"},
           "shuffle+gzip": {"compression": "gzip", "shuffle": True, "chunks": (64,)},
           "one row a chunk": {"chunks": (1,)},
           "one partial chunk": {"maxshape": (None,), "chunks": (5000,)}}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_stored_lengths_are_read_from_the_raw_descriptors_of_every_layout(tmp_path, layout):
    rng = np.random.default_rng(0)
    rows = np.empty(1003, dtype=object)
    rows[:] = [rng.random(rng.integers(0, 300)).astype(np.float32) for _ in range(len(rows))]
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f.create_dataset("x", data=rows, dtype=h5py.vlen_dtype(np.float32), **LAYOUTS[layout])
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert stored_lengths(f["x"]).tolist() == [len(r) for r in rows]


def test_stored_lengths_of_unwritten_chunks_are_empty_and_unread_filters_give_none(tmp_path):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        x = f.create_dataset("x", shape=(250,), dtype=h5py.vlen_dtype(np.float32), chunks=(100,))
        x[120] = np.ones(7, np.float32)
        f.create_dataset("lzf", shape=(2,), dtype=h5py.vlen_dtype(np.float64), compression="lzf")[0] = np.ones(3)
    with h5py.File(tmp_path / "r.h5", "r") as f:
        lengths = stored_lengths(f["x"])
        assert lengths[120] == 7 and lengths.sum() == 7 and len(lengths) == 250
        assert stored_lengths(f["lzf"]) is None                   # left to libhdf5


def test_an_h5py_without_chunk_iter_leaves_chunked_data_to_libhdf5(tmp_path):
    """h5py built on libhdf5 < 1.12.3 has no chunk_iter: the check walks nothing rather than fail."""
    rows = np.empty(20, dtype=object)
    rows[:] = [np.arange(3, dtype=np.float32)] * 20
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f.create_dataset("x", data=rows, dtype=h5py.vlen_dtype(np.float32), chunks=(10,))
    with h5py.File(tmp_path / "r.h5", "r") as f:
        real = f["x"]

        class Id:                                   # the dataset's id as such an h5py has it
            def __getattr__(self, name):
                if name == "chunk_iter":
                    raise AttributeError(name)
                return getattr(real.id, name)

        class Old:
            shape, chunks, file, id = real.shape, real.chunks, real.file, Id()

        assert stored_lengths(Old()) is None and stored_lengths(real).tolist() == [3] * 20


def test_a_chunk_whose_indexed_size_exceeds_its_rows_is_not_read_by_the_check(tmp_path):
    import struct

    path = tmp_path / "r.h5"
    rows = np.empty(20, dtype=object)
    rows[:] = [np.arange(30, dtype=np.float32)] * 20
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", data=rows, dtype=h5py.vlen_dtype(np.float32), chunks=(10,), compression="gzip")
        chunk = d.id.get_chunk_info(0)
    raw = bytearray(path.read_bytes())
    key = struct.pack("<II", chunk.size, chunk.filter_mask) + bytes(16)      # the chunk's B-tree key: size first
    at = bytes(raw).index(key)
    raw[at: at + 4] = struct.pack("<I", 0xFFFFFF00)                         # 4 GB, which the check would allocate
    path.write_bytes(bytes(raw))
    with h5py.File(path, "r") as f:
        assert stored_lengths(f["x"]) is None                                 # left to libhdf5, which refuses it


@pytest.mark.parametrize("count", [10**6, 10**9])
def test_an_shd_spike_train_whose_stored_count_exceeds_the_file_is_refused_before_libhdf5_allocates_it(
        tmp_path, count):
    path, _, read = shd_file(tmp_path)
    with h5py.File(path, "r") as f:
        offset = f["spikes/times"].id.get_offset()
    raw = bytearray(path.read_bytes())
    raw[offset + 16: offset + 20] = count.to_bytes(4, "little")      # row 1's count (a 4 GB float32 row at 10**9)
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: /spikes/times row 1 declares {count} elements, "
                                        "more than the whole file holds; the file is damaged$"):
        read(path)


def test_a_row_is_refused_from_one_element_more_than_the_file_holds(tmp_path):
    """The limit is the file's size in elements (bytes / 4 for float32): a row declaring that many passes the
    check, one more is refused naming the row."""
    path = tmp_path / "r.h5"
    rows = np.empty(3, dtype=object)
    rows[:] = [np.ones(2, np.float32)] * 3
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=rows, dtype=h5py.vlen_dtype(np.float32))
    with h5py.File(path, "r") as f:
        offset, descriptor = f["x"].id.get_offset(), f["x"].id.get_storage_size() // 3
    limit = path.stat().st_size // 4
    for count in (limit, limit + 1):
        raw = bytearray(path.read_bytes())
        raw[offset + descriptor: offset + descriptor + 4] = count.to_bytes(4, "little")        # row 1's count
        path.write_bytes(bytes(raw))
        with h5py.File(path, "r") as f:
            if count == limit:
                check_stored_lengths(f["x"], path, DataError)
            else:
                with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: /x row 1 declares {count} elements"):
                    check_stored_lengths(f["x"], path, DataError)


def test_a_read_error_of_several_lines_becomes_one_line_naming_the_file():
    """h5py's errors can span lines (libhdf5's error stack): the message keeps the first one only."""
    with pytest.raises(DataError) as caught, damage_as("f.h5", DataError):
        raise OSError("Unable to open object (bad symbol table)\n  major: Symbol table\n  minor: Bad value")
    assert str(caught.value) == "f.h5: unreadable or damaged HDF5 file (Unable to open object (bad symbol table))"


def test_a_damaged_checkpoint_is_refused_by_export_not_exported_with_other_weights(tmp_path):
    """torch writes each checkpoint member's CRC-32 but never checks it: export checks it, as --resume does."""
    import torch

    from spikecl.export.spec import load_trained

    path = tmp_path / "run.ckpt"
    torch.save({"model": {"w": torch.arange(64, dtype=torch.float32)}, "config": {}}, path)
    data = bytearray(path.read_bytes())
    at = data.find(torch.arange(64, dtype=torch.float32).numpy().tobytes())
    data[at + 40] ^= 0x40                                             # one weight's exponent bit
    path.write_bytes(bytes(data))
    with pytest.raises(ResultsError, match=r"run.ckpt is damaged \(its member .*data/0 fails its CRC-32\)$"):
        load_trained(path)
    at = data.rfind(b"data.pkl")                                      # a name in the archive's index
    data[at] = 0xE9                                                   # not UTF-8 there
    path.write_bytes(bytes(data))
    with pytest.raises(ResultsError, match=r"run.ckpt is not a readable checkpoint \(UnicodeDecodeError\)$"):
        load_trained(path)


def test_a_learning_graph_attribute_that_is_not_text_is_left_to_the_network_reader(tmp_path):
    """deploy's look at a file reads its kind; bytes that are not UTF-8 there are not a traceback."""
    from spikecl.export.learning_graphs import kind_of

    path = tmp_path / "g.h5"
    with h5py.File(path, "w") as f:
        f.attrs["learning_graph"] = np.bytes_(b"\xe9\xff")
    assert kind_of(path) is None
