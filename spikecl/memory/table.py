"""The summary table of a ``ca3`` experiment: the functional check against SpiNNaker with its decoded answers, and
per memory size and variant the stress metrics at each spacing."""

from __future__ import annotations

import json

import numpy as np

from spikecl.experiment_kind import not_in_report
from spikecl.memory.results import check_parts, params_text
from spikecl.memory.recordings import mismatch_text
from spikecl.memory.stress import CAM_CEILING_BITS_PER_SYNAPSE, WILLSHAW_BITS_PER_SYNAPSE, variant_order
from spikecl.rounding import half_up


def summary_text(results: dict[str, dict]) -> str:
    """Tables of a finished experiment: the functional check and, per memory size and variant, stress metrics at
    each spacing (means over densities and seeds). ``results``: {file: part as
    :func:`~spikecl.memory.results.read_part` gives it}."""
    note = check_parts(results)
    lines = []
    for a in [part["attrs"] for part in results.values() if part["attrs"]["part"] == "functional"]:
        lines.append(f"functional (recorded exp1, {a['backend']}{params_text(a, ', with ')}): "
                     f"{mismatch_text(a['mismatched_spikes'])}; {float(a['seconds']):.2f} s for "
                     f"{int(a['duration_ms'])} ms")
        for d in json.loads(a["decoded"]):
            extra = f"  forgotten {d['forgotten']}" if d["forgotten"] else ""
            lines.append(f"  t={d['start_ms']:>3} ms  {d['operation']:<32} -> cues {d['cues']} bits {d['bits']}{extra}")
    stress = sorted((part for part in results.values() if part["attrs"]["part"] == "stress"),
                    key=lambda p: (int(p["attrs"]["n_cues"]), int(p["attrs"]["n_bits"]),
                                   variant_order(str(p["attrs"]["variant"]))))
    fragments = sorted({int(key.rsplit("_f", 1)[1]) for part in stress for key in part["table"]
                        if key.startswith("content_precision_f")})
    cols = (("cue_exact", "cue exact"), *((f"content_hit_f{f}", f"hit f{f}") for f in fragments[:1]),
            *((f"content_precision_f{f}", f"prec f{f}") for f in fragments), ("content_repeat_same", "repeat"),
            ("relearned_exact", "relearn"), ("forget_echo", "echo"), ("kept_exact", "kept"),
            ("bits_per_synapse", "bits/syn"))
    if stress:
        lines.append("")
        lines.append(f"stress (means over densities and seeds; Willshaw bound {WILLSHAW_BITS_PER_SYNAPSE:.2f} "
                     f"bit/synapse, CAM ceiling {CAM_CEILING_BITS_PER_SYNAPSE:.2f})")
        lines.append(f"{'C x M':>9} {'variant':<10} {'gap':>4} " + " ".join(f"{h:>9}" for _, h in cols) + "   s")
        partly = False
        for part in stress:
            a, table = part["attrs"], part["table"]
            for spacing in np.unique(table["spacing_ms"]):
                rows = table["spacing_ms"] == spacing
                cells = []
                for c, _ in cols:
                    finite = np.isfinite(table[c][rows]) if c in table else np.zeros(1, bool)
                    value = np.nanmean(table[c][rows]) if finite.any() else np.nan
                    value = half_up(value, 3)                # a tie as every table rounds it
                    cells.append(f"{value:>8.3f}\u2020" if finite.any() and not finite.all() else f"{value:>9.3f}")
                    partly |= bool(finite.any() and not finite.all())
                label = a["variant"] + ("*" if params_text(a) else "")
                lines.append(f"{int(a['n_cues']):>4}x{int(a['n_bits']):<4} {label:<10} {int(spacing):>4} "
                             + " ".join(cells) + f"  {float(a['seconds']):5.1f}")
        if partly:
            lines.append("\u2020 mean over only the densities and seeds where the measure is defined (e.g. no "
                         "precision for a fragment larger than a memory's active bits)")
        for a in [part["attrs"] for part in stress if params_text(part["attrs"])]:
            lines.append(f"* {int(a['n_cues'])}x{int(a['n_bits'])} {a['variant']} ran with [params] "
                         f"{params_text(a)} (on top of the variant's own options)")
    missing = missing_parts(results)
    return "\n".join(lines + ([note] if note else []) + ([missing] if missing else []))


def missing_parts(results: dict[str, dict]) -> str:
    """A line naming the parts the experiment of ``results`` names (each part records its config: the functional
    part, and a stress part per size and variant) that none of them is; "" when none is missing."""
    planned, present = set(), set()
    for part in results.values():
        config, a = part.get("config") or {}, part["attrs"]
        present.add("the functional part" if a["part"] == "functional" else
                    f"stress {int(a['n_cues'])}x{int(a['n_bits'])} {a['variant']}")
        functional, stress = config.get("functional") or {}, config.get("stress") or {}
        if isinstance(functional, dict) and functional.get("enabled") is True:
            planned.add("the functional part")
        if isinstance(stress, dict) and stress.get("enabled") is True:
            planned |= {f"stress {size[0]}x{size[1]} {variant}" for size in stress.get("sizes") or []
                        for variant in stress.get("variants") or []
                        if isinstance(size, list) and len(size) == 2 and isinstance(variant, str)}
    return not_in_report(sorted(planned - present, key=lambda name: (name != "the functional part", name)), "file")
