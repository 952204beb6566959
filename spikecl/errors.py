"""One exception family for spikecl.

Every error a user can cause (a bad config key, a wrong shape, a missing dataset, a corrupt file, a NaN) is raised
as a :class:`SpikeCLError` subclass with a one-line message naming the problem. The CLI prints that line and exits
with code 2; library users can catch :class:`SpikeCLError`.
"""

from __future__ import annotations


_stop_signalled = False        # set by :func:`interrupt`: a stop its KeyboardInterrupt may not have reached
_watching = 0                  # commands' blocks running, nested ones counted (:func:`watch_interrupts`)


def interrupt(signum, frame) -> None:
    """A signal handler (SIGINT, SIGTERM: a scheduler's, ``timeout``'s) that stops a command as Ctrl-C does, and
    remembers it while a command runs (:func:`raise_if_interrupted`): a library that wrapped it (Brian2's
    "stop after this step" handler calls it as its fallback) raises plain KeyboardInterrupts after the command."""
    global _stop_signalled
    _stop_signalled = _stop_signalled or _watching > 0
    raise KeyboardInterrupt


def watch_interrupts(active: bool) -> None:
    """Remember stop signals from now on (a command's block starting, ``active``) or no longer once the outermost
    block ends (a command that runs another through :func:`spikecl.cli.main` keeps watching after the inner one);
    the outermost block forgets an earlier stop when it starts and when it ends."""
    global _watching
    if not _watching:
        clear_interrupt()
    _watching = _watching + 1 if active else max(_watching - 1, 0)
    if not _watching:
        clear_interrupt()


def clear_interrupt() -> None:
    """Forget an earlier stop signal (said by the command that caught it)."""
    global _stop_signalled
    _stop_signalled = False


def raise_if_interrupted() -> None:
    """KeyboardInterrupt if a stop signal came since :func:`clear_interrupt`: CPython ignores an exception raised
    where it cannot pass it on (an import lock's or a weakref's callback), and the command would run on to exit 0."""
    if _stop_signalled:
        raise KeyboardInterrupt


class SpikeCLError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(SpikeCLError):
    """An experiment config has an unknown key, a wrong type or an out-of-range value."""


class DataError(SpikeCLError):
    """A dataset is missing, malformed, or has the wrong shape."""


class ShapeError(SpikeCLError):
    """An array or tensor has the wrong shape or dtype."""


class NumericalError(SpikeCLError):
    """A NaN or infinity appeared where a finite number is required."""


class ResultsError(SpikeCLError):
    """A results or checkpoint file is missing, corrupt, or from an incompatible schema."""


class ForeignFileError(ResultsError):
    """A readable file that is not one this spikecl reads as asked: another schema or kind, a newer schema version,
    or one another process holds locked. ``--resume`` refuses to replace it (a damaged file it runs again)."""


class ExistsError(SpikeCLError):
    """An output exists and would be overwritten without ``--overwrite``."""


class ExportError(SpikeCLError):
    """A trained network cannot be represented on the target (range, reset mode, unsupported layer)."""


class DependencyError(SpikeCLError):
    """An optional dependency (an extra) is not installed."""


def did_you_mean(name: object, choices, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` naming the choice closest to a mistyped ``name``, or ``""`` when none is close
    (similarity below ``cutoff``, difflib's ratio in [0, 1]).

    >>> did_you_mean("lamb", ["lambda", "online"])
    "; did you mean 'lambda'?"
    """
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=cutoff) if isinstance(name, str) \
        else []
    return f"; did you mean {close[0]!r}?" if close else ""


def check_installed(module: str, extra: str, what: str) -> None:
    """Before any work: a one-line :class:`DependencyError` when ``module`` (needed for ``what``) is not installed
    (looked up, not imported)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise DependencyError(f"{what} needs {module}, which is not installed; install it with: "
                              f"pip install 'spikecl[{extra}]'")


def require(module: str, extra: str, install: str | None = None):
    """Import an optional dependency or raise :class:`DependencyError` naming the install command: that of the
    package's ``extra``, or ``install`` where no extra brings it.

    >>> np = require("numpy", "core")
    """
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as exc:                   # not installed, or installed but broken (a build for another numpy)
        raise import_failure(module, extra, exc, install) from exc


def import_failure(module: str, extra: str, exc: Exception, install: str | None = None,
                   needed_for: str = "") -> DependencyError:
    """The one-line :class:`DependencyError` for ``exc``, raised by importing ``module``, whose advice changes
    something: "not installed" (with the extra's install command, or ``install``) where the package is missing; the
    missing package where it lacks one it imports; else that it is installed but does not import, with the error's
    first line (e.g. a build made for another numpy) and an upgrade of its distribution. ``needed_for``: what needs
    it, e.g. ``", which the plots need"``."""
    import importlib.util

    package = module.split(".")[0]
    named = (getattr(exc, "name", None) or "") if isinstance(exc, ModuleNotFoundError) else ""
    missing = named.split(".")[0]
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        found = False
    if not found or named == module:
        command = install or f"pip install 'spikecl[{extra}]'"
        return DependencyError(f"{module} is not installed{needed_for}; install it with: {command}")
    if missing and missing != package:
        return DependencyError(f"{package} is installed but needs {missing}, which is not installed{needed_for}; "
                               f"install it (pip install {missing})")
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:200]
    return DependencyError(f"{package} is installed but does not import ({type(exc).__name__}"
                           f"{': ' + first if first else ''}){needed_for}; a build for other versions of its "
                           f"dependencies (e.g. another numpy) does that: upgrade it with: pip install --upgrade "
                           f"{distribution(package)}")


def distribution(package: str) -> str:
    """The name pip knows the installed top-level ``package`` by (``sklearn`` → ``scikit-learn``), else
    ``package``."""
    from importlib.metadata import packages_distributions

    return (packages_distributions().get(package) or [package])[0]


def check_type(value, types: type | tuple[type, ...], what: str, hint: str = ""):
    """``value`` itself when it is one of ``types``, else a one-line :class:`ConfigError` naming ``what`` was given
    (``hint``: how to get the right one, e.g. "quantize(spec) first")."""
    if isinstance(value, types):
        return value
    names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
    article = "an" if names[:1] in "AEIOU" else "a"
    raise ConfigError(f"{what}: expected {article} {names}, got {type(value).__name__}" + (f"; {hint}" if hint else ""))
