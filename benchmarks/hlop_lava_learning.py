"""HLOP with its subspaces learned on Lava's learning engine, against HLOP with its torch-learned subspaces.

3-task Permuted MNIST-5k (the demo's network: spiking MLP 784-256-256-10, T = 4, direct encoding, BPTT; the demo's
HLOP settings). Two runs per seed:

* ``hlop``: spikecl's HLOP as is (lateral neurons learn with the torch rule during training);
* ``hlop-lava``: the same, but after every task the new lateral rows of each protected layer in ``--layers`` are
  replaced by rows learned on Lava's learning engine (:mod:`spikecl.export.hlop_graph`, floating-point
  ``LearningDense``) from the trained network's presynaptic activity on the task's training data (``--samples``
  samples, ``--rows`` of their time-step rows drawn at random, ``--epochs`` passes), beside the Lava-learned rows of
  the earlier tasks (frozen). The next tasks project against those rows.

Reports ACC and BWT of both (mean ± std over seeds), per task and layer the principal angles between the
Lava-learned new rows and the torch-learned ones of the same task (same activity, same frozen rows), the share of
the task's activity energy each holds, and Lava's time per step and in all.

    python benchmarks/hlop_lava_learning.py [--seeds 0,1] [--layers layers.0,layers.1,readout] [--out FILE.json]

Needs .venv-lava (``make lava``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from spikecl.atomic import atomic_write
from spikecl.commands import bounded, listed
from spikecl.config import experiment_from_dict
from spikecl.continual import metrics
from spikecl.continual.hlop_offload import frozen_rows, presynaptic_activity
from spikecl.continual.runner import ContinualRun
from spikecl.continual.strategies import register
from spikecl.continual.strategies.hlop import HLOP
from spikecl.errors import SpikeCLError
from spikecl.export import hlop_graph as hg

HLOP_OPTIONS = {"neurons": [[80, 120, 120], [60, 40, 40], [50, 20, 20]], "step": "normalised", "step_rows": 1,
                "orthonormalize": True}
SETTINGS = {"layers": ["layers.0", "layers.1", "readout"], "samples": 500, "rows": 1000, "epochs": 2, "lr": 0.25}
LOG: list[dict] = []            # one entry per (seed, task, layer) learned on Lava


def energy_share(rows: np.ndarray, basis: np.ndarray) -> float:
    """Share of the energy of ``rows`` [N, n] in span(``basis``)."""
    q = hg.orthonormal_rows(basis)
    return float(np.sum((rows @ q.T) ** 2) / np.sum(rows ** 2))


class LavaHLOP(HLOP):
    """HLOP whose consolidated rows of the chosen layers come from Lava's learning engine after every task."""

    name = "hlop-lava"

    def begin(self, tasks):
        super().begin(tasks)
        self.lava_rows = {name: frozen_rows(self, name) for name in SETTINGS["layers"]}

    def after_task(self, task, train):
        super().after_task(task, train)                     # merges the torch-learned rows
        for name in SETTINGS["layers"]:
            torch_basis, previous = frozen_rows(self, name), self.lava_rows[name]
            k = torch_basis.shape[0] - previous.shape[0]
            if k < 1:
                continue
            activity = presynaptic_activity(self, train, name, SETTINGS["samples"], SETTINGS["rows"], seed=task)
            graph = hg.make_graph(activity, k, previous, epochs=SETTINGS["epochs"], lr=SETTINGS["lr"], layer=name,
                                  seed=task)
            started = time.perf_counter()
            out = hg.learn(graph, "lava-sim")
            wall = time.perf_counter() - started
            learned = hg.learned_basis(graph, out["h"])
            self.load_subspace(name, learned)
            self.lava_rows[name] = learned
            res = hg.residual(activity, previous)
            LOG.append({"seed": self.sim.seed, "task": task, "layer": name, "n": graph.activity.shape[1], "k": k,
                        "k_old": len(previous), "rows": len(activity), "lr_log2": graph.lr_log2,
                        "angles_deg": hg.principal_angles_deg(out["h"], torch_basis[len(previous):]).tolist(),
                        "energy_lava": energy_share(res, out["h"]),
                        "energy_torch": energy_share(res, torch_basis[len(previous):]),
                        "energy_best": float(np.sum(np.linalg.svd(res, compute_uv=False)[:k] ** 2) / np.sum(res ** 2)),
                        "equals_reference": out["equals_reference"],
                        "max_abs_difference": out["max_abs_difference"], "g_equals_h_t": bool(np.array_equal(out["g"],
                                                                                                    out["h"].T)),
                        "steps": int(out["steps"]), "ms_per_step": float(out["ms_per_step"]),
                        "run_s": float(out["run_s"]), "start_s": float(out["start_s"]), "wall_s": wall})
            e = LOG[-1]
            print(f"  task {task} {name}: k {k} (+{len(previous)} frozen), n {e['n']}, {e['rows']} rows, "
                  f"angles to torch rows median {np.median(e['angles_deg']):.1f}° max {max(e['angles_deg']):.1f}°, "
                  f"energy lava {e['energy_lava']:.3f} torch {e['energy_torch']:.3f} best {e['energy_best']:.3f}, "
                  f"{e['steps']} steps {e['ms_per_step']:.2f} ms/step, wall {wall:.1f} s", flush=True)


register("hlop-lava", LavaHLOP)


def config(seeds: list[int]):
    return experiment_from_dict({
        "name": "hlop-lava-learning", "seeds": seeds, "device": "cpu",
        "data": {"dataset": "mnist5k"}, "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 3},
        "network": {"kind": "mlp", "hidden": [256, 256], "num_steps": 4, "encoder": "direct"},
        "train": {"trainer": "bptt", "epochs": 2, "batch_size": 64, "lr": 0.05, "momentum": 0.9, "eval_every": 0},
        "strategy": {"methods": ["hlop", "hlop-lava"], "hlop": HLOP_OPTIONS, "hlop-lava": HLOP_OPTIONS}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=listed(bounded(int, 0, what="a seed")), default=[0, 1])
    parser.add_argument("--layers", type=listed(str), default=SETTINGS["layers"],
                        help="protected synapses whose lateral neurons learn on Lava, comma-separated")
    parser.add_argument("--samples", type=bounded(int, 1, what="a number of samples"), default=SETTINGS["samples"])
    parser.add_argument("--rows", type=bounded(int, 1, what="a number of rows"), default=SETTINGS["rows"])
    parser.add_argument("--epochs", type=bounded(int, 1, what="a number of epochs"), default=SETTINGS["epochs"])
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    SETTINGS.update(layers=args.layers, samples=args.samples, rows=args.rows, epochs=args.epochs)
    seeds = args.seeds
    cfg = config(seeds)
    try:
        ContinualRun(cfg, "hlop-lava", seed=seeds[0])          # reads every --layers synapse, before any training
    except SpikeCLError as exc:
        parser.error(f"--layers: {exc}")
    scores: dict[str, list[tuple[float, float]]] = {"hlop": [], "hlop-lava": []}
    for seed in seeds:
        for method in ("hlop", "hlop-lava"):
            print(f"seed {seed} {method}", flush=True)
            started = time.perf_counter()
            r = ContinualRun(cfg, method, seed=seed).execute(progress_bar=False)
            acc, bwt = 100 * metrics.acc(r.acc_matrix), 100 * metrics.bwt(r.acc_matrix)
            scores[method].append((acc, bwt))
            print(f"  ACC {acc:.2f} %, BWT {bwt:.2f} % ({time.perf_counter() - started:.0f} s)", flush=True)
    print("\nmethod      ACC %            BWT %")
    for method, rows in scores.items():
        (acc, acc_sd), (bwt, bwt_sd) = (metrics.mean_std([row[i] for row in rows]) for i in (0, 1))
        print(f"{method:10s}  {acc:6.2f} ± {acc_sd:4.2f}   {bwt:6.2f} ± {bwt_sd:4.2f}   "
              f"per seed {', '.join(f'{x:.2f}/{y:.2f}' for x, y in rows)}")
    lava_s = sum(e["wall_s"] for e in LOG)
    steps = sum(e["steps"] for e in LOG)
    print(f"Lava: {len(LOG)} learning runs, {steps} steps, {lava_s:.0f} s in all (subprocess wall time), "
          f"{1000 * sum(e['run_s'] for e in LOG) / steps:.2f} ms/step")
    if args.out:                                        # written whole or not at all
        figures = json.dumps({"settings": SETTINGS, "hlop_options": HLOP_OPTIONS, "scores": scores, "lava": LOG},
                             indent=1)
        atomic_write(Path(args.out), lambda tmp: tmp.write_text(figures, encoding="utf-8"), overwrite=True)


if __name__ == "__main__":
    main()
