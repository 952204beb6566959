"""HDF5 files whose global heaps libhdf5 would walk for ever (a zeroed heap object: the reading process then loops
inside C, deaf to Ctrl-C) are refused in one line before libhdf5 opens them, whoever wrote them."""

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from event_files import standin_shd
from hdf5_files import zero_heap_object
from test_export_edges import small_spec

from spikecl.errors import DataError, ResultsError
from spikecl.hdf5_guard import heap_loop


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
