"""NeuroBench's complexity measures of a spiking network (Yik et al., "NeuroBench", Nature Communications 2025;
definitions as in the ``neurobench`` package's ``metrics.static`` and ``metrics.workload``, re-implemented here).

Static (of the weights):

* ``footprint``: bytes of every parameter and persistent buffer (``numel · element_size``). snnTorch keeps a
  neuron's last membrane in a non-persistent buffer, which NeuroBench counts and spikecl does not; spikecl's
  networks empty it after every pass, so the two agree after a pass too.
* ``connection_sparsity``: zero weights / all weights of the synapses (``nn.Linear``, ``nn.Conv*``; biases,
  normalisation and neurons excluded). NeuroBench rounds it to 4 decimals; spikecl does not.

Workload (per inference, i.e. per sample, over the ``T`` steps of a pass):

* ``activation_sparsity``: zero outputs / all outputs of every snnTorch neuron module over all steps and samples,
  the readout's integrator included (NeuroBench hooks every ``snn.SpikingNeuron``; the integrator's threshold
  crossings are never transmitted).
* ``dense_synops``: every connection of every synapse call (zero weights and zero inputs too; a convolution's
  zero padding excluded), summed over steps.
* ``effective_acs`` / ``effective_macs``: connections with a nonzero weight *and* a nonzero presynaptic value. A
  sample's time step whose input lies in {-1, 0, 1} counts as accumulates (ACs, spikes), any other as
  multiply-accumulates (MACs): direct-encoded pixels (but an image whose pixels all lie in {0, ±1}), average-pooled
  spikes and event frames holding a count of 2 or more are MACs (in the steps of the samples that hold one).
  NeuroBench decides per hook call, for the call's whole input at once: on a network stepped one step at a time that
  is one step of the batch, on these layers (one call per sequence) every step of it, so one count of 2 anywhere
  turns the whole call into MACs and its split depends on the batch size and T. spikecl's is per sample and step;
  the two agree where each call's input is all spikes or all graded (latency input, binary frames, direct input of
  no binary image), not in general on event frames with counts or on direct input mixing binary and graded images.
* ``membrane_updates``: per neuron module, all its neurons at the first step plus, at each later step, the
  neurons whose membrane changed.

Biases are no synaptic operations. Measures run on the ``snntorch`` engine, whose layers call a synapse once on a
whole sequence; each call is split into its time steps, so ACs and MACs are decided per step (and sample), as on a
step-by-step network. A multi-head readout calls, and counts, every head.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import snntorch as snn
import torch
from torch import nn

from spikecl.snn.checks import count
from spikecl.snn.encoders import encode
from spikecl.snn.networks import evaluating

SYNAPSES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

def footprint(net: nn.Module) -> int:
    """Bytes of the parameters and persistent buffers of ``net`` (its ``state_dict``)."""
    return int(sum(t.numel() * t.element_size() for t in net.state_dict().values()))


def connection_sparsity(net: nn.Module) -> float:
    """Fraction of zero synaptic weights (``nn.Linear`` and ``nn.Conv*`` weights only); 0.0 without synapses."""
    weights = [m.weight for m in net.modules() if isinstance(m, SYNAPSES)]
    total = sum(w.numel() for w in weights)
    return float(sum(w.numel() - int(torch.count_nonzero(w)) for w in weights) / total) if total else 0.0


def synapse_operations(synapse: nn.Module, x: torch.Tensor, dense: bool) -> int:
    """Connections used by one call of ``synapse`` on ``x`` [N, *in_shape] (all samples together).

    ``dense``: every connection; else only those with a nonzero weight and a nonzero input. Counted as the synapse
    with 0/1 weights on 0/1 inputs, without bias, would sum its outputs, but without a copy of the weights: per
    input, the inputs that are used times the outputs they reach (a Linear), or one convolution with the kernel
    summed over the output channels (a Conv, groups = 1).
    """
    ones = torch.ones_like(x) if dense else (x != 0).to(x.dtype)
    weight = synapse.weight.detach()
    if isinstance(synapse, nn.Linear):         # sum_n,i used[n, i] * reached[i], in integers
        reached = torch.full((weight.shape[1],), weight.shape[0], dtype=torch.int64, device=weight.device) if dense \
            else _nonzero_per_input(weight)
        return int(torch.dot(ones.reshape(-1, weight.shape[1]).sum(0, dtype=torch.int64), reached).item())
    if synapse.groups == 1:                    # one output channel whose kernel counts the channels each tap reaches
        kernel = torch.full((1, *weight.shape[1:]), weight.shape[0], dtype=torch.float64, device=x.device) if dense \
            else _nonzero_per_input(weight).to(torch.float64).unsqueeze(0)
        ones = ones.to(torch.float64)          # its sums reach C_in·k·k·C_out: inexact in float32 beyond 2^24
    else:
        kernel = torch.ones_like(weight) if dense else (weight != 0).to(weight.dtype)
    out = synapse._conv_forward(ones, kernel, None)     # the conv's stride, padding, dilation (and groups)
    return int(round(out.sum(dtype=torch.float64).item()))


def _nonzero_per_input(weight: torch.Tensor) -> torch.Tensor:
    """The nonzero weights of each input (and kernel tap) over the outputs, int64 ``weight.shape[1:]``: counted a
    block of outputs at a time (``count_nonzero`` over a dimension makes an int64 copy of the whole weight)."""
    rows = max(1, (1 << 20) // max(1, weight[0].numel()))
    return sum(torch.count_nonzero(block, dim=0) for block in weight.split(rows))


def spiking_rows(x: torch.Tensor) -> torch.Tensor:
    """Which samples of ``x`` [B, ...] hold only -1, 0 and 1 (bool [B]): a synapse's work on them is accumulates."""
    return ((x == 0) | (x == 1) | (x == -1)).reshape(x.shape[0], -1).all(dim=1)


class _Tally:
    """Counts accumulated by forward hooks while a measured pass runs (totals over all samples)."""

    def __init__(self) -> None:
        self.dense = self.acs = self.macs = 0
        self.outputs = self.nonzero = 0
        self.updates = 0
        self.last_mem: dict[nn.Module, torch.Tensor] = {}
        self.steps = self.batch = 1                  # of the pass running (start_pass)

    def synapse_hook(self, module: nn.Module, args: tuple) -> None:
        x = args[0].detach()
        self.dense += synapse_operations(module, x, dense=True)
        for step in self.time_steps(x):             # ACs or MACs decided per step and sample
            spiking = spiking_rows(step)
            if spiking.all():
                self.acs += synapse_operations(module, step, dense=False)
            elif not spiking.any():
                self.macs += synapse_operations(module, step, dense=False)
            else:
                self.acs += synapse_operations(module, step[spiking], dense=False)
                self.macs += synapse_operations(module, step[~spiking], dense=False)

    def time_steps(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A synapse's input ``x`` split into the pass's time steps: the engines call a synapse once on a whole
        sequence, ``[T·B, ...]`` or ``[T, B, ...]``; anything else is one step."""
        steps, batch = self.steps, self.batch
        if steps > 1 and x.shape[0] == steps * batch:
            return x.reshape(steps, batch, *x.shape[1:]).unbind(0)
        if x.ndim > 2 and tuple(x.shape[:2]) == (steps, batch):          # [T, B, ...], T = 1 too
            return x.unbind(0)
        return (x,)

    def neuron_hook(self, module: nn.Module, args: tuple, output) -> None:
        spikes, mem = output[0].detach(), output[1].detach()
        self.outputs += spikes.numel()
        self.nonzero += int(torch.count_nonzero(spikes))
        previous = self.last_mem.get(module)
        fresh = previous is None or previous.shape != mem.shape
        self.updates += mem.numel() if fresh else int(torch.count_nonzero(mem - previous))
        self.last_mem[module] = mem

    def start_pass(self, steps: int, batch: int) -> None:
        """A new sequence of ``steps`` steps of ``batch`` samples starts: every neuron's first step counts all its
        neurons."""
        self.last_mem.clear()
        self.steps, self.batch = steps, batch


@contextlib.contextmanager
def _hooked(net: nn.Module, tally: _Tally) -> Iterator[None]:
    """Hooks on every synapse and snnTorch neuron of ``net``; the ``snntorch`` engine while the block runs."""
    handles = [m.register_forward_pre_hook(tally.synapse_hook) for m in net.modules() if isinstance(m, SYNAPSES)]
    handles += [m.register_forward_hook(tally.neuron_hook) for m in net.modules() if isinstance(m, snn.SpikingNeuron)]
    layers = net.plastic_layers().values() if hasattr(net, "plastic_layers") else ()
    engines = [layer.engine for layer in layers]            # each layer's own: a network may mix them
    for layer in layers:
        layer.engine = "snntorch"
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for layer, engine in zip(layers, engines):
            layer.engine = engine


@torch.no_grad()
def workload(net: nn.Module, x: torch.Tensor, num_steps: int, encoder: str = "direct",
             heads: torch.Tensor | None = None, batch_size: int = 256,
             generator: torch.Generator | None = None) -> dict[str, float]:
    """NeuroBench's workload measures of ``net`` on samples ``x`` [N, ...] (``heads`` [N] for multi-head
    readouts), encoded to ``num_steps`` steps by ``encoder``: per-sample means (see the module docstring)."""
    batch_size = count(batch_size, "batch_size")
    tally = _Tally()
    with evaluating(net), _hooked(net, tally):
        for start in range(0, len(x), batch_size):
            x_seq = encode(x[start:start + batch_size], num_steps, encoder, generator)
            tally.start_pass(*x_seq.shape[:2])
            net(x_seq, None if heads is None else heads[start:start + batch_size])
    n = max(len(x), 1)
    sparsity = 1.0 - tally.nonzero / tally.outputs if tally.outputs else 0.0
    return {"activation_sparsity": sparsity, "dense_synops": tally.dense / n, "effective_acs": tally.acs / n,
            "effective_macs": tally.macs / n, "membrane_updates": tally.updates / n}


def static(net: nn.Module) -> dict[str, float]:
    """Footprint (bytes) and connection sparsity of ``net``."""
    return {"footprint_bytes": float(footprint(net)), "connection_sparsity": connection_sparsity(net)}
