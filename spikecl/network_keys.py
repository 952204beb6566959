"""Where a trained spiking network keeps its arrays in its ``state_dict``: the one written home of the names that
:class:`spikecl.snn.networks.SpikingNetwork` gives its modules and that :mod:`spikecl.export.spec` reads back
without torch. Renaming a module of the network means changing it here (``tests/test_export.py`` builds every
network kind and checks each stored array against :func:`part_of`).

==============================  =================================================================================
``layers.{i}.synapse.``         hidden layer ``i``'s Linear or Conv2d: ``weight`` [out, in] or [C_out, C_in, k, k],
                                ``bias``
``layers.{i}.norm.``            its batch norm (CNN): ``weight``, ``bias``, ``running_mean``, ``running_var``, …
``layers.{i}.lif.``             its LIF neurons' snnTorch buffers: ``beta``, ``threshold``, ``reset_mechanism_val``
``readout.heads.{h}.``          readout head ``h``: ``weight`` [n_outputs, n_in], ``bias``
``readout.integrator.``         the readout's leaky integrator: ``beta``, ``threshold``
==============================  =================================================================================
"""

from __future__ import annotations

import re

SYNAPSE, NORM, LIF = "synapse.", "norm.", "lif."          # the parts of a hidden layer
INTEGRATOR = "readout.integrator."


def hidden(i: int) -> str:
    """The prefix of hidden layer ``i`` (0-based); its parts follow: :data:`SYNAPSE`, :data:`NORM`, :data:`LIF`."""
    return f"layers.{i}."


def head(h: int) -> str:
    """The prefix of readout head ``h`` (0-based): ``weight``, ``bias``."""
    return f"readout.heads.{h}."


def part_of(key: str) -> str | None:
    """The prefix in the table above that ``key`` falls under, or None.

    >>> part_of("layers.1.synapse.weight"), part_of("readout.heads.2.bias"), part_of("layers.1.syn.weight")
    ('layers.1.synapse.', 'readout.heads.2.', None)
    """
    for prefix in (*(hidden(_index(key, "layers.")) + part for part in (SYNAPSE, NORM, LIF)),
                   head(_index(key, "readout.heads.")), INTEGRATOR):
        if key.startswith(prefix) and len(key) > len(prefix):
            return prefix
    return None


def _index(key: str, prefix: str) -> int:
    """The number after ``prefix`` at the start of ``key`` (-1 if there is none)."""
    match = re.match(re.escape(prefix) + r"(\d+)\.", key)
    return int(match.group(1)) if match else -1
