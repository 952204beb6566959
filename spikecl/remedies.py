"""How an error's remedy names an option: as the command line's flag (``pass --overwrite``) where ``spikecl``'s
command line called, as the keyword argument of the Python API (``pass overwrite=True``) where Python did.

Library code words a remedy with :func:`option`; :func:`spikecl.cli.main` runs each command inside
:func:`command_line`, and the processes a command starts (``--nproc``'s, a sweep's Ray tasks) take its spelling
with them (:func:`on_command_line`), so the command line's messages name its flags and a notebook's its keywords.
"""

from __future__ import annotations

import contextlib
import contextvars

#: a command-line flag -> the keyword argument that asks the same of the Python API (a flag whose keyword differs by
#: function names it where it is used: :func:`option`'s ``keyword``)
KEYWORDS = {"--resume": "resume=True", "--overwrite": "overwrite=True", "--no-plots": "plots=False",
            "--plots": "plots_dir", "--plots DIR": "plots_dir=DIR", "--output-dir": "output_dir",
            "--data-dir": "data.data_dir", "--set name=...": "name", "--format": "fmt", "--backend": "backend",
            "--samples": "samples", "-o": "output", "--max-drop": "max_drop", "--force": "max_drop=None",
            "--calibration-samples": "calibration_samples", "--weight-bits": "QuantConfig.weight_bits",
            "--input-bits": "QuantConfig.input_bits", "--headroom": "QuantConfig.headroom", "--address": "address",
            "--num-cpus": "num_cpus"}

_COMMAND_LINE = contextvars.ContextVar("spikecl_command_line", default=False)


def option(*flags: str, keyword: str | None = None) -> str:
    """``flags`` (keys of :data:`KEYWORDS`) as the caller passes them: ``--resume --overwrite`` on the command line,
    ``resume=True, overwrite=True`` from Python. ``keyword``: what Python passes (or does) for the one flag given,
    where it is not (or not only) the table's: ``--data-dir`` is ``data.data_dir`` in an experiment but ``data_dir``
    to ``export_file``; ``--threads 4`` is ``torch.set_num_threads(4)``; a remedy worded around a flag is worded
    whole (``pass the --plugin that registers it``: ``register it first (spikecl.data.register_dataset)``)."""
    if keyword is not None and len(flags) != 1:
        raise ValueError(f"option: a keyword names one flag, got {len(flags)}")
    if _COMMAND_LINE.get():
        return " ".join(flags)
    if keyword is not None:
        return keyword
    return ", ".join(KEYWORDS[flag] for flag in flags)


def set_option(key: str, value: str | None = None, *, quoted: bool = True) -> str:
    """The override of ``key`` as the caller passes it: ``--set key`` on the command line, or with a ``value``
    ``--set 'key=value'`` (in a shell's quotes; ``--set key=value`` unless ``quoted``); from Python an entry of the
    ``overrides`` that ``run_file``, ``load_experiment`` and ``load_sweep`` take: ``overrides=['key=value']``
    (``key=...`` without a value)."""
    setting = f"{key}={'...' if value is None else value}"
    flag = f"--set {key}" if value is None else f"--set '{setting}'" if quoted else f"--set {setting}"
    return option(flag, keyword=f"overrides=[{setting!r}]")


def override_given(assignment: str) -> str:
    """The ``key=value`` ``assignment`` as the caller gave it, quoted as Python quotes a string:
    ``--set 'train.lr=0.1'`` on the command line, ``overrides=['train.lr=0.1']`` from Python."""
    return option(f"--set {assignment!r}", keyword=f"overrides=[{assignment!r}]")


def on_command_line() -> bool:
    """Whether remedies now name command-line flags (inside :func:`command_line`)."""
    return _COMMAND_LINE.get()


@contextlib.contextmanager
def command_line(active: bool = True):
    """Within the block (in this thread), :func:`option` names command-line flags where ``active``."""
    token = _COMMAND_LINE.set(active)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)
