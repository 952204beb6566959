"""Reader side of spikecl's NIR files: run one in snnTorch or Norse and decode it as spikecl does (needs torch).

The exact calls (see :mod:`spikecl.export.nir_io` for why Norse needs ``dt``)::

    snntorch.import_nir.import_from_nir(graph)              # snnTorch 1.0 (imports at its fixed dt = 1e-4)
    norse.torch.from_nir(graph, dt=graph.metadata["dt"])    # Norse 1.1 (its default dt = 1e-3 is wrong here)

Both step one time step per call; the logits are the mean over the steps of node ``readout``'s membrane.
"""

from __future__ import annotations

import contextlib
import io
from typing import NamedTuple

import numpy as np

from spikecl.environment import installed_version
from spikecl.errors import ConfigError, DependencyError, NumericalError, ShapeError, require
from spikecl.export.float_model import select_heads
from spikecl.export.nir_io import graph_metadata

READERS = ("snntorch", "norse")


class NirRun(NamedTuple):
    """Spikes of each hidden node ``{name: [T, B, n]}`` and the readout membrane ``[T, B, n_readout]``."""

    spikes: dict
    readout_mem: np.ndarray


def import_graph(graph, reader: str):
    """The spikecl graph (checked first, :func:`graph_metadata`: a damaged one could make a reader loop for ever) as
    a torch module of ``reader`` ("snntorch" or "norse"), with the time step Norse needs."""
    return _imported(graph, reader, _checked(graph, reader))


def _checked(graph, reader: str) -> dict:
    """``graph``'s metadata (:func:`graph_metadata`, which checks the graph) once ``reader`` is one of
    :data:`READERS`: what must hold before a reader imports the graph."""
    if reader not in READERS:
        raise ConfigError(f"NIR reader {reader!r}: choose one of {', '.join(READERS)}")
    return graph_metadata(graph)


def _imported(graph, reader: str, meta: dict):
    """:func:`import_graph` of a graph whose metadata ``meta`` :func:`graph_metadata` has checked."""
    if reader == "snntorch":
        require("nirtorch", "export")
        import_nir = require("snntorch.import_nir", "export")
        if (found := installed_version("snntorch")) and found.startswith("0."):        # 0.9: LIF without threshold
            raise DependencyError(f"importing NIR needs snntorch >= 1.0 (found {found}, whose reader builds neurons "
                                  "without a threshold); install it with: pip install 'spikecl[export]'")
        with contextlib.redirect_stdout(io.StringIO()):    # snnTorch prints its graph rewriting
            return import_nir.import_from_nir(graph)
    norse = require("norse.torch", "export", install="pip install --no-deps norse==1.1.0")
    return norse.from_nir(graph, dt=meta["dt"])


def run_nir(graph, x_seq: np.ndarray, reader: str) -> NirRun:
    """Import ``graph`` afresh in ``reader`` and step it over inputs ``x_seq`` ``[T, B, n_inputs]`` (T: the graph's
    ``num_steps``; finite values; a one-line ShapeError or NumericalError otherwise)."""
    torch = require("torch", "torch")
    meta = _checked(graph, reader)
    x = _checked_inputs(graph, x_seq, meta["num_steps"])
    module, readout = _imported(graph, reader, meta), meta["readout"]
    hidden = [name for name in graph.nodes if name.startswith("lif")]
    spikes, mems = {name: [] for name in hidden}, []
    x = torch.as_tensor(x, dtype=torch.float32)
    state, outputs = None, {}
    if reader == "snntorch":      # snnTorch keeps each layer's state in the module; spikes come from hooks
        for name in hidden:
            getattr(module, name).register_forward_hook(lambda _m, _a, out, name=name: outputs.update({name: out}))
    with torch.no_grad():
        for x_t in x:
            if reader == "snntorch":
                module(x_t)
                mem = getattr(module, readout).mem
            else:
                _, state = module(x_t, state)
                outputs = state.cache
                mem = state.state[readout][0][1].v          # (synapse state, membrane state) of the CubaLIF
            for name in hidden:
                spikes[name].append(outputs[name].numpy().copy())
            mems.append(mem.numpy().copy())
    return NirRun({k: np.stack(v) for k, v in spikes.items()}, np.stack(mems))


def _checked_inputs(graph, x_seq, num_steps: int) -> np.ndarray:
    """``x_seq`` as a float array ``[num_steps, B, n_inputs]`` of finite values (``n_inputs``: the graph's input
    node), else a one-line :class:`ShapeError` or :class:`NumericalError`."""
    try:
        x = np.asarray(x_seq, dtype=np.float64)
    except (TypeError, ValueError):
        raise ShapeError(f"run_nir: inputs must be a numeric array [T, B, n_inputs], got {type(x_seq).__name__}") \
            from None
    node = graph.nodes.get("input")
    n_inputs = int(np.prod(next(iter(node.input_type.values())))) if node is not None else None
    if x.ndim != 3 or x.shape[0] != num_steps or (n_inputs is not None and x.shape[2] != n_inputs) or not x.shape[1]:
        raise ShapeError(f"run_nir: inputs have shape {x.shape}; expected [T, B, n_inputs] = [{num_steps}, B >= 1, "
                         f"{n_inputs}] (the graph's num_steps and input size)")
    if not np.all(np.isfinite(x)):
        raise NumericalError("run_nir: inputs contain NaN or infinity")
    return x


def nir_logits(graph, readout_mem: np.ndarray, heads: np.ndarray | None = None) -> np.ndarray:
    """Logits ``[B, n_outputs]``: the readout membrane ``[T, B, n]`` averaged over steps, each sample's head (outputs
    the training stream never made active ``-inf``, as spikecl decodes them)."""
    meta = graph_metadata(graph)
    mem = np.asarray(readout_mem)
    if mem.ndim != 3:
        raise ShapeError(f"readout membranes have shape {mem.shape}; expected [T, B, n_readout]")
    return select_heads(mem.mean(axis=0), meta["n_heads"], meta["n_outputs"], heads, meta.get("config"))
