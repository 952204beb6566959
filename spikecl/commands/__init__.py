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
