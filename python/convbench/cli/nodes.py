"""`convbench nodes --shapes FILE`: the model's named nodes, the names --from/--to take."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report.format import table
from .common import consoles, load_shapes_or_report

__all__ = ["nodes_main"]


def nodes_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="convbench nodes", description=__doc__)
    p.add_argument("--shapes", required=True, type=Path, help="workload file (shapes.yaml)")
    args = p.parse_args(argv)
    console, err = consoles()
    shapes = load_shapes_or_report(args.shapes, err)
    if shapes is None:
        return 2
    model = shapes.model
    if model is None:
        err.print(f"[bold red]convbench:[/] {args.shapes} has no `model` section", highlight=False)
        return 2
    g = model.graph
    t = table(
        f"{model.name}: {len(g.nodes)} nodes, {len(g.convs())} convs",
        ("#", "node", "kind", "output shape (batch 1)"),
    )
    for i, n in enumerate(g.nodes):
        t.add_row(str(i), n.name, n.kind, str(tuple(n.shape)))
    console.print(t)
    return 0
