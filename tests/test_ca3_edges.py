"""Edges of the ``ca3`` kind: damaged parts under --resume and report, settings the maths refuses."""

import json
import re
import shutil

import numpy as np
import pytest
from hdf5_files import edited, unseal

from spikecl.cli import main
from spikecl.errors import ConfigError, ResultsError
from spikecl.memory.params import CA3Params
from spikecl.memory.results import read_part
from spikecl.memory.schedule import encode, learn, make_schedule, recall_by_cue, recorded_schedule
from spikecl.memory.stress import StressGrid, run_grid, table_columns
from test_ca3_experiment import run_cli


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One tiny experiment's parts (functional on torch, stress C=5 M=6 published and read_only)."""
    out = tmp_path_factory.mktemp("ca3")
    assert run_cli(out, "--no-plots") == 0
    return out


@pytest.fixture
def parts(made, tmp_path):
    """A copy of the tiny experiment in ``tmp_path``; returns its parts' folder."""
    shutil.copytree(made / "ca3_cam", tmp_path / "ca3_cam")
    return tmp_path / "ca3_cam"


def edit(path, change):
    with edited(path) as f:
        change(f)
        unseal(f)


def test_table_columns_are_what_run_grid_writes():
    grid = StressGrid(4, 6, "published", (0.2, 0.3), (14,), (0,), (1, 2, 3), 2)    # contents of 1 and 2 bits
    assert sorted(run_grid(grid)) == sorted(table_columns(6, [0.2, 0.3], [1, 2, 3], 2))
    columns = table_columns(6, [0.3], [1, 2, 3])
    assert "content_hit_f2" in columns and "content_hit_f3" not in columns


@pytest.mark.parametrize("file, entry", [
    ("stress_C5_M6_published.h5", "table/cue_exact"), ("stress_C5_M6_published.h5", "table/content_precision_f1"),
    ("stress_C5_M6_read_only.h5", "table/kept_exact"), ("functional.h5", "spikes/OUTcont"),
    ("functional.h5", "spikes/INcue"), ("functional.h5", "weights/content_to_cue"),
])
def test_a_part_missing_a_metric_column_or_a_population_is_damaged(parts, capsys, file, entry):
    edit(parts / file, lambda f: f.__delitem__(entry))
    group = entry.split("/")[0]
    with pytest.raises(ResultsError, match=f"corrupt or incomplete \\(no '{entry}'; {group} holds "):
        read_part(parts / file)
    assert main(["report", str(parts), "--no-plots"]) == 2
    assert f"skipped: {parts / file} is corrupt or incomplete (no '{entry}'; {group} holds " in capsys.readouterr().out
    assert run_cli(parts.parent, "--no-plots", "--resume") == 0
    out = capsys.readouterr().out
    assert f"{parts / file}: complete, kept" not in out and "nan" not in out
    read_part(parts / file)


@pytest.mark.parametrize("name, value, message", [
    ("kinds", "notjson", "its attribute 'kinds' is not JSON"),
    ("starts_ms", "{", "its attribute 'starts_ms' is not JSON"),
    ("kinds", '["jump"]', "its attributes 'kinds' and 'starts_ms' are not one operation kind"),
    ("starts_ms", "[0, 10]", "its attributes 'kinds' and 'starts_ms' are not one operation kind"),
    ("starts_ms", '["0"]', "its attributes 'kinds' and 'starts_ms' are not one operation kind"),
    ("duration_ms", "90", "its attribute 'duration_ms' is '90', not a whole number >= 1"),
    ("n_cues", 0, "its attribute 'n_cues' is 0, not a whole number >= 1"),
    ("params", "[1]", "its attribute 'params' does not read back"),
])
def test_damaged_attributes_the_plots_read_are_one_line_errors(parts, capsys, tmp_path, name, value, message):
    functional = parts / "functional.h5"
    edit(functional, lambda f: f.attrs.__setitem__(name, value))
    assert main(["report", "--plots", str(tmp_path / "plots"), str(functional)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{functional} is corrupt or incomplete: {message}" in err and len(err.splitlines()) == 1
    assert main(["report", "--plots", str(tmp_path / "plots"), str(parts)]) == 2
    assert f"skipped: {functional} is corrupt or incomplete: {message}" in capsys.readouterr().out


def _first_cue_exact(f, value: float) -> None:
    """The first trial's cue_exact set to ``value``, as an older file without array CRCs holds it."""
    f["table/cue_exact"][0] = value
    del f["table/cue_exact"].attrs["crc32"]


@pytest.mark.parametrize("change, message", [
    (lambda f: _first_cue_exact(f, 3.0), "its stress table's cue_exact holds 3, not a fraction"),
    (lambda f: _first_cue_exact(f, np.nan), "its stress table's cue_exact holds nan, not a fraction"),
    (lambda f: f.attrs.__setitem__("variant", "bogus"), "its attribute 'variant' is 'bogus', not one of published"),
    (lambda f: f.attrs.__setitem__("n_cues", 99), "its part C=99 M=6 is not one of its config's stress.sizes"),
])
def test_a_stress_table_of_impossible_values_is_refused(parts, change, message):
    """The report printed a cue exact of 300 % or nan, and a 99x6 'bogus' row, as they were."""
    part = parts / "stress_C5_M6_published.h5"
    edit(part, change)
    with pytest.raises(ResultsError, match=re.escape(message)):
        read_part(part)


def _all_spikes(f, pop: str) -> None:
    """Every neuron of ``pop`` firing at every step, as an older file without array CRCs holds it."""
    f[f"spikes/{pop}"][...] = True
    del f[f"spikes/{pop}"].attrs["crc32"]


def _decoded_bits(f, index: int, bits: list) -> None:
    decoded = json.loads(f.attrs["decoded"])
    decoded[index]["bits"] = bits
    f.attrs["decoded"] = json.dumps(decoded)


@pytest.mark.parametrize("change, message", [
    (lambda f: _all_spikes(f, "OUTcont"), "its attribute 'mismatched_spikes' is 0, but its rasters differ from the "
                                          "SpiNNaker recording in"),
    (lambda f: _decoded_bits(f, 3, [7]), "its decoded answer at t="),
])
def test_a_functional_part_whose_attributes_are_not_what_its_rasters_give_is_refused(parts, change, message):
    """The table printed '0 spikes differ from SpiNNaker' and the decoded answers from attributes, whatever the
    rasters beside them held."""
    functional = parts / "functional.h5"
    edit(functional, change)
    with pytest.raises(ResultsError, match=re.escape(message)):
        read_part(functional)


@pytest.mark.parametrize("config", ["[1]", "null", '"text"'])
def test_a_part_whose_recorded_config_is_not_a_table_is_run_again_by_resume(parts, capsys, config):
    part = parts / "stress_C5_M6_published.h5"
    edit(part, lambda f: f["config"].attrs.__setitem__("json", config))
    with pytest.raises(ResultsError, match=re.escape(f"is corrupt: its recorded config is {config}, not a table")):
        read_part(part)
    assert run_cli(parts.parent, "--no-plots", "--resume") == 0
    assert f"{part}: complete, kept" not in capsys.readouterr().out
    assert read_part(part)["table"]["cue_exact"].tolist() == [1.0]


def test_a_learn_may_hold_its_input_up_to_the_next_operation_not_a_ms_longer():
    """encode: a learn 7 ms before the next operation holds its input 7 ms at most; 8 ms would still be on when the
    next operation's input arrives (a one-line ConfigError)."""
    s = make_schedule([learn(0, [1, 2]), recall_by_cue(0)], 2, 3, 7)
    cue, content = encode(s, 2, 3, hold_steps=7)
    assert cue[:, 0].tolist() == [True] * 8 + [False] * 7 and content[:7, 1:].all() and not content[7:, 1:].any()
    with pytest.raises(ConfigError, match="holds its input 8 ms, longer than the 7 ms to the next operation$"):
        encode(s, 2, 3, hold_steps=8)


def test_a_recorded_schedule_reads_back_only_with_every_start_within_its_duration():
    """recorded_schedule (what the plots mark): a start at or past duration_ms, or before 0, does not read back."""
    attrs = {"kinds": '["learn", "recall_cue"]', "starts_ms": "[0, 14]", "duration_ms": 28}
    assert recorded_schedule(attrs).starts_ms == (0, 14)
    for starts in ("[0, 28]", "[0, 29]", "[-1, 14]"):
        with pytest.raises(ValueError, match="one start within duration_ms per operation"):
            recorded_schedule({**attrs, "starts_ms": starts})


def test_match_k_needs_a_positive_w_max_before_any_part_runs(tmp_path, capsys):
    assert CA3Params(w_max_nA=0.0).content_to_cue_gain == 1.0          # OR-matching: no bit count to scale
    assert run_cli(tmp_path, "--set", 'stress.variants=["published", "k2"]', "--set", "params.w_max_nA=0") == 2
    err = capsys.readouterr().err.strip()
    assert "stress variant 'k2': CA3Params.w_max_nA: match_k = 2" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "ca3_cam").exists()



@pytest.mark.parametrize("field, value", [("a_plus_nA", np.float32("nan")), ("v_thresh_mV", np.float64("nan")),
                                          ("tau_m_slow_ms", np.float32("inf"))])
def test_numpy_nan_and_infinity_are_refused_as_python_ones_are(field, value):
    """A numpy float is a number to CA3Params, and is checked as one: NaN learned NaN weights, and an infinite
    time constant silenced every answer, without an error."""
    message = f"CA3Params.{field}: expected a finite number, got {float(value)}"
    with pytest.raises(ConfigError, match=re.escape(message)):
        CA3Params(**{field: value})
    p = CA3Params(a_plus_nA=np.float32(5.0), learn_hold_steps=np.int64(3))    # held as Python numbers
    assert type(p.a_plus_nA) is float and type(p.learn_hold_steps) is int and p.a_plus_nA == 5.0


def test_encode_and_decode_refuse_what_would_give_wrong_answers():
    """encode: a hold of 0 ms (the learn vanished), a negative one (held almost to the end), a float, and a schedule
    made for a bigger memory; decode: a batch's [T, B, N] rasters, rasters cut short and swapped ones. Each one
    line; the right ones decode as the memory answers."""
    import torch

    from spikecl.errors import ShapeError
    from spikecl.memory import decode, encode, learn, make_schedule, recall_by_content, recall_by_cue
    from spikecl.memory.torch_net import TorchCA3

    s = make_schedule([learn(1, [2, 3]), recall_by_cue(1), recall_by_content([3])], 3, 5)
    for hold in (0, -2, 2.5, True):
        with pytest.raises(ConfigError, match="hold_steps must be an integer >= 1"):
            encode(s, 3, 5, hold)
    with pytest.raises(ConfigError, match=re.escape("content: bit 3 is out of range [0, 3)")):
        encode(s, 3, 3)
    spikes = TorchCA3(CA3Params(), 3, 5, batch_size=2).run(*map(torch.as_tensor, encode(s, 3, 5)))
    cue, content = spikes["OUTcue"].numpy(), spikes["OUTcont"].numpy()
    assert [r.answer for r in decode(s, cue[:, 0], content[:, 0])] == [(2, 3), (2, 3), (1,)]
    for args, name in (((cue, content), "out_cue"), ((cue[:20, 0], content[:20, 0]), "out_cue"),
                       ((content[:, 0], cue[:, 0]), "out_content")):
        with pytest.raises(ShapeError, match=f"^{name} has shape .*; expected \\[T >= {s.duration_ms}, N >= "):
            decode(s, *args)


@pytest.mark.parametrize("spacing, message", [
    (6, "spacing_ms 6: below the 7 ms a learn needs before the next operation"),
    ([14], "spacing_ms: one gap (ms) for every run of the memory, got [14]"),
])
def test_a_memory_refuses_a_spacing_its_learns_could_never_run_with(spacing, message):
    """Checked against one recall only, 6 ms passed and then every learn failed; a list passed and then every run
    of more than one operation failed."""
    from spikecl.memory import CA3Memory

    with pytest.raises(ConfigError, match=re.escape(message)):
        CA3Memory(3, 5, spacing_ms=spacing)



def test_a_memory_at_the_minimum_spacing_of_a_learn_learns_and_recalls():
    """7 ms, the documented minimum after a learn, is allowed (not only above it)."""
    from spikecl.memory import CA3Memory

    mem = CA3Memory(5, 10, backend="torch", spacing_ms=7)
    run = mem.run([learn(0, [0, 1, 8, 9]), recall_by_cue(0)])
    assert run.schedule.starts_ms == (0, 7)
    assert [r.answer for r in run.results] == [(0, 1, 8, 9), (0, 1, 8, 9)]

OPS_TIMED = [((0, 3, 6, 9), 30, r"^operation 0 \(learn cue 0 -> \{0, 1\}\) is followed after 3 ms; the minimum after "
                                r"a learn is 7 ms$"),
             ((-14, 0, 14, 28), 40, r"^Schedule.starts_ms: the first operation starts at -14 ms, before the schedule$"),
             ((0, 14), 40, r"^Schedule: 2 starts_ms for 4 operations; give one start per operation"),
             ((0, 14.5, 28, 42), 56, r"^Schedule.starts_ms\[1\]: expected a whole number of ms, got 14.5$"),
             ((0, 14, 42, 28), 56, r"^operation 2 \(recall by cue 0\) is followed after -14 ms"),
             ((0, 14, 28, 42), 49, r"^Schedule.duration_ms: the schedule ends 7 ms after its last operation starts; "
                                   r"at least 8 ms"),
             ((0, 14, 28, 42), 10**8, r"^Schedule.duration_ms: the schedule would last 100000000 ms")]


@pytest.mark.parametrize("starts, duration, message", OPS_TIMED)
def test_a_ready_schedule_is_held_to_the_timing_make_schedule_enforces(starts, duration, message):
    from spikecl.memory import learn, recall_by_cue, run_batch
    from spikecl.memory.schedule import Schedule, encode

    ops = (learn(0, [0, 1]), learn(1, [2, 3]), recall_by_cue(0), recall_by_cue(1))
    assert [r.bits for r in run_batch([Schedule(ops, (5, 19, 33, 47), 60)], 2, 6)[0].results] == [(0, 1), (2, 3)] * 2
    for use in (lambda s: run_batch([s], 2, 6), lambda s: encode(s, 2, 6)):
        with pytest.raises(ConfigError, match=message):
            use(Schedule(ops, starts, duration))


def test_a_ready_schedule_of_whole_float_times_runs_as_ints_and_odd_fields_are_one_line():
    from spikecl.memory import learn, recall_by_cue, run_batch
    from spikecl.memory.schedule import Schedule, as_schedule, encode

    ops = (learn(0, [0, 1]), recall_by_cue(0))
    ready = as_schedule(Schedule(ops, (0.0, 7.0), 15.0), 2, 6)
    assert ready.starts_ms == (0, 7) and ready.duration_ms == 15 and isinstance(ready.duration_ms, int)
    assert [r.bits for r in run_batch([Schedule(ops, (0.0, 7.0), 15.0)], 2, 6)[0].results] == [(0, 1), (0, 1)]
    assert encode(Schedule(ops, (0.0, 7.0), 15), 2, 6)[0].shape == (15, 2)
    for starts, message in ((None, r"^Schedule.starts_ms: expected a sequence, one per operation, got None$"),
                            (0, r"^Schedule.starts_ms: expected a sequence"),
                            ((t for t in (0, 7)), r"^Schedule.starts_ms: expected a sequence")):
        with pytest.raises(ConfigError, match=message):
            run_batch([Schedule(ops, starts, 15)], 2, 6)
    with pytest.raises(ConfigError, match=r"^a schedule needs at least one operation$"):
        encode(Schedule((), (), 10), 2, 6)


def test_make_schedule_takes_huge_gaps_as_a_one_line_error():
    from spikecl.memory import learn, make_schedule

    with pytest.raises(ConfigError, match=r"^spacing_ms: the schedule would last 10{29}8 ms, more than"):
        make_schedule([learn(0, [1]), learn(1, [2])], 2, 3, [10**30, 7])


def _exp1_inputs():
    from pathlib import Path

    from spikecl.memory.recordings import RECORDED, load_recording
    from spikecl.memory.schedule import raster_from_events

    spikes = load_recording("exp1_functional", Path(__file__).parent / "data" / "ca3")
    n_steps = max(t for s in spikes.values() for t, _ in s) + 2
    C, M = RECORDED["exp1_functional"][:2]
    return C, M, raster_from_events(spikes["INcue"], n_steps, C), raster_from_events(spikes["INcont"], n_steps, M)


def test_torch_stepper_weights_are_a_snapshot_in_the_documented_layout():
    """weights(): cue_to_content [B, C, M], content_to_cue [B, M, C], copies that later runs do not change."""
    from spikecl.memory.torch_net import TorchCA3

    C, M, cue, content = _exp1_inputs()
    half = cue.shape[0] // 2
    net = TorchCA3(CA3Params(), C, M, batch_size=2)
    net.run(cue[:half], content[:half])
    first = net.weights()
    kept = {k: w.copy() for k, w in first.items()}
    assert first["cue_to_content"].shape == (2, C, M) and first["content_to_cue"].shape == (2, M, C)   # 5 x 10
    assert first["cue_to_content"].max() > 0                      # the first half learned something
    net.run(cue[half:], content[half:])
    later = net.weights()
    assert any(not np.array_equal(later[k], kept[k]) for k in kept)   # the second half learned more ...
    for k in kept:
        np.testing.assert_array_equal(first[k], kept[k], err_msg=k)   # ... without touching the first snapshot


def test_a_learn_hold_longer_than_the_shortest_stress_spacing_is_refused():
    """check_hold compares the hold with the *smallest* gap: 8 ms fits the 28 ms spacing but not the 7 ms one."""
    from spikecl.memory.experiment import CA3ExperimentConfig, FunctionalConfig, StressConfig, check_hold

    cfg = CA3ExperimentConfig(functional=FunctionalConfig(enabled=False), stress=StressConfig(spacings_ms=[28, 7]),
                              params={"learn_hold_steps": 8})
    with pytest.raises(ConfigError, match="^params.learn_hold_steps: a learn holds its input 8 ms, longer than the "
                                          "7 ms gap of stress.spacings_ms$"):
        check_hold(cfg)
    check_hold(CA3ExperimentConfig(functional=FunctionalConfig(enabled=False), stress=StressConfig(spacings_ms=[28, 8]),
                                   params={"learn_hold_steps": 8}))


def test_the_torch_stdp_depression_follows_a_minus():
    # a post spike adds A- to the post trace (A+ only on pre spikes); with the default A+ = A- the two are
    # indistinguishable, so the depression amplitude must change the stored weights on its own
    from test_ca3 import EXPERIMENTS, recorded_inputs

    from spikecl.memory import CA3Params
    from spikecl.memory.torch_net import TorchCA3

    name = sorted(EXPERIMENTS)[0]
    C, M = EXPERIMENTS[name][:2]
    weights = []
    for a_minus in (6.0, 1.0):
        net = TorchCA3(CA3Params(a_minus_nA=a_minus), C, M)
        net.run(*recorded_inputs(name))
        weights.append(net.weights())
    assert any(not np.allclose(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_membrane_landing_exactly_on_threshold_does_not_spike():
    """The threshold test is ``v > v_thresh`` (as Brian2's): an input weight whose one event lifts a resting
    CA3cueCueRecall cell by exactly v_thresh - v_rest = 3 mV leaves it silent at -57 mV; a billionth more fires it."""
    from spikecl.memory.torch_net import TorchCA3, build_constants

    params = CA3Params()
    consts = build_constants(params, 5, 10)
    cell = consts.slices["CA3cueCueRecall"][0] - consts.n_inputs
    gain = float(consts.gain[cell])
    exact = (params.v_thresh_mV - params.v_rest_mV) / (gain * params.syn_event_factor)
    assert params.v_rest_mV + gain * (exact * params.syn_event_factor) == params.v_thresh_mV   # lands on -57.0
    cue, content = np.zeros((3, 5), bool), np.zeros((3, 10), bool)
    cue[0, 0] = True
    for weight, fired in ((exact, [0, 0, 0]), (exact * (1 + 1e-9), [0, 1, 0])):
        out = TorchCA3(CA3Params(w_input_nA=weight), 5, 10).run(cue, content)
        assert out["CA3cueCueRecall"][:, 0, 0].int().tolist() == fired


def test_cue_and_content_inputs_of_different_lengths_are_a_one_line_shape_error():
    # without the check torch.cat fails with a RuntimeError deep inside run()
    from spikecl.errors import ShapeError
    from spikecl.memory import CA3Params
    from spikecl.memory.torch_net import TorchCA3

    net = TorchCA3(CA3Params(), 3, 5)
    with pytest.raises(ShapeError, match="^cue_input has 4 steps but content_input has 6$"):
        net.run(np.zeros((4, 3), bool), np.zeros((6, 5), bool))


def test_a_recorded_schedule_without_a_whole_duration_is_a_one_line_value_error():
    """recorded_schedule read ``duration_ms`` unguarded: a missing one was a KeyError, a string a TypeError."""
    attrs = {"kinds": '["learn"]', "starts_ms": "[0]"}
    assert recorded_schedule({**attrs, "duration_ms": 14}).duration_ms == 14
    for duration in (None, "14", 0, True):
        with pytest.raises(ValueError, match="^its attribute 'duration_ms' is .*, not a whole number of ms >= 1$"):
            recorded_schedule({**attrs, **({} if duration is None else {"duration_ms": duration})})
    with pytest.raises(ValueError, match="^its attribute 'kinds' is missing$"):
        recorded_schedule({"starts_ms": "[0]", "duration_ms": 14})


@pytest.mark.parametrize("change, named", [
    (dict(tau_m_slow_ms=1e17), "tau_m_slow_ms = 1e+17: a 1 ms step's drive of the slow cells is 0 mV per nA"),
    (dict(c_m_fast_nF=1e-320), "a 1 ms step's drive of the fast cells is inf mV per nA"),
    (dict(tau_syn_ms=1e17), "tau_syn_ms = 1e+17: a synaptic event adds 0 of its weight in a 1 ms step"),
])
def test_parameters_that_leave_a_step_no_finite_drive_are_refused(change, named):
    """Such values passed the bounds: the membranes never moved (or became NaN) and every answer was empty, exit 0."""
    with pytest.raises(ConfigError, match=re.escape(named)):
        CA3Params(**change)


def test_what_the_memory_would_misread_is_refused_in_one_line():
    """A raster of NaN or 0.5 decoded as spikes (it answered cues (0, 1)), a list where decode takes a Schedule, an
    Operation carrying a field its kind drops (recall by cue with bits, by content with a cue), device 0 read as no
    device (it ran on the CPU: torch reads 0 as the first GPU), and a 300-digit duration in a message."""
    from spikecl.errors import ShapeError
    from spikecl.memory.cam import CA3Memory
    from spikecl.memory.schedule import Operation, decode

    schedule = make_schedule([learn(0, [1])], 2, 3)
    for bad in (np.nan, 0.5):
        with pytest.raises(ShapeError, match=f"^out_cue: spikes are 0 or 1, found {bad}$"):
            decode(schedule, np.full((14, 2), bad), np.zeros((14, 3)))
    with pytest.raises(ConfigError, match=r"^decode takes a Schedule \(make_schedule"):
        decode([learn(0, [1])], np.zeros((14, 2)), np.zeros((14, 3)))
    memory = CA3Memory(3, 6, backend="torch")
    for op, message in ((Operation("recall_cue", 0, (1, 2)), "a recall by cue takes no bits"),
                        (Operation("recall_content", 2, (1,)), "a recall by content takes no cue")):
        with pytest.raises(ConfigError, match=f": {message} "):
            memory.run([op])
    import torch

    if not torch.cuda.is_available():                # device 0 is the first GPU where there is one
        with pytest.raises(ConfigError, match=r"^device 0: not a torch device"):
            CA3Memory(3, 6, backend="torch", device=0).run([learn(0, [1])])
    with pytest.raises(ConfigError, match=r"the schedule would last 1e\+300 ms, more than"):
        CA3Memory(3, 6, backend="torch", spacing_ms=1e300).run([learn(0, [1])])


def test_parts_the_experiment_names_but_no_file_holds_are_named_under_the_table(parts, capsys):
    """A ca3 experiment killed before one part was written listed the others alone, as if complete."""
    (parts / "stress_C5_M6_read_only.h5").unlink()
    assert main(["report", str(parts), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "Not in this report: stress 5x6 read_only, which the experiment names: no file of it was read" in out
    (parts / "functional.h5").unlink()
    assert main(["report", str(parts), "--no-plots"]) == 0
    assert "Not in this report: the functional part, stress 5x6 read_only, which" in capsys.readouterr().out


def test_run_takes_a_ready_schedule_as_the_docs_say():
    """CA3Memory.run refused a ready Schedule ("expected a list of operations") though run_batch took it."""
    from spikecl.memory import CA3Memory
    from spikecl.memory.schedule import learn, make_schedule, recall_by_cue

    ops = [learn(0, [1, 2]), recall_by_cue(0)]
    ready = CA3Memory(3, 4, backend="torch").run(make_schedule(ops, 3, 4, [20, 14]))
    listed = CA3Memory(3, 4, backend="torch").run(ops, [20, 14])
    assert [r.answer for r in ready.results] == [r.answer for r in listed.results] == [(1, 2), (1, 2)]
    assert ready.schedule.starts_ms == listed.schedule.starts_ms == (0, 20)


@pytest.mark.brian2
def test_no_time_step_is_refused_by_both_backends_alike():
    """Brian2 returned empty rasters for T = 0 where the torch stepper refused."""
    from spikecl.errors import ShapeError
    from spikecl.memory.brian2_net import Brian2CA3
    from spikecl.memory.torch_net import TorchCA3

    for net in (Brian2CA3(CA3Params(), 3, 4), TorchCA3(CA3Params(), 3, 4)):
        with pytest.raises(ShapeError, match=r"^cue_input and content_input hold no time step \(T = 0\)"):
            net.run(np.zeros((0, 3), bool), np.zeros((0, 4), bool))



def test_memories_larger_than_the_free_memory_are_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    from spikecl.memory import torch_net
    from spikecl.memory.cam import CA3Memory, run_batch

    monkeypatch.setattr(torch_net, "available_memory", lambda: 2**20)
    with pytest.raises(ConfigError, match=r"^the plastic weights of 1 memory at C = 300, M = 300 take about 1\.4 MiB, "
                                          r"more than the 1\.0 MiB of memory free: fewer cues"):
        CA3Memory(300, 300, backend="torch")
    ops = [learn(0, [1, 2]), recall_by_cue(0)]
    monkeypatch.setattr(torch_net, "available_memory", lambda: 10_000)
    with pytest.raises(ConfigError, match=r"^4 memories of 28 steps at C = 5, M = 10 \(their inputs, spikes and "
                                          r"plastic weights\) take about 1[0-9]\.\d KiB, more than the 9\.8 KiB"):
        run_batch([ops] * 4, 5, 10)
    monkeypatch.setattr(torch_net, "available_memory", lambda: 2**20)
    assert len(run_batch([ops] * 4, 5, 10)) == 4                      # what fits runs
    monkeypatch.setattr(torch_net, "available_memory", lambda: 2**20)
    assert run_cli(tmp_path, "--set", "stress.sizes=[[60, 60]]") == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"spikecl: error: stress\.sizes \[60, 60\]: its 1 trial of at least [\d,]+ steps take "
                        r"about [\d.]+ MiB, more than the 1\.0 MiB of memory free: smaller sizes, or fewer densities, "
                        r"spacings or seeds", err), err
    assert not (tmp_path / "ca3_cam").exists()
    monkeypatch.setattr(torch_net, "available_memory", lambda: None)          # unknown: unchecked
    CA3Memory(300, 300, backend="torch")
    assert run_cli(tmp_path / "kept", "--no-plots") == 0                      # made while memory was free
    monkeypatch.setattr(torch_net, "available_memory", lambda: 1024)
    assert run_cli(tmp_path / "kept", "--no-plots", "--resume") == 0          # kept: nothing to simulate, to fit
    assert run_cli(tmp_path / "fresh", "--no-plots") == 2
    assert "stress.sizes [5, 6]: its 1 trial of at least" in capsys.readouterr().err


def test_a_recall_by_content_may_be_followed_after_6_ms_and_read_only_recall_locks_from_its_start():
    """The documented minimums (6 ms after a recall of either kind) and the gate of read-only recall: plastic up to
    each recall's start, locked from it to the next operation's start (a learn's), computed by hand."""
    from spikecl.memory.schedule import plasticity_gate, recall_by_content

    ops = [learn(0, [0]), recall_by_content([0]), recall_by_cue(0), learn(0, [1]), recall_by_cue(0)]
    s = make_schedule(ops, 1, 2, [7, 6, 6, 7, 8])
    assert s.starts_ms == (0, 7, 13, 19, 26) and s.duration_ms == 34
    np.testing.assert_array_equal(plasticity_gate(s, True), [1] * 7 + [0] * 12 + [1] * 7 + [0] * 8)
    np.testing.assert_array_equal(plasticity_gate(s, False), np.ones(34))
    with pytest.raises(ConfigError, match=r"^operation 1 \(recall by content \{0\}\) is followed after 5 ms; the "
                                          r"minimum after a recall by content is 6 ms$"):
        make_schedule(ops, 1, 2, [7, 5, 6, 7, 8])


def test_a_learn_needs_7_ms_before_the_next_operation_and_events_shift_by_their_offset():
    from spikecl.memory.schedule import events

    with pytest.raises(ConfigError, match=r"^operation 0 \(learn cue 0 -> \{0\}\) is followed after 6 ms; the minimum "
                                          r"after a learn is 7 ms$"):
        make_schedule([learn(0, [0]), recall_by_cue(0)], 1, 1, 6)
    assert events(np.array([[False, True], [True, False]]), offset_ms=5) == {(5, 1), (6, 0)}


def test_mismatches_leave_the_input_populations_aside_and_list_missing_before_extra_spikes():
    from spikecl.memory.recordings import mismatches

    recorded = {"INcue": {(0, 0)}, "INcont": {(0, 3)}, "OUTcue": {(5, 0)}, "OUTcont": {(5, 3)}}
    assert mismatches(recorded, {"OUTcue": {(5, 0)}, "OUTcont": {(5, 3)}}) == {}
    assert mismatches(recorded, {"OUTcue": {(6, 0)}, "OUTcont": {(5, 3)}}) == {"OUTcue": ([(5, 0)], [(6, 0)])}
