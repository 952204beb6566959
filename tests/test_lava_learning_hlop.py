"""HLOP's lateral Hebbian neurons learning on Lava's learning engine (lava-nc 0.10.0, floating-point CPU models):
the learned subspace, exact agreement with the numpy model of the rule, G = Hᵀ, agreement with spikecl's torch
HLOP rule, refusal of bad files, and ``spikecl deploy`` end to end.

Synthetic activity: n = 24, a 3-dimensional principal subspace with standard deviations 5, 4, 3 over isotropic
noise 0.5 (eigen-gap 9 → 0.25), 200 samples, 2 epochs at η = 2^-9 (0.1 / E‖x‖² rounded down).
"""

import re

import numpy as np
import pytest
import torch

from spikecl.cli import main
from spikecl.continual.strategies.hlop import hebbian_iterations
from spikecl.errors import ConfigError, ResultsError, ShapeError
from spikecl.export import hlop_graph as hg

from lava_support import checkout_env, require_environment
from hdf5_files import edited

pytestmark = pytest.mark.lava

N, K, SAMPLES = 24, 3, 200
BOUND_DEG = 8.0            # largest principal angle allowed (measured: about 5°)


@pytest.fixture(scope="module", autouse=True)
def lava_environment():
    require_environment(".venv-lava", "lava")


def spectrum_data(seed=0, samples=SAMPLES, top=(5.0, 4.0, 3.0), noise=0.5):
    """Activity [samples, N] with principal directions basis[:, :len(top)] (columns of an orthogonal [N, N])."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((N, N)))[0]
    scale = np.array(list(top) + [noise] * (N - len(top)))
    return (rng.standard_normal((samples, N)) * scale) @ basis.T, basis


def torch_hlop_rows(x, h_init, epochs=2, batch=20):
    """spikecl's torch HLOP rule on the same rows: batches of 20, 5 iterations, normalised step 0.5, no momentum."""
    h, velocity = torch.tensor(h_init), torch.zeros(h_init.shape, dtype=torch.float64)
    rows = torch.tensor(x)
    for _ in range(epochs):
        for start in range(0, len(rows), batch):
            xb = rows[start:start + batch]
            h, velocity = hebbian_iterations(h, velocity, xb, xb, 0.5, 5, 0.0)
    return h.numpy()


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    x, basis = spectrum_data()
    graph = hg.make_graph(x, K, epochs=2, lr=0.1, layer="layers.0")
    h_torch = torch_hlop_rows(x, graph.h_init)
    graph.h_torch = h_torch
    path = hg.write_graph(tmp_path_factory.mktemp("hlop") / "graph.h5", graph)
    return hg.deploy(path, "lava-sim"), graph, basis, h_torch


def test_lava_oja_learns_the_principal_subspace(learned):
    report, graph, basis, _ = learned
    assert graph.lr_log2 == -9 and report["steps"] == 3 * SAMPLES * 2
    assert max(hg.principal_angles_deg(report["h"], basis[:, :K].T)) < BOUND_DEG
    assert max(report["angles_to_principal_deg"]) < BOUND_DEG
    assert report["orthonormality_error"] < 0.02                 # H Hᵀ ≈ I: the rule's fixed point
    assert max(hg.principal_angles_deg(graph.h_init, basis[:, :K].T)) > 45     # it did move


def test_lava_equals_the_numpy_model_and_g_stays_h_transposed(learned):
    report = learned[0]
    assert report["equals_reference"] and report["max_abs_difference"] < 1e-12
    assert report["g_equals_h_transposed"]
    assert 0 < report["ms_per_step"] < 50


def test_lava_subspace_matches_torch_hlop(learned):
    report, _, basis, h_torch = learned
    assert max(hg.principal_angles_deg(h_torch, basis[:, :K].T)) < BOUND_DEG
    assert max(report["angles_to_torch_deg"]) < BOUND_DEG


def test_new_neurons_learn_outside_the_frozen_rows():
    x, basis = spectrum_data(seed=1, samples=150, top=(6.0, 5.0, 4.0, 3.0))
    h_old = basis[:, :2].T                                       # the two leading directions, frozen
    graph = hg.make_graph(x, 2, h_old, epochs=2, lr=0.1)
    out = hg.learn(graph, "lava-sim")
    assert out["equals_reference"] and np.array_equal(out["g"], out["h"].T)
    assert max(hg.principal_angles_deg(out["h"], basis[:, 2:4].T)) < 10.0
    assert np.max(np.abs(out["h"] @ h_old.T)) < 0.05
    assert hg.learned_basis(graph, out["h"]).shape == (4, N)


def test_bad_graphs_are_refused(tmp_path):
    x, _ = spectrum_data(samples=20)
    good = hg.make_graph(x, K)
    with pytest.raises(ShapeError, match="activity must be"):
        hg.make_graph(x[0], K)
    with pytest.raises(ShapeError, match="NaN"):
        hg.make_graph(np.where(np.arange(N) == 3, np.nan, x), K)
    with pytest.raises(ShapeError, match="k \\+ k_old ≤ n"):
        hg.make_graph(x, N + 1)
    with pytest.raises(ShapeError, match="h_torch must be"):
        hg.check(hg.HLOPGraph(x, good.h_init, good.h_old, -8, h_torch=np.ones((3, N - 1))))
    for rows in (0, K - 1, K + 1):        # a basis of another size than the one learned: no angle would mean much
        with pytest.raises(ShapeError, match=re.escape(f"h_torch must be [k_old + k = {K}, {N}] (the torch-learned "
                                                       f"basis of the subspace this graph learns), got shape "
                                                       f"({rows}, {N})")):
            hg.check(hg.HLOPGraph(x, good.h_init, good.h_old, -8, h_torch=np.eye(N)[:rows]))
    assert hg.check(hg.HLOPGraph(x, good.h_init, good.h_old, -8, h_torch=np.eye(N)[:K])).h_torch.shape == (K, N)
    with pytest.raises(ShapeError, match="h_old must be"):
        hg.make_graph(x, K, np.ones((2, N - 1)))
    with pytest.raises(ShapeError, match="h_old holds NaN"):
        hg.make_graph(x, K, np.full((2, N), np.inf))
    with pytest.raises(ConfigError, match="epochs"):
        hg.make_graph(x, K, epochs=0)
    path = hg.write_graph(tmp_path / "g.h5", good)
    with edited(path, "a") as f:
        del f["h_init"]
    with pytest.raises(ResultsError, match="missing h_init"):
        hg.read_graph(path)
    assert main(["deploy", str(path), "--backend", "lava-sim"]) == 2          # one line, exit code 2


def test_deploy_command_end_to_end(tmp_path, capsys):
    import subprocess
    import sys

    x, basis = spectrum_data(samples=60)
    graph = hg.make_graph(x, K, epochs=1, lr=0.25)
    path = hg.write_graph(tmp_path / "graph.h5", graph)
    done = subprocess.run([sys.executable, "-m", "spikecl.cli", "deploy", str(path), "--backend", "lava-sim"],
                          capture_output=True, text=True, env=checkout_env())
    assert done.returncode == 0, done.stderr
    assert "G = Hᵀ exactly: True" in done.stdout and "model bit for bit: True" in done.stdout
    assert "180 steps" in done.stdout
    assert main(["deploy", str(path), "--backend", "reference"]) == 0
    assert "on reference" in capsys.readouterr().out


def test_torch_hlop_records_a_graph_and_uses_the_lava_learned_subspace():
    """A network's presynaptic activity on a task becomes a learning graph; the Lava-learned rows become HLOP's
    frozen subspace: later weight gradients are orthogonal to it and new neurons start outside it."""
    from spikecl.continual.hlop_offload import frozen_rows, presynaptic_activity
    from spikecl.continual.strategies import build_strategy
    from spikecl.continual.strategy import Simulation, TaskData
    from spikecl.errors import SpikeCLError
    from spikecl.snn import build_mlp

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(150, 4, generator=g) @ torch.randn(4, 12, generator=g) + 0.05 * torch.randn(150, 12, generator=g)
    task = TaskData(0, x, torch.randint(0, 3, (150,), generator=g), torch.zeros(150, dtype=torch.long))
    s = build_strategy("hlop", build_mlp(12, [16], 3), {"hlop": {"neurons": [[4, 6]], "activity": "rate"}},
                       Simulation(num_steps=3))
    s.before_task(0, task, [task])
    with pytest.raises(SpikeCLError, match="between tasks"):
        s.load_subspace("layers.0", np.eye(12)[:4])
    s.after_task(0, task)
    activity = presynaptic_activity(s, task, "layers.0", samples=150)
    graph = hg.make_graph(activity, 4, epochs=3, lr=0.1, h_torch=frozen_rows(s, "layers.0"))
    assert graph.activity.shape == (150, 12) and graph.h_torch.shape == (4, 12)
    out = hg.learn(graph, "lava-sim")
    rows = hg.learned_basis(graph, out["h"])
    assert out["equals_reference"] and rows.shape == (4, 12)
    a = graph.activity
    best = np.sum(np.linalg.svd(a, compute_uv=False)[:4] ** 2)
    assert np.sum((a @ hg.orthonormal_rows(rows).T) ** 2) > 0.98 * best         # holds the activity's energy
    s.load_subspace("layers.0", rows)
    assert s.dims[-1][0] == 4 and torch.allclose(s.h_old["layers.0"].double(), torch.tensor(rows))
    with pytest.raises(SpikeCLError, match=r"rows \[k, 12\]"):
        s.load_subspace("layers.0", np.ones((2, 11)))
    for dependent in (np.zeros((4, 12)), np.repeat(np.eye(12)[:1], 4, axis=0)):     # would protect nothing / flip x₀
        with pytest.raises(SpikeCLError, match="has 4 rows but rank [01] "):
            s.load_subspace("layers.0", dependent)
    s.before_task(1, task, [task, task])
    basis = s.basis["layers.0"]
    assert torch.abs(s.h_new["layers.0"] @ basis.T).max() < 5e-3       # basis rows orthonormal to ~1e-3
    weight = s.synapses[0].weight
    weight.grad = torch.randn_like(weight)
    before = torch.abs(weight.grad @ basis.T).max()
    s.project(s.basis)
    assert torch.abs(weight.grad @ basis.T).max() < 0.01 * before               # the update leaves span(rows) alone
