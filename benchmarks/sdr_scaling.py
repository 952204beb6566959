"""Sparsey coder timings: per-item learning and retrieval time vs items stored (flat), and MNIST-5k learning time
beside the k-WTA spatial pooler, all on one thread in the same run.

Part 1 stores random binary patterns in one mac and, at each checkpoint, times storing the next ``--window`` items
and recognising ``--window`` stored items one at a time; a nearest-stored-code lookup (a scan over all stored
codes, the plain reference whose cost grows with the store) is timed beside it. Part 2 learns MNIST-5k's 4,000
training images in one pass with the model of ``models/sparsey_mnist5k.toml`` and with the spatial pooler.

    python benchmarks/sdr_scaling.py [--points 0,1000,10000,100000] [--window 200] [--skip-mnist]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from spikecl.commands import bounded
from spikecl.errors import SpikeCLError
from spikecl.sdr import MacConfig, SparseyCoder, SparseyConfig
from spikecl.sdr.experiment import load_config
from spikecl.sdr.measures import one_thread, run_pooler, run_sparsey


def _per_item_ms(fn, items: np.ndarray) -> tuple[float, float]:
    """(wall, CPU) milliseconds per item of ``fn`` over ``items``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    for x in items:
        fn(x)
    return 1000 * (time.perf_counter() - start) / len(items), 1000 * (time.process_time() - start_cpu) / len(items)


#: rows of random patterns drawn at a time; the most stored items a point may ask for
CHUNK, MAX_POINT = 10_000, 1_000_000


def scaling(points: list[int], window: int, n_pixels: int = 1024, density: float = 0.05) -> None:
    rng = np.random.default_rng(0)
    rows = max(points) + window * (len(points) + 1)               # close points go past
    patterns = np.concatenate([rng.random((min(CHUNK, rows - start), n_pixels)) < density   # the draws of one call,
                               for start in range(0, rows, CHUNK)])                        # without its float64 copy
    coder = SparseyCoder(SparseyConfig(image_shape=[32, n_pixels // 32],
                                       mac=MacConfig(n_cms=32, cells_per_cm=16)))
    stored = np.zeros((0, coder.n_code_bits), np.float32)
    spare = SparseyCoder(coder.cfg)                           # warm-up on a coder of its own: first calls, caches
    spare.learn_all(patterns[:window])
    _per_item_ms(spare.encode, patterns[:window])
    print(f"one mac, Q=32, K=16, {n_pixels} inputs ({density:.0%} active); ms per item (wall; CPU in brackets), "
          "one thread, after a warm-up")
    print(f"  {'stored':>7}  {'learn':>15}  {'recognise':>15}  {'NN scan':>15}  {'learn/first':>11}  {'NN/first':>8}")
    first = None
    for point in points:
        if point > len(stored):
            more, _ = coder.learn_all(patterns[len(stored):point])
            stored = np.concatenate([stored, more.astype(np.float32)])
        n = len(stored)                           # a point closer than the window to the last: the coder holds more
        probe = patterns[max(0, n - window):n] if n else patterns[:window]
        recog = _per_item_ms(coder.encode, probe)
        codes = stored if len(stored) else np.zeros((1, coder.n_code_bits), np.float32)
        scan = _per_item_ms(lambda x: (codes @ coder.encode(x)[0].astype(np.float32)).argmax(), probe)
        learn = _per_item_ms(coder.learn, patterns[n:n + window])
        stored = np.concatenate([stored, np.zeros((window, coder.n_code_bits), np.float32)])[: n + window]
        stored[n:] = coder.encode(patterns[n:n + window])[0]
        first = first or (learn[0], scan[0])
        cells = "  ".join(f"{wall:7.3f} ({cpu:5.3f})" for wall, cpu in (learn, recog, scan))
        print(f"  {n:>7}  {cells}  {learn[0] / first[0]:10.2f}x  {scan[0] / first[1]:7.2f}x")


def mnist(model: Path) -> None:
    from spikecl.data.datasets import load_dataset

    cfg = load_config(model)
    d = load_dataset("mnist5k")
    x_train = d.x_train.reshape(len(d.x_train), -1) > cfg.coder.threshold
    x_test = d.x_test.reshape(len(d.x_test), -1) > cfg.coder.threshold
    sparsey = run_sparsey(cfg.coder, x_train, x_test, progress=False)
    pooler = run_pooler(cfg.baseline, x_train, x_test, progress=False)
    print(f"MNIST-5k, one pass over {len(x_train)} images, one thread ({model.name})")
    print(f"  Sparsey                {sparsey.learn_seconds:7.2f} s   "
          f"{1000 * sparsey.learn_seconds / len(x_train):6.3f} ms/item")
    print(f"  k-WTA spatial pooler   {pooler.learn_seconds:7.2f} s   "
          f"{1000 * pooler.learn_seconds / len(x_train):6.3f} ms/item   "
          f"(Sparsey / pooler = {sparsey.learn_seconds / pooler.learn_seconds:.2f}x)")
    print("  published Sparsey: 220 s for 2,000 images on one thread (Rinkus, arXiv 1710.07829)")


def points(text: str) -> list[int]:
    """``--points 0,1000,10000``: ascending integers >= 0, at least one."""
    try:
        values = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}") from None
    if min(values) < 0 or values != sorted(values):
        raise argparse.ArgumentTypeError(f"expected ascending integers >= 0, got {text!r}")
    if values[-1] > MAX_POINT:
        raise argparse.ArgumentTypeError(f"{values[-1]} stored items: at most {MAX_POINT} (a GB of patterns)")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=points, default="0,1000,10000,100000",
                        help="numbers of stored items at which to time, ascending, e.g. 0,1000,10000 (each timing "
                             "learns --window items: a point closer than that to the last is timed, and printed, "
                             "at the number the coder holds by then)")
    parser.add_argument("--window", type=bounded(int, 1, 10_000, what="a number of items"), default=200)
    parser.add_argument("--model", type=Path, default=Path(__file__).parents[1] / "models/sparsey_mnist5k.toml",
                        help="a sparsey experiment file on MNIST-5k (data.dataset = \"mnist5k\") whose coder and "
                             "pooler part 2 times")
    parser.add_argument("--skip-mnist", action="store_true")
    args = parser.parse_args()
    if not args.skip_mnist:
        try:
            dataset = load_config(args.model).data.dataset          # before the scaling part, not after it
        except SpikeCLError as exc:
            parser.error(str(exc))
        if dataset != "mnist5k":
            parser.error(f"--model {args.model}: its data.dataset is {dataset!r}; part 2 times learning MNIST-5k, so "
                         "give a model of mnist5k (or --skip-mnist)")
    with one_thread():
        scaling(args.points, args.window)
    if not args.skip_mnist:
        mnist(args.model)


if __name__ == "__main__":
    main()
