"""HLOP and GPM: subspace learning, exact protection of consolidated inputs, conv projection equivalence."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikecl.continual.projection import (Projector, ProjectionStrategy, activity_matrix, project_gradient,
                                          protected_synapses)
from spikecl.continual.strategies import build_strategy
from spikecl.continual.strategies.gpm import grow_basis
from spikecl.continual.strategies.hlop import (RateCode, _direct_iterations, hebbian_iterations, oja_subspace_step,
                                              orthonormal_rows)
from spikecl.continual.strategy import Simulation, TaskData
from spikecl.errors import ConfigError
from spikecl.snn import build_cnn, build_mlp, make_trainer


def principal_angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest principal angle between the row spaces of a [k, n] and b [k, n]."""
    qa, qb = orthonormal_rows(a).double(), orthonormal_rows(b).double()
    s = torch.linalg.svdvals(qa @ qb.T)
    return math.degrees(math.acos(min(1.0, s.min().item())))


@pytest.mark.parametrize("levels", [0, 40])
def test_oja_subspace_learner_finds_principal_subspace(levels):
    """Analogue lateral neurons, and spiking ones whose responses are rate-coded in 40 steps of ±20."""
    g = torch.Generator().manual_seed(0)
    n, k = 40, 5
    basis, _ = torch.linalg.qr(torch.randn(n, n, generator=g))
    spectrum = torch.cat([torch.tensor([5.0, 4.0, 3.5, 3.0, 2.5]), torch.full((n - k,), 0.3)])
    data = (torch.randn(3000, n, generator=g) * spectrum) @ basis.T   # known covariance
    h = orthonormal_rows(torch.randn(k, n, generator=g))
    for epoch in range(30):
        for batch in data.split(100):
            h += oja_subspace_step(h[:0], h, batch, lr=0.5, rates=RateCode(levels))
    assert principal_angle_deg(h, basis.T[:k]) < 3.0
    torch.testing.assert_close(h @ h.T, torch.eye(k), atol=0.05, rtol=0)


def test_spiking_lateral_neurons_rate_code_their_responses_as_the_papers_code_does():
    """HLOP-SNN's ``inference`` with ``spiking``: round(clamp(y, ±scale) / scale · T) / T · scale; a large response
    saturates at the scale and coarsens no other (no batch-wide maximum)."""
    y = torch.tensor([[0.3, 2.0, 30.0], [-0.1, 0.05, 1.0], [-25.0, -0.26, 19.9]])
    torch.testing.assert_close(RateCode(40, 20.0)(y), torch.tensor([[0.5, 2.0, 20.0], [0.0, 0.0, 1.0],
                                                                    [-20.0, -0.5, 20.0]]))
    torch.testing.assert_close(RateCode(40, 20.0)(y[1:2]), torch.tensor([[0.0, 0.0, 1.0]]))
    assert RateCode()(y) is y                                        # analogue: untouched


def _hebbian_problem(seed: int, n: int, k: int, batch: int, n_old: int):
    """Random presynaptic rows x [batch, n], an old orthonormal basis [n_old, n], x's residual against it, k new
    orthonormal rows h [k, n] and a small momentum velocity [k, n]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, n, generator=g)
    old = orthonormal_rows(torch.randn(n_old, n, generator=g))
    residual = x - (x @ old.T) @ old
    h = orthonormal_rows(torch.randn(k, n, generator=g))
    return x, old, residual, h, 1e-3 * torch.randn(k, n, generator=g)


@pytest.mark.parametrize("normalise", [True, False])
@pytest.mark.parametrize("momentum, levels", [(0.0, 0), (0.9, 0), (0.9, 40)])
def test_batch_coefficient_iterations_equal_direct_iterations(momentum, levels, normalise):
    """The O(B·k·(k+B)) coefficient form of many Hebbian steps on one batch gives the n-dimensional result, with
    the normalised step and with a fixed rate (the same rate here, so both move H alike)."""
    n, k, batch = 200, 12, 50
    x, old, residual, h, velocity = _hebbian_problem(1, n, k, batch, n_old=8)
    lr = 1.5 if normalise else 1.5 / float((residual ** 2).sum(1).mean())
    fast = hebbian_iterations(h, velocity, x, residual, lr, 20, momentum, RateCode(levels), normalise=normalise)
    slow = _direct_iterations(h, velocity, x, residual, lr, 20, momentum, RateCode(levels), float("inf"), normalise)
    assert (fast[0] - h).abs().max() > 0.05                     # the steps did move H
    torch.testing.assert_close(fast[0], slow[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(fast[1], slow[1], atol=1e-6, rtol=0)
    if not normalise:                                           # the same rate: the normalised step's result
        torch.testing.assert_close(fast[0], hebbian_iterations(h, velocity, x, residual, 1.5, 20, momentum,
                                                                 RateCode(levels))[0],
                                   atol=1e-5, rtol=0)
    clamped = hebbian_iterations(h, velocity, x, residual, lr, 20, momentum, RateCode(levels), clamp=1e-3,
                                 normalise=normalise)
    assert (clamped[0] - h).abs().max() <= 1e-3 + 1e-7


def test_new_lateral_neurons_learn_the_residual_subspace():
    g = torch.Generator().manual_seed(1)
    n = 30
    basis, _ = torch.linalg.qr(torch.randn(n, n, generator=g))
    data = (torch.randn(2000, n, generator=g) * torch.tensor([4.0, 3.0, 2.0, 1.5] + [0.1] * (n - 4))) @ basis.T
    old = basis.T[:2].contiguous()                       # already consolidated: the top-2 directions
    new = orthonormal_rows(torch.randn(2, n, generator=g))
    for epoch in range(30):
        for batch in data.split(100):
            new += oja_subspace_step(old, new, batch, lr=0.5)
    assert principal_angle_deg(new, basis.T[2:4]) < 5.0
    assert (new @ old.T).abs().max() < 0.05


def test_gpm_basis_reaches_the_energy_threshold():
    g = torch.Generator().manual_seed(2)
    activity = (torch.randn(200, 3, generator=g) @ torch.randn(3, 20, generator=g)
                + 0.01 * torch.randn(200, 20, generator=g))
    basis = grow_basis(torch.zeros(0, 20), activity, 0.99)
    assert basis.shape[0] == 3
    captured = ((activity @ basis.T) ** 2).sum() / (activity ** 2).sum()
    assert captured >= 0.99
    torch.testing.assert_close(basis @ basis.T, torch.eye(3), atol=1e-5, rtol=0)
    same = grow_basis(basis, activity, 0.99)
    assert same.shape[0] == 3                           # nothing new to add


@pytest.mark.parametrize("n, samples, rank", [(40, 15, 15), (40, 15, 6), (12, 60, 12), (12, 60, 5)])
def test_principal_directions_are_the_svds_of_numerically_nonzero_values(n, samples, rank):
    """Gram eigendecomposition, either side: the SVD's singular values (to round-off in the largest) and its
    subspaces, orthonormal; the directions a rank-deficient matrix lacks are left out."""
    from spikecl.continual.projection import principal_directions

    g = torch.Generator().manual_seed(rank)
    a = torch.randn(n, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, samples, generator=g,
                                                                              dtype=torch.float64)
    a *= torch.logspace(0, -2, samples, dtype=torch.float64)
    u, s = principal_directions(a)
    big_u, big_s, _ = torch.linalg.svd(a, full_matrices=False)
    assert s.shape == (rank,) and u.shape == (n, rank)
    torch.testing.assert_close(s, big_s[:rank], atol=1e-12 * big_s[0].item(), rtol=0)
    torch.testing.assert_close(u.T @ u, torch.eye(rank, dtype=u.dtype), atol=1e-9, rtol=0)
    for k in range(1, rank + 1):                  # the top-k subspaces agree (distinct singular values)
        assert torch.linalg.svdvals(u[:, :k].T @ big_u[:, :k]).min() > 1 - 1e-9


def test_gpm_basis_keeps_its_rows_and_adds_only_directions_with_energy():
    """grow_basis leaves the old rows as they are and adds orthonormal rows orthogonal to them; a threshold of 1
    adds every direction the residual activity has and none beyond (the residual here has rank 4)."""
    g = torch.Generator().manual_seed(3)
    first = torch.randn(100, 3, generator=g) @ torch.randn(3, 30, generator=g)
    basis = grow_basis(torch.zeros(0, 30), first, 1.0)
    assert basis.shape[0] == 3
    second = torch.cat([first, torch.randn(100, 4, generator=g) @ torch.randn(4, 30, generator=g)])
    grown = grow_basis(basis, second, 1.0)
    assert grown.shape[0] == 7 and torch.equal(grown[:3], basis)
    torch.testing.assert_close(grown @ grown.T, torch.eye(7), atol=1e-6, rtol=0)
    captured = ((second @ grown.T) ** 2).sum() / (second ** 2).sum()
    assert captured > 1 - 1e-5


def test_gpm_basis_adds_no_round_off_directions_at_threshold_one():
    """A basis that already spans the activity gains nothing at a threshold of 1: not the round-off of its float32
    rows (about 1e-15 of the energy), which earlier grew a full 800-row readout basis by 236 rows a task, nor
    beyond n rows; a real direction holding 1e-8 of the energy is still added."""
    g = torch.Generator().manual_seed(0)
    full = grow_basis(torch.zeros(0, 200), torch.rand(300, 200, generator=g), 1.0)
    assert full.shape[0] == 200
    spikes = (torch.rand(300, 200, generator=g) < 0.2).float()
    assert grow_basis(full, spikes, 1.0) is full
    activity = torch.randn(100, 3, generator=g) @ torch.randn(3, 30, generator=g)
    basis = grow_basis(torch.zeros(0, 30), activity, 1.0)
    assert basis.shape[0] == 3 and grow_basis(basis, activity, 1.0) is basis
    faint = torch.zeros(1, 30)
    faint[0, :] = torch.linalg.svd(basis, full_matrices=True).Vh[3]       # a unit direction outside the basis
    faint *= 1e-4 * activity.norm()                                       # 1e-8 of the activity's energy
    grown = grow_basis(basis, torch.cat([activity, faint]), 1.0)
    assert grown.shape[0] == 4
    assert torch.allclose((grown[3] @ faint[0]).abs(), faint.norm(), rtol=1e-4)


def test_gpm_basis_stops_at_the_direction_that_reaches_the_threshold_exactly():
    """GPM's criterion is ``≥ threshold``: directions of energies 9, 4, 1, 1, 1 (of 16, every share exact in
    binary) reach 13/16 with the first two, so no third is added; a basis already holding exactly 9/16 of the energy
    gains nothing at a threshold of 9/16, and one direction (the 4) at any threshold above it."""
    activity = torch.diag(torch.tensor([3.0, 2.0, 1.0, 1.0, 1.0]))          # rows: 3 e1, 2 e2, e3, e4, e5
    basis = grow_basis(torch.zeros(0, 5), activity, 13 / 16)
    torch.testing.assert_close(basis.abs(), torch.eye(5)[:2], atol=1e-6, rtol=0)
    first = torch.eye(5)[:1]
    assert grow_basis(first, activity, 9 / 16) is first
    grown = grow_basis(first, activity, 0.57)
    torch.testing.assert_close(grown.abs(), torch.eye(5)[:2], atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["gpm", "hlop"])
def test_projected_training_leaves_old_responses_unchanged(method):
    """Task A lives in a 6-d input subspace; after consolidation, training on task B must not change W x for any
    x in that subspace (first layer, to numerical precision)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    n = 20
    span = torch.randn(6, n, generator=g)
    xa = torch.rand(300, 6, generator=g) @ span.abs() / 6          # non-negative, rank 6
    xb = torch.rand(300, n, generator=g)
    task_a = TaskData(0, xa, torch.randint(0, 3, (300,), generator=g), torch.zeros(300, dtype=torch.long))
    task_b = TaskData(1, xb, torch.randint(0, 3, (300,), generator=g), torch.zeros(300, dtype=torch.long))
    net = build_mlp(n, [16], 3)
    options = {"gpm": {"thresholds": [0.999999, 0.999999]},
               "hlop": {"neurons": [[6, 16]], "iterations": 20, "lr": 1.0, "step": "normalised",
                        "orthonormalize": True}}                  # exact projection with an orthonormal basis
    s = build_strategy(method, net, {method: options[method]}, Simulation(num_steps=3))
    trainer = make_trainer("bptt", net, 3)
    for task in (task_a, task_b):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        train = s.before_task(task.task, task, [task_a, task_b][: task.task + 1])
        for epoch in range(15):
            for idx in torch.arange(300).split(50):
                trainer.train_batch(train.x[idx], train.y[idx], train.heads[idx], None, opt, s)
        s.after_task(task.task, train)
        if task.task == 0:
            w_after_a = net.layers[0].synapse.weight.detach().clone()
            basis = (s.bases if method == "gpm" else s.basis)["layers.0"].clone()
    w = net.layers[0].synapse.weight.detach()
    assert (w - w_after_a).abs().max() > 1e-3                       # it did learn task B
    consolidated = xa @ basis.T @ basis                                # task A inputs within the stored subspace
    torch.testing.assert_close(consolidated @ w.T, consolidated @ w_after_a.T, atol=1e-5, rtol=0)
    # and the stored subspace holds task A's inputs: their responses barely move
    drift = (xa @ w.T - xa @ w_after_a.T).norm() / (xa @ w_after_a.T).norm()
    assert drift < 0.01


@pytest.mark.parametrize("k", [3, 9, 11, 12])
def test_projection_through_the_complement_equals_the_direct_one(k):
    """Once most dimensions are protected, gradients are kept in the (smaller) complement: same result."""
    from spikecl.continual.projection import ProjectionStrategy, complement_rows

    g = torch.Generator().manual_seed(k)
    net = build_mlp(12, [5], 3)
    basis = orthonormal_rows(torch.randn(k, 12, generator=g))
    complement = complement_rows(basis)
    assert complement.shape == (12 - k, 12)
    torch.testing.assert_close(complement @ basis.T, torch.zeros(12 - k, k), atol=1e-6, rtol=0)
    p = protected_synapses(net)[0]
    grad = torch.randn(5, 12, generator=g)
    expected = grad - grad @ basis.T @ basis
    p.weight.grad = grad.clone()
    project_gradient(p, basis, complement)
    torch.testing.assert_close(p.weight.grad, expected, atol=1e-5, rtol=0)
    strategy = ProjectionStrategy(net)
    p.weight.grad = grad.clone()
    strategy.project({"layers.0": basis, "readout": net.readout.heads[0].weight.new_zeros(0, 5)})
    torch.testing.assert_close(p.weight.grad, expected, atol=1e-5, rtol=0)
    assert (strategy._projectors["layers.0"].complement is not None) == (2 * k > 12)


def test_conv_patch_projection_equals_weight_gradient_projection():
    torch.manual_seed(0)
    net = build_cnn((2, 8, 8), [3], 4, batch_norm=False)
    conv = net.layers[0].synapse
    x = torch.rand(5, 2, 8, 8)
    delta = torch.rand(5, 3, 8, 8)                                 # error at the conv output
    p = protected_synapses(net)[0]
    basis = orthonormal_rows(torch.randn(7, p.n_inputs))            # n = 2·3·3 = 18
    # (a) weight-gradient form: autograd gradient, then ΔW ← ΔW − ΔW Bᵀ B
    out = conv(x)
    out.backward(delta)
    project_gradient(p, basis)
    projected_weight_grad = conv.weight.grad.reshape(3, -1).clone()
    # (b) patch form: gradient from projected patches x⊥ = x − Bᵀ B x
    patches = F.unfold(x, 3, padding=1)                            # [B, 18, L]
    patches_perp = patches - basis.T @ (basis @ patches)
    grad_from_patches = torch.einsum("bol,bnl->on", delta.reshape(5, 3, -1), patches_perp)
    torch.testing.assert_close(projected_weight_grad, grad_from_patches, atol=1e-5, rtol=1e-5)


def test_activity_matrix_shapes():
    net = build_cnn((2, 8, 8), [3, 4], 4)
    with net.recording() as recorded:
        net(torch.rand(3, 5, 2, 8, 8))
    synapses = protected_synapses(net)
    assert [s.n_inputs for s in synapses] == [18, 27, 16]
    inputs = [(recorded.of(s.name), s.synapse) for s in synapses]
    assert activity_matrix(*inputs[0]).shape == (5 * 64, 18)
    assert activity_matrix(*inputs[1], max_rows=10).shape == (10, 27)
    assert activity_matrix(*inputs[2]).shape == (5, 16)
    rates, steps = activity_matrix(*inputs[2]), activity_matrix(*inputs[2], activity="steps")
    assert steps.shape == (3 * 5, 16)                                   # one row per time step and sample
    torch.testing.assert_close(steps.reshape(3, 5, 16).mean(dim=0), rates)
    multi = build_mlp(10, [8], 3, n_heads=2)
    assert [s.name for s in protected_synapses(multi)] == ["layers.0"]   # per-task heads are not projected


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("max_rows", [None, 7, 40, 10_000])
def test_static_input_rows_equal_those_of_its_materialised_copies(conv, max_rows):
    """A direct-encoded input (stride-0 time axis) gives the rows, and the random subsample, of its T copies."""
    synapse = nn.Conv2d(2, 3, 3, padding=1) if conv else nn.Linear(12, 4)
    x = (torch.rand(5, 2, 3, 2) < 0.3).float().reshape(5, *((2, 3, 2) if conv else (12,)))
    static = x.unsqueeze(0).expand(4, *x.shape)                          # T = 4 copies, never materialised
    assert static.stride(0) == 0
    rows = activity_matrix(static, synapse, max_rows, torch.Generator().manual_seed(3), "steps")
    copies = activity_matrix(static.contiguous(), synapse, max_rows, torch.Generator().manual_seed(3), "steps")
    assert torch.equal(rows, copies) and rows.shape[0] == min(4 * 5 * (6 if conv else 1), max_rows or 10**9)


@pytest.mark.parametrize("method", ["gpm", "hlop"])
def test_batch_norm_is_frozen_after_the_first_task(method):
    torch.manual_seed(0)
    net = build_cnn((1, 8, 8), [4], 3, n_heads=2)
    s = build_strategy(method, net, {"hlop": {"neurons": [[4, 8]]}} if method == "hlop" else {}, Simulation(2))
    g = torch.Generator().manual_seed(0)
    tasks = [TaskData(t, torch.rand(32, 1, 8, 8, generator=g), torch.randint(0, 3, (32,), generator=g),
                      torch.full((32,), t)) for t in range(2)]
    trainer = make_trainer("bptt", net, 2)
    bn = net.layers[0].norm
    for task in tasks:
        train = s.before_task(task.task, task, tasks[: task.task + 1])
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
        if task.task == 1:
            frozen = [t.clone() for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]
        for _ in range(3):
            trainer.train_batch(train.x, train.y, train.heads, None, opt, s)
        s.after_task(task.task, train)
    assert not bn.training and not bn.weight.requires_grad
    for before, after in zip(frozen, (bn.weight, bn.bias, bn.running_mean, bn.running_var)):
        torch.testing.assert_close(before, after)


@pytest.mark.parametrize("step_rows", [0, 1])
def test_final_hebbian_passes_capture_more_of_the_task_activity(step_rows):
    """Lateral neurons that take extra passes over a task with the weights fixed hold more of its activity (also
    when each mini-batch's update uses only B of its T·B time-step rows)."""
    g = torch.Generator().manual_seed(3)
    data = TaskData(0, torch.rand(256, 12, generator=g) * torch.linspace(1.0, 0.05, 12),
                    torch.randint(0, 3, (256,), generator=g), torch.zeros(256, dtype=torch.long))
    captured = {}
    for passes in (0, 3):
        torch.manual_seed(0)
        net = build_mlp(12, [16], 3)
        options = {"neurons": [[4, 6]], "final_passes": passes, "step_rows": step_rows}
        s = build_strategy("hlop", net, {"hlop": options}, Simulation(num_steps=3))
        s.before_task(0, data, [data])
        for batch in range(0, 256, 64):              # training batches: activity recorded, Hebbian update
            activity = s.activity_of(TaskData(0, data.x[batch:], data.y[batch:], data.heads[batch:]), 64)
            assert s.row_budget(s.synapses[0], activity.of("layers.0")) == (64 if step_rows else 4096)
            s.hebbian_update(activity)
        s.after_task(0, data)
        x = activity_matrix(s.activity_of(data, len(data)).of("layers.0"), s.synapses[0].synapse, activity="steps")
        basis = s.basis["layers.0"]
        captured[passes] = float(((x @ basis.T) ** 2).sum() / (x * x).sum())
    assert captured[3] > captured[0] + 0.02, captured


def test_final_hebbian_passes_draw_poisson_spikes_of_the_run_seed_not_the_global_generator():
    """Each process of a data-parallel run holds its own global generator state: the final passes' spikes come from
    a generator of (run seed, task), so the lateral neurons they learn are the same whatever that state is."""
    g = torch.Generator().manual_seed(3)
    data = TaskData(0, torch.rand(64, 12, generator=g), torch.randint(0, 3, (64,), generator=g),
                    torch.zeros(64, dtype=torch.long))
    learned = []
    for global_seed in (1, 2):
        torch.manual_seed(0)
        net = build_mlp(12, [16], 3)
        s = build_strategy("hlop", net, {"hlop": {"neurons": [[4, 6]], "final_passes": 2}},
                           Simulation(num_steps=3, encoder="poisson"))
        s.before_task(0, data, [data])
        torch.manual_seed(global_seed)
        s.after_task(0, data)
        learned.append(s.basis["layers.0"].clone())
    assert learned[0].abs().sum() > 0 and torch.equal(learned[0], learned[1])


@pytest.mark.parametrize("levels, rate, outcome", [(3, 0.1, "refused"), (100, 0.1, "learned"), (3, 0.0, "kept")])
def test_spiking_lateral_neurons_that_never_fire_are_refused_not_kept_as_random_rows(levels, rate, outcome):
    """Responses below lateral_scale / (2 lateral_levels) round to no spike: neurons that never fired in a task
    would protect their random starting rows. after_task says so in one line; neurons that fired are kept, and so
    are the rows of a Hebbian rate of 0 (a deliberate random-subspace control)."""
    g = torch.Generator().manual_seed(3)
    data = TaskData(0, torch.rand(64, 12, generator=g), torch.randint(0, 3, (64,), generator=g),
                    torch.zeros(64, dtype=torch.long))
    torch.manual_seed(0)
    net = build_mlp(12, [16], 3)
    s = build_strategy("hlop", net, {"hlop": {"neurons": [[4, 6]], "lateral_levels": levels, "fixed_lr": [rate]}},
                       Simulation(num_steps=3))
    s.before_task(0, data, [data])
    start = s.h_new["layers.0"].clone()
    s.hebbian_update(s.activity_of(data, 64))
    if outcome == "refused":
        with pytest.raises(ConfigError, match=r"lateral_levels: the spiking lateral neurons of layers.0 never fired "
                                              r"in task 1 .* = 3.33\), so they learned nothing"):
            s.after_task(0, data)
        return
    s.after_task(0, data)
    assert torch.equal(s.basis["layers.0"], start) == (outcome == "kept")
    assert s.state_dict()["start"]["layers.0"].shape[0] == 0             # no rows kept past their task


def test_hlop_energy_budget_sizes_each_task_from_its_residual_activity():
    """budget = 'energy': a task adds the lateral neurons GPM's criterion asks of its residual activity; a task
    whose inputs lie in the consolidated subspace adds none at the input synapse."""
    from spikecl.continual.projection import new_directions

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    n = 20
    xa = torch.rand(200, 6, generator=g) @ torch.randn(6, n, generator=g).abs() / 6       # rank 6
    task = TaskData(0, xa, torch.randint(0, 3, (200,), generator=g), torch.zeros(200, dtype=torch.long))
    net = build_mlp(n, [16], 3)
    s = build_strategy("hlop", net, {"hlop": {"budget": "energy", "energy": [0.99], "energy_samples": 200}},
                       Simulation(num_steps=2))
    s.before_task(0, task, [task])
    expected = new_directions(torch.zeros(0, n), xa, 0.99)
    assert 1 <= expected.shape[0] <= 6 and s.h_new["layers.0"].shape[0] == expected.shape[0]
    s.h_new["layers.0"] = expected.float()                 # as converged Hebbian neurons would hold it
    s.after_task(0, task)
    again = TaskData(1, xa.flip(0), task.y, task.heads)
    s.before_task(1, again, [task, again])
    assert s.h_new["layers.0"].shape[0] == 0                  # nothing new to hold


# -- shortcuts of the per-step cost: each equals the plain computation ----------------------------------------


@pytest.mark.parametrize("k, orthonormal", [(3, True), (9, True), (12, True), (3, False), (9, False)])
def test_projector_routes_equal_the_plain_projection(k, orthonormal):
    """x (I − BᵀB) directly, through the complement of an orthonormal basis, through I − BᵀB formed once (rows
    not orthonormal), and zero for a fully protected synapse; the same on a weight gradient."""
    from spikecl.continual.projection import Projector

    g = torch.Generator().manual_seed(k)
    basis = torch.randn(k, 12, generator=g)
    basis = orthonormal_rows(basis) if orthonormal else 0.3 * basis
    x = torch.randn(7, 12, generator=g)
    projector = Projector(basis, orthonormal)
    assert projector.full == (orthonormal and k == 12)
    assert (projector.complement is not None or projector.matrix is not None) == (2 * k > 12)
    expected = x - x @ basis.T @ basis
    torch.testing.assert_close(projector(x), expected, atol=1e-5, rtol=0)
    assert projector(x) is projector(x)                             # kept for the same, unchanged input
    net = build_mlp(12, [5], 3)
    p = protected_synapses(net)[0]
    p.weight.grad = x[:5].clone()
    projector.project_gradient(p)
    torch.testing.assert_close(p.weight.grad, expected[:5], atol=1e-5, rtol=0)


def test_projected_linear_gradient_equals_the_projected_weight_gradient():
    """deltaᵀ (x − x BᵀB) = (deltaᵀ x)(I − BᵀB); input and bias gradients unchanged."""
    from spikecl.continual.projection import Projector
    from spikecl.snn.layers import projected_linear

    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 10, generator=g, requires_grad=True)
    w = torch.randn(8, 10, generator=g, requires_grad=True)
    b = torch.randn(8, generator=g, requires_grad=True)
    delta = torch.randn(6, 8, generator=g)
    basis = orthonormal_rows(torch.randn(4, 10, generator=g))
    F.linear(x, w, b).backward(delta)
    plain = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    projected_linear(x, w, b, Projector(basis)).backward(delta)
    torch.testing.assert_close(x.grad, plain[0])
    torch.testing.assert_close(b.grad, plain[2])
    torch.testing.assert_close(w.grad, plain[1] - plain[1] @ basis.T @ basis, atol=1e-5, rtol=0)


def _one_projected_step(method, engine, project_inputs, options):
    """Weight gradients and lateral weights after one training step of ``method`` on a consolidated 20-40-30-3
    network (T = 3, batch 8 < 40 and T·B = 24 < 30 outputs: the presynaptic-row route where it is cheaper)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    net = build_mlp(20, [40, 30], 3, engine=engine)
    data = TaskData(0, torch.rand(64, 20, generator=g), torch.randint(0, 3, (64,), generator=g),
                    torch.zeros(64, dtype=torch.long))
    s = build_strategy(method, net, {method: options}, Simulation(num_steps=3))
    s.project_inputs = project_inputs
    s.before_task(0, data, [data])
    if method == "hlop":
        for name, h in s.h_new.items():               # consolidated neurons that are not orthonormal
            s.h_new[name] = 0.5 * torch.randn(h.shape, generator=g)
    s.after_task(0, data)
    s.before_task(1, data, [data, data])
    trainer = make_trainer("bptt", net, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    x, y, heads = s.batch(data.x[:8], data.y[:8], data.heads[:8])
    used = {}

    def record_use(activity=None):
        assert all(p.layer.weight_projection is None for p in s.synapses if p.layer is not None)   # the pass's only
        used.update({name: projector.used for name, projector in s.handed.items()})
        type(s).after_backward(s, activity)
    s.after_backward = record_use
    trainer.train_batch(x, y, heads, None, opt, s)
    grads = [p.weight.grad.clone() for p in s.synapses]
    lateral = [t.clone() for t in s.h_new.values()] if method == "hlop" else []
    return grads, lateral, used


@pytest.mark.parametrize("engine", ["fused", "snntorch"])
@pytest.mark.parametrize("method, options", [
    ("hlop", {"neurons": [[6, 12, 25], [4, 5, 3]]}),                               # I − HᵀH, a large readout basis
    ("hlop", {"neurons": [[6, 12, 30], [4, 5, 0]], "orthonormalize": True, "step": "normalised"}),  # full readout
    ("gpm", {"thresholds": [0.9, 0.97, 0.999]})])
def test_projecting_presynaptic_rows_equals_projecting_gradients(method, options, engine):
    """A training step whose weight gradients come from projected presynaptic rows (and whose Hebbian update
    reuses their residual, and learns from one copy of a static input's rows) gives the gradients and lateral
    weights of the plain projection."""
    fast = _one_projected_step(method, engine, True, options)
    plain = _one_projected_step(method, engine, False, options)
    assert fast[2] and all(fast[2].values()) and not plain[2]       # the fast route was taken, the plain one not
    for a, b in zip(fast[0] + fast[1], plain[0] + plain[1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("momentum, levels", [(0.0, 0), (0.9, 0), (0.9, 40)])
def test_hebbian_forms_equal_literal_oja_steps(momentum, levels):
    """Both forms of :func:`hebbian_iterations` (either picked by cost) equal a loop of literal Oja steps, and a
    static input's T copies of each row give the update of one copy."""
    from spikecl.continual.strategies.hlop import _coefficient_iterations, coefficient_cost, direct_cost

    n, k, batch = 60, 6, 20
    x, old, residual, h, velocity = _hebbian_problem(2, n, k, batch, n_old=5)
    lr = 0.5 / float((residual ** 2).sum(1).mean())                  # a stable fixed rate
    literal_h, literal_v = h, velocity
    for _ in range(5):
        step = oja_subspace_step(literal_h[:0], literal_h, x, lr, RateCode(levels), residual, normalise=False)
        literal_v = momentum * literal_v + (1 - momentum) * step if momentum else literal_v
        literal_h = literal_h + (literal_v if momentum else step)
    assert (literal_h - h).abs().max() > 1e-3                         # the steps did move H
    args = (h, velocity, x, residual, lr, 5, momentum, RateCode(levels), float("inf"), False)
    for form in (_coefficient_iterations, _direct_iterations):
        out = form(*args)
        torch.testing.assert_close(out[0], literal_h, atol=1e-5, rtol=0)
        torch.testing.assert_close(out[1], literal_v, atol=1e-6, rtol=0)
    copies = hebbian_iterations(h, velocity, x.repeat(4, 1), residual.repeat(4, 1), lr, 5, momentum, RateCode(levels),
                                normalise=False)
    torch.testing.assert_close(copies[0], literal_h, atol=1e-5, rtol=0)
    assert coefficient_cost(20, 784, 50, 5) < direct_cost(20, 784, 50, 5)     # few rows: coefficients
    assert direct_cost(384, 800, 40, 5) < coefficient_cost(384, 800, 40, 5)   # T·B rows, few neurons: direct


def test_orthonormal_rows_keeps_every_direction_when_a_dependent_row_comes_first():
    """Rows [e1, 2·e1, e2, e3] span three dimensions: QR's dropped pivot must not take e2's or e3's direction with it
    (torch here, numpy in the HLOP graph's twin); independent rows keep Gram-Schmidt's basis exactly."""
    import numpy as np

    from spikecl.export import hlop_graph

    rows = torch.tensor([[1., 0, 0, 0], [2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    for basis in (orthonormal_rows(rows), torch.from_numpy(hlop_graph.orthonormal_rows(rows.double().numpy()))):
        assert basis.shape == (3, 4)
        torch.testing.assert_close(basis.double() @ basis.double().T, torch.eye(3, dtype=torch.float64))
        torch.testing.assert_close(rows.double() - rows.double() @ basis.double().T @ basis.double(),
                                   torch.zeros(4, 4, dtype=torch.float64))
    assert np.allclose(hlop_graph.principal_angles_deg(rows[:3].double().numpy(), np.array([[0., 1, 0, 0]])), 0.0)
    independent = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    q, _ = torch.linalg.qr(independent.T.double())
    torch.testing.assert_close(orthonormal_rows(independent), q.T.float())


def test_projector_recomputes_after_its_input_changed_in_place():
    """The kept result is reused only for the same values: an input changed in place (same memory, new version)
    is projected again."""
    g = torch.Generator().manual_seed(0)
    basis = orthonormal_rows(torch.randn(3, 10, generator=g))
    project = Projector(basis)
    x = torch.rand(4, 10, generator=g)
    first = project(x).clone()
    x.mul_(2.0)                                                       # same storage, new values
    torch.testing.assert_close(project(x), 2.0 * first)


def test_projection_strategy_projects_against_the_basis_it_is_given_now():
    """A grown basis (GPM after a later task, HLOP's merged neurons) gets a new projector: a gradient is left with
    no component in the new basis."""
    g = torch.Generator().manual_seed(1)
    net = build_mlp(12, [5], 3)
    strategy = ProjectionStrategy(net)
    p = protected_synapses(net)[0]
    readout = {"readout": net.readout.heads[0].weight.new_zeros(0, 5)}
    small = orthonormal_rows(torch.randn(2, 12, generator=g))
    grown = torch.cat([small, orthonormal_rows(torch.randn(3, 12, generator=g) -
                                               (torch.randn(3, 12, generator=g) @ small.T) @ small)])
    grown = orthonormal_rows(grown)
    p.weight.grad = torch.randn(5, 12, generator=g)
    strategy.project({"layers.0": small, **readout})
    grad = torch.randn(5, 12, generator=g)
    p.weight.grad = grad.clone()
    strategy.project({"layers.0": grown, **readout})
    torch.testing.assert_close(p.weight.grad, grad - grad @ grown.T @ grown, atol=1e-5, rtol=0)
    assert float((p.weight.grad @ grown.T).abs().max()) < 1e-5


def test_a_penalty_gradient_is_projected_too_when_gpm_combines_with_ewc():
    """``gpm+ewc``: EWC's penalty adds to the weight gradient outside the layer's projected-rows pass, so the
    gradient is projected whole."""
    torch.manual_seed(0)
    net = build_mlp(20, [100], 3)                  # 100 outputs > T·B = 30 rows: the projected-rows pass applies
    s = build_strategy("gpm+ewc", net, {"gpm": {"thresholds": [0.9]}, "ewc": {"lam": 1000.0}},
                       Simulation(num_steps=3))
    trainer, g = make_trainer("bptt", net, 3), torch.Generator().manual_seed(3)
    tasks = [TaskData(t, torch.rand(40, 20, generator=g), torch.randint(0, 3, (40,), generator=g),
                      torch.zeros(40, dtype=torch.long)) for t in range(2)]
    train = s.before_task(0, tasks[0], tasks[:1])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for idx in torch.arange(40).split(10):
        trainer.train_batch(*s.batch(train.x[idx], train.y[idx], train.heads[idx]), None, opt, s)
    s.after_task(0, train)
    s.before_task(1, tasks[1], tasks)
    with torch.no_grad():                          # away from EWC's anchor: its penalty has a gradient
        net.layers[0].synapse.weight.add_(0.05 * torch.randn(net.layers[0].synapse.weight.shape, generator=g))
    gpm = next(part for part in s.parts if part.name == "gpm")
    q = gpm.bases["layers.0"].double()
    assert q.shape[0] > 0
    batch = tasks[1].x[:10], tasks[1].y[:10], tasks[1].heads[:10]
    trainer.train_batch(*s.batch(*batch), None, torch.optim.SGD(net.parameters(), lr=0.0), s)
    grad = net.layers[0].synapse.weight.grad.double()
    assert float((grad @ q.T).norm() / grad.norm()) < 1e-5


def test_direct_hebbian_iterations_clamp_the_batchs_change():
    """The n-dimensional form of the Hebbian steps bounds a batch's change of H_new elementwise by ``clamp``, as
    the coefficient form does."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(50, 40, generator=g)
    h = orthonormal_rows(torch.randn(4, 40, generator=g))
    free, _ = _direct_iterations(h, torch.zeros_like(h), x, x, 1.5, 20, 0.9, RateCode(), float("inf"), True)
    assert float((free - h).abs().max()) > 0.01
    clamped, _ = _direct_iterations(h, torch.zeros_like(h), x, x, 1.5, 20, 0.9, RateCode(), 1e-3, True)
    assert float((clamped - h).abs().max()) <= 1e-3 + 1e-7


def test_per_synapse_lists_longer_than_the_network_are_named_with_what_the_readout_takes():
    """gpm-fixed-readout's [0.95, 0.99, 1.0] on one hidden layer gave the readout 0.99 (its position), not 1.0 as a
    longer HLOP neurons row would: the run says so (lists that fit, or apply to no readout, say nothing)."""
    from spikecl.continual.projection import unused_entries
    from spikecl.snn import build_mlp

    gpm = build_strategy("gpm", build_mlp(6, [4], 3), {"gpm": {"thresholds": [0.95, 0.99, 1.0]}})
    assert unused_entries(gpm) == ["strategy.gpm.thresholds has 3 entries for 2 protected synapses (layers.0, "
                                   "readout): entries past 2 are unused; the readout takes entry 2 (0.99), not the "
                                   "last (1)"]
    assert unused_entries(build_strategy("gpm", build_mlp(6, [4, 4], 3), {"gpm": {"thresholds": [0.9, 0.9, 1.0]}})) \
        == []
    hlop = build_strategy("hlop+gpm", build_mlp(6, [4], 3), {"hlop": {"fixed_lr": [0.1, 0.1, 0.2]}})
    assert unused_entries(hlop) == ["strategy.hlop.fixed_lr has 3 entries for 2 protected synapses (layers.0, "
                                    "readout): entries past 2 are unused; the readout takes entry 2 (0.1), not the "
                                    "last (0.2)"]                  # GPM's default [0.95, 0.99, 0.99]: nothing lost
    heads = build_mlp(6, [4], 3, n_heads=2)                  # task-incremental: the readout is not protected
    assert unused_entries(build_strategy("hlop+gpm", heads, {})) == []     # the defaults: the user wrote no list
    assert unused_entries(build_strategy("gpm", heads, {"gpm": {"thresholds": [0.9, 0.99]}})) == [
        "strategy.gpm.thresholds has 2 entries for 1 protected synapses (layers.0): entries past 1 are unused"]


def test_a_projector_reaches_only_the_training_pass_it_is_handed_to():
    """``batch()`` picks projectors for the next training pass only: a pass run between ``batch()`` and the training
    step (an evaluation) is not projected, and the training pass leaves no projector on the layers, also when it
    raises."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    net = build_mlp(20, [40], 3)                   # 8 direct-encoded rows < 40 outputs: the projected-rows route
    data = TaskData(0, torch.rand(64, 20, generator=g), torch.randint(0, 3, (64,), generator=g),
                    torch.zeros(64, dtype=torch.long))
    s = build_strategy("gpm", net, {"gpm": {"thresholds": [0.9]}}, Simulation(num_steps=3))
    s.before_task(0, data, [data])
    s.after_task(0, data)
    s.before_task(1, data, [data, data])
    trainer, opt, layer = make_trainer("bptt", net, 3), torch.optim.SGD(net.parameters(), lr=0.0), net.layers[0]
    x, y, heads = s.batch(data.x[:8], data.y[:8], data.heads[:8])
    projector = s.handed["layers.0"]
    net(trainer.encode(x))                         # evaluated between batch() and the step
    assert not projector.used and layer.weight_projection is None
    seen = []
    hook = net.readout.register_forward_hook(lambda *_: seen.append(layer.weight_projection))
    trainer.train_batch(x, y, heads, None, opt, s)
    assert seen == [projector] and projector.used and layer.weight_projection is None and not s.handed
    hook.remove()

    def fail(*_):
        seen.append(layer.weight_projection)
        raise RuntimeError("failed inside the pass")
    net.readout.register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="inside the pass"):
        trainer.train_batch(*s.batch(x, y, heads), None, opt, s)
    assert seen[-1] is projector and layer.weight_projection is None


def test_projecting_restores_each_layers_projection_and_refuses_another_networks_layer():
    net, other = build_mlp(6, [5, 4], 2), build_mlp(6, [5], 2)
    first, second = Projector(torch.eye(6)[:2]), Projector(torch.eye(5)[:1])
    with net.projecting({net.layers[0]: first}):
        with net.projecting({net.layers[0]: second, net.layers[1]: second}):
            assert net.layers[0].weight_projection is second is net.layers[1].weight_projection
        assert net.layers[0].weight_projection is first and net.layers[1].weight_projection is None
    assert net.layers[0].weight_projection is None
    with pytest.raises(ConfigError, match="projecting: SpikingLinear is not a spiking layer of this network"):
        with net.projecting({other.layers[0]: first}):
            pass
