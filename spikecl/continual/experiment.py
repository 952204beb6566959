"""The ``continual`` experiment kind: every (method, seed) of a continual-learning experiment file."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


def run_experiment_file(path: str | Path, overrides: Iterable[str] = (), *, resume: bool = False,
                        overwrite: bool = False, progress: bool = True, plots: bool = True) -> int:
    """Load, validate and run ``path``; print the report and write plots. Returns the exit code."""
    from spikecl.config import load_experiment
    from spikecl.continual.distributed import is_main
    from spikecl.continual.runner import run_experiment
    from spikecl.report import print_report

    cfg = load_experiment(path, overrides)
    results = run_experiment(cfg, resume=resume, overwrite=overwrite, progress_bar=progress)
    if is_main():                                    # data-parallel runs: one report, from rank 0
        print_report(results, Path(cfg.output_dir) / cfg.name, plots=plots, matrices=True)
    return 0
