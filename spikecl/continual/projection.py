"""Shared machinery of the projection methods (HLOP, GPM): which synapses to protect, their presynaptic activity
as a matrix, and the orthogonal projection of weight gradients.

For a synapse with weight matrix ``W`` [out, n] (a conv kernel [C_out, C_in, k, k] is viewed as
[C_out, C_in·k·k]) and an orthonormal basis ``B`` [k, n] of past presynaptic activity, the protected update is

    ΔW ← ΔW − (ΔW Bᵀ) B          (equivalently: presynaptic traces projected as x⊥ = x − Bᵀ B x)

so responses ``W x`` to inputs ``x`` in span(B) do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikecl.continual.strategy import Strategy
from spikecl.snn.networks import SpikingNetwork


@dataclass
class ProtectedSynapse:
    """A weight matrix under protection: its ``name`` (the name of the layer whose input it receives, as in
    :meth:`~spikecl.snn.networks.SpikingNetwork.plastic_layers`) and its synapse module."""

    name: str
    synapse: nn.Module

    @property
    def weight(self) -> torch.Tensor:
        return self.synapse.weight

    @property
    def n_inputs(self) -> int:
        """Presynaptic dimension n (C_in·k·k for a convolution)."""
        return self.weight[0].numel()


def protected_synapses(model: SpikingNetwork) -> list[ProtectedSynapse]:
    """Every feature layer's synapse, and the readout's when it is a single shared head (per-task heads are
    trained only on their own task and need no protection)."""
    out = [ProtectedSynapse(f"layers.{i}", layer.synapse) for i, layer in enumerate(model.layers)]
    if len(model.readout.heads) == 1:
        out.append(ProtectedSynapse("readout", model.readout.heads[0]))
    return out


ACTIVITY = ("rate", "steps")


def activity_matrix(steps: torch.Tensor, synapse: nn.Module, max_rows: int | None = None,
                    generator: torch.Generator | None = None, activity: str = "rate") -> torch.Tensor:
    """The presynaptic input ``steps`` [T, B, *in_shape] of ``synapse`` as rows ``[N, n]``.

    ``activity = "rate"``: one row per sample, the per-step inputs averaged over time (firing rate / mean trace).
    ``"steps"``: one row per sample and time step (``N = T·B``), so that a subspace holding them protects the
    response to old inputs at every step, not only on average. For a convolution the rows are the unfolded input
    patches of every output position (``C_in·k·k`` each). Rows beyond ``max_rows`` are subsampled.
    """
    rate = steps.mean(dim=0) if activity == "rate" else steps.reshape(-1, *steps.shape[2:])
    if isinstance(synapse, nn.Conv2d):
        conv = synapse
        patches = F.unfold(rate, conv.kernel_size, dilation=conv.dilation, padding=conv.padding,
                           stride=conv.stride)                       # [B, n, L]
        rows = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    else:
        rows = rate.reshape(rate.shape[0], -1)
    if max_rows is not None and rows.shape[0] > max_rows:
        pick = torch.randperm(rows.shape[0], generator=generator)[:max_rows].to(rows.device)
        rows = rows[pick]
    return rows


def complement_rows(basis: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis [n − k, n] of the orthogonal complement of span(``basis`` [k, n], rows orthonormal)."""
    k, n = basis.shape
    q, _ = torch.linalg.qr(basis.T.double(), mode="complete")          # [n, n]; its first k columns span basis
    return q[:, k:].T.to(basis.dtype).contiguous()


def project_gradient(p: ProtectedSynapse, basis: torch.Tensor, complement: torch.Tensor | None = None) -> None:
    """Remove from ``p``'s weight gradient its component in span(``basis`` [k, n]) (rows orthonormal).

    With ``complement`` (:func:`complement_rows` of ``basis``) the gradient is instead kept in the complement,
    ``ΔW Cᵀ C`` (the same result; cheaper once more than half of the n dimensions are protected).
    """
    grad = p.weight.grad
    if grad is None or basis.shape[0] == 0:
        return
    flat = grad.reshape(grad.shape[0], -1)
    if complement is not None:
        flat.copy_((flat @ complement.T) @ complement)
    else:
        flat.sub_((flat @ basis.T) @ basis)



def new_directions(basis: torch.Tensor, activity: torch.Tensor, threshold: float) -> torch.Tensor:
    """GPM's energy criterion (Saha et al. 2021): the fewest principal directions (float64 [r, n]) of the part of
    ``activity`` [N, n] outside span(``basis`` [k, n], orthonormal rows) that, added to the basis, capture a
    fraction ``threshold`` of the activity's energy::

        ‖A Bᵀ‖² + Σ_{i ≤ r} σ_i(A − A Bᵀ B)²  ≥  threshold · ‖A‖²
    """
    a = activity.T.double()                                          # [n, N]
    m = basis.T.double()                                             # [n, k]
    total = (a ** 2).sum()
    residual = a - m @ (m.T @ a)
    kept = total - (residual ** 2).sum()
    if total <= 0 or kept / total >= threshold:
        return basis[:0].double()
    u, s, _ = torch.linalg.svd(residual, full_matrices=False)
    energy = kept + torch.cumsum(s ** 2, 0)
    r = int(torch.searchsorted(energy / total, torch.tensor(threshold, dtype=energy.dtype)).item()) + 1
    return u[:, :r].T


def grow_basis(basis: torch.Tensor, activity: torch.Tensor, threshold: float) -> torch.Tensor:
    """GPM's basis update: ``basis`` [k, n] orthonormal rows, ``activity`` [N, n] → new basis [k', n], k' ≥ k, with
    the :func:`new_directions` the threshold asks for."""
    added = new_directions(basis, activity, threshold)
    if added.shape[0] == 0:
        return basis
    q, _ = torch.linalg.qr(torch.cat([basis.double(), added]).T)     # re-orthonormalise against round-off
    return q.T.to(basis.dtype)


class ProjectionStrategy(Strategy):
    """Base of the methods that keep, per protected synapse, a subspace of past presynaptic activity and project
    weight gradients orthogonally to it (GPM, HLOP). Records the subspace sizes after every task."""

    orthonormal_bases = True        # bases handed to project() have orthonormal rows

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.synapses = protected_synapses(self.model)
        self.dims: list[list[int]] = []
        self._complements: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def before_task(self, task, train, seen):
        """From the second task on, normalisation layers are frozen (their statistics would otherwise drift and
        change responses to old inputs, which no gradient projection can prevent)."""
        if task > 0:
            for layer in self.model.layers:
                layer.freeze_norm()
        return train

    def empty(self) -> dict[str, torch.Tensor]:
        """{synapse name: an empty [0, n] basis}."""
        return {p.name: p.weight.new_zeros(0, p.n_inputs) for p in self.synapses}

    def project(self, bases: dict[str, torch.Tensor]) -> None:
        """Project every protected weight gradient orthogonally to its basis."""
        for p in self.synapses:
            project_gradient(p, bases[p.name], self._complement(p.name, bases[p.name]))

    def _complement(self, name: str, basis: torch.Tensor) -> torch.Tensor | None:
        """The complement of an orthonormal ``basis`` holding more than half of the dimensions (else None),
        computed once per basis."""
        cached = self._complements.get(name)
        if cached is None or cached[0] is not basis:
            k, n = basis.shape
            use = self.orthonormal_bases and 2 * k > n
            cached = self._complements[name] = (basis, complement_rows(basis) if use else None)
        return cached[1]

    def record_dims(self, bases: dict[str, torch.Tensor]) -> None:
        self.dims.append([int(bases[p.name].shape[0]) for p in self.synapses])

    def extra(self):
        return {"subspace_dims": np.asarray(self.dims, dtype=np.int64).reshape(len(self.dims), -1)}
