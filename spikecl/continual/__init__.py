"""Continual learning: the strategy contract, strategies, metrics and the run loop.

Importing this package does not import torch: :mod:`spikecl.continual.metrics` and :mod:`spikecl.continual.results`
(the results files) are numpy-only; the strategies and :mod:`spikecl.continual.runner` import torch when they are
imported.
"""

# the method registry (torch-free: classes are imported when named) registers how recorded configs read
# (spikecl.recorded.RECORDED_OPTIONS) as soon as any part of continual learning is
from spikecl.continual import strategies  # noqa: E402,F401
