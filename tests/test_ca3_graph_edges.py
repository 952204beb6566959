"""Damaged CA3 learning-graph files are refused in one line when read (spikecl.export.ca3_graph.read_ca3_graph)."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from spikecl.cli import main
from spikecl.errors import ConfigError, DataError, ExistsError, ShapeError
from spikecl.export import ca3_graph
from spikecl.memory.lava_graph import expected_answers, write_ca3_graph
from spikecl.memory.params import CA3Params
from spikecl.memory.schedule import as_schedule, learn, recall_by_content, recall_by_cue

from lava_support import ROOT
from hdf5_files import damage_reads_or_is_one_line, edited, heap_damage_is_refused


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
    (_plastic("source", "CA3MergeCue"), DataError, "cue_to_content: connects CA3MergeCue -> CA3contCueRecall; the "
                                                   "CA3 model's cue_to_content connects CA3cueCueRecall ->"),
    (lambda f: f["network/plastic/cue_to_content/w_init"].__setitem__((0, 0), 50.0), DataError,
     "cue_to_content/w_init: values 0..50 nA leave the rule's bounds 0..6 nA"),
    (lambda f: f["network"].attrs.__setitem__("syn_decay", 5.0), DataError, "/network.syn_decay: 5.0 outside 0.0..1.0"),
    (lambda f: f["network/static/00"].attrs.__setitem__("delay_steps", 0.5), DataError,
     "/network/static/00.delay_steps: expected an integer, got 0.5"),
    (lambda f: f["network/static/01"].attrs.__setitem__("source", np.array([1, 2])), DataError,
     "/network/static/01.source: expected a population name, got [1, 2]"),
    (_plastic("target", 3.5), DataError, "cue_to_content.target: expected a population name, got 3.5"),
    (lambda f: _replace(f, "network/static", np.arange(3)), DataError, "/network/static: expected a group"),
    (lambda f: _replace(f, "network/plastic", np.arange(3)), DataError, "/network/plastic: expected a group"),
    (lambda f: _replace(f, "network/populations", np.arange(3)), DataError,
     "/network/populations: expected a group"),
    (lambda f: f.attrs.__setitem__("learning_graph", np.array([1, 2])), DataError, "learning graph"),
    (lambda f: f["network/static/00"].attrs.__setitem__("delay_steps", -1), DataError,
     "/network/static/00.delay_steps: -1 outside 0..62"),
    (lambda f: f.attrs.__setitem__("steps", 90.7), DataError, "/.steps: expected an integer, got 90.7"),
    (lambda f: f["network"].attrs.__setitem__("refractory_steps", 1.5), DataError,
     "/network.refractory_steps: expected an integer"),
    (lambda f: _replace(f, "network/static/00/weights", np.full(f["network/static/00/weights"].shape, b"a")),
     DataError, "network/static/00/weights: holds |S1 values, not numbers"),
    # delays and lags past the run or Loihi's delay field (Lava would allocate a buffer that long)
    (lambda f: f["network/static/00"].attrs.__setitem__("delay_steps", 10**9), DataError,
     "/network/static/00.delay_steps: 1000000000 outside 0..62 (below the run's 90 steps and at most MAX_DELAY_STEPS"),
    (lambda f: f["network"].attrs.__setitem__("post_lag_steps", 10**9), DataError,
     "/network.post_lag_steps: 1000000000 outside 1..62"),
    (lambda f: f["network"].attrs.__setitem__("post_lag_steps", 0), DataError,
     "/network.post_lag_steps: 0 outside 1..62"),
    (lambda f: f["network"].attrs.__setitem__("refractory_steps", 10**9), DataError,
     "/network.refractory_steps: 1000000000 outside 0..90 (the run's 90 steps)"),
    # inputs and rasters: spikes are bool or 0/1 integers, never strings, floats or other integers
    (lambda f: _replace(f, "inputs/INcue", np.full((90, 5), b"1")), DataError,
     "inputs/INcue: holds |S1 values, not spikes (bool or 0/1 integers)"),
    (lambda f: _replace(f, "inputs/INcue", f["inputs/INcue"][()] * 0.5), DataError,
     "inputs/INcue: holds float64 values, not spikes"),
    (lambda f: _replace(f, "inputs/INcont", f["inputs/INcont"][()].astype(int) * 7), DataError,
     "inputs/INcont: holds the value 7; spikes are 0 or 1"),
    (lambda f: _replace(f, "reference/spikes/OUTcue", f["reference/spikes/OUTcue"][()] * 1.0), DataError,
     "reference/spikes/OUTcue: holds float64 values, not spikes"),
    # booleans where numbers belong, fractions where steps belong
    (lambda f: _replace(f, "network/static/00/weights", f["network/static/00/weights"][()] != 0), DataError,
     "network/static/00/weights: holds bool values, not numbers"),
    (lambda f: _replace(f, "reference/weights/cue_to_content", np.ones((5, 10), bool)), DataError,
     "reference/weights/cue_to_content: holds bool values, not numbers"),
    (lambda f: _replace(f, "readout/cue_step", f["readout/cue_step"][()] > 0), DataError,
     "readout/cue_step: holds bool values, not integer steps"),
    (lambda f: _replace(f, "readout/cue_step", f["readout/cue_step"][()] + 0.5), DataError,
     "readout/cue_step: holds float64 values, not integer steps"),
    (lambda f: f["network/populations/OUTcue"].attrs.__setitem__("alpha", True), DataError,
     "/network/populations/OUTcue.alpha: expected a finite number"),
    (lambda f: f["network/populations/INcue"].attrs.__setitem__("input", "no"), DataError,
     "/network/populations/INcue.input: expected a boolean, got 'no'"),
    # the network's structure: one order per population, no unknown attributes or projections
    (lambda f: f["network/populations/OUTcue"].attrs.__setitem__("order", 0), DataError,
     "/network/populations: 'INcue' and 'OUTcue' have the same order 0"),
    (_plastic("a_plus_mV", 1.0), DataError, "/network/plastic/cue_to_content: unknown attribute 'a_plus_mV'"),
    (lambda f: f["network/static/00"].attrs.__setitem__("delay_ms", 1.0), DataError,
     "/network/static/00: unknown attribute 'delay_ms'"),
    (lambda f: f["network/plastic"].copy("cue_to_content", "extra"), DataError,
     "/network/plastic/extra: unknown plastic projection (the CA3 graph has cue_to_content, content_to_cue)"),
    # a stored reference run is complete
    (lambda f: f["reference/weights"].__delitem__("cue_to_content"), DataError,
     "missing '/reference/weights/cue_to_content'"),
    (lambda f: f["reference/spikes"].__delitem__("CA3contCond"), DataError, "missing '/reference/spikes/CA3contCond'"),
    # the first value past a bound: a readout step equal to the run's steps, a plastic weight below w_min_nA
    (lambda f: f["readout/content_step"].__setitem__(0, 90), DataError, "/readout/content_step: step 90 outside 0..89"),
    (lambda f: f["network/plastic/cue_to_content/w_init"].__setitem__((0, 0), -1.0), DataError,
     "cue_to_content/w_init: values -1..0 nA leave the rule's bounds 0..6 nA"),
    (lambda f: f["network/static/00"].attrs.__setitem__("target", "INcue"), DataError,
     "/network/static/00: targets the input 'INcue'"),
])
def test_damaged_ca3_graph_files_are_refused_in_one_line(graph_file, tmp_path, capsys, edit, error, words):
    bad = tmp_path / "bad.h5"
    shutil.copy(graph_file, bad)
    with edited(bad) as f:
        edit(f)
    with pytest.raises(error) as info:
        ca3_graph.read_ca3_graph(bad)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert main(["deploy", str(bad), "--backend", "reference"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_huge_declared_input_is_refused_before_it_is_read(graph_file, tmp_path, capsys):
    """A chunked [2^31, 4096] cue raster is a few kB on disk and 8 TiB in memory: its shape is checked first."""
    bad = tmp_path / "bad.h5"
    shutil.copy(graph_file, bad)
    with edited(bad) as f:
        del f["inputs/INcue"]
        f.create_dataset("inputs/INcue", shape=(2**31, 4096), dtype=bool, chunks=(1, 4096))
    with pytest.raises(ShapeError, match="inputs/INcue: shape \\(2147483648, 4096\\), expected"):
        ca3_graph.read_ca3_graph(bad)
    assert main(["deploy", str(bad), "--backend", "reference"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_an_intact_graph_still_reads_and_decodes(graph_file):
    from spikecl.memory.params import PLASTIC

    graph = ca3_graph.read_ca3_graph(graph_file)
    assert graph.steps == 90 and set(graph.reference["weights"]) == set(ca3_graph.PLASTIC)
    assert ca3_graph.PLASTIC == PLASTIC                      # the export side's copy of the model's endpoints
    assert ca3_graph.deploy(graph_file, "reference")["recall_accuracy"] == 1.0


def test_fixed_learning_refuses_a_rule_its_trace_encoding_cannot_hold(graph_file, tmp_path, capsys):
    """The fixed-point rule maps A+ onto the trace's full impulse and removes one full impulse at a same-step
    pair: A+ < w_max (or w_max = 0) would be learned wrongly, so it is refused before Lava starts."""
    for key, value in (("a_plus_nA", 3.0), ("w_max_nA", 0.0)):
        bad = tmp_path / f"{key}.h5"
        shutil.copy(graph_file, bad)
        with edited(bad) as f:
            if key == "w_max_nA":
                f["network/plastic/content_to_cue"].attrs["a_plus_nA"] = 0.0
            f["network/plastic/content_to_cue"].attrs[key] = value
        assert main(["deploy", str(bad), "--backend", "lava-sim", "--learning", "fixed"]) == 2
        err = capsys.readouterr().err
        assert "--learning fixed: content_to_cue has a_plus_nA" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("key, value, words", [
    ("w_min_nA", 0.5, "has w_min_nA = 0.5; its 8-bit weights are excitatory units from 0"),
    ("a_minus_nA", 7.0, "has a_minus_nA = 7 above w_max_nA = 6; a 7-bit trace impulse holds at most w_max"),
    ("a_minus_nA", 6.000001, "has a_minus_nA = 6.000001 above w_max_nA = 6;"),
    ("tau_minus_ms", 2.5, "has tau_minus_ms = 2.5; its traces decay by whole 1 ms steps"),
    ("tau_plus_ms", 3.0000000001, "has tau_plus_ms = 3.0000000001; its traces")])
def test_fixed_learning_refuses_bounds_and_time_constants_before_lava_starts(graph_file, tmp_path, capsys, key, value,
                                                                              words, monkeypatch):
    """The fixed-point rule's other needs (w_min = 0, A- <= w_max, whole-ms time constants) are refused in one
    line by deploy itself, before the Lava side is started (it refuses them too, later)."""
    bad = tmp_path / f"{key}.h5"
    shutil.copy(graph_file, bad)
    with edited(bad) as f:
        f["network/plastic/content_to_cue"].attrs[key] = value
        f["network/plastic/content_to_cue/w_init"][...] = 1.0          # within every bound tried
    monkeypatch.setattr(ca3_graph, "run_lava", lambda *a, **k: pytest.fail("Lava started"))
    assert main(["deploy", str(bad), "--backend", "lava-sim", "--learning", "fixed"]) == 2
    err = capsys.readouterr().err
    assert f"--learning fixed: content_to_cue {words}" in err and err.count("\n") == 1, err


def test_fixed_learning_refuses_k_of_n_matching_before_lava_starts(tmp_path, capsys, monkeypatch):
    """k-of-n matching's content -> cue gain counts fully potentiated bits of w_max, which the fixed rule's
    saturated traces leave short (4.28 of 6 nA): on a 6 x 10 trial recall by content fell silent in 8 of 38 answers.
    Refused in one line before the Lava side starts; OR-matching (the published model) is taken."""
    ops = [learn(0, [0, 1, 5]), learn(2, [1, 2, 3]), recall_by_content([1, 5]), recall_by_cue(2)]
    for match_k, refused in ((2, True), (3, True), (0, False)):
        path = write_ca3_graph(tmp_path / f"k{match_k}.h5", ops, 3, 6, CA3Params(match_k=match_k), overwrite=True)
        monkeypatch.setattr(ca3_graph, "run_lava", lambda *a, **k: pytest.fail("Lava started") if refused else {})
        if not refused:
            ca3_graph.check_fixed_rules(ca3_graph.read_ca3_graph(path))
            continue
        assert main(["deploy", str(path), "--backend", "lava-sim", "--learning", "fixed"]) == 2
        assert capsys.readouterr().err == (f"spikecl: error: --learning fixed: the graph recalls by {match_k}-of-n "
                                           f"matching (match_k = {match_k}), whose gain counts fully potentiated bits "
                                           "the fixed-point rule does not reach (a learned synapse ends near 4.3 of 6 "
                                           "nA); use --learning float\n")


def test_the_writer_refuses_delays_every_reader_refuses(tmp_path):
    """A delay over MAX_DELAY_STEPS is refused before the reference run, not written and then refused on reading;
    the writer's limit is the reader's."""
    from dataclasses import replace

    from spikecl.errors import ConfigError
    from spikecl.memory.lava_graph import MAX_DELAY_STEPS, write_ca3_graph
    from spikecl.memory.params import CA3Params
    from spikecl.memory.schedule import learn

    ops = [learn(0, [0, 1])]

    assert MAX_DELAY_STEPS == ca3_graph.MAX_DELAY_STEPS
    params = replace(CA3Params(), delay_output_ms=float(MAX_DELAY_STEPS + 2))   # delay/dt − 1 = 63 steps
    with pytest.raises(ConfigError, match=r"-> OUTcue delay is 63 steps; .* at most 62 steps"):
        write_ca3_graph(tmp_path / "g.h5", ops, 2, 4, params)
    assert not (tmp_path / "g.h5").exists()
    edge = replace(CA3Params(), delay_output_ms=float(MAX_DELAY_STEPS + 1))      # 62 steps: written and read back
    read = ca3_graph.read_ca3_graph(write_ca3_graph(tmp_path / "edge.h5", ops, 2, 4, edge, spacing_ms=100))
    assert max(delay for _, _, delay, _ in read.static) == MAX_DELAY_STEPS


def test_decoding_a_graphs_run_refuses_rasters_cut_short_or_swapped(graph_file):
    """As the memory's own decode: a raster cut short answered () for the operations past its end, swapped ones
    answered from the other layer."""
    graph = ca3_graph.read_ca3_graph(graph_file)
    cue, content = graph.reference["spikes"]["OUTcue"], graph.reference["spikes"]["OUTcont"]
    assert [r["answer"] for r in ca3_graph.decode(graph, cue, content)] == \
        [r["answer"] for r in ca3_graph.decode(graph, cue.copy(), content.copy())]
    for args, name in (((cue[:10], content), "out_cue"), ((content, cue), "out_cue")):
        with pytest.raises(ShapeError, match=f"^{name} has shape .*; expected \\[T >= {graph.steps}, "):
            ca3_graph.decode(graph, *args)


def test_a_graph_libhdf5_would_loop_on_is_refused_before_it_is_opened(graph_file, tmp_path, capsys):
    """A zeroed global heap object (libhdf5 walks it for ever, deaf to Ctrl-C): the graph's seal refuses it, and in
    a graph without the seal the heap check does; deploy refuses it in one line."""
    bad = tmp_path / "bad.h5"
    shutil.copy(graph_file, bad)
    heap_damage_is_refused(bad, ca3_graph.read_ca3_graph, DataError)
    assert main(["deploy", str(bad), "--backend", "reference"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_damaged_bytes_of_a_graph_are_one_line_errors_or_read(graph_file, tmp_path):
    """Zeroed blocks across the file: h5py's KeyError, AttributeError or RuntimeError on the damage is the reader's
    one-line error (a block landing on unused bytes reads as written), never a traceback; the graph's seal refuses
    every such file, so each is also tested sealed over its damage (as a graph written before the seal)."""

    from spikecl.export.learning_graphs import kind_of

    bad = tmp_path / "bad.h5"
    shutil.copy(graph_file, bad)
    def read(path):
        assert kind_of(path) in (None, "ca3")
        ca3_graph.read_ca3_graph(path)

    damage_reads_or_is_one_line(bad, read, (DataError, ShapeError))     # the file, or the place in it, named


def test_spike_match_counts_shared_events_and_takes_two_silent_rasters_as_equal():
    """Per cell population: events in both over events in either (1/3 here); two silent rasters match (1.0);
    the inputs (IN*) are not compared."""
    ref = {"A": np.array([[1, 1, 0]], bool), "S": np.zeros((2, 3), bool), "INcue": np.ones((2, 2), bool)}
    run = {"A": np.array([[1, 0, 1]], bool), "S": np.zeros((2, 3), bool), "INcue": np.zeros((2, 2), bool)}
    match = ca3_graph.spike_match(ref, run)
    assert set(match) == {"A", "S"} and match["A"] == pytest.approx(1 / 3) and match["S"] == 1.0


def test_the_ideal_answers_replace_relearned_content_and_need_match_k_shared_bits():
    """A relearned cue answers its new content only; a recall by content names every cue sharing >= max(1, k)
    bits with the fragment (k = match_k)."""
    ops = [learn(0, [0, 1]), learn(1, [1, 2]), learn(0, [2, 3]), recall_by_cue(0), recall_by_content([1, 2])]
    schedule = as_schedule(ops, 2, 4, 14)
    assert expected_answers(schedule) == [(0, 1), (1, 2), (2, 3), (2, 3), (0, 1)]
    assert expected_answers(schedule, match_k=2)[-1] == (1,)


def test_the_writer_refuses_a_post_lag_or_plastic_delay_the_graph_cannot_hold(tmp_path):
    """An STDP post lag over MAX_DELAY_STEPS (every reader refuses it) and a plastic delay other than the
    published 1 ms are refused before the reference run; no file is left."""
    for params, words in ((replace(CA3Params(), stdp_post_lag_ms=float(ca3_graph.MAX_DELAY_STEPS + 1)),
                           "the stdp_post_lag_ms is 63 steps; a Lava CA3 graph holds delays of at most 62 steps"),
                          (replace(CA3Params(), delay_plastic_ms=3.0, stdp_post_lag_ms=3.0),
                           "delay_plastic_ms: the Lava CA3 graph needs the published 1 ms")):
        with pytest.raises(ConfigError, match=words):
            write_ca3_graph(tmp_path / "g.h5", [learn(0, [0, 1])], 2, 4, params)
        assert not (tmp_path / "g.h5").exists()


def test_the_writer_flags_a_reset_above_either_threshold_and_never_replaces_a_file(tmp_path):
    """reset_below_threshold holds only when v_reset_mV is below both the cells' and the output's threshold
    (-57.2 mV lies between -57.5 and -57); a second write to the same path is an ExistsError, the file kept."""
    path = write_ca3_graph(tmp_path / "g.h5", [learn(0, [0, 1])], 2, 4, replace(CA3Params(), v_reset_mV=-57.2))
    assert ca3_graph.read_ca3_graph(path).network["reset_below_threshold"] is False
    before = path.read_bytes()
    with pytest.raises(ExistsError, match="exists; pass overwrite=True"):
        write_ca3_graph(path, [learn(0, [0, 1])], 2, 4)
    assert path.read_bytes() == before
