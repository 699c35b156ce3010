"""`convbench plot RESULTS.json -o DIR`: every plot the results have data for, as PNG and SVG."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report.plot import write_plots
from .common import consoles, read_results

__all__ = ["plot_main"]

FORMATS = ("png", "svg")


def _formats(text: str) -> list[str]:
    wanted = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(FORMATS)}, got {text!r}"
        )
    return wanted


def plot_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="convbench plot",
        description="Plot a results file: the ladder, thread scaling, kernels against peak, "
        "per-layer times and partsearch, whichever the results have data for.",
    )
    p.add_argument("results", type=Path, help="a JSON file written by convbench")
    p.add_argument("-o", "--out", type=Path, default=Path("."), help="output directory (.)")
    p.add_argument(
        "--format", type=_formats, default=list(FORMATS), help="png,svg (both by default)"
    )
    args = p.parse_args(argv)
    console, err = consoles()
    doc = read_results(args.results, err)
    if doc is None:
        return 2
    written, skipped = write_plots(doc, args.out, args.format)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    for message in skipped:
        console.print(f"skipped: {message}", highlight=False)
    return 0
