"""The float network as a NIR graph (Neuromorphic Intermediate Representation, ``nir`` 1.0.8), with metadata.

Nodes: ``input`` → (``fc<i>`` Affine or Linear → ``lif<i>`` CubaLIF) per hidden layer → ``fc_out`` →
``readout`` CubaLIF → ``output``. Each population is NIR's current-based LIF

    tau_syn dI/dt = -I + w_in S,    tau_mem dv/dt = (v_leak - v) + r I,    spike when v > v_threshold, v → v_reset

with ``tau_syn = dt``, ``tau_mem = dt / (1 - beta)``, ``r = tau_mem / dt``, ``w_in = 1``, ``v_leak = v_reset = 0``.
One forward-Euler step of ``dt`` (current first, then membrane, as Norse, snnTorch and Loihi's CUBA step) is
``I = W x + b`` and ``v = beta v + I``: snnTorch's ``Leaky`` exactly. ``dt`` (:data:`DT`, in the unit of the time
constants, snnTorch's fixed import step) is in the graph metadata; Norse must integrate with it
(``from_nir(graph, dt=DT)``). NIR has no reset-mode field and readers reset to ``v_reset``, so a ``subtract``
network is refused. The readout (a non-resetting integrator) never reaches its threshold
(:data:`READOUT_THRESHOLD`); logits are its membrane averaged over the steps (metadata ``readout_rule``).

The file is ``nir.write``'s, plus one root attribute (:data:`CRC_AT`): the CRC-32 of its contents, which
:func:`read_nir` checks. ``nir.read`` reads only the ``node`` group, so nir, Norse and snnTorch read the graph as
before.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from spikecl.atomic import atomic_write
from spikecl.errors import ExportError, ResultsError, check_type, require
from spikecl.export.float_model import tasks_trained
from spikecl.export.netx import MAX_COUNT, MAX_WEIGHTS, stream_heads
from spikecl.export.spec import LayerSpec, NetworkSpec, config_json
from spikecl.hdf5_guard import check_heaps
from spikecl.integrity import content_crc, crc_intact
from spikecl.paths import is_dir, is_file, missing

DT = 1e-4
READOUT_THRESHOLD = 1e9
READOUT_RULE = ("logits = mean over the num_steps steps of the membrane v of node 'readout' (it never spikes); "
                "readout neurons are n_heads blocks of n_outputs, a sample is decoded from its task's block")
ENCODERS = {"direct": "each sample's features x in [0, 1] as the input at every one of the num_steps steps",
            "latency": "one spike per feature at step round((1 - x)(num_steps - 1)), none for x = 0",
            "poisson": "a spike per feature and step with probability x"}

#: the root attribute holding the CRC-32 of a NIR file's contents (:func:`spikecl.integrity.content_crc`); nir's
#: reader reads only the ``node`` group
CRC_AT = ("/", "spikecl_crc32")


def _cuba_lif(layer: LayerSpec, threshold: float):
    """NIR CubaLIF whose Euler step of :data:`DT` is ``v = beta v + input`` (see the module docstring)."""
    nir = require("nir", "export")
    if not 0.0 <= layer.beta < 1.0:
        raise ExportError(f"layer {layer.name}: beta {layer.beta:g} has no finite NIR time constant "
                          "(needs 0 <= beta < 1)")
    n = layer.n_out
    tau_mem = np.full(n, DT / (1.0 - layer.beta))
    return nir.CubaLIF(tau_syn=np.full(n, DT), tau_mem=tau_mem, r=tau_mem / DT, v_leak=np.zeros(n),
                       v_threshold=np.full(n, threshold), v_reset=np.zeros(n), w_in=np.ones(n))


def _synapse(layer: LayerSpec):
    nir = require("nir", "export")
    weight = layer.weight.astype(np.float32)
    if layer.bias is None:
        return nir.Linear(weight=weight)
    return nir.Affine(weight=weight, bias=layer.bias.astype(np.float32))


def nir_metadata(spec: NetworkSpec) -> dict:
    """The graph metadata spikecl writes: time step, steps, input encoding, readout rule, version, config."""
    from spikecl import __version__

    return {"dt": DT, "num_steps": spec.num_steps, "encoder": spec.encoder,
            "encoder_rule": ENCODERS.get(spec.encoder, spec.encoder), "readout": "readout",
            "readout_rule": READOUT_RULE, "n_outputs": spec.n_outputs, "n_heads": spec.n_heads,
            "spikecl_version": __version__, "config": config_json(spec)}


def to_nir(spec: NetworkSpec):
    """The NIR graph of ``spec`` with :func:`nir_metadata` (hidden layers must reset to zero, as every layer of a
    one-step network does)."""
    nir = require("nir", "export")
    nodes = {"input": nir.Input(input_type=np.array([spec.n_inputs]))}
    edges = []
    previous = "input"
    for i, layer in enumerate(spec.hidden_as_run):
        if layer.conv is not None:
            raise ExportError(f"layer {layer.name}: NIR export covers fully connected networks; export CNNs as netx")
        if layer.reset != "zero":
            raise ExportError(f"layer {layer.name}: reset {layer.reset!r} has no NIR equivalent (NIR readers reset "
                              "to zero); train with network.reset = \"zero\"")
        nodes[f"fc{i}"], nodes[f"lif{i}"] = _synapse(layer), _cuba_lif(layer, layer.threshold)
        edges += [(previous, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        previous = f"lif{i}"
    nodes["fc_out"], nodes["readout"] = _synapse(spec.readout), _cuba_lif(spec.readout, READOUT_THRESHOLD)
    nodes["output"] = nir.Output(output_type=np.array([spec.readout.n_out]))
    edges += [(previous, "fc_out"), ("fc_out", "readout"), ("readout", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=nir_metadata(spec))


def write_nir(path: str | Path, spec: NetworkSpec, overwrite: bool = False) -> Path:
    """Write ``spec`` as a NIR HDF5 file with the CRC-32 of its contents (:data:`CRC_AT`), atomically (the graph is
    built before anything is written)."""
    import h5py

    nir = require("nir", "export")
    check_type(spec, NetworkSpec, "write_nir", "a NIR graph is written from the float network, before quantize")
    graph = to_nir(spec)

    def write(tmp: Path) -> None:                # built in memory, as write_hdf5_image does: a full disk is one
        image = io.BytesIO()                     # plain OSError, never libhdf5's half-flushed chunks
        nir.write(image, graph)
        with h5py.File(image, "r+") as f:
            f.attrs[CRC_AT[1]] = content_crc(f, CRC_AT)
        tmp.write_bytes(image.getbuffer())

    return atomic_write(path, write, overwrite=overwrite)


def read_nir(path: str | Path):
    """Read a NIR file; a missing or corrupt file, one declaring an array of more than :data:`MAX_WEIGHTS`
    values (a small untrusted file could otherwise make the reader allocate gigabytes), a spikecl file whose
    metadata :func:`graph_metadata` refuses, or one whose contents fail the CRC-32 spikecl wrote with them
    (:data:`CRC_AT`) is a :class:`ResultsError` naming the file. A graph written by another tool (none of spikecl's
    metadata) is returned as read; without the CRC (another tool's file, or spikecl's before it) nothing tells
    a changed byte."""
    nir = require("nir", "export")
    path = Path(path)
    if is_dir(path, ResultsError):
        raise ResultsError(f"{path} is a folder; name a NIR file")
    if not is_file(path, ResultsError):
        raise missing(path, f"NIR file not found: {path}", ResultsError)
    check_heaps(path, ResultsError)
    try:
        _check_sizes(path)
        intact = _contents_intact(path)
        graph = nir.read(path)
    except ResultsError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError, MemoryError,
            UnicodeDecodeError, AssertionError) as exc:      # h5py on damaged bytes; nir asserts on unknown nodes
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultsError(f"{path} is not a readable NIR file ({reason})") from None
    if set(dict(graph.metadata or {})) & set(SPIKECL_ONLY_KEYS):
        try:
            graph_metadata(graph)
        except ResultsError as exc:
            raise ResultsError(f"{path}: {exc}") from None
    if intact is False:                                   # after the checks that name a part: they say more
        raise ResultsError(f"{path} is damaged or edited: its contents changed since spikecl wrote it (they fail "
                           "their CRC-32); export the network again")
    return graph


#: the most values a NIR graph's datasets may declare together (2 GiB of float64)
MAX_GRAPH_VALUES = 2 * MAX_WEIGHTS


def _check_sizes(path: Path) -> None:
    """The datasets of the HDF5 file ``path`` hold at most :data:`MAX_WEIGHTS` values each and
    :data:`MAX_GRAPH_VALUES` together, read from their headers (NIR compresses its datasets, so their size on disk
    bounds nothing: an identity matrix of 4 million weights takes 89 KB)."""
    import h5py

    total = 0

    def check(name: str, item) -> None:
        nonlocal total
        if not isinstance(item, h5py.Dataset):
            return
        size = int(np.prod(item.shape, dtype=object)) if item.shape else 1
        if size > MAX_WEIGHTS:
            raise ResultsError(f"{path}: {name} declares {item.shape}, more than {MAX_WEIGHTS} values; the file is "
                               "damaged or not a network")
        total += size
        if total > MAX_GRAPH_VALUES:
            raise ResultsError(f"{path}: its datasets declare more than {MAX_GRAPH_VALUES} values together (at "
                               f"{name}); the file is damaged or not a network")

    with h5py.File(path, "r") as f:
        f.visititems(check)


def _contents_intact(path: Path) -> bool | None:
    """Whether the contents of the NIR file ``path`` (sizes checked) match the CRC-32 spikecl wrote with them; None
    for a file without one."""
    import h5py

    with h5py.File(path, "r") as f:
        return crc_intact(f, CRC_AT)


#: the metadata keys every NIR graph spikecl writes holds
SPIKECL_KEYS = ("dt", "num_steps", "encoder", "readout", "n_outputs", "n_heads")
#: those of them another tool's graph is unlikely to hold (``dt`` and ``num_steps`` are common words): a graph
#: holding any is read as spikecl's and checked
SPIKECL_ONLY_KEYS = ("encoder", "readout", "n_outputs", "n_heads")


def graph_metadata(graph) -> dict:
    """A spikecl NIR graph's metadata as plain Python values (numpy scalars as int/float, ``config`` parsed).

    A graph without spikecl's keys (written elsewhere) is a :class:`ResultsError`.
    """
    import json

    meta = {k: v.item() if isinstance(v, np.generic) else v for k, v in dict(graph.metadata or {}).items()}
    missing = [k for k in SPIKECL_KEYS if k not in meta]
    if missing:
        raise ResultsError(f"the NIR graph has no spikecl metadata ({', '.join(missing)} missing)")
    dt = meta["dt"]
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt) and dt > 0):
        raise ResultsError(f"the NIR graph's metadata dt = {dt!r} must be a positive number")
    for key in ("num_steps", "n_outputs", "n_heads"):
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
            raise ResultsError(f"the NIR graph's metadata {key} = {value!r} must be an integer in 1..{MAX_COUNT}")
    if not isinstance(meta["encoder"], str) or meta["encoder"] not in ENCODERS:
        raise ResultsError(f"the NIR graph's metadata encoder = {meta['encoder']!r} is not one of "
                           f"{', '.join(ENCODERS)}")
    if isinstance(meta.get("config"), str):
        try:
            meta["config"] = json.loads(meta["config"])
        except ValueError:
            meta["config"] = None
        if not isinstance(meta["config"], dict):
            raise ResultsError("the NIR graph's metadata config is not a JSON table; the file is damaged")
        tasks_trained(meta["config"])
        heads = stream_heads(meta["config"])
        if heads is not None and heads != meta["n_heads"]:
            raise ResultsError(f"the NIR graph's metadata n_heads = {meta['n_heads']}, but the training stream in its "
                               f"config needs {heads} (task scenario: one head per task, else one)")
    _check_nodes(graph, meta["readout"], dt)
    _check_chain(graph, meta["readout"])
    size = np.asarray(dict(graph.nodes)[meta["readout"]].tau_mem).size
    if size != meta["n_heads"] * meta["n_outputs"]:
        raise ResultsError(f"the NIR graph's metadata n_heads = {meta['n_heads']} x n_outputs = {meta['n_outputs']} "
                           f"does not match the readout's {size} neurons")
    return meta


#: node parameters that are numbers (weights, time constants, conv geometry): anything else is a damaged file
NUMERIC_FIELDS = ("weight", "bias", "tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in", "stride",
                  "dilation", "groups")

#: CubaLIF parameters that must be positive (time constants in seconds, the firing threshold, the resistance and
#: input weight that scale the current)
POSITIVE_LIF = ("tau_syn", "tau_mem", "v_threshold", "r", "w_in")


def _check_chain(graph, readout: str) -> None:
    """The graph's edges chain its Input node through every node once to its Output node, ending ``readout →
    output``, as :func:`to_nir` writes them: a one-line :class:`ResultsError` otherwise (a missing edge made
    snnTorch's importer loop for ever and Norse guess an input)."""
    nodes = dict(graph.nodes)
    ends = {kind: [name for name, node in nodes.items() if type(node).__name__ == kind] for kind in ("Input", "Output")}
    following: dict[str, str] = {}
    problem = next((f"{len(names)} {kind.lower()} nodes{': ' * bool(names)}{', '.join(names[:4])}"
                    for kind, names in ends.items() if len(names) != 1), None)
    for edge in [] if problem else graph.edges:
        a, b = (str(end) for end in edge)
        unknown = next((end for end in (a, b) if end not in nodes), None)
        problem = (f"edge {a} -> {b} names no node {unknown!r}" if unknown is not None else
                   f"two edges leave {a}" if a in following else
                   f"two edges reach {b}" if b in following.values() else None)
        if problem:
            break
        following[a] = b
    chain = [] if problem else ends["Input"]
    while not problem and chain[-1] in following:
        chain.append(following[chain[-1]])
        if chain[-1] in chain[:-1]:
            problem = f"the edges loop at {chain[-1]}"
    if not problem and (len(chain) != len(nodes) or chain[-2:] != [readout, ends["Output"][0]]):
        unreached = [name for name in nodes if name not in chain]
        problem = (f"{', '.join(unreached[:3])} not reached from the input" if unreached else
                   f"the chain ends {' -> '.join(chain[-2:])}, not {readout} -> output")
    if problem:
        raise ResultsError(f"the NIR graph's edges do not chain input -> ... -> {readout} -> output through every "
                           f"node once, as spikecl writes them ({problem})")


#: the NIR node types spikecl writes (:func:`write_nir`)
WRITTEN_NODES = ("Input", "Output", "Linear", "Affine", "CubaLIF")


def _check_nodes(graph, readout, dt: float) -> None:
    """Every node's numeric parameters finite, each CubaLIF's time constants, threshold, resistance and input weight
    positive and its ``tau_syn`` the metadata's time step ``dt`` (the Euler step spikecl writes: Norse steps by
    ``dt`` and diverged otherwise), and ``readout`` the name of a CubaLIF node: a one-line :class:`ResultsError`
    otherwise (a NaN would give NaN logits and a silent class 0)."""
    nodes = dict(graph.nodes)
    other = next(((name, type(node).__name__) for name, node in nodes.items()
                  if type(node).__name__ not in WRITTEN_NODES), None)
    if other is not None:
        raise ResultsError(f"the NIR graph's node {other[0]!r} is a {other[1]}, which spikecl does not write (its "
                           f"neurons are CubaLIF; its earlier files' NIR LIF ran nearly silent in Norse): export the "
                           "network again")
    if not isinstance(readout, str) or type(nodes.get(readout)).__name__ != "CubaLIF":
        raise ResultsError(f"the NIR graph's metadata readout = {readout!r} is not one of its CubaLIF nodes")
    for name, node in nodes.items():
        for key, value in vars(node).items():
            if key in NUMERIC_FIELDS and not (isinstance(value, (np.ndarray, float, int, np.number))
                                              and np.asarray(value).dtype.kind in "biuf"):
                raise ResultsError(f"the NIR graph's node {name!r}: {key} must be numbers, got "
                                   f"{type(value).__name__} {str(value)[:40]!r}")
            array = np.asarray(value) if isinstance(value, (np.ndarray, float, int)) else None
            if array is None or array.dtype.kind not in "biuf":
                continue
            if not np.all(np.isfinite(array)):
                raise ResultsError(f"the NIR graph's node {name!r}: {key} holds NaN or infinity")
            if type(node).__name__ == "CubaLIF" and key in POSITIVE_LIF and not np.all(array > 0):
                raise ResultsError(f"the NIR graph's node {name!r}: {key} must be positive (min {array.min():g})")
            if type(node).__name__ == "CubaLIF" and key == "tau_syn" and not np.allclose(array, dt, rtol=1e-6, atol=0):
                raise ResultsError(f"the NIR graph's node {name!r}: tau_syn {array.flat[0]:g} is not the metadata's "
                                   f"dt = {dt:g}, the step spikecl writes (v = beta v + input per step)")
