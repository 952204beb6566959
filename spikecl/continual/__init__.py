"""Continual learning: the strategy contract, strategies, metrics and the run loop.

Importing this package does not import torch: :mod:`spikecl.continual.metrics` is numpy-only; the strategies and
:mod:`spikecl.continual.runner` import torch when they are imported.
"""
