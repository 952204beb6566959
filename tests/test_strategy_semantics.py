"""What the methods compute beyond their update rules: passes that only read the model leave it as it was, output
masks of class-incremental learning reach every loss a method computes, protected biases stay put, and a
method's own random draws vary with the run seed."""

import re

import numpy as np
import pytest
import torch

from spikecl.config import experiment_from_dict
from spikecl.continual.runner import ContinualRun
from spikecl.continual.strategies import build_strategy
from spikecl.continual.strategy import FISHER_PASS, Simulation, TaskData
from spikecl.errors import ConfigError
from spikecl.snn import build_cnn, build_mlp, make_trainer
from spikecl.toml_files import load_toml

SIM = Simulation(num_steps=2)


def images(index, n=24, classes=3, mask=None):
    g = torch.Generator().manual_seed(index)
    return TaskData(index, torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g),
                    torch.zeros(n, dtype=torch.long), mask)


def norm_state(net):
    return {k: v.clone() for k, v in net.state_dict().items() if "norm" in k}


@pytest.mark.parametrize("method, options", [
    ("gpm", {}),
    ("hlop", {"hlop": {"neurons": [[2]], "final_passes": 1}}),
    ("hlop", {"hlop": {"budget": "energy"}}),
    ("ewc", {"ewc": {"fisher_samples": 8}}),
])
def test_consolidation_reads_the_model_without_changing_its_normalisation(method, options):
    torch.manual_seed(0)
    net = build_cnn((1, 8, 8), [4], 3)
    net.train()
    s = build_strategy(method, net, options, SIM)
    data = images(0)
    before = norm_state(net)
    train = s.before_task(0, data, [data])
    s.after_task(0, train)
    after = norm_state(net)
    assert before.keys() == after.keys() and len(before) >= 3
    assert all(torch.equal(before[k], after[k]) for k in before), "a consolidation pass moved batch-norm statistics"
    assert net.training, "the model's mode is restored"


def split_digits(scenario, **train):
    raw = load_toml("models/split_digits.toml")
    raw["stream"]["scenario"] = scenario
    raw["stream"].update({"n_tasks": 3, "classes_per_task": 2})
    raw["train"].update({"epochs": 1, **train})
    return experiment_from_dict(raw)


def test_multitask_rows_repeat_in_the_class_scenario():
    result = ContinualRun(split_digits("class"), "multitask", 0).execute(progress_bar=False)
    rows = result.acc_matrix[1:]
    assert np.array_equal(rows, np.repeat(rows[:1], len(rows), axis=0)), "every output is active after stage 0"
    assert rows[0].min() > 0.5 and result.metrics["bwt"] == 0.0


def test_ewc_fisher_and_the_replay_phase_use_the_output_mask():
    torch.manual_seed(0)
    mask = torch.tensor([True, True, False, False])
    data = images(0, classes=2, mask=mask)
    ewc = build_strategy("ewc", build_mlp(64, [16], 4), {"ewc": {"fisher_samples": 16}}, SIM)
    fisher = ewc.empirical_fisher(TaskData(0, data.x.flatten(1), data.y, data.heads, mask))
    readout = fisher["readout.heads.0.weight"]
    assert readout[2:].abs().max() == 0.0 and readout[:2].abs().max() > 0.0, "unseen classes get no importance"

    torch.manual_seed(0)
    net = build_mlp(64, [16], 4)
    replay = build_strategy("gpm+replay", net, {"replay": {"per_class": 4}}, SIM)
    first = TaskData(0, data.x.flatten(1), data.y, data.heads, mask)
    replay.after_task(0, replay.before_task(0, first, [first]))
    second = TaskData(1, data.x.flatten(1).flip(0), data.y, data.heads, mask)
    unseen = net.readout.heads[0].weight[2:].detach().clone()
    replay.after_task(1, replay.before_task(1, second, [first, second]))   # the replay phase runs here
    assert torch.equal(net.readout.heads[0].weight[2:], unseen), "the replay phase trained masked outputs"


@pytest.mark.parametrize("method", ["gpm", "hlop"])
def test_projection_freezes_protected_biases_from_the_second_task(method):
    torch.manual_seed(0)
    net = build_mlp(6, [8], 3, bias=True, n_heads=2)
    s = build_strategy(method, net, {"hlop": {"neurons": [[2]]}} if method == "hlop" else {}, SIM)
    g = torch.Generator().manual_seed(0)
    tasks = [TaskData(t, torch.rand(30, 6, generator=g), torch.randint(0, 3, (30,), generator=g),
                      torch.full((30,), t)) for t in range(2)]
    s.after_task(0, s.before_task(0, tasks[0], tasks[:1]))
    bias = net.layers[0].synapse.bias.detach().clone()
    train = s.before_task(1, tasks[1], tasks)
    trainer, opt = make_trainer("bptt", net, 2), torch.optim.SGD(net.parameters(), lr=0.5)
    heads = [h.bias.detach().clone() for h in net.readout.heads]
    for _ in range(5):
        trainer.train_batch(*s.batch(train.x, train.y, train.heads), None, opt, s)
    assert torch.equal(net.layers[0].synapse.bias, bias), "a protected layer's bias drifted"
    assert not torch.equal(net.readout.heads[1].bias, heads[1]), "a task's own head keeps learning its bias"


@pytest.mark.parametrize("method, attribute", [("replay", "generator"), ("hlop", "generator")])
def test_strategy_draws_vary_with_the_run_seed(method, attribute):
    def draws(seed, option_seed=0):
        """What the strategy's generator draws (not its state: torch keeps a seed's low 32 bits only)."""
        options = {method: {"seed": option_seed, **({"neurons": [[2]]} if method == "hlop" else {})}}
        s = build_strategy(method, build_mlp(6, [8], 3), options, Simulation(num_steps=2, seed=seed))
        return torch.randint(2**31, (8,), generator=getattr(s, attribute))

    assert torch.equal(draws(1), draws(1))
    runs = [draws(seed) for seed in (0, 1, 2, 3, 2**32 - 1)]
    assert all(not torch.equal(a, b) for i, a in enumerate(runs) for b in runs[i + 1:]), "run seeds draw alike"
    assert not torch.equal(draws(1), draws(0, option_seed=1)), "(run seed, option seed) pairs do not collide"
    assert torch.equal(draws(0, option_seed=5), torch.randint(2**31, (8,), generator=torch.Generator().manual_seed(5)))


def test_bfloat16_readout_integrates_in_float32_on_the_snntorch_engine():
    x = torch.rand(2, 5, 6, generator=torch.Generator().manual_seed(0))
    logits = {}
    for engine in ("fused", "snntorch"):
        torch.manual_seed(0)
        net = build_mlp(6, [8], 3, engine=engine)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits[engine] = net(x).float()
    torch.manual_seed(0)
    reference = build_mlp(6, [8], 3, engine="snntorch")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mem = reference.readout(reference.layers[0](x))
    assert mem.dtype == torch.float32, "the membrane integrates in float32"
    torch.testing.assert_close(logits["fused"], logits["snntorch"], rtol=0, atol=2e-2)


@pytest.mark.parametrize("train, problem", [
    ({"optimizer": "adam", "lr": 0.001}, "train.optimizer = 'adam'"),
    ({"weight_decay": 0.01}, "train.weight_decay = 0.01"),
    ({"momentum": 0.9, "reset_optimizer": False}, "train.momentum with train.reset_optimizer = false")])
@pytest.mark.parametrize("method", ["gpm", "hlop", "ewc+gpm"])
def test_projection_methods_refuse_optimisers_that_would_undo_the_projection(method, train, problem):
    cfg = split_digits("domain", **train)
    with pytest.raises(ConfigError, match=re.escape(problem)) as info:
        ContinualRun(cfg, method, 0)
    assert "\n" not in str(info.value) and "projects weight gradients" in str(info.value)
    ContinualRun(cfg, "finetune", 0)                                       # the others train as configured
    ContinualRun(split_digits("domain", momentum=0.9), method, 0)          # a fresh velocity per task is fine


def test_weight_decay_moves_gpm_protected_weights_inside_their_subspace():
    """Why the refusal above: decay is added to the projected gradient, so the step leaves the complement."""
    leaks = {}
    for decay in (0.0, 0.01):
        torch.manual_seed(0)
        net = build_mlp(6, [8], 3, n_heads=1)
        s = build_strategy("gpm", net, {}, SIM)
        g = torch.Generator().manual_seed(0)
        tasks = [TaskData(t, torch.rand(30, 6, generator=g), torch.randint(0, 3, (30,), generator=g),
                          torch.full((30,), 0)) for t in range(2)]
        s.after_task(0, s.before_task(0, tasks[0], tasks[:1]))
        basis, before = s.protected_bases()["layers.0"], net.layers[0].synapse.weight.detach().clone()
        train = s.before_task(1, tasks[1], tasks)
        trainer = make_trainer("bptt", net, 2)
        opt = torch.optim.SGD(net.parameters(), lr=0.5, weight_decay=decay)
        for _ in range(5):
            trainer.train_batch(*s.batch(train.x, train.y, train.heads), None, opt, s)
        change = net.layers[0].synapse.weight.detach() - before
        leaks[decay] = float((change @ basis.T).norm() / change.norm())
    assert leaks[0.0] < 1e-3 < 0.5 < leaks[0.01], leaks                     # float32 round-off against 93 %


def _task(index, n=40, features=6, classes=3, seed=0, head=0):
    g = torch.Generator().manual_seed(seed + index)
    return TaskData(index, torch.rand(n, features, generator=g), torch.randint(0, classes, (n,), generator=g),
                    torch.full((n,), head, dtype=torch.long))


def _train(strategy, data, steps=10):
    trainer = make_trainer("bptt", strategy.model, SIM.num_steps)
    opt = torch.optim.SGD(strategy.model.parameters(), lr=0.1)
    for _ in range(steps):
        trainer.train_batch(*strategy.batch(data.x, data.y, data.heads), None, opt, strategy)


def test_gpm_threshold_increment_starts_after_the_first_task():
    """``threshold_increment`` is added after each task: task 0 uses the threshold as given."""
    s = build_strategy("gpm", build_mlp(6, [8], 3), {"gpm": {"thresholds": [0.9, 0.95], "threshold_increment": 0.02}})
    assert s.threshold(0, 0) == pytest.approx(0.9) and s.threshold(1, 0) == pytest.approx(0.95)
    assert s.threshold(0, 2) == pytest.approx(0.94) and s.threshold(1, 3) == pytest.approx(1.0)


def test_gpm_uses_each_synapses_own_threshold():
    """``thresholds`` is per protected synapse: a readout at 1.0 keeps every direction of its activity, while the
    first layer at 0.01 keeps one."""
    torch.manual_seed(0)
    net = build_mlp(6, [8], 3)
    s = build_strategy("gpm", net, {"gpm": {"thresholds": [0.01, 1.0]}}, SIM)
    data = _task(0)
    s.before_task(0, data, [data])
    s.after_task(0, data)
    assert s.bases["layers.0"].shape[0] == 1
    assert s.bases["readout"].shape[0] >= 3


def test_ewc_fisher_is_the_mean_squared_gradient_and_decays_by_gamma():
    """F_task = mean over samples of the squared gradient of the log-likelihood; F ← gamma·F + F_task."""
    torch.manual_seed(0)
    s = build_strategy("ewc", build_mlp(6, [8], 3), {"ewc": {"gamma": 0.5, "fisher_samples": 1}}, SIM)
    data = _task(0, n=1)
    fisher = s.empirical_fisher(data)
    s.model.zero_grad(set_to_none=True)
    with s.reading():
        draws = s.pass_generator(data.x, range(1), data.task, FISHER_PASS)
        logits = s.logits(data.x, data.heads, data.mask, draws)
        torch.nn.functional.cross_entropy(logits, data.y).backward()
    for n, p in s.named_trainable():
        torch.testing.assert_close(fisher[n], p.grad ** 2)
    assert any(float(p.grad.abs().max()) < 0.5 and float(p.grad.abs().max()) > 0 for _, p in s.named_trainable())
    s.model.zero_grad(set_to_none=True)
    s.after_task(0, data)
    s.after_task(1, data)                                        # the same network and data: F_task again
    for n, f in fisher.items():
        torch.testing.assert_close(s.fisher[n], 1.5 * f)


def test_ewc_fisher_averages_over_fisher_samples_not_the_whole_task():
    """With fisher_samples = 2 of a 5-sample task, F_task is the mean of the first two samples' squared gradients:
    their sum over 2, not over the task's 5 samples."""
    torch.manual_seed(0)
    s = build_strategy("ewc", build_mlp(6, [8], 3), {"ewc": {"fisher_samples": 2}}, SIM)
    data = _task(0, n=5)
    fisher = s.empirical_fisher(data)
    expected = {n: torch.zeros_like(p) for n, p in s.named_trainable()}
    draws = s.pass_generator(data.x, range(2), data.task, FISHER_PASS)
    with s.reading():
        for i in range(2):
            s.model.zero_grad(set_to_none=True)
            logits = s.logits(data.x[i:i + 1], data.heads[i:i + 1], data.mask, draws)
            torch.nn.functional.cross_entropy(logits, data.y[i:i + 1]).backward()
            for n, p in s.named_trainable():
                expected[n] += p.grad ** 2
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n] / 2)
    assert any(float(f.abs().max()) > 0 for f in fisher.values())

def test_si_accumulates_importance_over_tasks_and_reanchors_after_each():
    """Ω += ω/(Δ² + ξ) after every task, and θ* becomes the parameters at the task's end."""
    torch.manual_seed(0)
    s = build_strategy("si", build_mlp(6, [8], 3), {"si": {"c": 1.0}}, SIM)
    _train(s, _task(0))
    s.after_task(0, _task(0))
    first = {n: o.clone() for n, o in s.omega.items()}
    for n, p in s.named_trainable():
        assert torch.equal(s.anchor[n], p.detach())
    start = {n: p.detach().clone() for n, p in s.named_trainable()}
    _train(s, _task(1, seed=5))
    expected = {n: first[n] + s.path[n] / ((p.detach() - start[n]) ** 2 + 0.1) for n, p in s.named_trainable()}
    s.after_task(1, _task(1, seed=5))
    for n in first:
        torch.testing.assert_close(s.omega[n], expected[n])
    assert all(float((s.omega[n] - first[n]).abs().max()) > 0 for n in first)


def test_si_measures_delta_over_the_steps_it_integrates_and_anchors_after_replays_phase():
    """In si+replay with replay's after-task phase, Δ in Ω += ω/(Δ² + ξ) is the change over the task's training
    steps, the trajectory ω covers (the phase moves the weights far more than those steps here); θ* is the weights
    after the phase, where the next task starts."""
    torch.manual_seed(0)
    s = build_strategy("si+replay", build_mlp(6, [8], 3), {"si": {"xi": 1e-6}, "replay": {
        "mode": "after_task", "per_class": 5, "phase_lr": 0.5, "phase_epochs": 3}}, SIM)
    si = s.parts[0]
    for task in range(2):
        data = _task(task, seed=3)
        start = {n: p.detach().clone() for n, p in si.named_trainable()}
        _train(s, data, steps=5)
        trained = {n: p.detach().clone() for n, p in si.named_trainable()}
        expected = {n: si.omega[n] + si.path[n] / ((trained[n] - start[n]) ** 2 + 1e-6) for n in start}
        s.after_task(task, data)
        moved = {n: float((p.detach() - trained[n]).abs().max()) for n, p in si.named_trainable()}
        assert (max(moved.values()) > 0) == (task == 1), "the phase runs after the second task only"
        for n, p in si.named_trainable():
            torch.testing.assert_close(si.omega[n], expected[n], rtol=1e-5, atol=0)
            assert torch.equal(si.anchor[n], p.detach())
    assert max(moved.values()) > 10 * max(float((trained[n] - start[n]).abs().max()) for n in start)


def test_replay_phase_runs_from_the_second_task_and_covers_every_stored_sample_once_per_epoch():
    """after_task mode: no phase after the first task; each later phase step takes one chunk of every task's
    samples, and an epoch covers every stored sample once."""
    torch.manual_seed(0)
    s = build_strategy("replay", build_mlp(6, [8], 3),
                       {"replay": {"mode": "after_task", "per_class": 5, "batch_size": 4}}, SIM)
    seen = []
    s.loss_backward = lambda x, y, heads, mask=None: seen.append(x.clone())
    s.after_task(0, _task(0, n=40, classes=3))                  # 15 samples stored
    assert seen == []
    s.after_task(1, _task(1, n=40, classes=2))                  # 10 more
    assert len(s.buffer) == 25
    used = torch.cat(seen)
    assert used.shape[0] == 25
    assert sorted(map(tuple, used.tolist())) == sorted(map(tuple, s.buffer.x.tolist()))


def test_each_replay_phase_step_sums_one_chunk_of_every_task_before_it_updates():
    """after_task mode, 15 + 10 stored samples in chunks of 4: the phase takes 4 SGD steps; in each of the first
    three both tasks' chunks are differentiated at the same weights (one step on their summed losses), and the
    weights move between steps."""
    torch.manual_seed(0)
    s = build_strategy("replay", build_mlp(6, [8], 3),
                       {"replay": {"mode": "after_task", "per_class": 5, "batch_size": 4, "phase_lr": 0.5}}, SIM)
    original, seen = s.loss_backward, []

    def recording(x, y, heads, mask=None):
        seen.append(torch.cat([p.detach().flatten() for p in s.model.parameters()]))
        return original(x, y, heads, mask)

    s.loss_backward = recording
    s.after_task(0, _task(0, n=40, classes=3))
    s.after_task(1, _task(1, n=40, classes=2))
    assert len(seen) == 7                                        # chunks 4+4+4+3 of task 0, 4+4+2 of task 1
    for step in range(3):
        assert torch.equal(seen[2 * step], seen[2 * step + 1])
    assert all(not torch.equal(seen[i], seen[i + 1]) for i in (1, 3, 5))

def test_mixed_replay_keeps_the_heads_of_replayed_samples():
    """Mixed replay on a multi-head (task-incremental) network extends the batch with the buffer's heads."""
    torch.manual_seed(0)
    s = build_strategy("replay", build_mlp(6, [8], 3, n_heads=2), {"replay": {"per_class": 4, "batch_size": 16}}, SIM)
    s.after_task(1, _task(1, head=1))
    x, y, heads = s.batch(*(lambda d: (d.x, d.y, d.heads))(_task(0, n=8)))
    assert heads[:8].eq(0).all() and heads[8:].eq(1).all() and len(heads) == 24


def test_hlops_old_residual_with_an_orthonormalised_basis_subtracts_h_old_literally():
    """With orthonormalize the projection basis is not H_old, and the Hebbian update's residual of the consolidated
    neurons is x − (x H_oldᵀ) H_old, computed from H_old itself."""
    torch.manual_seed(0)
    s = build_strategy("hlop", build_mlp(6, [8], 3), {"hlop": {"neurons": [[2]], "orthonormalize": True}}, SIM)
    data = _task(0)
    s.after_task(0, s.before_task(0, data, [data]))
    for p in s.synapses:
        h = s.h_old[p.name]
        assert h.shape[0] == 2 and s.projected_bases()[p.name] is not h
        x = torch.rand(5, h.shape[1], generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(s.old_residual(p.name, x), x - (x @ h.T) @ h)

def test_hlops_new_lateral_neurons_start_orthogonal_to_the_consolidated_ones():
    """Before each task the new neurons' rows are drawn orthogonal to H_old (module docstring: "new neurons are
    added (rows orthogonal to the old ones)")."""
    torch.manual_seed(0)
    s = build_strategy("hlop", build_mlp(6, [8], 3), {"hlop": {"neurons": [[3, 3], [2, 2]]}}, SIM)
    data = _task(0)
    s.before_task(0, data, [data])
    _train(s, data, steps=3)
    s.after_task(0, data)
    s.before_task(1, _task(1), [data, _task(1)])
    for name in ("layers.0", "readout"):
        assert s.h_old[name].shape[0] == 3 and s.h_new[name].shape[0] == 2
        assert float((s.h_new[name] @ s.h_old[name].T).abs().max()) < 1e-3, name   # H_old orthonormal to ~1e-4


def test_hlops_fixed_rate_is_per_synapse_and_orthonormalize_gives_an_orthonormal_basis():
    """``fixed_lr`` is per protected synapse (the last repeats); with ``orthonormalize`` the basis projected with
    after a task is an orthonormal basis of span(H_old)."""
    torch.manual_seed(0)
    s = build_strategy("hlop", build_mlp(6, [8, 8], 3),
                       {"hlop": {"neurons": [[3]], "fixed_lr": [0.001, 0.01], "orthonormalize": True}}, SIM)
    assert [s.hebbian_rate(i) for i in range(3)] == [0.001, 0.01, 0.01]
    data = _task(0)
    s.before_task(0, data, [data])
    s.h_new["layers.0"] = s.h_new["layers.0"] * 1.5               # rows far from orthonormal
    s.after_task(0, data)
    basis, h_old = s.basis["layers.0"], s.h_old["layers.0"]
    torch.testing.assert_close(basis @ basis.T, torch.eye(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(h_old - h_old @ basis.T @ basis, torch.zeros_like(h_old), atol=1e-5, rtol=0)


def test_load_subspace_refuses_dependent_rows_and_records_the_loaded_size():
    """``load_subspace`` refuses repeated rows also where ``orthonormalize`` would take any rows, and the loaded
    size replaces the last task's entry of ``subspace_dims``."""
    from spikecl.errors import SpikeCLError

    torch.manual_seed(0)
    s = build_strategy("hlop", build_mlp(6, [8], 3), {"hlop": {"neurons": [[2]], "orthonormalize": True}}, SIM)
    e = torch.eye(6)
    with pytest.raises(SpikeCLError, match="rank 1"):
        s.load_subspace("layers.0", torch.stack([e[0], e[0]]))
    data = _task(0)
    s.before_task(0, data, [data])
    s.after_task(0, data)
    assert s.dims == [[2, 2]]
    s.load_subspace("layers.0", e[:4])
    assert s.dims == [[4, 2]] and s.result_arrays()["subspace_dims"].tolist() == [[4, 2]]


def test_hlops_new_lateral_neurons_do_not_depend_on_torchs_default_dtype():
    """The rows drawn for a task's new lateral neurons were drawn in the default dtype and cast to float32: a user's
    torch.set_default_dtype(torch.float64) after building the run changed HLOP's results without a word."""
    drawn = []
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        s = build_strategy("hlop", build_mlp(6, [8], 3), {"hlop": {"neurons": [[3]]}}, SIM)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            s.before_task(0, _task(0), [_task(0)])
        finally:
            torch.set_default_dtype(previous)
        drawn.append({n: h.clone() for n, h in s.h_new.items()})
    assert drawn[0].keys() == drawn[1].keys() and all(h.dtype == torch.float32 for h in drawn[1].values())
    assert all(torch.equal(drawn[0][n], drawn[1][n]) for n in drawn[0])



def test_evaluations_at_a_task_end_count_where_replay_trains_after_the_task(tmp_path):
    """With train.eval_every dividing a task's iterations, an evaluation at a task's end was left out as the state
    its matrix row measures; replay's after-task phase trains between the two, so that evaluation (the network
    before the phase, old tasks at their lowest) was lost and min-ACC read too high. The run records that it trained
    after its tasks, its min-ACC and WF keep those evaluations, and a report recomputes them alike."""
    from spikecl.continual import metrics
    from spikecl.continual.report import current_metrics
    from spikecl.continual.results import read_continual, write_continual

    def run(mode, **phase):
        cfg = experiment_from_dict({
            "name": "p", "output_dir": str(tmp_path), "data": {"dataset": "digits"},
            "stream": {"kind": "permuted", "n_tasks": 3, "train_per_task": 120, "test_per_task": 60},
            "network": {"hidden": [32], "num_steps": 3},
            "train": {"epochs": 1, "batch_size": 16, "lr": 0.05, "eval_every": 8, "eval_samples": 60},
            "strategy": {"methods": ["replay"], "replay": {"mode": mode, **phase}}})
        return ContinualRun(cfg, "replay", 0).execute(progress_bar=False)

    r = run("after_task", phase_lr=0.05, phase_epochs=3)
    assert np.isin(r.task_ends, r.curve_iterations).all() and r.trained_after_task
    args = dict(evals=r.curve_accuracy, eval_task=r.curve_task, continual=True)
    every = metrics.summarize(r.acc_matrix, **args)
    ends_dropped = metrics.summarize(r.acc_matrix, **args, eval_iterations=r.curve_iterations, task_ends=r.task_ends)
    assert every["min_acc"] < ends_dropped["min_acc"]                   # the point the phase hid: the lowest
    assert (r.metrics["min_acc"], r.metrics["wf"]) == (every["min_acc"], every["wf"])
    again = read_continual(write_continual(tmp_path / "replay-seed0.h5", r))
    assert again.trained_after_task and current_metrics(again)["min_acc"] == every["min_acc"]
    mixed = run("mixed")                                                    # trains nothing after a task
    assert not mixed.trained_after_task
    assert mixed.metrics["min_acc"] == metrics.summarize(mixed.acc_matrix, evals=mixed.curve_accuracy,
                                                         eval_task=mixed.curve_task, continual=True,
                                                         eval_iterations=mixed.curve_iterations,
                                                         task_ends=mixed.task_ends)["min_acc"]
