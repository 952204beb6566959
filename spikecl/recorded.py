"""A recorded config (results file, checkpoint, exported network) as this spikecl reads it: keys and rules added
since the run was made get the values that do what it did, and options its settings did not read are their defaults,
so that an older run compares equal to the same run made today (:func:`recorded_as_now`)."""

from __future__ import annotations

import dataclasses
import typing

from spikecl.config import DATASET_CLASSES, ONLY_FOR, ExperimentConfig, cosine_is_constant
from spikecl.options import field_default


#: keys added to a table after results were first recorded without them: (table, key) -> the value that does what a
#: run recorded without the key did (a constant learning rate)
ADDED_KEYS = {("train", "lr_schedule"): "constant", ("train", "warmup_epochs"): 0, ("train", "cuda_graph"): False,
              ("stream", "standardize"): []}


#: (method, option) -> the value a recorded options table of that method lacking the option ran with (it was added
#: later; results record every option of the method they ran)
ADDED_OPTIONS = {("hlop", "lateral_scale"): 20.0}


#: per experiment kind: (its rules of options that only some settings read, like
#: :data:`~spikecl.config.ONLY_FOR`; its config class) for :func:`recorded_as_now` (a kind registers its own when
#: imported)
RECORDED_RULES: dict[str, tuple[dict, type]] = {}


#: functions (recorded continual config -> that config) putting the options of its run's method as the run read them,
#: for :func:`recorded_as_now` (:mod:`spikecl.continual.strategies` registers one when imported: options its run
#: does not read at their defaults, as runs record them since)
RECORDED_OPTIONS: list[typing.Callable[[dict], dict]] = []


def _constant_cosine_as_constant(config: dict) -> dict:
    """A recorded cosine schedule that ran every epoch at the full rate (accepted before it was refused) as
    ``constant``, which is what it did."""
    train = config.get("train")
    if not (isinstance(train, dict) and train.get("lr_schedule") == "cosine"):
        return config
    epochs, warmup = train.get("epochs"), train.get("warmup_epochs", 0)
    if not (isinstance(epochs, int) and isinstance(warmup, int) and cosine_is_constant(epochs, warmup)):
        return config
    return {**config, "train": {**train, "lr_schedule": "constant", "warmup_epochs": 0}}


def recorded_as_now(config: dict, seed: int | None = None) -> dict:
    """A recorded config (results file, checkpoint, exported network) as this spikecl reads it, so that a run made
    before a rule or key existed compares equal to the same run made today:

    * one recorded before ``data.test_split_seed`` existed gets the train/test split it was made on, the run seed's
      (``seed``, else the config's) with ``data.vary_split``, else 0; one recorded before ``data.test_excludes``
      existed left none out;
    * a continual one recorded before a key of :data:`ADDED_KEYS` existed gets the value that does what it did, and
      a split stream that left classes out (``classes_per_task`` 0 with tasks not dividing the classes) the classes
      per task it trained;
    * an option its kind's rules (:data:`~spikecl.config.ONLY_FOR`, :data:`RECORDED_RULES`,
      :data:`RECORDED_OPTIONS`) say the run did not read is its default.
    """
    if not isinstance(config, dict):
        return config
    data = config.get("data")
    if isinstance(data, dict) and "test_split_seed" not in data:
        seed = config.get("seed", 0) if seed is None else seed
        config = {**config, "data": {**data, "test_split_seed": seed if data.get("vary_split") else 0}}
    data = config.get("data")
    if isinstance(data, dict) and "test_excludes" not in data:              # added later: made on the plain split
        config = {**config, "data": {**data, "test_excludes": []}}
    kind = config.get("kind", "continual")
    if kind == "continual":
        for (table, key), value in ADDED_KEYS.items():
            if isinstance(config.get(table), dict) and key not in config[table]:
                config = {**config, table: {**config[table], key: value}}
        config = options_as_now(config)
        config = _constant_cosine_as_constant(config)
        for as_read in RECORDED_OPTIONS:
            config = as_read(config)
        config = _split_as_trained(config)
    own = {"continual": (ONLY_FOR, ExperimentConfig), **RECORDED_RULES}.get(kind)
    return config if own is None else _unused_as_defaults(config, own[0], own[1]())


def options_as_now(config: dict) -> dict:
    """A recorded continual config whose method options table lacks an option of :data:`ADDED_OPTIONS`: the value
    it ran with, so that it compares equal to the same run recorded today."""
    strategy = config.get("strategy")
    options = strategy.get("options") if isinstance(strategy, dict) else None
    if not isinstance(options, dict):
        return config
    added = {}
    for (method, key), value in ADDED_OPTIONS.items():
        table = added.get(method, options.get(method))
        if isinstance(table, dict) and key not in table:
            added[method] = {**table, key: value}
    return {**config, "strategy": {**strategy, "options": {**options, **added}}} if added else config


def _split_as_trained(config: dict) -> dict:
    """A recorded split stream without ``classes_per_task`` whose tasks do not divide its dataset's classes: the
    classes per task it trained (n_classes // n_tasks, the rest left out, as spikecl did before refusing it)."""
    stream, data = config.get("stream"), config.get("data")
    if not (isinstance(stream, dict) and isinstance(data, dict) and stream.get("kind") == "split"
            and not stream.get("classes_per_task") and isinstance(stream.get("n_tasks"), int) and stream["n_tasks"]):
        return config
    classes = DATASET_CLASSES.get(data.get("dataset"))
    if classes is None or classes % stream["n_tasks"] == 0:
        return config
    return {**config, "stream": {**stream, "classes_per_task": classes // stream["n_tasks"]}}


class _Recorded:
    """Attribute access to a recorded config table (a dict), today's default where it lacks a key."""

    def __init__(self, table, default):
        self._table, self._default = table, default

    def __getattr__(self, key: str):
        default = getattr(self._default, key)
        value = self._table.get(key, default) if isinstance(self._table, dict) else default
        return _Recorded(value, default) if dataclasses.is_dataclass(default) else value


def _unused_as_defaults(config: dict, rules: dict, defaults) -> dict:
    """``config`` with every option of ``rules`` that its own settings did not read set to its default."""
    view = _Recorded(config, defaults)
    for (table, key), (applies, _) in rules.items():
        section = config.get(table)
        if not isinstance(section, dict) or key not in section:
            continue
        try:
            unused = not applies(view)
        except (AttributeError, TypeError, ValueError):      # a damaged or foreign table: compared as it is
            continue
        default = field_default(getattr(defaults, table), key)
        if dataclasses.is_dataclass(default):                # a nested table (Sparsey's level-2 mac), as recorded
            default = dataclasses.asdict(default)
        if unused and section[key] != default:
            config = {**config, table: {**config[table], key: default}}
    return config
