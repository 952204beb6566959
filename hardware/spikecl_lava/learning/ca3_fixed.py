"""The CA3 plastic projections on Lava's fixed-point (bit-approximate) learning engine, as a chip would run them.

Stock ``LearningDense`` with its ``fixed_pt`` model (``PyLearningDenseModelBitApproximate``), excitatory, 8-bit
weights: ``w_max`` is 255 weight units (``w_max / 255`` nA each). Traces are 7-bit integers (at most 127); an
impulse of 127.5 (its half unit added stochastically) scaled by 2 makes ``A = w_max``::

    dw = -2^8 * x0 * y0  +  2 * x1 * y0  -  2 * y1 * x0     x1, y1: impulse 127.5 * A / w_max, tau 3, t_epoch = 1

The first product removes the same step's pre impulse from the potentiation (the float rule's ``x2`` "instant" trace
needs a time constant below one step, which an integer tau cannot give; this is exact up to the impulse's stochastic
half unit, and only where A+ = w_max, so other amplitudes are refused). A trace cannot exceed its 7-bit maximum, one
full impulse: where the float rule's traces add up (a second spike within a few tau), the fixed trace stays at 127,
so all-pairs STDP becomes nearest-spike pairing, and a same-step pair after an earlier spike takes off more than
that step's impulse; both change learned weights (docs/ca3.md). The engine sums the products in order in a 16-bit
accumulator (weights shifted left by 7) that saturates after each, so the potentiation is clipped at 255.99 units
before the depression is subtracted, as the port clips. Against the float port
(:mod:`spikecl_lava.learning.ca3_stdp`) this keeps the engine's stock transmission order (weights sent before the
step's learning), decays traces and rounds weight updates stochastically (seeded: runs repeat), and quantises the
weights to 8 bits. The cells stay spikecl's float cells, which take the summed weight units through their plastic
input scaled by ``w_max / 255``.
"""

from __future__ import annotations

import numpy as np

from spikecl.errors import ConfigError

DW = "-2^8 * x0 * y0 + 2 * x1 * y0 - 2 * y1 * x0"
WEIGHT_UNITS = 255          # w_max in weight units (8-bit excitatory weights)
MAX_IMPULSE = 127.5         # 7-bit trace: 127 plus a stochastically added half


def fixed_rule(rule: dict, seed: int = 0):
    """The fixed-point rule for a plastic projection's file attributes ``rule`` (amplitudes up to ``w_max``,
    whole-step time constants, ``w_min = 0``)."""
    from lava.magma.core.learning.learning_rule import Loihi2FLearningRule

    w_max = rule["w_max_nA"]
    if not w_max > 0 or rule["a_plus_nA"] != w_max:       # DW's -2^8 x0 y0 takes off one full A+ impulse
        raise ConfigError(f"the fixed-point rule needs a_plus_nA = w_max_nA > 0, got {rule['a_plus_nA']:g} and "
                          f"{w_max:g}")
    taus = [rule[k] for k in ("tau_plus_ms", "tau_minus_ms")]
    if rule["w_min_nA"] != 0 or rule["a_minus_nA"] > w_max or not all(float(t).is_integer() for t in taus):
        raise ConfigError("the fixed-point rule needs w_min = 0, amplitudes <= w_max and whole-ms time constants")
    # A / w_max of at most 1, where a rounding (127.5 * 0.7 / 0.7 = 127.50000000000001) must not pass the full impulse
    impulses = [min(MAX_IMPULSE, MAX_IMPULSE * rule[k] / w_max) for k in ("a_plus_nA", "a_minus_nA")]
    return Loihi2FLearningRule(dw=DW, x1_impulse=impulses[0], x1_tau=int(taus[0]), y1_impulse=impulses[1],
                               y1_tau=int(taus[1]), t_epoch=1, rng_seed=seed)


def fixed_plastic(w_init_nA: np.ndarray, rule: dict, name: str):
    """A stock ``LearningDense`` (weights ``[post, pre]`` in weight units) and the nA per weight unit."""
    from lava.proc.dense.process import LearningDense
    from lava.utils.weightutils import SignMode

    unit = rule["w_max_nA"] / WEIGHT_UNITS
    weights = np.round(w_init_nA / unit)
    return LearningDense(weights=weights, learning_rule=fixed_rule(rule), sign_mode=SignMode.EXCITATORY,
                         num_weight_bits=8, name=name), unit


def fixed_models() -> dict:
    """The run configuration's exception map: ``LearningDense`` on its fixed-point model."""
    from lava.proc.dense.models import PyLearningDenseModelBitApproximate
    from lava.proc.dense.process import LearningDense

    return {LearningDense: PyLearningDenseModelBitApproximate}
