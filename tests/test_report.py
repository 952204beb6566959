"""Reports from a folder of results files: runs come back in the order their experiments list the methods."""

import numpy as np

from spikecl.io import RunResult, write_results
from spikecl.report import collect, text_report


def result(method, seed, methods):
    acc = np.array([[0.1, 0.1], [0.9, 0.2], [0.8, 0.95]])
    return RunResult(method, seed, {"name": "x", "strategy": {"methods": methods}}, acc, np.zeros(0, np.int64),
                     np.zeros(0, np.int64), np.zeros((0, 2)), np.array([1.0, 1.0]), {"acc": 0.875, "bwt": -0.1})


def test_folder_runs_follow_the_experiments_method_order(tmp_path):
    listed = ["finetune", "hlop", "joint"]
    for method in listed:
        for seed in (1, 0):
            write_results(tmp_path / f"{method}-seed{seed}.h5", result(method, seed, listed))
    write_results(tmp_path / "extra" / "ewc-seed0.h5", result("ewc", 0, ["ewc"]))   # another experiment's run
    runs = collect([tmp_path])
    assert [(r.method, r.seed) for r in runs] == [("finetune", 0), ("finetune", 1), ("hlop", 0), ("hlop", 1),
                                                  ("joint", 0), ("joint", 1), ("ewc", 0)]
    table = text_report(runs, matrices=False)
    rows = [line.split()[0] for line in table.splitlines()[2:6]]
    assert rows == ["finetune", "hlop", "joint", "ewc"]                  # alphabetical would put ewc first
