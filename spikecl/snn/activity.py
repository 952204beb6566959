"""Presynaptic activity as data: what each plastic layer of a network received during a forward pass.

A recording is opened around forward passes and holds, per layer name (``layers.0``, …, ``readout``), the input of
the latest pass: the sequence ``[T, B, *in_shape]`` of a whole-sequence pass, or the inputs ``x_t`` ``[B, *in_shape]``
of an online pass, stacked on reading. Recordings nest: each one keeps what happened while it was open and closing it
leaves the others untouched, so strategies that read activity never switch state that another one relies on::

    with net.recording() as activity:
        net(x_seq)
    activity.of("layers.0")          # [T, B, n_inputs]
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Mapping

import torch
from torch import nn

from spikecl.errors import SpikeCLError


class Activity:
    """Presynaptic inputs by layer name. Filled by layers while its recording is open; read with :meth:`of`;
    ``for name in activity`` and ``name in activity`` go over the layers recorded so far, in the order they were."""

    def __init__(self, names: Mapping[nn.Module, str]) -> None:
        self._names = dict(names)
        self._inputs: dict[str, torch.Tensor | list[torch.Tensor]] = {}

    def keep_sequence(self, layer: nn.Module, x_seq: torch.Tensor) -> None:
        """A whole-sequence pass of ``layer`` received ``x_seq`` [T, B, *in_shape] (replaces earlier passes)."""
        self._inputs[self._names[layer]] = x_seq.detach()

    def keep_step(self, layer: nn.Module, x_t: torch.Tensor, first: bool) -> None:
        """An online step of ``layer`` received ``x_t`` [B, *in_shape]; ``first`` starts a new pass."""
        name = self._names[layer]
        steps = self._inputs.get(name)
        if first or not isinstance(steps, list):
            steps = self._inputs[name] = []
        steps.append(x_t.detach())

    def of(self, name: str) -> torch.Tensor:
        """The presynaptic input ``[T, B, *in_shape]`` of layer ``name`` in the latest recorded pass."""
        if name not in self._inputs:
            raise SpikeCLError(f"no presynaptic activity of {name} was recorded: run the forward pass inside "
                               "`with net.recording()`")
        kept = self._inputs[name]
        return torch.stack(kept) if isinstance(kept, list) else kept

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._inputs))

    def __len__(self) -> int:
        return len(self._inputs)

    def __contains__(self, name: object) -> bool:
        return name in self._inputs

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Activity":
        """A new activity with ``fn`` applied to every recorded layer's ``[T, B, *in_shape]`` input."""
        out = Activity(self._names)
        out._inputs = {name: fn(self.of(name)) for name in self._inputs}
        return out


class Recordable(nn.Module):
    """A layer whose presynaptic input goes to every recording open on it (none: nothing is kept)."""

    def __init__(self) -> None:
        super().__init__()
        self._recordings: list[Activity] = []

    def _keep_sequence(self, x_seq: torch.Tensor) -> None:
        for activity in self._recordings:
            activity.keep_sequence(self, x_seq)

    def _keep_step(self, x_t: torch.Tensor, first: bool) -> None:
        for activity in self._recordings:
            activity.keep_step(self, x_t, first)


@contextlib.contextmanager
def recording(layers: Mapping[str, Recordable]) -> Iterator[Activity]:
    """Record the presynaptic input of ``layers`` ({name: layer}) while the block runs; yields the
    :class:`Activity`, which keeps its contents after the block."""
    activity = Activity({layer: name for name, layer in layers.items()})
    for layer in layers.values():
        layer._recordings.append(activity)
    try:
        yield activity
    finally:
        for layer in layers.values():
            layer._recordings.remove(activity)
