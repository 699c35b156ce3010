"""`convbench report RESULTS.json [--format table|json|gbench|csv] [-o FILE] [--html FILE]`:
a results file's tables printed again, or exported for other tools."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from ..report.export import gbench_json, to_csv
from ..report.format import WIDTH
from ..report.html import html_report
from ..report.tables import print_report
from ..results.document import ResultsDoc
from .common import consoles, read_results

__all__ = ["report_main"]

FORMATS = ("table", "json", "gbench", "csv")
EXPORTS: dict[str, Callable[[ResultsDoc], str]] = {
    "json": lambda doc: json.dumps(doc.to_json(), indent=1) + "\n",
    "gbench": lambda doc: json.dumps(gbench_json(doc), indent=1) + "\n",
    "csv": to_csv,
}


def report_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="convbench report",
        description="Print the tables of a results file again, or export it: convbench's JSON, "
        "Google Benchmark's JSON (for its tools/compare.py), CSV, or a self-contained HTML file.",
    )
    p.add_argument("results", type=Path, help="a JSON file written by convbench")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (the tables, default), json (convbench's), gbench (Google Benchmark's "
        "JSON), csv (one row per record)",
    )
    p.add_argument("-o", "--output", type=Path, help="write the export here (default: stdout)")
    p.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a self-contained HTML report"
    )
    args = p.parse_args(argv)
    console, err = consoles()
    doc = read_results(args.results, err)
    if doc is None:
        return 2
    try:
        if args.format == "table" and args.output is None:
            print_report(doc, console)
        elif args.format == "table":
            with open(args.output, "w") as f:
                print_report(doc, Console(file=f, width=WIDTH, color_system=None))
        else:
            text = EXPORTS[args.format](doc)
            if args.output is None:
                print(text, end="" if text.endswith("\n") else "\n")
            else:
                args.output.write_text(text)
        if args.html is not None:
            args.html.write_text(html_report(doc, title=f"convbench report: {args.results.name}"))
            err.print(f"wrote {args.html}", highlight=False)
    except OSError as e:
        err.print(f"convbench report: cannot write: {e}", highlight=False)
        return 2
    return 0
