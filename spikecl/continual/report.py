"""The continual kind's report: accuracy-matrix tables, a method comparison (mean ± std over seeds) and PNG plots.

Imports only numpy (matplotlib lazily, for plots), so results can be read anywhere.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator, Sequence

import numpy as np

from spikecl.continual import metrics
from spikecl.continual.results import ContinualResult, read_continual
from spikecl.differences import OtherMethodsIgnored, as_written, differ_phrase, differences, flatten
from spikecl.environment import source_note as environment_source_note
from spikecl.errors import ResultsError
from spikecl.experiment_kind import SEED_ROW_IGNORES, check_seeds, listed, not_in_report, other_data
from spikecl.figures import palette
from spikecl.run_files import diverged_error

# (metrics key, column title) in the order they are printed; accuracies are shown in percent
COLUMNS = (("acc", "ACC"), ("bwt", "BWT"), ("learning_acc", "LA"), ("fwt", "FWT"), ("forgetting", "Forget"),
           ("intransigence", "Intrans"), ("min_acc", "min-ACC"), ("wc_acc", "WC-ACC"))


def in_experiment_order(results: Sequence[ContinualResult]) -> list[ContinualResult]:
    """Runs in the order their experiments list the methods (``strategy.methods``, as written: usually the lower
    bound first and the upper bounds last); the longest list sets the order, methods only in other lists follow.
    Seeds ascending."""
    lists = [(r.config.get("strategy") or {}).get("methods", []) for r in results]
    rank: dict[str, int] = {}
    for methods in sorted(lists, key=len, reverse=True):              # stable: ties keep file order
        for method in methods:
            rank.setdefault(method, len(rank))
    for r in results:
        rank.setdefault(r.method, len(rank))
    return sorted(results, key=lambda r: (rank[r.method], r.seed))


def format_matrix(acc: np.ndarray, title: str = "") -> str:
    """The accuracy matrix ``[T+1, T]`` (fractions, checked: :func:`~spikecl.continual.metrics.as_matrix`) as a text
    table in percent (rows: after task i; row 0: at init)."""
    acc = metrics.as_matrix(acc)
    n = acc.shape[1]
    lines = [title] if title else []
    lines.append("after \\ on  " + " ".join(f"{'T' + str(j + 1):>6}" for j in range(n)))
    for i, row in enumerate(acc):
        label = "init" if i == 0 else f"task {i}"
        lines.append(f"{label:<11} " + " ".join(f"{metrics.points(v):6.1f}" for v in row))
    return "\n".join(lines)


#: recorded keys in which runs of different methods may differ and still be one comparison, besides
#: :data:`~spikecl.experiment_kind.SEED_ROW_IGNORES`: the method and its options (and the variants table, which a
#: variant's own run records empty; a variant's own settings are its options too, see :func:`own_settings`)
METHOD_KEYS = frozenset({"method", "runs_method", "strategy.options", "variants",
                         "lateral_rates"})           # a recorded rule that follows a method's options (HLOP's)
#: the recorded rules (:func:`spikecl.continual.run_record.unshown_rules`) that follow a run's method: how that method
#: computes, as its options do, so runs of different methods differ in them by design (runs of one method compare)
METHOD_RULES = frozenset({"si_gradient", "projection", "pass_draws", "after_task_order", "unused_heads",
                          "si_trajectory"})
#: every rule :func:`spikecl.continual.run_record.unshown_rules` records: how spikecl computes, not a setting
RULES = METHOD_RULES | {"eval_subsample_seed", "poisson_draws", "train_subsample_seed", "lateral_rates",
                        "sample_order"}


#: keys that set only the continual evaluation (how often, on how many samples), not what a run trains or its
#: accuracy matrix (evaluations draw from generators of their own): a joint reference made with other values of
#: them gives the same task-end accuracies. ``train.eval_batch_size`` is not one: it orders Poisson draws.
EVALUATION_ONLY = frozenset({"train.eval_every", "train.eval_samples"})


def own_settings(run: ContinualResult, results: Sequence[ContinualResult]) -> set[str]:
    """The dotted keys a variant's ``[variants.<name>]`` table sets (as another run of ``results`` records it),
    which make the variant what it is; none for a method."""
    tables = [r.config.get("variants") for r in results]
    spec = next((t[run.method] for t in tables if isinstance(t, dict) and isinstance(t.get(run.method), dict)), None)
    return set(flatten(spec)) - {"method"} if spec else set()


def own_options(run: ContinualResult, results: Sequence[ContinualResult]) -> set[str]:
    """The ``strategy.*`` and ``train.*`` keys among a variant's :func:`own_settings`: how it learns, as a method's
    options are, not what it learns (its stream, data or network, which a joint reference must share)."""
    return {key for key in own_settings(run, results) if key.startswith(("strategy.", "train."))}


def setting_difference(a: ContinualResult, b: ContinualResult, results: Sequence[ContinualResult], split: bool = False,
                       own=own_settings, also: frozenset[str] = frozenset()) -> str | None:
    """The first setting (dotted key) in which runs ``a`` and ``b`` were made otherwise, apart from their methods and
    their options (:data:`METHOD_KEYS`, ``own``: a variant's :func:`own_settings` or only its :func:`own_options`),
    what seeds of one row may differ in (:data:`~spikecl.experiment_kind.SEED_ROW_IGNORES`; ``split``: not
    ``data.test_split_seed``) and the keys ``also``; None if none."""
    return next(setting_differences(a, b, results, split, own, also), None)


def setting_differences(a: ContinualResult, b: ContinualResult, results: Sequence[ContinualResult], split: bool = False,
                        own=own_settings, also: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every setting in which runs ``a`` and ``b`` were made otherwise (see :func:`setting_difference`)."""
    ignore = (SEED_ROW_IGNORES | METHOD_KEYS | own(a, results) | own(b, results) | also) - (
        {"data.test_split_seed"} if split else set())
    if a.config.get("runs_method", a.method) != b.config.get("runs_method", b.method):
        ignore |= METHOD_RULES
    keys = list(map(as_written, differences(a.config, b.config, ignore=ignore)))
    if other_data(a, b) and "data_crc" not in keys:          # one data table, other files (as recorded when they ran)
        keys.append("data_crc")
    return iter(keys)


def with_intransigence(results: Sequence[ContinualResult],
                       unpaired: dict[str, str] | None = None) -> list[ContinualResult]:
    """Add intransigence to each run's metrics where a ``joint`` run of the same seed, made with the same settings
    and test split (:func:`setting_difference`; a variant's own stream, data or network settings count, see
    :func:`own_options`; the continual evaluation's :data:`EVALUATION_ONLY` keys do not), gives the reference; a
    sweep's joint runs (labelled ``joint @ <point>``) each pair with the runs of their point. ``unpaired`` collects
    {method: the first differing key} of the runs whose seed's joint runs were all made otherwise (they get
    none)."""
    joints = [r for r in results if r.config.get("method", r.method) == "joint"]
    for r in results:
        r.metrics.pop("intransigence", None)          # results files never record it: only a pairing here gives it
        if trains_at_once(r):                         # no task learned after another: nothing to be intransigent to
            continue
        candidates = [j for j in joints if j.seed == r.seed and j.acc_matrix.shape == r.acc_matrix.shape]
        keys = [setting_difference(r, j, results, split=True, own=own_options, also=EVALUATION_ONLY)
                for j in candidates]
        if None not in keys:
            if keys:
                (unpaired if unpaired is not None else {}).setdefault(r.method, keys[0])
            continue
        reference = np.diag(candidates[keys.index(None)].acc_matrix[1:])
        r.metrics["intransigence"] = float(np.mean(metrics.intransigence(r.acc_matrix, reference)))
    return list(results)


def settings_note(results: Sequence[ContinualResult]) -> str:
    """One line when rows of different methods were made with different settings (beyond each method's options):
    the differing keys (the first four, then how many more) and the rows grouped by settings; "" when every row shares
    them."""
    groups: list[tuple[ContinualResult, list[str]]] = []
    for r in results:
        group = next((g for g in groups if setting_difference(g[0], r, results) is None), None)
        if group is None:
            groups.append((r, [r.method]))
        elif r.method not in group[1]:
            group[1].append(r.method)
    if len(groups) < 2:
        return ""
    keys = sorted({key for other, _ in groups[1:] for key in setting_differences(groups[0][0], other, results)})
    rows = " | ".join(", ".join(methods) for _, methods in groups)
    return (f"Note: the rows were made with different settings, not only different methods ({differ_phrase(keys)}: "
            f"{rows}).")


def missing_note(results: Sequence[ContinualResult]) -> str:
    """A line naming the runs that the experiments of ``results`` name (each file records the methods and seeds its
    command ran) but that are not among them: an interrupted or failed experiment, whose table would not say so;
    "" when none is missing. A run whose training diverged (its record beside where its results would be) is named
    apart: running it again with the same settings, as ``--resume`` would, diverges again; so is one whose results
    file is there but cannot be read (a newer schema, a damaged file: the report said why above), and one whose
    file is there and readable but was not named (files named one by one)."""
    missing, unread, diverged, unnamed = missing_by_cause(results)
    lines = [not_in_report(missing),
             unread and f"Skipped above, not in this report: {listed(unread)} (its results file is there but could "
                        "not be read)",
             diverged and f"Diverged, not in this report: {listed(diverged)} (the same settings diverge again: "
                          "change them to run it)",
             unnamed and f"Not named, not in this report: {listed(unnamed)} (its results file is there: name it, or "
                         "its folder, to include it)"]
    return "\n".join(filter(None, lines))


def missing_by_cause(results: Sequence[ContinualResult]) -> tuple[list[str], list[str], list[str], list[str]]:
    """The runs :func:`missing_runs` names, in four lists: not there (interrupted, failed or not yet run), there
    but not readable (skipped above), diverged (their record beside where their results would be), and there and
    readable but not among ``results`` (not named)."""
    named = missing_runs(results, with_paths=True)
    diverged = [name for name, path in named if path is not None and diverged_error(path) is not None]
    present = [(name, path) for name, path in named if path is not None and name not in diverged and path.is_file()]
    unnamed = [name for name, path in present if readable(path)]
    unread = [name for name, _ in present if name not in unnamed]
    return ([name for name, _ in named if name not in diverged and name not in unread and name not in unnamed],
            unread, diverged, unnamed)


def readable(path: Path) -> bool:
    """Whether ``path`` reads as a continual-learning results file."""
    try:
        read_continual(path)
    except ResultsError:
        return False
    return True


def missing_runs(results: Sequence[ContinualResult], with_paths: bool = False) -> list:
    """Each run the experiments of ``results`` name but that is not among them, as "<method> seed <s>" (by seed,
    then method; "... of <experiment>" where the results are of several experiments, each with its own plan);
    ``with_paths``: (that name, where its results file would lie: beside the file the run naming it was read from,
    else where its experiment writes as recorded, or None where neither is known)."""
    planned: dict[tuple, Path | None] = {}
    made = set()
    for r in results:
        strategy = r.config.get("strategy")
        methods = strategy.get("methods") if isinstance(strategy, dict) else None
        seeds = r.config.get("seeds")
        out, name = r.config.get("output_dir"), r.config.get("name")
        folder = (Path(r.source).parent if r.source is not None else       # a folder moved since: read there
                  Path(out) / name if isinstance(out, str) and isinstance(name, str) else None)
        experiment = (str(name), folder)
        made.add((experiment, r.method, r.seed))
        if isinstance(methods, list) and isinstance(seeds, list):
            plan = {(m, s) for m in methods for s in seeds if isinstance(m, str) and isinstance(s, int)}
            if (r.method, r.seed) in plan:         # else run by a Python caller on its own, not from this plan
                for m, s in plan:
                    planned.setdefault((experiment, m, s), folder and folder / f"{m}-seed{s}.h5")
    several = len({experiment for experiment, _, _ in planned}) > 1
    missing = sorted(set(planned) - made, key=lambda ems: (ems[0][0], ems[2], ems[1]))
    names = [f"{m} seed {s}" + (f" of {experiment[0]}" if several else "") for experiment, m, s in missing]
    return [(n, planned[key]) for n, key in zip(names, missing)] if with_paths else names


def plot_note(results: Sequence[ContinualResult]) -> str:
    """The line under a report's comparison plots, which would otherwise not show it: the runs the experiments name
    that no file read holds (those that diverged named apart), and each method's seed count where the methods have
    different ones; "" for neither."""
    (missing, unread, diverged, unnamed), seeds = missing_by_cause(results), Counter(r.method for r in results)
    parts = [f"{why}: {listed(names)}" for why, names in (("not drawn (no results file read)", missing + unread),
                                                          ("not drawn (diverged)", diverged),
                                                          ("not drawn (not named)", unnamed)) if names]
    if len(set(seeds.values())) > 1:
        parts.append("seeds per method: " + ", ".join(f"{m} {n}" for m, n in seeds.items()))
    return "; ".join(parts)


def intransigence_note(unpaired: dict[str, str]) -> str:
    """One line naming the rows left without intransigence because their joint run was made otherwise."""
    if not unpaired:
        return ""
    return (f"Intrans: none for {', '.join(unpaired)}: the joint run of their seed was made with other settings "
            f"({next(iter(unpaired.values()))} differs).")


def trains_at_once(r: ContinualResult) -> bool:
    """Whether ``r`` trained every task together (multitask training), so no task was learned after another."""
    return r.config.get("runs_method", r.method) == "multitask"


def scenario_of(r: ContinualResult) -> str | None:
    """The scenario ``r``'s stream recorded (None: not recorded, the domain scenario's default)."""
    return (r.config.get("stream") or {}).get("scenario")


def current_metrics(r: ContinualResult) -> dict[str, float]:
    """The run's metrics as today's definitions give them, computed from its accuracy matrix and curves (a file
    written under an older definition, e.g. of min-ACC, reads as new); a metric the run may record as undefined
    (:data:`~spikecl.continual.metrics.AT_ONCE_UNDEFINED`, NaN: multitask's FWT, min-ACC, WC-ACC, WF) stays
    undefined, and keys the definitions do not compute are kept. Any other stored value is replaced: a file that
    stores an ACC of 0.99 beside a matrix whose last row averages 0.275 reads 0.275."""
    has_curves = len(r.curve_task) > 0
    scenario = scenario_of(r)
    eval_every = (r.config.get("train") or {}).get("eval_every", 0)
    at_once = trains_at_once(r)
    fresh = metrics.summarize(r.acc_matrix, evals=r.curve_accuracy if has_curves else None,
                              eval_task=r.curve_task if has_curves else None, scenario=scenario,
                              continual=isinstance(eval_every, int) and eval_every > 0 and not at_once,
                              eval_iterations=r.curve_iterations,
                              task_ends=None if r.trained_after_task else r.task_ends)
    undefined = {k for k in metrics.AT_ONCE_UNDEFINED if np.isnan(r.metrics.get(k, 0.0))}
    return {**r.metrics, **{k: float("nan") if k in undefined else v for k, v in fresh.items()}}


def method_summary(results: Sequence[ContinualResult]) -> dict[str, dict[str, tuple[float, float]]]:
    """{method: {metric: (mean, std) over the seeds that define it}} in the order methods first appear; metrics are
    recomputed by :func:`current_metrics`."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in with_intransigence(results):
        r.metrics = current_metrics(r)
        for key, value in r.metrics.items():
            if np.isfinite(value):
                values[r.method][key].append(value)
    return {m: {k: metrics.mean_std(v) for k, v in per.items()} for m, per in values.items()}


def defined_counts(results: Sequence[ContinualResult]) -> dict[str, dict[str, int]]:
    """{method: {metric: how many of its runs define it}}, of the metrics :func:`method_summary` recorded."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in results:
        for key, value in r.metrics.items():
            counts[r.method][key] += bool(np.isfinite(value))
    return counts


def partly_defined(results: Sequence[ContinualResult], summary: dict[str, dict[str, tuple[float, float]]]) -> str:
    """One line naming the table's cells whose mean is over only some of the row's seeds (e.g. Intrans where only
    one seed's joint run was made with the row's settings); "" when every cell is over every seed."""
    runs = defaultdict(list)
    for r in results:
        runs[r.method].append(r)
    counts = defined_counts(results)
    cells = []
    for method, stats in summary.items():
        for key, title in COLUMNS:
            counted = counts[method].get(key, 0)
            if key in stats and counted < len(runs[method]):
                cells.append(f"{method} {title} ({counted} of {len(runs[method])})")
    return "Over only some seeds (the others leave it undefined): " + "; ".join(cells) + "." if cells else ""


def format_summary(summary: dict[str, dict[str, tuple[float, float]]], n_seeds: dict[str, int],
                   counts: dict[str, dict[str, int]] | None = None) -> str:
    """The comparison table: one row per method, mean ± std (in points) of each metric present; a cell over one
    seed (``counts``: seeds per method and metric, else ``n_seeds`` per method) shows its value alone, as no
    spread was measured."""
    present = [(k, t) for k, t in COLUMNS if any(k in s for s in summary.values())]
    width = max([16, *map(len, summary)])
    header = f"{'method':<{width}} {'seeds':>5} " + " ".join(f"{t:>13}" for _, t in present)
    lines = [header, "-" * len(header)]
    for method, stats in summary.items():
        cells = []
        for key, _ in present:
            if key in stats:
                mean, std = stats[key]
                mean = metrics.points(mean)          # ties up, never -0.0: a mean that rounds to zero prints 0.0
                alone = (counts[method].get(key, 0) if counts is not None else n_seeds[method]) == 1
                cells.append(f"{mean:7.1f}      " if alone else f"{mean:7.1f} ±{metrics.points(std):4.1f}")
            else:
                cells.append(f"{'—':>7}      ")      # under the numbers, not the spread
        lines.append((f"{method:<{width}} {n_seeds[method]:>5} " + " ".join(cells)).rstrip())
    return "\n".join(lines)


#: (measure, column title, scale, format) of the NeuroBench table; values after the last task
MEASURE_COLUMNS = (("footprint_bytes", "KiB", 1 / 1024, ".1f"), ("connection_sparsity", "ConnSp%", 100, ".1f"),
                   ("activation_sparsity", "ActSp%", 100, ".1f"), ("dense_synops", "DenseOps", 1, ".4g"),
                   ("effective_acs", "ACs", 1, ".4g"), ("effective_macs", "MACs", 1, ".4g"),
                   ("membrane_updates", "MemUpd", 1, ".4g"))


def measure_cell(value: float, fmt: str, percent: bool) -> str:
    """``value`` in ``fmt``; a percentage short of 100 or above 0 that would print as 100 or 0 (an activation
    sparsity of 99.98 % in '.1f': "no neuron fired") prints as ">99.9" or "<0.1" instead."""
    text = format(value, fmt)
    if percent and fmt.endswith("f"):
        places = int(fmt[1:-1])
        step = 10.0 ** -places
        if value < 100 and text == format(100, fmt):
            return f">{100 - step:.{places}f}"
        if value > 0 and text == format(0, fmt):
            return f"<{step:.{places}f}"
    return text


def final_measures(results: Sequence[ContinualResult]) -> dict[str, dict[str, float]]:
    """{method: {measure: mean over seeds of its value after the last task}} for runs that recorded measures,
    plus ``synops`` = effective ACs + MACs per inference."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        last = {k: float(np.asarray(v)[-1]) for k, v in r.measures.items() if np.size(v)}
        if "effective_acs" in last and "effective_macs" in last:
            last["synops"] = last["effective_acs"] + last["effective_macs"]
        for key, value in last.items():
            if np.isfinite(value):
                values[r.method][key].append(value)
    return {m: {k: float(np.mean(v)) for k, v in per.items()} for m, per in values.items()}


def format_measures(measures: dict[str, dict[str, float]]) -> str:
    """The NeuroBench table: one row per method, each measure after the last task (mean over seeds)."""
    width = max([16, *map(len, measures)])
    header = f"{'method':<{width}} " + " ".join(f"{t:>9}" for _, t, _, _ in MEASURE_COLUMNS)
    lines = [header, "-" * len(header)]
    for method, per in measures.items():
        cells = [measure_cell(per[k] * scale, fmt, percent=scale == 100) if k in per else "—"
                 for k, _, scale, fmt in MEASURE_COLUMNS]
        lines.append(f"{method:<{width}} " + " ".join(f"{c:>9}" for c in cells))
    return "\n".join(lines)


def partly_measured(results: Sequence[ContinualResult]) -> dict[str, str]:
    """{method: "k of n seeds"} of the methods whose measures come from only some of their runs (files written
    before measures were recorded, beside newer seeds): their NeuroBench means are of those seeds alone."""
    runs, measured = defaultdict(int), defaultdict(int)
    for r in results:
        runs[r.method] += 1
        measured[r.method] += bool(final_measures([r]))
    return {m: f"{measured[m]} of {n} seeds" for m, n in runs.items() if 0 < measured[m] < n}


MEASURES_NOTE = ("NeuroBench measures after the last task (mean over seeds): footprint in KiB and connection "
                 "sparsity in % of the network; activation sparsity in %, synaptic operations (dense; effective ACs "
                 "and MACs) and membrane updates per inference, averaged over the first 100 evaluation samples of "
                 "every task (its test split, or its validation split when data.eval_split = \"validation\").")


def text_report(results: Sequence[ContinualResult], matrices: bool = True) -> str:
    """Accuracy matrices of every run (optional) followed by the method comparison table and its notes. A one-line
    :class:`ResultsError` where ``results`` is empty or a method's runs are not seeds of one experiment (made
    with other settings, or a seed twice; ``results[i]`` names them), as ``spikecl report`` refuses them."""
    if not results:
        raise ResultsError("text_report: no results given")
    by_method: dict[str, list[SimpleNamespace]] = defaultdict(list)
    for i, r in enumerate(results):                # each named by its place in the list
        by_method[r.method].append(SimpleNamespace(config=r.config, environment=r.environment, seed=r.seed,
                                                   path=f"results[{i}]"))
    for method, group in by_method.items():
        runs_method = group[0].config.get("runs_method", method)
        check_seeds(group, method, ignore=OtherMethodsIgnored(SEED_ROW_IGNORES, runs_method), seed_of=lambda r: r.seed)
    parts = []
    if matrices:
        for r in results:
            parts.append(format_matrix(r.acc_matrix, f"{r.method} (seed {r.seed}) — accuracy %"))
    seeds = defaultdict(int)
    for r in results:
        seeds[r.method] += 1
    unpaired: dict[str, str] = {}
    with_intransigence(results, unpaired)
    summary = method_summary(results)
    table = format_summary(summary, seeds, defined_counts(results))
    parts.append("\n".join(filter(None, (table, settings_note(results), intransigence_note(unpaired),
                                          partly_defined(results, summary), missing_note(results)))))
    parts.append(legend(results, summary) + "\n" + split_note(results) + "\n" + machine_note(results)
                 + source_note(results))
    measures = final_measures(results)
    if measures:
        partly = partly_measured(results)
        some = ("\nMeasures from only some seeds (the others' files hold none): " + "; ".join(
            f"{m}, {k}" for m, k in partly.items())) if partly else ""
        parts.append(format_measures(measures) + "\n" + MEASURES_NOTE + some)
    return "\n\n".join(parts)


def legend(results: Sequence[ContinualResult], summary: dict) -> str:
    """The line under a comparison table of ``results`` (their :func:`method_summary` ``summary``): which columns,
    their units and what each means for these runs' scenarios and methods."""
    shown = [title for key, title in COLUMNS if any(key in stats for stats in summary.values())]
    fwt = "; FWT: accuracy on each task just before it was learned minus at init" if "FWT" in shown else ""
    scenarios = {scenario_of(r) for r in results}
    fwt += "; class-incremental: no FWT (a task's classes are masked until it is learned)" \
        if "class" in scenarios else ""
    fwt += "; task-incremental: no FWT (a task's head is untrained until it is learned)" if "task" in scenarios else ""
    at_once = sorted({r.method for r in results if trains_at_once(r)})
    fwt += f"; {', '.join(at_once)}: every task learned at once (multitask training), so no FWT, min-ACC, WC-ACC " \
        "or Intrans (—)" if at_once else ""
    bwt = "BWT < 0 means forgetting; " if "BWT" in shown else ""
    return (f"{', '.join(shown)} in % (mean ± std over seeds; a value alone: one seed); "
            f"{bwt}LA: learning accuracy, each task just after it was learned{fwt}.")


def eval_split(result: ContinualResult) -> str:
    """The split a run's accuracies were measured on: "test" or "validation" (older files: "test")."""
    return (result.config.get("data") or {}).get("eval_split", "test")


def split_note(results: Sequence[ContinualResult]) -> str:
    """One line saying which split the numbers come from, and whether the data split varied with the seed."""
    splits = sorted({eval_split(r) for r in results})
    data = [r.config.get("data") or {} for r in results]
    varied = sorted({bool(d.get("vary_split", False)) for d in data})
    tests = {}
    for d, r in zip(data, results):
        key = d.get("test_split_seed", 0), tuple(d.get("test_excludes") or ())
        tests.setdefault(key, []).append(f"{r.method} seed {r.seed}")
    where = {("test",): "the test split", ("validation",): "the validation split (held out of training; no test image "
             "was evaluated)"}.get(tuple(splits), "MIXED splits (" + ", ".join(
                 f"{r.method} seed {r.seed}: {eval_split(r)}" for r in results) + ")")
    seeds = {(True,): "; each seed drew its own validation split", (False,): "; one data split for every seed"}.get(
        tuple(varied), "; some seeds drew their own validation split")
    if len(tests) > 1:                                     # older files with vary_split: each seed's own test split
        seeds = "; DIFFERENT test splits (data.test_split_seed " + "; ".join(
            f"{seed}{f' leaving out {list(out)}' if out else ''}: {', '.join(runs)}"
            for (seed, out), runs in tests.items()) + ")"
    excluded = sorted({tuple(d.get("test_excludes") or ()) for d in data})
    blind = f"; its test images leave out those of the splits of seeds {list(excluded[0])} (data.test_excludes)" \
        if len(excluded) == 1 and excluded[0] and "test" in splits else ""
    return f"Accuracies measured on {where}{blind}{seeds}."


def machine_note(results: Sequence[ContinualResult]) -> str:
    """One line naming the CPU, torch's vector instruction set, thread count, (other than one) process count, LIF
    engine and device the runs were computed with (the same seed gives the same numbers only on the same ones; the
    engines and devices agree to float rounding, which moves a single seed's row by a few points), or each setup
    where they differ (a run recorded before engines existed ran snnTorch's). A run resumed on another setup shows
    each value in turn ("1 then 2 torch threads"; torch, numpy and BLAS threads, not shown otherwise, in brackets);
    one resumed under another spikecl commit alone is named by :func:`source_note`."""
    def value(env: dict, key: str, unknown: str) -> str:
        """A recorded value; a resumed run's list of them (one per stretch of tasks) as "a then b"."""
        got = env.get(key, unknown)
        return " then ".join(map(str, got)) if isinstance(got, list) else str(got)

    def setup(r: ContinualResult) -> str:
        env = r.environment
        threads, processes = value(env, "torch_threads", "?"), value(env, "processes", "1")
        hidden = [key for key in ("torch", "numpy", "blas_threads") if isinstance(env.get(key), list)]
        resumed = f" (resumed with {', '.join(f'{key} {value(env, key, None)}' for key in hidden)})" if hidden else ""
        per = "" if processes == "1" else f" in each of {processes} processes"
        network = (r.config or {}).get("network")
        engine = value(env, "engine", network.get("engine", "snntorch") if isinstance(network, dict) else "unrecorded")
        stretches = env.get("setups_by_task") if isinstance(env.get("setups_by_task"), list) else []
        engines = [str(s.get("engine") or "unrecorded") for s in stretches if isinstance(s, dict)]
        engines = [e for i, e in enumerate(engines) if not i or e != engines[i - 1]]    # in the order they ran
        engine = " then ".join(engines) if len(set(engines)) > 1 else engine   # the config records the last one
        device = f" on {value(env, 'device', '')}" if env.get("device") else ""
        return (f"{value(env, 'cpu', 'an unrecorded CPU')}, {value(env, 'torch_cpu_capability', 'unrecorded')} "
                f"kernels, {engine} engine{device}, {threads} torch thread{'' if threads == '1' else 's'}{per}"
                f"{resumed}")
    setups = sorted({setup(r) for r in results})
    if len(setups) == 1:
        return f"Computed on {setups[0]}."
    return f"Computed on {len(setups)} setups: " + "; ".join(
        f"{s} ({', '.join(f'{r.method} seed {r.seed}' for r in results if setup(r) == s)})" for s in setups) + "."


def source_note(results: Sequence[ContinualResult]) -> str:
    """:func:`spikecl.environment.source_note` of continual runs, each named by its method and seed."""
    return environment_source_note(results, lambda r: f"{r.method} seed {r.seed}")


def accuracy_synops(results: Sequence[ContinualResult]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{method: (final ACC [seeds], effective SynOps per inference after the last task [seeds])} of the runs that
    recorded measures; ACC from each run's accuracy matrix, as the table computes it (not the value the file
    stores)."""
    points: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for r in results:
        per = final_measures([r]).get(r.method, {})
        if "synops" in per:
            points[r.method][0].append(metrics.acc(r.acc_matrix))
            points[r.method][1].append(per["synops"])
    return {m: (np.asarray(a), np.asarray(s)) for m, (a, s) in points.items()}


def plot_names(methods: Sequence[str], seeds: Sequence[int]) -> list[str]:
    """The names of the PNG files :func:`write_plots` may write for runs of ``methods`` and ``seeds``."""
    return [*(f"{m}-seed{s}-{plot}.png" for m in methods for s in seeds for plot in ("matrix", "curves")),
            "comparison.png", "accuracy-synops.png"]


def comparison_summary(results: Sequence[ContinualResult]) -> dict[str, dict[str, tuple[float, float]]]:
    """{method: {"acc"/"bwt": (mean, std)}} as the comparison plot draws them: a method of one seed has no std
    (NaN: its value alone, as the table prints it, not a "± 0" bar)."""
    seeds = Counter(r.method for r in results)
    return {m: {k: (s[k][0], s[k][1] if seeds[m] > 1 else np.nan) for k in ("acc", "bwt") if k in s}
            for m, s in method_summary(results).items()}


def experiment_title(results: Sequence[ContinualResult]) -> str:
    """The first line of a figure's title: the experiment's name and dataset, and the split where the accuracies
    are the validation split's ("split-digits (digits, validation split)\\n"), as the runs record them ("" for
    neither)."""
    names = {str(r.config.get("name")) for r in results if r.config.get("name")}
    datasets = {str((r.config.get("data") or {}).get("dataset")) for r in results
                if isinstance(r.config.get("data"), dict) and (r.config.get("data") or {}).get("dataset")}
    details = [*(sorted(datasets) if len(datasets) == 1 else []),
               *(["validation split"] if any(eval_split(r) == "validation" for r in results) else [])]
    name = names.pop() if len(names) == 1 else ""
    return (name + (f" ({', '.join(details)})" if details else "")).strip() + "\n" if name or details else ""


def write_plots(results: Sequence[ContinualResult], out_dir: str | Path) -> list[Path]:
    """PNG plots: accuracy matrix and task curves of every run, and the method comparison. Returns the paths. A run
    without curves (``train.eval_every = 0``) removes the curves plot an earlier run of its name left."""
    from spikecl.continual import plots

    out_dir = Path(out_dir)
    written = []
    for r in results:
        stem = f"{r.method}-seed{r.seed}"
        written.append(plots.plot_accuracy_matrix(r.acc_matrix, out_dir / f"{stem}-matrix.png",
                                                  title=f"{experiment_title([r])}{r.method}, seed {r.seed}"
                                                  + (" (every task trained at once)" if trains_at_once(r) else ""),
                                                  rows="after turn (all tasks trained in the first)"
                                                  if trains_at_once(r) else "after training task",
                                                  unlearned_blank=scenario_of(r) == "class" and not trains_at_once(r)))
        if len(r.curve_iterations):
            samples = (r.config.get("train") or {}).get("eval_samples")
            on = f" (up to {samples} evaluation samples of each task)" if samples else ""
            written.append(plots.plot_task_curves(r.curve_iterations, r.curve_accuracy, r.curve_task,
                                                  out_dir / f"{stem}-curves.png",
                                                  title=f"{experiment_title([r])}{r.method}, seed {r.seed}{on}",
                                                  task_ends=r.task_ends if len(r.task_ends) else None,
                                                  rows=r.acc_matrix))
        else:                                    # a run without curves: an earlier run's plot would pass for its
            (out_dir / f"{stem}-curves.png").unlink(missing_ok=True)
    summary = comparison_summary(results)
    colours = palette(summary)                       # a method keeps its colour in both plots
    note = plot_note(results)
    written.append(plots.plot_method_comparison(summary, out_dir / "comparison.png", colours,
                                                f"{experiment_title(results)}methods compared", note=note))
    partly = partly_measured(results)
    label = {m: f"{m} ({partly[m]})" if m in partly else m for m in summary}
    points = {label[m]: p for m, p in accuracy_synops(results).items()}
    if points:
        written.append(plots.plot_accuracy_vs_synops(points, out_dir / "accuracy-synops.png",
                                                     {label[m]: c for m, c in colours.items()}, note=note,
                                                     title=f"{experiment_title(results)}accuracy against synaptic "
                                                           "operations"))
    else:                                            # runs without measures: an earlier report's plot would stay
        (out_dir / "accuracy-synops.png").unlink(missing_ok=True)
    return written
