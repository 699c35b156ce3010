"""`convbench compare OLD.json NEW.json`: the cells two runs have in common, side by side.

Each matched cell's per-sample times are compared with a two-sided Mann-Whitney U test (as
google/benchmark's compare.py does): a change is reported only when it is significant at `alpha`,
so run-to-run noise does not read as a regression.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report.tables import compare_table
from ..results.compare import compare_runs
from .common import bounded_float, consoles, read_results

__all__ = ["compare_main"]


def compare_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="convbench compare",
        description="Compare the cells two runs have in common, sample by sample.",
    )
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument(
        "--alpha",
        type=bounded_float(0.0, 0.5, "significance level"),
        default=0.05,
        help="significance level of the Mann-Whitney U test (0.05)",
    )
    args = p.parse_args(argv)
    console, err = consoles()
    old, new = read_results(args.old, err), read_results(args.new, err)
    if old is None or new is None:
        return 2
    rows = compare_runs(old, new, args.alpha)
    n_old, n_new = len(old.records), len(new.records)
    console.print(compare_table(rows, n_old - len(rows), n_new - len(rows)))
    return 0
