"""Time one training epoch of spikecl's spiking MLP against a plain snnTorch loop and peer libraries.

Every contender trains 784-H-H-10 (LIF hidden layers, direct input over T steps, leaky readout averaged over T) with
SGD on the same 4,000 MNIST-5k images, in the same process and one thread, taking turns repeat by repeat (a load
change on a shared machine hits all alike): spikecl on its fused and snnTorch engines, the textbook snnTorch loop,
Norse 1.1 (``LIFCell``/``LICell``, stepped the same way) and SpikingJelly (multi-step ``LIFNode``) when installed.
Norse's LIF has a synaptic current; with ``dt * tau_syn_inv = 1`` it is the input of the previous step, so the
neuron decays as ``Leaky`` (0.9 per step, input scaled by ``dt * tau_mem_inv``) one step late, with the same work
per step. Each contender first trains a few warm-up batches; every repeat then starts from the same weights and
momentum, and the turns reverse every other repeat. Prints wall and CPU seconds per epoch and each contender's
ratio to spikecl's fused engine. ``--trainer online`` times
spikecl's two engines only (the peers train with BPTT).

    python benchmarks/epoch_time.py [--hidden 256] [--steps 4] [--samples 4000] [--repeats 3] [--trainer bptt|online]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import time

import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate

from spikecl.allocator import tuned_for_training
from spikecl.commands import bounded
from spikecl.data.datasets import load_dataset
from spikecl.snn import build_mlp, make_trainer


class PlainSNN(torch.nn.Module):
    """The reference: the textbook snnTorch loop, stepping every layer at every time step (``input_once``: the
    first layer's product of a direct input, the same at every step, computed once before the loop, as the fused
    engine does; the rest unchanged). ``reset``: the hidden layers' reset, "subtract" or "zero"."""

    def __init__(self, hidden: int, beta: float = 0.9, input_once: bool = False, reset: str = "subtract") -> None:
        super().__init__()
        self.input_once = input_once
        grad = surrogate.fast_sigmoid(slope=25)
        self.fc1, self.fc2 = torch.nn.Linear(784, hidden, bias=False), torch.nn.Linear(hidden, hidden, bias=False)
        self.fc3 = torch.nn.Linear(hidden, 10, bias=False)
        self.lif1, self.lif2 = (snn.Leaky(beta=beta, spike_grad=grad, reset_mechanism=reset) for _ in range(2))
        self.out = snn.Leaky(beta=beta, spike_grad=grad, reset_mechanism="none")

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        mem3 = self.out.init_leaky()
        total = 0
        once = self.fc1(x) if self.input_once else None
        for _ in range(steps):
            spk1, mem1 = self.lif1(self.fc1(x) if once is None else once, mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            _, mem3 = self.out(self.fc3(spk2), mem3)
            total = total + mem3
        return total / steps


class NorseSNN(torch.nn.Module):
    """The same MLP in Norse 1.1: ``LIFCell`` hidden layers and an ``LICell`` readout, stepped through time."""

    def __init__(self, hidden: int) -> None:
        import norse.torch as norse

        super().__init__()
        lif = norse.LIFParameters(tau_syn_inv=torch.tensor(1000.0), tau_mem_inv=torch.tensor(100.0))  # dt = 1 ms
        self.fc1, self.fc2 = torch.nn.Linear(784, hidden, bias=False), torch.nn.Linear(hidden, hidden, bias=False)
        self.fc3 = torch.nn.Linear(hidden, 10, bias=False)
        self.lif1, self.lif2 = norse.LIFCell(lif), norse.LIFCell(lif)
        self.out = norse.LICell(norse.LIParameters(tau_syn_inv=torch.tensor(1000.0)))

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        s1 = s2 = s3 = None
        total = 0
        for _ in range(steps):
            z1, s1 = self.lif1(self.fc1(x), s1)
            z2, s2 = self.lif2(self.fc2(z1), s2)
            mem, s3 = self.out(self.fc3(z2), s3)
            total = total + mem
        return total / steps


class JellySNN(torch.nn.Module):
    """The same MLP in SpikingJelly: multi-step ``LIFNode`` layers (tau = 10: beta = 0.9) over the whole sequence,
    then the readout's leaky integration of the last layer's currents."""

    def __init__(self, hidden: int, beta: float = 0.9) -> None:
        from spikingjelly.activation_based import layer, neuron

        super().__init__()
        lif = {"tau": 1 / (1 - beta), "decay_input": False, "v_reset": None, "step_mode": "m"}
        self.net = torch.nn.Sequential(layer.Linear(784, hidden, bias=False, step_mode="m"), neuron.LIFNode(**lif),
                                       layer.Linear(hidden, hidden, bias=False, step_mode="m"),
                                       neuron.LIFNode(**lif), layer.Linear(hidden, 10, bias=False, step_mode="m"))
        self.beta = beta

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        from spikingjelly.activation_based import functional

        functional.reset_net(self.net)
        mem, total = 0, 0
        for current in self.net(x.expand(steps, *x.shape)):
            mem = self.beta * mem + current
            total = total + mem
        return total / steps


def from_the_start(net: torch.nn.Module, opt: torch.optim.Optimizer, train_batch):
    """An epoch of ``train_batch(x, y)`` over (x, y, batch), every call from the state ``net`` and ``opt`` have now
    (weights and momentum restored first: each repeat does the same work)."""
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    momentum = copy.deepcopy(opt.state_dict())

    def epoch(x, y, batch):
        net.load_state_dict(weights)
        opt.load_state_dict(momentum)
        for i in range(0, len(x), batch):
            train_batch(x[i:i + batch], y[i:i + batch])
    return epoch


def epoch_of(net: torch.nn.Module, steps: int):
    """An epoch of SGD on ``net(x, steps)`` (a reference loop), as a closure over (x, y, batch)."""
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)

    def train_batch(x, y):
        opt.zero_grad()
        F.cross_entropy(net(x, steps), y).backward()
        opt.step()
    return from_the_start(net, opt, train_batch)


def epoch_spikecl(trainer_name: str, hidden: int, steps: int, engine: str):
    """An epoch of spikecl's trainer on its MLP on ``engine``, as a closure over (x, y, batch)."""
    trainer = make_trainer(trainer_name, build_mlp(784, [hidden, hidden], 10, engine=engine), steps)
    opt = torch.optim.SGD(trainer.net.parameters(), lr=0.05, momentum=0.9)
    return from_the_start(trainer.net, opt, lambda x, y: trainer.train_batch(x, y, None, None, opt))


def contenders(args) -> dict:
    """Name → epoch closure. The peers train with BPTT only, so ``--trainer online`` times spikecl's two engines
    alone; Norse and SpikingJelly only when they import (a note is printed otherwise)."""
    out = {"spikecl fused": epoch_spikecl(args.trainer, args.hidden, args.steps, "fused"),
           "spikecl snnTorch": epoch_spikecl(args.trainer, args.hidden, args.steps, "snntorch")}
    if args.trainer != "bptt":
        print(f"plain snnTorch, Norse and SpikingJelly train with BPTT: not timed with --trainer {args.trainer}")
        return out
    out["plain snnTorch"] = epoch_of(PlainSNN(args.hidden), args.steps)
    for name, module, network in (("Norse", "norse", NorseSNN), ("SpikingJelly", "spikingjelly", JellySNN)):
        try:
            if importlib.util.find_spec(module) is None:
                raise ImportError("not installed")
            out[name] = epoch_of(network(args.hidden), args.steps)
        except ImportError as exc:
            print(f"{name} is not available ({exc}): skipped")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=bounded(int, 1, what="a layer width"), default=256)
    parser.add_argument("--steps", type=bounded(int, 1, what="a number of time steps"), default=4)
    parser.add_argument("--batch", type=bounded(int, 1, what="a batch size"), default=64)
    parser.add_argument("--samples", type=bounded(int, 1, 4000, what="a number of images"), default=4000,
                        help="training images per epoch")
    parser.add_argument("--repeats", type=bounded(int, 1, what="a number of repeats"), default=3)
    parser.add_argument("--trainer", default="bptt", choices=("bptt", "online"),
                        help="online: spikecl's engines only (the peers train with BPTT)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    allocator = tuned_for_training()

    data = load_dataset("mnist5k")
    x = torch.as_tensor(data.x_train).flatten(1)[:args.samples]
    y = torch.as_tensor(data.y_train)[:args.samples]
    torch.manual_seed(0)
    epochs = contenders(args)
    for epoch in epochs.values():                      # warm-up: a few batches each, then every repeat restarts
        epoch(x[:4 * args.batch], y[:4 * args.batch], args.batch)
    wall, cpu = ({name: [] for name in epochs} for _ in range(2))
    for repeat in range(args.repeats):
        for name in list(epochs)[::-1 if repeat % 2 else 1]:      # turns reversed every other repeat
            start, start_cpu = time.perf_counter(), time.process_time()
            epochs[name](x, y, args.batch)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    print(f"one epoch, {len(x):,} samples, MLP 784-{args.hidden}-{args.hidden}-10, T={args.steps}, batch "
          f"{args.batch}, {args.trainer}, 1 thread, median of {args.repeats} interleaved repeats from the same "
          f"state after a warm-up; allocator: {allocator}")
    medians = {clock: {k: statistics.median(v) for k, v in times.items()} for clock, times in (("wall", wall),
                                                                                              ("CPU", cpu))}
    for name in epochs:
        print(f"  {name:<18}" + "".join(f"  {clock} {m[name]:7.3f} s {m[name] / m['spikecl fused']:5.2f}x"
                                        for clock, m in medians.items()) + "  (x: over spikecl fused)")


if __name__ == "__main__":
    main()
