"""Per-epoch training time of each continual-learning method relative to fine-tuning, same network, same process.

For every method and engine, task 0 of a Permuted MNIST-5k stream is trained once and the state after it is kept
(weights, optimiser, strategy); every timed repeat restores a copy of that state and trains task 1 for one epoch
(steps and the task's consolidation), so GPM's and HLOP's subspaces have the same size in every repeat.
After one untimed warm-up epoch per contender, the contenders take turns within each repeat, so a load change on a
shared machine hits all of them alike, in an order reversed every other repeat (no contender always runs first).
One thread. Prints the median CPU time (process time) and wall time per epoch, each one's ratio to fine-tune on the
same engine and the median of its per-repeat CPU ratios (their range in brackets), with the goal (HLOP and GPM
within 1.3x) beside it, and the ratio of the matrix-product FLOPs of one epoch (counted by torch's FlopCounterMode):
the arithmetic the method adds, and the epoch's peak memory beside fine-tune's (tensors live at once, from torch's
profiler; see ``engine_speed.peak_memory``).
Run at the speed of the network's own products, which take about two thirds of a fine-tuning epoch here, the added
products would cost about two thirds of that ratio's excess in time.
``hlop`` is the published method (every time step's rows, fixed Hebbian rates); ``hlop-spikecl`` uses one random
step row per sample and the normalised step. Both use hlop-spikecl's lateral-neuron schedule (below: the readout
is protected whole after task 1, so its gradient is 0 and its lateral neurons stop learning); the paper's PMNIST
schedule, with lateral neurons learning on the readout's input every task, costs more: ``--hlop
'neurons=[[80, 200, 100], [70]]'``.

    python benchmarks/strategy_overhead.py [--hidden 800] [--steps 6] [--batch 64] [--repeats 6]
                                           [--methods finetune,gpm,hlop,hlop-spikecl] [--engines fused,snntorch]
                                           [--trainer bptt|online|dsr] [--hlop iterations=10]
                                           [--precision float32|bfloat16]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import tomllib

import torch
from torch.utils.flop_counter import FlopCounterMode

from engine_speed import peak_memory
from spikecl.allocator import tuned_for_training
from spikecl.commands import bounded, listed
from spikecl.config import PRECISIONS
from spikecl.continual.experiment import KIND
from spikecl.continual.runner import ContinualRun
from spikecl.errors import SpikeCLError
from spikecl.snn.trainers import TRAINERS

METHODS = ("finetune", "ewc", "si", "replay", "gpm", "hlop", "hlop-spikecl")
SPIKECL = {"method": "hlop", "strategy.hlop.step": "normalised", "strategy.hlop.step_rows": 1,
           "strategy.hlop.orthonormalize": True}
SCHEDULE = [[60, 120, 800], [50, 40, 0]]
GOAL = 1.3


def hlop_options(args) -> dict:
    """The HLOP options of every HLOP contender: :data:`SCHEDULE`, then those given with ``--hlop``."""
    return {"neurons": SCHEDULE, **tomllib.loads("\n".join(args.hlop))}


def config_of(args, method: str, engine: str):
    """The validated experiment config of ``method`` on ``engine`` (a one-line ConfigError for a bad combination)."""
    return KIND.load({
        "data": {"dataset": "mnist5k"}, "stream": {"kind": "permuted", "n_tasks": 2},
        "network": {"hidden": [args.hidden, args.hidden], "num_steps": args.steps, "engine": engine},
        "train": {"trainer": args.trainer, "epochs": 1, "batch_size": args.batch, "precision": args.precision},
        "strategy": {"methods": [method], "hlop": hlop_options(args)}, "variants": {"hlop-spikecl": SPIKECL}})


def snapshot(args, method: str, engine: str) -> ContinualRun:
    """``method``'s run on ``engine`` after task 0 (the state every timed epoch starts from)."""
    run = ContinualRun(config_of(args, method, engine), method, seed=0)
    run.train_task(0)
    return run


def state_of(run: ContinualRun) -> dict:
    """A copy of what training changes in ``run``: weights, optimiser and strategy state (subspaces)."""
    return copy.deepcopy({"net": run.net.state_dict(), "optimizer": run.optimizer.state_dict(),
                          "strategy": run.strategy.state_dict()})


def restore(run: ContinualRun, state: dict) -> None:
    """Put a copy of ``state`` (:func:`state_of`) back into ``run``."""
    fresh = copy.deepcopy(state)
    run.net.load_state_dict(fresh["net"])
    run.optimizer.load_state_dict(fresh["optimizer"])
    run.strategy.load_state_dict(fresh["strategy"])


def timed_epoch(run: ContinualRun, state: dict) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one epoch of task 1 of ``run`` started from a copy of ``state``."""
    restore(run, state)
    cpu, wall = time.process_time(), time.perf_counter()
    run.train_task(1)
    return time.process_time() - cpu, time.perf_counter() - wall


def epoch_memory(run: ContinualRun, state: dict) -> int:
    """Peak bytes of tensors live at once during one epoch of task 1 of ``run`` from ``state`` (its consolidation
    included), above what was live before it (:func:`engine_speed.peak_memory`; on the CPU the frees of tensors
    that were live before it are unseen, so a state the epoch replaces, such as the weights' gradients or HLOP's
    lateral rows, may count once more)."""
    restore(run, state)
    return peak_memory(lambda: run.train_task(1), run.device)


def matmul_flops(run: ContinualRun, state: dict) -> int:
    """Floating-point operations of the matrix products (mm, addmm, bmm, convolutions) in one epoch of task 1 of
    ``run`` from ``state``, counted by torch's FlopCounterMode: the arithmetic a method cannot do without."""
    counter = FlopCounterMode(display=False)
    with counter:
        timed_epoch(run, state)
    return counter.get_total_flops()


Paired = tuple[float, float, float] | None      # per-repeat CPU ratios to fine-tune: (median, lowest, highest)
Measured = tuple[float, float, Paired, int, int]    # CPU s, wall s, per-repeat ratios, matmul FLOPs, peak bytes


def measure(args, methods: list[str], engine: str) -> dict[str, Measured]:
    """Per method on ``engine``, interleaved after a warm-up: median CPU and wall seconds per epoch, its CPU time
    over fine-tune's in the same repeat (a drift of the machine's speed cancels) as the median, lowest and highest
    over repeats, and the epoch's matrix-product FLOPs and peak memory (each from one untimed epoch)."""
    runs = {m: snapshot(args, m, engine) for m in methods}
    states = {m: state_of(run) for m, run in runs.items()}
    for method, run in runs.items():
        timed_epoch(run, states[method])
    flops = {m: matmul_flops(run, states[m]) for m, run in runs.items()}
    memory = {m: epoch_memory(run, states[m]) for m, run in runs.items()}
    samples = {m: [] for m in methods}
    for repeat in range(args.repeats):
        for method in (methods if repeat % 2 == 0 else methods[::-1]):
            samples[method].append(timed_epoch(runs[method], states[method]))
    base = samples.get("finetune")
    result = {}
    for m, s in samples.items():
        ratios = [c / b for (c, _), (b, _) in zip(s, base)] if base else None
        paired = (statistics.median(ratios), min(ratios), max(ratios)) if ratios else None
        result[m] = (statistics.median(c for c, _ in s), statistics.median(w for _, w in s), paired, flops[m],
                     memory[m])
    return result


def report(result: dict[str, Measured], engine: str) -> None:
    """One line per method: CPU and wall seconds, their ratios to fine-tune's medians, the median per-repeat CPU
    ratio with its range over repeats (goal beside HLOP and GPM), the ratio of matrix-product FLOPs (the
    arithmetic each method adds) and the epoch's peak memory with its ratio to fine-tune's."""
    cpu0, wall0, _, flops0, memory0 = result.get("finetune", (None, None, None, None, None))
    print(f"engine {engine}")
    for method, (cpu, wall, paired, flops, memory) in result.items():
        line = f"  {method:<13} CPU {cpu:6.2f} s   wall {wall:6.2f} s   matmul {flops / 1e9:5.1f} GFLOP"
        if cpu0:
            goal = f"   (goal <= {GOAL}x)" if method.startswith(("hlop", "gpm")) else ""
            line += (f"   {cpu / cpu0:4.2f}x / {wall / wall0:4.2f}x fine-tune (CPU / wall), per repeat "
                     f"{paired[0]:4.2f}x ({paired[1]:4.2f}-{paired[2]:4.2f}), matmul FLOPs {flops / flops0:4.2f}x"
                     f"{goal}   peak memory {memory / 2 ** 20:7.1f} MiB ({memory / memory0:4.2f}x)")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=bounded(int, 1, what="a layer width"), default=800)
    parser.add_argument("--steps", type=bounded(int, 1, what="a number of time steps"), default=6)
    parser.add_argument("--batch", type=bounded(int, 1, what="a batch size"), default=64)
    parser.add_argument("--trainer", default="bptt", choices=tuple(TRAINERS))
    parser.add_argument("--repeats", type=bounded(int, 1, what="a number of repeats"), default=6)
    parser.add_argument("--methods", type=listed(METHODS), default="finetune,gpm,hlop,hlop-spikecl",
                        help="methods timed against fine-tuning (each trains task 2 alone from task 1's state)")
    parser.add_argument("--engines", default="fused,snntorch")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="train.precision of every method (bfloat16: the fused engine only)")
    parser.add_argument("--hlop", action="append", default=[], metavar="KEY=VALUE",
                        help="an HLOP option (value as TOML), e.g. iterations=10; repeatable")
    args = parser.parse_args()
    try:                                          # every contender's config, before minutes of training
        [config_of(args, m, e) for e in args.engines.split(",") for m in args.methods]
    except (SpikeCLError, tomllib.TOMLDecodeError) as exc:
        parser.error(str(exc))
    if "finetune" not in args.methods:
        parser.error("--methods: include finetune, the reference every ratio is taken against")
    torch.set_num_threads(1)
    allocator = tuned_for_training()
    print(f"one epoch of task 2 of Permuted MNIST-5k (steps and consolidation), MLP 784-{args.hidden}-{args.hidden}"
          f"-10, T={args.steps}, batch {args.batch}, {args.trainer}, {args.precision}, 1 thread; median of "
          f"{args.repeats} interleaved repeats (order reversed every other one) from the same post-task-1 state; "
          f"HLOP schedule {hlop_options(args)['neurons']}; allocator: {allocator}")
    for engine in args.engines.split(","):
        report(measure(args, args.methods, engine), engine)


if __name__ == "__main__":
    main()
