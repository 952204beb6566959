"""Leaky integrate-and-fire neurons, built on snnTorch's ``Leaky``.

Discrete-time LIF (one step = one time bin):

    U[t] = beta * U[t-1] + I[t] - S[t-1] * threshold        (reset by subtraction)
    S[t] = Heaviside(U[t] - threshold)

with a fast-sigmoid surrogate gradient dS/dU = 1 / (1 + slope * |U - threshold|)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import snntorch as snn
import torch
from snntorch import surrogate


@dataclass(frozen=True)
class LIFParams:
    """Parameters shared by the LIF neurons of a network.

    beta: membrane decay per step (0..1). threshold: firing threshold. reset: "subtract" or "zero".
    surrogate_slope: slope of the fast-sigmoid surrogate gradient. Checked on construction against the bounds of
    the config's ``network.*`` keys (ConfigError).
    """

    beta: float = 0.9
    threshold: float = 1.0
    reset: str = "subtract"
    surrogate_slope: float = 25.0

    def __post_init__(self) -> None:
        from spikecl.snn.checks import network_option

        for name in ("beta", "threshold", "reset", "surrogate_slope"):
            object.__setattr__(self, name, network_option(getattr(self, name), name))

    def spiking(self) -> snn.Leaky:
        """A spiking ``snn.Leaky`` with these parameters."""
        return _unlisted(snn.Leaky(beta=self.beta, threshold=self.threshold, reset_mechanism=self.reset,
                                   spike_grad=surrogate.fast_sigmoid(slope=self.surrogate_slope)))

    def integrator(self) -> snn.Leaky:
        """A non-resetting ``snn.Leaky`` whose membrane is the readout (it never feeds its spikes on)."""
        return _unlisted(snn.Leaky(beta=self.beta, threshold=self.threshold, reset_mechanism="none",
                                   spike_grad=surrogate.fast_sigmoid(slope=self.surrogate_slope)))


def _unlisted(neuron: snn.Leaky) -> snn.Leaky:
    """``neuron`` taken off snnTorch's class-wide list of every neuron ever made (``SpikingNeuron.instances``, used
    only to reset ``init_hidden`` states, which spikecl does not use), which would keep it and its last batch's
    membrane alive after its network is gone."""
    snn.SpikingNeuron.instances.remove(neuron)
    neuron.mem = emptied(neuron, neuron.mem)
    return neuron


def emptied(neuron: snn.Leaky, mem: torch.Tensor) -> torch.Tensor:
    """The empty tensor of ``mem``'s device and dtype that ``neuron`` keeps as its membrane between passes: the same
    object after every pass (kept in the neuron, one per device and dtype), so a compiled forward pass
    (``train.compile``), which guards on the buffers it reaches, is not invalidated by a fresh empty buffer after
    each pass (HLOP's recording reaches them: each step recompiled until torch's limit, then ran uncompiled). One
    neuron's, not one shared by all: torch lists a tensor held by several modules only once among their buffers."""
    kept = neuron.__dict__.setdefault("_spikecl_empty_mem", {})
    key = (mem.device, mem.dtype)
    if key not in kept:
        kept[key] = torch.empty(0, device=mem.device, dtype=mem.dtype)
    return kept[key]
