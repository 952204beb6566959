"""Edge cases of the sparsey kind's reports: runs that are not seeds of one experiment, a seed held twice, results
missing metrics their config asks for, damaged attributes, too few evaluation items, non-binary codes and the k-NN
majority for large k."""

import contextlib
import io
import json
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from hdf5_files import edited, unseal

from spikecl.cli import main
from spikecl.errors import ConfigError, ResultsError, ShapeError
from spikecl.experiment_kind import Job, kept, load
from spikecl.io import read_run
from spikecl.sdr.experiment import KIND
from spikecl.sdr.measures import Coded, cue_curves, similarity
from spikecl.sdr.readout import NO_ANSWER, ClassVotes, knn_predict, pair_overlaps
from test_sdr_edges import DIGITS, TINY, one_line


@pytest.fixture(scope="module")
def seed0(tmp_path_factory):
    """models/sparsey_digits.toml on 200 stored items, seed 0 (eval.sequences = 2, 0.5 in eval.cue_levels): the
    results file."""
    out_dir = tmp_path_factory.mktemp("sparsey_edges")
    args = ["run", str(DIGITS), "--no-progress", "--no-plots", "--output-dir", str(out_dir)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, *[a for kv in TINY for a in ("--set", kv)]]) == 0
    return out_dir / "sparsey-digits" / "sparsey_seed0.h5"


def copy(src, dst, seed=None, config=None, drop=(), attrs=None):
    """``src`` copied to ``dst`` with its seed attribute, config entries (``{"dotted.key": value}``) and root
    ``attrs`` replaced and the metrics ``drop`` removed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    with edited(dst) as f:
        unseal(f)
        f.attrs.update({**({} if seed is None else {"seed": seed}), **(attrs or {})})
        recorded = json.loads(f["config"].attrs["json"])
        for key, value in (config or {}).items():
            *tables, name = key.split(".")
            node = recorded
            for table in tables:
                node = node[table]
            node[name] = value
        f["config"].attrs["json"] = json.dumps(recorded)
        for name in drop:
            del f["metrics"].attrs[name]
    return dst


def report(capsys, *args) -> tuple[int, str, str]:
    code = main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


# 1. runs made with other settings are not seeds ---------------------------------------------------------------
@pytest.mark.parametrize("key, value", [("coder.n_macs", 1), ("data.dataset", "mnist5k"), ("eval.n_pairs", 200),
                                        ("recall_ties", "the lowest index wins")])   # scored otherwise: not a seed
def test_runs_made_with_other_settings_are_not_averaged_as_seeds(seed0, tmp_path, capsys, key, value):
    other = copy(seed0, tmp_path / "b" / "sparsey_seed1.h5", seed=1, config={key: value})
    with pytest.raises(ResultsError, match=rf"hold sparsey runs made with different settings \({key} differs\)") \
            as info:
        KIND.summarize([read_run(seed0), read_run(other)])
    one_line(info)
    code, out, err = report(capsys, seed0.parent, tmp_path / "b", "--no-plots")
    assert code == 2 and f"({key} differs)" in err and "\n" not in err and "mean ± std" not in out
    same = copy(seed0, tmp_path / "c" / "sparsey_seed1.h5", seed=1, config={"name": "b", "output_dir": "b"})
    assert "mean ± std over 2 seeds (0, 1)" in KIND.summarize([read_run(seed0), read_run(same)])
    split = copy(seed0, tmp_path / "d" / "sparsey_seed1.h5", seed=1, config={"data.test_split_seed": 1})
    assert "DIFFERENT test splits (data.test_split_seed 0: seed 0; 1: seed 1)" in KIND.summarize(
        [read_run(seed0), read_run(split)])                 # seeds that drew their own test split, said so


# 2. one seed twice: refused before any plot -------------------------------------------------------------------
def test_a_seed_held_twice_is_refused_before_any_plot_is_written(seed0, tmp_path, capsys):
    twin = copy(seed0, tmp_path / "b" / "sparsey_seed0.h5")
    plots = tmp_path / "plots"
    code, out, err = report(capsys, seed0.parent, tmp_path / "b", "--plots", plots)
    assert code == 2 and "\n" not in err
    assert f"{twin} and {seed0} both hold sparsey seed 0" in err and "mean ± std" not in out
    with pytest.raises(ResultsError, match="both hold sparsey seed 0"):
        KIND.plot([read_run(seed0), read_run(twin)], plots)                   # plot guards itself
    assert not list(plots.glob("*.png"))


# 3. metrics the recorded config asks for ----------------------------------------------------------------------
@pytest.mark.parametrize("config, drop, missing", [
    ({}, ["sequence_recall_sparsey"], "sequence_recall_sparsey' for its config's eval.sequences = 2"),
    ({"eval.spiking_items": 5}, [], "spiking_learn_match' for its config's eval.spiking_items = 5"),
    ({}, ["cue_half_removed_pooler"], "cue_half_removed_pooler' for its config's eval.cue_levels = [0.0, 0.5]")])
def test_results_without_the_metrics_their_config_asks_for_are_incomplete(seed0, tmp_path, capsys, config, drop,
                                                                          missing):
    bad = copy(seed0, tmp_path / "bad" / "sparsey_seed0.h5", config=config, drop=drop)
    with pytest.raises(ResultsError, match=re.escape(f"corrupt or incomplete (no metric '{missing} in a")) as info:
        KIND.check(read_run(bad))
    one_line(info)
    assert kept(Job(seed0, lambda options: None), "sparsey") and not kept(Job(bad, lambda options: None), "sparsey")
    copy(seed0, bad.parent / "sparsey_seed1.h5", seed=1)
    code, out, err = report(capsys, bad.parent, "--no-plots")                     # in a folder: skipped, named
    assert code == 2 and f"skipped: {bad} is corrupt or incomplete (no metric '{missing}" in out
    assert report(capsys, bad, "--no-plots")[0] == 2


@pytest.mark.parametrize("value, message", [
    (1.7, "metric 'sparsey_acc_knn1' is 1.7, not a fraction in 0..1"),
    (float("nan"), "metric 'sparsey_acc_knn1' is nan, not a fraction in 0..1"),
    (None, "no metric 'sparsey_acc_knn1'")])
def test_a_fraction_out_of_range_or_a_metric_the_table_reads_missing_is_refused(seed0, tmp_path, value, message):
    """A sparsey file printed 170 % or nan as an accuracy, and a missing one as a KeyError."""
    bad = copy(seed0, tmp_path / "sparsey_seed0.h5", drop=["sparsey_acc_knn1"])
    if value is not None:
        with edited(bad) as f:
            f["metrics"].attrs["sparsey_acc_knn1"] = value
    with pytest.raises(ResultsError, match=re.escape(f"corrupt or incomplete ({message} in a sparsey results file)")):
        KIND.check(read_run(bad))


def test_resume_runs_a_seed_missing_its_sequence_recall_again(seed0, tmp_path):
    bad = copy(seed0, tmp_path / "sparsey-digits" / "sparsey_seed0.h5", drop=["sequence_recall_sparsey"])
    printed = io.StringIO()
    args = ["run", str(DIGITS), "--no-progress", "--no-plots", "--output-dir", str(tmp_path), "--resume"]
    with contextlib.redirect_stdout(printed):
        assert main([*args, *[a for kv in TINY for a in ("--set", kv)]]) == 0
    assert "complete, kept" not in printed.getvalue()
    assert "sequence frames recalled from the first two" in printed.getvalue()
    assert "sequence_recall_sparsey" in read_run(bad).metrics


def test_resume_keeps_a_run_whose_unread_level_two_table_is_not_the_default(seed0):
    """models/sparsey_mnist5k.toml's [coder.top] with two_level = false: the file records the table as the run read
    it (defaults), the job as written; --resume compares both as read, so the run just written is kept."""
    with h5py.File(seed0, "r") as f:
        planned = json.loads(f["config"].attrs["json"])
    planned["coder"]["top"]["freeze_fraction"] = 0.3
    assert planned["coder"]["two_level"] is False
    assert kept(Job(seed0, lambda options: None, planned, identity={"seed": 0}), "sparsey")
    planned["coder"]["two_level"] = True
    with pytest.raises(ConfigError, match=r"coder\.(two_level|top\.freeze_fraction) differs"):
        kept(Job(seed0, lambda options: None, planned, identity={"seed": 0}), "sparsey")


# 4. damaged attributes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("attrs, message", [
    ({"seed": "abc"}, "attribute 'seed' must be an integer >= 0, got 'abc'"),
    ({"seed": -3}, "attribute 'seed' must be an integer >= 0, got -3"),
    ({"seed": 1.5}, "attribute 'seed' must be an integer >= 0, got 1.5"),
    ({"n_train": 0}, "attribute 'n_train' must be an integer >= 1, got 0"),
    ({"eval_split": "train"}, "attribute 'eval_split' is 'train', not 'test' or 'validation'")])
def test_damaged_attributes_are_one_line_errors_or_skipped_in_a_folder(seed0, tmp_path, capsys, attrs, message):
    bad = copy(seed0, tmp_path / "bad" / "sparsey_seed0.h5", attrs=attrs)
    plots = tmp_path / "plots"
    code, _, err = report(capsys, bad, "--plots", plots)
    assert code == 2 and "\n" not in err and message in err
    assert not list(plots.glob("*.png")) and not list(bad.parent.glob("*.png"))
    copy(seed0, bad.parent / "sparsey_seed1.h5", seed=1)
    code, out, _ = report(capsys, bad.parent, "--no-plots")
    assert code == 2 and f"skipped: {bad}" in out and message in out


# 5. too few evaluation items ----------------------------------------------------------------------------------
def test_fewer_than_three_test_items_are_refused_when_the_config_loads():
    """Two items make one pair, whose rank correlation is undefined (every coder's Spearman was NaN)."""
    with pytest.raises(ConfigError, match="^eval.test_items: 2 evaluation items, but the code-vs-input overlap "
                                          "pairs need at least 3") as info:
        load(DIGITS, ["eval.test_items=2"])
    one_line(info)
    with pytest.raises(ConfigError, match="^eval.pair_items: 2 is below the minimum 3"):
        load(DIGITS, ["eval.pair_items=2"])
    assert load(DIGITS, ["eval.test_items=3"])[1].eval.test_items == 3


def test_a_threshold_that_blanks_every_image_is_refused_before_any_learning(tmp_path, capsys):
    """``coder.threshold = 1`` (its allowed maximum) binarises every [0, 1] image blank: every coder then measured
    nothing and the run finished with NaN correlations."""
    args = ["run", str(DIGITS), "--no-progress", "--no-plots", "--output-dir", str(tmp_path), "--set",
            "coder.threshold=1.0", *[a for o in TINY for a in ("--set", o)]]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "coder.threshold: 1 leaves every training image of digits blank" in err and "\n" not in err.strip()
    assert not list(tmp_path.rglob("*.h5"))
    assert load(DIGITS, ["eval.test_items=0"])[1].eval.test_items == 0             # 0 = all


# 6. readouts of codes that are not binary ---------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: knn_predict(np.full((3, 3), np.nan), np.array([0, 1, 2]), np.eye(3), 1),
     "train_codes must be binary .* with NaN or infinite values"),
    (lambda: knn_predict(np.eye(3), np.array([0, 1, 2]), np.full((3, 3), np.inf), 1),
     "test_codes must be binary .* with NaN or infinite values"),
    (lambda: ClassVotes(3, 3).add(np.full((3, 3), 0.5), np.array([0, 1, 2])),
     r"codes must be binary \(bool or 0/1\), got dtype float64 with values in \[0.5, 0.5\]"),
    (lambda: ClassVotes(3, 3).predict(np.array([["a", "b", "c"]])), "codes must be binary")])
def test_readouts_refuse_codes_that_are_not_binary(call, message):
    with pytest.raises(ShapeError, match=message) as info:
        call()
    one_line(info)
    assert knn_predict(np.eye(3), np.array([0, 1, 2]), np.eye(3).astype(np.int8), 1).tolist() == [0, 1, 2]


@pytest.mark.parametrize("alpha", [0, -0.5, float("nan"), float("inf"), "0.1"])
def test_the_bayes_readout_refuses_a_smoothing_that_is_not_positive(alpha):
    votes = ClassVotes(4, 2)
    votes.add(np.array([[1, 0, 1, 0], [0, 1, 0, 1]]), np.array([0, 1]))
    with pytest.raises(ConfigError, match="alpha must be a finite number > 0") as info:
        votes.log_likelihood(np.array([[1, 0, 1, 0]]), alpha=alpha)
    one_line(info)
    scores = votes.log_likelihood(np.array([[1, 0, 1, 0]]), alpha=np.float32(0.1))
    assert np.isfinite(scores).all() and scores[0, 0] > scores[0, 1]


# 7. k-NN: the majority first, nearness only breaks ties ---------------------------------------------------------
def nearer_minority(n_near, n_far):
    """Codes [n_near + n_far, 4]: ``n_near`` of class 1 overlapping the query [1, 1, 0, 0] in two bits, then
    ``n_far`` of class 0 overlapping it in one; labels and the query."""
    train = np.zeros((n_near + n_far, 4), bool)
    train[:, 0], train[:n_near, 1] = True, True
    return train, np.array([1] * n_near + [0] * n_far), np.array([[1, 1, 0, 0]], bool)


@pytest.mark.parametrize("k", [300, 3000])
def test_knn_nearness_never_outweighs_a_vote(k):
    train, y, query = nearer_minority(k // 2 - 5, k // 2 + 5)                    # 145 near of class 1, 155 far
    assert knn_predict(train, y, query, k, cosine=False).tolist() == [0]
    train, y, query = nearer_minority(k // 2, k // 2)                            # a tie: the nearer class wins
    assert knn_predict(train, y, query, k, cosine=False).tolist() == [1]
    assert knn_predict(train, 1 - y, query, k, cosine=False).tolist() == [0]


def test_knn_a_tie_in_votes_goes_to_the_nearer_class():
    train = np.eye(5, dtype=bool)[[0, 0, 0, 0, 0]] | np.eye(5, dtype=bool)[[0, 1, 2, 3, 4]]
    query = np.array([[1, 1, 1, 0, 0]], bool)          # overlaps 1, 2, 2, 1, 1: nearness ranks 2, 0, 1, 3, 4
    assert knn_predict(train, np.array([0, 1, 1, 0, 2]), query, 4, cosine=False).tolist() == [1]  # ranks {0, 1}
    assert knn_predict(train, np.array([1, 0, 0, 1, 2]), query, 4, cosine=False).tolist() == [0]  # vs {2, 3}
    assert knn_predict(train, np.array([0, 1, 1, 1, 0]), query, 5, cosine=False).tolist() == [1]  # 3 votes to 2


def test_a_level_two_table_a_one_level_run_did_not_read_compares_as_its_default():
    """models/sparsey_mnist5k.toml keeps [coder.top] for --set coder.two_level=true; a one-level run never reads it,
    so a run recorded with other top settings resumes and reports as the same run (a two-level run's differs)."""
    import dataclasses

    from spikecl.recorded import recorded_as_now
    from spikecl.sdr.experiment import SparseyExperimentConfig
    from spikecl.sdr.sparsey import MacConfig

    base = dataclasses.asdict(SparseyExperimentConfig())
    other = json.loads(json.dumps(base))
    other["coder"]["top"]["freeze_fraction"], other["coder"]["top"]["n_cms"] = 0.3, 5
    assert base["coder"]["two_level"] is False and other["coder"]["top"] != base["coder"]["top"]
    assert recorded_as_now(other) == recorded_as_now(base)
    assert recorded_as_now(other)["coder"]["top"] == dataclasses.asdict(MacConfig(n_cms=24, cells_per_cm=8))
    for config in (base, other):
        config["coder"]["two_level"] = True
    assert recorded_as_now(other) != recorded_as_now(base)


@pytest.mark.parametrize("make, message", [
    (lambda m: m.store(np.full((3, 6), np.nan)), r"^codes must be binary \(bool or 0/1\), got dtype float64 with NaN"),
    (lambda m: m.store(np.full((3, 6), 0.3)), r"^codes must be binary .* with values in \[0.3, 0.3\]$"),
    (lambda m: m.store(np.zeros((0, 6))), r"^codes must be codes \[T, 6\] with T >= 1, got shape \(0, 6\)$"),
    (lambda m: m.recall(np.eye(6)[:3], -1), r"^recall length must be an integer >= 1, got -1$"),
    (lambda m: m.recall(np.eye(6)[:3], 2.5), r"^recall length must be an integer >= 1, got 2.5$"),
    (lambda m: m.recall(np.eye(6)[:3], 2), r"^recall length 2 is shorter than the cue \(3 frames\)$"),
    (lambda m: type(m)(5, 8), r"^k must be an integer \[1, 5\], got 8$"),
    (lambda m: type(m)(5, 0), r"^k must be an integer \[1, 5\], got 0$"),
    (lambda m: type(m)(-5, 3), r"^n_bits must be an integer >= 1, got -5$")])
def test_the_successor_memory_refuses_bad_input_in_one_line(make, message):
    from spikecl.sdr.baselines import SuccessorMemory

    memory = SuccessorMemory(6, 2)
    with pytest.raises((ConfigError, ShapeError), match=message):
        make(memory)
    assert not memory.w.any()                                   # nothing stored on the way


def test_the_successor_memory_recalls_a_stored_sequence():
    from spikecl.sdr.baselines import SuccessorMemory

    codes = np.zeros((4, 8), bool)
    for t, bits in enumerate([(0, 1), (2, 3), (4, 5), (6, 7)]):
        codes[t, list(bits)] = True
    memory = SuccessorMemory(8, 2)
    memory.store(codes.astype(np.float32))                      # 0/1 floats are codes too
    np.testing.assert_array_equal(memory.recall(codes[:1], 4), codes)


def test_a_mac_allowed_no_active_input_is_refused():
    from spikecl.sdr.sparsey import MacConfig, SparseyCoder, SparseyConfig

    with pytest.raises(ConfigError, match=r"^max_active_frac 0 leaves every mac silent"):
        MacConfig(max_active_frac=0.0)
    with pytest.raises(ConfigError, match=r"^max_active_frac 0.01 leaves every mac silent: one active afferent of a "
                                          r"mac's 16 is already 0.0625 of them; give at least that$"):
        SparseyCoder(SparseyConfig(image_shape=[4, 4], mac=MacConfig(max_active_frac=0.01)))
    coder = SparseyCoder(SparseyConfig(image_shape=[4, 4], mac=MacConfig(max_active_frac=1 / 16)))
    assert coder.learn(np.eye(16)[0])[0].sum() > 0                    # one active pixel of 16: the mac codes it


def test_a_level_2_gate_above_what_level_1_codes_can_reach_is_refused():
    """Level-2 macs read level-1 codes, at most 1 active cell in K: a min_active_frac above 1/K left level 2 silent
    (no bit, G 0) without a word. 1/K itself is reached where every level-1 mac of a field codes."""
    from spikecl.sdr.sparsey import MacConfig, SparseyCoder, SparseyConfig

    def config(low):
        return SparseyConfig(image_shape=[12, 12], layout="grid", grid=[2, 2], patch=[6, 6], two_level=True,
                             mac=MacConfig(n_cms=8, cells_per_cm=12), top=MacConfig(n_cms=8, cells_per_cm=8,
                                                                                     min_active_frac=low))
    with pytest.raises(ConfigError, match=r"^top.min_active_frac 0.1 leaves every level-2 mac silent: its inputs "
                                          r"are level-1 codes, of which at most 1 cell in 12 \(mac.cells_per_cm\) is "
                                          r"active; give at most 0.08333$"):
        config(0.1)
    coder = SparseyCoder(config(1 / 12))
    images = np.random.default_rng(0).random((5, 144)) < 0.5
    level1_bits = 4 * 8 * 12                                          # a 2 x 2 grid of macs, Q x K cells each
    assert all(coder.learn(x)[0][level1_bits:].sum() == 8 for x in images)    # level 2 codes: Q = 8 bits


def test_spiking_sparsey_encodes_one_item_as_the_coder_does_and_needs_a_coder():
    from spikecl.sdr.sparsey import SparseyCoder, SparseyConfig
    from spikecl.sdr.spiking import SpikingSparsey

    coder = SparseyCoder(SparseyConfig(image_shape=[4, 4]))
    items = (np.random.default_rng(0).random((3, 16)) > 0.5).astype(np.float32)
    coder.learn_all(items)
    spiking = SpikingSparsey(coder)
    assert spiking.encode(items[0]).shape == coder.encode(items[0])[0].shape == (coder.n_code_bits,)
    np.testing.assert_array_equal(spiking.encode(items[0]), coder.encode(items[0])[0])
    with pytest.raises(ConfigError, match=r"^SpikingSparsey wraps a SparseyCoder, got NoneType$"):
        SpikingSparsey(None)


def test_kwta_and_the_pooler_refuse_what_has_no_winners():
    from spikecl.data.codes import kwta
    from spikecl.sdr.baselines import SpatialPooler, SpatialPoolerConfig

    with pytest.raises(ShapeError, match=r"^kwta: the values hold NaN"):
        kwta(np.full((1, 4), np.nan), 2)
    assert kwta(np.array([[1.0, np.inf, 0.0]]), 1).tolist() == [[False, True, False]]
    for n in (0, -3, 2.5):
        with pytest.raises(ConfigError, match=rf"^n_inputs must be an integer >= 1, got {n}$"):
            SpatialPooler(SpatialPoolerConfig(n_columns=8), n)


def test_class_votes_are_normalised_by_the_items_of_each_class():
    # class 0 has 10 items, 5 of them with bit 0; class 1 one item with bit 0. Per class that is 0.5 vs 1.0,
    # so a code with bit 0 goes to class 1 (raw counts, 5 vs 1, would pick the larger class 0).
    votes = ClassVotes(2, 2)
    codes = np.zeros((11, 2), bool)
    codes[:5, 0] = True
    codes[5:10, 1] = True
    codes[10, 0] = True
    votes.add(codes, np.array([0] * 10 + [1]))
    assert np.allclose(votes.scores(np.array([[1, 0]])), [[0.5, 1.0]])
    assert votes.predict(np.array([[1, 0]])).tolist() == [1]


def test_the_bayes_readout_counts_the_inactive_bits_too():
    # class 0's two items have bit 0 on, class 1's two have it off; a code with bit 0 off is class 1 under
    # Σ_i [x_i log p + (1 - x_i) log(1 - p)] (without the inactive term every class would score 0)
    votes = ClassVotes(1, 2)
    votes.add(np.array([[1], [1], [0], [0]]), np.array([0, 0, 1, 1]))
    ll = votes.log_likelihood(np.array([[0]]), alpha=0.1)
    assert np.allclose(ll, [[np.log(0.1 / 2.2), np.log(2.1 / 2.2)]])
    assert votes.predict(np.array([[0]]), "bayes").tolist() == [1]


def test_pair_overlaps_never_pairs_an_item_with_itself():
    # "random distinct item pairs"
    i, j = pair_overlaps(np.zeros((2, 3)), 200, seed=3)
    assert (i != j).all()


def test_random_like_keeps_the_density_of_its_model():
    # patterns with the mean density of x (0.1 here), not its complement
    from spikecl.sdr.measures import random_like

    x = np.zeros((10, 100), bool)
    x[:, :10] = True
    assert abs(random_like(x, 200, seed=0).mean() - 0.1) < 0.02


def test_classify_reads_1nn_learned_from_the_codes_given_at_learning_time():
    # acc_knn1_learned uses the learning-time codes, acc_knn1 the recognition codes of the training items
    from spikecl.sdr.measures import Coded, classify

    eye = np.eye(4, dtype=bool)
    coded = Coded(learned=eye, train=eye[::-1], test=eye, learn_seconds=0.0)
    acc = classify(coded, np.arange(4), np.arange(4), 1, 4)
    assert acc["acc_knn1_learned"] == 1.0 and acc["acc_knn1"] == 0.0


def test_the_spatial_pooler_raises_active_and_lowers_inactive_permanences_and_tracks_its_duty_cycle():
    from spikecl.sdr.baselines import SpatialPooler, SpatialPoolerConfig

    cfg = SpatialPoolerConfig(n_columns=20, sparsity=0.1, potential_frac=1.0, perm_inc=0.05, perm_dec=0.01,
                              duty_period=10)
    pooler = SpatialPooler(cfg, 8)
    x = np.array([[1, 1, 1, 1, 0, 0, 0, 0]], np.float32)
    before = pooler.perm.copy()
    code = pooler.learn(x)[0]
    win = np.flatnonzero(code)
    delta = pooler.perm[:, win] - before[:, win]
    inside = (before[:, win] > 0.05) & (before[:, win] < 0.95)             # away from the clip at 0 and 1
    # winners' active inputs +perm_inc, inactive ones -perm_dec
    assert np.allclose(delta[:4][inside[:4]], 0.05) and np.allclose(delta[4:][inside[4:]], -0.01)
    # the duty cycle moves towards the code: winners up, the rest down, by 1/duty_period of the gap
    assert np.allclose(pooler.duty[win], 0.1 + 0.9 / 10) and np.allclose(np.delete(pooler.duty, win), 0.1 - 0.01)


def test_capacity_is_measured_only_over_items_some_unfrozen_mac_learned(monkeypatch):
    # an item whose active macs were all frozen stored nothing; it must not enter recall_measures (as an
    # empty stored code it would count as exactly recalled)
    from spikecl.data.datasets import load_dataset
    from spikecl.sdr import SparseyConfig, measures

    base = load(Path(__file__).parents[1] / "models" / "sparsey_digits.toml")[1].coder
    coder = SparseyConfig.from_mapping({**asdict(base), "two_level": False,
                                        "mac": {**asdict(base.mac), "freeze_fraction": 0.2}})
    x = load_dataset("digits").x_train.reshape(-1, 64)[:300] > coder.threshold
    seen = []
    real = measures.recall_measures

    def spy(stored, recalled, **kw):
        seen.append(stored)
        return real(stored, recalled, **kw)

    monkeypatch.setattr(measures, "recall_measures", spy)
    curve = measures.capacity_curve(coder, x, [300])
    assert curve["learning"][0] < 0.9 and len(seen) == 1
    assert seen[0].any(axis=1).all()


def test_recalling_a_sequence_leaves_the_coder_outside_any_sequence():
    # recall_sequence puts back the sequence state it found: afterwards a new sequence can be learned
    # (left "inside a sequence", learn_sequence would refuse, and learn() would link unrelated frames)
    from spikecl.data.datasets import load_dataset
    from spikecl.sdr import SparseyCoder, SparseyConfig

    base = load(Path(__file__).parents[1] / "models" / "sparsey_digits.toml")[1].coder
    coder = SparseyCoder(SparseyConfig.from_mapping({**asdict(base), "mac": {**asdict(base.mac), "sequences": True}}))
    x = load_dataset("digits").x_train.reshape(-1, 64)[:6] > base.threshold
    coder.learn_sequence(x[:3])
    coder.recall_sequence(x[:2], 3)
    assert coder.learn_sequence(x[3:]).shape[0] == 3


def test_familiarity_is_the_mean_over_the_active_macs_only():
    """An item seen before is fully familiar (G = 1) even where part of the image is blank and leaves the macs
    over it inactive: G averages over the active macs, not all of them."""
    from spikecl.data.datasets import load_dataset
    from spikecl.sdr import SparseyCoder, SparseyConfig

    base = load(Path(__file__).parents[1] / "models" / "sparsey_digits.toml")[1].coder
    coder = SparseyCoder(SparseyConfig.from_mapping({**asdict(base), "two_level": False}))
    x = load_dataset("digits").x_train.reshape(-1, 64)[:1].copy()
    x[:, :32] = 0                                          # the top half of the image blank
    x = x > base.threshold
    assert coder.learn(x[0])[1] == 0.0
    winners, _ = coder._run(x, False, False)
    assert 0 < (winners[0][..., 0] >= 0).sum() < winners[0].shape[1]    # some macs inactive
    assert coder.learn(x[0])[1] == pytest.approx(1.0)


def test_a_pixel_exactly_at_the_threshold_is_off():
    """``threshold``'s documented rule: a pixel is active if it is above the threshold, not at it."""
    from spikecl.sdr import SparseyCoder, SparseyConfig

    base = load(Path(__file__).parents[1] / "models" / "sparsey_digits.toml")[1].coder
    coder = SparseyCoder(SparseyConfig.from_mapping({**asdict(base), "threshold": 0.5}))
    x = np.zeros((1, 64))
    x[0, :3] = [0.5, 0.5 + 1e-6, 0.4]
    assert coder.binarise(x)[0, :3].tolist() == [False, True, False]


def test_cue_curves_score_the_recalled_codes_against_the_recognition_codes():
    """Cue recall compares each cue's code with the item's recognition code (``train``), not its learning-time code."""
    x = np.zeros((4, 8), bool)
    for i in range(4):
        x[i, 2 * i:2 * i + 2] = True                                  # 4 items of 2 bits, no shared bit
    identity = SimpleNamespace(encode=lambda cues: np.asarray(cues, bool))
    coded = Coded(learned=np.zeros((4, 8), bool), train=x, test=x, learn_seconds=0.0, model=identity)
    out = cue_curves({"id": coded}, x, [0.0, 0.5], 4, seed=0)
    assert out["removed_id_identity"].tolist() == [1.0, 1.0] and out["removed_id_overlap"].tolist() == [1.0, 0.5]
    assert out["flipped_id_identity"][0] == 1.0 and out["flipped_id_overlap"][0] == 1.0


def test_similarity_returns_input_overlaps_then_code_overlaps_then_rho():
    """``similarity`` gives (input overlaps, code overlaps, ρ) per coder, on the pairs of ``pair_overlaps``."""
    x = np.random.default_rng(0).integers(0, 2, (20, 30)).astype(bool)
    codes = np.zeros((20, 8), bool)
    codes[:, :4] = True                                               # every pair of codes shares 4 bits
    xo, co, rho = similarity(x, {"c": codes}, 50, seed=1)["c"]
    i, j = pair_overlaps(x, 50, 1)
    assert xo.tolist() == (x[i] & x[j]).sum(axis=1).tolist() and co.tolist() == [4] * 50 and np.isnan(rho)


def test_class_votes_added_in_batches_equal_one_batch():
    """Counts and per-class item totals accumulate over ``add`` calls (one pass in any number of batches)."""
    codes = np.zeros((11, 2), bool)
    codes[:5, 0], codes[5:10, 1], codes[10, 0] = True, True, True
    y = np.array([0] * 10 + [1])
    once, batched = ClassVotes(2, 2), ClassVotes(2, 2)
    once.add(codes, y)
    batched.add(codes[:6], y[:6])
    batched.add(codes[6:], y[6:])
    assert np.allclose(batched.scores(np.array([[1, 0]])), [[0.5, 1.0]])
    assert np.allclose(batched.scores(codes), once.scores(codes)) and batched.class_items.tolist() == [10.0, 1.0]


def test_knn_classifies_every_test_code_whatever_the_chunk_size():
    """Chunking the test codes (``chunk``) changes memory only: every item, the last included, gets its label."""
    train = np.eye(5, dtype=bool)
    test = np.eye(5, dtype=bool)[[4, 3, 2, 1, 0]]
    for chunk in (1, 2, 3, 1024):
        assert knn_predict(train, np.arange(5), test, 1, chunk=chunk).tolist() == [4, 3, 2, 1, 0]


def test_readouts_refuse_codes_of_another_width_in_one_line():
    """Codes wider or narrower than the stored ones are a one-line ShapeError naming the expected width."""
    votes = ClassVotes(3, 2)
    with pytest.raises(ShapeError, match=r"^codes must be \[B, 3\], got shape \(1, 4\)$"):
        votes.add(np.zeros((1, 4), bool), np.array([0]))
    with pytest.raises(ShapeError, match=r"^codes must be \[B, 3\], got shape \(2, 2\)$"):
        votes.predict(np.zeros((2, 2), bool))
    with pytest.raises(ShapeError, match=r"^test_codes must be \[B, 3\], got shape \(3, 4\)$"):
        knn_predict(np.eye(3, dtype=bool), np.arange(3), np.eye(3, 4, dtype=bool))


@pytest.mark.parametrize("label", [-1, 2])
def test_readouts_refuse_a_label_outside_the_classes(label):
    """A label below 0 or at n_classes is a one-line ShapeError (a -1 would silently count for the last class)."""
    y = np.array([0, 1, label])
    with pytest.raises(ShapeError, match=r"^labels must be 3 integers in 0\.\.1"):
        ClassVotes(3, 2).add(np.eye(3, dtype=bool), y)
    with pytest.raises(ShapeError, match=r"^labels must be 3 integers in 0\.\.1"):
        knn_predict(np.eye(3, dtype=bool), y, np.eye(3, dtype=bool), 1, n_classes=2)


def test_class_votes_predict_by_votes_unless_told_otherwise():
    """``predict`` defaults to the summed votes of the active cells; "bayes" also weighs the inactive bits."""
    votes = ClassVotes(1, 2)
    votes.add(np.array([[1], [1], [0], [0]]), np.array([0, 0, 1, 1]))
    assert votes.predict(np.array([[1]])).tolist() == [0]
    assert votes.predict(np.array([[0]])).tolist() == [NO_ANSWER]       # no active cell: no vote for any class
    assert votes.predict(np.array([[0]]), "bayes").tolist() == [1]


def test_a_code_sharing_no_bit_with_what_was_learned_gets_no_class():
    """An empty test code, or one whose cells were never active while learning, carries no evidence: the votes and
    k-NN readouts answer NO_ANSWER, which counts as wrong (they answered class 0 or the first stored code's label)."""
    train, y = np.eye(4, dtype=bool)[[1, 2, 3]], np.array([2, 1, 0])
    test = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 1]], bool)
    for k in (1, 3):
        for cosine in (True, False):
            assert knn_predict(train, y, test, k, cosine=cosine).tolist()[:2] == [NO_ANSWER, NO_ANSWER]
    assert knn_predict(train, y, test, 1).tolist()[2:] == [2, 0]
    votes = ClassVotes(4, 3)
    votes.add(train, y)
    assert votes.predict(test).tolist() == [NO_ANSWER, NO_ANSWER, 2, 0]
    assert (votes.predict(test) == np.array([0, 0, 2, 0])).mean() == 0.5     # 0.75 when the first two said class 0


def test_knn_codes_sharing_no_bit_with_the_test_code_have_no_vote():
    """Of five stored codes only the last (class 0) shares a bit with the test code: the other four (class 1),
    taken in stored order to fill the k nearest, outvoted it for k = 3 and 5."""
    train = np.zeros((5, 8), bool)
    train[np.arange(5), [0, 1, 2, 3, 4]] = True
    test = np.zeros((1, 8), bool)
    test[0, [4, 7]] = True
    for k in (1, 3, 5):
        for cosine in (True, False):
            assert knn_predict(train, np.array([1, 1, 1, 1, 0]), test, k, cosine=cosine).tolist() == [0]


def test_knn_ties_in_overlap_go_to_the_code_stored_first():
    """Among stored codes equally near a test code the one stored first is the nearer (a stable order)."""
    rng = np.random.default_rng(0)
    train, test = (rng.random((300, 16)) < 0.3).astype(np.float32), (rng.random((50, 16)) < 0.3).astype(np.float32)
    y = rng.integers(0, 5, 300)
    near = (test @ train.T) * (1.0 / np.sqrt(np.maximum(train.sum(axis=1), 1.0)))   # as knn_predict, in float32
    assert knn_predict(train, y, test, 1).tolist() == y[near.argmax(axis=1)].tolist()   # argmax: first maximum


def test_knn_refuses_more_neighbours_than_stored_codes():
    """k above the number of stored codes is a one-line ShapeError, not a silently smaller neighbourhood."""
    with pytest.raises(ShapeError, match="^k = 4 neighbours out of 3 stored codes is impossible$"):
        knn_predict(np.eye(3, dtype=bool), np.arange(3), np.eye(3, dtype=bool), 4)


def test_pair_overlaps_refuse_fewer_than_two_items_in_one_line():
    """Distinct pairs need two items: one item is a one-line ShapeError (not numpy's "low >= high")."""
    with pytest.raises(ShapeError, match="^pairs need at least two items$"):
        pair_overlaps(np.zeros((1, 3)), 5)
