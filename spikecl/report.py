"""``spikecl report``: tables and plots of results files of every kind, each summarised by its own kind.

Files named one by one must be results files; a folder contributes every ``*.h5`` results file under it
(recursively), and skips other files (exported networks, foreign or damaged HDF5) with a one-line note. A sweep's
folder (one holding ``sweep.h5``) contributes its summaries: ``sweep.h5`` and those of its subfolders (``final/``).
Each subfolder of a named folder is one experiment: where several hold runs of one kind, each gets its own table.
"""

from __future__ import annotations

import errno
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

from spikecl.atomic import check_name_fits, check_writable_folder
from spikecl.errors import ConfigError, ForeignFileError, ResultsError, check_type
from spikecl.hdf5_guard import READ_ERRORS, check_heaps
from spikecl.experiment_kind import kind, kind_names, report, summary
from spikecl.figures import require_plots
from spikecl.integrity import check_seal
from spikecl.io import SCHEMA, Run, read_run
from spikecl.paths import exists, is_dir, is_file
from spikecl.remedies import option
from spikecl.run_files import diverged_error, divergence_file, live_writer, pending_replacement


def collect(paths: Iterable[str | Path] | str | Path, note: Callable[[str], None] = print) -> dict[str, list[Run]]:
    """``{kind: [results files]}`` in the order of :func:`~spikecl.experiment_kind.kind_names`, files in path order
    (folders: sorted); a file named twice (or also inside a named folder) is read once.

    A file named in ``paths`` that is not a readable results file is a one-line :class:`ResultsError`; inside a
    folder it is skipped and ``note`` says why. A folder without any results file is an error.
    """
    by_kind: dict[str, list[Run]] = defaultdict(list)
    for (name, _), runs in collect_groups(paths, note).items():
        by_kind[name] += runs
    return dict(by_kind)


def collect_groups(paths: Iterable[str | Path] | str | Path, note: Callable[[str], None] = print,
                   unreadable: list[Path] | None = None) -> dict[tuple[str, Path | None], list[Run]]:
    """:func:`collect`'s files as ``{(kind, experiment folder): [results files]}``: the files found in a subfolder
    of a named folder are grouped by the folder they lie in (a sweep's summaries by the sweep's folder), since one
    folder holds one experiment; the files named, and those lying in a named folder itself, form one group per kind
    (folder None), as the user put them together. ``unreadable`` gets the files in a folder that were skipped as
    damaged (not another tool's or schema's file, nor one an ``--overwrite`` is to replace)."""
    unreadable = [] if unreadable is None else unreadable
    groups: dict[tuple[str, Path | None], list[Run]] = defaultdict(list)
    read: set[Path] = set()
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else list(map(Path, paths))    # one path, not its letters
    folders = [path for path in paths if is_dir(path, ResultsError)]
    for path in folders:                          # first: a file named too joins its folder's experiment
        found = skipped = 0
        for folder, file in _folder_files(path, note):
            try:
                where = _resolved(file)
            except ResultsError as exc:
                note(f"skipped: {exc}")
                skipped += 1
                unreadable.append(file)
                continue
            if where in read:
                found += 1
                continue
            read.add(where)
            try:
                run = _read(file)
            except ResultsError as exc:
                note(f"skipped: {exc}")
                skipped += 1
                if not isinstance(exc, ForeignFileError) and pending_replacement(file) is None:
                    unreadable.append(file)           # damaged: not another tool's, nor work to be replaced
                continue
            groups[run.kind, None if folder == path else folder].append(run)
            found += 1
        if not found:
            raise ResultsError(f"no readable results files under {path} ({skipped} skipped, see above)" if skipped
                               else f"no results files (*.h5) under {path}")
    for path in paths:
        if path not in folders and not exists(path, ResultsError) and not path.is_symlink():
            raise ResultsError(f"{path}: no such results file or folder")
        where = None if path in folders else _resolved(path)
        if where is not None and where not in read:
            read.add(where)
            run = _read(path)
            groups[run.kind, None].append(run)
    order = {name: i for i, name in enumerate(kind_names())}
    return {key: groups[key] for key in sorted(groups, key=lambda k: (order[k[0]], k[1] is not None, str(k[1])))}


def _resolved(path: Path) -> Path:
    """``path`` with its links followed (how a file named twice is recognised); a link loop is a one-line
    :class:`ResultsError`."""
    try:
        return path.resolve(strict=True)
    except (RuntimeError, OSError) as exc:          # a loop of links: RuntimeError before Python 3.13, then ELOOP
        if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
            return path.resolve()                   # a link to nothing, into a file, ...: said where it is read
        raise ResultsError(f"{path} cannot be followed to a file ({exc}); is it a loop of links?") from None


def _folder_files(path: Path, note: Callable[[str], None]) -> list[tuple[Path, Path]]:
    """(experiment folder, ``*.h5`` file) of the files a folder contributes: a sweep's summaries (its trials and
    final runs were made with other settings, so they are never one table); a sweep's ``final/`` folder, its runs
    (one per method and seed, each method at its chosen settings) and their summary; else its own and, by these
    rules, its subfolders' (a sweep below it gives its summaries; links to folders are not followed)."""
    if not is_file(path / "sweep.h5", ResultsError):
        for checkpoint in sorted(path.glob("*.ckpt")):          # a killed run: its table would not say it
            if checkpoint.with_suffix(".h5").exists():          # killed as it removed it: the run is finished
                continue
            results = checkpoint.with_suffix(".h5")
            writer, error = live_writer(results), diverged_error(results)
            note(f"not reported: {results} is being trained now (PID {writer}); report again when it has finished"
                 if writer else
                 f"not reported: {results} diverged ({error}; recorded in {divergence_file(results).name}: the same "
                 "settings diverge again)" if error else
                 f"not reported: {checkpoint} is the checkpoint of an unfinished run (continue it with spikecl run "
                 "--resume, or spikecl sweep for a sweep's run)")
        below = [pair for sub in _subfolders(path, note) for pair in _folder_files(sub, note)]
        return [(path, file) for file in sorted(path.glob("*.h5"))] + below
    folder = path.resolve()                                    # "." or a link inside a sweep's final/ too
    if folder.name == "final" and (folder.parent / "sweep.h5").is_file():
        planned = _planned_order(path / "sweep.h5")                   # others after, by name
        files = sorted(sorted(path.glob("*.h5")), key=lambda file: planned.get(file.name, len(planned)))
        return [(path, file) for file in files]
    note(f"{path} is a sweep: its summaries (sweep.h5, */sweep.h5); name a point's folder or final/ for its runs")
    others = [file.name for file in sorted(path.glob("*.h5")) if file.name != "sweep.h5"]
    if others:                             # e.g. runs made there with `spikecl run` before or after the sweep
        note(f"skipped: {len(others)} other results file(s) beside {path / 'sweep.h5'} ({', '.join(others[:3])}"
             f"{', ...' if len(others) > 3 else ''}); name them to report them")
    return [(path, file) for file in [path / "sweep.h5", *sorted(path.glob("*/sweep.h5"))]]


def _planned_order(summary: Path) -> dict[str, int]:
    """{results file name: its place} of the runs a sweep's ``final/sweep.h5`` summary records, in the order the
    sweep planned them (its methods' order, then seeds), so a report lists them as the sweep's summary does; {} for a
    summary that cannot say (damaged, or older than the record: the reading of it says so)."""
    try:
        recorded = json.loads(_read(summary).attrs.get("runs", "{}"))
    except (ResultsError, ValueError):
        return {}
    return {name: i for i, name in enumerate(recorded)} if isinstance(recorded, dict) else {}


def _subfolders(path: Path, note: Callable[[str], None]) -> list[Path]:
    """The folders in ``path`` (links to folders aside) whose files can be listed; ``note`` names the others."""
    try:
        below = sorted(sub for sub in path.iterdir() if sub.is_dir())
    except OSError as exc:                  # no permission, or removed while the report walks the tree
        note(f"skipped: {path} cannot be read ({exc.strerror or type(exc).__name__})")
        return []
    for link in [sub for sub in below if sub.is_symlink()]:
        note(f"skipped: {link} is a link to a folder (links are not followed); name it to report it")
    below = [sub for sub in below if not sub.is_symlink()]
    readable = [sub for sub in below if os.access(sub, os.R_OK | os.X_OK)]
    for sub in sorted(set(below) - set(readable)):
        note(f"skipped: {sub} cannot be read")
    return readable


def _read(path: Path) -> Run:
    """A results file of a kind this spikecl knows, holding what its kind's summary reads and not still to be
    replaced by an unfinished ``--overwrite`` (else a one-line :class:`ResultsError`)."""
    if pending := pending_replacement(path):
        raise ResultsError(pending)
    run = read_run(path)
    if run.kind not in kind_names():
        registers = option("pass the file that registers the kind with --plugin",
                           keyword="register the kind first with spikecl.experiment_kind.register_kind")
        raise ResultsError(f"{path} holds a {run.kind!r} run, a kind this spikecl does not know (upgrade spikecl, "
                           f"or {registers})")
    kind(run.kind).check(run)
    return run


def report_paths(paths: Iterable[str | Path] | str | Path, plots_dir: str | Path | None = None, plots: bool = True,
                 detail: bool = True) -> list[Path]:
    """Print every kind's summary of the results files under ``paths`` (one path, or several) and write its plots
    into ``plots_dir`` (default: the folder the results named together lie in; in two folders, a one-line error).
    A heading names each kind when there are several.

    Each experiment folder below a named folder (``spikecl report results``) gives a table of its own (headed by
    its kind and folder), whose plots go to that folder (or to ``plots_dir``; there, several of one
    kind to their paths below it); two tables whose plots would share a folder are refused before anything is
    printed. Returns the results files in the folders that could not be read (damaged), which the tables leave
    out."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else paths or []
    if isinstance(paths, bytes) or not isinstance(paths, Iterable):
        raise ConfigError(f"report: expected results files or folders (a path or a list of them), got {paths!r}")
    paths = [Path(check_type(p, (str, os.PathLike), "report: a results file or folder")) for p in paths]
    if not paths:
        raise ResultsError("report: no results files or folders given")
    plots_dir = Path(plots_dir) if plots_dir is not None else None
    if plots and plots_dir is not None:
        check_writable_folder(plots_dir, option("--plots"))
    unreadable: list[Path] = []
    found = collect_groups(paths, unreadable=unreadable)
    if plots:                                      # the files named read, before any table
        require_plots()
    split = {name for name, _ in found if sum(key[0] == name for key in found) > 1}    # kinds of several folders
    where = {key: _plots_folder(key[1], paths, plots_dir, key[0] in split) for key in found}
    direct = {key: {Path(run.path).parent.resolve(): Path(run.path).parent for run in runs}   # the folders
              for key, runs in found.items() if key[1] is None and key[0] != "sweep"}      # of a table put together
    if plots_dir is None:                          # its plots go where its files lie, not to the first path named
        where.update({key: next(iter(folders.values())) for key, folders in direct.items() if len(folders) == 1})
    if plots:                                      # before any table: a refusal prints nothing half-way
        if plots_dir is None and any(folder is None for _, folder in found):
            _check_one_folder(paths)
            spread = next((folders for folders in direct.values() if len(folders) > 1), None)
            if spread:
                shown = sorted(map(str, spread.values()))
                raise ResultsError(f"report: the results named lie directly in {len(spread)} folders ({shown[0]}, "
                                   f"{shown[1]}{', ...' if len(spread) > 2 else ''}): one table, whose plots would "
                                   f"replace those of the first folder: pass {option('--plots DIR')}, or "
                                   f"{option('--no-plots')}")
        _check_apart(where)
        if plots_dir is not None:
            _check_plots_folders_own_none(where.values(), found)
        for folder in dict.fromkeys(where.values()):
            check_writable_folder(folder, option("--plots") if plots_dir is not None else
                                  f"plots folder ({option('--plots DIR')} or {option('--no-plots')})")
        for key, runs in found.items():
            for path in kind(key[0]).plot_paths(runs, where[key]):
                try:
                    check_name_fits(path, "a plot")
                except ConfigError as exc:
                    raise ResultsError(f"report: {exc}, or pass {option('--no-plots')}") from None
    texts = {key: summary(kind(key[0]), runs, detail) for key, runs in found.items()}    # every refusal first
    drawn: dict[Path, set[str]] = defaultdict(set)
    for i, (key, runs) in enumerate(found.items()):
        if len(found) > 1:
            place = f" in {key[1]}" if key[1] is not None else ""        # an experiment folder below one named
            print(("\n" if i else "") + f"== {key[0]}{place}: {len(runs)} results file(s) ==")
        written = report(kind(key[0]), runs, where[key], plots=plots, detail=detail, text=texts[key])
        drawn[where[key]].update(Path(p).name for p in written)
    for folder, names in drawn.items() if plots else ():
        left = sorted(p.name for p in Path(folder).glob("*.png") if p.name not in names)
        if left:
            print(f"\nnote: {len(left)} more PNG file(s) in {folder} ({', '.join(left[:2])}"
                  f"{', ...' if len(left) > 2 else ''}) are not of these results: of files removed since, or others'")
    return unreadable


def _plots_folder(folder: Path | None, paths: list[Path], plots_dir: Path | None, split: bool) -> Path:
    """Where a group's plots go: ``plots_dir`` when given (for one experiment ``folder`` of several of its kind,
    ``split``: at the folder's path under the named folders' common folder); else those named together to the first
    path's folder and an experiment ``folder`` below a named folder to that folder."""
    first = paths[0] if paths[0].is_dir() else paths[0].parent
    if plots_dir is None:
        return first if folder is None else folder
    if folder is None or not split:
        return plots_dir
    common = Path(os.path.commonpath([p.resolve() for p in paths if p.is_dir()] or [folder.resolve()]))
    return plots_dir / folder.resolve().relative_to(common)


def _check_one_folder(paths: list[Path]) -> None:
    """A one-line :class:`ResultsError` when files named together lie in several folders, or beside results files
    not named: their plots, written to the first one's folder, would replace those of the files beside them there
    (e.g. a comparison of every method by one of the method named)."""
    files = [p for p in paths if not p.is_dir()]
    parents = sorted({str(_resolved(p).parent) for p in files})
    if len(parents) > 1:
        raise ResultsError(f"report: the files named lie in {len(parents)} folders ({', '.join(parents[:2])}"
                           f"{', ...' if len(parents) > 2 else ''}); their plots would replace those of the files "
                           f"beside them: pass {option('--plots DIR')}, or {option('--no-plots')}")
    kinds = {_plotted_kind(p) for p in files} - {None}
    if kinds and len(files) == len(paths):
        named = {_resolved(p) for p in files}
        beside = [f for f in sorted(files[0].parent.glob("*.h5"))
                  if _resolved_or_none(f) not in named and _plotted_kind(f) in kinds]
        if beside:
            raise ResultsError(f"report: {files[0].parent} holds {len(beside)} more results file(s) than those named "
                               f"({beside[0].name}{', ...' if len(beside) > 1 else ''}), whose plots theirs would "
                               f"replace: name the folder, pass {option('--plots DIR')}, or {option('--no-plots')}")


def _check_plots_folders_own_none(folders, found: dict) -> None:
    """A one-line :class:`ResultsError` where a folder of ``--plots DIR`` holds results files of a kind reported
    (``found``) other than those reported: their plots, of the same names, would be replaced (and a curves plot
    removed). Another kind's plots have other names."""
    reported = {_resolved_or_none(Path(run.path)) for runs in found.values() for run in runs}
    kinds = {name for name, _ in found}
    for folder in dict.fromkeys(folders):
        own = [f for f in sorted(Path(folder).glob("*.h5"))
               if _resolved_or_none(f) not in reported and _plotted_kind(f) in kinds]
        if own:
            raise ResultsError(f"report: {option('--plots')} {folder} holds {len(own)} results file(s) not reported "
                               f"({own[0].name}{', ...' if len(own) > 1 else ''}), whose plots these would replace: "
                               f"choose another folder, report that one, or pass {option('--no-plots')}")


def _plotted_kind(path: Path) -> str | None:
    """The kind of the results file ``path`` where its plots go by kind into its folder (not a sweep's summary,
    whose plot lies beside it under its own name), else None (another HDF5 file, or not readable)."""
    import h5py

    try:
        check_seal(path)                                 # damaged bytes never reach libhdf5, which may loop on them
        check_heaps(path, ResultsError)
        with h5py.File(path, "r") as f:
            found = str(f.attrs.get("kind")) if f.attrs.get("schema") == SCHEMA else None
    except (*READ_ERRORS, ResultsError):
        return None
    return None if found == "sweep" else found


def _resolved_or_none(path: Path) -> Path | None:
    """``path`` with its links followed, or None for a loop of links."""
    try:
        return _resolved(path)
    except ResultsError:
        return None


def _check_apart(where: dict[tuple[str, Path | None], Path]) -> None:
    """A one-line :class:`ResultsError` when two tables of one kind would write their plots to one folder (the
    second's PNGs would replace the first's)."""
    seen: dict[tuple[str, Path], tuple[str, Path | None]] = {}
    for key, folder in where.items():
        other = seen.setdefault((key[0], folder.resolve()), key)
        if other != key:
            raise ResultsError(f"report: the {key[0]} plots of {other[1] or 'the files named'} and of "
                               f"{key[1] or 'the files named'} would both go to {folder}; name them apart, pass "
                               f"{option('--plots DIR')}, or {option('--no-plots')}")
