"""The CA3 memory on Lava's learning engine against the torch stepper: exactness and time per step.

Cases: the recorded functional experiment (C = 5, M = 10, 9 operations) and random stress trials
(:func:`spikecl.memory.stress.make_trial`: learn every cue, recall each by cue, recall by 1- and 2-bit fragments
twice, relearn a quarter of the cues, recall by cue again) at the given sizes and spacings. Each case is written as a
learning graph (:func:`spikecl.memory.lava_graph.write_ca3_graph`) and deployed on Lava's floating-point simulation
(``.venv-lava``). "torch ms/step" is the median of ``--repeats`` runs of the stepper (one memory, CPU); "Lava
ms/step" excludes compilation and the first step ("compile s").

    python benchmarks/ca3_lava.py [--sizes 10,30] [--spacings 14,7] [--repeats 3] [--stock-engine]
                                  [--cells custom|lif] [--learning float|fixed]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from spikecl.commands import bounded, listed
from spikecl.errors import SpikeCLError
from spikecl.export import ca3_graph
from spikecl.memory import CA3Params, encode, make_schedule
from spikecl.memory.lava_graph import reference_run, write_ca3_graph
from spikecl.memory.recordings import RECORDED
from spikecl.memory.stress import make_trial


def cases(sizes: list[int], spacings: list[int]):
    """(label, C, M, schedule)."""
    C, M, ops, spacing = RECORDED["exp1_functional"]
    yield "exp1 (recorded)", C, M, make_schedule(ops, C, M, spacing)
    for n in sizes:
        trial = make_trial(n, n, 0.3, seed=0, fragment_sizes=(1, 2), queries_per_size=3)
        for gap in spacings:
            yield f"random {gap} ms", n, n, make_schedule(trial.operations, n, n, gap)


def torch_ms_per_step(C: int, M: int, schedule, repeats: int) -> float:
    cue, content = encode(schedule, C, M)
    return statistics.median(reference_run(CA3Params(), C, M, cue, content)["ms_per_step"] for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=listed(bounded(int, 2, 4096, what="a size")), default=[10, 30],
                        help="C = M of the random trials, comma-separated")
    parser.add_argument("--spacings", type=listed(bounded(int, 1, what="a gap in ms")), default=[14, 7],
                        help="gaps between operations (ms), comma-separated")
    parser.add_argument("--repeats", type=bounded(int, 1, what="a number of repeats"), default=3)
    parser.add_argument("--stock-engine", action="store_true", help="Lava's stock learning order")
    parser.add_argument("--cells", choices=("custom", "lif"), default="custom")
    parser.add_argument("--learning", choices=("float", "fixed"), default="float")
    args = parser.parse_args()
    try:
        ca3_graph.check_engine_options(args.cells, args.stock_engine, args.learning)    # before the table starts
        planned = list(cases(args.sizes, args.spacings))                               # every schedule laid out
    except SpikeCLError as exc:
        parser.error(str(exc))
    print("| case | C×M | ops | steps | min spike match | answers equal | recall acc. Lava / torch | max \\|Δw\\| nA "
          "| compile s | Lava ms/step | torch ms/step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, C, M, schedule) in enumerate(planned):
            path = write_ca3_graph(Path(tmp) / f"case{k}.h5", schedule, C, M)
            r = ca3_graph.deploy(path, "lava-sim", stock_engine=args.stock_engine, cells=args.cells,
                                learning=args.learning)
            torch_ms = torch_ms_per_step(C, M, schedule, args.repeats)
            print(f"| {label} | {C}×{M} | {r['operations']} | {r['steps']} | {min(r['spike_match'].values()):.2%} "
                  f"| {sum(r['answers_equal'])}/{r['operations']} | {r['recall_accuracy']:.3f} / "
                  f"{r['reference_recall_accuracy']:.3f} | {max(r['weight_max_abs_error_nA'].values()):.2g} "
                  f"| {r['start_s']:.2f} | {r['ms_per_step']:.2f} | {torch_ms:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
