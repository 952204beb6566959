"""Datasets and task streams (numpy only: no torch at import).

* :mod:`spikecl.data.datasets` — offline real data (digits, MNIST-5k) and loaders for MNIST, Fashion-MNIST,
  CIFAR-10/100 and miniImageNet files in their standard formats.
* :mod:`spikecl.data.streams` — permuted, rotated and split task streams in task-, domain- and class-incremental
  scenarios; ``stream_from_config``, the one builder of an experiment's stream.
* :mod:`spikecl.data.codes` — fixed sparse input codes (k-winners, fly hash).

:func:`register_dataset` makes a dataset of one's own known to experiments (``data.dataset``), from a ``--plugin``.
"""

from spikecl.data.datasets import register_dataset

__all__ = ["register_dataset"]
