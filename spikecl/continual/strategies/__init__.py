"""Registry of continual-learning methods: name → ``module:Class`` (imported lazily).

A new method is one file implementing :class:`spikecl.continual.strategy.Strategy` and one line here.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Mapping, Sequence

from spikecl.errors import ConfigError, DependencyError, check_type, did_you_mean
from spikecl.options import check_defaults, field_default, from_dict
from spikecl.recorded import RECORDED_OPTIONS
from spikecl.registry import check_not_held, check_own_name, named

REGISTRY: dict[str, str | type] = {
    "finetune": "spikecl.continual.strategy:Finetune",
    "joint": "spikecl.continual.strategies.joint:Joint",
    "multitask": "spikecl.continual.strategies.joint:Multitask",
    "ewc": "spikecl.continual.strategies.ewc:EWC",
    "si": "spikecl.continual.strategies.si:SI",
    "replay": "spikecl.continual.strategies.replay:Replay",
    "gpm": "spikecl.continual.strategies.gpm:GPM",
    "hlop": "spikecl.continual.strategies.hlop:HLOP",
}

#: spikecl's own method names, which register() may not take over
OWN_NAMES = frozenset(REGISTRY)


#: how a method of one's own becomes known, said in the unknown-method errors
OWN_METHODS = "a method of your own: register() it, from the command line in a file passed with --plugin"


def strategy_class(name: str) -> type:
    """The class registered as ``name``; an unknown name is a ConfigError listing the known ones."""
    if name not in REGISTRY:
        raise ConfigError(f"strategy.methods: unknown method {name!r}; known: {', '.join(sorted(REGISTRY))} "
                          f"(combine with '+', e.g. 'ewc+replay'; {OWN_METHODS}){did_you_mean(name, REGISTRY)}")
    entry = REGISTRY[name]
    if isinstance(entry, type):
        return entry
    module, cls = entry.split(":")
    return getattr(importlib.import_module(module), cls)


def register(name: str, cls: type) -> None:
    """Make a user-defined strategy class available as ``name`` in experiments (``strategy.methods``). A name that is
    not a plain file-name word (letters, digits, '_', '-', '.'; it names results files; '+' combines methods), one of
    spikecl's own methods, a name another class holds already (the same class imported again is fine), a class that
    is not a :class:`~spikecl.continual.strategy.Strategy`, or options that are not a dataclass or whose defaults fail
    their own validation are a one-line :class:`ConfigError`."""
    check_own_name(name, "strategy name", "it names results files; '+' combines methods")
    if name in OWN_NAMES:
        raise ConfigError(f"register: {name!r} is one of spikecl's own methods ({', '.join(sorted(OWN_NAMES))}); "
                          "give yours another name")
    alike = next((n for n in [*sorted(OWN_NAMES), *REGISTRY] if n.lower() == name.lower() and n != name), None)
    if alike is not None:
        raise ConfigError(f"register: {name!r} differs from the method {alike!r} only in case (their results files "
                          "are one file on a case-insensitive disk, as on macOS and Windows); give yours another name")
    _check_class(name, cls)
    check_not_held("register", name, REGISTRY.get(name), cls)
    REGISTRY[name] = cls


def _check_class(name: str, cls) -> None:
    """A one-line ConfigError unless ``cls`` is a Strategy subclass whose Options dataclass builds from its defaults
    and passes the validation a given value gets (type, bounds, choices)."""
    from spikecl.continual.strategy import Strategy

    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise ConfigError(f"register({name!r}, ...): {named(cls)} is not a subclass of "
                          "spikecl.continual.strategy.Strategy")
    options = cls.Options
    if not isinstance(options, type) or not dataclasses.is_dataclass(options):
        raise ConfigError(f"register({name!r}, ...): {cls.__name__}.Options must be a dataclass (fields made with "
                          f"spikecl.options.option), got {named(options)}")
    check_defaults(options, f"strategy.{name}.", f"register({name!r}, ...)")
    _check_methods(name, cls)


#: the events a strategy implements (:class:`~spikecl.continual.strategy.Strategy`), which the harness calls by
#: these names
EVENTS = ("begin", "before_task", "batch", "penalty", "after_backward", "after_step", "after_task")


def _slip_of(name: str, word: str) -> bool:
    """Whether ``name`` is ``word`` mistyped by one slip: two neighbouring letters swapped, a letter left out, or in
    a word of 6 letters or more one replaced after the first (not a letter added, nor one replaced in a short word:
    ``begins``, ``patch`` and ``begun`` are words of their own)."""
    if name == word or len(name) not in (len(word), len(word) - 1):
        return False
    if len(name) == len(word):
        wrong = [i for i, (a, b) in enumerate(zip(name, word)) if a != b]
        swapped = (len(wrong) == 2 and wrong[1] == wrong[0] + 1 and name[wrong[0]] == word[wrong[1]]
                   and name[wrong[1]] == word[wrong[0]])
        return swapped or (len(wrong) == 1 and wrong[0] > 0 and len(word) >= 6)
    return any(word[:i] + word[i + 1:] == name for i in range(len(word)))


def _check_methods(name: str, cls: type) -> None:
    """A one-line ConfigError for what the harness would skip or fail on only mid-run: a method named as an event
    would be that is none (``after_tasks``, ``before_training``), an event or ``__init__`` that cannot take the
    arguments the harness passes, or ``state_dict`` without ``load_state_dict`` (a resumed run would lose the state)
    or the reverse. Methods are found as the class has them, from mixins too (plain functions, static and class
    methods, ``functools.partialmethod``)."""
    import functools
    import inspect

    from spikecl.continual.strategy import Strategy

    def own(attr: str):
        """``cls``'s own ``attr`` (a function, staticmethod, classmethod or partialmethod), None where it is
        Strategy's or none."""
        value = inspect.getattr_static(cls, attr, None)
        if value is inspect.getattr_static(Strategy, attr, None):
            return None
        return value if isinstance(value, DESCRIBED) or inspect.isfunction(value) else None

    DESCRIBED = (staticmethod, classmethod, functools.partialmethod)         # methods whose signature the class gives
    if inspect.isabstract(cls):
        raise ConfigError(f"register({name!r}, ...): {cls.__name__} leaves abstract methods unimplemented "
                          f"({', '.join(sorted(cls.__abstractmethods__))})")
    for attr in dir(cls):
        if attr.startswith("_") or hasattr(Strategy, attr) or own(attr) is None:
            continue
        slip = next((event for event in EVENTS if _slip_of(attr, event)), None)
        if slip or attr.startswith(("before_", "after_")):
            raise ConfigError(f"register({name!r}, ...): {cls.__name__}.{attr} is not an event the harness calls "
                              f"({', '.join(EVENTS)}){did_you_mean(slip or attr, EVENTS)}")
    for attr in (*EVENTS, "state_dict", "load_state_dict", "result_arrays", "__init__"):
        value = own(attr)
        if value is None:
            continue
        base = [p for p in inspect.signature(getattr(Strategy, attr)).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]          # self and what the harness passes
        bound = getattr(cls, attr) if isinstance(value, DESCRIBED) else value      # a partialmethod keeps self
        try:
            inspect.signature(bound).bind(*(base if bound is value or isinstance(value, functools.partialmethod)
                                            else base[1:]))
        except (TypeError, ValueError):
            raise ConfigError(f"register({name!r}, ...): {cls.__name__}.{attr} must take "
                              f"({', '.join(p.name for p in base[1:])}) like Strategy.{attr}") from None
    pair = [attr for attr in ("state_dict", "load_state_dict") if own(attr) is not None]
    if len(pair) == 1:
        other = ({"state_dict", "load_state_dict"} - set(pair)).pop()
        raise ConfigError(f"register({name!r}, ...): {cls.__name__} defines {pair[0]}() but not {other}(); a resumed "
                          "run would lose its state")


def components(method: str) -> list[str]:
    """``"hlop+replay"`` → ``["hlop", "replay"]``."""
    return method.split("+")


def check_options_apply(name: str, opts) -> None:
    """Refuse an option set away from its default where the method's other options make it unused (an Options
    class's ``ONLY_FOR``: {option: (other option, the value it needs, a tuple of the values it may have, or a range
    of them)}, e.g. HLOP's ``lr`` with ``step = "fixed"``)."""
    from spikecl.options import field_default

    for key, (other, needed) in getattr(type(opts), "ONLY_FOR", {}).items():
        allowed = needed if isinstance(needed, (tuple, range)) else (needed,)
        if getattr(opts, other) not in allowed and getattr(opts, key) != field_default(opts, key):
            where = f">= {needed.start}" if isinstance(needed, range) else f"= {' or '.join(map(repr, allowed))}"
            raise ConfigError(f"strategy.{name}.{key}: applies only to {other} {where}; leave it at its default "
                              f"({field_default(opts, key)}): this run would ignore it")


def validate_options(method: str, options: Mapping[str, Mapping]) -> dict:
    """Validate every options table in ``options``; returns {component of ``method``: Options instance}.

    Every table must name a known method and pass its Options, whether or not that method runs: tables of methods
    not being run are allowed (``--set strategy.methods=...`` can pick a subset of an experiment's methods), but an
    unknown key or a bad value in one is refused as in a run of it.
    """
    for name in options:
        if name not in REGISTRY:
            raise ConfigError(f"strategy.{name}: options for an unknown method; known: {', '.join(sorted(REGISTRY))} "
                              f"({OWN_METHODS}){did_you_mean(name, REGISTRY)}")
    given = {name: from_dict(strategy_class(name).Options, options[name], f"strategy.{name}.") for name in options}
    for name, opts in given.items():
        check_options_apply(name, opts)
    return {name: given[name] if name in given else from_dict(strategy_class(name).Options, {}, f"strategy.{name}.")
            for name in components(method)}


def effective_options(method: str, options: Mapping[str, Mapping]) -> dict:
    """``options`` (tables by method name) with the table of every component of ``method`` completed by its
    defaults, and the options its run does not read (:func:`unread_options`) at their defaults: what a run of
    ``method`` used, to record beside its results (a default that changes between two versions of a method then
    shows as a differing setting)."""
    validated = validate_options(method, options)
    used = as_read(method, {k: dataclasses.asdict(v) for k, v in validated.items()})
    return {**{k: dict(v) for k, v in options.items()}, **used}


def options_as_read(config: dict) -> dict:
    """A recorded continual config (results file: ``runs_method`` and ``strategy.options``) with the options its run
    did not read at their defaults (:func:`as_read`)."""
    strategy = config.get("strategy")
    method, options = config.get("runs_method"), strategy.get("options") if isinstance(strategy, dict) else None
    if not isinstance(method, str) or not isinstance(options, dict):
        return config
    return {**config, "strategy": {**strategy, "options": as_read(method, options)}}


def as_read(method: str, options: dict) -> dict:
    """Recorded options tables of a run of ``method`` with the options it did not read (:func:`unread_options`) at
    their defaults, as runs record them since (files written before recorded the values given); tables this spikecl
    cannot read as a run of ``method`` (another version's options, a plugin's method not registered, or any where
    torch or snnTorch is missing or does not import: reading results needs neither) as they are."""
    try:
        unread = unread_options(method, options)
    except (ConfigError, TypeError, ValueError, AttributeError, ImportError, DependencyError):
        return options              # (recording a run reads them outside this: a broken import fails there)
    tables = {name: dict(table) for name, table in options.items()} if unread else options
    for key in unread:
        _, name, option = key.split(".")
        tables[name][option] = field_default(strategy_class(name).Options, option)
    return tables


RECORDED_OPTIONS.append(options_as_read)


def unread_options(method: str, options: Mapping[str, Mapping], set_only: bool = True) -> dict[str, str]:
    """{``strategy.<method>.<option>``: why} of the options of ``method``'s components that a run of ``method`` does
    not read (:meth:`~spikecl.continual.strategy.Strategy.unread_options`), e.g. replay's ``phase_lr`` where its
    after-task phase does not run; ``set_only``: only those ``options`` set away from their defaults."""
    parts = components(method)
    validated = validate_options(method, options)
    return {f"strategy.{name}.{key}": why for name in parts
            for key, why in strategy_class(name).unread_options(validated[name], parts).items()
            if not set_only or getattr(validated[name], key) != field_default(validated[name], key)}


def check_read(runs: Sequence[tuple[str, Mapping[str, Mapping]]]) -> None:
    """A one-line ConfigError naming an option set away from its default that no run of ``runs`` ((method, options
    tables) of each run of an experiment) reads; one some runs read and others do not is left to those that do."""
    unread: dict[str, str] = {}
    read: set[str] = set()
    for method, options in runs:
        unread.update(unread_options(method, options))
        named = {f"strategy.{name}.{f.name}" for name in components(method)
                 for f in dataclasses.fields(strategy_class(name).Options)}
        read |= named - unread_options(method, options, set_only=False).keys()
    key = next((k for k in unread if k not in read), None)
    if key:
        raise ConfigError(f"{key}: no run of this experiment reads it ({unread[key]}); leave it at its default: "
                          "every run would ignore it")


def validate_method(cfg, method: str):
    """Validate a run of ``method`` (a method, ``a+b``, or a variant ``[variants.<name>]``) under experiment config
    ``cfg``; returns ``(run config, method it runs)`` (see :func:`spikecl.config.method_config`)."""
    from spikecl.config import method_config

    if method in cfg.variants and method in REGISTRY:
        raise ConfigError(f"variants.{method}: a variant may not take the name of the method {method!r} (its results "
                          f"would pass for that method's); name it e.g. '{method}-tuned'")
    run_cfg, runs_method = method_config(cfg, method)
    try:
        check_combination(runs_method, method)
        validate_options(runs_method, run_cfg.strategy.options)
    except ConfigError as exc:          # a variant's method is its own key
        if method not in cfg.variants or not str(exc).startswith("strategy.methods:"):
            raise
        raise ConfigError(str(exc).replace("strategy.methods:", f"variants.{method}.method:", 1)) from None
    return run_cfg, runs_method


def check_run(run_cfg, runs_method: str) -> None:
    """Each part's :meth:`~spikecl.continual.strategy.Strategy.check_run` for a run of ``runs_method`` under
    ``run_cfg`` (from :func:`validate_method`): one-line ConfigErrors before any work."""
    options = validate_options(runs_method, run_cfg.strategy.options)
    for name in components(runs_method):
        strategy_class(name).check_run(options[name], run_cfg)


def check_combination(method: str, shown: str | None = None) -> list[str]:
    """The components of ``method`` (``"a+b"``); a one-line ConfigError naming it as ``shown`` (default: itself)
    when a part is empty or repeated (its state would be saved under one key) or an upper bound (``combines =
    False``) is combined."""
    if not isinstance(method, str):
        raise ConfigError(f"method: expected a method name (a str such as 'ewc' or 'ewc+replay'), got {method!r}")
    shown = method if shown is None else shown
    parts = components(method)
    repeated = next((p for i, p in enumerate(parts) if p in parts[:i]), None)
    if "" in parts:
        raise ConfigError(f"strategy.methods: {shown!r} has an empty part (a '+' with no method on one side); "
                          "combine methods as e.g. 'ewc+replay'")
    if repeated:
        raise ConfigError(f"strategy.methods: {shown!r} names {repeated!r} twice; combine distinct methods, e.g. "
                          "'ewc+replay'")
    alone = next((p for p in parts if len(parts) > 1 and not strategy_class(p).combines), None)
    if alone:
        raise ConfigError(f"strategy.methods: {shown!r} combines {alone!r}, an upper bound that replaces the "
                          "stream's training data; run it as a row of its own")
    return parts


def check_support(method: str, train, scenario: str, data_parallel: bool) -> None:
    """A one-line ConfigError when a component of ``method`` does not declare support for the run's trainer and
    optimiser (``train``, a :class:`~spikecl.config.TrainConfig`), its stream's ``scenario`` or (``data_parallel``)
    execution over several processes."""
    for name in components(method):
        cls = strategy_class(name)
        if train.trainer not in cls.trainers:
            raise ConfigError(f"strategy.methods: {name!r} does not support train.trainer = {train.trainer!r} "
                              f"(it supports {', '.join(cls.trainers)})")
        if scenario not in cls.scenarios:
            raise ConfigError(f"strategy.methods: {name!r} does not support stream.scenario = {scenario!r} "
                              f"(it supports {', '.join(cls.scenarios)})")
        if data_parallel and not cls.supports_data_parallel:
            raise ConfigError(f"strategy.methods: {name!r} does not support data-parallel runs (its class sets "
                              "supports_data_parallel = False); run it in one process")
        if cls.needs_gradient_steps and (problem := _reshaped_steps(train)):
            raise ConfigError(f"strategy.methods: {name!r} projects weight gradients away from old tasks' "
                              f"activity, which {problem} would undo; train it with plain SGD")


def _reshaped_steps(train) -> str | None:
    """Why ``train``'s optimiser would not apply the projected gradient as it is, or None."""
    if train.optimizer != "sgd":
        return f"train.optimizer = {train.optimizer!r} (it rescales every weight's step)"
    if train.weight_decay:
        return f"train.weight_decay = {train.weight_decay} (added after the projection)"
    if train.momentum and not train.reset_optimizer:
        return "train.momentum with train.reset_optimizer = false (the last task's velocity)"
    return None


def build_strategy(method: str, model, options: Mapping[str, Mapping] | None = None, sim=None, execution=None):
    """Instantiate ``method`` (possibly ``a+b``, checked by :func:`check_combination`) for ``model`` with its
    validated options.

    ``sim`` (:class:`~spikecl.continual.strategy.Simulation`) says how samples are presented to the model and how
    gradients are computed: give the trainer's own (its default, ``Simulation()``, is T = 4 direct BPTT, and EWC's
    Fisher and GPM's and HLOP's activity passes present samples that way); ``execution``
    (:class:`~spikecl.continual.execution.Execution`, default one process) where the run executes.
    """
    from spikecl.continual.strategy import Simulation

    sim = check_type(sim, Simulation, "build_strategy: sim", "Simulation(num_steps=..., encoder=...)") \
        if sim is not None else Simulation()
    names = check_combination(method)
    check_type(options if options is not None else {}, Mapping, "build_strategy: options",
               "{method: {option: value}}, as an experiment's strategy.options")
    validated = validate_options(method, options or {})
    parts = [strategy_class(name)(model, validated[name], sim, execution) for name in names]
    for name, part in zip(names, parts):
        part.name = name                      # the name it was registered by, for messages and a combination's keys
    if len(parts) == 1:
        return parts[0]
    from spikecl.continual.strategy import Combined

    return Combined(parts, names)
