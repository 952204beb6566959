"""The validation protocol: a validation split carved from training data, settings chosen on it, the test split read
once, at the end; method variants; data splits that vary with the seed."""

import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from spikecl.commands.sweep import print_selection, write_selection
from spikecl.config import experiment_from_dict, method_config
from spikecl.continual.experiment import run_experiment
from spikecl.continual.results import read_continual
from spikecl.continual.runner import ContinualRun, build_stream
from spikecl.continual.sweep import final_runs, labelled, load_sweep, select_points
from spikecl.data import streams
from spikecl.data.datasets import load_dataset
from spikecl.data.streams import make_stream
from spikecl.errors import ConfigError, DataError

BASE = """name = "tiny"
seeds = [0]
[data]
dataset = "digits"
validation = 0.2
[stream]
kind = "permuted"
n_tasks = 2
[network]
hidden = [16]
[train]
epochs = 1
lr = 0.1
[strategy]
methods = ["finetune", "ewc", "hlop", "hlop-fast"]
[strategy.hlop]
neurons = [[8, 4]]
[variants.hlop-fast]
method = "hlop"
"strategy.hlop.step" = "normalised"
"train.momentum" = 0.5
"""

SWEEP = """base = "base.toml"
name = "chosen"
output_dir = "{out}"
seeds = [0, 1]
select = "acc"
select_seeds = [3]
num_cpus = 2
points = [{{"strategy.ewc.lam" = 1.0, "variants.hlop-fast.train.lr" = 0.05}},
          {{"strategy.ewc.lam" = 100.0, "variants.hlop-fast.train.lr" = 0.2}}]
"""


class GuardedDataset:
    """A dataset that records every read of its test split."""

    def __init__(self, dataset, reads):
        self._dataset, self._reads = dataset, reads

    def __getattr__(self, name):
        if name in ("x_test", "y_test"):
            self._reads.append(name)
        return getattr(self._dataset, name)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_validation_split_is_stratified_disjoint_and_the_same_in_every_task(digits):
    full = make_stream(digits, "permuted", 2, "domain", seed=1)
    held = make_stream(digits, "permuted", 2, "domain", seed=1, validation=0.2, eval_split="validation")
    train_n, val_n = len(held[0].y_train), len(held[0].y_test)
    assert train_n + val_n == len(digits.y_train) and abs(val_n - 0.2 * len(digits.y_train)) <= 10
    np.testing.assert_allclose(np.bincount(held[0].y_test) / val_n, np.bincount(digits.y_train) / len(digits.y_train),
                               atol=0.01)                                   # stratified by class
    rows = lambda x: {r.tobytes() for r in x.reshape(len(x), -1)}          # noqa: E731
    for task in held:
        assert task.eval_split == "validation"
        assert not rows(task.x_train) & rows(task.x_test)                  # held out of training
        assert rows(task.x_test) <= rows(full[task.index].x_train)         # carved from the training images
    # the same originals are held out in every task (each permuted its own way): equal pixel sums per image
    np.testing.assert_allclose(np.sort(held[0].x_test.reshape(val_n, -1).sum(1)),
                               np.sort(held[1].x_test.reshape(val_n, -1).sum(1)), rtol=1e-6)
    # with eval_split = "test" the tasks train on the same reduced set and evaluate on the test split
    tested = make_stream(digits, "permuted", 2, "domain", seed=1, validation=0.2)
    np.testing.assert_array_equal(tested[0].x_train, held[0].x_train)
    np.testing.assert_array_equal(tested[0].x_test, full[0].x_test)


@pytest.mark.parametrize("kind", ["permuted", "rotated", "split"])
def test_validation_streams_never_read_the_test_split(digits, kind):
    reads = []
    make_stream(GuardedDataset(digits, reads), kind, 2, "domain", validation=0.1, eval_split="validation")
    assert reads == []
    make_stream(GuardedDataset(digits, reads), kind, 2, "domain", validation=0.1)
    assert reads                                                            # the guard does see test reads


@pytest.mark.parametrize("args, message", [
    ({"eval_split": "validation"}, "needs a validation split"),
    ({"validation": 1.0}, "must be a fraction"),
    ({"eval_split": "train"}, "eval_split: 'train' is not allowed"),
    # round(0.0035 x 142) = 0: a class with no validation image, not a damaged dataset
    ({"validation": 0.0035}, r"data.validation: 0.0035 of class 0's 142 training images leaves it no validation "
                             r"image \(3 of 10 classes\); raise it"),
    ({"validation": 0.9999}, "leaves it no training image"),
])
def test_bad_validation_settings_are_one_line_errors(digits, args, message):
    with pytest.raises(ConfigError, match=message):
        make_stream(digits, "permuted", 2, "domain", **args)


def test_a_class_of_one_training_image_is_named_rather_than_sent_between_raise_and_lower():
    from spikecl.data.base import Dataset

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [20, 1])
    data = Dataset("own", rng.random((21, 1, 2, 2), dtype=np.float32), y, rng.random((4, 1, 2, 2), dtype=np.float32),
                   np.array([0, 1, 0, 1]), 2)
    for validation in (0.1, 0.5, 0.6):
        with pytest.raises(ConfigError, match="class 1 has a single training image: no fraction splits it"):
            make_stream(data, "permuted", 1, "domain", validation=validation)


def test_vary_split_varies_the_validation_split_and_keeps_the_test_split():
    raw = {"data": {"dataset": "digits", "validation": 0.1}, "stream": {"n_tasks": 1}}
    fixed = experiment_from_dict(raw)
    varied = experiment_from_dict({**raw, "data": {**raw["data"], "vary_split": True}})
    held_out = experiment_from_dict({**raw, "data": {**raw["data"], "vary_split": True, "eval_split": "validation"}})
    train = [build_stream(varied, s)[0].x_train.sum() for s in (0, 1)]
    assert [build_stream(fixed, s)[0].x_train.sum() for s in (0, 1)] == [train[0]] * 2 and train[0] != train[1]
    test = [build_stream(c, s)[0].x_test.sum() for c in (fixed, varied) for s in (0, 1)]
    assert test == [test[0]] * 4                                           # one test split for every seed
    validation = [build_stream(held_out, s)[0].x_test.sum() for s in (0, 1)]
    assert validation[0] != validation[1]
    other = experiment_from_dict({**raw, "data": {**raw["data"], "vary_split": True, "test_split_seed": 1000}})
    moved = [build_stream(other, s)[0].x_test.sum() for s in (0, 1)]
    assert moved[0] == moved[1] != test[0]                                  # another test split, one for all seeds
    with pytest.raises(ConfigError, match="data.vary_split: each seed varies its validation split"):
        experiment_from_dict({**raw, "data": {"dataset": "digits", "vary_split": True}})


def test_settings_chosen_on_one_seed_never_read_another_seeds_test_images():
    """A sweep selects on seed 100's validation split and reports seeds 0-2 on the test split: no image the
    selection trained or validated on may be a test image of a reported seed (digits' duplicates set aside)."""
    import collections

    from spikecl.data.datasets import _digits_raw

    counts = collections.Counter(row.tobytes() for row in _digits_raw()[0])
    base = {"data": {"dataset": "digits", "validation": 0.1, "vary_split": True},
            "stream": {"kind": "split", "scenario": "task", "n_tasks": 1, "classes_per_task": 10}}

    def images(cfg, seed, split):
        return {row.tobytes() for row in getattr(build_stream(cfg, seed)[0], split)} - {
            k for k, n in counts.items() if n > 1}

    selection = experiment_from_dict({**base, "data": {**base["data"], "eval_split": "validation"}})
    seen = images(selection, 100, "x_train") | images(selection, 100, "x_test")
    assert len(seen) > 1400                                               # 80 % of 1,797
    final = experiment_from_dict(base)
    for seed in (0, 1, 2):
        assert not seen & images(final, seed, "x_test")


def test_variant_overrides_settings_and_runs_its_method(tmp_path):
    (tmp_path / "base.toml").write_text(BASE)
    from spikecl.config import load_experiment

    cfg = load_experiment(tmp_path / "base.toml")
    variant, method = method_config(cfg, "hlop-fast")
    assert method == "hlop" and variant.train.momentum == 0.5 and cfg.train.momentum == 0.9
    assert variant.strategy.options["hlop"] == {"neurons": [[8, 4]], "step": "normalised"}
    assert method_config(cfg, "ewc") == (cfg, "ewc")
    run = ContinualRun(cfg, "hlop-fast", 0)
    assert run.strategy.options.step == "normalised" and run.optimizer.defaults["momentum"] == 0.5
    for bad, message in (({"method": "hlop", "train.lr": -1.0}, "variants.v: train.lr: -1.0 is below"),
                         ({"train.lr": 0.1}, "variants.v.method: expected the name"),
                         ({"method": "hlop", "train.lrate": 0.1}, "variants.v: unknown key 'train.lrate'"),
                         ({"method": "ewc", "seeds": [3]}, "variants.v.seeds: a variant runs with its experiment's "
                                                           "seeds"),
                         ({"method": "ewc", "name": "z"}, "variants.v.name: a variant runs with its experiment's"),
                         ({"method": "ewc", "device": "cuda"}, "variants.v.device: a variant runs with its "
                                                               "experiment's device; set it for the whole"),
                         ({"method": "ewc", "strategy": {"methods": ["si"]}},
                          "variants.v.strategy.methods: a variant runs with its experiment's strategy.methods")):
        with pytest.raises(ConfigError, match=message):
            experiment_from_dict({"variants": {"v": bad}})
    from spikecl.continual.strategies import validate_method

    shadow = experiment_from_dict({"strategy": {"methods": ["ewc"]}, "variants": {"ewc": {"method": "si"}}})
    with pytest.raises(ConfigError, match="variants.ewc: a variant may not take the name of the method 'ewc'"):
        validate_method(shadow, "ewc")



def test_select_plans_validation_trials_only_where_there_is_a_choice(sweep_files):
    sweep = load_sweep(sweep_files(BASE, SWEEP))
    # finetune and hlop do not depend on either point: no trials; ewc and hlop-fast: 2 points x 1 select seed
    assert [r.id for r in sweep.runs] == ["ewc.lam=1.0_variants.hlop-fast.train.lr=0.05/ewc-seed3",
                                          "ewc.lam=100.0_variants.hlop-fast.train.lr=0.2/ewc-seed3",
                                          "ewc.lam=1.0_variants.hlop-fast.train.lr=0.05/hlop-fast-seed3",
                                          "ewc.lam=100.0_variants.hlop-fast.train.lr=0.2/hlop-fast-seed3"]
    assert all(r.raw["data"]["eval_split"] == "validation" for r in sweep.runs)
    assert {m: len(c) for m, c in sweep.candidates.items()} == {"finetune": 1, "ewc": 2, "hlop": 1, "hlop-fast": 2}
    without = load_sweep(sweep_files(BASE, SWEEP.replace('select = "acc"\n', "").replace("select_seeds = [3]\n", "")))
    assert len(without.runs) == 2 * 1 + 2 * 2 + 1 * 2 + 2 * 2            # no selection: every distinct run, 2 seeds
    with pytest.raises(ConfigError, match="select needs a validation split"):
        load_sweep(sweep_files(BASE, SWEEP + '[set]\n"data.validation" = 0.0\n'))


def test_selection_takes_the_best_validation_acc_within_the_bwt_floor(sweep_files):
    sweep = load_sweep(sweep_files(BASE, SWEEP + "min_bwt = -5.0\n"))
    fake = {}
    for run, (acc, bwt) in zip(sweep.runs, [(0.80, -0.10), (0.70, -0.01), (0.60, -0.02), (0.65, -0.02)]):
        fake[run.id] = type("R", (), {"metrics": {"acc": acc, "bwt": bwt}})()
    chosen = select_points(sweep, fake)
    assert chosen["ewc"]["point"].startswith("ewc.lam=100.0")            # 0.80 forgets 10 points: not eligible
    assert chosen["hlop-fast"]["point"].endswith("lr=0.2")                 # 65 > 60
    assert chosen["ewc"]["settings"] == {"strategy.ewc.lam": 100.0}          # the point's hlop-fast key is not ewc's
    assert chosen["hlop-fast"]["settings"] == {"variants.hlop-fast.train.lr": 0.2}
    assert chosen["ewc"]["candidates"]["ewc.lam=1.0_variants.hlop-fast.train.lr=0.05"]["acc"] == pytest.approx(80)
    final = final_runs(sweep, chosen)
    assert len(final.runs) == 4 * 2 and all(r.raw["data"]["eval_split"] == "test" for r in final.runs)
    assert {r.results.parent.name for r in final.runs} == {"final"}
    # the final rows are labelled by each method's own settings, not by the whole point
    assert {r.method: r.point for r in final.runs} == {"finetune": "base", "ewc": "strategy.ewc.lam = 100.0",
                                                       "hlop": "base",
                                                       "hlop-fast": "variants.hlop-fast.train.lr = 0.2"}
    only_ewc = final_runs(sweep, {"ewc": chosen["ewc"]})
    assert [r.method for r in labelled({r.id: r for r in only_ewc.runs}, only_ewc)] == [
        "ewc @ strategy.ewc.lam = 100.0"] * 2                          # one method: still its chosen settings
    assert [r.method for r in labelled({r.id: r for r in final.runs[::2]}, final)] == [
        "finetune @ base", "ewc @ strategy.ewc.lam = 100.0", "hlop @ base",
        "hlop-fast @ variants.hlop-fast.train.lr = 0.2"]
    bad = [r.id for r in sweep.runs if "lam=100.0" in r.id and r.method == "ewc"]
    diverged = select_points(sweep, {k: v for k, v in fake.items() if k not in bad}, failed=bad)
    assert diverged["ewc"]["point"].startswith("ewc.lam=1.0")              # a failed trial is never chosen
    bad = [r.id for r in sweep.runs if r.method == "ewc"]                  # every ewc candidate failed
    none = select_points(sweep, {k: v for k, v in fake.items() if k not in bad}, failed=bad)
    assert none["ewc"]["point"] is None and none["hlop-fast"]["point"].endswith("lr=0.2")
    assert {r.method for r in final_runs(sweep, none).runs} == {"finetune", "hlop", "hlop-fast"}    # the others run
    missing = dict(list(fake.items())[1:])
    with pytest.raises(ConfigError, match="validation trial ewc.lam=1.0_variants.hlop-fast.train.lr=0.05/ewc-seed3 is "
                                          "missing"):
        select_points(sweep, missing)


def test_equal_validation_means_choose_the_first_candidate_whatever_their_last_bits(sweep_files):
    """Two candidates whose mean validation ACC is 97.75 both, one held as 97.74999999999999 (the order of a float
    sum): the later one was chosen by that last bit, so another machine summing otherwise could choose the other;
    the first in the sweep's order is chosen. A BWT equal to min_bwt but for its last bit meets the floor."""
    sweep = load_sweep(sweep_files(BASE, SWEEP + "min_bwt = -5.0\n"))
    fake = {}
    for run, (acc, bwt) in zip(sweep.runs, [(0.50, -0.05000000000000001), (0.40, -0.01),
                                            (0.9774999999999999, -0.01), (0.9775, -0.01)]):
        fake[run.id] = type("R", (), {"metrics": {"acc": acc, "bwt": bwt}})()
    chosen = select_points(sweep, fake)
    assert chosen["hlop-fast"]["point"].endswith("lr=0.05")             # the first of two equal means
    assert chosen["ewc"]["point"].startswith("ewc.lam=1.0") and chosen["ewc"]["bwt_floor_met"]


def trials(sweep, scores: dict) -> dict:
    """{run id: results} of ``sweep``'s validation trials, each holding the (ACC, BWT) ``scores`` gives its method,
    the first override value of its point and its seed (fractions); runs ``scores`` does not name are left out."""
    def key(run):
        return run.method, next(iter(run.overrides.values())), run.seed

    return {run.id: SimpleNamespace(metrics=dict(zip(("acc", "bwt"), scores[key(run)])))
            for run in sweep.runs if key(run) in scores}


def test_a_point_at_the_bwt_floor_is_eligible_an_undefined_bwt_meets_it_and_equal_accs_keep_the_first_point(
        sweep_files):
    """min_bwt is a floor the mean BWT may reach (ewc's 80 % at exactly -6.25 points wins); an undefined BWT (one
    task) meets any floor; where no point meets it the best ACC of all is chosen and the choice says so; two points
    of one validation ACC keep the one listed first, so the choice depends on the trials' numbers alone."""
    scores = {("ewc", 1.0, 3): (0.80, -0.0625), ("ewc", 100.0, 3): (0.70, 0.0),
              ("hlop-fast", 1.0, 3): (0.65, float("nan")), ("hlop-fast", 100.0, 3): (0.65, float("nan"))}
    at = select_points(sweep := load_sweep(sweep_files(BASE, SWEEP + "min_bwt = -6.25\n")), trials(sweep, scores))
    assert at["ewc"]["point"].startswith("ewc.lam=1.0") and at["ewc"]["bwt_floor_met"]
    assert at["ewc"]["candidates"][at["ewc"]["point"]] == {"acc": 80.0, "bwt": -6.25, "seeds": 1, "failed": False}
    assert at["hlop-fast"]["point"].startswith("ewc.lam=1.0") and at["hlop-fast"]["bwt_floor_met"]
    above = select_points(sweep := load_sweep(sweep_files(BASE, SWEEP + "min_bwt = 1.0\n")), trials(sweep, scores))
    assert above["ewc"]["point"].startswith("ewc.lam=1.0") and not above["ewc"]["bwt_floor_met"]    # none reach it
    assert above["hlop-fast"]["bwt_floor_met"]


def test_a_point_with_a_failed_trial_among_its_seeds_is_never_chosen_and_scores_are_means_over_seeds(sweep_files):
    """With two trial seeds, a point whose second trial failed is not chosen on its first one's 90 %: its mean would
    be of another set of seeds; a point's ACC and BWT are the means of its seeds' (in points)."""
    sweep = load_sweep(sweep_files(BASE, SWEEP.replace("select_seeds = [3]", "select_seeds = [3, 4]")))
    scores = {("ewc", 1.0, 3): (0.90, -0.01), ("ewc", 100.0, 3): (0.60, -0.02), ("ewc", 100.0, 4): (0.70, -0.04),
              **{("hlop-fast", lam, seed): (0.5, 0.0) for lam in (1.0, 100.0) for seed in (3, 4)}}
    failed = [run.id for run in sweep.runs if run.method == "ewc" and run.seed == 4 and "lam=1.0_" in run.id]
    chosen = select_points(sweep, trials(sweep, scores), failed=failed)["ewc"]
    assert len(failed) == 1 and chosen["point"].startswith("ewc.lam=100.0")
    assert chosen["candidates"] == {
        "ewc.lam=1.0_variants.hlop-fast.train.lr=0.05": {"acc": pytest.approx(90), "bwt": pytest.approx(-1),
                                                         "seeds": 1, "failed": True},
        "ewc.lam=100.0_variants.hlop-fast.train.lr=0.2": {"acc": pytest.approx(65), "bwt": pytest.approx(-3),
                                                          "seeds": 2, "failed": False}}


def test_a_setting_every_point_shares_is_among_a_methods_chosen_settings(sweep_files):
    """A key of one value in every point (here train.lr) changes the run from the base experiment's: it is among the
    settings chosen, and so in the final runs' labels, for every method whose run it changes."""
    points = ('points = [{{"strategy.ewc.lam" = 1.0, "train.lr" = 0.05}}, '
              '{{"strategy.ewc.lam" = 100.0, "train.lr" = 0.05}}]')
    sweep = load_sweep(sweep_files(BASE, re.sub(r"points = \[.*?\]\n(?=[a-z]|$)", points + "\n", SWEEP, flags=re.S)))
    scores = {("ewc", 1.0, 3): (0.6, 0.0), ("ewc", 100.0, 3): (0.7, 0.0)}
    chosen = select_points(sweep, trials(sweep, scores))
    assert chosen["ewc"]["settings"] == {"strategy.ewc.lam": 100.0, "train.lr": 0.05}
    assert chosen["finetune"]["settings"] == {"train.lr": 0.05}
    assert {r.method: r.point for r in final_runs(sweep, chosen).runs} == {
        "finetune": "train.lr = 0.05", "ewc": "strategy.ewc.lam = 100.0, train.lr = 0.05", "hlop": "train.lr = 0.05",
        "hlop-fast": "train.lr = 0.05"}


def test_protocol_reads_test_data_only_in_the_final_runs(sweep_files, monkeypatch):
    """Every trial of a selecting sweep runs without reading one test image; the final runs read them."""
    reads = []
    monkeypatch.setattr(streams, "load_dataset", lambda *a, **k: GuardedDataset(load_dataset(*a, **k), reads))
    sweep = load_sweep(sweep_files(BASE, SWEEP))

    def execute(runs):
        done = {}
        for run in runs:
            [done[run.id]] = run_experiment(experiment_from_dict(run.raw), progress_bar=False, log=lambda _: 0)
        return done

    trials = execute(sweep.runs)
    assert reads == [] and len(trials) == 4
    assert all(r.config["data"]["eval_split"] == "validation" for r in trials.values())
    final = execute(final_runs(sweep, select_points(sweep, trials)).runs)
    assert reads and all(r.config["data"]["eval_split"] == "test" for r in final.values())


@pytest.mark.slow
def test_sweep_command_selects_on_validation_and_reports_test_numbers(sweep_files, tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    from spikecl.cli import main

    two_methods = BASE.replace('methods = ["finetune", "ewc", "hlop", "hlop-fast"]', 'methods = ["finetune", "ewc"]')
    path = sweep_files(two_methods, SWEEP.replace("seeds = [0, 1]", "seeds = [0]"))
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "validation split (held out of training; no test image was evaluated)" in out
    assert "selected finetune @ base: the base settings (the only candidate)\n" in out
    assert re.search(r"selected ewc @ ewc\.lam=\S+: strategy\.ewc\.lam = [0-9.]+ \(validation ACC", out)
    root = tmp_path / "results" / "chosen"
    selection = json.loads((root / "selection.json").read_text())
    assert selection["split"] == "validation" and len(selection["methods"]["ewc"]["candidates"]) == 2
    finals = sorted(p.name for p in (root / "final").glob("*-seed*.h5"))
    assert finals == ["ewc-seed0.h5", "finetune-seed0.h5"]
    assert read_continual(root / "final" / "ewc-seed0.h5").config["data"]["eval_split"] == "test"
    assert "Accuracies measured on the test split" in (root / "final" / "sweep-summary.txt").read_text()
    chosen = selection["methods"]["ewc"]["point"]
    lam = read_continual(root / "final" / "ewc-seed0.h5").config["strategy"]["options"]["ewc"]["lam"]
    assert chosen.startswith(f"ewc.lam={lam}_")
    assert re.search(r"ewc @ strategy\.ewc\.lam = [0-9.]+ +1 ", (root / "final" / "sweep-summary.txt").read_text())
    back = Path.cwd()
    for folder, cwd in ((root / "final", back), (Path("."), root / "final")):    # "." inside final/ as well
        monkeypatch.chdir(cwd)
        assert main(["report", str(folder), "--no-plots"]) == 0                 # the final runs and their summary
        out = capsys.readouterr().out
        assert "ewc (seed 0) — accuracy %" in out and "finetune (seed 0) — accuracy %" in out
        assert "sweep chosen/final:" in out
    monkeypatch.chdir(back)

    # the trials now choose the other point (as a changed min_bwt would): the kept final run is not the new
    # choice's; --dry-run says so, and the refusal leaves selection.json as it was
    from spikecl.commands import sweep as command

    real = select_points

    def other_point(sweep, done, failed=()):
        picked = real(sweep, done, failed)
        other = next(label for label in picked["ewc"]["candidates"] if label != picked["ewc"]["point"])
        overrides = sweep.candidates["ewc"][other]
        picked["ewc"] = {**picked["ewc"], "point": other, "overrides": overrides,
                         "settings": {"strategy.ewc.lam": overrides["strategy.ewc.lam"]}}
        return picked

    before = (root / "selection.json").read_text()
    monkeypatch.setattr(command, "select_points", other_point)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert re.search(r"differs \(strategy\.ewc\.lam\)  final/ewc-seed0 @ strategy\.ewc\.lam = ", dry), dry
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 2
    assert "ewc-seed0.h5 was made with other settings than sweep chosen/final plans (strategy.ewc.lam differs)" in \
        capsys.readouterr().err
    assert (root / "selection.json").read_text() == before

    # a final run an unfinished --overwrite marked is refused before selection.json changes, as the trials' are
    from spikecl.run_files import replacing

    replacing(root / "final" / "finetune-seed0.h5").touch()
    assert main(["sweep", str(path), "--no-progress", "--no-plots"]) == 2
    assert "finetune-seed0.h5 is still to be replaced by an --overwrite that did not finish" in capsys.readouterr().err
    assert (root / "selection.json").read_text() == before

    # an --overwrite with a changed setting retrains the trials; stopped before the final runs, the old final
    # results (made otherwise) are marked with the trials, so the report does not show them as the sweep's
    replacing(root / "final" / "finetune-seed0.h5").unlink()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "select_points", interrupted)
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--overwrite", "--set", "max_retries=1",
                 "--set", 'set={"train.batch_size" = 16}']) == 130
    capsys.readouterr()
    assert all(replacing(root / "final" / name).exists() for name in ("ewc-seed0.h5", "finetune-seed0.h5",
                                                                       "sweep.h5"))
    assert main(["report", str(root), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "sweep chosen/final:" not in out and "still to be replaced by an --overwrite" in out


def test_report_says_which_split_and_adds_learning_accuracy(tmp_path):
    from spikecl.continual.report import split_note, text_report

    cfg = experiment_from_dict({"data": {"dataset": "digits", "validation": 0.2, "eval_split": "validation"},
                                "stream": {"n_tasks": 2, "train_per_task": 100}, "network": {"hidden": [8]},
                                "train": {"epochs": 1}})
    result = ContinualRun(cfg, "finetune", 0).execute(progress_bar=False)
    text = text_report([result], matrices=False)
    assert "validation split" in text and " LA " in text.splitlines()[0] + " "
    footer = next(line for line in text.splitlines() if "(mean ± std over seeds" in line)
    assert footer.startswith(", ".join(text.splitlines()[0].split()[2:]) + " in %")     # the columns shown, no more
    assert result.metrics["learning_acc"] == pytest.approx(np.mean(np.diag(result.acc_matrix[1:])))
    import h5py

    from spikecl.continual.results import write_continual

    with h5py.File(write_continual(tmp_path / "run.h5", result), "r") as f:
        assert f.attrs["eval_split"] == "validation"                       # visible to any HDF5 reader
    tested = replace(result, config={**result.config, "data": {**result.config["data"], "eval_split": "test"}})
    assert "MIXED" in split_note([result, tested])
    other = replace(result, seed=1, config={**result.config, "data": {**result.config["data"], "test_split_seed": 1}})
    assert "DIFFERENT test splits (data.test_split_seed 0: finetune seed 0; 1: finetune seed 1)" in split_note(
        [result, other])


def test_configs_recorded_before_test_split_seed_read_as_the_split_they_were_made_on(tmp_path):
    """An older results file, checkpoint or exported network has no data.test_split_seed: with vary_split its run
    seed drew its train/test split, else seed 0 did; reading it (export's stream rebuild included) says so."""
    from spikecl.export.samples import trained_stream
    from spikecl.continual.results import write_continual
    from spikecl.io import read_run
    from spikecl.recorded import recorded_as_now

    old = {"data": {"dataset": "digits", "validation": 0.0, "vary_split": True}, "seed": 2}
    assert recorded_as_now(old)["data"]["test_split_seed"] == 2
    assert recorded_as_now({**old, "data": {**old["data"], "vary_split": False}})["data"]["test_split_seed"] == 0
    assert recorded_as_now({"data": {"test_split_seed": 5}, "seed": 2})["data"]["test_split_seed"] == 5
    raw = {"data": {"dataset": "digits"}, "stream": {"kind": "split", "scenario": "task", "n_tasks": 1,
                                                    "classes_per_task": 10}}
    rebuilt = trained_stream({**raw, "data": {"dataset": "digits", "vary_split": True}, "seed": 2})
    drawn = build_stream(experiment_from_dict({**raw, "data": {"dataset": "digits", "test_split_seed": 2}}), 2)
    np.testing.assert_array_equal(rebuilt[0].x_test, drawn[0].x_test)          # seed 2's own split, as trained
    cfg = experiment_from_dict({"data": {"dataset": "digits"}, "stream": {"n_tasks": 1, "train_per_task": 50},
                                "network": {"hidden": [8]}, "train": {"epochs": 1}})
    result = ContinualRun(cfg, "finetune", 0).execute(progress_bar=False)
    recorded = {**result.config, "data": {k: v for k, v in result.config["data"].items() if k != "test_split_seed"}}
    path = write_continual(tmp_path / "old.h5", replace(result, config=recorded))
    assert read_run(path).config["data"]["test_split_seed"] == 0                # resumes as today's seed-0 split
    from spikecl.continual.experiment import comparable
    from spikecl.continual.report import split_note

    varied = {**recorded, "data": {**recorded["data"], "vary_split": True}}   # each seed drew its own test split
    paths = [write_continual(tmp_path / f"old{seed}.h5", replace(result, seed=seed, config={**varied, "seed": seed}))
             for seed in (0, 1)]
    assert len(comparable([read_run(p) for p in paths])) == 2                  # still seeds of one row, and said so
    assert "DIFFERENT test splits (data.test_split_seed 0: finetune seed 0; 1: finetune seed 1)" in split_note(
        [read_continual(p) for p in paths])


@pytest.mark.parametrize("dataset, per_class", [("digits", 0.2), ("mnist5k", 100)])
def test_a_test_split_can_leave_out_the_test_images_of_earlier_splits(dataset, per_class):
    """data.test_excludes: a test split that shares no image with the test splits settings were once chosen on,
    each class as large as without; the excluded images train; no exclusion leaves every split as it was."""
    from spikecl.data.datasets import _digits_raw, _mnist5k_raw, stratified_split

    y = (_digits_raw if dataset == "digits" else _mnist5k_raw)()[1]
    earlier = set(stratified_split(y, per_class, 0)[1].tolist()) | set(stratified_split(y, per_class, 1000)[1].tolist())
    train, test = stratified_split(y, per_class, 2000, excludes=[0, 1000])
    plain = stratified_split(y, per_class, 2000)
    assert not earlier & set(test.tolist()) and earlier <= set(train.tolist())
    assert sorted([*train, *test]) == list(range(len(y)))
    np.testing.assert_array_equal(np.bincount(y[test]), np.bincount(y[plain[1]]))    # as many per class
    assert len(set(plain[1].tolist()) & earlier) > 0                                   # without it: shared images
    for a, b in zip(stratified_split(y, per_class, 2000, excludes=()), plain):
        np.testing.assert_array_equal(a, b)
    raw = {"data": {"dataset": dataset, "test_split_seed": 2000, "test_excludes": [0, 1000]},
           "stream": {"kind": "split", "scenario": "task", "n_tasks": 1, "classes_per_task": 10}}
    built = build_stream(experiment_from_dict(raw), 0)[0]
    x = (_digits_raw if dataset == "digits" else _mnist5k_raw)()[0]
    np.testing.assert_array_equal(np.sort(built.x_test.reshape(len(test), -1).sum(1)),
                                  np.sort(x[test].reshape(len(test), -1).sum(1)))
    with pytest.raises(DataError, match="class 0 keeps .* fewer than its"):
        stratified_split(y, per_class, 9, excludes=range(8))
    with pytest.raises(ConfigError, match=r"load_dataset: excludes \[3\] holds seed \(3\) itself"):
        load_dataset(dataset, seed=3, excludes=[3])
    from spikecl.continual.report import split_note
    from spikecl.continual.results import ContinualResult

    config = {"data": {"test_split_seed": 2000, "test_excludes": [0, 1000], "vary_split": True}}
    run = ContinualResult("gpm", 0, config, np.zeros((2, 1)), np.zeros(0), np.zeros(0), np.zeros((0, 1)), np.ones(1),
                          {})
    assert "its test images leave out those of the splits of seeds [0, 1000] (data.test_excludes)" in \
        split_note([run])
    plain = replace(run, method="ewc", config={"data": {**config["data"], "test_excludes": []}})
    assert "DIFFERENT test splits (data.test_split_seed 2000 leaving out [0, 1000]: gpm seed 0; 2000: ewc seed 0)" \
        in split_note([run, plain])


def test_test_excludes_is_checked():
    with pytest.raises(ConfigError, match=r"data.test_excludes: mnist's test split is fixed by its source; set it "
                                          r"to \[\]"):
        experiment_from_dict({"data": {"dataset": "mnist", "test_excludes": [0]}})
    with pytest.raises(ConfigError, match=r"data.test_excludes: \[0\] holds data.test_split_seed \(0\) itself"):
        experiment_from_dict({"data": {"dataset": "digits", "test_excludes": [0]}})
    with pytest.raises(ConfigError, match="data.test_excludes"):
        experiment_from_dict({"data": {"dataset": "digits", "test_split_seed": 1, "test_excludes": [0, 0]}})
    from spikecl.recorded import recorded_as_now

    assert recorded_as_now({"data": {"test_split_seed": 5}})["data"]["test_excludes"] == []


def test_test_split_seed_is_refused_where_the_source_fixes_the_split():
    with pytest.raises(ConfigError, match="data.test_split_seed: mnist's test split is fixed by its source"):
        experiment_from_dict({"data": {"dataset": "mnist", "test_split_seed": 5}})
    from spikecl.sdr.experiment import KIND as SPARSEY

    with pytest.raises(ConfigError, match="data.vary_split: each seed varies its validation split"):
        SPARSEY.load({"kind": "sparsey", "data": {"dataset": "digits", "vary_split": True},
                      "coder": {"image_shape": [8, 8]}})


def test_sparsey_experiment_follows_the_protocol_and_reads_no_test_image_on_validation(tmp_path, monkeypatch):
    """The ``sparsey`` kind: evaluation on the validation split reads no test image; every seed may draw its own
    split; the fixed fly-hash and pixel baselines are classified on the same images."""
    import spikecl.data.datasets as datasets
    from spikecl.sdr.experiment import load_config, run_seed

    reads = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: GuardedDataset(real(*a, **k), reads))
    exp = tmp_path / "small.toml"
    exp.write_text('kind = "sparsey"\n[data]\ndataset = "digits"\nvalidation = 0.2\neval_split = "validation"\n'
                   'vary_split = true\n[coder]\nimage_shape = [8, 8]\nthreshold = 0.3\n'
                   '[coder.mac]\nfreeze_fraction = 0.3\n[baseline]\nn_columns = 64\n'
                   '[eval]\nn_pairs = 50\npair_items = 40\ncapacity_points = [20]\nrandom_capacity_points = [10]\n'
                   'cue_items = 10\ncue_levels = [0.0]\nspiking_items = 0\n')
    cfg = load_config(exp)
    first = run_seed(cfg, 0, progress=False)["metrics"]
    assert reads == []
    for key in ("sparsey_acc_knn5", "flyhash_acc_knn5", "pixels_acc_knn5", "pooler_acc_knn5"):
        assert 0.2 < first[key] <= 1.0, key
    other = run_seed(cfg, 1, progress=False)["metrics"]
    assert reads == [] and other["pixels_acc_knn1"] != first["pixels_acc_knn1"]      # another split
    cfg.data.eval_split = "test"
    run_seed(cfg, 0, progress=False)
    assert reads


def test_options_of_methods_not_run_are_checked_as_in_a_run_of_them(tmp_path, monkeypatch):
    """A ``[strategy.<method>]`` table is validated by its method's Options whether or not the method runs (a typo
    in it is not silently kept); a plugin's table once the plugin that registers it is loaded."""
    from pathlib import Path

    from spikecl.continual import strategies
    from spikecl.experiment_kind import load
    from spikecl.plugins import load_plugin

    monkeypatch.setattr(strategies, "REGISTRY", dict(strategies.REGISTRY))
    exp = tmp_path / "exp.toml"

    def load_with(table: str, neurons: str = "[[8, 4]]"):      # in the file: a --set no run reads is refused
        exp.write_text(BASE.replace('methods = ["finetune", "ewc", "hlop", "hlop-fast"]', 'methods = ["finetune"]')
                       .replace("neurons = [[8, 4]]", f"neurons = {neurons}") + table)
        return load(exp)[1]

    assert load_with("[strategy.ewc]\nlam = 1.0\n").strategy.options["ewc"] == {"lam": 1.0}
    for table, message in (("[strategy.ewc]\nlamb = 1.0\n", "unknown key 'strategy.ewc.lamb'; allowed keys: "),
                           ("[strategy.ewc]\nlam = -1\n", "strategy.ewc.lam: -1.0 is below the minimum 0"),
                           ("", "strategy.hlop.neurons"),
                           ("[strategy.l2]\nstrength = 0.5\n", "strategy.l2: options for an unknown method")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_with(table, "[[-1]]" if not table else "[[8, 4]]")
    load_with("")
    with pytest.raises(ConfigError, match=re.escape("overrides=['strategy.ewc.lam=...']: no run of this experiment "
                                                    "uses ewc")):
        load(exp, ["strategy.ewc.lam=1.0"])
    load_plugin(str(Path(__file__).resolve().parents[1] / "examples" / "custom_strategy.py"))
    assert load_with("[strategy.l2]\nstrength = 0.5\n").strategy.options["l2"] == {"strength": 0.5}
    with pytest.raises(ConfigError, match=re.escape("strategy.l2.strength: -1.0 is below the minimum 0")):
        load_with("[strategy.l2]\nstrength = -1\n")


@pytest.mark.parametrize("override, message", [
    ('"strategy.ewc.lamb" = 1.0', "unknown key 'strategy.ewc.lamb'"),
    ('"strategy.ewc.lam" = -1.0', "strategy.ewc.lam: -1.0 is below the minimum 0"),
])
def test_a_variant_not_run_is_checked_as_if_it_ran(tmp_path, override, message):
    """A declared variant's own overrides are validated even when strategy.methods does not list it."""
    from spikecl.experiment_kind import load

    exp = tmp_path / "exp.toml"
    exp.write_text(BASE + f'\n[variants.ewc-strong]\nmethod = "ewc"\n{override}\n')
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(exp, ['strategy.methods=["finetune"]'])


def test_the_selection_line_shows_a_bwt_of_zero_and_leaves_out_an_undefined_one(capsys):
    from spikecl.commands.sweep import print_selection

    choice = {"point": "a", "settings": {}}
    print_selection({"zero": {**choice, "candidates": {"a": {"acc": 50.0, "bwt": 0.0}}},
                     "one-task": {**choice, "candidates": {"a": {"acc": 50.0, "bwt": float("nan")}}}})
    lines = capsys.readouterr().out.splitlines()
    assert "validation ACC 50.0, BWT +0.0," in lines[0] and "BWT" not in lines[1]
    print_selection({"ewc": {"point": None, "settings": None, "candidates": {"a": {}, "b": {}}}})
    assert capsys.readouterr().out.startswith("selected no point of ewc: every one of its 2 candidate(s) failed")


def test_the_selection_line_rounds_a_tie_as_the_sweeps_table_does(capsys):
    """A mean of four validation accuracies, 97.25, held as 97.24999999999999: the selection line printed 97.2 where
    the sweep's comparison table (:func:`spikecl.continual.metrics.points`) printed 97.3 for the same run."""
    from spikecl.commands.sweep import print_selection

    print_selection({"finetune": {"point": "a", "settings": {},
                                  "candidates": {"a": {"acc": 97.24999999999999, "bwt": -0.25000000000000006}}}})
    assert "(validation ACC 97.3, BWT -0.3, 1 candidate(s))" in capsys.readouterr().out


def test_selection_json_is_strict_json_with_an_undefined_bwt_as_null(tmp_path):
    from types import SimpleNamespace

    from spikecl.commands.sweep import write_selection

    sweep = SimpleNamespace(config=SimpleNamespace(select="acc", min_bwt=-3.0), runs=[SimpleNamespace(seed=100)],
                            folder=tmp_path)
    write_selection(sweep, {"one-task": {"point": "a", "settings": {},
                                         "candidates": {"a": {"acc": 50.0, "bwt": float("nan")}}}})
    text = (tmp_path / "selection.json").read_text()
    assert "NaN" not in text and json.loads(text)["methods"]["one-task"]["candidates"]["a"]["bwt"] is None


def test_the_selection_line_says_when_no_candidate_reached_min_bwt(capsys):
    """A choice made among all candidates, none meeting min_bwt, says so; one within the floor does not."""
    candidates = {"a": {"acc": 50.0, "bwt": -9.0}, "b": {"acc": 40.0, "bwt": -8.0}}
    print_selection({"ewc": {"point": "a", "settings": {"strategy.ewc.lam": 1.0}, "candidates": candidates,
                             "bwt_floor_met": False},
                     "si": {"point": "a", "settings": {}, "candidates": candidates, "bwt_floor_met": True}})
    assert capsys.readouterr().out.splitlines() == [
        "selected ewc @ a: strategy.ewc.lam = 1.0 (validation ACC 50.0, BWT -9.0, 2 candidate(s); no candidate "
        "reached min_bwt: the best ACC of all)",
        "selected si @ a: the base settings (validation ACC 50.0, BWT -9.0, 2 candidate(s))"]


def test_selection_json_records_the_rule_and_the_trial_seeds(tmp_path):
    """selection.json keeps select, min_bwt, the trials' seeds (sorted, each once) and the split chosen on."""
    sweep = SimpleNamespace(config=SimpleNamespace(select="acc", min_bwt=-3.0),
                            runs=[SimpleNamespace(seed=s) for s in (4, 3, 4)], folder=tmp_path)
    write_selection(sweep, {})
    assert json.loads((tmp_path / "selection.json").read_text()) == {
        "select": "acc", "min_bwt": -3.0, "select_seeds": [3, 4], "split": "validation", "methods": {}}


@pytest.mark.parametrize("assignment, suggestion", [
    ("strategy.ewc.lamb=1.0", "; did you mean 'lam'?"),
    ('strategy.methods=["hlopp"]', "; did you mean 'hlop'?"),
    ("strategy.ewcc.lam=1.0", "; did you mean 'ewc'?"),
    ('data.dataset="mnsit"', "; did you mean 'mnist'?"),
    ('network.engine="fusd"', "; did you mean 'fused'?"),
    ('kind="continul"', "; did you mean 'continual'?"),
])
def test_a_misspelt_name_is_answered_with_the_closest_choice(tmp_path, assignment, suggestion):
    """A misspelt key, method, dataset, choice or kind ends its one-line error with the closest correct name."""
    from spikecl.experiment_kind import load

    exp = tmp_path / "exp.toml"
    exp.write_text(BASE)
    with pytest.raises(ConfigError) as error:
        load(exp, [assignment])
    assert str(error.value).endswith(suggestion) and "\n" not in str(error.value)


def test_a_name_like_no_choice_gets_no_suggestion():
    """Nothing is suggested where no choice is close, or for a value that is not a name."""
    from spikecl.errors import did_you_mean

    assert did_you_mean("lamb", ["lam", "gamma"]) == "; did you mean 'lam'?"
    assert did_you_mean("zzzz", ["lam", "gamma"]) == "" and did_you_mean(3, ["3"]) == ""


def test_results_recorded_before_the_learning_rate_schedule_read_as_a_constant_rate(tmp_path):
    """A file recorded before train.lr_schedule existed was trained at a constant rate: it reads so, resumes as a run
    of today's defaults and stays a seed of the same row (a missing key would otherwise be a setting that differs)."""
    from spikecl.differences import first_difference
    from spikecl.continual.results import write_continual
    from spikecl.io import read_run
    from spikecl.recorded import recorded_as_now

    assert recorded_as_now({"train": {"lr": 0.1}})["train"] == {"lr": 0.1, "lr_schedule": "constant",
                                                                 "warmup_epochs": 0, "cuda_graph": False}
    assert recorded_as_now({"train": {"lr_schedule": "cosine", "warmup_epochs": 3}})["train"]["warmup_epochs"] == 3
    assert "train" not in recorded_as_now({"coder": {}})                          # other kinds have no such table
    cfg = experiment_from_dict({"data": {"dataset": "digits"}, "stream": {"n_tasks": 1, "train_per_task": 50},
                                "network": {"hidden": [8]}, "train": {"epochs": 1}})
    result = ContinualRun(cfg, "finetune", 0).execute(progress_bar=False)
    old_train = {k: v for k, v in result.config["train"].items()
                 if k not in ("lr_schedule", "warmup_epochs", "cuda_graph")}
    path = write_continual(tmp_path / "old.h5", replace(result, config={**result.config, "train": old_train}))
    assert first_difference(read_run(path).config, result.config) is None


def test_hlop_results_recorded_before_lateral_scale_read_as_run_with_its_default(tmp_path):
    """Results record every option of the method they ran: an HLOP file written before lateral_scale existed (its
    analogue lateral neurons never read it) compares equal to the same run made today, so it resumes."""
    from spikecl.continual.strategies import effective_options
    from spikecl.differences import first_difference
    from spikecl.recorded import recorded_as_now

    today = {"kind": "continual", "method": "hlop", "runs_method": "hlop",
             "strategy": {"methods": ["hlop"], "options": effective_options("hlop", {})}}
    assert today["strategy"]["options"]["hlop"]["lateral_scale"] == 20.0
    old_hlop = {k: v for k, v in today["strategy"]["options"]["hlop"].items() if k != "lateral_scale"}
    old = {**today, "strategy": {**today["strategy"], "options": {"hlop": old_hlop}}}
    assert first_difference(recorded_as_now(old), today) is None
    assert recorded_as_now(old)["strategy"]["options"]["hlop"]["lateral_scale"] == 20.0


def test_recorded_configs_read_as_the_run_they_were(tmp_path):
    """Files made before today's refusals compare equal to the same run made now: a split stream that left classes
    out has the classes per task it trained (so it exports, deploys and resumes), an option the run did not read is
    its default (so a config fixed to leave it out resumes the file), and another kind's [train] table is its own."""
    from spikecl.export.samples import trained_stream
    from spikecl.recorded import recorded_as_now
    from spikecl.sdr.experiment import SparseyExperimentConfig  # noqa: F401  (registers the sparsey kind's rules)

    old = {"kind": "continual", "data": {"dataset": "digits", "test_split_seed": 0},
           "stream": {"kind": "split", "scenario": "task", "n_tasks": 3, "classes_per_task": 0},
           "train": {"eval_every": 0, "eval_samples": 20, "optimizer": "adam", "momentum": 0.5}}
    now = recorded_as_now(old)
    assert now["stream"]["classes_per_task"] == 3 and now["train"]["eval_samples"] == 200
    assert now["train"]["momentum"] == 0.9                                       # Adam reads no momentum
    assert [t.classes for t in trained_stream(old)] == [(0, 1, 2), (0, 1, 2), (0, 1, 2)]
    even = {**old, "stream": {**old["stream"], "n_tasks": 5}, "train": {"eval_every": 10, "eval_samples": 20}}
    assert recorded_as_now(even)["stream"]["classes_per_task"] == 0 and recorded_as_now(even)["train"][
        "eval_samples"] == 20
    assert recorded_as_now({"kind": "mine", "train": {"steps": 3}}) == {"kind": "mine", "train": {"steps": 3}}
    sparsey = {"kind": "sparsey", "coder": {"layout": "whole", "grid": [3, 3], "patch": [4, 4], "n_macs": 1,
                                            "ensemble": "shifted"}, "eval": {"sequences": 0, "sequence_cms": 4}}
    coder, ev = recorded_as_now(sparsey)["coder"], recorded_as_now(sparsey)["eval"]
    assert (coder["grid"], coder["patch"], coder["ensemble"], ev["sequence_cms"]) == ([4, 4], [10, 10], "same", 32)


def test_a_trial_that_diverged_is_an_outcome_kept_not_trained_again(sweep_files, tmp_path, capsys):
    """EWC at λ = 1e38 diverges: the sweep records it beside its results path, so a second sweep (e.g. resuming
    the final runs) counts it as failed without training it, and --dry-run shows it and the selection made."""
    pytest.importorskip("ray")
    from spikecl.cli import main

    two_methods = BASE.replace('methods = ["finetune", "ewc", "hlop", "hlop-fast"]', 'methods = ["finetune", "ewc"]')
    path = sweep_files(two_methods, SWEEP.replace("seeds = [0, 1]", "seeds = [0]").replace("100.0", "1e38"))
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--set", "max_retries=0"]) == 0
    out = capsys.readouterr().out
    assert "FAILED ewc.lam=1e+38" in out and "selected ewc @ ewc.lam=1.0" in out
    root = tmp_path / "results" / "chosen"
    records = list(root.glob("*/ewc-seed3.h5.diverged"))
    assert len(records) == 1 and "NumericalError" in json.loads(records[0].read_text())["error"]
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--set", "max_retries=0"]) == 0
    again = capsys.readouterr().out
    assert "0 to run, 1 diverged with these settings before (not trained again)" in again
    assert "after 1 attempt(s)" not in again and "1 attempt(s); last error: NumericalError" in again    # listed
    assert main(["sweep", str(path), "--dry-run", "--set", "max_retries=0"]) == 0
    dry = capsys.readouterr().out
    assert re.search(r"^diverged  ewc\.lam=1e\+38\S*/ewc-seed3 ", dry, re.M) and "selected ewc @ ewc.lam=1.0" in dry
    # --overwrite with points that all diverge: ewc has no point, so its old final run (marked with the trials) is
    # removed rather than left marked for a replacement no run makes; finetune's final runs again
    assert main(["sweep", str(path), "--no-progress", "--no-plots", "--set", "max_retries=0", "--overwrite", "--set",
                 'points=[{"strategy.ewc.lam" = 1e38}, {"strategy.ewc.lam" = 3e38}]']) == 1
    out = capsys.readouterr().out
    assert "selected no point of ewc: every one of its 2 candidate(s) failed a validation trial" in out
    assert "final/ewc-seed0.h5: made with other settings, and its method has no chosen point now" in out
    final = root / "final"
    assert sorted(p.name for p in final.iterdir() if p.name.endswith((".h5", ".replacing"))) == \
        ["finetune-seed0.h5", "sweep.h5"]


@pytest.mark.parametrize("key, value", [("data.test_split_seed", 5), ("data.validation", 0.3),
                                        ("data.vary_split", True), ("stream.test_per_task", 20),
                                        ("data.test_excludes", [7])])
def test_a_selecting_sweep_may_not_vary_the_splits_it_compares_on(sweep_files, key, value):
    """A point with its own test split, validation split or evaluation subsample would be chosen on other images,
    or choose the test split itself."""
    from spikecl.continual.sweep import load_sweep

    sweep = SWEEP.replace('"variants.hlop-fast.train.lr" = 0.2}}', f'"variants.hlop-fast.train.lr" = 0.2, '
                                                                  f'"{key}" = {json.dumps(value)}}}}}')
    with pytest.raises(ConfigError, match=f"^sweep: points.{key}: a selecting sweep compares its points on one "
                                          "validation split"):
        load_sweep(sweep_files(BASE, sweep))
    load_sweep(sweep_files(BASE, sweep.replace('select = "acc"\nselect_seeds = [3]\n', "")))   # no selection: fine


def test_a_selecting_sweep_refuses_eval_split_and_variants_that_move_its_splits(sweep_files):
    """data.eval_split is the selecting sweep's own (a plain sweep may set it); a variant that evaluates on the test
    split, or whose validation split differs between points, would choose on other images."""
    from spikecl.continual.sweep import load_sweep

    with pytest.raises(ConfigError, match="^sweep: set.data.eval_split: a selecting sweep sets it itself"):
        load_sweep(sweep_files(BASE, SWEEP + '[set]\n"data.eval_split" = "validation"\n'))
    plain = SWEEP.replace('select = "acc"\nselect_seeds = [3]\n', "") + '[set]\n"data.eval_split" = "validation"\n'
    assert {r.raw["data"]["eval_split"] for r in load_sweep(sweep_files(BASE, plain)).runs} == {"validation"}
    variant = BASE + '"data.eval_split" = "test"\n'                   # into BASE's last table, [variants.hlop-fast]
    with pytest.raises(ConfigError, match="^sweep: hlop-fast sets data.eval_split = 'test' \\(its variant\\)"):
        load_sweep(sweep_files(variant, SWEEP))
    moving = SWEEP.replace('"variants.hlop-fast.train.lr" = 0.2}}', '"variants.hlop-fast.train.lr" = 0.2, '
                                                                   '"variants.hlop-fast.data.validation" = 0.3}}')
    with pytest.raises(ConfigError, match="^sweep: hlop-fast's points differ in the images they are evaluated on"):
        load_sweep(sweep_files(BASE, moving))


def test_selection_averages_every_trial_seed_and_says_when_no_point_met_the_bwt_floor(sweep_files):
    text = SWEEP.replace("select_seeds = [3]", "select_seeds = [3, 4]") + "min_bwt = 5.0\n"
    sweep = load_sweep(sweep_files(BASE, text))
    scores = {("lam=1.0", 3): 0.80, ("lam=1.0", 4): 0.40, ("lam=100.0", 3): 0.70, ("lam=100.0", 4): 0.70}
    fake = {}
    for run in sweep.runs:
        lam = "lam=1.0" if "lam=1.0_" in run.point else "lam=100.0"
        fake[run.id] = type("R", (), {"metrics": {"acc": scores[lam, run.seed], "bwt": -0.01}})()
    chosen = select_points(sweep, fake)
    ewc = chosen["ewc"]
    assert ewc["candidates"][next(k for k in ewc["candidates"] if "lam=1.0_" in k)]["acc"] == pytest.approx(60)
    assert ewc["point"].startswith("ewc.lam=100.0")            # mean 70 over both seeds beats mean 60
    assert ewc["candidates"][ewc["point"]]["seeds"] == 2
    assert ewc["bwt_floor_met"] is False                        # BWT -1 point < min_bwt 5: the best ACC of all


def test_a_sweep_refuses_points_of_one_folder_and_a_set_key_its_grid_varies(sweep_files):
    head = 'base = "base.toml"\nname = "s"\noutput_dir = "{out}"\nmethods = ["finetune"]\n'
    with pytest.raises(ConfigError, match="two points share the folder name 'lr=0.1'"):
        load_sweep(sweep_files(BASE, head + 'points = [{{"train.lr" = 0.1}}, {{"train.lr" = 0.1}}]\n'))
    with pytest.raises(ConfigError, match="set.train.lr: the grid or points vary this key"):
        load_sweep(sweep_files(BASE, head + '[set]\n"train.lr" = 0.3\n[grid]\n"train.lr" = [0.1, 0.2]\n'))
