"""`convbench compare OLD.json NEW.json`: the cells two runs have in common, side by side.

Each matched cell's per-process medians (independent values; `--repetitions` sets how many a run
has) are compared with Welch's t-test on their logarithms: a change is reported only when it is
significant at `alpha` and larger than `--min-change`, so run-to-run noise does not read as a
regression. The machine of each file is named; two files from different machines are shown side
by side without a significance verdict unless `--across-machines` asks for one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report.tables import compare_table
from ..results.compare import compare_runs, machine_factor, machine_name
from ..results.document import ResultsDoc
from ..results.drift import common_shift, pass_drift
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
        help="significance level of the test (0.05)",
    )
    p.add_argument(
        "--min-change",
        type=bounded_float(0.0, 10.0, "min-change"),
        default=0.02,
        help="smallest relative change that is called a change (0.02)",
    )
    p.add_argument(
        "--across-machines",
        action="store_true",
        help="test for changes even when the two files come from different machines",
    )
    args = p.parse_args(argv)
    console, err = consoles()
    old, new = read_results(args.old, err), read_results(args.new, err)
    if old is None or new is None:
        return 2
    for label, path, doc in (("old", args.old, old), ("new", args.new, new)):
        console.print(f"{label}: {path} on {machine_name(doc)}", highlight=False, markup=False)
    rows = compare_runs(old, new, args.alpha, args.min_change, args.across_machines)
    n_old, n_new = len(old.records), len(new.records)
    console.print(compare_table(rows, n_old - len(rows), n_new - len(rows)))
    for line in machine_lines(old, new, rows):
        console.print(line, highlight=False, markup=False)
    return 0


def machine_lines(old: ResultsDoc, new: ResultsDoc, rows: list[dict]) -> list[str]:
    """What moved every cell alike (the machine, or a change to all of them), beside what each
    run saw of its machine: the drift between its passes and its own peak probe."""
    out = []
    shift = common_shift(rows)
    if shift is not None:
        out.append(
            f"every compared cell: the median new/old is {shift:.3f} over {len(rows)} cells "
            "(a shift common to all of them: the machine's state, or a change made to all)"
        )
    for label, doc in (("old", old), ("new", new)):
        drift = pass_drift(doc.records, doc.header.get("config", {}).get("repetitions"))
        if drift is not None:
            change = ", ".join(f"{c:+.1%}" for c in drift["change"])
            out.append(
                f"{label} run, the median cell pass by pass: {change} "
                f"(range {drift['range']:.1%}, {drift['cells']} cells)"
            )
    probes = []
    threads = {t for doc in (old, new) if isinstance(doc.peak, dict) for t in doc.peak}
    for t in sorted((t for t in threads if str(t).isdigit()), key=int):
        factor = machine_factor(old, new, int(t))
        if factor is not None:
            probes.append(f"{factor:.3f} at {t} thread(s)")
    if probes:
        out.append(
            f"the runs' own peak probes (median over passes), time new/old: {', '.join(probes)}"
        )
    return out
