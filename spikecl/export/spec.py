"""A trained spiking network as plain numpy arrays: what the exporter quantises (torch-free).

A :class:`NetworkSpec` is a chain of fully connected or convolutional layers. Hidden layers are LIF neurons (snnTorch
``Leaky``, ``mem[t] = beta * mem[t-1] + W x[t] + b``, spike when ``mem > threshold``, reset ``zero`` or ``subtract``);
the last layer is the readout, a non-resetting leaky integrator whose logits are the membrane averaged over the T steps.
A multi-head readout (task-incremental streams) is stored as one layer of ``n_heads * n_outputs`` neurons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace

import numpy as np

from spikecl.config import NetworkConfig, check_known_dataset
from spikecl.data.datasets import known_image_shape
from spikecl.errors import ExportError, ShapeError, did_you_mean
from spikecl.network_keys import INTEGRATOR, LIF, NORM, SYNAPSE, head, hidden, part_of

#: how inputs may be presented to Loihi: spikes a direct, Poisson or latency encoder makes of an image (event frames
#: hold counts per bin, which Loihi 1 cannot take)
INPUT_ENCODERS = ("direct", "poisson", "latency")
#: every encoder a trained network may name (``events`` is refused at export, by :func:`refuse_encoder`)
KNOWN_ENCODERS = (*INPUT_ENCODERS, "events")
#: the largest num_steps, n_outputs or n_heads a network may declare (a bound against corrupt files)
MAX_COUNT = 1_000_000


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's neuron grids: ``in_shape`` and ``out_shape`` (C, H, W), square ``stride`` and ``padding``.

    Neurons are numbered in (C, H, W) order, as torch flattens them.
    """

    in_shape: tuple
    out_shape: tuple
    stride: int
    padding: int


def conv_output_shape(in_shape: tuple, out_channels: int, kernel: int, stride: int, padding: int) -> tuple:
    """(C_out, H', W') of a square convolution."""
    return (out_channels, *((n + 2 * padding - kernel) // stride + 1 for n in in_shape[1:]))


class ArrayValued:
    """Value equality of a frozen dataclass holding numpy arrays (``@dataclass(frozen=True, eq=False)``): equal when
    of one class and every field is, arrays element for element with their shapes; unhashable, as arrays are
    mutable."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))


def _same(a, b) -> bool:
    """Whether two field values are equal: arrays by shape and elements, tuples, lists and dicts item by item."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape \
            and bool(np.array_equal(a, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


class WeightShape(ArrayValued):
    """``n_in`` and ``n_out`` of a layer: ``weight`` [n_out, n_in], or a conv's [C_out, C_in, k, k] with ``conv``."""

    weight: np.ndarray
    conv: ConvGeometry | None

    @property
    def n_in(self) -> int:
        return int(np.prod(self.conv.in_shape)) if self.conv else int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(np.prod(self.conv.out_shape)) if self.conv else int(self.weight.shape[0])


@dataclass(frozen=True, eq=False)
class LayerSpec(WeightShape):
    """One synapse + neuron population. ``weight`` float [n_out, n_in]; ``bias`` float [n_out] or None."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    beta: float
    threshold: float
    reset: str            # "zero" | "subtract" (hidden) | "none" (readout integrator)
    conv: ConvGeometry | None = None   # None: fully connected

    @property
    def is_readout(self) -> bool:
        return self.reset == "none"


@dataclass(frozen=True, eq=False)
class NetworkSpec(ArrayValued):
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
        check_num_steps(self.num_steps, "num_steps")
        if not isinstance(self.encoder, str) or self.encoder not in KNOWN_ENCODERS:
            raise ExportError(f"encoder {self.encoder!r} is not one of {', '.join(KNOWN_ENCODERS)}")
        if not self.layers or not self.layers[-1].is_readout:
            raise ShapeError("a network spec needs at least a readout layer as its last layer")
        for layer in self.layers:
            values = {"weight": layer.weight, "bias": 0.0 if layer.bias is None else layer.bias, "beta": layer.beta,
                      "threshold": layer.threshold}
            bad = next((k for k, v in values.items() if not np.all(np.isfinite(np.asarray(v, dtype=np.float64)))),
                       None)
            if bad:
                raise ExportError(f"layer {layer.name}: {bad} contains NaN or infinity")
            expected = "[C_out, C_in, k, k]" if layer.conv else "[n_out, n_in]"
            if layer.weight.ndim != (4 if layer.conv else 2):
                raise ExportError(f"layer {layer.name}: weight has shape {layer.weight.shape}; expected {expected}")
            if layer.bias is not None and np.shape(layer.bias) != (layer.n_out,):
                raise ExportError(f"layer {layer.name}: bias has shape {np.shape(layer.bias)}; expected "
                                  f"[{layer.n_out}]")
        for prev, nxt in zip(self.layers[:-1], self.layers[1:]):
            if prev.n_out != nxt.n_in:
                raise ShapeError(f"layer {nxt.name} takes {nxt.n_in} inputs but {prev.name} has {prev.n_out}")
        for layer in self.layers[:-1]:
            if not layer.threshold > 0:
                raise ExportError(f"layer {layer.name}: threshold {layer.threshold:g} must be positive")
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
    def hidden_as_run(self) -> tuple[LayerSpec, ...]:
        """The hidden layers as they act: at ``num_steps = 1`` no membrane outlives its step, so both resets act
        as ``"zero"`` (the one Loihi and NIR readers have)."""
        if self.num_steps > 1:
            return self.hidden
        return tuple(replace(layer, reset="zero") for layer in self.hidden)

    @property
    def readout(self) -> LayerSpec:
        return self.layers[-1]


def check_num_steps(value, name: str) -> int:
    """``value`` as steps per sample: an integer in 1..:data:`MAX_COUNT` (a float, string or boolean is refused in
    one line, never truncated)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_COUNT:
        shown = value.item() if isinstance(value, np.generic) else value
        raise ExportError(f"{name} = {shown!r} must be an integer in 1..{MAX_COUNT}")
    return int(value)


def _array(state: dict, key: str) -> np.ndarray:
    if key not in state:
        raise ExportError(f"trained parameters lack '{key}' (keys: {', '.join(sorted(state)[:6])}, ...)")
    try:
        value = np.asarray(state[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ExportError(f"trained parameter '{key}' is not an array of numbers (it holds "
                          f"{type(state[key]).__name__} {np.asarray(state[key]).dtype})") from None
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
    graded = prefix + "graded_spikes_factor"
    if graded in state and np.any(np.asarray(state[graded], dtype=np.float64) != 1.0):
        raise ExportError(f"layer {name}: graded spikes (snnTorch graded_spikes_factor != 1) are not representable; "
                          "Lava's LIF emits binary spikes")
    if prefix + "reset_mechanism_val" in state:
        code = _array(state, prefix + "reset_mechanism_val").ravel()
        if code.size != 1 or code[0] not in range(len(RESETS)):
            raise ExportError(f"layer {name}: reset_mechanism_val {code.tolist()} is not one of snnTorch's codes 0..2 "
                              f"({', '.join(RESETS)})")
        reset = RESETS[int(code[0])]
    return values[0], values[1], reset


def _check_recorded_neurons(layers: list, net: dict) -> None:
    """A one-line ExportError where the config records a ``network.beta``, ``threshold`` or ``reset`` that a layer's
    stored neuron buffers contradict (the state of a network built otherwise): the file would record the config's
    setting beside weights that run with the buffers'. Values are compared as the float32 buffers hold them."""
    for key in ("beta", "threshold", "reset"):
        if key not in net:
            continue
        for layer in layers if key != "reset" else layers[:-1]:      # the readout never resets
            held = getattr(layer, key)
            same = held == net[key] if key == "reset" else np.float32(held) == np.float32(net[key])
            if not same:
                shown = repr(held) if key == "reset" else f"{held:.7g}"
                raise ExportError(f"layer {layer.name}: its neurons hold {key} {shown}, the config records "
                                  f"network.{key} = {net[key]!r}; the file would record one and run the other: "
                                  "export with the config the network was built with")


BATCH_NORM_EPS = 1e-5  # torch.nn.BatchNorm2d's default


def _fold_batch_norm(state: dict, prefix: str, weight: np.ndarray, bias: np.ndarray | None):
    """Conv weight and per-channel bias with an eval-mode BatchNorm2d folded in (unchanged without one)."""
    norm = prefix + NORM
    if norm + "running_mean" not in state:
        return weight, bias
    mean, var = _array(state, norm + "running_mean"), _array(state, norm + "running_var")
    channels = weight.shape[0]
    gamma = _array(state, norm + "weight") if norm + "weight" in state else np.ones(channels)
    shift = _array(state, norm + "bias") if norm + "bias" in state else np.zeros(channels)
    if not np.all(var >= 0):
        raise ExportError(f"trained parameter '{norm}running_var' holds a negative variance (a damaged file)")
    with np.errstate(over="ignore", invalid="ignore"):          # refused below, in one line
        gain = gamma / np.sqrt(var + BATCH_NORM_EPS)
        folded_bias = shift - gain * mean + (0.0 if bias is None else gain * bias)
        folded = weight * gain[:, None, None, None]
    if not (np.all(np.isfinite(folded)) and np.all(np.isfinite(folded_bias))):
        raise ExportError(f"layer at '{prefix}': folding its batch norm gives NaN or infinite weights (a damaged file)")
    return folded, folded_bias


def _pool_into_conv(weight: np.ndarray) -> np.ndarray:
    """A k x k conv (padding p) after 2 x 2 average pooling = a 2k x 2k conv, stride 2, padding 2p, on the spikes."""
    out, cin, k, _ = weight.shape
    folded = np.zeros((out, cin, 2 * k, 2 * k))
    for a in (0, 1):
        for b in (0, 1):
            folded[:, :, a::2, b::2] = weight / 4.0
    return folded


def _pool_into_dense(weight: np.ndarray, shape: tuple) -> np.ndarray:
    """Dense weights [n_out, C * H/2 * W/2] over 2 x 2-average-pooled spikes → weights over the spikes (C, H, W)."""
    c, h, w = shape
    if weight.ndim != 2 or weight.shape[1] != c * (h // 2) * (w // 2):
        raise ExportError(f"layer readout: weight {weight.shape} does not take the {c} x {h // 2} x {w // 2} pooled "
                          "grid of the last conv")
    pooled = weight.reshape(weight.shape[0], c, h // 2, w // 2) / 4.0
    full = np.zeros((weight.shape[0], c, h, w))
    full[:, :, : 2 * (h // 2), : 2 * (w // 2)] = pooled.repeat(2, axis=2).repeat(2, axis=3)
    return full.reshape(weight.shape[0], -1)


def _even(name: str, shape: tuple) -> None:
    if shape[1] % 2 or shape[2] % 2:
        raise ExportError(f"layer {name}: average pooling of an odd {shape[1]}x{shape[2]} grid before a conv cannot "
                          "be folded into a strided conv")


def refuse_encoder(encoder: str) -> None:
    """A one-line ExportError unless inputs of ``encoder`` can be exported (:data:`INPUT_ENCODERS`), in either
    format: a NIR graph describes the network the netx file runs."""
    takes = f"export takes the encoders {', '.join(INPUT_ENCODERS)}"
    if encoder == "events":
        raise ExportError(f"encoder 'events': networks trained on event frames cannot be exported yet, to netx or NIR "
                          f"(their inputs hold counts per bin, which Loihi 1 cannot take); {takes}")
    if encoder not in INPUT_ENCODERS:
        raise ExportError(f"encoder {encoder!r} cannot be exported; {takes}")


def _cnn_layers(state: dict, config: dict, neuron_defaults: tuple) -> tuple[list, tuple]:
    """Conv layers with batch norm and the following 2 x 2 average pooling folded into the weights."""
    dataset = config.get("data", {}).get("dataset")
    check_known_dataset(dataset)
    shape = known_image_shape(dataset)  # CNN exports need the input grid; MLPs read their inputs from the weights
    if shape is None:
        refuse_encoder(config.get("network", {}).get("encoder", "direct"))    # event frames: the encoder says why
        raise ExportError(f"data.dataset = {dataset!r}: the input grid of a CNN export is unknown; name the dataset "
                          "it was trained on in config['data']['dataset'] (a built-in one, or one registered with "
                          "register_dataset, of the CNN's input shape)")
    layers = []
    i = 0
    while hidden(i) + SYNAPSE + "weight" in state:
        prefix, name = hidden(i), f"hidden{i}"
        weight = _array(state, prefix + SYNAPSE + "weight")
        bias = _array(state, prefix + SYNAPSE + "bias") if prefix + SYNAPSE + "bias" in state else None
        if weight.ndim != 4 or weight.shape[1] != shape[0]:
            raise ExportError(f"layer {name}: weight {weight.shape} does not take {shape[0]} input channels")
        weight, bias = _fold_batch_norm(state, prefix, weight, bias)
        stride, padding = 1, weight.shape[-1] // 2
        if i > 0:
            _even(name, shape)
            weight, stride, padding = _pool_into_conv(weight), 2, 2 * padding
        out_shape = conv_output_shape(shape, weight.shape[0], weight.shape[-1], stride, padding)
        per_neuron = None if bias is None else np.repeat(bias, out_shape[1] * out_shape[2])
        neuron = _neuron(state, prefix + LIF, name, *neuron_defaults)
        layers.append(LayerSpec(name, weight, per_neuron, *neuron, ConvGeometry(shape, out_shape, stride, padding)))
        shape = out_shape
        i += 1
    return layers, shape


def check_network_keys(config: dict) -> None:
    """A one-line ExportError where ``config["network"]`` holds a key :class:`NetworkConfig` does not have (a typo
    would export at its default: ``numsteps`` at T = 4), or a network setting stands outside that table."""
    known = [f.name for f in fields(NetworkConfig)]
    net = config.get("network", {})
    if not isinstance(net, dict):
        raise ExportError(f"config['network'] must be a table of network settings, got {type(net).__name__}")
    unknown = next((key for key in net if key not in known), None)
    if unknown is not None:
        hint = did_you_mean(unknown, known) or f"; the network settings are {', '.join(known)}"
        raise ExportError(f"config['network']: unknown key {unknown!r}{hint}")
    stray = next((key for key in config if key in known and key != "kind"), None)   # kind: the experiment's
    if stray is not None:
        raise ExportError(f"config[{stray!r}]: a network setting outside config['network'], where it would be "
                          f"ignored; give {{'network': {{{stray!r}: ...}}}}")


def spec_from_state(state: dict, config: dict) -> NetworkSpec:
    """Rebuild the network from its ``state_dict`` arrays (named as :mod:`spikecl.network_keys` says) and the
    experiment config (``config["network"]``): neuron parameters come from the stored snnTorch buffers (``beta``,
    ``threshold``, ``reset_mechanism_val``) when present, else from the config; a config that records other values
    than the buffers hold is refused (the file records the config).

    CNNs (``build_cnn``): each eval-mode batch norm is folded into its conv's weights and a per-channel bias; each
    2 x 2 average pooling is folded into the next layer (a stride-2 conv of twice the kernel, or the readout's
    weights), so every layer sees binary spikes. Strategy state (HLOP's lateral neurons, GPM bases, EWC Fisher)
    is not part of the network and is not read.
    """
    net, default = config.get("network", {}), NetworkConfig()         # a setting not recorded: the config's default
    check_network_keys(config)
    stream = config.get("stream")
    standardize = stream.get("standardize") if isinstance(stream, dict) else None
    kind = net.get("kind", default.kind)
    if standardize and kind == "cnn":
        raise ExportError("the CNN was trained on standardised images (stream.standardize): its zero padding is 0 "
                          "after standardising, which no weights on [0, 1] pixels reproduce; export a CNN trained on "
                          "pixels (an MLP's standardisation is folded into its first layer)")
    defaults = (float(net.get("beta", default.beta)), float(net.get("threshold", default.threshold)),
                net.get("reset", default.reset))
    if kind == "cnn":
        layers, last_shape = _cnn_layers(state, config, defaults)
    else:
        layers, last_shape = [], None
        i = 0
        while hidden(i) + SYNAPSE + "weight" in state:
            prefix = hidden(i) + SYNAPSE
            bias = _array(state, prefix + "bias") if prefix + "bias" in state else None
            neuron = _neuron(state, hidden(i) + LIF, f"hidden{i}", *defaults)
            layers.append(LayerSpec(f"hidden{i}", _array(state, prefix + "weight"), bias, *neuron))
            i += 1
        sizes, recorded = [layer.weight.shape[0] for layer in layers], net.get("hidden")
        if isinstance(recorded, list) and recorded != sizes:               # a config that records it
            raise ExportError(f"the trained config's network.hidden = {recorded} does not match its weights' hidden "
                              f"layers {sizes} (a damaged file, or weights from another network)")
    heads = []
    while head(len(heads)) + "weight" in state:
        prefix = head(len(heads))
        heads.append((_array(state, prefix + "weight"),
                      _array(state, prefix + "bias") if prefix + "bias" in state else None))
    if not heads:
        raise ExportError(f"trained parameters have no readout ({head(0)}weight missing)")
    if len({(w.shape, b is None) for w, b in heads}) > 1:
        raise ExportError(f"the {len(heads)} readout heads differ in shape or in having a bias (a damaged file)")
    weight = np.concatenate([w for w, _ in heads])
    if last_shape is not None:
        weight = _pool_into_dense(weight, last_shape)
    bias = None if heads[0][1] is None else np.concatenate([b for _, b in heads])
    r_beta, r_threshold, _ = _neuron(state, INTEGRATOR, "readout", *defaults[:2], "none")
    layers.append(LayerSpec("readout", weight, bias, r_beta, r_threshold, "none"))
    _check_recorded_neurons(layers, net)
    n_hidden = next(i for i in range(len(state) + 1) if hidden(i) + SYNAPSE + "weight" not in state)
    read = {*(hidden(i) + part for i in range(n_hidden) for part in (SYNAPSE, NORM, LIF)),
            *(head(h) for h in range(len(heads))), INTEGRATOR}
    unread = next((key for key in state if part_of(key) not in read), None)
    lacking = next((hidden(j) + SYNAPSE + "weight" for j in range(len(state)) if unread is not None
                    and unread.startswith(hidden(j)) and hidden(j) + SYNAPSE + "weight" not in state), None)
    if lacking is not None:
        raise ExportError(f"trained parameters lack '{lacking}' beside '{unread}' (a damaged file)")
    if unread is not None:
        raise ExportError(f"trained parameters hold '{unread}', which no part of this network reads (a damaged file, "
                          "or one from another network)")
    steps = check_num_steps(net.get("num_steps", default.num_steps), "the trained config's network.num_steps")
    encoder = net.get("encoder", default.encoder)
    if not isinstance(encoder, str) or encoder not in KNOWN_ENCODERS:
        raise ExportError(f"the trained config's network.encoder = {encoder!r} is not one of "
                          f"{', '.join(KNOWN_ENCODERS)}")
    if standardize:                                   # the exported network takes pixels in [0, 1]
        layers[0] = folded_standardize(layers[0], *standardize)
        config = {**config, "stream": {**stream, "standardize": []}, "standardize_folded": list(standardize)}
    return NetworkSpec(tuple(layers), steps, encoder,
                       n_outputs=heads[0][0].shape[0], n_heads=len(heads), config=config)


def folded_standardize(layer: LayerSpec, mean: float, std: float) -> LayerSpec:
    """The first layer of a network trained on ``(x - mean) / std`` as one taking the pixels x itself:
    ``W (x - mean) / std + b = (W / std) x + (b - (mean / std) W 1)`` (``stream.standardize``)."""
    weight = layer.weight / std
    bias = (0.0 if layer.bias is None else layer.bias) - mean * weight.sum(axis=1)
    return replace(layer, weight=weight, bias=bias)


def hdf5_inside(path) -> str:
    """"; it is an HDF5 file ..." where the file ``path``, read as a checkpoint, holds HDF5 (a results file or network
    renamed .ckpt), for the message; else ""."""
    from spikecl.toml_files import is_hdf5_file

    return "; it is an HDF5 file (a results file renamed .ckpt?): export it under its .h5 name" * is_hdf5_file(path)


def load_trained(path) -> NetworkSpec:
    """The trained network of a results file (``.h5``, torch-free) or a run checkpoint (``.ckpt``, needs torch)."""
    from pathlib import Path

    from spikecl.errors import ResultsError, require
    from spikecl.integrity import archive_problem
    from spikecl.paths import is_dir, is_file, missing

    path = Path(path)
    if is_dir(path, ResultsError):
        raise ResultsError(f"{path} is a folder; name a results file (.h5) or checkpoint (.ckpt) to export")
    if not is_file(path, ResultsError):
        raise missing(path, f"trained network not found: {path}", ResultsError)
    if path.suffix.lower() == ".ckpt":
        torch = require("torch", "torch")
        try:
            damaged = archive_problem(path)             # torch writes each member's CRC-32 but never checks it
            state = None if damaged else torch.load(path, map_location="cpu", weights_only=True)   # tensors, data
        except FileNotFoundError:
            raise ResultsError(f"{path} no longer exists: its run finished or was removed as it was read (a "
                               "finished run's results file exports as well)") from None
        except Exception as exc:  # zipfile and torch raise many types for a damaged or crafted file
            raise ResultsError(f"{path} is not a readable checkpoint ({type(exc).__name__})"
                               + hdf5_inside(path)) from None
        if damaged:
            raise ResultsError(f"{path} is damaged ({damaged})")
        if not isinstance(state, dict) or "model" not in state or "config" not in state:
            raise ResultsError(f"{path} is not a spikecl run checkpoint (model or config missing)")
        for what, table in (("model", state["model"]), ("config", state["config"])):
            if not isinstance(table, dict):
                raise ResultsError(f"{path} is not a spikecl run checkpoint (its {what} is a "
                                   f"{type(table).__name__}, not a table)")
        wrong = next((k for k, v in state["model"].items() if not isinstance(v, torch.Tensor)), None)
        if wrong is not None:
            raise ResultsError(f"{path} is not a spikecl run checkpoint (its model entry {wrong!r} is a "
                               f"{type(state['model'][wrong]).__name__}, not a tensor)")
        model = {k: v.detach().cpu().numpy() for k, v in state["model"].items()}
        trained = _tasks_trained(path, state.get("progress"), state.get("method"), state["config"])
        crc = {"data_crc": state["data_crc"]} if state.get("data_crc") is not None else {}
        return spec_from_state(model, {**state["config"], "seed": state.get("seed", 0), **trained, **crc})
    from spikecl.continual.results import as_continual
    from spikecl.errors import ForeignFileError
    from spikecl.run_files import pending_replacement
    from spikecl.io import read_run

    if pending := pending_replacement(path):                 # its network is of the settings being replaced
        raise ResultsError(pending)
    run = read_run(path)
    if run.kind != "continual":
        raise ForeignFileError(f"{path} holds a {run.kind!r} run; export takes a continual run's trained network"
                               + NEXT_STEP.get(run.kind, ""))
    result = as_continual(run)
    if not result.model:
        raise ResultsError(f"{path} holds no trained parameters under /model")
    crc = result.environment.get("data_crc")             # the dataset files it trained on, where it read files
    return spec_from_state(result.model, {**result.config, **({"data_crc": crc} if crc is not None else {})})


#: what to export instead of another kind's results file
NEXT_STEP = {"ca3": " (a CA3 memory exports from its experiment file: spikecl export models/ca3_cam.toml -o ca3.h5)",
             "sparsey": " (Sparsey coders have no exported form)",
             "sweep": " (export one of the sweep's results files, e.g. <output_dir>/<name>/final/<method>-seed0.h5)"}


def _tasks_trained(path, progress, method, config: dict) -> dict:
    """``{"tasks_trained": n}`` from a run checkpoint's ``progress``: the tasks whose outputs its training had made
    active (the stage of the last task trained, plus one: multitask training's first turn makes them all active;
    checkpoints written before the stage was kept: the tasks done, or all for a ``method`` that trains ahead), or
    ``{}`` where it says nothing (every task)."""
    from spikecl.errors import ResultsError

    if not isinstance(progress, dict):
        return {}
    stage = progress.get("stage")
    if type(stage) is int and stage >= 0:
        done = stage + 1
    elif _trains_ahead(method, config):
        return {}
    else:
        done = progress.get("next_task")
    if done is None or done == 0:
        return {}
    if type(done) is not int or done < 0:
        raise ResultsError(f"{path}: its progress records {done!r} tasks trained; the checkpoint is damaged")
    return {"tasks_trained": done}


#: the built-in methods that train every task in the first turn (``Strategy.trains_ahead``), for checkpoints
#: written before they kept the stage their training reached (the strategies themselves are not imported here)
TRAINS_AHEAD = ("multitask",)


def _trains_ahead(method, config: dict) -> bool:
    """Whether the run of ``method`` (a method, ``a+b`` or a variant) under ``config`` trains every task in its first
    turn (:data:`TRAINS_AHEAD`); False where the stored config or method does not resolve."""
    from spikecl.config import experiment_from_dict, method_config
    from spikecl.errors import SpikeCLError
    from spikecl.recorded import recorded_as_now

    try:
        _, name = method_config(experiment_from_dict(recorded_as_now(config)), str(method))
    except SpikeCLError:
        return False
    return any(part in TRAINS_AHEAD for part in str(name).split("+"))


def config_json(spec: NetworkSpec) -> str:
    """The training config as JSON (stored with exported networks)."""
    return json.dumps(spec.config)
