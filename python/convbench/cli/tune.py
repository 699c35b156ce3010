"""`convbench tune --shapes FILE [--threads 1,2] [--trials 64] [--db DIR] [--model blocks|all]`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from ..build.cache import writable_dir
from ..build.tuning_db import default_db_dir
from ..measure.rpc import RpcError
from ..report.format import fmt_time, table
from ..run import RunOptions
from ..spec.errors import SpecError
from ..tune import TuneDevice, tune_many, tune_model
from .common import (
    MAX_TRIALS,
    add_rpc_args,
    add_workload_args,
    bounded_int,
    check_memory,
    connect_remote,
    consoles,
    load_shapes_or_report,
    resolve_cache_dir,
)

__all__ = ["build_tune_parser", "tune_main"]


def build_tune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convbench tune",
        description="Tune every conv of a shapes file with TVM's MetaSchedule, per thread count, "
        "into a database that later runs read. Interrupt at any time: finished workloads are "
        "kept, and running the same command again resumes.",
    )
    add_workload_args(p)
    p.add_argument(
        "--trials",
        type=bounded_int(1, MAX_TRIALS, "positive integer"),
        default=64,
        help="trials per workload (64)",
    )
    p.add_argument(
        "--db",
        type=Path,
        default=None,
        help="database root (default: $CONVBENCH_TUNING_DIR or ~/.cache/convbench/tuning)",
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="kernel cache, as for a run")
    p.add_argument(
        "--model",
        choices=("blocks", "all"),
        default=None,
        help="tune the model section's fused functions instead of the convs: those of its "
        "blocks, or all of the model's",
    )
    add_rpc_args(p)
    return p


def _progress(console: Console, model: bool) -> Any:
    used = "builds use the {use} schedule" if model else "runs use the {use} kernel"
    default = "hand-written" if model else "default"

    def show(e: dict[str, Any]) -> None:
        at = f"[{e['index']}/{e['total']}]"
        s = e.get("summary", {})
        if e["event"] == "start":
            text = f"{at} tuning {e['label']} for {e['threads']} thread(s), {e['trials']} trials"
        elif e["event"] == "skipped":
            text = f"{e['label']} t{e['threads']}: already tuned ({s['trials']} trials), skipped"
        else:
            text = (
                f"{at} {e['label']} t{e['threads']}: best tuned {fmt_time(s['best_run_s'])}, "
                f"{default} {fmt_time(s['default_run_s'])}: "
                + used.format(use=s["use"])
                + f" ({s['tune_s']:.0f} s of tuning)"
            )
        console.print(text, highlight=False)

    return show


def tune_main(argv: list[str]) -> int:
    args = build_tune_parser().parse_args(argv)
    console, err = consoles()
    shapes = load_shapes_or_report(args.shapes, err)
    if shapes is None:
        return 2
    if args.model and shapes.model is None:
        err.print(f"[bold red]convbench tune:[/] {args.shapes} has no `model` section")
        return 2
    options = RunOptions(
        threads=args.threads,
        batches=args.batch,
        model=shapes.model if args.model else None,
        convs=not args.model,
    )
    if not check_memory(shapes, options, args.max_memory, err):
        return 2
    root = args.db or default_db_dir()
    problem = writable_dir(root)
    if problem is not None:
        err.print(f"[bold red]convbench tune:[/] the tuning database {problem}", highlight=False)
        return 2
    args.cache_dir = resolve_cache_dir(args.cache_dir, err)
    remote = connect_remote(args, err, "convbench tune")
    if remote is False:
        return 2
    try:
        device = TuneDevice(remote) if remote is not None else TuneDevice()
    except RpcError as e:
        err.print(f"[bold red]convbench tune:[/] {e}", highlight=False)
        return 2
    console.print(f"tuning database: {root}", highlight=False)
    if remote is not None:
        console.print(
            f"measuring on {device.servers} server(s) under key {remote.key!r} at "
            f"{remote.host}:{remote.port}: {device.info.get('cpu_model') or '?'}, target "
            f"{device.target()}",
            highlight=False,
        )
    progress = _progress(console, bool(args.model))
    try:
        if args.model:
            assert shapes.model is not None
            summaries = tune_model(
                shapes.model,
                args.model,
                args.threads,
                args.batch,
                args.trials,
                root,
                progress,
                device,
            )
        else:
            summaries = tune_many(
                shapes.convs,
                args.threads,
                args.batch,
                args.trials,
                root,
                args.cache_dir,
                progress,
                device,
            )
    except (SpecError, RpcError) as e:  # a model file's cut that cannot reach TVM, a device
        err.print(f"[bold red]convbench tune:[/] {e}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err.print(
            f"interrupted: finished workloads are saved in {root}; run the same command "
            "again to resume"
        )
        return 130
    t = table(
        f"tuned with {args.trials} trials per workload",
        ("workload", "threads", "tune time", "best tuned", "default schedule", "used"),
    )
    for s in summaries:
        t.add_row(
            s["workload"],
            str(s["threads"]),
            f"{s['tune_s']:.0f} s",
            fmt_time(s.get("best_run_s")),
            fmt_time(s.get("default_run_s")),
            s["use"],
        )
    console.print(t)
    return 0
