"""The ``sparsey`` experiment kind: one-pass Sparsey learning of an image dataset beside a k-WTA spatial pooler.

Per seed it stores the training images once (single-trial, one item at a time, timed on one thread), classifies the
evaluation images from the codes (class votes learned in the same pass; k-NN on the stored codes; the same k-NN
readouts on a fixed fly-hash code of the same size and sparsity and on the pixels), and measures
similarity preservation (Spearman ρ of code vs input overlap, with a fly-hash control of the same size and
sparsity), a capacity curve (recall vs items stored), recall from degraded cues and sequence recall (each beside
the fly-hash control) and, with ``eval.spiking_items``, whether the spiking realisation stores and recognises
items with the coder's codes. Results: one results file per seed ``<output_dir>/<name>/sparsey_seed<seed>.h5``
(:mod:`spikecl.sdr.results`: its schema; existing files, ``--resume`` and ``--overwrite`` as for every kind, see
:mod:`spikecl.experiment_kind`) and PNG plots beside it (:mod:`spikecl.sdr.plots`); the summary table is
:mod:`spikecl.sdr.table`. The evaluation images follow the validation protocol of every
kind (``[data]``): ``validation`` holds a fraction of every class's training images out of storage,
``eval_split = "validation"`` evaluates on them without reading the test split (for choosing settings), and
``vary_split`` gives every seed its own validation split (the test split is one for every seed).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from spikecl.config import (DATA_DIR_RULE, KIND_DOC, NAME_DOC, ONLY_FOR, DataConfig, RunHeader, check_applies,
                            check_data_split)
from spikecl.data.codes import MAX_OUTPUTS
from spikecl.data.datasets import IMAGE_SHAPES, known_image_shape
from spikecl.data.streams import files_crc
from spikecl.environment import source_note
from spikecl.errors import ConfigError
from spikecl.experiment_kind import Job, JobOptions, Kind, load
from spikecl.io import Run
from spikecl.options import from_dict, option
from spikecl.recorded import RECORDED_RULES
from spikecl.remedies import option as remedy
from spikecl.sdr.baselines import FlyHash, FlyHashConfig, SpatialPoolerConfig
from spikecl.sdr.measures import (Coded, capacity_curve, classify, cue_curves, mac_activity_code, random_like,
                                  random_pattern_mac, run_pooler, run_sparsey, sequence_recall, similarity)
from spikecl.sdr.plots import SEED_PLOTS, heading, seed_plot, write_plots
from spikecl.sdr.readout import knn_predict, overlap_spearman
from spikecl.sdr.results import (CUE_SUMMARY_CODERS, IMPLIED_METRICS, SCORING, outcome, recorded_config, seed_outcomes,
                                 test_splits_note, write_sparsey_results)
from spikecl.sdr.sdr import code_statistics
from spikecl.sdr.sparsey import MAX_CELLS_PER_CM, MAX_CMS, READ_ONLY_WITH, SparseyCoder, SparseyConfig, code_size
from spikecl.sdr.table import comparison_rows, format_table

#: spikecl's own datasets of one-channel images, which the coder reads
GREYSCALE = tuple(name for name, (channels, *_) in IMAGE_SHAPES.items() if channels == 1)


@dataclass
class EvalConfig:
    """What is measured beside test accuracy."""

    knn_k: int = option(5, low=1, doc="neighbours of the k-NN readout on codes")
    n_pairs: int = option(5000, low=10, high=10 ** 7,
                          doc="item pairs for the code-vs-input overlap Spearman correlation")
    pair_items: int = option(1000, low=3, doc="test items the pairs are drawn from (at least 3: two items make one "
                                              "pair, whose correlation is undefined); at most the test items there "
                                              "are, the number used recorded as the results' pair_items")
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


def check_dataset(cfg: SparseyExperimentConfig, image_shape: list[int] | None = None) -> None:
    """A one-line ConfigError unless ``data.dataset`` holds one-channel images (spikecl's own or registered with
    ``--plugin``: :func:`spikecl.data.register_dataset`) of ``coder.image_shape`` (or ``image_shape``)."""
    name, want = cfg.data.dataset, list(image_shape or cfg.coder.image_shape)
    shape = known_image_shape(name)
    if shape is None or shape[0] != 1:
        what = "not an image dataset" if shape is None else f"{shape[0]}-channel images"
        registered = remedy("registered by a --plugin", keyword="registered with spikecl.data.register_dataset")
        raise ConfigError(f"data.dataset: {name!r} is {'' if shape is None else 'of '}{what}; the coder reads "
                          f"one-channel images ({', '.join(GREYSCALE)}, or a dataset of one's own {registered})")
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
    **{("coder", key): (lambda cfg, applies=applies: applies(cfg.coder), where.format(p="coder."))
       for key, (applies, where) in READ_ONLY_WITH.items()},
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
    """The seed's binarised items: ``(x_train, y_train, x_test, y_test, n_classes, data_crc)``, images flattened to
    bool [N, pixels] (``coder.threshold``), the evaluation items from the validation or test split (``data``);
    ``data_crc``: :func:`~spikecl.data.base.dataset_crc` of the dataset where it was read from files, else None."""
    from spikecl.data.base import dataset_crc
    from spikecl.data.datasets import dataset_files, load_dataset, training_and_evaluation
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
    crc = dataset_crc(data) if dataset_files(d.dataset, d.data_dir or None) else None
    return x_train, y_train[: len(x_train)], x_test, y_test[: len(x_test)], data.n_classes, crc


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


def empty_codes_note(codes: np.ndarray) -> str | None:
    """A notice where at least half of Sparsey's ``codes`` [B, n] of the training items are empty: settings that
    silence most macs (``coder.mac.min_active_frac``, ``max_active_frac``) make a table of near-empty codes, and
    the fly-hash control, sized to match, collapses with them."""
    empty = float(np.mean(~codes.any(axis=1))) if len(codes) else 0.0
    if empty < 0.5:
        return None
    return (f"notice: {100 * empty:.0f} % of Sparsey's codes of the training items are empty (no mac active: "
            "coder.mac.min_active_frac or max_active_frac?), and the fly-hash control is sized to match them")


def flyhash_control(cfg: SparseyExperimentConfig, sparsey: Coded, x_train: np.ndarray, x_test: np.ndarray,
                    seed: int) -> Coded:
    """A fixed fly-hash code with Sparsey's code size and mean number of active bits over its codes of the training
    items (no learning; sized by training codes, so that no statistic of the evaluated images sets it: before
    2026-12-06 the evaluation codes' mean sized it)."""
    n_bits, active = sparsey.train.shape[1], max(1, int(round(sparsey.train.sum(axis=1).mean())))
    fly = FlyHash(FlyHashConfig(**{**asdict(cfg.flyhash), "n_outputs": n_bits, "sparsity": active / n_bits,
                                   "seed": seed}), x_train.shape[1])
    fly_train = fly.encode(x_train)
    return Coded(fly_train, fly_train, fly.encode(x_test), 0.0, fly)


def run_seed(cfg: SparseyExperimentConfig, seed: int, progress: bool, device: str = "cpu") -> dict:
    """Everything measured for one seed: metrics, curves and pair overlaps (plain dicts of numbers / arrays);
    ``device``: where the spiking check runs (``"cpu"`` or ``"cuda"``)."""
    ev = cfg.eval
    coder_cfg = SparseyConfig.from_mapping({**asdict(cfg.coder), "seed": seed})
    x_train, y_train, x_test, y_test, n_classes, data_crc = seed_items(cfg, coder_cfg, seed)
    check_train_items(ev, len(x_train))
    check_test_items(len(x_test), f"{cfg.data.dataset}'s {cfg.data.eval_split} split (eval.test_items)")
    points, note = capacity_points(ev, len(x_train))

    sparsey = run_sparsey(coder_cfg, x_train, x_test, progress)
    note = "; ".join(filter(None, (note, empty_codes_note(sparsey.train))))
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
    pair_codes = {"sparsey": sparsey.test[: ev.pair_items], "fly-hash": fly_coded.model.encode(pairs_x),
                  "pooler": pooler.test[: ev.pair_items],
                  "mac-activity": mac_activity_code(sparsey.model, sparsey.test[: ev.pair_items])}
    sim = similarity(pairs_x, pair_codes, ev.n_pairs, seed)
    for name, (_, _, rho) in sim.items():
        metrics[f"spearman_{name.replace('-', '')}"] = rho
        metrics[f"spearman_cosine_{name.replace('-', '')}"] = overlap_spearman(pairs_x, pair_codes[name], ev.n_pairs,
                                                                               seed, cosine=True)[0]

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
            "cue_items": min(ev.cue_items, len(x_train)), "pair_items": len(pairs_x), "note": note,
            "data_crc": data_crc}


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


class SparseyKind(Kind):
    name = "sparsey"
    config = SparseyExperimentConfig
    rule_keys = frozenset(SCORING)

    def load(self, raw: dict) -> SparseyExperimentConfig:
        refuse_run_decided(raw)
        coder_raw = raw.pop("coder", {})
        cfg = from_dict(SparseyExperimentConfig, raw)
        try:
            cfg.coder = SparseyConfig.from_mapping(coder_raw, "coder.")
        except ConfigError:
            shape = coder_raw.get("image_shape") if isinstance(coder_raw, dict) else None
            if isinstance(shape, list) and all(isinstance(n, int) for n in shape):
                check_dataset(cfg, shape)  # a grid that fits no image of that shape: the shape is what is wrong
            raise
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

    def datasets_read(self, raw: dict) -> set:
        """``data.dataset`` as written, else its default (a value that is no name: not known; its checks say why)."""
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        dataset = data.get("dataset", DataConfig().dataset)
        return {dataset} if isinstance(dataset, str) else {None}

    def plan(self, cfg: SparseyExperimentConfig) -> list[Job]:
        """One job per seed."""
        folder = Path(cfg.output_dir) / cfg.name

        def job(seed: int, path: Path):
            def run(options: JobOptions) -> str | None:
                out = run_seed(cfg, seed, options.progress, options.device)
                write_sparsey_results(path, cfg, seed, out, options.overwrite)
                return out["note"]
            return Job(path, run, recorded_config(cfg), identity={"seed": seed}, needs=needs,
                       data_crc=functools.partial(files_crc, cfg.data))

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
        return "\n\n".join(tables) + source_note(runs, lambda run: f"seed {run.attrs.get('seed')}")

    def check(self, run: Run) -> None:
        """A one-line :class:`ResultsError` unless ``run`` holds what the summary and the plots read (curves of
        matching lengths included)."""
        outcome(run)
        super().check(run)

    def plot(self, runs: Sequence[Run], out_dir: Path) -> list[Path]:
        """Every seed's plots, named by seed: all runs are read and checked (:func:`seed_outcomes`) before any is
        written, so two files of one seed never overwrite each other's plots."""
        return [p for run, out in zip(runs, seed_outcomes(runs))
                for p in write_plots(Path(out_dir), out["seed"], out, heading(run.config, out["seed"]))]

    def plot_files(self, cfg: SparseyExperimentConfig) -> list[Path]:
        return [seed_plot(Path(cfg.output_dir) / cfg.name, name, seed) for seed in cfg.seeds for name in SEED_PLOTS]


KIND = SparseyKind()
