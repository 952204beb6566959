"""Your own code before a command runs: a plugin is a Python file or module that registers its own continual-learning
methods (:func:`spikecl.continual.strategies.register`), experiment kinds
(:func:`spikecl.experiment_kind.register_kind`) or datasets (:func:`spikecl.data.register_dataset`) when imported,
so that ``spikecl run EXP.toml --plugin mine.py`` runs them with everything spikecl's own have (``--resume``,
results files, plots, ``--nproc``, the report); ``spikecl sweep SWEEP.toml --plugin mine.py`` sweeps the methods
and datasets it registers (every Ray worker imports it too); ``spikecl export`` and ``deploy`` take the plugin of
the dataset a network was trained on.

A plugin is named on the command line, never in an experiment file: reading an experiment runs no code.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import zlib
from pathlib import Path
from types import ModuleType

from spikecl.environment import PLUGINS
from spikecl.errors import ConfigError
from spikecl.paths import is_file
from spikecl.remedies import option


def load_plugin(spec: str) -> ModuleType:
    """Import ``spec``: a Python file (``path/to/mine.py``, as module ``spikecl_plugin_mine_<hash>``, see
    :func:`module_name`, so its ``if __name__ == "__main__"`` block does not run) or an importable module
    (``mypackage.methods``). A missing one, or one whose import raises, is a one-line :class:`ConfigError`."""
    path = Path(spec).expanduser()                       # '~/mine.py' as the other path arguments read it
    if path.suffix != ".py":
        try:
            found = importlib.util.find_spec(spec)          # imports the parent packages, which may fail
        except ModuleNotFoundError as exc:
            if exc.name and not (spec == exc.name or spec.startswith(exc.name + ".")):    # a dependency is missing
                raise ConfigError(f"{_named(spec)} failed on import: ModuleNotFoundError: {exc}") from None
            found = None
        except ValueError:
            found = None
        except Exception as exc:                            # a parent package's own code raised
            raise ConfigError(f"{_named(spec)} failed on import: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        if found is None:
            raise ConfigError(f"{_named(spec)}: no such module (a .py file or an importable module name)")
        if found.origin is None:                            # a namespace package: a folder holding no __init__.py
            raise ConfigError(f"{_named(spec)}: a folder without __init__.py, which would import as an empty "
                              "namespace package and register nothing; name a .py file or a module")
        module = _imported(spec, lambda: importlib.import_module(spec))
        _record(spec, found.origin)
        return module
    if not is_file(path, ConfigError):
        raise ConfigError(f"{_named(spec)}: no such file")
    name = module_name(path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module                           # dataclasses look a class's module up by name
    try:
        _imported(spec, lambda: module_spec.loader.exec_module(module))
    except ConfigError:
        del sys.modules[name]
        raise
    _record(path.name, str(path))
    return module


def _named(spec: str) -> str:
    """How the caller named plugin ``spec``: ``--plugin mine.py`` on the command line, ``plugin mine.py`` from
    Python (:func:`load_plugin`)."""
    return f"{option('--plugin', keyword='plugin')} {spec}"


def _record(name: str, source: str) -> None:
    """Note plugin ``name`` with the CRC-32 of its source file (:data:`~spikecl.environment.PLUGINS`)."""
    try:
        PLUGINS[name] = f"{zlib.crc32(Path(source).read_bytes()):08x}"
    except OSError:
        PLUGINS[name] = "unreadable"


def module_name(path: Path) -> str:
    """The module name of plugin file ``path``: its stem and a short hash of its resolved path, so that files of one
    name in two folders do not replace each other in ``sys.modules`` (and every process names a file alike)."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    return f"spikecl_plugin_{path.stem}_{digest}"


def _imported(spec: str, run):
    """``run()``, with any exception the plugin's code raises as a one-line :class:`ConfigError`."""
    try:
        return run()
    except ConfigError as exc:
        raise ConfigError(f"{_named(spec)}: {exc}") from None
    except Exception as exc:                       # the plugin's own code: name its error in one line
        line = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"{_named(spec)} failed on import: {type(exc).__name__}: {line}") from None
    except SystemExit as exc:                      # an exit() at import would end the command without a word
        raise ConfigError(f"{_named(spec)} called exit({exc.code!r}) on import; a plugin only defines and "
                          "registers (guard a script part with if __name__ == '__main__')") from None


def load_plugins(specs) -> list[str]:
    """Import every plugin of ``specs`` in order (:func:`load_plugin`). Returns the specs as another process
    should name them: files by their absolute path (a Ray worker may start in another folder)."""
    for spec in specs:
        load_plugin(spec)
    return [str(Path(spec).expanduser().resolve()) if Path(spec).suffix == ".py" else spec for spec in specs]


def run_file_with_plugins(plugins: list[str], *args, **kwargs) -> int:
    """:func:`spikecl.experiment_kind.run_file` after loading ``plugins``: what each process of an ``--nproc`` run
    calls, since a spawned process starts without the parent's imports."""
    from spikecl.experiment_kind import run_file

    load_plugins(plugins)
    return run_file(*args, **kwargs)
