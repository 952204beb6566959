"""Sparse distributed representations: the :class:`SDR` value type, a Sparsey-style coder, memory uses (recall,
sequences, class readout), k-WTA baselines and a spiking (snnTorch) realisation of the coder's recognition mode.

Importing this package imports only numpy; :mod:`spikecl.sdr.spiking` imports torch when it is used.
"""

from spikecl.sdr.sdr import SDR, code_statistics, stack_dense
from spikecl.sdr.sparsey import MacConfig, MacLayer, SparseyCoder, SparseyConfig

__all__ = ["SDR", "code_statistics", "stack_dense", "MacConfig", "MacLayer", "SparseyCoder", "SparseyConfig"]
