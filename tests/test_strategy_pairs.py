"""Strategies combine in either order: activity is handed to each strategy, not switched on shared modules, so
``a+b`` runs exactly when ``b+a`` does; an unsupported combination or a wrong event order is a one-line error that
names the method."""

import copy
import itertools
import math
import re

import pytest
import torch

from spikecl.config import experiment_from_dict
from spikecl.continual.data_parallel import DataParallel
from spikecl.continual.projection import orthonormal_rows
from spikecl.continual.runner import ContinualRun, build_stream
from spikecl.continual.strategies import REGISTRY, build_strategy, register, validate_method
from spikecl.continual.strategy import Simulation, Strategy, TaskData
from spikecl.errors import ConfigError, SpikeCLError
from spikecl.snn import build_mlp, encode, make_trainer

METHODS = ["hlop", "gpm", "ewc", "si", "replay"]
TINY = {
    "name": "pairs", "seeds": [0], "data": {"dataset": "digits"},
    "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 2, "train_per_task": 120, "test_per_task": 60},
    "network": {"hidden": [16], "num_steps": 2},
    "train": {"epochs": 1, "batch_size": 40, "lr": 0.1, "eval_every": 0},
    # final_passes = 1: HLOP's Hebbian passes after training need activity after a partner's after_task
    "strategy": {"hlop": {"neurons": [[4, 4, 4]], "final_passes": 1}, "gpm": {"samples": 40},
                 "ewc": {"fisher_samples": 10}, "replay": {"per_class": 2, "batch_size": 8}},
}


@pytest.fixture(scope="module")
def tiny():
    """(config, stream) of a 2-task permuted-digits run of a few steps, shared by every pair."""
    cfg = experiment_from_dict(TINY)
    return cfg, build_stream(cfg, 0)


def outcome(cfg, stream, method: str) -> str:
    """``"ran"`` if ``method`` trains through the stream (finite ACC), else its one-line refusal."""
    try:
        acc = ContinualRun(cfg, method, 0, stream=stream).execute(progress_bar=False).metrics["acc"]
    except SpikeCLError as exc:
        assert "\n" not in str(exc), str(exc)
        return f"refused: {exc}"
    assert math.isfinite(acc)
    return "ran"


@pytest.mark.parametrize("a,b", list(itertools.combinations(METHODS, 2)), ids=lambda m: m)
def test_every_pair_runs_in_both_orders(tiny, a, b):
    cfg, stream = tiny
    assert outcome(cfg, stream, f"{a}+{b}") == outcome(cfg, stream, f"{b}+{a}") == "ran"


class BPTTOnly(Strategy):
    """A user strategy declaring less than the built-in ones support."""

    name = "bptt-only"
    trainers = ("bptt",)


@pytest.fixture
def bptt_only():
    register("bptt-only", BPTTOnly)
    yield "bptt-only"
    del REGISTRY["bptt-only"]


def test_unsupported_combinations_refuse_in_one_line_before_training(tiny, bptt_only):
    cfg, stream = tiny
    online = experiment_from_dict({**TINY, "train": {**TINY["train"], "trainer": "online"}})
    refusals = {outcome(online, stream, m) for m in (f"hlop+{bptt_only}", f"{bptt_only}+hlop")}
    assert refusals == {"refused: strategy.methods: 'bptt-only' does not support train.trainer = 'online' "
                        "(it supports bptt)"}
    # user strategies do not claim data-parallel support; the check comes before any collective is called
    with pytest.raises(SpikeCLError, match="'bptt-only' does not support data-parallel runs"):
        ContinualRun(cfg, f"ewc+{bptt_only}", 0, stream=stream, execution=DataParallel())


@pytest.mark.parametrize("method", ["multitask+replay", "gpm+multitask", "joint+ewc"])
def test_upper_bounds_do_not_combine(tiny, method):
    bound = next(p for p in method.split("+") if p in ("multitask", "joint"))
    assert outcome(*tiny, method) == (f"refused: strategy.methods: {method!r} combines {bound!r}, an upper bound "
                                      "that replaces the stream's training data; run it as a row of its own")


def test_wrong_event_order_names_the_method():
    s = build_strategy("gpm+hlop", build_mlp(6, [8], 3), {"hlop": {"neurons": [[2]]}}, Simulation(num_steps=2))
    g = torch.Generator().manual_seed(0)
    data = TaskData(0, torch.rand(20, 6, generator=g), torch.randint(0, 3, (20,), generator=g),
                    torch.zeros(20, dtype=torch.long))
    with pytest.raises(SpikeCLError, match=r"^hlop: after_task\(0\) without a matching before_task"):
        s.after_task(0, data)
    s.before_task(0, data, [data])
    with pytest.raises(SpikeCLError, match="^hlop: after_backward needs the batch's presynaptic activity"):
        s.after_backward()                                   # called by hand, without the trainer's recording
    trainer = make_trainer("bptt", s.model, 2)
    trainer.train_batch(data.x, data.y, data.heads, None, torch.optim.SGD(s.model.parameters(), lr=0.1), s)
    s.after_task(0, data)
    with pytest.raises(SpikeCLError, match=r"^hlop: after_task\(0\) without a matching before_task"):
        s.after_task(0, data)


@pytest.mark.parametrize("trainer", ["bptt", "online", "dsr"])
def test_strategy_gradients_come_from_the_run_trainer(trainer):
    """``loss_backward`` (replay's after-task phase) differentiates as the configured trainer does."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(10, 6, generator=g), torch.randint(0, 3, (10,), generator=g)
    grads = {}
    for name in ("bptt", trainer):
        torch.manual_seed(0)
        net = build_mlp(6, [8], 3)
        make_trainer(name, net, 3).task_loss_backward(encode(x, 3), y, None, None)
        grads[name] = [p.grad for p in net.parameters()]
    torch.manual_seed(0)
    s = build_strategy("replay", build_mlp(6, [8], 3), sim=Simulation(num_steps=3, trainer=trainer))
    s.loss_backward(x, y, None)
    for got, expected in zip((p.grad for p in s.model.parameters()), grads[trainer]):
        torch.testing.assert_close(got, expected)
    if trainer != "bptt":
        assert not torch.allclose(grads[trainer][0], grads["bptt"][0])


def _trained(method: str, options: dict) -> tuple:
    """(network, strategy) after 3 tiny tasks of plain SGD (no momentum) with ``method``."""
    torch.manual_seed(0)
    net = build_mlp(20, [24, 24], 3)
    strategy = build_strategy(method, net, options, Simulation(num_steps=3))
    trainer, seen, g = make_trainer("bptt", net, 3), [], torch.Generator().manual_seed(3)
    for t in range(3):
        x = torch.rand(60, 20, generator=g) * (torch.rand(20, generator=g) > 0.5 if t == 0 else 1.0)
        task = TaskData(t, x, torch.randint(0, 3, (60,), generator=g), torch.zeros(60, dtype=torch.long))
        seen.append(task)
        train = strategy.before_task(t, task, seen)
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
        for _ in range(2):
            for idx in torch.arange(len(train)).split(20):
                trainer.train_batch(*strategy.batch(train.x[idx], train.y[idx], train.heads[idx]), train.mask, opt,
                                    strategy)
        strategy.after_task(t, train)
    return net, strategy


@pytest.mark.parametrize("projection", ["gpm", "hlop"])
def test_si_integrates_the_projected_step_in_either_order(projection):
    """SI's ω = −Σ g·Δθ takes the gradient the step used: with GPM or HLOP that is the projected one, whichever part
    comes first, so importances are never negative under plain SGD and both orders train the same network."""
    options = {"si": {"c": 1.0}, "gpm": {"thresholds": [0.9]}, "hlop": {"neurons": [[4, 6, 6], [3]]}}
    (net_a, a), (net_b, b) = (_trained(m, options) for m in (f"si+{projection}", f"{projection}+si"))
    for key, value in net_a.state_dict().items():
        torch.testing.assert_close(value, net_b.state_dict()[key], rtol=0, atol=1e-6)
    si = next(p for p in a.parts if p.name == "si")
    assert all(float(o.min()) >= 0 for o in si.omega.values()) and any(float(o.max()) > 0 for o in si.omega.values())


@pytest.mark.parametrize("method, key", [("gpm", "thresholds"), ("hlop", "neurons"), ("hlop", "energy"),
                                         ("hlop", "fixed_lr")])
def test_an_empty_per_synapse_list_is_refused(method, key):
    """An empty list has no last value to repeat: refused in one line, not an IndexError after a task (or, for
    ``fixed_lr``, Hebbian learning silently off)."""
    with pytest.raises(SpikeCLError, match=rf"strategy\.{method}\.{key}: expected at least one value"):
        validate_method(experiment_from_dict({**TINY, "strategy": {"methods": [method], method: {key: []}}}), method)


def test_results_of_si_before_a_projection_record_the_gradient_rule():
    """``si+gpm`` and ``si+hlop`` trained otherwise before SI read the step's gradient: their results files and
    checkpoints record the rule, so --resume and the report do not take an older file for one of these."""
    from spikecl.continual.run_record import recorded_config

    cfg = experiment_from_dict(TINY)
    recorded = {m: recorded_config(cfg, m, m, 0).get("si_gradient") for m in ("si+gpm", "si+hlop", "gpm+si", "si")}
    assert recorded == {"si+gpm": "the step's", "si+hlop": "the step's", "gpm+si": None, "si": None}


def _task1_gradients(method: str, orthonormalize: bool) -> tuple:
    """(strategy, raw, projected): after task 0, the weight gradients {synapse: [out, n]} of one task-1 batch as
    backpropagated and as left by ``after_backward``."""
    torch.manual_seed(0)
    net = build_mlp(20, [40], 30)
    options = {"hlop": {"neurons": [[4, 6]], "orthonormalize": orthonormalize}, "gpm": {"thresholds": [0.9]}}
    s = build_strategy(method, net, options, Simulation(num_steps=3))
    trainer, g = make_trainer("bptt", net, 3), torch.Generator().manual_seed(3)
    tasks = [TaskData(t, torch.rand(60, 20, generator=g), torch.randint(0, 30, (60,), generator=g),
                      torch.zeros(60, dtype=torch.long)) for t in range(2)]
    train, opt = s.before_task(0, tasks[0], tasks[:1]), torch.optim.SGD(net.parameters(), lr=0.1)
    for idx in torch.arange(60).split(20) * 3:
        trainer.train_batch(*s.batch(train.x[idx], train.y[idx], train.heads[idx]), None, opt, s)
    s.after_task(0, train)
    s.before_task(1, tasks[1], tasks)
    grads, batch = [], (tasks[1].x[:20], tasks[1].y[:20], tasks[1].heads[:20])
    for hooks in (Strategy(net, sim=s.sim), s):        # lr 0: the gradients stay, the weights do not move
        trainer.train_batch(*hooks.batch(*batch), None, torch.optim.SGD(net.parameters(), lr=0.0), hooks)
        grads.append({p.name: p.weight.grad.clone() for p in s.parts[0].synapses})
    return s, *grads


@pytest.mark.parametrize("orthonormalize", [True, False])
def test_two_projection_methods_protect_both_subspaces_in_either_order(orthonormalize):
    """``hlop+gpm`` and ``gpm+hlop`` project against the union of both subspaces: no share of the gradient's
    component in either part's subspace is left (one part projecting after the other put it back), and both orders
    give the same gradient."""
    projected = {}
    for method in ("hlop+gpm", "gpm+hlop"):
        s, raw, projected[method] = _task1_gradients(method, orthonormalize)
        parts = {p.name: p for p in s.parts}
        for name, grad in projected[method].items():
            for part, basis in (("hlop", parts["hlop"].h_old[name]), ("gpm", parts["gpm"].bases[name])):
                q = orthonormal_rows(basis).double()
                assert q.shape[0] > 0
                left = (grad.double() @ q.T).norm() / (raw[name].double() @ q.T).norm()
                assert left < 1e-5, (method, name, part, float(left))
    for name, grad in projected["hlop+gpm"].items():
        torch.testing.assert_close(grad, projected["gpm+hlop"][name], rtol=0, atol=1e-6)


@pytest.mark.parametrize("method, problem", [("ewc+ewc", "names 'ewc' twice"),
                                             ("ewc+", "has an empty part (a '+' with no method on one side)"),
                                             ("joint+replay", "combines 'joint', an upper bound"),
                                             ("si+multitask", "combines 'multitask', an upper bound")])
def test_build_strategy_refuses_what_a_run_refuses(tiny, method, problem):
    """Building a strategy from the library enforces the combination rules of a run: a repeated part would keep one
    part's state in checkpoints, and an upper bound replaces the stream's training data."""
    refusal = "^" + re.escape(f"strategy.methods: {method!r} {problem}")
    with pytest.raises(ConfigError, match=refusal):
        build_strategy(method, build_mlp(6, [8], 3))
    with pytest.raises(ConfigError, match=refusal):
        validate_method(tiny[0], method)


def test_joint_trains_on_the_current_task_whatever_seen_holds():
    """``seen`` is tasks 0..task inclusive (the runner's); a library user passing the earlier tasks only, or none,
    still trains on the current task, once."""
    joint = build_strategy("joint", build_mlp(6, [8], 3))
    tasks = [TaskData(t, torch.full((4, 6), float(t)), torch.full((4,), t), torch.zeros(4, dtype=torch.long))
             for t in range(3)]
    for seen in (tasks, tasks[:2]):
        torch.testing.assert_close(joint.before_task(2, tasks[2], seen).x, torch.cat([t.x for t in tasks]))
    for seen in ([], tasks[:1]):
        got = joint.before_task(0, tasks[0], seen)
        torch.testing.assert_close(got.x, tasks[0].x)
        assert got.task == 0


def test_results_of_two_projections_and_of_poisson_draws_record_their_rules():
    """Runs of ``hlop+gpm`` and Poisson-encoded runs train otherwise than older spikecl's did: their results and
    checkpoints say so, so --resume and the report do not take an older file for one of these."""
    from spikecl.continual.run_record import recorded_config

    cfg = experiment_from_dict(TINY)
    rules = {m: recorded_config(cfg, m, m, 0).get("projection") for m in ("hlop+gpm", "gpm+hlop", "gpm+ewc", "hlop")}
    assert rules == {"hlop+gpm": "the union of the parts' subspaces", "gpm+hlop": "the union of the parts' subspaces",
                     "gpm+ewc": None, "hlop": None}
    poisson = experiment_from_dict({**TINY, "network": {**TINY["network"], "encoder": "poisson"}})
    assert (recorded_config(poisson, "finetune", "finetune", 0)["poisson_draws"]
            == "sample by sample, evaluations from streams of their own")
    assert "poisson_draws" not in recorded_config(cfg, "finetune", "finetune", 0)


def test_the_union_of_two_subspaces_keeps_every_direction_and_counts_a_shared_one_once():
    """The union of subspaces is taken by SVD: a repeated row before an independent one loses no direction (a QR
    without pivoting lost it), and a basis within 1e-3 of another's span adds no direction of its own (its
    noise would have doubled the protected dimensions)."""
    from spikecl.continual.projection import union_rows

    q, _ = torch.linalg.qr(torch.randn(100, 30, generator=torch.Generator().manual_seed(0)))
    a0, a1, b = q[:, 20], q[:, 21], q[:, 22]
    union = union_rows([torch.stack([a0, a1, a0, b])])
    assert union.shape[0] == 3
    assert max(float((v - (v @ union.T) @ union).norm()) for v in (a0, a1, b)) < 1e-6
    gpm = q[:, :20].T.contiguous()
    noise = torch.nn.functional.normalize(torch.randn(20, 100, generator=torch.Generator().manual_seed(1)), dim=1)
    assert union_rows([gpm, gpm + 1e-3 * noise]).shape[0] == 20
    assert union_rows([gpm, q[:, 20:25].T]).shape[0] == 25


@pytest.mark.parametrize("other", ["ewc", "si", "gpm", "hlop"])
def test_replays_after_task_phase_gives_one_result_in_either_order(other):
    """Parts consolidate by stage, not by the order of the names: subspaces of the task as trained, then replay's
    phase on its buffer, then the anchors of EWC and SI (so the next task is pulled towards the weights the phase
    left). ``other+replay`` and ``replay+other`` end alike; only the order that differs from the order of the
    names is recorded as a rule of the run (its results were otherwise before)."""
    from spikecl.continual.run_record import unshown_rules

    raw = {**TINY, "stream": {**TINY["stream"], "n_tasks": 3},
           "strategy": {**TINY["strategy"], "replay": {"per_class": 2, "batch_size": 8, "mode": "after_task",
                                                       "phase_epochs": 2, "phase_lr": 0.2}}}
    cfg = experiment_from_dict(raw)
    stream = build_stream(cfg, 0)
    runs = {m: ContinualRun(cfg, m, 0, stream=stream) for m in (f"{other}+replay", f"replay+{other}")}
    results = {m: run.execute(progress_bar=False) for m, run in runs.items()}
    (first, a), (second, b) = results.items()
    assert torch.equal(torch.as_tensor(a.acc_matrix), torch.as_tensor(b.acc_matrix))
    for (name, p), q in zip(runs[first].net.state_dict().items(), runs[second].net.state_dict().values()):
        assert torch.equal(p, q), name
    recorded = {m: "after_task_order" in unshown_rules(cfg, m) for m in results}
    assert recorded == {f"{other}+replay": other in ("ewc", "si"), f"replay+{other}": other in ("gpm", "hlop")}


def test_hlop_step_rows_on_a_network_whose_protected_synapses_are_all_convolutions_is_refused():
    """``step_rows`` samples Linear synapses' time-step rows only: on a task-incremental CNN (its multi-head readout
    unprotected) nothing would use it, so it is a one-line ConfigError; with a protected Linear readout it applies."""
    from spikecl.continual.strategies.hlop import HLOP, HLOPOptions
    from spikecl.snn import build_cnn

    multi = build_cnn((1, 8, 8), [4], 3, n_heads=2)
    with pytest.raises(ConfigError, match="strategy.hlop.step_rows: it samples the rows of Linear synapses, and the "):
        HLOP(multi, HLOPOptions(step_rows=1))
    HLOP(multi, HLOPOptions())
    HLOP(build_cnn((1, 8, 8), [4], 3), HLOPOptions(step_rows=1))
    with pytest.raises(ConfigError, match="the network protects none"):                # no synapse at all
        HLOP(build_mlp(16, [], 3, n_heads=2), HLOPOptions(step_rows=1))


class Anchored(Strategy):
    """A user strategy with a penalty: unused heads keep its nonzero pull (spikecl's rule for EWC and SI too)."""

    name = "anchored"

    def penalty(self):
        return None


def test_the_unused_heads_rule_says_where_a_penalty_ran_whatever_the_method():
    from spikecl.continual.run_record import unshown_rules

    task = experiment_from_dict({**TINY, "stream": {**TINY["stream"], "kind": "split", "scenario": "task"},
                                 "train": {**TINY["train"], "weight_decay": 0.01}})
    register("anchored", Anchored)
    try:
        rules = {m: unshown_rules(task, m)["unused_heads"] for m in ("finetune", "gpm", "ewc", "si+gpm", "anchored")}
    finally:
        del REGISTRY["anchored"]
    assert rules["finetune"] == rules["gpm"] == "no gradient"
    assert rules["ewc"] == rules["si+gpm"] == rules["anchored"] == "no gradient, a penalty's zero one included"


@pytest.mark.parametrize("method, train, recorded", [
    ("finetune", {}, False),                                     # momentum 0.9, a fresh optimiser per task
    ("finetune", {"weight_decay": 0.01}, True), ("finetune", {"reset_optimizer": False}, True),
    ("joint", {}, False), ("joint", {"weight_decay": 0.01}, True),          # alike for every method
    ("finetune", {"momentum": 0.0, "weight_decay": 0.0}, False),
    ("finetune", {"optimizer": "adam", "reset_optimizer": False}, True), ("finetune", {"optimizer": "adam"}, False),
])
def test_task_incremental_runs_record_that_unused_heads_get_no_gradient(method, train, recorded):
    """Where weight decay, or momentum carried into a task, could have moved a head no batch sample names, the rule
    that such heads get no gradient is recorded (their numbers were otherwise before it), for every method alike;
    elsewhere a zero gradient moved nothing, and domain-incremental runs have one head."""
    from spikecl.continual.run_record import unshown_rules

    task = experiment_from_dict({**TINY, "stream": {**TINY["stream"], "kind": "split", "scenario": "task"},
                                 "train": {**TINY["train"], **train}})
    assert ("unused_heads" in unshown_rules(task, method)) == recorded
    assert "unused_heads" not in unshown_rules(experiment_from_dict(TINY), method)


def test_every_recorded_rule_that_varies_by_method_is_one_the_report_compares_within_a_method_only():
    """``spikecl report`` ignores :data:`~spikecl.continual.report.METHOD_RULES` between rows of different methods:
    a rule that differs by method and is not listed there would part every such pair of rows."""
    from spikecl.continual.report import METHOD_KEYS, METHOD_RULES, RULES
    from spikecl.continual.run_record import unshown_rules

    methods = ["finetune", "joint", "ewc", "si", "gpm", "hlop", "replay", "si+gpm", "hlop+gpm", "ewc+replay",
               "gpm+hlop", "si+hlop", "hlop+replay", "si+replay"]
    seen = set()
    for extra in ({}, {"network": {**TINY["network"], "encoder": "poisson"}},
                  {"stream": {**TINY["stream"], "kind": "split", "scenario": "task", "train_per_task": 20,
                              "test_per_task": 10}, "train": {**TINY["train"], "weight_decay": 0.01}},
                  {"strategy": {"methods": ["ewc+replay"], "replay": {"mode": "after_task"},
                                "hlop": {"lateral_levels": 40}}}):
        cfg = experiment_from_dict({**TINY, **extra})
        rules = [unshown_rules(cfg, m) for m in methods]
        varying = {k for r in rules for k in r if len({repr(other.get(k)) for other in rules}) > 1}
        assert varying <= METHOD_RULES | METHOD_KEYS, varying - METHOD_RULES - METHOD_KEYS
        seen |= varying
        assert {k for r in rules for k in r} <= RULES                   # each one named a rule in --resume's refusal
    assert seen == METHOD_RULES | {"lateral_rates"}               # each listed rule does vary by method


def test_each_subsampled_split_records_how_its_subsample_is_drawn():
    """stream.train_per_task records the training subsample's seed rule, stream.test_per_task the evaluation
    subsample's seed: each only where its own split is subsampled."""
    from spikecl.continual.run_record import unshown_rules
    from spikecl.data.streams import EVAL_SUBSAMPLE_SEED

    def rules(train: int, test: int) -> dict:
        stream = {**TINY["stream"], "train_per_task": train, "test_per_task": test}
        return unshown_rules(experiment_from_dict({**TINY, "stream": stream}), "finetune")

    assert rules(120, 0).get("train_subsample_seed") == "(seed, task)" and "eval_subsample_seed" not in rules(120, 0)
    assert rules(0, 60).get("eval_subsample_seed") == EVAL_SUBSAMPLE_SEED and "train_subsample_seed" not in rules(0, 60)


def test_a_variants_results_record_its_name_the_method_it_runs_and_every_option_of_that_method():
    """A variant's run records its own name as the method, the method it runs as runs_method (which the report
    compares rows by) and that method's options with their defaults."""
    from spikecl.continual.run_record import recorded_config
    from spikecl.continual.strategies import effective_options

    cfg = experiment_from_dict(TINY)
    recorded = recorded_config(cfg, "hlop-fast", "hlop", 3)
    assert (recorded["method"], recorded["runs_method"], recorded["seed"]) == ("hlop-fast", "hlop", 3)
    assert recorded["strategy"]["options"] == effective_options("hlop", cfg.strategy.options)
    assert recorded["strategy"]["options"]["hlop"]["neurons"] == [[4, 4, 4]]


def test_runs_on_files_read_in_a_fixed_order_record_it():
    """IDX and CIFAR samples were taken in the files' order before 2026-12-05: a result made so (which the rule's
    absence marks) is not kept by --resume nor averaged with newer ones."""
    from spikecl.continual.run_record import unshown_rules

    for dataset, rule in (("mnist", "fixed random"), ("cifar10", "fixed random"), ("digits", None), ("mnist5k", None)):
        cfg = experiment_from_dict({**TINY, "data": {"dataset": dataset}})
        assert unshown_rules(cfg, "finetune").get("sample_order") == rule


def test_data_dir_is_refused_where_every_run_reads_a_bundled_dataset(tmp_path):
    """``--data-dir`` on digits is read by no run, unless a variant it runs switches to MNIST (its files); one it
    declares but does not run reads nothing."""
    import json

    from spikecl.commands.run import check_reads_data

    def experiment(variants, listed=True):
        path = tmp_path / "e.toml"
        path.write_text(f"name = \"e\"\n[data]\ndataset = \"digits\"\n[strategy]\nmethods = "
                        f"{json.dumps(['finetune', *(variants if listed else [])])}\n"
                        + "".join(f'[variants.{v}]\nmethod = "finetune"\n"data.dataset" = "mnist"\n' for v in variants))
        return path

    for unread in (experiment([]), experiment(["m"], listed=False)):
        with pytest.raises(ConfigError, match="--data-dir: every run of this experiment reads digits, which comes "
                                              "with its package and is read from no folder; drop --data-dir"):
            check_reads_data(unread, [])
    check_reads_data(experiment(["m"]), [])
    sparsey = tmp_path / "s.toml"                           # another kind: its data table, or its default dataset
    sparsey.write_text('kind = "sparsey"\nname = "s"\n')
    with pytest.raises(ConfigError, match="--data-dir: every run of this experiment reads mnist5k, which comes"):
        check_reads_data(sparsey, [])
    check_reads_data(sparsey, ['data.dataset="mnist"'])
    check_reads_data(sparsey, ['data.dataset=["mnist"]'])     # not a name: left to the kind's own one-line error
    sweep = tmp_path / "sw.toml"
    sweep.write_text('base = "e.toml"\n[grid]\n"train.lr" = [0.1]\n')
    with pytest.raises(ConfigError, match="sw.toml is a sweep file .*; run it with: spikecl sweep"):
        check_reads_data(sweep, [])                          # not "unknown key 'base'"


@pytest.mark.parametrize("methods, options, refused", [
    (["replay"], {"replay": {"mode": "mixed", "phase_lr": 0.5}},
     "strategy.replay.phase_lr: applies only to mode = 'after_task' or 'auto'; leave it at its default (0.01)"),
    (["replay", "hlop+replay"], {"replay": {"phase_epochs": 3}}, None),         # hlop+replay's phase reads it
    (["ewc+replay"], {"replay": {"mode": "after_task", "phase_lr": 0.5}}, None),
    (["replay"], {"replay": {"mode": "mixed", "phase_epochs": 1}}, None),         # its default
    (["replay", "ewc+replay"], {"replay": {"phase_lr": 0.5}},                      # "auto" beside no projection
     "strategy.replay.phase_lr: no run of this experiment reads it (replay's after-task phase runs with mode = "
     "\"after_task\", or \"auto\" beside a projection method, e.g. hlop+replay)"),
])
def test_replays_phase_options_are_refused_where_no_run_could_read_them(methods, options, refused):
    """Under ``mode = "mixed"`` no run of any method reads replay's phase options: a one-line ConfigError when the
    experiment loads; under ``"auto"`` a run beside a projection method reads them, so a shared table keeps them."""
    from spikecl.continual.experiment import KIND

    raw = {**TINY, "strategy": {**options, "methods": methods}}
    if refused is None:
        KIND.load(raw)
        ContinualRun(experiment_from_dict(raw), methods[0], 0)
        return
    with pytest.raises(ConfigError, match=re.escape(refused)):
        KIND.load(raw)


@pytest.mark.parametrize("methods, trainers, refused", [
    (["finetune", "gpm+replay"], {}, True),                    # every run dsr, none takes spike gradients of its own
    (["finetune", "ewc+replay"], {}, False),                   # EWC's Fisher passes read it
    (["finetune", "fast"], {"fast": "bptt"}, False),           # a variant trains through the spikes
    (["fast"], {"fast": "dsr"}, True)])
def test_a_surrogate_slope_no_run_reads_is_refused_when_it_loads(methods, trainers, refused):
    """The dsr trainer passes gradients through firing rates: network.surrogate_slope set beside it changed nothing
    (the same ACC at 5 and 25); read where any run trains through the spikes or a method takes gradients of its
    own (EWC's Fisher)."""
    from spikecl.continual.experiment import KIND

    variants = {name: {"method": "finetune", "train": {"trainer": trainer}} for name, trainer in trainers.items()}
    raw = {**TINY, "network": {**TINY["network"], "surrogate_slope": 5.0}, "variants": variants,
           "train": {**TINY["train"], "trainer": "dsr"}, "strategy": {**TINY["strategy"], "methods": methods}}
    if not refused:
        KIND.load(raw)
        return
    with pytest.raises(ConfigError, match=re.escape(
            "network.surrogate_slope: no run of this experiment reads it (the dsr trainer passes gradients through "
            "firing rates, and none of its methods takes them through the spikes, as EWC's Fisher does); leave it at "
            "its default (25): every run would ignore it")):
        KIND.load(raw)
    KIND.load({**raw, "network": TINY["network"]})


def test_a_variant_or_a_sweep_point_with_phase_options_no_run_reads_is_refused_when_it_loads(sweep_files):
    """A variant's own table, and a sweep's points, are checked as an experiment's: a mixed-mode replay with a
    phase option is refused when the file or the sweep loads, not when its runs start."""
    from spikecl.continual.experiment import KIND
    from spikecl.continual.sweep import load_sweep

    variant = {"method": "replay", "strategy": {"replay": {"mode": "mixed", "phase_lr": 0.5}}}
    with pytest.raises(ConfigError, match=re.escape("strategy.replay.phase_lr: applies only to mode = 'after_task'")):
        KIND.load({**TINY, "strategy": {"methods": ["rp"]}, "variants": {"rp": variant}})
    KIND.load({**TINY, "strategy": {"methods": ["rp"]}, "variants": {"rp": {**variant, "strategy": {"replay": {
        "mode": "after_task", "phase_lr": 0.5}}}}})
    base = ('name = "b"\n[data]\ndataset = "digits"\n[stream]\nkind = "permuted"\nn_tasks = 2\n'
            '[strategy]\nmethods = ["replay"]\n[strategy.replay]\nmode = "mixed"\n')
    path = sweep_files(base, 'base = "base.toml"\n[grid]\n"strategy.replay.phase_lr" = [0.01, 0.5]\n')
    with pytest.raises(ConfigError, match=re.escape("strategy.replay.phase_lr: applies only to mode = 'after_task'")):
        load_sweep(path)
    load_sweep(sweep_files(base.replace('["replay"]', '["replay", "hlop+replay"]').replace('mode = "mixed"',
                                                                                           'mode = "auto"'),
                           'base = "base.toml"\n[grid]\n"strategy.replay.phase_lr" = [0.01, 0.5]\n'))


def test_phase_options_shared_with_a_run_that_reads_them_are_recorded_and_swept_only_where_read(sweep_files):
    """Plain replay beside hlop+replay: its run records the phase options it does not read at their defaults (and
    a resume does not compare them); a sweep over them gives plain replay one candidate, and a sweep over them
    with no run that reads them is refused when it loads."""
    from spikecl.continual.checkpoint import checkpoint_difference
    from spikecl.continual.run_record import recorded_config, unshown_rules
    from spikecl.continual.strategies import effective_options
    from spikecl.continual.sweep import load_sweep
    from spikecl.differences import first_difference
    from spikecl.recorded import recorded_as_now

    def checkpoint(method):                              # what a run of cfg writes, as far as the check reads it
        return {"config": cfg.to_dict(), "method": method, "seed": 0,
                "options": effective_options(method, cfg.strategy.options), **unshown_rules(cfg, method)}

    options = {"replay": {"phase_lr": 0.5, "phase_epochs": 3}}
    cfg = experiment_from_dict({**TINY, "strategy": {**options, "methods": ["replay", "hlop+replay"]}})
    assert recorded_config(cfg, "replay", "replay", 0)["strategy"]["options"]["replay"]["phase_lr"] == 0.01
    assert recorded_config(cfg, "hlop+replay", "hlop+replay", 0)["strategy"]["options"]["replay"]["phase_lr"] == 0.5
    other = experiment_from_dict({**TINY, "strategy": {"replay": {"phase_lr": 0.2, "phase_epochs": 3},
                                                       "methods": cfg.strategy.methods}})
    assert checkpoint_difference(checkpoint("replay"), "replay", 0, other, "replay") is None
    # files written before recorded the values given: a results file and a checkpoint of plain replay still fit
    old = copy.deepcopy(recorded_config(cfg, "replay", "replay", 0))
    old["strategy"]["options"]["replay"].update(phase_lr=0.5, phase_epochs=3)
    assert first_difference(recorded_as_now(old), recorded_config(other, "replay", "replay", 0)) is None
    state = checkpoint("replay")
    state["options"]["replay"].update(phase_lr=0.5, phase_epochs=3)
    assert checkpoint_difference(state, "replay", 0, other, "replay") is None
    assert checkpoint_difference(checkpoint("hlop+replay"), "hlop+replay", 0, other,
                                 "hlop+replay") == "strategy.replay.phase_lr"

    base = ('name = "b"\n[data]\ndataset = "digits"\n[stream]\nkind = "permuted"\nn_tasks = 2\n'
            '[strategy]\nmethods = ["replay", "hlop+replay"]\n')
    grid = 'base = "base.toml"\n[grid]\n"strategy.replay.phase_lr" = [0.01, 0.5]\n'
    sweep = load_sweep(sweep_files(base, grid))
    assert {m: len(c) for m, c in sweep.candidates.items()} == {"replay": 1, "hlop+replay": 2}
    assert [r.point for r in sweep.runs if r.method == "replay"] == ["base"]
    with pytest.raises(ConfigError, match="strategy.replay.phase_lr: no run of this experiment reads it"):
        load_sweep(sweep_files(base.replace(', "hlop+replay"', ""), grid))


def test_hlop_step_rows_on_a_task_incremental_cnn_is_refused_when_the_experiment_loads():
    """Before the first job trains: no synapse such a network protects would read ``step_rows``."""
    from spikecl.continual.experiment import KIND

    raw = {**TINY, "network": {"kind": "cnn", "channels": [4], "num_steps": 2},
           "stream": {**TINY["stream"], "kind": "split", "scenario": "task"},
           "strategy": {"methods": ["finetune", "hlop"], "hlop": {"step_rows": 1}}}
    with pytest.raises(ConfigError, match="strategy.hlop.step_rows: it samples the rows of Linear synapses, and the "
                                          "network protects none"):
        KIND.load(raw)
    KIND.load({**raw, "strategy": {"methods": ["finetune", "hlop"]}})


def test_no_two_random_streams_of_a_poisson_run_share_a_seed(monkeypatch):
    """Every random stream of a run (each epoch's order and Poisson draws, the evaluations', the measures', the
    consolidation passes') has a seed of its own: the evaluations drew from epoch 7's order's seed, the measures
    from epoch 11's, so a run of 8 or more epochs tested on spikes that were its training order's bits."""
    import inspect

    from spikecl.continual import runner, strategy

    users: dict[int, set[str]] = {}
    plain = strategy.derived_seed

    def recorded(*parts):
        seed = plain(*parts)
        caller = next(f.function for f in inspect.stack()[1:] if f.function not in ("purpose_seed", "recorded"))
        users.setdefault(seed, set()).add(caller)
        return seed

    monkeypatch.setattr(strategy, "derived_seed", recorded)
    monkeypatch.setattr(runner, "derived_seed", recorded)
    cfg = experiment_from_dict({**TINY, "network": {**TINY["network"], "encoder": "poisson"},
                                "stream": {**TINY["stream"], "train_per_task": 40, "test_per_task": 20},
                                "train": {**TINY["train"], "epochs": 12}})
    ContinualRun(cfg, "gpm+ewc", 0, stream=build_stream(cfg, 0)).execute(progress_bar=False)
    assert {"train_task", "score", "measure", "pass_generator"} <= set().union(*users.values())
    assert {seed: who for seed, who in users.items() if len(who) > 1} == {}
