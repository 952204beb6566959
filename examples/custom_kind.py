"""Define a new experiment kind in your own code and run it through spikecl's driver.

The kind here measures the rate curve of spikecl's LIF neuron (``mem[t] = beta * mem[t-1] + I[t] - S[t-1]``,
``S[t] = mem[t] > threshold``: snnTorch's subtractive reset, applied at the next step without decay): its firing
rate (spikes per step) against the mean input current, for a few leaks, with Gaussian noise on the current (one
results file per seed). The kind declares only its config, its
jobs, its summary and its plot; the driver gives it what every spikecl kind has: ``--set``-style overrides and
validation with one-line errors, refusal to overwrite results, ``--resume``, atomic HDF5 results files, progress,
and ``spikecl.report``; ``check_seeds`` keeps the summary from averaging runs of other settings as if they were
seeds.

    python examples/custom_kind.py [--out DIR]    (a few seconds; results and plot kept in DIR)

The file is also a plugin: with an experiment file ``rates.toml`` holding ``kind = "rate_curve"``,
``spikecl run rates.toml --plugin examples/custom_kind.py`` and ``spikecl report results/rates --plugin
examples/custom_kind.py`` treat the kind like spikecl's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from spikecl.config import RunHeader
from spikecl.continual.metrics import mean_std
from spikecl.errors import ExistsError
from spikecl.experiment_kind import Job, Kind, check_seeds, register_kind, run_file
from spikecl.figures import colors, figure, save
from spikecl.io import write_run
from spikecl.options import option
from spikecl.report import report_paths


@dataclasses.dataclass
class RateCurveConfig(RunHeader):
    """The ``rate_curve`` experiment: LIF firing rate against mean input current."""

    kind: str = option("rate_curve", choices=("rate_curve",), doc="experiment kind")
    currents: list[float] = option([0.0, 0.05, 0.1, 0.2, 0.4, 0.8], low=0.0, nonempty=True,
                                   doc="mean input current per step, in units of the threshold")
    noise: float = option(0.1, low=0.0, doc="standard deviation of the current per step (threshold units)")
    betas: list[float] = option([0.8, 0.95, 1.0], low=0.0, high=1.0, nonempty=True, distinct=True,
                                doc="membrane decay per step (one metric each)")
    steps: int = option(2000, low=1, doc="time steps simulated")
    neurons: int = option(100, low=1, doc="neurons per (beta, current), each with its own noise")


def rate_curve(cfg: RateCurveConfig, seed: int) -> np.ndarray:
    """Firing rates [betas, currents] (spikes per step, mean over neurons) of LIF neurons with threshold 1."""
    rng = np.random.default_rng(seed)
    beta = np.asarray(cfg.betas)[:, None, None]                               # [betas, 1, 1]
    mean = np.asarray(cfg.currents)[None, :, None]                            # [1, currents, 1]
    mem = np.zeros((len(cfg.betas), len(cfg.currents), cfg.neurons))
    spikes, fired = np.zeros_like(mem), np.zeros_like(mem)
    for _ in range(cfg.steps):                          # the reset subtracts last step's spike, undecayed
        mem = beta * mem + mean + cfg.noise * rng.standard_normal(mem.shape) - fired
        fired = (mem > 1.0).astype(mem.dtype)
        spikes += fired
    return (spikes / cfg.steps).mean(axis=2)


class RateCurveKind(Kind):
    name = "rate_curve"
    config = RateCurveConfig

    def plan(self, cfg: RateCurveConfig) -> list[Job]:
        def job(seed: int) -> Job:
            path = Path(cfg.output_dir) / cfg.name / f"rate_curve-seed{seed}.h5"
            recorded = {**dataclasses.asdict(cfg), "seed": seed}

            def run(options) -> str:
                rates = rate_curve(cfg, seed)
                metrics = {f"rate_beta{b!r}_max_current": float(r[-1]) for b, r in zip(cfg.betas, rates)}
                write_run(path, self.name, recorded, metrics, {"currents": np.asarray(cfg.currents), "rates": rates},
                          attrs={"seed": seed}, overwrite=options.overwrite)
                return f"seed {seed}: rates up to {rates.max():.3f} spikes per step"

            return Job(path, run, recorded)

        return [job(seed) for seed in cfg.seeds]

    def summarize(self, runs, detail: bool = True) -> str:
        check_seeds(runs, "rate_curve runs", "rate_curve")     # never average other experiments as if seeds
        rates = np.stack([run.arrays["rates"] for run in runs])                 # [seeds, betas, currents]
        currents, betas = runs[0].arrays["currents"], runs[0].config["betas"]
        lines = [f"LIF rate (spikes per step), mean ± std over {len(runs)} seed(s)",
                 "current  " + "  ".join(f"beta={b!r:<11}" for b in betas)]
        for i, current in enumerate(currents):       # sample std over seeds, as every spikecl summary gives
            lines.append(f"{current:7.2f}  " + "  ".join("{:.3f} ± {:.3f}".format(*mean_std(rates[:, j, i]))
                                                       for j in range(len(betas))))
        return "\n".join(lines)

    def plot(self, runs, out_dir: Path) -> list[Path]:
        check_seeds(runs, "rate_curve runs", "rate_curve")
        rates = np.stack([run.arrays["rates"] for run in runs]).mean(axis=0)
        currents, betas = runs[0].arrays["currents"], runs[0].config["betas"]
        fig = figure(figsize=(5, 3.5), layout="constrained")
        ax = fig.add_subplot()
        for rate, beta, color in zip(rates, betas, colors(len(betas))):
            ax.plot(currents, rate, "o-", color=color, label=f"beta = {beta!r}")
        ax.set(xlabel="mean input current (threshold units)", ylabel="spikes per step", title="LIF rate curve")
        ax.legend()
        return [save(fig, Path(out_dir) / "rate_curve.png")]


register_kind(RateCurveKind())

def main(folder: Path) -> None:
    """Run the kind twice (the second refused), resume it, report the folder: results and plot under ``folder``."""
    experiment = folder / "rate_curve.toml"
    experiment.write_text(f'kind = "rate_curve"\nseeds = [0, 1]\noutput_dir = "{folder.as_posix()}"\n',
                          encoding="utf-8")
    run_file(experiment, ["steps=1000"], progress=False)
    try:
        run_file(experiment, ["steps=1000"], progress=False)
    except ExistsError as exc:
        print(f"\nrun again: {exc}")
    print("\nrun again with --resume (both results files are kept):")
    run_file(experiment, ["steps=1000"], resume=True, progress=False, plots=False)
    print("\nspikecl.report on the folder:")
    report_paths([folder / "rate_curve"], plots=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="an empty or new folder to keep the results and the plot in "
                                                 "(default: a temporary folder, removed at the end)")
    args = parser.parse_args()
    if args.out is not None:
        if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
            parser.error(f"--out: {args.out} is not an empty folder")
        args.out.mkdir(parents=True, exist_ok=True)
        main(args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="spikecl-rate-curve-") as temporary:
            main(Path(temporary))
            print(f"\n{temporary} and its plot are removed now; pass --out DIR to keep them")
