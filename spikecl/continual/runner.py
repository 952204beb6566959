"""The run loop: one continual-learning run (one method, one seed), from config to results file.

For every task: the strategy may replace the training data, the trainer runs ``train.epochs`` epochs of mini-batches
(continual evaluation on all seen tasks every ``train.eval_every`` iterations), the strategy consolidates, the network
is tested on every task (a row of the accuracy matrix) and a checkpoint is written atomically. A killed run resumes
from its last checkpoint and ends with the same numbers as an uninterrupted one: all randomness after the network's
initialisation is drawn from generators seeded by (seed, task, epoch), and RNG states travel in the checkpoint.
Each task records what it was computed with (threads, CPU, processes, engine, device): a run resumed otherwise says
so in its results' environment. The checkpoint's reading and checks are :mod:`spikecl.continual.checkpoint`; what the
results record as the run's config, :mod:`spikecl.continual.run_record`.
"""

from __future__ import annotations

import functools
import math
import random
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from spikecl import progress
from spikecl.atomic import atomic_write, check_output
from spikecl.config import ExperimentConfig, check_seed, check_split_heads, experiment_from_dict
from spikecl.continual import metrics
from spikecl.continual.checkpoint import (RunState, check_progress, checkpoint_difference, checkpoint_setup,
                                          damaged_remedy, numpy_rng_state, read_checkpoint, set_numpy_rng_state,
                                          start_again, tasks_setup)
from spikecl.continual.execution import Execution
from spikecl.continual.projection import FULL_TOLERANCE, ProjectionStrategy, full_rank_bases, unused_entries
from spikecl.continual.results import ContinualResult, write_continual
from spikecl.continual.run_record import recorded_config, unshown_rules
from spikecl.continual.strategies import build_strategy, check_run, check_support, effective_options, validate_method
from spikecl.continual.strategy import (EVALUATION_DRAWS, MEASURE_DRAWS, Simulation, TaskData, checked_arrays,
                                       checked_batch, checked_task, checkpoint_state, derived_seed, own_parts,
                                       parts_of, purpose_seed, unsaved_state)
from spikecl.data.base import ROUNDING
from spikecl.data.streams import (Stream, built_from, check_samples, config_origin, source_crc, stream_difference,
                                  stream_from_config, ties_changed)
from spikecl.environment import (available_memory, blas_threads, cpu_model, environment, machine_kernels,
                                 source_commit)
from spikecl.errors import ConfigError, DataError, ExistsError, NumericalError, ResultsError, ShapeError, check_type
from spikecl.experiment_kind import check_switches, resolve_device
from spikecl.remedies import option
from spikecl.run_files import checkpoint_path
from spikecl.snn import measures
from spikecl.snn.checks import nonfinite_state, parameters_flag
from spikecl.snn.networks import build_network
from spikecl.snn.trainers import activation_bytes, evaluate, make_trainer


#: test samples per seen task on which the NeuroBench measures are taken after each task
MEASURE_SAMPLES = 100

#: the largest weight magnitude a run may reach: beyond 2^24 (about 1.7e7) float32 cannot take a step of 1 on a
#: weight, and a run past this bound has diverged even where its loss stayed finite (a data-parallel run whose
#: readout reached 3.5e17 was written as a result where one process had failed on a NaN loss)
WEIGHT_LIMIT = 1e8


def build_stream(cfg: ExperimentConfig, seed: int) -> Stream:
    """The task stream of an experiment for a run seed (``data.vary_split``: the seed also draws the validation
    split)."""
    check_type(cfg, ExperimentConfig, "build_stream: cfg", "spikecl.config.experiment_from_dict makes one")
    return stream_from_config(cfg.stream, cfg.data, seed)


def nan_tensors(value, where: str):
    """The places (``where`` with ``.key`` / ``[i]``) of the floating-point tensors inside ``value`` (nested dicts,
    lists and tuples of a checkpoint's state) that hold NaN, which no learned state does (an infinity may be a
    plugin's start value)."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and bool(torch.isnan(value).any()):
            yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from nan_tensors(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from nan_tensors(item, f"{where}[{i}]")


def _steps_on_host(optimizer: torch.optim.Optimizer) -> None:
    """Put the step counts of a loaded optimiser (Adam's) back on the host where torch keeps them (neither fused
    nor capturable): a checkpoint mapped to a GPU would leave them there, and every step would read them back."""
    for group in optimizer.param_groups:
        if group.get("fused") or group.get("capturable"):
            continue
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if torch.is_tensor(state.get("step")):
                state["step"] = state["step"].cpu()


def lr_factor(schedule: str, epoch: int, epochs: int, warmup: int = 0) -> float:
    """The learning rate of epoch ``epoch`` (0-based) of a task's ``epochs``, as a factor of ``train.lr``:
    1 (``"constant"``), or ``"cosine"``: (e + 1) / W over the ``warmup`` epochs W, then ½(1 + cos(π (e − W) /
    (epochs − W))), the HLOP code's warm-up and cosine schedule stepped per epoch (W = 0: torch's
    CosineAnnealingLR with T_max = epochs).

    >>> [round(lr_factor("cosine", e, 4), 3) for e in range(4)]
    [1.0, 0.854, 0.5, 0.146]
    """
    if schedule == "constant":
        return 1.0
    if epoch < warmup:
        return (epoch + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup)))


def _with_grad(method):
    """``method`` run with autograd on, whatever mode its caller left (``torch.no_grad``, ``set_grad_enabled(False)``,
    ``torch.inference_mode``, common in notebooks): the network, its data and its training need it."""
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with torch.inference_mode(False), torch.enable_grad():
            return method(*args, **kwargs)
    return wrapped


def threads_option(threads: int) -> str:
    """What runs this process with ``threads`` torch threads, in the caller's spelling: ``--threads N`` on the
    command line, ``torch.set_num_threads(N)`` in Python (:func:`spikecl.remedies.option`)."""
    return option(f"--threads {threads}", keyword=f"torch.set_num_threads({threads})")


def processes_option(processes: int) -> str:
    """What runs a run in ``processes`` data-parallel processes, in the caller's spelling: ``--nproc N`` on the
    command line, from Python ``torchrun --nproc_per_node N`` starting the script (:func:`spikecl.remedies.option`)."""
    return option(f"--nproc {processes}", keyword=f"torchrun --nproc_per_node {processes}")


class ContinualRun:
    """One method (or variant, ``[variants.<name>]``) on one seed. ``execute()`` trains through the stream and
    returns a :class:`ContinualResult`.

    ``execution`` (:class:`~spikecl.continual.execution.Execution`, default one process) says where the run
    executes, e.g. :class:`~spikecl.continual.data_parallel.DataParallel` over a process group; a strategy that
    does not support the run's trainer, scenario or execution is a ConfigError here, before training.

    The run owns torch's global generator: building it seeds that with ``seed`` (the network's initial weights),
    and its checkpoints keep and restore it. To keep your own stream of numbers, build and run it inside
    ``torch.random.fork_rng()``. spikecl draws nothing from numpy's and Python's global generators, but a
    checkpoint keeps them too, so that a strategy (a plugin) that seeds and draws from them resumes where it was:
    ``execute(resume=True)`` sets them to the killed run's states.
    """

    @_with_grad
    def __init__(self, cfg: ExperimentConfig, method: str, seed: int, stream: Stream | None = None,
                 execution: Execution | None = None) -> None:
        if not isinstance(cfg, ExperimentConfig):
            raise ConfigError(f"ContinualRun: cfg must be an ExperimentConfig (spikecl.config.experiment_from_dict "
                              f"makes one from a dict), got {type(cfg).__name__}")
        seed = check_seed(seed, "ContinualRun: seed")
        if torch.get_default_dtype() != torch.float32:      # the network would be built in it, its inputs float32
            raise ConfigError(f"ContinualRun: torch's default dtype is {torch.get_default_dtype()}; spikecl trains in "
                              "float32: torch.set_default_dtype(torch.float32) first")
        if stream is not None:
            check_type(stream, Stream, "ContinualRun: stream", "build_stream(cfg, seed) makes one")
        if execution is not None:
            check_type(execution, Execution, "ContinualRun: execution", "spikecl.continual.execution.Execution()")
        cfg = experiment_from_dict(cfg.to_dict())      # built from dataclasses: checked as a file's would be
        cfg, self.strategy_name = validate_method(cfg, method)
        check_split_heads(cfg, training=True)                           # the method's own (a variant's) stream
        self.cfg, self.method, self.seed = cfg, method, seed
        self.execution = execution if execution is not None else Execution()
        check_support(self.strategy_name, cfg.train, cfg.stream.scenario, self.execution.data_parallel)
        check_run(cfg, self.strategy_name)
        self.device = torch.device(resolve_device(cfg.device))
        self.stream = self._given(stream, cfg, seed) if stream is not None else build_stream(cfg, seed)
        torch.manual_seed(seed)
        self.net = build_network(cfg.network, self.stream.input_shape, self.stream.n_outputs,
                                 self.stream.n_heads).to(self.device)
        self._check_training_fits()
        self.execution.start(self.net)
        self.execution.check_same_data(source_crc(self.stream))
        self.sim = Simulation(cfg.network.num_steps, cfg.network.encoder, cfg.train.trainer, self.seed)
        self.strategy = build_strategy(self.strategy_name, self.net, cfg.strategy.options, self.sim, self.execution)
        self._noticed_full: set[str] = set()             # synapses a notice said are fully protected
        self._noticed_leaky: set[str] = set()            # synapses a notice said have a full basis not orthonormal
        self._noticed_unsaved = False                    # a plugin's state its checkpoints lack, noticed
        self.trainer = make_trainer(cfg.train.trainer, self.net, self.sim.num_steps, self.sim.encoder,
                                    cfg.train.precision)
        if cfg.train.compile:
            self._compile()
        if cfg.train.cuda_graph:
            if self.execution.data_parallel:
                raise ConfigError("train.cuda_graph: not supported in data-parallel runs; run with one process")
            self.trainer.use_cuda_graphs()
        self.optimizer = self._new_optimizer()
        self.train_sets = [self._task_data(t.index, t.x_train, t.y_train) for t in self.stream.tasks]
        self.test_sets = [self._task_data(t.index, t.x_test, t.y_test) for t in self.stream.tasks]
        self.strategy.begin(self.train_sets)
        self.run_state = RunState()
        self._stopped_in: tuple[str, bool] | None = None   # (the task an execute() stopped in, checkpointed?)
        for text in unused_entries(self.strategy) if self.execution.writes_files else ():
            progress.write_line(f"notice: {self.method}: {text}")

    def _check_training_fits(self) -> None:
        """A one-line ConfigError on the CPU where a training step cannot fit in the memory free (Linux would kill
        the run without a word): the weights' gradients and optimizer state (momentum: one copy more, Adam two) and a
        batch's activations (every layer's output at every step, sized by a one-sample pass; the online trainer was
        measured to need them too) are a lower bound of what it takes beside the weights and data already held."""
        free = available_memory() if self.device.type == "cpu" else None
        if free is None:
            return
        x = torch.tensor(self.stream.tasks[0].x_train[:1], dtype=torch.float32, device=self.device)   # a copy
        heads = torch.zeros(1, dtype=torch.long, device=self.device) if self.stream.n_heads > 1 else None
        t = self.cfg.train                        # the gradients, and as many again per optimizer state
        copies = 1 + (2 if t.optimizer == "adam" else int(t.momentum > 0))
        gradients = copies * sum(p.numel() * p.element_size() for p in self.net.parameters() if p.requires_grad)
        steps = self.cfg.network.num_steps
        size = min(t.batch_size, max(len(task.x_train) for task in self.stream.tasks))   # a batch holds no more
        batch = size * activation_bytes(self.net, x, steps, self.cfg.network.encoder, heads)
        if gradients + batch > free:
            gib = 2**30
            raise ConfigError(f"a training step of this network takes at least {(gradients + batch) / gib:.1f} GiB "
                              f"(gradients and optimizer state {gradients / gib:.1f}, a batch of {size} at "
                              f"num_steps = {steps}: {batch / gib:.1f}), more than the {free / gib:.1f} GiB of "
                              "memory free: a smaller network.hidden, train.batch_size or network.num_steps")

    def _compile(self) -> None:
        """Compile the trainer's forward pass once for the whole run (``train.compile``)."""
        if self.execution.data_parallel:
            raise ConfigError("train.compile: not supported in data-parallel runs; run with one process")
        self.trainer.compile()

    # -- data -------------------------------------------------------------------------------------------------
    def _task_data(self, task: int, x: np.ndarray, y: np.ndarray) -> TaskData:
        with warnings.catch_warnings():               # a stream's arrays are read-only; training never writes them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x_t = torch.as_tensor(x, dtype=torch.float32, device=self.device)
            y_t = torch.as_tensor(y, dtype=torch.long, device=self.device)
        heads = torch.full_like(y_t, self.stream.head(task))
        return TaskData(task, x_t, y_t, heads, self._mask(task))

    @staticmethod
    def _given(stream: Stream, cfg: ExperimentConfig, seed: int) -> Stream:
        """A stream built by hand, refused where the results file (which records ``cfg`` and ``seed``) would
        misdescribe it or an encoder would clamp it: another scenario, task count or stream kind, dataset and input
        code (its name, ``<kind>-<dataset>`` and ``-flyhash`` for codes) than ``cfg.stream``/``cfg.data`` describe,
        tasks without samples or out of order (:func:`check_samples`), any other difference from the stream ``cfg``
        builds for ``seed`` (classes, evaluation split, samples: :func:`stream_difference`; export and deploy rebuild
        that one; a stream ``build_stream(cfg, seed)`` returned is taken as it is), Poisson or latency inputs outside
        [0, 1]."""
        coded = "-flyhash" if cfg.stream.input_code == "flyhash" else ""
        for what, given, recorded in (("cfg.stream.scenario", stream.scenario, cfg.stream.scenario),
                                      ("cfg.stream.n_tasks", len(stream), cfg.stream.n_tasks),
                                      ("<cfg.stream.kind>-<cfg.data.dataset>[-flyhash]", stream.name,
                                       f"{cfg.stream.kind}-{cfg.data.dataset}{coded}")):
            if given != recorded:
                raise ConfigError(f"ContinualRun: the given stream has {given!r}, {what} {recorded!r}; the results "
                                  "record the config, so make them agree")
        check_samples(stream)
        if cfg.network.encoder in ("poisson", "latency"):
            for task in stream.tasks:
                for x in (task.x_train, task.x_test):
                    if np.min(x) < -ROUNDING or np.max(x) > 1 + ROUNDING:     # a rotated 1.0000001 is 1
                        raise DataError(f"stream {stream.name!r}: task {task.index + 1} holds inputs outside 0..1 "
                                        f"(min {np.min(x):g}, max {np.max(x):g}), which the {cfg.network.encoder} "
                                        "encoder would clamp; scale them to 0..1")
        same_origin = built_from(stream) == config_origin(cfg.stream, cfg.data, seed)   # build_stream(cfg, seed)'s
        if same_origin:
            return stream
        built = build_stream(cfg, seed)
        difference = stream_difference(stream, built)
        if difference:
            raise ConfigError(f"ContinualRun: the given stream differs from the one the config builds for seed {seed} "
                              f"({difference}); the results record the config and seed, so give build_stream(cfg, "
                              "seed)'s stream or change the config")
        return built                        # the same samples, with what the config's build knows of them

    def _mask(self, task: int) -> torch.Tensor | None:
        active = self.stream.active_outputs(task)
        return None if bool(np.all(active)) else torch.as_tensor(active, device=self.device)

    def _new_optimizer(self, params: list[torch.nn.Parameter] | None = None) -> torch.optim.Optimizer:
        """The configured optimizer over ``params`` (default: the parameters that now require gradients)."""
        t = self.cfg.train
        params = [p for p in self.net.parameters() if p.requires_grad] if params is None else params
        if t.optimizer == "adam":
            return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)

    # -- evaluation -------------------------------------------------------------------------------------------
    def _accuracy(self, data: TaskData, stage: int, limit: int | None = None) -> float:
        """Accuracy on the first ``limit`` samples of ``data`` (all by default) with the outputs active after task
        ``stage``; Poisson draws are seeded by (seed, task) (:func:`~spikecl.continual.strategy.purpose_seed`)."""
        n = len(data) if limit is None else min(limit, len(data))
        random_inputs = self.sim.encoder == "poisson"

        def score(start: int, stop: int) -> float:
            generator = None
            if random_inputs:
                seed = purpose_seed(self.seed, data.task, EVALUATION_DRAWS)
                generator = torch.Generator(self.device).manual_seed(seed)
            return evaluate(self.net, data.x[start:stop], data.y[start:stop], self.sim.num_steps, self.sim.encoder,
                            data.heads[start:stop], self._mask(stage), self.cfg.train.eval_batch_size, generator)

        return self.execution.accuracy(score, n, random_inputs)

    def accuracy_row(self, stage: int) -> list[float]:
        """Test accuracy on every task with the outputs active after task ``stage``."""
        return [self._accuracy(test, stage) for test in self.test_sets]

    def _continual_eval(self, stage: int) -> None:
        """While ``stage`` is trained (the task itself; the last one for multitask, which trains every task at once):
        accuracy of every task up to ``stage`` on its first ``eval_samples`` test samples (NaN for the others),
        recorded as an evaluation while ``stage`` is trained."""
        row = [self._accuracy(test, stage, self.cfg.train.eval_samples) if test.task <= stage else float("nan")
               for test in self.test_sets]
        p = self.run_state
        p.curve_iterations.append(p.iteration)
        p.curve_task.append(stage)
        p.curve_accuracy.append(row)

    def setup(self) -> dict:
        """What this process computes with besides the config (:data:`~spikecl.continual.checkpoint.SETUP_KEYS`):
        the device, torch's and numpy's BLAS threads, the CPU and torch's vector instruction set, the process count,
        the spikecl checkout's commit (None for an installed copy), torch's and numpy's versions and the engine."""
        return {"device": str(self.device), "torch_threads": torch.get_num_threads(), "blas_threads": blas_threads(),
                "cpu": cpu_model(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "processes": self.execution.processes, "spikecl_source": source_commit(),
                "torch": str(torch.__version__), "numpy": str(np.__version__), "engine": self.cfg.network.engine}

    def measure(self, task: int) -> dict[str, float]:
        """NeuroBench measures (:mod:`spikecl.snn.measures`) after task ``task`` on the first
        :data:`MEASURE_SAMPLES` test samples of every task seen so far (each with its own head); Poisson draws are
        seeded by (seed, task)."""
        seen = self.test_sets[: task + 1]
        x = torch.cat([d.x[:MEASURE_SAMPLES] for d in seen])
        heads = torch.cat([d.heads[:MEASURE_SAMPLES] for d in seen])
        generator = torch.Generator(self.device).manual_seed(purpose_seed(self.seed, task, MEASURE_DRAWS))
        return {**measures.static(self.net),
                **measures.workload(self.net, x, self.sim.num_steps, self.sim.encoder,
                                    heads if self.stream.n_heads > 1 else None, self.cfg.train.eval_batch_size,
                                    generator)}

    # -- training ---------------------------------------------------------------------------------------------
    def train_task(self, task: int, bar=None) -> int:
        """Train on one task (``train.epochs`` epochs), with continual evaluation every ``eval_every`` iterations;
        returns the stage whose outputs the strategy trained (``task``, or the last one for multitask training).

        ``bar``: a tqdm progress bar advanced per batch; its total is re-estimated from this task's size and the
        later tasks' (as the strategy will train on them: :meth:`.Strategy.training_samples`).
        """
        t = self.cfg.train
        seen = self.train_sets[: task + 1]
        train = checked_task(self.strategy.name, self.strategy.before_task(task, self.train_sets[task], seen))
        self._notice_fully_protected(task)
        if bar is not None:
            sizes = [len(d) for d in self.train_sets]
            later = [self.strategy.training_samples(k, sizes) for k in range(task + 1, len(sizes))]
            bar.total = bar.n + t.epochs * sum(-(-self._epoch_samples(n) // t.batch_size) for n in [len(train), *later])
            bar.refresh()
        if t.reset_optimizer and task > 0:
            self.optimizer = self._new_optimizer()
        stage = max(task, train.task)                # multitask: the last, every output of the stream
        mask = train.mask
        for epoch in range(t.epochs):
            for group in self.optimizer.param_groups:
                group["lr"] = t.lr * lr_factor(t.lr_schedule, epoch, t.epochs, t.warmup_epochs)
            shuffle = torch.Generator().manual_seed(derived_seed(self.seed, task, epoch))
            spikes = torch.Generator(self.device).manual_seed(derived_seed(self.seed, task, epoch, 1))
            order = torch.randperm(len(train), generator=shuffle).to(self.device)
            for start in range(0, self._epoch_samples(len(train)), t.batch_size):
                idx = order[start:start + t.batch_size]
                x, y, heads = checked_batch(self.strategy.name,
                                            self.strategy.batch(train.x[idx], train.y[idx], train.heads[idx]))
                self.train_step(x, y, heads, mask, spikes)
                self.run_state.iteration += 1
                if t.eval_every and self.run_state.iteration % t.eval_every == 0:
                    self._continual_eval(stage)
                if bar is not None:
                    bar.update()
        self.trainer.flush_checks()
        self.strategy.after_task(task, train)
        checked_arrays(self.strategy.name, self.strategy.result_arrays())      # now, not after the last task
        self._check_weights()
        return stage

    def _check_weights(self) -> None:
        """NumericalError if a weight or a buffer (batch norm's running statistics) is NaN or infinite after a
        task's training and its strategy's after-task phase (e.g. replay's buffer training), which check no loss of
        their own (the finiteness of each tensor's sum, which allocates nothing of a weight's size; only a sum that
        is not finite, from a NaN or an overflow, is looked into tensor by tensor), or a weight has grown beyond
        :data:`WEIGHT_LIMIT` (a run that diverged while its loss stayed finite; each tensor's extremes, a second
        read of the device)."""
        remedy = "lower train.lr, the strategy's step sizes or network.init_gain"
        if not bool(parameters_flag(self.net)) and (bad := nonfinite_state(self.net)) is not None:
            raise NumericalError(f"{bad} became NaN or infinite in the task's training or {self.strategy_name}'s "
                                 f"after-task phase; {remedy}")
        sizes = {name: torch.stack(p.detach().aminmax()).abs().max()          # no |p| of the weight's size
                 for name, p in self.net.named_parameters() if p.numel()}
        if sizes and float(largest := torch.stack(list(sizes.values())).max()) > WEIGHT_LIMIT:
            name = next(name for name, size in sizes.items() if float(size) > WEIGHT_LIMIT)
            raise NumericalError(f"{name} grew to |w| = {float(largest):.3g} (beyond {WEIGHT_LIMIT:g}) in the task's "
                                 f"training or {self.strategy_name}'s after-task phase: the run diverged though its "
                                 f"loss stayed finite; {remedy}")

    def _epoch_samples(self, n: int) -> int:
        """Samples an epoch over ``n`` trains on: all, or with ``train.compile`` or ``train.cuda_graph`` only whole
        batches when there is one (a fixed batch shape compiles or captures once; the last partial batch of the
        shuffle is dropped)."""
        batch, fixed = self.cfg.train.batch_size, self.cfg.train.compile or self.cfg.train.cuda_graph
        return n - n % batch if fixed and n >= batch else n

    def train_step(self, x: torch.Tensor, y: torch.Tensor, heads: torch.Tensor, mask: torch.Tensor | None,
                   generator: torch.Generator) -> None:
        """One optimiser step on a (strategy-extended) batch ``x`` [B, ...], ``y`` [B], ``heads`` [B]."""
        self.execution.train_step(self.trainer, x, y, heads, mask, self.optimizer, self.strategy, generator)

    # -- checkpoints ------------------------------------------------------------------------------------------
    def save_checkpoint(self, path: Path) -> None:
        state = {"config": self.cfg.to_dict(), "method": self.method, "seed": self.seed,
                 "options": effective_options(self.strategy_name, self.cfg.strategy.options),
                 "progress": asdict(self.run_state), "model": self.net.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "optimizer_params": self._optimizer_params(),
                 "trainable": [n for n, p in self.net.named_parameters() if p.requires_grad],
                 "strategy": checkpoint_state(self.strategy),
                 "rng": {"torch": torch.get_rng_state(), "numpy": numpy_rng_state(), "python": random.getstate(),
                         **({"cuda": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {})},
                 "torch_threads": torch.get_num_threads(), "data_crc": source_crc(self.stream),
                 "subsample_ties": "label order",
                 "cpu": machine_kernels(), "processes": self.execution.processes,
                 **unshown_rules(self.cfg, self.strategy_name)}
        atomic_write(path, lambda tmp: torch.save(state, tmp), overwrite=True)
        unsaved = [] if self._noticed_unsaved else unsaved_state(self.strategy)
        if unsaved and self.execution.writes_files:
            self._noticed_unsaved = True
            progress.write_line(f"notice: {self.method} keeps {', '.join(unsaved)} but defines no state_dict: its "
                                "checkpoint does not hold them, so a resumed run starts without them and may end with "
                                "other numbers than an uninterrupted one")

    def _optimizer_params(self) -> list[str]:
        """The names of the optimizer's parameters in its order (a projection method freezes biases and norms from
        the second task on, and the optimizer rebuilt then holds fewer)."""
        names = {id(p): n for n, p in self.net.named_parameters()}
        return [names[id(p)] for group in self.optimizer.param_groups for p in group["params"]]

    def load_checkpoint(self, path: Path, discard_stale: bool = False) -> bool:
        """Continue from the checkpoint ``path``. One written by another experiment config, method or seed, or a
        damaged or foreign file, is a one-line :class:`ResultsError`, or with ``discard_stale`` left unread (returns
        False; the first checkpoint saved replaces it)."""
        try:
            state = read_checkpoint(path, self.device)
        except ResultsError:
            if discard_stale:
                return False
            raise
        differs = checkpoint_difference(state, self.method, self.seed, self.cfg, self.strategy_name)
        if differs and discard_stale:
            return False
        if differs:
            raise ResultsError(f"{path} was written by a different experiment config ({differs} differs); "
                               f"{start_again()}")
        if "subsample_ties" not in state and ties_changed(self.stream):   # written before: on other samples
            if discard_stale:
                return False
            raise ResultsError(f"{path} was written when a task's subsample could differ by machine or drop a "
                               "class (before 2026-12-05); this stream's subsample is another now, so its tasks would "
                               f"mix two; {start_again()}")
        read, now = state.get("data_crc"), source_crc(self.stream)
        if None not in (read, now) and read != now:                       # data.data_dir may move, not change
            if discard_stale:
                return False
            raise ResultsError(f"{path} was written by a run on other {self.cfg.data.dataset} files (their images or "
                               f"labels differ from those in data.data_dir now); point {option('--data-dir')} at the "
                               f"files it trained on, or {start_again()}")
        try:
            self._restore(state)
        except PluginStateError as exc:
            raise ResultsError(f"{path}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError, ShapeError,
                ConfigError) as exc:                # ConfigError: neuron buffers other than its own config's
            raise ResultsError(f"{path} is not a consistent spikecl run checkpoint ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:120]}); {damaged_remedy()}") from None
        if self.execution.writes_files:                                    # what else decides the rounding
            self._notice_resumed_differently(path, state)
        self._notice_fully_protected(self.run_state.next_task, resumed=True)
        if self.execution.writes_files and self.device.type == "cpu":       # what decides a CPU run's rounding
            threads, written_on, here = state.get("torch_threads"), state.get("cpu"), machine_kernels()
            if threads not in (None, torch.get_num_threads()):
                progress.write_line(f"notice: {path.name} was written with {threads} torch thread"
                                    f"{'s' * (threads != 1)}, this run has {torch.get_num_threads()}: the resumed "
                                    "run may end with other numbers than an "
                                    f"uninterrupted one ({threads_option(threads)} resumes exactly)")
            if written_on not in (None, here):
                progress.write_line(f"notice: {path.name} was written on {written_on}, this run is on {here}: the "
                                    "resumed run may end with other numbers than an uninterrupted one (vectorised "
                                    "kernels round differently)")
        return True

    def _notice_fully_protected(self, task: int, resumed: bool = False) -> None:
        """A notice, once per run and synapse, where a projection protects every input dimension of a synapse from
        ``task`` on (``resumed``: as the checkpoint left it, maybe from an earlier task): later gradients no longer
        change its weights, so a new task's accuracy may stay at chance; or where a basis of as many rows as inputs
        is not orthonormal, so that the weights still change and earlier tasks are not protected."""
        new = full_rank_bases(self.strategy, skip=self._noticed_full | self._noticed_leaky)
        full = {name: n for name, (n, low, high) in new.items() if max(-low, high) <= FULL_TOLERANCE}
        leaky = {name: found for name, found in new.items() if name not in full}
        self._noticed_full |= set(full)
        self._noticed_leaky |= set(leaky)
        if not new or not self.execution.writes_files:
            return
        since = f"from task {task + 1} on, or earlier (as the checkpoint left it)" if resumed else \
            f"from task {task + 1} on"
        if full:
            names = ", ".join(f"{name} ({n})" for name, n in full.items())
            phase = next((part.name for part in parts_of(self.strategy) if part.trains_unprojected), None)
            still = f"; {phase}'s own phase, which trains without projection, still does" if phase else ""
            progress.write_line(f"notice: {self.method} protects every input dimension of {names} {since}: later "
                                "tasks' gradients no longer change those weights (what a schedule fixing that synapse "
                                f"asks, e.g. a fixed readout; otherwise a schedule too large for the network){still}")
        for name, (n, low, high) in leaky.items():
            reversed_ = f", and reverses {100 * -low:.1f} % along another" if low < -FULL_TOLERANCE else ""
            progress.write_line(
                f"notice: {self.method}'s basis of {name} has as many rows as its {n} inputs {since}, but they are "
                f"not orthonormal: I − HᵀH keeps {100 * high:.1f} % of a weight gradient along some direction"
                f"{reversed_}, so those weights still change and earlier tasks are not protected there "
                "(strategy.hlop.orthonormalize = true protects every dimension)")

    def _notice_unlearned(self, task: int) -> None:
        """A notice where task ``task``'s accuracy right after its training (the matrix's newest row) is no better
        than guessing among the classes its samples are told apart from: its own, or in class-IL every class learned
        so far (the run goes on; its numbers stay as measured)."""
        among = self.test_sets[: task + 1] if self.cfg.stream.scenario == "class" else [self.test_sets[task]]
        classes = int(torch.unique(torch.cat([d.y for d in among])).numel())
        learned = float(self.run_state.rows[-1][task])
        if self.strategy.trains_ahead or not self.execution.writes_files or classes < 2 or learned > 1 / classes:
            return
        which = f"the {classes} classes learned so far" if len(among) > 1 else f"its {classes} classes"
        projects = any(isinstance(part, ProjectionStrategy) for part in parts_of(self.strategy))
        why = ("train.lr is 0" if self.cfg.train.lr == 0 else
               ("a projection may leave it no room (e.g. a protected shared readout in class-IL), or " if projects
                else "") + "it needs more epochs or a larger train.lr")
        progress.write_line(f"notice: {self.method} learned task {task + 1} no better than guessing among {which}: "
                            f"{100 * learned:.1f} % right after training on it (guessing: {100 / classes:.1f} %); "
                            f"{why}")

    def _notice_resumed_differently(self, path: Path, state: dict) -> None:
        """Notices for what the resume check ignores but the numbers depend on: the process count (how batches
        are split and summed), the spikecl commit that wrote the checkpoint, torch's and numpy's versions and the
        engine (another rounding of the same maths)."""
        processes = state.get("processes")
        if processes not in (None, self.execution.processes):
            progress.write_line(f"notice: {path.name} was written by a run of {processes} process(es), this one has "
                                f"{self.execution.processes}: the resumed run may end with other numbers than an "
                                f"uninterrupted one ({processes_option(processes)} resumes exactly)")
        last = (state["progress"].get("setups") or [{}])[-1]
        written_by, here = last.get("spikecl_source"), source_commit()
        if None not in (written_by, here) and written_by != here:
            progress.write_line(f"notice: {path.name} was written by spikecl {written_by}, this is {here}: the "
                                "tasks from here on may compute otherwise (the results file records both)")
        versions = [f"{name} {last[name]} (now {now})" for name, now in (("torch", str(torch.__version__)),
                                                                         ("numpy", str(np.__version__)))
                    if last.get(name) not in (None, now)]
        if versions:
            progress.write_line(f"notice: {path.name} was written with {' and '.join(versions)}: the tasks from here "
                                "on may compute otherwise (the results file records both)")
        engine = ((state.get("config") or {}).get("network") or {}).get("engine")
        if engine not in (None, self.cfg.network.engine):
            progress.write_line(f"notice: {path.name} was written with network.engine = {engine!r}, this run uses "
                                f"{self.cfg.network.engine!r}: its tasks from here on train on another engine, which "
                                "rounds differently (the results file records the new one)")

    def _restore(self, state: dict) -> None:
        """Put the checkpoint ``state`` into this run (a state that does not fit raises)."""
        run_state = RunState(**state["progress"])
        if not run_state.setups and isinstance(run_state.next_task, int):    # written before setups were recorded
            run_state.setups = [checkpoint_setup(state)] * run_state.next_task
        check_progress(run_state, len(self.stream))
        bad = [k for k, v in state["model"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ValueError(f"weights {bad[0]} contain NaN or infinity")
        bad = next(nan_tensors(state["strategy"], "strategy"), None)
        if bad:
            raise ValueError(f"the strategy's state {bad} contains NaN")
        expected = self.net.state_dict().keys()
        missing, extra = sorted(expected - state["model"].keys()), sorted(state["model"].keys() - expected)
        if missing or extra:
            raise ValueError(f"its model lacks {missing[0]}" if missing else
                             f"its model holds {extra[0]}, which this network has not")
        self.run_state = run_state
        self.net.load_state_dict(state["model"])
        if "trainable" in state:                      # what the strategy had frozen, and the optimizer it left
            params = dict(self.net.named_parameters())
            trainable, optimised = set(state["trainable"]), list(state["optimizer_params"])
            if not (trainable and trainable <= params.keys() and set(optimised) <= params.keys()):
                raise ValueError("its trainable or optimised parameters are none, or not the network's")
            for name, p in params.items():
                p.requires_grad_(name in trainable)
            self.optimizer = self._new_optimizer([params[name] for name in optimised])
        self.optimizer.load_state_dict(state["optimizer"])
        _steps_on_host(self.optimizer)
        own = [type(part) for part in own_parts(self.strategy)]
        try:
            self.strategy.load_state_dict(state["strategy"])
        except Exception as exc:
            if not own:
                raise
            where = f"{own[0].__name__}.load_state_dict ({own[0].__module__})"
            raise PluginStateError(f"{where} could not read the state the checkpoint holds ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:120] if str(exc) else ''}): a checkpoint of another "
                                   "version of that method? Fix its load_state_dict, or run with "
                                   f"{option('--overwrite')} to start again") from None
        torch.set_rng_state(state["rng"]["torch"].cpu())     # the file is mapped to the run's device
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)
        set_numpy_rng_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])

    # -- the whole run ----------------------------------------------------------------------------------------
    @_with_grad
    def execute(self, results: str | Path | None = None, resume: bool = False, overwrite: bool = False,
                progress_bar: bool = True, replace_stale: bool = False) -> ContinualResult:
        """Train through the stream and return (and, with ``results``, write) the run's results.

        ``resume``: continue from the checkpoint beside ``results`` if there is one (``replace_stale``, or
        ``overwrite`` with it, as ``--resume --overwrite``: start afresh where it was made with other settings).
        Without ``overwrite`` an existing results file is an :class:`ExistsError` (with ``resume`` too: the run
        finished; :func:`~spikecl.continual.results.read_continual` reads it). Checkpoints, results and the progress
        bar come only from a process whose execution ``writes_files``. The run keeps its state: a second call trains
        nothing more and returns the same results (a new ``ContinualRun`` trains again); after a call stopped during
        a task (Ctrl-C, an error), which leaves the task half-trained, it is a one-line :class:`ConfigError`.
        """
        if self._stopped_in is not None:
            where, checkpointed = self._stopped_in
            raise ConfigError(f"ContinualRun.execute: this run stopped during {where}, which left its network, "
                              "optimizer and method part-way through a task; build a new ContinualRun"
                              + (" (execute(results, resume=True) continues from the last task's checkpoint)"
                                 if checkpointed else ""))
        check_switches(resume=resume, overwrite=overwrite, replace_stale=replace_stale)
        if resume and results is None:
            raise ConfigError("execute(resume=True) needs the results path whose checkpoint it continues")
        results = Path(results) if results is not None else None     # a str path as the other writers take
        if results is not None and results.suffix.lower() == ".ckpt":
            raise ConfigError(f"{results}: a results path may not end in .ckpt, the suffix of the run's checkpoint "
                              "(it would be written over its own results); name it .h5")
        writes = self.execution.writes_files
        ckpt = checkpoint_path(results) if results is not None else None
        if results is not None and writes:
            if resume and not overwrite and results.is_file() and not ckpt.exists():
                raise ExistsError(f"{results} exists: the run finished (spikecl.continual.results.read_continual "
                                  "reads it; overwrite=True trains it again)")
            check_output(results, overwrite)                 # before any training, not after it
        if ckpt is not None and resume and ckpt.exists():   # a stale one is left unread, replaced at the first save
            self.load_checkpoint(ckpt, replace_stale or overwrite)
        p = self.run_state
        if p.next_task == 0 and not p.rows:
            p.rows.append(self.accuracy_row(0))
        # total set per task; closed however the loop ends, so an error or Ctrl-C leaves no half-drawn bar
        with progress.progress_bar(0, "batch", enabled=progress_bar and writes, leave=False) as bar:
            for task in range(p.next_task, len(self.stream)):
                bar.set_description(f"{self.method} seed {self.seed} task {task + 1}/{len(self.stream)}")
                started = time.perf_counter()
                try:
                    p.stage = stage = self.train_task(task, bar)
                    p.task_seconds.append(time.perf_counter() - started)
                    p.task_ends.append(p.iteration)
                    p.rows.append(self.accuracy_row(stage))
                    self._notice_unlearned(task)
                    p.measures.append(self.measure(task))
                    p.setups.append(self.setup())
                except BaseException as exc:              # Ctrl-C, an error: the task is half-done
                    self._stopped_in = f"task {task + 1} ({type(exc).__name__})", ckpt is not None and writes
                    raise
                p.next_task = task + 1
                bar.set_postfix(acc=f"{100 * np.mean(p.rows[-1][: task + 1]):.1f}%")
                if ckpt is not None and writes:
                    self.save_checkpoint(ckpt)
        result = self.result()
        if results is not None and writes:
            write_continual(results, result, overwrite=overwrite)
            ckpt.unlink(missing_ok=True)
        return result

    def result(self) -> ContinualResult:
        p = self.run_state
        acc = np.asarray(p.rows, dtype=np.float64)
        n_tasks = acc.shape[1]
        curves = np.asarray(p.curve_accuracy, dtype=np.float64).reshape(-1, n_tasks)
        curve_task = np.asarray(p.curve_task, dtype=np.int64)
        trained_after = any(part.trains_unprojected for part in parts_of(self.strategy))   # replay's phase
        summary = metrics.summarize(acc, evals=curves if len(curves) else None,
                                    eval_task=curve_task if len(curves) else None, scenario=self.cfg.stream.scenario,
                                    continual=self.cfg.train.eval_every > 0, eval_iterations=p.curve_iterations,
                                    task_ends=None if trained_after else p.task_ends)
        if self.strategy.trains_ahead:             # every task trained at once: no transfer, no task before another
            summary.update({k: float("nan") for k in metrics.AT_ONCE_UNDEFINED if k in summary})
        model = {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        config = recorded_config(self.cfg, self.method, self.strategy_name, self.seed)
        crc = source_crc(self.stream)                # the files read (export and deploy rebuild the same data)
        env = {**environment(), "device": str(self.device), "processes": self.execution.processes,
               **({"data_crc": crc} if crc is not None else {}),
               **tasks_setup(p.setups)}             # what the tasks were computed with, in this process or before
        return ContinualResult(self.method, self.seed, config, acc, np.asarray(p.curve_iterations, dtype=np.int64),
                               curve_task, curves, np.asarray(p.task_seconds), summary, env, model,
                               self.strategy.result_arrays(), measure_arrays(p.measures, len(p.task_seconds)),
                               np.asarray(p.task_ends if len(p.task_ends) == n_tasks else [], dtype=np.int64),
                               trained_after)


class PluginStateError(Exception):
    """A method of the user's own (a plugin's strategy) failed to read its state from a checkpoint: its code, not the
    checkpoint, is the likely fault."""


def measure_arrays(rows: list[dict], n_tasks: int) -> dict[str, np.ndarray]:
    """Per-task measures ``{name: float64 [n_tasks]}`` from one dict per measured task; tasks trained before a
    resumed checkpoint recorded measures are NaN (they come first)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    pad = [{}] * (n_tasks - len(rows))
    return {k: np.asarray([row.get(k, np.nan) for row in pad + rows], dtype=np.float64) for k in keys}


