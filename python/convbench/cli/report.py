"""`convbench report RESULTS.json`: a results file's tables, printed again."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report.tables import print_report
from .common import consoles, read_results

__all__ = ["report_main"]


def report_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="convbench report", description="Print the tables of a results file again."
    )
    p.add_argument("results", type=Path, help="a JSON file written by convbench")
    args = p.parse_args(argv)
    console, err = consoles()
    doc = read_results(args.results, err)
    if doc is None:
        return 2
    print_report(doc, console)
    return 0
