"""A spiking realisation of the Sparsey coder's recognition mode: each CM is a winner-take-all group of K leaky
integrate-and-fire neurons (snnTorch ``Leaky``; torch is imported when this module is used).

Every cell i receives a constant current ``I_i = i_min + (i_max − i_min) · V_i`` (V = local support, in [0, 1])
for ``num_steps`` steps; its membrane follows ``m_t = β m_{t−1} + I_i`` and it spikes when ``m_t > threshold``.
A larger current reaches the threshold sooner and, on the same step, with a higher membrane, so the first spike in a
CM comes from the max-V cell; that spike inhibits the rest of the group (lateral inhibition), which is the one
winner per CM. Among cells that cross on the same step the highest membrane wins (equal V: the lowest index, as
``argmax``). ``i_min`` is just above the rheobase ``(1 − β) · threshold``, so even V = 0 cells fire within
``num_steps`` and a CM always has a winner. The result equals the coder's max-V codes exactly
(:meth:`SpikingSparsey.encode` vs :meth:`SparseyCoder.encode`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikecl.config import option
from spikecl.errors import ConfigError, require
from spikecl.sdr.sparsey import SparseyCoder


@dataclass
class SpikingWTAConfig:
    """LIF winner-take-all groups (currents in units of the threshold per step)."""

    num_steps: int = option(64, low=1, high=100000, doc="simulation steps per item")
    beta: float = option(0.9, low=0.0, high=0.9999, doc="membrane decay per step")
    threshold: float = option(1.0, low=1e-6)
    rheobase_margin: float = option(1.05, low=1.0001, high=100.0, doc="i_min = margin · (1 − β) · threshold")
    i_max: float = option(1.0, low=1e-6, doc="current of a V = 1 cell")
    device: str = option("cpu", choices=("cpu", "cuda"))

    @property
    def i_min(self) -> float:
        return self.rheobase_margin * (1.0 - self.beta) * self.threshold

    def validate(self) -> "SpikingWTAConfig":
        if self.i_max <= self.i_min:
            raise ConfigError(f"i_max {self.i_max} must exceed i_min {self.i_min:.4g} (the V = 0 current)")
        steps = math.log(1.0 - (1.0 - self.beta) * self.threshold / self.i_min) / math.log(self.beta)
        if steps + 1 > self.num_steps:
            raise ConfigError(f"num_steps {self.num_steps} is too short: a V = 0 cell needs {math.ceil(steps)} "
                              f"steps to fire; raise num_steps or rheobase_margin")
        return self


def spiking_winners(v: np.ndarray, cfg: SpikingWTAConfig) -> np.ndarray:
    """Winners int64 [..., Q] of LIF WTA groups driven by local support ``v`` [..., Q, K] (see module doc)."""
    torch = require("torch", "torch")
    snn = require("snntorch", "torch")
    cfg.validate()
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda': no CUDA GPU is available; use device = \"cpu\"")
    device = torch.device(cfg.device)
    shape = v.shape
    current = torch.as_tensor(np.ascontiguousarray(v, dtype=np.float32), device=device).reshape(-1, shape[-1])
    current = cfg.i_min + (cfg.i_max - cfg.i_min) * current
    lif = snn.Leaky(beta=cfg.beta, threshold=cfg.threshold, reset_mechanism="none").to(device)
    mem = torch.zeros_like(current)
    winners = torch.full(current.shape[:1], -1, dtype=torch.int64, device=device)
    inhibited = torch.zeros(current.shape[:1], dtype=torch.bool, device=device)
    with torch.no_grad():
        for _ in range(cfg.num_steps):
            drive = torch.where(inhibited[:, None], torch.zeros_like(current), current)
            spk, mem = lif(drive, mem)
            first = (spk.sum(dim=1) > 0) & ~inhibited
            if first.any():
                best = torch.where(spk > 0, mem, torch.full_like(mem, -torch.inf)).argmax(dim=1)
                winners = torch.where(first, best, winners)
                inhibited |= first
                mem = torch.where(inhibited[:, None], torch.zeros_like(mem), mem)
            if bool(inhibited.all()):
                break
    return winners.reshape(shape[:-1]).cpu().numpy()


class SpikingSparsey:
    """Recognition with a trained :class:`SparseyCoder` where every CM's choice is made by LIF WTA groups."""

    def __init__(self, coder: SparseyCoder, cfg: SpikingWTAConfig | None = None):
        self.coder, self.cfg = coder, (cfg or SpikingWTAConfig()).validate()

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Code bits bool [B, n_code_bits] of inputs [B, N] (as :meth:`SparseyCoder.encode`)."""
        codes, _ = self.coder._run(self.coder.binarise(x), learn=False, use_prev=False,
                                   choose=lambda v: spiking_winners(v, self.cfg))
        return self.coder.code_bits(codes)
