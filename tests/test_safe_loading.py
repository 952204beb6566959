"""Untrusted files cannot run code: crafted dataset pickles are refused in one line, and the marker file a crafted
pickle would write is never created; real dataset pickles (numpy arrays, lists, dicts, scalars) still load."""

import datetime
import os
import pickle

import numpy as np
import pytest

from spikecl.data.datasets import load_dataset
from spikecl.data.pickles import load_data_pickle
from spikecl.errors import DataError


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
