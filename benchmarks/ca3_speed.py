"""Wall time of the CA3 memory per operation and per simulated second: Brian2 (numpy target) against the torch
stepper (one memory, and a batch of independent memories), for growing C = M.

The schedule learns C random memories (density 0.3) and recalls each by cue, 14 ms apart (2C operations,
28 C ms of biological time). SpiNNaker runs the model in real time (1 ms of wall time per 1 ms step); the
"x real time" column is wall time / simulated time (below 1: faster than SpiNNaker). Network construction is timed
separately from running, after a warm-up run (imports, first code generation). Brian2 numpy is the plain reference: the last column is its time / this row's time.

    python benchmarks/ca3_speed.py [--sizes 10,30,100] [--batch 16] [--repeats 2] [--device cpu] [--cpp]

``--cpp`` adds Brian2's cpp_standalone device (:class:`CompiledBrian2CA3`: one C++ project per network size,
minutes to compile on 2 cores, in "build s"); "run s" is one run of the compiled binary with the schedule's inputs
passed as run arguments (including process start and reading the results back).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from spikecl.memory import CA3Params, encode, make_schedule, recall_by_cue
from spikecl.memory.stress import make_trial


def schedule_for(size: int, seed: int = 0):
    trial = make_trial(size, size, 0.3, seed, fragment_sizes=(), relearn_fraction=0.0)
    ops = list(trial.operations[:size]) + [recall_by_cue(c) for c in range(size)]
    return make_schedule(ops, size, size, 14)


def time_brian2(size: int, target: str = "numpy") -> tuple[float, float]:
    """(build seconds, run seconds) of one schedule in Brian2."""
    from spikecl.memory.brian2_net import Brian2CA3

    schedule = schedule_for(size)
    cue, content = encode(schedule, size, size)
    start = time.perf_counter()
    net = Brian2CA3(CA3Params(), size, size, target=target)
    built = time.perf_counter()
    net.run(cue, content)
    return built - start, time.perf_counter() - built


def time_torch(size: int, batch: int, device: str) -> tuple[float, float]:
    """(build seconds, run seconds) of ``batch`` memories with the same schedule in the torch stepper."""
    import torch

    from spikecl.memory.torch_net import TorchCA3

    schedule = schedule_for(size)
    cue, content = encode(schedule, size, size)
    start = time.perf_counter()
    net = TorchCA3(CA3Params(), size, size, batch_size=batch, device=device)
    built = time.perf_counter()
    net.run(np.repeat(cue[:, None], batch, 1), np.repeat(content[:, None], batch, 1))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return built - start, time.perf_counter() - built


def time_cpp_standalone(size: int) -> tuple[float, float]:
    """(build + compile seconds, run seconds) with Brian2's cpp_standalone device: the network is compiled once
    for the schedule's length, then the binary runs the schedule with its inputs passed as run arguments (a new
    schedule of the same or shorter length would not recompile)."""
    import tempfile

    from spikecl.memory.brian2_net import CompiledBrian2CA3

    schedule = schedule_for(size)
    cue, content = encode(schedule, size, size)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        net = CompiledBrian2CA3(CA3Params(), size, size, max_steps=schedule.duration_ms, directory=folder)
        built = time.perf_counter()
        try:
            net.run(cue, content)
        finally:
            net.close()
        return built - start, time.perf_counter() - built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,30,100", help="comma-separated C = M values")
    parser.add_argument("--batch", type=int, default=16, help="memories per torch batch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cpp", action="store_true", help="also time Brian2 cpp_standalone (slow to compile)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    time_brian2(5), time_torch(5, 2, args.device)            # warm-up: imports and first code generation
    print(f"{'C=M':>5} {'backend':<22} {'build s':>8} {'run s':>8} {'ms/op':>8} {'sim s':>8} "
          f"{'x real time':>11} {'vs numpy':>9}")
    for size in (int(s) for s in args.sizes.split(",")):
        schedule = schedule_for(size)
        n_ops, sim_s = len(schedule), schedule.duration_ms / 1000
        rows = {"brian2 numpy": lambda: time_brian2(size),
                "torch B=1": lambda: time_torch(size, 1, args.device),
                f"torch B={args.batch} (per mem)": lambda: time_torch(size, args.batch, args.device)}
        if args.cpp:
            rows["brian2 cpp_standalone"] = lambda: time_cpp_standalone(size)
        reference = None
        for name, fn in rows.items():
            times = [fn() for _ in range(args.repeats if "cpp" not in name else 1)]
            build = statistics.median(t[0] for t in times)
            run = statistics.median(t[1] for t in times)
            if "per mem" in name:
                run /= args.batch
            reference = reference or run
            print(f"{size:>5} {name:<22} {build:>8.2f} {run:>8.3f} {1e3 * run / n_ops:>8.2f} {sim_s:>8.3f} "
                  f"{run / sim_s:>11.3f} {reference / run:>9.1f}")


if __name__ == "__main__":
    main()
