"""Results files.

Every run of every experiment kind writes HDF5 files through :func:`write_run`, with one schema name and a ``kind``
attribute; :func:`read_run` reads any of them back and :func:`open_for_reading` is the one place where a missing or
corrupt file becomes a one-line :class:`ResultsError`. Files are written atomically (:mod:`spikecl.atomic`: a killed
process never leaves a half-written file, an existing one is replaced only with ``overwrite=True``) and sealed
(:mod:`spikecl.integrity`); :mod:`spikecl.environment` records what a run ran on.

Results schema (version 1), common to every kind::

    (user block)           the first 512 bytes, which HDF5 skips: the mark :data:`spikecl.integrity.SEAL`, then the
                           size and the CRC-32 of every byte after the block (little-endian uint64, uint32), zeros
                           after them. A byte damaged anywhere is a one-line read error before libhdf5 parses the
                           file (some damage to HDF5's attribute storage makes it loop for ever); absent in files
                           written before it
    /                      attrs: schema = "spikecl-results", schema_version, kind, and the kind's own attributes
    /config                attrs: json (the experiment config)
    /environment           attrs: json (versions, device, host; a resumed run whose parts differ: each differing
                           key lists the values used, setups_by_task what each stretch of tasks ran with)
    /metrics               attrs: one float per metric
    (root)                 contents: JSON list of the paths of every array and group below; a file whose arrays
                           differ from it is corrupt (absent in files written before it)
    (root)                 attrs_crc32: CRC-32 of the attributes above (kind, root attributes, contents, config,
                           environment, metrics); a file whose attributes fail it is corrupt (absent in files written
                           before it; required where contents is present)
    /<group>/.../<name>    the kind's arrays; each numeric one carries attrs crc32, the CRC-32 of its bytes (a file
                           that lists its contents must carry one on every numeric array)

Each kind documents its attributes and arrays where it writes them (``continual``: :mod:`spikecl.continual.results`,
``ca3``: :mod:`spikecl.memory.experiment`, ``sparsey``: :mod:`spikecl.sdr.experiment`, ``sweep``:
:mod:`spikecl.continual.sweep`).
"""

from __future__ import annotations

import json
import os
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikecl.atomic import atomic_write
from spikecl.environment import environment
from spikecl.errors import ConfigError, ForeignFileError, ResultsError, check_type
from spikecl.hdf5_guard import check_heaps
from spikecl.integrity import check_seal, write_hdf5_image
from spikecl.paths import is_dir, is_file, missing
from spikecl.recorded import recorded_as_now

SCHEMA = "spikecl-results"
#: the schema of a network file spikecl exports (:mod:`spikecl.export.netx`), which readers of results name as such
NETX_SCHEMA = "spikecl-netx"
SCHEMA_VERSION = 1


def write_run(path: str | Path, kind: str, config: dict, metrics: dict[str, float] | None = None,
              arrays: dict | None = None, attrs: dict | None = None, env: dict | None = None,
              overwrite: bool = False) -> Path:
    """Write one results file of ``kind`` atomically (schema in the module docstring).

    ``arrays``: ``{name: array or {name: ...}}``; a nested dict becomes a group (an empty one an empty group).
    ``attrs``: extra root attributes (lists and dicts stored as JSON text). ``environment`` defaults to
    :func:`environment` (``env``). Refuses to replace an existing file unless ``overwrite``.
    """
    env = environment() if env is None else env
    reserved = sorted(set(attrs or {}) & {"schema", "schema_version", "kind", CONTENTS, ATTRS_CRC})
    if reserved:
        raise ConfigError(f"write_run: attribute {reserved[0]!r} is the results file's own; name yours otherwise")
    reserved = sorted(set(arrays or {}) & {"config", "environment", "metrics"})
    if reserved:
        raise ConfigError(f"write_run: array {reserved[0]!r} is the results file's own group; name yours otherwise")

    def build(f) -> None:
        f.attrs.update(schema=SCHEMA, schema_version=SCHEMA_VERSION, kind=kind)
        f.attrs.update({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in (attrs or {}).items()})
        f.create_group("config").attrs["json"] = json.dumps(config)
        f.create_group("environment").attrs["json"] = json.dumps(env)
        f.create_group("metrics").attrs.update({k: float(v) for k, v in (metrics or {}).items()})
        _write_arrays(f, arrays or {})
        f.attrs[CONTENTS] = json.dumps(_stored_contents(f))   # as stored ("a/b" is a group a and its b)
        f.attrs[ATTRS_CRC] = _attrs_crc(f)               # of the values as stored, as reading sees them

    try:
        return atomic_write(path, lambda tmp: write_hdf5_image(tmp, build, sealed_file=True), overwrite=overwrite)
    except (TypeError, ValueError) as exc:       # a value h5py or JSON cannot store (the file is not written)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"write_run: a value of {path} cannot be stored ({first}); give numbers, strings, lists "
                          "and dicts of them, and numeric arrays") from None




#: the root attribute holding the CRC-32 of a results file's attributes (:func:`_attrs_crc`)
ATTRS_CRC = "attrs_crc32"
#: the root attribute listing the paths of a results file's arrays and groups as written (JSON, under the CRC): an
#: array whose name a damaged byte changed is then a read error, not an array silently missing from a report
CONTENTS = "contents"


def _stored_contents(f) -> list[str]:
    """The sorted paths of the arrays and groups an open results file holds (config, environment, metrics aside)."""
    paths: list[str] = []
    f.visit(paths.append)
    return sorted(p for p in paths if p.split("/")[0] not in ("config", "environment", "metrics"))


def _check_contents(f) -> None:
    """A ValueError unless the arrays and groups ``f`` holds are those its :data:`CONTENTS` lists (files written
    before it was recorded are read as they are); a file that lists them must also carry its attributes' CRC."""
    listed = f.attrs.get(CONTENTS)
    if listed is None:
        return
    if ATTRS_CRC not in f.attrs:
        raise ValueError("its attributes' CRC-32 is missing")
    listed, found = set(json.loads(listed)), set(_stored_contents(f))
    if listed != found:
        missing, unexpected = sorted(listed - found), sorted(found - listed)
        raise ValueError("its arrays are not those it was written with ("
                         + "; ".join(filter(None, (missing and "missing " + ", ".join(missing[:3]),
                                                   unexpected and "unexpected " + ", ".join(unexpected[:3]))))
                         + ")")


def _attrs_crc(f) -> np.int64:
    """CRC-32 of the attributes of the results file ``f`` (an open ``h5py.File``) as stored: the root ones but the
    CRC itself, the config and environment JSON and the metrics, so that a byte damaged on disk in a number a
    summary reads (a metric, a kind's own attribute) is a read error, as in an array."""
    def plain(value):                                    # numpy scalars and arrays, byte strings: as Python's
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value.item() if isinstance(value, np.generic) else value.tolist()
    stored = [{k: v for k, v in f.attrs.items() if k != ATTRS_CRC}, dict(f["config"].attrs),
              dict(f["environment"].attrs), dict(f["metrics"].attrs)]
    return np.int64(zlib.crc32(json.dumps(stored, sort_keys=True, default=plain).encode()))


def _write_arrays(group, arrays: dict) -> None:
    """Write ``arrays`` into ``group``; numeric arrays carry the CRC-32 of their bytes (attribute ``crc32``), so that
    a byte damaged on disk is a read error (:func:`open_for_reading`: "corrupt"), not a silently different number."""
    for name, value in arrays.items():
        if isinstance(value, dict):
            _write_arrays(group.create_group(name), value)
        else:
            value = np.asarray(value)
            dataset = group.create_dataset(name, data=value)
            if value.dtype.kind in "biufc":
                dataset.attrs["crc32"] = np.int64(zlib.crc32(np.ascontiguousarray(value).tobytes()))


#: how many times its size on disk a results or netx file may declare in arrays: spikecl writes them uncompressed
#: (at most 1x; a headroom for files edited by hand), so a few kilobytes declaring gigabytes are damaged or crafted
MAX_INFLATION = 100


def check_declared_sizes(group, path: str | Path) -> None:
    """A one-line :class:`ResultsError` when the datasets under the HDF5 ``group`` (of the file ``path``) declare
    more bytes together than :data:`MAX_INFLATION` times the file's size on disk, before any is read: the shapes
    are read from the file's metadata, so a damaged or crafted file cannot make spikecl allocate what it does not
    hold."""
    import h5py

    datasets: list = []
    group.visititems(lambda _, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None)
    declared = sum((int(np.prod(d.shape, dtype=object)) if d.shape else 1) * d.dtype.itemsize for d in datasets)
    on_disk = os.path.getsize(path)
    if declared > MAX_INFLATION * max(on_disk, 1):
        raise ResultsError(f"{path}: its arrays declare {declared} bytes, more than {MAX_INFLATION} times the file's "
                           f"{on_disk} bytes on disk; the file is damaged or not spikecl's")


def _read_arrays(group, sealed: bool = False) -> dict:
    """Every array under ``group`` as {name: array or {name: ...}}; an array whose bytes fail the CRC-32 it was
    written with is a ValueError (files written before arrays carried one are read as they are; in a ``sealed``
    file, one that lists its :data:`CONTENTS`, every numeric array must carry it, so that a damaged attribute name
    cannot switch the check off). Sizes are checked first by the caller (:func:`check_declared_sizes`)."""
    import h5py

    out = {}
    for name, item in group.items():
        if isinstance(item, h5py.Group):
            out[name] = _read_arrays(item, sealed)
            continue
        out[name] = item[()]
        stored = item.attrs.get("crc32")
        if stored is None and sealed and np.asarray(out[name]).dtype.kind in "biufc":
            raise ValueError(f"array {item.name} has lost its CRC-32")
        if stored is not None and int(stored) != zlib.crc32(np.ascontiguousarray(out[name]).tobytes()):
            raise ValueError(f"array {item.name} fails its CRC-32")
    return out


@dataclass
class Run:
    """One results file of any kind, as read back by :func:`read_run`."""

    path: Path
    kind: str
    attrs: dict                      # root attributes besides schema, schema_version and kind
    config: dict
    environment: dict
    metrics: dict[str, float]
    arrays: dict                     # {name: array or {name: ...}}, as written

    def array(self, name: str):
        """The array (or group dict) at ``"group/name"``; a missing entry is a one-line :class:`ResultsError` naming
        what the group holds (a misspelt name shows)."""
        node, at = self.arrays, []
        for part in name.split("/"):
            if not isinstance(node, dict) or part not in node:
                held = sorted(map(str, node)) if isinstance(node, dict) else []
                where = "/".join(at) or "the file"
                holds = f"; {where} holds {', '.join(held[:8])}{' ...' * (len(held) > 8)}" if held else ""
                raise ResultsError(f"{self.path} is corrupt or incomplete (no '{name}'{holds})")
            node, at = node[part], [*at, part]
        return node

    def attr(self, name: str):
        """The root attribute ``name``; a missing one is a one-line :class:`ResultsError`."""
        if name not in self.attrs:
            raise ResultsError(f"{self.path} is corrupt or incomplete (no attribute '{name}')")
        return self.attrs[name]


@contextmanager
def open_for_reading(path: str | Path, what: str = "results file"):
    """Open the HDF5 file ``path`` for reading (yields the ``h5py.File``). A missing file, a non-HDF5 or truncated
    one, or a missing/invalid entry met inside the block is a one-line :class:`ResultsError`."""
    import h5py

    path = Path(path)
    if is_dir(path, ResultsError):
        raise ResultsError(f"{path} is a folder, not a {what}")
    if not is_file(path, ResultsError):
        raise missing(path, f"{what} not found: {path}", ResultsError)
    _check_hdf5_name(path, what)
    check_seal(path, what)
    check_heaps(path, ResultsError)                  # a file without the seal (a network, an earlier result)
    try:
        with h5py.File(path, "r") as f:
            yield f
    except ResultsError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError,
            UnicodeDecodeError, MemoryError) as exc:     # what h5py and json raise on damaged bytes
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, OSError) and "unable to lock file" in reason:
            raise ForeignFileError(f"{path} is held open by another process (its HDF5 lock)") from None
        raise ResultsError(f"{path} is corrupt or incomplete ({reason})") from None


def _check_hdf5_name(path: Path, what: str) -> None:
    """A one-line :class:`ResultsError` for a file that is neither HDF5 nor named as HDF5 (a damaged ``.h5`` file is
    left to the opening, which calls it corrupt): an experiment file, a log, a checkpoint given by mistake."""
    import h5py

    if path.suffix.lower() in (".h5", ".hdf5", ".he5"):
        return
    if path.suffix.lower() == ".ckpt":
        raise ResultsError(f"{path} is the checkpoint of an unfinished run, not a {what} (continue it with spikecl "
                           "run --resume, or spikecl sweep for a sweep's run)")
    try:
        hdf5 = h5py.is_hdf5(path)
    except OSError:                                    # unreadable: the opening names why
        return
    if not hdf5:
        raise ResultsError(f"{path} is not an HDF5 {what}{_toml_hint(path, what)}")


def _toml_hint(path: Path, what: str) -> str:
    """What to do with the TOML file ``path`` given where an HDF5 ``what`` was expected: the command that runs it
    (a sweep file has a top-level ``base``), or, for a network, the ones that make one from it."""
    from spikecl.toml_files import tomllib

    if path.suffix.lower() != ".toml":
        return ""
    try:
        top = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):            # ValueError: undecodable text, invalid TOML
        top = {}
    if what == "network file" and top.get("kind") == "ca3":
        return f"; a ca3 experiment file? export its learning graph first: spikecl export {path} -o ca3.h5"
    if what == "network file" and top.get("kind", "continual") == "continual" and "base" not in top:
        return (f"; an experiment file? run it (spikecl run {path}), then export a results file it writes (spikecl "
                "export RESULTS.h5 -o net.h5)")
    if what == "network file":                 # a sweep's or a sparsey experiment: no network of its own
        return ("; spikecl deploy runs what spikecl export writes, from a continual run's results file or a ca3 "
                "experiment file")
    return (f"; a sweep file? run it with: spikecl sweep {path}" if "base" in top else
            f"; an experiment file? run it with: spikecl run {path}")


def _not_results(path: Path, f) -> str:
    """Why the open file ``f`` at ``path`` is not a results file: what it is where spikecl exported it, else the
    schema it has."""
    if "learning_graph" in f.attrs:
        return (f"{path} is a {f.attrs['learning_graph']} learning graph exported by spikecl export, not a results "
                "file (run it with spikecl deploy)")
    if "spikecl" in f and f["spikecl"].attrs.get("schema") == NETX_SCHEMA:
        return f"{path} is a network exported by spikecl export, not a results file (run it with spikecl deploy)"
    found = f.attrs.get("schema")
    if found is None and "spikecl" in f and "schema" in f["spikecl"].attrs:
        found = f["spikecl"].attrs["schema"]
    found = "no schema attribute" if found is None else f"schema {str(found)!r}"
    return f"{path} is not a spikecl results file ({found}; expected {SCHEMA!r})"


def read_run(path: str | Path, kind: str | None = None) -> Run:
    """Read a results file of any kind (of ``kind`` when given).

    Raises :class:`ResultsError` (one line) if the file is missing, not HDF5, truncated, not a results file (naming
    the schema it has), from a newer schema version, of another kind than ``kind``, or lacks a required entry.
    """
    path = Path(check_type(path, (str, os.PathLike), "read_run: path"))
    with open_for_reading(path) as f:
        if f.attrs.get("schema") != SCHEMA:
            raise ForeignFileError(_not_results(path, f))
        version = int(f.attrs["schema_version"])
        if version > SCHEMA_VERSION:
            raise ForeignFileError(f"{path} has schema version {version}; this spikecl reads up to "
                               f"{SCHEMA_VERSION} (upgrade spikecl)")
        if version < 1:                                   # versions count from 1: none was ever written below
            raise ResultsError(f"{path} is corrupt: schema version {version} was never written (versions count "
                               "from 1)")
        if "kind" not in f.attrs:
            raise ResultsError(f"{path} has no 'kind' attribute; it is not a complete spikecl results file")
        found = str(f.attrs["kind"])
        if kind is not None and found != kind:
            raise ForeignFileError(f"{path} holds a {found!r} run, not a {kind!r} run")
        attrs = {k: v.item() if isinstance(v, np.generic) else v for k, v in f.attrs.items()
                 if k not in ("schema", "schema_version", "kind", ATTRS_CRC, CONTENTS)}
        config, env = f["config"].attrs["json"], f["environment"].attrs["json"]
        stored = f.attrs.get(ATTRS_CRC)                  # absent in files written before it
        if stored is not None and int(stored) != _attrs_crc(f):
            raise ValueError("its attributes fail their CRC-32")
        _check_contents(f)
        check_declared_sizes(f, path)
        arrays = {k: v for k, v in _read_arrays(f, CONTENTS in f.attrs).items()
                  if k not in ("config", "environment", "metrics")}
        config, env = json.loads(config), json.loads(env)
        for what, value in (("config", config), ("environment", env)):
            if not isinstance(value, dict):
                raise ResultsError(f"{path} is corrupt: its recorded {what} is {json.dumps(value)[:40]}, not a table")
        return Run(path, found, attrs, recorded_as_now(config, attrs.get("seed")), env,
                   {k: float(v) for k, v in f["metrics"].attrs.items()}, arrays)


#: names the continual kind's results had here, before they moved beside the kind (spikecl/continual/results.py)
MOVED = {"RunResult": "ContinualResult", "read_results": "read_continual", "write_results": "write_continual",
         "as_result": "as_continual"}


def __getattr__(name: str):
    """A one-line ImportError naming the new place of a name :data:`MOVED` from here (a script of an earlier
    spikecl would otherwise get Python's bare "cannot import name")."""
    if name in MOVED:
        raise ImportError(f"spikecl.io.{name} is now spikecl.continual.results.{MOVED[name]} (the continual kind's "
                          "results live beside the kind; spikecl.io.read_run reads any kind's file)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
