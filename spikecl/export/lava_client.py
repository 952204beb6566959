"""The Lava side, called from the torch-free main environment: the side environments' Pythons (``.venv-lava``,
optionally ``.venv-lavadl``) and :func:`run_lava`, which runs an exported network there as a subprocess
(``spikecl_lava.runner``) and reads its run file back."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from spikecl.errors import DependencyError, ResultsError


def venv_python(variable: str, folder: str, target: str, name: str) -> Path:
    """The Python of a side environment: ``$variable`` or ``folder`` (e.g. ``.venv-lava``) beside the package."""
    env = os.environ.get(variable)
    path = Path(env) if env else Path(__file__).resolve().parents[2] / folder / "bin" / "python"
    if not path.exists():
        raise DependencyError(f"the {name} environment is missing ({path}); build it with `make {target}` "
                              f"(needs Python 3.10) or set {variable}")
    return path


def lava_python() -> Path:
    """The Python of the Lava environment: ``$SPIKECL_LAVA_PYTHON`` or ``.venv-lava``."""
    return venv_python("SPIKECL_LAVA_PYTHON", ".venv-lava", "lava", "Lava")


def lavadl_python() -> Path:
    """The Python with lava-dl's netx (optional): ``$SPIKECL_LAVADL_PYTHON`` or ``.venv-lavadl``."""
    return venv_python("SPIKECL_LAVADL_PYTHON", ".venv-lavadl", "lava-dl", "lava-dl")


def write_inputs(path: Path, inputs: np.ndarray, labels: np.ndarray | None, heads: np.ndarray | None) -> None:
    """The runner's input file: ``inputs`` int32 [T, B, n], optional ``labels`` and readout ``heads`` int64 [B]."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("inputs", data=np.asarray(inputs, dtype=np.int32))
        if labels is not None:
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        if heads is not None:
            f.create_dataset("heads", data=np.asarray(heads, dtype=np.int64))


def run_lava(network: Path, inputs: np.ndarray, labels=None, heads=None, record_layers: bool = True,
             timeout_s: float = 1800, lava_dl: bool = False) -> dict:
    """Run the Lava runner in ``.venv-lava`` on ``inputs`` [T, B, n]; returns its run file's contents.
    ``lava_dl``: build the network with lava-dl's netx loader instead, in ``.venv-lavadl``."""
    import h5py

    python = lavadl_python() if lava_dl else lava_python()
    with tempfile.TemporaryDirectory(prefix="spikecl-lava-") as tmp:
        tmp = Path(tmp)
        write_inputs(tmp / "inputs.h5", inputs, labels, heads)
        cmd = [str(python), "-m", "spikecl_lava.runner", str(network), "--inputs", str(tmp / "inputs.h5"),
               "-o", str(tmp / "run.h5")] + (["--record-layers"] if record_layers else []) + \
            (["--lava-dl"] if lava_dl else [])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise ResultsError(f"the Lava runner failed: {lines[-1] if lines else done.returncode}")
        with h5py.File(tmp / "run.h5", "r") as f:
            out = dict(f.attrs)
            out["spikes"] = [f[f"spikes/{k}"][()].astype(bool) for k in range(len(f.get("spikes", {})))]
            out["readout_v"] = f["readout_v"][()]
            out["predictions"] = f["predictions"][()]
    return out
