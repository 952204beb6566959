"""spikecl: continual learning in spiking neural networks, from simulation to neuromorphic hardware.

The top-level package is light: it imports only numpy, h5py and networkx. Torch lives under
:mod:`spikecl.snn` and :mod:`spikecl.continual` (training), Brian2 under :mod:`spikecl.memory`.
"""

from spikecl.errors import SpikeCLError

__version__ = "0.1.0"
__all__ = ["SpikeCLError", "__version__"]
