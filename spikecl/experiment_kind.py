"""Experiment kinds and the one driver that runs them.

An experiment file's top-level ``kind`` names a :class:`Kind`: a small contract that declares the kind's config
dataclass, its plan of jobs (each job writes one results file), how to summarise results files as text and how to
plot them; where it has them, the datasets its runs read (:meth:`Kind.datasets_read`, for ``--data-dir``), the
thread and process counts its results depend on (:meth:`Kind.recorded_setup`, for ``spikecl run RESULTS.h5``), how
its processes start (:meth:`Kind.launch`, for ``--nproc``) and its experiment files' exported form (``Kind.export``,
for ``spikecl export``). Everything else is owned once, here: loading, ``--set`` overrides and validation, the seeds
check, the device, what an existing results file means, progress, and the summary and plots at the end; the
commands ask the kind, never its name.

Existing results, for every kind: without ``resume`` or ``overwrite`` any existing results file of the plan, or
checkpoint of an interrupted job, stops the run before anything runs (:class:`ExistsError`); ``overwrite`` replaces
them all, marking each file it is to replace (``<results>.replacing``) until its job has written the new one (a run
that stops, interrupted or failed, leaves the rest marked); ``resume`` keeps every results file that reads back as
a valid results file of the kind and runs the missing or damaged ones again (a kind that keeps checkpoints continues
from them), and refuses a kept file made with other settings (:data:`RESUME_IGNORES` aside), naming the first key
that differs, a checkpoint written with other settings (:meth:`Kind.checkpoint_difference`), a file still marked
for replacement and a file that is not the kind's results file (:class:`ForeignFileError`). ``resume`` with
``overwrite`` keeps what was made with these settings and not marked, and replaces the rest (results files and
checkpoints): how an interrupted ``overwrite`` continues.
All of this, the output folders and the datasets the jobs to run read (``data.dataset`` in a job's config: its
files are looked for), is checked by :func:`preflight` before any work.

Adding a kind to spikecl: one module defining a :class:`Kind` instance named ``KIND``, and one line in
:data:`KINDS`. A kind defined in your own code: :func:`register_kind`, then :func:`run_file` and
:func:`spikecl.report.report_paths` treat it like spikecl's own (``examples/custom_kind.py``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable, Container, ContextManager, Iterable, Sequence

from spikecl.atomic import check_name_fits, check_place_for_file, check_writable_folder, output_lock
from spikecl.config import RunHeader, check_header
from spikecl.differences import as_written, differ_phrase, differences, first_difference
from spikecl.errors import (ConfigError, DependencyError, ExistsError, ForeignFileError, NumericalError, ResultsError,
                            SpikeCLError, check_installed, check_type, did_you_mean, raise_if_interrupted)
from spikecl.io import Run, read_run
from spikecl.launcher import launch as launch_processes
from spikecl.launcher import launched_world_size
from spikecl.options import check_defaults, from_dict
from spikecl.progress import progress_bar
from spikecl.recorded import recorded_as_now
from spikecl.remedies import option
from spikecl.registry import check_not_held, check_own_name
from spikecl.run_files import (diverged_error, divergence_file, end_marks, file_state, live_pid, process_mark,
                               remove_temporaries, replacing, write_divergence)
from spikecl.toml_files import apply_overrides, is_hdf5_file, load_toml, parse_override

#: kind name -> module defining ``KIND``. Kinds without a config (``sweep``) are read by ``spikecl report`` only.
KINDS = {
    "continual": "spikecl.continual.experiment",
    "ca3": "spikecl.memory.experiment",
    "sparsey": "spikecl.sdr.experiment",
    "sweep": "spikecl.continual.sweep",
}


@dataclass(frozen=True)
class JobOptions:
    """How the driver asks a job to run: ``overwrite`` its results file if present, ``resume`` from the kind's own
    checkpoint if it keeps one (one made with other settings: an error, or with ``replace_stale`` discarded), show
    inner ``progress`` bars, on ``device`` (``"cpu"`` or ``"cuda"``, resolved)."""

    overwrite: bool
    resume: bool
    progress: bool
    device: str
    replace_stale: bool = False     # resume, but start afresh from a checkpoint made with other settings


@dataclass(frozen=True)
class Job:
    """One entry of a plan: the results file ``path`` it writes and ``run(options)``, which writes it and returns a
    one-line note for the log (or None); ``config``, the config the results file records, lets ``--resume`` refuse a
    kept file made with different settings (``ignores``: the keys that do not matter to this file, e.g. a part
    holding every seed's trials depends on ``seeds``). ``checkpoint``: the file where the job keeps its state while
    it runs (None: the kind keeps none); one left by an interrupted job is refused like an existing results file.
    ``identity``: root attributes the job's results file must hold (e.g. its seed or part), so that a file copied or
    renamed onto the job's path is not kept as the job's. ``needs``: (module, extra installing it, what needs it) of
    each optional dependency the job imports, checked before any job runs (a kept job needs none). ``data_crc``: the
    ``data_crc`` its run would record for the data files there now (:func:`spikecl.data.streams.files_crc`), asked
    only where a kept file recorded one, so that a run trained on other files is not kept. ``check``: what else the
    job needs to run (a one-line :class:`ConfigError` where it cannot, e.g. memory), asked before any job runs and
    only where the job is to run (a kept job needs nothing)."""

    path: Path
    run: Callable[[JobOptions], str | None]
    config: dict | None = None
    ignores: Container[str] | None = None     # keys a kept file may differ in (None: RESUME_IGNORES)
    checkpoint: Path | None = None
    identity: dict | None = None
    needs: tuple[tuple[str, str, str], ...] = ()
    data_crc: Callable[[], int | None] | None = None
    check: Callable[[], None] | None = None


#: what a kind's summary raises when results files lack what it reads or do not fit together
SUMMARY_FAILURES = (KeyError, IndexError, ValueError, TypeError, AttributeError)


class Kind:
    """The contract of an experiment kind (subclass it and override what the kind has).

    ``name`` is the file's ``kind`` and the results files' ``kind`` attribute; ``config`` is the config dataclass
    (a :class:`spikecl.config.RunHeader`); ``data_parallel`` says whether ``--nproc`` may train it (such a kind
    defines :meth:`session`, which joins the processes); ``rule_keys``:
    the keys its results record beside the config that say how spikecl computed them (a kept file that differs in
    one was made by a spikecl that computed otherwise, not with another config). ``export``, where the kind's
    experiment files have an exported form (``spikecl export EXPERIMENT.toml -o OUTPUT``): ``export(source, output,
    overwrite)`` writes it and returns the line saying what it wrote, or refuses the file in one line naming what
    exports instead (None, the default: ``spikecl export`` says the file has no exported form).
    """

    name: str = ""
    config: type | None = None
    data_parallel: bool = False
    rule_keys: frozenset = frozenset()
    export: Callable[[Path, Path, bool], str] | None = None

    def load(self, raw: dict) -> RunHeader:
        """Validate the raw mapping of an experiment file (``--set`` applied, ``name`` defaulted) into ``config``."""
        return from_dict(self.config, raw)

    def plan(self, cfg) -> list[Job]:
        """The jobs of an experiment, in run order."""
        raise NotImplementedError

    def datasets_read(self, raw: dict) -> set:
        """The ``data.dataset`` names the runs of the experiment file ``raw`` (``--set`` applied, not validated)
        read, for ``--data-dir`` to refuse a run that reads no folder; ``{None}``: not known (the default: a kind of
        your own names its datasets its own way)."""
        return {None}

    def recorded_setup(self, run: Run) -> tuple[int, int] | None:
        """(torch threads, processes) the results file ``run`` was computed with, which ``spikecl run RESULTS.h5``
        repeats to make it again bit for bit; None (the default): its numbers do not depend on them, or it records
        no valid counts."""
        return None

    def check_overrides(self, cfg, paths: list[list[str]]) -> None:
        """A one-line :class:`ConfigError` where a ``--set`` key (``paths``) would change none of the runs of
        ``cfg`` (the kind's own rules; none by default)."""

    def check_data_parallel(self, cfg) -> None:
        """Before ``--nproc`` starts any process: a one-line :class:`ConfigError` if ``cfg`` cannot train
        data-parallel."""
        if not self.data_parallel:
            raise ConfigError(f"--nproc: {self.name!r} experiments do not train data-parallel; drop --nproc")

    def launch(self, nproc: int, fn: Callable[..., int], *args, threads: int | None = None, **kwargs) -> int:
        """``spikecl run --nproc``, after :meth:`check_data_parallel`: ``fn(*args, **kwargs)`` in ``nproc`` processes
        of ``threads`` torch threads each (None: a share of the cores) that :meth:`session` joins; returns the first
        non-zero exit code, else 0. By default as ``torchrun`` starts them (:func:`spikecl.launcher.launch`)."""
        return launch_processes(nproc, fn, *args, threads=threads, **kwargs)

    def checkpoint_difference(self, cfg, job: Job) -> str | None:
        """The first setting in which ``job``'s checkpoint was written otherwise than ``cfg`` plans the job (None:
        none, or the kind keeps no checkpoints); ``--resume`` refuses it before any work, and a damaged or foreign
        checkpoint (a one-line :class:`ResultsError` raised here)."""
        return None

    def check_plan(self, todo: Sequence[Job]) -> None:
        """Inside :meth:`session`, before any job runs: a one-line :class:`ConfigError` where the processes of one
        run chose different jobs (``todo``: this process's); nothing to check in one process (the default)."""

    def session(self, cfg) -> ContextManager[bool]:
        """A context around running the plan; yields whether this process reports (prints, plots)."""
        return contextlib.nullcontext(True)

    def summarize(self, runs: Sequence[Run], detail: bool = True) -> str:
        """Text tables of this kind's results files (``detail=False``: the comparison only, where it applies)."""
        raise NotImplementedError

    def plot(self, runs: Sequence[Run], out_dir: Path) -> list[Path]:
        """PNG plots of the results files into ``out_dir``; returns their paths."""
        return []

    def plot_files(self, cfg) -> list[Path]:
        """The PNG files ``spikecl run`` of ``cfg`` will write, as far as known before it runs (checked up front: a
        folder in the place of one would stop the run only after its training)."""
        return []

    def plot_paths(self, runs: Sequence[Run], out_dir: Path) -> list[Path]:
        """The PNG files :meth:`plot` of ``runs`` into ``out_dir`` may write where their names hold names users
        choose (a continual run's variant, a sweep's name), checked by ``spikecl report`` before any table."""
        return []

    def experiment_of(self, run: Run) -> dict:
        """The experiment (as an experiment file's table) that makes the results file ``run`` again, for ``spikecl
        run RESULTS.h5``; by default none: a one-line :class:`ConfigError`."""
        raise ConfigError(f"{run.path}: a {self.name!r} results file does not record one run to make again; run its "
                          "experiment file")

    def check(self, run: Run) -> None:
        """A one-line :class:`ResultsError` unless ``run`` holds what this kind's summary reads (``--resume`` runs
        such a file again; ``spikecl report`` skips it in a folder). By default: the summary of ``run`` alone is
        made, and a summary that fails on the file's contents (a missing entry or attribute) is the error."""
        try:
            self.summarize([run])
        except SpikeCLError:
            raise
        except SUMMARY_FAILURES as exc:
            raise ResultsError(f"{run.path} is corrupt or incomplete: its {self.name} summary fails "
                               f"({type(exc).__name__}: {exc})") from None


#: kinds defined outside spikecl, by name (:func:`register_kind`)
_REGISTERED: dict[str, Kind] = {}


def register_kind(k: Kind) -> Kind:
    """Make the kind ``k``, defined outside spikecl, known by its ``name`` in this process: experiment files with
    ``kind = "<name>"`` run through :func:`run_file`, and ``spikecl.report`` summarises its results files. A name
    spikecl's own kinds use, one another kind holds already (the same kind registered again, as a plugin read twice,
    is no clash) or one that is not a plain word is a one-line :class:`ConfigError`."""
    if not isinstance(k, Kind) or not k.name or k.config is None:
        raise ConfigError(f"register_kind: expected a Kind with a name and a config dataclass, got {k!r}")
    if k.name in KINDS:
        raise ConfigError(f"register_kind: {k.name!r} is one of spikecl's own kinds ({', '.join(KINDS)})")
    check_own_name(k.name, "kind name", "experiment files name it: kind = ...")
    held = _REGISTERED.get(k.name)
    check_not_held("register_kind", k.name, held and type(held), type(k))
    if not (isinstance(k.config, type) and issubclass(k.config, RunHeader)):
        raise ConfigError(f"register_kind({k.name!r}): its config {k.config!r} must be a dataclass deriving from "
                          "spikecl.config.RunHeader (name, seeds, output_dir, ...)")
    missing = [m for m in ("plan", "summarize") if getattr(type(k), m) is getattr(Kind, m)]
    if missing:
        raise ConfigError(f"register_kind({k.name!r}): {type(k).__name__} must define {' and '.join(missing)}()")
    if k.data_parallel and type(k).session is Kind.session:
        raise ConfigError(f"register_kind({k.name!r}): data_parallel = True needs a session() of its own that joins "
                          "the processes and yields whether this one reports (Kind's joins none: each of --nproc's "
                          "processes would run and report every job)")
    declared = {f.name: f for f in fields(k.config)}.get("kind")
    allowed = (declared.metadata.get("choices") or (k.name,)) if declared is not None else ()
    if declared is None or declared.default != k.name or k.name not in allowed:
        raise ConfigError(f"register_kind: {k.config.__name__} must declare its kind: kind: str = "
                          f"option({k.name!r}, choices=({k.name!r},))")
    check_defaults(k.config, "", f"register_kind({k.name!r})")
    _REGISTERED[k.name] = k
    return k


def kind_names() -> tuple[str, ...]:
    """Every kind this process knows: spikecl's own (in :data:`KINDS` order), then the registered ones."""
    return (*KINDS, *_REGISTERED)


def kind(name: str) -> Kind:
    """The kind ``name`` (spikecl's own or registered); an unknown one is a one-line :class:`ConfigError`."""
    if isinstance(name, str) and name in _REGISTERED:
        return _REGISTERED[name]
    if not isinstance(name, str) or name not in KINDS:
        runnable = sorted(k for k in kind_names() if k != "sweep")
        registers = option("pass the file that registers it with --plugin",
                           keyword="register it first with spikecl.experiment_kind.register_kind")
        raise ConfigError(f"kind: {name!r} is not an experiment kind; choose from {runnable} (a kind of your own: "
                          f"{registers}){did_you_mean(name, runnable)}")
    return importlib.import_module(KINDS[name]).KIND


def experiment_toml(path: str | Path) -> dict:
    """The experiment file ``path`` as read, or a results file's run as its kind's experiment
    (:meth:`Kind.experiment_of`: ``spikecl run RESULTS.h5`` makes it again); a sweep file is a one-line
    :class:`ConfigError` naming its command."""
    check_type(path, (str, os.PathLike), "experiment file")
    if is_hdf5_file(path):
        try:
            run = read_run(path)
        except ResultsError as exc:              # an exported network, another tool's file, a damaged one
            raise ConfigError(f"{exc}; spikecl run takes an experiment file (TOML), or a continual run's results "
                              "file to make that run again") from None
        return kind(run.kind).experiment_of(run)
    raw = load_toml(path)
    if "base" in raw and ("grid" in raw or "points" in raw):
        raise ConfigError(f"{path} is a sweep file (base with a grid or points); run it with: spikecl sweep {path}")
    return raw


def load(path: str | Path, overrides: Iterable[str] = (), expect: str | None = None) -> tuple[Kind, RunHeader]:
    """Read an experiment file, apply ``key=value`` overrides, validate it with its kind (which must be ``expect``
    when given); name defaults to the file's stem."""
    raw = experiment_toml(path)
    raw = apply_overrides(raw, overrides)
    raw.setdefault("name", Path(path).stem)
    k = kind(raw.get("kind", "continual"))
    if expect is not None and k.name != expect:
        raise ConfigError(f"{path}: kind {k.name!r}, expected {expect!r}")
    if k.config is None:
        raise ConfigError(f"kind: {k.name!r} results are made by their own command, not by 'spikecl run'")
    cfg = k.load(raw)
    check_header(cfg)
    k.check_overrides(cfg, [parse_override(text)[0] for text in overrides])
    return k, cfg


def resolve_device(name: str) -> str:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when torch sees one; the CPU without torch) → ``"cpu"`` or ``"cuda"``;
    CUDA must exist when asked for. Torch is imported only for ``cuda`` and ``auto``."""
    if name == "cpu":
        return name
    try:
        import torch
    except ImportError:
        if name == "auto":                          # a torch-free kind (Sparsey) in the torch-free core
            return "cpu"
        raise DependencyError("device: cuda needs torch; install it with: pip install 'spikecl[torch]'") from None
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        cpu = option("--device cpu", keyword='device = "cpu"')
        raise ConfigError(f"device: cuda requested but torch.cuda.is_available() is false; use {cpu}")
    return name


def mark_replacing(path: Path) -> None:
    """Mark the results file ``path`` as one this process's ``--overwrite`` is to replace: :func:`replacing`, holding
    this process's :func:`process_mark` (a report tells an overwrite still running from one that did not finish)."""
    replacing(path).write_text(process_mark())


@contextlib.contextmanager
def replacing_marks(paths: list[Path]):
    """Mark the results files ``paths`` (:func:`mark_replacing`) for the block: the marks its runs have not cleared
    by its end, however it ends, read from then on as an ``--overwrite`` that did not finish
    (:func:`~spikecl.run_files.end_marks`)."""
    for path in paths:
        mark_replacing(path)
    try:
        yield
    finally:
        end_marks(paths)


def kept(job: Job, kind_name: str, replace_stale: bool = False) -> bool:
    """Whether ``--resume`` keeps the results file of ``job``: it reads back as a valid results file of
    ``kind_name`` (a damaged one is run again); one made with other settings, or a file that is not this kind's
    results file to replace (:class:`ForeignFileError`: another schema or kind, a newer version, locked), is a
    one-line :class:`ConfigError`, or with ``replace_stale`` (``--resume --overwrite``) run again."""
    try:
        run = read_run(job.path, kind_name)
        kind(kind_name).check(run)
    except ForeignFileError as exc:
        if replace_stale:
            return False
        raise ConfigError(f"{option('--resume')}: {exc}; pass {option('--overwrite')} as well to replace it, or "
                          f"choose another {option('--output-dir')}") from None
    except ResultsError:
        return False
    if writer := live_pid(replacing(job.path)):            # --overwrite too would race it for the same files
        raise ConfigError(f"{option('--resume')}: {job.path} is to be replaced by an --overwrite running now (PID "
                          f"{writer}); run again when it has finished")
    if replacing(job.path).exists():
        if replace_stale:
            return False
        raise ConfigError(f"{option('--resume')}: {job.path} is still to be replaced by an --overwrite that did not "
                          f"finish (interrupted or failed); pass {option('--overwrite')} as well to finish replacing "
                          "it")
    other = next((k for k, v in (job.identity or {}).items() if run.attrs.get(k) != v), None)
    if other is not None:
        if replace_stale:
            return False
        raise ConfigError(f"{option('--resume')}: {job.path} holds {other} = {run.attrs.get(other)!r}, not this "
                          f"job's {job.identity[other]!r} (a copied or renamed file?); pass {option('--overwrite')} "
                          f"as well to replace it, or choose another {option('--output-dir')}")
    key = differing_setting(job, recorded_as_now(run.config))      # the kind's own rules are registered by now
    if key is not None and not replace_stale:
        every = (" (the file holds every seed's trials: other seeds run it again)" if key.split("[")[0] == "seeds"
                 else "")
        raise ConfigError(f"{option('--resume')}: {job.path} was made "
                          f"{how_made(kind(kind_name), key, f'with another config ({key} differs)')}{every}; pass "
                          f"{option('--overwrite')} as well to replace what differs, or choose another "
                          f"{option('--output-dir')}")
    trained_on, now = recorded_data_crc(run), job.data_crc() if key is None and job.data_crc else None
    data = run.config.get("data") if isinstance(run.config.get("data"), dict) else {}
    if None not in (trained_on, now) and trained_on != now:
        if replace_stale:
            return False
        planned = job.config.get("data") if isinstance(job.config, dict) else None
        given = planned.get("data_dir") if isinstance(planned, dict) else None
        raise ConfigError(f"{option('--resume')}: {job.path} was trained on other data files (data_crc {trained_on}, "
                          f"read from {data.get('data_dir') or 'its folder'}; the files "
                          f"{'in ' + str(given) if given else 'this run reads'} now give {now}); pass "
                          f"{option('--overwrite')} as well to train it on these, or point {option('--data-dir')} at "
                          "its files")
    return key is None


def recorded_data_crc(run: Run) -> int | None:
    """The ``data_crc`` ``run`` recorded: the CRC of the data its files (or a registered dataset's loader) gave, in
    its environment or its config; None where it read no files."""
    crc = run.environment.get("data_crc", run.config.get("data_crc"))
    return crc if isinstance(crc, int) else None


def other_data(a: Run, b: Run) -> bool:
    """Whether runs ``a`` and ``b``, made with one ``data`` table (its folder aside), read other data: their
    :func:`recorded_data_crc` differ (False where either recorded none)."""
    other_table = next(differences(a.config.get("data"), b.config.get("data"), ignore={"data_dir"}), None)
    crcs = recorded_data_crc(a), recorded_data_crc(b)
    return other_table is None and None not in crcs and crcs[0] != crcs[1]


def _made_otherwise(job: Job, kind_name: str) -> str | None:
    """The first setting in which ``job``'s existing results file was made otherwise than ``job`` plans (None where
    none differs or the file cannot be read as the kind's)."""
    try:
        return differing_setting(job, read_run(job.path, kind_name).config)
    except SpikeCLError:
        return None


def computed_otherwise(job: Job, kind_name: str, device: str) -> str:
    """Words such as `` (made on cuda with network.engine = 'snntorch'; this run: cpu, 'fused'; ...)`` where
    ``job``'s kept results file was computed on another kind of device or by another LIF engine than this run
    (``device``) plans: the same maths, rounded otherwise (:data:`RESUME_IGNORES`); "" where neither differs or the
    file cannot be read."""
    try:
        run = read_run(job.path, kind_name)
    except SpikeCLError:
        return ""
    made, now = [], []
    stored = str(run.environment.get("device", device)).split(":")[0]
    if stored != device.split(":")[0]:
        made.append(f"on {stored}"), now.append(device)
    engines = [(c.get("network") or {}).get("engine") if isinstance(c.get("network"), dict) else None
               for c in (run.config, job.config or {})]
    if None not in engines and engines[0] != engines[1]:
        made.append(f"with network.engine = {engines[0]!r}"), now.append(repr(engines[1]))
    return f" (made {' '.join(made)}; this run: {', '.join(now)}; the same maths, rounded otherwise)" if made else ""


def how_made(k: Kind, key: str, otherwise: str) -> str:
    """How a file that differs from its job in ``key`` was made: by a spikecl that computed otherwise where ``key``
    is one of ``k``'s :attr:`Kind.rule_keys`, else ``otherwise`` (e.g. "with another config (seeds differs)")."""
    if key in k.rule_keys:
        return f"by a spikecl that computed otherwise ({key} differs: a rule of spikecl's, not a setting of yours)"
    return otherwise


def differing_setting(job: Job, stored_config: dict) -> str | None:
    """The first setting (dotted key, e.g. ``train.lr``) in which a results file's recorded ``stored_config``
    differs from the config ``job`` records, keys in :data:`RESUME_IGNORES` aside; None if none does (or the job
    records none)."""
    if job.config is None:
        return None
    ignores = RESUME_IGNORES if job.ignores is None else job.ignores
    planned = recorded_as_now(json.loads(json.dumps(job.config)))   # options it will not read: as a file records them
    return as_written(first_difference(stored_config, planned, ignore=ignores))


#: keys a kept results file may differ in (or lack): they choose which runs exist, where they go (``name``: its
#: folder, renamed) or how the same maths is computed (device, LIF engine: equal up to float rounding), not what one
#: run does.
RESUME_IGNORES = frozenset({"seeds", "strategy.methods", "name", "output_dir", "device", "data.data_dir",
                            "network.engine", "stress.workers"})
#: keys in which runs may differ and still be seeds of one experiment (one row of a report): which runs exist and
#: where they went, and the train/test split (files recorded with ``data.vary_split`` before ``data.test_split_seed``
#: existed drew one per seed; reports say "DIFFERENT test splits" where they differ)
SEED_ROW_IGNORES = RESUME_IGNORES | {"seed", "name", "data.test_split_seed"}


def check_seeds(runs: Sequence[Run], what: str, name: str | None = None, ignore: Container[str] = SEED_ROW_IGNORES,
                seed_of: Callable[[Run], object] = lambda run: run.attrs.get("seed")) -> None:
    """A one-line :class:`ResultsError` unless ``runs`` are seeds of one experiment, so that a summary may average
    them: made with the same settings (the keys that differ are named; ``ignore`` aside) and no seed twice.
    ``what`` names the runs in the message (``"sparsey runs"``), ``name`` one of them (default: ``what``); a run is
    named by its ``path`` (a Python caller's results: their place in its list)."""
    seen: dict[object, object] = {}
    for run in runs:
        keys = list(map(as_written, differences(recorded_as_now(runs[0].config), recorded_as_now(run.config),
                                                ignore=ignore)))
        if keys:
            raise ResultsError(f"{run.path} and {runs[0].path} hold {what} made with different settings "
                               f"({differ_phrase(keys)}), not seeds of one experiment; report them separately")
        if other_data(runs[0], run):
            raise ResultsError(f"{run.path} and {runs[0].path} hold {what} trained on different data files "
                               f"(data_crc {recorded_data_crc(run)} and {recorded_data_crc(runs[0])}), not seeds of "
                               "one experiment; report them separately")
        seed = seed_of(run)
        if seed in seen:
            raise ResultsError(f"{run.path} and {seen[seed]} both hold {name or what} seed {seed}; report one of "
                               "them" + (" (a copy left in the folder?)" if isinstance(run.path, Path) else ""))
        seen[seed] = run.path


def listed(names: Sequence[str]) -> str:
    """The first six ``names``, then how many more."""
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def not_in_report(missing: Sequence[str], files: str = "results file") -> str:
    """The line under a report naming the ``missing`` runs or parts its experiment names but no file read holds (an
    interrupted or failed experiment, whose table would not say so; the first six, then how many more); "" for
    none. ``files``: what holds one of them."""
    if not missing:
        return ""
    return (f"Not in this report: {listed(missing)}, which the experiment names: no {files} of "
            f"{'them' if len(missing) > 1 else 'it'} was read (interrupted, failed or not yet run; spikecl run "
            "<experiment file> --resume runs what is missing)")


@contextlib.contextmanager
def removed_if_empty_on_error(folders: Iterable[Path]):
    """Remove the ``folders`` this run created (deepest first) when it fails while they are still empty: a refused
    run leaves nothing behind."""
    new = {a for f in folders for a in (f, *f.parents) if not a.exists()}
    try:
        yield
    except BaseException:
        for folder in sorted(new, key=lambda f: len(f.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()                       # only succeeds while empty
        raise


def preflight(k: Kind, cfg, *, resume: bool = False, overwrite: bool = False,
              plots: bool = False) -> tuple[list[Job], list[Job], str]:
    """Every check of a plan that needs no work: the device, the output folders, existing results, with
    ``resume`` the settings kept files and checkpoints were made with, the packages and datasets of the jobs to run
    (and with ``plots``, matplotlib). Returns ``(jobs, todo, device)``: the plan, the jobs to run and the resolved
    device. Started by torchrun (a ``WORLD_SIZE`` above 1), the plan must train data-parallel, as ``--nproc`` checks
    before it starts processes."""
    size = launched_world_size()
    if size:                                      # before any job trains, not when the job that cannot comes up
        if not k.data_parallel:
            raise ConfigError(f"WORLD_SIZE={size} (torchrun, or a leftover export): {k.name!r} experiments do not "
                              "train data-parallel; run them in one process")
        k.check_data_parallel(cfg)
    device = resolve_device(cfg.device)
    jobs = k.plan(cfg)
    check_distinct_outputs(k, jobs)
    for job in jobs:
        check_place_for_file(job.path)
        check_place_for_file(job.path.with_name(job.path.name + ".lock"), "a run's lock file")
        if job.checkpoint is not None:
            check_place_for_file(job.checkpoint, "a run's checkpoint")
    if not (resume or overwrite):
        existing = [job for job in jobs if job.path.exists()]
        if existing:
            key = _made_otherwise(existing[0], k.name)
            if key is not None:                  # --resume would refuse it: another folder keeps both
                raise ExistsError(f"{existing[0].path} exists, made "
                                  f"{how_made(k, key, f'with another config ({key} differs)')}; choose another "
                                  f"{option('--output-dir')} (or {option('--set name=...')}) to keep both, or pass "
                                  f"{option('--overwrite')} to replace it")
            raise ExistsError(f"{existing[0].path} exists; pass {option('--overwrite')} to replace it or "
                              f"{option('--resume')} to keep it")
        interrupted = [job for job in jobs if job.checkpoint is not None and job.checkpoint.exists()]
        if interrupted and (error := diverged_error(interrupted[0].path)):
            raise ExistsError(f"{interrupted[0].checkpoint} holds a run that diverged ({error}); pass "
                              f"{option('--overwrite')} to start it again with other settings (with "
                              f"{option('--resume')} as well to keep the finished runs)")
        if interrupted:
            with output_lock(interrupted[0].path):     # a run writing it now is live, not interrupted: named so
                pass
            raise ExistsError(f"{interrupted[0].checkpoint} holds an interrupted run; pass {option('--resume')} to "
                              f"continue it or {option('--overwrite')} to start again")
    todo = [job for job in jobs if not (resume and job.path.exists() and kept(job, k.name, overwrite))]
    if resume and not overwrite:                  # else a later job's checkpoint would stop the run midway
        for job in todo:
            key = job.checkpoint is not None and job.checkpoint.exists() and k.checkpoint_difference(cfg, job)
            if key:
                otherwise = f"by a different experiment config ({key} differs)"
                raise ConfigError(f"{option('--resume')}: {job.checkpoint} was written {how_made(k, key, otherwise)}; "
                                  f"pass {option('--overwrite')} as well to start it again")
    to_run = {id(job) for job in todo}
    writes = [job for job in jobs if id(job) in to_run or (job.checkpoint is not None and job.checkpoint.exists())]
    for folder in dict.fromkeys(job.path.parent for job in writes):    # a finished experiment kept by --resume
        check_writable_folder(folder, "output folder")                  # only reprints: a read-only copy will do
        check_one_kind(folder, k.name)
    for job in todo:                              # a kept result is not written again, whatever its name
        check_name_fits(job.path)
        if job.checkpoint is not None:
            check_name_fits(job.checkpoint, "a run's checkpoint")
    for module, extra, what in dict.fromkeys(need for job in todo for need in job.needs):
        check_installed(module, extra, what)
    if plots:                                     # drawn after the runs: said before them
        from spikecl.figures import require_plots

        require_plots()
    for job in todo:
        if job.check is not None:
            job.check()
    check_datasets(job.config for job in todo)
    return jobs, todo, device


def check_one_kind(folder: Path, kind_name: str) -> None:
    """A one-line :class:`ConfigError` where the output ``folder`` holds results of another experiment kind (a sparsey
    experiment named like a continual one): its summaries and plots would mix with theirs. A sweep's summaries, other
    tools' files and unreadable ones do not count."""
    from spikecl.io import SCHEMA, open_for_reading

    for path in sorted(folder.glob("*.h5")) if folder.is_dir() else []:
        found = ""
        with contextlib.suppress(SpikeCLError, OSError), open_for_reading(path) as f:
            found = str(f.attrs.get("kind", "")) if f.attrs.get("schema") == SCHEMA else ""
        if found and found not in (kind_name, "sweep"):
            raise ConfigError(f"{folder} holds {path.name}, results of a {found!r} experiment: this {kind_name!r} "
                              "experiment's would mix with them; give it another name (--set name=...) or "
                              "output_dir")


def check_distinct_outputs(k: Kind, jobs: Sequence[Job]) -> None:
    """A one-line :class:`ConfigError` where two jobs of a plan would write one results file or checkpoint (a
    kind's paths that leave out the seed, say): each would take the other's file for another run's."""
    seen: dict[Path, int] = {}
    for i, job in enumerate(jobs, 1):
        for path in filter(None, (job.path, job.checkpoint)):
            first = seen.setdefault(Path(os.path.abspath(path)), i)
            if first != i:
                raise ConfigError(f"kind {k.name!r}: jobs {first} and {i} of the plan both write {path}; give each "
                                  "job a file of its own (e.g. name the seed in it)")


def check_datasets(configs: Iterable[dict | None]) -> None:
    """Before any work: a one-line DataError when a dataset that runs of these raw experiment ``configs`` read
    (``data.dataset``, one of spikecl's datasets, under ``data.data_dir``) is missing. Its files are looked for, not
    read (a damaged file is found when its run starts); a kind of the user's may give ``data.dataset`` its own
    meaning, and names spikecl does not know are left to it."""
    from spikecl.data.datasets import DATASETS, dataset_files

    wanted = {(data["dataset"], data.get("data_dir") or None) for config in configs
              if isinstance(data := (config or {}).get("data"), dict) and data.get("dataset") in DATASETS}
    for dataset, data_dir in sorted(wanted, key=str):
        dataset_files(dataset, data_dir)


class RunsFailed(NumericalError):
    """Some jobs of a plan diverged (their own settings: a NaN loss); the others ran. ``done``: the plan's results
    paths without the failed ones; ``failed``: (results path, error) of each failed job."""

    def __init__(self, done: list[Path], failed: list[tuple[Path, str]], reports: bool = True) -> None:
        self.done, self.failed, self.reports = done, failed, reports
        first, error = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        others = ", the others finished" if done else ""
        again = (f"fix the code it names and run again with {option('--resume')} (finished runs are kept)"
                 if RAISED_IN in error else "change its settings and run again with "
                 f"{option('--resume', '--overwrite')} (runs whose settings are unchanged are kept)")
        super().__init__(f"{len(failed)} of {len(done) + len(failed)} runs failed{others}: {first.name}: {error}"
                         f"{more}; {again}")


def run_plan(k: Kind, cfg, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
             log: Callable[[str], None] = print, plots: bool = False) -> tuple[list[Path], bool]:
    """Run the jobs of ``cfg`` that the existing results call for (module docstring), after :func:`preflight`.
    Returns the plan's results paths and whether this process reports. A job whose training diverges
    (NumericalError) does not stop the others: :class:`RunsFailed` is raised once they have run. A ``resume`` or
    ``overwrite`` that is not a bool is a one-line :class:`ConfigError` (``"no"`` would be taken as true)."""
    check_switches(resume=resume, overwrite=overwrite)
    jobs, todo, device = preflight(k, cfg, resume=resume, overwrite=overwrite, plots=plots)
    existed = {job.path: file_state(job.path) for job in todo if job.path.exists()}   # what the run chose to replace
    kept_files = {job.path: file_state(job.path) for job in jobs if job not in todo}  # what it chose to keep
    with removed_if_empty_on_error({job.path.parent for job in jobs}), k.session(cfg) as reports:
        k.check_plan(todo)                        # each process chose from the files it found as it started
        say = log if reports else (lambda _: None)
        marked = sorted(existed) if overwrite and reports else []
        for path in [job.path for job in todo] if marked else []:   # another run writing one (a file it has yet
            with output_lock(path):                                 # to write too): refused before any file is
                pass                                                # marked stale
        racing = next(((path, pid) for path in marked if (pid := live_pid(replacing(path)))), None)
        if racing is not None:                    # marked by another --overwrite still running
            raise ExistsError(f"{racing[0]} is to be replaced by another --overwrite running now (PID {racing[1]}); "
                              "run again when it has finished")
        fresh_marks = [path for path in marked if not replacing(path).exists()]   # not an earlier overwrite's
        with replacing_marks(marked):
            for job in jobs:
                if job not in todo:
                    say(f"{job.path}: complete, kept" + (computed_otherwise(job, k.name, device) if reports else "")
                        + (", its leftover checkpoint removed" if reports and _remove_leftover(job) else ""))
                elif resume and not overwrite and job.path in existed:
                    say(f"{job.path}: damaged or incomplete, run again (it will be replaced)")
            bar = progress_bar(len(todo), "job", f"{k.name} {cfg.name}") if progress and reports and len(todo) > 1 \
                else None
            with cleared_on_error(bar), unmarked_on_bad_settings(fresh_marks, existed):
                failed = run_jobs(todo, existed, JobOptions(overwrite, resume, progress, device, resume and overwrite),
                                  reports, lambda text: (bar.write if bar else say)(text), bar)
            if bar:
                bar.close()
        if failed:                                # every run failed before writing: no empty folders are left
            raise RunsFailed([job.path for job in jobs if job.path not in dict(failed)], failed, reports)
    changed = [path for path, state in kept_files.items() if file_state(path) != state]
    if changed and reports:                       # its table would mix runs of other settings, or miss one
        raise ResultsError(f"{changed[0]}, which this {option('--resume')} kept, was replaced or removed by "
                           "another process while this run ran"
                           f"{f' (and {len(changed) - 1} more)' if len(changed) > 1 else ''}; "
                           f"this run's own results are written: spikecl report {changed[0].parent} tables what "
                           "is there once the other process has ended")
    return [job.path for job in jobs], reports


def check_switches(**switches) -> None:
    """A one-line :class:`ConfigError` naming the first of the keyword ``switches`` that is not a bool."""
    for name, value in switches.items():
        check_type(value, bool, name, f"pass {name}=True or {name}=False")


def _remove_leftover(job: Job) -> bool:
    """Remove the checkpoint of a kept job (left by a run killed after writing its results, before removing it):
    whether there was one."""
    if job.checkpoint is None or not job.checkpoint.exists():
        return False
    with output_lock(job.path):
        job.checkpoint.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def unmarked_on_bad_settings(marked: Sequence[Path], existed: dict[Path, tuple | None]):
    """Where the body fails on settings a job finds impossible as it builds its data or network (a ConfigError),
    take back the marks this command made (``marked``) on files still as they were (``existed``): such an
    --overwrite could never run, so the old results stay what --resume keeps (the marks sent it to --overwrite,
    retraining all). Any other failure, a damaged dataset say, keeps them, as an interrupt does."""
    try:
        yield
    except ConfigError:
        for path in marked:
            if file_state(path) == existed.get(path):
                replacing(path).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def cleared_on_error(bar):
    """Erase ``bar`` (a progress bar or None) when the body fails, so that the error is the one line on stderr."""
    try:
        yield
    except BaseException:
        if bar is not None:
            bar.leave = False
            bar.close()
        raise


def run_jobs(todo: Sequence[Job], existed: dict[Path, tuple | None], given: JobOptions, reports: bool,
             say: Callable[[str], None], bar=None) -> list[tuple[Path, str]]:
    """Run ``todo`` in order, each under its results file's lock (where this process ``reports``) with the
    command's options ``given``, whose ``overwrite`` extends to the files in ``existed`` (those the command chose to
    replace, with their :func:`file_state` then): a results file another run wrote meanwhile, new or replacing one
    of those, is refused. ``say`` prints each job's note. A job that diverges (NumericalError), or whose code of the
    user's own raises (:func:`own_code_frame`), is said FAILED and the next one runs; returns (results path, error)
    of those."""
    failed = []
    for job in todo:
        raise_if_interrupted()                   # a stop signal the last job's code swallowed: no next job
        options = replace(given, overwrite=given.overwrite or job.path in existed)
        with output_lock(job.path) if reports else contextlib.nullcontext():   # one writer per file
            if reports and job.path.exists() and file_state(job.path) != existed.get(job.path):   # not chosen
                raise ExistsError(f"{job.path} was written by another run while this one ran; run again with "
                                  f"{option('--resume')} to keep it or with {option('--overwrite')} to replace it")
            recorded = diverged_error(job.path) if options.resume and not options.overwrite and \
                job.checkpoint is not None and job.checkpoint.exists() else None     # its settings: the same
            try:
                if recorded is not None:         # deterministic: it would diverge again
                    failed.append((job.path, recorded))
                    note = (f"FAILED: {recorded} (as {divergence_file(job.path).name} records: not trained again; "
                            f"change the settings and pass {option('--overwrite')})")
                else:
                    before = file_state(job.checkpoint) if job.checkpoint is not None else None
                    note = job.run(options)
                    if reports:
                        replacing(job.path).unlink(missing_ok=True)
                        divergence_file(job.path).unlink(missing_ok=True)     # of an earlier run
            except NumericalError as exc:
                failed.append((job.path, str(exc)))
                note = f"FAILED: {exc}"
                if reports and job.checkpoint is not None and its_checkpoint(job.checkpoint, before, options):
                    write_divergence(job.path, str(exc))
            except SpikeCLError:
                raise
            except Exception as exc:             # raised in code of the user's own (a plugin's method or kind)
                where = own_code_frame(exc)
                if where is None:
                    raise
                text = str(exc).strip().splitlines()
                failed.append((job.path, f"{type(exc).__name__}: {text[0] if text else ''} ({RAISED_IN} {where})"))
                note = f"FAILED: {failed[-1][1]}"
            if reports:
                remove_temporaries(job.path)     # what killed writes of this job's files left
        if note:
            say(f"{job.path}: {note}")
        if bar:
            bar.update()
    return failed


def its_checkpoint(checkpoint: Path, before: tuple | None, options: JobOptions) -> bool:
    """Whether the ``checkpoint`` on disk is the state of the run that just failed: saved by it (its
    :func:`file_state` is no longer ``before``), or continued by a plain ``--resume`` (made with the same settings);
    not an earlier run's that an ``--overwrite`` was to replace."""
    now = file_state(checkpoint)
    return now is not None and (now != before or options.resume and not options.overwrite)


#: how a failed run's error names the code of the user's own that raised it (``raised in <file>:<line>``)
RAISED_IN = "raised in"


def own_code_frame(exc: BaseException) -> str | None:
    """``file:line`` of the innermost frame of ``exc``'s traceback in code of the user's own (a plugin: neither
    spikecl nor an installed package or the standard library), or None where none is (spikecl's own failure)."""
    import sys
    import traceback

    installed = [Path(p).resolve() for p in {sys.prefix, sys.base_prefix, Path(__file__).parent}]
    own = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")
           and not any(Path(f.filename).resolve().is_relative_to(folder) for folder in installed)]
    return f"{own[-1].filename}:{own[-1].lineno}" if own else None


def run_file(path: str | Path, overrides: Iterable[str] = (), *, resume: bool = False, overwrite: bool = False,
             progress: bool = True, plots: bool = True) -> int:
    """``spikecl run``: load and run an experiment file, then print its summary and write its plots beside the
    results (``<output_dir>/<name>/``). Returns the exit code."""
    k, cfg = load(path, overrides)
    if plots:
        check_plot_files(k, cfg)
    try:
        paths, reports = run_plan(k, cfg, resume=resume, overwrite=overwrite, progress=progress, plots=plots)
    except RunsFailed as exc:                    # report what finished, then fail naming what did not
        if exc.done and exc.reports:
            report(k, [read_run(p, k.name) for p in exc.done], Path(cfg.output_dir) / cfg.name, plots=plots)
        raise
    if reports:
        folder = Path(cfg.output_dir) / cfg.name
        runs = [read_run(p, k.name) for p in paths]
        report(k, runs, folder, plots=plots)
        older = [] if plots else plots_older_than(folder, paths)
        if older:
            files = f"{len(older)} PNG file{'s' if len(older) > 1 else ''}"
            print(f"\nnote: {files} in {folder} predate these results (--no-plots wrote none); "
                  f"'spikecl report {folder}' redraws them")
        others = other_results(folder, paths, k.name)
        if others:
            files = f"{len(others)} more results file{'s' if len(others) > 1 else ''}"
            shown = "the table and plots above are" if plots else "the table above is"
            try:                                 # would the folder's report table them with this run's?
                summary(k, [*runs, *(read_run(p, k.name) for p in others)])
                next_step = f"'spikecl report {folder}' compares them all"
            except SpikeCLError as exc:           # the run is done: its note never fails it
                next_step = f"'spikecl report {folder}' would refuse to table them together: {exc}"
            print(f"\nnote: {folder} holds {files} than this run wrote (e.g. {others[0].name}); {shown} of this "
                  f"run's; {next_step}")
    return 0


def check_plot_files(k: Kind, cfg) -> None:
    """A one-line :class:`ConfigError` where a folder lies in the place of a plot the run will write (its folder
    checked first, as :func:`preflight` checks an output folder)."""
    paths = k.plot_files(cfg)
    for folder in dict.fromkeys(path.parent for path in paths):
        check_writable_folder(folder, "output folder")
    for path in paths:
        check_place_for_file(path, "a plot")
        check_name_fits(path, "a plot")


def other_results(folder: Path, paths: Sequence[Path], kind_name: str) -> list[Path]:
    """The readable results files of ``kind_name`` directly in ``folder`` other than ``paths`` (an earlier run's
    other methods, say)."""
    mine = {os.path.abspath(p) for p in paths}
    others = []
    for path in sorted(folder.glob("*.h5")) if folder.is_dir() else []:
        if os.path.abspath(path) not in mine:
            with contextlib.suppress(SpikeCLError, OSError):
                read_run(path, kind_name)
                others.append(path)
    return others


def plots_older_than(folder: Path, paths: Sequence[Path]) -> list[Path]:
    """The PNG files in ``folder`` written before the newest of the results files ``paths``."""
    newest = max((p.stat().st_mtime for p in paths if p.exists()), default=None)
    if newest is None or not folder.is_dir():
        return []
    return sorted(png for png in folder.glob("*.png") if png.stat().st_mtime < newest)


def summary(k: Kind, runs: Sequence[Run], detail: bool = True) -> str:
    """``k``'s summary of ``runs``; one that fails on what the files hold together (runs a kind's own
    :func:`check_seeds` did not refuse: arrays of other shapes; or its own defect) is a one-line
    :class:`ResultsError`."""
    try:
        return k.summarize(runs, detail=detail)
    except SpikeCLError:
        raise
    except SUMMARY_FAILURES as exc:
        hint = ("are they seeds of one experiment? report them separately" if len(runs) > 1 else
                f"a defect of the kind's summarize(), or a file {k.name} cannot read")
        raise ResultsError(f"the {k.name} summary of {len(runs)} results file{'s' * (len(runs) != 1)} fails "
                           f"({type(exc).__name__}: {exc}); {hint}") from None


def report(k: Kind, runs: Sequence[Run], plots_dir: Path, plots: bool = True, detail: bool = True,
           text: str | None = None) -> list[Path]:
    """Print ``k``'s summary of ``runs`` (``text``: made already by :func:`summary`) and, with ``plots``, write its
    plots into ``plots_dir``; returns their paths."""
    print(summary(k, runs, detail) if text is None else text)
    written = []
    if plots:
        written = k.plot(runs, plots_dir)
        print(f"\nplots: {len(written)} PNG files in {plots_dir}")
    return written
