"""Page faults and time of a training step with glibc's default allocator policy and with freed memory kept
(:func:`spikecl.allocator.keep_freed_memory`, as the spikecl CLI runs and the speed benchmarks run).

The policy is process-wide, so every measurement is a fresh process: per case (the fused engine's BPTT step of the
MLP 784-256-256-10 at T = 8 and 25, batch 256, and the plain snnTorch loop's at T = 8, batch 256; one thread,
direct-encoded random inputs), each round starts one process per policy, in an order that alternates between
rounds; a process warms up for 3 steps, then times ``--steps`` steps. Prints the medians over rounds of CPU time and
minor page faults per step, and the ratio of the default policy's time to the kept one's within a round (median,
lowest and highest over rounds: this host's speed drifts between processes by more than the effect at some sizes).
Both policies run under the caller's ``THP_MEM_ALLOC_ENABLE`` (``make bench`` sets it to 1, as the CLI does).

    python benchmarks/allocator_effect.py [--rounds 5] [--steps 15] [--cases fused:8:256,fused:25:256,plain:8:256]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from spikecl.commands import bounded

CASES = "fused:8:256,fused:25:256,plain:8:256"     # engine:T:batch
POLICIES = ("default", "kept")


def measure(policy: str, engine: str, steps: int, batch: int, count: int) -> dict:
    """In this process: (CPU seconds, minor page faults) per training step under ``policy``."""
    from spikecl.allocator import keep_freed_memory

    if policy == "kept" and not keep_freed_memory():
        raise SystemExit("allocator_effect: this C library has no mallopt to keep freed memory (glibc only)")
    import torch

    from engine_speed import plain_step, spikecl_step

    torch.set_num_threads(1)
    device = torch.device("cpu")
    step = plain_step(steps, device) if engine == "plain" else spikecl_step(steps, "fused", device)
    x, y = torch.rand(batch, 784), torch.randint(0, 10, (batch,))
    for _ in range(3):
        step(x, y)
    faults, cpu, wall = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time(), time.perf_counter()
    for _ in range(count):
        step(x, y)
    return {"cpu": (time.process_time() - cpu) / count, "wall": (time.perf_counter() - wall) / count,
            "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / count}


def in_fresh_process(policy: str, case: tuple, count: int) -> dict:
    """:func:`measure` in a new Python process."""
    done = subprocess.run([sys.executable, __file__, "--child", policy, *map(str, case), str(count)],
                          capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"allocator_effect: the {policy} process for {case} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_cases(text: str) -> list[tuple[str, int, int]]:
    """``engine:T:batch,...`` as (engine, T, batch) tuples; ValueError naming the first bad case."""
    cases = []
    for case in text.split(","):
        parts = case.split(":")
        if len(parts) != 3 or parts[0] not in ("fused", "plain") or not all(p.isdigit() and int(p) > 0
                                                                              for p in parts[1:]):
            raise ValueError(f"--cases: {case!r} is not engine:T:batch (engine fused or plain, T and batch >= 1)")
        cases.append((parts[0], int(parts[1]), int(parts[2])))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=bounded(int, 1, what="a number of rounds"), default=5)
    parser.add_argument("--steps", type=bounded(int, 1, what="a number of steps"), default=15,
                        help="timed training steps per process")
    parser.add_argument("--cases", default=CASES, help="engine (fused or plain):T:batch, comma-separated")
    parser.add_argument("--child", nargs=5, metavar=("POLICY", "ENGINE", "T", "BATCH", "COUNT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        policy, engine, steps, batch, count = args.child
        print(json.dumps(measure(policy, engine, int(steps), int(batch), int(count))))
        return
    try:
        cases = parse_cases(args.cases)
    except ValueError as exc:
        parser.error(str(exc))
    from spikecl.allocator import huge_pages_phrase

    print(f"BPTT step, MLP 784-256-256-10, one thread, a fresh process per measurement; median of {args.rounds} "
          f"rounds (policies alternating) of {args.steps} steps; CPU ms (wall ms) and minor page faults per step; "
          f"{huge_pages_phrase()} under both policies")
    for case in cases:
        samples = {p: [] for p in POLICIES}
        for r in range(args.rounds):
            for policy in (POLICIES if r % 2 == 0 else POLICIES[::-1]):
                samples[policy].append(in_fresh_process(policy, case, args.steps))
        cpu = {p: statistics.median(s["cpu"] for s in samples[p]) for p in POLICIES}
        wall = {p: statistics.median(s["wall"] for s in samples[p]) for p in POLICIES}
        faults = {p: statistics.median(s["faults"] for s in samples[p]) for p in POLICIES}
        ratios = [d["cpu"] / k["cpu"] for d, k in zip(samples["default"], samples["kept"])]
        engine, steps, batch = case
        print(f"  {engine:<6} T={steps:<3} batch {batch}:  " + "   ".join(
            f"{p} {cpu[p] * 1e3:7.2f} ms (wall {wall[p] * 1e3:7.2f}) {faults[p]:6.0f} faults" for p in POLICIES)
              + f"   default / kept per round {statistics.median(ratios):4.2f}x "
                f"({min(ratios):4.2f}-{max(ratios):4.2f})")

if __name__ == "__main__":
    main()
