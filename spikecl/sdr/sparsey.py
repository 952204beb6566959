"""A Sparsey-style sparse distributed coder (Rinkus; arXiv 1710.07829), vectorised numpy.

A *mac* holds Q competitive modules (CMs) of K binary cells; a code is one winner per CM (Q active cells out of
C = Q·K). A :class:`MacLayer` holds M macs that share one :class:`MacConfig` (M = 1 is a single mac; M > 1 either
tiles an image with receptive fields or is an ensemble over the same input). Per frame the Code Selection Algorithm
(CSA) is, for every mac (shapes: B items, M macs, N afferents per mac, C cells)::

    u_i  = Σ_j w(j, i) x_j                          raw bottom-up sums                     [B, M, C]
    U_i  = clip(u_i / (π_U · w_max), 0, 1)          π_U = active afferents of the mac      [B, M, C]
    H_i  = clip(h_i / (π_H · w_max), 0, 1)          horizontal input from the previous code (sequences)
    V_i  = U_i^λU · H_i^λH                           local support over the signal types present
    G    = mean_CM max_{i∈CM} V_i                    familiarity                             [B, M]
    η    = 1 + max(0, (G − G⁻)/(1 − G⁻))^γ · χ·K     expansivity
    μ_i  = (η − 1) / (1 + σ₁ e^{−σ₂(V_i − σ₃)})^σ₄ + 1    familiarity-contingent win weights, in [1, η]
    ρ_i  = μ_i / Σ_{k∈CM} μ_k                        one winner per CM drawn from ρ (learning), max-V (recognition)

The draw from ρ is an exponential race (:func:`race_scores`): the winner is the cell whose Poisson clock of rate
μ_i ticks first, which a spiking winner-take-all group realises directly (:mod:`spikecl.sdr.spiking`).
``recognition = "sample"`` draws recognition codes the same way (the familiarity-contingent noise of learning; the
canonical CSA recognises by max V, the default).

Learning is single-trial: every weight from an active afferent to a winner is set to ``w_max`` (optionally the
weights from inactive afferents to the winners decay). A mac stops learning for good (its critical period ends) once
the fraction of its bottom-up weights that are non-zero passes ``freeze_fraction``. Every step touches only the
weight matrices (fixed size), so learning or recognising one item takes the same time however many are stored.

A familiar input (G → 1) makes η large and the choice collapse onto the max-V cells, so its code is reactivated; a
novel input (G ≤ G⁻) makes η = 1 and the choice uniform, so its code overlaps any stored code by about Q/K cells;
in between, similar inputs get similar codes.

:class:`SparseyCoder` stacks a level-1 :class:`MacLayer` (receptive fields tiling an image, or whole-input macs) and
optional level-2 macs over blocks of level-1 codes; it stores spatial patterns and sequences (horizontal weights from
each mac's previous code) in one pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from spikecl.errors import ConfigError, ShapeError
from spikecl.options import check_fields, field_default, from_dict, option
from spikecl.sdr.sdr import check_int
from spikecl.toml_files import toml_literal


@contextlib.contextmanager
def _named(prefix: str):
    """Name a config's own consistency errors (raised while it is built, without a prefix) with ``prefix``."""
    try:
        yield
    except ConfigError as exc:
        if prefix and prefix.rstrip(".") not in str(exc):
            raise ConfigError(f"{prefix}{exc}") from None
        raise


#: the most competitive modules per mac (Q) and cells per CM (K)
MAX_CMS, MAX_CELLS_PER_CM = 4096, 1024


@dataclass
class MacConfig:
    """Parameters of every mac in one layer (defaults: the ranges seen in Sparsey implementations)."""

    n_cms: int = option(16, low=1, high=MAX_CMS, doc="Q: competitive modules per mac (code size)")
    cells_per_cm: int = option(8, low=2, high=MAX_CELLS_PER_CM, doc="K: binary cells per CM")
    w_max: int = option(1, low=1, high=127, doc="maximum (learned) weight; weights are integers 0..w_max")
    decay: int = option(0, low=0, high=127, doc="on learning, weights from inactive afferents to winners drop by "
                                                  "this (0 = no decay)")
    lambda_u: float = option(2.0, low=0.0, high=16.0, doc="exponent of U in the local support V")
    lambda_h: float = option(1.0, low=0.0, high=16.0, doc="exponent of H in the local support V")
    g_minus: float = option(0.15, low=0.0, high=0.99, doc="G⁻: familiarity at or below which the choice is uniform")
    familiarity_from: str = option("v", choices=("v", "u"),
                                   doc="G from the local support V = U^λU·H^λH ('v', the canonical CSA's), or "
                                       "from the normalised bottom-up sums U alone ('u', a variant)")
    gamma: float = option(2.0, low=0.0, high=16.0, doc="γ: exponent of the expansivity")
    chi: float = option(100.0, low=0.0, high=1e6, doc="χ: η − 1 reaches χ·K at G = 1")
    sigma1: float = option(0.1, low=1e-6, high=1e6, doc="σ₁ of the win-weight sigmoid")
    sigma2: float = option(8.0, low=0.0, high=200.0, doc="σ₂: steepness of the win-weight sigmoid")
    sigma3: float = option(1.0, low=0.0, high=1.0, doc="σ₃: centre of the win-weight sigmoid")
    sigma4: float = option(8.0, low=1e-3, high=64.0, doc="σ₄: exponent of the win-weight sigmoid")
    min_active_frac: float = option(0.0, low=0.0, high=1.0, doc="a mac is active only if at least this fraction "
                                                                 "of its receptive field is active")
    max_active_frac: float = option(1.0, low=0.0, high=1.0, doc="... and at most this fraction")
    freeze_fraction: float = option(1.0, low=0.0, high=1.0,
                                    doc="critical period: a mac stops learning once this fraction of its U weights "
                                        "is non-zero (1 = never; 0 = after its first stored item)")
    sequences: bool = option(False, doc="keep horizontal weights from each mac's previous code (sequence memory)")
    recognition: str = option("max", choices=("max", "sample"),
                              doc="recognition picks the max-V cells ('max', the canonical CSA's) or draws them "
                                  "from ρ with the familiarity-contingent noise of learning ('sample', a variant; "
                                  "seeded)")

    @property
    def n_cells(self) -> int:
        """C = Q·K cells per mac."""
        return self.n_cms * self.cells_per_cm

    def __post_init__(self):
        self.validate()

    def validate(self, prefix: str = "") -> "MacConfig":
        """Every field's type and range, and the activity band; a one-line ConfigError naming the first problem."""
        check_fields(self, prefix)
        if self.min_active_frac > self.max_active_frac:
            raise ConfigError(f"{prefix}min_active_frac {self.min_active_frac} exceeds max_active_frac "
                              f"{self.max_active_frac}")
        if self.max_active_frac == 0:
            raise ConfigError(f"{prefix}max_active_frac 0 leaves every mac silent (a mac needs some active input); "
                              "give it a fraction above 0")
        return self


#: fields of :class:`SparseyConfig` that only some settings read: name -> (applies(cfg), where it applies, ``{p}``
#: standing for the table's prefix); set away from its default elsewhere, the coder would ignore it
READ_ONLY_WITH = {
    **{name: (lambda c: c.layout == "grid", '{p}layout = "grid"') for name in ("grid", "patch")},
    "ensemble": (lambda c: c.layout == "grid" and c.n_macs > 1, '{p}layout = "grid" with {p}n_macs > 1'),
    **{name: (lambda c: c.two_level, "{p}two_level = true") for name in ("top_grid", "top_patch")},
}


@dataclass
class SparseyConfig:
    """A one- or two-level Sparsey model over images of ``image_shape`` (H, W) binarised at ``threshold``."""

    image_shape: list[int] = option([28, 28], low=1, doc="input image height and width (pixels)")
    threshold: float = option(0.5, low=0.0, high=1.0, doc="binarisation: a pixel is active if > threshold")
    layout: str = option("whole", choices=("whole", "grid"), doc="level-1 macs see the whole image (an ensemble) "
                                                                  "or tile it with receptive fields")
    n_macs: int = option(1, low=1, high=4096, doc="level-1 macs per grid position (an ensemble with independent "
                                                    "codes)")
    ensemble: str = option("same", choices=("same", "shifted"),
                           doc="'grid' layout with n_macs > 1: every member of an ensemble sees the same receptive "
                               "field ('same') or member e's grid is shifted by e / n_macs of the grid spacing, "
                               "giving distinct overlapping fields ('shifted'; clipped at the image edge)")
    grid: list[int] = option([4, 4], low=1, high=1 << 10, doc="'grid' layout: macs per column and per row")
    patch: list[int] = option([10, 10], low=1, doc="'grid' layout: receptive-field height and width (pixels)")
    two_level: bool = option(False, doc="add level-2 macs over the level-1 codes")
    top_grid: list[int] = option([1, 1], low=1, high=1 << 10,
                                 doc="level-2 macs per column and per row, tiling the level-1 grid")
    top_patch: list[int] = option([0, 0], low=0, doc="level-1 grid positions (rows, cols) each level-2 mac sees, "
                                                     "with all their ensemble members (0 = the whole level-1 grid)")
    seed: int = option(0, low=0, doc="seed of the winner sampling")
    mac: MacConfig = field(default_factory=MacConfig)
    top: MacConfig = field(default_factory=lambda: MacConfig(n_cms=24, cells_per_cm=8))

    @property
    def level1_grid(self) -> list[int]:
        """Level-1 grid positions (rows, cols); the 'whole' layout is one position."""
        return list(self.grid) if self.layout == "grid" else [1, 1]

    @property
    def level2_patch(self) -> list[int]:
        """Level-1 grid positions (rows, cols) in each level-2 mac's field (``top_patch``, 0 = the whole grid)."""
        return [p or g for p, g in zip(self.top_patch, self.level1_grid)]

    def __post_init__(self):
        self.validate()

    def one_mac(self, mac: MacConfig) -> "SparseyConfig":
        """This config as one whole-image mac ``mac`` (the grid's and level 2's fields at their defaults)."""
        unread = {name: field_default(self, name) for name in READ_ONLY_WITH}
        return dataclasses.replace(self, **unread, layout="whole", n_macs=1, two_level=False, mac=mac)

    def validate(self, prefix: str = "") -> "SparseyConfig":
        """Every field's type and range, the level configs ``mac`` and ``top`` included (they validate themselves
        when built, and again here: a field may have changed since), and that the fields fit the image; a one-line
        ConfigError naming the first problem."""
        check_fields(self, prefix)
        for name in ("mac", "top"):
            level = getattr(self, name)
            if isinstance(level, MacConfig):                  # a table given in its place: check_fields' to refuse
                level.validate(f"{prefix}{name}.")
        for name in ("image_shape", "grid", "patch", "top_grid", "top_patch"):
            if len(getattr(self, name)) != 2:
                raise ConfigError(f"{prefix}{name}: expected two integers, got {getattr(self, name)!r}")
        for name, (applies, where) in READ_ONLY_WITH.items():
            default = field_default(self, name)
            if getattr(self, name) != default and not applies(self):
                raise ConfigError(f"{prefix}{name}: applies only to {where.format(p=prefix)}; leave it at its default "
                                  f"({toml_literal(default)}): it would be ignored")
        if self.layout == "grid" and any(p > s for p, s in zip(self.patch, self.image_shape)):
            raise ConfigError(f"{prefix}patch {self.patch} is larger than the image {self.image_shape}")
        level1 = self.level1_grid
        if self.two_level and (any(p > g for p, g in zip(self.level2_patch, level1))
                               or any(t > g for t, g in zip(self.top_grid, level1))):
            raise ConfigError(f"{prefix}top_grid {self.top_grid} / top_patch {self.top_patch} do not fit the level-1 "
                              f"grid {level1}")
        if self.layout == "grid":
            _check_covered(self.image_shape, self.grid, self.patch, f"{prefix}grid / patch", "image")
        if self.two_level:
            _check_covered(level1, self.top_grid, self.level2_patch, f"{prefix}top_grid / top_patch", "level-1 grid")
            if self.top.min_active_frac > 1 / self.mac.cells_per_cm:
                raise ConfigError(f"{prefix}top.min_active_frac {self.top.min_active_frac:g} leaves every level-2 mac "
                                  f"silent: its inputs are level-1 codes, of which at most 1 cell in "
                                  f"{self.mac.cells_per_cm} (mac.cells_per_cm) is active; give at most "
                                  f"{1 / self.mac.cells_per_cm:.4g}")
        starts = int(np.prod([s - p + 1 for s, p in zip(self.image_shape, self.patch)]))
        if self.layout == "grid" and self.ensemble == "shifted" and starts < self.n_macs:
            raise ConfigError(f"{prefix}ensemble 'shifted': {self.n_macs} members need distinct fields, but a "
                              f"{self.patch} patch has only {starts} places in the image {self.image_shape}")
        return self

    @classmethod
    def from_mapping(cls, raw: dict, prefix: str = "") -> "SparseyConfig":
        """Validate a raw table (as parsed from TOML) into a config; ConfigError on the first problem. Keys missing
        from ``mac`` / ``top`` keep the defaults of :class:`SparseyConfig` (level 2: 24 CMs of 8 cells)."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table, got {raw!r}")
        rest, defaults, levels = dict(raw), cls(), {}
        for name in ("mac", "top"):
            table = rest.pop(name, {})
            if not isinstance(table, Mapping):
                raise ConfigError(f"{prefix}{name}: expected a table, got {table!r}")
            with _named(f"{prefix}{name}."):
                levels[name] = from_dict(MacConfig, {**dataclasses.asdict(getattr(defaults, name)), **table},
                                         f"{prefix}{name}.")
        with _named(prefix):
            return dataclasses.replace(from_dict(cls, rest, prefix), **levels)


# -- pure CSA steps ------------------------------------------------------------------------------------------
def normalised_sums(weights: np.ndarray, x: np.ndarray, w_max: int) -> np.ndarray:
    """U (or H): ``clip(Σ_j w(j,i) x_j / (π · w_max), 0, 1)`` for ``weights`` [M, N, C] and ``x`` [B, M, N]
    (0/1 float32); 0 where a mac has no active afferent. Returns float32 [B, M, C]."""
    sums = np.matmul(x.transpose(1, 0, 2), weights).transpose(1, 0, 2)
    active = x.sum(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(active > 0, sums / (np.maximum(active, 1) * w_max), 0.0)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def local_support(u: np.ndarray | None, h: np.ndarray | None, cfg: MacConfig) -> np.ndarray:
    """V = U^λU · H^λH over the signal types present (``None`` = absent); [B, M, C] -> [B, M, Q, K]."""
    terms = [t ** lam for t, lam in ((u, cfg.lambda_u), (h, cfg.lambda_h)) if t is not None]
    if not terms:
        raise ShapeError("local support needs U or H input")
    v = terms[0] if len(terms) == 1 else terms[0] * terms[1]
    return v.reshape(*v.shape[:-1], cfg.n_cms, cfg.cells_per_cm)


def familiarity(v: np.ndarray) -> np.ndarray:
    """G = mean over CMs of the max V in the CM: [..., Q, K] -> [...], in [0, 1]."""
    return v.max(axis=-1).mean(axis=-1)


def expansivity(g: np.ndarray, cfg: MacConfig) -> np.ndarray:
    """η = 1 + max(0, (G − G⁻)/(1 − G⁻))^γ · χ·K (same shape as ``g``); η = 1 (a uniform choice) wherever
    G ≤ G⁻, for γ = 0 too (where 0^0 would give 1 + χ·K)."""
    rel = np.maximum(0.0, (g - cfg.g_minus) / (1.0 - cfg.g_minus))
    return 1.0 + np.where(rel > 0, rel ** cfg.gamma, 0.0) * cfg.chi * cfg.cells_per_cm


def win_weights(v: np.ndarray, eta: np.ndarray, cfg: MacConfig) -> np.ndarray:
    """μ = (η − 1) / (1 + σ₁ e^{−σ₂(V − σ₃)})^σ₄ + 1 for ``v`` [B, M, Q, K] and ``eta`` [B, M];
    in [1, η]."""
    with np.errstate(over="ignore"):
        denom = (1.0 + cfg.sigma1 * np.exp(-cfg.sigma2 * (v - cfg.sigma3))) ** cfg.sigma4
    return (eta[..., None, None] - 1.0) / denom + 1.0


def race_scores(mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scores ``μ_i / E_i`` with E_i ~ Exp(1) (float64, same shape as ``mu`` [B, M, Q, K]): an exponential race, in
    which cell i fires first as a Poisson neuron of rate μ_i would, so the max score in each CM is a draw from
    ρ = μ / Σ_CM μ (the CSA's winner sampling)."""
    return np.asarray(mu, np.float64) / rng.exponential(size=mu.shape)


def choose_winners(scores: np.ndarray) -> np.ndarray:
    """One winner per CM: the cell with the largest score (V when recognising, :func:`race_scores` when sampling;
    ties go to the lowest index). [B, M, Q, K] -> int64 [B, M, Q] in 0..K-1."""
    return scores.argmax(axis=-1)


def raise_weights(weights: np.ndarray, pre: np.ndarray, cells: np.ndarray, cfg: MacConfig) -> np.ndarray:
    """Single-trial learning of one item in place: weights [M, N, C] from active ``pre`` [M, N] afferents to
    ``cells`` [M, Q] (-1: the mac does not learn) go to w_max, touching only those entries (with decay, the winners'
    weights from inactive afferents drop first). Returns, per mac, the change in non-zero weights [M]."""
    before = None
    if cfg.decay:
        before = np.count_nonzero(weights, axis=(1, 2))
        cols = np.maximum(cells, 0)[:, None, :]
        block = np.take_along_axis(weights, cols, axis=2)           # [M, N, Q]
        block -= cfg.decay * (pre == 0)[:, :, None] * (cells >= 0)[:, None, :]
        np.put_along_axis(weights, cols, np.maximum(block, 0.0), axis=2)
    m_idx, n_idx = np.nonzero(pre)
    c_idx = cells[m_idx]                                          # [P, Q]
    m_idx, n_idx = np.repeat(m_idx, cells.shape[1]), np.repeat(n_idx, cells.shape[1])
    c_idx = c_idx.ravel()
    new = weights[m_idx, n_idx, c_idx] == 0
    weights[m_idx, n_idx, c_idx] = cfg.w_max
    if before is not None:
        return np.count_nonzero(weights, axis=(1, 2)) - before
    return np.bincount(m_idx[new], minlength=len(weights))


#: A learning rule: (weights [M, N, C], active afferents [M, N], winner cells [M, Q], cfg) -> new non-zero weights
#: per mac [M], updating ``weights`` in place (:func:`raise_weights`; the spiking realisation has its own).
Plasticity = Callable[[np.ndarray, np.ndarray, np.ndarray, MacConfig], np.ndarray]


def winners_to_cells(winners: np.ndarray, cells_per_cm: int) -> np.ndarray:
    """Cell indices within a mac, q·K + winner; -1 winners (inactive macs) stay -1. Same shape as ``winners``."""
    offsets = np.arange(winners.shape[-1]) * cells_per_cm
    return np.where(winners >= 0, winners + offsets, -1)


def code_dense(winners: np.ndarray, cfg: MacConfig) -> np.ndarray:
    """Binary codes [..., M, C] (float32) of winners [..., M, Q]; an inactive mac (-1) has an all-zero code."""
    out = np.zeros((*winners.shape[:-1], cfg.n_cells), dtype=np.float32)
    cells = winners_to_cells(winners, cfg.cells_per_cm)
    np.put_along_axis(out, np.maximum(cells, 0), 1.0, axis=-1)
    out *= (winners[..., :1] >= 0)
    return out


# -- state and the layer -------------------------------------------------------------------------------------
@dataclass
class MacState:
    """Learned state of M macs: bottom-up weights ``u`` [M, N, C], horizontal ``h`` [M, C, C] (or None), integer
    values 0..w_max stored as float32 (for BLAS); ``frozen`` [M] bool; ``n_learned`` [M] learning events;
    ``n_nonzero`` [M] non-zero bottom-up weights (kept up to date, for the critical period)."""

    u: np.ndarray
    h: np.ndarray | None
    frozen: np.ndarray
    n_learned: np.ndarray
    n_nonzero: np.ndarray


class MacLayer:
    """M macs with one :class:`MacConfig` over inputs ``[M, N]`` (each mac its own N afferents)."""

    def __init__(self, cfg: MacConfig, n_macs: int, n_inputs: int, rng: np.random.Generator,
                 recognition_rng: np.random.Generator | None = None):
        if cfg.max_active_frac * n_inputs < 1:
            raise ConfigError(f"max_active_frac {cfg.max_active_frac:g} leaves every mac silent: one active afferent "
                              f"of a mac's {n_inputs} is already {1 / n_inputs:.3g} of them; give at least that")
        self.cfg, self.n_macs, self.n_inputs, self.rng = cfg, n_macs, n_inputs, rng
        self.recognition_rng = recognition_rng or rng          # draws of recognition = "sample"
        c = cfg.n_cells
        self.state = MacState(u=np.zeros((n_macs, n_inputs, c), np.float32),
                              h=np.zeros((n_macs, c, c), np.float32) if cfg.sequences else None,
                              frozen=np.zeros(n_macs, bool), n_learned=np.zeros(n_macs, np.int64),
                              n_nonzero=np.zeros(n_macs, np.int64))

    def active_macs(self, x: np.ndarray) -> np.ndarray:
        """Macs whose receptive-field activity is within [min_active_frac, max_active_frac]: [B, M] bool."""
        frac = x.mean(axis=-1)
        return (frac > 0) & (frac >= self.cfg.min_active_frac) & (frac <= self.cfg.max_active_frac)

    def support(self, x: np.ndarray | None, prev: np.ndarray | None) -> np.ndarray:
        """V [B, M, Q, K] from bottom-up ``x`` [B, M, N] and/or the previous codes ``prev`` [B, M, C]. A mac whose
        previous code is empty has no H signal, so its V is U^λU, as on a sequence's first frame."""
        u = None if x is None else normalised_sums(self.state.u, x, self.cfg.w_max)
        h = None
        if prev is not None:
            if self.state.h is None:
                raise ConfigError("horizontal input needs a mac config with sequences = true")
            h = normalised_sums(self.state.h, prev, self.cfg.w_max)
            if u is not None:                                      # H absent per mac: factor 1 (H^λH = 1)
                h = np.where(prev.any(axis=-1, keepdims=True), h, np.float32(1.0))
        return local_support(u, h, self.cfg)

    def encode(self, x: np.ndarray | None, prev: np.ndarray | None = None, *, learn: bool = False,
               choose: Callable[[np.ndarray], np.ndarray] | None = None,
               plasticity: Plasticity | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run the CSA on a batch: winners int64 [B, M, Q] (-1 for inactive macs) and familiarity G [B, M].

        ``learn`` samples winners from ρ and applies single-trial learning (B must be 1: items are stored one at a
        time, in order; a mac past its critical period gives its max-V code instead, since it cannot store one);
        otherwise the max-V cells win (``recognition = "sample"``: drawn from ρ, as when learning) and nothing
        changes. ``choose(scores)`` picks one winner per CM from scores [B, M, Q, K] (default: the largest; the
        spiking realisation passes LIF winner-take-all groups); ``plasticity`` replaces the learning rule.
        ``x`` None = no bottom-up input (recall from horizontal input only); ``prev`` None = no horizontal input.
        """
        ref = x if x is not None else prev
        if ref is None or ref.ndim != 3 or ref.shape[1] != self.n_macs:
            raise ShapeError(f"mac input must be [B, {self.n_macs}, N], got {None if ref is None else ref.shape}")
        if x is not None and x.shape[2] != self.n_inputs:
            raise ShapeError(f"mac input has {x.shape[2]} afferents per mac, expected {self.n_inputs}")
        if learn and ref.shape[0] != 1:
            raise ShapeError(f"learning stores one item at a time; got a batch of {ref.shape[0]}")
        v = self.support(x, prev)
        if self.cfg.familiarity_from == "u" and x is not None:
            u = normalised_sums(self.state.u, x, self.cfg.w_max)
            g = familiarity(u.reshape(*u.shape[:-1], self.cfg.n_cms, self.cfg.cells_per_cm))
        else:
            g = familiarity(v)
        scores = v
        if learn or self.cfg.recognition == "sample":
            mu = win_weights(v, expansivity(g, self.cfg), self.cfg)
            scores = race_scores(mu, self.rng if learn else self.recognition_rng)
            if learn:      # a frozen mac cannot store a new code: it answers with its best match, as in recognition
                scores = np.where(self.state.frozen[None, :, None, None], v, scores)
        winners = (choose or choose_winners)(scores)
        active = self.active_macs(x) if x is not None else prev.any(axis=-1)
        winners = np.where(active[..., None], winners, -1)
        g = np.where(active, g, 0.0)
        if learn:
            self.learn(x, prev, winners[0], plasticity)
        return winners, g

    def learn(self, x: np.ndarray | None, prev: np.ndarray | None, winners: np.ndarray,
              plasticity: Plasticity | None = None) -> None:
        """Single-trial learning of one item: weights from active afferents (``x`` [1, M, N], ``prev`` [1, M, C])
        to the winners [M, Q] go to w_max (by ``plasticity``, default :func:`raise_weights`); frozen and inactive
        macs do not learn."""
        st, cfg = self.state, self.cfg
        rule = plasticity or raise_weights
        learning = ~st.frozen & (winners[:, 0] >= 0)
        if not learning.any():
            return
        cells = np.where(learning[:, None], winners_to_cells(winners, cfg.cells_per_cm), -1)   # [M, Q]
        if x is not None:
            st.n_nonzero += rule(st.u, x[0] * learning[:, None], cells, cfg)
        if prev is not None and st.h is not None:
            rule(st.h, prev[0] * learning[:, None], cells, cfg)
        st.n_learned += learning
        filled = st.n_nonzero / st.u[0].size
        st.frozen |= learning & (filled >= cfg.freeze_fraction) & (cfg.freeze_fraction < 1.0)

    def reconstruct(self, winners: np.ndarray, threshold: float = 1.0) -> np.ndarray:
        """Input bits [B, M, N] that the codes ``winners`` [B, M, Q] point back to: afferent j is on when
        Σ_{i∈code} w(j, i) ≥ threshold · Q · w_max (the stored item's bits all reach 1)."""
        code = code_dense(winners, self.cfg)                          # [B, M, C]
        back = np.matmul(code.transpose(1, 0, 2), self.state.u.transpose(0, 2, 1)).transpose(1, 0, 2)
        return back >= threshold * self.cfg.n_cms * self.cfg.w_max - 1e-6

    @property
    def weight_fill(self) -> np.ndarray:
        """Fraction of non-zero bottom-up weights per mac [M]."""
        return self.state.n_nonzero / self.state.u[0].size


def _check_covered(shape: Sequence[int], grid: Sequence[int], patch: Sequence[int], names: str, what: str) -> None:
    """A one-line ConfigError where ``grid`` patches of ``patch``, laid out as :func:`grid_receptive_fields` does,
    leave rows or columns of ``shape`` unseen (a mac would then never see them, and inputs differing only there would
    get one code)."""
    for size, n, p, side in zip(shape, grid, patch, ("rows", "columns")):
        seen = np.zeros(size, dtype=bool)
        for start in np.linspace(0, size - p, n).round().astype(int):
            seen[start:start + p] = True
        unseen = np.flatnonzero(~seen)
        if unseen.size:
            raise ConfigError(f"{names}: {n} x {p}-wide patches leave {len(unseen)} of the {size} {side} of the "
                              f"{what} {list(shape)} unseen (first {unseen[0]}, last {unseen[-1]}); use more patches "
                              f"or larger ones")


def grid_starts(image_shape: Sequence[int], grid: Sequence[int], patch: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Top and left pixel (float) of ``grid`` (rows, cols) patches of ``patch`` (ph, pw) pixels evenly spaced over
    an image of ``image_shape`` (H, W), and the spacing (rows, cols)."""
    axes = [(np.linspace(0, s - p, n), (s - p) / (n - 1) if n > 1 else 0.0)
            for s, n, p in zip(image_shape, grid, patch)]
    return axes[0][0], axes[1][0], np.array([axes[0][1], axes[1][1]])


def patch_pixels(image_shape: Sequence[int], patch: Sequence[int], corners: np.ndarray) -> np.ndarray:
    """Flat pixel indices [M, ph·pw] of ``patch`` (ph, pw) patches with top-left ``corners`` [M, 2] (integers)."""
    w, (ph, pw) = image_shape[1], patch
    local = (np.arange(ph)[:, None] * w + np.arange(pw)[None, :]).ravel()
    return corners[:, :1] * w + corners[:, 1:] + local


def grid_receptive_fields(image_shape: Sequence[int], grid: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """Flat pixel indices [M, ph·pw] of ``grid`` (rows, cols) patches of ``patch`` (ph, pw) pixels, evenly spaced
    so that they cover an image of ``image_shape`` (H, W); neighbouring patches overlap when they must."""
    rows, cols, _ = grid_starts(image_shape, grid, patch)
    corners = np.stack(np.meshgrid(rows.round(), cols.round(), indexing="ij"), -1).reshape(-1, 2).astype(int)
    return patch_pixels(image_shape, patch, corners)


def shifted_corners(image_shape: Sequence[int], grid: Sequence[int], patch: Sequence[int], n: int) -> np.ndarray:
    """Top-left corners [M·n, 2] of the ``n`` members of each grid position (position by position): member e's
    patch starts at the free corner nearest to the position moved e / n of the grid spacing down and right (within
    the image), where free means no other mac has it while one lies within a grid spacing (at least one pixel),
    and in any case no other member of the same position has it; so members always get distinct fields, and
    fields are distinct across positions wherever the image leaves room."""
    rows, cols, spacing = grid_starts(image_shape, grid, patch)
    room = np.array([s - p for s, p in zip(image_shape, patch)])
    candidates = np.stack(np.meshgrid(np.arange(room[0] + 1), np.arange(room[1] + 1), indexing="ij"), -1)
    candidates = candidates.reshape(-1, 2)
    reach, taken, out = np.maximum(spacing, 1.0), np.zeros(len(candidates), bool), []
    for start in np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2):
        own = np.zeros(len(candidates), bool)
        for e in range(n):
            ideal = np.minimum(start + spacing * e / n, room)
            dist = ((candidates - ideal) ** 2).sum(axis=1)
            free = ~taken & (np.abs(candidates - ideal) <= reach).all(axis=1)
            best = int(np.argmin(np.where(free if free.any() else ~own, dist, np.inf)))
            taken[best] = own[best] = True
            out.append(candidates[best])
    return np.array(out)


def level1_fields(cfg: SparseyConfig) -> np.ndarray:
    """Pixel indices [M1, N_rf] of every level-1 mac, grid position by position, the n_macs ensemble members of a
    position next to each other (mac index = position · n_macs + member)."""
    if cfg.layout == "whole":
        return np.repeat(np.arange(int(np.prod(cfg.image_shape)))[None], cfg.n_macs, axis=0)
    if cfg.ensemble == "same" or cfg.n_macs == 1:
        return np.repeat(grid_receptive_fields(cfg.image_shape, cfg.grid, cfg.patch), cfg.n_macs, axis=0)
    return patch_pixels(cfg.image_shape, cfg.patch, shifted_corners(cfg.image_shape, cfg.grid, cfg.patch, cfg.n_macs))


def level2_fields(cfg: SparseyConfig) -> np.ndarray:
    """Level-1 mac indices [M2, L] each level-2 mac reads: a ``top_patch`` block of level-1 grid positions (with all
    their ensemble members), ``top_grid`` blocks evenly spaced over the level-1 grid."""
    positions = grid_receptive_fields(cfg.level1_grid, cfg.top_grid, cfg.level2_patch)      # [M2, pr·pc]
    members = np.arange(cfg.n_macs)
    return (positions[:, :, None] * cfg.n_macs + members).reshape(len(positions), -1)


def code_size(cfg: SparseyConfig) -> int:
    """Bits of a code of the coder ``cfg`` describes: every level-1 mac's cells, then every level-2 mac's."""
    top = len(level2_fields(cfg)) * cfg.top.n_cells if cfg.two_level else 0
    return len(level1_fields(cfg)) * cfg.mac.n_cells + top


class SparseyCoder:
    """A one- or two-level Sparsey model: binary inputs [N] -> codes (one winner per CM of every mac).

    >>> coder = SparseyCoder(SparseyConfig(image_shape=[8, 8]))
    >>> x = np.random.default_rng(0).random(64) > 0.7
    >>> code, g = coder.learn(x); again, g2 = coder.encode(x)
    >>> bool((code == again).all()), round(float(g2), 2)
    (True, 1.0)

    Public methods return codes as bool ``[n_code_bits]`` (or ``[B, n_code_bits]``): every level-1 mac's C cells in
    order, then every level-2 mac's cells (:meth:`code_bits`); exactly Q bits per active mac.
    """

    def __init__(self, cfg: SparseyConfig | None = None):
        if cfg is not None and not isinstance(cfg, SparseyConfig):
            raise ConfigError(f"SparseyCoder takes a SparseyConfig (a MacConfig goes in its mac or top field), got "
                              f"{type(cfg).__name__}")
        self.cfg = cfg = (cfg or SparseyConfig()).validate()            # again: its fields may have changed since
        self.rng = np.random.default_rng(cfg.seed)                      # learning draws
        recognition_rng = np.random.default_rng([cfg.seed, 1])           # recognition = "sample" draws
        self.n_pixels = int(np.prod(cfg.image_shape))
        self.fields = level1_fields(cfg)                                  # [M1, N_rf] pixel indices
        self.level1 = MacLayer(cfg.mac, len(self.fields), self.fields.shape[1], self.rng, recognition_rng)
        self.top_fields = level2_fields(cfg) if cfg.two_level else None  # [M2, L] level-1 mac indices
        self.level2 = (MacLayer(cfg.top, len(self.top_fields), self.top_fields.shape[1] * cfg.mac.n_cells, self.rng,
                                recognition_rng) if cfg.two_level else None)
        self._prev: tuple[np.ndarray | None, np.ndarray | None] = (None, None)   # previous codes [1, M, C]
        self._in_sequence = False

    # -- inputs -------------------------------------------------------------------------------------------
    def binarise(self, x: np.ndarray) -> np.ndarray:
        """Inputs [B, N] or [N] (or [B, 1, H, W], [B, H, W], flattened) -> bool [B, N]: floats are compared with
        ``threshold``, bool / integer 0-1 inputs are taken as they are."""
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise ShapeError(f"inputs must be numeric or bool, got dtype {arr.dtype}")
        if arr.ndim == 0 or arr.size == 0:
            raise ShapeError(f"inputs must be items [B, {self.n_pixels}] or one item [{self.n_pixels}] with B >= 1, "
                             f"got shape {arr.shape}")
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim > 2:
            arr = arr.reshape(len(arr), int(np.prod(arr.shape[1:])))
        if arr.shape[1] != self.n_pixels:
            raise ShapeError(f"inputs have {arr.shape[1]} values per item, expected {self.n_pixels} "
                             f"(image_shape {self.cfg.image_shape})")
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                raise ShapeError("inputs contain NaN or infinity")
            if arr.min() < 0 or arr.max() > 1:
                raise ShapeError(f"float inputs must be in [0, 1], got values in [{arr.min():g}, {arr.max():g}]; "
                                 f"scale them (e.g. x / 255) to binarise at threshold {self.cfg.threshold}")
            return arr > self.cfg.threshold
        if arr.dtype.kind in "iu" and arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ShapeError(f"integer inputs must be 0/1, got values in [{arr.min()}, {arr.max()}]; pass floats in "
                             f"[0, 1] to binarise at threshold {self.cfg.threshold}")
        return arr.astype(bool)

    # -- codes --------------------------------------------------------------------------------------------
    @property
    def n_code_bits(self) -> int:
        """Bits of :meth:`code_bits`: all level-1 cells, then the level-2 cells."""
        return code_size(self.cfg)

    def code_bits(self, codes: tuple[np.ndarray, np.ndarray | None]) -> np.ndarray:
        """Bool [B, n_code_bits]: level-1 codes of every mac, then the level-2 code."""
        w1, w2 = codes
        parts = [code_dense(w1, self.cfg.mac).reshape(len(w1), -1)]
        if w2 is not None:
            parts.append(code_dense(w2, self.cfg.top).reshape(len(w2), -1))
        return np.concatenate(parts, axis=1) > 0

    def _run(self, x: np.ndarray | None, learn: bool, use_prev: bool,
             choose: Callable[[np.ndarray], np.ndarray] | None = None, plasticity: Plasticity | None = None):
        """One frame through both levels: (level-1 winners [B, M1, Q], level-2 winners [B, M2, Q2] or None) and the
        top level's G [B] (mean over its active macs). Only a sequence frame (``use_prev``, with sequences on) reads
        and replaces the previous codes, so recognising or storing an item outside the sequence leaves its context."""
        x1 = None if x is None else x[:, self.fields].astype(np.float32)
        p1, p2 = self._prev if use_prev else (None, None)
        w1, g = self.level1.encode(x1, p1, learn=learn, choose=choose, plasticity=plasticity)
        w2 = None
        if self.level2 is not None:
            x2 = code_dense(w1, self.cfg.mac)[:, self.top_fields].reshape(len(w1), len(self.top_fields), -1)
            w2, g = self.level2.encode(x2, p2, learn=learn, choose=choose, plasticity=plasticity)
        if use_prev and self.cfg.mac.sequences:
            self._prev = (code_dense(w1, self.cfg.mac),
                          None if w2 is None or not self.cfg.top.sequences else code_dense(w2, self.cfg.top))
        top = w1 if w2 is None else w2
        active = top[..., 0] >= 0                                    # G averaged over the top level's active macs
        return (w1, w2), (g * active).sum(axis=1) / np.maximum(active.sum(axis=1), 1)

    def learn(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Store one item (single trial): its code bits [n_code_bits] and the top level's familiarity G
        (the mean over the top level's active macs).
        Within a sequence (:meth:`start_sequence`), horizontal input from the previous code is used."""
        codes, g = self._run(self.binarise(x), learn=True, use_prev=self._in_sequence)
        return self.code_bits(codes)[0], float(g[0])

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        """Recognise without learning (max-V winners, or drawn from ρ with ``recognition = "sample"``): code bits
        [B, n_code_bits] and G [B] (a single item [N] gives [n_code_bits] and a float). Bottom-up input only; within
        a sequence the context (the previous frame's code) is neither read nor changed."""
        single = np.asarray(x).ndim == 1
        codes, g = self._run(self.binarise(x), learn=False, use_prev=False)
        bits = self.code_bits(codes)
        return (bits[0], float(g[0])) if single else (bits, g)

    def learn_all(self, xs: np.ndarray, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Store items [B, N] one after another in one pass: code bits [B, n_code_bits] and G [B]."""
        from spikecl.progress import progress_range

        xs = self.binarise(xs)
        bits = np.zeros((len(xs), self.n_code_bits), bool)
        gs = np.zeros(len(xs))
        for i in progress_range(len(xs), progress, "learning"):
            codes, g = self._run(xs[i:i + 1], learn=True, use_prev=False)
            bits[i], gs[i] = self.code_bits(codes)[0], g[0]
        return bits, gs

    # -- sequences ----------------------------------------------------------------------------------------
    def start_sequence(self) -> None:
        """Begin a sequence: the next frame has no horizontal input, later frames get it from their predecessor."""
        if not self.cfg.mac.sequences:
            raise ConfigError("sequences need mac.sequences = true")
        self._prev, self._in_sequence = (None, None), True

    def end_sequence(self) -> None:
        self._prev, self._in_sequence = (None, None), False

    def learn_sequence(self, frames: np.ndarray) -> np.ndarray:
        """Store a sequence of frames [T, N] in one pass: code bits [T, n_code_bits] (a chain of codes). Inside a
        sequence opened with :meth:`start_sequence` a ConfigError: the frames would end it unlinked."""
        if self._in_sequence:
            raise ConfigError("learn_sequence inside a sequence opened with start_sequence(): learn its frames one by "
                              "one with learn(), or call end_sequence() first")
        self.start_sequence()
        try:
            return np.stack([self.learn(f)[0] for f in self.binarise(frames)])
        finally:
            self.end_sequence()

    def recall_sequence(self, cue: np.ndarray, length: int) -> np.ndarray:
        """Codes [length, n_code_bits] of a sequence recalled from its first frames ``cue`` [T0, N]: the cue frames
        are recognised with bottom-up and horizontal input, later frames follow the horizontal weights alone. A
        sequence being learned frame by frame (:meth:`start_sequence`) goes on afterwards where it was."""
        cue = self.binarise(cue)
        length = check_int(length, "recall length", 1)
        if length < len(cue):
            raise ConfigError(f"recall length {length} is shorter than the cue ({len(cue)} frames)")
        kept = self._prev, self._in_sequence
        self.start_sequence()
        try:
            out = [self.code_bits(self._run(f[None], learn=False, use_prev=True)[0])[0] for f in cue]
            for _ in range(length - len(cue)):
                out.append(self.code_bits(self._run(None, learn=False, use_prev=True)[0])[0])
        finally:
            self._prev, self._in_sequence = kept
        return np.stack(out)

    def reconstruct(self, x: np.ndarray, threshold: float = 1.0) -> np.ndarray:
        """Recall an input from a (partial or noisy) cue: recognise it, then read the level-1 codes back through
        the bottom-up weights (a pixel is on when every winner of some mac covering it points to it): bool [B, N].
        ``threshold`` in [0, 1]: the fraction of the Q winners that must point to a pixel."""
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
                or not 0 <= threshold <= 1:
            raise ConfigError(f"reconstruct threshold must be a number in [0, 1], got {threshold!r}")
        xb = self.binarise(x)
        w1, _ = self.level1.encode(xb[:, self.fields].astype(np.float32))
        back = self.level1.reconstruct(w1, threshold)                 # [B, M, Nrf]
        out = np.zeros((len(xb), self.n_pixels), bool)
        for m, field_ in enumerate(self.fields):
            out[:, field_] |= back[:, m]
        return out
