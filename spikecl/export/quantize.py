"""Quantisation of a trained network to Loihi's fixed point (the integer model of Lava's ``Dense`` + ``LIF``).

Per layer one scale ``S`` maps float quantities to integers: a float current ``I`` becomes the synaptic activation
``a = S * I`` (Dense output), the membrane becomes ``v = 64 * S * mem`` (activations and thresholds are shifted left
by 6 bits inside the neuron), the threshold ``vth = round(S * threshold)`` and the bias ``bias_mant * 2**bias_exp =
64 * round(S * b)`` (netx's grid, exponent 6; with ``QuantConfig(exponents=True)`` ``64 * S * b`` rounded once to
the step of the smallest exponent that holds it). Weights are integer mantissas times ``2**weight_exp``:

    w_eff = mantissa * 2**weight_exp = W * S / Q          (Q = 2**input_bits - 1 for graded input, else 1)

Mantissas lie on Lava's grid for ``num_weight_bits`` (8 bits, mixed signs: even integers in [-256, 254]).
Conv layers have ``weight_exp = 0`` (Lava's fixed-point Conv ignores the exponent): their mantissas shrink instead
when the threshold needs a smaller scale.
Hidden LIF (snnTorch ``Leaky``, reset to zero): ``du = 4095`` (the current is this step's input), ``dv = round((1 -
beta) * 4096)``. The readout (non-resetting integrator) is a CUBA neuron whose *current* is the leaky membrane
(``du + 1 = round((1 - beta) * 4096)``) and whose voltage sums it (``dv = 0``, ``vth`` maximal: it spikes, and
resets to 0, only where the voltage reaches ``vth << 6``, just below the 24-bit top): at the last step
``v = 64 * S * sum_t mem[t]`` = T x the trained logits. Lava adds the readout's bias to ``v`` (T times), the float
readout to ``mem``, so the readout bias ``b`` is stored as the bias ``b * gain / T`` (rounded as above), with
``gain = sum_{t=1..T} (1 - beta**t) / (1 - beta)`` (:func:`readout_gain`). Every value is range-checked;
anything not representable raises a one-line :class:`ExportError` naming the layer and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikecl.errors import ExportError, check_type
from spikecl.export.spec import ArrayValued, ConvGeometry, LayerSpec, NetworkSpec, WeightShape, refuse_encoder
from spikecl.remedies import option

DECAY_UNITY = 4096           # du, dv are 12-bit fractions of 4096
DECAY_MAX = 4095
VTH_MAX = 2**17 - 1          # 17-bit threshold mantissa (shifted left by 6)
UV_LIMIT = 2**23             # u, v are 24-bit signed
ACT_SHIFT = 6                # activations and thresholds are MSB-aligned by 6 bits
BIAS_MANT_MAX = 2**12 - 1    # 13-bit signed mantissa
BIAS_EXP_MAX = 7
NETX_BIAS_EXP = 6            # lava-dl's netx applies every bias with exponent 6
WEIGHT_EXP_RANGE = (-8, 7)
DEFAULT_INPUT_BITS = 8       # graded input bits of a direct-encoded network when QuantConfig.input_bits is None


@dataclass(frozen=True)
class QuantConfig:
    """How to quantise. ``weight_bits``: synaptic mantissa bits (2..8). ``headroom``: hidden layers represent
    currents up to ``headroom x threshold`` before the 24-bit current wraps (so ``vth <= 2**17 / headroom``; lower
    when a large bias needs it).
    ``input_bits``: graded input message bits for the ``direct`` encoder (None: 8); other encoders present binary
    spikes and refuse a value.
    ``readout_range``: the largest ``|sum_t mem[t]|`` of the readout expected (float units); None = worst case
    from the weights (safe, coarser).
    ``exponents``: False (default) keeps every ``weight_exp`` at 0 and every bias at exponent 6 by folding the
    scale into the mantissas and thresholds, so lava-dl's netx loader runs the file exactly; True uses weight
    exponents and bias exponent 7 for more precision (such files run on spikecl's runner only)."""

    weight_bits: int = 8
    headroom: float = 8.0
    input_bits: int | None = None
    readout_range: float | None = None
    exponents: bool = False

    def __post_init__(self) -> None:
        for name in ("weight_bits", "input_bits"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise ExportError(f"{name} = {value!r}: expected an integer")
        for name in ("headroom", "readout_range"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
                raise ExportError(f"{name} = {value!r}: expected a number")
        if not isinstance(self.exponents, (bool, np.bool_)):
            raise ExportError(f"exponents = {self.exponents!r}: expected True or False")
        if not 2 <= self.weight_bits <= 8:
            raise ExportError(f"weight_bits = {self.weight_bits}: Loihi's mixed-sign synapses hold 2 to 8 bits")
        if not 1.0 <= self.headroom <= 2**17:
            raise ExportError(f"headroom = {self.headroom}: expected 1 .. 131072")
        if self.input_bits is not None and not 1 <= self.input_bits <= 16:
            raise ExportError(f"input_bits = {self.input_bits}: graded input spikes carry 1 to 16 bits")
        if self.readout_range is not None and not (math.isfinite(self.readout_range) and self.readout_range > 0):
            raise ExportError(f"readout_range = {self.readout_range}: expected a positive number")


@dataclass(frozen=True, eq=False)
class FixedLayer(WeightShape):
    """One Dense + LIF pair in Loihi fixed point.

    ``weight`` int32 [n_out, n_in] mantissas; ``bias_mant`` int32 [n_out]; ``scale``: activation units per float
    current unit (``S``); ``input_bits``: 0 when the layer receives binary spikes, else graded message bits.
    """

    name: str
    weight: np.ndarray
    weight_exp: int
    num_weight_bits: int
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: int
    scale: float
    input_bits: int = 0
    readout: bool = False
    conv: ConvGeometry | None = None


@dataclass(frozen=True, eq=False)
class FixedNetwork(ArrayValued):
    """A quantised network: fixed-point layers, how samples are presented, how the readout is decoded.

    Inputs are integers ``[T, B, n_inputs]``: binary spikes, or graded values ``round(x * input_scale)``.
    Logits ``[B, n_outputs]`` = readout voltage at the last step / (64 * S * T), for the sample's head.
    """

    layers: tuple[FixedLayer, ...]
    num_steps: int
    encoder: str
    input_bits: int
    n_outputs: int
    n_heads: int = 1
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)   # accuracies measured at export (float, reference)

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_in

    @property
    def input_scale(self) -> int:
        """Q: the integer an input of 1.0 becomes (1 for binary spikes)."""
        return 2**self.input_bits - 1 if self.input_bits else 1

    @property
    def readout(self) -> FixedLayer:
        return self.layers[-1]

    @property
    def headroom(self) -> float | None:
        """The headroom the hidden thresholds leave below the 24-bit current: 2^17 / the smallest hidden vth (None
        without hidden layers). Where the weights' mantissas capped vth, it exceeds ``--headroom``, and a
        ``--headroom`` below it changes nothing."""
        return self.headroom_at(range(len(self.layers) - 1))

    def headroom_at(self, layers) -> float | None:
        """The headroom in effect at the hidden ``layers`` (indices; the readout's is left out): 2^17 / their
        smallest vth, None for none. Of the layers whose currents wrapped, it is the one a ``--headroom`` must
        exceed (another hidden layer's mantissas may cap its vth far higher)."""
        hidden = [self.layers[k].vth for k in layers if k < len(self.layers) - 1]
        return (UV_LIMIT >> ACT_SHIFT) / min(hidden) if hidden else None


def weight_grid(weight_bits: int, mixed: bool) -> int:
    """Spacing of representable mantissas: Lava drops the low ``8 - weight_bits + mixed`` bits."""
    return 2 ** (8 - weight_bits + int(mixed))


def mantissa_limits(weight_bits: int, mixed: bool) -> tuple[int, int]:
    """(lowest, highest) mantissa Lava keeps unchanged (mixed 8-bit: -256, 254)."""
    g = weight_grid(weight_bits, mixed)
    high = (255 // g) * g
    low = -256 if mixed else -high
    return low, high


def lava_weights(mantissa: np.ndarray, weight_bits: int) -> np.ndarray:
    """What Lava's fixed-point Dense does to integer weights: clip by sign mode, drop the low bits (floor)."""
    w = np.asarray(mantissa, dtype=np.int64)
    mixed = bool((w > 0).any() and (w < 0).any())
    if mixed:
        w = np.clip(w, -256, 255)
    elif (w >= 0).all():
        w = np.clip(w, 0, 255)
    else:
        w = np.clip(w, -255, 0)
    shift = 8 - weight_bits + int(mixed)
    return (w >> shift) << shift


def _mantissa_scale(weight: np.ndarray, weight_bits: int) -> tuple[float, bool]:
    """Largest S_w such that round(W * S_w) fits the mantissa range, and whether the signs are mixed."""
    pos, neg = float(max(weight.max(), 0.0)), float(max(-weight.min(), 0.0))
    mixed = pos > 0 and neg > 0
    low, high = mantissa_limits(weight_bits, mixed)
    limits = [high / pos if pos > 0 else math.inf, -low / neg if neg > 0 else math.inf]
    return min(limits), mixed


def zero_weights_advice() -> str:
    """What to do where every weight of a layer rounds to 0 without a weight exponent, in the caller's spelling
    (:func:`spikecl.remedies.option`)."""
    return ("without a weight exponent (the threshold or readout range is too large for the weights); lower "
            f"{option('--input-bits')} or {option('--headroom')}, or keep weight exponents with "
            "QuantConfig(exponents=True) (Python API, spikecl's runner only)")


def _mantissas(name: str, weight: np.ndarray, s_w: float, weight_bits: int, mixed: bool,
               advice: str | None = None, graded: bool = False) -> np.ndarray:
    """Mantissas ``round(W * S_w)`` on Lava's grid; all zero is a one-line error ending in ``advice`` (None:
    :func:`zero_weights_advice`; ``graded``: the layer takes graded input, whose bits and the headroom also decide
    how large its mantissas are)."""
    g = weight_grid(weight_bits, mixed)
    low, high = mantissa_limits(weight_bits, mixed)
    m = np.clip(np.round(weight * s_w / g) * g, low, high).astype(np.int32)
    if not np.any(m):
        finer = weight_grid(8, mixed)
        if weight_bits < 8 and np.any(np.round(weight * s_w / finer)):
            raise ExportError(f"layer {name}: every weight rounds to 0 on the {weight_bits}-bit grid (steps of {g}); "
                              f"raise {option('--weight-bits')} (at 8 bits they do not)" + (
                                  f", or keep them and lower {option('--input-bits')} or {option('--headroom')} (the "
                                  "graded input's scale holds the mantissas small)" if graded else ""))
        raise ExportError(f"layer {name}: every weight rounds to 0 {advice or zero_weights_advice()}")
    if not np.array_equal(lava_weights(m, weight_bits), m):  # pragma: no cover - guards the grid arithmetic
        raise ExportError("internal: quantised mantissas are not preserved by Lava's weight truncation")
    return m


def _weight_exp(ideal: float) -> int:
    """``floor(log2(ideal))`` clipped to Loihi's weight exponent range."""
    e = math.floor(math.log2(ideal)) if ideal > 0 else WEIGHT_EXP_RANGE[1]
    return int(min(max(e, WEIGHT_EXP_RANGE[0]), WEIGHT_EXP_RANGE[1]))


def bias_exp_max(cfg: QuantConfig) -> int:
    """Largest bias exponent: 6 (netx's fixed exponent) unless ``cfg.exponents``."""
    return BIAS_EXP_MAX if cfg.exponents else NETX_BIAS_EXP


def _bias_total(bias: np.ndarray, scale: float, cfg: QuantConfig) -> np.ndarray:
    """The bias in voltage units that ``mant * 2**exp`` rounds (once) to its exponent's step: ``64 * round(S * b)``,
    on netx's grid of exponent 6, or ``64 * S * b`` where ``cfg.exponents`` lets smaller exponents hold more of it."""
    scaled = np.asarray(bias, dtype=np.float64) * scale
    return scaled * 2**ACT_SHIFT if cfg.exponents else np.round(scaled) * 2**ACT_SHIFT


def _bias_fits(bias: np.ndarray | None, scale: float, cfg: QuantConfig) -> bool:
    """Whether the bias at ``scale`` fits a 13-bit mantissa at the largest exponent ``cfg`` allows (or less)."""
    if bias is None or not np.any(bias):
        return True
    return bool(np.abs(np.round(_bias_total(bias, scale, cfg) / 2**bias_exp_max(cfg))).max() <= BIAS_MANT_MAX)


def _bias(name: str, bias: np.ndarray | None, scale: float, n_out: int, cfg: QuantConfig,
          trained: np.ndarray | None = None, advice: str = "lower the bias or the headroom") -> tuple[np.ndarray, int]:
    """Bias mantissa [n_out] and exponent: ``mant * 2**exp`` is :func:`_bias_total` rounded to the step of the
    smallest exponent up to :func:`bias_exp_max` whose mantissas fit 13 bits (voltage units). ``trained``: the bias
    the error names (default ``bias``); ``advice``: its remedy."""
    if bias is None or not np.any(bias):
        return np.zeros(n_out, dtype=np.int32), 0
    max_exp = bias_exp_max(cfg)
    total = _bias_total(bias, scale, cfg)
    for exp in range(max_exp + 1):
        mant = np.round(total / 2**exp)
        if np.abs(mant).max() <= BIAS_MANT_MAX:
            return mant.astype(np.int32), exp
    worst_index = int(np.argmax(np.abs(total)))
    worst = float(np.asarray(bias if trained is None else trained, dtype=np.float64)[worst_index])
    raise ExportError(f"layer {name}: bias {worst:g} needs {abs(total[worst_index]):.0f} > 4095 * 2**{max_exp} "
                      f"(13-bit mantissa, exponent 0..{max_exp}); {advice}")


def _check_weights(layer: LayerSpec) -> None:
    if layer.weight.ndim != (4 if layer.conv else 2):
        expected = "[C_out, C_in, k, k]" if layer.conv else "[n_out, n_in]"
        raise ExportError(f"layer {layer.name}: weight has shape {layer.weight.shape}; expected {expected}")
    if not np.any(layer.weight):
        raise ExportError(f"layer {layer.name}: all weights are zero")


def _hidden_decays(layer: LayerSpec) -> tuple[int, int]:
    if layer.reset != "zero":
        raise ExportError(f"layer {layer.name}: reset {layer.reset!r} is not representable (Loihi's LIF resets to "
                          "zero); train with network.reset = \"zero\"")
    dv = round((1.0 - layer.beta) * DECAY_UNITY)
    if not 0 <= dv <= DECAY_MAX:
        raise ExportError(f"layer {layer.name}: beta {layer.beta:g} gives dv = {dv}, outside 0..4095 (a voltage "
                          "fully reset every step is not representable)")
    return DECAY_MAX, dv


def _readout_decays(layer: LayerSpec) -> tuple[int, int]:
    du = round((1.0 - layer.beta) * DECAY_UNITY) - 1
    if not 0 <= du <= DECAY_MAX:
        raise ExportError(f"layer {layer.name}: readout beta {layer.beta:g} gives du = {du}, outside 0..4095 (a "
                          "current that never decays is not representable)")
    return du, 0


def quantize_hidden(layer: LayerSpec, cfg: QuantConfig, input_bits: int) -> FixedLayer:
    """A hidden LIF layer: vth as large as the headroom allows, weight mantissas at full precision."""
    _check_weights(layer)
    du, dv = _hidden_decays(layer)
    if not layer.threshold > 0:
        raise ExportError(f"layer {layer.name}: threshold {layer.threshold:g} must be positive")
    q = 2**input_bits - 1 if input_bits else 1
    s_w, mixed = _mantissa_scale(layer.weight, cfg.weight_bits)
    vth_target = min(VTH_MAX, (UV_LIMIT >> ACT_SHIFT) / cfg.headroom)
    max_bias_exp = bias_exp_max(cfg)
    bias_bound = math.inf
    if layer.bias is not None and np.any(layer.bias):  # the largest bias must fit 13 bits << 6 or 7 (scale down)
        bias_bound = layer.threshold * BIAS_MANT_MAX * 2**max_bias_exp / (2**ACT_SHIFT * np.abs(layer.bias).max())
        vth_target = min(vth_target, bias_bound)
    ideal = vth_target / (layer.threshold * s_w * q)
    e = _weight_exp(ideal)
    if e > 0:  # positive exponents only to lift a tiny threshold to vth >= 64 (keeps files netx-compatible)
        e = min(e, max(0, math.ceil(math.log2(64 / (layer.threshold * s_w * q)))))
    if layer.conv is not None or not cfg.exponents:  # Lava's Conv and netx apply no exponent: shrink mantissas
        s_w, e = min(s_w, ideal * s_w), 0
    elif ideal < 2.0**e:                             # the exponent stops at -8: the mantissas shrink for the rest
        s_w *= ideal / 2.0**e
    scale = s_w * q * 2.0**e
    vth = round(layer.threshold * scale)
    if vth > VTH_MAX:
        raise ExportError(f"layer {layer.name}: threshold {layer.threshold:g} needs vth = {vth} > 131071 (17 bits) "
                          "even at weight_exp -8")
    if vth < 1:
        raise ExportError(f"layer {layer.name}: threshold {layer.threshold:g} rounds to vth = 0 (weights too large "
                          "relative to the threshold)")
    bias_mant, bias_exp = _bias(layer.name, layer.bias, scale, layer.n_out, cfg)
    advice = ("(Lava's Conv applies no weight exponent; the threshold is too large for the weights); lower "
              f"{option('--input-bits')} or {option('--headroom')}" if layer.conv is not None
              else (f"without a weight exponent (its bias, up to {np.abs(layer.bias).max() / layer.threshold:.3g} "
                    f"thresholds a step, e.g. a folded stream.standardize, bounds vth to {bias_bound:.0f}); lower "
                    f"{option('--input-bits')}, or keep weight exponents with QuantConfig(exponents=True) (Python "
                    "API, spikecl's runner only)") if bias_bound <= vth_target and e > WEIGHT_EXP_RANGE[0]
              else None if e > WEIGHT_EXP_RANGE[0]
              else "even at weight_exp -8 (the weights are too small for the threshold); lower "
                   f"{option('--headroom')} or {option('--input-bits')}")
    mantissas = _mantissas(layer.name, layer.weight, s_w, cfg.weight_bits, mixed, advice, graded=bool(input_bits))
    return FixedLayer(layer.name, mantissas, e, cfg.weight_bits, du, dv, vth, bias_mant, bias_exp, scale, input_bits,
                      conv=layer.conv)


def readout_gain(beta: float, num_steps: int) -> float:
    """``sum_t mem[t]`` of the readout integrator driven by a constant input of 1 for T steps:
    ``sum_{t=1..T} (1 - beta**t) / (1 - beta)`` (T when ``beta >= 1``)."""
    if beta >= 1:
        return float(num_steps)
    return float(sum((1 - beta**t) / (1 - beta) for t in range(1, num_steps + 1)))


def worst_case_readout_range(layer: LayerSpec, num_steps: int) -> float:
    """Largest possible ``|sum_t mem[t]|`` of the readout when every input spikes at every step."""
    drive = np.abs(layer.weight).sum(axis=1)
    if layer.bias is not None:
        drive = drive + np.abs(layer.bias)
    return float(drive.max() * readout_gain(layer.beta, num_steps))


def _readout_scale(target: float, s_w: float, q: int, cfg: QuantConfig) -> tuple[float, int, float]:
    """(mantissa scale S_w, weight_exp, S) of a readout whose scale ``S`` is at most ``target`` (weights allowing)."""
    ideal = target / (s_w * q)
    e = min(_weight_exp(ideal), 0)               # a larger exponent adds no precision here
    if not cfg.exponents:
        s_w, e = min(s_w, target / q), 0
    elif ideal < 2.0**e:                         # the exponent stops at -8: the mantissas shrink for the rest
        s_w *= ideal / 2.0**e
    return s_w, e, s_w * q * 2.0**e


def quantize_readout(layer: LayerSpec, cfg: QuantConfig, input_bits: int, num_steps: int) -> FixedLayer:
    """The readout integrator: its summed voltage stays below 2**22 for ``|sum mem| <= readout_range``; the scale
    is lowered further when a large bias needs it (a smaller voltage, never a wrap)."""
    _check_weights(layer)
    du, dv = _readout_decays(layer)
    q = 2**input_bits - 1 if input_bits else 1
    s_w0, mixed = _mantissa_scale(layer.weight, cfg.weight_bits)
    span = cfg.readout_range or worst_case_readout_range(layer, num_steps)
    target = (UV_LIMIT // 2) / (2**ACT_SHIFT * span)
    # Lava adds the bias to the summed voltage v at each of the T steps (T x bias), while the float readout adds b
    # to the leaky membrane, whose sum over the steps holds b x readout_gain: scale the bias by gain / T.
    bias = None if layer.bias is None else layer.bias * (readout_gain(layer.beta, num_steps) / num_steps)
    max_bias_exp = bias_exp_max(cfg)
    s_w, e, scale = _readout_scale(target, s_w0, q, cfg)
    exponent = "even at weight_exp -8" if cfg.exponents else "without a weight exponent"
    advice = (f"{exponent} (the readout range {span:.3g}, the largest summed membrane over the "
              f"{num_steps} steps, leaves too little of the 24-bit voltage for weights up to "
              f"{float(np.abs(layer.weight).max()):.3g}); "
              + (f"lower {option('--input-bits')}, " if input_bits else "")
              + "train with fewer time steps" + (" or" if cfg.exponents else ",") + " narrow the range (it comes "
                f"from {option('--calibration-samples')}, or from the weights' worst case without them)"
              + ("" if cfg.exponents else " or keep weight exponents with QuantConfig(exponents=True) (Python API, "
                 "spikecl's runner only)"))
    if not _bias_fits(bias, scale, cfg):   # cap the scale so the largest bias fits 13 bits << max_bias_exp
        target = min(target, BIAS_MANT_MAX * 2**max_bias_exp / (2**ACT_SHIFT * np.abs(bias).max()))
        s_w, e, scale = _readout_scale(target, s_w0, q, cfg)
        worst = float(layer.bias[np.argmax(np.abs(layer.bias))])
        advice = (f"{exponent} (the readout bias {worst:g} is too large beside the weights); retrain with a "
                  "smaller readout bias")
    bias_mant, bias_exp = _bias(layer.name, bias, scale, layer.n_out, cfg, trained=layer.bias,
                                advice="too large beside the weights even at weight_exp -8; retrain with a smaller "
                                       "readout bias")
    mantissas = _mantissas(layer.name, layer.weight, s_w, cfg.weight_bits, mixed, advice)
    return FixedLayer(layer.name, mantissas, e, cfg.weight_bits, du, dv, VTH_MAX, bias_mant, bias_exp, scale,
                      input_bits, readout=True)


def check_encoder(spec: NetworkSpec, cfg: QuantConfig | None = None) -> None:
    """A one-line ExportError unless ``spec``'s input encoder is one Loihi can be presented with (and, with ``cfg``,
    takes its ``input_bits``: graded input belongs to the ``direct`` encoder only)."""
    refuse_encoder(spec.encoder)
    if cfg is not None and cfg.input_bits is not None and spec.encoder != "direct":
        raise ExportError(f"{option('--input-bits')} {cfg.input_bits}: graded input belongs to the 'direct' encoder; "
                          f"this network's encoder {spec.encoder!r} presents binary spikes (drop "
                          f"{option('--input-bits')})")


def quantize(spec: NetworkSpec, cfg: QuantConfig = QuantConfig()) -> FixedNetwork:
    """Quantise every layer of ``spec``; the first layer takes graded input for the ``direct`` encoder."""
    check_type(spec, NetworkSpec, "quantize: spec", "load_trained(path) gives one")
    check_type(cfg, QuantConfig, "quantize: cfg", "QuantConfig(weight_bits=8), say")
    check_encoder(spec, cfg)
    if spec.encoder == "direct":
        input_bits = DEFAULT_INPUT_BITS if cfg.input_bits is None else cfg.input_bits
    else:
        input_bits = 0
    layers = []
    bits = input_bits
    for layer in spec.hidden_as_run:
        layers.append(quantize_hidden(layer, cfg, bits))
        bits = 0
    layers.append(quantize_readout(spec.readout, cfg, bits, spec.num_steps))
    return FixedNetwork(tuple(layers), spec.num_steps, spec.encoder, input_bits, spec.n_outputs, spec.n_heads,
                        spec.config)


def effective_weights(layer: FixedLayer) -> np.ndarray:
    """Float weights the fixed-point layer implements, ``mantissa * 2**weight_exp * Q / S`` ([n_out, n_in])."""
    q = 2**layer.input_bits - 1 if layer.input_bits else 1
    return layer.weight.astype(np.float64) * 2.0**layer.weight_exp * q / layer.scale
