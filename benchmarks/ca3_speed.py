"""Wall time of the CA3 memory per operation and per simulated second: Brian2 (numpy target) against the torch
stepper (one memory, and a batch of independent memories), against C and M.

The schedule learns C random memories (density 0.3) and recalls each by cue, 14 ms apart (2C operations,
28 C ms of biological time). SpiNNaker runs the model in real time (1 ms of wall time per 1 ms step); the
"x real time" column is wall time / simulated time (below 1: faster than SpiNNaker). Network construction is timed
separately from running, after a warm-up run (imports, first code generation). Brian2 numpy is the plain reference: the last column is its time / this row's time.

    python benchmarks/ca3_speed.py [--sizes 10,30,100,100x10,10x100] [--batch 16] [--repeats 2] [--device cpu] [--cpp]

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


def schedule_for(n_cues: int, n_bits: int, seed: int = 0):
    """Learn ``n_cues`` random memories of density 0.3, then recall each by cue, 14 ms apart."""
    trial = make_trial(n_cues, n_bits, 0.3, seed, fragment_sizes=(), relearn_fraction=0.0)
    ops = list(trial.operations[:n_cues]) + [recall_by_cue(c) for c in range(n_cues)]
    return make_schedule(ops, n_cues, n_bits, 14)


def time_brian2(C: int, M: int, target: str = "numpy") -> tuple[float, float]:
    """(build seconds, run seconds) of one schedule in Brian2."""
    from spikecl.memory.brian2_net import Brian2CA3

    schedule = schedule_for(C, M)
    cue, content = encode(schedule, C, M)
    start = time.perf_counter()
    net = Brian2CA3(CA3Params(), C, M, target=target)
    built = time.perf_counter()
    net.run(cue, content)
    return built - start, time.perf_counter() - built


def time_torch(C: int, M: int, batch: int, device: str) -> tuple[float, float]:
    """(build seconds, run seconds) of ``batch`` memories with the same schedule in the torch stepper."""
    import torch

    from spikecl.memory.torch_net import TorchCA3

    schedule = schedule_for(C, M)
    cue, content = encode(schedule, C, M)
    start = time.perf_counter()
    net = TorchCA3(CA3Params(), C, M, batch_size=batch, device=device)
    built = time.perf_counter()
    net.run(np.repeat(cue[:, None], batch, 1), np.repeat(content[:, None], batch, 1))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return built - start, time.perf_counter() - built


def time_cpp_standalone(C: int, M: int) -> tuple[float, float]:
    """(build + compile seconds, run seconds) with Brian2's cpp_standalone device: the network is compiled once
    for the schedule's length, then the binary runs the schedule with its inputs passed as run arguments (a new
    schedule of the same or shorter length would not recompile)."""
    import tempfile

    from spikecl.memory.brian2_net import CompiledBrian2CA3

    schedule = schedule_for(C, M)
    cue, content = encode(schedule, C, M)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        net = CompiledBrian2CA3(CA3Params(), C, M, max_steps=schedule.duration_ms, directory=folder)
        built = time.perf_counter()
        try:
            net.run(cue, content)
        finally:
            net.close()
        return built - start, time.perf_counter() - built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,30,100,100x10,10x100",
                        help="comma-separated sizes: N for C = M = N, or CxM")
    parser.add_argument("--batch", type=int, default=16, help="memories per torch batch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cpp", action="store_true", help="also time Brian2 cpp_standalone (slow to compile)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    time_brian2(5, 5), time_torch(5, 5, 2, args.device)      # warm-up: imports and first code generation
    print(f"{'C x M':>9} {'backend':<22} {'build s':>8} {'run s':>8} {'ms/op':>8} {'sim s':>8} "
          f"{'x real time':>11} {'vs numpy':>9}")
    for text in args.sizes.split(","):
        C, M = (int(x) for x in (text.split("x") if "x" in text else (text, text)))
        schedule = schedule_for(C, M)
        n_ops, sim_s = len(schedule), schedule.duration_ms / 1000
        rows = {"brian2 numpy": lambda: time_brian2(C, M),
                "torch B=1": lambda: time_torch(C, M, 1, args.device),
                f"torch B={args.batch} (per mem)": lambda: time_torch(C, M, args.batch, args.device)}
        if args.cpp:
            rows["brian2 cpp_standalone"] = lambda: time_cpp_standalone(C, M)
        reference = None
        for name, fn in rows.items():
            times = [fn() for _ in range(args.repeats if "cpp" not in name else 1)]
            build = statistics.median(t[0] for t in times)
            run = statistics.median(t[1] for t in times)
            if "per mem" in name:
                run /= args.batch
            reference = reference or run
            print(f"{f'{C}x{M}':>9} {name:<22} {build:>8.2f} {run:>8.3f} {1e3 * run / n_ops:>8.2f} {sim_s:>8.3f} "
                  f"{run / sim_s:>11.3f} {reference / run:>9.1f}")


if __name__ == "__main__":
    main()
