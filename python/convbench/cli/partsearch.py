"""`convbench partsearch`: the research log's experiment. The model is timed from its input to
each of its partsearch nodes, in both frameworks along several paths; the single convs run in the
same pass, so the model's conv time predicted from them (count x time) stands against the
measured model. Writes the JSON and the plot (time per prefix, one line per framework, path and
thread count) as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..paths import partsearch_paths
from ..report.plot import partsearch_plot
from .common import (
    add_timing_args,
    add_workload_args,
    check_memory,
    check_timing,
    consoles,
    default_json_path,
    execute,
    failures,
    load_shapes_or_report,
    paths_arg,
    resolve_cache_dir,
    run_options,
)

__all__ = ["partsearch_main"]

DEFAULT_PATHS = ",".join(f"{b}/{p}" for b, p in partsearch_paths())


def partsearch_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="convbench partsearch", description=__doc__)
    add_workload_args(p)
    p.add_argument("--json", type=Path, default=None, help="results file")
    p.add_argument("--png", type=Path, default=None, help="plot (default: the JSON's name, .png)")
    p.add_argument(
        "--paths",
        type=paths_arg,
        default=paths_arg(DEFAULT_PATHS),
        metavar="LIST",
        help=f"backend/path list ({DEFAULT_PATHS})",
    )
    add_timing_args(p)
    p.add_argument(
        "--no-convs",
        action="store_true",
        help="skip the single convs (and the conv-time prediction)",
    )
    p.add_argument(
        "--no-layers",
        action="store_true",
        help="skip the per-layer tables of the prefixes (and the plot's split of each prefix "
        "into its layers' kernels and the framework around them)",
    )
    args = p.parse_args(argv)
    console, err = consoles()
    shapes = load_shapes_or_report(args.shapes, err)
    if shapes is None:
        return 2
    if shapes.model is None or not shapes.model.partsearch:
        err.print(
            f"[bold red]convbench partsearch:[/] {args.shapes} has no `model` section with "
            "`partsearch` nodes",
            highlight=False,
        )
        return 2
    json_path = args.json or default_json_path("partsearch")
    png = args.png or json_path.with_suffix(".png")
    options = run_options(
        args,
        paths=args.paths,
        model=shapes.model,
        partsearch=True,
        convs=not args.no_convs,
        layers=not args.no_layers,
    )
    if not check_timing(args, err) or not check_memory(shapes, options, args.max_memory, err):
        return 2
    options.cache_dir = resolve_cache_dir(options.cache_dir, err)
    doc = execute(shapes, options, json_path, console, err)
    if isinstance(doc, int):
        return doc
    try:
        partsearch_plot(doc, png)
    except ValueError as e:
        err.print(f"[bold red]convbench partsearch:[/] no plot: {e}", highlight=False)
        return 1
    n_err, n_fail = failures(doc)
    console.print(
        f"{len(doc.records)} measurements, {n_err} errors in "
        f"{doc.duration_s:.0f} s; results: {json_path}; plot: {png}",
        highlight=False,
    )
    return 1 if n_err or n_fail else 0
