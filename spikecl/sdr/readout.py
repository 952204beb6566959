"""Reading classes and similarity out of binary codes (numpy; codes are bool ``[B, n_bits]``).

* :class:`ClassVotes` — semantic memory from episodes: every code cell counts, in one pass, how often it was active
  for each class; a new code is classified by the summed counts of its active cells (per-class normalised), or by
  the Bernoulli naive-Bayes log-likelihood of all its bits under those counts (``rule="bayes"``).
* :func:`knn_predict` — k nearest stored codes by overlap (the number of shared active bits).
* :func:`overlap_spearman` — Spearman correlation of code overlap against input overlap over item pairs: how well a
  code preserves similarity (SISC).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from spikecl.errors import ConfigError, ShapeError, require
from spikecl.sdr.sdr import check_binary, check_int

#: the label a readout gives a code that shares no active bit with what it learned (an empty code, or one whose
#: cells never fired while learning): it carries no evidence of any class, so it counts as wrong, never as a class
NO_ANSWER = -1


def _codes(codes: np.ndarray, n_bits: int | None = None, name: str = "codes") -> np.ndarray:
    """Binary codes ``[B, n_bits]`` as float32; another shape or a value other than 0 or 1 (NaN included) is a
    one-line ShapeError."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or (n_bits is not None and codes.shape[1] != n_bits):
        raise ShapeError(f"{name} must be [B, {n_bits or 'n_bits'}], got shape {codes.shape}")
    return check_binary(codes, name).astype(np.float32)


def _labels(y: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (n and (y.min() < 0 or y.max() >= n_classes)):
        raise ShapeError(f"labels must be {n} integers in 0..{n_classes - 1}, got shape {y.shape}, dtype {y.dtype}")
    return y


class ClassVotes:
    """Class-vote counts ``[n_bits, n_classes]`` of code cells, learned in one pass."""

    def __init__(self, n_bits: int, n_classes: int):
        n_bits, n_classes = check_int(n_bits, "n_bits", 1), check_int(n_classes, "n_classes", 1)
        self.counts = np.zeros((n_bits, n_classes), np.float64)
        self.class_items = np.zeros(n_classes, np.float64)

    def add(self, codes: np.ndarray, y: np.ndarray) -> None:
        """Count codes [B, n_bits] with labels y [B]."""
        codes = _codes(codes, self.counts.shape[0])
        y = _labels(y, len(codes), self.counts.shape[1])
        onehot = np.eye(self.counts.shape[1])[y]
        self.counts += codes.T @ onehot
        self.class_items += onehot.sum(axis=0)

    def scores(self, codes: np.ndarray) -> np.ndarray:
        """Per-class votes [B, n_classes]: Σ over active cells of count / items of the class."""
        return _codes(codes, self.counts.shape[0]) @ (self.counts / np.maximum(self.class_items, 1.0))

    def log_likelihood(self, codes: np.ndarray, alpha: float = 0.1) -> np.ndarray:
        """Per-class Σ_i log P(bit i | class) [B, n_classes] with P(i | c) = (count + α) / (items of c + 2α); α is
        a finite number > 0 (α = 0 would take the log of 0)."""
        if isinstance(alpha, (bool, np.bool_)) or not (isinstance(alpha, numbers.Real) and math.isfinite(alpha)
                                                       and alpha > 0):
            raise ConfigError(f"alpha must be a finite number > 0 (the count smoothing), got {alpha!r}")
        codes = _codes(codes, self.counts.shape[0])
        p = (self.counts + alpha) / (self.class_items + 2 * alpha)
        return codes @ np.log(p) + (1.0 - codes) @ np.log1p(-p)

    def predict(self, codes: np.ndarray, rule: str = "votes") -> np.ndarray:
        """Labels [B]: ``rule`` "votes" (summed normalised counts; :data:`NO_ANSWER` for a code none of whose cells
        has a count) or "bayes" (naive-Bayes log-likelihood, which its inactive bits and the class sizes decide
        for any code)."""
        if rule not in ("votes", "bayes"):
            raise ConfigError(f"rule must be 'votes' or 'bayes', got {rule!r}")
        if rule == "bayes":
            return self.log_likelihood(codes).argmax(axis=1)
        scores = self.scores(codes)
        return np.where(scores.max(axis=1) > 0, scores.argmax(axis=1), NO_ANSWER)


def knn_predict(train_codes: np.ndarray, train_y: np.ndarray, test_codes: np.ndarray, k: int = 1,
                n_classes: int | None = None, chunk: int = 1024, cosine: bool = True) -> np.ndarray:
    """Labels [B_test] by majority over the k stored codes with the largest overlap; a tie in votes goes to the class
    whose codes are nearer (the larger Σ 1 + 10⁻³·(k − rank) over its codes), so nearness never outweighs a vote.
    ``cosine`` divides the overlap by √(|a|·|b|), so codes with more active bits are not favoured. A test code that
    overlaps no stored code has no nearest one: :data:`NO_ANSWER` (before 2026-12-06 the first stored codes' label);
    among the k, a stored code it overlaps in no bit has no vote (before 2026-12-08 such codes, taken in stored
    order, could outvote the few that overlap)."""
    k, chunk = check_int(k, "k", 1), check_int(chunk, "chunk", 1)
    train = _codes(train_codes, name="train_codes")
    test = _codes(test_codes, train.shape[1], "test_codes")
    if not 1 <= k <= len(train):
        raise ShapeError(f"k = {k} neighbours out of {len(train)} stored codes is impossible")
    if n_classes is None:
        train_y = np.asarray(train_y)
        if not np.issubdtype(train_y.dtype, np.integer) or not train_y.size:
            raise ShapeError(f"labels must be integers, got dtype {train_y.dtype} (shape {train_y.shape})")
        n_classes = int(train_y.max()) + 1
    train_y = _labels(train_y, len(train), check_int(n_classes, "n_classes", 1))
    out = np.empty(len(test), np.int64)
    scale = 1.0 / np.sqrt(np.maximum(train.sum(axis=1), 1.0)) if cosine else np.ones(len(train), np.float32)
    for start in range(0, len(test), chunk):
        ov = (test[start:start + chunk] @ train.T) * scale
        near = np.argsort(-ov, axis=1, kind="stable")[:, :k]
        voting = np.take_along_axis(ov, near, axis=1) > 0
        out[start:start + chunk] = np.where(voting[:, 0], _majority(train_y[near], n_classes, voting), NO_ANSWER)
    return out


def _majority(labels: np.ndarray, n_classes: int, voting: np.ndarray | None = None) -> np.ndarray:
    """The most frequent label of each row of ``labels`` [B, k] (nearest first) among those ``voting`` (bool [B, k],
    default all): int64 [B], for any k. Among the classes with the most votes the one with the largest
    Σ (1 + 10⁻³·(k − rank)) over its codes wins, i.e. the smaller sum of nearness ranks (equal rank sums fall as
    the float sums round, as before: for k ≤ 44, where the bonus could not outweigh a vote, every result is as it
    was)."""
    rows, k = np.arange(len(labels))[:, None], labels.shape[1]
    voting = np.ones(labels.shape, bool) if voting is None else voting
    counts = np.zeros((len(labels), n_classes), np.int64)
    np.add.at(counts, (rows, labels), voting.astype(np.int64))
    votes = np.zeros((len(labels), n_classes))
    np.add.at(votes, (rows, labels), voting * (1.0 + 1e-3 * np.arange(k, 0, -1)))
    votes[counts < counts.max(axis=1, keepdims=True)] = -np.inf
    return votes.argmax(axis=1)


def pair_overlaps(a: np.ndarray, n_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random distinct item pairs (i, j) ``[P]`` each, reproducible, for ``a`` with B >= 2 rows."""
    n, n_pairs, seed = len(a), check_int(n_pairs, "n_pairs", 1), check_int(seed, "seed", 0)
    if n < 2:
        raise ShapeError("pairs need at least two items")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n
    return i, j


def overlap_spearman(inputs: np.ndarray, codes: np.ndarray, n_pairs: int = 5000, seed: int = 0,
                     cosine: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
    """Spearman ρ of code overlap vs input overlap over random pairs, with the overlaps [P] themselves; ``inputs``
    and ``codes`` must be binary (else a one-line ShapeError, NaN and infinity included). ρ is NaN, with no warning,
    where either overlap is the same in every pair: a correlation with a constant is undefined. ``cosine``: each
    overlap divided by the geometric mean of the two sizes, |a∩b| / √(|a|·|b|) (0 where either is empty), so that
    a code whose size follows the input's (its number of active pixels) is not credited for that alone."""
    stats = require("scipy.stats", "data")
    inputs, codes = check_binary(inputs, "inputs").astype(bool), check_binary(codes, "codes").astype(bool)
    if inputs.ndim != 2 or codes.ndim != 2:
        raise ShapeError(f"inputs and codes must be [B, n] each, got shapes {inputs.shape} and {codes.shape}")
    if len(inputs) != len(codes):
        raise ShapeError(f"{len(inputs)} inputs but {len(codes)} codes")
    i, j = pair_overlaps(inputs, n_pairs, seed)
    x, c = (_overlaps(a, i, j, cosine) for a in (inputs, codes))
    if np.ptp(x) == 0 or np.ptp(c) == 0:
        return math.nan, x, c
    return float(stats.spearmanr(x, c).statistic), x, c


def _overlaps(bits: np.ndarray, i: np.ndarray, j: np.ndarray, cosine: bool) -> np.ndarray:
    """|a∩b| of the rows ``i`` and ``j`` of ``bits`` [B, n] bool, or (``cosine``) that over √(|a|·|b|), 0 where a
    row is empty."""
    shared = (bits[i] & bits[j]).sum(axis=1)
    if not cosine:
        return shared
    sizes = bits.sum(axis=1).astype(np.float64)
    scale = np.sqrt(sizes[i] * sizes[j])
    return np.divide(shared, scale, out=np.zeros(len(shared)), where=scale > 0)
