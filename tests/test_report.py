"""Reports: a folder of continual runs comes back in the order their experiments list the methods; a folder mixing
kinds is reported kind by kind."""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hdf5_files import edited, unseal

from spikecl.continual.report import in_experiment_order, text_report
from spikecl.continual.results import ContinualResult, as_continual, write_continual
from spikecl.errors import ResultsError
from spikecl.report import collect


def result(method, seed, methods):
    acc = np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]])
    return ContinualResult(method, seed, {"name": "x", "strategy": {"methods": methods}}, acc, np.zeros(0, np.int64),
                           np.zeros(0, np.int64), np.zeros((0, 2)), np.array([1.0, 1.0]), {"acc": 0.875, "bwt": -0.1})


def test_folder_runs_follow_the_experiments_method_order(tmp_path):
    listed = ["finetune", "hlop", "joint"]
    for method in listed:
        for seed in (1, 0):
            write_continual(tmp_path / f"{method}-seed{seed}.h5", result(method, seed, listed))
    write_continual(tmp_path / "extra" / "ewc-seed0.h5", result("ewc", 0, ["ewc"]))   # another experiment's run
    runs = in_experiment_order([as_continual(r) for r in collect([tmp_path])["continual"]])
    assert [(r.method, r.seed) for r in runs] == [("finetune", 0), ("finetune", 1), ("hlop", 0), ("hlop", 1),
                                                  ("joint", 0), ("joint", 1), ("ewc", 0)]
    table = text_report(runs, matrices=False)
    rows = [line.split()[0] for line in table.splitlines()[2:6]]
    assert rows == ["finetune", "hlop", "joint", "ewc"]                  # alphabetical would put ewc first


def test_one_folder_of_every_kind_reports_each_by_its_kind(tmp_path, capsys, zero_reset_run, sweep_files):
    """A folder holding a continual run, a CA3 run, a Sparsey run, a sweep, an exported netx network and a foreign
    HDF5 file: ``spikecl report`` prints every kind's table, skips the two other files with a note, exits 0."""
    import h5py

    from spikecl.cli import main
    from spikecl.continual.sweep import load_sweep, write_sweep_results
    from spikecl.continual.results import read_continual

    folder = tmp_path / "mixed"
    common = ["--seed", "0", "--output-dir", str(folder), "--no-progress", "--no-plots"]
    continual = tmp_path / "split.toml"
    continual.write_text('name = "split"\n[data]\ndataset = "digits"\n[stream]\nkind = "split"\nscenario = "task"\n'
                         'n_tasks = 2\n[network]\nhidden = [32]\n[train]\nepochs = 1\n'
                         '[strategy]\nmethods = ["finetune"]\n')
    assert main(["run", str(continual), *common]) == 0
    ca3 = ["functional.enabled=false", "stress.sizes=[[5, 6]]", "stress.densities=[0.3]", "stress.spacings_ms=[14]",
           "stress.fragment_sizes=[1]", "stress.queries_per_size=2", 'stress.variants=["published"]']
    assert main(["run", "models/ca3_cam.toml", *common, *[a for o in ca3 for a in ("--set", o)]]) == 0
    sparsey = ["eval.train_items=100", "eval.test_items=60", "eval.n_pairs=100", "eval.pair_items=60",
               "eval.capacity_points=[50]", "eval.random_capacity_points=[10]", "eval.cue_items=20",
               "eval.spiking_items=0", "eval.sequences=0"]
    assert main(["run", "models/sparsey_digits.toml", *common, *[a for o in sparsey for a in ("--set", o)]]) == 0
    sweep = load_sweep(sweep_files(f'name = "tiny"\nseeds = [0]\noutput_dir = "{folder}"\n[data]\ndataset = "digits"\n',
                                   'base = "base.toml"\nname = "grid"\n[grid]\n"train.lr" = [0.05, 0.1]\n'))
    run = read_continual(folder / "split" / "finetune-seed0.h5")
    write_sweep_results([replace(run, method="finetune @ lr=0.05")], sweep, {"lr=0.1/finetune-seed0": ["Boom: x"]})
    assert main(["export", str(zero_reset_run[0]), "-o", str(folder / "net.h5"), "--samples", "0",
                 "--calibration-samples", "0"]) == 0
    with h5py.File(folder / "foreign.h5", "w") as f:
        f["x"] = np.arange(3)
    with h5py.File(folder / "graph.h5", "w") as f:                       # what spikecl export writes for CA3
        f.attrs["learning_graph"] = "ca3"
    capsys.readouterr()

    assert main(["report", str(folder), "--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    for kind_name in ("continual", "ca3", "sparsey", "sweep"):          # each headed by its kind and folder
        assert re.search(rf"^== {kind_name} in {re.escape(str(folder))}/[^/\n]+: 1 results file\(s\) ==$", out,
                         re.MULTILINE)
    assert "finetune (seed 0) — accuracy %" in out and "ACC" in out                 # continual
    assert "stress (means over densities and seeds" in out and "published" in out   # ca3
    assert "k-WTA spatial pooler" in out and "pixels" in out                         # sparsey
    assert "sweep grid: 1/2 runs complete" in out and "finetune @ lr=0.05" in out    # sweep
    assert "FAILED lr=0.1/finetune-seed0: 1 attempt(s); last error: Boom: x" in out
    skipped = [line for line in out.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 3                                             # each named as what it is
    assert "foreign.h5 is not a spikecl results file (no schema attribute" in skipped[0]
    assert skipped[1].endswith("graph.h5 is a ca3 learning graph exported by spikecl export, not a results file "
                               "(run it with spikecl deploy)")
    assert skipped[2].endswith("net.h5 is a network exported by spikecl export, not a results file (run it with "
                               "spikecl deploy)")
    for png in ("finetune-seed0-matrix.png", "comparison.png", "cue_exact_C5_M6.png", "capacity_seed0.png",
                "grid-comparison.png"):
        assert (tmp_path / "plots" / png).stat().st_size > 1000


def test_a_report_never_averages_copies_or_other_experiments_as_seeds(tmp_path, capsys):
    """A file named twice counts once; a second file of one (method, seed), or a run of the method made with other
    settings, is a one-line error naming both files, not another seed of the row."""
    from spikecl.cli import main

    listed = ["finetune"]
    first = write_continual(tmp_path / "a" / "finetune-seed0.h5", result("finetune", 0, listed))
    write_continual(tmp_path / "a" / "finetune-seed1.h5", result("finetune", 1, listed))
    assert main(["report", str(first), str(first), str(tmp_path / "a"), "--no-plots", "--no-matrices"]) == 0
    assert " 2 " in capsys.readouterr().out.splitlines()[2]                   # seeds 0 and 1, once each
    other = replace(result("finetune", 0, listed), config={"name": "x", "strategy": {"methods": listed},
                                                            "stream": {"train_per_task": 3}})
    write_continual(tmp_path / "b" / "finetune-seed0.h5", other)
    assert main(["report", str(first), str(tmp_path / "b" / "finetune-seed0.h5"), "--no-plots"]) == 2
    assert "hold finetune made with different settings (stream differs)" in capsys.readouterr().err
    (tmp_path / "a" / "copy.h5").write_bytes(first.read_bytes())
    assert main(["report", str(tmp_path / "a"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "both hold finetune seed 0" in err and err.count("\n") == 1
    for key, value, message in (("seed", "zero", "seed 'zero' is not an integer"),
                                ("kind", "sparsey", "is corrupt or incomplete (no 'extra/pairs_code_overlap_<coder>' "
                                                    "in a sparsey results file)")):
        with edited(tmp_path / "a" / "copy.h5") as f:
            f.attrs[key] = value
            unseal(f)
        assert main(["report", str(tmp_path / "a" / "copy.h5"), "--no-plots"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        (tmp_path / "a" / "copy.h5").write_bytes(first.read_bytes())
    with edited(tmp_path / "a" / "copy.h5") as f:
        f["acc_matrix"][1, 0] = 250.0
    assert main(["report", str(tmp_path / "a" / "copy.h5"), "--no-plots"]) == 2
    assert "(array /acc_matrix fails its CRC-32)" in capsys.readouterr().err        # changed after it was written
    with edited(tmp_path / "a" / "copy.h5") as f:
        del f["acc_matrix"].attrs["crc32"]                # as a file written before arrays carried one
        unseal(f)                                          # (and before files listed their contents)
    assert main(["report", str(tmp_path / "a" / "copy.h5"), "--no-plots"]) == 2
    assert "acc_matrix holds accuracies outside 0..1" in capsys.readouterr().err


def test_a_plots_folder_that_cannot_be_written_is_refused_before_any_table(tmp_path, capsys, monkeypatch):
    import os

    from spikecl.cli import main

    path = write_continual(tmp_path / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))
    monkeypatch.setattr(os, "access", lambda p, mode: False)                 # a read-only folder (root ignores modes)
    assert main(["report", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "plots folder (--plots DIR or --no-plots)" in err and "is not writable" in err
    assert main(["report", str(path), "--no-plots"]) == 0


def test_a_plots_folder_no_folder_can_be_made_for_is_refused_before_any_table(tmp_path, capsys, monkeypatch):
    """``--plots /proc/x`` passed the permission check as root (access() allows it; mkdir fails) and failed only
    after the tables: a folder to be made is now tried, and the probe leaves nothing behind."""
    import os
    import tempfile

    from spikecl.cli import main

    path = write_continual(tmp_path / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))

    def refused(**kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(tempfile, "mkdtemp", refused)               # what /proc or an immutable folder answers
    assert main(["report", str(path), "--plots", str(tmp_path / "made" / "here")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"spikecl: error: --plots {tmp_path / 'made' / 'here'}: no folder can be made in "
                                 f"{tmp_path} (Operation not permitted)\n")
    monkeypatch.undo()
    assert main(["report", str(path), "--plots", str(tmp_path / "made" / "here")]) == 0
    assert sorted(os.listdir(tmp_path)) == ["finetune-seed0.h5", "made"]     # no probe left


def test_a_plot_name_too_long_for_its_file_system_is_refused_before_any_table(tmp_path, capsys):
    """A variant's name can make a results file whose plots' names are too long (``spikecl run --no-plots`` did not
    check them): the report refused them only after printing its tables; now before, naming --no-plots."""
    from spikecl.cli import main

    method = "v" * 228
    path = write_continual(tmp_path / f"{method[:10]}-seed0.h5", result(method, 0, [method]))
    assert main(["report", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and not list(tmp_path.glob("*.png"))
    assert f"{method}-seed0-matrix.png: the name of a plot is too long for its file system" in err
    assert err.rstrip().endswith("choose a shorter name, or pass --no-plots")
    assert main(["report", str(path), "--no-plots"]) == 0


def test_a_plots_folder_holding_other_results_is_refused_before_its_plots_are_replaced(tmp_path, capsys,
                                                                                        monkeypatch):
    """``--plots DIR`` naming another experiment's folder replaced that experiment's comparison and matrix plots
    and removed its curves plots, without a word; now it is refused before any table, and a folder holding just
    the files reported (or none, or another kind's) is taken."""
    import spikecl.report as report_module
    from spikecl.cli import main
    from spikecl.io import write_run

    mine = write_continual(tmp_path / "mine" / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))
    other = write_continual(tmp_path / "other" / "finetune-seed0.h5",
                            replace(result("finetune", 0, ["finetune"]), config={"name": "y"}))
    assert main(["report", str(other.parent)]) == 0
    before = {p.name: p.read_bytes() for p in other.parent.glob("*.png")}
    capsys.readouterr()
    assert main(["report", str(mine), "--plots", str(other.parent)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"spikecl: error: report: --plots {other.parent} holds 1 results file(s) not "
                                 "reported (finetune-seed0.h5), whose plots these would replace: choose another "
                                 "folder, report that one, or pass --no-plots\n")
    assert {p.name: p.read_bytes() for p in other.parent.glob("*.png")} == before
    assert main(["report", str(mine), "--plots", str(mine.parent)]) == 0
    assert main(["report", str(mine), "--plots", str(tmp_path / "figs")]) == 0
    assert main(["report", str(other.parent), "--plots", str(other.parent)]) == 0
    ca3 = tmp_path / "ca3"                           # another kind's results: plots of other names, taken
    ca3.mkdir()
    write_run(ca3 / "functional.h5", "ca3", {"name": "c"}, {}, {}, {})
    monkeypatch.setattr(report_module, "_plotted_kind", lambda f: "ca3" if f.parent == ca3 else "continual")
    assert main(["report", str(mine), "--plots", str(ca3)]) == 0


def test_an_unfinished_runs_checkpoint_is_named_beside_the_table(tmp_path, capsys):
    """A killed experiment's folder holds the finished runs' files and the unfinished one's checkpoint: the table
    of the finished ones used to look like the whole experiment; now a line names the unfinished run."""
    from spikecl.cli import main

    write_continual(tmp_path / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))
    (tmp_path / "finetune-seed1.ckpt").write_bytes(b"checkpoint")
    (tmp_path / "finetune-seed0.ckpt").write_bytes(b"checkpoint")     # killed as it removed it: finished
    assert main(["report", str(tmp_path), "--no-plots", "--no-matrices"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"not reported: {tmp_path / 'finetune-seed1.ckpt'} is the checkpoint of an unfinished "
                          "run (continue it with spikecl run --resume, or spikecl sweep for a sweep's run)\n") \
        and "seed0.ckpt" not in out


def test_plots_left_by_results_removed_since_are_named_after_the_report(tmp_path, capsys):
    """A run's file removed after a report: its matrix plot stays beside the new comparison, which no longer has
    it; a note now names such plots (left in place: they may be the user's)."""
    from spikecl.cli import main

    for seed in (0, 1):
        write_continual(tmp_path / f"finetune-seed{seed}.h5", result("finetune", seed, ["finetune"]))
    assert main(["report", str(tmp_path), "--no-matrices"]) == 0
    assert "note:" not in capsys.readouterr().out
    (tmp_path / "finetune-seed1.h5").unlink()
    assert main(["report", str(tmp_path), "--no-matrices"]) == 0
    assert capsys.readouterr().out.endswith(f"note: 1 more PNG file(s) in {tmp_path} (finetune-seed1-matrix.png) "
                                            "are not of these results: of files removed since, or others'\n")
    assert (tmp_path / "finetune-seed1-matrix.png").exists()


def test_multitask_rows_show_no_forward_transfer(tmp_path, capsys):
    """Multitask learns every task at once, so its results record FWT as NaN and the report shows "—", as it does for
    intransigence (joint, which meets each task at its turn, keeps a number); the footnote says why."""
    from spikecl.cli import main

    experiment = tmp_path / "bounds.toml"
    experiment.write_text('name = "bounds"\n[data]\ndataset = "digits"\n[stream]\nkind = "split"\nscenario = "domain"\n'
                          'n_tasks = 2\ntrain_per_task = 100\ntest_per_task = 50\n[network]\nhidden = [16]\n'
                          '[train]\nepochs = 1\n[strategy]\nmethods = ["joint", "multitask"]\n')
    assert main(["run", str(experiment), "--seed", "0", "--output-dir", str(tmp_path), "--no-progress",
                 "--no-plots"]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "bounds"), "--no-plots", "--no-matrices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    end = lines[0].index(" FWT") + 4                                 # cells are right-aligned under their title
    fwt = {line.split()[0]: line[end - 13:end].strip() for line in lines[2:4]}
    assert fwt["multitask"] == "—" and fwt["joint"].endswith(tuple("0123456789")), fwt
    ends = {line.split()[0]: len(line[end - 13:end].rstrip()) for line in lines[2:4]}
    assert ends["multitask"] == ends["joint"], lines                # the dash under the numbers, not the spread
    end = lines[0].index(" Intrans") + 8                             # no task learned after another: none
    intrans = {line.split()[0]: line[end - 13:end].strip() for line in lines[2:4]}
    assert intrans["multitask"] == "—" and intrans["joint"].endswith(tuple("0123456789")), intrans
    assert ("; multitask: every task learned at once (multitask training), so no FWT, min-ACC, WC-ACC or Intrans (—)"
            in "\n".join(lines))
    experiment.write_text(experiment.read_text().replace('["joint", "multitask"]', '["joint", "mt"]')
                          + '[variants.mt]\nmethod = "multitask"\n')              # a variant of it: named alike
    assert main(["run", str(experiment), "--seed", "0", "--output-dir", str(tmp_path / "v"), "--no-progress",
                 "--no-plots"]) == 0
    assert "; mt: every task learned at once (multitask training), so no FWT" in capsys.readouterr().out


def two_digit_tasks(path, name: str, methods: str, network: str = "", extra: str = ""):
    """Write a task-incremental experiment of two digits tasks (100 training images each, one epoch, 16 hidden
    neurons) running ``methods`` (a TOML list) to ``path``; ``network``, ``extra``: more TOML lines."""
    path.write_text(f'name = "{name}"\n[data]\ndataset = "digits"\n[stream]\nkind = "split"\nscenario = "task"\n'
                    f'n_tasks = 2\ntrain_per_task = 100\ntest_per_task = 50\n[network]\nhidden = [16]\n{network}'
                    f'[train]\nepochs = 1\n[strategy]\nmethods = {methods}\n{extra}')
    return path


def test_intransigence_and_rows_only_from_runs_of_the_same_settings(tmp_path, capsys):
    """A joint run gives intransigence only to runs made with its settings (method options aside); rows made with
    different settings are still tabled, with a line saying which key differs."""
    from spikecl.cli import main

    experiment = two_digit_tasks(tmp_path / "bounds.toml", "bounds", '["finetune", "joint"]',
                                 extra='[strategy.ewc]\nlam = 5.0\n')
    common = ["--seed", "0", "--no-progress", "--no-plots"]
    assert main(["run", str(experiment), *common, "--output-dir", str(tmp_path / "a")]) == 0
    assert main(["run", str(experiment), *common, "--output-dir", str(tmp_path / "b"), "--set", "train.epochs=2",
                 "--set", 'strategy.methods=["joint"]', "--set", 'name="other"']) == 0
    capsys.readouterr()

    def intrans(*paths):
        assert main(["report", *map(str, paths), "--no-plots", "--no-matrices"]) == 0
        lines = capsys.readouterr().out.splitlines()
        end = lines[0].index(" Intrans") + 8
        return {line.split()[0]: line[end - 13:end].strip() for line in lines[2:4]}, lines

    cells, lines = intrans(tmp_path / "a" / "bounds")
    assert cells["finetune"].endswith(tuple("0123456789")) and not any(line.startswith(("Note", "Intrans:"))
                                                                        for line in lines)
    cells, lines = intrans(tmp_path / "a" / "bounds" / "finetune-seed0.h5", tmp_path / "b" / "other")
    assert cells["finetune"] == "—" and cells["joint"] == "0.0"
    assert lines[4] == ("Note: the rows were made with different settings, not only different methods (train.epochs "
                        "differs: finetune | joint).")
    assert lines[5] == ("Intrans: none for finetune: the joint run of their seed was made with other settings "
                        "(train.epochs differs).")


def test_a_joint_run_evaluated_otherwise_gives_intransigence(tmp_path, capsys):
    """``train.eval_every`` and ``train.eval_samples`` set only the continual evaluation, which draws from its own
    generators: runs made with other values train alike (the premise, checked here on finetune, GPM and HLOP), so
    the joint run still gives the reference, while the rows' settings note keeps naming the key (their min-ACC and
    WC-ACC are measured otherwise)."""
    from spikecl.cli import main
    from spikecl.continual.results import read_continual

    experiment = two_digit_tasks(tmp_path / "evals.toml", "evals", '["finetune", "gpm", "hlop"]',
                                 network='encoder = "poisson"\nnum_steps = 3\n')
    common = ["--seed", "0", "--no-progress", "--no-plots"]
    assert main(["run", str(experiment), *common, "--output-dir", str(tmp_path / "a"), "--set",
                 "train.eval_every=2", "--set", "train.eval_samples=20"]) == 0
    assert main(["run", str(experiment), *common, "--output-dir", str(tmp_path / "b"), "--set",
                 'strategy.methods=["finetune", "gpm", "hlop", "joint"]']) == 0
    capsys.readouterr()
    for method in ("finetune", "gpm", "hlop"):
        a, b = (read_continual(tmp_path / d / "evals" / f"{method}-seed0.h5") for d in "ab")
        np.testing.assert_array_equal(a.acc_matrix, b.acc_matrix)
    assert main(["report", str(tmp_path / "a" / "evals" / "finetune-seed0.h5"),
                 str(tmp_path / "b" / "evals" / "joint-seed0.h5"), "--no-plots", "--no-matrices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    end = lines[0].index(" Intrans") + 8
    assert lines[2].split()[0] == "finetune" and lines[2][end - 13:end].strip().endswith(tuple("0123456789")), lines
    assert not any(line.startswith("Intrans:") for line in lines)
    assert any(line.startswith("Note: the rows were made with different settings") and "train.eval_every" in line
               for line in lines)


def test_a_variants_own_settings_are_not_noted_as_different_settings():
    """A variant's ``[variants.<name>]`` settings (e.g. ``train.momentum``) are its own, as a method's options are;
    the joint run still gives it intransigence."""
    variants = {"ewc-momentum": {"method": "ewc", "train": {"momentum": 0.9}}}
    rows = []
    for method, momentum, recorded in (("finetune", 0.0, variants), ("ewc-momentum", 0.9, {}),
                                       ("joint", 0.0, variants)):
        r = result(method, 0, ["finetune", "ewc-momentum", "joint"])
        rows.append(replace(r, config={**r.config, "train": {"momentum": momentum}, "variants": recorded,
                                       "strategy": {**r.config["strategy"], "options": {method: {"x": method}}}}))
    text = text_report(rows, matrices=False)
    assert "Note:" not in text and "Intrans:" not in text
    assert all("intransigence" in r.metrics for r in rows)
    rows[1].config["train"]["lr"] = 0.5                               # a setting the variant does not declare
    text = text_report(rows, matrices=False)
    assert "(train.lr differs: finetune, joint | ewc-momentum)" in text and "intransigence" not in rows[1].metrics
    assert "Intrans: none for ewc-momentum: the joint run of their seed was made with other settings (train.lr" in text
    rows[1].config["train"]["epochs"] = 7                             # every differing key is named, sorted
    assert "(train.epochs, train.lr differ: finetune, joint | ewc-momentum)" in text_report(rows, matrices=False)
    rows[2].config["train"].update(lr=0.25, batch_size=3, beta=0.5, gamma=1, delta=2)      # a third group
    note = next(line for line in text_report(rows, matrices=False).splitlines() if line.startswith("Note:"))
    assert note.endswith("(train.batch_size, train.beta, train.delta, train.epochs and 2 more differ: finetune | "
                         "ewc-momentum | joint).")


def test_rules_that_follow_the_method_do_not_part_rows_of_different_methods():
    """Each run records the rules its own method computes by (EWC's and GPM's Poisson pass draws, the union of two
    projections' subspaces, SI's gradient): rows of different methods are not noted as made otherwise and each gets
    intransigence from the joint run; two runs of one method made under different rules still differ."""
    from spikecl.config import experiment_from_dict
    from spikecl.continual.report import setting_difference
    from spikecl.continual.run_record import unshown_rules

    cfg = experiment_from_dict({"network": {"encoder": "poisson"}})
    methods = ["joint", "finetune", "ewc", "gpm", "hlop+gpm", "si+gpm"]
    rows = [replace(r, config={**r.config, **unshown_rules(cfg, m), "runs_method": m})
            for m in methods for r in [result(m, 0, methods)]]
    assert len({frozenset(r.config) for r in rows}) > 2                    # the rules do differ by method
    text = text_report(rows, matrices=False)
    assert "Note:" not in text and "Intrans:" not in text
    assert all("intransigence" in r.metrics for r in rows)
    older = replace(rows[2], config={k: v for k, v in rows[2].config.items() if k != "pass_draws"})
    assert setting_difference(rows[2], older, rows) == "pass_draws"


def test_min_acc_is_read_from_the_task_ends_where_no_evaluation_point_fell_within_training():
    """A run with train.eval_every > 0 whose tasks ended before the first point (a file written before min-ACC
    counted the task ends alone has none) gets min-ACC and WC-ACC from its accuracy matrix; one with eval_every 0
    does not."""
    from spikecl.continual.report import current_metrics

    r = result("finetune", 0, ["finetune"])                         # no curve points, R = [[.1 .1] [.9 .2] [.8 .95]]
    on = replace(r, config={**r.config, "train": {"eval_every": 20}})
    assert current_metrics(on)["min_acc"] == pytest.approx(0.8)     # task 1 after task 2's end
    assert current_metrics(on)["wc_acc"] == pytest.approx(0.95 / 2 + 0.8 / 2)
    assert "min_acc" not in current_metrics(r)


def test_a_sweeps_joint_runs_give_intransigence_to_the_runs_of_their_own_point():
    """Sweep summaries label runs ``method @ point``: each point's joint run is the reference of that point's runs
    (same seed, same settings), not of the other point's, and a point without its own joint run gets none."""
    from spikecl.continual.report import method_summary

    rows = []
    for lr, joint_diag in ((0.05, (0.9, 0.9)), (0.1, (1.0, 0.8))):
        for method in ("finetune", "joint"):
            r = result(method, 0, ["finetune", "joint"])
            acc = r.acc_matrix.copy()
            if method == "joint":
                acc[1, 0], acc[2, 1] = joint_diag
            rows.append(replace(r, method=f"{method} @ lr={lr}", acc_matrix=acc,
                                config={**r.config, "method": method, "train": {"lr": lr}}))
    summary = method_summary(rows)
    # finetune learns 0.9 then 0.95: intransigence = mean(joint's diagonal - finetune's)
    assert np.isclose(summary["finetune @ lr=0.05"]["intransigence"][0], np.mean([0.0, -0.05]))
    assert np.isclose(summary["finetune @ lr=0.1"]["intransigence"][0], np.mean([0.1, -0.15]))
    assert np.isclose(summary["joint @ lr=0.1"]["intransigence"][0], 0.0)
    lone = [rows[0], rows[3]]                                      # finetune at lr=0.05, joint at lr=0.1 only
    assert "intransigence" not in method_summary(lone)["finetune @ lr=0.05"]


def test_a_folder_whose_every_file_is_skipped_says_so(tmp_path, capsys):
    """A folder holding only files the report cannot read (here a foreign HDF5 file) is an error that counts the
    skipped files, rather than claiming the folder holds no results file."""
    import h5py

    from spikecl.cli import main

    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.arange(3)
    assert main(["report", str(tmp_path), "--no-plots"]) == 2
    captured = capsys.readouterr()
    assert "skipped: " in captured.out + captured.err
    assert f"no readable results files under {tmp_path} (1 skipped, see above)" in captured.err
    (tmp_path / "foreign.h5").unlink()
    assert main(["report", str(tmp_path), "--no-plots"]) == 2
    assert f"no results files (*.h5) under {tmp_path}" in capsys.readouterr().err
    (tmp_path / "gone.h5").symlink_to(tmp_path / "moved" / "run.h5")      # a link whose results were moved away
    assert main(["report", str(tmp_path), "--no-plots"]) == 2
    assert f"skipped: {tmp_path}/gone.h5 is a link to {tmp_path}/moved/run.h5, which does not exist" in \
        capsys.readouterr().out


def test_a_sweep_below_a_named_folder_gives_its_summaries_not_its_trials(tmp_path, sweep_files, capsys):
    """``spikecl report results`` with a sweep in ``results/grid``: its summary, not its trials (made with other
    settings, never one table), beside the folder's other runs."""
    from spikecl.cli import main
    from spikecl.continual.sweep import load_sweep, write_sweep_results

    out = tmp_path / "results"
    sweep = load_sweep(sweep_files(f'name = "tiny"\nseeds = [0]\noutput_dir = "{out}"\n[data]\ndataset = "digits"\n',
                                   'base = "base.toml"\nname = "grid"\n[grid]\n"train.lr" = [0.05, 0.1]\n'))
    trials = []
    for run in sweep.runs:
        trial = replace(result("finetune", 0, ["finetune"]), config={"name": "tiny", "train": run.overrides})
        write_continual(run.results, trial)
        trials.append(replace(trial, method=f"finetune @ {run.point}"))
    write_sweep_results(trials, sweep, {})
    write_continual(out / "other" / "ewc-seed0.h5", result("ewc", 0, ["ewc"]))
    capsys.readouterr()
    assert main(["report", str(out), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert f"== sweep in {out / 'grid'}: 1 results file(s) ==" in text
    assert f"== continual in {out / 'other'}: 1 results file(s) ==" in text
    assert f"{out / 'grid'} is a sweep: its summaries" in text and "ewc (seed 0)" in text


def test_a_subfolder_that_cannot_be_read_is_skipped_with_a_note(tmp_path, capsys, monkeypatch):
    """(The suite runs as root, so the denial is stood in for by ``os.access``.)"""
    import os

    from spikecl.report import collect

    for folder in ("kept", "locked"):
        write_continual(tmp_path / folder / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: "locked" not in str(p) and real(p, mode))
    runs = collect([tmp_path])["continual"]
    assert [run.path for run in runs] == [tmp_path / "kept" / "finetune-seed0.h5"]
    assert capsys.readouterr().out == f"skipped: {tmp_path / 'locked'} cannot be read\n"
    monkeypatch.undo()
    real_iterdir = Path.iterdir

    def removed_meanwhile(self):                      # another process deletes the folder as the report walks it
        if self.name == "locked":
            raise FileNotFoundError(2, "No such file or directory")
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", removed_meanwhile)
    assert len(collect([tmp_path])["continual"]) == 2
    assert capsys.readouterr().out == f"skipped: {tmp_path / 'locked'} cannot be read (No such file or directory)\n"


def test_a_folder_of_several_experiments_gives_a_table_and_plots_per_experiment(tmp_path, capsys):
    """``spikecl report results``: two experiments' folders, each with a fine-tuning run made with other settings,
    are two tables (not one refused as mixed settings), each headed by its folder, with its plots in it (or below
    --plots DIR at the same relative path); files named one by one still make one table."""
    from spikecl.cli import main

    out = tmp_path / "results"
    for name, tasks in (("a", 2), ("b", 3)):
        run = replace(result("finetune", 0, ["finetune"]), config={"name": name, "strategy": {"methods": ["finetune"]},
                                                                  "stream": {"train_per_task": tasks}})
        write_continual(out / name / "finetune-seed0.h5", run)
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"== continual in {out / 'a'}: 1 results file(s) ==" in text
    assert f"== continual in {out / 'b'}: 1 results file(s) ==" in text
    assert {p.parent.name for p in out.rglob("*.png")} == {"a", "b"} and not list(out.glob("*.png"))
    assert main(["report", str(out), "--plots", str(tmp_path / "figs")]) == 0
    assert {p.parent.name for p in (tmp_path / "figs").rglob("*.png")} == {"a", "b"}
    capsys.readouterr()
    assert main(["report", str(out / "a" / "finetune-seed0.h5"), str(out / "b" / "finetune-seed0.h5"),
                 "--no-plots"]) == 2
    assert "hold finetune made with different settings" in capsys.readouterr().err


def test_an_experiment_folders_plots_stay_its_own(tmp_path, capsys):
    """Plots of an experiment below a named folder go to its folder, also when it is alone there; a file named
    beside its folder joins that experiment; with --plots, experiments of one kind under two named folders keep
    their paths apart; two tables never share a plots folder."""
    import pytest

    from spikecl.cli import main
    from spikecl.errors import ResultsError
    from spikecl.report import _check_apart

    def put(path, name, tasks=2, seed=0):
        run = replace(result("finetune", seed, ["finetune"]), config={"name": name, "stream": {"train_per_task": tasks},
                                                                     "strategy": {"methods": ["finetune"]}})
        write_continual(path, run)

    put(tmp_path / "r" / "a" / "finetune-seed0.h5", "a")
    assert main(["report", str(tmp_path / "r")]) == 0
    assert {p.parent.name for p in (tmp_path / "r").rglob("*.png")} == {"a"}
    put(tmp_path / "r" / "a" / "finetune-seed1.h5", "a", seed=1)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "r" / "a" / "finetune-seed0.h5"), str(tmp_path / "r"), "--no-plots",
                 "--no-matrices"]) == 0
    out = capsys.readouterr().out
    assert "== continual" not in out and " 2 " in out.splitlines()[2]          # one table, seeds 0 and 1
    for side, tasks in (("A", 2), ("B", 3)):
        put(tmp_path / "s" / side / "exp" / "finetune-seed0.h5", side, tasks)
    assert main(["report", str(tmp_path / "s" / "A"), str(tmp_path / "s" / "B"), "--plots",
                 str(tmp_path / "figs")]) == 0
    assert {str(p.parent.relative_to(tmp_path / "figs")) for p in (tmp_path / "figs").rglob("*.png")} == \
        {"A/exp", "B/exp"}
    with pytest.raises(ResultsError, match="plots of the files named and of a would both go to f"):
        _check_apart({("continual", None): Path("f"), ("continual", Path("a")): Path("f")})
    put(tmp_path / "t" / "x" / "finetune-seed0.h5", "x")                # files of two folders named together:
    put(tmp_path / "t" / "y" / "finetune-seed1.h5", "x", seed=1)        # y's plots would land beside x's file
    named = [str(tmp_path / "t" / "x" / "finetune-seed0.h5"), str(tmp_path / "t" / "y" / "finetune-seed1.h5")]
    capsys.readouterr()
    assert main(["report", *named]) == 2 and not list((tmp_path / "t").rglob("*.png"))
    assert "the files named lie in 2 folders" in capsys.readouterr().err
    assert main(["report", *named, "--no-plots"]) == 0


def test_a_variants_own_stream_is_never_paired_with_the_joint_run_of_another():
    """A variant that changes what is learned (``stream.scenario``) gets no intransigence from a joint run of the
    experiment's stream; one that changes how it learns (``train.*``) still does."""
    variants = {"ft-task": {"method": "finetune", "stream": {"scenario": "task"}}}
    rows = []
    for method, scenario in (("finetune", "class"), ("ft-task", "task"), ("joint", "class")):
        r = result(method, 0, ["finetune", "ft-task", "joint"])
        rows.append(replace(r, config={**r.config, "stream": {"scenario": scenario},
                                       "variants": {} if method == "ft-task" else variants}))
    text = text_report(rows, matrices=False)
    assert "intransigence" in rows[0].metrics and "intransigence" not in rows[1].metrics
    assert "Intrans: none for ft-task: the joint run of their seed was made with other settings (stream.scenario" \
        in text


def test_stored_values_that_disagree_with_the_matrix_are_replaced_in_table_and_plot():
    """A file's stored ACC of 0.99 (or infinity, or NaN) beside a matrix whose last row averages 0.875: the table and
    the accuracy-SynOps plot read 0.875 (the plot took the stored value, and an infinite one failed the report with
    a message naming no file); only the metrics a run may leave undefined keep a stored NaN."""
    from spikecl.continual import metrics
    from spikecl.continual.report import accuracy_synops, current_metrics, final_measures

    r = result("finetune", 0, ["finetune"])
    r = replace(r, measures={"effective_acs": np.array([120.0, 100.0]), "effective_macs": np.array([0.0, 0.0])})
    assert metrics.acc(r.acc_matrix) == pytest.approx(0.875)
    for stored in (0.99, float("inf"), float("nan")):
        forged = replace(r, metrics={"acc": stored, "bwt": stored, "fwt": float("nan")})
        now = current_metrics(forged)
        assert now["acc"] == pytest.approx(0.875) and now["bwt"] == metrics.bwt(r.acc_matrix) and np.isnan(now["fwt"])
        assert "synops" in final_measures([forged])["finetune"]
        assert accuracy_synops([forged])["finetune"][0].tolist() == [pytest.approx(0.875)]


def test_stored_metrics_are_recomputed_by_todays_definitions_and_undefined_ones_stay_undefined():
    """A file's min-ACC, written under an older definition, reads as today's from its curves; a metric the run
    recorded as NaN (multitask's FWT) stays NaN; class-incremental FWT (0 by construction) is left out."""
    from spikecl.continual import metrics
    from spikecl.continual.report import current_metrics

    r = result("finetune", 0, ["finetune"])
    curves = np.array([[0.5, 0.1], [0.9, 0.1], [0.3, 0.6], [0.8, 0.95]])
    r = replace(r, curve_iterations=np.arange(4), curve_task=np.array([0, 0, 1, 1]), curve_accuracy=curves,
                metrics={"acc": 0.875, "bwt": -0.1, "min_acc": 0.333, "fwt": float("nan"), "x": 1.0})
    now = current_metrics(r)
    assert now["min_acc"] == metrics.min_acc(curves, np.array([0, 0, 1, 1]), r.acc_matrix) != 0.333
    assert np.isnan(now["fwt"]) and now["x"] == 1.0 and np.isclose(now["learning_acc"], 0.925)
    old_class = replace(r, config={**r.config, "stream": {"scenario": "class"}}, metrics={"fwt": 0.0})
    assert np.isnan(current_metrics(old_class)["fwt"])
    old_task = replace(r, config={**r.config, "stream": {"scenario": "task"}}, metrics={"fwt": 0.05})
    assert np.isnan(current_metrics(old_task)["fwt"])                # an untrained head's accuracy, not transfer
    assert current_metrics(replace(r, metrics={"fwt": 0.0}))["fwt"] == metrics.fwt(r.acc_matrix)


def test_a_cell_over_only_some_seeds_is_named_under_the_table():
    """Intransigence from seed 0's joint run only: the finetune row's cell is over 1 of its 2 seeds, and says so."""
    rows = [result("finetune", 0, ["finetune", "joint"]), result("finetune", 1, ["finetune", "joint"]),
            result("joint", 0, ["finetune", "joint"])]
    text = text_report(rows, matrices=False)
    assert "Over only some seeds (the others leave it undefined): finetune Intrans (1 of 2)." in text


def test_a_cell_over_one_seed_shows_its_value_without_a_spread():
    """No spread was measured over one seed: such a cell shows its mean alone, not "± 0.0"; cells over two seeds
    show their sample std."""
    rows = [result("finetune", 0, ["finetune", "joint"]), result("finetune", 1, ["finetune", "joint"]),
            result("joint", 0, ["finetune", "joint"])]
    rows[1].acc_matrix[-1, 0] -= 0.1                   # the seeds differ in ACC
    lines = text_report(rows, matrices=False).splitlines()
    end = lines[0].index(" ACC") + 4
    cells = {line.split()[0]: line[end - 13:end].strip() for line in lines[2:4]}
    assert re.fullmatch(r"\d+\.\d ± \d\.\d", cells["finetune"]) and cells["finetune"][-3:] != "0.0"
    assert re.fullmatch(r"\d+\.\d", cells["joint"])
    end = lines[0].index(" Intrans") + 8
    assert re.fullmatch(r"-?\d+\.\d", lines[2][end - 13:end].strip())     # finetune's Intrans: 1 of its 2 seeds
    assert "(mean ± std over seeds; a value alone: one seed)" in "\n".join(lines)


def test_a_sweeps_report_redraws_its_own_comparison_plot_beside_each_summary(tmp_path, sweep_files):
    """``spikecl report <sweep folder>`` draws each summary's comparison where ``spikecl sweep`` put it
    (``sweep-comparison.png`` beside ``sweep.h5``, ``final/`` included), never a copy under another name; with
    ``--plots DIR`` elsewhere, ``<name>-comparison.png`` and ``<name>-final-comparison.png`` in DIR."""
    from spikecl.cli import main
    from spikecl.continual.sweep import load_sweep, sweep_dir, write_sweep_results

    sweep = load_sweep(sweep_files(f'name = "tiny"\nseeds = [0]\noutput_dir = "{tmp_path}"\n',
                                   'base = "base.toml"\nname = "grid"\n[grid]\n"train.lr" = [0.05, 0.1]\n'))
    write_sweep_results([replace(result("finetune", 0, ["finetune"]), method="finetune @ lr=0.05")], sweep, {})
    folder = sweep_dir(sweep)
    final = replace(sweep, name=f"{sweep.name}/final", folder=folder / "final")      # as final_runs names it
    write_sweep_results([replace(result("finetune", 0, ["finetune"]), method="finetune")], final, {})
    assert main(["report", str(folder)]) == 0
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == [
        "final/sweep-comparison.png", "sweep-comparison.png"]
    assert main(["report", str(folder), "--plots", str(tmp_path / "plots")]) == 0
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == ["grid-comparison.png",
                                                                          "grid-final-comparison.png"]


def test_a_sweeps_final_runs_are_reported_in_the_order_the_sweep_planned_them(tmp_path, sweep_files, capsys):
    """Each final run's config names its own method alone, so by their files a sweep's final runs would be listed by
    name; the summary's record of the runs gives the sweep's order of methods, as its own table shows it. A file
    the sweep did not make (a run made there by hand) comes after them."""
    from spikecl.cli import main
    from spikecl.continual.sweep import load_sweep, sweep_dir, write_sweep_results

    sweep = load_sweep(sweep_files(f'name = "tiny"\nseeds = [0, 1]\noutput_dir = "{tmp_path}"\n[strategy]\n'
                                   'methods = ["si", "ewc", "finetune"]\n', 'base = "base.toml"\nname = "grid"\n'))
    final = sweep_dir(sweep) / "final"
    runs = [replace(run, results=final / Path(run.results).name) for run in sweep.runs]
    results = [result(run.method, run.seed, [run.method]) for run in runs]
    for run, made in zip(runs, results):
        write_continual(run.results, made)
    write_continual(final / "agem-seed0.h5", result("agem", 0, ["agem"]))
    write_sweep_results([], sweep, {})                                      # the trials' summary
    write_sweep_results(results, replace(sweep, name=f"{sweep.name}/final", folder=final, runs=runs), {})
    assert main(["report", str(final), "--no-plots"]) == 0
    out = capsys.readouterr().out
    heads = re.findall(r"^(\S+) \(seed (\d)\) — accuracy %$", out, flags=re.M)
    assert heads == [("si", "0"), ("si", "1"), ("ewc", "0"), ("ewc", "1"), ("finetune", "0"), ("finetune", "1"),
                     ("agem", "0")]


def test_a_sweeps_summary_shows_a_cell_over_one_seed_without_a_spread(tmp_path, sweep_files, capsys):
    """As the experiment report: the sweep's table shows a value over one seed alone and a spread over two; a
    summary written before cells' seed counts were recorded reads as before (one seed per row: alone)."""
    from spikecl.cli import main
    from spikecl.continual.sweep import load_sweep, sweep_dir, write_sweep_results

    sweep = load_sweep(sweep_files(f'name = "tiny"\nseeds = [0, 1]\noutput_dir = "{tmp_path}"\n',
                                   'base = "base.toml"\nname = "grid"\n[grid]\n"train.lr" = [0.05, 0.1]\n'))
    other = result("finetune", 1, ["finetune"])
    other.acc_matrix[-1, 0] -= 0.1
    write_sweep_results([replace(result("finetune", 0, ["finetune"]), method="finetune @ lr=0.05"),
                         replace(other, method="finetune @ lr=0.05"),
                         replace(result("finetune", 0, ["finetune"]), method="finetune @ lr=0.1")], sweep, {})
    capsys.readouterr()
    assert main(["report", str(sweep_dir(sweep)), "--no-plots"]) == 0
    rows = {line.split("  ")[0].strip(): line for line in capsys.readouterr().out.splitlines() if "@ lr=" in line}
    assert "±" in rows["finetune @ lr=0.05"] and "±" not in rows["finetune @ lr=0.1"]
    with edited(sweep_dir(sweep) / "sweep.h5") as f:         # as written before the counts
        unseal(f)
        del f.attrs["counts"]
    assert main(["report", str(sweep_dir(sweep)), "--no-plots"]) == 0
    assert "±" not in next(line for line in capsys.readouterr().out.splitlines() if "@ lr=0.1" in line)


def test_a_file_an_unfinished_overwrite_is_still_to_replace_is_not_reported(tmp_path, capsys):
    """After an interrupted --overwrite a folder holds new files beside old ones still marked .replacing: the old
    ones are skipped with a note (named alone, a one-line error), so old and new settings are never tabled as one."""
    from spikecl.cli import main

    listed = ["finetune", "ewc"]
    write_continual(tmp_path / "r" / "finetune-seed0.h5", result("finetune", 0, listed))
    old = write_continual(tmp_path / "r" / "ewc-seed0.h5", result("ewc", 0, listed))
    (tmp_path / "r" / "ewc-seed0.h5.replacing").touch()
    assert main(["report", str(tmp_path / "r"), "--no-plots", "--no-matrices"]) == 0
    out = capsys.readouterr().out
    assert f"skipped: {old} is still to be replaced by an --overwrite that did not finish" in out
    assert "finetune" in out and not any(line.startswith("ewc ") for line in out.splitlines())
    assert main(["report", str(old), "--no-plots"]) == 2
    assert "finish it with spikecl run --resume --overwrite, or spikecl sweep --overwrite" in capsys.readouterr().err
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "ewc.h5").symlink_to(old)                  # named through a link: refused alike
    assert main(["report", str(tmp_path / "links" / "ewc.h5"), "--no-plots"]) == 2
    assert "ewc.h5 is still to be replaced by an --overwrite that did not finish" in capsys.readouterr().err
    (tmp_path / "r" / "ewc-seed0.h5.replacing").unlink()            # an --overwrite that writes where the link is
    (tmp_path / "links" / "ewc.h5.replacing").touch()
    assert main(["report", str(tmp_path / "links" / "ewc.h5"), "--no-plots"]) == 2
    assert "ewc.h5 is still to be replaced by an --overwrite that did not finish" in capsys.readouterr().err


def test_files_a_running_process_writes_are_said_to_be_in_progress_not_unfinished(tmp_path, capsys):
    """A checkpoint whose run holds its lock now, or a .replacing mark of an --overwrite process still running, is
    work in progress: the report says so rather than advising to resume or finish what has not stopped. Records a
    killed process left are not taken for live ones, though its PID be another live process's by now."""
    import os

    from processes import holding_locks, sleeping

    from spikecl.run_files import _start_time
    from spikecl.cli import main
    from spikecl.experiment_kind import mark_replacing

    listed = ["finetune", "ewc"]
    write_continual(tmp_path / "r" / "finetune-seed0.h5", result("finetune", 0, listed))
    old = write_continual(tmp_path / "r" / "ewc-seed0.h5", result("ewc", 0, listed))
    mark_replacing(old)
    mark = tmp_path / "r" / "ewc-seed0.h5.replacing"
    assert mark.read_text() == f"{os.getpid()} {_start_time(os.getpid())}"
    (tmp_path / "r" / "si-seed0.ckpt").write_bytes(b"a run's checkpoint")
    with holding_locks(tmp_path / "r" / "si-seed0.h5.lock") as [writer]:
        mark.write_text(f"{writer} {_start_time(writer)}")
        assert main(["report", str(tmp_path / "r"), "--no-plots", "--no-matrices"]) == 0
        out = capsys.readouterr().out
        assert (f"skipped: {old} is to be replaced by an --overwrite running now (PID {writer}; its settings are "
                "the old ones); read it again when that has finished") in out
        assert (f"not reported: {tmp_path / 'r' / 'si-seed0.h5'} is being trained now (PID {writer}); report "
                "again when it has finished") in out
    with sleeping() as other:                           # the PIDs the records hold are now another process's
        (tmp_path / "r" / "si-seed0.h5.lock").write_text(str(other.pid))
        mark.write_text(f"{other.pid} 1")
        for state in ("a process that is not the recorded one", "ended"):
            assert main(["report", str(tmp_path / "r"), "--no-plots", "--no-matrices"]) == 0, state
            out = capsys.readouterr().out
            assert f"skipped: {old} is still to be replaced by an --overwrite that did not finish" in out
            assert "is the checkpoint of an unfinished run (continue it with spikecl run --resume, or spikecl " \
                   "sweep" in out
            other.kill()
            other.wait()


def test_files_named_beside_results_not_named_leave_the_folders_plots_alone(tmp_path, capsys):
    """Named alone, one method's file would write its folder's comparison of every method with one bar: refused in
    one line before any table, unless the folder is named, --plots DIR or --no-plots; all files named is fine."""
    from spikecl.cli import main

    for method in ("finetune", "ewc"):
        write_continual(tmp_path / f"{method}-seed0.h5", result(method, 0, ["finetune", "ewc"]))
    assert main(["report", str(tmp_path)]) == 0
    before = (tmp_path / "comparison.png").read_bytes()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "ewc-seed0.h5")]) == 2
    out, err = capsys.readouterr()
    assert not out and err.strip() == (f"spikecl: error: report: {tmp_path} holds 1 more results file(s) than those "
                                       "named (finetune-seed0.h5), whose plots theirs would replace: name the folder, "
                                       "pass --plots DIR, or --no-plots")
    assert (tmp_path / "comparison.png").read_bytes() == before
    assert main(["report", str(tmp_path / "ewc-seed0.h5"), "--no-plots"]) == 0
    assert main(["report", str(tmp_path / "ewc-seed0.h5"), "--plots", str(tmp_path / "one")]) == 0
    assert main(["report", *(str(tmp_path / f"{m}-seed0.h5") for m in ("ewc", "finetune"))]) == 0
    import h5py

    with h5py.File(tmp_path / "net.h5", "w") as f:                  # an exported network, say: not a results file
        f.attrs["schema"] = "spikecl-netx"
    assert main(["report", *(str(tmp_path / f"{m}-seed0.h5") for m in ("ewc", "finetune"))]) == 0


def test_a_loop_of_links_is_a_one_line_error_or_skipped_in_a_folder(tmp_path, capsys):
    from spikecl.cli import main

    write_continual(tmp_path / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))
    (tmp_path / "loop.h5").symlink_to(tmp_path / "loop.h5")
    assert main(["report", str(tmp_path / "loop.h5"), "--no-plots"]) == 2
    assert re.fullmatch(rf"spikecl: error: {re.escape(str(tmp_path / 'loop.h5'))} cannot be followed to a file "
                        r"\((Symlink loop from '.*'|.*Too many levels of symbolic links.*)\); is it a loop of links\?",
                        capsys.readouterr().err.strip())                          # (Python 3.13 words it so)
    assert main(["report", str(tmp_path), "--no-plots"]) == 2       # the table of the rest, then the error
    out, err = capsys.readouterr()
    assert f"skipped: {tmp_path / 'loop.h5'} cannot be followed to a file" in out and "finetune" in out
    assert err == (f"spikecl: error: {tmp_path / 'loop.h5'} could not be read as results (skipped above); the "
                   "tables leave it out\n")
    (tmp_path / "into.h5").symlink_to(tmp_path / "finetune-seed0.h5" / "x.h5")      # no loop: not called one
    assert main(["report", str(tmp_path / "into.h5"), "--no-plots"]) == 2
    assert capsys.readouterr().err == (f"spikecl: error: {tmp_path / 'into.h5'} is a link to "
                                       f"{tmp_path / 'finetune-seed0.h5' / 'x.h5'}, which does not exist\n")
    (tmp_path / "into.h5").unlink()
    (tmp_path / "loop.toml").symlink_to(tmp_path / "loop.toml")              # run and export said "a link to
    for command in (["run", str(tmp_path / "loop.toml")], ["export", str(tmp_path / "loop.h5"), "-o", "x.h5"]):
        assert main(command) == 2                                            # itself, which does not exist"
        assert capsys.readouterr().err == (f"spikecl: error: {command[1]} cannot be followed to a file (Too many "
                                           "levels of symbolic links); is it a loop of links?\n")


def test_a_linked_experiment_folder_is_named_as_skipped_and_reported_when_named(tmp_path, capsys):
    """Links to folders are not followed (no loops), but never left out unsaid; named, the folder is reported."""
    from spikecl.cli import main

    (tmp_path / "elsewhere").mkdir()
    write_continual(tmp_path / "elsewhere" / "ewc-seed0.h5", result("ewc", 0, ["ewc"]))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "tiny").symlink_to(tmp_path / "elsewhere")
    write_continual(tmp_path / "results" / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))
    assert main(["report", str(tmp_path / "results"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert f"skipped: {tmp_path / 'results' / 'tiny'} is a link to a folder (links are not followed); name it" in out
    assert main(["report", str(tmp_path / "results" / "tiny"), "--no-plots"]) == 0
    assert "ewc" in capsys.readouterr().out


def test_sweeps_of_one_name_keep_a_plot_each_and_runs_beside_a_sweep_are_noted(tmp_path, sweep_files, capsys):
    """Two sweeps named alike reported into one --plots folder get a comparison each (the second no longer replaces
    the first's); results files lying beside a sweep's summary are named as skipped, not silently left out."""
    from spikecl.cli import main
    from spikecl.continual.sweep import load_sweep, sweep_dir, write_sweep_results

    folders = []
    for where, lr in (("a", 0.05), ("b", 0.1)):
        sweep = load_sweep(sweep_files(f'name = "tiny"\nseeds = [0]\noutput_dir = "{tmp_path / where}"\n',
                                       'base = "base.toml"\nname = "grid"\n[grid]\n"train.lr" = [0.05, 0.1]\n'))
        write_sweep_results([replace(result("finetune", 0, ["finetune"]), method=f"finetune @ lr={lr}")], sweep, {})
        folders.append(sweep_dir(sweep))
    assert main(["report", *map(str, folders), "--plots", str(tmp_path / "plots")]) == 0
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == ["grid-2-comparison.png",
                                                                          "grid-comparison.png"]
    write_continual(folders[0] / "ewc-seed0.h5", result("ewc", 0, ["ewc"]))
    capsys.readouterr()
    assert main(["report", str(folders[0]), "--no-plots"]) == 0
    assert (f"skipped: 1 other results file(s) beside {folders[0] / 'sweep.h5'} (ewc-seed0.h5); name them to "
            "report them") in capsys.readouterr().out


def test_two_folders_named_together_are_one_table_whose_plots_need_a_place_of_their_own(tmp_path, capsys):
    """``spikecl report e1 e2`` (runs directly in each): one table, as named together; its plots would have replaced
    e1's own with a comparison of both, so they need --plots DIR or --no-plots. A named folder holding no file of
    its own no longer receives the plots of another folder's files."""
    from spikecl.cli import main

    for folder, method in (("e1", "finetune"), ("e2", "ewc")):
        write_continual(tmp_path / folder / f"{method}-seed0.h5", result(method, 0, ["finetune", "ewc"]))
    assert main(["report", str(tmp_path / "e1")]) == 0
    before = (tmp_path / "e1" / "comparison.png").read_bytes()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "e1"), str(tmp_path / "e2")]) == 2
    out, err = capsys.readouterr()
    assert not out and err.strip() == (f"spikecl: error: report: the results named lie directly in 2 folders "
                                       f"({tmp_path / 'e1'}, {tmp_path / 'e2'}): one table, whose plots would replace "
                                       "those of the first folder: pass --plots DIR, or --no-plots")
    assert (tmp_path / "e1" / "comparison.png").read_bytes() == before and not list((tmp_path / "e2").glob("*.png"))
    assert main(["report", str(tmp_path / "e1"), str(tmp_path / "e2"), "--no-plots"]) == 0
    assert " 1 " in capsys.readouterr().out                                  # one table: both methods, one seed
    assert main(["report", str(tmp_path / "e1"), str(tmp_path / "e2"), "--plots", str(tmp_path / "both")]) == 0
    assert (tmp_path / "both" / "comparison.png").exists()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "sub").mkdir()
    write_continual(tmp_path / "empty" / "sub" / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))
    assert main(["report", str(tmp_path / "empty"), str(tmp_path / "e2" / "ewc-seed0.h5")]) == 0
    assert not list((tmp_path / "empty").glob("*.png")) and (tmp_path / "e2" / "comparison.png").exists()


def test_a_report_of_one_task_runs_explains_no_bwt_it_does_not_show():
    from spikecl.continual.report import text_report
    from spikecl.continual.results import ContinualResult

    def run(tasks):
        acc = np.full((tasks + 1, tasks), 0.5)
        return ContinualResult("finetune", 0, {"stream": {"scenario": "domain"}}, acc, np.zeros(0, np.int64),
                               np.zeros(0, np.int64), np.zeros((0, tasks)), np.ones(tasks), {})

    assert "BWT < 0 means forgetting" not in text_report([run(1)])
    assert "BWT < 0 means forgetting" in text_report([run(2)])


def test_final_measures_are_the_last_tasks_values_and_synops_is_acs_plus_macs():
    from spikecl.continual.report import accuracy_synops, final_measures

    def run(seed, acs, macs, acc):                                # acc: the last row's mean
        return ContinualResult("ewc", seed, {}, np.vstack([np.full((2, 2), 0.5), [acc, acc]]), np.zeros(0),
                               np.zeros(0), np.zeros((0, 2)), np.ones(2), {"acc": acc}, environment={},
                               measures={"effective_acs": np.array(acs, float),
                                         "effective_macs": np.array(macs, float)})

    runs = [run(0, [100, 10], [7, 1], 0.5), run(1, [100, 30], [7, 3], 0.7)]
    got = final_measures(runs)["ewc"]
    assert got["effective_acs"] == 20 and got["effective_macs"] == 2 and got["synops"] == 22   # after the last task
    acc, synops = accuracy_synops(runs)["ewc"]
    assert acc.tolist() == [0.5, 0.7] and synops.tolist() == [11, 33]


def test_a_folder_named_twice_or_inside_another_named_folder_reads_each_file_once(tmp_path):
    acc = np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]])
    for seed in (0, 1):
        write_continual(tmp_path / "a" / "sub" / f"finetune-seed{seed}.h5",
                        ContinualResult("finetune", seed, {"name": "x", "strategy": {"methods": ["finetune"]}}, acc,
                                        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)), np.ones(2),
                                        {"acc": 0.875, "bwt": -0.1}))
    for paths in ([tmp_path / "a", tmp_path / "a"], [tmp_path / "a", tmp_path / "a" / "sub"]):
        runs = collect(paths, note=lambda _: None)["continual"]
        assert len(runs) == 2                                  # two seeds, not four


def test_collect_takes_one_path_as_one_path(tmp_path, monkeypatch):
    """collect("a.h5") read the string letter by letter ("/" first: the whole file system); one path is one path."""
    from spikecl.report import collect

    path = write_continual(tmp_path / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))
    monkeypatch.chdir(tmp_path)
    for given in (str(path), path, "finetune-seed0.h5"):
        assert [r.path.name for r in collect(given, print)["continual"]] == ["finetune-seed0.h5"]


def test_a_sweep_plot_name_too_long_is_refused_before_any_table(tmp_path, sweep_files, capsys):
    """A sweep's plot under --plots DIR is named by the sweep: one too long for the file system was refused only
    after its table was printed."""
    from spikecl.cli import main
    from spikecl.continual.sweep import load_sweep, sweep_dir, write_sweep_results

    name = "g" * 240
    sweep = load_sweep(sweep_files(f'name = "tiny"\nseeds = [0]\noutput_dir = "{tmp_path}"\n',
                                   f'base = "base.toml"\nname = "{name}"\n[grid]\n"train.lr" = [0.05, 0.1]\n'))
    write_sweep_results([replace(result("finetune", 0, ["finetune"]), method="finetune @ lr=0.05")], sweep, {})
    assert main(["report", str(sweep_dir(sweep)), "--plots", str(tmp_path / "figs")]) == 2
    out, err = capsys.readouterr()
    assert "runs complete" not in out and f"{name}-comparison.png: the name of a plot is too long" in err
    assert err.rstrip().endswith("--no-plots")
    assert main(["report", str(sweep_dir(sweep))]) == 0          # beside sweep.h5: sweep-comparison.png


def test_runs_the_experiment_names_but_no_file_holds_are_named_under_the_table(tmp_path, capsys):
    """An experiment interrupted between runs (no checkpoint left) was tabled as if complete: the runs its files
    name (their command's methods and seeds) that no file read holds are listed."""
    from spikecl.cli import main

    listed = ["finetune", "ewc"]
    for method, seed in (("finetune", 0), ("finetune", 1), ("ewc", 1)):
        run = replace(result(method, seed, listed), config={"name": "x", "strategy": {"methods": listed},
                                                            "seeds": [0, 1]})
        write_continual(tmp_path / f"{method}-seed{seed}.h5", run)
    assert main(["report", str(tmp_path), "--no-plots", "--no-matrices"]) == 0
    assert ("Not in this report: ewc seed 0, which the experiment names: no results file of it was read "
            "(interrupted, failed or not yet run;") in capsys.readouterr().out
    write_continual(tmp_path / "ewc-seed0.h5", replace(result("ewc", 0, listed), config={
        "name": "x", "strategy": {"methods": listed}, "seeds": [0, 1]}))
    assert main(["report", str(tmp_path), "--no-plots", "--no-matrices"]) == 0
    assert "Not in this report" not in capsys.readouterr().out


def test_measures_table_never_rounds_a_sparsity_to_all_or_nothing():
    """An activation sparsity of 99.981 % printed as 100.0, as if no neuron had fired."""
    from spikecl.continual.report import format_measures
    table = format_measures({"finetune": {"activation_sparsity": 0.99981, "connection_sparsity": 0.0004,
                                          "footprint_bytes": 2048.0},
                             "ewc": {"activation_sparsity": 1.0, "connection_sparsity": 0.0}})
    rows = {line.split()[0]: line.split()[1:4] for line in table.splitlines()[2:]}
    assert rows == {"finetune": ["2.0", "<0.1", ">99.9"], "ewc": ["—", "0.0", "100.0"]}


def test_text_report_refuses_what_spikecl_report_refuses():
    """The library's text_report averaged runs of other settings, and one run given twice, as seeds of one row;
    an empty list printed a table of false notes; a run made on its own from Python was called missing from the
    plan its config names."""
    base = {"stream": {"n_tasks": 2}, "strategy": {"methods": ["finetune"]}, "seeds": [0, 1], "train": {"lr": 0.1}}
    acc = np.array([[0.1, 0.1], [0.9, 0.1], [0.8, 0.9]])
    a = ContinualResult("ewc", 0, base, acc, np.zeros(0), np.zeros(0), np.zeros((0, 2)), np.ones(2), {"acc": 0.85})
    b = ContinualResult("ewc", 1, {**base, "train": {"lr": 0.5}}, acc, np.zeros(0), np.zeros(0), np.zeros((0, 2)),
                        np.ones(2), {"acc": 0.85})
    with pytest.raises(ResultsError, match=r"^results\[1\] and results\[0\] hold ewc made with different settings "
                                           r"\(train.lr differs\), not seeds of one experiment; report them "
                                           r"separately$"):
        text_report([a, b])
    with pytest.raises(ResultsError, match=r"^results\[2\] and results\[0\] both hold ewc seed 0; report one"):
        text_report([a, replace(a, seed=1), a])
    with pytest.raises(ResultsError, match="^text_report: no results given$"):
        text_report([])
    assert "Not in this report" not in text_report([a, replace(a, seed=1)])
    planned = replace(a, method="finetune")
    assert "Not in this report: finetune seed 1" in text_report([planned])


def test_a_mean_that_rounds_to_zero_prints_without_a_minus_sign():
    """A forgetting whose per-task values cancel can have a float mean of −2.8e-17: it prints 0.0, not −0.0 (a
    reader would take that for a small negative value); a mean of −0.06 % still prints −0.1."""
    from spikecl.continual.report import format_summary

    text = format_summary({"gpm": {"forgetting": (-2.8e-17, 0.0), "bwt": (-0.0006, 0.0)}}, {"gpm": 1})
    assert text.splitlines()[0].split()[2:] == ["BWT", "Forget"] and text.splitlines()[2].split()[2:] == ["-0.1", "0.0"]


def test_runs_not_read_are_named_by_seed_then_method():
    """The runs an experiment names but no file holds are listed seed by seed, each seed's methods in order."""
    from spikecl.continual.report import missing_runs

    plan = {"name": "x", "strategy": {"methods": ["ewc", "finetune"]}, "seeds": [0, 1]}
    only = replace(result("finetune", 1, ["ewc", "finetune"]), config=plan)
    assert missing_runs([only]) == ["ewc seed 0", "finetune seed 0", "ewc seed 1"]


def test_runs_missing_from_two_experiments_named_together_are_each_named():
    """One experiment's fine-tuning run stood in for another's (plans were keyed by method and seed alone): with
    files of two experiments named together, each experiment's missing runs are named, with the experiment."""
    from spikecl.continual.report import missing_runs

    def run(name, method):
        plan = {"name": name, "strategy": {"methods": ["finetune", "ewc"]}, "seeds": [0]}
        return replace(result(method, 0, []), config=plan)
    assert missing_runs([run("demo", "ewc"), run("loihi", "finetune")]) == ["finetune seed 0 of demo",
                                                                          "ewc seed 0 of loihi"]
    assert missing_runs([run("demo", "ewc"), run("demo", "finetune")]) == []


def test_a_run_that_diverged_is_not_said_to_be_run_by_resume(tmp_path):
    """A run whose training diverged was listed among those "interrupted, failed or not yet run", which
    `--resume` runs, though resume refuses it (the same settings diverge again). It is named apart now."""
    from spikecl.continual.report import missing_note
    from spikecl.run_files import write_divergence

    plan = {"name": "x", "output_dir": str(tmp_path), "strategy": {"methods": ["ewc", "finetune"]}, "seeds": [0, 1]}
    only = replace(result("finetune", 0, ["ewc", "finetune"]), config=plan)
    (tmp_path / "x").mkdir()
    write_divergence(tmp_path / "x" / "ewc-seed0.h5", "NumericalError: ewc seed 0, task 2: loss became NaN")
    assert missing_note([only]).splitlines() == [
        "Not in this report: ewc seed 1, finetune seed 1, which the experiment names: no results file of them was "
        "read (interrupted, failed or not yet run; spikecl run <experiment file> --resume runs what is missing)",
        "Diverged, not in this report: ewc seed 0 (the same settings diverge again: change them to run it)"]
    (tmp_path / "x" / "finetune-seed1.h5").write_bytes(b"a newer schema's file, or a damaged one")   # skipped above
    assert missing_note([only]).splitlines()[::2] == [
        "Not in this report: ewc seed 1, which the experiment names: no results file of it was read (interrupted, "
        "failed or not yet run; spikecl run <experiment file> --resume runs what is missing)",
        "Diverged, not in this report: ewc seed 0 (the same settings diverge again: change them to run it)"]
    assert missing_note([only]).splitlines()[1] == ("Skipped above, not in this report: finetune seed 1 (its results "
                                                    "file is there but could not be read)")


def test_runs_whose_files_were_not_named_or_moved_are_named_by_what_is_beside_the_files_read(tmp_path):
    """Naming one file of an experiment called its readable siblings "there but could not be read"; they are named
    as not named. A folder moved after its runs was looked up where it had been written: its diverged run was said
    to be interrupted (--resume runs it), and a file beside those read was said to be missing."""
    from spikecl.continual.report import missing_note, plot_note
    from spikecl.continual.results import read_continual
    from spikecl.run_files import write_divergence

    plan = {"name": "x", "output_dir": str(tmp_path / "old"), "strategy": {"methods": ["ewc", "finetune"]},
            "seeds": [0, 1]}
    folder = tmp_path / "moved" / "x"
    for method, seed in (("finetune", 0), ("finetune", 1)):
        write_continual(folder / f"{method}-seed{seed}.h5", replace(result(method, seed, []), config=plan))
    write_divergence(folder / "ewc-seed0.h5", "NumericalError: ewc seed 0, task 2: loss became NaN")
    only = read_continual(folder / "finetune-seed0.h5")
    assert missing_note([only]).splitlines() == [
        "Not in this report: ewc seed 1, which the experiment names: no results file of it was read (interrupted, "
        "failed or not yet run; spikecl run <experiment file> --resume runs what is missing)",
        "Diverged, not in this report: ewc seed 0 (the same settings diverge again: change them to run it)",
        "Not named, not in this report: finetune seed 1 (its results file is there: name it, or its folder, to "
        "include it)"]
    assert plot_note([only]) == ("not drawn (no results file read): ewc seed 1; not drawn (diverged): ewc seed 0; "
                                 "not drawn (not named): finetune seed 1")
    made = replace(result("finetune", 0, []), config=plan)          # made here, not read: where it was written
    assert missing_note([made]).splitlines()[0].startswith("Not in this report: ewc seed 0, ewc seed 1, finetune "
                                                           "seed 1, which")


def test_the_comparison_plot_draws_no_spread_for_one_seed_and_the_sample_std_for_several():
    """A method of one seed is drawn as its value alone (std NaN, not a '± 0' bar); one of two seeds with the
    seeds' sample std (ddof = 1) of ACC and BWT, from their matrices."""
    from spikecl.continual.report import comparison_summary

    other = replace(result("ewc", 1, ["ewc"]), acc_matrix=np.array([[0.1, 0.1], [0.7, 0.2], [0.7, 0.75]]))
    summary = comparison_summary([result("finetune", 0, ["finetune"]), result("ewc", 0, ["ewc"]), other])
    assert summary["finetune"]["acc"][0] == pytest.approx(0.875) and np.isnan(summary["finetune"]["acc"][1])
    assert summary["ewc"]["acc"] == pytest.approx((0.8, np.std([0.875, 0.725], ddof=1)))
    assert summary["ewc"]["bwt"] == pytest.approx((-0.05, np.std([-0.1, 0.0], ddof=1)))


def test_intransigence_pairs_a_run_only_with_a_joint_run_of_its_own_test_split():
    """Intrans is joint's accuracy on each task minus the run's just after learning it (a mean over tasks), and only
    from a joint run measured on the same test split (data.test_split_seed), which rows may otherwise differ in."""
    from spikecl.continual.report import settings_note, with_intransigence

    def run(method, split, acc):
        return replace(result(method, 0, []), config={"name": "x", "data": {"test_split_seed": split}},
                       acc_matrix=np.array(acc), metrics={})

    joint = [[0.1, 0.1], [0.95, 0.3], [0.9, 0.97]]
    finetune = run("finetune", 0, [[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]])
    with_intransigence([finetune, run("joint", 0, joint)])
    assert finetune.metrics["intransigence"] == pytest.approx(((0.95 - 0.9) + (0.97 - 0.95)) / 2)
    unpaired = {}
    with_intransigence([finetune, other := run("joint", 7, joint)], unpaired)
    assert "intransigence" not in finetune.metrics and unpaired == {"finetune": "data.test_split_seed"}
    assert settings_note([finetune, other]) == ""               # rows of one table may differ in their test split


def test_the_files_lying_in_a_named_folder_come_before_its_experiment_folders_and_links_are_not_read(tmp_path):
    """A named folder's own files form the first table of their kind, its experiment folders follow in name order;
    a link to a folder is named, never read."""
    from spikecl.report import collect_groups

    for folder, method in (("b", "ewc"), ("a", "si"), (".", "finetune"), ("../elsewhere", "gpm")):
        write_continual(tmp_path / "results" / folder / f"{method}-seed0.h5", result(method, 0, [method]))
    (tmp_path / "results" / "linked").symlink_to(tmp_path / "elsewhere")
    groups = collect_groups(tmp_path / "results", note=lambda _: None)
    assert [(kind, folder and folder.name, [Path(run.path).name for run in runs])
            for (kind, folder), runs in groups.items()] == [
        ("continual", None, ["finetune-seed0.h5"]), ("continual", "a", ["si-seed0.h5"]),
        ("continual", "b", ["ewc-seed0.h5"])]


def test_the_reports_error_names_the_first_file_it_could_not_read_and_counts_the_others(tmp_path, capsys):
    from spikecl.cli import main

    write_continual(tmp_path / "finetune-seed0.h5", result("finetune", 0, ["finetune"]))
    for name in ("a.h5", "b.h5"):
        (tmp_path / name).symlink_to(tmp_path / name)               # loops of links: skipped, then an error
    assert main(["report", str(tmp_path), "--no-plots"]) == 2
    assert capsys.readouterr().err == (f"spikecl: error: {tmp_path / 'a.h5'} (and 1 more) could not be read as "
                                       "results (skipped above); the tables leave it out\n")
