"""What the ``sparsey`` experiment measures, one function per measurement: degraded cues, recall of stored codes,
k-NN and vote readouts, capacity, cue and sequence recall curves, similarity preservation; and the timed runs of
the coders that produce the codes (:class:`Coded`). The experiment (:mod:`spikecl.sdr.experiment`) composes them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from spikecl.errors import ConfigError, require
from spikecl.sdr.baselines import FlyHash, FlyHashConfig, SpatialPooler, SpatialPoolerConfig
from spikecl.sdr.readout import ClassVotes, knn_predict, overlap_spearman
from spikecl.sdr.sparsey import SparseyCoder, SparseyConfig


def one_thread():
    """Context manager limiting BLAS/OpenMP to one thread (single-core timings; threadpoolctl comes with the
    ``data`` extra's scikit-learn)."""
    return require("threadpoolctl", "data").threadpool_limits(limits=1)


def degrade(x: np.ndarray, level: float, how: str, seed: int) -> np.ndarray:
    """Cues [B, N] bool: ``level`` of each item's active bits removed (``"removed"``) or moved to inactive
    positions (``"flipped"``; an item with more active than inactive positions moves only as many bits as it has
    inactive positions: :meth:`~spikecl.sdr.sdr.SDR.add_noise`), reproducibly."""
    from spikecl.sdr.sdr import SDR

    out = np.zeros_like(x, dtype=bool)
    rng = np.random.default_rng(seed)
    for row, item in enumerate(x):
        sdr = SDR.from_dense(item.astype(bool))
        cue = sdr.drop(level, rng) if how == "removed" else sdr.add_noise(level, rng)
        out[row, cue.sparse] = True
    return out


#: float32 values of the item-by-item overlap matrix held at once (64 MiB): larger sets are compared in row blocks
OVERLAP_BLOCK = 1 << 24


def recall_measures(stored: np.ndarray, recalled: np.ndarray, block: int = OVERLAP_BLOCK,
                    candidates: np.ndarray | None = None, index: np.ndarray | None = None) -> dict[str, float]:
    """Exact (recalled code == stored code), overlap (mean |recalled ∩ stored| / |stored|) and identity (the code
    nearest to the recalled one is the item's own) for codes [B, n_bits], row i = item i; the [B, C] overlaps are
    computed ``block`` values at a time (bounded memory). No items: NaN for each.

    Identity among the stored codes, or among ``candidates`` [C, n_bits] (the item's own code is row ``index[i]`` of
    them): an item whose own code ties with k − 1 others for the nearest counts 1/k, whatever the order the items
    were stored in; a recalled code that overlaps no candidate (an empty one) recalls nothing and counts 0."""
    if not len(stored):
        return {"exact": float("nan"), "overlap": float("nan"), "identity": float("nan")}
    c = (stored if candidates is None else candidates).astype(np.float32)
    index = np.arange(len(stored)) if index is None else np.asarray(index)
    own = (stored.astype(bool) & recalled.astype(bool)).sum(axis=1)
    rows = max(1, block // max(len(c), 1))
    hits = np.concatenate([_identity_hits(recalled[i:i + rows].astype(np.float32) @ c.T, index[i:i + rows])
                           for i in range(0, len(stored), rows)])
    return {"exact": float((stored == recalled).all(axis=1).mean()),
            "overlap": float((own / np.maximum(stored.sum(axis=1), 1)).mean()),
            "identity": float(hits.mean())}


def _identity_hits(overlaps: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Per row of ``overlaps`` [b, C]: 1/k where column ``own`` is one of the k nearest, 0 where it is not or where
    the row overlaps nothing."""
    top = overlaps.max(axis=1, keepdims=True)
    nearest = overlaps == top
    return np.where(top[:, 0] > 0, nearest[np.arange(len(own)), own] / nearest.sum(axis=1), 0.0)


@dataclass
class Coded:
    """What one coder produced on a dataset: learning-time codes of the training items, recognition codes of the
    training and test items, the learning time on one thread (s) and the trained coder."""

    learned: np.ndarray
    train: np.ndarray
    test: np.ndarray
    learn_seconds: float
    model: object = None
    familiarity: np.ndarray | None = None        # [B] G of each item when it was stored (Sparsey only)


def classify(coded: Coded, y_train: np.ndarray, y_test: np.ndarray, k: int, n_classes: int) -> dict[str, float]:
    """Test accuracy of the readouts: class votes and naive Bayes over the one-pass cell-class counts, 1-NN on the
    codes given at learning time, 1-NN / k-NN on the stored items' recognition codes."""
    votes = ClassVotes(coded.learned.shape[1], n_classes)
    votes.add(coded.learned, y_train)
    acc = {"acc_votes": votes.predict(coded.test), "acc_bayes": votes.predict(coded.test, "bayes")}
    acc["acc_knn1_learned"] = knn_predict(coded.learned, y_train, coded.test, 1, n_classes)
    acc["acc_knn1"] = knn_predict(coded.train, y_train, coded.test, 1, n_classes)
    acc[f"acc_knn{k}"] = knn_predict(coded.train, y_train, coded.test, k, n_classes)
    return {name: float((pred == y_test).mean()) for name, pred in acc.items()}


def run_sparsey(cfg: SparseyConfig, x_train: np.ndarray, x_test: np.ndarray, progress: bool) -> Coded:
    coder = SparseyCoder(cfg)
    with one_thread():
        start = time.perf_counter()
        learned, g = coder.learn_all(x_train, progress=progress)
        seconds = time.perf_counter() - start
    return Coded(learned, coder.encode(x_train)[0], coder.encode(x_test)[0], seconds, coder, g)


def run_pooler(cfg: SpatialPoolerConfig, x_train: np.ndarray, x_test: np.ndarray, progress: bool) -> Coded:
    pooler = SpatialPooler(cfg, x_train.shape[1])
    with one_thread():
        start = time.perf_counter()
        learned = pooler.learn(x_train, progress=progress)
        seconds = time.perf_counter() - start
    return Coded(learned, pooler.encode(x_train), pooler.encode(x_test), seconds, pooler)


#: items recognised in one batch by the capacity curves (bounded memory however many are stored)
ENCODE_BATCH = 1024


def capacity_curve(cfg: SparseyConfig, x_train: np.ndarray, points: list[int]) -> dict[str, np.ndarray]:
    """Recall of every stored item (cued by itself) after storing the first n items, for n in ``points``.

    Only what the memory stored counts: a mac frozen by the critical period (or an inactive one) stores nothing,
    and its code for the item is its best match, which recognition gives again whether or not anything was
    remembered. So the :func:`recall_measures` (``exact``, ``overlap``, ``identity``: its stored code, among all
    stored items' codes, is the nearest in those macs) compare each item's code bits of the macs that learned it,
    over the items some mac learned; ``mac_exact`` is the fraction of level-1 macs that learned an item whose
    recognised code equals the one they stored; ``learning`` is the fraction of the active level-1 macs of the
    stored items that learned them (the rest were frozen)."""
    coder = SparseyCoder(cfg)
    points = sorted(p for p in set(points) if p <= len(x_train))
    last = points[-1] if points else 0
    learned = np.zeros((last, coder.n_code_bits), bool)
    learning = np.zeros((last, coder.n_code_bits), bool)           # bits of the macs not frozen at storage
    rows, stored = [], 0
    cells = coder.level1.n_macs * cfg.mac.n_cells
    for n in points:
        for i in range(stored, n):
            learning[i] = unfrozen_bits(coder)
            learned[i] = coder.learn_all(x_train[i:i + 1])[0][0]
        stored = n
        recalled = np.concatenate([coder.encode(x_train[i:min(i + ENCODE_BATCH, n)])[0]
                                   for i in range(0, n, ENCODE_BATCH)])
        mask = learning[:n]
        kept = (learned[:n] & mask).any(axis=1)                    # items some active mac learned
        row = recall_measures(learned[:n][kept] & mask[kept], recalled[kept] & mask[kept],
                              candidates=learned[:n], index=np.flatnonzero(kept))
        macs_l = learned[:n, :cells].reshape(n, coder.level1.n_macs, -1)
        macs_r = recalled[:, :cells].reshape(n, coder.level1.n_macs, -1)
        active = macs_l.any(axis=2)
        taught = active & learning[:n, :cells].reshape(n, coder.level1.n_macs, -1)[..., 0]
        row["mac_exact"] = float(((macs_l == macs_r).all(axis=2) & taught).sum() / max(taught.sum(), 1))
        row["learning"] = float(taught.sum() / max(active.sum(), 1))
        rows.append(row)
    return {"items": np.asarray(points, np.int64), **{m: np.array([r[m] for r in rows]) for m in rows[0]}}


def unfrozen_bits(coder: SparseyCoder) -> np.ndarray:
    """Bool [n_code_bits]: the cells of the macs (both levels) not frozen by the critical period, which store what
    they are given next."""
    parts = [np.repeat(~coder.level1.state.frozen, coder.cfg.mac.n_cells)]
    if coder.level2 is not None:
        parts.append(np.repeat(~coder.level2.state.frozen, coder.cfg.top.n_cells))
    return np.concatenate(parts)


def random_pattern_mac(cfg: SparseyConfig) -> SparseyConfig:
    """One whole-input mac with ``cfg``'s Q, K and CSA parameters, no activity gate and no critical period."""
    from dataclasses import replace

    mac = replace(cfg.mac, min_active_frac=0.0, max_active_frac=1.0, freeze_fraction=1.0, sequences=False)
    return cfg.one_mac(mac)


def random_like(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` random binary patterns [n, N] with the mean density of ``x`` [B, N] (seeded; drawn in blocks of
    :data:`ENCODE_BATCH` rows, the same patterns as in one draw)."""
    rng, density = np.random.default_rng(seed + 7), x.mean()
    return np.concatenate([rng.random((min(ENCODE_BATCH, n - i), x.shape[1])) < density
                           for i in range(0, n, ENCODE_BATCH)] or [np.zeros((0, x.shape[1]), bool)])


def cue_curves(coders: dict[str, Coded], x_train: np.ndarray, levels: list[float], n_items: int,
               seed: int) -> dict[str, np.ndarray]:
    """Recall (identity among the cued items and code overlap) of stored items from removed / flipped cues."""
    out = {}
    items = x_train[:n_items]
    for how in ("removed", "flipped"):
        cues = [degrade(items, level, how, seed + 1) for level in levels]
        for name, coded in coders.items():
            stored = coded.train[:n_items]
            rows = [recall_measures(stored, _encode(coded, cue)) for cue in cues]
            for m in ("identity", "overlap"):
                out[f"{how}_{name}_{m}"] = np.array([r[m] for r in rows])
    return out


def sequence_recall(cfg: SparseyConfig, ev, fly_cfg: FlyHashConfig, x: np.ndarray,
                    seed: int) -> dict[str, float]:
    """Sequences of distinct training images [S, T, N] stored once, recalled from their first two frames: the
    fraction of later frames whose recalled code is nearer (overlap) to its own stored code than to any other of the
    S·T stored codes (a tie among the k nearest counts 1/k, an empty recalled code 0). Sparsey: one whole-input
    mac (``sequence_cms`` × ``sequence_cells_per_cm``, the model's CSA parameters) with horizontal weights;
    control: fly-hash codes of the same size and sparsity chained by a :class:`SuccessorMemory`. ``ev``: the
    experiment's eval settings (``sequences``, ``sequence_length``, ``sequence_cms``, ``sequence_cells_per_cm``)."""
    from dataclasses import replace

    from spikecl.sdr.baselines import SuccessorMemory

    n_frames = ev.sequences * ev.sequence_length
    if n_frames > len(x):
        raise ConfigError(f"eval.sequences × eval.sequence_length = {n_frames} frames, but only {len(x)} training "
                          f"items")
    order = np.random.default_rng(seed + 11).permutation(len(x))[:n_frames]
    frames = x[order].reshape(ev.sequences, ev.sequence_length, -1)
    mac = replace(cfg.mac, n_cms=ev.sequence_cms, cells_per_cm=ev.sequence_cells_per_cm, sequences=True,
                  min_active_frac=0.0, max_active_frac=1.0, freeze_fraction=1.0)
    coder = SparseyCoder(cfg.one_mac(mac))
    n_bits = mac.n_cells
    fly = FlyHash(replace(fly_cfg, n_outputs=n_bits, sparsity=1.0 / mac.cells_per_cm, seed=seed), x.shape[1])
    successors = SuccessorMemory(n_bits, mac.n_cms)
    stored = {"sparsey": np.stack([coder.learn_sequence(f) for f in frames]),
              "flyhash": np.stack([fly.encode(f) for f in frames])}
    for codes in stored["flyhash"]:
        successors.store(codes)
    recalled = {"sparsey": np.stack([coder.recall_sequence(f[:2], len(f)) for f in frames]),
                "flyhash": np.stack([successors.recall(c[:2], len(c)) for c in stored["flyhash"]])}
    out = {}
    for name in stored:
        every = stored[name].reshape(n_frames, n_bits).astype(np.float32)
        later = recalled[name][:, 2:].reshape(-1, n_bits).astype(np.float32)
        own = (np.arange(n_frames).reshape(ev.sequences, ev.sequence_length)[:, 2:]).ravel()
        out[f"sequence_recall_{name}"] = float(_identity_hits(later @ every.T, own).mean())
    return out


def _encode(coded: Coded, x: np.ndarray) -> np.ndarray:
    codes = coded.model.encode(x)
    return codes[0] if isinstance(codes, tuple) else codes


def mac_activity_code(coder: SparseyCoder, codes: np.ndarray) -> np.ndarray:
    """A control code that keeps only *which* level-1 macs are active (each active mac as Q on bits): how much of
    the code-vs-input similarity comes from the receptive-field activity gating alone, not from the learned codes."""
    mac = coder.cfg.mac
    m = coder.level1.n_macs
    active = codes[:, : m * mac.n_cells].reshape(len(codes), m, mac.n_cells).any(axis=2)
    return np.repeat(active, mac.n_cms, axis=1)


def similarity(x_test: np.ndarray, coders: dict[str, np.ndarray], n_pairs: int,
               seed: int) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Spearman of code overlap vs input overlap on the same random test pairs for every coder."""
    out = {}
    for name, codes in coders.items():
        rho, xo, co = overlap_spearman(x_test, codes, n_pairs, seed)
        out[name] = (xo, co, rho)
    return out
