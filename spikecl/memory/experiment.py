"""The ``ca3`` experiment kind: the recorded functional experiment and the stress suite, one results file per part.

An experiment file (see ``models/ca3_cam.toml``)::

    kind = "ca3"
    name = "ca3_cam"
    seeds = [0, 1]
    device = "cpu"                       # torch stepper for the stress suite ("cpu", "cuda", "auto")
    [functional]  backend = "brian2"     # the recorded exp1, checked spike for spike against SpiNNaker
    [stress]      sizes = [[10, 10], [100, 100]], densities = [0.1, 0.3, 0.5], spacings_ms = [7, 14, 28]
                  variants = ["published", "read_only", "k2", "pool"]
    [params]      # CA3Params overrides, e.g. a_plus_nA = 5.5

Parts are results files (:func:`spikecl.io.write_run`, ``kind = "ca3"``) in ``<output_dir>/<name>/``:
``functional.h5`` and ``stress_C{C}_M{M}_{variant}.h5``; :mod:`spikecl.experiment_kind` runs them (existing parts,
``--resume``, ``--overwrite``), then prints the summary table (:mod:`spikecl.memory.table`) and writes PNG plots
beside the results. The parts' schema and their checked reading: :mod:`spikecl.memory.results`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from spikecl.config import KIND_DOC, NAME_DOC, RunHeader
from spikecl.environment import source_note
from spikecl.errors import ConfigError
from spikecl.experiment_kind import Job, Kind, load
from spikecl.io import Run, write_run
from spikecl.memory.cam import BACKENDS, CA3Memory
from spikecl.memory.params import CA3Params, check_sizes
from spikecl.memory.recordings import FUNCTIONAL, RECORDED, functional_mismatch, mismatch_text
from spikecl.memory.results import FUNCTIONAL_IGNORES, STRESS_IGNORES, checked_part
from spikecl.memory.schedule import check_readout, learn, make_schedule, recall_by_cue
from spikecl.memory.stress import VARIANTS, StressGrid, content_size, least_steps, run_grid, variant_params
from spikecl.memory.table import summary_text
from spikecl.memory.torch_net import PRECISIONS, check_fits, footprint
from spikecl.options import from_dict, option


@dataclass
class FunctionalConfig:
    """The recorded functional experiment (exp1: C = 5, M = 10, 9 operations)."""

    enabled: bool = option(True, doc="run the functional experiment")
    backend: str = option("brian2", choices=BACKENDS, doc="simulator: Brian2 or spikecl's torch stepper")


@dataclass
class StressConfig:
    """Random memories on the torch stepper: every size x variant x density x spacing x seed."""

    enabled: bool = option(True, doc="run the stress grid")
    sizes: list[list[int]] = option([[10, 10], [30, 30]], low=1, high=5000, doc="[C, M] pairs, each once")
    densities: list[float] = option([0.1, 0.3, 0.5], low=0.01, high=1.0, distinct=True, doc="content bits / M")
    spacings_ms: list[int] = option([7, 14, 28], low=7, high=1000, distinct=True, doc="gap between operations")
    variants: list[str] = option(list(VARIANTS), choices=tuple(VARIANTS), distinct=True,
                                 doc="model variants to compare (spikecl.memory.stress.VARIANTS)")
    fragment_sizes: list[int] = option([1, 2, 3], low=1, distinct=True, doc="bits per recall-by-content fragment")
    queries_per_size: int = option(10, low=1, doc="recall-by-content queries per fragment size in a trial")
    relearn_fraction: float = option(0.25, low=0.0, high=1.0,
                                     doc="share of cues relearned to test forgetting (rounded half up, at least 1; "
                                         "0: none, and no relearn or echo columns)")
    workers: int = option(1, low=1, high=256, doc="CPU processes each batch of trials is split over (the same "
                                                  "results; spikecl.memory.parallel)")
    precision: str = option("float64", choices=PRECISIONS,
                            doc="the torch stepper's floats: float64 (the reference) or float32 (faster on a CPU; "
                                "spike-exact on the SpiNNaker recordings, weights within float32 rounding)")


@dataclass
class CA3ExperimentConfig(RunHeader):
    """A whole ``ca3`` experiment file."""

    kind: str = option("ca3", choices=("ca3",), doc=KIND_DOC)
    name: str = option("ca3", file_name=True, doc=NAME_DOC)
    functional: FunctionalConfig = field(default_factory=FunctionalConfig)
    stress: StressConfig = field(default_factory=StressConfig)
    params: dict[str, float] = option({}, doc="CA3Params overrides")

    def model_params(self) -> CA3Params:
        return from_dict(CA3Params, self.params, "params.")


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> CA3ExperimentConfig:
    """Load, override and validate a ``ca3`` experiment file (one-line ConfigError on any problem)."""
    return load(path, overrides, "ca3")[1]


# --- the parts ----------------------------------------------------------------------------------------------------
def run_functional(cfg: CA3ExperimentConfig, path: Path, device: str, overwrite: bool) -> str:
    """The recorded exp1 through :class:`CA3Memory`; stores every population's raster (bool ``[T, N]``), the
    decoded answers, the weights and the mismatch count against the SpiNNaker recording. Returns a log line."""
    C, M, ops, spacing = RECORDED[FUNCTIONAL]
    start = time.perf_counter()
    mem = CA3Memory(C, M, cfg.model_params(), backend=cfg.functional.backend,
                    device=device if cfg.functional.backend == "torch" else None)
    run = mem.run(ops, spacing)
    seconds = time.perf_counter() - start
    decoded = [{"operation": str(r.operation), "kind": r.operation.kind, "start_ms": r.start_ms,
                "cues": list(r.cues), "bits": list(r.bits), "forgotten": list(r.forgotten)} for r in run.results]
    mismatched = functional_mismatch(run.spikes)
    write_run(path, "ca3", asdict(cfg), arrays={"spikes": run.spikes, "weights": run.weights},
              attrs={"part": "functional", "backend": cfg.functional.backend, "n_cues": C, "n_bits": M,
                     "seconds": seconds, "duration_ms": run.schedule.duration_ms, "decoded": decoded,
                     "starts_ms": list(run.schedule.starts_ms), "kinds": [op.kind for op in ops],
                     "mismatched_spikes": mismatched, "params": cfg.params}, overwrite=overwrite)
    return mismatch_text(mismatched)


def run_stress_part(cfg: CA3ExperimentConfig, n_cues: int, n_bits: int, variant: str, path: Path, device: str,
                    overwrite: bool) -> str:
    """Every (density, spacing, seed) trial of one memory size and variant on the torch stepper, as one table.
    Returns a log line."""
    s = cfg.stress
    grid = StressGrid(n_cues, n_bits, variant, tuple(s.densities), tuple(s.spacings_ms), tuple(cfg.seeds),
                      tuple(s.fragment_sizes), s.queries_per_size, s.relearn_fraction)
    start = time.perf_counter()
    table = run_grid(grid, cfg.model_params(), device, s.workers if str(device).startswith("cpu") else 1,
                     s.precision)
    seconds = time.perf_counter() - start
    write_run(path, "ca3", stress_config(cfg), arrays={"table": table},
              attrs={"part": "stress", "n_cues": n_cues, "n_bits": n_bits, "variant": variant, "seconds": seconds,
                     "params": cfg.params},
              overwrite=overwrite)
    return f"{len(table['seed'])} trials in {seconds:.1f} s"


#: how the stress suite draws its trials, recorded beside a stress part's config so that a part drawn otherwise
#: (before 2026-12-03 a trial's content bits and relearned cues were counted by round(), half to even, and a relearned
#: cue could get its old content again) neither resumes nor tables as a part of today's run
STRESS_RULES = {"stress_rounding": "half up; a relearned cue gets a content other than its old"}


def stress_config(cfg: CA3ExperimentConfig) -> dict:
    """What a stress part records as its config: ``cfg`` and the :data:`STRESS_RULES`."""
    return {**asdict(cfg), **STRESS_RULES}


def check_hold(cfg: CA3ExperimentConfig) -> None:
    """A learn holds its input ``params.learn_hold_steps`` ms: never past the next operation (one-line
    :class:`ConfigError`)."""
    hold = cfg.model_params().learn_hold_steps
    gaps = ([("stress.spacings_ms", min(cfg.stress.spacings_ms))] if cfg.stress.enabled else []) + \
        ([("the recorded experiment", int(np.min(RECORDED[FUNCTIONAL][3])))] if cfg.functional.enabled else [])
    for where, gap in gaps:
        if hold > gap:
            raise ConfigError(f"params.learn_hold_steps: a learn holds its input {hold} ms, longer than the {gap} ms "
                              f"gap of {where}")


def check_readout_timing(cfg: CA3ExperimentConfig) -> None:
    """With the file's delays every answer is read before the next operation's first output and inside the
    schedule: the recorded experiment and a stress trial (ending with a recall by cue) at each spacing (one-line
    :class:`ConfigError`)."""
    params = cfg.model_params()
    checks = ([("the recorded experiment", RECORDED[FUNCTIONAL])] if cfg.functional.enabled else []) + \
        ([(f"stress.spacings_ms = {gap}", (1, 1, [learn(0, [0]), recall_by_cue(0)], gap))
          for gap in cfg.stress.spacings_ms] if cfg.stress.enabled else [])
    for where, (C, M, ops, spacing) in checks:
        try:
            check_readout(make_schedule(ops, C, M, spacing), params)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def check_stress(cfg: CA3ExperimentConfig) -> None:
    """A one-line ConfigError unless the enabled stress test can run as planned: every list given, a fragment that
    fits some content, densities that store different numbers of bits at every M, variants that own their keys."""
    stress = cfg.stress
    for name in ("sizes", "densities", "spacings_ms", "variants", "fragment_sizes"):
        if not getattr(stress, name):
            raise ConfigError(f"stress.{name}: expected at least one value")
    fragment = max(stress.fragment_sizes)                  # a fragment larger than a content is skipped there
    largest = max((content_size(m, d), m, d) for _, m in stress.sizes for d in stress.densities)
    if fragment > largest[0]:
        raise ConfigError(f"stress.fragment_sizes: a {fragment}-bit fragment fits in no stored content (the "
                          f"largest has {largest[0]} bits: M = {largest[1]} at density {largest[2]:g})")
    for _, m in stress.sizes:
        bits = [content_size(m, d) for d in stress.densities]
        twice = next((i for i, k in enumerate(bits) if k in bits[:i]), None)
        if twice is not None:
            other = stress.densities[bits.index(bits[twice])]
            raise ConfigError(f"stress.densities: {other:g} and {stress.densities[twice]:g} both store "
                              f"{bits[twice]}-bit contents at M = {m} (round(density x M) bits, at least 1); drop one")
    for variant in stress.variants:
        for key in VARIANTS[variant]:
            if key in cfg.params:
                raise ConfigError(f"params.{key}: the stress variant {variant!r} sets {key} itself; drop "
                                  f"params.{key} or that variant")
        try:
            params = variant_params(cfg.model_params(), variant)
            for c, m in stress.sizes:
                check_sizes(c, m, params)
        except ConfigError as exc:
            raise ConfigError(f"stress variant {variant!r}: {exc}") from None


def check_stress_fits(cfg: CA3ExperimentConfig, c: int, m: int) -> None:
    """A one-line ConfigError where the batch of trials of stress size (``c``, ``m``) (densities x spacings x seeds)
    cannot fit in the memory free now: checked before any part runs, for the sizes a run will simulate (a part
    ``--resume`` keeps needs none)."""
    stress = cfg.stress
    batch = len(stress.densities) * len(stress.spacings_ms) * len(cfg.seeds)
    steps = least_steps(c, max(stress.spacings_ms))            # the rasters come back to the host, whatever the device
    check_fits(footprint(cfg.model_params(), c, m, batch, steps, 8 if stress.precision == "float64" else 4), "cpu",
               f"stress.sizes [{c}, {m}]: its {batch} trial{'s' * (batch > 1)} of at least {steps:,} steps",
               "smaller sizes, or fewer densities, spacings or seeds")


class CA3Kind(Kind):
    name = "ca3"
    config = CA3ExperimentConfig
    rule_keys = frozenset(STRESS_RULES)

    def load(self, raw: dict) -> CA3ExperimentConfig:
        cfg = from_dict(CA3ExperimentConfig, raw)
        cfg.model_params()
        for i, size in enumerate(cfg.stress.sizes):
            if len(size) != 2:
                raise ConfigError(f"stress.sizes[{i}]: expected [C, M], got {size}")
            if size in cfg.stress.sizes[:i]:
                raise ConfigError(f"stress.sizes: {size!r} appears more than once")
        if not (cfg.functional.enabled or cfg.stress.enabled):
            raise ConfigError("functional.enabled and stress.enabled are both false: nothing to run; enable one")
        if cfg.stress.enabled:
            check_stress(cfg)
        if cfg.functional.enabled:
            try:
                check_sizes(*RECORDED[FUNCTIONAL][:2], cfg.model_params())
            except ConfigError as exc:
                raise ConfigError(f"the functional part (the recorded experiment): {exc}") from None
        check_hold(cfg)
        check_readout_timing(cfg)
        return cfg

    def plan(self, cfg: CA3ExperimentConfig) -> list[Job]:
        """The functional part, then a stress part per size and variant (each enabled)."""
        out_dir = Path(cfg.output_dir) / cfg.name
        jobs = []
        if cfg.functional.enabled:
            path = out_dir / "functional.h5"
            backend = cfg.functional.backend                        # its simulator, checked before any work
            jobs.append(Job(path, lambda o, p=path: run_functional(cfg, p, o.device, o.overwrite), asdict(cfg),
                            FUNCTIONAL_IGNORES, identity={"part": "functional"},
                            needs=((backend, backend, f"functional.backend = {backend!r}"),)))
        if cfg.stress.enabled:
            for C, M in cfg.stress.sizes:
                for variant in cfg.stress.variants:
                    path = out_dir / f"stress_C{C}_M{M}_{variant}.h5"
                    jobs.append(Job(path, lambda o, p=path, C=C, M=M, v=variant: run_stress_part(
                        cfg, C, M, v, p, o.device, o.overwrite), stress_config(cfg), STRESS_IGNORES, identity={
                            "part": "stress", "n_cues": C, "n_bits": M, "variant": variant},
                        needs=(("torch", "torch", "the stress suite (spikecl's torch stepper)"),),
                        check=lambda C=C, M=M: check_stress_fits(cfg, C, M)))
        return jobs

    def export(self, source: Path, output: Path, overwrite: bool) -> str:
        """The functional experiment of ``source`` as a Lava learning graph (HDF5) in ``output``."""
        from spikecl.memory.lava_graph import write_functional_graph

        if output.suffix.lower() == ".nir":
            raise ConfigError(f"-o {output}: a .nir name for a CA3 learning graph, which is HDF5 (NIR holds no "
                              "plasticity); name it .h5")
        only_params = ["stress.enabled=false", "functional.enabled=true"]  # the graph is the functional experiment
        path = write_functional_graph(output, load_config(source, only_params).model_params(), overwrite)
        return (f"wrote {path} (ca3 learning graph: the functional experiment with the torch stepper's run as "
                f"reference; spikecl deploy {path} --backend lava-sim)")

    def summarize(self, runs: Sequence[Run], detail: bool = True) -> str:
        parts = {str(run.path): checked_part(run) for run in runs}
        return summary_text(parts) + source_note(runs, lambda run: run.path.name)

    def plot(self, runs: Sequence[Run], out_dir: Path) -> list[Path]:
        from spikecl.memory.plots import write_plots

        return write_plots({str(run.path): checked_part(run) for run in runs}, out_dir)

    def plot_files(self, cfg: CA3ExperimentConfig) -> list[Path]:
        from spikecl.memory.plots import plot_names

        sizes = [(C, M) for C, M in cfg.stress.sizes] if cfg.stress.enabled else []
        names = plot_names(cfg.functional.enabled, sizes, "published" in cfg.stress.variants)
        return [Path(cfg.output_dir) / cfg.name / name for name in names]


KIND = CA3Kind()
