"""`convbench --shapes shapes.yaml --threads 1,4,8 [--batch 1,100] [--json PATH]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .harness import RunConfig
from .spec import SpecError, load_spec

__all__ = ["main"]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return sorted(dict.fromkeys(values))


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convbench",
        description="Build TVM kernels for the convolutions in a shapes file, check them against "
        "TensorFlow, and time both natively and from Python, each cell in its own pinned process. "
        "`convbench tune --help` tunes kernels for this CPU.",
    )
    p.add_argument("--version", action="version", version=f"convbench {__version__}")
    p.add_argument("--shapes", required=True, type=Path, help="workload file (shapes.yaml)")
    p.add_argument("--threads", type=_int_list, default=[1], help="thread counts, e.g. 1,4,8")
    p.add_argument("--batch", type=_int_list, default=[1], help="batch sizes, e.g. 1,100")
    p.add_argument("--json", type=Path, default=None,
                   help="results file (default: convbench-results/run-<time>.json)")
    p.add_argument("--samples", type=_positive_int, default=10, help="samples per cell (10)")
    p.add_argument("--min-sample-time", type=_positive_float, default=0.01, metavar="S",
                   help="minimum seconds per sample; iterations are calibrated to reach it (0.01)")
    p.add_argument("--warmup", type=_positive_float, default=0.05, metavar="S",
                   help="warm-up seconds before calibration (0.05)")
    p.add_argument("--rtol", type=_positive_float, default=1e-5,
                   help="max |TVM - TF| allowed, relative to max |TF| (1e-5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="kernel cache (default: $CONVBENCH_CACHE_DIR or ~/.cache/convbench)")
    p.add_argument("--cell-timeout", type=_positive_float, default=600.0, metavar="S",
                   help="give up on one cell after this many seconds (600)")
    return p


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.2f} us"
    return f"{s * 1e9:.1f} ns"


COLUMNS = ("workload", "batch", "thr", "backend/path", "median", "p10..p90", "CV", "GFLOP/s",
           "%peak", "par", "flags")


def _row(r: dict[str, Any]) -> list[str]:
    flags = []
    if r.get("oversubscribed"):
        flags.append("oversubscribed")
    if r.get("unstable"):
        flags.append("unstable")
    if not r.get("pinned", True):
        flags.append("unpinned")
    return [
        r["workload"], str(r["batch"]), str(r["threads"]), f"{r['backend']}/{r['path']}",
        _fmt_time(r["median_s"]), f"{_fmt_time(r['p10_s'])}..{_fmt_time(r['p90_s'])}",
        f"{r['cv'] * 100:.1f}%", f"{r['gflops']:.1f}" if r.get("gflops") else "-",
        f"{r['pct_peak']:.0f}%" if r.get("pct_peak") is not None else "-",
        f"{r['parallelism']:.2f}" if r.get("parallelism") is not None else "-", ",".join(flags),
    ]


class Display:
    """Prints each result as it arrives, under a progress bar."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
        )
        self.task: Any = None
        self.widths = [18, 5, 3, 14, 11, 23, 6, 8, 6, 5, 0]

    def line(self, cells: list[str], style: str = "") -> None:
        text = "  ".join(c.ljust(w) if w else c for c, w in zip(cells, self.widths))
        self.console.print(text.rstrip(), style=style or None, highlight=False)

    def __call__(self, kind: str, p: dict[str, Any]) -> None:
        c = self.console
        if kind == "start":
            self.progress.start()
            self.task = self.progress.add_task("building kernels", total=p["cells"])
        elif kind == "build_start":
            self.progress.update(self.task, description=f"building {p['workload']} b{p['batch']}")
        elif kind == "built":
            how = "cached" if p["cached"] else f"built in {p['build_s']:.1f} s"
            c.print(f"kernel {p['workload']} b{p['batch']}: {how} ({p['schedule']})", highlight=False)
        elif kind == "peak":
            how = "cached" if p["cached"] else "measured"
            c.print(f"fp32 peak at {p['threads']} thread(s): {p['gflops']:.1f} GFLOP/s "
                    f"({p['isa']}, CPUs {p['cpus']}, {how})", highlight=False)
        elif kind == "overhead":
            floor = ", ".join(f"{k} {_fmt_time(v['per_call_s'])}" for k, v in p["paths"].items())
            c.print(f"per-call floor on an empty TVM kernel: {floor}", highlight=False)
            self.progress.update(self.task, description="checking against TF")
        elif kind == "check":
            status = "ok" if p["ok"] else "FAIL"
            c.print(
                f"check {p['workload']} b{p['batch']}: {status}  max_abs_err={p['max_abs_err']:.3g}"
                f"  max_rel_err={p['max_rel_err']:.3g} (rtol {p['rtol']:g})",
                style=None if p["ok"] else "bold red", highlight=False,
            )
            self.progress.update(self.task, description="measuring")
            self._header_pending = True
        elif kind == "record":
            if getattr(self, "_header_pending", True):
                self.line(list(COLUMNS), style="bold")
                self._header_pending = False
            self.line(_row(p), style="yellow" if p.get("unstable") or p.get("oversubscribed") else "")
            self.progress.advance(self.task)
        elif kind == "error":
            what = " ".join(f"{k}={v}" for k, v in p.items() if k not in ("error", "stage"))
            c.print(f"[bold red]error[/] ({p['stage']} {what}): {p['error']}", highlight=False)
            if p["stage"] == "measure":
                self.progress.advance(self.task)
        elif kind == "warning":
            c.print(f"[yellow]warning:[/] {p['message']}", highlight=False)

    def stop(self) -> None:
        self.progress.stop()


def summary_table(doc: dict[str, Any]) -> Table:
    """Median per workload, batch and thread count, one column per path, and TF eager / TVM."""
    from .run import PATHS

    t = Table(title="median time per call (last column: tf/eager / tvm/native, >1 = TVM faster)")
    present = {(r["backend"], r["path"]) for r in doc["records"]}
    paths = [p for p in PATHS if p in present] + sorted(present - set(PATHS))
    for col in ("workload", "batch", "thr", *[f"{b}/{p}" for b, p in paths], "eager/native"):
        t.add_column(col, no_wrap=True)
    by_key: dict[tuple[str, int, int], dict[tuple[str, str], float]] = {}
    for r in doc["records"]:
        by_key.setdefault((r["workload"], r["batch"], r["threads"]), {})[
            (r["backend"], r["path"])] = r["median_s"]
    for (name, batch, threads), m in by_key.items():
        ratio = "-"
        if ("tvm", "native") in m and ("tf", "eager") in m:
            ratio = f"{m[('tf', 'eager')] / m[('tvm', 'native')]:.2f}"
        t.add_row(name, str(batch), str(threads), *[_fmt_time(m.get(k)) for k in paths], ratio)
    return t


def overhead_table(doc: dict[str, Any]) -> Table:
    """The ladder: kernel, native dispatch, and what each Python path adds over native."""
    t = Table(title="where the time goes (us, and share of that path's total)")
    for col in ("workload", "batch", "thr", "backend", "kernel", "native dispatch", "python paths: added over native"):
        t.add_column(col, no_wrap=True)
    for e in doc["overheads"]:
        def rung(key: str) -> str:
            r = e.get(key)
            return f"{r['us']:.2f} ({r['share']:.0%})" if r else "-"

        python = "  ".join(f"{p} +{v['us']:.2f} ({v['share']:.0%})"
                           for p, v in e["python_overhead"].items())
        t.add_row(e["workload"], str(e["batch"]), str(e["threads"]), e["backend"],
                  rung("kernel"), rung("native_dispatch"), python)
    return t


def build_tune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convbench tune",
        description="Tune every conv of a shapes file with TVM's MetaSchedule, per thread count, "
        "into a database that later runs read. Interrupt at any time: finished workloads are "
        "kept, and running the same command again resumes.",
    )
    p.add_argument("--shapes", required=True, type=Path, help="workload file (shapes.yaml)")
    p.add_argument("--threads", type=_int_list, default=[1], help="thread counts, e.g. 1,2")
    p.add_argument("--batch", type=_int_list, default=[1], help="batch sizes (1)")
    p.add_argument("--trials", type=_positive_int, default=64, help="trials per workload (64)")
    p.add_argument("--db", type=Path, default=None,
                   help="database root (default: $CONVBENCH_TUNING_DIR or ~/.cache/convbench/tuning)")
    p.add_argument("--cache-dir", type=Path, default=None, help="kernel cache, as for a run")
    return p


def tune_main(argv: list[str]) -> int:
    args = build_tune_parser().parse_args(argv)
    console = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    try:
        specs = load_spec(args.shapes)
    except SpecError as e:
        err.print(f"[bold red]convbench: invalid shapes file[/]\n{e}", highlight=False)
        return 2
    from .tuning import default_db_dir, tune_many

    root = args.db or default_db_dir()
    console.print(f"tuning database: {root}", highlight=False)
    try:
        summaries = tune_many(specs, args.threads, args.batch, args.trials, root,
                              args.cache_dir, log=lambda m: console.print(m, highlight=False))
    except KeyboardInterrupt:
        err.print(f"interrupted: finished workloads are saved in {root}; run the same command "
                  "again to resume")
        return 130
    t = Table(title=f"tuned with {args.trials} trials per workload")
    for col in ("workload", "threads", "tune time", "best tuned", "default schedule", "used"):
        t.add_column(col, no_wrap=True)
    for s in summaries:
        t.add_row(s["workload"], str(s["threads"]), f"{s['tune_s']:.0f} s",
                  _fmt_time(s.get("best_run_s")), _fmt_time(s.get("default_run_s")), s["use"])
    console.print(t)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "tune":
        return tune_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    # soft_wrap: a long row or message stays on one line, whatever the terminal's width.
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=250)  # a log file gets the whole table
    err = Console(stderr=True, soft_wrap=True)
    try:
        specs = load_spec(args.shapes)
    except SpecError as e:
        err.print(f"[bold red]convbench: invalid shapes file[/]\n{e}", highlight=False)
        return 2

    from .machine import TargetError
    from .run import RunOptions, Runner

    json_path = args.json or Path("convbench-results") / time.strftime("run-%Y%m%d-%H%M%S.json")
    options = RunOptions(
        threads=args.threads, batches=args.batch,
        config=RunConfig(warmup_s=args.warmup, min_sample_s=args.min_sample_time,
                         samples=args.samples),
        rtol=args.rtol, seed=args.seed, cache_dir=args.cache_dir, cell_timeout_s=args.cell_timeout,
    )
    display = Display(console)
    runner = Runner(specs, options, json_path=json_path, on_event=display)
    try:
        doc = runner.run()
    except KeyboardInterrupt:
        display.stop()
        err.print(f"interrupted: the results measured so far are in {json_path}")
        return 130
    except TargetError as e:
        display.stop()
        err.print(f"[bold red]convbench:[/] {e}", highlight=False)
        return 2
    display.stop()
    if doc["records"]:
        console.print(summary_table(doc))
    if doc.get("overheads"):
        console.print(overhead_table(doc))
    n_fail = len(doc["errors"]) + sum(1 for c in doc["checks"] if not c["ok"])
    console.print(
        f"{len(doc['records'])} measurements, {len(doc['errors'])} errors, "
        f"{sum(1 for c in doc['checks'] if not c['ok'])} failed checks in "
        f"{doc['duration_s']:.0f} s; results: {json_path}", highlight=False,
    )
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
