"""spikecl's NeuroBench measures (:mod:`spikecl.snn.measures`) against the ``neurobench`` package on the same tiny
spikecl networks and inputs. Needs an environment with ``neurobench`` (not spikecl's), e.g.::

    python3 -m venv /tmp/nbenv && /tmp/nbenv/bin/pip install torch==2.13.0 neurobench
    PYTHONPATH=$PWD /tmp/nbenv/bin/python benchmarks/neurobench_compare.py

Prints one line per network and measure (spikecl, neurobench, equal?) and exits 1 if any differs beyond 1e-9
relative (connection sparsity compared after NeuroBench's rounding to 4 decimals).
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spikecl.snn import measures
from spikecl.snn.encoders import encode
from spikecl.snn.networks import build_cnn, build_mlp

BATCH = 7            # uneven last batch: per-batch state (first-step membrane counts) must be handled alike


class Encoded(nn.Module):
    """A spikecl network as NeuroBench's custom-forward snnTorch model: ``[B, ...]`` → logits ``[B, 1, O]``."""

    def __init__(self, net: nn.Module, num_steps: int, encoder: str) -> None:
        super().__init__()
        self.net, self.num_steps, self.encoder = net, num_steps, encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(encode(x, self.num_steps, self.encoder)).unsqueeze(0)


def neurobench_measures(net: nn.Module, x: torch.Tensor, num_steps: int, encoder: str) -> dict[str, float]:
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
    from neurobench.models import SNNTorchModel

    net.engine = "snntorch"
    model = SNNTorchModel(Encoded(net, num_steps, encoder), custom_forward=True)
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=BATCH)
    bench = Benchmark(model, loader, [], [], [[Footprint, ConnectionSparsity],
                                              [ActivationSparsity, SynapticOperations, MembraneUpdates]])
    r = bench.run(quiet=True)
    ops = r["SynapticOperations"]
    return {"footprint_bytes": r["Footprint"], "connection_sparsity": r["ConnectionSparsity"],
            "activation_sparsity": r["ActivationSparsity"], "dense_synops": ops["Dense"],
            "effective_acs": ops["Effective_ACs"], "effective_macs": ops["Effective_MACs"],
            "membrane_updates": r["MembraneUpdates"]}


def spikecl_measures(net: nn.Module, x: torch.Tensor, num_steps: int, encoder: str) -> dict[str, float]:
    return {**measures.static(net), **measures.workload(net, x, num_steps, encoder, batch_size=BATCH)}


def tiny(kind: str) -> nn.Module:
    """A fresh tiny network (seeded) with a third of its first layer's weights zero: MLP 16-12-8-3 or CNN
    1x8x8 - conv 4 - conv 6 - 3 (batch norm, pooling)."""
    torch.manual_seed(0)
    net = build_mlp(16, [12, 8], 3, init_gain=4.0) if kind == "mlp" else build_cnn((1, 8, 8), [4, 6], 3, init_gain=3.0)
    first = net.layers[0].synapse.weight
    with torch.no_grad():
        first[torch.rand_like(first) < 1 / 3] = 0
    return net.eval()


def cases():
    """(name, kind, inputs [N, ...], steps, encoder): direct input (MACs into the first layer) and latency input
    (ACs)."""
    torch.manual_seed(1)
    x_mlp, x_cnn = torch.rand(20, 16), torch.rand(20, 1, 8, 8)
    return [("mlp direct", "mlp", x_mlp, 5, "direct"), ("mlp latency", "mlp", x_mlp, 5, "latency"),
            ("cnn direct", "cnn", x_cnn, 4, "direct"), ("cnn latency", "cnn", x_cnn, 4, "latency")]


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    try:
        import neurobench  # noqa: F401
    except ImportError:
        print("neurobench_compare.py: error: the neurobench package is not installed here; run it in an environment "
              "that has it (see --help and the module docstring)", file=sys.stderr)
        return 2
    bad = 0
    for name, kind, x, steps, encoder in cases():
        theirs = neurobench_measures(tiny(kind), x, steps, encoder)
        ours = spikecl_measures(tiny(kind), x, steps, encoder)
        for key, value in ours.items():
            if key == "connection_sparsity":
                value = round(value, 4)
            same = abs(value - theirs[key]) <= 1e-9 * max(1.0, abs(value))
            bad += not same
            print(f"{name:12s} {key:20s} spikecl {value:14.6f}  neurobench {float(theirs[key]):14.6f}  "
                  f"{'equal' if same else 'DIFFERENT'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
