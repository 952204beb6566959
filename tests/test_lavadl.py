"""lava-dl's own netx loader (``netx.hdf5.Network``, lava-dl 0.6.0) runs spikecl's netx files exactly like the
numpy reference on Lava's fixed-point CPU simulation (``Loihi2SimCfg(select_tag="fixed_pt")``).

Each test runs ``spikecl_lava.runner --lava-dl`` in ``.venv-lavadl`` as a subprocess. ``make test`` runs them where
``make lava-dl`` has built it (``make test`` does not build it: gigabytes of CUDA wheels) and skips them loudly
otherwise; ``pytest -m lavadl`` runs them alone.
"""

import numpy as np
import pytest

from spikecl.export import fixed_point as fp
from spikecl.export.quantize import quantize

from lava_support import require_environment, run_and_compare
from test_export import cnn_spec, random_spec, small_cnn

pytestmark = pytest.mark.lavadl


@pytest.fixture(scope="module", autouse=True)
def lavadl_environment():
    require_environment(".venv-lavadl", "lava-dl")


@pytest.mark.parametrize("case", [
    dict(widths=(12, 20, 4), encoder="direct", bias=True),                       # graded input, biases
    dict(widths=(12, 20, 4), encoder="latency", bias=False, sign=1),             # excitatory-only weights
    dict(widths=(16, 24, 18, 12, 5), encoder="poisson", bias=True),              # 3 hidden layers, binary input
])
def test_lava_dl_runs_random_mlps_like_the_reference(tmp_path, case):
    rng = np.random.default_rng(len(case["widths"]) + case.get("sign", 0))
    spec = random_spec(rng, steps=4, **case)
    net = quantize(spec)
    _, windows = run_and_compare(tmp_path, net, rng.random((6, spec.n_inputs)), lava_dl=True)
    assert 0.01 < windows.spikes[0].mean() < 0.95, "the case must exercise spiking"


def test_lava_dl_runs_a_cnn_with_flatten_and_conv_bias_like_the_reference(tmp_path):
    from dataclasses import replace

    spec = cnn_spec(small_cnn(5))
    louder = replace(spec.layers[1], weight=3 * spec.layers[1].weight)
    net = quantize(replace(spec, layers=(spec.layers[0], louder, spec.layers[2])))
    assert np.any(net.layers[0].bias_mant)
    _, windows = run_and_compare(tmp_path, net, np.random.default_rng(14).random((4, 64)), lava_dl=True)
    assert windows.spikes[0].mean() > 0.05 and windows.spikes[1].mean() > 0.05


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["direct", "latency", "poisson", "hlop", "cnn"])
def test_trained_digits_networks_run_on_lava_dl_as_on_spikecls_runner(digits_run, tmp_path, kind):
    """Export a trained network; lava-dl's loader and spikecl's runner give the reference's spikes, readout voltages
    and predictions on the same test samples."""
    from spikecl.export.inputs import encode
    from spikecl.export.samples import stream_samples
    from spikecl.export.lava_client import run_lava
    from spikecl.export.pipeline import export_file

    out = tmp_path / f"{kind}.h5"
    _, net = export_file(digits_run(kind), out, samples=359, calibration_samples=128)
    x, y, heads = stream_samples(net.config, 40)
    inputs = encode(x, net)
    reference = fp.simulate_stream(net, inputs)
    predictions = fp.predict(net, inputs, heads)
    for lava_dl in (True, False):
        run = run_lava(out, inputs, y, heads, lava_dl=lava_dl)
        assert all(np.array_equal(a, b) for a, b in zip(run["spikes"], reference.spikes))
        assert np.array_equal(run["readout_v"], reference.readout_v)
        assert np.array_equal(run["predictions"], predictions)
        assert run["accuracy"] == np.mean(predictions == y)
    assert net.metrics["reference_accuracy"] >= net.metrics["float_accuracy"] - 0.03


def test_a_file_lava_dls_loader_refuses_is_one_line(tmp_path):
    """Whatever lava-dl's loader raises deep inside (here KeyError on an HDF5 file without its layers) reaches the
    user as one line naming the file, not a traceback."""
    import subprocess

    import h5py

    from spikecl.export.netx import write_netx

    python = require_environment(".venv-lavadl", "lava-dl")
    good = write_netx(tmp_path / "net.h5", quantize(random_spec(np.random.default_rng(0), steps=4, widths=(6, 8, 3))))
    h5py.File(tmp_path / "empty.h5", "w").close()
    code = ("import sys; from pathlib import Path; from spikecl_lava.lavadl import load_network; "
            "from spikecl.export.netx import read_netx; from spikecl.errors import ResultsError\n"
            "try:\n    load_network(Path(sys.argv[1]), read_netx(sys.argv[2]))\n"
            "except ResultsError as exc:\n    print(exc)")
    done = subprocess.run([str(python), "-c", code, str(tmp_path / "empty.h5"), str(good)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    error = done.stdout.strip().splitlines()[-1]                      # lava-dl prints its import warnings first
    assert "empty.h5: lava-dl's netx loader refused the file (KeyError" in error, done.stdout


@pytest.mark.parametrize("cnn, error", [
    (True, "AssertionError: Shapes (4, 4, 6) and (96,) are incompatible"),
    (False, "TransposeShapeError: Cannot transpose 'old_shape'=(8,)"),
])
def test_lava_dls_loader_refuses_the_files_read_netx_refuses_for_their_flatten(tmp_path, cnn, error):
    """A CNN file without its netx ``flatten`` and an MLP file with one between its dense layers (no CRC, as another
    tool writes them), which read_netx refuses (test_export_interop_edges.py), are refused by lava-dl's own loader
    too: spikecl's reader passes no file lava-dl cannot load."""
    import subprocess

    from test_export_interop_edges import misflattened

    python = require_environment(".venv-lavadl", "lava-dl")
    code = ("import sys; from lava.lib.dl.netx import hdf5\n"
            "try:\n    hdf5.Network(net_config=sys.argv[1])\n"
            "except Exception as exc:\n    print(f'{type(exc).__name__}: {exc}')")
    done = subprocess.run([str(python), "-c", code, str(misflattened(tmp_path, cnn))], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith(error), done.stdout


def test_the_dense_weights_lava_dl_applies_are_those_spikecl_predicts(tmp_path):
    """spikecl.export.lava_dl_weights follows lava-dl's rescaling and Lava Dense's clipping and truncation: on
    random integer matrices of every sign pattern and bit depth, and on 9-bit and out-of-range edges, it says
    "changed" exactly where lava-dl's own functions give other weights (about a fifth of them: no positive weight, a
    power-of-two smallest)."""
    import subprocess

    python = require_environment(".venv-lavadl", "lava-dl")
    code = """
import contextlib, io
import numpy as np
from lava.lib.dl.netx.utils import optimize_weight_bits
from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights
from spikecl.export.lava_dl_weights import lava_dl_dense_mismatch
rng, cases = np.random.default_rng(0), []
for _ in range(1500):
    bits, pattern = int(rng.integers(2, 9)), int(rng.integers(0, 4))
    lo, hi = [(-2**(bits-1), 2**(bits-1)-1), (1 - 2**(bits-1), 0), (0, 2**bits-1), (-2**(bits-1), -1)][pattern]
    w = np.clip(rng.integers(lo, hi + 1, (4, 5)) * 2**int(rng.integers(0, 9 - bits)), -256, 255)
    w[0, 0] = w[0, 0] or lo or hi
    cases.append(w)
cases += [np.array(w) for w in ([[-255, 3]], [[-256, 1]], [[-256, 0]], [[-255, 0]], [[300, 0]])]   # 9 bits, beyond
agree, changed, n = 0, 0, len(cases)
for w in cases:
    with contextlib.redirect_stdout(io.StringIO()):
        scaled, weight_bits, exp, _ = optimize_weight_bits(w.copy())
    mode = determine_sign_mode(scaled)
    applied = np.asarray(truncate_weights(clip_weights(scaled, mode, num_bits=8), mode, weight_bits), np.int64)
    exact = exp <= 0 and np.array_equal(applied, w.astype(np.int64) << int(-exp))
    changed += not exact
    agree += exact == (lava_dl_dense_mismatch(w) == 0)
print(agree, changed, n)
"""
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    agree, changed, n = map(int, done.stdout.strip().splitlines()[-1].split())
    assert agree == n and 0.05 * n < changed < 0.5 * n, done.stdout
