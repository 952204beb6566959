"""``spikecl report RESULTS.h5|DIR ...``: every kind's tables and plots (:mod:`spikecl.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_command(sub) -> None:
    report = sub.add_parser("report", help="print tables and write plots from results files of any kind",
                            description="Print each kind's tables (continual: accuracy matrices and a method "
                                        "comparison, mean ± std over seeds; ca3, sparsey, sweep: their summaries) "
                                        "from results files or folders of them, and write PNG plots. Other files "
                                        "in a folder (exported networks, ...) are skipped with a note.")
    report.add_argument("paths", nargs="+", type=Path, help="results files (.h5) or folders of them")
    report.add_argument("--plots", type=Path, help="folder for PNG plots (default: beside the first results)")
    report.add_argument("--no-plots", action="store_true", help="print tables only")
    report.add_argument("--no-matrices", action="store_true",
                        help="continual runs: print only the comparison table")
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from spikecl.report import report_paths

    report_paths(args.paths, args.plots, plots=not args.no_plots, detail=not args.no_matrices)
    return 0
