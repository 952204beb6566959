"""The one contract every continual-learning method implements.

A strategy sees a few events: ``begin(tasks)`` once, with every task's training data (for methods allowed to know
the stream in advance, such as multitask training), then, in this order, for every task of the stream::

    before_task(task, train, seen) -> train      may replace the training data (joint, multitask training);
                                                  ``seen``: the training data of tasks 0..task inclusive, in order,
                                                  ending with ``train`` itself
    training_samples(task, sizes) -> int          how many samples before_task will give the task (progress bars)
    for each batch:
        batch(x, y, heads) -> (x, y, heads)      may add samples (replay)
        projections() -> {layer: projector}       what the batch's training pass projects presynaptic rows with
                                                  (GPM, HLOP; set on the layers for that pass only)
        penalty()                                 extra loss term (EWC, SI)
        after_backward(activity)                  project or mask gradients (GPM, HLOP); ``activity``: the
                                                  batch's presynaptic activity if ``uses_activity``, else None
        after_step()                              bookkeeping after the optimiser step (SI)
    after_task(task, train)                       consolidate (Fisher, subspaces, buffers)

State that must survive a checkpoint goes through ``state_dict`` / ``load_state_dict`` (tensors and plain values).
spikecl checkpoints between tasks; to restore a state saved within task t, call ``before_task(t, ...)`` on the new
strategy first (it freezes what the task keeps fixed, e.g. GPM's and HLOP's biases, and opens the task), then
``load_state_dict``: the state holds what was learned, not the task's setup. Arrays worth keeping in the results
file come from ``result_arrays()``; ``named_trainable()`` gives the model's trainable parameters as (name,
parameter) pairs.
Methods register themselves in :mod:`spikecl.continual.strategies` and declare their options as a dataclass, which
the config validator checks key by key. ``"a+b"`` runs strategies ``a`` and ``b`` together (e.g. ``hlop+replay``).

A strategy declares what it supports: ``trainers``, ``scenarios`` and ``supports_data_parallel`` (False unless a
strategy says so: one that consolidates from data must do it through the helpers below to agree across processes).
An unsupported combination is a one-line error before training. Activity and execution come from the base class,
never from module flags or the process group: ``activity_of(data, n)`` (presynaptic activity on samples),
``own_samples(n)`` and ``sum_over_ranks(tensors)`` (statistics over data shared by the processes),
``loss_backward(x, y, heads, mask)`` (gradients through the run's trainer), ``reading()`` (the model in evaluation
mode for passes that only read it) and ``random_generator(seed)`` (draws that vary with the run seed).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from spikecl.config import SEED_MAX, check_seed
from spikecl.continual.execution import Execution
from spikecl.data.streams import SCENARIOS
from spikecl.errors import ConfigError, DataError, ShapeError, check_type
from spikecl.snn.activity import Activity
from spikecl.snn.checks import choice, count
from spikecl.snn.encoders import ENCODERS, encode
from spikecl.snn.networks import BUILD_NETWORK, SpikingNetwork, evaluating
from spikecl.snn.trainers import TRAINERS, TrainingHooks, checked_penalty, make_trainer, mask_logits


def sent_to(index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``index`` (drawn on the host, e.g. from a seeded CPU generator) on ``device``, without making the host wait
    for the device: through pinned memory, asynchronously, on a GPU (a plain copy would synchronise every batch)."""
    if device.type != "cuda":
        return index.to(device)
    return index.pin_memory().to(device, non_blocking=True)


@dataclass
class TaskData:
    """One task's samples on the training device: ``x`` [N, ...], labels ``y`` [N], readout head ``heads`` [N]
    (None: head 0 for every sample, a single-head readout); ``mask`` [n_outputs] bool: the readout outputs active
    when training on them (class-incremental: the classes seen up to stage ``task``), None when all are."""

    task: int
    x: torch.Tensor
    y: torch.Tensor
    heads: torch.Tensor | None
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise ShapeError(f"TaskData.{name}: expected a tensor, got {type(getattr(self, name)).__name__}")
        if self.x.dim() < 2 or not self.x.is_floating_point():
            raise ShapeError(f"TaskData.x: expected floating-point samples [N, ...], got {self.x.dtype} "
                             f"{tuple(self.x.shape)}")
        n = self.x.shape[0]
        if self.heads is None:
            self.heads = torch.zeros(len(self.y), dtype=torch.long, device=self.y.device)
        for name in ("y", "heads"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or value.shape != (n,) or value.is_floating_point() \
                    or value.dtype == torch.bool:
                shown = (f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                         else type(value).__name__)
                raise ShapeError(f"TaskData.{name}: expected integer indices [{n}], one per sample, got {shown}")
        if self.mask is not None and (not isinstance(self.mask, torch.Tensor) or self.mask.dtype != torch.bool
                                      or self.mask.dim() != 1):
            raise ShapeError("TaskData.mask: expected a 1-D bool tensor [n_outputs] or None")

    def __len__(self) -> int:
        return self.x.shape[0]

    @staticmethod
    def concat(parts: Sequence["TaskData"]) -> "TaskData":
        """All samples of ``parts`` as one training set (labelled with the last part's task index)."""
        return TaskData(parts[-1].task, torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]),
                        torch.cat([p.heads for p in parts]), parts[-1].mask)


#: seeds of strategies' own random draws (option ``seed``) are below this: torch's CPU generator keeps 32 bits of a seed
SEED_RANGE = SEED_MAX + 1
#: ``purpose`` of the random streams other than an epoch's (:func:`purpose_seed`): the evaluations' and the
#: NeuroBench measures' Poisson draws, and :meth:`Strategy.pass_generator`'s for the passes that record activity (GPM,
#: HLOP), EWC's Fisher and HLOP's final Hebbian passes
EVALUATION_DRAWS, MEASURE_DRAWS = 2, 3
ACTIVITY_PASS, FISHER_PASS, HEBBIAN_PASS = 101, 102, 103


def derived_seed(*parts: int) -> int:
    """A 63-bit seed determined by ``parts`` (e.g. run seed, task, epoch). numpy's SeedSequence reads ``parts`` as
    words with trailing zeros dropped: (s, t, e) and (s, t, e, 0) give one seed."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def purpose_seed(seed: int, task: int, purpose: int) -> int:
    """The seed of run ``seed``'s random stream ``purpose`` (>= 2) in ``task``: (seed, task, 0, purpose), apart from
    every epoch's streams, (seed, task, epoch) for the samples' order and (seed, task, epoch, 1) for the training
    Poisson draws (until 2026-12-07 the evaluations drew from (seed, task, 7), epoch 7's order)."""
    return derived_seed(seed, task, 0, purpose)


#: an odd 32-bit multiplier (2^32 / golden ratio): ``run seed × SEED_MIX mod 2^32`` is a bijection with 0 ↦ 0
SEED_MIX = 0x9E3779B1


@dataclass(frozen=True)
class Simulation:
    """How samples are presented to the network (``num_steps`` time steps through ``encoder``), how gradients are
    computed (``trainer``: ``bptt``, ``online`` or ``dsr``), and the run's ``seed``, from which a strategy's own
    random draws derive (:meth:`Strategy.random_generator`)."""

    num_steps: int = 4
    encoder: str = "direct"
    trainer: str = "bptt"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_steps", count(self.num_steps, "network.num_steps"))
        choice(self.encoder, "network.encoder", ENCODERS)
        choice(self.trainer, "train.trainer", TRAINERS)
        object.__setattr__(self, "seed", check_seed(self.seed, "Simulation: seed"))


#: what a checkpoint can hold besides tensors: values ``torch.load(weights_only=True)`` reads back
PLAIN_VALUES = (bool, int, float, complex, str, bytes, type(None), torch.Size, torch.dtype, torch.device)
CONTAINERS = (dict, OrderedDict, list, tuple, set)


def unsaveable(value, key: str = "") -> tuple[str, str] | None:
    """(dotted key, type name) of the first part of ``value`` a checkpoint could not be read back with, or None:
    tensors, :data:`PLAIN_VALUES` and :data:`CONTAINERS` of them are allowed (not e.g. numpy arrays or deques)."""
    if isinstance(value, torch.Tensor) or type(value) in PLAIN_VALUES:
        return None
    if type(value) not in CONTAINERS:
        return key or "(the state)", f"{type(value).__module__}.{type(value).__qualname__}"
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for k, v in items:
        where = f"{key}.{k}" if key else str(k)
        found = unsaveable(k, where) if isinstance(value, dict) else None
        found = found or unsaveable(v, where)
        if found:
            return found
    return None


def checkpoint_state(strategy: "Strategy") -> dict:
    """``strategy.state_dict()`` for a checkpoint; a state a checkpoint could not read back (:func:`unsaveable`) is a
    one-line ConfigError naming the strategy and key, so that no unreadable checkpoint is ever written."""
    state = strategy.state_dict()
    found = unsaveable(state)
    if found:
        raise ConfigError(f"strategy {strategy.name!r}: state_dict() key {found[0]!r} holds a {found[1]}; a "
                          "checkpoint holds tensors and plain values (numbers, strings, None, and dicts, lists, "
                          "tuples of them): convert it, e.g. with torch.as_tensor or list()")
    return state


def parts_of(strategy: "Strategy") -> list["Strategy"]:
    """The methods a run's ``strategy`` consists of: a combination's parts (``a+b``), else itself."""
    return list(getattr(strategy, "parts", [strategy]))


def own_parts(strategy: "Strategy") -> list["Strategy"]:
    """The parts of ``strategy`` (:func:`parts_of`) defined outside spikecl: a plugin's methods."""
    return [part for part in parts_of(strategy) if not type(part).__module__.startswith("spikecl.")]


def unsaved_state(strategy: "Strategy") -> list[str]:
    """``Class.attribute`` of the tensors (alone or in a list, tuple or dict) that a part of ``strategy`` defined
    outside spikecl (a plugin's method) keeps without defining ``state_dict``: a checkpoint does not hold them, so a
    resumed run starts without them."""
    def holds_tensor(value) -> bool:
        if isinstance(value, torch.Tensor):
            return True
        items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
        return any(holds_tensor(item) for item in items)

    return [f"{type(part).__name__}.{key}" for part in own_parts(strategy)
            if type(part).state_dict is Strategy.state_dict
            for key, value in vars(part).items() if not isinstance(value, torch.nn.Module) and holds_tensor(value)]


def checked_task(name: str, train) -> "TaskData":
    """``before_task``'s return value, a :class:`TaskData`, else a one-line ConfigError naming the method."""
    if not isinstance(train, TaskData):
        raise ConfigError(f"strategy {name!r}: before_task() returned {type(train).__name__}, not the TaskData to "
                          "train on (return train to keep it)")
    return train


def checked_batch(name: str, out) -> tuple:
    """``batch``'s return value, ``(x, y, heads)``, else a one-line ConfigError naming the method."""
    if not (isinstance(out, tuple) and len(out) == 3):
        got = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
        raise ConfigError(f"strategy {name!r}: batch() returned {got}; return (x, y, heads)")
    return out


def checked_arrays(name: str, arrays) -> dict:
    """``result_arrays``'s return value, {name: numeric or bool array}, else a one-line ConfigError naming the
    method (checked after each task, not first when the results file is written at the end)."""
    if not isinstance(arrays, dict):
        raise ConfigError(f"strategy {name!r}: result_arrays() returned {type(arrays).__name__}, not a dict")
    for key, value in arrays.items():
        if isinstance(value, dict):                     # a group of arrays (e.g. one per layer)
            checked_arrays(name, {f"{key}/{k}" if isinstance(k, str) else k: v for k, v in value.items()})
            continue
        try:
            kind = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value).dtype.kind
        except (TypeError, ValueError, RuntimeError):
            kind = "O"
        if not isinstance(key, str) or kind not in "biufc":
            raise ConfigError(f"strategy {name!r}: result_arrays()[{key!r}] is {type(value).__name__} of dtype kind "
                              f"{kind!r}, not a numeric or bool array")
    return arrays


@dataclass
class NoOptions:
    """A method without options."""


class Strategy(TrainingHooks):
    """Base strategy: trains as it is told and consolidates nothing. Subclasses override only the events they need
    and declare what they support."""

    name = "strategy"
    Options: type = NoOptions
    trainers: tuple[str, ...] = tuple(TRAINERS)
    scenarios: tuple[str, ...] = SCENARIOS
    supports_data_parallel = False
    #: the weight update must be the (projected) gradient step itself: plain SGD, no weight decay, no velocity
    #: carried into a new task (checked by :func:`spikecl.continual.strategies.check_support`)
    needs_gradient_steps = False
    #: may be one part of a combination ``a+b`` (the upper bounds, which replace the stream's training data, may not)
    combines = True
    #: trains on a task before that task's turn (``multitask``: all at once), so forward transfer measures nothing:
    #: its results record FWT, min-ACC, WC-ACC and WF as NaN, which reports show as "—"
    trains_ahead = False
    #: when this part of a combination consolidates after a task (parts run by stage, ties in the order written, so
    #: ``a+b`` and ``b+a`` consolidate alike): 0, a subspace of the task's own activity (GPM, HLOP); 1, more training
    #: on stored data (replay's after-task phase); 2, what the next task starts from (EWC's and SI's anchors)
    after_task_stage = 2
    #: trains the network after a task without gradient projection (replay's after-task phase): a synapse a
    #: projection protects fully still changes there
    trains_unprojected = False
    #: takes gradients of its own through the spikes, outside the trainer (EWC's Fisher passes): it reads
    #: ``network.surrogate_slope`` under any trainer, the dsr trainer's rate gradients included
    own_spike_gradients = False

    @classmethod
    def unread_options(cls, options, parts: Sequence[str]) -> dict[str, str]:
        """{option: why} of this method's ``options`` that a run of the combination ``parts`` (method names, this
        one among them) does not read whatever their values (e.g. replay's phase options where its after-task phase
        does not run): a run records them at their defaults, and an experiment that sets one no run reads is
        refused."""
        return {}

    @classmethod
    def check_run(cls, options, cfg) -> None:
        """Before any work: a one-line ConfigError where ``options`` (this method's) cannot apply to a run under
        ``cfg`` (the run's experiment config), e.g. an option no part of that run's network would read."""

    def __init__(self, model: SpikingNetwork, options=None, sim: Simulation = Simulation(),
                 execution: Execution | None = None) -> None:
        self.model = check_type(model, SpikingNetwork, f"{type(self).__name__}: model", BUILD_NETWORK)
        self.options = options if options is not None else self.Options()
        self.sim = sim
        self.execution = execution if execution is not None else Execution()

    def logits(self, x: torch.Tensor, heads: torch.Tensor | None, mask: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """The model's logits ``[B, n_outputs]`` for static inputs ``x`` [B, ...] (encoded as in training; Poisson
        spikes from ``generator``, default torch's global one), the outputs outside ``mask`` (:attr:`TaskData.mask`)
        suppressed as in training."""
        return mask_logits(self.model(encode(x, self.sim.num_steps, self.sim.encoder, generator), heads), mask)

    def pass_generator(self, x: torch.Tensor, share: range, task: int, purpose: int) -> torch.Generator | None:
        """The generator of the Poisson spikes of samples ``share`` of ``x`` [N, ...] in a pass over ``task``'s
        samples (``purpose`` tells passes apart): seeded by :func:`purpose_seed` and advanced past the samples
        before ``share``, so a sample gets the same spikes in any process count and after a resume (the global
        generator's state would differ between processes of unequal shares). None for other encoders."""
        if self.sim.encoder != "poisson":
            return None
        generator = torch.Generator(x.device).manual_seed(purpose_seed(self.sim.seed, task, purpose))
        if share.start:
            encode(x[:share.start], self.sim.num_steps, "poisson", generator)      # the draws of earlier shares
        return generator

    def random_generator(self, option_seed: int) -> torch.Generator:
        """A CPU generator for the strategy's own draws, seeded by the pair (run seed, ``option_seed``): each run
        seed draws differently, and run seed 0 draws from ``option_seed`` itself. (Torch's CPU generator keeps only
        a seed's low 32 bits, so the run seed is mixed into them: ``option_seed XOR (run seed × SEED_MIX)``.)"""
        return torch.Generator().manual_seed(option_seed ^ (self.sim.seed * SEED_MIX % SEED_RANGE))

    @contextlib.contextmanager
    def reading(self):
        """The model in evaluation mode (restored after): passes that only read it (consolidation, Fisher) leave
        normalisation statistics as they are and see the model as inference does."""
        with evaluating(self.model):
            yield

    # -- helpers: activity, execution and gradients ----------------------------------------------------------
    @torch.no_grad()
    def activity_of(self, data: TaskData, n: int) -> Activity:
        """Presynaptic activity ``[T, n, *in_shape]`` per layer of the model (in evaluation mode) on the first ``n``
        samples of ``data``; with several processes each runs its share and the shares are gathered. A task without
        samples, or ``n`` beyond the task's samples, is a one-line error (ask for ``min(n, len(data))``)."""
        if n < 1:
            raise DataError(f"{self.name}: task {data.task} has no samples to take activity from (it needs at least "
                            "one)")
        if n > len(data):
            raise DataError(f"{self.name}: activity of {n} samples asked of task {data.task}, which has "
                            f"{len(data)}; ask for min(n, len(data))")
        share = self.execution.own_samples(n) or range(min(n, 1))      # an empty share: one placeholder sample
        part = slice(share.start, share.stop)
        draws = self.pass_generator(data.x, share, data.task, ACTIVITY_PASS)
        with self.reading(), self.model.recording() as activity:
            self.logits(data.x[part], data.heads[part], generator=draws)
        return activity.map(lambda x: self.execution.gather(x, n, dim=1))

    def own_samples(self, n: int) -> range:
        """The samples among ``0 … n-1`` this process handles (all in one process); combine the statistics of
        the processes with :meth:`sum_over_ranks`."""
        return self.execution.own_samples(n)

    def sum_over_ranks(self, tensors: Sequence[torch.Tensor]) -> None:
        """Sum each tensor over the processes of the run, in place (nothing to do in one process)."""
        self.execution.sum_over_ranks(tensors)

    def loss_backward(self, x: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
        """Accumulate into ``param.grad`` the gradient of the cross-entropy on ``x`` [B, ...], ``y`` [B] (outputs
        outside ``mask`` suppressed, as in training) computed by the run's trainer (``sim.trainer``), without hooks
        or optimiser step; returns the loss (0-dim)."""
        trainer = make_trainer(self.sim.trainer, self.model, self.sim.num_steps, self.sim.encoder)
        return trainer.task_loss_backward(trainer.encode(x), y, heads, mask)

    # -- events -----------------------------------------------------------------------------------------------
    def begin(self, tasks: Sequence[TaskData]) -> None:
        """Called once, before the first task, with the training data of every task of the stream."""

    def before_task(self, task: int, train: TaskData, seen: Sequence[TaskData]) -> TaskData:
        """The data to train on for ``task``; its ``task`` field names the stage whose outputs are active.

        ``train``: task ``task``'s training data; ``seen``: the training data of every task so far, tasks 0..``task``
        INCLUSIVE in stream order (``task + 1`` items, the last one ``train`` itself, as the runner passes them)."""
        return train

    def training_samples(self, task: int, sizes: Sequence[int]) -> int:
        """How many samples :meth:`before_task` will give ``task`` to train on, from every task's training-set size
        ``sizes`` (for the progress bar's total before those tasks come); a method that replaces the data says so."""
        return sizes[task]

    def batch(self, x: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None):
        """The batch to train on, from the stream's ``x`` ``[B, ...]`` (a row per sample, as the dataset holds it),
        labels ``y`` ``[B]`` (int64) and ``heads`` ``[B]`` (each sample's readout head; None for a single-head
        readout): returns ``(x, y, heads)`` with the same trailing shapes and any number of rows (replay appends
        stored samples, giving every row a head)."""
        return x, y, heads

    def after_task(self, task: int, train: TaskData) -> None:
        """Consolidate what task ``task`` (0-based) learned from its training data ``train`` (Fisher information,
        subspaces, a replay buffer), after its last batch."""

    def state_dict(self) -> dict:
        """What a checkpoint keeps of this strategy: tensors and plain values, by name."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (after :meth:`before_task` of the task it was saved in)."""

    def result_arrays(self) -> dict[str, np.ndarray]:
        """Arrays worth keeping in the results file (e.g. subspace sizes per task)."""
        return {}

    def state_entries(self, state: dict, keys: Sequence[str]) -> list:
        """``state[key]`` for each of ``keys``; a ValueError naming the first missing one (a state another method's
        ``state_dict()`` returned, or none)."""
        missing = [k for k in keys if k not in state] if isinstance(state, dict) else list(keys)
        if missing:
            raise ValueError(f"{self.name}'s state has no {missing[0]!r} entry: pass what {self.name}'s state_dict() "
                             "returned")
        return [state[k] for k in keys]

    def check_per_parameter(self, tables: dict[str, dict]) -> None:
        """A ValueError unless every tensor of the checkpointed ``tables`` ({table name: {parameter name:
        tensor}}, e.g. EWC's Fisher) names a parameter of the model and has its shape."""
        shapes = {n: p.shape for n, p in self.model.named_parameters()}
        for table, values in tables.items():
            for name, value in dict(values).items():
                if not isinstance(value, torch.Tensor) or shapes.get(name) != value.shape:
                    shown = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                    raise ValueError(f"{self.name}'s {table}[{name!r}] is {shown}, not a tensor of a parameter's shape "
                                     f"({tuple(shapes[name]) if name in shapes else 'no such parameter'})")

    def combined_with(self, parts: Sequence["Strategy"]) -> None:
        """Called once when this strategy runs inside :class:`Combined` with ``parts`` (itself included)."""

    def named_trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        """The model's trainable parameters, by name."""
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]


class Finetune(Strategy):
    """Plain fine-tuning: every event is the base's no-op."""

    name = "finetune"
    supports_data_parallel = True


def by_stage(parts: Sequence) -> list:
    """``parts`` (strategies or their classes) in the order they consolidate after a task: by
    :attr:`Strategy.after_task_stage`, ties in the order given."""
    return sorted(parts, key=lambda part: part.after_task_stage)


class Combined(Strategy):
    """Several strategies run together; events go to each in order (``batch`` and ``before_task`` are chained),
    ``after_task`` to each by :attr:`~Strategy.after_task_stage` (subspaces of the task's activity, then replay's
    phase, then the anchors of EWC and SI), so the order of the names does not matter. Several projection methods
    (``hlop+gpm``) each project gradients against the union of their subspaces (see
    :meth:`~spikecl.continual.projection.ProjectionStrategy.projected_bases`)."""

    def __init__(self, parts: Sequence[Strategy], names: Sequence[str] | None = None) -> None:
        """``names``: the names the parts were registered by (default: their classes' ``name``); they key each
        part's checkpoint state and result arrays, so two parts of one class name (a plugin's subclass of a
        built-in method that keeps its ``name``) stay apart."""
        super().__init__(parts[0].model, sim=parts[0].sim, execution=parts[0].execution)
        self.parts = list(parts)
        self.keys = list(names) if names is not None else [p.name for p in parts]
        if len(set(self.keys)) != len(self.keys) or len(self.keys) != len(self.parts):
            raise ConfigError(f"a combination needs one distinct name per part, got {self.keys}")
        self.name = "+".join(self.keys)
        self.uses_activity = any(p.uses_activity for p in parts)
        self.supports_data_parallel = all(p.supports_data_parallel for p in parts)
        for part in self.parts:
            part.combined_with(self.parts)

    def begin(self, tasks):
        for part in self.parts:
            part.begin(tasks)

    def training_samples(self, task, sizes):
        return next((n for part in self.parts if (n := part.training_samples(task, sizes)) != sizes[task]),
                    sizes[task])

    def before_task(self, task, train, seen):
        for key, part in zip(self.keys, self.parts):
            train = checked_task(key, part.before_task(task, train, seen))
        return train

    def batch(self, x, y, heads):
        for key, part in zip(self.keys, self.parts):
            x, y, heads = checked_batch(key, part.batch(x, y, heads))
        return x, y, heads

    def projections(self):
        return {layer: projector for part in self.parts for layer, projector in part.projections().items()}

    def penalty(self):
        terms = [t for t in (checked_penalty(key, p.penalty()) for key, p in zip(self.keys, self.parts))
                 if t is not None]
        return sum(terms) if terms else None

    def after_backward(self, activity=None):
        for part in self.parts:
            part.after_backward(activity)

    def after_step(self):
        for part in self.parts:
            part.after_step()

    def after_task(self, task, train):
        for part in by_stage(self.parts):
            part.after_task(task, train)

    def state_dict(self):
        return {key: p.state_dict() for key, p in zip(self.keys, self.parts)}

    def load_state_dict(self, state):
        state = state if isinstance(state, dict) else {}           # each part then names what it lacks
        for key, part in zip(self.keys, self.parts):
            # a checkpoint written before the parts were keyed by their registered names keyed them by class name
            part.load_state_dict(state[key] if key in state else state.get(type(part).name))

    def result_arrays(self):
        return {f"{key}.{k}": v for key, p in zip(self.keys, self.parts)
                for k, v in checked_arrays(key, p.result_arrays()).items()}
