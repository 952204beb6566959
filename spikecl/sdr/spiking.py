"""A spiking realisation of the Sparsey coder: each CM is a winner-take-all group of K leaky integrate-and-fire
neurons (snnTorch ``Leaky``; torch is imported when this module is used), and learning is a pre × post spike
coincidence rule.

**Code selection.** Every cell i receives a constant current ``I_i = i_min + (i_max − i_min) · s_i / max_CM s``
(divisive normalisation within the group) for ``num_steps`` steps, where s is the cell's score: the local support V
when recognising, and when learning the exponential-race score μ_i / E_i of the CSA (:func:`~spikecl.sdr.sparsey.
race_scores`: E_i is the cell's exponential waiting-time noise, μ_i its familiarity-contingent win weight). Its
membrane follows ``m_t = β m_{t−1} + I_i`` and it spikes when ``m_t > threshold``. A larger current reaches the
threshold sooner and, on the same step, with a higher membrane, so the first spike in a CM comes from the cell with
the largest score; that spike inhibits the rest of the group (lateral inhibition), which is the one winner per CM.
Among cells that cross on the same step the highest membrane wins (equal scores: the lowest index, as ``argmax``).
``i_min`` is just above the rheobase ``(1 − β) · threshold``, so even s = 0 cells fire within ``num_steps`` and a
CM always has a winner. Currents and membranes are float64, so distinct race scores never tie.

**Learning.** Each group emits exactly one spike, from its winner. :func:`spike_coincidence` updates the weights
from that post-synaptic spike and the afferents' spikes of the frame: ``w ← max(w, w_max · pre ⊗ post)`` (after the
optional decay ``w ← max(0, w − decay · (1 − pre) ⊗ post)``), a binary Hebbian coincidence rule.

With the same seed, :meth:`SpikingSparsey.learn_all` stores items with exactly the codes and weights of
:meth:`SparseyCoder.learn_all`, and :meth:`SpikingSparsey.encode` equals :meth:`SparseyCoder.encode`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from spikecl.errors import ConfigError, require
from spikecl.options import check_fields, option
from spikecl.sdr.sparsey import MacConfig, SparseyCoder


@dataclass
class SpikingWTAConfig:
    """LIF winner-take-all groups (currents in units of the threshold per step)."""

    num_steps: int = option(64, low=1, high=100000, doc="simulation steps per item")
    beta: float = option(0.9, low=0.0, high=0.9999, doc="membrane decay per step")
    threshold: float = option(1.0, low=1e-6, doc="membrane potential at which a cell spikes")
    rheobase_margin: float = option(1.05, low=1.0001, high=100.0, doc="i_min = margin · (1 − β) · threshold")
    i_max: float = option(1.0, low=1e-6, doc="current of a V = 1 cell")
    device: str = option("cpu", choices=("cpu", "cuda"), doc="torch device the groups are simulated on")

    @property
    def i_min(self) -> float:
        return self.rheobase_margin * (1.0 - self.beta) * self.threshold

    def __post_init__(self):
        self.validate()

    def validate(self) -> "SpikingWTAConfig":
        """Every field's type and range, and currents that make every cell fire within ``num_steps``; a one-line
        ConfigError naming the first problem."""
        check_fields(self)
        if self.i_max <= self.i_min:
            raise ConfigError(f"i_max {self.i_max} must exceed i_min {self.i_min:.4g} (the V = 0 current)")
        if first_spike_step(self.beta, self.threshold, self.i_min, self.num_steps) is None:
            steps = math.log(1.0 - (1.0 - self.beta) * self.threshold / self.i_min) / math.log(self.beta)
            needed = first_spike_step(self.beta, self.threshold, self.i_min, math.floor(steps) + 2)
            raise ConfigError(f"num_steps {self.num_steps} is too short: a V = 0 cell needs "
                              f"{needed or math.floor(steps) + 1} steps to fire; raise num_steps or rheobase_margin")
        return self


@functools.lru_cache(maxsize=256)
def first_spike_step(beta: float, threshold: float, current: float, limit: int) -> int | None:
    """The step (1-based) at which a LIF cell driven by a constant ``current`` first fires in :func:`spiking_winners`
    (snnTorch's arithmetic: ``beta`` and ``threshold`` held as float32, the membrane as float64, a spike where
    ``m_t − threshold > 0``); None if it does not within ``limit`` steps."""
    decay, level, membrane = float(np.float32(beta)), float(np.float32(threshold)), 0.0
    for step in range(1, limit + 1):
        membrane = decay * membrane + current
        if membrane - level > 0:
            return step
    return None


def spiking_winners(scores: np.ndarray, cfg: SpikingWTAConfig) -> np.ndarray:
    """Winners int64 [..., Q] of LIF WTA groups driven by non-negative ``scores`` [..., Q, K] (see module doc)."""
    torch = require("torch", "torch")
    snn = require("snntorch", "torch")
    cfg.validate()
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda': no CUDA GPU is available; use device = \"cpu\"")
    device = torch.device(cfg.device)
    shape = scores.shape
    score = torch.as_tensor(np.ascontiguousarray(scores, dtype=np.float64), device=device).reshape(-1, shape[-1])
    top = score.max(dim=1, keepdim=True).values
    current = cfg.i_min + (cfg.i_max - cfg.i_min) * torch.where(top > 0, score / top, torch.zeros_like(score))
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


def spike_coincidence(weights: np.ndarray, pre: np.ndarray, cells: np.ndarray, cfg: MacConfig) -> np.ndarray:
    """Learning by spikes, in place: ``weights`` [M, N, C] from the afferents that spiked (``pre`` [M, N], 0/1) to
    the cells that spiked (one per CM, ``cells`` [M, Q]; -1: the mac does not learn) go to w_max, after the winners'
    weights from silent afferents drop by ``decay``. Returns the change in non-zero weights per mac [M] (the
    :data:`~spikecl.sdr.sparsey.Plasticity` contract)."""
    torch = require("torch", "torch")
    w = torch.from_numpy(weights)                                    # shares memory with the coder's weights
    post = torch.zeros(weights.shape[0], weights.shape[2] + 1, dtype=w.dtype)
    post.scatter_(1, torch.from_numpy(np.where(cells >= 0, cells, weights.shape[2])), 1.0)
    post = post[:, :-1]                                              # [M, C] spike count of each cell (0 or 1)
    pre_t = torch.from_numpy(np.ascontiguousarray(pre, dtype=weights.dtype))
    before = torch.count_nonzero(w, dim=(1, 2))
    if cfg.decay:
        w.sub_(cfg.decay * (1.0 - pre_t)[:, :, None] * post[:, None, :]).clamp_(min=0.0)
    torch.maximum(w, cfg.w_max * pre_t[:, :, None] * post[:, None, :], out=w)
    return (torch.count_nonzero(w, dim=(1, 2)) - before).numpy()


class SpikingSparsey:
    """A :class:`SparseyCoder` whose CMs choose their winners by LIF WTA groups and whose weights learn from spikes.

    Learning with it changes the wrapped coder's weights (the coder holds the state; this object only decides how
    codes are chosen and weights are changed)."""

    def __init__(self, coder: SparseyCoder, cfg: SpikingWTAConfig | None = None):
        if not isinstance(coder, SparseyCoder):
            raise ConfigError(f"SpikingSparsey wraps a SparseyCoder, got {type(coder).__name__}")
        self.coder, self.cfg = coder, (cfg or SpikingWTAConfig()).validate()

    def _choose(self, scores: np.ndarray) -> np.ndarray:
        return spiking_winners(scores, self.cfg)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Code bits bool [B, n_code_bits] of inputs [B, N], or [n_code_bits] of one input [N]: the bits
        :meth:`SparseyCoder.encode` returns first (without its familiarity G)."""
        codes, _ = self.coder._run(self.coder.binarise(x), learn=False, use_prev=False, choose=self._choose)
        bits = self.coder.code_bits(codes)
        return bits[0] if np.asarray(x).ndim == 1 else bits

    def learn_all(self, xs: np.ndarray) -> np.ndarray:
        """Store items [B, N] one after another (single trial, by spikes): code bits bool [B, n_code_bits], the bits
        :meth:`SparseyCoder.learn_all` returns first (without its familiarity G)."""
        xs = self.coder.binarise(xs)
        bits = np.zeros((len(xs), self.coder.n_code_bits), bool)
        for i in range(len(xs)):
            codes, _ = self.coder._run(xs[i:i + 1], learn=True, use_prev=False, choose=self._choose,
                                       plasticity=spike_coincidence)
            bits[i] = self.coder.code_bits(codes)[0]
        return bits
