"""`convbench partsearch`: the research log's experiment. The model is timed from its input to
each of its partsearch nodes, in both frameworks along several paths; the six single convs run
in the same pass, so the model's conv time predicted from them (count x time) stands against the
measured model. Writes the JSON and the plot (time per prefix, one line per framework, path and
thread count) as a PNG."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

__all__ = ["partsearch_main", "plot"]

DEFAULT_PATHS = "tvm/native,tvm/python,tf/native-graph,tf/session,tf/eager,tf/kernel"


def plot(doc: dict[str, Any], png: Path) -> None:
    """Median time per prefix; x = the partsearch nodes in model order, as in the log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefixes = [w for w in doc["workloads"] if w.get("kind") in ("prefix", "model")]
    order = {w["name"]: i for i, w in enumerate(prefixes)}
    lines: dict[tuple[str, int, int], dict[int, float]] = {}
    for r in doc["records"]:
        if r["workload"] in order:
            key = (f"{r['backend']}/{r['path']}", r["threads"], r["batch"])
            lines.setdefault(key, {})[order[r["workload"]]] = r["median_s"]
    if not lines:
        raise ValueError("no prefix was measured: nothing to plot")
    fig, ax = plt.subplots(figsize=(10, 6))
    styles = ["-", "--", ":", "-."]
    threads = sorted({k[1] for k in lines})
    paths = sorted({k[0] for k in lines})
    palette = plt.get_cmap("tab10")
    for (path, t, b), pts in sorted(lines.items()):
        xs = sorted(pts)
        ax.plot(
            xs,
            [pts[x] for x in xs],
            styles[threads.index(t) % len(styles)],
            marker="o" if path.startswith("tvm/") else "^",
            color=palette(paths.index(path) % 10),
            label=f"{path} t{t}" + (f" b{b}" if b != 1 else ""),
        )
    ax.set_xticks(range(len(prefixes)))
    ax.set_xticklabels([w["to"] for w in prefixes], rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("median time per run (s)")
    ax.set_xlabel("model prefix: input -> node")
    ax.set_title(f"partsearch: {prefixes[0].get('model', '')} ({doc['machine']['cpu_model']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


def partsearch_main(argv: list[str]) -> int:
    from .cli import (
        _add_workload_args,
        _consoles,
        _load_shapes,
        _paths,
        _positive_float,
        _positive_int,
        execute,
        run_options,
    )

    p = argparse.ArgumentParser(prog="convbench partsearch", description=__doc__)
    _add_workload_args(p)
    p.add_argument("--json", type=Path, default=None, help="results file")
    p.add_argument("--png", type=Path, default=None, help="plot (default: the JSON's name, .png)")
    p.add_argument(
        "--paths",
        type=_paths,
        default=_paths(DEFAULT_PATHS),
        metavar="LIST",
        help=f"backend/path list ({DEFAULT_PATHS})",
    )
    p.add_argument("--samples", type=_positive_int, default=10, help="samples per cell (10)")
    p.add_argument("--min-sample-time", type=_positive_float, default=0.01, metavar="S")
    p.add_argument("--warmup", type=_positive_float, default=0.05, metavar="S")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--cell-timeout", type=_positive_float, default=600.0, metavar="S")
    p.add_argument(
        "--no-convs",
        action="store_true",
        help="skip the single convs (and the conv-time prediction)",
    )
    args = p.parse_args(argv)
    console, err = _consoles()
    loaded = _load_shapes(args.shapes, err)
    if loaded is None:
        return 2
    specs, model = loaded
    if model is None or not model.partsearch:
        err.print(
            f"[bold red]convbench partsearch:[/] {args.shapes} has no `model` section with "
            "`partsearch` nodes",
            highlight=False,
        )
        return 2
    json_path = args.json or Path("convbench-results") / time.strftime(
        "partsearch-%Y%m%d-%H%M%S.json"
    )
    png = args.png or json_path.with_suffix(".png")
    options = run_options(
        args,
        paths=args.paths,
        model=model,
        partsearch=True,
        convs=not args.no_convs,
        layers=False,
    )
    doc = execute(specs, options, json_path, console, err)
    if isinstance(doc, int):
        return doc
    try:
        plot(doc, png)
    except ValueError as e:
        err.print(f"[bold red]convbench partsearch:[/] no plot: {e}", highlight=False)
        return 1
    n_fail = len(doc["errors"]) + sum(1 for c in doc["checks"] if not c["ok"])
    console.print(
        f"{len(doc['records'])} measurements, {len(doc['errors'])} errors in "
        f"{doc['duration_s']:.0f} s; results: {json_path}; plot: {png}",
        highlight=False,
    )
    return 1 if n_fail else 0
