"""`convbench --shapes shapes.yaml --threads 1,4,8 [--batch 1,100] [--json PATH]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .harness import RunConfig
from .report import fmt_time as _fmt_time
from .report import print_report, table
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
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, got {text!r}"
        )
    return sorted(dict.fromkeys(values))


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _paths(text: str) -> tuple[tuple[str, str], ...]:
    from .run import ALL_PATHS

    known = {f"{b}/{p}": (b, p) for b, p in ALL_PATHS}
    wanted = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in known]
    if unknown or not wanted:
        named = ", ".join(unknown) if unknown else repr(text)
        raise argparse.ArgumentTypeError(f"unknown path(s) {named}; known: {', '.join(known)}")
    return tuple(known[v] for v in dict.fromkeys(wanted))


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _add_workload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shapes", required=True, type=Path, help="workload file (shapes.yaml)")
    p.add_argument("--threads", type=_int_list, default=[1], help="thread counts, e.g. 1,4,8 (1)")
    p.add_argument("--batch", type=_int_list, default=[1], help="batch sizes, e.g. 1,100 (1)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convbench",
        description="Build TVM kernels for the convolutions in a shapes file, check them against "
        "TensorFlow, and time both natively and from Python, each cell in its own pinned process. "
        "`convbench tune --help` tunes kernels for this CPU.",
    )
    p.add_argument("--version", action="version", version=f"convbench {__version__}")
    _add_workload_args(p)
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default: convbench-results/run-<time>.json)",
    )
    p.add_argument("--samples", type=_positive_int, default=10, help="samples per cell (10)")
    p.add_argument(
        "--min-sample-time",
        type=_positive_float,
        default=0.01,
        metavar="S",
        help="minimum seconds per sample; iterations are calibrated to reach it (0.01)",
    )
    p.add_argument(
        "--warmup",
        type=_positive_float,
        default=0.05,
        metavar="S",
        help="warm-up seconds before calibration (0.05)",
    )
    p.add_argument(
        "--rtol",
        type=_positive_float,
        default=1e-5,
        help="max |TVM - TF| allowed, relative to max |TF| (1e-5)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="kernel cache (default: $CONVBENCH_CACHE_DIR or ~/.cache/convbench)",
    )
    p.add_argument(
        "--paths",
        type=_paths,
        default=None,
        metavar="LIST",
        help="only these backend/path cells, e.g. tvm/native,tf/kernel (default: all)",
    )
    p.add_argument(
        "--cell-timeout",
        type=_positive_float,
        default=600.0,
        metavar="S",
        help="give up on one cell after this many seconds (600)",
    )
    _add_model_args(p)
    return p


def _add_model_args(p: argparse.ArgumentParser) -> None:
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


COLUMNS = (
    "workload",
    "batch",
    "thr",
    "backend/path",
    "median",
    "p10..p90",
    "CV",
    "GFLOP/s",
    "%peak",
    "par",
    "flags",
)


def _row(r: dict[str, Any]) -> list[str]:
    flags = []
    if r.get("oversubscribed"):
        flags.append("oversubscribed")
    if r.get("unstable"):
        flags.append("unstable")
    if not r.get("pinned", True):
        flags.append("unpinned")
    return [
        r["workload"],
        str(r["batch"]),
        str(r["threads"]),
        f"{r['backend']}/{r['path']}",
        _fmt_time(r["median_s"]),
        f"{_fmt_time(r['p10_s'])}..{_fmt_time(r['p90_s'])}",
        f"{r['cv'] * 100:.1f}%",
        f"{r['gflops']:.1f}" if r.get("gflops") else "-",
        f"{r['pct_peak']:.0f}%" if r.get("pct_peak") is not None else "-",
        f"{r['parallelism']:.2f}" if r.get("parallelism") is not None else "-",
        ",".join(flags),
    ]


class Display:
    """Prints each result as it arrives, under a progress bar."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: Any = None
        self.widths = [18, 5, 3, 14, 11, 23, 6, 8, 6, 5, 0]

    def line(self, cells: list[str], style: str = "") -> None:
        text = "  ".join(c.ljust(w) if w else c for c, w in zip(cells, self.widths, strict=True))
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
            c.print(
                f"kernel {p['workload']} b{p['batch']}: {how} ({p['schedule']})", highlight=False
            )
        elif kind == "peak":
            how = "cached" if p["cached"] else "measured"
            c.print(
                f"fp32 peak at {p['threads']} thread(s): {p['gflops']:.1f} GFLOP/s "
                f"({p['isa']}, CPUs {p['cpus']}, {how})",
                highlight=False,
            )
        elif kind == "overhead":
            c.print(
                f"harness overhead: {_fmt_time(p['per_call_s'])} per call (empty kernel, "
                "native loop)",
                highlight=False,
            )
            self.progress.update(self.task, description="checking against TF")
        elif kind == "check":
            status = "ok" if p["ok"] else "FAIL"
            c.print(
                f"check {p['workload']} b{p['batch']}: {status}  max_abs_err={p['max_abs_err']:.3g}"
                f"  max_rel_err={p['max_rel_err']:.3g} (rtol {p['rtol']:g})",
                style=None if p["ok"] else "bold red",
                highlight=False,
            )
            self.progress.update(self.task, description="measuring")
            self._header_pending = True
        elif kind == "record":
            if getattr(self, "_header_pending", True):
                self.line(list(COLUMNS), style="bold")
                self._header_pending = False
            self.line(
                _row(p), style="yellow" if p.get("unstable") or p.get("oversubscribed") else ""
            )
            self.progress.advance(self.task)
        elif kind == "error":
            what = " ".join(f"{k}={v}" for k, v in p.items() if k not in ("error", "stage"))
            c.print(f"[bold red]error[/] ({p['stage']} {what}): {p['error']}", highlight=False)
            if p["stage"] == "measure":
                self.progress.advance(self.task)
        elif kind == "layers":
            c.print(
                f"layers {p['workload']} b{p['batch']} t{p['threads']}: sum of the parts / "
                f"whole: TVM {p['tvm_sum_vs_whole']:.1%}, TF {p['tf_sum_vs_whole']:.1%}",
                highlight=False,
            )
        elif kind == "warning":
            c.print(f"[yellow]warning:[/] {p['message']}", highlight=False)

    def stop(self) -> None:
        self.progress.stop()


def _consoles() -> tuple[Console, Console]:
    """stdout and stderr consoles. soft_wrap keeps a long row or message on one line; output
    that is not a terminal (a log file) gets tables at full width."""
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=250)
    return console, Console(stderr=True, soft_wrap=True)


def _load_specs(path: Path, err: Console) -> list[Any] | None:
    try:
        return load_spec(path)
    except SpecError as e:
        err.print(f"[bold red]convbench: invalid shapes file[/]\n{e}", highlight=False)
        return None


def _load_model(path: Path, err: Console) -> tuple[bool, Any]:
    """(ok, the model section or None)."""
    from .model import load_model

    try:
        return True, load_model(path)
    except SpecError as e:
        err.print(f"[bold red]convbench: invalid model section[/]\n{e}", highlight=False)
        return False, None


def _load_shapes(path: Path, err: Console) -> tuple[list[Any], Any] | None:
    """(the convs, the model section or None), or None when the file is refused (message
    printed)."""
    specs = _load_specs(path, err)
    if specs is None:
        return None
    ok, model = _load_model(path, err)
    return (specs, model) if ok else None


def _model_options(args: argparse.Namespace, options: Any, model: Any, err: Console) -> bool:
    """Fills the model fields of RunOptions from the arguments; False (message printed) when
    they cannot be used."""
    from .model import Graph

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
            Graph.from_spec(model).cut(args.cut_from, args.cut_to)
        except SpecError as e:
            err.print(f"[bold red]convbench:[/] {e}", highlight=False)
            return False
        options.cuts = [(args.cut_from, args.cut_to)]
    options.model = model
    options.layers = not args.no_layers
    return True


def build_tune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convbench tune",
        description="Tune every conv of a shapes file with TVM's MetaSchedule, per thread count, "
        "into a database that later runs read. Interrupt at any time: finished workloads are "
        "kept, and running the same command again resumes.",
    )
    _add_workload_args(p)
    p.add_argument("--trials", type=_positive_int, default=64, help="trials per workload (64)")
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
    return p


def tune_main(argv: list[str]) -> int:
    args = build_tune_parser().parse_args(argv)
    console, err = _consoles()
    loaded = _load_shapes(args.shapes, err)
    if loaded is None:
        return 2
    specs, model = loaded
    if args.model and model is None:
        err.print(f"[bold red]convbench tune:[/] {args.shapes} has no `model` section")
        return 2
    from .modeltuning import tune_model
    from .tuning import default_db_dir, tune_many

    root = args.db or default_db_dir()
    console.print(f"tuning database: {root}", highlight=False)
    log = lambda m: console.print(m, highlight=False)  # noqa: E731
    try:
        if args.model:
            summaries = tune_model(
                model, args.model, args.threads, args.batch, args.trials, root, log=log
            )
        else:
            summaries = tune_many(
                specs, args.threads, args.batch, args.trials, root, args.cache_dir, log=log
            )
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
            _fmt_time(s.get("best_run_s")),
            _fmt_time(s.get("default_run_s")),
            s["use"],
        )
    console.print(t)
    return 0


def _read_results(path: Path, err: Console) -> dict[str, Any] | None:
    import json

    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
            raise ValueError("no 'records' list")
    except (OSError, ValueError) as e:
        err.print(f"convbench: {path} is not a convbench results file ({e})", highlight=False)
        return None
    return doc


def compare_main(argv: list[str]) -> int:
    from .compare import compare_runs, compare_table

    p = argparse.ArgumentParser(
        prog="convbench compare",
        description="Compare the cells two runs have in common, sample by sample.",
    )
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument(
        "--alpha",
        type=_positive_float,
        default=0.05,
        help="significance level of the Mann-Whitney U test (0.05)",
    )
    args = p.parse_args(argv)
    console, err = _consoles()
    old, new = _read_results(args.old, err), _read_results(args.new, err)
    if old is None or new is None:
        return 2
    rows = compare_runs(old, new, args.alpha)
    n_old, n_new = len(old["records"]), len(new["records"])
    console.print(compare_table(rows, n_old - len(rows), n_new - len(rows)))
    return 0


def report_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="convbench report", description="Print the tables of a results file again."
    )
    p.add_argument("results", type=Path, help="a JSON file written by convbench")
    args = p.parse_args(argv)
    console, err = _consoles()
    doc = _read_results(args.results, err)
    if doc is None:
        return 2
    print_report(doc, console)
    return 0


def run_options(args: argparse.Namespace, **extra: Any) -> Any:
    """RunOptions from the arguments every run command shares, plus `extra` fields."""
    from .run import RunOptions

    return RunOptions(
        threads=args.threads,
        batches=args.batch,
        config=RunConfig(
            warmup_s=args.warmup, min_sample_s=args.min_sample_time, samples=args.samples
        ),
        seed=args.seed,
        cache_dir=args.cache_dir,
        cell_timeout_s=args.cell_timeout,
        **extra,
    )


def execute(
    specs: list[Any], options: Any, json_path: Path, console: Console, err: Console
) -> dict[str, Any] | int:
    """Runs with the live display and prints the report: the results document, or the exit
    status when the run could not finish (interrupted: what was measured is in the JSON)."""
    from .machine import TargetError
    from .run import Runner

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
    print_report(doc, console)
    return doc


def nodes_main(argv: list[str]) -> int:
    """`convbench nodes --shapes FILE`: the model's named nodes, the names --from/--to take."""
    p = argparse.ArgumentParser(prog="convbench nodes", description=nodes_main.__doc__)
    p.add_argument("--shapes", required=True, type=Path, help="workload file (shapes.yaml)")
    args = p.parse_args(argv)
    console, err = _consoles()
    ok, model = _load_model(args.shapes, err)
    if not ok:
        return 2
    if model is None:
        err.print(f"[bold red]convbench:[/] {args.shapes} has no `model` section", highlight=False)
        return 2
    from .model import Graph

    g = Graph.from_spec(model)
    t = table(
        f"{model.name}: {len(g.nodes)} nodes, {len(g.convs())} convs",
        ("#", "node", "kind", "output shape (batch 1)"),
    )
    for i, n in enumerate(g.nodes):
        t.add_row(str(i), n.name, n.kind, str(tuple(n.shape)))
    console.print(t)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "tune":
        return tune_main(argv[1:])
    if argv and argv[0] == "report":
        return report_main(argv[1:])
    if argv and argv[0] == "compare":
        return compare_main(argv[1:])
    if argv and argv[0] == "partsearch":
        from .partsearch import partsearch_main

        return partsearch_main(argv[1:])
    if argv and argv[0] == "nodes":
        return nodes_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    console, err = _consoles()
    loaded = _load_shapes(args.shapes, err)
    if loaded is None:
        return 2
    specs, model = loaded

    json_path = args.json or Path("convbench-results") / time.strftime("run-%Y%m%d-%H%M%S.json")
    options = run_options(args, rtol=args.rtol)
    if args.paths:
        options.paths = args.paths
    if not _model_options(args, options, model, err):
        return 2
    doc = execute(specs, options, json_path, console, err)
    if isinstance(doc, int):
        return doc
    n_fail = len(doc["errors"]) + sum(1 for c in doc["checks"] if not c["ok"])
    console.print(
        f"{len(doc['records'])} measurements, {len(doc['errors'])} errors, "
        f"{sum(1 for c in doc['checks'] if not c['ok'])} failed checks in "
        f"{doc['duration_s']:.0f} s; results: {json_path}",
        highlight=False,
    )
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
