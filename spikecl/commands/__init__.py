"""The command modules of the ``spikecl`` command line (:mod:`spikecl.cli`).

Each module has ``add_command(subparsers)``, registering a parser whose defaults set ``handler(args) -> exit code``.
Only the command line imports this package; the library never does.
"""


def bounded(kind: type, low: float, high: float | None = None, what: str = "a value"):
    """An argparse ``type`` accepting a ``kind`` (int or float) in ``[low, high]``; anything else is argparse's
    one-line error (``argument --x: expected …``)."""
    import argparse
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < low or (high is not None and value > high):
            span = f"from {low:g} to {high:g}" if high is not None else f"≥ {low:g}"
            raise argparse.ArgumentTypeError(f"expected {what} {span}, got {text!r}")
        return value
    parse.__name__ = kind.__name__                   # argparse names the type in its messages
    return parse


def listed(item, allow_empty: bool = False):
    """An argparse ``type`` for a comma-separated list whose items each pass ``item`` (an argparse type such as
    :func:`bounded`'s, or a tuple of the allowed strings); an empty list only with ``allow_empty``."""
    import argparse

    def parse(text: str) -> list:
        values = [part.strip() for part in text.split(",") if part.strip()]
        if not values and not allow_empty:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        if isinstance(item, tuple):
            wrong = next((v for v in values if v not in item), None)
            if wrong is not None:
                raise argparse.ArgumentTypeError(f"{wrong!r} is not one of {', '.join(item)}")
            return values
        return [item(v) for v in values]
    parse.__name__ = "list"
    return parse


def torch_device(text: str) -> str:
    """An argparse ``type``: a torch device this machine can compute on (``cpu``, ``cuda``, ``cuda:1``); anything
    else is argparse's one-line error."""
    import argparse

    import torch

    try:
        if torch.device(text).type == "meta":
            raise ValueError("a meta tensor holds no values")
        torch.empty(0, device=text)
    except (RuntimeError, AssertionError, ValueError, ImportError) as exc:   # AssertionError: no CUDA in this build
        raise argparse.ArgumentTypeError(f"{text!r} is not a device torch can use here "
                                         f"({str(exc).splitlines()[0]})") from None
    return text


def user_path(text: str):
    """An argparse ``type``: a path whose leading ``~`` is the user's home, as ``--output-dir`` and the configs'
    folders read it (a shell leaves ``--opt=~/x`` and a quoted ``'~/x'`` as they are)."""
    from pathlib import Path

    return Path(text).expanduser()
