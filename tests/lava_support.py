"""Shared by the Lava tests: locate a side environment (skip loudly without it) and compare a Lava run of an
exported file with the numpy reference, spike for spike."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from spikecl.export import fixed_point as fp
from spikecl.export.inputs import encode
from spikecl.export.netx import write_netx

ROOT = Path(__file__).resolve().parents[1]


#: the variable that names each side environment's Python elsewhere (as spikecl.export.lava_client reads it)
VARIABLES = {".venv-lava": "SPIKECL_LAVA_PYTHON", ".venv-lavadl": "SPIKECL_LAVADL_PYTHON"}


def side_python(folder: str) -> Path:
    """The Python of the side environment ``folder`` (e.g. ``.venv-lava``): the one its variable names, else the
    checkout's."""
    given = os.environ.get(VARIABLES.get(folder, ""))
    return Path(given) if given else ROOT / folder / "bin" / "python"


def require_environment(folder: str, target: str) -> Path:
    """The Python of ``ROOT/folder`` (or the one its variable names, as spikecl uses it: an sdist's tests with an
    environment built elsewhere); skips loudly without Python 3.10 (fails when 3.10 exists but not the venv and
    ``target`` is part of ``make test``)."""
    python = side_python(folder)
    if not python.exists() and os.environ.get(VARIABLES.get(folder, "")):
        pytest.fail(f"{VARIABLES[folder]} = {python}: no such file; point it at the {folder} environment's python")
    if not python.exists():
        has_310 = shutil.which("python3.10") or list(Path.home().glob(".pyenv/versions/3.10.*/bin/python"))
        if has_310 and target == "lava":
            pytest.fail(f"Python 3.10 exists but {folder} is missing: run `make {target}` (make test does)")
        pytest.skip(f"SKIPPED LOUDLY: {folder} is missing (`make {target}` builds it); these tests did not run")
    return python


def run_and_compare(tmp_path, net, x, seed=0, lava_dl=False, labels=None):
    """Run on Lava (spikecl's graph, or lava-dl's netx loader with ``lava_dl``) and the reference; every hidden
    layer's raw spike stream and the readout voltage must be equal. Returns (Lava's run, reference windows)."""
    from spikecl.export.lava_client import run_lava

    path = write_netx(tmp_path / f"net{seed}{'-lavadl' if lava_dl else ''}.h5", net, lava_dl=lava_dl)
    inputs = encode(x, net, seed=seed)
    lava = run_lava(path, inputs, labels, lava_dl=lava_dl)
    reference = fp.simulate_stream(net, inputs)
    assert lava["samples"] == len(x) and lava["steps"] == len(x) * net.num_steps + len(net.layers)
    assert len(lava["spikes"]) == len(net.layers) - 1
    for k, (a, b) in enumerate(zip(lava["spikes"], reference.spikes)):
        assert a.shape == b.shape and np.array_equal(a, b), f"layer {k}: {np.mean(a != b):.3%} of spikes differ"
    assert np.array_equal(lava["readout_v"], reference.readout_v)
    windows = fp.sample_windows(net, reference, len(x))
    assert np.array_equal(fp.simulate(net, inputs).readout_v, windows.readout_v)
    assert np.array_equal(lava["predictions"], fp.predict(net, inputs))
    return lava, windows


def run_runner(tmp_path, net, inputs, *flags, labels=None, name="run"):
    """Run ``python -m spikecl_lava.runner`` in .venv-lava with ``flags`` on ``inputs`` [T, B, n]; returns
    (completed process, run file contents or None)."""
    import subprocess

    import h5py

    from spikecl.export.lava_client import write_inputs

    path = tmp_path / f"{name}-net.h5"
    if not path.exists():
        write_netx(path, net, lava_dl=False)
    write_inputs(tmp_path / f"{name}-in.h5", inputs, labels, None)
    out_path = tmp_path / f"{name}.h5"
    done = subprocess.run([str(ROOT / ".venv-lava" / "bin" / "python"), "-m", "spikecl_lava.runner", str(path),
                           "--inputs", str(tmp_path / f"{name}-in.h5"), "-o", str(out_path), *flags],
                          capture_output=True, text=True, env=checkout_env())
    if done.returncode != 0:
        return done, None
    with h5py.File(out_path, "r") as f:
        out = dict(f.attrs)
        out["spikes"] = [f[f"spikes/{k}"][()].astype(bool) for k in range(len(f.get("spikes", {})))]
        for key in ("readout_v", "readout_sample_v", "predictions"):
            out[key] = f[key][()] if key in f else None
    return done, out


def checkout_env() -> dict:
    """The environment with this checkout's spikecl and spikecl_lava first on PYTHONPATH (the side environments'
    editable installs may point at another checkout), as spikecl gives its own side processes."""
    from spikecl.export.lava_client import checkout_env as library_env

    return library_env()
