"""Time one BPTT training step of a 784-256-256-10 spiking MLP on the fused engine, the snnTorch engine, and a plain
snnTorch loop (the textbook reference of ``epoch_time.py``); ``--network cnn``: the same for a spiking CNN on
32 x 32 x 3 inputs (3 x 3 convolutions of 64, 128 and 256 channels, each with batch norm, LIF and 2 x 2 average
pooling, then the readout), against the textbook loop that steps convolution, batch norm (over the B samples of a
step), Leaky and pooling at every time step.

One thread, direct-encoded random inputs, SGD with momentum. After a warm-up, the three contenders take turns in the
same process (rounds of a few steps each), so a load change on a shared machine hits all of them alike. Prints the
median CPU time (process time) and wall time per step, each time's ratio to the fused engine; the floating-point
operations of the step's matrix products (torch's FlopCounterMode) with their ratio to the fused engine's: where
products dominate both steps (large batches), the time ratio tends to this one, which for the MLP is 2.02x at
T = 4, 2.44x at T = 8 and 2.84x at T = 25 for the plain loop (the fused engine runs a direct input's synapse once
and the readout's once, not T times); the tensor operators dispatched per step (torch.profiler's ``aten::`` calls,
nested ones included, so wrappers such as ``linear``, views and allocations count beside the operators that compute:
on a GPU an upper bound on the kernels a step launches, not their number; on the CPU at T = 4, batch 16, about two
thirds of the fused step's and three fifths of the plain loop's launch none); and the step's peak memory: the
most bytes of tensors allocated during the step and live at once (on the CPU from the profiler's allocation events,
in time order; frees of memory allocated before the step, such as the last step's gradients, are not seen, so each
figure may exceed the true peak by at most the parameters' size; on a GPU torch's exact ``max_memory_allocated``),
with its ratio to the plain loop's.
``--device cuda`` runs the contenders on a GPU (the clocks are read after
the device has finished; CPU time is then the host's share, wall time the step's), and adds the triton engine
(the fused engine with each LIF pass one Triton kernel: its operator count leaves out those two launches per layer)
where the triton package is installed. ``fused, bfloat16`` is the fused engine with ``train.precision = "bfloat16"``
(synapses in bfloat16 under autocast, membranes in float32): other arithmetic, so a speed row, not a like-for-like one.
On a GPU three more rows replay CUDA graphs: ``fused, CUDA graph`` and ``triton, CUDA graph`` are those engines with
``train.cuda_graph`` (the task loss's forward and backward pass replayed; penalty, checks and optimiser step eager),
``plain, CUDA graph`` (``--graph-plain``) the plain loop's whole step (forward, backward and SGD) captured in one
graph, the most a graph can do for it; their operator counts are what the host still dispatches, their FLOPs those
of the maths they replay.
``plain, input once`` (MLP) is the plain loop with its first product moved out of the loop by hand (1.02-1.03x the
fused engine's FLOPs), the like-for-like reference for the engine itself: most of the ratio to the textbook loop is
that one move.

    python benchmarks/engine_speed.py [--network mlp|cnn] [--steps 4 8 25] [--batch 64 256] [--rounds 5]
                                      [--seconds 0.5] [--reset subtract|zero] [--device cuda]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate

from epoch_time import PlainSNN
from spikecl.allocator import tuned_for_training
from spikecl.commands import bounded, torch_device
from spikecl.snn import LIFParams, build_cnn, build_mlp, make_trainer

CHANNELS = (64, 128, 256)
INPUTS = {"mlp": (784,), "cnn": (3, 32, 32)}
#: contenders replaying a CUDA graph -> the one whose maths they replay (a replay's kernels are not dispatched by
#: torch, so FlopCounterMode and the profiler see only what runs outside the graph)
SAME_MATHS = {"fused, CUDA graph": "fused engine", "triton, CUDA graph": "triton engine",
              "plain, CUDA graph": "plain snnTorch"}
DEFAULTS = {"mlp": ([4, 8, 25], [64, 256]), "cnn": ([4, 8], [32])}       # (steps, batches)


class PlainCNN(torch.nn.Module):
    """The textbook snnTorch CNN loop: at every time step, each block's convolution, batch norm, Leaky and 2 x 2
    average pooling, then the readout's non-resetting Leaky; logits are its membrane averaged over T."""

    def __init__(self, channels=CHANNELS, beta: float = 0.9, reset: str = "subtract") -> None:
        super().__init__()
        grad = surrogate.fast_sigmoid(slope=25)
        widths = (3, *channels)
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(a, b, 3, padding=1, bias=False)
                                         for a, b in zip(widths[:-1], widths[1:]))
        self.norms = torch.nn.ModuleList(torch.nn.BatchNorm2d(b) for b in channels)
        self.lifs = torch.nn.ModuleList(snn.Leaky(beta=beta, spike_grad=grad, reset_mechanism=reset) for _ in channels)
        self.fc = torch.nn.Linear(channels[-1] * (32 >> len(channels)) ** 2, 10, bias=False)
        self.out = snn.Leaky(beta=beta, spike_grad=grad, reset_mechanism="none")

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        mems = [lif.init_leaky() for lif in self.lifs]
        mem_out = self.out.init_leaky()
        total = 0
        for _ in range(steps):
            h = x
            for i, (conv, norm, lif) in enumerate(zip(self.convs, self.norms, self.lifs)):
                spk, mems[i] = lif(norm(conv(h)), mems[i])
                h = F.avg_pool2d(spk, 2)
            _, mem_out = self.out(self.fc(h.flatten(1)), mem_out)
            total = total + mem_out
        return total / steps


def plain_step(steps: int, device: torch.device, network: str = "mlp", input_once: bool = False,
               reset: str = "subtract"):
    """A training step of the plain snnTorch loop (``input_once``: its first product computed once, MLP only;
    ``reset``: the hidden layers'), as a closure over (x [B, ...], y [B])."""
    net = (PlainSNN(256, input_once=input_once, reset=reset) if network == "mlp" else PlainCNN(reset=reset)).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        F.cross_entropy(net(x, steps), y).backward()
        opt.step()
    return step


def spikecl_step(steps: int, engine: str, device: torch.device, network: str = "mlp", precision: str = "float32",
                 reset: str = "subtract", cuda_graph: bool = False):
    """A ``BPTTTrainer.train_batch`` of spikecl's MLP (or CNN) on ``engine`` (``precision``: its training pass's,
    ``train.precision``; ``reset``: the hidden layers'; ``cuda_graph``: ``train.cuda_graph``), as a closure over
    (x, y)."""
    neuron = LIFParams(reset=reset)
    net = (build_mlp(784, [256, 256], 10, neuron, engine=engine) if network == "mlp"
           else build_cnn(INPUTS["cnn"], list(CHANNELS), 10, neuron, engine=engine))
    trainer = make_trainer("bptt", net.to(device), steps, precision=precision)
    if cuda_graph:
        trainer.use_cuda_graphs()
    opt = torch.optim.SGD(trainer.net.parameters(), lr=0.05, momentum=0.9)
    return lambda x, y: trainer.train_batch(x, y, None, None, opt)


def whole_step_graph(step, x: torch.Tensor, y: torch.Tensor):
    """``step`` (forward, backward and optimiser step of the plain loop) captured whole in one CUDA graph after three
    warm-up calls on a side stream, as torch's documentation shows for whole-network capture; a closure over
    (x, y) that copies them in and replays it."""
    static_x, static_y = x.clone(), y.clone()
    stream = torch.cuda.Stream(x.device)
    stream.wait_stream(torch.cuda.current_stream(x.device))
    with torch.cuda.stream(stream):
        for _ in range(3):
            step(static_x, static_y)
    torch.cuda.current_stream(x.device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(static_x, static_y)

    def replay(x, y):
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
    return replay


def finish(device: torch.device) -> None:
    """Wait until ``device`` has run everything queued on it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, x, y, count: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call of ``step`` over ``count`` calls, the device's queue drained."""
    finish(x.device)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        step(x, y)
    finish(x.device)
    return (time.process_time() - cpu) / count, (time.perf_counter() - wall) / count


def operators_per_step(step, x, y) -> int:
    """Tensor operators (``aten::`` calls, nested ones included: wrappers, views and allocations too, an upper bound on
    the kernels launched) that one call of ``step`` dispatches."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(x, y)
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def matmul_flops(step, x, y) -> int:
    """Floating-point operations of the matrix products and convolutions in one call of ``step``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(x, y)
    return counter.get_total_flops()


def peak_memory(work, device: torch.device) -> int:
    """Peak bytes of tensors allocated and live at once on ``device`` while ``work()`` runs, above what was live
    before it (on the CPU frees of tensors allocated before it are unseen: see the module's docstring)."""
    if device.type == "cuda":
        finish(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        work()
        finish(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        work()
    sizes, nodes = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while nodes:
        node = nodes.pop()
        nodes.extend(node.children)
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            sizes.append((node.start_time_ns, node.extra_fields.alloc_size))      # a free has a negative size
    live = peak = 0
    for _, size in sorted(sizes):
        live += size
        peak = max(peak, live)
    return peak


def compare(steps: int, batch: int, rounds: int, seconds: float, device: torch.device,
            network: str = "mlp", reset: str = "subtract",
            graph_plain: bool = False) -> dict[str, tuple[float, float, int, int, int]]:
    """Median (CPU, wall) seconds per training step of each contender at T = ``steps``, batch ``batch``, the
    operators it dispatches per step, its peak memory in bytes and its matrix-product FLOPs (every contender's
    hidden layers with ``reset``; ``graph_plain``: the plain loop's whole step in a CUDA graph too)."""
    torch.manual_seed(0)
    x, y = torch.rand(batch, *INPUTS[network], device=device), torch.randint(0, 10, (batch,), device=device)
    contenders = {"fused engine": spikecl_step(steps, "fused", device, network, reset=reset),
                  "snnTorch engine": spikecl_step(steps, "snntorch", device, network, reset=reset),
                  "plain snnTorch": plain_step(steps, device, network, reset=reset),
                  "fused, bfloat16": spikecl_step(steps, "fused", device, network, "bfloat16", reset)}
    if network == "mlp":
        contenders["plain, input once"] = plain_step(steps, device, network, input_once=True, reset=reset)
    if device.type == "cuda" and importlib.util.find_spec("triton") is not None:
        contenders["triton engine"] = spikecl_step(steps, "triton", device, network, reset=reset)
    if device.type == "cuda":
        contenders["fused, CUDA graph"] = spikecl_step(steps, "fused", device, network, reset=reset, cuda_graph=True)
        if "triton engine" in contenders:
            contenders["triton, CUDA graph"] = spikecl_step(steps, "triton", device, network, reset=reset,
                                                            cuda_graph=True)
        if graph_plain:
            contenders["plain, CUDA graph"] = whole_step_graph(plain_step(steps, device, network, reset=reset), x, y)
    counts = {}
    for name, step in contenders.items():                        # warm-up, and steps per round for ~seconds
        timed(step, x, y, 2)
        counts[name] = max(1, round(seconds / timed(step, x, y, 2)[1]))
    samples = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, step in contenders.items():
            samples[name].append(timed(step, x, y, counts[name]))
    flops = {name: matmul_flops(step, x, y) for name, step in contenders.items() if name not in SAME_MATHS}
    return {name: (statistics.median(c for c, _ in s), statistics.median(w for _, w in s),
                   operators_per_step(contenders[name], x, y),
                   peak_memory(lambda: contenders[name](x, y), device), flops[SAME_MATHS.get(name, name)])
            for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="mlp", choices=tuple(INPUTS))
    parser.add_argument("--steps", type=bounded(int, 1, what="a number of time steps"), nargs="+",
                        help="time steps T (default: 4 8 25 for the MLP, 4 8 for the CNN)")
    parser.add_argument("--batch", type=bounded(int, 1, what="a batch size"), nargs="+",
                        help="batch sizes (default: 64 256 for the MLP, 32 for the CNN)")
    parser.add_argument("--rounds", type=bounded(int, 1, what="a number of rounds"), default=5)
    parser.add_argument("--seconds", type=bounded(float, 0.001, what="seconds"), default=0.5,
                        help="time per contender per round")
    parser.add_argument("--reset", default="subtract", choices=("subtract", "zero"),
                        help="the hidden layers' reset, in every contender")
    parser.add_argument("--device", default="cpu", type=torch_device,
                        help="torch device to train on, e.g. cpu or cuda")
    parser.add_argument("--graph-plain", action="store_true",
                        help="on a GPU, also the plain loop's whole step captured in a CUDA graph (at T = 25 its "
                             "replay hit an illegal memory access on an H200, snnTorch 1.0, torch 2.11)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1)
    allocator = tuned_for_training()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    shape = "MLP 784-256-256-10" if args.network == "mlp" else f"CNN 3x32x32-{'-'.join(map(str, CHANNELS))}-10"
    print(f"BPTT step, {shape}, {args.reset} reset, direct input, on {where}, 1 host thread, median of {args.rounds} "
          "interleaved rounds; ms per step (ratio to the fused engine; the plain loop's wall time over this one's); "
          f"peak memory of a step above what was live before it (ratio to the plain loop); allocator: {allocator}")
    default_steps, default_batches = DEFAULTS[args.network]
    for steps in args.steps or default_steps:
        for batch in args.batch or default_batches:
            result = compare(steps, batch, args.rounds, args.seconds, device, args.network, args.reset,
                             args.graph_plain)
            cpu0, wall0, _, _, flops0 = result["fused engine"]
            plain_wall, plain_peak = result["plain snnTorch"][1], result["plain snnTorch"][3]
            print(f"T={steps:<3} batch {batch}")
            for name, (cpu, wall, ops, peak, flops) in result.items():
                print(f"  {name:<18} CPU {cpu * 1e3:8.2f} ({cpu / cpu0:4.2f}x)   wall {wall * 1e3:8.2f} "
                      f"({wall / wall0:4.2f}x; plain / this {plain_wall / wall:5.2f}x)   "
                      f"matmul {flops / 1e6:8.1f} MFLOP ({flops / flops0:4.2f}x)   "
                      f"{ops:6d} operators per step   peak memory {peak / 2 ** 20:8.2f} MiB "
                      f"({peak / plain_peak:4.2f}x plain)")


if __name__ == "__main__":
    main()
