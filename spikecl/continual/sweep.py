"""Experiment sweeps: many runs (methods × seeds × hyperparameter points) derived from one base experiment file.

A sweep file is TOML::

    base = "pmnist5k_demo.toml"        # the experiment every run starts from (relative to the sweep file)
    name = "lr-sweep"                  # results: <output_dir>/<name>/<point>/<method>-seed<seed>.h5
    methods = ["finetune", "hlop"]     # default: the base's strategy.methods
    seeds = [0, 1, 2]                  # default: the base's seeds
    max_retries = 2                    # a crashed run is tried again up to this many times (not a spikecl error)
    [set]                              # overrides for every run (dotted keys, as `spikecl run --set`)
    "train.epochs" = 1
    [grid]                             # every combination of these values is one point
    "train.lr" = [0.02, 0.05]
    "strategy.hlop.lr" = [1.0, 1.5]
    # or instead of [grid], an explicit list of points:  points = [{"train.lr" = 0.02}, {"train.lr" = 0.05}]

Every run is an ordinary one-method, one-seed experiment written by the runner to its normal results path, so
``spikecl report`` reads any of them and a sweep that is interrupted and started again skips runs whose results
file exists (and resumes half-trained ones from their checkpoints). A point that does not change a method's run
(``strategy.ewc.lam`` for fine-tuning) does not run it again; runs that no point changes from the base experiment's
go to the folder ``base`` (a single point that changes them keeps its own label). This module plans the runs and
aggregates the results; :mod:`spikecl.continual.sweep_ray` executes them on Ray. Its summary is also a results file
of kind ``sweep`` (``<name>/sweep.h5``, :func:`write_sweep_results`), which ``spikecl report`` reads.

Choosing settings without touching test data (``select = "acc"``; the base experiment needs ``data.validation``)::

    select = "acc"          # each method's point: the best mean validation ACC over select_seeds ...
    min_bwt = -3.0          # ... among points whose mean validation BWT (points) is at least this, if any is
    select_seeds = [0]      # default: seeds

The trial runs are evaluated on the validation split (``data.eval_split = "validation"``: they evaluate no test
image); ``selection.json`` records every candidate's validation ACC/BWT and the choice; then each method runs once per
seed at its chosen point on the test split, into ``<name>/final/<method>-seed<seed>.h5``. A method with one candidate
point needs no trial and goes straight to its final runs.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
import typing
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from spikecl.config import (SEED_MAX, ExperimentConfig, check_split_heads, experiment_from_dict, option_path,
                            unreached_override)
from spikecl.continual.metrics import DEFINITIONS
from spikecl.errors import ConfigError, ResultsError, check_installed
from spikecl.experiment_kind import Kind, differing_setting, how_made, recorded_data_crc
from spikecl.integrity import sealed_crc
from spikecl.io import Run
from spikecl.options import from_dict, option
from spikecl.remedies import option as remedy
from spikecl.remedies import on_command_line, set_option
from spikecl.rounding import settled
from spikecl.run_files import checkpoint_path, replacing
from spikecl.toml_files import apply_overrides, load_toml, parse_override, toml_literal


@dataclass
class SweepConfig:
    """A sweep file, validated (see the module docstring)."""

    base: str = option("", path=True, doc="experiment file every run derives from, relative to the sweep file")
    name: str = option("", file_name=True,
                       doc="results go to <output_dir>/<name>/<point>/; default: the sweep file's stem")
    output_dir: str = option("", path=True, doc="default: the base experiment's output_dir")
    methods: list[str] = option([], distinct=True, doc="default: the base experiment's strategy.methods")
    seeds: list[int] = option([], low=0, high=SEED_MAX, distinct=True, doc="default: the base experiment's seeds")
    set: dict[str, typing.Any] = option({}, doc="overrides applied to every run: {dotted key: value}")
    grid: dict[str, typing.Any] = option({}, doc="{dotted key: [values]}: every combination is one point")
    points: list[dict[str, typing.Any]] = option([], doc="explicit points (instead of grid): [{dotted key: value}]")
    max_retries: int = option(2, low=0, high=100,
                              doc="attempts after the first for a crashed run (not one failing on a spikecl error, "
                                  "e.g. diverged)")
    num_cpus: int = option(0, low=0, high=1 << 12, doc="CPUs of a local Ray instance; 0 = all of this machine's")
    cpus_per_run: float = option(1.0, low=0.01, doc="Ray CPUs reserved by each run")
    select: str = option("",       # '' or 'acc', checked by load_sweep (an empty choice reads badly in a message)
                         doc="'acc': choose each method's point on validation ACC, then run it once on the test split")
    min_bwt: float = option(-100.0, low=-100.0, high=100.0,
                            doc="select: only points whose mean validation BWT (points) is at least this, if any is")
    select_seeds: list[int] = option([], low=0, high=SEED_MAX, distinct=True,
                                     doc="select: seeds of the trial runs (default: seeds)")


@dataclass
class SweepRun:
    """One (point, method, seed): its id ``<point>/<method>-seed<seed>``, the overrides of its point, its validated
    raw experiment config and results file."""

    id: str
    point: str
    method: str
    seed: int
    overrides: dict
    raw: dict = field(repr=False)
    results: Path


@dataclass
class _Planning:
    """What planning a sweep's runs reads (:func:`_plan_run`): the sweep file ``path``, its ``config``, its base
    experiment (raw table, the assignments every run shares, validated config) and ``name``; and what planning
    gathers: every planned run's (method, strategy options) for :func:`check_read`, and ``splits`` {method: the split
    settings of its first run} (:func:`check_split`)."""

    path: Path
    config: SweepConfig
    base_raw: dict = field(repr=False)
    fixed: list[str]
    base_cfg: ExperimentConfig = field(repr=False)
    name: str
    planned: list[tuple[str, dict]] = field(default_factory=list, repr=False)
    splits: dict[str, tuple] = field(default_factory=dict, repr=False)


@dataclass
class Sweep:
    """A planned sweep: its ``runs`` (with ``select``: the validation trials), and for selection every method's
    candidate points {method: {label: overrides}} and the seeds of its final runs."""

    config: SweepConfig
    name: str
    runs: list[SweepRun]
    folder: Path = Path(".")                 # <output_dir>/<name>: results, summary, selection
    candidates: dict[str, dict[str, dict]] = field(default_factory=dict)
    final_seeds: list[int] = field(default_factory=list)
    planning: _Planning | None = field(default=None, repr=False)         # what plans more of its runs
    unselected: list[str] = field(default_factory=list)  # a final stage's methods without a chosen point: no runs

    def plan(self, label: str, point: dict, method: str, seed: int, stage: str) -> tuple[SweepRun, str]:
        """One more run of this sweep and its identity (:func:`_plan_run`)."""
        return _plan_run(self.planning, label, point, method, seed, stage)


def _dotted_leaf(key: str, table: dict) -> tuple[str, object]:
    """(``a.b.c``, value) of the first leaf of ``table`` under ``key``: what an unquoted dotted key ``a.b.c = value``
    meant, for a message showing it quoted."""
    while isinstance(table, dict) and table:
        sub, table = next(iter(table.items()))
        key += f".{sub}"
    return key, table


def _literal(key: str, value, where: str = "set") -> str:
    """``key=value`` with ``value`` as a TOML literal (numbers, nan and inf included, strings, booleans and lists of
    them); a table (an unquoted dotted key under ``where``) is a one-line error showing the quoted key."""
    if isinstance(value, dict):
        leaf, value = _dotted_leaf(key, value)
        example = f'"{leaf}" = {toml_literal(value)}'
        quoted = f'set."{leaf}"'
        override = f", or {set_option(quoted, toml_literal(value))}" if where == "set" else ""
        raise ConfigError(f"sweep: {where}.{key}: a table is not a value; quote each whole dotted key: "
                          f"{example}{override}")
    return f"{key}={toml_literal(value)}"


#: experiment keys a sweep sets for each run itself, and the sweep-file key that chooses them
SWEEP_OWNED = {"strategy.methods": "methods", "seeds": "seeds", "name": "name", "output_dir": "output_dir"}
#: keys that choose which images a run is evaluated on: a selecting sweep may not vary them between its points
#: (candidates scored on other validation images, or a test split "chosen")
SPLIT_KEYS = ("data.validation", "data.vary_split", "data.test_split_seed", "data.test_excludes",
              "stream.test_per_task")

#: the longest point label (a folder name, and a row label in reports); a longer one keeps its start and ends with a
#: hash of the whole label, so it stays unique and readable
MAX_LABEL = 100


def point_label(overrides: dict) -> str:
    """A folder name for a point: ``lr=0.05_hlop.lr=1.5`` (``train.``/``strategy.`` prefixes dropped); one longer
    than :data:`MAX_LABEL` characters is cut to ``<start>~<8 hex digits of its SHA-1>``."""
    if not overrides:
        return "base"
    parts = []
    for key, value in overrides.items():
        short = re.sub(r"^(train|strategy|network|stream|data)\.", "", key)
        parts.append(f"{short}={json.dumps(value) if not isinstance(value, str) else value}")
    label = re.sub(r"[^A-Za-z0-9._=+-]+", "-", "_".join(parts))
    if len(label) <= MAX_LABEL:
        return label
    return f"{label[:MAX_LABEL - 9]}~{hashlib.sha1(label.encode()).hexdigest()[:8]}"


def grid_points(cfg: SweepConfig) -> list[dict]:
    """The points of a sweep: the cartesian product of ``grid``, or ``points``, or one empty point."""
    if cfg.grid and cfg.points:
        raise ConfigError("sweep: give either [grid] or points, not both")
    for key, values in cfg.grid.items():
        if isinstance(values, dict) and values:                 # train.lr = [...] read as the table train
            leaf, inner = _dotted_leaf(key, values)
            raise ConfigError(f"sweep: grid.{key}: a table is not a list of values; quote each whole dotted key: "
                              f'"{leaf}" = {toml_literal(inner)}')
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep: grid.{key}: expected a non-empty list of values, got {values!r}")
    if cfg.grid:
        keys = list(cfg.grid)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(cfg.grid[k] for k in keys))]
    return [dict(p) for p in cfg.points] or [{}]


#: tables of experiment files (any kind), never of a sweep file
EXPERIMENT_SECTIONS = {"data", "stream", "network", "train", "strategy", "functional", "stress", "params", "coder",
                       "eval"}


def load_sweep(path: str | Path, overrides: typing.Iterable[str] = ()) -> Sweep:
    """Read and validate a sweep file and plan its runs; every run's config is validated before anything runs.

    ``overrides``: ``key=value`` strings applied to the sweep file itself (e.g. ``max_retries=0``).
    """
    check_installed("torch", "torch", "a sweep (its continual runs)")
    from spikecl.continual.strategies import check_read, validate_method

    path = Path(path)
    raw = load_toml(path, "sweep file")
    if "base" not in raw and ("kind" in raw or raw.keys() & EXPERIMENT_SECTIONS):
        raise ConfigError(f"{path} is an experiment file ({raw.get('kind', 'continual')!r}), not a sweep file; run it "
                          f"with 'spikecl run {path}', or name it as a sweep file's 'base'")
    overrides = list(overrides)
    aimed = next((k for o in overrides for k in [parse_override(o)[0]] if k[0] in EXPERIMENT_SECTIONS), None)
    if aimed:                                         # --set train.epochs=2: meant for every run
        key = ".".join(aimed)
        quoted = f'set."{key}"'
        sets = "a sweep's --set sets" if on_command_line() else "load_sweep's overrides set"
        raise ConfigError(f"unknown key 'sweep.{aimed[0]}': {sets} the sweep file's keys; set {key} for every run "
                          f"with {set_option(quoted, '...')}")
    cfg = from_dict(SweepConfig, apply_overrides(raw, overrides), "sweep.")
    _check_sweep(path, cfg)
    base_raw, fixed, base_cfg = _base_experiment(path, cfg)
    name = cfg.name or path.stem
    methods = cfg.methods or base_cfg.strategy.methods
    seeds = cfg.seeds or base_cfg.seeds
    if cfg.select and base_cfg.data.validation <= 0:
        raise ConfigError(f"{path}: select needs a validation split in the base experiment; set data.validation "
                          "(e.g. \"data.validation\" = 0.1 under [set])")

    _check_reached(path, cfg, replace(base_cfg, strategy=replace(base_cfg.strategy, methods=list(methods))))
    planning = _Planning(path, cfg, base_raw, fixed, base_cfg, name)
    plan = partial(_plan_run, planning)
    for method in methods:                           # a method's own fault is the sweep's methods', not a point's
        validate_method(base_cfg, method)
    points = _points(cfg)
    runs, candidates = [], {}
    for method in methods:
        first_label = {}                             # identity -> the first point giving that run
        for label, point in points.items():
            first_label.setdefault(plan(label, point, method, seeds[0], "all")[1], label)
        labels = list(first_label.values())
        # one candidate that is the base experiment's own run (no point changes it): its folder is "base"
        unchanged = len(labels) == 1 and next(iter(first_label)) == plan("base", {}, method, seeds[0], "all")[1]
        candidates[method] = {"base": points[labels[0]]} if unchanged else {k: points[k] for k in labels}
        if cfg.select:                               # its final runs' split, checked before any run
            plan(*next(iter(candidates[method].items())), method, seeds[0], "final")
        if cfg.select and len(candidates[method]) == 1:
            continue                                 # nothing to choose: straight to its final runs
        for label, point in candidates[method].items():
            for seed in (cfg.select_seeds or seeds) if cfg.select else seeds:
                runs.append(plan(label, point, method, seed, "trial" if cfg.select else "all")[0])
    check_read(planning.planned)                     # a setting the sweep gives that none of its runs reads
    if len(points) > 1 and all(len(c) == 1 for c in candidates.values()):
        varied = sorted({key for point in points.values() for key in point})
        raise ConfigError(f"{path}: no run of this sweep ({', '.join(methods)}) reads what its "
                          f"{'grid varies' if cfg.grid else 'points vary'} ({', '.join(varied)}): every point would be "
                          "the same run; add a method that reads it or vary another key")
    return Sweep(cfg, name, runs, Path(base_cfg.output_dir) / name, candidates, list(seeds), planning)


def _check_reached(path: Path, cfg: SweepConfig, runs: ExperimentConfig) -> None:
    """A one-line ConfigError naming a key of the sweep's ``set``, ``grid`` or ``points`` that no run of ``runs``
    (the base experiment with the sweep's methods) reads: a method's option where the method does not run (a grid of
    it would only merge points and name folders by values no run read), as ``spikecl run --set`` refuses it."""
    for where, keys in (("set", cfg.set), ("grid", cfg.grid), *(("points", p) for p in cfg.points)):
        for key in keys:
            why = unreached_override(runs, key.split("."))
            if why is not None:
                raise ConfigError(f'{path}: {where}."{key}": '
                                  + why.split(": ", 1)[1].replace("this experiment", "this sweep"))


def _plan_run(ctx: _Planning, label: str, point: dict, method: str, seed: int, stage: str) -> tuple[SweepRun, str]:
    """One run of the sweep ``ctx`` plans, validated: ``method`` and ``seed`` at ``point`` {dotted key: value} in the
    folder ``label`` (``stage``: "all", or a selecting sweep's "trial" on the validation split or "final" on the test
    split, in the folder ``final``); and its identity (its effective config: equal identities are the same run)."""
    from spikecl.continual.strategies import check_read, check_run, unread_options, validate_method

    cfg, path = ctx.config, ctx.path
    folder = "final" if stage == "final" else label
    split = {"trial": ["data.eval_split=\"validation\""], "final": ["data.eval_split=\"test\""]}.get(stage, [])
    where = "grid" if cfg.grid else "points"
    assignments = [*ctx.fixed, *(_literal(k, v, where) for k, v in point.items()), *split,
                   _literal("output_dir", str(Path(ctx.base_cfg.output_dir) / ctx.name)), _literal("name", folder),
                   _literal("strategy.methods", [method]),
                   _literal("seeds", [seed])]
    raw = apply_overrides(ctx.base_raw, assignments)
    try:
        run_cfg, runs_method = validate_method(experiment_from_dict(raw), method)
    except ConfigError as exc:                  # the base's own faults were refused first: the point's value
        if not point:
            raise
        raise ConfigError(f"{path} [{where}] point {label}: {exc}") from None
    ctx.planned.append((runs_method, run_cfg.strategy.options))
    unread = unread_options(runs_method, run_cfg.strategy.options, set_only=False)
    if unread:                                   # e.g. replay's phase_lr swept for hlop+replay: not this run's
        raw = _without(raw, unread)
        run_cfg, runs_method = validate_method(experiment_from_dict(raw), method)
    check_split_heads(run_cfg, training=True)
    check_run(run_cfg, runs_method)
    check_read([(runs_method, run_cfg.strategy.options)])
    if cfg.select and stage in ("trial", "final"):         # a variant's own data keys: checked as planned
        check_split(method, stage, run_cfg, ctx.splits)
    results = run_cfg.results_path(method, seed)
    run_id = f"{folder}/{method}-seed{seed}"
    return SweepRun(run_id, label, method, seed, point, raw, results), _identity(run_cfg, runs_method)


def _without(raw: dict, keys: typing.Iterable[str]) -> dict:
    """The experiment ``raw`` without the strategy options ``keys`` (``strategy.<method>.<option>``), in either of
    its spellings (``[strategy.<method>]`` or ``strategy.options.<method>``)."""
    strategy = copy.deepcopy(raw.get("strategy", {}))
    for key in keys:
        _, name, option = key.split(".")
        for tables in (strategy, strategy.get("options", {})):
            if isinstance(tables.get(name), dict):
                tables[name].pop(option, None)
                if not tables[name]:                 # a table it alone was in: as if never written
                    del tables[name]
    return {**raw, "strategy": strategy}


def check_split(method: str, stage: str, run_cfg: ExperimentConfig, splits: dict) -> None:
    """A one-line :class:`ConfigError` where a selecting sweep's run of ``method`` (its variant applied) would not be
    evaluated on its stage's split, or on the same validation and test images as its other runs (``splits``:
    {method: the split settings of its first run})."""
    want = "validation" if stage == "trial" else "test"
    if run_cfg.data.eval_split != want:
        raise ConfigError(f"sweep: {method} sets data.eval_split = {run_cfg.data.eval_split!r} (its variant); a "
                          f"selecting sweep evaluates its trials on validation and its final runs on test")
    d = run_cfg.data
    split = (d.validation, d.vary_split, d.test_split_seed, d.test_excludes, run_cfg.stream.test_per_task)
    if splits.setdefault(method, split) != split:
        raise ConfigError(f"sweep: {method}'s points differ in the images they are evaluated on (data.validation, "
                          "data.vary_split, data.test_split_seed, data.test_excludes or stream.test_per_task, set "
                          "by its variant); a "
                          "selecting sweep compares its points on one validation split and tests on one test split")


def _points(cfg: SweepConfig) -> dict[str, dict]:
    """{folder label: overrides} of the sweep's points (two points of one label are refused)."""
    points = {}
    for point in grid_points(cfg):
        label = point_label(point)
        if label in points:
            raise ConfigError(f"sweep: two points share the folder name {label!r}")
        points[label] = point
    return points


def _check_sweep(path: Path, cfg: SweepConfig) -> None:
    """One-line ConfigErrors for a sweep file's own settings: ``select``, its options without it, a missing base,
    CPUs, and keys the sweep sets itself."""
    if cfg.select not in ("", "acc"):
        raise ConfigError(f"sweep.select: {cfg.select!r} is not allowed; choose 'acc' (or leave select out)")
    unused = next((k for k in ("min_bwt", "select_seeds") if getattr(cfg, k) != getattr(SweepConfig(), k)), None)
    if unused and not cfg.select:
        raise ConfigError(f"sweep.{unused}: applies only with select = \"acc\"; set select or remove {unused}")
    if not cfg.base:
        raise ConfigError(f"{path}: 'base' (the experiment file the runs derive from) is required")
    if cfg.num_cpus and cfg.cpus_per_run > cfg.num_cpus:
        raise ConfigError(f"sweep: cpus_per_run = {cfg.cpus_per_run:g} is more than num_cpus = {cfg.num_cpus}: no "
                          "run could start")
    for where, keys in (("set", cfg.set), ("grid", cfg.grid), *(("points", p) for p in cfg.points)):
        owned = next((k for k in keys if k in SWEEP_OWNED), None)
        if owned:
            raise ConfigError(f"sweep: {where}.{owned}: a sweep sets this for every run; use its own "
                              f"'{SWEEP_OWNED[owned]}' key")
    evaluated = next((where for where, keys in (("set", cfg.set), ("grid", cfg.grid), *(("points", p)
                                                                                          for p in cfg.points))
                      if "data.eval_split" in keys), None)
    if evaluated and cfg.select:
        raise ConfigError(f"sweep: {evaluated}.data.eval_split: a selecting sweep sets it itself (validation for its "
                          "trials, test for its final runs)")
    split = next((k for k in [*cfg.grid, *(k for p in cfg.points for k in p)] if k in SPLIT_KEYS), None)
    if split and cfg.select:
        raise ConfigError(f"sweep: {'grid' if split in cfg.grid else 'points'}.{split}: a selecting sweep compares "
                          "its points on one validation split and tests on one test split; set it under [set] or "
                          "in the base experiment")
    varied = next((k for k in cfg.set if k in cfg.grid or any(k in p for p in cfg.points)), None)
    if varied:
        raise ConfigError(f"sweep: set.{varied}: the grid or points vary this key, so no run would get the set value; "
                          "remove it from one of them")


def _base_experiment(path: Path, cfg: SweepConfig) -> tuple[dict, list, ExperimentConfig]:
    """The base experiment of the sweep file ``path``: (its raw table, the assignments every run shares — ``set``
    and ``output_dir`` — and its validated config with them)."""
    base_path = (path.parent / cfg.base) if not Path(cfg.base).is_absolute() else Path(cfg.base)
    base_raw = load_toml(base_path)
    if "base" in base_raw:
        raise ConfigError(f"{path}: base {base_path} is a sweep file; 'base' names an experiment file")
    if base_raw.get("kind", "continual") != "continual":
        raise ConfigError(f"{path}: base {base_path} is a {base_raw['kind']!r} experiment; sweeps run continual "
                          "experiments")
    base_raw.setdefault("name", base_path.stem)
    fixed = [_literal(k, v) for k, v in cfg.set.items()]
    if cfg.output_dir:
        fixed.append(_literal("output_dir", cfg.output_dir))
    try:
        base_cfg = experiment_from_dict(apply_overrides(base_raw, fixed))
    except ConfigError as exc:
        try:
            experiment_from_dict(base_raw)
        except ConfigError as own:
            raise own from None                                   # the base experiment's own fault
        raise ConfigError(f"{path} [set]: {exc}") from None      # a key or value the sweep's [set] gives
    return base_raw, fixed, base_cfg


def _identity(cfg, method: str) -> str:
    """What makes a run of ``method`` under ``cfg`` what it is: its config without names, folders, seeds, the
    method list and the options of strategies it does not use."""
    from spikecl.continual.strategies import components

    data = cfg.to_dict()
    for key in ("name", "output_dir", "seeds", "variants"):
        data.pop(key)
    data["strategy"] = {"method": method, "options": {k: v for k, v in data["strategy"]["options"].items()
                                                      if k in components(method)}}
    return json.dumps(data, sort_keys=True)


def select_points(sweep: Sweep, done: dict, failed: typing.Collection[str] = ()) -> dict[str, dict]:
    """Each method's chosen point from its validation trials ``done`` {run id: results}.

    Returns {method: {"point": label, "overrides": {...}, "settings": {...}, "candidates": {label: {"acc": mean,
    "bwt": mean, "seeds": n, "failed": bool}}, "bwt_floor_met": bool}} (ACC/BWT in points; ``settings``: the
    overrides that change the method's run, see :func:`settings_of`). The choice is the best mean ACC among
    candidates whose mean BWT is at least ``min_bwt`` (among all candidates when none is: ``bwt_floor_met`` false);
    of equal means (:func:`~spikecl.rounding.settled`: whatever order their trials were summed in), the first
    candidate in the sweep's order, on every machine.
    A candidate with a ``failed`` trial (e.g. a diverging setting) cannot be chosen; a method whose every candidate
    failed gets ``"point": None`` (no final runs; the others still have theirs); a trial neither done nor failed is
    an error."""
    cfg = sweep.config
    missing = [run.id for run in sweep.runs if run.id not in done and run.id not in failed]
    if missing:
        raise ConfigError(f"sweep {sweep.name}: validation trial {missing[0]} is missing; run the sweep again")
    out = {}
    for method, points in sweep.candidates.items():
        scores = {}
        for label in points:
            trials = [r.id for r in sweep.runs if r.method == method and r.point == label]
            results = [done[i] for i in trials if i in done]
            mean = {k: 100 * float(np.mean([r.metrics[k] for r in results])) if results else None
                    for k in ("acc", "bwt")}
            scores[label] = {**mean, "seeds": len(results), "failed": len(results) < len(trials)}
        usable = [k for k, v in scores.items() if not v["failed"]]
        if not usable:
            out[method] = {"point": None, "overrides": None, "settings": None, "candidates": scores,
                           "bwt_floor_met": False}
            continue
        meeting = [k for k in usable if scores[k]["bwt"] is None or not np.isfinite(scores[k]["bwt"])  # one task
                   or settled(scores[k]["bwt"]) >= cfg.min_bwt]
        best = max(meeting or usable, key=lambda k: -1.0 if scores[k]["acc"] is None else settled(scores[k]["acc"]))
        out[method] = {"point": best, "overrides": points[best], "settings": settings_of(sweep, method, points[best]),
                       "candidates": scores, "bwt_floor_met": bool(meeting)}
    return out


def settings_of(sweep: Sweep, method: str, overrides: dict) -> dict:
    """The overrides of a point that concern ``method`` (a point also carries other methods' settings, e.g.
    ``strategy.ewc.lam`` for a GPM variant): those whose removal, or another point's value, changes its run."""
    def identity(point: dict) -> str:
        return sweep.plan("settings", point, method, sweep.final_seeds[0], "final")[1]

    whole = identity(overrides)
    points = [p for candidates in sweep.candidates.values() for p in candidates.values()]

    def concerns(key: str) -> bool:
        others = [{**overrides, key: p[key]} for p in points if key in p and p[key] != overrides[key]]
        return any(identity(o) != whole for o in [{k: v for k, v in overrides.items() if k != key}, *others])

    return {k: v for k, v in overrides.items() if concerns(k)}


def settings_text(settings: dict) -> str:
    """``settings`` {dotted key: value} as ``key = value, ...`` (JSON values), or ``base`` when there are none."""
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in settings.items()) or "base"


def final_runs(sweep: Sweep, selection: dict[str, dict]) -> Sweep:
    """The test-split runs of every method at its chosen point (``<name>/final/<method>-seed<seed>.h5``; none for a
    method without one), each labelled by the settings chosen for its method (:func:`settings_text`), not by the
    whole point."""
    runs = [replace(sweep.plan(choice["point"], choice["overrides"], method, seed, "final")[0],
                    point=settings_text(choice["settings"]))
            for method, choice in selection.items() if choice["point"] is not None for seed in sweep.final_seeds]
    return Sweep(sweep.config, f"{sweep.name}/final", runs, sweep.folder / "final",
                 unselected=[method for method, choice in selection.items() if choice["point"] is None])


def final_paths(sweep: Sweep) -> list[Path]:
    """The results files the final runs of a selecting sweep will write, for every method (those with one candidate
    run no trial); the paths depend on no chosen point."""
    first = {method: next(iter(points.items())) for method, points in sweep.candidates.items()}
    return [sweep.plan(label, point, method, seed, "final")[0].results
            for method, (label, point) in first.items() for seed in sweep.final_seeds]


def sweep_dir(sweep: Sweep) -> Path:
    """``<output_dir>/<name>``: the folder holding every point's results and the sweep's summary."""
    return sweep.folder


def run_config(run: SweepRun) -> dict:
    """The config ``run``'s results file records (its variant applied): what the run reads and trains with."""
    from spikecl.continual.experiment import KIND

    [job] = KIND.plan(experiment_from_dict(run.raw))
    return job.config


def changed_setting(run: SweepRun, stored_config: dict) -> str | None:
    """The first setting (dotted key, e.g. ``strategy.gpm.thresholds``) in which a kept results file of ``run``,
    whose recorded config is ``stored_config``, was made otherwise than the sweep now plans ``run``; None if it
    was not (keys that choose only where or on what a run executes are ignored, as ``spikecl run --resume`` does)."""
    from spikecl.continual.experiment import KIND

    [job] = KIND.plan(experiment_from_dict(run.raw))
    return differing_setting(job, stored_config)


def made_otherwise(sweep: Sweep, kept: dict[str, object]) -> dict[str, str]:
    """{run id: the first setting that differs} of the ``kept`` results {run id: results} made with other settings
    than ``sweep`` plans for those runs."""
    return {r.id: key for r in sweep.runs
            if r.id in kept and (key := changed_setting(r, kept[r.id].config) or other_files(r, kept[r.id]))}


def other_files(run: SweepRun, kept) -> str | None:
    """``"data_crc"`` where ``kept`` (its results) was trained on other data files than ``run``'s folder holds now
    (:func:`~spikecl.data.streams.files_crc`), else None."""
    from spikecl.data.streams import files_crc

    trained_on = recorded_data_crc(kept)
    return "data_crc" if trained_on is not None and files_crc(experiment_from_dict(run.raw).data) not in (
        None, trained_on) else None


def checkpoint_setting(run: SweepRun) -> str | None:
    """The first setting (``method``, ``seed`` or a dotted key, as the runner's resume check names it) in which the
    checkpoint an unfinished attempt left beside ``run``'s results file was written otherwise than the sweep now
    plans ``run``; None if there is none, it matches, or it cannot be read (the run itself reports that)."""
    from spikecl.continual.checkpoint import checkpoint_mismatch

    path = checkpoint_path(run.results)
    try:
        return checkpoint_mismatch(path, experiment_from_dict(run.raw), run.method, run.seed) if path.is_file() \
            else None
    except ResultsError:
        return None


def stale_checkpoints(sweep: Sweep, done: typing.Collection[str]) -> dict[str, str]:
    """{run id: the first setting that differs} of the runs not ``done`` whose checkpoint was written with other
    settings than ``sweep`` plans (:func:`checkpoint_setting`)."""
    return {r.id: key for r in sweep.runs if r.id not in done and (key := checkpoint_setting(r))}


def refuse_other_settings(sweep: Sweep, made: dict[str, str], checkpoints: dict[str, str] | None = None) -> None:
    """A one-line :class:`ConfigError` naming the first of the runs ``made`` with other settings
    (:func:`made_otherwise`), else of those whose ``checkpoints`` were (:func:`stale_checkpoints`), if any, and how
    many more results files and checkpoints were: without ``--overwrite`` they are not the sweep's."""
    checkpoints = checkpoints or {}
    stale = made or checkpoints
    if stale:
        run = next(r for r in sweep.runs if r.id in stale)
        path = run.results if made else f"{checkpoint_path(run.results)} (the checkpoint of an unfinished run)"
        counts = ((len(made) - 1, "more results file(s)"), (len(checkpoints), "checkpoint(s)")) if made \
            else ((len(checkpoints) - 1, "more checkpoint(s)"),)
        more = " and ".join(f"{n} {noun}" for n, noun in counts if n)
        others = f" (and {more})" if more else ""
        from spikecl.continual.experiment import KIND

        made = how_made(KIND, stale[run.id], f"with other settings than sweep {sweep.name} plans "
                                              f"({stale[run.id]} differs)")
        raise ConfigError(f"{path} was made {made}{others}; pass {remedy('--overwrite')} to train again what differs")


def labelled(results_by_run: dict[str, object], sweep: Sweep) -> list:
    """Results renamed ``method @ point`` so reports group them per method and point (``method`` alone when
    every run is at the base point)."""
    several = several_points(sweep)
    return [replace(results_by_run[run.id], method=row_label(run.method, run.point, several)) for run in sweep.runs
            if run.id in results_by_run]


def several_points(sweep: Sweep) -> bool:
    """Whether a sweep's runs lie at other points than the base one (its rows are then labelled by point)."""
    return {r.point for r in sweep.runs} != {"base"}


def row_label(method: str, point: str, several: bool) -> str:
    """The row of a sweep's summary that a method's runs at a point go to: ``method @ point``, or ``method`` where
    ``several`` is False (every run at the base point)."""
    return f"{method} @ {point}" if several else method


def point_settings(sweep: Sweep) -> dict[str, list]:
    """{summary row label: [method, {dotted key: value}]}: what each row of a sweep's summary ran, for its plot (a
    point's options of methods the row does not run left out: a point may set one key per method)."""
    several = several_points(sweep)
    return {row_label(run.method, run.point, several): [run.method, own_settings(run)] for run in sweep.runs}


def own_settings(run: SweepRun) -> dict:
    """``run.overrides`` without the options of methods ``run`` does not run (its variant's method's parts)."""
    variant = (run.raw.get("variants") or {}).get(run.method)
    parts = str(variant.get("method", run.method) if isinstance(variant, dict) else run.method).split("+")

    def another_methods(key: str) -> bool:
        path = option_path(key.split("."))
        return path[:2] == ["strategy", "options"] and len(path) > 2 and path[2] not in parts
    return {key: value for key, value in run.overrides.items() if not another_methods(key)}


def summary_text(results: list, sweep: Sweep, failures: dict[str, list[str]]) -> str:
    """The sweep's comparison table (mean ± std over seeds per method and point) and its failures."""
    return _summary_text(summary_record(results, sweep, failures))


def summary_record(results: list, sweep: Sweep, failures: dict[str, list[str]],
                   selection: dict | None = None) -> dict:
    """What a sweep's summary shows, as plain data (the ``sweep`` results file keeps it as root attributes):
    name, runs complete / planned, {label: {metric: [mean, std]}}, {label: seeds}, the split note, the legend of
    the table's columns with what the runs were computed on, {run id: errors} of the failed runs, {results file,
    relative to the summary's folder: the CRC-32 its seal records} of the runs' files (a report names those gone or
    rewritten since), what each label ran (:func:`point_settings`) and, given the trials' ``selection``
    (:func:`select_points`), {method: the label of its chosen point}."""
    from collections import Counter

    from spikecl.continual.report import (defined_counts, eval_split, legend, machine_note, method_summary,
                                          partly_defined, source_note, split_note)

    stats = method_summary(results) if results else {}
    summary = {m: {k: list(v) for k, v in s.items()} for m, s in stats.items()}
    counts = {m: dict(c) for m, c in defined_counts(results).items()}       # seeds per cell: a single one shows alone
    notes = "\n".join(filter(None, (partly_defined(results, stats), split_note(results)))) if results else ""
    below = f"{legend(results, stats)}\n{machine_note(results)}{source_note(results)}" if results else ""
    splits = sorted({eval_split(r) for r in results})
    return {"name": sweep.name, "complete": len(results), "planned": len(sweep.runs), "summary": summary,
            "seeds": dict(Counter(r.method for r in results)), "counts": counts, "split_note": notes,
            "eval_split": splits[0] if len(splits) == 1 else "mixed" if splits else "",
            "legend": below, "failures": failures, "metric_definitions": DEFINITIONS,
            "runs": {os.path.relpath(r.results, sweep_dir(sweep)): crc for r in sweep.runs
                     if (crc := sealed_crc(r.results)) is not None},
            "points": point_settings(sweep), "chosen": chosen_labels(sweep, selection or {}),
            "unselected": sweep.unselected}


def chosen_labels(sweep: Sweep, selection: dict) -> dict[str, str]:
    """{method: the summary label of its chosen point} of a :func:`select_points` ``selection`` (methods without
    one left out)."""
    several = several_points(sweep)
    return {method: row_label(method, choice["point"], several) for method, choice in selection.items()
            if choice["point"] is not None}


def _summary_text(record: dict) -> str:
    from spikecl.continual.report import format_summary

    lines = [f"sweep {record['name']}: {record['complete']}/{record['planned']} runs complete"]
    if record["summary"]:
        summary = {m: {k: tuple(v) for k, v in s.items()} for m, s in record["summary"].items()}
        lines += ["", format_summary(summary, record["seeds"], record.get("counts")), record["split_note"],
                  *filter(None, [record.get("legend")])]
    for run_id, messages in record["failures"].items():
        lines.append(f"FAILED {run_id}: {len(messages)} attempt(s); last error: {messages[-1]}")
    if record.get("unselected"):
        lines.append(f"No final runs: {', '.join(record['unselected'])} (every candidate failed its validation "
                     "trial: see the trials' summary)")
    written = record.get("metric_definitions")
    if record["summary"] and written != DEFINITIONS:
        newer = isinstance(written, str) and written > DEFINITIONS                  # ISO dates order as text
        made = (f"a newer spikecl (metric definitions of {written}; this one's are of {DEFINITIONS})" if newer else
                f"a spikecl whose metrics predate the definitions of {DEFINITIONS}")
        lines.append(f"Note: written by {made} (a summary stores means, not the runs' matrices); `spikecl report` "
                     "of its point folders computes them again from the runs' files")
    return "\n".join(lines)


def write_sweep_results(results: list, sweep: Sweep, failures: dict[str, list[str]],
                        selection: dict | None = None) -> Path:
    """The sweep's results file ``<output_dir>/<name>/sweep.h5`` (kind ``sweep``), replaced at every report: root
    attributes hold :func:`summary_record` (JSON text for its tables; ``selection``: the trials' choice), ``/config``
    the sweep file's settings."""
    from dataclasses import asdict

    from spikecl.io import write_run

    path = write_run(sweep_dir(sweep) / "sweep.h5", "sweep", asdict(sweep.config),
                     attrs=summary_record(results, sweep, failures, selection), overwrite=True)
    replacing(path).unlink(missing_ok=True)            # marked while the sweep's runs were still to finish
    return path


class SweepKind(Kind):
    """Sweeps as results: made by ``spikecl sweep``, read by ``spikecl report``."""

    name = "sweep"

    def experiment_of(self, run: Run) -> dict:
        raise ConfigError(f"{run.path} is a sweep's summary, not one run to make again: 'spikecl sweep <its sweep "
                          "file>' runs the sweep (what it kept, it keeps)")

    def summarize(self, runs: typing.Sequence[Run], detail: bool = True) -> str:
        return "\n\n".join(_summary_text(_record(run)) + _stale_note(run) for run in runs)

    def plot(self, runs: typing.Sequence[Run], out_dir: Path) -> list[Path]:
        """Each summary's comparison: ``sweep-comparison.png`` beside its ``sweep.h5`` where that lies in or below
        ``out_dir`` (the very plot ``spikecl sweep`` writes there, never a copy under another name), else
        ``<name>-comparison.png`` in ``out_dir`` (``<name>-final-comparison.png`` for a sweep's final runs,
        ``<name>-2-comparison.png`` and on for further sweeps of one name, in the order given)."""
        from spikecl.continual.sweep_plot import plot_sweep

        return [plot_sweep(record, target, len(_stale_runs(run)))
                for run, record, target in _plot_targets(runs, out_dir)]

    def plot_paths(self, runs: typing.Sequence[Run], out_dir: Path) -> list[Path]:
        return [target for _, _, target in _plot_targets(runs, out_dir)]


def _plot_targets(runs: typing.Sequence[Run], out_dir: Path) -> list[tuple[Run, dict, Path]]:
    """(run, summary record, PNG path) of each sweep summary of ``runs`` that has results, as
    :meth:`SweepKind.plot` places them."""
    targets: list[tuple[Run, dict, Path]] = []
    for run in runs:
        record = _record(run)
        if record["summary"]:
            name = re.sub(r"[^A-Za-z0-9._=+-]+", "-", record["name"])
            beside = Path(run.path).parent
            if beside.name == "final" and (beside.parent / "sweep.h5").is_file() and not name.endswith("-final"):
                name += "-final"                         # the final runs' summary (named <sweep>/final when made)
            target = (beside / "sweep-comparison.png" if beside.resolve().is_relative_to(Path(out_dir).resolve())
                      else Path(out_dir) / f"{name}-comparison.png")
            count = 1
            while target in [t for _, _, t in targets]:  # another sweep of this name: its own plot
                count += 1
                target = Path(out_dir) / f"{name}-{count}-comparison.png"
            targets.append((run, record, target))
    return targets


def _recorded_runs(run: Run) -> dict:
    """{file relative to the summary's folder: its CRC} of the runs a sweep summary ``run`` was made from ({} where
    it predates recording them)."""
    return json.loads(run.attrs["runs"]) if "runs" in run.attrs else {}


def _stale_runs(run: Run) -> list[str]:
    """The runs' files (relative paths, sorted) of a sweep summary ``run`` that are gone or rewritten since it was
    written."""
    folder = Path(run.path).parent
    return sorted(rel for rel, crc in _recorded_runs(run).items() if sealed_crc(folder / rel) != crc)


def _stale_note(run: Run) -> str:
    """A line naming the runs' files of a sweep summary ``run`` that are gone or rewritten since it was written (its
    means are then not those of the files there); "" when none is, or the summary predates recording them."""
    recorded, stale = _recorded_runs(run), _stale_runs(run)
    folder = Path(run.path).parent
    if not stale:
        return ""
    more = f" and {len(stale) - 1} more" if len(stale) > 1 else ""
    return (f"\nNote: {len(stale)} of the {len(recorded)} runs' files this summary was made from are gone or "
            f"rewritten since ({folder / stale[0]}{more}): its means are not those of the files there; `spikecl "
            f"report` of a point's folder computes them from the files as they are")


def _record(run: Run) -> dict:
    """The :func:`summary_record` of a ``sweep`` results file; counts and means it cannot hold (more runs complete
    than planned, a seed count below 1, an ACC outside 0..1) are a one-line :class:`ResultsError`."""
    record = {k: run.attr(k) for k in ("name", "complete", "planned", "split_note")}
    counts = json.loads(run.attrs["counts"]) if "counts" in run.attrs else None     # absent in older files
    record = {**record, **{k: json.loads(run.attr(k)) for k in ("summary", "seeds", "failures")}, "counts": counts,
              "legend": run.attrs.get("legend", ""), "metric_definitions": run.attrs.get("metric_definitions"),
              "eval_split": run.attrs.get("eval_split", ""),
              "points": json.loads(run.attrs["points"]) if "points" in run.attrs else {},       # absent in older
              "chosen": json.loads(run.attrs["chosen"]) if "chosen" in run.attrs else {},       # files
              "unselected": json.loads(run.attrs["unselected"]) if "unselected" in run.attrs else []}
    complete, planned = record["complete"], record["planned"]
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (complete, planned)) \
            or not 0 <= complete <= planned:
        raise ResultsError(f"{run.path} is corrupt: {complete!r} of {planned!r} runs complete")
    seeds = record["seeds"]
    if not isinstance(seeds, dict) or any(not isinstance(n, int) or isinstance(n, bool) or n < 1
                                          for n in seeds.values()):
        raise ResultsError(f"{run.path} is corrupt: its seed counts {seeds!r} are not whole numbers >= 1")
    for label, stats in record["summary"].items() if isinstance(record["summary"], dict) else ():
        acc = stats.get("acc") if isinstance(stats, dict) else None
        if acc is not None and not (isinstance(acc, list) and len(acc) == 2 and isinstance(acc[0], (int, float))
                                    and 0 <= acc[0] <= 1):
            raise ResultsError(f"{run.path} is corrupt: {label}'s ACC {acc!r} is not a mean in 0..1 and a spread")
    points, chosen = record["points"], record["chosen"]
    if not isinstance(points, dict) or any(not (isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                                and isinstance(p[1], dict)) for p in points.values()):
        raise ResultsError(f"{run.path} is corrupt: its points are not [method, settings] pairs")
    if not isinstance(chosen, dict) or any(not isinstance(label, str) for label in chosen.values()):
        raise ResultsError(f"{run.path} is corrupt: its chosen points are not labels")
    if not isinstance(record["unselected"], list) or not all(isinstance(m, str) for m in record["unselected"]):
        raise ResultsError(f"{run.path} is corrupt: its methods without final runs are not names")
    return record


KIND = SweepKind()
