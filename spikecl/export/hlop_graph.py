"""HLOP's lateral neurons as a learning graph for Lava's learning engine: file format, the rule, its numpy model,
and ``spikecl deploy`` of such a file (torch-free).

Circuit (per protected layer, n presynaptic neurons, k learning lateral neurons, k_old frozen ones)::

    activity x ──► residual neurons r [n] ──H (LearningDense [k, n])──► lateral neurons y [k]
                         ▲  └──────────H_old (Dense)──► frozen lateral y_old [k_old]      │
                         └──── − G y − H_oldᵀ y_old ◄── G (LearningDense [n, k], G = Hᵀ) ─┘

Each sample takes 3 time steps (:mod:`spikecl_lava.processes.oja_neurons`): the lateral neurons answer
y = H x, the residual neurons then send x⊥ = x − Gy − H_oldᵀ y_old, and in that step both synapses learn with
the same three-factor rule (:func:`rule`), written for Lava's engine as::

    dw = 2^-e · x0 · x1 · y1        x1 = d · payload/2 (graded pre spike, GradedSpikeCfg.OVERWRITE),
                                     y1 = d · (post value sent on the y1 port), d = exp(−1/65535)

i.e. ΔH_ij = η y_i x⊥_j and ΔG_ji = η x⊥_j y_i with η = 2^(2a − e − 1) d², the activity sent as 2^a x.
This is Oja's subspace rule ΔH = η y (x − Hᵀy)ᵀ with one sample per update (batch 1); its fixed point
(with G = Hᵀ) is H Hᵀ = I with span(H) the principal k-subspace of the residual activity (outside span(H_old)).
Both synapses get the same products in floating point (the payload halving and the power-of-two rate are exact), so
G stays exactly Hᵀ.

:func:`reference_learn` is the numpy model of that run. Lava's floating-point simulation equals it bit for bit (same
numpy build) on the sizes tested (n ≤ 256, k ≤ 120); at n = 784, k = 80 the two differ in the last bits (≤ 1e-16
per update) from the first sample on: some product rounds differently inside Lava's processes (which one is not pinned
down).

File (root attribute ``learning_graph = "hlop-lateral"``): ``activity`` float64 [S, n] (one row per sample),
``h_init`` [k, n] (the learning neurons' initial rows), ``h_old`` [k_old, n] (frozen rows; may be empty),
optional ``h_torch`` [k_old + k, n] (a torch-learned basis to compare with); attributes ``lr_log2`` (η = 2^lr_log2,
before the factor d²), ``epochs`` (passes over the activity, 1..:data:`MAX_EPOCHS`), ``layer`` (the protected
synapse's name). The arrays hold real numbers (booleans and strings are refused).

The circuit subtracts the frozen rows as given, H_oldᵀ(H_old x): that removes span(H_old) only when the rows are
orthonormal (2·I would subtract the component twice and leak its negative into the new neurons), so :func:`check`
refuses rows with max|H_old H_oldᵀ − I| above :data:`ORTHONORMAL_TOLERANCE` (0.25). Oja-learned rows sit well
inside it (0.006–0.02 in the tests and in synthetic runs up to n = 784, k = 120; about 0.07 measured earlier on
Lava-learned rows; torch HLOP's frozen rows about 1e-8); orthonormalise rows beyond it first
(:func:`orthonormal_rows`).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikecl.errors import ConfigError, NumericalError, ResultsError, ShapeError
from spikecl.hdf5_guard import check_heaps, check_stored_size, damage_as
from spikecl.integrity import check_seal

KIND = "hlop-lateral"
PERIOD = 3                       # time steps per sample
TRACE_TAU = 65535                # x1 and y1 trace time constant (Lava's three-factor rule fixes y1's at 2^16 − 1)
DECAY = np.exp(-1 / TRACE_TAU)   # the one-step trace decay d in the learning step (as Lava computes it)
BACKENDS = ("reference", "lava-sim")
ATTRS = ("learning_graph", "lr_log2", "epochs", "layer")     # the file's root attributes (any other is refused)
#: the most passes over the activity a graph may ask for (a damaged value must not make a run go on without end;
#: 3 · samples · epochs Lava steps, at 2–20 ms per step)
MAX_EPOCHS = 1000
#: the largest max|H_old H_oldᵀ − I| of frozen rows the circuit takes (see the module docstring)
ORTHONORMAL_TOLERANCE = 0.25


@dataclass
class HLOPGraph:
    activity: np.ndarray            # [S, n]
    h_init: np.ndarray              # [k, n]
    h_old: np.ndarray               # [k_old, n]
    lr_log2: int
    epochs: int = 1
    layer: str = ""
    h_torch: np.ndarray | None = None

    @property
    def steps(self) -> int:
        """Lava time steps of the run: 3 per sample and epoch."""
        return PERIOD * self.activity.shape[0] * self.epochs


def rate_split(lr_log2: int) -> tuple[int, int]:
    """(e, a) for a rate η = 2^lr_log2 = 2^(2a − e − 1), e ∈ {0, 1}: the rule's constant 2^-e and the input
    exponent a (activity sent as 2^a x). Lava's scaling constants stop at 2^-7, so small rates come from scaling the
    input, to which the update is quadratic."""
    a = -((-(lr_log2 + 1)) // 2)                   # ceil((lr_log2 + 1) / 2)
    return 2 * a - 1 - lr_log2, a


def rule(lr_log2: int) -> str:
    """The weight rule for Lava's engine (both synapses) at rate 2^lr_log2."""
    return f"2^-{rate_split(lr_log2)[0]} * x0 * x1 * y1"


def _check_lr(lr) -> float:
    """``lr`` as a float when it is a finite number > 0, else a one-line ConfigError."""
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.integer, np.floating)) or \
            not (np.isfinite(lr) and lr > 0):
        raise ConfigError(f"hlop-lateral: lr must be a finite number > 0, got {lr!r}")
    return float(lr)


def default_rate(residual: np.ndarray, lr: float = 0.5) -> int:
    """lr_log2 for activity whose new neurons learn from ``residual`` [S, n]: the largest power of two not above
    ``lr`` / mean squared row norm (online Oja converges for η‖x‖² well below 2), clamped to :func:`_max_rate` and
    0 (the largest rates :func:`check` takes), so it is always valid; activity too large even for 2^-60 is a one-line
    ShapeError."""
    lr = _check_lr(lr)
    with np.errstate(over="ignore", invalid="ignore"):
        energy = float(np.mean(np.sum(residual ** 2, axis=1)))
    if not np.isfinite(energy):
        raise ShapeError(f"hlop-lateral: the activity's mean squared row norm is {energy} (the activity must be "
                         "finite and its squares must not overflow); scale it down")
    if not energy > 0:
        raise ShapeError("hlop-lateral: the activity is zero outside the frozen subspace; nothing to learn")
    lr_log2 = min(int(np.floor(np.log2(lr) - np.log2(energy))), _max_rate(residual), 0)   # (lr / energy: inf)
    if lr_log2 < -60:
        raise ShapeError(f"hlop-lateral: the activity's mean squared row norm {energy:.3g} needs a rate below 2^-60 "
                         f"(lr = {lr}); scale the activity down")
    return lr_log2


def _max_rate(residual: np.ndarray) -> int:
    """The largest lr_log2 with 2^lr_log2 · max_i ‖x_i‖² < 2 for ``residual`` rows x_i (Oja's rule diverges from 2
    on); 0 for zero activity, -1075 (below every rate) when the squares overflow."""
    with np.errstate(over="ignore"):
        peak = float(np.max(np.sum(residual ** 2, axis=1)))
    if not np.isfinite(peak):
        return -1075
    return int(np.ceil(1 - np.log2(peak))) - 1 if peak > 0 else 0          # (2 / peak overflows below 1e-308)


def orthonormal_rows(h: np.ndarray) -> np.ndarray:
    """An orthonormal basis [rank, n] of the row space of ``h`` [k, n]: Gram-Schmidt's (QR) when the rows are
    independent, the right singular vectors when some depend on others (relative tolerance 1e-9)."""
    if h.shape[0] == 0:
        return h.copy()
    if not np.all(np.isfinite(h)):
        raise NumericalError("orthonormal_rows: the rows hold NaN or infinity")
    q, r = np.linalg.qr(h.T)
    d = np.abs(np.diag(r))
    keep = d > 1e-9 * max(d.max(), 1e-300)
    if np.all(keep):                                 # independent rows: Gram-Schmidt's basis, laid out as always
        return q[:, keep].T
    _, s, vh = np.linalg.svd(h, full_matrices=False)                 # dependent rows: QR would lose directions
    return vh[s > 1e-9 * max(s.max(), 1e-300)]


def initial_rows(k: int, n: int, h_old: np.ndarray, seed: int = 0) -> np.ndarray:
    """k random orthonormal rows [k, n], orthogonal to span(``h_old``) (as HLOP initialises new neurons); more
    than the n - rank(h_old) directions left, or ``h_old`` not [k_old, n], is a one-line ShapeError."""
    h_old = np.asarray(h_old)
    if h_old.ndim != 2 or h_old.shape[1] != n:
        raise ShapeError(f"old rows have shape {h_old.shape}; expected [k_old, {n}]")
    b = orthonormal_rows(h_old) if h_old.shape[0] else np.zeros((0, n))
    if k > n - b.shape[0]:
        raise ShapeError(f"{k} new rows cannot be orthonormal and orthogonal to {b.shape[0]} old ones in {n} "
                         "dimensions")
    rows = np.random.default_rng(seed).standard_normal((k, n))
    if b.shape[0]:
        rows -= (rows @ b.T) @ b
    return orthonormal_rows(rows)


def residual(activity: np.ndarray, h_old: np.ndarray) -> np.ndarray:
    """``activity`` [S, n] minus its projection on span(``h_old``)."""
    if h_old.shape[0] == 0:
        return activity
    b = orthonormal_rows(h_old)
    return activity - (activity @ b.T) @ b


def integer(value, name: str, where: str = "hlop-lateral") -> int:
    """``value`` as an int when it is an integer (not a bool, float or string), else a one-line ConfigError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        shown = value.item() if isinstance(value, np.generic) else value
        raise ConfigError(f"{where}: {name} must be an integer, got {shown!r}")
    return int(value)


def _numbers(value, name: str, where: str) -> np.ndarray:
    """``value`` as a float64 array; one that does not hold real numbers (booleans, strings, bytes, objects) is a
    ShapeError."""
    value = np.asarray(value)
    if value.dtype.kind not in "iuf":
        raise ShapeError(f"{where}: {name} must hold real numbers, got dtype {value.dtype}")
    return value.astype(np.float64)


def check(graph: HLOPGraph, where: str = "hlop-lateral") -> HLOPGraph:
    """``graph`` with float64 arrays; a one-line error for wrong shapes or types, non-finite values, learning rows
    that are not independent, frozen rows that are not orthonormal (within :data:`ORTHONORMAL_TOLERANCE`), or bad
    parameters (``epochs`` in 1..:data:`MAX_EPOCHS`)."""
    act = _numbers(graph.activity, "activity", where)
    if act.ndim != 2 or act.shape[0] < 1 or act.shape[1] < 1:
        raise ShapeError(f"{where}: activity must be [samples, n] with both ≥ 1, got shape {act.shape}")
    n = act.shape[1]
    arrays = {"activity": act}
    for name in ("h_init", "h_old", "h_torch"):
        value = getattr(graph, name)
        if value is None:
            continue
        value = _numbers(value, name, where)
        value = value.reshape(-1, n) if value.size == 0 else value
        if value.ndim != 2 or value.shape[1] != n:
            raise ShapeError(f"{where}: {name} must be [rows, {n}] (n of the activity), got shape {value.shape}")
        arrays[name] = value
    for name, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise ShapeError(f"{where}: {name} holds NaN or infinite values")
    k, k_old = arrays["h_init"].shape[0], arrays["h_old"].shape[0]
    if k < 1 or k + k_old > n:
        raise ShapeError(f"{where}: need 1 ≤ k and k + k_old ≤ n, got k = {k}, k_old = {k_old}, n = {n}")
    rank = orthonormal_rows(arrays["h_init"]).shape[0]
    if rank < k:
        raise ShapeError(f"{where}: h_init's {k} rows span only {rank} dimensions; Oja's rule never separates "
                         "dependent rows (a zero row stays zero: y = Hx = 0), give linearly independent rows")
    h_old = arrays["h_old"]
    deviation = float(np.max(np.abs(h_old @ h_old.T - np.eye(k_old)), initial=0.0))
    if deviation > ORTHONORMAL_TOLERANCE:
        raise ShapeError(f"{where}: h_old's frozen rows are not orthonormal: |h_old h_oldᵀ − I| = {deviation:.3g} > "
                         f"{ORTHONORMAL_TOLERANCE} (the circuit subtracts h_oldᵀ(h_old x) as given, so the excess "
                         "leaks into the new neurons); orthonormalise them (hlop_graph.orthonormal_rows)")
    if "h_torch" in arrays and arrays["h_torch"].shape[0] != k_old + k:
        raise ShapeError(f"{where}: h_torch must be [k_old + k = {k_old + k}, {n}] (the torch-learned basis of "
                         f"the subspace this graph learns), got shape {arrays['h_torch'].shape}")
    epochs, lr_log2 = integer(graph.epochs, "epochs", where), integer(graph.lr_log2, "lr_log2", where)
    if not 1 <= epochs <= MAX_EPOCHS:
        raise ConfigError(f"{where}: epochs must be in 1..{MAX_EPOCHS} (MAX_EPOCHS, passes over the activity), "
                          f"got {epochs}")
    if not -60 <= lr_log2 <= 0:
        raise ConfigError(f"{where}: lr_log2 must be in [-60, 0], got {lr_log2}")
    left = residual(act, arrays["h_old"])
    check_learnable(act, left, where)
    bound = _max_rate(left)
    if lr_log2 > bound:
        raise ConfigError(f"{where}: the rate 2^{lr_log2} (lr_log2 = {lr_log2}) is too large for this activity: "
                          f"η·max‖x‖² must stay below 2 (Oja's rule diverges there), so " +
                          (f"lr_log2 ≤ {bound}" if bound >= -60 else "scale the activity down"))
    return HLOPGraph(act, arrays["h_init"], arrays["h_old"], lr_log2, epochs, str(graph.layer),
                     arrays.get("h_torch"))


def check_learnable(activity: np.ndarray, left: np.ndarray, where: str = "hlop-lateral") -> None:
    """A one-line ShapeError where the ``activity`` [S, n] leaves nothing to learn outside the frozen subspace: its
    residual ``left`` is zero up to round-off (the activity lies in that subspace; an SVD of the rest gives an
    arbitrary basis), or so small that Oja's updates vanish in float64 (max ‖x‖² at most its epsilon: the rate is
    at most 1)."""
    scale = float(np.max(np.abs(activity)))
    if not float(np.max(np.abs(left))) > activity.shape[1] * np.finfo(np.float64).eps * scale:
        raise ShapeError(f"{where}: the activity is zero outside the frozen subspace (up to round-off); nothing to "
                         "learn")
    with np.errstate(under="ignore", over="ignore"):      # overflowing squares are default_rate's and check's to name
        peak = float(np.max(np.sum(left ** 2, axis=1)))
    if not peak > np.finfo(np.float64).eps:              # η·‖x‖² below float64's resolution at the largest η, 1
        raise ShapeError(f"{where}: the activity is too small to learn from (its largest squared row norm "
                         f"{peak:.3g} leaves Oja's updates below float64's resolution; values up to {scale:.3g}); "
                         "scale it up")


def make_graph(activity: np.ndarray, k: int, h_old: np.ndarray | None = None, lr_log2: int | None = None,
               epochs: int = 1, layer: str = "", h_torch: np.ndarray | None = None, seed: int = 0,
               lr: float = 0.5) -> HLOPGraph:
    """A graph that learns k new rows from ``activity`` [S, n] beside the frozen ``h_old`` [k_old, n]; the rate
    defaults to :func:`default_rate` (``lr``, checked even when ``lr_log2`` is given) of the residual activity."""
    activity = _numbers(activity, "activity", "hlop-lateral")
    k, lr = integer(k, "k"), _check_lr(lr)
    n = activity.shape[-1] if activity.ndim == 2 else 0
    h_old = np.zeros((0, n)) if h_old is None else _numbers(h_old, "h_old", "hlop-lateral")
    usable = activity.ndim == 2 and min(activity.shape) >= 1 and np.all(np.isfinite(activity)) and \
        h_old.ndim == 2 and h_old.shape[-1] == n and np.all(np.isfinite(h_old))
    if usable:
        check_learnable(activity, residual(activity, h_old))
    if usable and lr_log2 is None:
        lr_log2 = default_rate(residual(activity, h_old), lr)
    fits = n >= 1 and h_old.ndim == 2 and h_old.shape[1] == n and 1 <= k <= n - h_old.shape[0] and \
        bool(np.all(np.isfinite(h_old)))
    h_init = initial_rows(k, n, h_old, seed) if fits else np.zeros((max(k, 0), n))      # check() names a misfit
    return check(HLOPGraph(activity, h_init, h_old, 0 if lr_log2 is None else lr_log2, epochs, layer, h_torch))


def write_graph(path: str | Path, graph: HLOPGraph, overwrite: bool = False) -> Path:
    """Write ``graph`` (checked) as a learning-graph file; an existing ``path`` is refused unless ``overwrite``."""
    from spikecl.atomic import atomic_write
    from spikecl.integrity import write_hdf5_image

    graph = check(graph)

    def build(f) -> None:
        f.attrs["learning_graph"] = KIND
        for name in ("activity", "h_init", "h_old", "h_torch"):
            if getattr(graph, name) is not None:
                f.create_dataset(name, data=getattr(graph, name))
        f.attrs.update(lr_log2=graph.lr_log2, epochs=graph.epochs, layer=graph.layer)

    return atomic_write(path, lambda tmp: write_hdf5_image(tmp, build, sealed_file=True), overwrite=overwrite)


def read_graph(path: str | Path) -> HLOPGraph:
    """Read and check a learning-graph file; missing keys or bad values raise a one-line error."""
    import h5py

    check_seal(Path(path), "learning graph")
    check_heaps(path, ResultsError)
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError) as e:
        raise ResultsError(f"{path}: cannot read as HDF5 ({e})") from None
    with f, damage_as(path, ResultsError):
        kind = f.attrs.get("learning_graph")
        if kind is not None and kind != KIND:
            raise ResultsError(f"{path}: a {kind} learning graph, not an {KIND} one")
        if kind is None and isinstance(f.get("spikecl"), h5py.Group):
            raise ResultsError(f"{path}: an exported network (netx), not an {KIND} learning graph "
                               "(spikecl.export.hlop_graph writes those)")
        missing = [key for key in ("activity", "h_init", "h_old") if key not in f] + \
                  [key for key in ("lr_log2", "epochs") if key not in f.attrs]
        if missing:
            raise ResultsError(f"{path}: not a complete hlop-lateral file (missing {', '.join(missing)})")
        unknown = sorted(set(f.attrs) - set(ATTRS))
        if unknown:
            raise ResultsError(f"{path}: unknown attribute {unknown[0]!r} (an hlop-lateral file carries "
                               f"{', '.join(ATTRS)})")
        not_data = [key for key in ("activity", "h_init", "h_old", "h_torch")
                    if key in f and not isinstance(f[key], h5py.Dataset)]
        if not_data:
            raise ResultsError(f"{path}: {not_data[0]} is not a dataset (a {type(f[not_data[0]]).__name__})")
        for key in ("activity", "h_init", "h_old", "h_torch"):
            if key in f:
                check_stored_size(f[key], str(path))
        layer = f.attrs.get("layer", "")
        try:
            graph = HLOPGraph(f["activity"][()], f["h_init"][()], f["h_old"][()], f.attrs["lr_log2"],
                              f.attrs["epochs"], layer.decode() if isinstance(layer, bytes) else str(layer),
                              f["h_torch"][()] if "h_torch" in f else None)
        except (OSError, TypeError, ValueError) as e:
            raise ResultsError(f"{path}: cannot read the hlop-lateral datasets ({e})") from None
    return check(graph, str(path))


def reference_learn(graph: HLOPGraph) -> tuple[np.ndarray, np.ndarray]:
    """The numpy model of the Lava run, operation for operation: returns (H [k, n], G [n, k]) after learning."""
    e, a = rate_split(graph.lr_log2)
    c = 2.0 ** -e                                            # the rule's scaling constant
    h, g = graph.h_init.copy(), graph.h_init.T.copy()
    h_old, g_old = graph.h_old, graph.h_old.T.copy()
    xs = graph.activity * 2.0 ** a
    for _ in range(graph.epochs):
        with np.errstate(over="ignore", invalid="ignore"):      # a diverging run is refused below, not warned of
            for x in xs:
                y = h.dot(x)                                     # lateral response (phases 2 and 0)
                fb = np.zeros_like(x) + g.dot(y)
                if h_old.shape[0]:
                    fb = fb + g_old.dot(h_old.dot(x))
                r = x - fb                                       # residual x⊥ (phase 0)
                h = _learn_step(h, c, r, y)
                g = _learn_step(g, c, y, r)
        check_learned(graph, h, g)
    return h, g


def check_learned(graph: HLOPGraph, h: np.ndarray, g: np.ndarray) -> None:
    """A one-line NumericalError when learning diverged (``h`` or ``g`` not finite)."""
    if not (np.all(np.isfinite(h)) and np.all(np.isfinite(g))):
        raise NumericalError(f"hlop-lateral {graph.layer or '(layer)'}: learning diverged (the weights overflowed): "
                             f"the rate 2^{graph.lr_log2} (lr_log2 = {graph.lr_log2}) is too large for this "
                             "activity; lower lr_log2 (make_graph picks one from the activity's energy)")


def _learn_step(w: np.ndarray, c: float, pre: np.ndarray, post: np.ndarray) -> np.ndarray:
    """One update of weights ``w`` [post, pre] as Lava's floating-point engine computes ``c·x0·x1·y1``: x0 where
    ``pre`` is non-zero, x1 = d·pre/2, y1 = d·post."""
    return w + ((c * (pre != 0))[None, :] * (DECAY * (pre / 2))[None, :]) * (DECAY * post)[:, None]


def principal_angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, ascending) between the row spaces of ``a`` [k1, n] and ``b`` [k2, n]."""
    qa, qb = orthonormal_rows(a), orthonormal_rows(b)
    s = np.linalg.svd(qa @ qb.T, compute_uv=False)
    return np.degrees(np.arccos(np.clip(s, -1.0, 1.0)))


def run_lava(path: str | Path, timeout_s: float = 3600) -> dict:
    """Run ``python -m spikecl_lava.learning.oja`` on a graph file in ``.venv-lava``; returns its output file's
    datasets (``h``, ``g``) and attributes (timings)."""
    from spikecl.export.lava_client import lava_python, run_side, side_output

    with tempfile.TemporaryDirectory(prefix="spikecl-hlop-") as tmp:
        out_path = Path(tmp) / "learned.h5"
        run_side([str(lava_python()), "-m", "spikecl_lava.learning.oja", str(path), "-o", str(out_path)],
                 "the Lava HLOP learner", timeout_s, "write the graph with fewer samples or epochs "
                 f"({PERIOD} Lava steps per sample and epoch)", tmpdir=Path(tmp))
        return side_output(out_path, "the Lava HLOP learner", lambda f: {
            **{key: f[key][()] for key in ("h", "g")},
            **{key: (v.item() if hasattr(v, "item") else v) for key, v in f.attrs.items()}})


def learned_basis(graph: HLOPGraph, h: np.ndarray) -> np.ndarray:
    """The whole protected basis after learning: frozen rows and learned rows, [k_old + k, n]."""
    return np.concatenate([graph.h_old, h])


def learn(graph: HLOPGraph, backend: str = "lava-sim", path: str | Path | None = None) -> dict:
    """Learn H from ``graph`` on ``backend``: ``h`` [k, n], ``g`` [n, k], and for ``lava-sim`` Lava's timings,
    ``equals_reference`` (bit for bit, :func:`reference_learn` run beside Lava with the same numpy) and
    ``max_abs_difference`` from this process's reference (another numpy build may round dot products differently)
    (``path``: the graph's file, written to a temporary one if None)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    h_ref, g_ref = reference_learn(graph)
    if backend == "reference":
        return {"h": h_ref, "g": g_ref}
    if path is None:
        with tempfile.TemporaryDirectory(prefix="spikecl-hlop-") as tmp:
            return learn(graph, backend, write_graph(Path(tmp) / "graph.h5", graph))
    lava = run_lava(path)
    keys = ("h", "g", "build_s", "start_s", "run_s", "ms_per_step", "steps", "equals_reference")
    return {**{key: lava[key] for key in keys}, "max_abs_difference": float(np.max(np.abs(lava["h"] - h_ref)))}


def deploy(path: str | Path, backend: str = "reference", samples: int = 0, data_dir: str | None = None) -> dict:
    """Learn H from the file's activity with ``backend`` (``reference``: :func:`reference_learn`; ``lava-sim``:
    Lava's floating-point learning engine, compared with the reference, see :func:`learn`). ``samples`` and
    ``data_dir`` are unused (the file holds its activity). Reports principal angles (degrees) of the learned basis to
    the activity's principal subspace and to ``h_torch`` when present, orthonormality of H, and Lava's timings."""
    import time

    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    graph = read_graph(path)
    started = time.perf_counter()
    report = learn(graph, backend, path)
    h, g = report.pop("h"), report.pop("g")
    report.update(backend=backend, layer=graph.layer, samples=int(graph.activity.shape[0]),
                  n=int(graph.activity.shape[1]), k=int(graph.h_init.shape[0]), k_old=int(graph.h_old.shape[0]),
                  epochs=graph.epochs,
                  lr_log2=graph.lr_log2, rule=rule(graph.lr_log2), wall_s=time.perf_counter() - started)
    report["g_equals_h_transposed"] = bool(np.array_equal(g, h.T))
    report["orthonormality_error"] = float(np.max(np.abs(h @ h.T - np.eye(h.shape[0]))))
    res = residual(graph.activity, graph.h_old)
    top = np.linalg.svd(res, full_matrices=False)[2][:h.shape[0]]
    report["angles_to_principal_deg"] = principal_angles_deg(h, top).tolist()
    if graph.h_torch is not None:
        report["angles_to_torch_deg"] = principal_angles_deg(learned_basis(graph, h), graph.h_torch).tolist()
    report["h"] = h
    return report


def print_report(report: dict, out=None) -> None:
    """The learning report: largest principal angles, G = Hᵀ, timings."""
    out = out or sys.stdout
    print(f"hlop-lateral {report['layer'] or '(layer)'} on {report['backend']}: k = {report['k']} learning neurons "
          f"(+{report['k_old']} frozen), n = {report['n']}, {report['samples']} samples × {report['epochs']} epochs, "
          f"rule dw = {report['rule']}", file=out)
    print(f"largest principal angle to the activity's principal subspace {max(report['angles_to_principal_deg']):.2f}°"
          + (f", to the torch-learned basis {max(report['angles_to_torch_deg']):.2f}°"
             if "angles_to_torch_deg" in report else "")
          + f"; |HHᵀ − I| ≤ {report['orthonormality_error']:.2e}; "
            f"G = Hᵀ exactly: {report['g_equals_h_transposed']}",
          file=out)
    if report["backend"] == "lava-sim":
        print(f"Lava: {report['steps']} steps, {report['ms_per_step']:.2f} ms/step, build {report['build_s']:.2f} s, "
              f"compile + first step {report['start_s']:.2f} s; equals the numpy model bit for bit: "
              f"{report['equals_reference']} (max |ΔH| to this process's model {report['max_abs_difference']:.1e})",
              file=out)
