"""CA3 cells as Lava's own ``LIFRefractory`` (floating point): the same update order as spikecl's discretisation.

Lava's LIF updates ``u = u (1 - du) + a_in`` and then ``v = v (1 - dv) + u``: with ``u`` the stepper's current
times the population's membrane gain (folded into every weight onto it), ``v`` the membrane minus ``v_rest``,
``du = 1 - exp(-dt/tau_syn)``, ``dv = 1 - exp(-dt/tau_m)`` and ``vth = v_thresh - v_rest``, this is the stepper's
step; ``refractory_period = refractory_steps - 1`` holds ``v`` at 0 (``v_reset = v_rest``) for the skipped update.
The values agree with :class:`~spikecl_lava.learning.ca3_cells.CA3Cells` up to float rounding (the products are
formed in another order). The post spikes the learning rule sees late come from a relay ``LIF`` that fires one
step after its input; spikes are recorded by :class:`~spikecl_lava.processes.recorder.SpikeFile`.
"""

from __future__ import annotations

import numpy as np

from spikecl.errors import ConfigError
from spikecl_lava.learning.ca3_cells import Population
from spikecl_lava.processes.recorder import SpikeFile


def lif_population(name: str, attrs: dict, net: dict, bap_lag: int, steps: int, record: str) -> Population:
    """One population as ``LIFRefractory`` (+ a relay for ``bap_lag`` >= 1 and a recorder saving ``record``)."""
    from lava.proc.dense.process import Dense, DelayDense
    from lava.proc.lif.process import LIF, LIFRefractory

    if net["v_reset_mV"] != net["v_rest_mV"] or int(net["refractory_steps"]) < 2:
        raise ConfigError("Lava's LIFRefractory needs v_reset = v_rest and a refractory period of at least one step")
    n = attrs["size"]
    cells = LIFRefractory(shape=(n,), du=1.0 - net["syn_decay"], dv=1.0 - attrs["alpha"],
                          vth=attrs["v_thresh_mV"] - net["v_rest_mV"],
                          refractory_period=int(net["refractory_steps"]) - 1, name=name)
    recorder = SpikeFile(shape=(n,), steps=steps, path=record)
    cells.s_out.connect(recorder.a_in)
    bap = cells.s_out
    if bap_lag:
        relay = LIF(shape=(n,), du=1.0, dv=1.0, vth=0.5, name=f"{name}_bap")
        link = Dense(weights=np.eye(n)) if bap_lag == 1 else DelayDense(weights=np.eye(n),
                                                                         delays=np.eye(n, dtype=int) * (bap_lag - 1))
        cells.s_out.connect(link.s_in)
        link.a_out.connect(relay.a_in)
        bap = relay.s_out
    gain = attrs["gain"]
    return Population(cells.a_in, cells.a_in, cells.s_out, bap, gain, gain * attrs["plastic_scale"],
                      lambda: np.load(record).T.astype(bool))
