"""The parts of a ``ca3`` experiment as results files (:func:`spikecl.io.write_run`, ``kind = "ca3"``): their schema,
reading one back checked (:func:`read_part`), what a kept part may differ in, and whether parts can share one
report (:func:`check_parts`).

Part files (besides the common schema)::

    /              attrs: part = "functional" | "stress", n_cues, n_bits, seconds, params (JSON); functional: backend,
                          duration_ms, mismatched_spikes, decoded, starts_ms, kinds (JSON); stress: variant
    /spikes/<pop>  bool [T, N]   functional: every population's raster
    /weights/<w>   float         functional: the plastic weights at the end
    /table/<col>   [rows]        stress: one row per (density, spacing, seed), every column of
                                         :func:`spikecl.memory.stress.table_columns`

A part lacking any of these (or whose recorded config is not a table) is damaged: ``--resume`` runs it again and
``spikecl report`` skips it in a folder.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

import numpy as np

from spikecl.differences import differ_phrase, differences
from spikecl.errors import ConfigError, ResultsError, SpikeCLError
from spikecl.experiment_kind import RESUME_IGNORES
from spikecl.io import Run, read_run
from spikecl.memory.params import PLASTIC, CA3Params, population_sizes
from spikecl.memory.recordings import FUNCTIONAL, RECORDED, functional_mismatch
from spikecl.memory.schedule import decode, make_schedule, recorded_schedule
from spikecl.memory.stress import VARIANTS, table_columns
from spikecl.options import from_dict


def read_part(path: str | Path) -> dict:
    """``{"attrs": {...}, group: {name: array}}`` of a part file; one-line ResultsError if missing or corrupt."""
    return checked_part(read_run(path, "ca3"))


#: what each part holds besides the common schema: root attributes (with their types), then groups/arrays
PART_ATTRS = {"functional": {"backend": str, "n_cues": int, "n_bits": int, "seconds": float, "duration_ms": int,
                             "mismatched_spikes": int, "decoded": str, "starts_ms": str, "kinds": str},
              "stress": {"n_cues": int, "n_bits": int, "variant": str, "seconds": float}}


PART_ARRAYS = {"functional": ("spikes", "weights"), "stress": ("table",)}


_TYPES = {int: (numbers.Integral, "a whole number"), float: (numbers.Real, "a number"), str: (str, "text")}


#: attributes that count something: at least 1
_COUNTS = ("n_cues", "n_bits", "duration_ms")


def _damaged(run: Run, problem: str) -> ResultsError:
    return ResultsError(f"{run.path} is corrupt or incomplete: {problem}")


def checked_part(run: Run) -> dict:
    """The part of ``run`` (a ``ca3`` results file read) as ``{"attrs": ..., group: arrays}``, holding everything
    the summary and the plots read; a one-line :class:`ResultsError` names what a damaged part lacks."""
    kind = run.attrs.get("part")
    if kind not in PART_ATTRS:
        raise _damaged(run, f"part {kind!r} is neither 'functional' nor 'stress'")
    for name, tp in PART_ATTRS[kind].items():
        value, (types, what) = run.attr(name), _TYPES[tp]
        if not isinstance(value, types) or isinstance(value, bool) or (name in _COUNTS and value < 1):
            raise _damaged(run, f"its attribute '{name}' is {value!r}, not {what}{' >= 1' * (name in _COUNTS)}")
    for name in PART_ARRAYS[kind]:
        run.array(name)
    try:
        params = from_dict(CA3Params, json.loads(run.attrs.get("params", "{}")), "params.")
    except (TypeError, ValueError, ConfigError) as exc:
        raise _damaged(run, f"its attribute 'params' does not read back ({exc})") from None
    if kind == "stress":
        _check_table(run)
    else:
        _check_functional(run, params)
    return {"attrs": run.attrs, "config": run.config, **run.arrays}


#: what a kept part may differ in: the functional part holds no stress trials and no seeds; a stress part holds
#: every seed's trials of its own size and variant (so other sizes and variants may be added by --resume)
FUNCTIONAL_IGNORES = RESUME_IGNORES | {"stress"}


STRESS_IGNORES = (RESUME_IGNORES - {"seeds"}) | {"functional", "stress.sizes", "stress.variants"}


def check_parts(results: dict[str, dict]) -> str:
    """Refuse parts that cannot share one report (one-line :class:`ResultsError`: two functional parts, or two files
    of one stress part C x M variant); returns a note naming the settings in which stress parts were made
    otherwise (other seeds, other trials), "" when they agree."""
    seen: dict[tuple, str] = {}
    for file, part in results.items():
        a = part["attrs"]
        key = ("functional",) if a["part"] == "functional" else (int(a["n_cues"]), int(a["n_bits"]), str(a["variant"]))
        if key in seen:
            what = "the functional part" if len(key) == 1 else f"the stress part C={key[0]} M={key[1]} {key[2]}"
            raise ResultsError(f"{file} and {seen[key]} both hold {what}; report them separately")
        seen[key] = file
    stress = [(file, part) for file, part in results.items() if part["attrs"]["part"] == "stress"]
    for file, part in stress[1:]:
        keys = list(differences(stress[0][1].get("config"), part.get("config"), ignore=STRESS_IGNORES))
        if keys:
            return (f"Note: the stress parts were made with different settings ({differ_phrase(keys)}: "
                    f"{stress[0][0]} and {file}); their rows are not one paired comparison.")
    return ""


def _check_table(run: Run) -> None:
    """A stress part's table: every column :func:`~spikecl.memory.stress.run_grid` writes for its recorded settings,
    numbers, one per trial."""
    densities = np.atleast_1d(run.array("table/density"))
    table = run.array("table")
    if not len(densities) or any(np.ndim(col) != 1 or np.asarray(col).dtype.kind not in "iuf"
                                 or len(col) != len(densities) for col in table.values()):
        raise _damaged(run, "its stress table needs one number per trial in every column")
    try:
        stress = run.config["stress"]
        columns = table_columns(run.attrs["n_bits"], densities.tolist(), [int(f) for f in stress["fragment_sizes"]],
                                int(stress["queries_per_size"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise _damaged(run, f"its recorded stress settings do not read back ({exc!r})") from None
    for name in columns:
        run.array(f"table/{name}")
    if run.attrs["variant"] not in VARIANTS:
        raise _damaged(run, f"its attribute 'variant' is {run.attrs['variant']!r}, not one of {', '.join(VARIANTS)}")
    size = [int(run.attrs["n_cues"]), int(run.attrs["n_bits"])]
    if isinstance(stress.get("sizes"), list) and size not in stress["sizes"]:
        raise _damaged(run, f"its part C={size[0]} M={size[1]} is not one of its config's stress.sizes "
                            f"{stress['sizes']}")
    for name in columns:
        values = np.asarray(table[name], np.float64)
        if not (name in FRACTION_COLUMNS or name.endswith(FRACTION_COLUMNS)):
            continue
        bad = ~((values >= 0) & (values <= 1)) & ~(np.isnan(values) & (name not in DEFINED_COLUMNS))
        if bad.any():
            raise _damaged(run, f"its stress table's {name} holds {values[bad][0]:g}, not a fraction in 0..1")


#: the stress table's columns that are fractions of trials' queries: these names, or names ending in one of the
#: fragment metrics' suffixes; NaN only where none was asked (no relearned or kept cue)
FRACTION_COLUMNS = ("cue_exact", "content_repeat_same", "forget_echo", "relearned_exact", "kept_exact", "_hit",
                    "_precision", "_as_specified")
#: fraction columns that every trial defines (never NaN)
DEFINED_COLUMNS = ("cue_exact",)


def _check_functional(run: Run, params: CA3Params) -> None:
    """A functional part: decoded answers, the schedule the raster plot marks, and every population's raster."""
    try:
        decoded = json.loads(run.attrs["decoded"])
        [(d["operation"], d["start_ms"], d["cues"], d["bits"], d["forgotten"]) for d in decoded]
    except (TypeError, ValueError, KeyError) as exc:
        raise _damaged(run, f"its decoded answers do not read back ({type(exc).__name__})") from None
    try:
        schedule = recorded_schedule(run.attrs)
    except ValueError as exc:
        raise _damaged(run, str(exc)) from None
    sizes = population_sizes(run.attrs["n_cues"], run.attrs["n_bits"], params)
    for name in [*(f"weights/{w}" for w in PLASTIC), *(f"spikes/{pop}" for pop in sizes)]:
        run.array(name)
    for pop, raster in run.array("spikes").items():
        shape, n = np.shape(raster), sizes.get(pop)
        if len(shape) != 2 or shape[0] != schedule.duration_ms or n not in (None, shape[1]) \
                or np.asarray(raster).dtype.kind not in "biuf":
            raise _damaged(run, f"its raster spikes/{pop} (shape {shape}) is not [{schedule.duration_ms}, "
                                f"{n or 'N'}] spikes")
    _check_against_rasters(run, decoded, params)


def _check_against_rasters(run: Run, decoded: list[dict], params: CA3Params) -> None:
    """What the summary prints of a functional part from its attributes (its spikes differing from the SpiNNaker
    recording, the decoded answers) must be what its rasters give, or the table would say what they do not."""
    spikes = {pop: np.asarray(raster).astype(bool) for pop, raster in run.array("spikes").items()}
    counted = functional_mismatch(spikes)
    if counted != run.attrs["mismatched_spikes"]:
        raise _damaged(run, f"its attribute 'mismatched_spikes' is {run.attrs['mismatched_spikes']}, but its rasters "
                            f"differ from the SpiNNaker recording in {counted} spikes")
    n_cues, n_bits, operations, spacing = RECORDED[FUNCTIONAL]
    try:
        answers = decode(make_schedule(operations, n_cues, n_bits, spacing), spikes["OUTcue"], spikes["OUTcont"],
                         params)
    except (KeyError, SpikeCLError) as exc:
        raise _damaged(run, f"its output rasters do not decode ({exc})") from None
    if len(decoded) != len(answers):
        raise _damaged(run, f"it holds {len(decoded)} decoded answers, but its rasters give {len(answers)}")
    for stored, answer in zip(decoded, answers):
        read = {"cues": list(answer.cues), "bits": list(answer.bits), "forgotten": list(answer.forgotten)}
        if any(stored[k] != v for k, v in read.items()):
            raise _damaged(run, f"its decoded answer at t={stored['start_ms']} ms is cues {stored['cues']} bits "
                                f"{stored['bits']}, but its rasters give cues {read['cues']} bits {read['bits']}")


def params_text(attrs: dict, prefix: str = "") -> str:
    """The ``[params]`` overrides a part ran with, as ``prefix`` + "key = value, ..." ("" when none)."""
    params = json.loads(attrs.get("params", "{}"))
    return prefix + ", ".join(f"{k} = {v}" for k, v in sorted(params.items())) if params else ""
