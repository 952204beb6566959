"""Edges of ``register()`` and ``--plugin``: spikecl's own names, classes and option defaults are checked when a
method is registered, files of one name load side by side, and a strategy state a checkpoint could not read back
is refused when it is made."""

import abc
import collections
import functools
import io
import re
import sys
from dataclasses import make_dataclass
from typing import Literal

import numpy as np
import pytest
import torch

from spikecl.cli import main
from spikecl.config import experiment_from_dict
from spikecl.continual import strategies
from spikecl.continual.experiment import KIND
from spikecl.continual.strategies import effective_options, register, validate_options
from spikecl.continual.strategy import Strategy, checked_arrays, checkpoint_state, unsaveable
from spikecl.errors import ConfigError
from spikecl.experiment_kind import preflight
from spikecl.plugins import load_plugin
from spikecl.snn import build_mlp

OPTIONS = """from __future__ import annotations
from dataclasses import dataclass
from spikecl.config import option
from spikecl.continual.strategies import register
from spikecl.continual.strategy import Strategy
@dataclass
class Opts:
    strength: float = option({default}, low=0.0)
class Mine(Strategy):
    Options = Opts
register({name!r}, Mine)
"""


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """Registrations made by a test end with the test."""
    monkeypatch.setattr(strategies, "REGISTRY", dict(strategies.REGISTRY))


def options_class(default):
    from dataclasses import dataclass

    from spikecl.options import option

    @dataclass
    class Opts:
        strength: float = option(default, low=0.0)

    return type("Mine", (Strategy,), {"Options": Opts})


def test_spikecl_own_method_names_cannot_be_taken_over(tmp_path, capsys):
    with pytest.raises(ConfigError, match="'ewc' is one of spikecl's own methods"):
        register("ewc", options_class(1.0))
    assert strategies.strategy_class("ewc").__name__ == "EWC"
    plugin = tmp_path / "mine.py"
    plugin.write_text(OPTIONS.format(default=1.0, name="hlop"))
    assert main(["report", str(tmp_path), "--plugin", str(plugin)]) == 2
    err = capsys.readouterr().err
    assert "'hlop' is one of spikecl's own methods" in err and err.count("\n") == 1


def test_a_name_differing_from_another_method_only_in_case_is_refused():
    """'EWC' beside 'ewc' wrote EWC-seed0.h5 beside ewc-seed0.h5: one file on macOS or Windows."""
    with pytest.raises(ConfigError, match=r"^register: 'EWC' differs from the method 'ewc' only in case"):
        register("EWC", options_class(1.0))
    register("mine", options_class(1.0))
    with pytest.raises(ConfigError, match=r"^register: 'Mine' differs from the method 'mine' only in case"):
        register("Mine", options_class(1.0))


@pytest.mark.parametrize("default, message", [
    (-1.0, "the default of strategy.mine.strength: -1.0 is below the minimum 0.0"),
    ("'abc'", "the default of strategy.mine.strength: expected a number, got 'abc'"),
])
def test_option_defaults_are_validated_like_given_values(tmp_path, default, message):
    plugin = tmp_path / "mine.py"
    plugin.write_text(OPTIONS.format(default=default, name="mine"))
    with pytest.raises(ConfigError, match=message):
        load_plugin(str(plugin))
    assert "mine" not in strategies.REGISTRY


def test_effective_options_complete_a_run_s_tables_with_defaults():
    register("mine", options_class(0.05))
    recorded = effective_options("mine+replay", {"mine": {}, "ewc": {"lam": 3.0}})
    assert recorded["mine"] == {"strength": 0.05} and recorded["ewc"] == {"lam": 3.0}     # ewc: not run, as given
    assert recorded["replay"]["per_class"] == 20 and recorded["replay"]["mode"] == "auto"
    assert effective_options("mine", {"mine": {"strength": 2.0}}) == {"mine": {"strength": 2.0}}


@pytest.mark.parametrize("cls, message", [
    (type("Foo", (), {}), "Foo is not a subclass of spikecl.continual.strategy.Strategy"),
    (type("Bad", (Strategy,), {"Options": type("Opts", (), {"strength": 1.0})}), "Bad.Options must be a dataclass"),
    (type("Lit", (Strategy,), {"Options": make_dataclass("Opts", [("mode", Literal["a"], "a")])}),
     "Opts cannot be validated .*unsupported config field type"),
])
def test_register_refuses_what_is_not_a_strategy(cls, message):
    with pytest.raises(ConfigError, match=message):
        register("foo", cls)
    assert "foo" not in strategies.REGISTRY


def test_plugin_files_of_one_name_in_two_folders_load_side_by_side(tmp_path):
    for folder, name, default in (("a", "first", 1.0), ("b", "second", 2.0)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mine.py").write_text(OPTIONS.format(default=default, name=name))
    modules = [load_plugin(str(tmp_path / folder / "mine.py")) for folder in ("a", "b")]
    try:
        assert validate_options("first", {"first": {"strength": 3.0}})["first"].strength == 3.0
        assert validate_options("second", {})["second"].strength == 2.0
        assert modules[0].__name__ != modules[1].__name__
    finally:
        for module in modules:
            sys.modules.pop(module.__name__, None)


class Stateful(Strategy):
    name = "stateful"

    def __init__(self, state):
        super().__init__(build_mlp(2, [2], 2))
        self.state = state

    def state_dict(self):
        return self.state


@pytest.mark.parametrize("state, key, kind", [
    ({"arr": np.zeros(3)}, "arr", "numpy.ndarray"),
    ({"hist": [1, collections.deque([2])]}, "hist.1", "collections.deque"),
    ({"count": np.int64(2)}, "count", "numpy.int64"),
    ({"fisher": {np.int64(3): torch.zeros(1)}}, "fisher.3", "numpy.int64"),        # a key, not only a value
])
def test_a_state_a_checkpoint_cannot_read_back_is_refused_by_name(state, key, kind):
    with pytest.raises(ConfigError, match=f"strategy 'stateful': state_dict\\(\\) key '{key}' holds a {kind}"):
        checkpoint_state(Stateful(state))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    with pytest.raises(Exception):                                # what the refusal spares the user at resume
        torch.load(buffer, weights_only=True)


def test_tensors_and_plain_values_pass_and_read_back():
    state = {"w": torch.ones(2), "dims": [[1, 2]], "pair": (1.5, "a"), "none": None, "size": torch.Size([2]),
             "nested": collections.OrderedDict(x={"y": torch.zeros(1)}), "flag": True}
    assert unsaveable(state) is None and checkpoint_state(Stateful(state)) is state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["dims"] == [[1, 2]]


def test_a_result_made_with_another_option_default_is_not_kept_by_resume():
    """Results files record every option a method used, defaults included: a default changed between two versions
    of a method is a differing setting for --resume and the report, not silently the same experiment."""
    from spikecl.config import experiment_from_dict
    from spikecl.continual.experiment import KIND
    from spikecl.experiment_kind import differing_setting

    register("mine", options_class(0.0))
    cfg = experiment_from_dict({"name": "x", "strategy": {"methods": ["mine"]}})
    [made] = KIND.plan(cfg)
    assert made.config["strategy"]["options"]["mine"] == {"strength": 0.0}
    register("mine", options_class(0.05))                      # the plugin's next version
    [again] = KIND.plan(cfg)
    assert differing_setting(again, made.config) == "strategy.mine.strength"
    register("mine", options_class(0.0))
    assert differing_setting(KIND.plan(cfg)[0], made.config) is None


@pytest.mark.parametrize("init, message", [
    ('raise RuntimeError("boom")\n', "plugin {pkg}.mod failed on import: RuntimeError: boom"),
    ("import notinstalled_dependency_xyz\n",
     "plugin {pkg}.mod failed on import: ModuleNotFoundError: No module named 'notinstalled_dependency_xyz'"),
])
def test_a_plugin_modules_failing_package_is_named_in_one_line(tmp_path, monkeypatch, init, message):
    """``--plugin pkg.mod`` whose package raises on import gave find_spec's traceback, and one whose package lacks a
    dependency was called "no such module"."""
    from spikecl.errors import ConfigError
    from spikecl.plugins import load_plugin

    pkg = f"pluginpkg_{abs(hash(init)) % 10 ** 8}"
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text(init)
    (tmp_path / pkg / "mod.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="^" + re.escape(message.format(pkg=pkg)) + "$"):
        load_plugin(f"{pkg}.mod")


def test_a_subclass_of_a_built_in_method_keeps_its_own_state_in_a_combination(monkeypatch):
    """A plugin's subclass of EWC that keeps EWC's ``name``, combined with EWC: each part's checkpoint state and
    result arrays are keyed by the name it was registered by, so neither overwrites the other's."""
    from spikecl.continual.strategies import build_strategy
    from spikecl.continual.strategies.ewc import EWC

    monkeypatch.setattr(strategies, "REGISTRY", dict(strategies.REGISTRY))
    register("myewc", type("MyEWC", (EWC,), {}))
    combined = build_strategy("ewc+myewc", build_mlp(2, [2], 2))
    assert combined.name == "ewc+myewc"
    marks = [torch.full((2, 2), 1.0), torch.full((2, 2), 2.0)]
    for part, mark in zip(combined.parts, marks):
        part.fisher = {"layers.0.synapse.weight": mark}
    state = combined.state_dict()
    assert set(state) == {"ewc", "myewc"}
    again = build_strategy("ewc+myewc", build_mlp(2, [2], 2))
    again.load_state_dict(state)
    for part, mark in zip(again.parts, marks):
        torch.testing.assert_close(part.fisher["layers.0.synapse.weight"], mark)
    register("renamed", type("Renamed", (EWC,), {"name": "renamedclass"}))   # checkpoints keyed parts by class name
    old = {"ewc": state["ewc"], "renamedclass": state["myewc"]}
    later = build_strategy("ewc+renamed", build_mlp(2, [2], 2))
    later.load_state_dict(old)
    torch.testing.assert_close(later.parts[1].fisher["layers.0.synapse.weight"], marks[1])


BROKEN_HOOKS = {
    "noret": ("before_task", lambda self, task, train, seen: None,
              "strategy 'noret': before_task() returned NoneType, not the TaskData to train on"),
    "twotuple": ("batch", lambda self, x, y, heads: (x, y),
                 "strategy 'twotuple': batch() returned a tuple of 2; return (x, y, heads)"),
    "vecpen": ("penalty", lambda self: torch.ones(3, requires_grad=True),
               "strategy 'vecpen': penalty() returned a tensor of shape (3,); return None or a scalar tensor"),
    "strarr": ("result_arrays", lambda self: {"ok": {"layer0": np.zeros((2, 3)), "layer1": np.ones(4)},
                                              "bad": np.array(["a string"])},          # a group of arrays passes
               "strategy 'strarr': result_arrays()['bad'] is ndarray of dtype kind 'U', not a numeric or bool array"),
}


def test_a_method_of_ones_own_without_data_parallel_support_is_refused_before_any_data_parallel_job(tmp_path,
                                                                                                  monkeypatch):
    """A registered method whose class keeps supports_data_parallel = False is refused by the plan's checks under
    WORLD_SIZE > 1 (torchrun, --nproc), naming it, before finetune (listed first) trains; one process plans both."""
    register("oneproc", type("OneProc", (Strategy,), {}))
    cfg = experiment_from_dict({"name": "dp", "output_dir": str(tmp_path), "data": {"dataset": "digits"},
                                "stream": {"kind": "permuted", "n_tasks": 2, "train_per_task": 64},
                                "network": {"hidden": [8], "num_steps": 2},
                                "strategy": {"methods": ["finetune", "oneproc"]}})
    assert len(preflight(KIND, cfg)[1]) == 2
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"^strategy.methods: 'oneproc' does not support data-parallel runs"):
        preflight(KIND, cfg)


def test_a_method_of_ones_own_is_refused_for_a_scenario_its_class_does_not_declare(tmp_path):
    """A registered method whose class declares scenarios = ("task",) is refused when the experiment is loaded for a
    class-incremental stream, naming it and what it supports, before finetune (listed first) trains."""
    register("taskonly", type("TaskOnly", (Strategy,), {"scenarios": ("task",)}))
    raw = {"name": "sc", "output_dir": str(tmp_path), "data": {"dataset": "digits"},
           "network": {"hidden": [8], "num_steps": 2}, "strategy": {"methods": ["finetune", "taskonly"]}}
    stream = {"kind": "split", "n_tasks": 2, "train_per_task": 64}
    assert len(KIND.plan(KIND.load({**raw, "stream": {**stream, "scenario": "task"}}))) == 2
    with pytest.raises(ConfigError, match=re.escape("strategy.methods: 'taskonly' does not support stream.scenario = "
                                                    "'class' (it supports task)")):
        KIND.load({**raw, "stream": {**stream, "scenario": "class"}})


def test_result_arrays_in_a_group_are_checked_like_top_level_ones():
    """An array inside a group ({group: {name: array}}) is checked as a top-level one is, and named group/name: a
    string array in a group would otherwise reach h5py only when the results file is written."""
    groups = {"sizes": {"layer0": np.zeros(3), "layer1": torch.ones(2, dtype=torch.bool)}}
    assert checked_arrays("mine", groups) is groups
    with pytest.raises(ConfigError, match=re.escape("strategy 'mine': result_arrays()['sizes/layer1'] is ndarray of "
                                                    "dtype kind 'U', not a numeric or bool array")):
        checked_arrays("mine", {"sizes": {"layer0": np.zeros(3), "layer1": np.array(["a"])}})


@pytest.mark.parametrize("combined", [False, True], ids=["alone", "with ewc"])
@pytest.mark.parametrize("name", sorted(BROKEN_HOOKS))
def test_a_strategy_breaking_a_hooks_contract_is_named_in_one_line_during_its_first_task(name, combined, tmp_path,
                                                                                            monkeypatch):
    """A hook returning the wrong thing is a one-line ConfigError naming the method by its registered name (its
    class sets none), alone or as part of a combination, raised in the first task (result_arrays included: before,
    that one failed in h5py after the whole run, and again on every --resume)."""
    from spikecl.config import experiment_from_dict
    from spikecl.continual.runner import ContinualRun

    monkeypatch.setattr(strategies, "REGISTRY", dict(strategies.REGISTRY))
    hook, body, message = BROKEN_HOOKS[name]
    register(name, type(f"Broken{name}", (Strategy,), {hook: body}))
    name = f"{name}+ewc" if combined else name
    cfg = experiment_from_dict({"name": "hooks", "output_dir": str(tmp_path), "data": {"dataset": "digits"},
                                "stream": {"kind": "split", "scenario": "class", "n_tasks": 2, "train_per_task": 64,
                                           "test_per_task": 32},
                                "network": {"hidden": [16], "num_steps": 2},
                                "train": {"epochs": 1, "batch_size": 64},
                                "strategy": {"methods": [name]}})
    run = ContinualRun(cfg, name, 0)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}") as info:
        run.execute(tmp_path / "out.h5", progress_bar=False)
    assert "\n" not in str(info.value) and len(run.run_state.rows) == 1     # the first task: only the row at init


@pytest.mark.parametrize("body, message", [
    ({"after_tasks": lambda self, task, train: None},
     "Bad.after_tasks is not an event the harness calls (begin, before_task, batch, penalty, after_backward, "
     "after_step, after_task); did you mean 'after_task'?"),
    ({"before_all": lambda self: None}, "Bad.before_all is not an event the harness calls (begin, before_task, "
     "batch, penalty, after_backward, after_step, after_task); did you mean 'before_task'?"),
    ({"bacth": lambda self, x, y, heads: None}, "Bad.bacth is not an event the harness calls (begin, before_task, "
     "batch, penalty, after_backward, after_step, after_task); did you mean 'batch'?"),
    ({"penalti": lambda self: None}, "Bad.penalti is not an event the harness calls (begin, before_task, batch, "
     "penalty, after_backward, after_step, after_task); did you mean 'penalty'?"),
    ({"begni": lambda self, tasks: None}, "Bad.begni is not an event the harness calls (begin, before_task, batch, "
     "penalty, after_backward, after_step, after_task); did you mean 'begin'?"),
    ({"penalt": lambda self: None}, "Bad.penalt is not an event the harness calls (begin, before_task, batch, "
     "penalty, after_backward, after_step, after_task); did you mean 'penalty'?"),          # a letter left out
    ({"after_backward": lambda self: None}, "Bad.after_backward must take (activity) like Strategy.after_backward"),
    ({"__init__": lambda self, model: None},
     "Bad.__init__ must take (model, options, sim, execution) like Strategy.__init__"),
    ({"state_dict": lambda self: {"old": 1}},
     "Bad defines state_dict() but not load_state_dict(); a resumed run would lose its state"),
])
def test_register_refuses_events_the_harness_would_skip_or_fail_on_mid_run(body, message):
    with pytest.raises(ConfigError, match=f"^register\\('bad', ...\\): {re.escape(message)}$"):
        register("bad", type("Bad", (Strategy,), body))


def test_register_refuses_a_class_whose_abstract_methods_are_unimplemented():
    abstract = abc.ABCMeta("Bad", (Strategy, abc.ABC), {"helper": abc.abstractmethod(lambda self: None)})
    with pytest.raises(ConfigError, match=r"^register\('bad', ...\): Bad leaves abstract methods unimplemented "
                                          r"\(helper\)$"):
        register("bad", abstract)


def test_every_method_of_spikecls_own_passes_the_checks_register_makes(monkeypatch):
    monkeypatch.setattr(strategies, "REGISTRY", dict(strategies.REGISTRY))
    for name in strategies.OWN_NAMES:                     # no false alarm: helpers, properties, the events
        strategies._check_methods(name, strategies.strategy_class(name))
    helpers = {h: (lambda self, *a: None) for h in ("l2_penalty", "fetch", "new_task", "split_batch", "penalize",
                                                     "batch_loss", "fisher_of", "begins", "patch", "match",
                                                     "catch", "watch", "begun")}

    class Saving:                                          # a plain mixin that saves and loads
        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    body = {**helpers, "Batch": type("Batch", (), {}), "after_step": staticmethod(lambda: None),
            "penalty": classmethod(lambda cls: None), "width": property(lambda self: 1)}
    register("helped", type("Helped", (Saving, Strategy), body))
    with pytest.raises(ConfigError, match=r"Static.after_step must take \(\) like Strategy.after_step$"):
        register("static", type("Static", (Strategy,), {"after_step": staticmethod(lambda x: None)}))


def consolidate(self, task, train, passes=1):
    """An event body that a partialmethod binds."""


@pytest.mark.parametrize("event, ok", [(functools.partialmethod(consolidate, passes=2), True),
                                       (functools.partialmethod(consolidate, 0, 1), False),
                                       (functools.partialmethod(consolidate, train=None), False)])
def test_an_event_written_as_a_partialmethod_is_checked_as_the_harness_calls_it(monkeypatch, event, ok):
    """after_task = partialmethod(f, ...): its signature with the bound arguments must take (task, train)."""
    monkeypatch.setattr(strategies, "REGISTRY", dict(strategies.REGISTRY))
    cls = type("Partial", (Strategy,), {"after_task": event})
    if ok:
        register("partial", cls)
        return
    with pytest.raises(ConfigError, match=r"^register\('partial', ...\): Partial.after_task must take \(task, "
                                          r"train\) like Strategy.after_task$"):
        register("partial", cls)


def test_a_penalty_without_a_gradient_or_not_finite_is_refused(monkeypatch):
    """A penalty computed from ``.data`` would change no weight (the run read as fine-tuning); a NaN one read as a
    finished run. Zero without a gradient is fine (nothing to add)."""
    from spikecl.errors import NumericalError
    from spikecl.snn.trainers import checked_penalty

    weight = torch.ones(2, requires_grad=True)
    assert checked_penalty("p", torch.tensor(0.0)) is not None
    assert checked_penalty("p", (weight ** 2).sum()).requires_grad
    with pytest.raises(ConfigError, match=r"^strategy 'p': penalty\(\) returned 4 without a gradient, which changes "
                                          r"no weight \(computed from .data, .detach\(\) or under no_grad\?\); "
                                          "return None for no penalty$"):
        checked_penalty("p", (weight.data ** 2).sum() * 2)
    with pytest.raises(NumericalError, match=r"^strategy 'p': penalty\(\) returned nan$"):
        checked_penalty("p", torch.tensor(float("nan")))


def test_strategies_and_trainers_take_spikecls_networks_and_name_anything_else():
    from spikecl.continual.strategies import build_strategy
    from spikecl.snn import SpikingNetwork, make_trainer
    from spikecl.snn.layers import Readout, SpikingLinear
    from spikecl.snn.neurons import LIFParams

    with pytest.raises(ConfigError, match="^GPM: model: expected a SpikingNetwork, got Linear; build it with "
                                          "spikecl.snn.build_mlp or build_cnn"):
        build_strategy("gpm", torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="^BPTTTrainer: net: expected a SpikingNetwork, got Linear"):
        make_trainer("bptt", torch.nn.Linear(2, 2), 4)
    neuron = LIFParams()
    with pytest.raises(ConfigError, match="^SpikingNetwork: layer 0 is a Linear; give SpikingLinear or SpikingConv2d"):
        SpikingNetwork([torch.nn.Linear(16, 32)], Readout(32, 2, neuron), (16,), True, 0.9)
    pair = SpikingNetwork((SpikingLinear(16, n, neuron) for n in (16, 16)), Readout(16, 2, neuron), (16,), True, 0.9)
    assert len(pair.layers) == 2                                      # a generator's layers, read once, all kept
    with pytest.raises(ConfigError, match="^SpikingNetwork: layer 0 gives 32 features but layer 1 takes 20$"):
        SpikingNetwork([SpikingLinear(16, 32, neuron), SpikingLinear(20, 24, neuron)], Readout(24, 2, neuron), (16,),
                       True, 0.9)
    with pytest.raises(ConfigError, match="^SpikingNetwork: layer 1 gives 24 features but the readout takes 8$"):
        SpikingNetwork([SpikingLinear(16, 32, neuron), SpikingLinear(32, 24, neuron)], Readout(8, 2, neuron), (16,),
                       True, 0.9)


def test_a_key_for_a_method_without_options_says_it_takes_none():
    from spikecl.continual.strategies import validate_options

    with pytest.raises(ConfigError, match="^unknown key 'strategy.finetune.lam'; 'strategy.finetune' takes no keys$"):
        validate_options("finetune", {"finetune": {"lam": 2}})


def test_a_plugin_whose_load_state_dict_fails_is_named_not_its_checkpoint(tmp_path, monkeypatch):
    """A checkpoint resumed with a plugin whose load_state_dict reads another key: the plugin's code is named (the
    checkpoint is fine, and deleting it would lose the tasks it finished)."""
    from spikecl.continual.runner import ContinualRun
    from spikecl.errors import ResultsError

    class Brittle(Strategy):
        def state_dict(self):
            return {"count": 1}

        def load_state_dict(self, state):
            self.count = state["extra"]

    monkeypatch.setattr(strategies, "REGISTRY", dict(strategies.REGISTRY))
    register("brittle", Brittle)
    cfg = experiment_from_dict({
        "name": "brittle", "seeds": [0], "data": {"dataset": "digits"},
        "stream": {"kind": "split", "scenario": "task", "n_tasks": 2, "train_per_task": 40, "test_per_task": 20},
        "network": {"hidden": [8], "num_steps": 2}, "train": {"epochs": 1, "eval_every": 0},
        "strategy": {"methods": ["brittle"]}})
    run = ContinualRun(cfg, "brittle", 0)
    run.execute(tmp_path / "brittle-seed0.h5", progress_bar=False)
    run.save_checkpoint(tmp_path / "brittle-seed0.ckpt")
    with pytest.raises(ResultsError, match=r"brittle-seed0\.ckpt: Brittle\.load_state_dict \(test_plugin_edges\) could "
                                           r"not read the state the checkpoint holds \(KeyError: 'extra'\): .* Fix its "
                                           r"load_state_dict, or run with overwrite=True to start again$"):
        ContinualRun(cfg, "brittle", 0).load_checkpoint(tmp_path / "brittle-seed0.ckpt")


def test_a_plugin_method_that_raises_fails_its_run_in_one_line_and_the_others_go_on(tmp_path, capsys, monkeypatch):
    """An exception in a plugin's event stopped the experiment with a traceback, and the methods after it never
    ran; now its run is FAILED naming the plugin's file and line, as a diverged run is."""
    plugin = tmp_path / "boom.py"
    plugin.write_text("from spikecl.continual.strategies import register\n"
                      "from spikecl.continual.strategy import Strategy\n\n"
                      "class Boom(Strategy):\n    def after_task(self, task, train):\n"
                      "        raise RuntimeError('boom in after_task')\n\nregister('boom', Boom)\n")
    exp = tmp_path / "exp.toml"
    exp.write_text('name = "exp"\n[data]\ndataset = "digits"\n[stream]\nkind = "split"\nscenario = "task"\n'
                   'n_tasks = 2\ntrain_per_task = 40\ntest_per_task = 20\n[network]\nhidden = [8]\nnum_steps = 2\n'
                   '[train]\nepochs = 1\neval_every = 0\n[strategy]\nmethods = ["boom", "finetune"]\n')
    code = main(["run", str(exp), "--plugin", str(plugin), "--output-dir", str(tmp_path), "--no-plots",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and (tmp_path / "exp" / "finetune-seed0.h5").is_file(), err
    assert err.count("\n") == 1 and (f"1 of 2 runs failed, the others finished: boom-seed0.h5: RuntimeError: boom in "
                                     f"after_task (raised in {plugin}:6); fix the code it names") in err, err


def test_a_plugin_keeping_tensors_without_a_state_dict_is_noticed_at_its_checkpoint(tmp_path, capsys, monkeypatch):
    """A plugin method whose tensors its checkpoint does not hold resumed to other numbers without a word."""
    from spikecl.continual.runner import ContinualRun
    from spikecl.continual.strategy import unsaved_state

    class Forgetful(Strategy):
        def after_task(self, task, train):
            self.anchor = [p.detach().clone() for _, p in self.named_trainable()]

    class Careful(Forgetful):
        def state_dict(self):
            return {"anchor": getattr(self, "anchor", None)}

        def load_state_dict(self, state):
            self.anchor = state["anchor"]

    monkeypatch.setattr(strategies, "REGISTRY", dict(strategies.REGISTRY))
    register("forgetful", Forgetful)
    register("careful", Careful)
    cfg = experiment_from_dict({
        "name": "f", "seeds": [0], "data": {"dataset": "digits"},
        "stream": {"kind": "split", "scenario": "task", "n_tasks": 2, "train_per_task": 40, "test_per_task": 20},
        "network": {"hidden": [8], "num_steps": 2}, "train": {"epochs": 1, "eval_every": 0},
        "strategy": {"methods": ["forgetful", "careful"]}})
    for method, noticed in (("forgetful", ["Forgetful.anchor"]), ("careful", [])):
        run = ContinualRun(cfg, method, 0)
        run.train_task(0)
        assert unsaved_state(run.strategy) == noticed
        capsys.readouterr()
        run.save_checkpoint(tmp_path / f"{method}.ckpt")
        run.save_checkpoint(tmp_path / f"{method}.ckpt")                   # said once per run
        out = capsys.readouterr()
        said = (out.out + out.err).count("notice: forgetful keeps Forgetful.anchor but defines no state_dict")
        assert said == (1 if noticed else 0), out
