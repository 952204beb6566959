"""Gradient projection memory (Saha, Garg & Roy, ICLR 2021): the SVD counterpart of HLOP.

After each task, the presynaptic activity of every protected synapse on ``samples`` training samples is collected
as a matrix ``A`` [n, N]. Its residual after projecting out the current basis ``M`` is decomposed into singular
pairs (by the eigendecomposition of its smaller Gram matrix, see
:func:`~spikecl.continual.projection.principal_directions`), and the fewest new directions are added so that the
basis captures a fraction ``threshold`` of A's energy::

    ‖Mᵀ A‖² + Σ_{i ≤ r} σ_i(A − M Mᵀ A)²  ≥  threshold · ‖A‖²

Weight gradients of later tasks are projected orthogonally to span(M) (combined with another projection method,
to the union of both subspaces: :meth:`~spikecl.continual.projection.ProjectionStrategy.projected_bases`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikecl.continual.projection import ACTIVITY, ProjectionStrategy, activity_matrix, grow_basis
from spikecl.options import option


@dataclass
class GPMOptions:
    thresholds: list[float] = option([0.95, 0.99, 0.99], nonempty=True, low=0.0, high=1.0,
                                     doc="energy threshold per protected synapse (the last one repeats; values "
                                         "past the network's protected synapses are unused, e.g. a readout's under "
                                         "per-task heads)")
    threshold_increment: float = option(0.0, low=0.0, high=1.0, doc="added to every threshold after each task")
    samples: int = option(300, low=1, doc="training samples whose activity defines each task's subspace")
    max_rows: int = option(20000, low=1, doc="representation rows kept per task, a random subset beyond it (conv "
                                             "layers: patches; Linear with activity 'steps': time-step rows)")
    activity: str = option("rate", choices=ACTIVITY,
                           doc="representation matrix rows: per-sample firing rates ('rate') or every time step's "
                               "presynaptic input ('steps')")


class GPM(ProjectionStrategy):
    name = "gpm"
    supports_data_parallel = True
    Options = GPMOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bases = self.empty()

    def per_synapse_lists(self) -> dict[str, list]:
        return {"thresholds": self.options.thresholds}

    def threshold(self, index: int, task: int) -> float:
        values = self.options.thresholds
        value = values[min(index, len(values) - 1)] + task * self.options.threshold_increment
        return min(value, 1.0)

    def protected_bases(self):
        return self.bases

    def after_backward(self, activity=None):
        self.project(self.projected_bases())
        self.release()

    @torch.no_grad()
    def after_task(self, task, train):
        recorded = self.activity_of(train, min(self.options.samples, len(train)))
        generator = self.random_generator(task)
        for i, p in enumerate(self.synapses):
            rows = activity_matrix(recorded.of(p.name), p.synapse, self.options.max_rows, generator,
                                   self.options.activity)
            self.bases[p.name] = grow_basis(self.bases[p.name], rows, self.threshold(i, task))
        self.record_dims(self.bases)

    def state_dict(self):
        return {"bases": self.bases, "dims": self.dims}

    def load_state_dict(self, state):
        bases, dims = self.state_entries(state, ("bases", "dims"))
        self.bases, self.dims = dict(bases), [list(d) for d in dims]
