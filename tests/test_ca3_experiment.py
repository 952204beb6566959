"""The ``ca3`` experiment kind through the CLI: tiny stress suite, results files, resume/overwrite, plots, errors."""

import zlib

import numpy as np
import pytest
from hdf5_files import edited, tamper, unseal

from spikecl.cli import main
from spikecl.errors import ConfigError
from spikecl.io import read_run
from spikecl.memory.experiment import load_config
from spikecl.memory.results import read_part
from spikecl.memory.schedule import LEARN, RECALL_CONTENT, RECALL_CUE, OperationResult
from spikecl.memory.stress import StressGrid, make_trial, run_grid, score_trial

TINY = ["stress.sizes=[[5, 6]]", "stress.densities=[0.3]", "stress.spacings_ms=[14]", "stress.fragment_sizes=[1]",
        "stress.queries_per_size=2", 'stress.variants=["published", "read_only"]', 'functional.backend="torch"']


def run_cli(tmp_path, *extra, seeds="0"):
    args = ["run", "models/ca3_cam.toml", "--seeds", seeds, "--output-dir", str(tmp_path), "--no-progress"]
    for override in TINY:
        args += ["--set", override]
    return main(args + list(extra))


@pytest.mark.slow
def test_model_file_runs_functional_and_stress_and_writes_results(tmp_path, capsys):
    assert run_cli(tmp_path) == 0
    out = capsys.readouterr().out
    assert "0 spikes differ from SpiNNaker (missing plus extra)" in out and "published" in out and "read_only" in out
    folder = tmp_path / "ca3_cam"
    functional = read_part(folder / "functional.h5")
    assert int(functional["attrs"]["mismatched_spikes"]) == 0
    assert functional["spikes"]["OUTcont"].shape == (90, 10) and functional["spikes"]["OUTcont"].sum() > 20
    assert functional["weights"]["cue_to_content"].shape == (5, 10)
    stress = read_part(folder / "stress_C5_M6_published.h5")
    assert stress["table"]["cue_exact"].tolist() == [1.0]
    assert 0 < stress["table"]["bits_per_synapse"][0] <= 0.5
    for png in ("functional_raster.png", "cue_exact_C5_M6.png", "content_precision_C5_M6.png", "capacity.png"):
        assert (folder / png).stat().st_size > 1000


def test_existing_results_need_resume_or_overwrite(tmp_path, capsys):
    assert run_cli(tmp_path, "--no-plots") == 0
    part = tmp_path / "ca3_cam" / "stress_C5_M6_read_only.h5"
    stamp = part.stat().st_mtime_ns
    assert run_cli(tmp_path, "--no-plots") == 2
    assert "exists; pass --overwrite to replace it or --resume to keep it" in capsys.readouterr().err
    part.write_bytes(b"not hdf5")                              # a killed run's leftover is run again on resume
    functional_stamp = (tmp_path / "ca3_cam" / "functional.h5").stat().st_mtime_ns
    assert run_cli(tmp_path, "--no-plots", "--resume") == 0
    assert (tmp_path / "ca3_cam" / "functional.h5").stat().st_mtime_ns == functional_stamp
    assert read_part(part)["table"]["cue_exact"].tolist() == [1.0]
    assert run_cli(tmp_path, "--no-plots", "--overwrite") == 0
    assert part.stat().st_mtime_ns != stamp
    two = ["--no-plots", "--overwrite", "--set", "stress.densities=[0.1, 0.3]"]
    assert run_cli(tmp_path, *two) == 0
    table = read_part(part)["table"]
    assert run_cli(tmp_path, *two, "--set", "stress.workers=2") == 0      # one trial per process: the same table
    split = read_part(part)["table"]
    assert split["density"].tolist() == [0.1, 0.3] and split.keys() == table.keys()
    for key, column in table.items():
        np.testing.assert_array_equal(split[key], column, err_msg=key)
    assert run_cli(tmp_path, *two, "--set", 'stress.precision="float32"') == 0    # the faster floats: same scores
    assert read_run(part, "ca3").config["stress"]["precision"] == "float32"
    for key, column in table.items():
        np.testing.assert_array_equal(read_part(part)["table"][key], column, err_msg=key)


def test_resume_keeps_parts_only_where_their_own_settings_agree(tmp_path, capsys):
    """A stress part holds every seed's trials: other seeds are a different part. The functional part holds no
    seeds, and another variant or size adds parts without touching the kept ones."""
    assert run_cli(tmp_path, "--no-plots", "--set", 'stress.variants=["published"]') == 0
    folder = tmp_path / "ca3_cam"
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.h5")}
    capsys.readouterr()
    assert run_cli(tmp_path, "--no-plots", "--resume") == 0                 # adds read_only, keeps the rest
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.h5") if p.name in stamps} == stamps
    assert read_part(folder / "stress_C5_M6_read_only.h5")["table"]["seed"].tolist() == [0]
    assert run_cli(tmp_path, "--no-plots", "--resume", seeds="0,1") == 2
    assert ("stress_C5_M6_published.h5 was made with another config (seeds differs) (the file holds every seed's "
            "trials: other seeds run it again)" in capsys.readouterr().err)
    assert run_cli(tmp_path, "--no-plots", "--resume", seeds="1") == 2                # one other seed: the same
    assert ("stress_C5_M6_published.h5 was made with another config (seeds[0] differs) (the file holds every seed's "
            "trials: other seeds run it again)" in capsys.readouterr().err)
    assert run_cli(tmp_path, "--no-plots", "--resume", "--overwrite", seeds="0,1") == 0
    assert read_part(folder / "stress_C5_M6_published.h5")["table"]["seed"].tolist() == [0, 1]
    assert (folder / "functional.h5").stat().st_mtime_ns == stamps["functional.h5"]


def test_resume_never_keeps_a_part_copied_onto_another_parts_name(tmp_path, capsys):
    """A published part copied onto the read_only part's file reads as a valid part of the same config: --resume
    refuses it, naming what it holds (before: "complete, kept", and read_only never ran); --overwrite redoes it."""
    import shutil

    assert run_cli(tmp_path, "--no-plots") == 0
    folder = tmp_path / "ca3_cam"
    shutil.copy(folder / "stress_C5_M6_published.h5", folder / "stress_C5_M6_read_only.h5")
    capsys.readouterr()
    assert run_cli(tmp_path, "--no-plots", "--resume") == 2
    assert ("stress_C5_M6_read_only.h5 holds variant = 'published', not this job's 'read_only' (a copied or renamed "
            "file?)") in capsys.readouterr().err
    assert run_cli(tmp_path, "--no-plots", "--resume", "--overwrite") == 0
    assert read_run(folder / "stress_C5_M6_read_only.h5", "ca3").attrs["variant"] == "read_only"


def test_report_refuses_a_part_twice_before_printing_and_notes_parts_made_otherwise(tmp_path, capsys):
    """Two folders holding the same parts: refused in one line before any table or plot (before: the table twice,
    then a refusal from the plots alone, none with --no-plots). A part run again with other seeds beside kept ones:
    the table says which setting differs."""
    import shutil

    assert run_cli(tmp_path / "a", "--no-plots") == 0
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    capsys.readouterr()
    for plots in (["--no-plots"], ["--plots", str(tmp_path / "plots")]):
        assert main(["report", str(tmp_path / "a" / "ca3_cam"), str(tmp_path / "b" / "ca3_cam"), *plots]) == 2
        captured = capsys.readouterr()
        assert "both hold the functional part; report them separately" in captured.err and captured.out == ""
    assert not (tmp_path / "plots").exists()
    assert run_cli(tmp_path / "a", "--no-plots", "--overwrite", "--set", 'stress.variants=["read_only"]',
                   seeds="1") == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "a" / "ca3_cam"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "Note: the stress parts were made with different settings (seeds[0] differs: " in out
    assert "Made by" not in out
    import dataclasses

    from spikecl.memory.experiment import KIND

    runs = [read_run(p) for p in sorted((tmp_path / "a" / "ca3_cam").glob("*.h5"))]
    runs[-1] = dataclasses.replace(runs[-1], environment={**runs[-1].environment, "spikecl_source": "0ther"})
    assert f"\nMade by spikecl 0.1.0 (0ther) ({runs[-1].path.name}); spikecl " in KIND.summarize(runs)   # 2 commits


def test_a_damaged_part_is_run_again_by_resume_and_skipped_by_report(tmp_path, capsys):
    assert run_cli(tmp_path, "--no-plots") == 0
    part = tmp_path / "ca3_cam" / "stress_C5_M6_read_only.h5"
    with edited(part, "a") as f:
        del f["table"]
    assert main(["report", str(part), "--no-plots"]) == 2
    damaged = f"{part} is corrupt or incomplete (its arrays are not those it was written with (missing table, "
    assert damaged in capsys.readouterr().err
    assert main(["report", str(tmp_path / "ca3_cam"), "--no-plots"]) == 2
    assert f"skipped: {damaged}" in capsys.readouterr().out
    with edited(tmp_path / "ca3_cam" / "functional.h5", "a") as f:
        del f.attrs["decoded"]
        unseal(f)                                   # a file missing the attribute, not one failing its CRC
    assert run_cli(tmp_path, "--no-plots", "--resume") == 0
    assert read_part(part)["table"]["cue_exact"].tolist() == [1.0]
    assert "decoded" in read_part(tmp_path / "ca3_cam" / "functional.h5")["attrs"]


@pytest.mark.parametrize("part, where, value, problem", [
    ("stress_C5_M6_published.h5", "table/cue_exact", np.ones(2), "its stress table needs one number per trial"),
    ("functional.h5", "spikes/OUTcont", np.zeros((89, 10), bool), "its raster spikes/OUTcont (shape (89, 10)) is not "
                                                                  "[90, 10] spikes"),
])
def test_a_part_whose_arrays_disagree_with_its_settings_is_named_damaged(tmp_path, capsys, part, where, value,
                                                                       problem):
    """A table column with more numbers than trials, a raster one step shorter than the schedule: a one-line
    "corrupt or incomplete" naming the array, not a table or plot of the wrong length."""
    assert run_cli(tmp_path, "--no-plots", "--set", 'stress.variants=["published"]') == 0
    tamper(tmp_path / "ca3_cam" / part, where, value)
    with edited(tmp_path / "ca3_cam" / part) as f:              # written so, CRC and all: only the check can tell
        f[where].attrs["crc32"] = np.int64(zlib.crc32(value.tobytes()))
    capsys.readouterr()
    assert main(["report", str(tmp_path / "ca3_cam" / part), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ca3_cam' / part} is corrupt or incomplete: {problem}" in err and err.count("\n") == 1


def test_params_are_never_hidden_behind_a_variant_name(tmp_path, capsys):
    assert run_cli(tmp_path, "--no-plots", "--set", "params.match_k=3", "--set", 'stress.variants=["k2"]') == 2
    assert "params.match_k: the stress variant 'k2' sets match_k itself" in capsys.readouterr().err
    assert run_cli(tmp_path, "--no-plots", "--set", "params.read_only_recall=true") == 2     # TINY has read_only
    err = capsys.readouterr().err
    assert "params.read_only_recall: the stress variant 'read_only' sets read_only_recall itself" in err
    assert run_cli(tmp_path, "--no-plots", "--set", "params.match_k=3", "--set", 'stress.variants=["published"]',
                   "--set", "functional.enabled=false") == 0
    out = capsys.readouterr().out
    assert "published*" in out and "* 5x6 published ran with [params] match_k = 3" in out
    assert run_cli(tmp_path, "--no-plots", "--overwrite", "--set", "params.learn_hold_steps=15") == 2
    assert "a learn holds its input 15 ms, longer than the 14 ms gap of stress.spacings_ms" in capsys.readouterr().err


def test_report_of_several_runs_plots_each_size_at_its_own_densities(tmp_path, monkeypatch):
    from spikecl.errors import ResultsError
    from spikecl.memory import plots
    from spikecl.memory.plots import write_plots

    base = ["--no-plots", "--set", "functional.enabled=false", "--set", 'stress.variants=["published"]']
    assert run_cli(tmp_path / "a", *base, "--set", "stress.densities=[0.5, 0.8]") == 0
    assert run_cli(tmp_path / "b", *base, "--set", "stress.sizes=[[8, 10]]",
                   "--set", "stress.densities=[0.1, 0.2]") == 0
    parts = {str(p): read_part(p) for p in sorted(tmp_path.rglob("stress_*.h5"))}
    captured = {}

    def capture(bits, path, *args, **kwargs):
        captured.update(bits)
        return path
    monkeypatch.setattr(plots, "plot_capacity", capture)                 # what the capacity plot is given
    write_plots(parts, tmp_path / "plots")
    by_size = {label.split(",")[0]: bits for label, bits in captured.items()}
    assert by_size["C=5 M=6"][0].tolist() == [0.5, 0.8] and by_size["C=8 M=10"][0].tolist() == [0.1, 0.2]
    assert all(label.endswith(" ms") for label in captured)          # the spacing drawn; no [params] given
    assert run_cli(tmp_path / "d", *base, "--set", "params.tau_syn_ms=0.4") == 0
    captured.clear()
    write_plots({str(p): read_part(p) for p in (tmp_path / "d").rglob("stress_*.h5")}, tmp_path / "plots")
    assert [label.split(", ", 2)[2] for label in captured] == ["with tau_syn_ms = 0.4"]   # a changed model says so
    titles = []
    monkeypatch.setattr(plots, "plot_quality_maps", lambda maps, **kwargs: titles.append(kwargs["title"]))
    write_plots({str(p): read_part(p) for p in (tmp_path / "d").rglob("stress_*.h5")}, tmp_path / "plots")
    assert len(titles) == 3 and all(t.endswith("C=5 M=6\nwith tau_syn_ms = 0.4") for t in titles)  # maps: titled too
    assert run_cli(tmp_path / "c", *base, "--set", "stress.densities=[0.5, 0.8]") == 0
    twice = {str(p): read_part(p) for p in sorted(tmp_path.rglob("stress_C5_M6_*.h5"))}
    with pytest.raises(ResultsError, match="both hold the stress part C=5 M=6 published"):
        write_plots(twice, tmp_path / "plots")


@pytest.mark.parametrize("override, message", [
    ("stress.sizes=[[5]]", "expected [C, M]"),
    ("stress.spacings_ms=[6]", "below the minimum 7"),
    ('stress.variants=["fast"]', "not allowed"),
    ("params.a_plus_nA=-1e400", "finite"),
    ("params.nonsense=1", "unknown key 'params.nonsense'"),
    ("stress.densities=[]", "at least one value"),
    ("stress.workers=0", "below the minimum 1"),
    ('stress.precision="float16"', "not allowed"),
    ("stress.fragment_sizes=[3]", "a 3-bit fragment fits in no stored content (the largest has 2 bits: M = 6 "),
    ("stress.sizes=[[5, 6], [5, 6]]", "stress.sizes: [5, 6] appears more than once"),     # each names a part
    ('stress.variants=["read_only", "read_only"]', "stress.variants: 'read_only' appears more than once"),
    ("stress.densities=[0.3, 0.3]", "stress.densities: 0.3 appears more than once"),      # each names a row
    ("stress.spacings_ms=[14, 14]", "stress.spacings_ms: 14 appears more than once"),
    ("stress.fragment_sizes=[1, 1]", "stress.fragment_sizes: 1 appears more than once"),
    ("stress.densities=[0.3, 0.35]", "stress.densities: 0.3 and 0.35 both store 2-bit contents at M = 6"),
    ("params.tau_refrac_ms=1.5", "tau_refrac_ms: a whole number of ms >= 0"),
    ("params.match_k=7", "stress variant 'published': match_k = 7 exceeds the 6 content bits"),
])
def test_bad_experiment_settings_are_one_line_errors(tmp_path, capsys, override, message):
    assert run_cli(tmp_path, "--set", override) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_match_k_above_the_recorded_experiments_content_bits_is_refused_before_running(tmp_path, capsys):
    assert run_cli(tmp_path, "--set", "stress.enabled=false", "--set", "params.match_k=11") == 2
    err = capsys.readouterr().err.strip()
    assert "the functional part (the recorded experiment): match_k = 11 exceeds the 10 content bits" in err
    assert len(err.splitlines()) == 1 and not any(tmp_path.rglob("*.h5"))


def test_config_defaults_are_the_published_model():
    cfg = load_config("models/ca3_cam.toml")
    assert cfg.model_params().a_plus_nA == 6.0 and cfg.model_params().inhibition == "all_to_all"
    assert [100, 100] in cfg.stress.sizes and cfg.stress.spacings_ms == [7, 14, 28]
    with pytest.raises(ConfigError):
        load_config("models/missing.toml")


def test_stress_scores_follow_the_or_matching_theory():
    grid = StressGrid(12, 20, "published", (0.2,), (14,), (0, 1, 2), (1,), queries_per_size=8)
    table = run_grid(grid)
    assert np.all(table["cue_exact"] == 1.0) and np.all(table["kept_exact"] == 1.0)
    assert np.all(table["content_hit_f1"] == 1.0) and np.all(table["content_as_specified_f1"] == 1.0)
    # OR-matching: about (C - 1)(1 - (1 - d)^f) extra cues per query
    assert abs(table["content_extra_f1"].mean() - table["content_extra_theory_f1"][0]) < 1.0
    locked = run_grid(StressGrid(12, 20, "read_only", (0.2,), (14,), (0, 1, 2), (1,), queries_per_size=8))
    assert np.all(locked["content_repeat_same"] == 1.0)         # read-only recall: a repeated query answers alike
    assert np.all(locked["content_precision_f1"] == table["content_precision_f1"])   # first round: same memories
    trial = make_trial(12, 20, 0.2, seed=3)
    assert len(trial.operations) == 12 + 12 + 2 * 30 + 3 + 12 and trial.content_size == 4


def test_score_trial_counts_wrong_answers():
    from spikecl.memory.schedule import OperationResult

    trial = make_trial(3, 6, 0.5, seed=0, fragment_sizes=(1,), queries_per_size=1, relearn_fraction=0.0)
    perfect = [OperationResult(op, 0, (op.cue,) if op.cue is not None else (), op.bits) for op in trial.operations]
    for i, c in enumerate(range(3)):
        perfect[3 + i] = OperationResult(trial.operations[3 + i], 0, (c,), trial.contents[c])
    assert score_trial(trial, perfect)["cue_exact"] == 1.0
    wrong = list(perfect)
    wrong[3] = OperationResult(trial.operations[3], 0, (0,), ())
    assert score_trial(trial, wrong)["cue_exact"] == pytest.approx(2 / 3)


def test_content_sizes_round_half_up_as_documented():
    from spikecl.memory.stress import content_size

    assert [content_size(10, d) for d in (0.01, 0.1, 0.15, 0.25, 0.35, 0.45, 1.0)] == [1, 1, 2, 3, 4, 5, 10]
    assert [content_size(m, d) for m in (10, 30, 100) for d in (0.1, 0.3, 0.5)] == [1, 3, 5, 3, 9, 15, 10, 30, 50]


def test_relearned_cues_are_distinct():
    """Every relearned cue is relearned once (a cue drawn twice would hide the first relearn's forgetting)."""
    for C, seed in ((4, 0), (10, 1), (30, 2), (8, 3)):
        for trial in [make_trial(C, 10, 0.3, s, relearn_fraction=0.75) for s in range(seed, seed + 20)]:
            cues = [c for c, _ in trial.relearned]
            assert len(set(cues)) == len(cues) == round(0.75 * C + 1e-9)


def test_a_k2_stress_grid_scores_fragments_against_two_bit_matching():
    """run_grid scores a k2 grid with match_k = 2: a 1-bit fragment matches no cue, so the memory's empty answer
    (hit rate 0) is as specified (1.0), not a miss of every cue holding the bit."""
    table = run_grid(StressGrid(4, 6, "k2", (0.5,), (14,), (0,), (1,), 3))
    assert table["content_hit_f1"].tolist() == [0.0] and table["content_as_specified_f1"].tolist() == [1.0]


def test_relearned_cues_are_a_quarter_rounded_half_up_each_with_a_new_content():
    """relearn_fraction 0.25 of C = 10, 30, 50, 70 cues: 3, 8, 13, 18 (banker's rounding gave 2 and 12); no relearned
    content equals the old one (at k = 1 about 9 % did, scoring a forgetting that never happened as echo 1)."""
    assert [len(make_trial(C, 10, 0.3, 0).relearned) for C in (10, 30, 50, 70)] == [3, 8, 13, 18]
    trials = [make_trial(10, 10, 0.1, seed) for seed in range(100)]
    assert all(content != t.contents[cue] for t in trials for cue, content in t.relearned)
    assert make_trial(3, 2, 1.0, 0).relearned[0][1] == (0, 1)         # k = M: one content exists, kept as is


def test_export_of_a_file_whose_params_a_stress_variant_would_set_writes_the_functional_graph(tmp_path):
    """The graph is the functional experiment: stress variants that own a key are not the export's concern."""
    from spikecl.cli import main
    from spikecl.export.ca3_graph import read_ca3_graph

    source = tmp_path / "pooled.toml"
    source.write_text('kind = "ca3"\nname = "pooled"\n[params]\nmatch_k = 2\ninhibition = "pool"\n')
    assert main(["export", str(source), "-o", str(tmp_path / "pooled.h5")]) == 0
    assert read_ca3_graph(tmp_path / "pooled.h5").n_cues > 0


def test_a_stress_cell_defined_at_only_some_densities_is_marked(tmp_path, capsys):
    """At density 0.1 a 10-bit memory holds one active bit, so a 2-bit fragment has no precision there: the 10x10
    row's "prec f2" is density 0.3's alone, beside "prec f1" over both, and says so."""
    args = ["run", "models/ca3_cam.toml", "--seeds", "0", "--output-dir", str(tmp_path), "--no-progress",
            "--no-plots"]
    for override in ("stress.sizes=[[10, 10]]", "stress.densities=[0.1, 0.3]", "stress.spacings_ms=[7]",
                     'stress.variants=["published"]', "stress.fragment_sizes=[1, 2]", "stress.queries_per_size=3",
                     "functional.enabled=false"):
        args += ["--set", override]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("cue exact    hit f1   prec f1   prec f2" in line for line in lines)
    row = next(line for line in lines if "published" in line and line.strip().startswith("10x10"))
    prec_f1, prec_f2 = row.split()[5:7]                      # after C x M, variant, gap, cue exact, hit f1
    assert prec_f1.endswith(tuple("0123456789")) and prec_f2.endswith("\u2020"), row
    assert any(line.startswith("\u2020 mean over only the densities and seeds where the measure is defined")
               for line in lines)


def _ideal_results(trial, echo=lambda old, new: tuple(sorted(set(old) - set(new)))):
    """What a perfect CAM answers to every operation of ``trial`` (``echo``: a learn's forgotten bits)."""
    store, out = {}, []
    for op in trial.operations:
        if op.kind == LEARN:
            old = store.get(op.cue)
            out.append(OperationResult(op, 0, (op.cue,), op.bits, echo(old, op.bits) if old is not None else ()))
            store[op.cue] = op.bits
        elif op.kind == RECALL_CUE:
            out.append(OperationResult(op, 0, (op.cue,), store[op.cue]))
        else:
            assert op.kind == RECALL_CONTENT
            cues = tuple(c for c in sorted(store) if set(store[c]) & set(op.bits))
            out.append(OperationResult(op, 0, cues, op.bits))
    return out


def test_stress_scores_forgetting_echo_and_precision_of_a_perfect_memory():
    trial = make_trial(4, 8, 0.5, seed=1, fragment_sizes=(1,), queries_per_size=4, relearn_fraction=0.5)
    assert len(trial.relearned) == 2
    perfect = _ideal_results(trial)
    scores = score_trial(trial, perfect)
    assert scores["cue_exact"] == 1.0 and scores["relearned_exact"] == 1.0 and scores["kept_exact"] == 1.0
    assert scores["forget_echo"] == 1.0                         # echo = old content minus the new one
    # precision: 1 / (number of cues answered) where the source cue is among them
    answers = [set(r.cues) for r in perfect[2 * 4:2 * 4 + len(trial.queries)]]
    expected = np.mean([1 / len(a) for a in answers])
    assert any(len(a) > 1 for a in answers)                     # the check below is not 1.0 by construction
    assert scores["content_precision_f1"] == pytest.approx(expected) and expected < 1.0
    # a memory echoing the whole old content (not old minus new) forgot nothing it should report: echo 0
    whole = score_trial(trial, _ideal_results(trial, echo=lambda old, new: tuple(old)))
    assert whole["forget_echo"] == 0.0
    # a relearn whose bits are not the new content is not a correct forgetting either
    wrong_bits = list(perfect)
    r0 = 2 * 4 + 2 * len(trial.queries)
    first = wrong_bits[r0]
    wrong_bits[r0] = OperationResult(first.operation, 0, first.cues, (), first.forgotten)
    assert score_trial(trial, wrong_bits)["forget_echo"] == 0.5


def test_stress_or_theory_and_kept_cues_exclude_the_relearned_ones():
    C, M = 4, 8
    trial = make_trial(C, M, 0.5, seed=1, fragment_sizes=(1,), queries_per_size=4, relearn_fraction=0.5)
    perfect = _ideal_results(trial)
    scores = score_trial(trial, perfect)
    k = trial.content_size
    assert k == 4 and scores["content_extra_theory_f1"] == pytest.approx((C - 1) * (1 - (1 - k / M) ** 1)) == 1.5
    # a relearned cue that still recalls its old content: relearned_exact drops, kept_exact (the others) does not
    changed = trial.relearned[0][0]
    last = len(trial.operations) - C + changed
    stale = list(perfect)
    stale[last] = OperationResult(perfect[last].operation, 0, (changed,), trial.contents[changed])
    scores = score_trial(trial, stale)
    assert scores["relearned_exact"] == 0.5 and scores["kept_exact"] == 1.0


def test_stress_as_specified_uses_match_k_and_repeat_gain_is_second_minus_first_round():
    C, M = 6, 10
    trial = make_trial(C, M, 0.5, seed=2, fragment_sizes=(2,), queries_per_size=6, relearn_fraction=0.0)
    store = {c: set(x) for c, x in enumerate(trial.contents)}
    n_q = len(trial.queries)
    results = _ideal_results(trial)
    q0 = 2 * C
    k2 = list(results)                    # a k = 2 memory: a cue answers when it shares both fragment bits
    for i in range(q0, q0 + 2 * n_q):
        op = results[i].operation
        k2[i] = OperationResult(op, 0, tuple(c for c in range(C) if len(store[c] & set(op.bits)) >= 2), op.bits)
    one_bit = [len(set(r.cues)) for r in results[q0:q0 + n_q]]
    two_bits = [len(set(r.cues)) for r in k2[q0:q0 + n_q]]
    assert sum(one_bit) > sum(two_bits)                       # OR matching answers more cues: the check means something
    assert score_trial(trial, k2, match_k=2)["content_as_specified_f2"] == 1.0
    assert score_trial(trial, results, match_k=2)["content_as_specified_f2"] < 1.0
    # second round answers with OR matching, first with k = 2: it gained cues (positive gain)
    grown = k2[:q0 + n_q] + results[q0 + n_q:]
    gain = score_trial(trial, grown, match_k=2)["content_repeat_extra_gain"]
    assert gain == pytest.approx(np.mean(np.array(one_bit) - np.array(two_bits))) and gain > 0


def test_stress_trials_pair_across_spacings_and_columns_cover_a_fragment_as_large_as_the_content():
    from spikecl.memory.stress import _trial_seed, table_columns

    grid = StressGrid(5, 10, "published", (0.3,), (7, 28), (0,))
    # "The same memories for every variant and spacing": a paired comparison over spacings
    assert _trial_seed((0.3, 7, 0), grid) == _trial_seed((0.3, 28, 0), grid)
    assert _trial_seed((0.3, 7, 0), grid) != _trial_seed((0.3, 7, 1), grid)
    # k = 3 at density 0.3 of 10 bits: fragments of 3 bits are queried (make_trial), so they have columns
    assert make_trial(5, 10, 0.3, 0, fragment_sizes=(3,), queries_per_size=1).queries
    columns = table_columns(10, [0.3], [1, 2, 3, 4])
    assert "content_hit_f3" in columns and "content_hit_f4" not in columns


def test_a_stress_part_drawn_by_the_older_rounding_is_not_kept(tmp_path, capsys, monkeypatch):
    """Before 2026-12-03 a trial's bits and relearned cues were rounded half to even: such a part (its config
    lacks the rule) is refused by --resume rather than kept beside today's."""
    from spikecl.memory import experiment

    with monkeypatch.context() as m:
        m.setattr(experiment, "STRESS_RULES", {})                         # a part as an older spikecl wrote it
        assert run_cli(tmp_path, "--no-plots", "--set", 'stress.variants=["published"]') == 0
    capsys.readouterr()
    assert run_cli(tmp_path, "--no-plots", "--set", 'stress.variants=["published"]', "--resume") == 2
    assert ("stress_C5_M6_published.h5 was made by a spikecl that computed otherwise (stress_rounding differs: a "
            "rule of spikecl's, not a setting of yours)") in capsys.readouterr().err
    assert run_cli(tmp_path, "--no-plots", "--set", 'stress.variants=["published"]', "--resume", "--overwrite") == 0
    assert read_run(tmp_path / "ca3_cam" / "stress_C5_M6_published.h5", "ca3").config["stress_rounding"] == \
        experiment.STRESS_RULES["stress_rounding"]


def test_the_matching_expectation_draws_a_fragments_bits_without_replacement():
    """(C − 1)(1 − (1 − k/M)^f) drew the fragment's bits with replacement: 3.285 extra cues at C = 6, M = 10,
    k = f = 3, where ideal OR matching over drawn trials gives about 3.55; k-of-n matching needs its own."""
    from spikecl.memory.stress import matching_chance

    assert 5 * matching_chance(10, 3, 3) == pytest.approx(5 * (1 - 35 / 120)) == pytest.approx(3.5417, abs=1e-4)
    assert matching_chance(10, 3, 3, needed=2) == pytest.approx(22 / 120)
    assert matching_chance(8, 4, 1) == 0.5 and matching_chance(10, 3, 8) == 1.0
    rng = np.random.default_rng(0)
    hits = [len(set(rng.choice(10, 3, replace=False)) & set(rng.choice(10, 3, replace=False))) > 0
            for _ in range(20000)]
    assert np.mean(hits) == pytest.approx(matching_chance(10, 3, 3), abs=0.01)



def test_panels_and_rows_keep_one_variant_order_and_figures_grow_to_their_titles(tmp_path, monkeypatch):
    """`spikecl run` (config order) and `spikecl report` (file-name order) draw a size's panels and list its table
    rows in one order, the variants' own; a map or capacity figure is as wide as its longest title line."""
    from spikecl.memory import plots
    from spikecl.figures import TITLE_INCHES_PER_CHARACTER
    from spikecl.memory.plots import plot_capacity, plot_quality_maps, write_plots
    from spikecl.memory.table import summary_text

    assert run_cli(tmp_path, "--no-plots", "--set", "functional.enabled=false",
                   "--set", 'stress.variants=["k2", "published"]') == 0
    files = sorted(tmp_path.rglob("stress_*.h5"))
    panels = []
    monkeypatch.setattr(plots, "plot_quality_maps", lambda maps, **kwargs: panels.append(list(maps)))
    for order in (files, files[::-1]):
        parts = {str(p): read_part(p) for p in order}
        write_plots(parts, tmp_path / "plots")
        rows = [line.split()[1] for line in summary_text(parts).splitlines() if line.split()[:1] == ["5x6"]]
        assert rows[0] == "published" and rows[-1] == "k2", rows
    assert panels == [["published", "k2"]] * 6
    monkeypatch.undo()
    import matplotlib.image

    title = "recall by cue: exact, C=10 M=10\nwith learn_hold_steps = 4, tau_minus_ms = 2.5, tau_plus_ms = 4.0"
    one = plot_quality_maps({"published": np.ones((3, 1))}, ["0.1", "0.3", "0.5"], ["14"], tmp_path / "m.png",
                            title=title)
    dpi = matplotlib.rcParams["savefig.dpi"] if matplotlib.rcParams["savefig.dpi"] != "figure" else \
        matplotlib.rcParams["figure.dpi"]
    assert matplotlib.image.imread(one).shape[1] >= 0.95 * 66 * TITLE_INCHES_PER_CHARACTER * dpi
    wide = plot_capacity({"C=10 M=10, 14 ms": ([0.1, 0.5], [0.2, 0.4])}, tmp_path / "c.png", 0.69, 0.5, title="x" * 150)
    assert matplotlib.image.imread(wide).shape[1] >= 0.95 * 150 * TITLE_INCHES_PER_CHARACTER * dpi


def test_a_forgetting_map_with_nothing_relearned_says_why_it_is_empty(tmp_path, monkeypatch):
    from spikecl.memory import plots

    assert run_cli(tmp_path, "--no-plots", "--set", "functional.enabled=false",
                   "--set", "stress.relearn_fraction=0") == 0
    titles = {}
    monkeypatch.setattr(plots, "plot_quality_maps", lambda maps, **k: titles.setdefault(k["path"].name, k["title"]))
    plots.write_plots({str(p): read_part(p) for p in tmp_path.rglob("stress_*.h5")}, tmp_path / "plots")
    assert titles["relearned_exact_C5_M6.png"].endswith("\nnot measured: no cue relearned "
                                                        "(stress.relearn_fraction = 0)")
    assert "not measured" not in titles["cue_exact_C5_M6.png"]


def test_map_titles_say_how_many_seeds_each_cell_averages(tmp_path, monkeypatch):
    from spikecl.memory import plots

    assert run_cli(tmp_path, "--no-plots", "--set", "functional.enabled=false", seeds="0,1") == 0
    titles = []
    monkeypatch.setattr(plots, "plot_quality_maps", lambda maps, **k: titles.append(k["title"]))
    plots.write_plots({str(p): read_part(p) for p in tmp_path.rglob("stress_*.h5")}, tmp_path / "plots")
    assert len(titles) == 3 and all("C=5 M=6, mean of 2 seeds" in t for t in titles), titles


def test_the_stress_table_means_each_spacings_rows_and_marks_cells_defined_at_only_some():
    """A hand-made stress part: each cell is the mean over its spacing's rows alone, a cell over only some of them
    carries a dagger, fragments are ordered as numbers (2 before 10), the hit column is the smallest fragment's, and
    a part run with [params] is starred and named."""
    from spikecl.memory.table import summary_text

    nan = np.nan
    table = {"spacing_ms": np.array([7, 7, 14, 14]), "cue_exact": np.array([1.0, 0.5, 0.0, 0.25]),
             "content_hit_f2": np.array([1.0, 1.0, 0.5, 0.0]), "content_hit_f10": np.array([0.0, 0.0, 0.0, 0.0]),
             "content_precision_f2": np.array([1.0, nan, 0.5, 0.5]),
             "content_precision_f10": np.array([nan, nan, 0.2, 0.4]),
             "bits_per_synapse": np.array([0.1, 0.3, 0.2, 0.2])}
    attrs = {"part": "stress", "n_cues": 5, "n_bits": 6, "variant": "published", "seconds": 1.5,
             "params": '{"match_k": 2}'}
    lines = summary_text({"s.h5": {"attrs": attrs, "config": {}, "table": table}}).splitlines()
    assert lines[2].split() == ["C", "x", "M", "variant", "gap", "cue", "exact", "hit", "f2", "prec", "f2", "prec",
                                "f10", "repeat", "relearn", "echo", "kept", "bits/syn", "s"]
    assert lines[3].split() == ["5x6", "published*", "7", "0.750", "1.000", "1.000\u2020", "nan", "nan", "nan", "nan",
                                "nan", "0.200", "1.5"]
    assert lines[4].split() == ["5x6", "published*", "14", "0.125", "0.250", "0.500", "0.300", "nan", "nan", "nan",
                                "nan", "0.200", "1.5"]
    assert lines[5].startswith("\u2020 mean over only the densities and seeds where the measure is defined")
    assert lines[6] == "* 5x6 published ran with [params] match_k = 2 (on top of the variant's own options)"
    table["bits_per_synapse"] = np.array([0.1, 0.147, 0.2, 0.2])      # a mean of 0.1235, held as 0.12349999…
    lines = summary_text({"s.h5": {"attrs": attrs, "config": {}, "table": table}}).splitlines()
    assert lines[3].split()[-2] == "0.124"                              # a tie away from zero, as every table does
