"""Sparse-code baselines beside the Sparsey coder (numpy, one pass over the data).

* :class:`SpatialPooler` — an HTM-spatial-pooler-style k-winners-take-all layer: columns with proximal synapses
  (a random potential pool; permanence ≥ ``connected`` = connected), overlap = connected synapses on active inputs,
  boosting ``exp(strength · (density − duty cycle))``, k winners; winners raise the permanences of their active
  inputs and lower the others (within the pool).
* :class:`FlyHash` (from :mod:`spikecl.data.codes`, where the fixed codes live) — the fly-olfaction hash: a fixed
  sparse binary random projection followed by k-winners; no learning. A control for similarity-preservation
  measurements.

Inputs are binary ``[B, N]``; codes are bool ``[B, n_columns]`` with exactly k active bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikecl.data.codes import FlyHash, FlyHashConfig, binary_inputs, kwta
from spikecl.errors import ConfigError, ShapeError
from spikecl.options import check_fields, option
from spikecl.progress import progress_range
from spikecl.sdr.sdr import check_binary, check_int

__all__ = ["FlyHash", "FlyHashConfig", "SpatialPooler", "SpatialPoolerConfig", "SuccessorMemory", "kwta"]


@dataclass
class SpatialPoolerConfig:
    """Spatial-pooler parameters (defaults after htm.core's MNIST example, scaled to one pass)."""

    n_columns: int = option(1024, low=2, high=1 << 20, doc="columns (code bits)")
    sparsity: float = option(0.02, low=1e-4, high=0.5, doc="fraction of columns active per input (k / n_columns)")
    potential_frac: float = option(0.5, low=0.01, high=1.0, doc="fraction of inputs in each column's pool")
    connected: float = option(0.5, low=0.0, high=1.0, doc="permanence threshold of a connected synapse")
    perm_inc: float = option(0.05, low=0.0, high=1.0, doc="permanence increase of a winner's active synapses")
    perm_dec: float = option(0.01, low=0.0, high=1.0, doc="permanence decrease of a winner's inactive synapses")
    boost_strength: float = option(3.0, low=0.0, high=100.0, doc="boosting exp(strength · (density − duty))")
    duty_period: int = option(1000, low=1, doc="items over which the duty cycle averages")
    seed: int = option(0, low=0, doc="seed of the potential pools and initial permanences")

    def __post_init__(self):
        check_fields(self)


class SpatialPooler:
    """HTM-style spatial pooler over ``n_inputs`` binary inputs; ``learn`` stores items one at a time."""

    def __init__(self, cfg: SpatialPoolerConfig, n_inputs: int):
        self.cfg, self.n_inputs = cfg, check_int(n_inputs, "n_inputs", 1)
        rng = np.random.default_rng(cfg.seed)
        self.pool = (rng.random((n_inputs, cfg.n_columns)) < cfg.potential_frac).astype(np.float32)
        perm = cfg.connected + rng.normal(0.0, 0.1, (n_inputs, cfg.n_columns))
        self.perm = (np.clip(perm, 0.0, 1.0) * self.pool).astype(np.float32)
        self.duty = np.full(cfg.n_columns, cfg.sparsity, np.float32)
        self.k = max(1, int(round(cfg.sparsity * cfg.n_columns)))

    def overlaps(self, x: np.ndarray) -> np.ndarray:
        """Connected synapses on active inputs, [B, n_columns] (float32); a synapse outside a column's potential pool
        is never connected, whatever ``connected`` (its permanence is 0, which ``connected = 0`` would count)."""
        return x @ ((self.perm >= self.cfg.connected) & (self.pool > 0)).astype(np.float32)

    def boost(self) -> np.ndarray:
        return np.exp(self.cfg.boost_strength * (self.cfg.sparsity - self.duty))

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes of a batch without learning (boosting as it stands): bool [B, n_columns]."""
        x = binary_inputs(x, self.n_inputs, binary=True)
        return kwta(self.overlaps(x) * self.boost(), self.k)

    def learn(self, x: np.ndarray, progress: bool = False) -> np.ndarray:
        """Store items [B, N] one after another (one pass): their codes at learning time, bool [B, n_columns]."""
        x = binary_inputs(x, self.n_inputs, binary=True)
        cfg = self.cfg
        codes = np.zeros((len(x), cfg.n_columns), bool)
        for i in progress_range(len(x), progress, "spatial pooler"):
            code = kwta(self.overlaps(x[i:i + 1]) * self.boost(), self.k)[0]
            win = np.flatnonzero(code)
            delta = np.where(x[i][:, None] > 0, cfg.perm_inc, -cfg.perm_dec) * self.pool[:, win]
            self.perm[:, win] = np.clip(self.perm[:, win] + delta, 0.0, 1.0)
            self.duty += (code - self.duty) / cfg.duty_period
            codes[i] = code
        return codes


class SuccessorMemory:
    """The sequence control for fixed codes: a clipped Hebbian (Willshaw) hetero-associative memory of transitions
    between consecutive codes, ``W |= c_t ⊗ c_{t+1}`` (bool [n_bits, n_bits]); recall follows ``c_{t+1} =
    k-WTA(c_t · W)`` with ``k`` active bits (ties: the lower index)."""

    def __init__(self, n_bits: int, k: int):
        n_bits = check_int(n_bits, "n_bits", 1)
        self.w = np.zeros((n_bits, n_bits), bool)
        self.k = check_int(k, "k", 1, n_bits)

    def _codes(self, codes: np.ndarray, name: str) -> np.ndarray:
        """``codes`` as bool [T, n_bits] (T >= 1), else a one-line ShapeError."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != len(self.w) or not len(codes):
            raise ShapeError(f"{name} must be codes [T, {len(self.w)}] with T >= 1, got shape {codes.shape}")
        return check_binary(codes, name).astype(bool)

    def store(self, codes: np.ndarray) -> None:
        """Store one sequence of codes bool [T, n_bits] (its T − 1 transitions)."""
        codes = self._codes(codes, "codes")
        for a, b in zip(codes[:-1], codes[1:]):
            self.w[np.ix_(a, b)] = True

    def recall(self, cue: np.ndarray, length: int) -> np.ndarray:
        """Codes bool [length, n_bits]: the cue's codes [T0, n_bits], then each next code from the previous one."""
        out = list(self._codes(cue, "cue"))
        length = check_int(length, "recall length", 1)
        if length < len(out):
            raise ConfigError(f"recall length {length} is shorter than the cue ({len(out)} frames)")
        while len(out) < length:
            out.append(kwta(out[-1][None].astype(np.float32) @ self.w.astype(np.float32), self.k)[0])
        return np.stack(out[:length])
