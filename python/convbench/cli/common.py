"""What every subcommand shares: argument types, the workload and timing options, the consoles,
reading the shapes file once, running with the live display, and the closing line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ..build.target import TargetError
from ..native.harness import RunConfig
from ..paths import parse_paths
from ..report.live import ConsoleReporter
from ..report.tables import print_report
from ..results.document import ResultsDoc, ResultsError
from ..run import Runner, RunOptions
from ..spec.errors import SpecError
from ..spec.shapes import ShapesFile, load_shapes

__all__ = [
    "add_timing_args",
    "add_workload_args",
    "consoles",
    "default_json_path",
    "execute",
    "failures",
    "int_list",
    "non_negative_int",
    "load_shapes_or_report",
    "paths_arg",
    "positive_float",
    "positive_int",
    "read_results",
    "run_options",
]


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {text!r}"
        )
    return sorted(dict.fromkeys(values))


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def cache_modes(text: str) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not modes or set(modes) - {"warm", "cold"}:
        raise argparse.ArgumentTypeError(f"expected warm, cold or warm,cold, got {text!r}")
    return modes


def paths_arg(text: str) -> tuple[tuple[str, str], ...]:
    try:
        return parse_paths(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_workload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shapes", required=True, type=Path, help="workload file (shapes.yaml)")
    p.add_argument("--threads", type=int_list, default=[1], help="thread counts, e.g. 1,4,8 (1)")
    p.add_argument("--batch", type=int_list, default=[1], help="batch sizes, e.g. 1,100 (1)")


def add_timing_args(p: argparse.ArgumentParser) -> None:
    """How cells are sampled and run: every command that measures takes these."""
    p.add_argument("--samples", type=positive_int, default=10, help="samples per cell (10)")
    p.add_argument(
        "--min-sample-time",
        type=positive_float,
        default=0.01,
        metavar="S",
        help="minimum seconds per sample; iterations are calibrated to reach it (0.01)",
    )
    p.add_argument(
        "--warmup",
        type=positive_float,
        default=0.05,
        metavar="S",
        help="warm-up seconds before calibration (0.05)",
    )
    p.add_argument(
        "--warmup-iters",
        type=non_negative_int,
        default=10,
        metavar="N",
        help="... and at least this many warm-up calls, however long a call takes (10)",
    )
    p.add_argument(
        "--repetitions",
        type=positive_int,
        default=3,
        metavar="N",
        help="measure each cell in N fresh processes, interleaved with the other cells; "
        "statistics pool them and compare tests their medians (3)",
    )
    p.add_argument(
        "--cache",
        type=cache_modes,
        default=("warm",),
        metavar="MODES",
        help="warm (the same arrays every call), cold (each call on copies of the arrays that "
        "together exceed the last-level cache: tvm/native, tf/kernel, tf/eager of single "
        "convs), or warm,cold (warm)",
    )
    p.add_argument(
        "--no-fork-server",
        dest="fork",
        action="store_false",
        help="a fresh interpreter for every cell instead of a child of a fork server that "
        "imported TF and TVM once (slower; the same pools and pinning)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="kernel cache (default: $CONVBENCH_CACHE_DIR or ~/.cache/convbench)",
    )
    p.add_argument(
        "--cell-timeout",
        type=positive_float,
        default=600.0,
        metavar="S",
        help="give up on one cell after this many seconds (600)",
    )


def consoles() -> tuple[Console, Console]:
    """stdout and stderr consoles. soft_wrap keeps a long row or message on one line; output
    that is not a terminal (a log file) gets tables at full width."""
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=250)
    return console, Console(stderr=True, soft_wrap=True)


def load_shapes_or_report(path: Path, err: Console) -> ShapesFile | None:
    """The shapes file, read once; None (message printed) when it is refused."""
    try:
        return load_shapes(path)
    except SpecError as e:
        err.print(f"[bold red]convbench: invalid shapes file[/]\n{e}", highlight=False)
        return None


def read_results(path: Path, err: Console) -> ResultsDoc | None:
    try:
        return ResultsDoc.load(path)
    except ResultsError as e:
        err.print(f"convbench: {path} is not a convbench results file ({e})", highlight=False)
        return None


def default_json_path(prefix: str) -> Path:
    return Path("convbench-results") / time.strftime(f"{prefix}-%Y%m%d-%H%M%S.json")


def run_options(args: argparse.Namespace, **extra: Any) -> RunOptions:
    """RunOptions from the arguments every run command shares, plus `extra` fields."""
    return RunOptions(
        threads=args.threads,
        batches=args.batch,
        config=RunConfig(
            warmup_s=args.warmup,
            min_sample_s=args.min_sample_time,
            samples=args.samples,
            warmup_iters=args.warmup_iters,
        ),
        seed=args.seed,
        repetitions=args.repetitions,
        fork=args.fork,
        caches=args.cache,
        cache_dir=args.cache_dir,
        cell_timeout_s=args.cell_timeout,
        **extra,
    )


def execute(
    shapes: ShapesFile, options: RunOptions, json_path: Path, console: Console, err: Console
) -> ResultsDoc | int:
    """Runs with the live display and prints the report: the results document, or the exit
    status when the run could not finish (interrupted: what was measured is in the JSON)."""
    reporter = ConsoleReporter(console)
    runner = Runner(shapes.convs, options, json_path=json_path, reporter=reporter)
    try:
        doc = runner.run()
    except KeyboardInterrupt:
        reporter.stop()
        err.print(f"interrupted: the results measured so far are in {json_path}")
        return 130
    except TargetError as e:
        reporter.stop()
        err.print(f"[bold red]convbench:[/] {e}", highlight=False)
        return 2
    reporter.stop()
    print_report(doc, console, details=False)
    return doc


def failures(doc: ResultsDoc) -> tuple[int, int]:
    """(errors, failed checks) of a finished run."""
    return len(doc.errors), sum(1 for c in doc.checks if not c["ok"])
