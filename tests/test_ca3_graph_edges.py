"""Damaged CA3 learning-graph files are refused in one line when read (spikecl.export.ca3_graph.read_ca3_graph)."""

import json
import shutil

import h5py
import numpy as np
import pytest

from spikecl.cli import main
from spikecl.errors import DataError, ShapeError
from spikecl.export import ca3_graph

from lava_support import ROOT


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ca3") / "exp1.h5"
    assert main(["export", str(ROOT / "models" / "ca3_cam.toml"), "-o", str(path)]) == 0
    return path


def _replace(f, key, data):
    del f[key]
    f.create_dataset(key, data=data)


def _plastic(key, value):
    return lambda f: f["network/plastic/cue_to_content"].attrs.__setitem__(key, value)


@pytest.mark.parametrize("edit, error, words", [
    (lambda f: f["readout"].attrs.__setitem__("kinds", "not json"), DataError, "/readout.kinds: not valid JSON"),
    (lambda f: f.attrs.__setitem__("params", "{bad"), DataError, "/.params: not valid JSON"),
    (lambda f: f.attrs.__setitem__("params", "[1]"), DataError, "/.params: expected a JSON dict, got list"),
    (lambda f: f["readout"].attrs.__setitem__("expected", json.dumps([1] * 9)), DataError,
     "/readout.expected: every operation's answer must be a JSON list"),
    (lambda f: f.attrs.__setitem__("version", "one"), DataError, "/.version: expected a finite number, got 'one'"),
    (lambda f: f["reference"].__delitem__("spikes"), DataError, "missing group '/reference/spikes'"),
    (lambda f: f["reference"].attrs.__setitem__("ms_per_step", "fast"), DataError,
     "/reference.ms_per_step: expected a finite number, got 'fast'"),
    (lambda f: _replace(f, "reference/weights/cue_to_content", np.zeros((2, 2))), ShapeError,
     "reference/weights/cue_to_content: shape (2, 2), expected"),
    (lambda f: f["reference/weights"].copy("cue_to_content", "extra"), DataError,
     "/reference: 'extra' is not a population or plastic projection"),
    (lambda f: _replace(f, "reference/spikes/OUTcue", np.zeros((3, 3), bool)), ShapeError,
     "reference/spikes/OUTcue: shape (3, 3), expected (90, 5)"),
    (lambda f: (f["reference/spikes"].__delitem__("OUTcue"), f["reference/spikes"].create_group("OUTcue")),
     DataError, "reference/spikes/OUTcue: not a dataset"),
    (_plastic("tau_plus_ms", 0.0), DataError, "cue_to_content.tau_plus_ms: 0.0 must be > 0"),
    (_plastic("tau_minus_ms", -3.0), DataError, "cue_to_content.tau_minus_ms: -3.0 must be > 0"),
    (_plastic("w_min_nA", 1e3), DataError, "cue_to_content: w_min_nA 1000.0 > w_max_nA"),
    (lambda f: f["network"].attrs.__setitem__("syn_decay", 5.0), DataError, "/network.syn_decay: 5.0 outside 0.0..1.0"),
    (lambda f: f["network/static/00"].attrs.__setitem__("delay_steps", 0.5), DataError,
     "/network/static/00.delay_steps: expected an integer, got 0.5"),
    (lambda f: f["network/static/00"].attrs.__setitem__("delay_steps", -1), DataError,
     "/network/static/00.delay_steps: -1 outside 0..inf"),
    (lambda f: f.attrs.__setitem__("steps", 90.7), DataError, "/.steps: expected an integer, got 90.7"),
    (lambda f: f["network"].attrs.__setitem__("refractory_steps", 1.5), DataError,
     "/network.refractory_steps: expected an integer"),
    (lambda f: _replace(f, "network/static/00/weights", np.full(f["network/static/00/weights"].shape, b"a")),
     DataError, "network/static/00/weights: holds |S1 values, not numbers"),
])
def test_damaged_ca3_graph_files_are_refused_in_one_line(graph_file, tmp_path, capsys, edit, error, words):
    bad = tmp_path / "bad.h5"
    shutil.copy(graph_file, bad)
    with h5py.File(bad, "r+") as f:
        edit(f)
    with pytest.raises(error) as info:
        ca3_graph.read_ca3_graph(bad)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert main(["deploy", str(bad), "--backend", "reference"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_an_intact_graph_still_reads_and_decodes(graph_file):
    graph = ca3_graph.read_ca3_graph(graph_file)
    assert graph.steps == 90 and set(graph.reference["weights"]) == set(ca3_graph.PLASTIC)
    assert ca3_graph.deploy(graph_file, "reference")["recall_accuracy"] == 1.0
