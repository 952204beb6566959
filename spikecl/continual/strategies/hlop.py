"""HLOP: Hebbian-learning-based orthogonal projection (Xiao et al., ICLR 2024).

Every protected synapse (presynaptic dimension n) gets lateral neurons with weights ``H`` [k, n] that read the
presynaptic activity trace ``x`` (``y = H x``) and learn, concurrently with training, the principal subspace of past
activity with Oja's subspace rule (Hebbian ``y xᵀ`` and anti-Hebbian ``− y yᵀ H`` terms)::

    ΔH_new = η · mean_batch( y_new (x − Hᵀ y)ᵀ ),   y = H x,   H = [H_old; H_new]

Only the neurons added for the current task learn; the consolidated ones (``H_old``) define the projection of weight
updates, ``ΔW ← ΔW (I − P)``, P the orthogonal projector onto span(H_old) (combined with GPM: onto the union of
both subspaces, see :meth:`~spikecl.continual.projection.ProjectionStrategy.projected_bases`). Lifecycle: before
each task, new neurons are added (rows orthogonal to the old ones); every mini-batch, gradients are projected and the
new neurons take ``iterations`` Hebbian steps (momentum as an exponential average); after the task, the new neurons
are merged into the consolidated set.

The activity ``x`` is the presynaptic input of every time step (``activity = "steps"``, one row per step and
sample, as in the paper's BPTT/OTTT code): the response of a spiking layer depends on ``W x_t`` at every step, not
only on the rate. Each update uses ``step_rows`` × B of a batch's T·B step rows, drawn at random. ``final_passes``
adds passes over the task's data after training, in which only the lateral neurons learn, from the trained network's
activity (our addition; 0 in the paper).

The defaults are the published method (the paper's PMNIST code): its lateral-neuron schedule, including a learned
subspace for a shared readout; a fixed Hebbian rate per synapse (``step = "fixed"``, ``fixed_lr``, 0.001 for the
input synapse and 0.01 for the others); every time step's rows; projection with ``I − HᵀH``; no extra passes.
spikecl's own options, each off by default: ``step = "normalised"`` divides the step by the mean squared norm of the
residual the new neurons learn from (``η = lr / E‖x − H_oldᵀ H_old x‖²``, one ``lr`` for every layer and task;
Oja's rule converges for ``lr`` < 2); ``final_passes``; ``step_rows`` (a random share of the step rows);
``orthonormalize`` (project with an orthonormal basis of span(H_old)). Where spikecl still departs from the
paper's code (docs/hlop.md, "What differs from the paper", lists each): the clamp bounds a mini-batch's total
change of H_new, where the paper clamps each iteration's update; new rows start orthogonal to the consolidated
ones as well as among themselves; and, outside the defaults, spiking lateral neurons are rate-coded in the update
only and the online trainer updates once per batch.

The iterations on one mini-batch never leave the span of the rows of ``H_new``, of the velocity and of the batch's
residuals, so they may run on coefficients in that span (:func:`hebbian_iterations` picks the cheaper form): each
iteration then costs O(B·k·(k + B)) instead of O(B·k·n). A static input (direct encoding) repeats each sample's row
at every step; the Hebbian update then learns from one copy (the same mean update). The residual the new neurons
learn from, ``x − H_oldᵀ H_old x``, is the one the weight gradient was projected with, computed once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from spikecl.continual.projection import (ACTIVITY, ProjectionStrategy, activity_matrix, new_directions,
                                          orthonormal_rows)
from spikecl.continual.strategy import HEBBIAN_PASS, SEED_RANGE
from spikecl.errors import ConfigError, NumericalError, SpikeCLError
from spikecl.options import option
from spikecl.snn.activity import Activity
from spikecl.snn.fused import is_static

#: the largest max|H Hᵀ − I| of rows :meth:`HLOP.load_subspace` takes for the published projection I − HᵀH (that of
#: the Lava learning graph's frozen rows, :data:`spikecl.export.hlop_graph.ORTHONORMAL_TOLERANCE`)
ORTHONORMAL_TOLERANCE = 0.25
#: samples per batch of the final Hebbian passes (the published code's training batch on PMNIST)
FINAL_PASS_BATCH = 64
# The paper's PMNIST schedule: lateral neurons added per protected synapse, one row per task (last row repeats).
PMNIST_SCHEDULE = [[80, 200, 100], [70], [70], [50], [50], [50], [30], [30], [30], [10]]


@dataclass
class HLOPOptions:
    neurons: list[list[int]] = option(PMNIST_SCHEDULE, nonempty=True, low=0,
                                      doc="lateral neurons added per task (rows) and protected synapse (columns: "
                                          "each feature layer, then a shared readout); a short row repeats its last "
                                          "value, the last row repeats for later tasks; a row longer than the "
                                          "network's protected synapses gives its last column to the readout")
    budget: str = option("schedule", choices=("schedule", "energy"),
                         doc="how many lateral neurons a task adds: the 'neurons' schedule, or as many as GPM's energy "
                             "criterion asks of the task's residual activity before training (spikecl's)")
    energy: list[float] = option([0.95, 0.99, 0.99], nonempty=True, low=0.0, high=1.0,
                                 doc="budget = 'energy': fraction of a task's presynaptic activity energy the subspace "
                                     "must hold, per protected synapse (the last one repeats)")
    energy_samples: int = option(300, low=1, doc="budget = 'energy': training samples whose activity sizes a task")
    step: str = option("fixed", choices=("fixed", "normalised"),
                       doc="Hebbian step size: fixed_lr per synapse (the paper's), or lr divided by the mean squared "
                           "norm of the residual the new neurons learn from (spikecl's)")
    fixed_lr: list[float] = option([0.001, 0.01], nonempty=True, low=0.0, high=10.0,
                                   doc="step = 'fixed': Hebbian rate per protected synapse (the last one repeats); "
                                       "the paper's PMNIST values")
    lr: float = option(1.5, low=0.0, high=2.0, open_range=True,
                       doc="step = 'normalised': Hebbian step (Oja's rule converges below 2), divided by the mean "
                           "squared norm of the residual the new neurons learn from")
    iterations: int = option(5, low=1, doc="Hebbian steps per mini-batch")
    momentum: float = option(0.9, low=0.0, high=0.999, doc="exponential average of Hebbian updates")
    final_passes: int = option(0, low=0,
                               doc="passes over a task's training data after its training, in which only the "
                                   "lateral neurons learn, from the trained network's activity")
    clamp: float = option(10.0, low=1e-12, doc="bound on each element of a mini-batch's change of H_new (0 would "
                                               "freeze the new neurons: they would protect their random rows)")
    max_rows: int = option(4096, low=1, doc="rows per mini-batch the Hebbian update uses at most, drawn at random "
                                            "beyond it (Conv2d: unfolded patches; Linear with activity 'steps': "
                                            "time-step rows)")
    step_rows: int = option(0, low=0,
                            doc="activity 'steps' on Linear synapses: the Hebbian update uses step_rows x B rows "
                                "drawn at random from the T x B time-step rows of a mini-batch of B samples "
                                "(0 = all, up to max_rows; 1 costs what 'rate' costs)")
    activity: str = option("steps", choices=ACTIVITY,
                           doc="what the lateral neurons learn from: every time step's presynaptic spikes "
                               "('steps', as in the paper's code) or per-sample firing rates ('rate')")
    lateral_levels: int = option(0, low=0,
                                 doc="spiking lateral neurons (the paper's spiking HLOP): the new neurons' responses "
                                     "clamped to +-lateral_scale and rounded to this many steps of it, their "
                                     "firing over as many time steps (0 = analogue responses)")
    lateral_scale: float = option(20.0, low=1e-6, high=1e6,
                                  doc="lateral_levels > 0: the response that fires at every step (the paper's "
                                      "spiking_scale); larger ones saturate")
    orthonormalize: bool = option(False, doc="project with an orthonormal basis of span(H_old) (False: I - HᵀH, "
                                             "the paper's)")
    seed: int = option(0, low=0, high=SEED_RANGE - 1,
                       doc="seed of the new lateral neurons' initial rows and of step-row sampling, paired with the "
                           "run seed")

    #: options another option makes unused: {option: (other option, the value it needs)}
    ONLY_FOR = {"neurons": ("budget", "schedule"), "energy": ("budget", "energy"),
                "energy_samples": ("budget", "energy"), "fixed_lr": ("step", "fixed"), "lr": ("step", "normalised"),
                "step_rows": ("activity", "steps"), "lateral_scale": ("lateral_levels", range(1, 1 << 63))}


#: why ``step_rows`` is unused on a network without a protected Linear synapse
STEP_ROWS_UNUSED = ("it samples the rows of Linear synapses, and the network protects none: its convolutions take "
                    "every row, and a multi-head readout is not protected")


class RateCode(NamedTuple):
    """How the new lateral neurons respond: analogue (``levels`` = 0), or as spiking neurons that fire on a
    rate code, the paper's ``spiking`` HLOP: responses clamped to ±``scale`` and rounded to ``levels`` steps of
    ``scale / levels`` (its ``spiking_timesteps`` and ``spiking_scale``)."""

    levels: int = 0
    scale: float = 20.0

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        if not self.levels:
            return y
        return torch.round(y.clamp(-self.scale, self.scale) / self.scale * self.levels) / self.levels * self.scale


def residual_energy(residual: torch.Tensor) -> torch.Tensor:
    """Mean squared norm of the rows of ``residual`` [B, n], the normaliser of the Hebbian step."""
    return (residual * residual).sum(dim=1).mean().clamp_min(1e-12)


def oja_subspace_step(h_old: torch.Tensor, h_new: torch.Tensor, x: torch.Tensor, lr: float,
                      rates: RateCode = RateCode(), residual_old: torch.Tensor | None = None,
                      normalise: bool = True) -> torch.Tensor:
    """One batched Hebbian/anti-Hebbian update of ``h_new`` [k_new, n] for inputs ``x`` [B, n].

    ``h_old`` [k_old, n] takes part in the response (so new neurons learn the residual) but is not updated; its
    share of the residual, ``x − H_oldᵀ H_old x``, may be passed as ``residual_old`` when several steps use the same
    batch. Returns ΔH_new (not yet applied). ``rates``: the new neurons' responses, analogue or rate-coded
    (:class:`RateCode`). ``normalise``: divide ``lr`` by the residual's mean squared norm.
    """
    if residual_old is None:
        residual_old = x - (x @ h_old.T) @ h_old if h_old.shape[0] else x
    y_new = rates(x @ h_new.T)                                       # [B, k_new]
    residual = residual_old - y_new @ h_new                          # x − Hᵀ y, H = [H_old; H_new]
    return step_size(lr, residual_old, normalise) * (y_new.T @ residual) / x.shape[0]


def step_size(lr: float, residual_old: torch.Tensor, normalise: bool) -> float | torch.Tensor:
    """The Hebbian rate: ``lr``, or ``lr`` over the mean squared norm of ``residual_old`` [B, n] (``normalise``)."""
    return lr / residual_energy(residual_old) if normalise else lr


def hebbian_iterations(h_new: torch.Tensor, velocity: torch.Tensor, x: torch.Tensor, residual_old: torch.Tensor,
                       lr: float, iterations: int, momentum: float = 0.0, rates: RateCode = RateCode(),
                       clamp: float = float("inf"), normalise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``iterations`` Oja steps of ``h_new`` [k, n] on one batch ``x`` [B, n]; returns (h_new, velocity).

    ``residual_old`` [B, n] is ``x`` minus its projection on the consolidated neurons; ``velocity`` [k, n] is the
    exponential average of the steps (``momentum`` its decay; 0 = plain steps). The batch's change of ``h_new`` is
    clamped elementwise to ±``clamp``. ``normalise``: the rate is ``lr`` over the residual's mean squared norm.
    The steps run in whichever form costs fewer multiply-adds (identical result): on coefficients over the rows of
    ``[h_new; velocity; residual_old]`` (:func:`_coefficient_iterations`, worth it for few rows and many steps) or
    on the n-dimensional rows (:func:`_direct_iterations`).
    """
    rows, n = x.shape
    args = (h_new, velocity, x, residual_old, lr, iterations, momentum, rates, clamp, normalise)
    if coefficient_cost(rows, n, h_new.shape[0], iterations) < direct_cost(rows, n, h_new.shape[0], iterations):
        return _coefficient_iterations(*args)
    return _direct_iterations(*args)


def coefficient_cost(rows: int, n: int, k: int, iterations: int) -> int:
    """Multiply-adds of :func:`_coefficient_iterations` (span of 2k + rows rows)."""
    span = 2 * k + rows
    return rows * n * span + iterations * (rows * span * k + k * k * (rows + span)) + 2 * k * span * n


def direct_cost(rows: int, n: int, k: int, iterations: int) -> int:
    """Multiply-adds of :func:`_direct_iterations`."""
    return iterations * (2 * rows * n * k + k * k * (rows + n))


def _coefficient_iterations(h_new, velocity, x, residual_old, lr, iterations, momentum, rates, clamp, normalise):
    """:func:`hebbian_iterations` on coefficients C over the span Z = ``[h_new; velocity; residual_old]``: the
    steps never leave it, so H = C_h Z and V = C_v Z, and each step costs O(B·k·(k + B)) instead of O(B·k·n)."""
    k = h_new.shape[0]
    span = torch.cat([h_new, velocity, residual_old])                             # Z [2k + B, n]
    x_span = x @ span.T                                                           # X Zᵀ [B, 2k + B]
    coef = x_span.new_zeros(2 * k, span.shape[0])
    coef.diagonal().fill_(1)                                                      # [C_h; C_v] = [I 0 0; 0 I 0]
    coef_h, coef_v = coef[:k], coef[k:]                                           # H = C_h Z, V = C_v Z
    eta = step_size(lr, residual_old, normalise) / x.shape[0]                    # a tensor when normalised
    gain = eta * (1 - momentum) if momentum else eta       # the step's weight in the velocity (or in H)
    scalar = _host_scalar(gain)                            # fused multiply-adds where reading it costs no sync
    moving = coef_v if momentum else coef_h
    for _ in range(iterations):
        y = rates(x_span @ coef_h.T)                                              # Y = X Hᵀ [B, k]
        if momentum:
            coef_v.mul_(momentum)
        if scalar is None:
            moving.sub_(gain * ((y.T @ y) @ coef_h))                              # −η YᵀY H ...
            moving[:, 2 * k:].add_(gain * y.T)                                    # ... + η Yᵀ R_old
        else:
            moving.sub_((y.T @ y) @ coef_h, alpha=scalar)
            moving[:, 2 * k:].add_(y.T, alpha=scalar)
        if momentum:
            coef_h.add_(coef_v)
    if momentum:
        new_h, new_velocity = (coef @ span).split(k)
    else:
        new_h, new_velocity = coef_h @ span, velocity
    return new_h.sub_(h_new).clamp_(-clamp, clamp).add_(h_new), new_velocity


def _host_scalar(value) -> float | None:
    """``value`` as a Python float when that needs no device synchronisation (a number or a CPU tensor), else None."""
    if isinstance(value, torch.Tensor):
        return float(value) if value.device.type == "cpu" else None
    return float(value)


def _direct_iterations(h_new, velocity, x, residual_old, lr, iterations, momentum, rates, clamp, normalise):
    """:func:`hebbian_iterations` on the n-dimensional rows: each step is :func:`oja_subspace_step`'s
    ``η Yᵀ (R_old − Y H)``, computed as ``η (Yᵀ R_old − (YᵀY) H)`` without forming the [B, n] residual."""
    eta = step_size(lr, residual_old, normalise) / x.shape[0]
    gain = eta * (1 - momentum) if momentum else eta        # the step's weight in the velocity (or in H)
    h = h_new.clone()                                       # updated in place: no [k, n] temporaries per step
    for _ in range(iterations):
        y = rates(x @ h.T)                                                        # [B, k]
        weighted = (gain * y).T                                                   # [k, B]
        step = (weighted @ residual_old).addmm_(weighted @ y, h, alpha=-1)        # weighted (R_old − Y H)
        if momentum:
            velocity = step.add_(velocity, alpha=momentum)
        h.add_(velocity if momentum else step)
    return h.sub_(h_new).clamp_(-clamp, clamp).add_(h_new), velocity


class HLOP(ProjectionStrategy):
    name = "hlop"
    supports_data_parallel = True
    uses_activity = True
    Options = HLOPOptions

    @classmethod
    def check_run(cls, options, cfg) -> None:
        heads = cfg.stream.scenario == "task" and cfg.stream.n_tasks > 1                 # an unprotected readout
        if options.step_rows and options.activity == "steps" and cfg.network.kind == "cnn" and heads:
            raise ConfigError(f"strategy.hlop.step_rows: {STEP_ROWS_UNUSED}; leave it at 0")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.options.step_rows and all(isinstance(p.synapse, torch.nn.Conv2d) for p in self.synapses):
            raise ConfigError(f"strategy.hlop.step_rows: {STEP_ROWS_UNUSED}; leave it at 0")
        self.orthonormal_bases = self.options.orthonormalize
        self.h_old, self.h_new, self.basis = self.empty(), self.empty(), self.empty()
        self.velocity = self.empty()                 # exponential average of H_new's Hebbian steps
        self.start = self.empty()                    # H_new's rows as the task began (to tell it learned nothing)
        self.generator = self.random_generator(self.options.seed)
        self.task: int | None = None                 # the task between before_task and after_task

    def _within_task(self, event: str, task: int | None = None) -> None:
        """A one-line SpikeCLError unless ``event`` comes after ``before_task`` (of ``task``, if given) and
        before that task's ``after_task``."""
        if self.task is None or task not in (None, self.task):
            raise SpikeCLError(f"{self.name}: {event} without a matching before_task; a task's events come in the "
                               "order of spikecl.continual.strategy")

    def schedule(self, task: int, index: int) -> int:
        """Lateral neurons to add for ``task`` at protected synapse ``index``: the row's column ``index`` (a short row
        repeats its last value), except that a shared readout takes the last column of a row longer than the
        network's protected synapses (the paper's 3-column schedule on a 1-hidden-layer MLP: 80 and 100)."""
        rows = self.options.neurons
        row = rows[min(task, len(rows) - 1)]
        if not row:
            return 0
        if len(row) > len(self.synapses) and self.synapses[index].name == "readout":
            return row[-1]
        return row[min(index, len(row) - 1)]

    @torch.no_grad()
    def energy_budget(self, train) -> list[int]:
        """Lateral neurons per synapse for a task with training data ``train``: the residual principal directions
        (outside the consolidated subspace) needed to hold ``energy`` of its presynaptic activity, measured on
        ``energy_samples`` samples with the network as it is before training on them."""
        o = self.options
        recorded = self.activity_of(train, min(o.energy_samples, len(train)))
        counts = []
        for i, p in enumerate(self.synapses):
            rows = activity_matrix(recorded.of(p.name), p.synapse, o.max_rows, self.generator, o.activity)
            old = self.basis[p.name] if self.orthonormal_bases else orthonormal_rows(self.h_old[p.name])
            counts.append(new_directions(old, rows, o.energy[min(i, len(o.energy) - 1)]).shape[0])
        return counts

    def before_task(self, task, train, seen):
        budget = self.energy_budget(train) if self.options.budget == "energy" else None
        for i, p in enumerate(self.synapses):
            old = self.h_old[p.name]
            wanted = budget[i] if budget is not None else self.schedule(task, i)
            k = min(wanted, p.n_inputs - old.shape[0])
            rows = torch.randn(max(k, 0), p.n_inputs, generator=self.generator, dtype=torch.float32).to(old)
            if old.shape[0]:
                rows -= (rows @ self.basis[p.name].T) @ self.basis[p.name]
            self.h_new[p.name] = orthonormal_rows(rows) if k > 0 else rows
            self.velocity[p.name] = torch.zeros_like(self.h_new[p.name])
            self.start[p.name] = self.h_new[p.name].clone()
        self.task = task
        return super().before_task(task, train, seen)

    def after_backward(self, activity=None):
        self._within_task("after_backward")
        if activity is None:
            raise SpikeCLError(f"{self.name}: after_backward needs the batch's presynaptic activity, which a trainer "
                               "records for strategies with uses_activity = True")
        self.project(self.projected_bases())
        self.hebbian_update(activity)
        self.release()

    def protected_bases(self):
        return self.basis

    def row_budget(self, p, steps: torch.Tensor) -> int:
        """Rows of ``p``'s presynaptic input ``steps`` [T, B, ...] that the Hebbian update uses."""
        o = self.options
        if o.activity == "steps" and o.step_rows and not isinstance(p.synapse, torch.nn.Conv2d):
            return min(o.max_rows, o.step_rows * steps.shape[1])
        return o.max_rows

    def per_synapse_lists(self) -> dict[str, list]:
        o = self.options
        return {**({"energy": o.energy} if o.budget == "energy" else {}),
                **({"fixed_lr": o.fixed_lr} if o.step == "fixed" else {})}

    def hebbian_rate(self, index: int) -> float:
        """The Hebbian ``lr`` of protected synapse ``index`` (a fixed rate, or the normalised step's ``lr``)."""
        o = self.options
        if o.step == "normalised":
            return o.lr
        return o.fixed_lr[min(index, len(o.fixed_lr) - 1)]

    @torch.no_grad()
    def hebbian_update(self, activity: Activity) -> None:
        """Train the current task's lateral neurons on the presynaptic ``activity`` of a batch."""
        o = self.options
        for i, p in enumerate(self.synapses):
            h_new = self.h_new[p.name]
            if h_new.shape[0] == 0:
                continue
            x = self.hebbian_rows(p, activity.of(p.name))
            self.h_new[p.name], self.velocity[p.name] = hebbian_iterations(
                h_new, self.velocity[p.name], x, self.old_residual(p.name, x), self.hebbian_rate(i), o.iterations,
                o.momentum, RateCode(o.lateral_levels, o.lateral_scale), o.clamp, o.step == "normalised")

    def hebbian_rows(self, p, steps: torch.Tensor) -> torch.Tensor:
        """The rows [N, n] that ``p``'s Hebbian update learns from, of its presynaptic input ``steps`` [T, B, ...].
        A static input gives T copies of each row, whose mean update is one copy's: one copy is used unless rows
        are to be drawn at random (more than the row budget)."""
        o, budget = self.options, self.row_budget(p, steps)
        if o.activity == "steps" and is_static(steps):
            once = activity_matrix(steps[:1], p.synapse, None, self.generator, o.activity)
            if once.shape[0] * steps.shape[0] <= budget:
                return once
        return activity_matrix(steps, p.synapse, budget, self.generator, o.activity)

    def old_residual(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``x − H_oldᵀ H_old x`` for rows ``x`` [N, n]: the projector's (the weight gradient's) when the projection
        basis is H_old itself (not when it is orthonormalised or, combined with GPM, the union of both subspaces)."""
        h_old = self.h_old[name]
        if h_old.shape[0] == 0:
            return x
        if self.projected_bases()[name] is h_old:
            return self.projector(name, h_old)(x)
        return x - (x @ h_old.T) @ h_old

    @torch.no_grad()
    def final_hebbian_passes(self, train) -> None:
        """``final_passes`` epochs of Hebbian updates on ``train`` with the weights fixed (batches of
        :data:`FINAL_PASS_BATCH`; the model in evaluation mode; Poisson spikes from a generator of (run seed, task),
        the same in every process of a data-parallel run)."""
        order = torch.randperm(len(train), generator=self.generator).to(train.x.device)
        draws = self.pass_generator(train.x, range(len(train)), train.task, HEBBIAN_PASS)
        for _ in range(self.options.final_passes):
            for start in range(0, len(train), FINAL_PASS_BATCH):
                idx = order[start:start + FINAL_PASS_BATCH]
                with self.reading(), self.model.recording() as activity:
                    self.logits(train.x[idx], train.heads[idx], generator=draws)
                self.hebbian_update(activity)

    def after_task(self, task, train):
        self._within_task(f"after_task({task})", task)
        self.final_hebbian_passes(train)
        for i, p in enumerate(self.synapses):
            if self.h_new[p.name].shape[0] == 0:
                continue                                  # nothing learned: the subspace and its basis stand
            if not torch.isfinite(self.h_new[p.name]).all():
                step = "lr" if self.options.step == "normalised" else "fixed_lr"
                raise NumericalError(f"hlop: the lateral weights of {p.name} became NaN or infinite in task "
                                     f"{task + 1}; lower the Hebbian step (strategy.hlop.{step})")
            self.check_rate_coded_learning(p.name, task, self.hebbian_rate(i))
            self.start[p.name] = self.h_new[p.name][:0]
            self.h_old[p.name] = torch.cat([self.h_old[p.name], self.h_new[p.name]])
            self.h_new[p.name] = self.h_old[p.name][:0]
            old = self.h_old[p.name]
            self.basis[p.name] = orthonormal_rows(old) if self.options.orthonormalize else old
        self.task = None
        self.record_dims(self.h_old)

    def check_rate_coded_learning(self, name: str, task: int, rate: float) -> None:
        """A one-line ConfigError where all of synapse ``name``'s spiking lateral neurons (``lateral_levels`` > 0)
        ended ``task`` with the random rows they began it with though their Hebbian ``rate`` is above 0: every
        response rounded to zero spikes, so they learned nothing and would protect random directions instead of the
        task's activity. (Single silent neurons keep their rows, as in the paper's spiking HLOP.)"""
        o, start = self.options, self.start.get(name)
        if not o.lateral_levels or not rate or start is None or not torch.equal(start, self.h_new[name]):
            return
        silent = o.lateral_scale / (2 * o.lateral_levels)
        raise ConfigError(f"strategy.hlop.lateral_levels: the spiking lateral neurons of {name} never fired in task "
                          f"{task + 1} (every response |H x| stayed below lateral_scale / (2 lateral_levels) = "
                          f"{silent:.3g}), so they learned nothing; raise lateral_levels or lower lateral_scale")

    @torch.no_grad()
    def load_subspace(self, name: str, rows) -> None:
        """Make ``rows`` [k, n] (numpy or torch), learned elsewhere (e.g. on Lava's learning engine, see
        :mod:`spikecl.continual.hlop_offload`), the consolidated subspace of protected synapse ``name``; between
        tasks only. Later tasks project against it and their new neurons learn outside it. ``[0, n]`` rows (a
        synapse whose recorded activity was silent) protect nothing."""
        names = [p.name for p in self.synapses]
        if self.task is not None:
            raise SpikeCLError(f"{self.name}: load_subspace during task {self.task}; load it between tasks")
        if name not in names:
            raise SpikeCLError(f"{self.name}: no protected synapse {name!r} (known: {', '.join(names)})")
        old = self.h_old[name]
        rows = torch.as_tensor(rows).to(old)
        if rows.ndim != 2 or rows.shape[1] != old.shape[1]:
            raise SpikeCLError(f"{self.name}: {name}'s subspace must be rows [k, {old.shape[1]}], got shape "
                               f"{tuple(rows.shape)}")
        if not torch.isfinite(rows).all():
            raise SpikeCLError(f"{self.name}: {name}'s subspace rows hold NaN or infinity")
        if rows.shape[0] > rows.shape[1]:
            raise SpikeCLError(f"{self.name}: {name}'s subspace has {rows.shape[0]} rows in {rows.shape[1]} "
                               "dimensions; a basis has at most as many rows as dimensions")
        rank = orthonormal_rows(rows).shape[0]
        if rank < rows.shape[0]:                          # zero or repeated rows: protected dimensions it lacks
            raise SpikeCLError(f"{self.name}: {name}'s subspace has {rows.shape[0]} rows but rank {rank} (zero or "
                               "linearly dependent rows); give independent rows")
        gram = rows.double() @ rows.double().T
        deviation = float((gram - torch.eye(len(rows), dtype=gram.dtype)).abs().max()) if len(rows) else 0.0
        if not self.options.orthonormalize and deviation > ORTHONORMAL_TOLERANCE:
            raise SpikeCLError(f"{self.name}: {name}'s rows are not orthonormal (max|H Hᵀ − I| = {deviation:.3g} > "
                               f"{ORTHONORMAL_TOLERANCE}), so I − HᵀH would not remove their span; orthonormalise "
                               "them first (spikecl.continual.projection.orthonormal_rows) or set orthonormalize")
        self.h_old[name] = rows
        self.h_new[name] = rows[:0]
        self.basis[name] = orthonormal_rows(rows) if self.options.orthonormalize else rows
        if self.dims:
            self.dims[-1][names.index(name)] = int(rows.shape[0])

    def state_dict(self):
        return {"h_old": self.h_old, "h_new": self.h_new, "velocity": self.velocity, "basis": self.basis,
                "dims": self.dims, "generator": self.generator.get_state(), "start": self.start}

    def load_state_dict(self, state):
        if isinstance(state, dict) and "momentum" in state:   # checkpoints written before the velocity was named so
            state = {**state, "velocity": state["momentum"]}
        keys = ("h_old", "h_new", "velocity", "basis", "dims", "generator")
        *tables, dims, generator = self.state_entries(state, keys)
        for key, table in zip(keys, tables):
            setattr(self, key, dict(table))
        self.dims = [list(d) for d in dims]
        self.start = dict(state.get("start", {}))      # absent from checkpoints before 2026-12-06: not checked
        self.generator.set_state(generator.cpu())       # a CPU generator; the file may map it
