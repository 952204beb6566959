"""GPU memory of ``train.cuda_graph``: one BPTT training step of spikecl's 784-256-256-10 MLP, eager against
replayed from CUDA graphs, on each engine.

Each contender trains ``--steps-run`` steps in a process of its own (so one's cached blocks and graph pools cannot
hide another's) and reports torch's peak bytes allocated (``max_memory_allocated``: every tensor live at once,
including those allocated while a graph was captured, which its pool then keeps) and the bytes the caching allocator
holds at the end (``memory_reserved``: a graph's private pool stays reserved for its replays, as long as the graph
lives). The ratio of each to the eager step's on the same engine is the memory a graph costs. Needs a CUDA GPU.

    python benchmarks/cuda_graph_memory.py [--engines fused,triton,snntorch] [--steps 4 25] [--batch 64 256]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys

import torch

from spikecl.commands import bounded, listed

ENGINES = ("fused", "triton", "snntorch")


def one(engine: str, graph: bool, steps: int, batch: int, runs: int) -> dict[str, int]:
    """Peak allocated and finally reserved bytes of ``runs`` training steps (this process's whole CUDA use)."""
    from engine_speed import spikecl_step

    torch.manual_seed(0)
    device = torch.device("cuda")
    x, y = torch.rand(batch, 784, device=device), torch.randint(0, 10, (batch,), device=device)
    step = spikecl_step(steps, engine, device, cuda_graph=graph)
    for _ in range(runs):
        step(x, y)
    torch.cuda.synchronize(device)
    return {"peak": torch.cuda.max_memory_allocated(device), "reserved": torch.cuda.memory_reserved(device)}


def measured(engine: str, graph: bool, steps: int, batch: int, runs: int) -> dict[str, int]:
    """:func:`one` in a fresh process."""
    command = [sys.executable, __file__, "--one", json.dumps([engine, graph, steps, batch, runs])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"cuda_graph_memory: {engine}, graph {graph}, T={steps}, batch {batch} failed:\n"
                         f"{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", type=listed(ENGINES), default="fused,triton,snntorch")
    parser.add_argument("--steps", type=bounded(int, 1, what="a number of time steps"), nargs="+", default=[4, 25])
    parser.add_argument("--batch", type=bounded(int, 1, what="a batch size"), nargs="+", default=[64, 256])
    parser.add_argument("--steps-run", type=bounded(int, 1, what="a number of training steps"), default=10,
                        help="training steps per contender (the first captures its graph)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*json.loads(args.one))))
        return
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU (torch sees none)")
    engines = [e for e in args.engines if e != "triton" or importlib.util.find_spec("triton") is not None]
    print(f"MLP 784-256-256-10 BPTT training step on {torch.cuda.get_device_name(0)}, {args.steps_run} steps per "
          "process: peak MiB allocated, MiB reserved at the end (ratio of the graphed step's to the eager one's)")
    for steps in args.steps:
        for batch in args.batch:
            print(f"T={steps:<3} batch {batch}")
            for engine in engines:
                eager, graphed = (measured(engine, g, steps, batch, args.steps_run) for g in (False, True))
                print(f"  {engine:<9} eager peak {eager['peak'] / 2 ** 20:8.1f}  reserved "
                      f"{eager['reserved'] / 2 ** 20:8.1f}   graphed peak {graphed['peak'] / 2 ** 20:8.1f} "
                      f"({graphed['peak'] / eager['peak']:4.2f}x)  reserved {graphed['reserved'] / 2 ** 20:8.1f} "
                      f"({graphed['reserved'] / eager['reserved']:4.2f}x)")


if __name__ == "__main__":
    main()
