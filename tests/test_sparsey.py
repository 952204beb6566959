"""The Sparsey-style coder: familiarity, novelty, similarity preservation on MNIST-5k, recall from degraded cues,
sequence recall from two frames, the spiking realisation, the experiment kind and bad-input errors."""

import h5py
import numpy as np
import pytest

from spikecl.cli import main
from spikecl.errors import ConfigError, ShapeError
from spikecl.sdr import MacConfig, SparseyCoder, SparseyConfig
from spikecl.sdr.baselines import FlyHash, FlyHashConfig, SpatialPooler, SpatialPoolerConfig, SuccessorMemory
from spikecl.sdr.experiment import EvalConfig
from spikecl.sdr.measures import degrade, mac_activity_code, recall_measures, sequence_recall
from spikecl.sdr.readout import ClassVotes, knn_predict, overlap_spearman
from spikecl.sdr.sparsey import expansivity, local_support, normalised_sums, win_weights

Q, K = 16, 8
GRID = dict(layout="grid", grid=[10, 10], patch=[6, 6],
            mac=MacConfig(n_cms=8, cells_per_cm=12, min_active_frac=0.2, freeze_fraction=0.3))


@pytest.fixture(scope="module")
def mnist():
    """MNIST-5k binarised at 0.5: the first 1,000 training and 400 test items (flat [B, 784] bool, labels)."""
    from spikecl.data.datasets import load_dataset

    d = load_dataset("mnist5k")
    return (d.x_train[:1000].reshape(1000, -1) > 0.5, d.y_train[:1000],
            d.x_test[:400].reshape(400, -1) > 0.5, d.y_test[:400])


@pytest.fixture(scope="module")
def mnist_coder(mnist):
    """The grid coder after one pass over the 1,000 training items, with its learning-time codes."""
    coder = SparseyCoder(SparseyConfig(**GRID))
    learned, _ = coder.learn_all(mnist[0])
    return coder, learned


def random_patterns(n, seed, n_pixels=400, density=0.05):
    return np.random.default_rng(seed).random((n, n_pixels)) < density


def small_coder(**mac):
    return SparseyCoder(SparseyConfig(image_shape=[20, 20], mac=MacConfig(n_cms=Q, cells_per_cm=K, **mac)))


def test_win_weights_follow_familiarity():
    cfg = MacConfig()
    v = np.array([[[[0.0, 0.5, 1.0]]]])
    assert expansivity(np.array([cfg.g_minus]), cfg)[0] == 1.0               # G <= G⁻: uniform choice
    assert expansivity(np.array([1.0]), cfg)[0] == pytest.approx(1 + cfg.chi * cfg.cells_per_cm)
    mu_novel = win_weights(v, np.array([[1.0]]), cfg)
    mu_familiar = win_weights(v, expansivity(np.array([[1.0]]), cfg), cfg)
    assert np.allclose(mu_novel, 1.0)
    assert mu_familiar[..., 0] < 1.01 and mu_familiar[..., 2] > 100 * mu_familiar[..., 1]


def test_learned_inputs_reactivate_their_exact_codes_and_novel_inputs_get_random_codes():
    coder = small_coder()
    stored = random_patterns(20, seed=0)
    learned = np.stack([coder.learn(x)[0] for x in stored])
    assert learned.sum(axis=1).tolist() == [Q] * 20                           # one winner per CM
    recalled, g = coder.encode(stored)
    assert (recalled == learned).all() and g.min() > 0.99
    novel = random_patterns(200, seed=1)
    _, g_novel = coder.encode(novel)
    assert g_novel.mean() < 0.1
    overlaps = [(learned.astype(int) @ coder.learn(x)[0]).mean() for x in novel[:100]]
    assert np.mean(overlaps) == pytest.approx(Q / K, rel=0.25)                # chance overlap Q/K


def test_reproducible_from_the_seed(mnist):
    x = mnist[0][:60]
    a = SparseyCoder(SparseyConfig(**GRID, seed=3)).learn_all(x)[0]
    b = SparseyCoder(SparseyConfig(**GRID, seed=3)).learn_all(x)[0]
    c = SparseyCoder(SparseyConfig(**GRID, seed=4)).learn_all(x)[0]
    assert (a == b).all() and not (a == c).all()


def test_similar_inputs_get_similar_codes_on_mnist(mnist, mnist_coder):
    coder, _ = mnist_coder
    x_test = mnist[2]
    codes, _ = coder.encode(x_test)
    rho, _, _ = overlap_spearman(x_test, codes, n_pairs=3000, seed=0)
    n_bits, active = codes.shape[1], int(round(codes.sum(axis=1).mean()))
    fly = FlyHash(FlyHashConfig(n_outputs=n_bits, sparsity=active / n_bits), x_test.shape[1]).encode(x_test)
    rho_fly, _, _ = overlap_spearman(x_test, fly, n_pairs=3000, seed=0)
    pooler = SpatialPooler(SpatialPoolerConfig(n_columns=1024), x_test.shape[1])
    pooler.learn(mnist[0][:500])
    rho_pooler, _, _ = overlap_spearman(x_test, pooler.encode(x_test), n_pairs=3000, seed=0)
    rho_gate, _, _ = overlap_spearman(x_test, mac_activity_code(coder, codes), n_pairs=3000, seed=0)
    cos, cos_fly, cos_pooler = (overlap_spearman(x_test, c, n_pairs=3000, seed=0, cosine=True)[0]
                                for c in (codes, fly, pooler.encode(x_test)))
    print(f"Spearman: sparsey {rho:.3f}, fly-hash {rho_fly:.3f}, k-WTA pooler {rho_pooler:.3f}, "
          f"mac activity only {rho_gate:.3f}; of cosines: sparsey {cos:.3f}, fly-hash {cos_fly:.3f}, "
          f"pooler {cos_pooler:.3f}")
    assert rho > 0.85
    assert rho > rho_fly + 0.05 and rho > rho_pooler + 0.2     # above the same-size fly-hash control
    assert rho > rho_gate + 0.03                                # the learned codes add to the activity gating
    # raw overlap credits Sparsey's code size, which follows the image's ink; the fly-hash's is fixed. Normalised
    # by size, Sparsey still tracks similarity far above the pooler, but the fly-hash leads (docs/sdr.md)
    assert cos > 0.8 and cos > cos_pooler + 0.2 and cos_fly > cos + 0.03


def test_one_pass_codes_classify_mnist(mnist, mnist_coder):
    coder, learned = mnist_coder
    _, y_train, x_test, y_test = mnist
    test_codes, _ = coder.encode(x_test)
    votes = ClassVotes(learned.shape[1], 10)
    votes.add(learned, y_train)
    acc_votes = (votes.predict(test_codes) == y_test).mean()
    acc_bayes = (votes.predict(test_codes, "bayes") == y_test).mean()
    acc_knn = (knn_predict(coder.encode(mnist[0])[0], y_train, test_codes, 1) == y_test).mean()
    print(f"one pass over 1,000 items: class votes {acc_votes:.3f}, Bayes {acc_bayes:.3f}, 1-NN {acc_knn:.3f}")
    assert acc_votes > 0.45 and acc_bayes > 0.7 and acc_knn > 0.82


def test_recall_from_degraded_cues(mnist, mnist_coder):
    coder, _ = mnist_coder
    items = mnist[0][:100]
    stored, _ = coder.encode(items)
    removed = recall_measures(stored, coder.encode(degrade(items, 0.5, "removed", 0))[0])
    flipped = recall_measures(stored, coder.encode(degrade(items, 0.25, "flipped", 0))[0])
    assert removed["identity"] > 0.9 and flipped["identity"] > 0.8
    assert removed["overlap"] > 0.3       # macs whose field falls below min_active_frac go silent


def test_reconstruct_a_stored_pattern_from_half_of_it():
    coder = small_coder()
    stored = random_patterns(20, seed=2)
    for x in stored:
        coder.learn(x)
    cue = degrade(stored, 0.5, "removed", 0)
    back = coder.reconstruct(cue)
    assert (back == stored).all(axis=1).mean() >= 0.9


def test_sequences_recalled_from_their_first_two_frames():
    coder = SparseyCoder(SparseyConfig(image_shape=[20, 20],
                                       mac=MacConfig(n_cms=Q, cells_per_cm=32, sequences=True)))
    sequences = np.random.default_rng(5).random((24, 12, 400)) < 0.05
    stored = [coder.learn_sequence(s) for s in sequences]
    overlap = np.array([(coder.recall_sequence(s[:2], len(s)) & code).sum(axis=1) / Q
                        for s, code in zip(sequences, stored)])                # [sequences, frames]
    assert overlap.shape == (24, 12)
    assert overlap.mean() > 0.98 and overlap[:, -1].mean() > 0.95


def test_sequence_recall_counts_a_tie_among_the_nearest_stored_codes_as_a_share():
    """Identical frames get identical fly-hash codes: every recalled frame ties with all S·T stored codes, so each
    scores 1/(S·T) (the lowest index winning the tie would give 0: frame 0 is never recalled)."""
    from spikecl.data.codes import FlyHashConfig as Fly
    from spikecl.sdr.experiment import EvalConfig
    from spikecl.sdr.measures import sequence_recall

    x = np.tile(np.random.default_rng(0).random((1, 64)) > 0.5, (12, 1))
    ev = EvalConfig(sequences=2, sequence_length=4, sequence_cms=4, sequence_cells_per_cm=8)
    got = sequence_recall(SparseyConfig(image_shape=[8, 8]), ev, Fly(), x, seed=0)
    assert got["sequence_recall_flyhash"] == pytest.approx(1 / 8)


def sequence_coder(two_level):
    mac = MacConfig(n_cms=8, cells_per_cm=16, sequences=True)
    layout = dict(layout="grid", grid=[2, 2], patch=[6, 6], two_level=True,
                  top=MacConfig(n_cms=8, cells_per_cm=8, sequences=True)) if two_level else {}
    return SparseyCoder(SparseyConfig(image_shape=[10, 10], mac=mac, **layout))


@pytest.mark.parametrize("two_level", [False, True])
@pytest.mark.parametrize("n_probes", [1, 3])
def test_recognising_inside_a_sequence_leaves_its_context(two_level, n_probes):
    """encode() between the frames of a sequence (one item or a batch) neither reads nor replaces the previous
    frame's code: the weights stored and the sequence recalled are those of the sequence learned alone."""
    rng = np.random.default_rng(2)
    frames, probes = rng.random((5, 100)) < 0.2, rng.random((n_probes, 100)) < 0.2
    alone, probed = sequence_coder(two_level), sequence_coder(two_level)
    stored = alone.learn_sequence(frames)
    probed.start_sequence()
    for frame in frames:
        probed.learn(frame)
        probed.encode(probes[0] if n_probes == 1 else probes)
    probed.end_sequence()
    for a, b in zip((alone.level1, alone.level2), (probed.level1, probed.level2)):
        if a is not None:
            np.testing.assert_array_equal(a.state.u, b.state.u)
            np.testing.assert_array_equal(a.state.h, b.state.h)
    recalled = probed.recall_sequence(frames[:1], len(frames))
    np.testing.assert_array_equal(recalled, alone.recall_sequence(frames[:1], len(frames)))
    if not two_level:                    # (two levels: a 6 × 6 field with two active pixels recalls another code)
        assert (recalled == stored).all(axis=1).tolist() == [True] * len(frames)


def two_mac_frames(rng, *halves):
    """Frames [T, 128] of an 8 × 16 image: each half (a 1 × 2 grid mac's field) random at 30 % where ``halves``
    says 1, silent where 0."""
    frames = np.zeros((len(halves), 8, 16), bool)
    for t, (left, right) in enumerate(halves):
        frames[t, :, :8] = left * (rng.random((8, 8)) < 0.3)
        frames[t, :, 8:] = right * (rng.random((8, 8)) < 0.3)
    return frames.reshape(len(halves), -1)


def two_mac_coder(seed=0):
    return SparseyCoder(SparseyConfig(image_shape=[8, 16], layout="grid", grid=[1, 2], patch=[8, 8], seed=seed,
                                      mac=MacConfig(n_cms=8, cells_per_cm=8, sequences=True)))


def test_a_mac_silent_in_the_previous_frame_recalls_its_code_from_its_input():
    """No H signal reaches a mac whose previous code is empty, so V = U^λU there (not U^λU · 0): cued with every
    frame, each mac's stored code comes back, also in the frame after it was silent."""
    rng = np.random.default_rng(0)
    for seed in range(5):
        coder = two_mac_coder(seed)
        seq = two_mac_frames(rng, (1, 0), (1, 1), (1, 1), (0, 1), (1, 1))
        stored = coder.learn_sequence(seq)
        assert (coder.recall_sequence(seq, len(seq)) == stored).all()


def test_an_empty_previous_code_gives_the_support_of_a_first_frame():
    """Per mac, an all-zero previous code gives the same V as no previous code; a familiar input in a mac that was
    silent in the previous frame is recognised while learning (G = 1, its stored code), not coded at random."""
    rng = np.random.default_rng(1)
    coder = two_mac_coder()
    first, familiar = two_mac_frames(rng, (1, 0), (0, 1))
    right, _ = coder.learn(familiar)
    layer, x = coder.level1, (first | familiar)[None][:, coder.fields].astype(np.float32)
    prev = np.zeros((1, 2, 64), np.float32)
    prev[0, 0, :8] = 1.0                                             # the left mac had a code, the right one none
    assert (layer.support(x, prev)[:, 1] == layer.support(x, None)[:, 1]).all()
    assert layer.encode(x, prev)[1][0, 1] == 1.0
    coder.start_sequence()
    coder.learn(first)
    code, _ = coder.learn(first | familiar)
    coder.end_sequence()
    assert (code[64:] == right[64:]).all()


def test_spiking_wta_groups_reproduce_the_coder_codes(mnist):
    pytest.importorskip("snntorch")
    from spikecl.sdr.spiking import SpikingSparsey

    coder = SparseyCoder(SparseyConfig(layout="grid", grid=[4, 4], patch=[10, 10], two_level=True,
                                       mac=MacConfig(n_cms=8, cells_per_cm=8, min_active_frac=0.05)))
    coder.learn_all(mnist[0][:200])
    expected, _ = coder.encode(mnist[2][:60])
    assert (SpikingSparsey(coder).encode(mnist[2][:60]) == expected).all()


@pytest.mark.parametrize("call, error, message", [
    (lambda c: c.encode(np.zeros(399)), ShapeError, "399 values per item"),
    (lambda c: c.encode(np.full(400, np.nan)), ShapeError, "NaN"),
    (lambda c: c.level1.encode(np.zeros((2, 1, 400), np.float32), learn=True), ShapeError, "one item at a time"),
    (lambda c: c.start_sequence(), ConfigError, "sequences = true"),
    (lambda c: c.encode(np.array(["a"] * 400)), ShapeError, "dtype"),
    (lambda c: c.encode(np.full(400, 255, np.uint8)), ShapeError, "integer inputs must be 0/1"),
])
def test_bad_input_is_a_one_line_error(call, error, message):
    with pytest.raises(error, match=message) as info:
        call(small_coder())
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("raw, message", [
    ({"mac": {"n_cms": 0}}, "mac.n_cms: 0 is below the minimum 1"),
    ({"mac": {"min_active_frac": 0.5, "max_active_frac": 0.1}}, "exceeds max_active_frac"),
    ({"layout": "hex"}, "layout: 'hex' is not allowed"),
    ({"patch": [40, 40], "layout": "grid"}, "larger than the image"),
    ({"grid": [4]}, "grid: expected two integers"),
    ({"layout": "grid", "grid": [1, 3], "patch": [10, 10]},
     "grid / patch: 1 x 10-wide patches leave 18 of the 28 rows of the image \\[28, 28\\] unseen \\(first 10, "),
    ({"layout": "grid", "grid": [2, 2], "patch": [7, 7]}, "leave 14 of the 28 rows .* \\(first 7, last 20\\)"),
    ({"layout": "grid", "grid": [4, 4], "patch": [7, 7], "two_level": True, "top_grid": [1, 2], "top_patch": [2, 2]},
     "top_grid / top_patch: 1 x 2-wide patches leave 2 of the 4 rows of the level-1 grid \\[4, 4\\] unseen"),
    ({"mac": {"Q": 4}}, "unknown key 'mac.Q'"),
])
def test_bad_config_is_a_config_error(raw, message):
    with pytest.raises(ConfigError, match=message):
        SparseyConfig.from_mapping(raw)


def test_reference_model_validates():
    from pathlib import Path

    from spikecl.sdr.experiment import load_config

    cfg = load_config(Path(__file__).parents[1] / "models" / "sparsey_mnist5k.toml")
    assert cfg.kind == "sparsey" and cfg.coder.layout == "grid" and cfg.coder.mac.min_active_frac == 0.2
    assert cfg.name == "sparsey-mnist5k" and cfg.baseline.n_columns == 2048
    digits = load_config(Path(__file__).parents[1] / "models" / "sparsey_digits.toml")
    assert digits.data.dataset == "digits" and digits.coder.image_shape == [8, 8] and digits.coder.grid == [3, 3]


@pytest.mark.slow
def test_experiment_kind_runs_writes_results_and_refuses_to_overwrite(tmp_path, capsys, monkeypatch):
    exp = tmp_path / "small.toml"
    exp.write_text(f'kind = "sparsey"\nname = "small"\noutput_dir = "{tmp_path}"\n'
                   '[coder]\nlayout = "grid"\ngrid = [4, 4]\npatch = [10, 10]\ntwo_level = true\n'
                   '[coder.mac]\nmin_active_frac = 0.05\nfreeze_fraction = 0.3\n'
                   '[baseline]\nn_columns = 256\n'
                   '[eval]\ntrain_items = 300\ntest_items = 100\nn_pairs = 300\npair_items = 100\n'
                   'capacity_points = [50, 100]\nrandom_capacity_points = [10, 400]\ncue_items = 30\n'
                   'spiking_items = 20\nsequences = 6\nsequence_length = 5\n')
    assert main(["run", str(exp), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Sparsey" in out and "k-WTA spatial pooler" in out and "91 %" in out and "sequence frames recalled" in out
    assert not [line for line in out.splitlines() if line.endswith(" ")]     # no row padded past its last cell
    results = tmp_path / "small" / "sparsey_seed0.h5"
    with h5py.File(results) as f:
        assert f.attrs["kind"] == "sparsey"
        metrics = dict(f["metrics"].attrs)
        assert 0.3 < metrics["sparsey_acc_knn1"] <= 1 and 0.3 < metrics["pooler_acc_knn1"] <= 1
        assert metrics["sparsey_learn_seconds"] > 0 and metrics["spiking_code_match"] == 1.0
        assert metrics["spiking_learn_match"] == 1.0
        assert 0 < metrics["sequence_recall_sparsey"] <= 1 and 0 < metrics["sequence_recall_flyhash"] <= 1
        assert 0.3 < metrics["cue_half_removed_flyhash"] <= 1 and "cue_half_removed_sparsey" in metrics
        assert f["curves/capacity_identity"].shape == (2,) and f["curves/cue_removed_sparsey_identity"].shape == (4,)
        assert f["curves/random_capacity_exact"][0] == 1.0 > f["curves/random_capacity_exact"][1]
    for plot in ("overlap_scatter_seed0.png", "capacity_seed0.png", "capacity_random_seed0.png",
                 "cue_recall_seed0.png"):
        assert (tmp_path / "small" / plot).stat().st_size > 1000
    assert main(["run", str(exp), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["report", str(results), "--no-plots"]) == 0                 # read back: the same table
    assert "sequence frames recalled" in capsys.readouterr().out and "Made by" not in out
    import dataclasses

    from spikecl.io import read_run
    from spikecl.sdr.experiment import KIND

    resumed = read_run(results)                                               # as a run resumed across commits
    resumed = dataclasses.replace(resumed, environment={**resumed.environment, "spikecl_source": ["abc", "def"]})
    assert KIND.summarize([resumed]).endswith("\nMade by spikecl 0.1.0 (abc then def) (seed 0).")
    from spikecl.sdr.results import outcome

    from spikecl.sdr.plots import CODER_TITLES

    panels = list(outcome(read_run(results))["similarity"])             # the scatter's panels, in the table's order
    rows = [next(i for i, line in enumerate(out.splitlines()) if line.startswith(CODER_TITLES[name] + "  "))
            for name in panels]
    assert panels[0] == "sparsey" and rows == sorted(rows) and len(panels) == 4
    from spikecl.sdr import plots
    from spikecl.sdr.plots import write_plots

    legends, titles = {}, {}
    monkeypatch.setattr(plots, "plot_lines", lambda x, lines, path, **k: titles.setdefault(path.name, k["title"])
                        and legends.setdefault(path.name, list(lines)))
    monkeypatch.setattr(plots, "plot_overlap_scatter", lambda series, path, title: titles.setdefault(path.name, title))
    write_plots(tmp_path, 0, outcome(read_run(results)), plots.heading(read_run(results).config, 0))
    assert set(titles) == {f"{name}_seed0.png" for name in plots.SEED_PLOTS}     # each titled with its experiment
    assert all(t.startswith(f"{read_run(results).config['name']} (mnist5k), seed 0") for t in titles.values()), titles
    assert legends["cue_recall_seed0.png"][:3] == ["Sparsey, inputs removed", "k-WTA spatial pooler, inputs removed",
                                                   "fly-hash control (fixed), inputs removed"]      # the table's names
    assert main(["run", str(exp), "--no-progress", "--set", "coder.mac.K=3"]) == 2
    assert "unknown key 'coder.mac.K'" in capsys.readouterr().err


def test_integer_weights_decay_and_the_critical_period():
    layer = small_coder(w_max=3, decay=1).level1
    x = np.zeros((1, 1, 400), np.float32)
    x[0, 0, :10] = 1
    y = np.zeros_like(x)
    y[0, 0, 5:15] = 1
    winners = np.arange(Q)[None] % K                                         # the same code for both
    layer.learn(x, None, winners)
    cells = winners[0] + np.arange(Q) * K
    assert (layer.state.u[0][:10][:, cells] == 3).all() and layer.state.u[0].sum() == 3 * 10 * Q
    layer.learn(y, None, winners)
    assert (layer.state.u[0][:5][:, cells] == 2).all() and (layer.state.u[0][5:15][:, cells] == 3).all()
    assert layer.weight_fill[0] == pytest.approx(15 * Q / (400 * Q * K))
    frozen = small_coder(freeze_fraction=0.01)
    for pattern in random_patterns(30, seed=9):
        frozen.learn(pattern)
    assert frozen.level1.state.frozen[0] and 0.01 <= frozen.level1.weight_fill[0] < 0.02
    # past its critical period a mac gives every item its best-matching (recognition) code, not a random one
    for pattern in random_patterns(5, seed=10):
        stored, _ = frozen.learn(pattern)
        np.testing.assert_array_equal(stored, frozen.encode(pattern)[0])


def test_a_mac_freezes_when_its_weight_fill_reaches_freeze_fraction_exactly():
    """The critical period ends at fill >= freeze_fraction: 3 active afferents to a 4-CM code fill 12 of a mac's
    8 x 8 weights (0.1875 < 0.25: it still learns); 4 afferents fill 16 of 64, exactly 0.25, and freeze it."""
    from spikecl.sdr.sparsey import MacLayer

    def layer():
        return MacLayer(MacConfig(n_cms=4, cells_per_cm=2, freeze_fraction=0.25), 1, 8, np.random.default_rng(0))

    winners = np.zeros((1, 4), np.int64)
    below, at = layer(), layer()
    below.learn(np.array([[[1, 1, 1, 0, 0, 0, 0, 0]]], np.float32), None, winners)
    at.learn(np.array([[[1, 1, 1, 1, 0, 0, 0, 0]]], np.float32), None, winners)
    assert below.weight_fill[0] == 0.1875 and not below.state.frozen[0]
    assert at.weight_fill[0] == 0.25 and at.state.frozen[0]

def test_a_mac_is_active_at_both_ends_of_its_activity_band():
    """active_macs keeps the closed band [min_active_frac, max_active_frac]: of 8 afferents, 2 (0.25) and 6 (0.75)
    active are inside [0.25, 0.75], 1 and 7 outside, and none is silent even at min_active_frac 0."""
    from spikecl.sdr.sparsey import MacLayer

    cfg = MacConfig(n_cms=2, cells_per_cm=2, min_active_frac=0.25, max_active_frac=0.75)
    layer = MacLayer(cfg, 5, 8, np.random.default_rng(0))
    x = (np.arange(8)[None, None, :] < np.array([1, 2, 6, 7, 0])[None, :, None]).astype(np.float32)
    assert layer.active_macs(x).tolist() == [[False, True, True, False, False]]
    open_band = MacLayer(MacConfig(n_cms=2, cells_per_cm=2, min_active_frac=0.0), 5, 8, np.random.default_rng(0))
    assert open_band.active_macs(x).tolist() == [[True, True, True, True, False]]

def test_horizontal_support_is_normalised_by_w_max():
    """H = Σ w / (π · w_max): at w_max 3, after code A = cells 0, 2, 4, 6 led to code B = cells 1, 3, 5, 7, a
    previous code of A's cells 0, 2 and B's cells 1, 3 (π = 4) gives each B cell 2 · 3 / (4 · 3) = 0.5, A's none."""
    from spikecl.sdr.sparsey import MacLayer, code_dense

    cfg = MacConfig(n_cms=4, cells_per_cm=2, w_max=3, sequences=True, lambda_h=1.0)
    layer = MacLayer(cfg, 1, 8, np.random.default_rng(0))
    code_a = code_dense(np.zeros((1, 1, 4), np.int64), cfg)
    layer.learn(None, code_a, np.ones((1, 4), np.int64))
    prev = np.array([[[1, 1, 1, 1, 0, 0, 0, 0]]], np.float32)
    np.testing.assert_allclose(layer.support(None, prev)[0, 0], [[0.0, 0.5]] * 4)

def _cuda_available():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU")
def test_spiking_wta_groups_on_cuda_equal_cpu():
    from spikecl.sdr.spiking import SpikingWTAConfig, spiking_winners

    v = np.random.default_rng(0).random((50, 4, 8, 12)).astype(np.float32)
    assert (spiking_winners(v, SpikingWTAConfig(device="cuda")) == v.argmax(axis=-1)).all()


def test_spiking_on_cuda_without_a_gpu_is_a_config_error():
    pytest.importorskip("snntorch")
    if _cuda_available():
        pytest.skip("a CUDA GPU is present")
    from spikecl.sdr.spiking import SpikingWTAConfig, spiking_winners

    with pytest.raises(ConfigError, match="no CUDA GPU"):
        spiking_winners(np.zeros((1, 2, 3), np.float32), SpikingWTAConfig(device="cuda"))


def test_familiarity_from_the_normalised_input_sums():
    """familiarity_from = 'u': G is the mean over CMs of the largest U, not of V = U^λ (λ = 2 here), so a partly
    familiar input is more familiar by U than by V."""
    coders = {how: small_coder(familiarity_from=how) for how in ("v", "u")}
    stored, probe = random_patterns(1, seed=3)[0], random_patterns(1, seed=3)[0].copy()
    on = np.flatnonzero(stored)
    probe[on[: len(on) // 2]] = False                     # half of the stored item's active pixels
    g = {}
    for how, coder in coders.items():
        coder.learn(stored)
        g[how] = coder.encode(probe)[1]
    assert g["u"] == pytest.approx(1.0) and g["v"] == pytest.approx(1.0)  # a subset of a stored item: U = 1
    noisy = probe.copy()
    noisy[np.flatnonzero(~stored)[: len(on) // 2]] = True  # as many novel pixels
    gu, gv = (coders[h].encode(noisy)[1] for h in ("u", "v"))
    assert gu == pytest.approx(0.5, abs=0.05) and gv == pytest.approx(gu ** 2, abs=1e-6)


def test_the_exponential_race_draws_winners_from_rho():
    """The CSA's draw: the cell with the largest μ / E (E ~ Exp(1)) wins with probability ρ = μ / Σ μ."""
    from spikecl.sdr.sparsey import choose_winners, race_scores

    mu = np.array([1.0, 2.0, 5.0, 12.0])
    winners = choose_winners(race_scores(np.broadcast_to(mu, (40000, 1, 1, 4)), np.random.default_rng(0)))
    freq = np.bincount(winners.ravel(), minlength=4) / winners.size
    np.testing.assert_allclose(freq, mu / mu.sum(), atol=0.01)


def test_spiking_learning_stores_the_coder_codes_and_weights(mnist):
    """Code selection by LIF WTA groups and weight updates by pre × post spike coincidence give, item by item, the
    vectorised coder's codes and weights (two levels, four level-2 macs, integer weights with decay, a critical
    period), and the spiking recognition of unseen items then equals the coder's."""
    pytest.importorskip("snntorch")
    from spikecl.sdr.spiking import SpikingSparsey

    cfg = SparseyConfig(layout="grid", grid=[4, 4], patch=[10, 10], two_level=True, top_grid=[2, 2],
                        top_patch=[3, 3], mac=MacConfig(n_cms=8, cells_per_cm=8, min_active_frac=0.05,
                                                        freeze_fraction=0.2, w_max=3, decay=1))
    x = mnist[0][:120]
    vectorised, spiking = SparseyCoder(cfg), SparseyCoder(cfg)
    expected, _ = vectorised.learn_all(x)
    stored = SpikingSparsey(spiking).learn_all(x)
    assert (stored == expected).all()
    assert vectorised.level1.state.frozen.any()                   # the critical period ended for some macs
    for a, b in ((vectorised.level1, spiking.level1), (vectorised.level2, spiking.level2)):
        np.testing.assert_array_equal(a.state.u, b.state.u)
        np.testing.assert_array_equal(a.state.frozen, b.state.frozen)
    assert 0 < (vectorised.level1.state.u == 2).sum()               # decay acted
    assert (SpikingSparsey(spiking).encode(mnist[2][:40]) == vectorised.encode(mnist[2][:40])[0]).all()


def test_recognition_with_familiarity_contingent_noise():
    """recognition = "sample": a stored item (G = 1) reactivates its own code almost exactly (ρ of the max-V cell
    ≈ 0.98 with the default σ, χ), a novel one (G < G⁻) gets a random code, different on every draw; the draws are
    seeded."""
    coder = small_coder(recognition="sample")
    stored = random_patterns(20, seed=0)
    learned = np.stack([coder.learn(x)[0] for x in stored])
    recalled = coder.encode(stored)[0]
    kept = (recalled & learned).sum(axis=1) / Q
    assert kept.mean() > 0.95 and kept.min() >= 0.8
    novel = random_patterns(1, seed=1)[0]
    draws = np.stack([coder.encode(novel)[0] for _ in range(5)])
    assert len({d.tobytes() for d in draws}) == 5
    again = small_coder(recognition="sample")
    for x in stored:
        again.learn(x)
    again.encode(stored)                                               # the same calls give the same draws
    np.testing.assert_array_equal(np.stack([again.encode(novel)[0] for _ in range(5)]), draws)


def test_shifted_ensembles_tile_distinct_overlapping_fields():
    from spikecl.sdr.sparsey import level1_fields

    same = level1_fields(SparseyConfig(**{**GRID, "n_macs": 2}))
    shifted = level1_fields(SparseyConfig(**{**GRID, "n_macs": 2, "ensemble": "shifted"}))
    assert same.shape == shifted.shape == (200, 36)
    np.testing.assert_array_equal(same[0::2], same[1::2])             # 'same': the members duplicate a field
    np.testing.assert_array_equal(shifted[0::2], same[0::2])          # member 0 keeps the grid
    member1 = shifted[1::2]
    distinct = [not np.array_equal(a, b) for a, b in zip(shifted[0::2], member1)]
    overlap = [len(np.intersect1d(a, b)) for a, b in zip(shifted[0::2], member1)]
    assert np.mean(distinct) > 0.95 and min(overlap) >= 16          # shifted by 1-2 pixels: distinct, overlapping


def test_level_two_tiles_the_level_one_grid():
    from spikecl.sdr.sparsey import level2_fields

    cfg = SparseyConfig.from_mapping({**{k: v for k, v in GRID.items() if k != "mac"}, "n_macs": 2, "two_level": True,
                                      "top_grid": [3, 3], "top_patch": [4, 4]})
    fields = level2_fields(cfg)
    assert fields.shape == (9, 4 * 4 * 2)
    assert set(fields[0]) == {(r * 10 + c) * 2 + e for r in range(4) for c in range(4) for e in range(2)}
    assert np.unique(fields).size == 200                              # every level-1 mac feeds some level-2 mac
    coder = SparseyCoder(cfg)
    code, _ = coder.learn(random_patterns(1, seed=0, n_pixels=784, density=0.2)[0])
    assert coder.n_code_bits == 200 * cfg.mac.n_cells + 9 * cfg.top.n_cells
    assert code[200 * cfg.mac.n_cells:].sum() == 9 * cfg.top.n_cms   # every level-2 mac is active
    with pytest.raises(ConfigError, match="top_grid"):
        SparseyConfig.from_mapping({"layout": "grid", "grid": [4, 4], "two_level": True, "top_patch": [5, 5]})


def _array_bytes(obj, seen: set | None = None) -> int:
    """Bytes of every numpy array reachable from ``obj`` through attributes, lists, tuples and dicts."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_array_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_array_bytes(v, seen) for v in obj)
    return sum(_array_bytes(v, seen) for v in vars(obj).values()) if hasattr(obj, "__dict__") else 0


def test_retrieval_reads_a_state_that_does_not_grow_with_the_items_stored():
    """Best-match retrieval costs the same however many items are stored: everything the coder holds (every array it
    reaches) has the same size after 1,000 and after 10,000 stored items as before any, so recognising one reads and
    computes the same; ``benchmarks/sdr_scaling.py`` times it flat to 100,000 items beside a scan that grows."""
    import copy
    import pickle

    patterns = np.random.default_rng(0).random((10_000, 256)) < 0.05
    coder = SparseyCoder(SparseyConfig(image_shape=[16, 16], mac=MacConfig(n_cms=16, cells_per_cm=16)))
    coder.learn_all(patterns[:1_000])
    small = copy.deepcopy(coder)
    coder.learn_all(patterns[1_000:])
    assert _array_bytes(small) == _array_bytes(coder) > 16 * 16 * 256
    assert _array_bytes(coder) == _array_bytes(SparseyCoder(coder.cfg))      # a fresh coder's: nothing is appended
    assert len(pickle.dumps(coder)) < len(pickle.dumps(small)) + 1_000      # nor kept outside arrays (9,000 items)
    assert (coder.encode(patterns[-50:])[0].sum(axis=1) == 16).all()         # a code of Q = 16 winners each


def test_successor_memory_chains_fixed_codes():
    """The sequence control: fixed codes chained by a clipped Hebbian transition memory recall a stored sequence
    from its first two codes; bad shapes are one-line errors."""
    from spikecl.sdr.baselines import SuccessorMemory, kwta

    rng = np.random.default_rng(0)
    sequences = kwta(rng.random((10, 6, 512)), 16)                    # 10 sequences of 6 random 16-of-512 codes
    memory = SuccessorMemory(512, 16)
    for codes in sequences:
        memory.store(codes)
    recalled = np.stack([memory.recall(codes[:2], 6) for codes in sequences])
    assert (recalled == sequences).all()
    with pytest.raises(ShapeError, match=r"\[T, 512\]"):
        memory.store(np.zeros((3, 100), bool))


def _code_overlap(sigma2: float, fraction: float, trials: int = 40) -> float:
    """Mean overlap (cells of 8) of the codes one mac (200 inputs, 20 active, Q = 8, K = 12) learns for an input and
    then for one sharing ``fraction`` of its active inputs."""
    rng, overlaps = np.random.default_rng(0), []
    for trial in range(trials):
        coder = SparseyCoder(SparseyConfig(image_shape=[10, 20], seed=trial,
                                           mac=MacConfig(n_cms=8, cells_per_cm=12, sigma2=sigma2)))
        first, active = np.zeros(200, bool), rng.choice(200, 20, replace=False)
        first[active] = True
        second, keep = np.zeros(200, bool), round(fraction * 20)
        second[active[:keep]] = True
        second[rng.choice(np.setdiff1d(np.arange(200), active), 20 - keep, replace=False)] = True
        code_a, _ = coder.learn(first)
        code_b, _ = coder.learn(second)
        overlaps.append(int((code_a & code_b).sum()))
    return float(np.mean(overlaps))


def test_similar_inputs_get_graded_code_overlap_only_close_to_identity_at_the_default_sigma2():
    """docs/sdr.md: at σ₂ = 8 (the default) codes overlap by chance up to 80 % input overlap and jump near 90 %; at
    σ₂ = 4 (the reference's) the overlap grows from 70 %."""
    default = [_code_overlap(8.0, f) for f in (0.6, 0.8, 0.9)]
    reference = [_code_overlap(4.0, f) for f in (0.6, 0.7, 0.8)]
    assert default[0] < 1 and default[1] < 1 and default[2] > 5
    assert reference[0] < 1 < reference[1] < 3 < reference[2]


@pytest.mark.parametrize("two_level", [False, True])
def test_a_sequence_recalled_while_another_is_learned_frame_by_frame_leaves_it_open(two_level):
    """recall_sequence halfway through a sequence opened with start_sequence() ended it: the next learn() stored no
    link from the previous frame, and the sequence could no longer be recalled. It now goes on where it was;
    learn_sequence inside it is refused."""
    rng = np.random.default_rng(2)
    frames = rng.random((5, 100)) < 0.2
    alone, checked = sequence_coder(two_level), sequence_coder(two_level)
    alone.learn_sequence(frames)
    checked.start_sequence()
    for i, frame in enumerate(frames):
        checked.learn(frame)
        if i == 2:
            checked.recall_sequence(frames[:2], 3)                  # a look at the progress
    for a, b in zip((alone.level1, alone.level2), (checked.level1, checked.level2)):
        if a is not None:
            np.testing.assert_array_equal(a.state.h, b.state.h)
    with pytest.raises(ConfigError, match="learn_sequence inside a sequence opened with start_sequence"):
        checked.learn_sequence(frames)
    checked.end_sequence()
    np.testing.assert_array_equal(checked.recall_sequence(frames[:1], 5), alone.recall_sequence(frames[:1], 5))


def test_a_config_changed_after_it_was_validated_is_checked_again_by_the_coder():
    """The configs are mutable: a patch larger than the 8 × 8 image set afterwards built a coder whose receptive
    fields held negative pixel indices (wrapping to other pixels)."""
    cfg = SparseyConfig(image_shape=[8, 8], layout="grid", grid=[2, 2], patch=[4, 4])
    SparseyCoder(cfg)
    cfg.patch = [9, 9]
    with pytest.raises(ConfigError, match="patch"):
        SparseyCoder(cfg)
    cfg.patch = [4, 4]
    cfg.mac.n_cms = 0                                     # a level's table too (an IndexError traceback)
    with pytest.raises(ConfigError, match="mac.n_cms"):
        SparseyCoder(cfg)


def test_normalised_sums_divide_by_the_active_afferents_and_w_max():
    weights = np.zeros((1, 3, 2), np.float32)          # one mac, 3 afferents, 2 cells; w_max 4
    weights[0, 0, 0] = 4                               # cell 0: afferent 0 only; cell 1: all three
    weights[0, :, 1] = 4
    u = normalised_sums(weights, np.ones((1, 1, 3), np.float32), 4)
    np.testing.assert_allclose(u[0, 0], [1 / 3, 1.0], rtol=1e-6)


def test_local_support_multiplies_the_powers_of_u_and_h():
    cfg = MacConfig(n_cms=1, cells_per_cm=2, lambda_u=2.0, lambda_h=1.0, sequences=True)
    v = local_support(np.array([[[0.5, 1.0]]], np.float32), np.array([[[0.5, 0.25]]], np.float32), cfg)
    np.testing.assert_allclose(v.reshape(-1), [0.5 ** 2 * 0.5, 1.0 * 0.25], rtol=1e-6)


def test_sequence_recall_scores_only_the_frames_after_the_two_cue_frames(monkeypatch):
    """The two cue frames are given, not recalled: a control that recalls nothing after its cue scores 0."""
    def cue_then_nothing(self, cue, length):
        return np.concatenate([cue, np.zeros((length - len(cue), cue.shape[1]), bool)])

    monkeypatch.setattr(SuccessorMemory, "recall", cue_then_nothing)
    x = np.random.default_rng(0).random((12, 64)) > 0.5
    ev = EvalConfig(sequences=2, sequence_length=4, sequence_cms=4, sequence_cells_per_cm=8)
    assert sequence_recall(SparseyConfig(image_shape=[8, 8]), ev, FlyHashConfig(), x, seed=0)[
        "sequence_recall_flyhash"] == 0.0


def test_sequence_recall_may_use_every_item_but_not_one_more():
    """sequences × sequence_length frames may be all the items given; one frame more is a one-line ConfigError."""
    x = np.random.default_rng(0).random((8, 64)) > 0.5
    ev = EvalConfig(sequences=2, sequence_length=4, sequence_cms=4, sequence_cells_per_cm=8)
    got = sequence_recall(SparseyConfig(image_shape=[8, 8]), ev, FlyHashConfig(), x, seed=0)
    assert 0.0 <= got["sequence_recall_sparsey"] <= 1.0 and 0.0 <= got["sequence_recall_flyhash"] <= 1.0
    with pytest.raises(ConfigError, match="= 8 frames, but only 7 training items$"):
        sequence_recall(SparseyConfig(image_shape=[8, 8]), ev, FlyHashConfig(), x[:7], seed=0)


def test_mac_activity_code_turns_each_active_mac_into_q_on_bits():
    """The gating control: [B, n_macs · Q] with Q bits on for every level-1 mac active in the code, none else."""
    coder = SparseyCoder(SparseyConfig(**GRID))
    codes = coder.encode(random_patterns(5, 0, n_pixels=784, density=0.2))[0]
    gate = mac_activity_code(coder, codes)
    m, cells = coder.level1.n_macs, GRID["mac"].n_cells
    active = codes[:, :m * cells].reshape(5, m, cells).any(axis=2)
    assert gate.shape == (5, m * GRID["mac"].n_cms) and active.any()
    assert gate.sum(axis=1).tolist() == (GRID["mac"].n_cms * active.sum(axis=1)).tolist()
