"""Speed of the CA3 memory: per-memory throughput of the torch stepper against real time, and wall time per
operation of Brian2 (numpy target) against the torch stepper, against C and M.

The schedule learns C random memories (density 0.3) and recalls each by cue, 14 ms apart (2C operations,
28 C ms of biological time). SpiNNaker runs the model in real time (1 ms of wall time per 1 ms step).

Throughput table (C = M = 100 by default): B independent memories, each with its own random contents, simulated
together; "x real time" = simulated biological time x B / time taken, from wall time and from this process's CPU
time (they differ on a loaded machine), torch with one thread per process, after a warm-up run of the same batch
size. With W > 1 workers the batch is split over W processes (:mod:`spikecl.memory.parallel`, a pool started before
timing; the time includes shipping the inputs and the shared-memory raster), and only wall time counts. Every row
runs in each ``--precision``, taking turns within every repeat: float64 (the reference) and float32 (spike-exact on
the SpiNNaker recordings, subnormals flushed; see :class:`~spikecl.memory.torch_net.TorchCA3`). The goal (issue 18)
is at least 100x real time per memory; the "goal" column says "met" (from wall time), "cpu" (from CPU time only) or
"no".

Size table: network construction is timed separately from running, after a warm-up run (imports, first code
generation); "x real time" = simulated / wall time; the last column is Brian2 numpy's time / this row's time.
Brian2's "run s" includes the setup it does at every ``run()`` call (about 0.3 s on 2 cores), as a user's calls do.

    python benchmarks/ca3_speed.py [--batches 1,16,64,256] [--workers 1,2] [--precision float64,float32] [--size 100]
                                   [--sizes 10,30,100,100x10,10x100] [--batch 16] [--repeats 2] [--device cpu] [--cpp]

``--sizes ""`` skips the size table. ``--cpp`` adds Brian2's cpp_standalone device (:class:`CompiledBrian2CA3`:
one C++ project per network size, minutes to compile on 2 cores, in "build s"); "run s" is one run of the compiled
binary with the schedule's inputs passed as run arguments (including process start and reading the results back).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from spikecl.commands import bounded, listed, torch_device
from spikecl.memory import CA3Params, encode, make_schedule, recall_by_cue
from spikecl.memory.stress import make_trial


def schedule_for(n_cues: int, n_bits: int, seed: int = 0):
    """Learn ``n_cues`` random memories of density 0.3, then recall each by cue, 14 ms apart."""
    trial = make_trial(n_cues, n_bits, 0.3, seed, fragment_sizes=(), relearn_fraction=0.0)
    ops = list(trial.operations[:n_cues]) + [recall_by_cue(c) for c in range(n_cues)]
    return make_schedule(ops, n_cues, n_bits, 14)


GOAL_X_REAL_TIME = 100.0


def batch_inputs(n_cues: int, n_bits: int, batch: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(cue ``[T, B, C]``, content ``[T, B, M]``, simulated seconds per memory): memory b learns the random
    contents of seed b, then recalls them (all schedules last 28 C ms)."""
    inputs = [encode(schedule_for(n_cues, n_bits, seed=b), n_cues, n_bits) for b in range(batch)]
    cue, content = (np.stack(x, 1) for x in zip(*inputs))
    return cue, content, cue.shape[0] / 1000


def time_throughput(C: int, M: int, batch: int, device: str, repeats: int, workers: int = 1, pool=None,
                    precisions: tuple[str, ...] = ("float64",)) -> tuple[float, dict[str, tuple[float, float]]]:
    """(simulated s per memory, {precision: (median wall s, median CPU s of this process)}) of a batch of different
    memories on ``workers`` processes (``pool``), after a warm-up; the precisions take turns within every repeat,
    so a change of the host's speed hits them alike."""
    import torch

    from spikecl.memory.parallel import simulate

    cue, content, sim_s = batch_inputs(C, M, batch)
    gate = np.ones(cue.shape[:2])
    run = lambda n, p: simulate(CA3Params(), C, M, cue[:n], content[:n], gate[:n], device, workers, pool,  # noqa
                                p)
    for precision in precisions:
        run(50, precision)                                                       # warm-up: the first 50 steps
    times = {precision: [] for precision in precisions}
    for _ in range(repeats):
        for precision in precisions:
            wall, cpu = time.perf_counter(), time.process_time()
            run(len(cue), precision)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times[precision].append((time.perf_counter() - wall, time.process_time() - cpu))
    return sim_s, {p: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
                   for p, ts in times.items()}


def print_throughput(C: int, M: int, batches: list[int], device: str, repeats: int, workers: list[int],
                     precisions: list[str]) -> None:
    """The throughput table: per-memory x real time from wall and CPU time, beside the goal."""
    from spikecl.memory.parallel import memory_pool

    print(f"torch stepper, C = M = {C}" if C == M else f"torch stepper, C = {C}, M = {M}", f"({device}, one thread "
          f"per process; per memory: simulated time x B / time; goal >= {GOAL_X_REAL_TIME:.0f}x real time)")
    print(f"{'precision':>9} {'B':>5} {'W':>3} {'sim s/mem':>9} {'wall s':>8} {'CPU s':>8} {'wall us/mem-step':>16} "
          f"{'x real (wall)':>13} {'x real (CPU)':>12} {'goal':>6}")
    for w in workers:
        pool = memory_pool(w) if w > 1 else None
        try:
            for batch in batches:
                if batch < w:
                    print(f"{'':>9} {batch:>5} {w:>3}  (skipped: {w} workers would leave a worker no memory of a "
                          f"batch of {batch})")
                    continue
                sim_s, timed = time_throughput(C, M, batch, device, repeats, w, pool, tuple(precisions))
                for precision, (wall, cpu) in timed.items():
                    x_wall, x_cpu = sim_s * batch / wall, sim_s * batch / cpu
                    met = ("met" if x_wall >= GOAL_X_REAL_TIME else
                           "cpu" if w == 1 and x_cpu >= GOAL_X_REAL_TIME else "no")
                    cpu_text = f"{x_cpu:>12.1f}" if w == 1 else f"{'-':>12}"
                    print(f"{precision:>9} {batch:>5} {w:>3} {sim_s:>9.3f} {wall:>8.3f} {cpu:>8.3f} "
                          f"{1e6 * wall / (batch * sim_s * 1000):>16.2f} {x_wall:>13.1f} {cpu_text} {met:>6}",
                          flush=True)
        finally:
            if pool is not None:
                pool.shutdown()


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


def parse_size(text: str) -> tuple[int, int]:
    """(C, M) from "N" (C = M = N) or "CxM", each at least 1 (argparse's one-line error otherwise)."""
    try:
        C, M = (int(x) for x in (text.split("x") if "x" in text else (text, text)))
    except ValueError:
        C = M = 0
    if min(C, M) < 1:
        raise argparse.ArgumentTypeError(f"expected N or CxM with C, M >= 1, got {text!r}")
    return C, M


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,16,64,256", type=listed(bounded(int, 1, what="a batch size")),
                        help="batch sizes of the throughput table")
    parser.add_argument("--workers", type=listed(bounded(int, 1, what="a number of processes")),
                        help="processes the throughput batch is split over (CPU only; default 1,2)")
    parser.add_argument("--precision", default="float64,float32", type=listed(("float64", "float32")),
                        help="the stepper's floats in the throughput table")
    parser.add_argument("--size", default="100", type=parse_size,
                        help="N for C = M = N, or CxM, of the throughput table")
    parser.add_argument("--sizes", default="10,30,100,100x10,10x100", type=listed(parse_size, allow_empty=True),
                        help="comma-separated sizes: N for C = M = N, or CxM ('' for none)")
    parser.add_argument("--batch", type=bounded(int, 1, what="a batch size"), default=16,
                        help="memories per torch batch")
    parser.add_argument("--repeats", type=bounded(int, 1, what="a number of repeats"), default=2)
    parser.add_argument("--device", default="cpu", type=torch_device)
    parser.add_argument("--cpp", action="store_true", help="also time Brian2 cpp_standalone (slow to compile)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    C, M = args.size
    workers = args.workers or [1, 2]
    if torch.device(args.device).type != "cpu" and workers != [1]:
        if args.workers is not None:
            parser.error("--workers: worker processes split a batch over CPU cores; on a GPU leave it out")
        workers = [1]
    print_throughput(C, M, args.batches, args.device, args.repeats, workers, args.precision)
    if not args.sizes:
        return
    time_brian2(5, 5), time_torch(5, 5, 2, args.device)      # warm-up: imports and first code generation
    print()
    print(f"{'C x M':>9} {'backend':<22} {'build s':>8} {'run s':>8} {'ms/op':>8} {'sim s':>8} "
          f"{'x real time':>11} {'vs numpy':>9}")
    for C, M in args.sizes:
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
                  f"{sim_s / run:>11.2f} {reference / run:>9.1f}")


if __name__ == "__main__":
    main()
