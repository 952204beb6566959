"""Register a dataset of your own and run continual-learning experiments on it, as on spikecl's own datasets.

The dataset here is synthetic: four classes of 8x8 images, each a bright blob at its own place on a noisy
background, 60 training and 30 test images per class, drawn from the seed the loader is passed. A loader may as
well read your own files (it finds them itself: spikecl passes it no data folder). It needs one function that
returns a ``spikecl.data.base.Dataset`` and one line to register it.

    python examples/custom_dataset.py            (a few seconds on a laptop CPU)

The file is also a plugin: ``spikecl run models/split_digits.toml --plugin examples/custom_dataset.py --set
'data.dataset="blobs"' --set stream.n_tasks=2`` runs an experiment on it from the command line, with ``--resume``,
results files, plots and ``--nproc``; ``spikecl report`` reads its results without the plugin, and ``spikecl export
--plugin examples/custom_dataset.py`` exports a network trained on it (with ``--set 'network.reset="zero"'``, the
reset Loihi's neurons have; split_digits trains the subtracting one). Its images have one channel, so Sparsey codes
them too: ``spikecl run models/sparsey_digits.toml --plugin examples/custom_dataset.py --set 'data.dataset="blobs"'``.
"""

import argparse

import numpy as np

from spikecl.data import register_dataset
from spikecl.data.base import Dataset

CENTRES = [(2, 2), (2, 5), (5, 2), (5, 5)]      # where each class's blob lies on the 8x8 grid


def load_blobs(seed: int) -> Dataset:
    """Images float32 [N, 1, 8, 8] in [0, 1], labels int64 [N] in 0..3."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:8, 0:8]

    def split(per_class: int):
        y = rng.permutation(np.repeat(np.arange(len(CENTRES)), per_class))
        centres = np.asarray(CENTRES)[y] + rng.normal(0, 0.5, (len(y), 2))
        blobs = np.exp(-((rows - centres[:, :1, None]) ** 2 + (cols - centres[:, 1:, None]) ** 2) / 2)
        x = np.clip(blobs + rng.uniform(0, 0.4, blobs.shape), 0, 1)
        return x[:, None].astype(np.float32), y.astype(np.int64)

    return Dataset("blobs", *split(60), *split(30), n_classes=len(CENTRES))


register_dataset("blobs", load_blobs, input_shape=(1, 8, 8), n_classes=len(CENTRES))

if __name__ == "__main__":
    from spikecl.config import experiment_from_dict
    from spikecl.continual.report import text_report
    from spikecl.continual.runner import ContinualRun

    argparse.ArgumentParser(description=__doc__,             # --help; no options
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    cfg = experiment_from_dict({
        "name": "custom-dataset", "data": {"dataset": "blobs"},
        "stream": {"kind": "split", "scenario": "class", "n_tasks": 2}, "network": {"hidden": [64]},
        "train": {"epochs": 5, "batch_size": 16, "eval_every": 0},
        "strategy": {"methods": ["finetune", "replay"]}})
    results = [ContinualRun(cfg, method, seed=0).execute() for method in cfg.strategy.methods]
    print(text_report(results))
