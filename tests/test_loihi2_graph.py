"""Toward a Loihi 2 board, without one: the board process graph (host<->chip adapters, the readout read once per
sample, binary input) builds, refuses what a board cannot take in one line, and — with CPU stand-ins for
lava-loihi's ``lava.proc.embedded_io`` adapters — runs on Lava's fixed-point simulation exactly like the numpy
reference. Nothing here runs on Loihi 2.
"""

import subprocess

import numpy as np
import pytest

from spikecl.export import fixed_point as fp
from spikecl.export.inputs import encode
from spikecl.export.quantize import QuantConfig, quantize

from lava_support import ROOT, checkout_env, require_environment, run_runner
from test_export import random_spec

pytestmark = pytest.mark.lava


@pytest.fixture(scope="module", autouse=True)
def lava_environment():
    require_environment(".venv-lava", "lava")


def _net(encoder, widths=(12, 20, 15, 4), seed=3, steps=4):
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, widths=widths, steps=steps, encoder=encoder, bias=True)
    return quantize(spec, QuantConfig(headroom=4.0)), rng


def _assert_equals_reference(net, inputs, run):
    stream = fp.simulate_stream(net, inputs)
    assert len(run["spikes"]) == len(net.layers) - 1
    for k, (a, b) in enumerate(zip(run["spikes"], stream.spikes)):
        assert a.shape == b.shape and np.array_equal(a, b), f"layer {k}: {np.mean(a != b):.3%} of spikes differ"
    assert np.array_equal(run["readout_sample_v"], fp.simulate(net, inputs).readout_v)
    assert np.array_equal(run["predictions"], fp.predict(net, inputs))


@pytest.mark.parametrize("encoder, flags", [
    ("latency", ["--readout", "sample-end"]),                 # spikecl's graph, readout read once per sample
    ("poisson", ["--cpu-adapters"]),                          # the board graph with CPU stand-in adapters
    ("direct", ["--cpu-adapters", "--allow-graded-input"]),   # graded input forced through the adapter
])
def test_sample_end_readout_equals_the_reference(tmp_path, encoder, flags):
    net, rng = _net(encoder, seed=len(flags) + len(encoder))
    inputs = encode(rng.random((5, net.n_inputs)), net, seed=1)
    labels = rng.integers(0, net.n_outputs, 5)
    done, run = run_runner(tmp_path, net, inputs, "--record-layers", *flags, labels=labels)
    assert done.returncode == 0, done.stderr
    assert run["readout"] == "sample-end" and run["readout_v"] is None       # no per-step Monitor
    assert run["backend"] == ("lava-sim-board-graph" if "--cpu-adapters" in flags else "lava-sim")
    _assert_equals_reference(net, inputs, run)
    assert run["accuracy"] == np.mean(fp.predict(net, inputs) == labels)
    assert 0.01 < np.mean(run["spikes"][0]) < 0.95, "the case must exercise spiking"


def test_every_step_and_sample_end_readouts_agree(tmp_path):
    net, rng = _net("latency", widths=(10, 16, 3), seed=8, steps=3)
    inputs = encode(rng.random((4, net.n_inputs)), net, seed=2)
    done, every = run_runner(tmp_path, net, inputs, name="every")
    assert done.returncode == 0, done.stderr
    assert every["readout"] == "every-step"
    columns = len(net.layers) + np.arange(4) * net.num_steps + net.num_steps - 1
    assert np.array_equal(every["readout_sample_v"], every["readout_v"][:, columns].T)
    done, once = run_runner(tmp_path, net, inputs, "--readout", "sample-end", name="once")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(once["readout_sample_v"], every["readout_sample_v"])
    assert np.array_equal(once["predictions"], every["predictions"])


def test_board_graph_of_a_cnn_equals_the_reference(tmp_path):
    from dataclasses import replace

    from test_export import cnn_spec, small_cnn

    spec = cnn_spec(small_cnn(5))
    louder = replace(spec.layers[1], weight=3 * spec.layers[1].weight)
    net = quantize(replace(spec, layers=(spec.layers[0], louder, spec.layers[2])))
    inputs = encode(np.random.default_rng(14).random((3, 64)), net)
    done, run = run_runner(tmp_path, net, inputs, "--record-layers", "--cpu-adapters", "--allow-graded-input")
    assert done.returncode == 0, done.stderr
    _assert_equals_reference(net, inputs, run)


@pytest.mark.parametrize("flags, words", [
    (["--cpu-adapters"], ["graded", "latency or poisson", "--allow-graded-input"]),
    (["--cpu-adapters", "--readout", "every-step", "--allow-graded-input"], ["Monitor", "sample-end"]),
    (["--lava-dl", "--readout", "sample-end"], ["--lava-dl", "sample-end"]),
    (["--hardware"], ["lava-loihi"]),
    (["--allow-graded-input"], ["--allow-graded-input applies to a board graph"]),
])
def test_board_graph_refusals_are_one_line(tmp_path, flags, words):
    net, rng = _net("direct", widths=(6, 5, 3))
    done, run = run_runner(tmp_path, net, encode(rng.random((2, 6)), net), *flags)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and run is None, done.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert not (tmp_path / "run.h5").exists()


GRAPH_SCRIPT = r"""
import numpy as np
from lava.magma.core.run_configs import Loihi2HwCfg
from lava.proc.lif.process import LIFReset
from spikecl.errors import DependencyError
from spikecl.export.netx import read_netx
from spikecl_lava import runner
from spikecl_lava.processes.hostio import SampleFile
from spikecl_lava.processes.recorder import SpikeFile
import sys, tempfile
from pathlib import Path

net = read_netx(sys.argv[1])
inputs = np.load(sys.argv[2])
cfg = Loihi2HwCfg()                                   # the run config a board run selects
folder = Path(tempfile.mkdtemp())
hw = runner.hardware_available()
io = runner.board_io() if hw else runner.cpu_board_io()
graph = runner.build_graph(runner.dense_after_conv(net), inputs, folder, "sample-end", io)
assert all(isinstance(s, SpikeFile) for s in graph.sinks)
# every host process talks to the network through an adapter, never directly
first = graph.source.s_out.out_connections
assert len(first) == 1 and first[0].process is graph.adapters[0], first
assert graph.adapters[0].out.out_connections[0].process is graph.synapses[0]
for sink in graph.sinks:
    (src,) = sink.a_in.in_connections
    assert src.process in graph.adapters and not isinstance(src.process, LIFReset)
reader = graph.adapters[-1]
assert graph.monitor is None and graph.reads is not None and graph.run_steps == graph.steps + 1
assert reader.out.out_connections[0].process.__class__ is SampleFile
kinds = sorted(type(a).__name__ for a in graph.adapters)
errors = []
if not hw:
    for call in (runner.board_io, lambda: runner.run_config(True),
                 lambda: runner.run(net, inputs, hardware=True, io=runner.cpu_board_io(), readout="sample-end")):
        try:
            call()
            errors.append("no error")
        except DependencyError as exc:
            errors.append(str(exc))
else:  # with lava-loihi: compile for Loihi 2 without running
    from lava.magma.compiler.compiler import Compiler
    Compiler().compile(graph.source, cfg)
print("hw" if hw else "cpu", type(cfg).__name__, ",".join(kinds))
for e in errors:
    print("ERR", e)
"""


def test_board_graph_builds_for_loihi2_hwcfg(tmp_path):
    """The graph a ``--hardware`` run builds, with adapters; without lava-loihi (here) the stand-ins take their
    place and every hardware entry point stops with one line naming lava-loihi before compiling."""
    from spikecl.export.netx import write_netx

    net, rng = _net("latency", widths=(8, 12, 10, 3), seed=4, steps=3)
    write_netx(tmp_path / "net.h5", net, lava_dl=False)
    np.save(tmp_path / "inputs.npy", encode(rng.random((3, 8)), net))
    script = tmp_path / "graph.py"
    script.write_text(GRAPH_SCRIPT)
    done = subprocess.run([str(ROOT / ".venv-lava" / "bin" / "python"), str(script), str(tmp_path / "net.h5"),
                           str(tmp_path / "inputs.npy")], capture_output=True, text=True, env=checkout_env())
    assert done.returncode == 0, done.stderr
    head, *errors = done.stdout.strip().splitlines()
    where, cfg, kinds = head.split()
    assert cfg == "Loihi2HwCfg"
    if where == "cpu":   # 1 input adapter, 2 spike-output adapters (two hidden layers), 1 readout reader
        assert kinds == "PassThrough,PassThrough,PassThrough,VoltageRead"
        assert len(errors) == 3
        for e in errors:
            assert e.startswith("ERR ") and "lava-loihi" in e and "\n" not in e


@pytest.mark.parametrize("steps", [1, 2])
def test_board_graph_when_the_pipeline_is_longer_than_a_sample(tmp_path, steps):
    """More layers than steps per sample: several samples are in flight, and the reader's phase wraps."""
    net, rng = _net("poisson", widths=(6, 8, 7, 6, 3), steps=steps, seed=steps)
    inputs = encode(rng.random((4, 6)), net, seed=0)
    done, run = run_runner(tmp_path, net, inputs, "--record-layers", "--cpu-adapters")
    assert done.returncode == 0, done.stderr
    _assert_equals_reference(net, inputs, run)
