"""TOML text in and out: reading an experiment, sweep or graph file (:func:`load_toml`), ``--set key=value``
overrides (:func:`parse_override`, :func:`apply_overrides`) and values written back as TOML (:func:`toml_literal`).
A missing, empty, binary, non-UTF-8 or too deeply nested file is a one-line :class:`~spikecl.errors.ConfigError`."""

from __future__ import annotations

import datetime
import numbers
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any

from spikecl.errors import ConfigError, check_type
from spikecl.remedies import option, override_given, set_option

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the Lava environment)
    import tomli as tomllib


def parse_override(assignment: str) -> tuple[list[str], Any]:
    """Parse ``key.sub=value`` (the key as a TOML dotted key, quoted parts included: ``variants.v."train.lr"``;
    the value as a TOML literal, else a bare string) into (path, value)."""
    if "=" not in assignment:
        raise ConfigError(f"{override_given(assignment)}: expected key=value")
    key, text = assignment.split("=", 1)
    path = _key_path(key.strip())
    if not path:
        raise ConfigError(f"{override_given(assignment)}: empty key")
    if len(path) > MAX_NESTING:
        raise ConfigError(f"{option('--set', keyword='overrides')}: key {key.strip()[:40]!r}... names {len(path)} "
                          "nested tables; a config nests a few")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
        if nesting_depth(value) > MAX_NESTING:
            raise RecursionError
    except RecursionError:
        raise ConfigError(f"{set_option(key.strip())}: its value nests more than {MAX_NESTING} levels of arrays or "
                          "tables") from None
    except tomllib.TOMLDecodeError as exc:
        value = text.strip()
        if value[:1] in ("'", '"', "[", "{"):                     # meant as a literal, not a bare string
            raise ConfigError(f"{override_given(assignment)}: {value!r} is not a TOML value ({exc})") from None
        if _python_number(value):                                 # .5, 5., 1.e3: a number TOML spells otherwise
            raise ConfigError(f"{override_given(assignment)}: {value!r} is not a TOML number (TOML wants a "
                              "digit on both sides of a decimal point, e.g. 0.5); quote it if a string is "
                              "meant") from None
    except ValueError as exc:                                     # e.g. an integer of more than 4,300 digits
        raise ConfigError(f"{set_option(key.strip())}: not a TOML value ({str(exc).splitlines()[0]})") from None
    if isinstance(value, (datetime.date, datetime.time)):         # a date-like name is a word to the user
        value = text.strip()
    return path, value


def toml_literal(value: Any) -> str:
    """``value`` (a string, number, bool, or a list or table of them) as TOML literal text that reads back as the same
    value: strings as basic strings (characters outside the BMP written as themselves, not as JSON's surrogate
    escapes, which TOML refuses), ``nan`` and ``inf`` as TOML spells them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        return ("nan" if value != value else "inf" if value == float("inf") else "-inf" if value == float("-inf")
                else repr(value))
    if isinstance(value, str):
        escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else "\\" + c if c in '"\\'
                          else c for c in value)
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, typing.Mapping):
        return "{" + ", ".join(f"{toml_literal(str(k))} = {toml_literal(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"{value!r} ({type(value).__name__}) has no TOML literal")


def sets_key(override: str, key: str) -> bool:
    """Whether the ``key=value`` ``override`` sets the dotted ``key`` (however its key is spelt: quoted parts,
    ``"seeds"``; or a table holding it, ``data={data_dir = "x"}``)."""
    path, value = parse_override(override)
    wanted = key.split(".")
    if path != wanted[:len(path)]:
        return False
    for part in wanted[len(path):]:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _python_number(text: str) -> bool:
    """Whether ``text`` (which TOML refused) is a decimal number missing a digit beside its point (``.5``, ``5.``,
    ``1.e3``), as Python would read it."""
    return re.fullmatch(r"[+-]?(\d+\.|\.\d+|\d+\.\d*)([eE][+-]?\d+)?", text) is not None


def _key_path(key: str) -> list[str]:
    """The parts of a dotted key as TOML reads it (``a."b.c"`` → ``["a", "b.c"]``); a key TOML does not accept is
    split at every dot (an empty part, ``a..b``, is a ConfigError)."""
    try:
        node = tomllib.loads(f"{key} = 0")
    except (tomllib.TOMLDecodeError, RecursionError):
        parts = key.split(".")
        if len(parts) > 1 and not all(p.strip() for p in parts):
            raise ConfigError(f"{set_option(key)}: a dotted key has an empty part") from None
        return [p for p in parts if p]
    path = []
    while isinstance(node, dict) and len(node) == 1:
        part, node = next(iter(node.items()))
        path.append(part)
    return path


def apply_overrides(raw: dict, assignments: typing.Iterable[str]) -> dict:
    """Return a copy of ``raw`` with each ``key=value`` assignment applied in turn (nested tables created as needed;
    of a key set twice, the last value wins, as a command line's later flag does)."""
    import copy

    if isinstance(assignments, (str, bytes)):           # its characters would be read as assignments
        raise ConfigError(f"overrides: expected a list of 'key=value' strings, got the string {assignments!r}; wrap it "
                          "in a list")
    if not isinstance(assignments, typing.Iterable):
        raise ConfigError(f"overrides: expected a list of 'key=value' strings, got {type(assignments).__name__}; "
                          "give [] for none")
    out = copy.deepcopy(raw)
    for assignment in assignments:
        if not isinstance(assignment, str):
            raise ConfigError(f"overrides: expected 'key=value' strings, got {assignment!r}")
        path, value = parse_override(assignment)
        set_path(out, path, value, override_given(assignment))
    return out


def set_path(raw: dict, path: list[str], value: Any, where: str) -> None:
    """Set ``raw[path[0]][path[1]]… = value``, creating tables on the way; ``where`` names the assignment. A table
    ``value`` replaces the table there only where it keeps every key that table has (``{}`` clears it): one that
    would drop keys (``train={epochs=1}`` over a file's ``[train]`` of five keys, which their defaults would silently
    take the place of) is a ConfigError naming them. Inside a variant's table (``variants.<name>``), whose keys are
    the dotted paths of the settings it changes, a quoted dotted key that names the path or a key below it
    (``"strategy.gpm.thresholds"``, ``[variants.x."strategy.gpm"]``) is part of what is set: replaced, kept or
    cleared with it."""
    node, spelled = raw, {}                   # a variant's quoted dotted keys met, by their path below ``path``
    for i, part in enumerate(path):
        whole = ".".join(path[i:])
        if path[0] == "variants" and i >= 2:
            for key in [k for k in node if isinstance(k, str) and "." in k and whole.startswith(k + ".")]:
                _unquote(node, key)               # a quoted table above the path: the tables it names
            for key in [k for k in node if isinstance(k, str) and "." in k
                        and (k == whole or k.startswith(whole + "."))]:
                spelled[key[len(whole) + 1:]] = node.pop(key)
        if i == len(path) - 1:
            break
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: '{part}' is not a table")
    old = node.get(path[-1])
    tables = [t for t in (old, spelled.pop("", None)) if isinstance(t, dict)]
    if tables or spelled:                       # the table the path has, however its keys are spelled
        old = {**{k: v for t in tables for k, v in t.items()}, **spelled}
    dropped = _dropped_keys(old, value) if isinstance(value, dict) and value and isinstance(old, dict) else []
    if dropped:
        key = ".".join(path)
        raise ConfigError(f"{where} would replace the table {key}, dropping {', '.join(dropped[:4])}"
                          f"{', ...' if len(dropped) > 4 else ''}: set its keys one by one "
                          f"({set_option(f'{key}.{next(iter(value))}', '...', quoted=False)}), or clear it first "
                          f"({set_option(key, '{}')})")
    node[path[-1]] = value


def _unquote(table: dict, key: str) -> None:
    """Move ``table``'s quoted dotted ``key`` (``"strategy.ewc"``) into the nested tables it names, key by key; of a
    key spelled both ways the one written later wins, as where a variant's settings are read in order."""
    later = list(table).index(key) > list(table).index(key.split(".")[0]) if key.split(".")[0] in table else True
    value, node = table.pop(key), table
    *above, last = key.split(".")
    for part in above:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return
    node[last] = _merged(node.get(last), value, later)


def _merged(old: Any, new: Any, new_wins: bool) -> Any:
    """Tables ``old`` and ``new`` merged key by key (``new``'s values where both have one and ``new_wins``); else
    the winner of the two."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new if new_wins or old is None else old
    out = dict(old)
    for key, value in new.items():
        out[key] = _merged(old.get(key), value, new_wins)
    return out


def _dropped_keys(old: dict, new: dict) -> list[str]:
    """The keys of table ``old`` (its nested tables' too, dotted; a dotted key is its path) that table ``new``
    replacing it would not set, however either spells them (``"train.lr" = 0.1`` or ``train = {lr = 0.1}``)."""
    kept = set(_dotted(new))
    return [key for key in _dotted(old) if key not in kept and not any(k.startswith(key + ".") for k in kept)]


def _dotted(table: dict, prefix: str = "") -> list[str]:
    """The dotted paths of ``table``'s values (an empty table's own path)."""
    paths = []
    for key, item in table.items():
        path = f"{prefix}{key}"
        paths += _dotted(item, path + ".") if isinstance(item, dict) and item else [path]
    return paths


#: the deepest nesting of tables and arrays a TOML file spikecl reads may have (its configs nest 3 or 4 levels)
MAX_NESTING = 64


def nesting_depth(value: Any) -> int:
    """How many levels of tables and arrays ``value`` nests (0 for a plain value), counted without recursion and
    up to one more than :data:`MAX_NESTING` (deeper is refused alike)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_NESTING:                 # enough to refuse; the rest need not be walked
            break
    return deepest


#: where HDF5 puts its signature: at 0, or after a user block (spikecl's seal: 512 bytes)
SUPERBLOCKS = (0, *(512 << k for k in range(8)))


def is_hdf5(head: bytes) -> bool:
    """Whether the first bytes of a file (at least the first ``SUPERBLOCKS[-1] + 8``) are HDF5's."""
    return any(head[at:at + 8] == b"\x89HDF\r\n\x1a\n" for at in SUPERBLOCKS)


def is_hdf5_file(path: str | Path) -> bool:
    """Whether ``path`` names an HDF5 file (its signature read: :func:`is_hdf5`), not a TOML one."""
    try:
        if not Path(path).is_file():             # a pipe would block the open; a folder is no file
            return False
        with open(path, "rb") as f:
            return is_hdf5(f.read(SUPERBLOCKS[-1] + 8))
    except OSError:
        return False


def load_toml(path: str | Path, what: str = "experiment file") -> dict:
    """Read a TOML file (``what`` it is, for messages); a missing or empty file or a syntax error is a one-line
    ConfigError."""
    from spikecl.paths import is_dir, is_file, missing

    path = Path(check_type(path, (str, os.PathLike), what))
    a_what = ("an " if what[0] in "aeiou" else "a ") + what
    if is_dir(path, ConfigError):
        raise ConfigError(f"{path} is a folder, not {a_what}")
    if not is_file(path, ConfigError):
        where = (" (the reference experiments are in the models/ folder of a spikecl checkout: run from its root or "
                 "give the file's path)") if path.parts[:1] == ("models",) else ""
        raise missing(path, f"{what} not found: {path}{where}", ConfigError)
    data = path.read_bytes()
    if is_hdf5(data):
        raise ConfigError(f"{path} is an HDF5 file (results or an exported network), not {a_what}: "
                          "'spikecl report' reads results, 'spikecl deploy' networks")
    if path.suffix.lower() in (".h5", ".hdf5"):       # named as results, but no HDF5 inside: not read as TOML
        raise ConfigError(f"{path} is {'empty' if not data else 'not an HDF5 file'} (corrupt or incomplete: a "
                          f"copy cut short?), and not {a_what} either (.toml)")
    if data[:4] == b"PK\x03\x04" and path.suffix == ".ckpt":      # torch.save's zip archive
        raise ConfigError(f"{path} is a run's checkpoint, not {a_what}: 'spikecl run <its experiment file> --resume' "
                          "continues the run")
    try:
        raw = tomllib.loads(data.decode("utf-8-sig"))     # a byte-order mark (some editors write one) is dropped
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    except ValueError as exc:                          # e.g. an integer of more than 4,300 digits
        raise ConfigError(f"{path}: invalid TOML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML (arrays or tables nested too deeply to read)") from None
    if nesting_depth(raw) > MAX_NESTING:
        raise ConfigError(f"{path}: tables or arrays nested more than {MAX_NESTING} levels deep; {a_what} nests a "
                          "few")
    if not raw:
        raise ConfigError(f"{path}: an empty {what} (no keys): it would run on defaults alone; write its settings "
                          "(models/ holds examples)")
    return raw
