"""Fixed sparse input codes (numpy, no learning): k-winners-take-all and the fly hash.

* :func:`kwta` — the k largest values of every row win.
* :class:`FlyHash` — the fly-olfaction hash (Dasgupta et al. 2017): a fixed sparse binary random projection (each
  output samples a fraction of the inputs) followed by k-winners.

Inputs are ``[B, N]``; codes are bool ``[B, n_outputs]`` with exactly k active bits. Shared by the continual streams
(:func:`spikecl.data.streams.code_stream`) and the SDR kind, which measures the fly hash beside its coders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikecl.errors import ConfigError, ShapeError
from spikecl.options import check_fields, check_value, option


def kwta(values: np.ndarray, k: int) -> np.ndarray:
    """k-winners-take-all along the last axis: bool of ``values``' shape with the k largest set per row (ties go to
    the lower index)."""
    values = np.asarray(values)
    if not 0 < k <= values.shape[-1]:
        raise ShapeError(f"k = {k} winners out of {values.shape[-1]} units is impossible")
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ShapeError("kwta: the values hold NaN, which no winner can be told apart from")
    order = np.argsort(-values, axis=-1, kind="stable")[..., :k]
    out = np.zeros(values.shape, dtype=bool)
    np.put_along_axis(out, order, True, axis=-1)
    return out


def binary_inputs(x: np.ndarray, n_inputs: int, binary: bool = False) -> np.ndarray:
    """``x`` as float32 ``[B, n_inputs]`` of finite real numbers (``binary``: 0 or 1 only); anything else is a
    one-line :class:`ShapeError`."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != n_inputs:
        raise ShapeError(f"inputs must be [B, {n_inputs}], got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise ShapeError(f"inputs must be numbers, got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ShapeError("inputs contain NaN or infinity")
    if binary and x.dtype != bool and x.size and not ((x == 0) | (x == 1)).all():
        raise ShapeError(f"inputs must be binary (bool or 0/1), got values in [{x.min():g}, {x.max():g}]")
    return x.astype(np.float32)


#: the most Kenyon cells (code bits) a fly hash has
MAX_OUTPUTS = 1 << 20


@dataclass
class FlyHashConfig:
    """Fly-hash parameters: ``n_outputs`` Kenyon cells each sampling ``sample_frac`` of the inputs; top k win."""

    n_outputs: int = option(1024, low=2, high=MAX_OUTPUTS, doc="Kenyon cells (code bits)")
    sparsity: float = option(0.05, low=1e-4, high=0.5, doc="fraction of outputs active (k / n_outputs)")
    sample_frac: float = option(0.1, low=1e-4, high=1.0, doc="fraction of inputs each output samples")
    seed: int = option(0, low=0, doc="seed of the random projection")

    def __post_init__(self):
        check_fields(self)


class FlyHash:
    """Sparse binary random projection + k-winners (no learning); each output samples ``sample_frac · n_inputs``
    inputs on average, which must be at least one (else most outputs see nothing and every input gets one code)."""

    def __init__(self, cfg: FlyHashConfig, n_inputs: int):
        n_inputs = check_value(n_inputs, int, "fly hash n_inputs")
        if n_inputs < 1:
            raise ConfigError(f"fly hash n_inputs: expected at least one input, got {n_inputs}")
        if cfg.sample_frac < 1 / n_inputs:
            raise ConfigError(f"fly hash: sample_frac {cfg.sample_frac:g} of {n_inputs} inputs samples fewer than one "
                              f"input per output; it must be at least 1/{n_inputs}")
        self.cfg, self.n_inputs = cfg, n_inputs
        rng = np.random.default_rng(cfg.seed)
        self.projection = (rng.random((n_inputs, cfg.n_outputs)) < cfg.sample_frac).astype(np.float32)
        self.k = max(1, int(round(cfg.sparsity * cfg.n_outputs)))

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes bool [B, n_outputs] of inputs [B, N]."""
        return kwta(binary_inputs(x, self.n_inputs) @ self.projection, self.k)
