"""Edges of HLOP learning graphs and the offload API: a diverging rate, learning rows that cannot learn,
hand-edited files and bad arguments are one-line errors, and no NaN weights are written."""

import subprocess
import warnings

import h5py
import numpy as np
import pytest
import torch

from spikecl.cli import main
from spikecl.continual.hlop_offload import frozen_rows, presynaptic_activity
from spikecl.continual.strategies import build_strategy
from spikecl.errors import ConfigError, NumericalError, ResultsError, ShapeError, SpikeCLError
from spikecl.export import hlop_graph as hg

from lava_support import ROOT, checkout_env, require_environment
from hdf5_files import damage_reads_or_is_one_line, edited, heap_damage_is_refused

N, K = 12, 2


def activity(scale=1.0, samples=40):
    rng = np.random.default_rng(0)
    return rng.standard_normal((samples, N)) * np.linspace(3, 0.3, N) * scale


def diverging_graph(tmp_path):
    """A graph file whose rate was picked for activity 10 times weaker (η‖x‖² ≈ 10 instead of 0.1), edited by hand
    (write_graph refuses it); returns (path, the graph unchecked)."""
    graph = hg.make_graph(activity(0.1), K, epochs=2, lr=0.1, layer="layers.0")
    path = hg.write_graph(tmp_path / "g_x10.h5", graph)
    graph.activity = activity(1.0)
    with edited(path, "a") as f:
        f["activity"][...] = graph.activity
    return path, graph


def test_a_diverging_rate_is_one_line_naming_lr_log2(tmp_path, capsys):
    path, graph = diverging_graph(tmp_path)
    with pytest.raises(ConfigError, match=f"lr_log2 = {graph.lr_log2}\\) is too large .* below 2"):
        hg.read_graph(path)
    with pytest.raises(ConfigError, match="too large for this activity"):
        hg.write_graph(tmp_path / "other.h5", graph)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # no overflow RuntimeWarning either
        with pytest.raises(NumericalError, match=f"learning diverged .*lr_log2 = {graph.lr_log2}"):
            hg.reference_learn(graph)                          # an unchecked graph still ends in one line
    assert main(["deploy", str(path), "--backend", "reference"]) == 2
    err = capsys.readouterr().err
    assert "too large for this activity" in err and err.count("\n") == 1
    good = hg.make_graph(activity(), K, epochs=2, lr=0.1)      # the rate make_graph picks learns
    assert np.all(np.isfinite(hg.reference_learn(good)[0]))


@pytest.mark.lava
def test_the_lava_learner_refuses_a_diverging_rate_and_writes_nothing(tmp_path):
    python = require_environment(".venv-lava", "lava")
    path, out = diverging_graph(tmp_path)[0], tmp_path / "learned.h5"
    done = subprocess.run([str(python), "-m", "spikecl_lava.learning.oja", str(path), "-o", str(out)],
                          capture_output=True, text=True, env=checkout_env(), cwd=ROOT, timeout=300)
    assert done.returncode == 2 and "too large for this activity" in done.stderr and not out.exists()
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("h_init", [np.zeros((K, N)), np.ones((K, N))])
def test_learning_rows_must_be_independent(tmp_path, h_init):
    """Oja's rule never moves a zero row (y = Hx = 0) and moves equal rows alike: such an h_init learns nothing."""
    graph = hg.make_graph(activity(), K)
    path = hg.write_graph(tmp_path / "g.h5", graph)
    with edited(path, "a") as f:
        f["h_init"][...] = h_init
    with pytest.raises(ShapeError, match=f"h_init's {K} rows span only {int(h_init.any())} dimensions"):
        hg.read_graph(path)
    graph.h_init = h_init
    with pytest.raises(ShapeError, match="linearly independent"):
        hg.write_graph(tmp_path / "other.h5", graph)


@pytest.mark.parametrize("edit, error, message", [
    (lambda f: f.attrs.__setitem__("epochs", "two"), ConfigError, "epochs must be an integer, got 'two'"),
    (lambda f: f.attrs.__setitem__("lr_log2", -9.7), ConfigError, "lr_log2 must be an integer, got -9.7"),
    (lambda f: f.attrs.__setitem__("lr_log2", -9.0), ConfigError, "lr_log2 must be an integer, got -9.0"),
    (lambda f: (f.__delitem__("activity"), f.create_dataset("activity", data=np.array([b"abc", b"def"]))),
     ShapeError, "activity must hold real numbers, got dtype |S3"),
    (lambda f: (f.__delitem__("activity"), f.create_group("activity")), ResultsError,
     "activity is not a dataset \\(a Group\\)"),
    (lambda f: f.attrs.__setitem__("lr_log2", 0), ConfigError,
     "the rate 2\\^0 \\(lr_log2 = 0\\) is too large for this activity"),
    (lambda f: f.attrs.__setitem__("epochs", 10**12), ConfigError,
     "epochs must be in 1..1000 \\(MAX_EPOCHS, passes over the activity\\), got 1000000000000"),
    (lambda f: f.attrs.__setitem__("epochs", 0), ConfigError, "epochs must be in 1..1000"),
    (lambda f: (f.__delitem__("activity"), f.create_dataset("activity", data=np.ones((40, N), bool))),
     ShapeError, "activity must hold real numbers, got dtype bool"),
    (lambda f: (f.__delitem__("h_old"), f.create_dataset("h_old", data=np.zeros((0, N), bool))),
     ShapeError, "h_old must hold real numbers, got dtype bool"),
    (lambda f: f.attrs.__setitem__("lr", 0.5), ResultsError,
     "unknown attribute 'lr' \\(an hlop-lateral file carries learning_graph, lr_log2, epochs, layer\\)"),
])
def test_hand_edited_graph_files_are_refused_in_one_line(tmp_path, edit, error, message):
    path = hg.write_graph(tmp_path / "g.h5", hg.make_graph(activity(), K))
    with edited(path, "a") as f:
        edit(f)
    with pytest.raises(error, match=f"{path}: {message}".replace("|", "\\|")):
        hg.read_graph(path)


@pytest.mark.parametrize("key", ["activity", "h_init"])
def test_a_huge_declared_dataset_is_refused_before_it_is_read(tmp_path, capsys, key):
    """A chunked [2^31, 4096] dataset is a few kB on disk and 64 TiB in memory: its declared size is checked."""
    path = hg.write_graph(tmp_path / "g.h5", hg.make_graph(activity(), K))
    with edited(path, "a") as f:
        del f[key]
        f.create_dataset(key, shape=(2**31, 4096), dtype=np.float64, chunks=(1, 4096))
    assert path.stat().st_size < 100_000
    with pytest.raises(ResultsError, match=f"{key} declares shape \\(2147483648, 4096\\)"):
        hg.read_graph(path)
    assert main(["deploy", str(path), "--backend", "reference"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_huge_epochs_value_is_refused_before_any_learning(tmp_path, capsys):
    path = hg.write_graph(tmp_path / "g.h5", hg.make_graph(activity(), K))
    with edited(path, "a") as f:
        f.attrs["epochs"] = 10**12                          # would learn for ever
    assert main(["deploy", str(path), "--backend", "reference"]) == 2
    err = capsys.readouterr().err
    assert f"epochs must be in 1..{hg.MAX_EPOCHS}" in err and err.count("\n") == 1
    with pytest.raises(ConfigError, match="epochs must be in 1..1000"):
        hg.make_graph(activity(), K, epochs=hg.MAX_EPOCHS + 1)
    assert hg.make_graph(activity(), K, epochs=hg.MAX_EPOCHS).epochs == hg.MAX_EPOCHS


def test_frozen_rows_must_be_orthonormal_within_the_tolerance(tmp_path, capsys):
    """The circuit subtracts h_oldᵀ(h_old x) as given: 2·I would leak −x's frozen component into the new neurons."""
    frozen = np.eye(N)[:2]
    path = hg.write_graph(tmp_path / "g.h5", hg.make_graph(activity(), K, frozen))
    with edited(path, "a") as f:
        f["h_old"][...] = 2 * frozen
    message = "h_old's frozen rows are not orthonormal: |h_old h_oldᵀ − I| = 3 > 0.25"
    with pytest.raises(ShapeError, match=f"{path}: {message}".replace("|", "\\|")):
        hg.read_graph(path)
    assert main(["deploy", str(path), "--backend", "reference"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    for scale, fits in ((1.2, True), (1.3, False)):            # deviation 0.2 passes, 0.3 does not
        if fits:
            assert hg.make_graph(activity(), K, frozen * np.sqrt(scale)).h_old.shape == (2, N)
        else:
            with pytest.raises(ShapeError, match="= 0.3 > 0.25"):
                hg.make_graph(activity(), K, frozen * np.sqrt(scale))
    graph = hg.make_graph(activity(), 4, epochs=2, lr=0.1)
    learned = hg.reference_learn(graph)[0]                     # Oja-learned rows (not exactly orthonormal) pass
    assert 0 < np.max(np.abs(learned @ learned.T - np.eye(4))) < hg.ORTHONORMAL_TOLERANCE / 3
    assert hg.make_graph(activity(), K, learned).h_old.shape == (4, N)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be a finite number > 0, got -1.0"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"lr_log2": -3.5}, "lr_log2 must be an integer, got -3.5"),
    ({"lr_log2": -9, "lr": -1.0}, "lr must be a finite number > 0, got -1.0"),
    ({"lr_log2": -9, "lr": float("nan")}, "lr must be a finite number > 0, got nan"),
    ({"lr_log2": -9, "lr": "fast"}, "lr must be a finite number > 0, got 'fast'"),
    ({"lr_log2": -3}, "lr_log2 = -3\\) is too large for this activity: .* lr_log2 ≤ -6"),
])
def test_make_graph_refuses_bad_rates(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        hg.make_graph(activity(), K, **kwargs)
    assert hg.make_graph(activity(), K, lr_log2=-9).lr_log2 == -9


@pytest.mark.parametrize("scale", [1e-3, 1e-6, 1.0])
def test_the_default_rate_is_always_valid(scale):
    """Weak activity clamps the default to 0; one sample far above the mean caps it below 2 / max‖x‖²; the rate of
    activity whose squares are subnormal is 0, not a crash (2 / peak overflowed to inf)."""
    x = activity(scale)
    x[0] *= 30 if scale == 1.0 else 1
    graph = hg.make_graph(x, K, epochs=2)
    peak = np.max(np.sum(x ** 2, axis=1))
    assert graph.lr_log2 <= 0 and 2.0 ** graph.lr_log2 * peak < 2
    learned = hg.reference_learn(graph)[0]
    assert np.all(np.isfinite(learned)) and not np.array_equal(learned, graph.h_init)      # it learns
    assert hg.default_rate(activity(1e-160)) == 0 and hg._max_rate(activity(1e-160)) > 1000      # no int(inf)


@pytest.mark.parametrize("x, message", [
    (activity(1e160), "mean squared row norm is inf"),
    (activity(1e25), "needs a rate below 2^-60"),
])
def test_make_graph_refuses_activity_no_rate_fits(x, message):
    with pytest.raises(ShapeError, match=message.replace("^", "\\^")) as info:
        hg.make_graph(x, K)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="too large for this activity: .* so scale the activity down$"):
        hg.make_graph(x, K, lr_log2=-60)


@pytest.mark.parametrize("case", ["zero", "inside the frozen subspace", "squares underflow", "updates vanish"])
def test_a_graph_with_nothing_to_learn_is_refused_wherever_it_is_read(tmp_path, case):
    """No principal subspace to learn: make_graph refused exact zeros only, check, write_graph and read_graph took
    them, and deploy reported angles to the arbitrary basis an SVD gives round-off."""
    rng = np.random.default_rng(0)
    inside = case == "inside the frozen subspace"
    h_old = hg.orthonormal_rows(rng.standard_normal((3, 8))) if inside else np.zeros((0, 8))
    act = rng.standard_normal((10, 3)) @ h_old if inside else np.zeros((10, 8)) if case == "zero" else \
        rng.standard_normal((10, 8)) * (1e-170 if case == "squares underflow" else 1e-12)
    message = (r"^hlop-lateral: the activity is too small to learn from \(its largest squared row norm .* leaves "
               r"Oja's updates below float64's resolution; values up to .*\); scale it up$"
               if case in ("squares underflow", "updates vanish") else
               r"^hlop-lateral: the activity is zero outside the frozen subspace \(up to round-off\); nothing to "
               r"learn$")
    graph = hg.HLOPGraph(act, hg.initial_rows(2, 8, h_old), h_old, -4, 1)
    for use in (hg.check, lambda g: hg.write_graph(tmp_path / "zero.h5", g), lambda g: hg.make_graph(g.activity, 2,
                                                                                                    h_old=h_old)):
        with pytest.raises(ShapeError, match=message):
            use(graph)
    assert not (tmp_path / "zero.h5").exists()


@pytest.fixture(scope="module")
def trained_hlop():
    from spikecl.continual.strategy import Simulation, TaskData
    from spikecl.snn import build_mlp

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    task = TaskData(0, torch.rand(60, 16, generator=g), torch.randint(0, 3, (60,), generator=g),
                    torch.zeros(60, dtype=torch.long))
    s = build_strategy("hlop", build_mlp(16, [8], 3), {"hlop": {"neurons": [[2, 2]], "activity": "rate"}},
                       Simulation(num_steps=2))
    s.before_task(0, task, [task])
    s.after_task(0, task)
    return s, task


@pytest.mark.parametrize("name, value, kwargs", [
    ("samples", -5, {}), ("samples", 0, {}), ("samples", 2.5, {}), ("max_rows", 0, {"samples": 10}),
    ("samples", True, {}), ("max_rows", True, {"samples": 10}),
])
def test_presynaptic_activity_needs_positive_counts(trained_hlop, name, value, kwargs):
    s, task = trained_hlop
    with pytest.raises(ConfigError, match=f"hlop offload: {name} must be an integer ≥ 1, got {value}"):
        presynaptic_activity(s, task, "layers.0", **{**kwargs, name: value})
    assert presynaptic_activity(s, task, "layers.0", samples=5).shape == (5, 16)


def test_the_offload_takes_a_combinations_hlop_part_and_refuses_other_strategies(trained_hlop):
    from spikecl.continual.strategy import Simulation
    from spikecl.snn import build_mlp

    s, task = trained_hlop
    combined = build_strategy("hlop+replay", s.model, {"hlop": {"neurons": [[2, 2]], "activity": "rate"}},
                              Simulation(num_steps=2))
    combined.parts[0].h_old = s.h_old
    assert np.array_equal(frozen_rows(combined, "layers.0"), frozen_rows(s, "layers.0"))
    assert np.array_equal(presynaptic_activity(combined, task, "layers.0", samples=5),
                          presynaptic_activity(s, task, "layers.0", samples=5))
    with pytest.raises(ConfigError, match="hlop offload: GPM is not HLOP nor a combination with it"):
        frozen_rows(build_strategy("gpm", build_mlp(16, [8], 3)), "layers.0")


def test_the_offload_names_a_synapse_hlop_does_not_protect(trained_hlop):
    """A layer name HLOP does not protect is a one-line error naming the known ones, not a KeyError."""
    s, task = trained_hlop
    for call in (lambda: presynaptic_activity(s, task, "layers.1", samples=5), lambda: frozen_rows(s, "layers.1")):
        with pytest.raises(SpikeCLError, match=r"^hlop offload: no protected synapse 'layers.1' \(known: layers.0, "
                                               r"readout\)$"):
            call()


def test_presynaptic_activity_rows_are_float64_capped_by_the_task_and_drawn_by_seed(trained_hlop):
    """Rows [N, n] in float64 (as frozen_rows): samples beyond the task's 60 take all 60; max_rows draws that many of
    them at random, the same for one seed and others for another; activity "steps" gives one row per time step."""
    s, task = trained_hlop
    rows = presynaptic_activity(s, task, "layers.0", samples=100)
    assert rows.shape == (60, 16) and rows.dtype == np.float64 and frozen_rows(s, "layers.0").dtype == np.float64
    drawn = {seed: presynaptic_activity(s, task, "layers.0", samples=60, max_rows=7, seed=seed) for seed in (1, 2)}
    assert drawn[1].shape == (7, 16) and all((rows == row).all(axis=1).any() for row in drawn[1])
    assert np.array_equal(drawn[1], presynaptic_activity(s, task, "layers.0", samples=60, max_rows=7, seed=1))
    assert not np.array_equal(drawn[1], drawn[2])
    steps = build_strategy("hlop", s.model, {"hlop": {"neurons": [[2, 2]], "activity": "steps"}}, s.sim)
    assert presynaptic_activity(steps, task, "layers.0", samples=5).shape == (10, 16)         # T = 2 rows each


def test_load_subspace_refuses_more_rows_than_dimensions(trained_hlop):
    s, _ = trained_hlop
    before = s.h_old["layers.0"].clone()
    with pytest.raises(SpikeCLError, match="20 rows in 16 dimensions"):
        s.load_subspace("layers.0", np.random.default_rng(0).standard_normal((20, 16)))
    assert torch.equal(s.h_old["layers.0"], before)


def test_load_subspace_refuses_rows_i_minus_hth_would_not_project_with(trained_hlop):
    """Published HLOP projects with I − HᵀH: rows of norm √2 would flip their direction instead of removing it."""
    s, _ = trained_hlop
    before = s.h_old["layers.0"].clone()
    with pytest.raises(SpikeCLError, match=r"rows are not orthonormal \(max\|H Hᵀ − I\| = 1 > 0.25\)"):
        s.load_subspace("layers.0", np.eye(16)[:2] * np.sqrt(2))
    assert torch.equal(s.h_old["layers.0"], before)
    s.load_subspace("layers.0", np.eye(16)[:2] * 1.05)                 # Oja's rows: near orthonormal, taken
    assert s.h_old["layers.0"].shape == (2, 16)
    from spikecl.continual.strategies.hlop import ORTHONORMAL_TOLERANCE
    assert ORTHONORMAL_TOLERANCE == hg.ORTHONORMAL_TOLERANCE              # the graph's frozen rows: the same bound


@pytest.mark.lava
@pytest.mark.parametrize("learner", ["oja", "ca3"])
def test_the_lava_learners_never_write_over_their_graph_or_an_existing_file(tmp_path, learner):
    """``-o`` naming the graph itself is refused even with --overwrite; an existing file needs --overwrite. Both are
    checked before Lava starts and leave the files as they were."""
    python = require_environment(".venv-lava", "lava")
    graph, other = tmp_path / "graph.h5", tmp_path / "other.h5"
    graph.write_bytes(b"a graph"), other.write_bytes(b"a result")
    for output, flags, message in ((graph, ["--overwrite"], "is the graph being learned"),
                                   (other, [], "exists; pass --overwrite to replace it")):
        done = subprocess.run([str(python), "-m", f"spikecl_lava.learning.{learner}", str(graph), "-o", str(output),
                               *flags], capture_output=True, text=True, env=checkout_env(), cwd=ROOT, timeout=300)
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1
    assert graph.read_bytes() == b"a graph" and other.read_bytes() == b"a result"


def test_a_learning_graph_never_replaces_an_existing_file_unless_asked(tmp_path):
    """As every spikecl writer: an existing file (here an unrelated one) is refused, kept intact, and replaced
    only with ``overwrite=True``."""
    import h5py

    from spikecl.errors import ExistsError

    precious = tmp_path / "precious.h5"
    with h5py.File(precious, "w") as f:
        f["results"] = np.arange(5)
    graph = hg.make_graph(activity(), K)
    with pytest.raises(ExistsError, match="precious.h5 exists"):
        hg.write_graph(precious, graph)
    with h5py.File(precious) as f:
        assert list(f) == ["results"]
    hg.write_graph(precious, graph, overwrite=True)
    with h5py.File(precious) as f:
        assert "activity" in f and "results" not in f


def test_load_subspace_takes_an_empty_subspace_as_nothing_protected(trained_hlop):
    """A synapse whose recorded activity was silent has no rows: [0, n] loads, protects nothing, and the next task
    starts on it."""
    s, task = trained_hlop
    s.load_subspace("layers.0", np.zeros((0, 16)))
    assert s.h_old["layers.0"].shape == (0, 16) and s.basis["layers.0"].shape == (0, 16)
    s.before_task(1, task, [task])
    assert s.h_new["layers.0"].shape[1] == 16


def test_a_graph_libhdf5_would_loop_on_is_refused_before_it_is_opened(tmp_path):
    """A zeroed global heap object (libhdf5 walks it for ever, deaf to Ctrl-C) is one line, not a hang: the
    graph's seal, or in a graph without it the heap check."""
    heap_damage_is_refused(hg.write_graph(tmp_path / "g.h5", hg.make_graph(activity(), K)), hg.read_graph,
                           ResultsError)


def test_damaged_bytes_of_a_graph_are_one_line_errors_or_read(tmp_path):
    """Zeroed blocks across the file: h5py's errors on the damage are the reader's one-line ResultsError; the
    graph's seal refuses every such file, so each is also tested sealed over its damage (an older graph)."""

    from spikecl.export.learning_graphs import kind_of

    path = hg.write_graph(tmp_path / "g.h5", hg.make_graph(activity(), K))
    def read(path):
        assert kind_of(path) in (None, "hlop-lateral")
        hg.read_graph(path)

    damage_reads_or_is_one_line(path, read, SpikeCLError)     # damaged bytes, or values the checks refuse


def test_check_refuses_more_learning_and_frozen_rows_than_dimensions():
    """k + k_old <= n: 3 learning rows beside 2 frozen ones in 4 dimensions cannot all be independent."""
    with pytest.raises(ShapeError, match="need 1 ≤ k and k \\+ k_old ≤ n, got k = 3, k_old = 2, n = 4"):
        hg.check(hg.HLOPGraph(activity()[:, :4], np.eye(4)[1:], np.eye(4)[:2], -8))


def test_the_rate_must_lie_in_its_range_and_keep_eta_times_the_peak_norm_below_2():
    """max‖x‖² = 3: 2^-1·3 < 2 is taken, 2^0·3 is not (lr_log2 ≤ -1); lr_log2 = 1 is outside [-60, 0] even for
    activity weak enough to take it."""
    x, h_init, none = np.array([[np.sqrt(3.0), 0, 0], [0, 1.0, 0]]), np.eye(3)[:1], np.zeros((0, 3))
    assert hg.check(hg.HLOPGraph(x, h_init, none, -1)).lr_log2 == -1
    with pytest.raises(ConfigError, match="lr_log2 = 0\\) is too large for this activity: .* lr_log2 ≤ -1$"):
        hg.check(hg.HLOPGraph(x, h_init, none, 0))
    with pytest.raises(ConfigError, match="lr_log2 must be in \\[-60, 0\\], got 1"):
        hg.check(hg.HLOPGraph(x * 0.1, h_init, none, 1))


def test_deploy_compares_with_the_residual_subspace_and_the_whole_torch_basis(tmp_path):
    """With a frozen row e0, the learned rows are compared with the principal subspace of the activity left
    outside e0 (e1, e2; not e0, e1), and the whole learned basis (frozen + learned, 3 rows) with h_torch."""
    x = np.random.default_rng(0).standard_normal((100, 6)) * np.array([6.0, 4.0, 3.0, 0.3, 0.3, 0.3])
    graph = hg.make_graph(x, 2, np.eye(6)[:1], epochs=3, lr=0.1, h_torch=np.eye(6)[:3])
    report = hg.deploy(hg.write_graph(tmp_path / "g.h5", graph), "reference")
    assert len(report["angles_to_principal_deg"]) == 2 and max(report["angles_to_principal_deg"]) < 5
    assert len(report["angles_to_torch_deg"]) == 3 and max(report["angles_to_torch_deg"]) < 5


def test_new_rows_start_orthonormal_and_orthogonal_to_the_frozen_ones():
    """initial_rows gives k orthonormal rows outside span(h_old), as HLOP initialises new neurons."""
    h_old = hg.orthonormal_rows(np.random.default_rng(1).standard_normal((2, 6)))
    rows = hg.initial_rows(3, 6, h_old)
    assert rows.shape == (3, 6) and np.max(np.abs(rows @ h_old.T)) < 1e-12
    assert np.allclose(rows @ rows.T, np.eye(3), atol=1e-12)


def test_deploy_reports_the_largest_deviation_of_hht_from_identity_either_sign(tmp_path):
    """orthonormality_error is max|HHᵀ − I|: rows of norm 0.5 that barely learn (rate 2^-60) report 0.75,
    a deviation below the identity counting as much as one above it."""
    graph = hg.HLOPGraph(activity(), 0.5 * np.eye(N)[:K], np.zeros((0, N)), -60)
    report = hg.deploy(hg.write_graph(tmp_path / "g.h5", graph), "reference")
    assert report["orthonormality_error"] == pytest.approx(0.75, abs=1e-9)


def test_a_network_or_ca3_graph_given_as_an_hlop_graph_is_named(tmp_path):
    """A netx network or a CA3 learning graph handed to the HLOP learner was called 'not a complete hlop-lateral
    file (missing activity, h_init, ...)'."""
    from spikecl.export.netx import write_netx
    from spikecl.export.quantize import quantize
    from spikecl.export.spec import LayerSpec, NetworkSpec

    spec = NetworkSpec((LayerSpec("hidden0", np.full((4, 3), 0.5), None, 0.9, 1.0, "zero"),
                        LayerSpec("readout", np.full((2, 4), 0.5), None, 0.9, 1.0, "none")), 4, "direct", 2)
    net = write_netx(tmp_path / "net.h5", quantize(spec))
    with pytest.raises(ResultsError, match=r"net.h5: an exported network \(netx\), not an hlop-lateral learning graph"):
        hg.read_graph(net)
    with h5py.File(tmp_path / "ca3.h5", "w") as f:
        f.attrs["learning_graph"] = "ca3"
    with pytest.raises(ResultsError, match=r"ca3.h5: a ca3 learning graph, not an hlop-lateral one$"):
        hg.read_graph(tmp_path / "ca3.h5")
