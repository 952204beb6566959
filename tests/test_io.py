"""Results files: round trip, atomic writes, no silent overwrite, one-line errors for corrupt files."""

import h5py
import numpy as np
import pytest

from spikecl.errors import ExistsError, ResultsError
from spikecl.io import RunResult, atomic_write, read_results, write_results


def make_result(seed=0):
    acc = np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]])
    return RunResult("ewc", seed, {"name": "x", "train": {"lr": 0.1}}, acc, np.array([5, 10]), np.array([0, 1]),
                     np.array([[0.5, np.nan], [0.85, 0.6]]), np.array([1.5, 2.5]), {"acc": 0.875, "bwt": -0.1},
                     model={"w": np.ones((2, 3), np.float32)}, extra={"dims": np.array([3, 4])})


def test_round_trip(tmp_path):
    path = write_results(tmp_path / "r" / "run.h5", make_result())
    back = read_results(path)
    assert back.method == "ewc" and back.seed == 0 and back.config["train"]["lr"] == 0.1
    np.testing.assert_array_equal(back.acc_matrix, make_result().acc_matrix)
    np.testing.assert_array_equal(back.curve_accuracy, make_result().curve_accuracy)
    assert back.metrics == {"acc": 0.875, "bwt": -0.1}
    assert back.model["w"].dtype == np.float32 and back.extra["dims"].tolist() == [3, 4]
    assert "python" in back.environment and "numpy" in back.environment


def test_never_overwrites_without_permission(tmp_path):
    path = write_results(tmp_path / "run.h5", make_result(seed=0))
    with pytest.raises(ExistsError, match="--overwrite"):
        write_results(path, make_result(seed=1))
    assert read_results(path).seed == 0
    write_results(path, make_result(seed=1), overwrite=True)
    assert read_results(path).seed == 1


def test_failed_write_leaves_no_file(tmp_path):
    def boom(tmp):
        tmp.write_text("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.bin", boom)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "missing-key"])
def test_corrupt_files_are_one_line_errors(tmp_path, damage):
    path = tmp_path / "run.h5"
    write_results(path, make_result())
    if damage == "garbage":
        path.write_bytes(b"not an hdf5 file at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:800])
    elif damage == "foreign":
        with h5py.File(path, "w") as f:
            f["x"] = 1
    else:
        with h5py.File(path, "a") as f:
            del f["acc_matrix"]
    with pytest.raises(ResultsError) as info:
        read_results(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="not found"):
        read_results(tmp_path / "nope.h5")
