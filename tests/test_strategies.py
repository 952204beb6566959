"""Strategies behind the one contract: registry, options, and what each event does."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikecl.continual.strategies import build_strategy, validate_options
from spikecl.continual.strategy import Combined, Simulation, Strategy, TaskData
from spikecl.errors import ConfigError, DataError
from spikecl.snn.encoders import encode
from spikecl.snn import build_mlp, make_trainer

SIM = Simulation(num_steps=2)


def task(index, n=40, features=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed + index)
    return TaskData(index, torch.rand(n, features, generator=g), torch.randint(0, classes, (n,), generator=g),
                    torch.zeros(n, dtype=torch.long))


def train(strategy, data, steps=20):
    trainer = make_trainer("bptt", strategy.model, SIM.num_steps)
    opt = torch.optim.SGD(strategy.model.parameters(), lr=0.1)
    for _ in range(steps):
        x, y, h = strategy.batch(data.x, data.y, data.heads)
        trainer.train_batch(x, y, h, None, opt, strategy)


def test_registry_and_option_errors():
    assert isinstance(build_strategy("finetune", build_mlp(6, [8], 3)), Strategy)
    assert isinstance(build_strategy("ewc+replay", build_mlp(6, [8], 3)), Combined)
    with pytest.raises(ConfigError, match="unknown method 'ewk'"):
        validate_options("ewk", {})
    with pytest.raises(ConfigError, match="strategy.ewk: options for an unknown method"):
        validate_options("ewc", {"ewk": {"lam": 1.0}})
    validate_options("ewc", {"si": {"c": 2.0}})              # options of a method not run are fine
    with pytest.raises(ConfigError, match="unknown key 'strategy.ewc.lambda'"):
        validate_options("ewc", {"ewc": {"lambda": 1.0}})
    with pytest.raises(ConfigError, match="strategy.replay.per_class: 0 is below the minimum 1"):
        validate_options("replay", {"replay": {"per_class": 0}})


def test_joint_trains_on_everything_seen():
    s = build_strategy("joint", build_mlp(6, [8], 3))
    tasks = [task(0), task(1)]
    joint = s.before_task(1, tasks[1], tasks)
    assert len(joint) == 80 and torch.equal(joint.x[40:], tasks[1].x)


def test_ewc_penalty_anchors_parameters():
    torch.manual_seed(0)
    s = build_strategy("ewc", build_mlp(6, [8], 3), {"ewc": {"lam": 10.0, "fisher_samples": 20}}, SIM)
    assert s.penalty() is None
    train(s, task(0))
    s.after_task(0, task(0))
    assert all((f >= 0).all() for f in s.fisher.values()) and sum(f.sum() for f in s.fisher.values()) > 0
    assert s.penalty().item() == pytest.approx(0.0)
    with torch.no_grad():
        for p in s.model.parameters():
            p.add_(0.1)
    moved = s.penalty().item()
    expected = 0.5 * 10.0 * sum((f * 0.01).sum().item() for f in s.fisher.values())
    assert moved == pytest.approx(expected, rel=1e-4)


def test_ewc_limits_drift_on_a_new_task():
    drift = {}
    for lam in (0.0, 100.0):
        torch.manual_seed(0)
        s = build_strategy("ewc", build_mlp(6, [8], 3), {"ewc": {"lam": lam, "fisher_samples": 40}}, SIM)
        train(s, task(0))
        s.after_task(0, task(0))
        before = [p.detach().clone() for p in s.model.parameters()]
        train(s, task(1, seed=5))
        drift[lam] = sum((p - b).norm().item() for p, b in zip(s.model.parameters(), before))
    assert drift[100.0] < 0.5 * drift[0.0]


def test_si_importance_accumulates():
    torch.manual_seed(0)
    s = build_strategy("si", build_mlp(6, [8], 3), {"si": {"c": 1.0}}, SIM)
    assert s.penalty().item() == 0.0
    train(s, task(0))
    path_sum = sum(p.sum().item() for p in s.path.values())
    assert path_sum > 0   # loss went down: -g·Δθ summed is positive
    s.after_task(0, task(0))
    assert sum(o.sum().item() for o in s.omega.values()) > 0
    assert all(p.abs().sum() == 0 for p in s.path.values())
    with torch.no_grad():
        for p in s.model.parameters():
            p.add_(0.05)
    assert s.penalty().item() > 0


def test_replay_buffer_per_class_and_resumable_sampling():
    s = build_strategy("replay", build_mlp(6, [8], 3), {"replay": {"per_class": 4, "batch_size": 10}})
    x, y, h = s.batch(task(0).x, task(0).y, task(0).heads)
    assert len(x) == 40                                  # nothing stored yet
    s.after_task(0, task(0))
    counts = torch.bincount(s.buffer.y, minlength=3)
    assert counts.tolist() == [4, 4, 4]
    state = s.state_dict()
    x, y, h = s.batch(task(1).x, task(1).y, task(1).heads)
    assert len(x) == 50
    other = build_strategy("replay", build_mlp(6, [8], 3), {"replay": {"per_class": 4, "batch_size": 10}})
    other.load_state_dict(state)
    x2, _, _ = other.batch(task(1).x, task(1).y, task(1).heads)
    assert torch.equal(x, x2)


def test_replayed_samples_keep_their_own_labels_and_heads():
    """Each replayed row of a mixed batch is one stored sample: its input, label and head together (a batch that
    paired stored inputs with other samples' labels passed every other test)."""
    s = build_strategy("replay", build_mlp(6, [8], 6, n_heads=2), {"replay": {"per_class": 4, "batch_size": 30}})
    for t in (0, 1):
        data = task(t)
        s.after_task(t, TaskData(t, data.x, data.y + 3 * t, torch.full_like(data.y, t)))
    x, y, heads = s.batch(task(2).x, task(2).y, task(2).heads)
    stored = {tuple(row.tolist()): (int(label), int(head)) for row, label, head in
              zip(s.buffer.x, s.buffer.y, s.buffer.heads)}
    assert len(stored) == len(s.buffer) == 24 and len(set(stored.values())) == 6
    replayed = [(tuple(row.tolist()), int(label), int(head)) for row, label, head in zip(x[40:], y[40:], heads[40:])]
    assert len(replayed) == 30 and all(stored[row] == (label, head) for row, label, head in replayed)


def test_mixed_replay_draws_every_stored_sample_of_a_small_buffer():
    """Replayed rows are drawn from the whole buffer, its last sample included: 64 draws from a buffer of 3 (one
    stored sample per class) replay each of the 3, and a one-sample buffer is replayed 64 times."""
    s = build_strategy("replay", build_mlp(6, [8], 3), {"replay": {"per_class": 1, "batch_size": 64}})
    s.after_task(0, task(0))
    stored = [tuple(row.tolist()) for row in s.buffer.x]
    x, _, _ = s.batch(task(1).x, task(1).y, task(1).heads)
    replayed = {tuple(row.tolist()) for row in x[40:]}
    assert len(stored) == 3 and replayed == set(stored)
    single = build_strategy("replay", build_mlp(6, [8], 3), {"replay": {"per_class": 1, "batch_size": 64}})
    one = task(0)
    single.after_task(0, TaskData(0, one.x[:1], one.y[:1], one.heads[:1]))
    x, y, _ = single.batch(task(1).x, task(1).y, task(1).heads)
    assert len(x) == 104 and torch.equal(x[40:], one.x[:1].expand(64, -1)) and torch.equal(y[40:], one.y[:1].expand(64))

def test_hlop_state_resumes_its_velocity_also_from_checkpoints_that_named_it_momentum():
    def hlop():
        torch.manual_seed(0)
        return build_strategy("hlop", build_mlp(6, [8], 3), {"hlop": {"neurons": [[2, 3]], "momentum": 0.9}}, SIM)

    s = hlop()
    s.before_task(0, task(0), [task(0)])
    train(s, task(0), steps=3)
    state = s.state_dict()
    assert all(v.abs().sum() > 0 for v in state["velocity"].values())       # the Hebbian steps moved it
    for saved in (state, {("momentum" if k == "velocity" else k): v for k, v in state.items()}):
        other = hlop()
        other.load_state_dict(copy.deepcopy(saved))
        assert all(torch.equal(other.velocity[n], v) for n, v in state["velocity"].items())


@pytest.mark.parametrize("method, missing", [("ewc", "fisher"), ("si", "omega"), ("gpm", "bases"),
                                             ("hlop", "h_old"), ("replay", "buffer"), ("ewc+replay", "fisher")])
def test_a_state_without_a_methods_entries_is_refused_naming_the_entry(method, missing):
    s = build_strategy(method, build_mlp(6, [8], 3), {}, SIM)
    for state in ({}, None, build_strategy("finetune", build_mlp(6, [8], 3)).state_dict()):
        with pytest.raises(ValueError, match=f"state has no '{missing}' entry"):
            s.load_state_dict(state)
    s.load_state_dict(s.state_dict())                    # its own state loads


@pytest.mark.parametrize("method", ["gpm", "hlop", "hlop+replay"])
def test_subspace_sizes_read_before_any_task_are_an_empty_table(method):
    s = build_strategy(method, build_mlp(6, [8], 3), {}, SIM)
    key = "subspace_dims" if "+" not in method else "hlop.subspace_dims"
    assert s.result_arrays()[key].shape == (0, 2)        # no task done; two protected synapses


def test_replay_after_task_phase_trains_on_the_buffer_without_touching_batches():
    torch.manual_seed(0)
    net = build_mlp(6, [8], 3)
    s = build_strategy("hlop+replay", net, {"replay": {"per_class": 4, "batch_size": 6, "phase_epochs": 20,
                                                        "phase_lr": 0.2}}, SIM)
    replay = s.parts[1]
    assert replay.mode == "after_task"                  # 'auto' beside a projection method
    assert build_strategy("replay", build_mlp(6, [8], 3)).mode == "mixed"
    s.before_task(0, task(0), [task(0)])
    s.after_task(0, task(0))
    x, _, _ = s.batch(task(1).x, task(1).y, task(1).heads)
    assert len(x) == 40                                  # no samples mixed into training batches

    def buffer_loss(model):
        with torch.no_grad():
            logits = model(encode(replay.buffer.x, SIM.num_steps), replay.buffer.heads)
            return F.cross_entropy(logits, replay.buffer.y).item()

    s.before_task(1, task(1), [task(0), task(1)])
    before = copy.deepcopy(net)
    s.after_task(1, task(1))                             # stores task 1's samples, then the replay phase
    assert replay.task_sizes == [12, 12]
    assert buffer_loss(net) < buffer_loss(before) - 0.05
    state = replay.state_dict()
    other = build_strategy("replay", build_mlp(6, [8], 3), {"replay": {"mode": "after_task"}})
    other.load_state_dict(state)
    assert other.task_sizes == [12, 12]


def test_combined_runs_every_part():
    net = build_mlp(6, [8], 3)
    s = build_strategy("ewc+replay", net, {"replay": {"per_class": 2, "batch_size": 5}}, SIM)
    train(s, task(0), steps=3)
    s.after_task(0, task(0))
    x, _, _ = s.batch(task(1).x, task(1).y, task(1).heads)
    assert len(x) == 45                                   # the batch and the replayed samples
    assert s.penalty().item() == 0.0                      # EWC's anchor: the weights after task 0
    drifts = []
    for _ in range(2):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1)
        drifts.append(s.penalty().item())
    assert 0.0 < drifts[0] < drifts[1]                    # the penalty grows with the drift from the anchor
    assert set(s.state_dict()) == {"ewc", "replay"}


def test_a_combinations_penalty_is_the_sum_of_its_parts_penalties():
    """ewc+si trains against both anchors: the combined penalty is the sum of every part's term (a part without one,
    None, adds nothing), and None only when no part has a term."""
    net = build_mlp(6, [8], 3)
    terms = (torch.tensor(1.5, requires_grad=True), None, torch.tensor(2.0, requires_grad=True))
    parts = [type(f"P{i}", (Strategy,), {"penalty": lambda self, v=v: v})(net) for i, v in enumerate(terms)]
    assert Combined(parts, ["a", "b", "c"]).penalty().item() == 3.5
    assert Combined(parts[1:2] + [Strategy(net)], ["b", "d"]).penalty() is None


def test_a_combination_refuses_two_parts_of_one_name():
    """Combined keys each part's checkpoint state and result arrays by its name: two parts of one name (or a name
    missing) would share one key, so they are a one-line ConfigError when the combination is made."""
    net = build_mlp(6, [8], 3)
    parts = [build_strategy("ewc", net), build_strategy("si", net)]
    assert Combined(parts, ["ewc", "si"]).name == "ewc+si"
    for names in (["ewc", "ewc"], ["ewc"]):
        with pytest.raises(ConfigError, match=r"^a combination needs one distinct name per part, got \["):
            Combined(parts, names)


def test_exploding_penalty_is_a_clear_error():
    from spikecl.errors import NumericalError

    s = build_strategy("ewc", build_mlp(6, [8], 3), {"ewc": {"lam": 1e30}}, SIM)
    train(s, task(0), steps=2)
    s.after_task(0, task(0))
    with pytest.raises(NumericalError, match="lower train.lr"):
        train(s, task(1, seed=5), steps=50)


def test_replay_takes_single_head_data_without_heads_and_an_empty_task():
    """A library user's loop on a single-head network passes ``heads=None`` (as the trainer accepts): the task data
    and replay's mixed batches take head 0; a task without samples stores nothing (it raised in torch.cat)."""
    torch.manual_seed(0)
    net = build_mlp(6, [8], 3)
    s = build_strategy("replay", net, {"replay": {"per_class": 2, "batch_size": 4}}, Simulation(num_steps=2))
    first = TaskData(0, torch.rand(10, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]), None)
    empty = TaskData(1, torch.rand(0, 6), torch.zeros(0, dtype=torch.long), None)
    assert torch.equal(first.heads, torch.zeros(10, dtype=torch.long))
    for task, data in enumerate((first, empty)):
        s.before_task(task, data, [first, empty][:task + 1])
        s.after_task(task, data)
    assert len(s.buffer) == 6
    x, y, heads = s.batch(torch.rand(5, 6), torch.zeros(5, dtype=torch.long), None)
    assert x.shape == (9, 6) and torch.equal(heads, torch.zeros(9, dtype=torch.long))
    loss = make_trainer("bptt", net, 2).train_batch(first.x, first.y, None, None,
                                                     torch.optim.SGD(net.parameters(), lr=0.1), s)
    assert torch.isfinite(torch.as_tensor(loss))


def test_named_trainable_leaves_out_frozen_parameters():
    """named_trainable() gives the parameters that train, by name: a frozen one (GPM and HLOP freeze biases) is left
    out, so that EWC's and SI's anchors and importances cover only what the optimiser moves."""
    net = build_mlp(6, [5], 3, bias=True)
    net.layers[0].synapse.bias.requires_grad_(False)
    names = [n for n, _ in build_strategy("finetune", net).named_trainable()]
    assert names == [n for n, p in net.named_parameters() if n != "layers.0.synapse.bias"]
    assert "layers.0.synapse.bias" in dict(net.named_parameters()) and "readout.heads.0.bias" in names


def test_activity_is_taken_of_at_most_the_tasks_samples():
    """activity_of(data, n) records [T, n, features] per layer for n up to len(data); one sample more is a one-line
    DataError, not a recording of fewer samples than asked for."""
    s = build_strategy("finetune", build_mlp(6, [5], 3), None, SIM)
    data = task(0, n=4)
    activity = s.activity_of(data, 4)
    assert activity.of("layers.0").shape == (2, 4, 6) and activity.of("readout").shape == (2, 4, 5)
    with pytest.raises(DataError, match=r"^finetune: activity of 5 samples asked of task 0, which has 4; ask for "
                                        r"min\(n, len\(data\)\)$"):
        s.activity_of(data, 5)


@pytest.mark.parametrize("method, options", [("gpm", {}), ("hlop", {"hlop": {"budget": "energy"}})])
def test_consolidating_from_a_task_without_samples_is_one_line(method, options):
    from spikecl.continual.strategies import build_strategy
    from spikecl.continual.strategy import Simulation, TaskData
    from spikecl.errors import DataError
    from spikecl.snn import build_mlp

    strategy = build_strategy(method, build_mlp(6, [5], 3), options, Simulation(num_steps=3))
    empty = TaskData(0, torch.zeros(0, 6), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match=f"{method}: task 0 has no samples to take activity from"):
        strategy.before_task(0, empty, [empty])
        strategy.after_task(0, empty)


@pytest.mark.parametrize("hidden, heads, expected", [([8], 1, [2, 5]), ([8, 8], 1, [2, 3, 5]), ([8], 2, [2])])
def test_hlops_schedule_gives_a_shared_readout_the_last_column_of_a_longer_row(hidden, heads, expected):
    """The schedule's columns are the feature layers, then a shared readout: on a network with fewer protected
    synapses than columns the readout still takes the readout's column (per-task heads are not protected)."""
    net = build_mlp(6, hidden, 3, n_heads=heads)
    s = build_strategy("hlop", net, {"hlop": {"neurons": [[2, 3, 5], [1]]}}, SIM)
    s.before_task(0, task(0), [task(0)])
    assert [h.shape[0] for h in s.h_new.values()] == expected
    assert [s.schedule(1, i) for i in range(len(expected))] == [1] * len(expected)


def test_hlops_lateral_weights_gone_non_finite_are_a_one_line_error_not_an_svd_traceback():
    """A Hebbian step that blew up leaves NaN lateral weights: consolidating them is a NumericalError naming the
    synapse and the step option (before: linalg's traceback, or a layer silently left unprotected)."""
    from spikecl.continual.projection import orthonormal_rows
    from spikecl.errors import NumericalError
    from spikecl.export import hlop_graph

    s = build_strategy("hlop", build_mlp(6, [8], 3), {"hlop": {"neurons": [[2, 3]], "orthonormalize": True}}, SIM)
    s.before_task(0, task(0), [task(0)])
    s.h_new["layers.0"][0, 0] = float("nan")
    with pytest.raises(NumericalError, match=r"^hlop: the lateral weights of layers.0 became NaN or infinite in "
                                             r"task 1; lower the Hebbian step \(strategy.hlop.fixed_lr\)$"):
        s.after_task(0, task(0))
    with pytest.raises(NumericalError, match="rows hold NaN or infinity"):
        orthonormal_rows(torch.tensor([[1.0, float("inf")]]))
    with pytest.raises(NumericalError, match="rows hold NaN or infinity"):
        hlop_graph.orthonormal_rows(np.array([[np.nan, 1.0]]))


@pytest.mark.parametrize("make, message", [
    (lambda x, y: TaskData(0, x, y.float(), None), r"TaskData.y: expected integer indices \[20\], one per sample, "
                                                   r"got torch.float32 \(20,\)"),
    (lambda x, y: TaskData(0, x, y[:15], None), r"TaskData.y: expected integer indices \[20\]"),
    (lambda x, y: TaskData(0, x, y, y[:3]), r"TaskData.heads: expected integer indices \[20\]"),
    (lambda x, y: TaskData(0, x.numpy(), y, None), "TaskData.x: expected a tensor, got ndarray"),
    (lambda x, y: TaskData(0, x[:, 0], y, None), r"TaskData.x: expected floating-point samples \[N, ...\]"),
    (lambda x, y: TaskData(0, x, y, None, torch.ones(3)), "TaskData.mask: expected a 1-D bool tensor"),
    (lambda x, y: TaskData(0, x, y, None, torch.ones(1, 3, dtype=torch.bool)),
     "TaskData.mask: expected a 1-D bool tensor"),
])
def test_task_data_built_by_hand_is_checked_where_it_is_built(make, message):
    """Float labels or fewer labels than samples failed later inside a strategy (a torch error, or a message about
    heads), or not at all (replay, SI)."""
    from spikecl.errors import ShapeError

    g = torch.Generator().manual_seed(0)
    with pytest.raises(ShapeError, match=message):
        make(torch.rand(20, 6, generator=g), torch.randint(0, 3, (20,), generator=g))


def test_build_strategy_names_a_simulation_given_as_a_dict():
    """A dict of the Simulation's fields was accepted and failed later, inside a strategy's pass."""
    from spikecl.continual.strategies import build_strategy
    from spikecl.errors import ConfigError
    from spikecl.snn import build_mlp

    with pytest.raises(ConfigError, match=r"build_strategy: sim: expected a Simulation, got dict"):
        build_strategy("ewc", build_mlp(4, [3], 2), None, {"num_steps": 4})


def test_a_strategy_built_for_another_simulation_than_its_trainer_is_refused():
    """build_strategy's default Simulation (T = 4, direct, BPTT) beside a T = 8 Poisson trainer trained without a
    word: EWC's Fisher and GPM/HLOP's activity passes then present samples otherwise than training."""
    net = build_mlp(8, [6], 3)
    trainer = make_trainer("bptt", net, 8, "poisson")
    optimizer = torch.optim.SGD(net.parameters(), 0.1)
    x, y = torch.rand(4, 8), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ConfigError, match=r"^the strategy was built for num_steps = 4, encoder 'direct', trainer "
                                          r"'bptt', this trainer runs num_steps = 8, encoder 'poisson', trainer "
                                          r"'bptt'; give build_strategy the trainer's own Simulation"):
        trainer.train_batch(x, y, None, None, optimizer, build_strategy("ewc", net, {}, None))
    loss = trainer.train_batch(x, y, None, None, optimizer, build_strategy("ewc", net, {}, Simulation(8, "poisson")))
    assert torch.isfinite(loss)

    class OwnTrainer(type(trainer)):                       # a user's subclass is compared on T and encoder
        pass
    own = OwnTrainer(net, 8, "poisson")
    assert torch.isfinite(own.train_batch(x, y, None, None, optimizer, build_strategy("ewc", net, {},
                                                                                      Simulation(8, "poisson"))))
