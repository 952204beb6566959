"""A Sparsey experiment's results file of one seed: what it records, writing it, and reading it back checked for
the summary and the plots (:func:`outcome`; several seeds of one experiment: :func:`seed_outcomes`).

Results schema (``kind = "sparsey"``, version 1)::

    /                        attrs: schema, schema_version, kind = "sparsey", seed, eval_split, n_train (items
                             stored), cue_items (items cued with degraded inputs), pair_items (test items the
                             overlap pairs are drawn from: eval.pair_items or all there are)
    /config, /environment    attrs: json
    /metrics                 attrs: one float per metric (accuracies and recall are fractions, times in seconds):
                             <coder>_acc_<readout>, spearman_<coder>, cue_half_removed_<coder>,
                             sequence_recall_<sparsey|flyhash>, spiking_learn_match, spiking_code_match, ...
    /curves/capacity_items   int64 [P]     items stored at each capacity point
    /curves/capacity_<m>     float64 [P]   recall measure m at that point over the macs that learned each item
                                           (exact, overlap, identity, mac_exact) and the share of active macs
                                           that learned (learning; :func:`~spikecl.sdr.measures.capacity_curve`)
    /curves/random_capacity_<m>   the same for one whole-input mac storing random patterns (``_items`` int64)
    /curves/cue_levels       float64 [L]   fraction of active inputs removed or flipped
    /curves/cue_<how>_<m>    float64 [L]   recall measure m of each coder under that degradation
    /extra/pairs_input_overlap, /extra/pairs_code_overlap_<coder>   int64 [P]
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from spikecl.data.datasets import registered_crc
from spikecl.environment import environment
from spikecl.errors import ConfigError, ResultsError
from spikecl.experiment_kind import check_seeds
from spikecl.io import Run, write_run
from spikecl.sdr.sdr import check_int
from spikecl.sdr.table import format_table

#: coders whose recall from a cue with half its active inputs removed is a metric (``cue_half_removed_<coder>``)
CUE_SUMMARY_CODERS = ("sparsey", "flyhash", "pooler")


#: the metrics a setting of ``eval`` adds to a results file where it asks for them
#: (:func:`~spikecl.sdr.experiment.run_seed` writes them): ``spiking_items`` > 0, ``sequences`` > 0, 0.5 in
#: ``cue_levels``
IMPLIED_METRICS = {"eval.spiking_items": ("spiking_learn_match", "spiking_code_match"),
                   "eval.sequences": ("sequence_recall_sparsey", "sequence_recall_flyhash"),
                   "eval.cue_levels": tuple(f"cue_half_removed_{name}" for name in CUE_SUMMARY_CODERS)}


#: how the recall measures score, recorded beside the config so that a file scored otherwise (before 2026-12-04 the
#: lowest stored index won a tie among the nearest codes) neither resumes nor averages as a seed of today's runs
SCORING = {"recall_ties": "a tie among the k nearest stored codes counts 1/k"}


def recorded_config(cfg) -> dict:
    """What a results file records as its config: ``cfg`` (a
    :class:`~spikecl.sdr.experiment.SparseyExperimentConfig`), the :data:`SCORING` rules and, for a registered dataset,
    the CRC of what its loader returned (:func:`~spikecl.data.datasets.registered_crc`: its name alone does not say
    which data it gave)."""
    crc = registered_crc(cfg.data.dataset, cfg.data.test_split_seed)
    return {**asdict(cfg), **SCORING, **({"data_crc": crc} if crc is not None else {})}


def write_sparsey_results(path: Path, cfg, seed: int, out: dict, overwrite: bool) -> Path:
    """Write one seed's results (``out`` of :func:`~spikecl.sdr.experiment.run_seed`, config ``cfg``) atomically
    (schema in the module docstring)."""
    curves = {"capacity_items": out["capacity"]["items"],
              **{f"capacity_{k}": v for k, v in out["capacity"].items() if k != "items"},
              **{f"random_capacity_{k}": v for k, v in out["random_capacity"].items()},
              "cue_levels": out["cue_levels"], **{f"cue_{k}": v for k, v in out["cues"].items()}}
    first = next(iter(out["similarity"].values()))
    extra = {"pairs_input_overlap": first[0],
             **{f"pairs_code_overlap_{name.replace('-', '')}": co for name, (_, co, _) in out["similarity"].items()}}
    env = {**environment(), **({"data_crc": out["data_crc"]} if out.get("data_crc") is not None else {})}
    return write_run(path, "sparsey", recorded_config(cfg), out["metrics"], {"curves": curves, "extra": extra},
                     {"seed": seed, "eval_split": cfg.data.eval_split, "n_train": out["n_train"],
                      "cue_items": out["cue_items"], "pair_items": out["pair_items"]}, env, overwrite=overwrite)


#: what the plots read of a results file's curves: (group, its x axis, the curves over it)
PLOTTED = (("capacity", "capacity_items", [f"capacity_{m}" for m in ("exact", "mac_exact", "identity", "overlap")]),
           ("random_capacity", "random_capacity_items",
            [f"random_capacity_{m}" for m in ("exact", "identity", "overlap")]),
           ("cues", "cue_levels", [f"cue_{how}_{name}_identity" for how in ("removed", "flipped")
                                   for name in ("sparsey", "flyhash", "pooler")]))


def _damaged(run: Run, what: str) -> ResultsError:
    return ResultsError(f"{run.path} is corrupt or incomplete ({what} in a sparsey results file)")


def _matching(run: Run, group: str, table, axis: str, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The 1-D numeric arrays ``table[axis]`` and ``table[name]`` (``names``), each as long as the axis; a missing or
    damaged entry is a one-line :class:`ResultsError` naming it."""
    if not isinstance(table, dict):
        raise _damaged(run, f"'{group}' is not a group")
    out: dict[str, np.ndarray] = {}
    for name in (axis, *names):
        if name not in table:
            raise _damaged(run, f"no '{group}/{name}'")
        value = np.asarray(table[name])
        if value.ndim != 1 or value.dtype.kind not in "biuf":
            raise _damaged(run, f"'{group}/{name}' is not a 1-D numeric array")
        if len(value) != len(out.get(axis, value)):
            raise _damaged(run, f"'{group}/{name}' has {len(value)} values but '{group}/{axis}' {len(out[axis])}")
        if name == axis and not (np.all(np.isfinite(value)) and (not axis.endswith("_items") or np.all(value >= 1))):
            raise _damaged(run, f"'{group}/{name}', a plot's axis, holds "
                                f"{'NaN or infinity' if not np.all(np.isfinite(value)) else 'a count below 1'}")
        out[name] = value
    return out


#: what the names of metrics that are fractions of items hold (accuracies, codes equal, items recalled)
FRACTION_METRICS = ("_acc_", "_match", "cue_half_removed_", "sequence_recall_")


def outcome(run: Run) -> dict:
    """What :func:`~spikecl.sdr.plots.write_plots` and :func:`~spikecl.sdr.table.format_table` read, rebuilt from a
    results file of one seed and checked (a missing entry, a curve whose length differs from its axis: a one-line
    :class:`ResultsError`)."""
    try:
        return _outcome(run)
    except KeyError as exc:
        raise _damaged(run, f"no {exc.args[0]!r}") from None


#: the coders in the order the printed comparison table lists them (a results file keeps its groups sorted by name)
SIMILARITY_ORDER = ("sparsey", "pooler", "flyhash", "macactivity")


def _outcome(run: Run) -> dict:
    curves, metrics = run.array("curves"), run.metrics
    pairs = run.array("extra")
    codes = _unprefixed(pairs, "pairs_code_overlap_") if isinstance(pairs, dict) else {}
    if not codes:
        raise _damaged(run, "no 'extra/pairs_code_overlap_<coder>'")
    pairs = _matching(run, "extra", pairs, "pairs_input_overlap", [f"pairs_code_overlap_{n}" for n in codes])
    order = [name for name in SIMILARITY_ORDER if name in codes] + sorted(set(codes) - set(SIMILARITY_ORDER))
    similarity = {name: (pairs["pairs_input_overlap"], pairs[f"pairs_code_overlap_{name}"],
                         metrics[f"spearman_{name}"]) for name in order}    # as the table lists them
    read = {group: _unprefixed(_matching(run, "curves", curves, axis, names), prefix)
            for (group, axis, names), prefix in zip(PLOTTED, ("capacity_", "random_capacity_", "cue_"))}
    if "capacity_learning" in curves:          # files from before the capacity counted learning macs only lack it
        read["capacity"].update(_unprefixed(_matching(run, "curves", curves, "capacity_items",
                                                      ["capacity_learning"]), "capacity_"))
    for key, name in _implied_metrics(run):
        if name not in metrics:
            raise _damaged(run, f"no metric '{name}' for its config's {key} = {_setting(run, key)}")
    split = run.attr("eval_split")
    if not isinstance(split, str) or split not in ("test", "validation"):
        raise _damaged(run, f"attribute 'eval_split' is {split!r}, not 'test' or 'validation'")
    fraction = next((name for name, value in metrics.items()
                     if any(part in name for part in FRACTION_METRICS) and not 0 <= value <= 1), None)   # NaN too
    if fraction is not None:
        raise _damaged(run, f"metric '{fraction}' is {metrics[fraction]!r}, not a fraction in 0..1")
    try:                                       # what its table reads: a missing metric named, not a KeyError
        format_table(metrics, _count(run, "config eval.knn_k", _setting(run, "eval.knn_k"), 1), 1, split)
    except KeyError as exc:
        raise _damaged(run, f"no metric {exc.args[0]!r}") from None
    return {"metrics": metrics, "similarity": similarity, "cue_levels": read["cues"].pop("levels"),
            "capacity": read["capacity"], "random_capacity": read["random_capacity"], "cues": read["cues"],
            "knn_k": _count(run, "config eval.knn_k", _setting(run, "eval.knn_k"), 1),
            "n_train": _count(run, "attribute 'n_train'", run.attr("n_train"), 1),
            "cue_items": _count(run, "attribute 'cue_items'", run.attr("cue_items"), 1),
            "seed": _count(run, "attribute 'seed'", run.attr("seed"), 0), "eval_split": split}


def _setting(run: Run, key: str):
    """The dotted ``key`` of the config ``run`` records; a missing one is a one-line :class:`ResultsError`."""
    node = run.config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise _damaged(run, f"no config {key}")
        node = node[part]
    return node


def _count(run: Run, what: str, value, low: int) -> int:
    """``value`` (``what`` of ``run``) as an int >= ``low``; anything else is a one-line :class:`ResultsError`."""
    try:
        return check_int(value, what, low)
    except ConfigError as exc:
        raise _damaged(run, str(exc)) from None


def _implied_metrics(run: Run) -> list[tuple[str, str]]:
    """``(key, metric)`` of every metric of :data:`IMPLIED_METRICS` that the config ``run`` records asks for."""
    levels = _setting(run, "eval.cue_levels")
    if not isinstance(levels, list):
        raise _damaged(run, f"config eval.cue_levels is {levels!r}, not a list")
    asks = {"eval.cue_levels": 0.5 in levels,
            **{key: _count(run, f"config {key}", _setting(run, key), 0) > 0
               for key in ("eval.spiking_items", "eval.sequences")}}
    return [(key, name) for key, names in IMPLIED_METRICS.items() if asks[key] for name in names]


def _unprefixed(table: dict, prefix: str) -> dict:
    """The entries of ``table`` named ``<prefix><name>``, keyed by ``name``."""
    return {k[len(prefix):]: v for k, v in table.items() if k.startswith(prefix)}


def seed_outcomes(runs: Sequence[Run]) -> list[dict]:
    """The :func:`outcome` of each of ``runs``, which must be seeds of one experiment: a one-line
    :class:`ResultsError` when two were made with different settings (naming the first key that differs,
    ``SEED_ROW_IGNORES`` aside) or hold the same seed, never averaged or plotted as if they were seeds."""
    outs = [outcome(run) for run in runs]
    seeds = {id(run): out["seed"] for run, out in zip(runs, outs)}
    check_seeds(runs, "sparsey runs", "sparsey", seed_of=lambda run: seeds[id(run)])
    return outs


def test_splits_note(runs: Sequence[Run], outs: Sequence[dict]) -> str:
    """``""``, or where the seeds were evaluated on different train/test splits (files recorded with
    ``data.vary_split`` before ``data.test_split_seed`` existed drew one per seed) a note naming each seed's."""
    drawn = {}
    for run, out in zip(runs, outs):
        drawn.setdefault((run.config.get("data") or {}).get("test_split_seed", 0), []).append(str(out["seed"]))
    if len(drawn) < 2:
        return ""
    return "; DIFFERENT test splits (data.test_split_seed " + "; ".join(
        f"{split}: seed {', '.join(seeds)}" for split, seeds in drawn.items()) + ")"
