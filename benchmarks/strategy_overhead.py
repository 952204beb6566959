"""Per-epoch training time of each continual-learning method relative to fine-tuning, same network, same run.

For every method, task 1 of a Permuted MNIST-5k stream is trained for one epoch (after task 0, so projection
methods have a consolidated subspace to project against and new lateral neurons to train). Prints seconds per epoch
and the ratio to fine-tune (HLOP's target: within 1.5x). ``hlop`` is the published method (every time step's rows,
fixed Hebbian rates); ``hlop-spikecl`` uses one random step row per sample and the normalised step.

    python benchmarks/strategy_overhead.py [--hidden 800] [--steps 4] [--trainer bptt|online|dsr] [--repeats 3]
                                           [--hlop iterations=10] [--hlop final_passes=1]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tomllib

from spikecl.config import experiment_from_dict
from spikecl.continual.runner import ContinualRun
from spikecl.snn.trainers import TRAINERS

METHODS = ("finetune", "ewc", "si", "replay", "gpm", "hlop", "hlop-spikecl")
SPIKECL = {"method": "hlop", "strategy.hlop.step": "normalised", "strategy.hlop.step_rows": 1,
           "strategy.hlop.orthonormalize": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=800)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--trainer", default="bptt", choices=tuple(TRAINERS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--hlop", action="append", default=[], metavar="KEY=VALUE",
                        help="an HLOP option (value as TOML), e.g. iterations=10; repeatable")
    args = parser.parse_args()
    hlop = {"neurons": [[60, 120, 800], [50, 40, 0]], **tomllib.loads("\n".join(args.hlop))}
    methods = args.methods.split(",")
    cfg = experiment_from_dict({
        "data": {"dataset": "mnist5k"}, "stream": {"kind": "permuted", "n_tasks": 2},
        "network": {"hidden": [args.hidden, args.hidden], "num_steps": args.steps},
        "train": {"trainer": args.trainer, "epochs": 1},
        "strategy": {"methods": methods, "hlop": hlop}, "variants": {"hlop-spikecl": SPIKECL}})
    runs = {}
    for method in methods:
        run = ContinualRun(cfg, method, seed=0)
        run.train_task(0)
        runs[method] = run
    seconds = {m: [] for m in methods}
    for _ in range(args.repeats):             # interleaved, so machine load affects all methods alike
        for method, run in runs.items():
            start = time.perf_counter()
            run.train_task(1)
            seconds[method].append(time.perf_counter() - start)
    base = statistics.median(seconds["finetune"]) if "finetune" in seconds else None
    print(f"one epoch of task 2 (4,000 samples), MLP 784-{args.hidden}-{args.hidden}-10, T={args.steps}, "
          f"{args.trainer}, median of {args.repeats}; HLOP {hlop}")
    for method, values in seconds.items():
        median = statistics.median(values)
        ratio = f"{median / base:6.2f}x fine-tune" if base else ""
        print(f"  {method:<10} {median:7.3f} s  {ratio}")


if __name__ == "__main__":
    main()
