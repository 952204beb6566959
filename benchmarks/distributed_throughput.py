"""Training throughput (samples/s) of data-parallel runs with 1 and N processes, against a plain 1-process run.

Every configuration trains the first task of permuted MNIST-5k (4,000 samples, one epoch, global batch 64, spiking
MLP 784-H-H-10, T steps) with the same method and seed; only the training loop of that task is timed (process
start, data loading and evaluation are excluded). The reference is the ordinary single-process ``ContinualRun`` in
this process, measured in the same invocation. Each process uses ``--threads`` intra-op threads, so "1 process x 2
threads" against "2 processes x 1 thread" compares the same number of cores.

    python benchmarks/distributed_throughput.py [--nproc 2] [--methods finetune,hlop] [--hidden 256] [--steps 4]
                                                [--device cpu|cuda] [--repeats 2]

On a multi-GPU node use ``--device cuda --nproc <GPUs>`` (one GPU per process, nccl).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from spikecl import launcher
from spikecl.commands import bounded, listed, torch_device
from spikecl.config import experiment_from_dict
from spikecl.errors import SpikeCLError
from spikecl.continual import distributed
from spikecl.continual.strategies import validate_method


def _config(args, method: str) -> dict:
    return {"name": "throughput", "seeds": [0], "device": args.device, "data": {"dataset": "mnist5k"},
            "stream": {"kind": "permuted", "n_tasks": 1},
            "network": {"hidden": [args.hidden, args.hidden], "num_steps": args.steps},
            "train": {"epochs": 1, "batch_size": args.batch, "lr": 0.05},
            "strategy": {"methods": [method], "hlop": {"neurons": [[80, 100, 50]]}}}


def time_first_task(raw: dict, method: str, threads: int, repeats: int) -> float:
    """Best samples/s over ``repeats`` trainings of task 0 (a fresh run each time)."""
    torch.set_num_threads(threads)
    cfg = experiment_from_dict(raw)
    best = 0.0
    with distributed.session(cfg.device) as world:
        from spikecl.continual.data_parallel import DataParallel
        from spikecl.continual.runner import ContinualRun

        for _ in range(repeats):
            run = ContinualRun(cfg, method, 0, execution=DataParallel() if world > 1 else None)
            distributed.barrier()
            start = time.perf_counter()
            run.train_task(0)
            if run.device.type == "cuda":
                torch.cuda.synchronize()
            distributed.barrier()
            best = max(best, cfg.train.epochs * len(run.train_sets[0]) / (time.perf_counter() - start))
    return best


def _time_to_file(raw: dict, method: str, threads: int, repeats: int, out: str) -> int:
    """:func:`time_first_task` in a launched process; rank 0 writes the rate to ``out``."""
    rate = time_first_task(raw, method, threads, repeats)
    if distributed.is_main():
        Path(out).write_text(json.dumps(rate), encoding="utf-8")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=bounded(int, 1, what="a number of processes"), default=2)
    parser.add_argument("--methods", default="finetune,hlop", type=listed(str), help="comma-separated methods")
    parser.add_argument("--hidden", type=bounded(int, 1, what="a layer width"), default=256)
    parser.add_argument("--steps", type=bounded(int, 1, what="a number of time steps"), default=4)
    parser.add_argument("--batch", type=bounded(int, 1, what="a batch size"), default=64)
    parser.add_argument("--threads", type=bounded(int, 1, what="a number of threads"), default=1,
                        help="intra-op threads per process")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), type=torch_device)
    parser.add_argument("--repeats", type=bounded(int, 1, what="a number of repeats"), default=2)
    args = parser.parse_args()
    for method in args.methods:                  # every config checked before any timing
        try:
            validate_method(experiment_from_dict(_config(args, method)), method)
        except SpikeCLError as exc:
            parser.error(str(exc))

    rows = []                                    # (method, runner, processes, threads/process, samples/s)
    for method in args.methods:
        raw = _config(args, method)
        rows.append((method, "plain ContinualRun", 1, args.threads,
                     time_first_task(raw, method, args.threads, args.repeats)))
        if args.device == "cpu" and args.nproc > 1:
            threads = args.threads * args.nproc
            rows.append((method, "plain ContinualRun", 1, threads, time_first_task(raw, method, threads, args.repeats)))
        with tempfile.TemporaryDirectory() as tmp:
            out = f"{tmp}/rate.json"
            code = launcher.launch(args.nproc, _time_to_file, raw, method, args.threads, args.repeats, out)
            if code:
                raise SystemExit(f"the {args.nproc}-process run failed (exit code {code})")
            rate = json.loads(Path(out).read_text(encoding="utf-8"))
            rows.append((method, "DataParallel", args.nproc, args.threads, rate))

    print(f"\nthroughput, first task of permuted MNIST-5k ({args.device}, MLP 784-{args.hidden}-{args.hidden}-10, "
          f"T={args.steps}, global batch {args.batch}; best of {args.repeats})")
    header = f"{'method':<10} {'runner':<20} {'processes':>9} {'threads':>8} {'samples/s':>10} {'vs plain 1x':>12}"
    print(header)
    print("-" * len(header))
    reference = {method: rate for method, runner, nproc, threads, rate in rows
                 if runner == "plain ContinualRun" and threads == args.threads}
    for method, runner, nproc, threads, rate in rows:
        print(f"{method:<10} {runner:<20} {nproc:>9} {threads:>8} {rate:>10.0f} {rate / reference[method]:>11.2f}x")


if __name__ == "__main__":
    main()
