"""The CA3 memory's plastic projections on Lava's learning engine: pair-based additive STDP, all-pairs traces.

The rule, in Lava's sum-of-products form (``Loihi2FLearningRule``, learning epoch ``t_epoch = 1`` step)::

    dw = x1 * y0  -  x2 * y0  -  y1 * x0
    x1: impulse A+, tau tau+      pre trace
    x2: impulse A+, tau 1e-3      this step's pre impulse only (exp(-1000) = 0 the step after)
    y1: impulse A-, tau tau-      post trace, fed by post spikes ``post_lag`` steps late (``CA3Cells.s_out_bap``)

With the post spikes seen one step late (``p' = p + 1``), the stepper's rule is: a seen post at step ``p'``
potentiates by the pre trace of spikes strictly before ``p'`` (``x1 - x2``: Lava's x1 at y0 includes the same
step's impulse), a pre spike at ``r`` depresses by the post trace of seen posts up to and including ``r``
(``y1`` at x0, same-step pairs counted).

Where Lava's engine differs from the stepper, and what :class:`BoundedLearningDense` (a custom ProcessModel of
Lava's floating-point learning synapse) does about it:

* weights: the engine saturates only at the sign (w >= 0); here at ``[w_min, w_max]``, as a weight's bit range does
  on a chip;
* one update per epoch: the engine adds the step's potentiation and depression and saturates once; the stepper
  clips after the potentiation and again after the depression. ``split_update`` applies the two halves of the rule
  (:data:`POTENTIATION`, :data:`DEPRESSION`) one after the other, each saturated. Without it, a step with a seen
  post and a pre spike on one synapse whose potentiation overshoots ``w_max`` ends higher (measured on the
  functional experiment: 2 synapses off by up to 2.66 nA, spikes unchanged);
* transmission order: ``LearningDense`` sends a pre spike through the weights from before its step's learning;
  the stepper through the updated row. ``transmit_after_learning`` recomputes the output after learning. Without
  it the relearned cue keeps its forgotten bits (16 spike events differ, recall accuracy 0.8 instead of 1.0);
* ``x1 - x2`` at a same-step pair is ``(a e + A+) - A+``, the stepper's ``a e`` up to rounding; the functional
  experiment's weights still come out bit for bit equal.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.learning.learning_rule import Loihi2FLearningRule
from lava.magma.core.learning.learning_rule_applier import LearningRuleApplierFloat
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.magma.core.model.py.connection import LearningConnectionModelFloat
from lava.proc.dense.models import AbstractPyDenseModelFloat
from lava.proc.dense.process import LearningDense

POTENTIATION, DEPRESSION = "x1 * y0 - x2 * y0", "-y1 * x0"
RULE = f"{POTENTIATION} - y1 * x0"
#: decay time constant (ms) of the x2 trace: exp(-1 / 1e-3) underflows to 0, so x2 holds this step's impulse only
INSTANT_TAU_MS = 1e-3


def stdp_rule(a_plus: float, a_minus: float, tau_plus: float, tau_minus: float, dw: str = RULE) \
        -> Loihi2FLearningRule:
    """The CA3 rule (see the module docstring) with amplitudes in nA and time constants in ms (steps); ``dw``:
    the whole rule or one of its two halves (:data:`POTENTIATION`, :data:`DEPRESSION`)."""
    return Loihi2FLearningRule(dw=dw, x1_impulse=a_plus, x1_tau=tau_plus, x2_impulse=a_plus,
                               x2_tau=INSTANT_TAU_MS, y1_impulse=a_minus, y1_tau=tau_minus, t_epoch=1)


class BoundedLearningDense(LearningDense):
    """``LearningDense`` whose weights saturate at ``[w_min, w_max]`` and which saves them (``[post, pre]``, nA)
    to ``save`` (``.npy``) after the learning of step ``steps``. ``split_update``: saturate after the
    potentiation and again after the depression (the stepper) instead of once after their sum (the engine);
    ``transmit_after_learning``: a pre spike sends the weights after its step's learning (the stepper) instead of
    before it (``LearningDense``). Both off: Lava's stock engine with a weight range."""

    def __init__(self, *, weights: np.ndarray, learning_rule: Loihi2FLearningRule, w_min: float, w_max: float,
                 steps: int, save: str, split_update: bool = True, transmit_after_learning: bool = True,
                 name: str | None = None) -> None:
        super().__init__(weights=weights, learning_rule=learning_rule, name=name, w_min=float(w_min),
                         w_max=float(w_max), steps=int(steps), save=str(save), split_update=bool(split_update),
                         transmit_after_learning=bool(transmit_after_learning))


@implements(proc=BoundedLearningDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyBoundedLearningDenseModelFloat(LearningConnectionModelFloat, AbstractPyDenseModelFloat):
    """Lava's floating-point learning engine (traces, dependencies, sum-of-products rule) with bounded weights and
    the two stepper orderings of :class:`BoundedLearningDense`."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        p = proc_params
        self.w_min, self.w_max, self.steps, self.save = p["w_min"], p["w_max"], p["steps"], p["save"]
        self.after = p["transmit_after_learning"]
        self.halves = None
        if p["split_update"]:       # each half applies one dw product; the traces stay the process's own rule's
            rule = self._learning_rule
            self.halves = [LearningRuleApplierFloat(stdp_rule(
                rule.x1_impulse, rule.y1_impulse, rule.x1_tau, rule.y1_tau, dw).active_product_series["dw"])
                for dw in (POTENTIATION, DEPRESSION)]
        self.spiked = None

    def run_spk(self) -> None:
        self.a_out.send(self.a_buff)              # computed last step: one step of latency, as every Dense
        self.spiked = self.s_in.recv().astype(bool)
        if not self.after:
            self.a_buff = self.weights[:, self.spiked].sum(axis=1)
        self.recv_traces(self.spiked)

    def run_lrn(self) -> None:
        super().run_lrn()
        if self.after:
            self.a_buff = self.weights[:, self.spiked].sum(axis=1)
        if self.time_step == self.steps:
            np.save(self.save, self.weights)

    def _apply_learning_rules(self, x_traces_history: np.ndarray, y_traces_history: np.ndarray) -> None:
        if self.halves is None:
            return super()._apply_learning_rules(x_traces_history, y_traces_history)
        args = self._extract_applier_args(x_traces_history, y_traces_history)
        weights = self.weights
        for half in self.halves:                  # potentiation, saturate, depression, saturate
            args["weights"] = weights
            weights = np.clip(half.apply(weights, **args), self.w_min, self.w_max)
        self.weights = weights

    def _saturate_synaptic_variable(self, name: str, values: np.ndarray) -> np.ndarray:
        if name == "weights":
            return np.clip(values, self.w_min, self.w_max)
        return super()._saturate_synaptic_variable(name, values)
