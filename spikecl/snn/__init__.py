"""Torch side of spikecl: LIF dynamics (snnTorch ``Leaky`` or the fused engine), encoders, spiking layers, networks
and trainers.

Tensors over time are ``[T, B, ...]`` (time first), as in snnTorch.
"""

from spikecl.errors import require

require("torch", "torch")
require("snntorch", "torch")

from spikecl.snn.activity import Activity  # noqa: E402
from spikecl.snn.encoders import encode  # noqa: E402
from spikecl.snn.layers import Readout, SpikingConv2d, SpikingLinear  # noqa: E402
from spikecl.snn.networks import SpikingNetwork, build_cnn, build_mlp, build_network, evaluating  # noqa: E402
from spikecl.snn.neurons import LIFParams  # noqa: E402
from spikecl.snn.trainers import BPTTTrainer, OnlineTrainer, evaluate, make_trainer  # noqa: E402

__all__ = ["Activity", "encode", "Readout", "SpikingConv2d", "SpikingLinear", "SpikingNetwork", "build_cnn",
           "build_mlp", "build_network", "evaluating", "LIFParams", "BPTTTrainer", "OnlineTrainer", "evaluate",
           "make_trainer"]
