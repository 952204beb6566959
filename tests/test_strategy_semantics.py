"""What the methods compute beyond their update rules: passes that only read the model leave it as it was, output
masks of class-incremental learning reach every loss a method computes, protected biases stay put, and a
method's own random draws vary with the run seed."""

import re

import numpy as np
import pytest
import torch

from spikecl.config import experiment_from_dict, load_toml
from spikecl.continual.runner import ContinualRun
from spikecl.continual.strategies import build_strategy
from spikecl.continual.strategy import Simulation, TaskData
from spikecl.errors import ConfigError
from spikecl.snn import build_cnn, build_mlp, make_trainer

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
