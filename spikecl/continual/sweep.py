"""Experiment sweeps: many runs (methods × seeds × hyperparameter points) derived from one base experiment file.

A sweep file is TOML::

    base = "pmnist5k_demo.toml"        # the experiment every run starts from (relative to the sweep file)
    name = "lr-sweep"                  # results: <output_dir>/<name>/<point>/<method>-seed<seed>.h5
    methods = ["finetune", "hlop"]     # default: the base's strategy.methods
    seeds = [0, 1, 2]                  # default: the base's seeds
    max_retries = 2                    # a failed run is tried again up to this many times
    [set]                              # overrides for every run (dotted keys, as `spikecl run --set`)
    "train.epochs" = 1
    [grid]                             # every combination of these values is one point
    "train.lr" = [0.02, 0.05]
    "strategy.hlop.lr" = [1.0, 1.5]
    # or instead of [grid], an explicit list of points:  points = [{"train.lr" = 0.02}, {"train.lr" = 0.05}]

Every run is an ordinary one-method, one-seed experiment written by the runner to its normal results path, so
``spikecl report`` reads any of them and a sweep that is interrupted and started again skips runs whose results
file exists (and resumes half-trained ones from their checkpoints). This module plans the runs and aggregates the
results; :mod:`spikecl.continual.sweep_ray` executes them on Ray.
"""

from __future__ import annotations

import itertools
import json
import re
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path

from spikecl.config import apply_overrides, experiment_from_dict, from_dict, load_toml, option
from spikecl.errors import ConfigError


@dataclass
class SweepConfig:
    """A sweep file, validated (see the module docstring)."""

    base: str = option("", doc="experiment file every run derives from, relative to the sweep file")
    name: str = option("", doc="results go to <output_dir>/<name>/<point>/; default: the sweep file's stem")
    output_dir: str = option("", doc="default: the base experiment's output_dir")
    methods: list[str] = option([], doc="default: the base experiment's strategy.methods")
    seeds: list[int] = option([], doc="default: the base experiment's seeds")
    set: dict[str, typing.Any] = option({}, doc="overrides applied to every run: {dotted key: value}")
    grid: dict[str, typing.Any] = option({}, doc="{dotted key: [values]}: every combination is one point")
    points: list[dict[str, typing.Any]] = option([], doc="explicit points (instead of grid): [{dotted key: value}]")
    max_retries: int = option(2, low=0, high=100, doc="attempts after the first for a failing run")
    num_cpus: int = option(0, low=0, doc="CPUs of a local Ray instance; 0 = all of this machine's")
    cpus_per_run: float = option(1.0, low=0.01, doc="Ray CPUs reserved by each run")
    fail_attempts: dict[str, typing.Any] = option(
        {}, doc="testing the retry path: {run id: n} makes that run raise on its first n attempts")


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
class Sweep:
    config: SweepConfig
    name: str
    runs: list[SweepRun]


def _literal(key: str, value) -> str:
    """``key=value`` with ``value`` as a TOML literal (numbers, strings, booleans and lists of them)."""
    if isinstance(value, dict):
        raise ConfigError(f"sweep: {key}: a table is not a value; set its keys one by one ('{key}.x' = ...)")
    return f"{key}={json.dumps(value)}"


def point_label(overrides: dict) -> str:
    """A folder name for a point: ``lr=0.05_hlop.lr=1.5`` (``train.``/``strategy.`` prefixes dropped)."""
    if not overrides:
        return "base"
    parts = []
    for key, value in overrides.items():
        short = re.sub(r"^(train|strategy|network|stream|data)\.", "", key)
        parts.append(f"{short}={json.dumps(value) if not isinstance(value, str) else value}")
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", "_".join(parts))


def grid_points(cfg: SweepConfig) -> list[dict]:
    """The points of a sweep: the cartesian product of ``grid``, or ``points``, or one empty point."""
    if cfg.grid and cfg.points:
        raise ConfigError("sweep: give either [grid] or points, not both")
    for key, values in cfg.grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep: grid.{key}: expected a non-empty list of values, got {values!r}")
    if cfg.grid:
        keys = list(cfg.grid)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(cfg.grid[k] for k in keys))]
    return [dict(p) for p in cfg.points] or [{}]


def load_sweep(path: str | Path, overrides: typing.Iterable[str] = ()) -> Sweep:
    """Read and validate a sweep file and plan its runs; every run's config is validated before anything runs.

    ``overrides``: ``key=value`` strings applied to the sweep file itself (e.g. ``max_retries=0``).
    """
    from spikecl.continual.strategies import validate_options

    path = Path(path)
    cfg = from_dict(SweepConfig, apply_overrides(load_toml(path), overrides), "sweep.")
    if not cfg.base:
        raise ConfigError(f"{path}: 'base' (the experiment file the runs derive from) is required")
    base_path = (path.parent / cfg.base) if not Path(cfg.base).is_absolute() else Path(cfg.base)
    base_raw = load_toml(base_path)
    base_raw.setdefault("name", base_path.stem)
    fixed = [_literal(k, v) for k, v in cfg.set.items()]
    if cfg.output_dir:
        fixed.append(_literal("output_dir", cfg.output_dir))
    base_cfg = experiment_from_dict(apply_overrides(base_raw, fixed))
    name = cfg.name or path.stem
    methods = cfg.methods or base_cfg.strategy.methods
    seeds = cfg.seeds or base_cfg.seeds
    runs, seen = [], set()
    for point in grid_points(cfg):
        label = point_label(point)
        if label in seen:
            raise ConfigError(f"sweep: two points share the folder name {label!r}")
        seen.add(label)
        for method in methods:
            for seed in seeds:
                assignments = [*fixed, *(_literal(k, v) for k, v in point.items()),
                               _literal("name", f"{name}/{label}"), _literal("strategy.methods", [method]),
                               _literal("seeds", [seed])]
                raw = apply_overrides(base_raw, assignments)
                run_cfg = experiment_from_dict(raw)
                validate_options(method, run_cfg.strategy.options)
                results = Path(run_cfg.output_dir) / run_cfg.name / f"{method}-seed{seed}.h5"
                runs.append(SweepRun(f"{label}/{method}-seed{seed}", label, method, seed, point, raw, results))
    for run_id, count in cfg.fail_attempts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"sweep.fail_attempts.{run_id}: expected a count >= 0, got {count!r}")
    unknown = sorted(set(cfg.fail_attempts) - {r.id for r in runs})
    if unknown:
        raise ConfigError(f"sweep: fail_attempts names an unknown run {unknown[0]!r}; run ids look like "
                          f"{runs[0].id!r}")
    return Sweep(cfg, name, runs)


def sweep_dir(sweep: Sweep) -> Path:
    """``<output_dir>/<name>``: the folder holding every point's results and the sweep's summary."""
    return sweep.runs[0].results.parent.parent


def labelled(results_by_run: dict[str, object], sweep: Sweep) -> list:
    """Results renamed ``method`` or ``method @ point`` (several points) so reports group them per method and
    point."""
    several = len({r.point for r in sweep.runs}) > 1
    out = []
    for run in sweep.runs:
        if run.id in results_by_run:
            result = results_by_run[run.id]
            out.append(replace(result, method=f"{run.method} @ {run.point}" if several else run.method))
    return out


def summary_text(results: list, sweep: Sweep, failures: dict[str, list[str]]) -> str:
    """The sweep's comparison table (mean ± std over seeds per method and point) and its failures."""
    from collections import Counter

    from spikecl.report import format_summary, method_summary

    lines = [f"sweep {sweep.name}: {len(results)}/{len(sweep.runs)} runs complete"]
    if results:
        lines += ["", format_summary(method_summary(results), Counter(r.method for r in results))]
    for run_id, messages in failures.items():
        lines.append(f"FAILED {run_id}: {len(messages)} attempt(s); last error: {messages[-1]}")
    return "\n".join(lines)
