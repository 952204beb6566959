"""Experiment configs: validation errors name the key and what is allowed."""

import re
import tomllib

import pytest

from spikecl.config import ExperimentConfig, experiment_from_dict, load_experiment
from spikecl.differences import differences, first_difference
from spikecl.errors import ConfigError
from spikecl.experiment_kind import RESUME_IGNORES
from spikecl.recorded import options_as_now
from spikecl.toml_files import apply_overrides, load_toml, parse_override, sets_key, toml_literal


def test_defaults_validate():
    cfg = experiment_from_dict({})
    assert cfg == ExperimentConfig()
    assert cfg.network.hidden == [256, 256] and cfg.train.trainer == "bptt"


def test_nested_values_and_strategy_options():
    cfg = experiment_from_dict({"name": "x", "seeds": [1, 2], "network": {"hidden": [32], "beta": 0.5},
                                "train": {"lr": 1}, "strategy": {"methods": ["ewc"], "ewc": {"lam": 3.0}}})
    assert cfg.seeds == [1, 2] and cfg.network.hidden == [32] and cfg.network.beta == 0.5
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.strategy.options == {"ewc": {"lam": 3.0}}


@pytest.mark.parametrize("raw, message", [
    ({"nme": "x"}, "unknown key 'nme'"),
    ({"train": {"epoch": 3}}, "unknown key 'train.epoch'"),
    ({"train": {"epochs": "3"}}, "train.epochs: expected an integer"),
    ({"train": {"epochs": 0}}, "train.epochs: 0 is below the minimum 1"),
    ({"network": {"beta": 1.5}}, "network.beta: 1.5 is above the maximum 1.0"),
    ({"network": {"encoder": "rate"}}, "network.encoder: 'rate' is not allowed; choose one of direct"),
    ({"network": {"hidden": [64, "a"]}}, "network.hidden[1]: expected an integer"),
    ({"train": {"lr": float("nan")}}, "train.lr: expected a finite number"),
    ({"stream": "permuted"}, "stream: expected a table"),
    ({"network": {"bias": 1}}, "network.bias: expected true or false"),
    ({"seeds": []}, "seeds: expected at least one seed"),
    ({"network": {"init_gain": 0.0}}, "network.init_gain: 0.0 is below the minimum 1e-06"),     # every weight 0
    ({"train": {"momentum": 0.0, "reset_optimizer": False}}, "train.reset_optimizer: applies only to an optimiser "
                                                             "with state (Adam, or SGD with momentum > 0) over 2"),
    ({"stream": {"n_tasks": 1}, "train": {"reset_optimizer": False}}, "train.reset_optimizer: applies only to"),
    ({"stream": {"kind": "rotated", "n_tasks": 1, "max_angle_deg": 90.0}},
     "stream.max_angle_deg: applies only to rotated streams of 2 or more tasks"),
    ({"name": "a\nb"}, "name: 'a\\nb' is not a plain file name (no folders, not '.' or '..', no control characters)"),
    ({"name": "run\u202eexe"}, "is not a plain file name"),          # a bidirectional override: a forged name
    ({"data": {"dataset": "mnist5k", "data_dir": "/tmp"}},            # a bundled dataset reads no folder: ignored
     "data.data_dir: applies only to datasets read from files (digits, mnist5k come with their packages"),
])
def test_bad_configs_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=None) as info:
        experiment_from_dict(raw)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_overrides_parse_toml_literals():
    assert parse_override("train.epochs=3") == (["train", "epochs"], 3)
    assert parse_override('strategy.methods=["a","b"]') == (["strategy", "methods"], ["a", "b"])
    assert parse_override("data.dataset=digits") == (["data", "dataset"], "digits")
    raw = apply_overrides({"train": {"epochs": 1}}, ["train.epochs=4", "network.num_steps=8"])
    assert raw == {"train": {"epochs": 4}, "network": {"num_steps": 8}}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("train.epochs")
    # a quoted part is one key, as in a TOML file ([variants.v] "train.lr" = 0.1)
    assert parse_override('variants.v."train.lr"=0.1') == (["variants", "v", "train.lr"], 0.1)
    cfg = experiment_from_dict(apply_overrides({}, ['variants.v.method="ewc"', 'variants.v."train.lr"=0.02',
                                                    'strategy.methods=["v"]']))
    assert cfg.variants["v"] == {"method": "ewc", "train.lr": 0.02}


def test_load_experiment_file(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[train]\nepochs = 2\n[strategy]\nmethods = ["finetune", "ewc+replay"]\n'
                    '[strategy.replay]\nper_class = 5\n')
    cfg = load_experiment(path, ["train.epochs=5"])
    assert cfg.name == "exp" and cfg.train.epochs == 5
    assert cfg.strategy.options == {"replay": {"per_class": 5}}
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 2")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_experiment(bad)
    with pytest.raises(ConfigError, match="experiment file not found"):
        load_experiment(tmp_path / "missing.toml")


def test_reference_models_validate():
    from pathlib import Path

    from spikecl.continual.strategies import validate_method

    models = sorted(Path(__file__).parents[1].joinpath("models").glob("*.toml"))
    assert models
    for path in models:
        if load_toml(path).get("kind", "continual") != "continual":
            continue                                  # other kinds are validated by their own tests
        cfg = load_experiment(path)
        for method in cfg.strategy.methods:
            validate_method(cfg, method)


def documented_keys(obj, prefix=""):
    """{dotted key: doc} of every option of the config dataclass instance ``obj``, nested sections walked."""
    import dataclasses

    keys = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            keys.update(documented_keys(value, f"{prefix}{f.name}."))
        else:
            keys[prefix + f.name] = f.metadata.get("doc", "")
    return keys


def test_every_config_key_has_a_doc():
    """Every key of every kind's config, of the sweep file and of every registered method's options says what it
    is (``option(..., doc=...)``)."""
    import dataclasses

    from spikecl.continual.strategies import OWN_NAMES, strategy_class
    from spikecl.continual.sweep import SweepConfig
    from spikecl.experiment_kind import KINDS, kind

    configs = {name: kind(name).config for name in KINDS if kind(name).config is not None}
    configs["sweep file"] = SweepConfig
    configs.update({f"strategy.{m}": strategy_class(m).Options for m in sorted(OWN_NAMES)
                    if dataclasses.is_dataclass(strategy_class(m).Options)})
    assert {"continual", "ca3", "sparsey", "sweep file", "strategy.hlop"} <= set(configs)
    undocumented = [f"{where}: {key}" for where, cls in configs.items()
                    for key, doc in documented_keys(cls()).items() if not doc.strip()]
    assert not undocumented, undocumented


def test_a_leading_tilde_in_a_path_is_the_home_folder(tmp_path, monkeypatch):
    """TOML strings and ``--data-dir=~/x`` reach spikecl unexpanded: path keys expand ``~`` as a shell would, so
    results do not go to a folder named "~" and datasets in the home folder are found."""
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_experiment("models/split_digits.toml", ['output_dir="~/runs"', 'data.dataset="mnist"',
                                                       'data.data_dir="~/data"'])
    assert cfg.output_dir == str(tmp_path / "runs") and cfg.data.data_dir == str(tmp_path / "data")
    assert cfg.results_path("finetune", 0).parent == tmp_path / "runs" / cfg.name
    from spikecl.data.base import find_path
    (tmp_path / "data" / "SHD").mkdir(parents=True)
    (tmp_path / "data" / "SHD" / "shd_train.h5").touch()
    assert find_path("~/data", "shd", ["SHD/shd_train.h5"], "") == tmp_path / "data" / "SHD" / "shd_train.h5"


def test_list_defaults_are_copied_whole_so_one_edit_stays_in_its_instance():
    """Nested list defaults (HLOP's neuron schedule, CA3's stress sizes) are deep copies: an in-place edit of one
    instance changes neither the next instance nor the module constant the default came from."""
    from spikecl.continual.strategies import effective_options, strategy_class
    from spikecl.continual.strategies.hlop import PMNIST_SCHEDULE
    from spikecl.memory.experiment import CA3ExperimentConfig

    before = [list(row) for row in PMNIST_SCHEDULE]
    strategy_class("hlop").Options().neurons[0][2] = 800
    assert PMNIST_SCHEDULE == before and effective_options("hlop", {})["hlop"]["neurons"] == before
    CA3ExperimentConfig().stress.sizes[-1][0] = 7
    assert 7 not in CA3ExperimentConfig().stress.sizes[-1]


def test_strategy_options_spelled_both_ways_merge_or_are_refused():
    """``strategy.options.ewc.lam`` (the results file's spelling) beside a file's ``[strategy.ewc]`` table was dropped
    silently: a key set in both is refused, other keys merge."""
    with pytest.raises(ConfigError, match=r"strategy.options.ewc.lam and strategy.ewc.lam are both set"):
        load_experiment("models/pmnist5k_demo.toml", ["strategy.options.ewc.lam=123"])
    cfg = load_experiment("models/pmnist5k_demo.toml",
                          ["strategy.options.hlop.energy_samples=50", "strategy.ewc.lam=7.0"])
    assert cfg.strategy.options["ewc"]["lam"] == 7.0 and cfg.strategy.options["hlop"]["energy_samples"] == 50
    merged = experiment_from_dict({"strategy": {"methods": ["ewc"], "options": {"ewc": {"lam": 2.0}},
                                                "ewc": {"fisher_samples": 32}}})
    assert merged.strategy.options["ewc"] == {"lam": 2.0, "fisher_samples": 32}


def test_numpy_numbers_from_python_configs_are_taken_as_python_ones():
    """A config built in Python may hold numpy scalars (e.g. from a grid made with numpy): np.float32 is a number
    as np.float64 and np.int64 are; a numpy bool is still not an integer."""
    import numpy as np

    cfg = experiment_from_dict({"train": {"lr": np.float32(0.25), "epochs": np.int64(2)},
                                "strategy": {"methods": ["ewc"], "ewc": {"lam": np.float32(5)}}})
    assert cfg.train.lr == 0.25 and type(cfg.train.lr) is float and cfg.train.epochs == 2
    assert cfg.strategy.options["ewc"]["lam"] == 5.0
    with pytest.raises(ConfigError, match=r"^train.lr: expected a finite number, got np.float32\(nan\)"):
        experiment_from_dict({"train": {"lr": np.float32("nan")}})


@pytest.mark.parametrize("key", ["threshold", "surrogate_slope"])
def test_neuron_parameters_beyond_float32_are_refused_where_they_are_set(key):
    """1e39 is a finite Python float but infinite in the float32 network (an infinite threshold trained a whole task
    of NaN gradients before a message blamed the weights): refused in the config and in LIFParams alike."""
    from spikecl.snn import LIFParams

    message = f"network.{key}: 1e+39 is above the maximum 3.4028234663852886e+38"
    with pytest.raises(ConfigError, match=re.escape(message)):
        experiment_from_dict({"network": {key: 1e39}})
    with pytest.raises(ConfigError, match=re.escape(message)):
        LIFParams(**{key: 1e39})
    assert getattr(LIFParams(**{key: 3.4e38}), key) == 3.4e38


def test_overrides_given_as_one_string_are_refused_not_read_character_by_character():
    from spikecl.toml_files import apply_overrides

    with pytest.raises(ConfigError, match=r"overrides: expected a list of 'key=value' strings, got the string "
                                          r"'train.epochs=5'; wrap it in a list"):
        apply_overrides({}, "train.epochs=5")
    assert apply_overrides({}, ["train.epochs=5"]) == {"train": {"epochs": 5}}


def test_one_class_per_task_is_refused_when_the_config_is_read():
    """Before, only building the stream refused it, so a sweep's dry run listed such a point as one to run."""
    with pytest.raises(ConfigError, match=r"^stream.n_tasks: 10 tasks of 10 classes: one class per task gives each "):
        experiment_from_dict({"data": {"dataset": "digits"}, "stream": {"kind": "split", "n_tasks": 10,
                                                                         "scenario": "task"}})
    from spikecl.continual.experiment import ContinualKind

    one_class = {"data": {"dataset": "digits"}, "stream": {"kind": "split", "n_tasks": 10, "scenario": "class"}}
    with pytest.raises(ConfigError, match=r"^stream.n_tasks: 10 tasks of 10 classes: one class per task gives the "
                                          r"first task a one-output head under the 'class' scenario, which nothing "
                                          r"trains \(its accuracy 100 % untrained\); use 2 or more classes per task$"):
        ContinualKind().load(one_class)                                  # a run to train
    assert experiment_from_dict(one_class)            # recorded before 2026-12-05: its results stay readable
    five = {**one_class, "stream": {**one_class["stream"], "n_tasks": 5}}
    assert ContinualKind().load(five)
    with pytest.raises(ConfigError, match=r"^variants.v: stream.n_tasks: 10 tasks of 10 classes: one class per task "
                                          "gives the "):
        ContinualKind().load({**five, "variants": {"v": {"method": "finetune", "stream.n_tasks": 10}},
                              "strategy": {"methods": ["v"]}})          # a variant's own stream, checked as well


def test_a_recorded_option_added_later_keeps_its_recorded_value():
    """ADDED_OPTIONS fills in hlop.lateral_scale only where a recorded table lacks it; a recorded value stays."""
    recorded = {"strategy": {"options": {"hlop": {"lateral_scale": 5.0, "k": 3}}}}
    assert options_as_now(recorded)["strategy"]["options"]["hlop"] == {"lateral_scale": 5.0, "k": 3}
    old = {"strategy": {"options": {"hlop": {"k": 3}}}}
    assert options_as_now(old)["strategy"]["options"]["hlop"] == {"lateral_scale": 20.0, "k": 3}


def test_an_ignored_key_present_on_one_side_only_is_no_difference():
    """A results file recorded without an ignored key (e.g. data.data_dir, device) compares equal to today's."""
    stored = {"data": {"dataset": "digits"}, "train": {"lr": 0.1}}
    now = {"data": {"dataset": "digits", "data_dir": "/x"}, "device": "cuda", "train": {"lr": 0.1}}
    assert list(differences(stored, now, ignore=RESUME_IGNORES)) == []
    assert first_difference(stored, now, ignore=RESUME_IGNORES) is None
    assert list(differences(stored, {**now, "train": {"lr": 0.2}}, ignore=RESUME_IGNORES)) == ["train.lr"]


@pytest.mark.parametrize("text", ['C:\\data\\x', 'a "quoted" \\ path', "tab\there"])
def test_toml_literal_reads_back_as_the_same_string(text):
    literal = toml_literal(text)
    assert tomllib.loads(f"v = {literal}")["v"] == text


@pytest.mark.parametrize("assignment", ['output_dir="my results', "strategy.methods=[ewc", "x={a=1"])
def test_an_override_meant_as_a_literal_but_broken_is_refused_not_taken_as_a_bare_string(assignment):
    """A value opened as a TOML literal (a quote, a bracket or a brace) must be one; a bare word stays a string."""
    with pytest.raises(ConfigError, match="is not a TOML value"):
        parse_override(assignment)
    assert parse_override("data.dataset=digits") == (["data", "dataset"], "digits")     # a bare word stays a string


def test_a_key_the_override_table_does_not_hold_is_not_set_by_it():
    """--data-dir beside --set data={dataset=...} (no data_dir in it) is no conflict; a table holding the key is."""
    assert not sets_key('data={dataset="mnist"}', "data.data_dir")
    assert not sets_key("data=3", "data.data_dir")
    assert sets_key('data={dataset="mnist", data_dir="y"}', "data.data_dir")
    assert sets_key('"seeds"=[2]', "seeds") and not sets_key("train.lr=0.1", "seeds")


def test_overrides_leave_the_table_they_are_applied_to_unchanged():
    """apply_overrides returns a changed copy: the base table (a sweep applies each of its points to one) keeps its
    values and tables."""
    base = {"train": {"epochs": 1}, "data": {"dataset": "digits"}}
    out = apply_overrides(base, ["train.epochs=4", "data.data_dir=x", "network.num_steps=8"])
    assert out == {"train": {"epochs": 4}, "data": {"dataset": "digits", "data_dir": "x"}, "network": {"num_steps": 8}}
    assert base == {"train": {"epochs": 1}, "data": {"dataset": "digits"}}


def test_a_set_key_or_value_may_nest_64_levels_and_not_65():
    """--set keys of up to 64 parts and values nesting up to 64 levels of arrays or tables are read; 65 are refused
    by name (MAX_NESTING = 64)."""
    assert parse_override(".".join(["a"] * 64) + "=1") == (["a"] * 64, 1)
    with pytest.raises(ConfigError, match="names 65 nested tables"):
        parse_override(".".join(["a"] * 65) + "=1")
    deepest = parse_override("a=" + "[" * 64 + "]" * 64)[1]
    for _ in range(63):
        deepest = deepest[0]
    assert deepest == []
    for text in ("[" * 65 + "]" * 65, "{b=" * 65 + "1" + "}" * 65):
        with pytest.raises(ConfigError, match=re.escape("overrides=['a=...']: its value nests more than 64 levels of "
                                                        "arrays or tables")):
            parse_override("a=" + text)


def test_an_experiment_file_may_nest_64_levels_and_not_65(tmp_path):
    """A file's root table and 63 arrays in it (64 levels) is read; one array more is refused by name."""
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 63 + "]" * 63 + "\n")
    assert list(load_toml(path)) == ["a"]
    path.write_text("a = " + "[" * 64 + "]" * 64 + "\n")
    with pytest.raises(ConfigError, match="tables or arrays nested more than 64 levels deep; an experiment file"):
        load_toml(path)


@pytest.mark.parametrize("name", ["a+b", "../x", "a\\b", "fine\x1b[2Jtune", "two\nlines", "line\u2028separator",
                                  "bidi\u202eoverride"])
def test_a_variant_name_that_is_no_plain_label_is_refused(name):
    """A variant's name becomes a results file's name and a table row: a folder part, a terminal escape or a
    newline (which forged a row of the comparison table) is a one-line ConfigError naming it."""
    cfg = {"strategy": {"methods": [name]}, "variants": {name: {"method": "ewc"}}}
    with pytest.raises(ConfigError, match=re.escape(f"variants.{name!r}: a variant's name may not contain '+', '/'")):
        experiment_from_dict(cfg)


def test_a_nan_value_is_no_difference_from_itself():
    """A results file whose config holds NaN (crafted, or a plugin's option) was reported as made with other
    settings than itself ("F and F hold finetune made with different settings (network.beta differs)")."""
    nan = float("nan")
    assert first_difference({"network": {"beta": nan}}, {"network": {"beta": nan}}) is None
    assert list(differences({"a": [1.0, nan]}, {"a": [1.0, nan]})) == []
    assert first_difference({"network": {"beta": nan}}, {"network": {"beta": 0.9}}) == "network.beta"


@pytest.mark.parametrize("name", ["hlop-tuned", "größer v1.2 — wide", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"])
def test_variant_names_in_any_script_are_kept(name):
    """Names with spaces, dots, dashes and letters of any script, the zero-width non-joiner Persian writes inside
    words included, are variant names (a check for control characters had refused the joiner)."""
    cfg = experiment_from_dict({"strategy": {"methods": [name]}, "variants": {name: {"method": "ewc"}}})
    assert cfg.strategy.methods == [name]


def test_the_configs_choices_are_the_ones_the_library_implements():
    """The torch-free config lists encoders, trainers and scenarios beside the code that implements them: the lists
    must name the same things (a new encoder added to one only would be refused, or crash, in the other)."""
    from dataclasses import fields

    from spikecl.config import NetworkConfig, StreamConfig, TrainConfig
    from spikecl.data.streams import SCENARIOS
    from spikecl.export.nir_io import ENCODERS as NIR_ENCODERS
    from spikecl.export.spec import KNOWN_ENCODERS
    from spikecl.snn.encoders import ENCODERS
    from spikecl.snn.trainers import TRAINERS

    def choices(config, name):
        return next(f.metadata["choices"] for f in fields(config) if f.name == name)

    assert set(choices(NetworkConfig, "encoder")) == set(ENCODERS) == set(KNOWN_ENCODERS)
    assert set(NIR_ENCODERS) == set(ENCODERS) - {"events"}               # NIR files carry image encoders only
    assert set(choices(TrainConfig, "trainer")) == set(TRAINERS)
    assert set(choices(StreamConfig, "scenario")) == set(SCENARIOS)
