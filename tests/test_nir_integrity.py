"""spikecl's NIR files carry the CRC-32 of their contents: a file changed since spikecl wrote it is refused in one line,
another tool's file (no CRC) is read as it is, and nir and Norse read spikecl's file as the graph it wrote; the
netx files' CRC, computed by the same function, is the one it always was."""

import io
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_export_edges import nir_file, small_spec

from spikecl.errors import ResultsError
from spikecl.integrity import content_crc

nir = pytest.importorskip("nir")

CHANGED = ("is damaged or edited: its contents changed since spikecl wrote it (they fail their CRC-32); export the "
           "network again")


def flip_bit(path: Path, dataset: str) -> None:
    """Flip the lowest bit of the first stored byte of ``dataset`` in the file ``path``, as a disk would (NIR
    compresses its arrays: a chunked one's first chunk)."""
    with h5py.File(path, "r") as f:
        item = f[dataset].id
        offset = item.get_offset() if item.get_offset() is not None else item.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(data)


def add_to_first_weight(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        f["node/nodes/fc0/weight"][0, 0] += np.float32(0.25)


def crc_of(path: Path, value) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["spikecl_crc32"] = value


def note(path: Path, value) -> None:
    with h5py.File(path, "r+") as f:
        f["node"].attrs["note"] = value


@pytest.mark.parametrize("damage, message", [
    (lambda p: flip_bit(p, "node/metadata/num_steps"), CHANGED),               # 6 -> 7 steps: was read silently
    (add_to_first_weight, CHANGED),                                             # a valid weight: was read silently
    (lambda p: crc_of(p, "0"), CHANGED),                                        # a CRC that is not a number
    (lambda p: note(p, 1 + 2j), CHANGED),                    # was "not a readable NIR file ('complex' object ...)"
    (lambda p: flip_bit(p, "node/nodes/fc0/weight"), "is not a readable NIR file (Can't synchronously read data"),
], ids=["a flipped bit of the step count", "an edited weight", "a crc that is not a number",
        "an added attribute json has no form for", "a flipped bit of the compressed weights"])
def test_a_nir_file_changed_since_spikecl_wrote_it_is_refused_in_one_line_naming_it(tmp_path, damage, message):
    """A flipped bit of the step count or an edited weight passes every check of the graph and was deployed as
    another network; the file's CRC-32 now refuses it. A flipped bit inside the compressed weights fails the
    compression's own check, as before."""
    from spikecl.export.nir_io import read_nir

    path = nir_file(tmp_path)
    read_nir(path)                                                              # intact: read as written
    damage(path)
    with pytest.raises(ResultsError, match=f"^{re.escape(str(path))} {re.escape(message)}") as info:
        read_nir(path)
    assert "\n" not in str(info.value)


def test_a_nir_file_without_spikecls_crc_is_read_as_it_is(tmp_path):
    """A NIR file another tool wrote (here nir itself, from spikecl's graph, as spikecl's files were before the CRC)
    carries no CRC: it cannot be checked, and spikecl reads it as it is, an edited weight included."""
    from spikecl.export.nir_io import read_nir, to_nir

    path = tmp_path / "other.nir"
    graph = to_nir(small_spec(widths=(6, 8, 4)))
    nir.write(path, graph)
    add_to_first_weight(path)
    read = read_nir(path)
    assert read.nodes["fc0"].weight[0, 0] == graph.nodes["fc0"].weight[0, 0] + np.float32(0.25)
    assert np.array_equal(read.nodes["fc0"].weight[1:], graph.nodes["fc0"].weight[1:])


def same(a, b) -> bool:
    """Whether two NIR graphs' ``to_dict()`` (nested tables of arrays, numbers and strings) hold the same values."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return np.array_equal(np.asarray(a), np.asarray(b))


def same_graph(a, b) -> bool:
    """Whether two NIR graphs hold the same nodes (types and every field's values), edges and metadata."""
    return same(a.to_dict(), b.to_dict())


def stored(path: Path) -> tuple[dict, dict]:
    """Every dataset's value and every object's attributes in the HDF5 file ``path``, by name."""
    values, attrs = {}, {}
    with h5py.File(path, "r") as f:
        attrs["/"] = dict(f.attrs)
        f.visititems(lambda name, item: (attrs.update({name: dict(item.attrs)}),
                                         values.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None))
    return values, attrs


def test_nir_reads_spikecls_file_as_the_graph_nir_itself_writes_and_the_file_differs_only_by_its_crc(tmp_path):
    from spikecl.export.nir_io import read_nir, to_nir, write_nir

    spec = small_spec(widths=(6, 8, 4))
    ours, plain = write_nir(tmp_path / "net.nir", spec), tmp_path / "plain.nir"
    nir.write(plain, to_nir(spec))
    assert same_graph(nir.read(ours), nir.read(plain)) and same_graph(nir.read(ours), to_nir(spec))
    assert same_graph(nir.read(ours), read_nir(ours))
    (values, attrs), (plain_values, plain_attrs) = stored(ours), stored(plain)
    assert values.keys() == plain_values.keys()
    assert all(np.array_equal(np.asarray(values[k]), np.asarray(plain_values[k])) for k in values)
    assert plain_attrs["/"] == {} and list(attrs["/"]) == ["spikecl_crc32"]
    assert {k: v for k, v in attrs.items() if k != "/"} == {k: v for k, v in plain_attrs.items() if k != "/"}


def test_norse_runs_spikecls_file_as_the_graph_spikecl_wrote(tmp_path):
    """norse.torch.from_nir on nir.read of spikecl's file steps exactly as on the graph in memory (nothing of the
    CRC reaches the reader)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("nirtorch")
    norse = pytest.importorskip("norse.torch")
    from spikecl.export.nir_io import to_nir, write_nir

    spec = small_spec(widths=(6, 8, 4))
    x = torch.as_tensor(np.random.default_rng(3).random((spec.num_steps, 5, 6)), dtype=torch.float32)

    def membranes(graph) -> np.ndarray:
        module, state, out = norse.from_nir(graph, dt=graph.metadata["dt"]), None, []
        with torch.no_grad():
            for x_t in x:
                _, state = module(x_t, state)
                out.append(state.state["readout"][0][1].v.numpy().copy())
        return np.stack(out)

    from_file = membranes(nir.read(write_nir(tmp_path / "net.nir", spec)))
    assert np.array_equal(from_file, membranes(to_nir(spec))) and np.abs(from_file).max() > 0.1


def test_the_netx_files_crc_is_the_one_spikecl_computed_before_nir_files_shared_it():
    """content_crc moved from the netx writer to spikecl.integrity for NIR files too: its value over a file of a
    group's attributes and numeric and fixed-length string datasets is the one the netx writer computed (so netx
    files are byte for byte as before)."""
    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        f.create_dataset("layer/0/type", data=np.bytes_("input"))
        f.create_dataset("layer/1/weight", data=np.arange(-6, 6, dtype=np.int32).reshape(3, 4))
        f.create_group("spikecl").attrs.update(schema="spikecl-netx", num_steps=4, lava_dl=True, crc32=123)
        assert content_crc(f, ("/spikecl", "crc32")) == 1183487096
        f["spikecl"].attrs["crc32"] = 456                             # the CRC's own attribute is left out
        assert content_crc(f, ("/spikecl", "crc32")) == 1183487096
        assert content_crc(f, ("/", "crc32")) != 1183487096           # elsewhere it is content
