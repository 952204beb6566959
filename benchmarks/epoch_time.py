"""Time one training epoch of spikecl's spiking MLP against a plain snnTorch loop of the same network.

Both train 784-H-H-10 (snnTorch ``Leaky``, fast-sigmoid surrogate, direct input over T steps, leaky readout
averaged over T) with SGD on the same 4,000 MNIST-5k images, in the same process, alternating repeats.
Prints seconds per epoch and the ratio spikecl / plain (1.0 = no overhead).

    python benchmarks/epoch_time.py [--hidden 256] [--steps 4] [--repeats 3] [--trainer bptt|online]
"""

from __future__ import annotations

import argparse
import statistics
import time

import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate

from spikecl.data.datasets import load_dataset
from spikecl.snn import build_mlp, make_trainer


class PlainSNN(torch.nn.Module):
    """The reference: the textbook snnTorch loop, stepping every layer at every time step."""

    def __init__(self, hidden: int, beta: float = 0.9) -> None:
        super().__init__()
        grad = surrogate.fast_sigmoid(slope=25)
        self.fc1, self.fc2 = torch.nn.Linear(784, hidden, bias=False), torch.nn.Linear(hidden, hidden, bias=False)
        self.fc3 = torch.nn.Linear(hidden, 10, bias=False)
        self.lif1, self.lif2 = snn.Leaky(beta=beta, spike_grad=grad), snn.Leaky(beta=beta, spike_grad=grad)
        self.out = snn.Leaky(beta=beta, spike_grad=grad, reset_mechanism="none")

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        mem3 = self.out.init_leaky()
        total = 0
        for _ in range(steps):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            _, mem3 = self.out(self.fc3(spk2), mem3)
            total = total + mem3
        return total / steps


def epoch_plain(net, x, y, steps, batch):
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for i in range(0, len(x), batch):
        opt.zero_grad()
        F.cross_entropy(net(x[i:i + batch], steps), y[i:i + batch]).backward()
        opt.step()


def epoch_spikecl(trainer, x, y, batch):
    opt = torch.optim.SGD(trainer.net.parameters(), lr=0.05, momentum=0.9)
    for i in range(0, len(x), batch):
        trainer.train_batch(x[i:i + batch], y[i:i + batch], None, None, opt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trainer", default="bptt", choices=("bptt", "online"))
    args = parser.parse_args()

    data = load_dataset("mnist5k")
    x = torch.as_tensor(data.x_train).flatten(1)
    y = torch.as_tensor(data.y_train)
    torch.manual_seed(0)
    plain = PlainSNN(args.hidden)
    trainer = make_trainer(args.trainer, build_mlp(784, [args.hidden, args.hidden], 10), args.steps)
    times = {"plain snnTorch": [], f"spikecl ({args.trainer})": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        epoch_plain(plain, x, y, args.steps, args.batch)
        times["plain snnTorch"].append(time.perf_counter() - start)
        start = time.perf_counter()
        epoch_spikecl(trainer, x, y, args.batch)
        times[f"spikecl ({args.trainer})"].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"one epoch, 4,000 samples, MLP 784-{args.hidden}-{args.hidden}-10, T={args.steps}, "
          f"batch {args.batch}, {torch.get_num_threads()} threads (median of {args.repeats})")
    for name, seconds in medians.items():
        print(f"  {name:<22} {seconds:7.3f} s")
    plain_s, ours_s = medians.values()
    print(f"  ratio spikecl / plain  {ours_s / plain_s:7.2f}")


if __name__ == "__main__":
    main()
