"""Task streams and scenarios (numpy only).

Kinds of stream:

* ``permuted`` — every task applies its own fixed random permutation to the pixels (all classes in every task).
* ``rotated`` — task ``i`` rotates every image by ``i · max_angle_deg / n_tasks`` degrees (bilinear, zero padding).
* ``split`` — the classes are cut into ``n_tasks`` groups of ``classes_per_task`` (in natural order 0, 1, …).
* ``domains`` — one task per recording domain of the dataset (``Dataset.domains``; SHD: English, then German),
  each with the classes of that domain; labels within a domain are 0..c−1 in class order (domain and task
  scenarios) or the dataset's own (class scenario).

Event datasets (frames ``[N, T, C, H, W]``) take split and domains streams; ``Stream.input_shape`` is one frame's.

Scenarios (van de Ven, Tuytelaars & Tolias 2022):

Evaluation split: ``validation`` > 0 holds that fraction of the dataset's training images out of every task's
training set (stratified by class, the same images in every task, as the test images are). With
``eval_split = "validation"`` each task's evaluation arrays (``x_test``/``y_test``) are these held-out images and
no test image is evaluated, so settings can be chosen without touching test data (the test files are still loaded
and checked, and their CRC recorded); with ``"test"`` they are the test images.

* ``task`` — one readout head per task; labels are 0..c−1 within the task; the task identity picks the head.
* ``domain`` — one shared head; labels 0..c−1 in every task.
* ``class`` — one head over every class of the dataset, of which only the classes seen so far are active (a split
  stream leaving classes out keeps their outputs, never active).

Input codes (``stream.input_code``): ``dense`` keeps the pixels; ``flyhash`` replaces every image of every task by its
fixed k-winners fly-hash code (:mod:`spikecl.data.codes`), the same code for every task of a run.
``stream.standardize = [mean, std]`` gives the network dense images as ``(x - mean) / std``, after the task's
permutation or rotation (as the official HLOP and GPM loaders standardise MNIST before permuting it: the same
numbers, since both act on each pixel alone; a rotation's empty corners are 0 before it).

:func:`stream_from_config` is the one place an experiment's stream is built from its config: training, export and
deployment all call it, so they see the same tasks, splits and input code.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import Callable

import numpy as np

import dataclasses as _dc

from spikecl.config import STREAM_KIND_OPTIONS, DataConfig, StreamConfig, check_one_class_heads, check_seed
from spikecl.data.base import dataset_crc
from spikecl.data.codes import FlyHash, FlyHashConfig
from spikecl.data.datasets import Dataset, dataset_files, load_dataset, registered_crc, training_and_evaluation
from spikecl.data.events import EventBinning
from spikecl.errors import ConfigError, DataError
from spikecl.options import check_bounds, check_value

KINDS = ("permuted", "rotated", "split", "domains")
SCENARIOS = ("task", "domain", "class")
DATA_SPLIT_SEED = 0  # the validation split of every run seed unless data.vary_split
#: tells :func:`train_subsample_seed`'s draws apart from the stream's other seeded draws
TRAIN_SUBSAMPLE_PURPOSE = 1000


@dataclass(frozen=True)
class Task:
    """One task: images float32 [N, C, H, W] (or event frames [N, T, C, H, W]), labels int64 [N] as the network must
    predict them, and the output units (``classes``) the task uses. ``x_test``/``y_test`` hold the evaluation split
    named by ``eval_split`` (the test images, or the validation images held out of training)."""

    index: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[int, ...]
    eval_split: str = "test"


@dataclass(frozen=True)
class Stream:
    """A sequence of tasks in a scenario, with the readout they need (``n_heads`` heads of ``n_outputs``)."""

    name: str
    scenario: str
    tasks: tuple[Task, ...]
    n_outputs: int
    n_heads: int
    input_shape: tuple[int, int, int]

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self):
        return iter(self.tasks)

    def __getitem__(self, index: int) -> Task:
        return self.tasks[index]

    def head(self, task_index: int) -> int:
        """The readout head of a task (task-incremental: its own; otherwise the shared head 0)."""
        return task_index if self.scenario == "task" else 0

    def active_outputs(self, task_index: int) -> np.ndarray:
        """``[n_outputs]`` bool: outputs the learner may use after tasks 0..task_index (class-IL: those seen)."""
        if self.scenario != "class":
            return np.ones(self.n_outputs, dtype=bool)
        active = np.zeros(self.n_outputs, dtype=bool)
        for task in self.tasks[: task_index + 1]:
            active[list(task.classes)] = True
        return active


def check_samples(stream: Stream) -> Stream:
    """``stream``, refused (DataError naming the task) when a task's training or evaluation split holds no samples,
    or images and labels of unequal count (its row of the accuracy matrix could not be measured), or when the tasks'
    indices are not 0, 1, ... in order (task-incremental heads and results follow them)."""
    indices = [task.index for task in stream.tasks]
    if indices != list(range(len(indices))):
        raise DataError(f"stream {stream.name!r}: task indices {indices} are not 0..{len(indices) - 1} in order")
    for task in stream.tasks:
        for split, x, y in (("training", task.x_train, task.y_train), (task.eval_split, task.x_test, task.y_test)):
            if len(x) != len(y):
                raise DataError(f"stream {stream.name!r}: task {task.index + 1} has {len(x)} {split} images but "
                                f"{len(y)} labels")
            if not len(y):
                raise DataError(f"stream {stream.name!r}: task {task.index + 1} has no {split} samples")
    return stream


def stream_difference(given: Stream, expected: Stream) -> str | None:
    """The first thing in which stream ``given`` differs from ``expected`` (``"n_outputs 10 against 2"``, ``"task
    2's x_test"``), or None where they hold the same tasks, classes, evaluation splits and samples, bit for bit."""
    for field in ("name", "scenario", "n_outputs", "n_heads", "input_shape"):
        a, b = getattr(given, field), getattr(expected, field)
        if a != b:
            return f"{field} {a!r} against {b!r}"
    if len(given) != len(expected):
        return f"{len(given)} tasks against {len(expected)}"
    for a, b in zip(given.tasks, expected.tasks):
        for field in ("classes", "eval_split"):
            if getattr(a, field) != getattr(b, field):
                return f"task {b.index + 1}'s {field} {getattr(a, field)!r} against {getattr(b, field)!r}"
        for field in ("x_train", "y_train", "x_test", "y_test"):
            x, y = np.asarray(getattr(a, field)), getattr(b, field)
            if x.shape != y.shape or x.dtype != y.dtype or not np.array_equal(x, y):
                return f"task {b.index + 1}'s {field} (shape {x.shape} {x.dtype} against {y.shape} {y.dtype})"
    return None


def rotate(images: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate ``images`` [N, C, H, W] by ``angle_deg`` counter-clockwise as displayed (90° equals
    ``np.rot90``) about the centre; bilinear interpolation, zeros outside. Computed in float; integer images come
    back rounded in their own dtype."""
    angle_deg = check_value(angle_deg, float, "stream.max_angle_deg")
    h, w = images.shape[-2:]
    theta = np.deg2rad(angle_deg)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    # inverse map: for every output pixel, where it comes from in the input
    dy, dx = rows - cy, cols - cx
    src_y = cy + np.cos(theta) * dy + np.sin(theta) * dx
    src_x = cx - np.sin(theta) * dy + np.cos(theta) * dx
    src_y, src_x = np.round(src_y, 9), np.round(src_x, 9)
    y0, x0 = np.floor(src_y).astype(int), np.floor(src_x).astype(int)
    fy, fx = src_y - y0, src_x - x0
    dtype = images.dtype
    work = np.float64 if dtype.kind not in "fc" else dtype
    images = images.astype(work, copy=False)
    out = np.zeros_like(images)
    for oy, ox, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)),
                           (1, 1, fy * fx)):
        yy, xx = y0 + oy, x0 + ox
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w) & (weight > 0)
        out[..., inside] += images[..., yy[inside], xx[inside]] * weight[inside].astype(work)
    if work is not dtype:
        info = np.iinfo(dtype) if dtype.kind in "iu" else None
        out = np.rint(out) if info is None else np.clip(np.rint(out), info.min, info.max)
        out = out.astype(dtype)
    return out


#: seed of ``test_per_task``'s subsample of the evaluation images: not the run seed's, so that every seed is scored
#: on the same images (the report says "one data split for every seed"), and the tasks of a permuted or rotated
#: stream on the same images too
EVAL_SUBSAMPLE_SEED = 2000


def _subsample(x: np.ndarray, y: np.ndarray, n: int | None, seed: int | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``n`` samples in random order, stratified (classes in proportion, largest remainders first, ties in
    label order on every machine) and seeded, every class kept when ``n`` can hold one of each (a rare class's
    sample taken from the largest share); all samples when ``n`` is None or their number."""
    if n is None or n >= len(y):
        return x, y
    rng = np.random.default_rng(seed)
    labels = np.unique(y)
    take = _shares(y, n, "stable")                                   # numpy's default sort breaks ties by CPU
    for empty in np.flatnonzero(take == 0) if n >= len(labels) else ():
        take[np.argmax(take)] -= 1
        take[empty] = 1
    keep = np.concatenate([rng.choice(np.flatnonzero(y == label), k, replace=False)
                           for label, k in zip(labels, take)])
    keep = rng.permutation(keep)
    return x[keep], y[keep]


def _option(value, name: str, low=None):
    """``value`` checked as the config's ``stream.<name>`` (its type and bounds; ``low`` overrides the minimum)."""
    spec = {f.name: f for f in _dc.fields(StreamConfig)}.get(name)
    meta = dict(spec.metadata) if spec else {}
    if low is not None:
        meta["low"] = low
    tp = float if name == "max_angle_deg" else int
    value = check_value(value, tp, f"stream.{name}")
    check_bounds(value, meta, f"stream.{name}")
    return value


def _check(kind: str, scenario: str, n_tasks: int) -> None:
    if kind not in KINDS:
        raise ConfigError(f"stream.kind: {kind!r} is not allowed; choose one of {', '.join(KINDS)}")
    if scenario not in SCENARIOS:
        raise ConfigError(f"stream.scenario: {scenario!r} is not allowed; choose one of {', '.join(SCENARIOS)}")
    _option(n_tasks, "n_tasks")


def _check_applies(kind: str, classes_per_task, max_angle_deg, first_task_identity) -> None:
    """Refuse a kind's option (:data:`~spikecl.config.STREAM_KIND_OPTIONS`) given to a stream of another kind (it
    would be ignored)."""
    given = {"classes_per_task": classes_per_task is not None, "max_angle_deg": max_angle_deg != 180.0,
             "first_task_identity": first_task_identity is not False}
    for name, wanted in STREAM_KIND_OPTIONS.items():
        if given[name] and kind != wanted:
            raise ConfigError(f"stream.{name}: applies only to {wanted} streams, not {kind!r}; leave it out")


def _domain_tasks(dataset: Dataset, sources: dict, n_tasks: int, scenario: str) -> tuple[list, int]:
    """(tasks, n_outputs) of a domains stream (tasks as for :func:`_split_tasks`): task ``d`` holds the classes whose
    domain is ``d``."""
    if not dataset.domains:
        raise ConfigError(f"stream.kind: 'domains' needs a dataset with recording domains; {dataset.name} has none")
    if n_tasks != len(dataset.domains):
        raise ConfigError(f"stream.n_tasks: {dataset.name} has {len(dataset.domains)} domains "
                          f"({', '.join(dataset.domains)}); set n_tasks = {len(dataset.domains)}")
    owner = np.asarray(dataset.class_domain)
    tasks, widest = [], 0
    for d in range(n_tasks):
        group = np.flatnonzero(owner == d)
        local_label = np.full(dataset.n_classes, -1, dtype=np.int64)
        local_label[group] = np.arange(len(group))
        local = {}
        for split, (x, y) in sources.items():
            keep = np.isin(y, group)
            local[split] = (x[keep], y[keep] if scenario == "class" else local_label[y[keep]])
        classes = tuple(int(k) for k in (group if scenario == "class" else range(len(group))))
        tasks.append((d, local, classes, tuple(int(k) for k in group), None))
        widest = max(widest, len(group))
    return tasks, dataset.n_classes if scenario == "class" else widest


def make_stream(dataset: Dataset, kind: str, n_tasks: int, scenario: str, seed: int = 0, *,
                classes_per_task: int | None = None, max_angle_deg: float = 180.0,
                first_task_identity: bool = False, train_per_task: int | None = None,
                test_per_task: int | None = None, validation: float = 0.0, eval_split: str = "test",
                split_seed: int = 0, recorded: bool = False) -> Stream:
    """Cut ``dataset`` into ``n_tasks`` tasks of the given kind and scenario; the same seeds give the same stream.

    ``seed`` draws the tasks (permutations, subsamples); ``split_seed`` the validation images held out of training
    (a fraction ``validation`` of every class); ``eval_split`` says what the tasks are evaluated on (see the module
    docstring). A ``train_per_task`` or ``test_per_task`` above a task's samples is a ConfigError, but for a
    ``recorded`` stream (a trained network's), where it means all of them, as spikecl read it before refusing it.
    """
    if not isinstance(dataset, Dataset) and not hasattr(dataset, "x_train"):    # a wrapper of one passes
        raise ConfigError(f"make_stream: dataset: expected a Dataset, got {type(dataset).__name__}; load_dataset(name) "
                          "gives one")
    _check(kind, scenario, n_tasks)
    first_task_identity = check_value(first_task_identity, bool, "stream.first_task_identity")   # "no" is truthy
    _check_applies(kind, classes_per_task, max_angle_deg, first_task_identity)
    n_tasks, seed = int(n_tasks), _option(seed, "seed", low=0)
    max_angle_deg = _option(max_angle_deg, "max_angle_deg")
    classes_per_task = None if classes_per_task is None else _option(classes_per_task, "classes_per_task")
    train_per_task = None if train_per_task is None else _option(train_per_task, "train_per_task", low=1)
    test_per_task = None if test_per_task is None else _option(test_per_task, "test_per_task", low=1)
    split_seed = check_seed(split_seed, "make_stream: split_seed")
    validation = check_value(validation, float, "data.validation")            # its range: as the split says
    sources = training_and_evaluation(dataset, validation, eval_split, split_seed)
    rng = np.random.default_rng(seed)
    if dataset.time_steps is not None and kind in ("permuted", "rotated"):
        raise ConfigError(f"stream.kind: {kind!r} transforms images; {dataset.name} holds event frames (use split or "
                          "domains)")
    if kind == "domains":
        tasks, n_outputs = _domain_tasks(dataset, sources, n_tasks, scenario)
    elif kind == "split":
        tasks, n_outputs = _split_tasks(dataset, sources, n_tasks, scenario, classes_per_task)
    else:
        tasks, n_outputs = _transformed_tasks(dataset, sources, n_tasks, scenario, kind, rng, first_task_identity,
                                              max_angle_deg)
    built = [_task(i, local, classes, dataset.name, eval_split, train_per_task, test_per_task, seed, dataset_classes,
                   recorded, transform) for i, local, classes, dataset_classes, transform in tasks]
    stream = Stream(f"{kind}-{dataset.name}", scenario, tuple(built), n_outputs,
                    n_tasks if scenario == "task" else 1, dataset.input_shape)
    changed = any(_ties_changed(local[split][1], n) for _, local, _, _, _ in tasks
                  for split, n in (("train", train_per_task), ("test", test_per_task)))
    object.__setattr__(stream, "_ties_changed", changed)          # not a field: replace() drops it
    return stream


def _shares(y: np.ndarray, n: int, sort_kind: str | None) -> np.ndarray:
    """Samples per class of :func:`_subsample`'s largest remainders (ties by ``sort_kind``, before every class was
    kept)."""
    labels, counts = np.unique(y, return_counts=True)
    share = counts * n / len(y)
    take = np.floor(share).astype(int)
    take[np.argsort(take - share, kind=sort_kind)[: n - take.sum()]] += 1
    return take


def _ties_changed(y: np.ndarray, n: int | None) -> bool:
    """Whether :func:`_subsample` of labels ``y`` to ``n`` samples gives other samples than before 2026-12-05, when
    tied shares went by numpy's default sort (on this machine) and a class could lose its only sample."""
    if n is None or n >= len(y):
        return False
    before = _shares(y, n, None)
    return bool(np.any(before != _shares(y, n, "stable")) or (n >= len(before) and np.any(before == 0)))


def ties_changed(stream: Stream) -> bool:
    """Whether :func:`stream_from_config` built ``stream`` with a subsample :func:`_ties_changed` (False for a stream
    built otherwise)."""
    return getattr(stream, "_ties_changed", False)


def _split_tasks(dataset: Dataset, sources: dict, n_tasks: int, scenario: str,
                 classes_per_task: int | None) -> tuple[list, int]:
    """(tasks as (index, {split: (x, y)}, classes, the dataset's classes they are, None: no transform), outputs) of a
    split stream: task i holds classes ``i·per … (i+1)·per − 1``, relabelled from 0 unless ``scenario`` is
    "class"."""
    c = dataset.n_classes
    per = classes_per_task or c // n_tasks
    if not classes_per_task and per < 1:
        raise ConfigError(f"stream.n_tasks: {n_tasks} split tasks need at least {n_tasks} classes; "
                          f"{dataset.name} has {c}")
    if not classes_per_task and c % n_tasks:
        left = f"class {c - 1}" if c - per * n_tasks == 1 else f"classes {per * n_tasks}..{c - 1}"
        raise ConfigError(f"stream.n_tasks: {n_tasks} tasks do not split the {c} classes of {dataset.name} evenly "
                          f"({left} would be left out); set stream.classes_per_task = {per} to leave them out")
    if per < 1 or per * n_tasks > c:
        raise ConfigError(f"stream.classes_per_task: {n_tasks} tasks x {per} classes do not fit in the "
                          f"{c} classes of {dataset.name}")
    check_one_class_heads(per, scenario, classes_per_task, n_tasks, c)
    tasks = []
    for i in range(n_tasks):
        group = np.arange(i * per, (i + 1) * per)
        local = {}
        for split, (x, y) in sources.items():
            keep = np.isin(y, group)
            labels = y[keep] if scenario == "class" else y[keep] - i * per
            local[split] = (x[keep], labels)
        classes = tuple(int(k) for k in (group if scenario == "class" else range(per)))
        tasks.append((i, local, classes, tuple(int(k) for k in group), None))
    return tasks, (c if scenario == "class" else per)


def _transformed_tasks(dataset: Dataset, sources: dict, n_tasks: int, scenario: str, kind: str,
                       rng: np.random.Generator, first_task_identity: bool,
                       max_angle_deg: float) -> tuple[list, int]:
    """(tasks, outputs) of a permuted or rotated stream: every task holds all classes, its images permuted (a
    permutation drawn from ``rng`` per task) or rotated by ``i · max_angle_deg / n_tasks`` degrees; each task's
    images stay the dataset's until :func:`_task` has taken its samples, the transform the task's fifth item (a
    stream of many tasks held every task's whole transformed dataset at once)."""
    c = dataset.n_classes
    n_pixels = int(np.prod(dataset.input_shape))
    tasks = []
    for i in range(n_tasks):
        if kind == "permuted":
            perm = np.arange(n_pixels) if (i == 0 and first_task_identity) else rng.permutation(n_pixels)
            transform = lambda x, p=perm: x.reshape(len(x), -1)[:, p].reshape(x.shape)  # noqa: E731
        else:
            angle = i * max_angle_deg / n_tasks
            transform = lambda x, a=angle: rotate(x, a)  # noqa: E731
        offset = i * c if scenario == "class" else 0
        local = {split: (x, y + offset) for split, (x, y) in sources.items()}
        tasks.append((i, local, tuple(range(offset, offset + c)), tuple(range(c)), transform))
    return tasks, (n_tasks * c if scenario == "class" else c)


def train_subsample_seed(seed: int, task: int) -> list[int]:
    """The seed of task ``task``'s training subsample in run seed ``seed``'s stream: the pair itself (``seed + 1000 +
    task``, used before, gave run seed s + 1's task i the subsample of seed s's task i + 1)."""
    return [seed, task, TRAIN_SUBSAMPLE_PURPOSE]


def _task(i: int, local: dict, classes: tuple, name: str, eval_split: str, train_per_task: int | None,
          test_per_task: int | None, seed: int, dataset_classes: tuple, recorded: bool = False,
          transform: Callable[[np.ndarray], np.ndarray] | None = None) -> Task:
    """Task ``i`` from its {split: (x, y)}: subsampled (training samples with :func:`train_subsample_seed`, evaluation
    samples with :data:`EVAL_SUBSAMPLE_SEED`), then ``transform``ed (a permutation or rotation, image by image),
    refused when a split holds none of one of its ``classes`` (the dataset's ``dataset_classes``, in the same
    order)."""
    for key, n, done in (("train_per_task", train_per_task, "trained"), ("test_per_task", test_per_task, "tested")):
        if n is not None and n < len(classes):
            raise ConfigError(f"stream.{key}: {n} samples cannot hold one of each of task {i + 1}'s {len(classes)} "
                              f"classes (some would never be {done})")
    for split, where in (("train", "training"), ("test", eval_split)):
        held = set(np.unique(local[split][1]).tolist())
        missing = [k for c, k in zip(classes, dataset_classes) if c not in held]
        if held and missing:
            raise DataError(f"stream: task {i + 1} has no {where} samples of class {', '.join(map(str, missing))} "
                            f"({name} holds none; a partial download or copy?)")
    for key, n, split, what in (("train_per_task", train_per_task, "train", "training"),
                                ("test_per_task", test_per_task, "test", eval_split)):
        if n is not None and n > len(local[split][1]) and not recorded:
            raise ConfigError(f"stream.{key}: {n} samples, but task {i + 1} holds {len(local[split][1])} {what} "
                              f"samples; ask for at most that many (0 = all)")
    x_tr, y_tr = _subsample(*local["train"], train_per_task, train_subsample_seed(seed, i))
    x_te, y_te = _subsample(*local["test"], test_per_task, EVAL_SUBSAMPLE_SEED)
    if transform is not None:
        x_tr, x_te = transform(x_tr), transform(x_te)
    for split, y in (("training", y_tr), (eval_split, y_te)):
        if not len(y):
            raise DataError(f"stream: task {i + 1} has no {split} samples ({name} holds none of its "
                            f"classes, {', '.join(map(str, dataset_classes))})")
    return Task(i, np.ascontiguousarray(x_tr), y_tr, np.ascontiguousarray(x_te), y_te, classes, eval_split)


def code_stream(stream: Stream, units: int = 2048, sparsity: float = 0.05, sample_frac: float = 0.1,
                seed: int = 0) -> Stream:
    """``stream`` with every image [N, C, H, W] replaced by its fly-hash code float32 [N, 1, 1, ``units``] (0 or 1;
    ``round(sparsity * units)`` ones, each cell summing a random ``sample_frac`` of the pixels)."""
    n_inputs = int(np.prod(stream.input_shape))
    hasher = FlyHash(FlyHashConfig(n_outputs=units, sparsity=sparsity, sample_frac=sample_frac, seed=seed), n_inputs)

    def code(x: np.ndarray) -> np.ndarray:
        return hasher.encode(x.reshape(len(x), -1)).astype(np.float32).reshape(len(x), 1, 1, units)

    tasks = tuple(dataclasses.replace(t, x_train=code(t.x_train), x_test=code(t.x_test)) for t in stream.tasks)
    return dataclasses.replace(stream, name=f"{stream.name}-flyhash", tasks=tasks, input_shape=(1, 1, units))


def standardized_stream(stream: Stream, mean: float, std: float) -> Stream:
    """``stream`` with every image x replaced by float32 ``(x - mean) / std`` (``stream.standardize``)."""
    def standardized(x: np.ndarray) -> np.ndarray:
        return ((x - np.float32(mean)) / np.float32(std)).astype(np.float32)

    tasks = tuple(dataclasses.replace(t, x_train=standardized(t.x_train), x_test=standardized(t.x_test))
                  for t in stream.tasks)
    return dataclasses.replace(stream, tasks=tasks)


def data_split_seed(data: DataConfig, seed: int) -> int:
    """The seed that draws run seed ``seed``'s validation split: its own with ``data.vary_split``, else
    :data:`DATA_SPLIT_SEED` (every seed on the same split). The train/test split of datasets without a fixed one
    (MNIST-5k, digits, miniImageNet) is ``data.test_split_seed``'s for every run seed, so settings chosen on any
    seed's validation images have never read a test image of another seed."""
    return seed if data.vary_split else DATA_SPLIT_SEED


def stream_from_config(stream: StreamConfig, data: DataConfig, seed: int, recorded: bool = False) -> Stream:
    """The task stream of an experiment's ``[stream]`` and ``[data]`` tables for run seed ``seed`` (``recorded``: a
    trained network's, see :func:`make_stream`).

    ``seed`` draws the tasks (permutations, subsamples) and the input code; :func:`data_split_seed` the validation
    images held out of training (``data.validation``, ``data.eval_split``). The test split is the same for every
    seed.
    """
    split_seed = data_split_seed(data, seed)
    dataset = loaded(data)
    own = {"classes_per_task": stream.classes_per_task or None, "max_angle_deg": stream.max_angle_deg,
           "first_task_identity": stream.first_task_identity}       # the kind's own only: files written before
    own = {k: v for k, v in own.items() if STREAM_KIND_OPTIONS[k] == stream.kind}   # the config refused others
    built = make_stream(dataset, stream.kind, stream.n_tasks, stream.scenario, seed=seed, **own,
                        train_per_task=stream.train_per_task or None, test_per_task=stream.test_per_task or None,
                        validation=data.validation, eval_split=data.eval_split, split_seed=split_seed,
                        recorded=recorded)
    changed = ties_changed(built)
    if stream.input_code == "flyhash":
        built = code_stream(built, stream.code_units, stream.code_sparsity, stream.code_sample_frac, seed=seed)
    if stream.standardize:
        built = standardized_stream(built, *stream.standardize)
    object.__setattr__(built, "_ties_changed", changed)
    for task in built.tasks:                # what the config describes, as the results will say: not edited in place
        for array in (task.x_train, task.y_train, task.x_test, task.y_test):
            array.setflags(write=False)
    object.__setattr__(built, "_origin", config_origin(stream, data, seed))    # not a field: replace() drops it
    crc = registered_crc(data.dataset, data.test_split_seed)                # a plugin's loader returned it
    if crc is None and dataset_files(data.dataset, data.data_dir or None):   # read from a user's folder
        crc = dataset_crc(dataset)
    if crc is not None:
        object.__setattr__(built, "_source_crc", crc)
    return built


def loaded(data: DataConfig) -> Dataset:
    """The dataset ``data`` names, loaded as a run on it loads it (its folder, test split seed and excludes, event
    binning)."""
    binning = EventBinning(data.time_bins, data.bin_ms, data.pool)
    return load_dataset(data.dataset, data.data_dir or None, seed=data.test_split_seed, binning=binning,
                        excludes=data.test_excludes)


def files_crc(data: DataConfig) -> int | None:
    """The ``data_crc`` a run on ``data`` would record for the files in its folder now (:func:`dataset_crc` of the
    dataset as loaded, computed once per process for each table and state of its files or split folders), for
    ``--resume`` to check a kept run against; None for the offline and registered datasets (their config says which
    data they read) and where the files cannot be read (nothing to check against)."""
    from spikecl.data.event_datasets import files_stamp

    try:
        files = dataset_files(data.dataset, data.data_dir or None)
        stamp = files_stamp(data.dataset, files, samples=False)     # asked per kept run: not 70,000 sample files
        return _files_crc(json.dumps(dataclasses.asdict(data), sort_keys=True), stamp) if files else None
    except DataError:
        return None


@functools.lru_cache(maxsize=8)
def _files_crc(data_json: str, stamp: str) -> int:
    """:func:`files_crc` of a ``[data]`` table whose files' :func:`~spikecl.data.event_datasets.files_stamp` is
    ``stamp`` (files replaced since: another key, read again)."""
    return dataset_crc(loaded(DataConfig(**json.loads(data_json))))


def source_crc(stream: Stream) -> int | None:
    """:func:`dataset_crc` of the files :func:`stream_from_config` built ``stream`` from, or of what a registered
    dataset's loader returned; None for the offline datasets (no files) and streams built otherwise."""
    return getattr(stream, "_source_crc", None)


def config_origin(stream: StreamConfig, data: DataConfig, seed: int) -> str:
    """The tables and seed a stream is built from, as text (:func:`built_from` reads a built stream's)."""
    return json.dumps([dataclasses.asdict(stream), dataclasses.asdict(data), seed], sort_keys=True)


def built_from(stream: Stream) -> str | None:
    """:func:`config_origin` of the tables and seed :func:`stream_from_config` built ``stream`` from, or None for a
    stream built otherwise (or changed with ``dataclasses.replace``)."""
    return getattr(stream, "_origin", None)
