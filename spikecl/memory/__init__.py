"""Spiking content-addressable memories: the hippocampal CA3 CAM (Casanueva-Morato et al., Neural Networks 2024).

:class:`CA3Memory` learns (cue, content) pairs and recalls by cue or by content fragment on Brian2 (imported lazily)
or on a batched torch stepper that reproduces it spike for spike. Importing this package imports neither.
"""

from spikecl.memory.cam import BACKENDS, CA3Memory, MemoryRun, run_batch
from spikecl.memory.params import CA3Params, connections, population_sizes, synapse_count
from spikecl.memory.schedule import (MIN_SPACING_MS, Operation, OperationResult, Schedule, decode, encode, learn,
                                     make_schedule, recall_by_content, recall_by_cue)

__all__ = ["BACKENDS", "CA3Memory", "CA3Params", "MIN_SPACING_MS", "MemoryRun", "Operation", "OperationResult",
           "Schedule", "connections", "decode", "encode", "learn", "make_schedule", "population_sizes",
           "recall_by_content", "recall_by_cue", "run_batch", "synapse_count"]
