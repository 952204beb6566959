"""The ``continual`` experiment kind: one results file per (method, seed) of a continual-learning experiment file,
``<output_dir>/<name>/<method>-seed<seed>.h5`` (layout in :mod:`spikecl.io`), with a checkpoint beside it while it
trains; ``--nproc N`` trains each run data-parallel."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

from spikecl.config import ExperimentConfig, experiment_from_dict
from spikecl.experiment_kind import Job, JobOptions, Kind
from spikecl.io import Run, as_result


class ContinualKind(Kind):
    name = "continual"
    config = ExperimentConfig
    data_parallel = True

    def load(self, raw: dict) -> ExperimentConfig:
        from spikecl.continual.strategies import validate_method

        cfg = experiment_from_dict(raw)
        for method in cfg.strategy.methods:
            validate_method(cfg, method)
        return cfg

    def plan(self, cfg: ExperimentConfig) -> list[Job]:
        from spikecl.continual.runner import results_path

        return [Job(results_path(cfg, m, s), _runner(cfg, m, s, results_path(cfg, m, s)))
                for s in cfg.seeds for m in cfg.strategy.methods]

    @contextlib.contextmanager
    def session(self, cfg: ExperimentConfig):
        """The process group of a data-parallel run (nothing in one process); only rank 0 reports."""
        from spikecl.continual import distributed

        with distributed.session(cfg.device):
            yield distributed.is_main()
            distributed.barrier()                    # rank 0 has written every results file

    def summarize(self, runs: Sequence[Run], detail: bool = True) -> str:
        from spikecl.continual.report import in_experiment_order, text_report

        return text_report(in_experiment_order([as_result(r) for r in runs]), matrices=detail)

    def plot(self, runs: Sequence[Run], out_dir: Path) -> list[Path]:
        from spikecl.continual.report import in_experiment_order, write_plots

        return write_plots(in_experiment_order([as_result(r) for r in runs]), out_dir)


def _runner(cfg: ExperimentConfig, method: str, seed: int, path: Path):
    """The job training ``method`` on ``seed`` into ``path`` (data-parallel inside a process group of several)."""
    def run(options: JobOptions) -> str:
        from spikecl.continual import distributed
        from spikecl.continual.runner import ContinualRun, checkpoint_path

        run_class = ContinualRun
        if distributed.world_size() > 1:
            from spikecl.continual.data_parallel import DataParallelRun as run_class
        if options.overwrite and not options.resume:
            checkpoint_path(path).unlink(missing_ok=True)
        result = run_class(cfg, method, seed).execute(path, resume=options.resume, overwrite=options.overwrite,
                                                      progress_bar=options.progress)
        return f"ACC {100 * result.metrics['acc']:.1f}%  BWT {100 * result.metrics['bwt']:+.1f}"

    return run


KIND = ContinualKind()
