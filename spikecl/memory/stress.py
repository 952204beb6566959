"""Stress tests of the CA3 memory: random memories, recall quality, forgetting and capacity.

One *trial* (C cues, M bits, content density d, spacing s, seed) runs as one schedule, ``s`` ms between operations:

1. learn every cue a random content of ``k = max(1, round(d M))`` bits (cues in random order);
2. recall every cue by cue                                   -> recall-by-cue exactness;
3. recall by content: fragments of each size f (random f bits of a random cue's content)
                                                             -> hit rate, precision, extra cues vs OR theory;
   then the same queries again                               -> stability (recall by content writes weights);
4. relearn a fraction of the cues with new random contents   -> forgotten echo = old minus new;
5. recall every cue by cue again                             -> relearned cues give the new content, others kept.

Capacity: the information of the exactly recalled contents, ``n_exact * log2(binom(M, k))`` bits, per plastic
synapse (2CM), beside the Willshaw bound ln 2 = 0.69 bit/synapse (hetero-association, sparse patterns) and this
CAM's ceiling of C M bits in 2CM synapses = 0.5. Trials of one (C, M, options) run together in the torch stepper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from spikecl.memory.cam import run_batch
from spikecl.memory.params import CA3Params, as_params
from spikecl.memory.schedule import TAIL_STEPS, Operation, learn, make_schedule, recall_by_content, recall_by_cue

#: option sets compared against the published model
VARIANTS: dict[str, dict] = {
    "published": {},
    "read_only": {"read_only_recall": True},
    "k2": {"match_k": 2},
    "pool": {"inhibition": "pool"},
}


def variant_order(name: str) -> tuple[int, str]:
    """Sort key of a variant's name: :data:`VARIANTS` order, then others by name (tables and panels show the parts
    of a size in one order however they were read)."""
    return (list(VARIANTS).index(name) if name in VARIANTS else len(VARIANTS), name)


#: the recall-by-content metrics of each fragment size f, column ``content_<metric>_f<f>``
FRAGMENT_METRICS = ("hit", "precision", "extra", "as_specified", "extra_theory")
WILLSHAW_BITS_PER_SYNAPSE = math.log(2)
CAM_CEILING_BITS_PER_SYNAPSE = 0.5


@dataclass(frozen=True)
class Trial:
    """The operations of one stress trial and what each phase should answer."""

    n_cues: int
    n_bits: int
    density: float
    contents: tuple[tuple[int, ...], ...]                       # stored first, one per cue
    queries: tuple[tuple[int, tuple[int, ...]], ...]            # (source cue, fragment)
    relearned: tuple[tuple[int, tuple[int, ...]], ...]          # (cue, new content)
    operations: tuple[Operation, ...]

    @property
    def content_size(self) -> int:
        return len(self.contents[0])

    @property
    def final_contents(self) -> list[tuple[int, ...]]:
        final = list(self.contents)
        for cue, content in self.relearned:
            final[cue] = content
        return final


def content_size(n_bits: int, density: float) -> int:
    """Bits per stored content at a density: ``density * M`` rounded half up (0.25 of 10 bits: 3), at least 1."""
    return max(1, min(n_bits, math.floor(density * n_bits + 0.5 + 1e-9)))


def variant_params(base: CA3Params, variant: str) -> CA3Params:
    """``base`` with the options of the stress ``variant`` (one-line ConfigError where they do not go together)."""
    return replace(base, **VARIANTS[variant])


def table_columns(n_bits: int, densities: Sequence[float], fragment_sizes: Sequence[int],
                  queries_per_size: int = 10) -> tuple[str, ...]:
    """Every column :func:`run_grid` writes for M = ``n_bits``: density, spacing_ms, seed and the metrics (a
    fragment size larger than every content at ``densities`` is never queried, so it has no columns)."""
    largest = max(content_size(n_bits, d) for d in densities)
    sizes = [f for f in fragment_sizes if f <= largest] if queries_per_size > 0 else []
    return ("density", "spacing_ms", "seed", "cue_exact",
            *(f"content_{m}_f{f}" for f in sizes for m in FRAGMENT_METRICS),
            *(("content_repeat_same", "content_repeat_extra_gain") if sizes else ()),
            "forget_echo", "relearned_exact", "kept_exact", "bits_per_synapse")


def _new_content(draw, old: tuple[int, ...], possible: bool) -> tuple[int, ...]:
    """A drawn content other than ``old`` (where another one is ``possible``): a relearn must change what is
    stored, or it tests no forgetting."""
    new = draw()
    while possible and new == old:
        new = draw()
    return new


def make_trial(n_cues: int, n_bits: int, density: float, seed: int, fragment_sizes: Sequence[int] = (1, 2, 3),
               queries_per_size: int = 10, relearn_fraction: float = 0.25) -> Trial:
    """Draw a trial's random contents, queries and relearned cues from ``seed``: ``relearn_fraction`` of the cues
    rounded half up (at least 1; none where it is 0, whose relearn and echo columns are then undefined) are relearned,
    each with a new content other than its old one."""
    rng = np.random.default_rng(seed)
    k = content_size(n_bits, density)
    draw = lambda: tuple(sorted(rng.choice(n_bits, size=k, replace=False).tolist()))  # noqa: E731
    contents = tuple(draw() for _ in range(n_cues))
    queries = []
    for f in fragment_sizes:
        for _ in range(queries_per_size if f <= k else 0):
            cue = int(rng.integers(n_cues))
            queries.append((cue, tuple(sorted(rng.choice(contents[cue], size=f, replace=False).tolist()))))
    n_relearn = max(1, min(n_cues, math.floor(relearn_fraction * n_cues + 0.5 + 1e-9))) if relearn_fraction > 0 else 0
    relearned = tuple((int(c), _new_content(draw, contents[c], math.comb(n_bits, k) > 1))
                      for c in rng.choice(n_cues, size=n_relearn, replace=False))
    ops = [learn(int(c), contents[c]) for c in rng.permutation(n_cues)]
    ops += [recall_by_cue(c) for c in range(n_cues)]
    ops += [recall_by_content(fragment) for _, fragment in queries] * 2
    ops += [learn(c, x) for c, x in relearned]
    ops += [recall_by_cue(c) for c in range(n_cues)]
    return Trial(n_cues, n_bits, density, contents, tuple(queries), relearned, tuple(ops))


def least_steps(n_cues: int, spacing_ms: int) -> int:
    """The fewest steps (ms) a :func:`make_trial` trial of ``n_cues`` cues lasts ``spacing_ms`` apart: it learns
    every cue and recalls each by its cue twice (its queries and relearned cues only add to that)."""
    return (3 * n_cues - 1) * spacing_ms + max(spacing_ms, TAIL_STEPS)


def matching_chance(M: int, k: int, f: int, needed: int = 1) -> float:
    """The chance that a random k-bit content of M bits shares at least ``needed`` bits with a fragment of ``f``
    distinct bits (hypergeometric): the extra cues a fragment should match under ideal (k-of-n) matching are
    (C − 1) times this. (1 − (1 − k/M)^f), which draws the fragment's bits with replacement, is 7 % low at M = 10,
    k = 3, f = 3."""
    return sum(math.comb(k, j) * math.comb(M - k, f - j) for j in range(needed, min(k, f) + 1)) / math.comb(M, f)


def score_trial(trial: Trial, results, match_k: int = 0) -> dict[str, float]:
    """Metrics of one trial from its decoded results (one per operation, in order)."""
    C, M, k = trial.n_cues, trial.n_bits, trial.content_size
    first = results[C:2 * C]
    exact = [r.answer == trial.contents[c] for c, r in enumerate(first)]
    out = {"cue_exact": float(np.mean(exact))}
    q0 = 2 * C
    needed = max(1, match_k)
    by_size: dict[int, list] = {}
    for (cue, fragment), r in zip(trial.queries, results[q0:q0 + len(trial.queries)]):
        answer = set(r.answer)
        ideal = {c for c, x in enumerate(trial.contents) if len(set(x) & set(fragment)) >= needed}
        by_size.setdefault(len(fragment), []).append(
            (cue in answer, (1.0 / len(answer)) if cue in answer else 0.0, len(answer - {cue}), answer == ideal))
    for f, rows in by_size.items():
        values = (*(float(np.mean(col)) for col in zip(*rows)), (C - 1) * matching_chance(M, k, f, needed))
        out.update({f"content_{m}_f{f}": v for m, v in zip(FRAGMENT_METRICS, values)})
    n_q = len(trial.queries)
    if n_q:
        rounds = results[q0:q0 + n_q], results[q0 + n_q:q0 + 2 * n_q]
        out["content_repeat_same"] = float(np.mean([a.answer == b.answer for a, b in zip(*rounds)]))
        out["content_repeat_extra_gain"] = float(np.mean([len(b.answer) - len(a.answer) for a, b in zip(*rounds)]))
    r0 = q0 + 2 * n_q
    relearn_results = results[r0:r0 + len(trial.relearned)]
    forgot = [set(r.forgotten) == set(trial.contents[c]) - set(x) and r.bits == x
              for (c, x), r in zip(trial.relearned, relearn_results)]
    # a cue relearned twice echoes its intermediate content; score against what it held just before
    final = trial.final_contents
    last = results[r0 + len(trial.relearned):]
    changed = {c for c, _ in trial.relearned}
    new_ok = [last[c].answer == final[c] for c in changed]
    kept = [last[c].answer == final[c] for c in range(C) if c not in changed]
    out.update({"forget_echo": float(np.mean(forgot)) if forgot else float("nan"),
                "relearned_exact": float(np.mean(new_ok)) if new_ok else float("nan"),
                "kept_exact": float(np.mean(kept)) if kept else float("nan")})
    out["bits_per_synapse"] = sum(exact) * math.log2(math.comb(M, k)) / (2 * C * M)
    return out


@dataclass(frozen=True)
class StressGrid:
    """One batch: every (density, spacing, seed) of a memory size and option set."""

    n_cues: int
    n_bits: int
    variant: str
    densities: tuple[float, ...]
    spacings_ms: tuple[int, ...]
    seeds: tuple[int, ...]
    fragment_sizes: tuple[int, ...] = (1, 2, 3)
    queries_per_size: int = 10
    relearn_fraction: float = 0.25

    def cases(self) -> list[tuple[float, int, int]]:
        return [(d, s, seed) for d in self.densities for s in self.spacings_ms for seed in self.seeds]


def run_grid(grid: StressGrid, base: CA3Params | None = None, device: str = "cpu",
             workers: int = 1, precision: str = "float64") -> dict[str, np.ndarray]:
    """Run every case of ``grid`` as one torch batch (padded to the longest schedule; split over ``workers`` CPU
    processes when > 1; the stepper in ``precision``); returns columns
    ``density``, ``spacing_ms``, ``seed`` and one per metric (NaN where a metric does not apply), each
    ``[n_cases]``."""
    params = variant_params(as_params(base), grid.variant)
    cases = grid.cases()
    trials = [make_trial(grid.n_cues, grid.n_bits, density, _trial_seed((density, spacing, seed), grid),
                         grid.fragment_sizes, grid.queries_per_size, grid.relearn_fraction)
              for density, spacing, seed in cases]
    schedules = [make_schedule(t.operations, grid.n_cues, grid.n_bits, spacing)
                 for t, (_, spacing, _) in zip(trials, cases)]
    runs = run_batch(schedules, grid.n_cues, grid.n_bits, params, device=device, workers=workers,
                     precision=precision)
    rows = [score_trial(trial, run.results, params.match_k) for trial, run in zip(trials, runs)]
    keys = sorted({k for row in rows for k in row})
    table = {"density": np.array([c[0] for c in cases]), "spacing_ms": np.array([c[1] for c in cases]),
             "seed": np.array([c[2] for c in cases])}
    table.update({k: np.array([row.get(k, np.nan) for row in rows], dtype=float) for k in keys})
    return table


def _trial_seed(case: tuple[float, int, int], grid: StressGrid) -> int:
    """The same memories for every variant and spacing of a (C, M, density, seed): a paired comparison."""
    density, _, seed = case
    return int(np.random.SeedSequence([seed, grid.n_cues, grid.n_bits, int(round(density * 1000))])
               .generate_state(1)[0])
