"""The ``continual`` experiment kind: one results file per (method, seed) of a continual-learning experiment file,
``<output_dir>/<name>/<method>-seed<seed>.h5`` (layout in :mod:`spikecl.continual.results`), with a checkpoint beside
it while it trains; ``--nproc N`` trains each run data-parallel."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Sequence

from spikecl.config import (MAX_THREADS, ExperimentConfig, NetworkConfig, check_split_heads, experiment_from_dict,
                            method_config, unreached_override)
from spikecl.continual import metrics
from spikecl.continual.report import RULES
from spikecl.continual.results import as_continual, read_continual
from spikecl.differences import OtherMethodsIgnored
from spikecl.errors import ConfigError, NumericalError, SpikeCLError, check_installed
from spikecl.experiment_kind import RESUME_IGNORES, SEED_ROW_IGNORES, Job, JobOptions, Kind, check_seeds, its_checkpoint
from spikecl.io import Run
from spikecl.remedies import option


class ContinualKind(Kind):
    name = "continual"
    config = ExperimentConfig
    data_parallel = True
    rule_keys = RULES

    def load(self, raw: dict) -> ExperimentConfig:
        """Validate the file, every method's options and what each method supports (trainer, scenario)."""
        check_installed("torch", "torch", "a continual experiment (its methods and spiking networks)")
        return _validated(experiment_from_dict(raw))

    def plan(self, cfg: ExperimentConfig) -> list[Job]:
        return [_job(cfg, m, s) for s in cfg.seeds for m in cfg.strategy.methods]

    def experiment_of(self, run: Run) -> dict:
        """The one-run experiment that makes ``run`` again in the folder that holds its file: its recorded config as
        this spikecl reads it, its method's options as ``[strategy.<method>]``, its seed, and a variant as a variant
        of no changes (its settings are folded into the config), so that the new file has the old one's numbers and
        settings; what a results file records beside the config (its method, seed, how spikecl computed) is left
        out."""
        import dataclasses

        from spikecl.recorded import recorded_as_now

        recorded = recorded_as_now(run.config, run.attrs.get("seed"))
        method, runs_method, seed = (recorded.get(k) for k in ("method", "runs_method", "seed"))
        if not (isinstance(method, str) and isinstance(runs_method, str) and isinstance(seed, int)):
            raise ConfigError(f"{run.path}: its config records no method and seed to run again")
        fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
        raw = {k: v for k, v in recorded.items() if k in fields}
        strategy = dict(raw.get("strategy") or {})
        raw["strategy"] = {**{k: v for k, v in strategy.items() if k != "options"}, **(strategy.get("options") or {}),
                           "methods": [method]}
        raw["variants"] = {method: {"method": runs_method}} if method != runs_method else {}
        raw["seeds"] = [seed]
        where = Path(run.path).absolute().parent      # beside the file, wherever it lies now (--output-dir: elsewhere)
        raw["output_dir"], raw["name"] = str(where.parent), where.name
        return raw

    def datasets_read(self, raw: dict) -> set:
        """Each method's and variant's that ``strategy.methods`` runs."""
        cfg = experiment_from_dict(raw)
        return {method_config(cfg, name)[0].data.dataset for name in cfg.strategy.methods}

    def recorded_setup(self, run: Run) -> tuple[int, int] | None:
        """Its batches are split over its processes and summed by its threads: both counts, where each is one
        within :data:`~spikecl.config.MAX_THREADS`."""
        counts = (run.environment.get("torch_threads"), run.environment.get("processes", 1))
        return counts if all(isinstance(n, int) and 1 <= n <= MAX_THREADS for n in counts) else None

    def export(self, source: Path, output: Path, overwrite: bool) -> str:
        """A one-line :class:`ConfigError`: what exports is what the experiment trains, its results files."""
        raise ConfigError(f"{source} is a continual experiment file; export takes what it trained: run it (spikecl "
                          f"run {source}), then export a results file, e.g. spikecl export "
                          "<output_dir>/<name>/<method>-seed0.h5 -o net.h5 (a ca3 experiment file exports as it is)")

    def check_overrides(self, cfg: ExperimentConfig, paths: list[list[str]]) -> None:
        """A method's option set for no run of the method, or a setting every run takes from its variant."""
        why = next(filter(None, (unreached_override(cfg, path) for path in paths)), None)
        if why:
            raise ConfigError(why)

    def checkpoint_difference(self, cfg: ExperimentConfig, job: Job) -> str | None:
        from spikecl.continual.checkpoint import checkpoint_mismatch

        return checkpoint_mismatch(job.checkpoint, cfg, job.config["method"], job.config["seed"])

    def check_data_parallel(self, cfg: ExperimentConfig) -> None:
        """Every method must support data-parallel training, and ``train.compile`` and ``train.cuda_graph`` do
        not."""
        from spikecl.continual.strategies import check_support, validate_method

        for method in cfg.strategy.methods:
            run_cfg, runs_method = validate_method(cfg, method)
            check_support(runs_method, run_cfg.train, run_cfg.stream.scenario, data_parallel=True)
            for key in ("compile", "cuda_graph"):
                if getattr(run_cfg.train, key):
                    raise ConfigError(f"train.{key}: not supported in data-parallel runs ({method}); run with one "
                                      f"process or set train.{key} = false")

    @contextlib.contextmanager
    def session(self, cfg: ExperimentConfig):
        """The process group of a data-parallel run (nothing in one process); only rank 0 reports."""
        from spikecl.continual import distributed

        with distributed.session(cfg.device):
            yield distributed.is_main()
            distributed.barrier()                    # rank 0 has written every results file

    def check_plan(self, todo: Sequence[Job]) -> None:
        """Every process of a data-parallel run must train the same jobs from the same checkpoints: each chose them
        from the files it found as it started, which another run may have finished or removed in between (the
        processes would then average the gradients of different runs into a results file that looks whole)."""
        from spikecl.continual import distributed

        plan = [(job.path.name, job.checkpoint is not None and job.checkpoint.exists()) for job in todo]
        plans = distributed.gathered(plan)
        other = next((r for r, p in enumerate(plans) if p != plans[0]), None)
        if other is not None:
            def jobs(p: list) -> str:
                return ", ".join(name + " (resumed)" * resumed for name, resumed in p) or "none"

            raise ConfigError(f"the {len(plans)} processes of this run chose different jobs (rank 0: "
                              f"{jobs(plans[0])}; rank {other}: {jobs(plans[other])}): they were started with other "
                              "settings, or another run wrote or removed one of these files as they started; run "
                              f"again once it has ended ({option('--resume')} keeps what is finished)")

    def summarize(self, runs: Sequence[Run], detail: bool = True) -> str:
        from spikecl.continual.report import in_experiment_order, text_report

        return text_report(in_experiment_order([as_continual(r) for r in comparable(runs)]), matrices=detail)

    def plot(self, runs: Sequence[Run], out_dir: Path) -> list[Path]:
        from spikecl.continual.report import in_experiment_order, write_plots

        return write_plots(in_experiment_order([as_continual(r) for r in comparable(runs)]), out_dir)

    def plot_files(self, cfg: ExperimentConfig) -> list[Path]:
        from spikecl.continual.report import plot_names

        return [Path(cfg.output_dir) / cfg.name / name for name in plot_names(cfg.strategy.methods, cfg.seeds)]

    def plot_paths(self, runs: Sequence[Run], out_dir: Path) -> list[Path]:
        from spikecl.continual.report import plot_names

        methods, seeds = sorted({str(r.attr("method")) for r in runs}), sorted({int(r.attr("seed")) for r in runs})
        return [Path(out_dir) / name for name in plot_names(methods, seeds)]



def comparable(runs: Sequence[Run]) -> Sequence[Run]:
    """``runs`` if their report is one row per method, mean ± std over seeds: a one-line :class:`ResultsError`
    when two files hold the same (method, seed), or when runs of one method were made with different settings (the
    key names the first difference; :data:`SEED_ROW_IGNORES` aside), never averaged as if they were seeds."""
    by_method: dict[str, list[Run]] = {}
    for run in runs:
        by_method.setdefault(run.attrs.get("method"), []).append(run)
    for method, group in by_method.items():
        runs_method = group[0].config.get("runs_method", method)
        check_seeds(group, method, ignore=OtherMethodsIgnored(SEED_ROW_IGNORES, runs_method))
    return runs


def _job(cfg: ExperimentConfig, method: str, seed: int) -> Job:
    """The job of (``method``, ``seed``): its results file, its runner, the config the file records and the keys a
    kept file may differ in (the options of methods it does not use among them)."""
    from spikecl.continual.run_record import recorded_config
    from spikecl.data.streams import files_crc
    from spikecl.run_files import checkpoint_path

    run_cfg, runs_method = method_config(cfg, method)
    path = cfg.results_path(method, seed)
    return Job(path, _runner(cfg, method, seed, path), recorded_config(run_cfg, method, runs_method, seed),
               OtherMethodsIgnored(RESUME_IGNORES, runs_method), checkpoint_path(path),
               identity={"method": method, "seed": seed}, data_crc=functools.partial(files_crc, run_cfg.data))


def _validated(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` after checking every method's options and what each method supports (trainer, scenario), and the
    options of variants it declares but does not run; a ConfigError names the first problem, before anything is
    written."""
    from spikecl.continual.strategies import check_read, check_run, check_support, validate_method

    runs, configs = [], []
    for method in cfg.strategy.methods:
        run_cfg, runs_method = validate_method(cfg, method)
        try:
            check_split_heads(run_cfg, training=True)                    # a variant's own stream
        except ConfigError as exc:
            raise ConfigError(f"variants.{method}: {exc}" if method in cfg.variants else str(exc)) from None
        check_support(runs_method, run_cfg.train, run_cfg.stream.scenario, data_parallel=False)
        check_run(run_cfg, runs_method)
        runs.append((runs_method, run_cfg.strategy.options))
        configs.append((run_cfg, runs_method))
    check_read(runs)
    check_surrogate_read(configs)
    for name in cfg.variants.keys() - set(cfg.strategy.methods):
        validate_method(cfg, name)
    return cfg


def check_surrogate_read(runs: list[tuple[ExperimentConfig, str]]) -> None:
    """A one-line ConfigError where ``network.surrogate_slope`` is set away from its default and no run of ``runs``
    ((run config, method it runs) of each) reads it: every one trains with the dsr trainer, whose gradients pass
    through firing rates, and none of its methods takes gradients through the spikes of its own (EWC's Fisher)."""
    from spikecl.continual.strategies import components, strategy_class

    default = NetworkConfig().surrogate_slope
    if not any(run_cfg.network.surrogate_slope != default for run_cfg, _ in runs):
        return
    if all(run_cfg.train.trainer == "dsr" and not any(strategy_class(part).own_spike_gradients
                                                      for part in components(method)) for run_cfg, method in runs):
        raise ConfigError(f"network.surrogate_slope: no run of this experiment reads it (the dsr trainer passes "
                          f"gradients through firing rates, and none of its methods takes them through the spikes, "
                          f"as EWC's Fisher does); leave it at its default ({default:g}): every run would ignore it")


def _runner(cfg: ExperimentConfig, method: str, seed: int, path: Path):
    """The job training ``method`` on ``seed`` into ``path`` (data-parallel inside a process group of several)."""
    def run(options: JobOptions) -> str:
        from spikecl.continual import distributed
        from spikecl.continual.execution import Execution
        from spikecl.continual.runner import ContinualRun
        from spikecl.continual.strategies import check_support, validate_method
        from spikecl.run_files import checkpoint_path, file_state, write_divergence

        execution = Execution()
        if distributed.world_size() > 1:
            from spikecl.continual.data_parallel import DataParallel

            run_cfg, runs_method = validate_method(cfg, method)
            check_support(runs_method, run_cfg.train, run_cfg.stream.scenario, data_parallel=True)
            execution = DataParallel()
        if options.overwrite and not options.resume and distributed.is_main():   # the process holding the lock
            checkpoint_path(path).unlink(missing_ok=True)
        run = ContinualRun(cfg, method, seed, execution=execution)
        before = file_state(checkpoint_path(path))
        try:
            result = run.execute(path, resume=options.resume, overwrite=options.overwrite,
                                 progress_bar=options.progress, replace_stale=options.replace_stale)
        except NumericalError as exc:            # name the run: an experiment trains many
            message = f"{method} seed {seed}, task {run.run_state.next_task + 1}: {exc}"
            if distributed.world_size() > 1:     # each process checks its own shard: the others may not have
                # raised, and one that went on to the next run would wait on them for ever; stop every process
                if its_checkpoint(checkpoint_path(path), before, options):   # any rank that diverged says
                    write_divergence(path, message)                            # so: the main one may not have
                raise SpikeCLError(f"{message} (in a data-parallel run this stops every process; run it again "
                                   "without the failing setting)") from None
            raise NumericalError(message) from None
        return metrics.headline(result.metrics)

    return run


KIND = ContinualKind()


def run_experiment(cfg: ExperimentConfig, resume: bool = False, overwrite: bool = False, progress_bar: bool = True,
                   log=print) -> list:
    """Run every (method, seed) of ``cfg`` through the experiment-kind driver (the same ``--resume`` /
    ``--overwrite`` semantics as ``spikecl run``) and return their results read back, in plan order."""
    from spikecl.experiment_kind import run_plan

    if not isinstance(cfg, ExperimentConfig):
        raise ConfigError(f"run_experiment: cfg must be an ExperimentConfig (spikecl.config.experiment_from_dict "
                          f"makes one from a dict), got {type(cfg).__name__}")
    cfg = experiment_from_dict(cfg.to_dict())          # built from dataclasses: checked as a file's would be
    paths, _ = run_plan(KIND, _validated(cfg), resume=resume, overwrite=overwrite, progress=progress_bar, log=log)
    return [read_continual(path) for path in paths]
