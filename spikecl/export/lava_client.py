"""The Lava side, called from the torch-free main environment: the side environments' Pythons (``.venv-lava``,
optionally ``.venv-lavadl``) and :func:`run_lava`, which runs an exported network there as a subprocess
(``spikecl_lava.runner``) and reads its run file back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from spikecl.environment import CALLER_SOURCE, source_digest
from spikecl.errors import DependencyError, ResultsError


#: the folder above the package: a checkout's root (where ``make`` builds the side environments), or site-packages'
#: parent for an installed copy
ROOT = Path(__file__).resolve().parents[2]


def venv_python(variable: str, folder: str, target: str, name: str) -> Path:
    """The Python of a side environment: ``$variable`` or ``folder`` (e.g. ``.venv-lava``) beside the package; a
    missing, non-file or non-executable one is a one-line :class:`DependencyError` naming ``variable``."""
    env = os.environ.get(variable)
    path = Path(env) if env else ROOT / folder / "bin" / "python"
    if not path.exists():
        if env:
            raise DependencyError(f"the {name} environment is missing ({variable} = {path}: no such file); point "
                                  f"{variable} at that environment's python")
        if _checkout():
            raise DependencyError(f"the {name} environment is missing ({path}); build it with `make {target}` "
                                  f"(needs Python 3.10) or set {variable}")
        raise DependencyError(f"the {name} environment is missing: install this spikecl and its Lava side into a "
                              f"Python 3.10 environment (from its checkout: pip install . ./hardware; or `make "
                              f"{target}` there) and set {variable} to that environment's python")  # an installed one
    if not (path.is_file() and os.access(path, os.X_OK)):
        source = f"{variable} = {path}" if env else f"{path}"
        raise DependencyError(f"{source} is not an executable file; point {variable} at the {name} environment's "
                              f"python (e.g. {folder}/bin/python) or rebuild it with `make {target}`")
    return path


#: seconds :func:`run_lava` lets the runner take (``spikecl deploy --backend lava-sim``)
LAVA_TIMEOUT_S = 1800


def checkout_env() -> dict:
    """The environment of a side process: this one's, with this checkout's spikecl and its ``hardware/`` first on
    ``PYTHONPATH`` when spikecl runs from a checkout (the side environment's editable installs may point at another
    one); an installed spikecl adds nothing (the side environment's own copy is in its site-packages)."""
    root = _checkout()
    ours = [str(root), str(root / "hardware")] if root else []
    given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(ours + given)}


def _checkout() -> Path | None:
    """The spikecl checkout this package runs from (it holds ``hardware/spikecl_lava``); None when installed."""
    return ROOT if (ROOT / "hardware" / "spikecl_lava").is_dir() else None


#: seconds a stopped side process and the processes it started (Lava's runtime) have to end after SIGINT, cleaning
#: up, before SIGKILL ends what is left
SIDE_GRACE_S = 5.0


def run_side(cmd: list, what: str, timeout_s: float, remedy: str, tmpdir: Path | None = None) -> None:
    """Run ``cmd`` (a side environment's Python, in :func:`checkout_env`) to completion, in a process group of its
    own. A failure to start it, a run longer than ``timeout_s`` (stopped; the error ends with ``remedy``) or a
    non-zero exit is a one-line error naming ``what``; an interruption (Ctrl-C, SIGTERM) stops the whole group,
    Lava's runtime processes included, before it goes on. ``tmpdir``: the folder the group's temporary files go to
    (``TMPDIR``), one the caller removes: a group killed after its grace leaves none of them behind."""
    env = {**checkout_env(), **({"TMPDIR": str(tmpdir)} if tmpdir is not None else {}),
           CALLER_SOURCE: source_digest()}                   # the side's spikecl must be the same code
    try:
        side = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
    except OSError as exc:
        raise DependencyError(f"{what} could not start {cmd[0]}: {exc.strerror or exc}") from None
    try:
        out, err = side.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_group(side)
        raise ResultsError(f"{what} did not finish within {timeout_s:g} s and was stopped; {remedy}") from None
    except BaseException:
        stop_group(side)
        raise
    if side.returncode != 0:
        said = failure_line(err or out)
        if not said:
            said = (f"{cmd[0]} exited with status {side.returncode} and printed nothing" if side.returncode > 0 else
                    f"{cmd[0]} was stopped by {signal_name(-side.returncode)}")
        elif "No module named 'spikecl_lava'" in said:
            said += f" ({cmd[0]} lacks spikecl's Lava side: install a spikecl checkout's hardware/ into it)"
        raise ResultsError(f"{what} failed: {said}")


def side_output(path: Path, what: str, read):
    """``read(f)`` of the HDF5 file ``path`` that a side run (:func:`run_side`) wrote, ``f`` open for reading; a
    file missing (its Python exited 0 without running spikecl's Lava side), unreadable or lacking what ``read``
    takes is a one-line ResultsError naming ``what``."""
    import h5py

    if not path.is_file():
        raise ResultsError(f"{what} exited without writing its results ({path.name}); is its Python spikecl's Lava "
                           "environment (make lava)?")
    try:
        with h5py.File(path, "r") as f:
            return read(f)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultsError(f"{what} wrote an unreadable or incomplete {path.name} ({reason})") from None


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``signal 40`` for a number without a name (a real-time signal)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def stop_group(side: subprocess.Popen) -> None:
    """SIGINT to ``side``'s process group (it cleans up as after Ctrl-C), then, once ``side`` has ended or after
    :data:`SIDE_GRACE_S`, SIGKILL to whatever of the group is left; reaps ``side``."""
    try:
        _signal_group(side.pid, signal.SIGINT)
        try:
            side.wait(SIDE_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _signal_group(side.pid, signal.SIGKILL)
        side.communicate()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:                          # the whole group has ended
        pass


def failure_line(text: str) -> str:
    """The line of a side process's output that says why it failed: its own one-line error (``prog: error: ...``),
    else a traceback's exception line (whose message may run on over more lines), else the last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    said = [line for line in lines if re.match(r"^(?:[\w.-]+: )?error: ", line)]
    raised = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(: |$)", line)]
    return (said or raised or lines or [""])[-1]


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
             timeout_s: float = LAVA_TIMEOUT_S, lava_dl: bool = False) -> dict:
    """Run the Lava runner in ``.venv-lava`` on ``inputs`` [T, B, n]; returns its run file's contents.
    ``lava_dl``: build the network with lava-dl's netx loader instead, in ``.venv-lavadl``."""
    python = lavadl_python() if lava_dl else lava_python()
    with tempfile.TemporaryDirectory(prefix="spikecl-lava-") as tmp:
        tmp = Path(tmp)
        write_inputs(tmp / "inputs.h5", inputs, labels, heads)
        cmd = [str(python), "-m", "spikecl_lava.runner", str(network), "--inputs", str(tmp / "inputs.h5"),
               "-o", str(tmp / "run.h5")] + (["--record-layers"] if record_layers else []) + \
            (["--lava-dl"] if lava_dl else [])
        run_side(cmd, "the Lava runner", timeout_s, "run fewer samples (spikecl deploy --samples)", tmpdir=tmp)
        return side_output(tmp / "run.h5", "the Lava runner", lambda f: {
            **f.attrs, "spikes": [f[f"spikes/{k}"][()].astype(bool) for k in range(len(f.get("spikes", {})))],
            "readout_v": f["readout_v"][()], "predictions": f["predictions"][()]})
