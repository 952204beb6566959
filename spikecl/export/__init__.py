"""Export of trained spiking networks to Loihi fixed point (Lava), netx HDF5 and NIR; resource estimates.

Torch-free: numpy, h5py and networkx only (the ``nir`` package for NIR files), so it imports in the Python 3.10
Lava environment. ``load_trained`` → ``quantize`` → ``write_netx``; ``fixed_point`` is the bit-accurate reference.
"""

from spikecl.export.netx import read_netx, write_netx
from spikecl.export.quantize import FixedLayer, FixedNetwork, QuantConfig, quantize
from spikecl.export.spec import LayerSpec, NetworkSpec, load_trained, spec_from_state

__all__ = ["FixedLayer", "FixedNetwork", "LayerSpec", "NetworkSpec", "QuantConfig", "load_trained", "quantize",
           "read_netx", "spec_from_state", "write_netx"]
