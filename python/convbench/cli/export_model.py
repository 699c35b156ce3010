"""`convbench export-model --shapes FILE -o MODEL.pb`: the shapes file's stand-in model (its
`model` section) written as a frozen GraphDef, every op named as the description's nodes are,
with the weights every run uses. `convbench extract` reads it back like any user's model, so the
file-model path can be compared with the built-in one on the same computation."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from ..spec.model import ModelSpec
from .common import consoles, load_shapes_or_report, write_atomic

__all__ = ["export_model_main"]


def _extract(path: Path, pb: Path, model: ModelSpec, err: Console) -> bool:
    from ..frameworks.tf_import import extract_section
    from ..spec.errors import SpecError
    from ..spec.shapes import parse_shapes
    from .extract import shapes_text

    try:
        convs, section, _ = extract_section(pb, shapes_dir=path.parent, name=model.name)
        section["blocks"] = [b.model_dump(mode="json", by_alias=True) for b in model.blocks]
        section["partsearch"] = list(model.partsearch)
        text = shapes_text(pb, convs, section)
        parse_shapes(text, source=str(path))
    except SpecError as e:
        err.print(f"[bold red]convbench export-model:[/] {path}: {e}", highlight=False)
        return False
    return write_atomic(path, text, err, "convbench export-model")


def export_model_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="convbench export-model", description=__doc__)
    p.add_argument("--shapes", required=True, type=Path, help="workload file (shapes.yaml)")
    p.add_argument("-o", "--output", required=True, type=Path, help="the .pb file to write")
    p.add_argument(
        "--extract",
        type=Path,
        metavar="YAML",
        help="also write the shapes file `convbench extract` makes of it, with the model's "
        "name, blocks and partsearch carried over (results then compare by name)",
    )
    args = p.parse_args(argv)
    console, err = consoles()
    shapes = load_shapes_or_report(args.shapes, err)
    if shapes is None:
        return 2
    model = shapes.model
    if not isinstance(model, ModelSpec):
        what = (
            "no `model` section" if model is None else "a model file's section, not a description"
        )
        err.print(f"[bold red]convbench export-model:[/] {args.shapes} has {what}", highlight=False)
        return 2
    from ..frameworks.tf_conv import configure_tf
    from ..frameworks.tf_model import graph_def

    tf = configure_tf(1)
    g = model.graph
    data = graph_def(tf, g, None, g.weights())  # batch left unknown: --batch sets it
    out: Path = args.output
    if not write_atomic(out, data, err, "convbench export-model"):
        return 2
    if args.extract is not None and not _extract(args.extract, out, model, err):
        return 2
    console.print(
        f"{out}: model '{model.name}' as a frozen GraphDef, {len(g.nodes)} nodes, input "
        f"'{g.input}' {list(g.input_shape[1:])}, output '{g.output}' ({len(data):,} bytes)",
        highlight=False,
    )
    return 0
