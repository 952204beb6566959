"""A trained spiking MLP as plain numpy arrays: what the exporter quantises (torch-free).

A :class:`NetworkSpec` is a chain of fully connected layers. Hidden layers are LIF neurons (snnTorch ``Leaky``,
``mem[t] = beta * mem[t-1] + W x[t] + b``, spike when ``mem > threshold``, reset ``zero`` or ``subtract``); the last
layer is the readout, a non-resetting leaky integrator whose logits are the membrane averaged over the T steps.
A multi-head readout (task-incremental streams) is stored as one layer of ``n_heads * n_outputs`` neurons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from spikecl.errors import ExportError, ShapeError


class WeightShape:
    """``n_in`` and ``n_out`` of a layer holding ``weight`` [n_out, n_in]."""

    weight: np.ndarray

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class LayerSpec(WeightShape):
    """One synapse + neuron population. ``weight`` float [n_out, n_in]; ``bias`` float [n_out] or None."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    beta: float
    threshold: float
    reset: str            # "zero" | "subtract" (hidden) | "none" (readout integrator)

    @property
    def is_readout(self) -> bool:
        return self.reset == "none"


@dataclass(frozen=True)
class NetworkSpec:
    """Hidden LIF layers then the readout; how inputs are presented (``num_steps`` T, ``encoder``).

    ``n_heads`` heads of ``n_outputs`` units each make up the readout's ``n_heads * n_outputs`` neurons.
    ``config``: the experiment config the network was trained with (dataset, stream), for deployment checks.
    """

    layers: tuple[LayerSpec, ...]
    num_steps: int
    encoder: str
    n_outputs: int
    n_heads: int = 1
    config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.layers or not self.layers[-1].is_readout:
            raise ShapeError("a network spec needs at least a readout layer as its last layer")
        for prev, nxt in zip(self.layers[:-1], self.layers[1:]):
            if prev.n_out != nxt.n_in:
                raise ShapeError(f"layer {nxt.name} takes {nxt.n_in} inputs but {prev.name} has {prev.n_out}")
        if self.layers[-1].n_out != self.n_outputs * self.n_heads:
            raise ShapeError(f"readout has {self.layers[-1].n_out} neurons; expected {self.n_heads} heads x "
                             f"{self.n_outputs} outputs")

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_in

    @property
    def hidden(self) -> tuple[LayerSpec, ...]:
        return self.layers[:-1]

    @property
    def readout(self) -> LayerSpec:
        return self.layers[-1]


def _array(state: dict, key: str) -> np.ndarray:
    if key not in state:
        raise ExportError(f"trained parameters lack '{key}' (keys: {', '.join(sorted(state)[:6])}, ...)")
    value = np.asarray(state[key], dtype=np.float64)
    if not np.all(np.isfinite(value)):
        raise ExportError(f"trained parameter '{key}' contains NaN or infinity")
    return value


RESETS = ("subtract", "zero", "none")  # snnTorch's reset_mechanism_val order


def _neuron(state: dict, prefix: str, name: str, beta: float, threshold: float, reset: str):
    """(beta, threshold, reset) of a neuron module: its stored buffers when present, else the config's values.

    Per-neuron values that differ are refused: Lava's LIF has one ``dv`` and one ``vth`` per population.
    """
    values = []
    for key, default in (("beta", beta), ("threshold", threshold)):
        if prefix + key not in state:
            values.append(default)
            continue
        arr = _array(state, prefix + key).ravel()
        if arr.size > 1 and not np.all(arr == arr[0]):
            raise ExportError(f"layer {name}: per-neuron {key} is not representable (one value per population)")
        values.append(float(arr[0]))
    if prefix + "reset_mechanism_val" in state:
        reset = RESETS[int(np.asarray(state[prefix + "reset_mechanism_val"]).ravel()[0])]
    return values[0], values[1], reset


def spec_from_state(state: dict, config: dict) -> NetworkSpec:
    """Rebuild the network from its ``state_dict`` arrays (names as in :mod:`spikecl.snn.networks`) and the
    experiment config (``config["network"]``): neuron parameters come from the stored snnTorch buffers (``beta``,
    ``threshold``, ``reset_mechanism_val``) when present, else from the config. Only MLPs are exportable; a CNN is
    an :class:`ExportError`.

    Strategy state (HLOP's lateral neurons, GPM bases, EWC Fisher) is not part of the network and is not read.
    """
    net = config.get("network", {})
    if net.get("kind", "mlp") != "mlp":
        raise ExportError(f"network.kind = {net.get('kind')!r}: only MLPs export to Loihi (conv layers with batch "
                          "norm and average pooling are not mapped)")
    beta, threshold = float(net.get("beta", 0.9)), float(net.get("threshold", 1.0))
    reset = net.get("reset", "subtract")
    layers = []
    i = 0
    while f"layers.{i}.synapse.weight" in state:
        prefix = f"layers.{i}.synapse."
        bias = _array(state, prefix + "bias") if prefix + "bias" in state else None
        neuron = _neuron(state, f"layers.{i}.lif.", f"hidden{i}", beta, threshold, reset)
        layers.append(LayerSpec(f"hidden{i}", _array(state, prefix + "weight"), bias, *neuron))
        i += 1
    heads = []
    while f"readout.heads.{len(heads)}.weight" in state:
        h = len(heads)
        bias_key = f"readout.heads.{h}.bias"
        heads.append((_array(state, f"readout.heads.{h}.weight"),
                      _array(state, bias_key) if bias_key in state else None))
    if not heads:
        raise ExportError("trained parameters have no readout (readout.heads.0.weight missing)")
    weight = np.concatenate([w for w, _ in heads])
    bias = None if heads[0][1] is None else np.concatenate([b for _, b in heads])
    r_beta, r_threshold, _ = _neuron(state, "readout.integrator.", "readout", beta, threshold, "none")
    layers.append(LayerSpec("readout", weight, bias, r_beta, r_threshold, "none"))
    return NetworkSpec(tuple(layers), int(net.get("num_steps", 4)), net.get("encoder", "direct"),
                       n_outputs=heads[0][0].shape[0], n_heads=len(heads), config=config)


def load_trained(path) -> NetworkSpec:
    """The trained network of a results file (``.h5``, torch-free) or a run checkpoint (``.ckpt``, needs torch)."""
    from pathlib import Path

    from spikecl.errors import ResultsError, require

    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"trained network not found: {path}")
    if path.suffix == ".ckpt":
        torch = require("torch", "torch")
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # torch raises many types for a damaged file
            raise ResultsError(f"{path} is not a readable checkpoint ({type(exc).__name__})") from None
        if not isinstance(state, dict) or "model" not in state or "config" not in state:
            raise ResultsError(f"{path} is not a spikecl run checkpoint (model or config missing)")
        model = {k: v.detach().cpu().numpy() for k, v in state["model"].items()}
        return spec_from_state(model, dict(state["config"]))
    from spikecl.io import read_results

    result = read_results(path)
    if not result.model:
        raise ResultsError(f"{path} holds no trained parameters under /model")
    return spec_from_state(result.model, result.config)


def config_json(spec: NetworkSpec) -> str:
    """The training config as JSON (stored with exported networks)."""
    return json.dumps(spec.config)
