"""Shared by the Lava tests: locate a side environment (skip loudly without it) and compare a Lava run of an
exported file with the numpy reference, spike for spike."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from spikecl.export import fixed_point as fp
from spikecl.export.inputs import encode
from spikecl.export.netx import write_netx

ROOT = Path(__file__).resolve().parents[1]


def require_environment(folder: str, target: str) -> Path:
    """The Python of ``ROOT/folder``; skips loudly without Python 3.10 (fails when 3.10 exists but not the venv
    and ``target`` is part of ``make test``)."""
    python = ROOT / folder / "bin" / "python"
    if not python.exists():
        has_310 = shutil.which("python3.10") or list(Path.home().glob(".pyenv/versions/3.10.*/bin/python"))
        if has_310 and target == "lava":
            pytest.fail(f"Python 3.10 exists but {folder} is missing: run `make {target}` (make test does)")
        pytest.skip(f"SKIPPED LOUDLY: {folder} is missing (`make {target}` builds it); these tests did not run")
    return python


def run_and_compare(tmp_path, net, x, seed=0, lava_dl=False, labels=None):
    """Run on Lava (spikecl's graph, or lava-dl's netx loader with ``lava_dl``) and the reference; every hidden
    layer's raw spike stream and the readout voltage must be equal. Returns (Lava's run, reference windows)."""
    from spikecl.export.pipeline import run_lava

    path = write_netx(tmp_path / f"net{seed}{'-lavadl' if lava_dl else ''}.h5", net, lava_dl=lava_dl)
    inputs = encode(x, net, seed=seed)
    lava = run_lava(path, inputs, labels, lava_dl=lava_dl)
    reference = fp.simulate_stream(net, inputs)
    assert len(lava["spikes"]) == len(net.layers) - 1
    for k, (a, b) in enumerate(zip(lava["spikes"], reference.spikes)):
        assert a.shape == b.shape and np.array_equal(a, b), f"layer {k}: {np.mean(a != b):.3%} of spikes differ"
    assert np.array_equal(lava["readout_v"], reference.readout_v)
    windows = fp.sample_windows(net, reference, len(x))
    assert np.array_equal(fp.simulate(net, inputs).readout_v, windows.readout_v)
    assert np.array_equal(lava["predictions"], fp.predict(net, inputs))
    return lava, windows
