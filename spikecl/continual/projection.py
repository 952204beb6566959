"""Shared machinery of the projection methods (HLOP, GPM): which synapses to protect, their presynaptic activity
as a matrix, and the orthogonal projection of weight gradients.

For a synapse with weight matrix ``W`` [out, n] (a conv kernel [C_out, C_in, k, k] is viewed as
[C_out, C_in·k·k]) and an orthonormal basis ``B`` [k, n] of past presynaptic activity, the protected update is

    ΔW ← ΔW − (ΔW Bᵀ) B          (equivalently: presynaptic traces projected as x⊥ = x − Bᵀ B x)

so responses ``W x`` to inputs ``x`` in span(B) do not change.

Cost per training step (:class:`Projector`, :meth:`ProjectionStrategy.project`): a Linear layer whose input has fewer
rows N than outputs (e.g. T·B = 384 < 800, or B rows of a static input) gets its weight gradient from projected
presynaptic rows, ``deltaᵀ (x − (x Bᵀ) B)`` (N·n·k multiply-adds twice), instead of projecting ``ΔW``
(out·n·k twice); otherwise the gradient is projected. A basis holding more than half of the dimensions is applied
through a matrix formed once per basis (its complement, or ``I − BᵀB`` when the rows are not orthonormal); a layer
whose basis is empty is left alone and one whose orthonormal basis is full (k = n) gets a zero gradient. Rows that
are not orthonormal (HLOP's as published, ``orthonormalize = false``) are applied as ``I − HᵀH`` even at k = n, as
the published method does: that leaks in proportion to ``‖HHᵀ − I‖`` (about 1e-3 for rows learned over several tasks).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikecl.continual.strategy import Strategy, parts_of, sent_to
from spikecl.errors import NumericalError
from spikecl.options import field_default
from spikecl.snn.fused import is_static
from spikecl.snn.networks import SpikingNetwork


@dataclass
class ProtectedSynapse:
    """A weight matrix under protection: its ``name`` (the name of the layer whose input it receives, as in
    :meth:`~spikecl.snn.networks.SpikingNetwork.plastic_layers`) and its synapse module."""

    name: str
    synapse: nn.Module
    layer: nn.Module | None = None          # the spiking layer that calls the synapse (None: the readout)

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
    out = [ProtectedSynapse(f"layers.{i}", layer.synapse, layer) for i, layer in enumerate(model.layers)]
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
    patches of every output position (``C_in·k·k`` each). Rows beyond ``max_rows`` are subsampled. A static input
    (direct encoding, a stride-0 time axis) is unfolded once; its T copies are indexed, never materialised.
    """
    copies = 1
    if activity == "steps" and steps.shape[0] > 1 and is_static(steps):
        copies, steps = steps.shape[0], steps[:1]
    rate = steps.mean(dim=0) if activity == "rate" else steps.reshape(-1, *steps.shape[2:])
    if isinstance(synapse, nn.Conv2d):
        conv = synapse
        patches = F.unfold(rate, conv.kernel_size, dilation=conv.dilation, padding=conv.padding,
                           stride=conv.stride)                       # [B, n, L]
        rows = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    else:
        rows = rate.reshape(rate.shape[0], -1)
    total = copies * rows.shape[0]                                   # row i is copy i // N of row i % N
    if max_rows is not None and total > max_rows:
        pick = torch.randperm(total, generator=generator)[:max_rows] % rows.shape[0]
        return rows[sent_to(pick, rows.device)]
    return rows.repeat(copies, 1) if copies > 1 else rows


def complement_rows(basis: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis [n − k, n] of the orthogonal complement of span(``basis`` [k, n], rows orthonormal)."""
    k, n = basis.shape
    if k >= n:                                                         # n orthonormal rows span everything
        return basis.new_zeros(0, n)
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


class Projector:
    """Rows ``x`` [N, n] ↦ ``x (I − BᵀB)``, B = ``basis`` [k, n], by the cheapest exact route:
    ``x − (x Bᵀ) B`` (2·n·k per row), or once 2k > n through a matrix formed once: ``(x Cᵀ) C`` with the
    complement C of orthonormal rows (``orthonormal``; 2·n·(n − k) per row, 0 when k = n) or ``x M``,
    M = I − BᵀB (n·n per row).

    Keeps its latest result with its input (reused while the input is unchanged: HLOP's Hebbian update learns from
    the residual the weight gradient was projected with); ``used``: a layer's training pass went through it.
    """

    def __init__(self, basis: torch.Tensor, orthonormal: bool = True) -> None:
        k, n = basis.shape
        self.basis, self.used, self._last = basis, False, None
        large = 2 * k > n
        self.complement = complement_rows(basis) if large and orthonormal else None
        eye = torch.eye(n, dtype=basis.dtype, device=basis.device)
        self.matrix = eye - basis.T @ basis if large and not orthonormal else None

    @property
    def full(self) -> bool:
        """Every dimension is protected (the projection is zero)."""
        return self.complement is not None and self.complement.shape[0] == 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [N, n] minus its component in span(basis) (the latest result again for the same input)."""
        if self._last is not None:
            kept, out, version = self._last
            if _same_tensor(kept, version, x) and not _capturing(x):
                return out
        if self.full:
            out = torch.zeros_like(x)
        elif self.complement is not None:
            out = (x @ self.complement.T) @ self.complement
        elif self.matrix is not None:
            out = x @ self.matrix
        else:
            out = x - (x @ self.basis.T) @ self.basis
        self._last = (x, out, x._version)
        return out

    def forget(self) -> None:
        """Drop the kept result (and the input it holds on to)."""
        self._last = None

    def project_gradient(self, p: ProtectedSynapse) -> None:
        """Project ``p``'s weight gradient [out, n] in place (a conv kernel viewed as [C_out, C_in·k·k])."""
        grad = p.weight.grad
        if grad is None:
            return
        flat = grad.reshape(grad.shape[0], -1)
        if self.full:
            flat.zero_()
        elif self.matrix is not None:
            flat.copy_(flat @ self.matrix)
        else:
            project_gradient(p, self.basis, self.complement)


def _capturing(x: torch.Tensor) -> bool:
    """A CUDA graph is being captured on ``x``'s stream: its kernels must be recorded, not a result kept before."""
    return x.is_cuda and torch.cuda.is_current_stream_capturing()


def _same_tensor(a: torch.Tensor, version: int, b: torch.Tensor) -> bool:
    """``b`` holds the values ``a`` held at its ``version``: the same memory and layout, written to by no in-place
    operation since (``a`` is held, so its memory cannot have been reused; views share one version counter)."""
    return (a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()
            and a.dtype == b.dtype and b._version == version)


def new_directions(basis: torch.Tensor, activity: torch.Tensor, threshold: float) -> torch.Tensor:
    """GPM's energy criterion (Saha et al. 2021): the fewest principal directions (float64 [r, n]) of the part of
    ``activity`` [N, n] outside span(``basis`` [k, n], orthonormal rows) that, added to the basis, capture a
    fraction ``threshold`` of the activity's energy::

        ‖A Bᵀ‖² + Σ_{i ≤ r} σ_i(A − A Bᵀ B)²  ≥  threshold · ‖A‖²

    Directions without energy are never added, so a threshold of 1 adds every direction the residual has and no
    more (at most n − k). A direction has energy when σ² > ``n · eps² · ‖A‖²``, eps the machine epsilon of the
    basis dtype; below that it is the round-off of a basis orthonormal only to its precision (about
    1e-15 · ‖A‖² for float32 rows), while a direction holding 1e-8 of the energy is kept.
    """
    a = activity.T.double()                                          # [n, N]
    m = basis.T.double()                                             # [n, k]
    n, k = m.shape
    total = (a ** 2).sum()
    residual = a - m @ (m.T @ a)
    kept = total - (residual ** 2).sum()
    if total <= 0 or kept / total >= threshold or k >= n:
        return basis[:0].double()
    u, s = principal_directions(residual)
    with_energy = int((s ** 2 > n * torch.finfo(basis.dtype).eps ** 2 * total).sum())
    u, s = u[:, :min(with_energy, n - k)], s[:min(with_energy, n - k)]
    energy = kept + torch.cumsum(s ** 2, 0)
    share = torch.tensor(threshold, dtype=energy.dtype, device=energy.device)   # searchsorted: one device
    r = int(torch.searchsorted(energy / total, share).item()) + 1
    return u[:, :r].T


def principal_directions(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The left singular vectors ``u`` [n, r] and singular values ``s`` [r] (largest first) of ``a`` [n, N]
    (float64), those with ``s² > max(n, N) · eps · s_max²`` only (the others are round-off).

    From the eigendecomposition of the smaller Gram matrix: ``a aᵀ`` (its eigenvectors are ``u``) or ``aᵀ a``
    (eigenvectors ``v``, ``u = a v / s``), the same singular pairs as an SVD to round-off in ``s_max``, in 40–60 % of
    its time at GPM's sizes (n = 800, N = 300) and a tenth for conv patches (n = 576, N = 4,000).
    """
    n, samples = a.shape
    gram = a @ a.T if n <= samples else a.T @ a
    values, vectors = torch.linalg.eigh(gram)                        # ascending
    values, vectors = values.flip(0), vectors.flip(1)
    keep = values > values[0].clamp_min(0) * max(n, samples) * torch.finfo(a.dtype).eps
    s = values[keep].sqrt()
    if n <= samples:
        return vectors[:, keep], s
    return (a @ vectors[:, keep]) / s, s


def grow_basis(basis: torch.Tensor, activity: torch.Tensor, threshold: float) -> torch.Tensor:
    """GPM's basis update: ``basis`` [k, n] orthonormal rows, ``activity`` [N, n] → new basis [k', n], k' ≥ k: the
    old rows as they are, then the :func:`new_directions` the threshold asks for, orthonormalised (in float64,
    against round-off) among themselves and against the old rows, which they are orthogonal to already."""
    added = new_directions(basis, activity, threshold)
    if added.shape[0] == 0:
        return basis
    old = basis.double()
    return torch.cat([basis, orthonormal_rows(added - (added @ old.T) @ old).to(basis.dtype)])


def orthonormal_rows(h: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis [rank, n] of the row space of ``h`` [k, n]: Gram-Schmidt's (QR) when the rows are
    independent, the right singular vectors when some depend on others (relative tolerance 1e-6)."""
    if h.shape[0] == 0:
        return h
    if not torch.isfinite(h).all():
        raise NumericalError("orthonormal_rows: the rows hold NaN or infinity")
    q, r = torch.linalg.qr(h.T.double())
    keep = r.diagonal().abs() > 1e-6 * r.diagonal().abs().max()
    if keep.all():                                   # independent rows: Gram-Schmidt's basis, laid out as always
        return q[:, keep].T.to(h.dtype)
    _, s, vh = torch.linalg.svd(h.double(), full_matrices=False)     # dependent rows: QR would lose directions
    return vh[s > 1e-6 * s.max()].to(h.dtype)


#: a part's direction outside the span of the parts before it counts when its singular value (its rows' extent
#: outside that span) exceeds this fraction of the part's largest: HLOP and GPM learning nearly the same subspace
#: then protect it once, not twice (its noise would otherwise be protected as directions of their own)
UNION_TOLERANCE = 1e-2


def union_rows(bases: list[torch.Tensor], tolerance: float = UNION_TOLERANCE) -> torch.Tensor:
    """Orthonormal rows [k, n] spanning the union of the row spaces of ``bases`` (each [k_i, n], orthonormal or
    not): each basis in turn adds the right singular vectors of its rows' residual outside the span so far whose
    singular values exceed ``tolerance`` times its own largest (an SVD, so no direction is lost to row order)."""
    out = bases[0].new_zeros(0, bases[0].shape[1])
    for rows in bases:
        if rows.shape[0] == 0:
            continue
        rows = rows.double()
        scale = torch.linalg.matrix_norm(rows, ord=2)
        residual = rows - (rows @ out.T.double()) @ out.double()
        _, sigma, vh = torch.linalg.svd(residual, full_matrices=False)
        out = torch.cat([out, vh[sigma > tolerance * scale].to(out.dtype)])
    return out


def unused_entries(strategy: Strategy) -> list[str]:
    """What each per-synapse option list of ``strategy``'s projection parts (:meth:`ProjectionStrategy.
    per_synapse_lists`) longer than its protected synapses leaves unused, as text (a list written for a deeper
    network: its readout takes the entry at its position, not the last one as a longer HLOP ``neurons`` row gives
    it); empty where every list fits, its extra entries repeat the last one used, or it is the option's default
    (a notice on every one-hidden-layer task-incremental run, about lists the user did not write)."""
    out = []
    for part in [p for p in parts_of(strategy) if isinstance(p, ProjectionStrategy)]:
        n, names = len(part.synapses), ", ".join(p.name for p in part.synapses)
        for key, values in part.per_synapse_lists().items():
            if values == field_default(type(part.options), key):          # spikecl's own: the user chose nothing
                continue
            if len(values) > n and any(v != values[n - 1] for v in values[n:]):      # an entry that would differ
                last = (f"; the readout takes entry {n} ({values[n - 1]:g}), not the last ({values[-1]:g})"
                        if part.synapses and part.synapses[-1].name == "readout" else "")
                out.append(f"strategy.{part.name}.{key} has {len(values)} entries for {n} protected synapses "
                           f"({names}): entries past {n} are unused{last}")
    return out


#: the largest |eigenvalue| of I − BᵀB for which a basis B of as many rows as inputs protects them all: what a
#: float32 orthonormal basis leaves (~1e-6), far below what Hebbian rows that are not orthonormal leave (~0.1)
FULL_TOLERANCE = 1e-3


def full_rank_bases(strategy: Strategy, skip: Iterable[str] = ()) -> dict[str, tuple[int, float, float]]:
    """{synapse name: (n, lowest, highest eigenvalue of I − BᵀB)} of the synapses (but those named in ``skip``) whose
    projection basis B [k, n] (of ``strategy``, or the union of a combination's projection parts) has as many rows as
    the synapse has inputs. Both lie within :data:`FULL_TOLERANCE` of 0 where the projection is zero: every input
    dimension is protected and later gradients cannot change the weights. Rows that are not orthonormal (HLOP's Hebbian neurons without ``orthonormalize``, a layer filled
    over several tasks) leave up to ``highest`` of a gradient along some direction, and reverse ``-lowest`` of it
    along another."""
    out = {}
    for part in (part for part in parts_of(strategy) if isinstance(part, ProjectionStrategy)):
        for name, basis in part.projected_bases().items():
            k, n = basis.shape
            if k >= n and name not in out and name not in skip:
                b = basis.detach().to("cpu", torch.float64)
                eig = torch.linalg.eigvalsh(torch.eye(n, dtype=torch.float64) - b.T @ b)
                out[name] = (n, float(eig[0]), float(eig[-1]))
    return out


class ProjectionStrategy(Strategy):
    """Base of the methods that keep, per protected synapse, a subspace of past presynaptic activity and project
    weight gradients orthogonally to it (GPM, HLOP). Records the subspace sizes after every task. Several of them
    in one combination project against the union of their subspaces (:meth:`projected_bases`)."""

    orthonormal_bases = True        # protected_bases() have orthonormal rows
    needs_gradient_steps = True     # an optimiser that reshapes or adds to the projected gradient undoes it
    after_task_stage = 0            # the subspace of the task's activity as trained, before any replay phase

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.synapses = protected_synapses(self.model)
        self.dims: list[list[int]] = []
        self.project_inputs = True          # weight gradients from projected presynaptic rows where cheaper
        self._projectors: dict[str, Projector] = {}
        self.handed: dict[str, Projector] = {}      # synapse name: projector handed to this batch's training pass
        self.partners: list[ProjectionStrategy] = [self]     # the projection parts of its combination, in order
        self._unions: dict[str, tuple[list[torch.Tensor], torch.Tensor]] = {}   # name: (part bases, their union)

    def before_task(self, task, train, seen):
        """From the second task on, normalisation layers and the biases of protected synapses are frozen (as in the
        HLOP paper's code: they would otherwise drift and change responses to old inputs, which no projection of
        weight gradients can prevent)."""
        if task > 0:
            for layer in self.model.layers:
                layer.freeze_norm()
            for p in self.synapses:
                if getattr(p.synapse, "bias", None) is not None:
                    p.synapse.bias.requires_grad_(False)
        return train

    def per_synapse_lists(self) -> dict[str, list]:
        """The options this run reads as one entry per protected synapse, each by its position (a short list
        repeats its last entry): {option name: its list}. None by default."""
        return {}

    def protected_bases(self) -> dict[str, torch.Tensor]:
        """{synapse name: this method's own basis [k, n] of the subspace it protects}."""
        raise NotImplementedError

    def projected_bases(self) -> dict[str, torch.Tensor]:
        """{synapse name: the basis [k, n] that weight gradients are projected against}.

        Alone: :meth:`protected_bases`. Combined with other projection methods (``hlop+gpm``): an orthonormal basis
        of the union of every projection part's subspace (:func:`union_rows`, the parts taken by name, so either
        order gives the same), orthonormal even where a part's own rows are not (HLOP without ``orthonormalize``,
        whose projection alone is ``I − HᵀH``). The parts share it (rebuilt only when a part's basis tensor is
        replaced) and the first projects with it: both subspaces are protected (one part projecting after another
        against its own basis would put back components in the other's subspace)."""
        if len(self.partners) == 1:
            return self.protected_bases()
        own = [part.protected_bases() for part in sorted(self.partners, key=lambda part: part.name)]
        return {p.name: self._union(p.name, [bases[p.name] for bases in own]) for p in self.synapses}

    def _union(self, name: str, bases: list[torch.Tensor]) -> torch.Tensor:
        """:func:`union_rows` of ``bases`` (each [k_i, n]), cached while they are the same tensors."""
        cached = self._unions.get(name)
        if cached is None or any(a is not b for a, b in zip(cached[0], bases, strict=True)):
            cached = self._unions[name] = (bases, union_rows(bases))
        return cached[1]

    def combined_with(self, parts) -> None:
        """Another part's penalty adds gradients that are not error × presynaptic rows: project the gradient.
        Other projection parts: all project against the union of their subspaces (:meth:`projected_bases`), with
        the first one's cached unions and projectors."""
        self.project_inputs = not any(type(part).penalty is not Strategy.penalty for part in parts if part is not self)
        self.partners = [part for part in parts if isinstance(part, ProjectionStrategy)]
        self._unions, self._projectors = self.partners[0]._unions, self.partners[0]._projectors

    def batch(self, x, y, heads):
        """Before a training pass: picks the projector of each protected spiking layer with a non-empty basis, which
        :meth:`projections` hands to the pass, so that its weight gradient comes out projected when that is cheaper
        (:meth:`project` then leaves it). Combined with other projection methods, only the first picks them (it
        projects for all). Not in a data-parallel run: a layer decides by its rows, which differ between processes'
        shares of a batch, and the summed gradient must be projected alike on every process (so it is, whole, in
        :meth:`project`)."""
        self.handed = {}
        if self.partners[0] is self and self.project_inputs and not self.execution.data_parallel:
            bases = self.projected_bases()
            for p in self.synapses:
                if p.layer is not None and bases[p.name].shape[0]:
                    projector = self.handed[p.name] = self.projector(p.name, bases[p.name])
                    projector.used = False
        return x, y, heads

    def projections(self):
        """{spiking layer: its projector} picked by :meth:`batch`, for the batch's training pass."""
        return {p.layer: self.handed[p.name] for p in self.synapses if p.name in self.handed}

    def empty(self) -> dict[str, torch.Tensor]:
        """{synapse name: an empty [0, n] basis}."""
        return {p.name: p.weight.new_zeros(0, p.n_inputs) for p in self.synapses}

    def project(self, bases: dict[str, torch.Tensor]) -> None:
        """Project every protected weight gradient orthogonally to its basis, unless its layer's training pass
        already computed it from projected presynaptic rows (through the projector :meth:`batch` handed it, which
        is forgotten here). Combined with other projection methods, only the first does it (the projection onto
        their union is the same for all of them)."""
        if self.partners[0] is not self:
            return
        handed, self.handed = self.handed, {}
        for p in self.synapses:
            if p.name in handed and handed[p.name].used and handed[p.name].basis is bases[p.name]:
                continue
            if bases[p.name].shape[0]:
                self.projector(p.name, bases[p.name]).project_gradient(p)

    def release(self) -> None:
        """After a training step: the projectors drop the rows they kept."""
        for projector in self._projectors.values():
            projector.forget()

    def projector(self, name: str, basis: torch.Tensor) -> Projector:
        """The :class:`Projector` of synapse ``name`` for ``basis``, built once per basis (a union of several parts'
        bases has orthonormal rows)."""
        cached = self._projectors.get(name)
        if cached is None or cached.basis is not basis:
            orthonormal = self.orthonormal_bases or len(self.partners) > 1
            cached = self._projectors[name] = Projector(basis, orthonormal)
        return cached

    def record_dims(self, bases: dict[str, torch.Tensor]) -> None:
        self.dims.append([int(bases[p.name].shape[0]) for p in self.synapses])

    def result_arrays(self):
        """``subspace_dims`` [tasks done, synapses]: each protected synapse's basis size after each task."""
        return {"subspace_dims": np.asarray(self.dims, dtype=np.int64).reshape(len(self.dims), len(self.synapses))}
