"""Sparsey measured honestly: settings chosen on a validation split, the test split read once, several data splits.

Each candidate setting of the coder stores the training images of a selection seed (its own validation split: 10 %
of every class held out of one training split, ``data.test_split_seed = 1000``'s; the model files' settings were
designed earlier on the test images of seed 0's split, of which this one shares about a fifth, as chance gives) and
is scored by its 5-NN accuracy on the validation images, which never touches a test image.
Then, once per evaluation seed (each with its own validation split, all with one test split), the test split
measures the chosen setting and, as their own rows, the model "as published" (G from the normalised input sums U,
recognition with familiarity-contingent noise, distinct overlapping receptive fields, a level of several macs above
them), the same model with the canonical CSA ("reference CSA": G from the local support V, the
max-V cells when recognising), the fixed fly-hash code of the same size and sparsity, the k-WTA spatial pooler and
the pixels under the same protocol. Prints mean ± std over the seeds and writes them to ``--out`` (JSON). With
``--out``, each measurement is kept as it ends in ``<out>.partial``: a protocol killed midway continues there when
run again with the same arguments (by the same spikecl source), and the file goes once ``--out`` is written.

    python examples/sparsey_protocol.py            # a small version (600 training images, 2 seeds): 1-2 CPU minutes
    python examples/sparsey_protocol.py --full     # docs/sdr.md's table: all of MNIST-5k, 5 seeds, about 25 minutes
    python examples/sparsey_protocol.py --full --dataset digits    # scikit-learn's 8x8 digits, about 2 minutes
    python examples/sparsey_protocol.py --full --test-split-seed 2000 --test-excludes 0 1000   # blind: a test split
                                              # sharing no image with seed 0's, on which settings were designed
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from spikecl.atomic import atomic_write, check_output
from spikecl.data.datasets import load_dataset
from spikecl.environment import environment
from spikecl.errors import SpikeCLError
from spikecl.remedies import command_line
from spikecl.sdr.experiment import load_config, run_seed

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIFTED = ['coder.ensemble="shifted"']
#: the two CSA settings of the "as published" row that the canonical CSA has otherwise (G from V, max-V cells when
#: recognising): the "reference CSA" row is the same model without them
PUBLISHED_CSA = ['coder.mac.familiarity_from="u"', 'coder.top.familiarity_from="u"', 'coder.mac.recognition="sample"',
                 'coder.top.recognition="sample"']


def candidates(dense_grid: int, top_grid: int, top_patch: int) -> dict[str, list[str]]:
    """The candidate settings (overrides of models/sparsey_<dataset>.toml) for a dataset whose denser grid of
    distinct fields is ``dense_grid`` × ``dense_grid`` and whose published-style level 2 is a ``top_grid`` ×
    ``top_grid`` grid of macs over ``top_patch`` × ``top_patch`` level-1 blocks; "as published" and "reference CSA"
    (its hierarchy with the canonical CSA) are candidates too."""
    hierarchy = [*SHIFTED, "coder.two_level=true", f"coder.top_grid=[{top_grid},{top_grid}]",
                 f"coder.top_patch=[{top_patch},{top_patch}]"]
    return {"the model file (freeze 0.3)": [],
            "freeze 0.2": ["coder.mac.freeze_fraction=0.2"],
            "freeze 0.5": ["coder.mac.freeze_fraction=0.5"],
            "G from U": ['coder.mac.familiarity_from="u"'],
            "shifted ensemble": SHIFTED,
            "shifted ensemble of 3": [*SHIFTED, "coder.n_macs=3"],
            f"{dense_grid}x{dense_grid} distinct fields": [f"coder.grid=[{dense_grid},{dense_grid}]", "coder.n_macs=1"],
            "as published": [*PUBLISHED_CSA, *hierarchy],
            "reference CSA": hierarchy}


CANDIDATES = {"mnist5k": candidates(14, 3, 4), "digits": candidates(5, 2, 2)}
BASELINES = (("fly-hash (fixed)", "flyhash"), ("k-WTA pooler", "pooler"), ("pixels", "pixels"))
COLUMNS = (("1-NN ACC %", "{}_acc_knn1", 100, 1), ("5-NN ACC %", "{}_acc_knn5", 100, 1),
           ("Bayes ACC %", "{}_acc_bayes", 100, 1), ("Spearman ρ", "spearman_{}", 1, 3),
           ("ρ of cosines", "spearman_cosine_{}", 1, 3),
           ("½-cue recall %", "cue_half_removed_{}", 100, 1), ("sequence recall %", "sequence_recall_{}", 100, 1))


def measure(dataset: str, overrides: list[str], seed: int, split: str, small: bool,
            test_split: tuple[int, list[int]] = (1000, [])) -> dict[str, float]:
    """One seed's metrics with the validation protocol (``split``: "validation" or "test"; ``test_split``: the
    ``data.test_split_seed`` and ``data.test_excludes`` of the train/test split)."""
    sizes = ["eval.train_items=600", "eval.test_items=200", "eval.sequences=10"] if small else []
    cfg = load_config(MODELS / f"sparsey_{dataset}.toml",
                      [*overrides, *sizes, "data.validation=0.1", f'data.eval_split="{split}"', "data.vary_split=true",
                       f"data.test_split_seed={test_split[0]}", f"data.test_excludes={list(test_split[1])}",
                       "eval.spiking_items=0", "eval.capacity_points=[100]", "eval.random_capacity_points=[10]",
                       "eval.cue_levels=[0.5]", "eval.cue_items=200"])
    return run_seed(cfg, seed, progress=False)["metrics"]


class Measured:
    """:func:`measure`, each result kept in ``path`` (None: nowhere) as it ends, written atomically, so that a killed
    protocol's rerun measures only what is missing; a file another spikecl source wrote is not reused."""

    def __init__(self, path: Path | None):
        self.path, self.source = path, environment()["spikecl_source"]
        kept = json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else {}
        self.done = kept.get("done", {}) if kept.get("source") == self.source else {}
        if self.done:
            print(f"continuing from {path}: {len(self.done)} measurements kept", flush=True)

    def __call__(self, *args, **kwargs) -> dict[str, float]:
        key = json.dumps([args, kwargs], sort_keys=True)
        if key not in self.done:
            self.done[key] = measure(*args, **kwargs)
            if self.path is not None:
                text = json.dumps({"source": self.source, "done": self.done})
                atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=True)
        return self.done[key]


def table(rows: dict[str, tuple[list[dict], str]]) -> tuple[str, dict]:
    """The printed table and its numbers (mean, sample std, per-seed values) for rows label -> (per-seed metrics,
    metric key)."""
    lines = [f"{'code':<34}" + "".join(f"{c[0]:>18}" for c in COLUMNS)]
    numbers = {}
    for label, (runs, key) in rows.items():
        cells, text = {}, []
        for name, pattern, scale, digits in COLUMNS:
            values = [scale * r[pattern.format(key)] for r in runs if pattern.format(key) in r]
            if values:
                cells[name] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)), "values": values}
            text.append(f"{cells[name]['mean']:.{digits}f} ± {cells[name]['std']:.{digits}f}" if values else "")
        numbers[label] = cells
        lines.append(f"{label:<34}" + "".join(f"{t:>18}" for t in text))
    return "\n".join(lines), numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every training image and 5 evaluation seeds")
    parser.add_argument("--dataset", default="mnist5k", choices=tuple(CANDIDATES))
    parser.add_argument("--out", type=Path, help="write the selection and the table as JSON here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--test-split-seed", type=int, default=1000, help="data.test_split_seed (default 1000)")
    parser.add_argument("--test-excludes", type=int, nargs="*", default=[],
                        help="data.test_excludes: seeds whose splits' test images the test split leaves out")
    args = parser.parse_args()
    try:
        if args.out:
            check_output(args.out, args.overwrite)          # before the protocol's minutes of work
    except SpikeCLError as exc:
        parser.error(f"--out: {exc}")
    small = not args.full
    seeds = [0, 1] if small else [0, 1, 2, 3, 4]
    candidates = CANDIDATES[args.dataset]
    split = (args.test_split_seed, args.test_excludes)
    try:                                                    # the split, checked before any work
        data = load_config(MODELS / f"sparsey_{args.dataset}.toml", [f"data.test_split_seed={split[0]}",
                                                                     f"data.test_excludes={list(split[1])}"]).data
        load_dataset(data.dataset, seed=data.test_split_seed, excludes=data.test_excludes)
    except SpikeCLError as exc:
        parser.error(str(exc))
    measured = Measured(args.out.with_name(args.out.name + ".partial") if args.out else None)
    scores = {}
    for name, overrides in candidates.items():
        scores[name] = measured(args.dataset, overrides, 100, "validation", small, split)["sparsey_acc_knn5"]
        print(f"validation (seed 100): {name:<28} Sparsey 5-NN {100 * scores[name]:.1f} %", flush=True)
    chosen = max(scores, key=scores.get)
    print(f"chosen on validation: {chosen}; now the test split, seeds {seeds} (each its own validation split, one "
          "test split)", flush=True)
    runs = {name: [measured(args.dataset, candidates[name], seed, "test", small, split) for seed in seeds]
            for name in dict.fromkeys([chosen, "as published", "reference CSA"])}
    rows = {f"Sparsey, {name}": (runs[name], "sparsey") for name in runs}
    rows.update({label: (runs[chosen], key) for label, key in BASELINES})
    text, numbers = table(rows)
    print("\n" + text)
    if args.out:
        record = {"dataset": args.dataset, "full": args.full, "seeds": seeds, "test_split_seed": split[0],
                  "test_excludes": split[1], "validation_5nn": scores,
                  "chosen": chosen, "candidates": candidates, "table": numbers}
        atomic_write(args.out, lambda tmp: tmp.write_text(json.dumps(record, indent=1), encoding="utf-8"),
                     overwrite=args.overwrite)
        measured.path.unlink(missing_ok=True)
        print(f"written: {args.out}")


if __name__ == "__main__":
    with command_line():                                    # spikecl's errors name this script's flags (--overwrite)
        try:
            main()
        except KeyboardInterrupt:
            print("sparsey_protocol: interrupted; with --out, the same command continues from the measurements "
                  "kept in <out>.partial", file=sys.stderr)
            sys.exit(130)
