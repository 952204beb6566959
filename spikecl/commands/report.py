"""``spikecl report RESULTS.h5|DIR ...``: every kind's tables and plots (:mod:`spikecl.report`)."""

from __future__ import annotations

import argparse
import sys

from spikecl.commands import user_path


def add_command(sub) -> None:
    report = sub.add_parser("report", help="print tables and write plots from results files of any kind",
                            description="Print each kind's tables (continual: accuracy matrices and a method "
                                        "comparison, mean ± std over seeds; ca3, sparsey, sweep: their summaries) "
                                        "from results files or folders of them, and write PNG plots. Other files "
                                        "in a folder (exported networks, ...) are skipped with a note; a sweep's "
                                        "folder gives its summaries (sweep.h5, final/sweep.h5). Each experiment "
                                        "folder below a named folder gets its own table, its plots in that "
                                        "folder (or with --plots DIR, where several of one kind are reported, "
                                        "in DIR/<its path below the folder named>). Files named alone put their "
                                        "plots in their folder, so files beside them that are not named need --plots DIR or "
                                        "--no-plots (their plots would be replaced), as do files lying directly "
                                        "in two folders named together (one table).")
    report.add_argument("paths", nargs="+", type=user_path, help="results files (.h5) or folders of them")
    plots = report.add_mutually_exclusive_group()
    plots.add_argument("--plots", type=user_path, help="folder for PNG plots (default: the folder named, each "
                                                  "experiment folder below it, or that of the files named; several "
                                                  "experiments of one kind: each in a subfolder at its path below "
                                                  "the folder named)")
    plots.add_argument("--no-plots", action="store_true", help="print tables only")
    report.add_argument("--no-matrices", action="store_true",
                        help="continual runs: print only the comparison table")
    report.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                        help="a Python file or module of your own that registers the experiment kinds of the "
                             "results (repeatable; see spikecl.plugins; methods and datasets need none to report)")
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from spikecl.plugins import load_plugins
    from spikecl.report import report_paths

    load_plugins(args.plugin)
    unreadable = report_paths(args.paths, args.plots, plots=not args.no_plots, detail=not args.no_matrices)
    if unreadable:                               # a table of fewer runs than the folder holds: not a success
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        print(f"spikecl: error: {unreadable[0]}{more} could not be read as results (skipped above); the tables "
              "leave it out", file=sys.stderr)
        return 2
    return 0
