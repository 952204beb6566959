"""Export to Loihi fixed point and verified Lava runs: accuracy, agreement and time, beside the numpy reference.

Part 1: trains an MNIST-5k MLP (784-H-10, reset to zero) with the continual runner, exports it (quantise, measure
float and quantised accuracy) and deploys it on Lava's fixed-point simulation: accuracy, spike agreement with the
bit-accurate numpy reference, export time, Lava time (compile, per step) against the reference's.
Part 2: Lava time per step against network size (random MLPs), beside the numpy reference stepping the same
back-to-back stream (``simulate_stream``) and the batched reference (``simulate``, per sample-step).

    python benchmarks/export_lava.py [--hidden 128] [--epochs 2] [--samples 200] [--sizes 64,256,1024]

Needs .venv-lava (``make lava``): without it the script says so and exits 0 (``make bench`` goes on).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spikecl.commands import bounded, listed
from spikecl.errors import DependencyError
from spikecl.export import fixed_point as fp
from spikecl.export.inputs import encode
from spikecl.export.netx import write_netx
from spikecl.export.lava_client import lava_python, run_lava
from spikecl.export.pipeline import deploy, export_file
from spikecl.export.quantize import quantize
from spikecl.export.spec import LayerSpec, NetworkSpec


def train_mnist(folder: Path, hidden: int, epochs: int) -> Path:
    from spikecl.config import experiment_from_dict
    from spikecl.continual.runner import ContinualRun

    cfg = experiment_from_dict({
        "name": "mnist5k-zero", "data": {"dataset": "mnist5k"},
        "stream": {"kind": "permuted", "scenario": "domain", "n_tasks": 1, "first_task_identity": True},
        "network": {"kind": "mlp", "hidden": [hidden], "num_steps": 4, "reset": "zero"},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 0.05}, "strategy": {"methods": ["finetune"]}})
    path = folder / "finetune-seed0.h5"
    ContinualRun(cfg, "finetune", 0).execute(path, progress_bar=sys.stderr.isatty())   # no bar in a log
    return path


def part_trained(args, folder: Path) -> None:
    started = time.perf_counter()
    results = train_mnist(folder, args.hidden, args.epochs)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    _, net = export_file(results, folder / "net.h5", samples=1000)
    export_s = time.perf_counter() - started
    report = deploy(folder / "net.h5", "lava-sim", samples=args.samples)
    m = net.metrics
    print(f"\nMNIST-5k MLP 784-{args.hidden}-10, T=4, reset zero, {args.epochs} epochs (training {train_s:.1f} s)")
    print(f"{'':34s}{'accuracy':>10s}{'samples':>9s}")
    print(f"{'float (numpy, = torch)':34s}{100 * m['float_accuracy']:>9.2f}%{m['samples']:>9d}")
    print(f"{'quantised, export check (numpy)':34s}{100 * m['reference_accuracy']:>9.2f}%{m['samples']:>9d}")
    print(f"{'quantised, the Lava samples (numpy)':34s}{100 * report['reference_accuracy']:>9.2f}%"
          f"{report['samples']:>9d}")
    print(f"{'Lava fixed-point simulation':34s}{100 * report['accuracy']:>9.2f}%{report['samples']:>9d}")
    agree = ", ".join(f"{100 * a:.2f}%" for a in report["spike_agreement"])
    same = "identical" if report["readout_equal"] else "DIFFER"
    print(f"Lava vs reference: hidden spikes equal [{agree}], readout voltages {same}, "
          f"predictions {100 * report['prediction_agreement']:.2f}%")
    print(f"{'time':34s}{'seconds':>10s}")
    print(f"{'export (calibrate, quantise, 1000-sample check)':48s}{export_s:>8.2f}")
    print(f"{'Lava compile + first step':48s}{report['start_s']:>8.2f}")
    print(f"{'Lava ' + str(report['steps'] - 1) + ' steps':48s}{report['run_s']:>8.2f}")
    print(f"{'numpy reference, same stream step by step':48s}{report['reference_stream_s']:>8.2f}")
    print(f"{'numpy reference, batched':48s}{report['reference_s']:>8.2f}")
    print(f"Lava / stream reference: {report['run_s'] / report['reference_stream_s']:.1f}x;  "
          f"Lava / batched reference: {report['run_s'] / report['reference_s']:.0f}x")


def random_net(rng, n_in: int, hidden: list[int], steps: int):
    widths = [n_in, *hidden, 10]
    layers = [LayerSpec("readout" if i == len(widths) - 2 else f"hidden{i}", rng.normal(0, 1.5 / np.sqrt(a), (b, a)),
                        None, 0.9, 1.0, "none" if i == len(widths) - 2 else "zero")
              for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]
    return quantize(NetworkSpec(tuple(layers), steps, "latency", 10))


def part_scaling(args, folder: Path) -> None:
    rng = np.random.default_rng(0)
    print(f"\nTime per step against network size ({args.scaling_samples} samples x T=4, binary input of 256)")
    print(f"{'hidden':>14s}{'neurons':>9s}{'synapses':>10s}{'Lava ms/step':>14s}{'stream ms/step':>16s}"
          f"{'batched us/step':>17s}{'Lava/stream':>13s}")
    for hidden in [[size] for size in args.sizes] + [[256, 256, 256]]:
        net = random_net(rng, 256, hidden, 4)
        inputs = encode(rng.random((args.scaling_samples, 256)), net)
        path = write_netx(folder / f"scale-{'-'.join(map(str, hidden))}.h5", net, overwrite=True)
        lava = run_lava(path, inputs, record_layers=False)
        started = time.perf_counter()
        fp.simulate_stream(net, inputs)
        stream_ms = 1e3 * (time.perf_counter() - started) / fp.stream_steps(net, args.scaling_samples)
        started = time.perf_counter()
        fp.simulate(net, inputs, record=False)
        batched_us = 1e6 * (time.perf_counter() - started) / (4 * args.scaling_samples)
        neurons = sum(layer.n_out for layer in net.layers)
        synapses = sum(layer.weight.size for layer in net.layers)
        print(f"{'-'.join(map(str, hidden)):>14s}{neurons:>9d}{synapses:>10d}{lava['ms_per_step']:>14.2f}"
              f"{stream_ms:>16.3f}{batched_us:>17.2f}{lava['ms_per_step'] / stream_ms:>13.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=bounded(int, 1, what="a layer width"), default=128)
    parser.add_argument("--epochs", type=bounded(int, 1, what="a number of epochs"), default=2)
    parser.add_argument("--samples", type=bounded(int, 1, what="a number of samples"), default=200,
                        help="test samples run on Lava")
    parser.add_argument("--sizes", default="64,256,1024", type=listed(bounded(int, 1, what="a layer width")),
                        help="hidden widths of the one-layer scaling runs (a 256-256-256 network runs as well)")
    parser.add_argument("--scaling-samples", type=bounded(int, 1, what="a number of samples"), default=50)
    parser.add_argument("--skip-training", action="store_true", help="only the scaling table")
    args = parser.parse_args()
    try:
        lava_python()
    except DependencyError as exc:                  # make bench goes on with the next benchmark
        print(f"export_lava: skipped, every table here runs Lava: {exc}")
        return
    with tempfile.TemporaryDirectory(prefix="spikecl-bench-") as tmp:
        if not args.skip_training:
            part_trained(args, Path(tmp))
        part_scaling(args, Path(tmp))


if __name__ == "__main__":
    main()
