"""Untrusted files cannot run code: crafted dataset pickles and crafted checkpoints (``--resume``, ``spikecl export
X.ckpt``) are refused in one line, and the marker file they would write is never created; real dataset pickles
(numpy arrays, lists, dicts, scalars) and real checkpoints still load."""

import datetime
import os
import pickle
import re

import numpy as np
import pytest

from spikecl.cli import main
from spikecl.data.datasets import load_dataset
from spikecl.data.pickles import load_data_pickle
from spikecl.errors import DataError, ResultsError


class _WritesMarker:
    """Unpickling this object would call os.system and create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _cifar10_folder(tmp_path, test_batch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
                         b"labels": list(rng.integers(0, 10, 2))}, f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(test_batch, f, protocol=2)
    return folder


def test_a_crafted_cifar_pickle_does_not_run_code(tmp_path):
    marker = tmp_path / "marker"
    _cifar10_folder(tmp_path, {b"data": _WritesMarker(marker), b"labels": [0]})
    with pytest.raises(DataError, match=r"refusing to load a pickle that names (posix|os|nt)\.system"):
        load_dataset("cifar10", str(tmp_path))
    assert not marker.exists()
    with open(tmp_path / "direct.pkl", "wb") as f:                   # the crafted object at the top level
        pickle.dump(_WritesMarker(marker), f)
    with pytest.raises(DataError, match="refusing"):
        load_data_pickle(tmp_path / "direct.pkl")
    assert not marker.exists()


class _Zeros:
    """Unpickles as ``bytes(n)``: n zero bytes from a number in a file of a few bytes."""

    def __init__(self, n):
        self.n = n

    def __reduce__(self):
        return bytes, (self.n,)


def test_a_pickle_that_sizes_bytes_by_a_number_is_refused(tmp_path):
    """``bytes(n)`` in a 175-byte CIFAR batch made the array of a declared 300,000 images, and the loader took 7 GB
    before it compared the label count: a bytes value must be one the file holds."""
    _cifar10_folder(tmp_path, {b"data": _Zeros(10 ** 6), b"labels": [0]})
    with pytest.raises(DataError, match=r"test_batch: refusing a pickle that makes a bytes value from a int "
                                        r"\(1000000\): dataset pickles store their bytes$"):
        load_dataset("cifar10", str(tmp_path))
    with open(tmp_path / "numpy.pkl", "wb") as f:                     # a numpy integer sizes it as well
        pickle.dump({b"data": _Zeros(np.int64(10 ** 6))}, f, protocol=2)
    with pytest.raises(DataError, match=r"makes a bytes value from a int64 \(1000000\)"):
        load_data_pickle(tmp_path / "numpy.pkl")


@pytest.mark.parametrize("content, message", [
    ([1, 2, 3], "expected a pickled dict, got list"),
    ({"when": datetime.date(2026, 1, 1)}, "names datetime.date"),
])
def test_dataset_pickles_of_the_wrong_shape_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(DataError, match=message):
        load_data_pickle(path)


def test_real_dataset_pickles_still_load(tmp_path):
    data = {"image_data": np.arange(24, dtype=np.uint8).reshape(2, 3, 4), "labels": [np.int64(3), 4],
            b"name": b"batch", "pair": (1.5, "a")}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / f"ok{protocol}.pkl"
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=protocol)
        out = load_data_pickle(path)
        np.testing.assert_array_equal(out["image_data"], data["image_data"])
        assert out["labels"] == [3, 4] and out[b"name"] == b"batch" and out["pair"] == (1.5, "a")


def test_a_crafted_checkpoint_does_not_run_code(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "marker"
    exp = tmp_path / "tiny.toml"
    exp.write_text(f'name = "tiny"\noutput_dir = "{tmp_path}"\n[data]\ndataset = "digits"\n'
                   '[stream]\nkind = "permuted"\nn_tasks = 2\n[network]\nhidden = [16]\n[train]\nepochs = 1\n')
    crafted = tmp_path / "tiny" / "finetune-seed0.ckpt"           # where --resume looks for the run's checkpoint
    crafted.parent.mkdir()
    torch.save({"config": {}, "model": {"w": torch.zeros(1)}, "payload": _WritesMarker(marker)}, crafted)
    assert main(["run", str(exp), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and len(err.strip().splitlines()) == 1
    assert main(["export", str(crafted), "-o", str(tmp_path / "net.h5")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "net.h5").exists()


def test_atomic_writes_are_durable_use_the_umask_and_clean_stale_temporaries(tmp_path, monkeypatch):
    import time

    from spikecl import atomic

    target = tmp_path / "run.h5"
    stale = tmp_path / ".run.h5.abc123.tmp"                       # left by a writer killed an hour ago
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = tmp_path / ".run.h5.def456.tmp"                       # a writer that may still be running
    fresh.write_bytes(b"partial")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    old_mask = os.umask(0o027)
    try:
        atomic.atomic_write(target, lambda tmp: tmp.write_bytes(b"done"))
    finally:
        os.umask(old_mask)
    assert target.read_bytes() == b"done" and (target.stat().st_mode & 0o777) == 0o640
    assert len(synced) == 2                                         # the file, then its folder
    assert not stale.exists() and fresh.exists()


def test_a_file_that_appears_while_an_atomic_write_runs_is_kept_without_overwrite(tmp_path):
    """The absence of the file is checked before writing and again as the new file goes into place (a hard link,
    which fails where a file exists): another writer's file that appeared meanwhile is kept, and no temporary is
    left."""
    from spikecl import atomic
    from spikecl.errors import ExistsError

    target = tmp_path / "net.h5"

    def slow_write(tmp):
        tmp.write_bytes(b"mine")
        target.write_bytes(b"another writer's")            # meanwhile another process writes the file

    with pytest.raises(ExistsError, match="was written by another process meanwhile; pass overwrite=True"):
        atomic.atomic_write(target, slow_write)
    assert target.read_bytes() == b"another writer's" and sorted(tmp_path.iterdir()) == [target]
    atomic.atomic_write(target, lambda tmp: tmp.write_bytes(b"mine"), overwrite=True)
    assert target.read_bytes() == b"mine"


@pytest.mark.parametrize("errno_name", ["EPERM", "ENOSYS", "EINVAL", "EXDEV"])
def test_a_file_system_without_hard_links_gets_the_rename(tmp_path, monkeypatch, errno_name):
    """FAT, some FUSE mounts: os.link fails in their own ways; the file goes into place by a rename, as before."""
    import errno as codes

    from spikecl import atomic

    def no_links(src, dst):
        raise OSError(getattr(codes, errno_name), "no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    target = atomic.atomic_write(tmp_path / "r.h5", lambda tmp: tmp.write_bytes(b"mine"))
    assert target.read_bytes() == b"mine" and sorted(tmp_path.iterdir()) == [target]


def test_a_dangling_link_where_a_file_goes_is_replaced_as_before(tmp_path):
    from spikecl import atomic

    target = tmp_path / "r.h5"
    target.symlink_to(tmp_path / "gone.h5")
    atomic.atomic_write(target, lambda tmp: tmp.write_bytes(b"mine"))
    assert not target.is_symlink() and target.read_bytes() == b"mine"


def test_a_lock_its_holder_removed_as_another_process_took_it_is_not_held_twice(tmp_path, monkeypatch):
    """A writer that opened the lock file just before its holder removed it and let go would lock a file no one
    else sees: it stops, rather than write beside a later writer of the new lock file."""
    import fcntl

    from spikecl import atomic

    target = tmp_path / "run.h5"
    lock = tmp_path / "run.h5.lock"
    real_flock = fcntl.flock

    def holder_lets_go_meanwhile(fd, op):
        lock.unlink()                                        # the holder removed it as it let go
        lock.write_text("later writer")
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", holder_lets_go_meanwhile)
    with pytest.raises(ResultsError, match=f"another spikecl run was writing {target} just now; run again"):
        with atomic.output_lock(target):
            pass
    monkeypatch.setattr(fcntl, "flock", real_flock)
    with atomic.output_lock(target):
        assert lock.read_text() == str(os.getpid())


def test_a_second_run_on_the_same_output_fails_at_once_naming_the_holder(tmp_path, capsys):
    """While one process holds a results file's lock, a run that would write it stops in one line before any work
    and leaves no file; the lock is free again once the holder ends."""
    import subprocess
    import sys

    folder = tmp_path / "tiny"
    target = folder / "finetune-seed0.h5"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom spikecl.atomic import output_lock\n"
                               f"with output_lock({str(target)!r}):\n    print('held', flush=True)\n"
                               "    time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        exp = tmp_path / "tiny.toml"
        exp.write_text(f'name = "tiny"\noutput_dir = "{tmp_path}"\n[data]\ndataset = "digits"\n'
                       '[stream]\nkind = "permuted"\nn_tasks = 2\n[network]\nhidden = [16]\n[train]\nepochs = 1\n')
        assert main(["run", str(exp), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"another spikecl run (PID {holder.pid}) is writing {target}" in err
        assert len(err.strip().splitlines()) == 1 and not list(folder.glob("*.h5")) + list(folder.glob("*.ckpt"))
    finally:
        holder.kill()
        holder.wait()
    from spikecl.atomic import output_lock

    with output_lock(target):                                       # released when its holder was killed
        assert target.with_name(target.name + ".lock").exists()
    assert not target.with_name(target.name + ".lock").exists()     # removed on release


def _flip_byte_in(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_checkpoint_damaged_inside_its_weights_is_refused_not_loaded(tmp_path):
    """torch.load never checks the CRC-32 its archive stores: a flipped byte inside a weight gave a finite but wrong
    number and a silently different resumed run. It is a one-line "damaged" error naming the member."""
    import zipfile

    torch = pytest.importorskip("torch")
    from spikecl.continual.checkpoint import read_checkpoint
    from spikecl.errors import ResultsError

    path = tmp_path / "run.ckpt"
    torch.save({"model": {"w": torch.ones(1000)}}, path)
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda m: m.file_size)
    with open(path, "rb") as f:                                          # the local header before the bytes
        f.seek(member.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    header = 30 + name_len + extra_len
    _flip_byte_in(path, member.header_offset + header + 2003)
    with pytest.raises(ResultsError, match=r"is damaged \(its member .*data/0 fails its CRC-32\); delete it"):
        read_checkpoint(path)


def test_a_checkpoint_with_a_compressed_member_is_refused_before_it_is_unpacked(tmp_path):
    """torch stores checkpoint members uncompressed: a crafted archive with a deflated member of zeros (2.9 MB that
    unpacked to 3 GB) took 3.1 GB and 30 s before torch refused it. It is refused before any member is read, by
    --resume and by export alike."""
    import zipfile

    torch = pytest.importorskip("torch")
    from spikecl.continual.checkpoint import read_checkpoint
    from spikecl.export.spec import load_trained
    from spikecl.errors import ResultsError

    genuine, path = tmp_path / "genuine.ckpt", tmp_path / "run.ckpt"
    torch.save({"model": {"w": torch.zeros(250_000)}}, genuine)
    with zipfile.ZipFile(genuine) as source, zipfile.ZipFile(path, "w") as crafted:
        for member in source.infolist():
            packed = zipfile.ZIP_DEFLATED if member.file_size == 1_000_000 else zipfile.ZIP_STORED
            crafted.writestr(member.filename, source.read(member), compress_type=packed)
    assert path.stat().st_size < 100_000
    for read in (read_checkpoint, load_trained):
        with pytest.raises(ResultsError, match=r"run.ckpt is damaged \(its member .*data/0 is compressed, which torch "
                                               r"never writes\)"):
            read(path)


def test_a_results_file_damaged_inside_an_array_is_corrupt_not_a_different_number(tmp_path):
    """Results arrays carry the CRC-32 of their bytes: a flipped byte of the accuracy matrix is a one-line "corrupt"
    error (which --resume treats as a run to do again), not another accuracy."""
    import h5py

    from spikecl.errors import ResultsError
    from spikecl.integrity import seal
    from spikecl.continual.results import ContinualResult, read_continual, write_continual

    acc = np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]])
    path = write_continual(tmp_path / "run.h5", ContinualResult(
        "finetune", 0, {"name": "x"}, acc, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)),
        np.array([1.0, 1.0]), {"acc": 0.875}))
    with h5py.File(path, "r") as f:
        offset = f["acc_matrix"].id.get_offset()
    _flip_byte_in(path, offset + 7)
    with pytest.raises(ResultsError, match=r"is damaged or was changed after it was written"):
        read_continual(path)                                       # the seal over every byte, and within:
    seal(path)
    with pytest.raises(ResultsError, match=r"is corrupt or incomplete \(array /acc_matrix fails its CRC-32\)$"):
        read_continual(path)


def test_a_python2_pickle_keeps_its_strings_as_bytes(tmp_path):
    # the docstring promises Python 2 pickles' strings stay bytes (encoding="bytes", not "latin1").
    # protocol 2, {b'data': 1} written as a Python 2 str key (SHORT_BINSTRING 'U')
    path = tmp_path / "py2.pkl"
    path.write_bytes(b"\x80\x02}q\x00U\x04dataq\x01K\x01s.")
    assert load_data_pickle(path) == {b"data": 1}


def _results_file(tmp_path):
    from spikecl.continual.results import ContinualResult, write_continual

    acc = np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]])
    return write_continual(tmp_path / "r.h5", ContinualResult("ewc", 0, {"name": "x"}, acc, np.array([5, 10]),
                                                              np.array([0, 1]), np.array([[0.5, 0.4], [0.85, 0.6]]),
                                                              np.array([1.5, 2.5]), {"acc": 0.875}))


@pytest.mark.parametrize("group, value", [("config", "[1, 2]"), ("environment", '"a string"')])
def test_a_results_file_whose_config_is_no_table_is_corrupt_in_one_line(tmp_path, group, value, capsys):
    """A config or environment stored as a JSON list or string raised AttributeError tracebacks in export and in
    the Python API."""
    from hdf5_files import edited, unseal
    from spikecl.continual.results import read_continual

    path = _results_file(tmp_path)
    with edited(path) as f:
        unseal(f)
        f[group].attrs["json"] = value
    with pytest.raises(ResultsError, match=re.escape(f"is corrupt: its recorded {group} is {value}, not a table")):
        read_continual(path)
    assert main(["export", str(path), "-o", str(tmp_path / "n.h5")]) == 2
    assert f"its recorded {group} is {value}, not a table" in capsys.readouterr().err


def test_a_trained_parameter_that_is_no_array_of_numbers_is_an_export_error():
    from spikecl.errors import ExportError
    from spikecl.export.spec import _array

    with pytest.raises(ExportError, match=r"^trained parameter 'w' is not an array of numbers \(it holds ndarray "
                                          r"\|S3\)$"):
        _array({"w": np.array([b"abc"])}, "w")


def test_a_checkpoint_whose_weight_is_a_list_is_refused_by_export(tmp_path, capsys):
    torch = pytest.importorskip("torch")

    path = tmp_path / "run.ckpt"
    torch.save({"model": {"layers.0.synapse.weight": [1.0, 2.0]}, "config": {}}, path)
    assert main(["export", str(path), "-o", str(tmp_path / "n.h5")]) == 2
    assert capsys.readouterr().err.strip().endswith("is not a spikecl run checkpoint (its model entry "
                                                    "'layers.0.synapse.weight' is a list, not a tensor)")


def test_an_integer_too_long_to_read_is_a_one_line_config_error(tmp_path, capsys):
    """tomllib raises a plain ValueError (not a TOMLDecodeError) for an integer of more than 4,300 digits."""
    path = tmp_path / "big.toml"
    path.write_text(f"name = \"x\"\nseeds = [{'9' * 5000}]\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"spikecl: error: {path}: invalid TOML (Exceeds the limit") and "\n" not in err
    assert main(["run", "models/split_digits.toml", "--set", f"train.epochs={'9' * 5000}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spikecl: error: --set train.epochs: not a TOML value (Exceeds the limit") and "\n" not in err


def test_a_pipe_named_as_a_file_is_not_a_regular_file_rather_than_not_found(tmp_path, capsys):
    """A FIFO or device under a results, network or experiment name was "not found"; it is there, but not a file."""
    fifo = tmp_path / "run.h5"
    os.mkfifo(fifo)
    for argv in (["report", str(fifo)], ["export", str(fifo), "-o", str(tmp_path / "n.h5")], ["run", str(fifo)],
                 ["deploy", str(fifo)]):                                  # deploy waited for ever on the pipe
        assert main(argv) == 2
        assert capsys.readouterr().err.strip() == (f"spikecl: error: {fifo} is not a regular file (a device, pipe or "
                                                   "socket)"), argv
    assert main(["report", str(tmp_path / "absent.h5")]) == 2
    assert "no such results file or folder" in capsys.readouterr().err


@pytest.mark.parametrize("offset", [0, 7, 14])
def test_a_byte_changed_in_the_seals_mark_is_damage_not_an_unsealed_file(tmp_path, offset):
    """A results file whose seal mark had one byte changed read as one written before the seal, its whole-file CRC
    unchecked (a CA3 learning graph, which has no other check, then read changed contents silently)."""
    from spikecl.io import read_run
    from spikecl.integrity import SEAL

    path = _results_file(tmp_path)
    read_run(path)
    _flip_byte_in(path, offset)
    assert not path.read_bytes().startswith(SEAL)
    with pytest.raises(ResultsError, match=r"r\.h5 is damaged \(the mark of its seal is changed\)$"):
        read_run(path)


def test_a_sealed_files_recorded_crc_is_not_given_for_a_truncated_or_extended_file(tmp_path):
    """A sweep's summary keeps its runs' sealed CRCs to name files rewritten since; the CRC is read from the seal,
    which a truncated file keeps, so a run file cut short after the sweep was not named (its length now tells)."""
    from spikecl.integrity import sealed_crc

    path = _results_file(tmp_path)
    crc, data = sealed_crc(path), path.read_bytes()
    assert isinstance(crc, int)
    for changed in (data[:-1], data + b"\0"):
        path.write_bytes(changed)
        assert sealed_crc(path) is None
    path.write_bytes(data)
    assert sealed_crc(path) == crc


def test_stale_temporaries_are_those_of_the_file_written_whatever_its_name_holds(tmp_path):
    """A results name holding glob characters (``run[1].h5``) matched another file's temporaries (``run1.h5``'s) and
    missed its own."""
    import time

    from spikecl import atomic

    long_ago = time.time() - 3600
    own, other = tmp_path / ".run[1].h5.abc123.tmp", tmp_path / ".run1.h5.def456.tmp"
    for tmp in (own, other):
        tmp.write_bytes(b"partial")
        os.utime(tmp, (long_ago, long_ago))
    atomic.atomic_write(tmp_path / "run[1].h5", lambda tmp: tmp.write_bytes(b"done"))
    assert not own.exists() and other.exists()
