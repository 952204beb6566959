"""The ``sparsey`` experiment kind: one-pass Sparsey learning of an image dataset beside a k-WTA spatial pooler.

Per seed it stores the training images once (single-trial, one item at a time, timed on one thread), classifies the
evaluation images from the codes (class votes learned in the same pass; k-NN on the stored codes; the same k-NN
readouts on a fixed fly-hash code of the same size and sparsity and on the pixels), and measures
similarity preservation (Spearman ρ of code vs input overlap, with a fly-hash control of the same size and
sparsity), a capacity curve (recall vs items stored), recall from degraded cues and sequence recall (each beside
the fly-hash control) and, with ``eval.spiking_items``, whether the spiking realisation stores and recognises
items with the coder's codes. Results: one results file per seed ``<output_dir>/<name>/sparsey_seed<seed>.h5``
(:func:`spikecl.io.write_run`; existing files, ``--resume`` and ``--overwrite`` as for every kind, see
:mod:`spikecl.experiment_kind`) and PNG plots beside it. The evaluation images follow the validation protocol of every
kind (``[data]``): ``validation`` holds a fraction of every class's training images out of storage,
``eval_split = "validation"`` evaluates on them without reading the test split (for choosing settings), and
``vary_split`` gives every seed its own validation split (the test split is one for every seed).

Results schema (``kind = "sparsey"``, version 1)::

    /                        attrs: schema, schema_version, kind = "sparsey", seed, eval_split, n_train (items
                             stored), cue_items (items cued with degraded inputs)
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

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from spikecl.config import (DATA_DIR_RULE, KIND_DOC, NAME_DOC, ONLY_FOR, DataConfig, RunHeader, check_applies,
                            check_data_split)
from spikecl.data.codes import MAX_OUTPUTS
from spikecl.data.datasets import IMAGE_SHAPES, known_image_shape, registered_crc
from spikecl.errors import ConfigError, ResultsError
from spikecl.experiment_kind import Job, JobOptions, Kind, check_seeds, load
from spikecl.io import Run, write_run
from spikecl.options import from_dict, option
from spikecl.recorded import RECORDED_RULES
from spikecl.sdr.baselines import FlyHash, FlyHashConfig, SpatialPoolerConfig
from spikecl.sdr.measures import (Coded, capacity_curve, classify, cue_curves, mac_activity_code, random_like,
                                  random_pattern_mac, run_pooler, run_sparsey, sequence_recall, similarity)
from spikecl.sdr.readout import knn_predict
from spikecl.sdr.sdr import check_int, code_statistics
from spikecl.sdr.sparsey import MAX_CELLS_PER_CM, MAX_CMS, SparseyCoder, SparseyConfig, code_size

#: Rinkus (arXiv 1710.07829): 2-level model, 16x24 binarised skeletonised MNIST, 200 training images per class.
PUBLISHED = {"accuracy": 0.91, "learn_seconds": 220.0, "train_items": 2000}
#: spikecl's own datasets of one-channel images, which the coder reads
GREYSCALE = tuple(name for name, (channels, *_) in IMAGE_SHAPES.items() if channels == 1)


@dataclass
class EvalConfig:
    """What is measured beside test accuracy."""

    knn_k: int = option(5, low=1, doc="neighbours of the k-NN readout on codes")
    n_pairs: int = option(5000, low=10, high=10 ** 7,
                          doc="item pairs for the code-vs-input overlap Spearman correlation")
    pair_items: int = option(1000, low=3, doc="test items the pairs are drawn from (at least 3: two items make one "
                                              "pair, whose correlation is undefined)")
    capacity_points: list[int] = option([100, 250, 500, 1000, 2000, 4000], low=1, nonempty=True,
                                        doc="items stored at each point of the capacity curve")
    random_capacity_points: list[int] = option([10, 25, 50, 100, 250, 500, 1000], low=1, nonempty=True,
                                               doc="items stored at each point of the capacity curve of one "
                                                   "whole-input mac (the coder's Q and K) on random patterns")
    cue_items: int = option(200, low=1, doc="stored items cued with degraded inputs")
    cue_levels: list[float] = option([0.0, 0.25, 0.5, 0.75], low=0.0, high=1.0, nonempty=True,
                                     doc="fractions of active inputs removed or flipped")
    sequences: int = option(20, low=0, doc="sequences of training images stored for the sequence-recall measure "
                                            "(0 = skip)")
    sequence_length: int = option(8, low=3, doc="frames per sequence (recalled from the first two)")
    sequence_cms: int = option(32, low=1, high=MAX_CMS, doc="Q of the whole-input sequence mac (the fly-hash "
                                                              "control has the same size and sparsity)")
    sequence_cells_per_cm: int = option(16, low=2, high=MAX_CELLS_PER_CM, doc="K of the whole-input sequence mac")
    spiking_items: int = option(100, low=0, doc="training items stored again, and test items recognised again, by "
                                                 "the LIF winner-take-all groups with spike-driven learning "
                                                 "(needs torch and snnTorch; 0 = skip)")
    train_items: int = option(0, low=0, doc="store only the first N training items (0 = all)")
    test_items: int = option(0, low=0, doc="classify only the first N test items (0 = all)")


@dataclass
class SparseyExperimentConfig(RunHeader):
    """An experiment file of kind ``"sparsey"`` (``device``: where the spiking check runs; the coder is numpy)."""

    kind: str = option("sparsey", choices=("sparsey",), doc=KIND_DOC)
    name: str = option("sparsey", file_name=True, doc=NAME_DOC)
    data: DataConfig = field(default_factory=DataConfig)
    coder: SparseyConfig = field(default_factory=SparseyConfig)
    baseline: SpatialPoolerConfig = field(default_factory=SpatialPoolerConfig)
    flyhash: FlyHashConfig = field(default_factory=FlyHashConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> SparseyExperimentConfig:
    """Load, override and validate a ``sparsey`` experiment file (name defaults to the file's stem)."""
    return load(path, overrides, "sparsey")[1]


#: keys the run sets itself (so that every coder of a seed is paired), with what decides them
RUN_DECIDES = {"coder.seed": "the run's seed (seeds)", "baseline.seed": "the run's seed (seeds)",
               "flyhash.seed": "the run's seed (seeds)", "flyhash.n_outputs": "Sparsey's code size",
               "flyhash.sparsity": "Sparsey's mean active bits / code size"}


def refuse_run_decided(raw: dict) -> None:
    """A one-line ConfigError for a key of :data:`RUN_DECIDES` given in an experiment file (it would be ignored)."""
    for key, what in RUN_DECIDES.items():
        table, name = key.split(".")
        if isinstance(raw.get(table), dict) and name in raw[table]:
            raise ConfigError(f"{key}: the sparsey kind sets it from {what}, so that the coders of a seed are "
                              "compared on equal terms; remove it")


# -- the run -------------------------------------------------------------------------------------------------
def capacity_points(ev: EvalConfig, n_train: int) -> tuple[list[int], str | None]:
    """The capacity points at most ``n_train`` (the training items stored) and a note naming those dropped (None if
    none is); none left is a one-line ConfigError."""
    kept = [p for p in ev.capacity_points if p <= n_train]
    if not kept:
        raise ConfigError(f"eval.capacity_points: every point exceeds the {n_train} training items stored "
                          "(eval.train_items or the data set's size)")
    dropped = [p for p in ev.capacity_points if p > n_train]
    note = (f"capacity point{'s' * (len(dropped) > 1)} {', '.join(map(str, dropped))} dropped: only {n_train} "
            "training items are stored" if dropped else None)
    return kept, note


def check_dataset(cfg: SparseyExperimentConfig) -> None:
    """A one-line ConfigError unless ``data.dataset`` holds one-channel images (spikecl's own or registered with
    ``--plugin``: :func:`spikecl.data.register_dataset`) of ``coder.image_shape``."""
    name, want = cfg.data.dataset, list(cfg.coder.image_shape)
    shape = known_image_shape(name)
    if shape is None or shape[0] != 1:
        what = "not an image dataset" if shape is None else f"{shape[0]}-channel images"
        raise ConfigError(f"data.dataset: {name!r} is {'' if shape is None else 'of '}{what}; the coder reads "
                          f"one-channel images ({', '.join(GREYSCALE)}, or a dataset of one's own registered by a "
                          "--plugin)")
    if list(shape[1:]) != want:
        raise ConfigError(f"coder.image_shape: {want} but {name} images are {shape[1]}x{shape[2]} (H x W); set "
                          f"coder.image_shape = {list(shape[1:])}")


def check_code_sizes(cfg: SparseyExperimentConfig) -> None:
    """A one-line ConfigError, at load, for a Sparsey code or sequence mac larger than the fly-hash control that
    matches its size can be (:data:`~spikecl.data.codes.MAX_OUTPUTS` bits), rather than after the learning."""
    sizes = {"the coder's code (level-1 macs x coder.mac.n_cms x coder.mac.cells_per_cm, + level 2)":
             code_size(cfg.coder)}
    if cfg.eval.sequences:
        sizes["the sequence mac (eval.sequence_cms x eval.sequence_cells_per_cm)"] = \
            cfg.eval.sequence_cms * cfg.eval.sequence_cells_per_cm
    for what, bits in sizes.items():
        if bits > MAX_OUTPUTS:
            raise ConfigError(f"{what} has {bits} bits, more than the {MAX_OUTPUTS} of the fly-hash control of "
                              "its size; use fewer or smaller macs")


def check_train_items(ev: EvalConfig, n_train: int) -> None:
    """What needs ``n_train`` training items: capacity points (one must fit), sequences and the k-NN readout; a
    one-line ConfigError where they do not fit."""
    capacity_points(ev, n_train)
    frames = ev.sequences * ev.sequence_length
    if frames > n_train:
        raise ConfigError(f"eval.sequences × eval.sequence_length = {frames} frames, but only {n_train} training "
                          "items")
    if ev.knn_k > n_train:
        raise ConfigError(f"eval.knn_k: {ev.knn_k} neighbours, but only {n_train} training items are stored")


#: options of the sparsey kind that only some settings read: (table, key) -> (applies(cfg), where)
SPARSEY_ONLY_FOR = {
    **{("coder", key): (lambda cfg: cfg.coder.layout == "grid", 'coder.layout = "grid"') for key in ("grid", "patch")},
    ("coder", "ensemble"): (lambda cfg: cfg.coder.layout == "grid" and cfg.coder.n_macs > 1,
                            'coder.layout = "grid" with coder.n_macs > 1'),
    **{("coder", key): (lambda cfg: cfg.coder.two_level, "coder.two_level = true")
       for key in ("top_grid", "top_patch")},
    **{("eval", key): (lambda cfg: cfg.eval.sequences > 0, "sequence recall (eval.sequences > 0)")
       for key in ("sequence_length", "sequence_cms", "sequence_cells_per_cm")},
}


#: as recorded: the level-2 mac's table is read only with two_level = true too. It is not refused at load, where
#: models/sparsey_mnist5k.toml keeps it for ``--set coder.two_level=true``, but a run that did not read it resumes
#: and reports alike whatever it held
RECORDED_RULES["sparsey"] = ({**SPARSEY_ONLY_FOR, ("coder", "top"): (lambda cfg: cfg.coder.two_level,
                                                                    "coder.two_level = true")},
                             SparseyExperimentConfig)


def check_test_items(n_test: int, what: str = "eval.test_items") -> None:
    """The similarity pairs are drawn from the evaluation items: fewer than three (``what`` gives them; two make one
    pair, whose rank correlation is undefined) is a one-line ConfigError, before any learning."""
    if n_test < 3:
        raise ConfigError(f"{what}: {n_test} evaluation item{'s' * (n_test != 1)}, but the code-vs-input overlap "
                          "pairs need at least 3")


def seed_items(cfg: SparseyExperimentConfig, coder_cfg: SparseyConfig, seed: int):
    """The seed's binarised items: ``(x_train, y_train, x_test, y_test, n_classes)``, images flattened to bool
    [N, pixels] (``coder.threshold``), the evaluation items from the validation or test split (``data``)."""
    from spikecl.data.datasets import load_dataset, training_and_evaluation
    from spikecl.data.streams import data_split_seed

    d = cfg.data
    split_seed = data_split_seed(d, seed)
    data = load_dataset(d.dataset, d.data_dir or None, seed=d.test_split_seed, excludes=d.test_excludes)
    sources = training_and_evaluation(data, d.validation, d.eval_split, split_seed)
    (x_train, y_train), (x_test, y_test) = sources["train"], sources["test"]
    binary = lambda a, n: a.reshape(len(a), -1)[: n or None] > coder_cfg.threshold      # noqa: E731
    x_train, x_test = binary(x_train, cfg.eval.train_items), binary(x_test, cfg.eval.test_items)
    if not x_train.any():
        raise ConfigError(f"coder.threshold: {coder_cfg.threshold:g} leaves every training image of "
                          f"{cfg.data.dataset} blank (a pixel, in [0, 1], is active above it); lower it")
    return x_train, y_train[: len(x_train)], x_test, y_test[: len(x_test)], data.n_classes


def coder_metrics(name: str, coded: Coded, y_train: np.ndarray, y_test: np.ndarray, k: int,
                  n_classes: int) -> dict[str, float]:
    """``<name>_…`` metrics of one coder: readout accuracies, learning time (s, ms per item), code size and
    statistics, mean familiarity (Sparsey)."""
    metrics = {f"{name}_{key}": value for key, value in classify(coded, y_train, y_test, k, n_classes).items()}
    metrics[f"{name}_learn_seconds"] = coded.learn_seconds
    metrics[f"{name}_learn_ms_per_item"] = 1000 * coded.learn_seconds / len(y_train)
    metrics[f"{name}_code_bits"] = float(coded.train.shape[1])
    metrics[f"{name}_active_bits"] = float(coded.test.sum(axis=1).mean())
    metrics.update({f"{name}_code_{key}": value for key, value in code_statistics(coded.test).items()})
    if coded.familiarity is not None:
        metrics[f"{name}_mean_familiarity"] = float(coded.familiarity.mean())
    return metrics


def flyhash_control(cfg: SparseyExperimentConfig, sparsey: Coded, x_train: np.ndarray, x_test: np.ndarray,
                    seed: int) -> Coded:
    """A fixed fly-hash code with Sparsey's code size and mean number of active bits (no learning)."""
    n_bits, active = sparsey.test.shape[1], max(1, int(round(sparsey.test.sum(axis=1).mean())))
    fly = FlyHash(FlyHashConfig(**{**asdict(cfg.flyhash), "n_outputs": n_bits, "sparsity": active / n_bits,
                                   "seed": seed}), x_train.shape[1])
    fly_train = fly.encode(x_train)
    return Coded(fly_train, fly_train, fly.encode(x_test), 0.0, fly)


#: coders whose recall from a cue with half its active inputs removed is a metric (``cue_half_removed_<coder>``)
CUE_SUMMARY_CODERS = ("sparsey", "flyhash", "pooler")

#: the metrics a setting of ``eval`` adds to a results file where it asks for them (:func:`run_seed` writes them):
#: ``spiking_items`` > 0, ``sequences`` > 0, 0.5 in ``cue_levels``
IMPLIED_METRICS = {"eval.spiking_items": ("spiking_learn_match", "spiking_code_match"),
                   "eval.sequences": ("sequence_recall_sparsey", "sequence_recall_flyhash"),
                   "eval.cue_levels": tuple(f"cue_half_removed_{name}" for name in CUE_SUMMARY_CODERS)}


def run_seed(cfg: SparseyExperimentConfig, seed: int, progress: bool, device: str = "cpu") -> dict:
    """Everything measured for one seed: metrics, curves and pair overlaps (plain dicts of numbers / arrays);
    ``device``: where the spiking check runs (``"cpu"`` or ``"cuda"``)."""
    ev = cfg.eval
    coder_cfg = SparseyConfig.from_mapping({**asdict(cfg.coder), "seed": seed})
    x_train, y_train, x_test, y_test, n_classes = seed_items(cfg, coder_cfg, seed)
    check_train_items(ev, len(x_train))
    check_test_items(len(x_test), f"{cfg.data.dataset}'s {cfg.data.eval_split} split (eval.test_items)")
    points, note = capacity_points(ev, len(x_train))

    sparsey = run_sparsey(coder_cfg, x_train, x_test, progress)
    pooler = run_pooler(SpatialPoolerConfig(**{**asdict(cfg.baseline), "seed": seed}), x_train, x_test, progress)
    metrics = {**coder_metrics("sparsey", sparsey, y_train, y_test, ev.knn_k, n_classes),
               **coder_metrics("pooler", pooler, y_train, y_test, ev.knn_k, n_classes)}
    for k in (1, ev.knn_k):
        predicted = knn_predict(x_train, y_train, x_test, k, n_classes)
        metrics[f"pixels_acc_knn{k}"] = float((predicted == y_test).mean())
    fly_coded = flyhash_control(cfg, sparsey, x_train, x_test, seed)
    for key in ("acc_knn1", f"acc_knn{ev.knn_k}"):
        metrics[f"flyhash_{key}"] = classify(fly_coded, y_train, y_test, ev.knn_k, n_classes)[key]
    pairs_x = x_test[: ev.pair_items]
    sim = similarity(pairs_x, {"sparsey": sparsey.test[: ev.pair_items], "fly-hash": fly_coded.model.encode(pairs_x),
                               "pooler": pooler.test[: ev.pair_items],
                               "mac-activity": mac_activity_code(sparsey.model, sparsey.test[: ev.pair_items])},
                     ev.n_pairs, seed)
    for name, (_, _, rho) in sim.items():
        metrics[f"spearman_{name.replace('-', '')}"] = rho

    if ev.spiking_items:
        metrics.update(spiking_match(coder_cfg, sparsey, x_train[: ev.spiking_items], x_test[: ev.spiking_items],
                                     device))
    capacity = capacity_curve(coder_cfg, x_train, points)
    patterns = random_like(x_train, max(ev.random_capacity_points), seed)
    random_capacity = capacity_curve(random_pattern_mac(coder_cfg), patterns, ev.random_capacity_points)
    metrics["random_capacity_exact_items"] = float(max(
        [n for n, e in zip(random_capacity["items"], random_capacity["exact"]) if e == 1.0], default=0))
    cues = cue_curves({"sparsey": sparsey, "pooler": pooler, "flyhash": fly_coded}, x_train, ev.cue_levels,
                      ev.cue_items, seed)
    if 0.5 in ev.cue_levels:                            # the degraded-cue summary: half the active pixels removed
        for name in CUE_SUMMARY_CODERS:
            metrics[f"cue_half_removed_{name}"] = float(cues[f"removed_{name}_identity"][ev.cue_levels.index(0.5)])
    if ev.sequences:
        metrics.update(sequence_recall(coder_cfg, ev, cfg.flyhash, x_train, seed))
    return {"metrics": metrics, "similarity": sim, "capacity": capacity, "random_capacity": random_capacity,
            "cues": cues, "cue_levels": np.asarray(ev.cue_levels, np.float64), "n_train": len(x_train),
            "cue_items": min(ev.cue_items, len(x_train)), "note": note}


def spiking_match(cfg: SparseyConfig, sparsey: Coded, x_learn: np.ndarray, x_test: np.ndarray,
                  device: str) -> dict[str, float]:
    """Fractions of items whose codes from LIF winner-take-all groups equal the coder's: ``spiking_learn_match``
    (a fresh coder stores ``x_learn`` by spikes, beside a fresh vectorised one) and ``spiking_code_match``
    (recognition of ``x_test`` with the trained coder, both from the same state of its recognition draws)."""
    from spikecl.sdr.spiking import SpikingSparsey, SpikingWTAConfig

    wta = SpikingWTAConfig(device=device)
    stored = SpikingSparsey(SparseyCoder(cfg), wta).learn_all(x_learn)
    expected, _ = SparseyCoder(cfg).learn_all(x_learn)
    draws = sparsey.model.level1.recognition_rng.bit_generator    # recognition = "sample": the same draws for both
    state = draws.state
    coded, _ = sparsey.model.encode(x_test)
    draws.state = state
    recognised = SpikingSparsey(sparsey.model, wta).encode(x_test)
    draws.state = state                 # the check leaves the draws as it found them: later measures do not see it
    return dict(zip(IMPLIED_METRICS["eval.spiking_items"], (float((stored == expected).all(axis=1).mean()),
                                                            float((recognised == coded).all(axis=1).mean()))))


#: how the recall measures score, recorded beside the config so that a file scored otherwise (before 2026-12-04 the
#: lowest stored index won a tie among the nearest codes) neither resumes nor averages as a seed of today's runs
SCORING = {"recall_ties": "a tie among the k nearest stored codes counts 1/k"}


def recorded_config(cfg: SparseyExperimentConfig) -> dict:
    """What a results file records as its config: ``cfg``, the :data:`SCORING` rules and, for a registered dataset,
    the CRC of what its loader returned (:func:`~spikecl.data.datasets.registered_crc`: its name alone does not say
    which data it gave)."""
    crc = registered_crc(cfg.data.dataset, cfg.data.test_split_seed)
    return {**asdict(cfg), **SCORING, **({"data_crc": crc} if crc is not None else {})}


def write_sparsey_results(path: Path, cfg: SparseyExperimentConfig, seed: int, out: dict, overwrite: bool) -> Path:
    """Write one seed's results atomically (schema in the module docstring)."""
    curves = {"capacity_items": out["capacity"]["items"],
              **{f"capacity_{k}": v for k, v in out["capacity"].items() if k != "items"},
              **{f"random_capacity_{k}": v for k, v in out["random_capacity"].items()},
              "cue_levels": out["cue_levels"], **{f"cue_{k}": v for k, v in out["cues"].items()}}
    first = next(iter(out["similarity"].values()))
    extra = {"pairs_input_overlap": first[0],
             **{f"pairs_code_overlap_{name.replace('-', '')}": co for name, (_, co, _) in out["similarity"].items()}}
    return write_run(path, "sparsey", recorded_config(cfg), out["metrics"], {"curves": curves, "extra": extra},
                     {"seed": seed, "eval_split": cfg.data.eval_split, "n_train": out["n_train"],
                      "cue_items": out["cue_items"]}, overwrite=overwrite)


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
        out[name] = value
    return out


def outcome(run: Run) -> dict:
    """What :func:`write_plots` and :func:`format_table` read, rebuilt from a results file of one seed and checked
    (a missing entry, a curve whose length differs from its axis: a one-line :class:`ResultsError`)."""
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


#: the capacity plots' y axis: recalls are % of the items stored, the overlap and active macs % of a code's
CAPACITY_PERCENT = "% (recalls: of items; overlap, active macs: of a code)"


#: the plots each seed of a Sparsey experiment draws, ``<name>_seed<seed>.png``
SEED_PLOTS = ("overlap_scatter", "capacity", "capacity_random", "cue_recall")


def seed_plot(folder: Path, name: str, seed: int) -> Path:
    """Where seed ``seed``'s plot ``name`` (one of :data:`SEED_PLOTS`) goes in ``folder``."""
    return folder / f"{name}_seed{seed}.png"


def write_plots(folder: Path, seed: int, out: dict) -> list[Path]:
    from spikecl.sdr.plots import CODER_TITLES, plot_lines, plot_overlap_scatter

    cap, levels = out["capacity"], out["cue_levels"] * 100
    paths = [plot_overlap_scatter(out["similarity"], seed_plot(folder, "overlap_scatter", seed)),
             plot_lines(cap["items"], {"exact code (the macs that learned it)": cap["exact"],
                                       "exact code per learning mac": cap["mac_exact"],
                                       "nearest stored code is its own": cap["identity"],
                                       "mean code overlap": cap["overlap"],
                                       **({"active macs that learned it (not frozen)": cap["learning"]}
                                          if "learning" in cap else {})},
                        seed_plot(folder, "capacity", seed), xlabel="items stored", ylabel=CAPACITY_PERCENT,
                        title="Sparsey: recall of stored items cued by themselves")]
    rnd = out["random_capacity"]
    paths.append(plot_lines(rnd["items"], {"exact code": rnd["exact"], "nearest stored code is its own":
                                           rnd["identity"], "mean code overlap": rnd["overlap"]},
                            seed_plot(folder, "capacity_random", seed), xlabel="random patterns stored",
                            ylabel=CAPACITY_PERCENT, title="one mac (same Q, K): recall of random patterns", logx=True))
    lines = {f"{CODER_TITLES[name]}, inputs {how}": out["cues"][f"{how}_{name}_identity"]
             for how in ("removed", "flipped") for name in SIMILARITY_ORDER[:3]}
    paths.append(plot_lines(levels, lines, seed_plot(folder, "cue_recall", seed),
                            xlabel="active inputs removed or flipped (%)", ylabel="stored item recalled (%)",
                            title=f"recall among {out['cue_items']} stored items from degraded cues"))
    return paths


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


def _cell(values: Sequence[float], digits: int, scale: float = 1.0) -> str:
    """One value, or the mean ± sample std of several (one per seed), scaled and rounded to ``digits``."""
    v = scale * np.asarray(values, np.float64)
    return f"{v[0]:.{digits}f}" if len(v) == 1 else f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def comparison_rows(metrics: Sequence[dict[str, float]], k: int) -> list[str]:
    """The comparison table's lines (header, rule, one row per coder) of one seed's ``metrics``, or of several
    seeds' as mean ± std."""
    get = lambda key: [m[key] for m in metrics]                                  # noqa: E731
    pct = lambda key: _cell(get(key), 1, 100.0)                                  # noqa: E731
    rows = [("", "votes", "Bayes", "1-NN (one-pass codes)", "1-NN", f"{k}-NN", "learn s (1 thread)", "ms/item",
             "bits", "active", "Spearman")]
    for name, label in (("sparsey", "Sparsey"), ("pooler", "k-WTA spatial pooler")):
        rows.append((label, *[pct(f"{name}_acc_{r}") for r in ("votes", "bayes", "knn1_learned", "knn1", f"knn{k}")],
                     _cell(get(f"{name}_learn_seconds"), 2), _cell(get(f"{name}_learn_ms_per_item"), 3),
                     _cell(get(f"{name}_code_bits"), 0), _cell(get(f"{name}_active_bits"), 0),
                     _cell(get(f"spearman_{name}"), 3)))
    rows.append(("fly-hash control (fixed)", "", "", "", pct("flyhash_acc_knn1"), pct(f"flyhash_acc_knn{k}"),
                 *[""] * 4, _cell(get("spearman_flyhash"), 3)))
    rows.append(("Sparsey mac activity only", *[""] * 9, _cell(get("spearman_macactivity"), 3)))
    if all("spiking_code_match" in m for m in metrics):
        rows.append(("Sparsey, LIF WTA groups", *[""] * 9,
                     f"codes equal: stored {_cell(get('spiking_learn_match'), 0, 100.0)} %, "
                     f"recognised {_cell(get('spiking_code_match'), 0, 100.0)} %"))
    rows.append(("pixels", "", "", "", pct("pixels_acc_knn1"), pct(f"pixels_acc_knn{k}"), *[""] * 5))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]   # no trailing spaces to wrap
    lines.insert(1, "-" * len(lines[0]))
    return lines


def format_table(metrics: dict[str, float], k: int, n_train: int, split: str = "test") -> str:
    """The comparison printed after a run (accuracies on the ``split`` named)."""
    lines = comparison_rows([metrics], k)
    for name, label in (("sparsey", "Sparsey"), ("pooler", "spatial pooler")):
        stat = lambda key: metrics[f"{name}_code_{key}"]     # noqa: E731
        text = (f"{label} codes of the evaluation images: sparsity {100 * stat('sparsity'):.2f} %, bits ever active "
                f"{100 * stat('fraction_used'):.1f} %, mean bit entropy {stat('entropy'):.3f} bit")
        if f"{name}_mean_familiarity" in metrics:
            text += f"; mean familiarity G while storing {metrics[f'{name}_mean_familiarity']:.2f}"
        lines.append(text)
    for key, what in (("cue_half_removed", "stored item recalled from a cue with half of its active pixels removed"),
                      ("sequence_recall", "sequence frames recalled from the first two (fly-hash: by a successor "
                                          "memory)")):
        if f"{key}_sparsey" in metrics:
            lines.append(f"{what}: Sparsey {100 * metrics[f'{key}_sparsey']:.1f} %, "
                         f"fly-hash {100 * metrics[f'{key}_flyhash']:.1f} %")
    lines.append(f"one mac with the same Q and K recalls every stored random pattern exactly up to "
                 f"{metrics['random_capacity_exact_items']:.0f} patterns (largest such capacity point)")
    published = (f"published Sparsey (Rinkus, arXiv 1710.07829): {100 * PUBLISHED['accuracy']:.0f} % after one pass "
                 f"over {PUBLISHED['train_items']} images (2-level, 16x24 skeletonised), "
                 f"{PUBLISHED['learn_seconds']:.0f} s on one thread")
    where = "validation images (held out of training; test not read)" if split == "validation" else "test images"
    return (f"accuracy (%) on the {where} after one pass over {n_train} training items\n" + "\n".join(lines) + "\n"
            + published)


class SparseyKind(Kind):
    name = "sparsey"
    config = SparseyExperimentConfig
    rule_keys = frozenset(SCORING)

    def load(self, raw: dict) -> SparseyExperimentConfig:
        refuse_run_decided(raw)
        coder_raw = raw.pop("coder", {})
        cfg = from_dict(SparseyExperimentConfig, raw)
        cfg.coder = SparseyConfig.from_mapping(coder_raw, "coder.")
        check_dataset(cfg)
        check_code_sizes(cfg)
        if cfg.eval.train_items:
            check_train_items(cfg.eval, cfg.eval.train_items)
        if cfg.eval.test_items:
            check_test_items(cfg.eval.test_items)
        check_data_split(cfg.data)
        check_applies(cfg, ("data",), {**ONLY_FOR, ("data", "data_dir"): DATA_DIR_RULE})
        check_applies(cfg, ("coder", "eval"), SPARSEY_ONLY_FOR)
        return cfg

    def plan(self, cfg: SparseyExperimentConfig) -> list[Job]:
        """One job per seed."""
        folder = Path(cfg.output_dir) / cfg.name

        def job(seed: int, path: Path):
            def run(options: JobOptions) -> str | None:
                out = run_seed(cfg, seed, options.progress, options.device)
                write_sparsey_results(path, cfg, seed, out, options.overwrite)
                return out["note"]
            return Job(path, run, recorded_config(cfg), identity={"seed": seed}, needs=needs)

        needs = tuple((module, "torch", "eval.spiking_items (the spiking realisation's check)")
                      for module in ("torch", "snntorch") if cfg.eval.spiking_items)

        return [job(seed, folder / f"sparsey_seed{seed}.h5") for seed in cfg.seeds]

    def summarize(self, runs: Sequence[Run], detail: bool = True) -> str:
        """The comparison table of every seed, then, where there are several, mean ± std over them (they must be
        seeds of one experiment: :func:`seed_outcomes`)."""
        outs = seed_outcomes(runs)
        tables = [f"seed {out['seed']}: {run.path}\n"
                  + format_table(out["metrics"], out["knn_k"], out["n_train"], out["eval_split"])
                  for run, out in zip(runs, outs)]
        if len(outs) > 1:
            tables.append(f"mean ± std over {len(outs)} seeds ({', '.join(str(o['seed']) for o in outs)}), "
                          f"accuracy (%) on the {outs[0]['eval_split']} images{test_splits_note(runs, outs)}\n"
                          + "\n".join(comparison_rows([o["metrics"] for o in outs], outs[0]["knn_k"])))
        return "\n\n".join(tables)

    def check(self, run: Run) -> None:
        """A one-line :class:`ResultsError` unless ``run`` holds what the summary and the plots read (curves of
        matching lengths included)."""
        outcome(run)
        super().check(run)

    def plot(self, runs: Sequence[Run], out_dir: Path) -> list[Path]:
        """Every seed's plots, named by seed: all runs are read and checked (:func:`seed_outcomes`) before any is
        written, so two files of one seed never overwrite each other's plots."""
        return [p for out in seed_outcomes(runs) for p in write_plots(Path(out_dir), out["seed"], out)]

    def plot_files(self, cfg: SparseyExperimentConfig) -> list[Path]:
        return [seed_plot(Path(cfg.output_dir) / cfg.name, name, seed) for seed in cfg.seeds for name in SEED_PLOTS]


KIND = SparseyKind()
