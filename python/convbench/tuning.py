"""MetaSchedule tuning: `convbench tune`, and the databases a build reads.

Layout of a database root:

    <root>/<target key>/<workload key>/database_workload.json
                                       database_tuning_record.json
                                       summary.json        (written when that workload finished)

One directory per target and workload: an interrupted tune loses at most the workload in
progress (the records it already measured stay usable), and a rerun skips finished workloads.
The target key holds the LLVM CPU and core count, so a database tuned on one CPU is never used for
another. Roots are searched in order: the user's (``--db`` / ``$CONVBENCH_TUNING_DIR`` /
``~/.cache/convbench/tuning``), then the one shipped in the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import Workload

__all__ = [
    "SHIPPED_DB",
    "TunedSchedule",
    "TuningDatabase",
    "default_db_dir",
    "task_dir",
    "tune_many",
    "tune_task",
    "tune_workload",
]

SHIPPED_DB = Path(__file__).parent / "tuning_db"


def default_db_dir() -> Path:
    from .kernels import cache_home

    env = os.environ.get("CONVBENCH_TUNING_DIR")
    return Path(env) if env else cache_home() / "tuning"


def target_key(target: Any) -> str:
    attrs = target.attrs
    mcpu = str(attrs.get("mcpu", "generic"))
    cores = int(attrs.get("num-cores", 0))
    digest = hashlib.sha256(str(target).encode()).hexdigest()[:8]
    return f"{mcpu}-c{cores}-{digest}"


def task_dir(root: Path, key: str, target: Any) -> Path:
    """Where a database root keeps one task (`key`) tuned for one target."""
    return root / target_key(target) / key


def workload_key(w: Workload) -> str:
    digest = hashlib.sha256(json.dumps(w.problem(), sort_keys=True).encode()).hexdigest()[:10]
    return f"{w.key}-{digest}"


@dataclass(frozen=True)
class TunedSchedule:
    mod: Any  # the scheduled IRModule
    trace_digest: str  # identifies the record: part of the kernel cache key
    source: Path  # the database directory it came from
    summary: dict[str, Any]  # summary.json, or {} for a tune that was interrupted


class TuningDatabase:
    def __init__(self, roots: list[Path] | None = None) -> None:
        self.roots = roots if roots is not None else [default_db_dir(), SHIPPED_DB]

    def directory(self, root: Path, w: Workload, target: Any) -> Path:
        return task_dir(root, workload_key(w), target)

    def lookup(
        self, w: Workload, target: Any, mod: Any, honour_summary: bool = True
    ) -> TunedSchedule | None:
        """The best tuned schedule of `mod` for exactly this target, from the first root that
        has one; None when no root does, or (with `honour_summary`) when the finished tune found
        that the default schedule is faster."""
        return self.lookup_key(workload_key(w), target, mod, honour_summary)

    def lookup_key(
        self, key: str, target: Any, mod: Any, honour_summary: bool = True
    ) -> TunedSchedule | None:
        """lookup() for any task kept under `key` (a conv workload, or a fused model function)."""
        from tvm.s_tir import meta_schedule as ms

        for root in self.roots:
            d = task_dir(root, key, target)
            wl, rec = d / "database_workload.json", d / "database_tuning_record.json"
            if not (wl.exists() and rec.exists()):
                continue
            summary = _read_json(d / "summary.json")
            if honour_summary and summary.get("use") == "default":
                return None
            db = ms.database.JSONDatabase(path_workload=str(wl), path_tuning_record=str(rec))
            sch = ms.tir_integration.compile_tir(db, mod, target)
            if sch is None:
                continue
            digest = hashlib.sha256(str(sch.trace).encode()).hexdigest()[:16]
            return TunedSchedule(sch.mod, digest, d, summary)
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def tune_workload(
    w: Workload,
    threads: int,
    trials: int,
    root: Path,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Tunes one workload for `threads` threads into `root`; returns its summary.

    Skips a workload whose summary says it finished with at least `trials` trials. The tuning
    runner times candidates with a pool of `threads` workers (TVM_NUM_THREADS), so the best
    record is best at the thread count it will run with. Afterwards the best tuned kernel and
    the default-schedule kernel are both timed by the harness, and the summary records which
    one later runs use: a tuned kernel that loses to the default schedule is not used.
    """
    from .kernels import KernelCache, conv_module

    def time_both(target: Any) -> tuple[float | None, float]:
        tuned = KernelCache(cache_dir, tuning=TuningDatabase([root])).conv(w, threads)
        default = KernelCache(cache_dir).conv(w)
        tuned_s = measure_kernel(w, threads, tuned.path) if tuned.tuned_from else None
        return tuned_s, measure_kernel(w, threads, default.path)

    return tune_task(w.key, workload_key(w), conv_module(w), threads, trials, root, time_both, log)


def tune_task(
    label: str,
    key: str,
    mod: Any,
    threads: int,
    trials: int,
    root: Path,
    time_both: Callable[[Any], tuple[float | None, float]],
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """One task (a conv workload or a fused model function, kept under `key`) tuned for
    `threads` threads into `root`; returns its summary. `time_both(target)` times the best tuned
    schedule (None when there is none) and the hand-written one after tuning; the faster is the
    one builds use. A task whose summary says it finished with at least `trials` is skipped."""
    from .machine import host_target

    target = host_target(threads)
    d = task_dir(root, key, target)
    summary = _read_json(d / "summary.json")
    if summary.get("trials", 0) >= trials:
        log(f"{label} t{threads}: already tuned ({summary['trials']} trials), skipped")
        return {**summary, "skipped": True}
    d.mkdir(parents=True, exist_ok=True)
    (d / "summary.json").unlink(missing_ok=True)  # stale once tuning resumes
    elapsed, best = run_metaschedule(mod, target, threads, trials, d)
    tuned_s, default_s = time_both(target)
    use = "tuned" if tuned_s is not None and tuned_s < default_s else "default"
    summary = {
        "workload": label,
        "threads": threads,
        "target": str(target),
        "trials": trials,
        "records": len(best),
        "tune_s": elapsed,
        "metaschedule_best_s": min(best, default=None),  # MetaSchedule runner's own figure
        "best_run_s": tuned_s,
        "default_run_s": default_s,
        "use": use,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (d / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def run_metaschedule(
    mod: Any, target: Any, threads: int, trials: int, d: Path
) -> tuple[float, list[float]]:
    """MetaSchedule on `mod` into the database in `d`; (seconds spent, the records' run times)."""
    from tvm.s_tir import meta_schedule as ms

    db = ms.database.JSONDatabase(
        path_workload=str(d / "database_workload.json"),
        path_tuning_record=str(d / "database_tuning_record.json"),
    )
    saved = os.environ.get("TVM_NUM_THREADS")
    os.environ["TVM_NUM_THREADS"] = str(threads)  # inherited by the runner's worker processes
    t0 = time.perf_counter()
    try:
        ms.tune_tir(
            mod,
            target,
            str(d / "logs"),
            max_trials_global=trials,
            num_trials_per_iter=min(64, trials),
            database=db,
            num_tuning_cores=len(os.sched_getaffinity(0)),
            seed=0,
        )
    finally:
        if saved is None:
            os.environ.pop("TVM_NUM_THREADS", None)
        else:
            os.environ["TVM_NUM_THREADS"] = saved
    elapsed = time.perf_counter() - t0
    # Failed candidates are stored with a run time of 1e10 s: only real measurements count.
    runs = [[float(x.value) for x in r.run_secs] for r in db.get_all_tuning_records() if r.run_secs]
    return elapsed, [sum(r) / len(r) for r in runs if max(r) < 1e9]


def measure_kernel(w: Workload, threads: int, kernel_path: Path) -> float:
    """Median time of a kernel at `threads`, measured exactly as a run measures it."""
    from .harness import RunConfig
    from .run import measure_task, run_worker

    task = measure_task(w, threads, "tvm", "native", RunConfig(), kernel_path=kernel_path)
    return float(run_worker(task, 600)["median_s"])


def tune_many(
    specs: list[Any],
    threads: list[int],
    batches: list[int],
    trials: int,
    root: Path,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Tunes every (workload, batch, threads) in turn; a KeyboardInterrupt keeps what finished."""
    from .report import fmt_time

    jobs = [(Workload(s, b), t) for s in specs for b in batches for t in threads]
    summaries = []
    for i, (w, t) in enumerate(jobs, 1):
        log(f"[{i}/{len(jobs)}] tuning {w.key} for {t} thread(s), {trials} trials")
        summary = tune_workload(w, t, trials, root, cache_dir, log=log)
        if not summary.get("skipped"):
            log(
                f"[{i}/{len(jobs)}] {w.key} t{t}: best tuned {fmt_time(summary['best_run_s'])}, "
                f"default {fmt_time(summary['default_run_s'])}: runs use the {summary['use']} "
                f"kernel ({summary['tune_s']:.0f} s of tuning)"
            )
        summaries.append(summary)
    return summaries
