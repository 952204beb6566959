"""The CA3 memory as a learning-graph file: network, input schedule and reference run for Lava's learning engine.

Written on the main side by :func:`spikecl.memory.lava_graph.write_ca3_graph` (which also runs the torch stepper as
the reference); read here, torch-free, by ``spikecl deploy FILE --backend lava-sim`` and by the Lava side
(``python -m spikecl_lava.learning.ca3``). Layout (T steps of 1 ms, C cues, M content bits)::

    /                         attrs: learning_graph = "ca3", version, n_cues, n_bits, steps, params (JSON)
    /network                  attrs: v_rest_mV, v_reset_mV, syn_decay, refractory_steps, post_lag_steps,
                                     reset_below_threshold
    /network/populations/<p>  attrs: order, size, input (bool); cells also alpha, gain (mV/nA), v_thresh_mV,
                                     plastic_scale (1/nA of plastic weight to nA of current; 0: no plastic input)
    /network/static/<k>       weights [n_target, n_source] (nA of current per spike, signed; 0: no synapse);
                              attrs: source, target, delay_steps (spikecl's d - 1; at most
                              :data:`MAX_DELAY_STEPS` and below ``steps``)
    /network/plastic/<name>   w_init [n_pre, n_post] (nA); attrs: source, target, a_plus_nA, a_minus_nA,
                              tau_plus_ms, tau_minus_ms, w_min_nA, w_max_nA (names: :data:`PLASTIC`)
    /inputs/INcue [T, C], /inputs/INcont [T, M]        bool input rasters (bool or 0/1 integers)
    /readout                  cue_step, content_step, forgotten_step [K] (-1: none), start_ms [K];
                              attrs: kinds, expected (JSON: per operation the ideal answer)
    /reference/spikes/<p>     bool [T, N] (the torch stepper's rasters); /reference/weights/<name> [pre, post];
                              attrs: backend, run_s, ms_per_step (optional; when present, for every population
                              and plastic projection)

The reader refuses, in one line, what the writer never produces: attribute names it does not know (a typo is not
ignored), two populations with one ``order``, booleans where numbers belong, non-integer readout steps, spike rasters
with values other than 0 and 1, delays and lags outside the run or beyond :data:`MAX_DELAY_STEPS`.

:func:`deploy` runs the file on Lava, decodes every operation's answer from the output layer at the stored steps and
compares with the reference: answers, recall accuracy, spike match rate per population, plastic weights, timing.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikecl.errors import ConfigError, DataError, ResultsError, ShapeError
from spikecl.hdf5_guard import check_heaps, check_stored_size, damage_as
from spikecl.integrity import check_seal

VERSION = 1
BACKENDS = ("lava-sim", "reference")
NETWORK_ATTRS = ("v_rest_mV", "v_reset_mV", "syn_decay", "refractory_steps", "post_lag_steps",
                 "reset_below_threshold")
CELL_ATTRS = ("alpha", "gain", "v_thresh_mV", "plastic_scale")
PLASTIC_ATTRS = ("a_plus_nA", "a_minus_nA", "tau_plus_ms", "tau_minus_ms", "w_min_nA", "w_max_nA")
OUTPUTS = ("OUTcue", "OUTcont")
RECALLS = ("recall_cue", "recall_content")
OPERATION_KINDS = ("learn", *RECALLS)                  # spikecl.memory.schedule's kinds (export imports no other kind)
#: the plastic projections: name -> (source, target), as spikecl.memory.params.PLASTIC (tests check they agree)
PLASTIC = {"cue_to_content": ("CA3cueCueRecall", "CA3contCueRecall"),
           "content_to_cue": ("CA3contContRecall", "CA3cueContRecall")}
CELLS = ("custom", "lif")
LEARNING = ("float", "fixed")
#: keyword options of :func:`deploy` that ``spikecl deploy`` passes on (--stock-engine, --cells, --learning)
DEPLOY_OPTIONS = ("stock_engine", "cells", "learning")
#: the longest synaptic delay (and post lag) in steps: Loihi's 6-bit synaptic delay field (Lava's DelayDense would
#: allocate a buffer of that many steps per neuron, so a damaged value cannot be left unbounded)
MAX_DELAY_STEPS = 62
#: the attributes each kind of node may carry (any other name is refused, not ignored)
KNOWN_ATTRS = {"network": {*NETWORK_ATTRS}, "input": {"order", "size", "input"},
               "cell": {"order", "size", "input", *CELL_ATTRS}, "static": {"source", "target", "delay_steps"},
               "plastic": {"source", "target", *PLASTIC_ATTRS}}


@dataclass
class CA3Graph:
    """A read, validated CA3 learning graph. ``populations``: name -> attrs (file order, inputs first);
    ``static``: list of (source, target, delay_steps, weights [n_target, n_source]); ``plastic``: name ->
    (source, target, attrs, w_init [pre, post]); ``inputs``: name -> bool [T, n]; ``readout``: arrays [K] and
    ``kinds``/``expected`` lists; ``reference``: spikes / weights dicts and attrs."""

    path: Path
    n_cues: int
    n_bits: int
    steps: int
    params: dict
    network: dict
    populations: dict
    static: list
    plastic: dict
    inputs: dict
    readout: dict
    reference: dict

    def cells(self) -> list[str]:
        """Names of the neuron populations (not inputs), in file order."""
        return [p for p, a in self.populations.items() if not a["input"]]


def _attr(node, key: str, where: str):
    if key not in node.attrs:
        raise DataError(f"{where}: missing attribute {key!r}")
    value = node.attrs[key]
    return value.decode() if isinstance(value, bytes) else value


def _name(node, key: str, where: str) -> str:
    """A string attribute (a population's name)."""
    value = _attr(node, key, where)
    if not isinstance(value, str):
        shown = value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value
        raise DataError(f"{where}.{key}: expected a population name, got {shown!r}")
    return value


def _group(f, key: str, required: bool = False):
    """The HDF5 group ``key`` of ``f`` (empty when absent and not ``required``); a DataError when it is a dataset."""
    import h5py

    if key not in f:
        if required:
            raise DataError(f"missing group '/{key}'")
        return {}
    node = f[key]
    if not isinstance(node, h5py.Group):
        raise DataError(f"/{key}: expected a group, found a dataset")
    return node


def _finite(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
        raise DataError(f"{where}: contains NaN or infinite values")
    return array


def _dataset(f, key: str, shape: tuple | None = None, kinds: str = "iuf", what: str = "numbers") -> np.ndarray:
    """The dataset ``key`` of ``f`` with a dtype of ``kinds`` (numpy kind letters; default real numbers, not
    booleans) and ``shape``; else a one-line error naming ``what`` it must hold."""
    import h5py

    if key not in f:
        raise DataError(f"missing dataset {key!r}")
    if not isinstance(f[key], h5py.Dataset):
        raise DataError(f"{key}: not a dataset")
    if shape is not None and f[key].shape != shape:             # checked before reading: the file may be hostile
        raise ShapeError(f"{key}: shape {f[key].shape}, expected {shape}")
    check_stored_size(f[key], "ca3 graph")
    array = _finite(np.asarray(f[key][()]), key)
    if array.dtype.kind not in kinds:
        raise DataError(f"{key}: holds {array.dtype} values, not {what}")
    return array


def _spikes(f, key: str, shape: tuple) -> np.ndarray:
    """A spike raster: bool, or integers 0 and 1 (a float or any other value is refused, never rounded)."""
    array = _dataset(f, key, shape, "biu", "spikes (bool or 0/1 integers)")
    if array.dtype.kind != "b" and np.any((array != 0) & (array != 1)):
        raise DataError(f"{key}: holds the value {array[(array != 0) & (array != 1)][0]}; spikes are 0 or 1")
    return array.astype(bool)


def _known_attrs(node, kind: str, where: str) -> None:
    """A one-line DataError naming an attribute of ``node`` that a ``kind`` node does not carry."""
    unknown = sorted(set(node.attrs) - KNOWN_ATTRS[kind])
    if unknown:
        raise DataError(f"{where}: unknown attribute {unknown[0]!r} (a {kind} node carries "
                        f"{', '.join(sorted(KNOWN_ATTRS[kind]))})")


def _number(node, key: str, where: str, low: float = -np.inf, high: float = np.inf, why: str = "") -> float:
    """A finite number attribute in ``low``..``high`` (a boolean or string is refused); ``why``: the reason for the
    range, appended to the message."""
    value = _attr(node, key, where)
    if np.ndim(value) or np.asarray(value).dtype.kind not in "iuf" or not np.isfinite(value):
        raise DataError(f"{where}.{key}: expected a finite number, got {value!r}")
    if not low <= value <= high:
        raise DataError(f"{where}.{key}: {value} outside {low}..{high}{why}")
    return float(value)


def _integer(node, key: str, where: str, low: int = 0, high: float = np.inf, why: str = "") -> int:
    """An integer attribute in ``low``..``high`` (a float with a fraction is refused, never truncated)."""
    value = _number(node, key, where, low, high, why)
    if value != int(value):
        raise DataError(f"{where}.{key}: expected an integer, got {value!r}")
    return int(value)


def _flag(node, key: str, where: str) -> bool:
    """A boolean attribute: true/false or the integers 0/1 (a string such as "no" is refused, not read as true)."""
    value = _attr(node, key, where)
    if np.ndim(value) or np.asarray(value).dtype.kind not in "biu" or value not in (0, 1):
        raise DataError(f"{where}.{key}: expected a boolean, got {value!r}")
    return bool(value)


def _json(node, key: str, where: str, kind: type):
    """A JSON attribute holding a ``kind`` (list or dict); else a one-line DataError."""
    try:
        value = json.loads(_attr(node, key, where))
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}.{key}: not valid JSON ({e})") from None
    if not isinstance(value, kind):
        raise DataError(f"{where}.{key}: expected a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def read_ca3_graph(path: str | Path) -> CA3Graph:
    """Read and validate a CA3 learning graph; one-line :mod:`spikecl.errors` exceptions for bad files."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        check_seal(path, "learning graph")
    except ResultsError as exc:
        raise DataError(str(exc)) from None
    check_heaps(path, DataError)
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise DataError(f"{path}: not an HDF5 file") from None
    with f, damage_as(path, DataError):
        kind = _attr(f, "learning_graph", str(path))
        if not isinstance(kind, str) or kind != "ca3":
            raise DataError(f"{path}: not a CA3 learning graph")
        if _integer(f, "version", "/") != VERSION:
            raise DataError(f"{path}: format version {f.attrs['version']}, this spikecl reads {VERSION}")
        n_cues, n_bits, steps = (_integer(f, k, "/") for k in ("n_cues", "n_bits", "steps"))
        if min(n_cues, n_bits, steps) < 1:
            raise DataError(f"{path}: n_cues, n_bits and steps must be >= 1")
        longest = min(steps - 1, MAX_DELAY_STEPS)
        delay_limit = f" (below the run's {steps} steps and at most MAX_DELAY_STEPS = {MAX_DELAY_STEPS})"
        net = _network_attrs(_group(f, "network", required=True), steps, longest, delay_limit)
        pops = _populations(_group(f, "network/populations", required=True), n_cues, n_bits)
        size = {p: a["size"] for p, a in pops.items()}
        static = []
        for key, node in _group(f, "network/static").items():
            src, tgt = (_name(node, k, f"/network/static/{key}") for k in ("source", "target"))
            _known(pops, src, tgt, f"/network/static/{key}")
            _known_attrs(node, "static", f"/network/static/{key}")
            weights = _dataset(f, f"network/static/{key}/weights", (size[tgt], size[src]))
            delay = _integer(node, "delay_steps", f"/network/static/{key}", 0, longest, delay_limit)
            static.append((src, tgt, delay, weights))
        plastic = {name: _plastic(f, name, node, pops) for name, node in _group(f, "network/plastic").items()}
        inputs = {p: _spikes(f, f"inputs/{p}", (steps, size[p])) for p in ("INcue", "INcont")}
        readout = _readout_group(f, steps)
        absent = [name for name in PLASTIC if name not in plastic]
        if absent:
            raise DataError(f"{path}: missing the plastic projection '/network/plastic/{absent[0]}'")
        reference = _reference(f, path, pops, plastic, steps) if "reference" in f else {"spikes": {}, "weights": {}}
        params = _json(f, "params", "/", dict)
    return CA3Graph(path, n_cues, n_bits, steps, params, net, pops, static, plastic, inputs, readout, reference)


def _network_attrs(node, steps: int, longest: int, delay_limit: str) -> dict:
    """The ``/network`` attributes, numbers in their ranges (delays and lags up to ``longest`` steps)."""
    _known_attrs(node, "network", "/network")
    net = {k: _number(node, k, "/network") for k in NETWORK_ATTRS if k != "reset_below_threshold"}
    net["reset_below_threshold"] = _flag(node, "reset_below_threshold", "/network")
    _number(node, "syn_decay", "/network", 0.0, 1.0)
    _integer(node, "refractory_steps", "/network", 0, steps, f" (the run's {steps} steps)")
    _integer(node, "post_lag_steps", "/network", 1, longest, delay_limit + " (at least the plastic delay, >= 1)")
    return net


def _populations(group, n_cues: int, n_bits: int) -> dict:
    """name -> attrs of ``/network/populations``, in their order: each with its own order, the inputs and outputs
    present, the input sizes ``n_cues`` and ``n_bits``."""
    pops = {}
    for name, node in group.items():
        where = f"/network/populations/{name}"
        attrs = {"order": _integer(node, "order", where), "size": _integer(node, "size", where),
                 "input": _flag(node, "input", where)}
        _known_attrs(node, "input" if attrs["input"] else "cell", where)
        if not attrs["input"]:
            attrs.update({k: _number(node, k, where) for k in CELL_ATTRS})
        pops[name] = attrs
    pops = dict(sorted(pops.items(), key=lambda kv: kv[1]["order"]))
    same = [(a, b) for (a, x), (b, y) in zip(pops.items(), list(pops.items())[1:]) if x["order"] == y["order"]]
    if same:
        raise DataError(f"/network/populations: {same[0][0]!r} and {same[0][1]!r} have the same order "
                        f"{pops[same[0][0]]['order']}; every population needs its own place")
    size = {p: a["size"] for p, a in pops.items()}
    missing = [p for p in ("INcue", "INcont", *OUTPUTS) if p not in pops]
    if missing:
        raise DataError(f"/network/populations: missing {missing[0]!r}")
    if min(size.values()) < 1 or (size["INcue"], size["INcont"]) != (n_cues, n_bits):
        raise ShapeError(f"/network/populations: sizes {size} do not fit n_cues = {n_cues}, n_bits = {n_bits}")
    return pops


def _plastic(f, name: str, node, pops: dict) -> tuple:
    """(source, target, attrs, w_init [pre, post]) of the plastic projection ``name``."""
    where = f"/network/plastic/{name}"
    if name not in PLASTIC:
        raise DataError(f"{where}: unknown plastic projection (the CA3 graph has {', '.join(PLASTIC)})")
    src, tgt = (_name(node, k, where) for k in ("source", "target"))
    _known(pops, src, tgt, where)
    if (src, tgt) != PLASTIC[name]:
        raise DataError(f"{where}: connects {src} -> {tgt}; the CA3 model's {name} connects "
                        f"{PLASTIC[name][0]} -> {PLASTIC[name][1]}")
    _known_attrs(node, "plastic", where)
    attrs = {k: _number(node, k, where) for k in PLASTIC_ATTRS}
    for key in ("tau_plus_ms", "tau_minus_ms"):
        if not attrs[key] > 0:
            raise DataError(f"{where}.{key}: {attrs[key]} must be > 0")
    if attrs["w_min_nA"] > attrs["w_max_nA"]:
        raise DataError(f"{where}: w_min_nA {attrs['w_min_nA']} > w_max_nA {attrs['w_max_nA']}")
    w_init = _dataset(f, f"network/plastic/{name}/w_init", (pops[src]["size"], pops[tgt]["size"]))
    if w_init.size and not attrs["w_min_nA"] <= w_init.min() <= w_init.max() <= attrs["w_max_nA"]:
        raise DataError(f"{where}/w_init: values {w_init.min():g}..{w_init.max():g} nA leave the rule's bounds "
                        f"{attrs['w_min_nA']:g}..{attrs['w_max_nA']:g} nA")
    return src, tgt, attrs, w_init


def _readout_group(f, steps: int) -> dict:
    """The ``/readout`` step arrays [K] (int64) with ``kinds`` and ``expected`` (a tuple per operation)."""
    readout = {k: _dataset(f, f"readout/{k}", None, "iu", "integer steps").astype(np.int64)
               for k in ("start_ms", "cue_step", "content_step", "forgotten_step")}
    if len({v.shape for v in readout.values()}) != 1 or readout["start_ms"].ndim != 1:
        raise ShapeError("/readout: start_ms, cue_step, content_step and forgotten_step need one shape [K]")
    readout["kinds"] = _json(f["readout"], "kinds", "/readout", list)
    expected = _json(f["readout"], "expected", "/readout", list)
    if not all(isinstance(e, list) for e in expected):
        raise DataError("/readout.expected: every operation's answer must be a JSON list")
    readout["expected"] = [tuple(e) for e in expected]
    if not len(readout["kinds"]) == len(readout["expected"]) == len(readout["start_ms"]):
        raise ShapeError("/readout: kinds, expected and the step arrays differ in length")
    _check_readout(readout, steps)
    return readout


def _reference(f, path: Path, pops: dict, plastic: dict, steps: int) -> dict:
    """The stored reference run: spikes of every population, weights of every plastic projection, and attrs."""
    for group in ("reference", "reference/spikes", "reference/weights"):
        _group(f, group, required=True)
    unknown = [p for p in f["reference/spikes"] if p not in pops] + \
        [k for k in f["reference/weights"] if k not in plastic]
    if unknown:
        raise DataError(f"/reference: {unknown[0]!r} is not a population or plastic projection of the network")
    missing = [f"spikes/{p}" for p in pops if p not in f["reference/spikes"]] + \
        [f"weights/{k}" for k in plastic if k not in f["reference/weights"]]
    if missing:
        raise DataError(f"{path}: missing '/reference/{missing[0]}' (a stored reference run covers every "
                        "population and plastic projection)")
    reference = {"spikes": {p: _spikes(f, f"reference/spikes/{p}", (steps, pops[p]["size"]))
                            for p in f["reference/spikes"]},
                 "weights": {k: _dataset(f, f"reference/weights/{k}", plastic[k][3].shape)
                             for k in f["reference/weights"]}}
    reference.update(backend=_attr(f["reference"], "backend", "/reference"),
                     **{k: _number(f["reference"], k, "/reference") for k in ("run_s", "ms_per_step")})
    return reference


def _check_readout(readout: dict, steps: int) -> None:
    """Every operation's kind is one of the schedule's, and its readout steps lie in the run's ``steps``
    (``forgotten_step`` -1: none); else a one-line DataError."""
    unknown = [k for k in readout["kinds"] if k not in OPERATION_KINDS]
    if unknown:
        raise DataError(f"/readout: operation kind {unknown[0]!r} is not one of {OPERATION_KINDS}")
    for key, low in (("start_ms", 0), ("cue_step", 0), ("content_step", 0), ("forgotten_step", -1)):
        outside = readout[key][(readout[key] < low) | (readout[key] >= steps)]
        if outside.size:
            raise DataError(f"/readout/{key}: step {int(outside[0])} outside {low}..{steps - 1} (the run's steps)")


def _known(pops: dict, source: str, target: str, where: str) -> None:
    for p in (source, target):
        if p not in pops:
            raise DataError(f"{where}: unknown population {p!r}")
    if pops[target]["input"]:
        raise DataError(f"{where}: targets the input {target!r}")


def _active(raster: np.ndarray, step: int) -> tuple[int, ...]:
    return tuple(np.flatnonzero(raster[step]).tolist()) if 0 <= step < len(raster) else ()


def decode(graph: CA3Graph, out_cue: np.ndarray, out_content: np.ndarray) -> list[dict]:
    """Every operation's output from rasters ``out_cue [T, C]``, ``out_content [T, M]`` of the graph's whole run at
    the stored readout steps (the steps :func:`spikecl.memory.schedule.decode` reads): cues, bits, forgotten bits
    and the answer. Rasters of other shapes (cut short, swapped) are a one-line ShapeError."""
    out_cue, out_content = np.asarray(out_cue), np.asarray(out_content)
    for name, raster, width in (("out_cue", out_cue, graph.n_cues), ("out_content", out_content, graph.n_bits)):
        if raster.ndim != 2 or len(raster) < graph.steps or raster.shape[1] != width:
            raise ShapeError(f"{name} has shape {raster.shape}; expected [T >= {graph.steps}, {width}], the graph's "
                             "whole run")
    r, out = graph.readout, []
    for k, kind in enumerate(r["kinds"]):
        cues, bits = _active(out_cue, int(r["cue_step"][k])), _active(out_content, int(r["content_step"][k]))
        forgotten = _active(out_content, int(r["forgotten_step"][k])) if r["forgotten_step"][k] >= 0 else ()
        out.append({"kind": kind, "start_ms": int(r["start_ms"][k]), "cues": cues, "bits": bits,
                    "forgotten": forgotten, "answer": cues if kind == "recall_content" else bits})
    return out


def recall_accuracy(graph: CA3Graph, results: list[dict]) -> float:
    """Share of the recall operations whose answer equals the ideal memory's (``expected``); nan without recalls."""
    hits = [tuple(res["answer"]) == tuple(exp) for res, exp in zip(results, graph.readout["expected"])
            if res["kind"] in RECALLS]
    return float(np.mean(hits)) if hits else float("nan")


def spike_match(reference: dict, spikes: dict) -> dict[str, float]:
    """Per population: share of the (step, neuron) events of either raster that both contain (1.0: identical;
    also 1.0 when both are silent)."""
    out = {}
    for pop, ref in reference.items():
        if pop.startswith("IN") or pop not in spikes:
            continue
        both, either = np.sum(ref & spikes[pop]), np.sum(ref | spikes[pop])
        out[pop] = float(both / either) if either else 1.0
    return out


def run_lava(path: Path, timeout_s: float = 900, stock_engine: bool = False, cells: str = "custom",
             learning: str = "float") -> dict:
    """Run ``python -m spikecl_lava.learning.ca3`` in ``.venv-lava``; returns the spikes, final plastic weights
    ([pre, post], nA) and timing attrs of its output file. ``stock_engine``: Lava's stock learning order (see
    :mod:`spikecl_lava.learning.ca3_stdp`); ``cells``: "custom" (spikecl's cell model) or "lif" (Lava's
    ``LIFRefractory``); ``learning``: "float" or "fixed" (Lava's fixed-point engine, see
    :mod:`spikecl_lava.learning.ca3_fixed`)."""
    from spikecl.export.lava_client import lava_python, run_side, side_output

    with tempfile.TemporaryDirectory(prefix="spikecl-ca3-") as tmp:
        out_path = Path(tmp) / "run.h5"
        cmd = [str(lava_python()), "-m", "spikecl_lava.learning.ca3", str(path), "-o", str(out_path)] + \
            (["--stock-engine"] if stock_engine else []) + ["--cells", cells, "--learning", learning]
        run_side(cmd, "the Lava CA3 run", timeout_s, "export a shorter experiment (fewer cues or operations)",
                 tmpdir=Path(tmp))
        return side_output(out_path, "the Lava CA3 run", lambda f: {
            **f.attrs, "spikes": {p: f[f"spikes/{p}"][()].astype(bool) for p in f["spikes"]},
            "weights": {k: f[f"weights/{k}"][()] for k in f["weights"]}})


def check_engine_options(cells: str, stock_engine: bool, learning: str) -> None:
    """``--learning fixed`` runs spikecl's custom cells in Lava's own stock order: with ``--cells lif`` or
    ``--stock-engine`` it is a one-line ConfigError."""
    if learning == "fixed" and (cells == "lif" or stock_engine):
        raise ConfigError(f"--learning fixed: {'--cells lif' if cells == 'lif' else '--stock-engine'} does not apply "
                          "(Lava's fixed-point engine runs with spikecl's custom cells, in its own stock order)")


def _exact(value: float) -> str:
    """``value`` as ``:g`` shows it where that is exact, else every digit (6.000001 is not shown as 6)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def check_fixed_rules(graph: CA3Graph) -> None:
    """``--learning fixed`` maps ``w_max_nA`` onto the 8-bit weight and A+ onto the 7-bit trace's full impulse, and
    its same-step correction takes that full impulse off: it needs ``w_max_nA > 0`` and ``a_plus_nA = w_max_nA``
    (the published rule). Its weights are excitatory units from 0, a trace impulse holds at most w_max and traces
    decay by whole steps, so it also needs ``w_min_nA = 0``, ``a_minus_nA <= w_max_nA`` and whole-ms time
    constants. Else a one-line ConfigError before Lava starts (the Lava side refuses the same, later). k-of-n
    matching (``match_k`` >= 2) is refused too: its content -> cue gain counts fully potentiated bits of w_max, which
    the fixed rule's saturated traces leave short (a fresh learn ends near 4.3 of 6 nA), so k bits stay below
    threshold and recall by content goes silent (30 of 38 answers on a 6 x 10 trial)."""
    match_k = graph.params.get("match_k", 0)
    if isinstance(match_k, int) and match_k >= 2:
        raise ConfigError(f"--learning fixed: the graph recalls by {match_k}-of-n matching (match_k = {match_k}), "
                          "whose gain counts fully potentiated bits the fixed-point rule does not reach (a learned "
                          "synapse ends near 4.3 of 6 nA); use --learning float")
    for name, (_, _, rule, _) in graph.plastic.items():
        if not rule["w_max_nA"] > 0 or rule["a_plus_nA"] != rule["w_max_nA"]:
            raise ConfigError(f"--learning fixed: {name} has a_plus_nA = {_exact(rule['a_plus_nA'])} and w_max_nA = "
                              f"{_exact(rule['w_max_nA'])}; the fixed-point rule needs a_plus_nA = w_max_nA > 0 (its "
                              "same-step correction removes one full trace impulse); use --learning float")
        taus = [key for key in ("tau_plus_ms", "tau_minus_ms") if not float(rule[key]).is_integer()]
        problem = (f"w_min_nA = {_exact(rule['w_min_nA'])}; its 8-bit weights are excitatory units from 0"
                   if rule["w_min_nA"] != 0
                   else f"a_minus_nA = {_exact(rule['a_minus_nA'])} above w_max_nA = {_exact(rule['w_max_nA'])}; a "
                        "7-bit trace impulse holds at most w_max" if rule["a_minus_nA"] > rule["w_max_nA"]
                   else f"{taus[0]} = {_exact(rule[taus[0]])}; its traces decay by whole 1 ms steps" if taus else None)
        if problem:
            raise ConfigError(f"--learning fixed: {name} has {problem} (the fixed-point rule); use --learning float")


def deploy(path: str | Path, backend: str = "lava-sim", samples: int = 0, data_dir: str | None = None,
           stock_engine: bool = False, cells: str = "custom", learning: str = "float") -> dict:
    """Run a CA3 learning graph (``samples``, ``data_dir``: unused, the schedule is in the file). ``reference``:
    decode the stored torch-stepper run; ``lava-sim``: run Lava's floating-point simulation (options: see
    :func:`run_lava`) and compare."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    check_engine_options(cells, stock_engine, learning)
    graph = read_ca3_graph(path)
    if learning == "fixed":
        check_fixed_rules(graph)
    ref = graph.reference
    if not ref.get("spikes") or any(p not in ref["spikes"] for p in OUTPUTS):
        raise DataError(f"{path}: no reference run stored (write the file with write_ca3_graph)")
    ref_results = decode(graph, ref["spikes"]["OUTcue"], ref["spikes"]["OUTcont"])
    report = {"n_cues": graph.n_cues, "n_bits": graph.n_bits, "steps": graph.steps,
              "operations": len(graph.readout["kinds"]), "reference_answers": [r["answer"] for r in ref_results],
              "reference_recall_accuracy": recall_accuracy(graph, ref_results),
              "reference_ms_per_step": float(ref["ms_per_step"]), "expected": graph.readout["expected"]}
    if backend == "reference":
        return {**report, "answers": report["reference_answers"], "recall_accuracy":
                report["reference_recall_accuracy"]}
    if cells not in CELLS or learning not in LEARNING:
        raise ConfigError(f"cells {cells!r}, learning {learning!r}: cells one of {', '.join(CELLS)}, learning one "
                          f"of {', '.join(LEARNING)}")
    lava = run_lava(graph.path, stock_engine=stock_engine, cells=cells, learning=learning)
    results = decode(graph, lava["spikes"]["OUTcue"], lava["spikes"]["OUTcont"])
    match = spike_match(ref["spikes"], lava["spikes"])
    weight_error = {k: float(np.max(np.abs(lava["weights"][k] - w))) for k, w in ref["weights"].items()}
    report.update(
        answers=[r["answer"] for r in results], answers_equal=[r == q for r, q in zip(results, ref_results)],
        recall_accuracy=recall_accuracy(graph, results), spike_match=match,
        spike_match_all=float(np.mean(list(match.values()))), weight_max_abs_error_nA=weight_error,
        spikes=lava["spikes"], weights=lava["weights"],
        **{k: float(lava[k]) for k in ("build_s", "start_s", "run_s", "ms_per_step")},
        lava_backend=str(lava["backend"]), stock_engine=bool(stock_engine), cells=cells, learning=learning)
    return report


def print_report(report: dict, out=None) -> None:
    """Print a deploy report of a CA3 learning graph."""
    import sys

    out = out or sys.stdout
    print(f"CA3 memory C={report['n_cues']} M={report['n_bits']}: {report['operations']} operations, "
          f"{report['steps']} steps, backend {report['backend']}", file=out)
    answers = report["answers"]
    for k, (answer, expected) in enumerate(zip(answers, report["expected"])):
        ref = report["reference_answers"][k]
        print(f"  op {k}: answer {list(answer)}  expected {list(expected)}  reference {list(ref)}", file=out)
    print(f"recall accuracy {report['recall_accuracy']:.3f} (reference {report['reference_recall_accuracy']:.3f})",
          file=out)
    if "spike_match" in report:
        equal = sum(report["answers_equal"])
        print(f"answers equal to the reference: {equal}/{len(report['answers_equal'])}", file=out)
        print("spike match vs reference: " + ", ".join(f"{p} {v:.1%}" for p, v in report["spike_match"].items()),
              file=out)
        print("plastic weights, max |Lava - reference| (nA): " + ", ".join(
            f"{k} {v:.3g}" for k, v in report["weight_max_abs_error_nA"].items()), file=out)
        engine = ", Lava's stock learning order" if report["stock_engine"] else ""
        print(f"Lava ({report['lava_backend']}; cells {report['cells']}, learning {report['learning']}{engine}): "
              f"{report['ms_per_step']:.2f} ms/step, build {report['build_s']:.2f} s, "
              f"compile + first step {report['start_s']:.2f} s; torch stepper "
              f"{report['reference_ms_per_step']:.3f} ms/step", file=out)
