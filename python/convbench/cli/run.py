"""`convbench --shapes shapes.yaml --threads 1,4,8 [--batch 1,100] [--json PATH]`: the run."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from ..run import RunOptions
from ..spec.errors import SpecError
from ..spec.model import ModelSpec
from ..version import __version__
from .common import (
    add_rpc_args,
    add_timing_args,
    add_workload_args,
    bounded_float,
    check_memory,
    check_timing,
    connect_remote,
    consoles,
    default_json_path,
    execute,
    failures,
    load_shapes_or_report,
    paths_arg,
    resolve_cache_dir,
    run_options,
)

__all__ = ["build_parser", "run_main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convbench",
        description="Build TVM kernels for the convolutions in a shapes file, check them against "
        "TensorFlow, and time both natively and from Python, each cell in its own pinned process. "
        "`convbench tune --help` tunes kernels for this CPU.",
    )
    p.add_argument("--version", action="version", version=f"convbench {__version__}")
    add_workload_args(p)
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default: convbench-results/run-<time>-<pid>.json)",
    )
    add_timing_args(p)
    p.add_argument(
        "--rtol",
        type=bounded_float(0.0, 1.0, "tolerance"),
        default=1e-5,
        help="max |TVM - TF| allowed, relative to max |TF| (1e-5)",
    )
    p.add_argument(
        "--paths",
        type=paths_arg,
        default=None,
        metavar="LIST",
        help="only these backend/path cells, e.g. tvm/native,tf/kernel (default: all)",
    )
    p.add_argument(
        "--algos",
        choices=("direct", "winograd", "auto"),
        default="auto",
        help="TVM's algorithm for 3x3 convs of stride 1: direct, Winograd F(2x2,3x3) or "
        "F(4x4,3x3) (the faster tile), or auto: whichever a short probe per conv and thread "
        "count times faster; the choice and both times are in the JSON's `algorithms` (auto)",
    )
    g = p.add_argument_group(
        "model", "the shapes file's `model` section: by default its blocks and the whole model"
    )
    g.add_argument(
        "--from",
        dest="cut_from",
        metavar="NODE",
        default=None,
        help="cut the model from this node (default: its input); with --to",
    )
    g.add_argument("--to", dest="cut_to", metavar="NODE", default=None, help="... to this node")
    g.add_argument("--no-model", action="store_true", help="single convs only")
    g.add_argument("--no-convs", action="store_true", help="model cuts only")
    g.add_argument(
        "--no-layers", action="store_true", help="skip the per-layer tables of model cuts"
    )
    r = add_rpc_args(p)
    r.add_argument("--no-tf", action="store_true", help="no TF cells (they always run here)")
    return p


def rpc_options(args: argparse.Namespace, options: RunOptions, err: Console) -> bool:
    """--rpc/--rpc-key/--no-tf into RunOptions; the tracker must answer now (False, message
    printed, when it does not)."""
    options.tf = not args.no_tf
    remote = connect_remote(args, err, "convbench")
    if remote is False:
        return False
    if remote is not None:
        options.rpc = (remote.host, remote.port, remote.key)
    return True


def model_options(
    args: argparse.Namespace, options: RunOptions, model: ModelSpec | None, err: Console
) -> bool:
    """Fills the model fields of RunOptions from the arguments; False (message printed) when
    they cannot be used."""
    wants_cut = args.cut_from is not None or args.cut_to is not None
    if model is None:
        if wants_cut or args.no_convs:
            err.print(
                f"[bold red]convbench:[/] {args.shapes} has no `model` section: nothing to cut",
                highlight=False,
            )
            return False
        return True
    if args.no_model:
        if wants_cut:
            err.print("[bold red]convbench:[/] --from/--to cut the model: drop --no-model")
            return False
        return True
    if args.no_convs:
        options.convs = False
    if wants_cut:
        if args.cut_to is None:
            err.print("[bold red]convbench:[/] --from needs --to (the node to stop at)")
            return False
        try:
            model.graph.cut(args.cut_from, args.cut_to)
        except SpecError as e:
            err.print(f"[bold red]convbench:[/] {e}", highlight=False)
            return False
        options.cuts = [(args.cut_from, args.cut_to)]
    options.model = model
    options.layers = not args.no_layers
    return True


def run_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    console, err = consoles()
    shapes = load_shapes_or_report(args.shapes, err)
    if shapes is None:
        return 2
    json_path = args.json or default_json_path("run")
    options = run_options(args, rtol=args.rtol, algos=args.algos)
    if args.paths:
        options.paths = args.paths
    if not model_options(args, options, shapes.model, err):
        return 2
    if not rpc_options(args, options, err):
        return 2
    if not check_timing(args, err) or not check_memory(shapes, options, args.max_memory, err):
        return 2
    options.cache_dir = resolve_cache_dir(options.cache_dir, err)
    doc = execute(shapes, options, json_path, console, err)
    if isinstance(doc, int):
        return doc
    n_err, n_fail = failures(doc)
    console.print(
        f"{len(doc.records)} measurements, {n_err} errors, {n_fail} failed checks in "
        f"{doc.duration_s:.0f} s; results: {json_path}",
        highlight=False,
    )
    return 1 if n_err or n_fail else 0
