"""CUDA graphs of a trainer's task-loss pass: the forward and backward pass of a batch captured once and replayed.

On a GPU a small network's training step is launch-bound: the fused MLP step at T = 4 dispatches about 380
operators, each a kernel launch of a few microseconds, for about 3 ms of mostly idle device. A CUDA graph records
those launches once and replays them as one. :class:`GraphedPasses` captures the task loss's forward and backward
pass (the part of :meth:`~spikecl.snn.trainers.BPTTTrainer.train_encoded` between ``zero_grad`` and the penalty) for
each new input signature and replays it for every later batch of that signature: the batch is copied into the graph's
input tensors, the graph runs, and every parameter's ``grad`` is pointed at the gradient the graph wrote. The
penalty, the strategies' hooks, the finiteness checks and the optimiser then run as they do without a graph.

A signature is everything that makes the launches differ: the input's shape, dtype and layout (a direct-encoded
input repeats one tensor over time, a stride-0 view, and is kept so), whether heads and an output mask are given,
where the parameters and persistent buffers are (``net.to(...)`` moves them: a graph reads and writes them in
place; snnTorch's membranes, non-persistent buffers it replaces at every pass, are left out) and which parameters
require gradients, whether activity is recorded, and the projector each layer was handed for the pass
(``weight_projection``, set around it by :meth:`~spikecl.snn.networks.SpikingNetwork.projecting`; held so that it
lives as long as its graph; a graph whose projector no layer is handed any more is dropped at the next capture).
Python that a replay does not run is redone after it: a projector the captured pass went through is marked ``used``
again. A projector must compute its result inside a pass being
captured, not return one it kept from an earlier call (spikecl's
:class:`~spikecl.continual.projection.Projector` checks ``torch.cuda.is_current_stream_capturing()``): a kept
result would be read from its old memory at every replay. Before a capture the pass runs
:data:`WARMUP` times on a side stream, as CUDA asks, with the network's buffers (batch-norm statistics) restored
afterwards, so a graphed step leaves the same state as an eager one; the capture runs on that same stream (a second
one cost a fixed 64 MiB more on an H200, ``benchmarks/cuda_graph_memory.py``).

What a replayed pass returns and records (loss, gradients, the recorded :class:`~spikecl.snn.activity.Activity`)
lives in the graph's memory and is overwritten by the next replay, as an eager pass's recording is replaced by the
next pass's.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Callable

import torch

from spikecl.snn.activity import Activity
from spikecl.snn.networks import SpikingNetwork

#: eager passes on the capture's side stream before it (CUDA's lazy initialisation, cuBLAS workspaces)
WARMUP = 3
#: graphs kept at once (each holds its pass's activations); the least recently replayed one goes first
MAX_GRAPHS = 4

Pass = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", "torch.Tensor | None"], torch.Tensor]


def _layout(x: torch.Tensor | None) -> tuple | None:
    """What of ``x`` a graph depends on: shape, dtype, device and whether its time axis repeats one step."""
    if x is None:
        return None
    return tuple(x.shape), x.dtype, x.device, x.dim() > 1 and x.shape[0] > 1 and x.stride(0) == 0


class CapturedPass:
    """One captured task-loss pass for the input signature of its first batch; :meth:`replay` runs it on another."""

    def __init__(self, net: SpikingNetwork, run: Pass, x_seq: torch.Tensor, y: torch.Tensor,
                 heads: torch.Tensor | None, mask: torch.Tensor | None, record: bool) -> None:
        self.net = net
        repeated = _layout(x_seq)[3]
        self._x = (x_seq[0] if repeated else x_seq).clone()
        self.x_seq = self._x.expand_as(x_seq) if repeated else self._x
        self.y = y.clone()
        self.heads = None if heads is None else heads.clone()
        self.mask = None if mask is None else mask.clone()
        self.params = [p for p in net.parameters() if p.requires_grad]
        with torch.cuda.device(self._x.device):
            stream = torch.cuda.Stream(self._x.device)     # warm-up and capture on one stream: one cuBLAS workspace
            self._warm_up(run, record, stream)
            for p in self.params:
                p.grad = None                              # the graph allocates every gradient it writes
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=stream):
                with net.recording() if record else contextlib.nullcontext() as activity:
                    self.loss = run(self.x_seq, self.y, self.heads, self.mask)
        self.activity: Activity | None = activity
        self.grads = [p.grad for p in self.params]
        self.projectors = [layer.weight_projection for layer in net.layers]      # alive while the graph is
        self.used = [p for p in self.projectors if p is not None and p.used]

    def handed(self, projectors: list) -> bool:
        """Whether every projector this pass was captured with is among ``projectors`` (those the layers hold
        now); a graph of an earlier task's projector could match again only if it were handed out again."""
        return all(p is None or any(p is q for q in projectors) for p in self.projectors)

    def _warm_up(self, run: Pass, record: bool, stream: torch.cuda.Stream) -> None:
        """Run the pass :data:`WARMUP` times on the side ``stream``, then put the buffers back as they were."""
        saved = [(b, b.clone()) for b in self.net.buffers()]
        stream.wait_stream(torch.cuda.current_stream(self._x.device))
        with torch.cuda.stream(stream):
            for _ in range(WARMUP):
                for p in self.params:
                    p.grad = None
                with self.net.recording() if record else contextlib.nullcontext():
                    run(self.x_seq, self.y, self.heads, self.mask)
        torch.cuda.current_stream(self._x.device).wait_stream(stream)
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)

    def replay(self, x_seq: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
               mask: torch.Tensor | None) -> tuple[torch.Tensor, Activity | None]:
        """The pass on this batch: (its loss, a 0-dim tensor of its own; the recorded activity or None); every
        parameter's ``grad`` is the gradient the pass wrote."""
        self._x.copy_(x_seq[0] if self.x_seq is not self._x else x_seq)
        self.y.copy_(y)
        for static, given in ((self.heads, heads), (self.mask, mask)):
            if static is not None:
                static.copy_(given)
        with torch.cuda.device(self._x.device):
            self.graph.replay()
        for p, grad in zip(self.params, self.grads):
            p.grad = grad
        for projector in self.used:
            projector.used = True
        return self.loss.clone(), self.activity


class GraphedPasses:
    """The task-loss pass of ``net`` (``run(x_seq, y, heads, mask)`` → loss, gradients in ``grad``) through CUDA
    graphs, one per input signature, at most :data:`MAX_GRAPHS` kept."""

    def __init__(self, net: SpikingNetwork, run: Pass) -> None:
        self.net, self.run = net, run
        self.graphs: OrderedDict[tuple, CapturedPass] = OrderedDict()
        self.captures = 0                                  # graphs captured so far
        # the network's tensors a graph reads and writes in place: parameters and persistent buffers, listed once
        # (``net.to`` keeps these objects and swaps their memory, which the signature then sees)
        self._tensors = list(net.state_dict(keep_vars=True).values())
        self._params, self._layers = list(net.parameters()), list(net.layers)

    def signature(self, x_seq: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                  mask: torch.Tensor | None, record: bool) -> tuple:
        """Everything that makes this pass's launches differ from another's (the module's docstring)."""
        return (_layout(x_seq), _layout(y), _layout(heads), _layout(mask), record, self.net.training,
                tuple(p.requires_grad for p in self._params), tuple(t.data_ptr() for t in self._tensors),
                tuple(id(layer.weight_projection) for layer in self._layers))

    def __call__(self, x_seq: torch.Tensor, y: torch.Tensor, heads: torch.Tensor | None,
                 mask: torch.Tensor | None, record: bool) -> tuple[torch.Tensor, Activity | None]:
        """(loss, activity or None) of the pass on this batch, captured first if its signature is new."""
        key = self.signature(x_seq, y, heads, mask, record)
        captured = self.graphs.get(key)
        if captured is None:
            projectors = [layer.weight_projection for layer in self.net.layers]
            for stale in [k for k, graph in self.graphs.items() if not graph.handed(projectors)]:
                del self.graphs[stale]                     # its memory and projectors go with it
            while len(self.graphs) >= MAX_GRAPHS:
                self.graphs.popitem(last=False)
            captured = self.graphs[key] = CapturedPass(self.net, self.run, x_seq, y, heads, mask, record)
            self.captures += 1
        self.graphs.move_to_end(key)
        return captured.replay(x_seq, y, heads, mask)
