"""Option tables: dataclasses whose fields carry their own checks, built from TOML tables.

:func:`option` declares a field with its allowed choices or range; :func:`from_dict` builds a dataclass from a table,
checking every key, type and range; :func:`check_fields` does the same for one built in Python. Every problem is a
:class:`~spikecl.errors.ConfigError` of one line naming the dotted key and what is allowed. Experiment configs
(:mod:`spikecl.config`), a strategy's options and a kind's config are all such dataclasses.
"""

from __future__ import annotations

import copy
import dataclasses
import numbers
import os
import typing
import unicodedata
from dataclasses import field
from typing import Any

from spikecl.errors import ConfigError, did_you_mean
from spikecl.remedies import option as remedy


def option(default: Any, *, choices: tuple | None = None, low: float | None = None, high: float | None = None,
           doc: str = "", distinct: bool = False, file_name: bool = False, nonempty: bool = False,
           path: bool = False, open_range: bool = False) -> Any:
    """A dataclass field with validation metadata: allowed ``choices`` (or a function returning them, read at each
    check: a registry) or an inclusive range [low, high] (for a list: of every item; ``open_range``: the open range
    (low, high), for a rate that must be positive and below where it diverges); ``distinct``: a list's items
    must differ; ``nonempty``: a list needs at least one item, a string a character;
    ``file_name``: a string that is a plain file name (no folder part, not '.' or '..'); ``path``: a file or folder
    path, whose leading ``~`` is the user's home (as in a shell, and where a shell leaves it: TOML strings,
    ``--opt=~/x``)."""
    meta = {"choices": choices, "low": low, "high": high, "doc": doc, "distinct": distinct, "file_name": file_name,
            "nonempty": nonempty, "path": path, "open_range": open_range}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)   # nested lists apart too
    return field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def check_value(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {_type_name(item_tp)}, got {value!r}")
        return [check_value(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):   # numpy integers too, not bool
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        value = int(value)
        if not -(1 << 63) <= value < (1 << 63):
            raise ConfigError(f"{key}: {value} does not fit in a 64-bit integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):          # numpy floats too
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {tp!r} for {key}")  # pragma: no cover - programming error


def check_bounds(value: Any, meta: typing.Mapping, key: str) -> None:
    """A one-line ConfigError naming ``key`` unless ``value`` (already of its type: :func:`check_value`) keeps the
    :func:`option` metadata ``meta``: its choices, range, distinct or non-empty items, plain file name."""
    choices, low, high = meta.get("choices"), meta.get("low"), meta.get("high")
    choices = choices() if callable(choices) else choices
    if meta.get("nonempty") and isinstance(value, list) and not value:
        raise ConfigError(f"{key}: expected at least one value")
    if meta.get("nonempty") and value == "":
        raise ConfigError(f"{key}: empty" + ("; write '.' for the current folder" if meta.get("path") else ""))
    if meta.get("distinct") and isinstance(value, list) and len(set(value)) < len(value):
        twice = next(v for i, v in enumerate(value) if v in value[:i])
        raise ConfigError(f"{key}: {twice!r} appears more than once")
    if meta.get("file_name") and (not value or value in (".", "..") or not plain_label(value)):
        raise ConfigError(f"{key}: {value!r} is not a plain file name (no folders, not '.' or '..', no control "
                          "characters)")
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_bounds(item, meta, f"{key}[{i}]")
        return
    if choices is not None and value not in choices:
        registers = remedy("register it in a file passed with --plugin",
                           keyword="import the module that registers it first")
        hint = did_you_mean(value, choices) or (f"; one of your own: {registers}"
                                                if callable(meta.get("choices")) else "")    # a registry's names
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(map(str, choices))}{hint}")
    if meta.get("open_range"):
        if (low is not None and value <= low) or (high is not None and value >= high):
            raise ConfigError(f"{key}: {value!r} is outside the open range ({low}, {high}); it must lie strictly "
                              "between them")
        return
    if low is not None and value < low:
        raise ConfigError(f"{key}: {value!r} is below the minimum {low}")
    if high is not None and value > high:
        raise ConfigError(f"{key}: {value!r} is above the maximum {high}")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (anything with ``tolist``) as Python numbers and lists, so configs built in Python
    validate like TOML."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def check_fields(cfg: Any, prefix: str = "") -> None:
    """Validate every field of the dataclass ``cfg`` in place by its type and :func:`option` range, as
    :func:`from_dict` does for a TOML table (numpy numbers become Python ones); a nested config field must hold an
    instance of its class. For configs built in Python (``__post_init__``)."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        key, tp, value = prefix + f.name, hints[f.name], getattr(cfg, f.name)
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, tp):
                raise ConfigError(f"{key}: expected a {tp.__name__}, got {value!r}")
            continue
        value = check_value(_plain(value), tp, key)
        check_bounds(value, f.metadata, key)
        setattr(cfg, f.name, value)


def from_dict(cls: type, data: typing.Mapping, prefix: str = "", root: tuple[type, str] | None = None) -> Any:
    """Build dataclass ``cls`` from a mapping, validating every key, type and range.

    Nested dataclass fields take nested tables. Raises :class:`ConfigError` on the first problem, naming the dotted
    key (``prefix`` + field name) and what is allowed (a key of another table of the config read, ``root``: its
    class and prefix, is named as such).
    """
    root = root or (cls, prefix)
    if not isinstance(data, typing.Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown and not fields:
        raise ConfigError(f"unknown key '{prefix}{unknown[0]}'; '{prefix.rstrip('.')}' takes no keys")
    if unknown:
        hint = _elsewhere(unknown[0], prefix, root) or did_you_mean(unknown[0], fields)   # the same key first
        raise ConfigError(f"unknown key '{prefix}{unknown[0]}'; allowed keys: {', '.join(sorted(fields))}{hint}")
    kwargs = {}
    for name, value in data.items():
        key = prefix + name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value, key + ".", root)
            continue
        kwargs[name] = check_value(value, tp, key)
        check_bounds(kwargs[name], fields[name].metadata, key)
        if fields[name].metadata.get("path") and kwargs[name]:
            kwargs[name] = os.path.expanduser(kwargs[name])
    return cls(**kwargs)


def _elsewhere(key: str, prefix: str, root: tuple[type, str]) -> str:
    """``"; did you mean 'train.epochs'?"`` where ``key``, unknown in the table ``prefix`` names, is a key of another
    table of the config ``root`` (its class and prefix) reads (``train.train_per_task`` for
    ``stream.train_per_task``, a top-level ``epochs``), else ``""``."""
    found, stack = [], [root]
    while stack:
        cls, at = stack.pop()
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                stack.append((hints[f.name], f"{at}{f.name}."))
            elif f.name == key and at != prefix:
                found.append(f"{at}{key}")
    return f"; did you mean {' or '.join(repr(k) for k in sorted(found))}?" if found else ""


def field_default(section: Any, key: str) -> Any:
    """The default of the dataclass field ``key`` of ``section`` (a list default is made by its factory)."""
    found = next(f for f in dataclasses.fields(section) if f.name == key)
    return found.default_factory() if found.default is dataclasses.MISSING else found.default


def check_defaults(cls: type, prefix: str, where: str) -> None:
    """A one-line ConfigError (starting with ``where``) unless dataclass ``cls`` builds from its defaults and they
    pass :func:`from_dict`'s validation of given values (keys named with ``prefix``)."""
    try:
        from_dict(cls, dataclasses.asdict(cls()), prefix)
    except ConfigError as exc:
        raise ConfigError(f"{where}: the default of {exc}") from None
    except (TypeError, NameError) as exc:        # a field without default, or of a type options cannot have
        line = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"{where}: {cls.__qualname__} cannot be validated ({type(exc).__name__}: {line}); every "
                          "option needs a default and a type bool, int, float, str, list[...] or dict") from None


_NOT_IN_LABELS = frozenset("/\\\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def plain_label(text: str) -> bool:
    """True where ``text`` may name a method or variant in file names and tables: no folder separator ('/', '\\'),
    no control character (a terminal escape, a newline, which would forge a table row), line or paragraph
    separator or bidirectional override. Other format characters stay: scripts need the zero-width (non-)joiner."""
    return not any(c in _NOT_IN_LABELS or unicodedata.category(c) == "Cc" for c in text)
