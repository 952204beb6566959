"""The dense weights lava-dl's netx loader makes Lava run, for checking that a netx file runs exactly there.

lava-dl 0.6's ``netx.hdf5.Network`` does not use a dense layer's stored mantissas as they are: it rescales them to
fill Loihi's 8-bit synapse (``netx.utils.optimize_weight_bits``) and passes the rescaled weights, a bit count and
an exponent to Lava's ``Dense``, which clips and truncates them to that bit count by a sign rule of its own
(``lava.utils.weightutils``). A layer without positive weights whose smallest weight is a power of two comes out
changed: netx scales that weight to -256, which Dense (inhibitory: magnitudes up to 255) clips to -255 and then
truncates to the bit count netx derived, so the layer runs with other weights. This module follows those steps
(their semantics as documented and observed; tests/test_lavadl.py checks it against lava-dl 0.6 and lava-nc 0.10
on random matrices of every sign pattern: it flags exactly those that change) so that
:func:`spikecl.export.netx.lava_dl_refusal` can refuse such a file instead of marking it runnable there.
"""

from __future__ import annotations

import math

import numpy as np

#: Loihi's synaptic weight: 8 bits and a sign
WEIGHT_BITS = 8


def _netx_rescale(weight: np.ndarray) -> tuple[int, int] | None:
    """(left shift, weight bits) lava-dl's netx derives for integer ``weight``; None for an all-zero one."""
    hi, lo = int(weight.max()), int(weight.min())
    if hi == lo == 0:
        return None
    signed = not (hi < 0 or lo >= 0)                        # netx: mixed unless all < 0 or all >= 0
    if hi < 0:
        scale = -2.0**WEIGHT_BITS / lo
    elif lo >= 0:
        scale = (2.0**WEIGHT_BITS - 1) / hi
    else:
        scale = min(127 / hi if hi > 0 else math.inf, -128 / lo)
    shift = math.floor(math.log2(scale)) + signed
    exact = next((n for n in range(WEIGHT_BITS, 0, -1) if not np.any(weight % 2**n)), 0) - signed
    return shift, WEIGHT_BITS - shift - exact


def lava_dl_dense_mismatch(weight: np.ndarray) -> int:
    """The largest difference, in mantissa units of ``weight`` [n_out, n_in] (integers at exponent 0), between
    the weights a dense layer holds and those lava-dl's netx loader and Lava's ``Dense`` would apply; 0 where it
    runs exactly, -1 where the rescaled weights leave Loihi's synapse altogether."""
    w = np.asarray(weight, dtype=np.int64)
    derived = _netx_rescale(w)
    if derived is None:
        return 0
    shift, bits = derived
    if shift < 0:
        return -1
    scaled = w << shift
    inhibitory, mixed = scaled.max() <= 0, scaled.min() < 0 < scaled.max()    # Dense's own sign rule
    cut = WEIGHT_BITS - bits + int(mixed)
    if cut < 0:
        return -1
    v = -scaled if inhibitory else scaled
    v = np.clip(v, -(2**WEIGHT_BITS) if mixed else 0, 2**WEIGHT_BITS - 1)
    v = (v >> cut) << cut
    applied = -v if inhibitory else v
    diff = np.abs(applied - scaled)
    return int(math.ceil(diff.max() / 2**shift)) if diff.size else 0
