"""Names that plugins register (methods, experiment kinds, datasets): plain words, each held by one definition, so a
plugin read twice registers again while a second definition under a taken name is a one-line
:class:`~spikecl.errors.ConfigError`."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
from typing import Any

import numpy as np

from spikecl.errors import ConfigError


def check_own_name(name: Any, what: str, why: str) -> None:
    """A one-line ConfigError unless ``name``, of something of one's own registered by a plugin (a method, a
    dataset), is a plain file-name word: letters, digits, '_', '-', '.'. ``what`` names it, ``why`` says where it
    is written."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"{what} {name!r}: use letters, digits, '_', '-' and '.', starting with a letter or digit "
                          f"({why})")


def named(obj: Any) -> str:
    """A class or function by its name (a plugin's module name is spikecl's own making), a ``functools.partial`` by
    its function's, anything else by its repr."""
    obj = obj.func if isinstance(obj, functools.partial) else obj
    return getattr(obj, "__qualname__", None) or repr(obj)


def check_not_held(where: str, name: str, held: Any, given: Any) -> None:
    """A one-line ConfigError (starting with ``where``) where ``name`` is registered already, by ``held``, another
    definition than ``given``: the same one imported again (a plugin read twice: of one module and qualified name,
    a ``functools.partial`` binding equal arguments) may register it again. (Classes a factory makes are told by
    where they are defined, not by what they hold.)"""
    def definition(obj: Any) -> tuple:
        """(source, qualified name, first line) of a class or function, the source being its module's file with
        links followed (one file imported under two names, by path and as a module, or run as ``__main__``, is one
        definition) or its module's name; a partial's function, a callable object's class (a lambda is told from
        another of its module by its line)."""
        obj = getattr(obj, "func", obj)
        obj = obj if hasattr(obj, "__qualname__") else type(obj)
        code = getattr(obj, "__code__", None)
        module = getattr(obj, "__module__", None)
        file = getattr(sys.modules.get(module), "__file__", None) if isinstance(module, str) else None
        return os.path.realpath(file) if file else module, obj.__qualname__, code.co_firstlineno if code else None

    def text(value: Any):
        """A bound argument as it compares across imports: a function or class by its definition, an array by its
        shape, dtype and bytes, containers item by item, an object told only by its address (``<X object at
        0x...>``, new at every import) by its class, anything else by its repr."""
        if hasattr(value, "__qualname__"):
            return definition(value)
        if isinstance(value, np.ndarray):
            return value.dtype.str, value.shape, hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()
        if isinstance(value, (list, tuple)):
            return tuple(map(text, value))
        if isinstance(value, dict):
            return tuple((repr(k), text(v)) for k, v in value.items())
        shown = repr(value)
        return definition(type(value)) if " at 0x" in shown else shown

    def bound(obj: Any) -> tuple:
        """The arguments a ``functools.partial`` binds (:func:`text` of each)."""
        if not isinstance(obj, functools.partial) or not (obj.args or obj.keywords):
            return ()
        return tuple(map(text, obj.args)), tuple((k, text(v)) for k, v in sorted(obj.keywords.items()))

    if held is not None and (definition(held), bound(held)) != (definition(given), bound(given)):
        _, qualname, line = definition(held)
        module = getattr(getattr(held, "func", held), "__module__", None) or type(held).__module__
        at = f" (line {line})" if line else ""
        other = " with other arguments bound" if definition(held) == definition(given) else ""
        raise ConfigError(f"{where}: {name!r} is registered already, by {qualname}{at} of {module}{other}; register "
                          f"{named(given)} under another name")
