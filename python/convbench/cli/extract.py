"""`convbench extract MODEL [-o FILE]`: a shapes file read from a TensorFlow model (frozen
GraphDef .pb, SavedModel directory, Keras .keras/.h5): every Conv2D, DepthwiseConv2dNative and
grouped conv with its count, and a `model` section that refers to the file, with the table of
its nodes. The file runs as it is: `convbench --shapes FILE`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from ..spec.errors import SpecError
from ..spec.shapes import parse_shapes
from .common import consoles, write_atomic

__all__ = ["extract_main", "shapes_text"]


def _dims(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W,C (integers), got {text!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"every dimension must be a positive integer: {text!r}")
    return dims


def _flow(d: dict[str, Any]) -> str:
    return yaml.safe_dump(d, default_flow_style=True, width=1 << 16, sort_keys=False).strip()


def shapes_text(model: Path, convs: list[dict[str, Any]], section: dict[str, Any]) -> str:
    """The shapes file: a header, the convs, and the model section, one flow mapping a line."""
    lines = [
        f"# Read by `convbench extract` from {model}: every convolution of the graph TF builds",
        "# (variables frozen, input shape static), with how often it occurs; pads a separate Pad",
        "# node adds are folded into `padding`, SpaceToBatchND/BatchToSpaceND into `dilation`.",
        "# The model section refers to the file; `nodes` is its node table (name, op, the nodes",
        "# it reads, output shape at batch 1): cut it with --from/--to, name `blocks` and",
        "# `partsearch` by these names. `digest` ties the table to the file.",
        "version: 1",
        "convs:",
    ]
    lines += [f"  - {_flow(c)}" for c in convs]
    lines.append("model:")
    for key, value in section.items():
        if key == "nodes":
            lines.append("  nodes:")
            lines += [f"    - {_flow(n)}" for n in value]
        else:
            lines.append(f"  {key}: {_flow({key: value})[1:-1].split(': ', 1)[1]}")
    return "\n".join(lines) + "\n"


def extract_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="convbench extract", description=__doc__)
    p.add_argument("model", type=Path, help="a frozen GraphDef .pb, SavedModel dir, .keras or .h5")
    p.add_argument("-o", "--output-file", type=Path, help="the shapes file to write (stdout)")
    p.add_argument(
        "--input-shape",
        type=_dims,
        metavar="H,W,C",
        help="the input's dimensions after the batch, where the model leaves them unknown",
    )
    p.add_argument("--output", metavar="NODE", help="the output node, where the graph has several")
    p.add_argument("--name", help="the model's name in results (the file's stem)")
    args = p.parse_args(argv)
    _, err = consoles()
    from ..frameworks.tf_import import extract_section

    out: Path | None = args.output_file
    shapes_dir = out.parent if out is not None else Path.cwd()
    try:
        convs, section, notes = extract_section(
            args.model, args.input_shape, args.output, shapes_dir, args.name
        )
        if not convs:
            raise SpecError(f"{args.model}: the model has no Conv2D or DepthwiseConv2dNative")
        text = shapes_text(args.model, convs, section)
        # what we write must load back as it is
        parse_shapes(text, source=str(out) if out is not None else "<extract>")
    except SpecError as e:
        err.print(f"[bold red]convbench extract:[/] {e}", highlight=False)
        return 2
    for note in notes:
        err.print(f"convbench extract: {note}", highlight=False)
    if out is None:
        sys.stdout.write(text)
        return 0
    if not write_atomic(out, text, err, "convbench extract"):
        return 2
    n = sum(c["count"] for c in convs)
    err.print(
        f"{out}: {len(convs)} conv shapes ({n} convs) and {len(section['nodes'])} nodes of "
        f"{args.model}",
        highlight=False,
    )
    return 0
