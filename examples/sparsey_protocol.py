"""Sparsey measured honestly: settings chosen on a validation split, the test split read once, several data splits.

Each candidate setting of the coder (three critical periods, and G computed from the normalised input sums U
instead of the local support V) stores the training images of a selection seed (its own data split, 10 % of
every class held out as validation) and is scored by its 5-NN accuracy on the validation images, which never
touches a test image. The best candidate then runs once per evaluation seed on the test split, each seed with its
own train/test split, beside the fixed fly-hash code of the same size and sparsity, the k-WTA spatial pooler and the
pixels under the same protocol. Prints mean ± std over the seeds.

    python examples/sparsey_protocol.py            # a small version (600 training images, 2 seeds): under a minute
    python examples/sparsey_protocol.py --full     # docs/sdr.md's table: all of MNIST-5k, 5 seeds, about 5 minutes
    python examples/sparsey_protocol.py --full --dataset digits    # scikit-learn's 8x8 digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from spikecl.sdr.experiment import load_config, run_seed

MODELS = Path(__file__).resolve().parents[1] / "models"
CANDIDATES = {"freeze 0.2": ["coder.mac.freeze_fraction=0.2"],
              "freeze 0.3 (the model files)": [],
              "freeze 0.5": ["coder.mac.freeze_fraction=0.5"],
              "freeze 0.3, G from U": ['coder.mac.familiarity_from="u"']}
ROWS = (("Sparsey", "sparsey"), ("fly-hash (fixed)", "flyhash"), ("k-WTA pooler", "pooler"), ("pixels", "pixels"))


def measure(dataset: str, overrides: list[str], seed: int, split: str, small: bool) -> dict[str, float]:
    """One seed's metrics with the validation protocol (``split``: "validation" or "test")."""
    sizes = ["eval.train_items=600", "eval.test_items=200"] if small else []
    cfg = load_config(MODELS / f"sparsey_{dataset}.toml", [*overrides, *sizes, "data.validation=0.1", f'data.eval_split="{split}"',
                              "data.vary_split=true", "eval.spiking_items=0", "eval.capacity_points=[100]",
                              "eval.random_capacity_points=[10]", "eval.cue_items=10", "eval.cue_levels=[0.0]"])
    return run_seed(cfg, seed, progress=False)["metrics"]


def mean_std(values: list[float], scale: float, digits: int) -> str:
    """``mean ± std`` (sample std) of ``values`` × ``scale``; blank when there are none."""
    if not values:
        return ""
    return f"{scale * np.mean(values):.{digits}f} ± {scale * np.std(values, ddof=1):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every training image and 5 evaluation seeds")
    parser.add_argument("--dataset", default="mnist5k", choices=("mnist5k", "digits"))
    args = parser.parse_args()
    small = not args.full
    seeds = [0, 1] if small else [0, 1, 2, 3, 4]
    scores = {name: measure(args.dataset, overrides, 100, "validation", small)["sparsey_acc_knn5"]
              for name, overrides in CANDIDATES.items()}
    for name, score in scores.items():
        print(f"validation (seed 100): {name:<28} Sparsey 5-NN {100 * score:.1f} %")
    chosen = max(scores, key=scores.get)
    print(f"chosen on validation: {chosen}; now the test split, seeds {seeds} (each its own data split)")
    runs = [measure(args.dataset, CANDIDATES[chosen], seed, "test", small) for seed in seeds]
    print(f"\n{'code':<18} {'1-NN ACC %':>14} {'5-NN ACC %':>14} {'Spearman rho':>14}")
    for label, key in ROWS:
        cells = [mean_std([r[m] for r in runs if m in r], 100, 1) for m in (f"{key}_acc_knn1", f"{key}_acc_knn5")]
        cells.append(mean_std([r[f"spearman_{key}"] for r in runs if f"spearman_{key}" in r], 1, 3))
        print(f"{label:<18} " + " ".join(f"{c:>14}" for c in cells))
    votes = [r["sparsey_acc_votes"] for r in runs]
    print(f"Sparsey's own class-vote readout: ACC {100 * np.mean(votes):.1f} ± {100 * np.std(votes, ddof=1):.1f} %")


if __name__ == "__main__":
    main()
