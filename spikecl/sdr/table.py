"""The text table of a Sparsey experiment: each coder's readout accuracies, learning time, code size and
similarity preservation side by side (one seed, or mean ± std over seeds), with the published figure beside them."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from spikecl.rounding import half_up


#: Rinkus (arXiv 1710.07829): 2-level model, 16x24 binarised skeletonised MNIST, 200 training images per class.
PUBLISHED = {"accuracy": 0.91, "learn_seconds": 220.0, "train_items": 2000}


def _cell(values: Sequence[float], digits: int, scale: float = 1.0) -> str:
    """One value, or the mean ± sample std of several (one per seed), scaled and rounded to ``digits`` (a tie away
    from zero, :func:`~spikecl.rounding.half_up`)."""
    v = scale * np.asarray(values, np.float64)
    cell = lambda x: f"{half_up(x, digits):.{digits}f}"                        # noqa: E731
    return cell(v[0]) if len(v) == 1 else f"{cell(v.mean())} ± {cell(v.std(ddof=1))}"


def comparison_rows(metrics: Sequence[dict[str, float]], k: int) -> list[str]:
    """The comparison table's lines (header, rule, one row per coder) of one seed's ``metrics``, or of several
    seeds' as mean ± std."""
    get = lambda key: [m[key] for m in metrics]                                  # noqa: E731
    pct = lambda key: _cell(get(key), 1, 100.0)                                  # noqa: E731
    rho = lambda name: (_cell(get(f"spearman_{name}"), 3),                       # noqa: E731
                        _cell(get(f"spearman_cosine_{name}"), 3) if all(f"spearman_cosine_{name}" in m for m in metrics)
                        else "")                                  # files written before 2026-12-06 hold no cosine rho
    rows = [("", "votes", "Bayes", "1-NN (one-pass codes)", "1-NN", f"{k}-NN", "learn s (1 thread)", "ms/item",
             "bits", "active", "Spearman", "Spearman (cosine)")]
    for name, label in (("sparsey", "Sparsey"), ("pooler", "k-WTA spatial pooler")):
        rows.append((label, *[pct(f"{name}_acc_{r}") for r in ("votes", "bayes", "knn1_learned", "knn1", f"knn{k}")],
                     _cell(get(f"{name}_learn_seconds"), 2), _cell(get(f"{name}_learn_ms_per_item"), 3),
                     _cell(get(f"{name}_code_bits"), 0), _cell(get(f"{name}_active_bits"), 0), *rho(name)))
    rows.append(("fly-hash control (fixed)", "", "", "", pct("flyhash_acc_knn1"), pct(f"flyhash_acc_knn{k}"),
                 *[""] * 4, *rho("flyhash")))
    rows.append(("Sparsey mac activity only", *[""] * 9, *rho("macactivity")))
    rows.append(("pixels", "", "", "", pct("pixels_acc_knn1"), pct(f"pixels_acc_knn{k}"), *[""] * 6))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]   # no trailing spaces to wrap
    lines.insert(1, "-" * len(lines[0]))
    if all("spiking_code_match" in m for m in metrics):
        lines.append(f"Sparsey, LIF WTA groups: codes equal to the coder's: stored "
                     f"{_cell(get('spiking_learn_match'), 0, 100.0)} %, recognised "
                     f"{_cell(get('spiking_code_match'), 0, 100.0)} %")
    lines.append("Spearman: ρ of code overlap |a∩b| against input overlap over random test pairs; (cosine): of")
    lines.append("|a∩b| / sqrt(|a|·|b|) on both sides, which does not credit a code whose size follows the input's")
    return lines


def format_table(metrics: dict[str, float], k: int, n_train: int, split: str = "test") -> str:
    """The comparison printed after a run (accuracies on the ``split`` named)."""
    lines = comparison_rows([metrics], k)
    for name, label in (("sparsey", "Sparsey"), ("pooler", "spatial pooler")):
        stat = lambda key: metrics[f"{name}_code_{key}"]     # noqa: E731
        text = (f"{label} codes of the evaluation images: sparsity {100 * stat('sparsity'):.2f} %, bits ever active "
                f"{100 * stat('fraction_used'):.1f} %, mean bit entropy {stat('entropy'):.3f} bit")
        if f"{name}_mean_familiarity" in metrics:
            text += f"; mean familiarity G while storing {metrics[f'{name}_mean_familiarity']:.2f}"
        lines.append(text)
    for key, what in (("cue_half_removed", "stored item recalled from a cue with half of its active pixels removed"),
                      ("sequence_recall", "sequence frames recalled from the first two (fly-hash: by a successor "
                                          "memory)")):
        if f"{key}_sparsey" in metrics:
            lines.append(f"{what}: Sparsey {100 * metrics[f'{key}_sparsey']:.1f} %, "
                         f"fly-hash {100 * metrics[f'{key}_flyhash']:.1f} %")
    exact = metrics["random_capacity_exact_items"]
    lines.append(f"one mac with the same Q and K recalls every stored random pattern exactly up to {exact:.0f} "
                 "patterns (largest such capacity point)" if exact else "one mac with the same Q and K recalls the "
                 "stored random patterns exactly at none of the capacity points (eval.random_capacity_points)")
    published = (f"published Sparsey (Rinkus, arXiv 1710.07829), on MNIST: {100 * PUBLISHED['accuracy']:.0f} % after "
                 f"one pass over {PUBLISHED['train_items']} images (2-level, 16x24 skeletonised), "
                 f"{PUBLISHED['learn_seconds']:.0f} s on one thread")
    where = ("validation images (held out of training; no test image evaluated)" if split == "validation"
             else "test images")
    return (f"accuracy (%) on the {where} after one pass over {n_train} training items\n" + "\n".join(lines) + "\n"
            + published)
