"""`convbench tune`: MetaSchedule on single convs, or on a model's distinct fused functions, per
thread count, into a database that later builds read (build.tuning_db).

One directory per target and task: an interrupted tune loses at most the task in progress (the
records it already measured stay usable), and a rerun skips finished tasks. After tuning, the best
tuned schedule and the default (hand-written) one are both timed by the harness in a worker, as a
run measures, and the summary records which one builds use. Nothing here prints: progress goes to
a callback as events, and the summaries are returned.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .build.cache import KernelCache
from .build.compute import conv_module
from .build.relax import distinct_functions, relax_module, task_module, to_primfuncs
from .build.schedules import schedule_primfunc
from .build.target import host_target
from .build.tuning_db import TuningDatabase, read_summary, task_dir, workload_key
from .cpus import plan_cpus
from .measure.pool import run_worker
from .measure.tasks import TimeFuncTask
from .native.harness import RunConfig
from .run import measure_task
from .spec.conv import ConvSpec, ConvWorkload
from .spec.model import ModelSpec

__all__ = [
    "Progress",
    "measure_kernel",
    "model_tasks",
    "run_metaschedule",
    "tune_many",
    "tune_model",
    "tune_task",
    "tune_workload",
]

# progress(event): {"event": "start", "index", "total", "label", "threads", "trials"} before a
# task; {"event": "skipped", ...} for a finished one; {"event": "done", ..., "summary"} after it.
Progress = Callable[[dict[str, Any]], None]


def _quiet(event: dict[str, Any]) -> None:
    pass


def tune_task(
    label: str,
    key: str,
    mod: Any,
    threads: int,
    trials: int,
    root: Path,
    time_both: Callable[[Any], tuple[float | None, float]],
) -> dict[str, Any]:
    """One task (a conv workload or a fused model function, kept under `key`) tuned for
    `threads` threads into `root`; returns its summary. `time_both(target)` times the best tuned
    schedule (None when there is none) and the hand-written one after tuning; the faster is the
    one builds use. A task whose summary says it finished with at least `trials` is skipped."""
    target = host_target(threads)
    d = task_dir(root, key, target)
    summary = read_summary(d)
    if summary.get("trials", 0) >= trials:
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
            # MetaSchedule's 30 s default fails every candidate of a tiny workload when the
            # machine is busy (a build that waits for a core is not a broken build)
            builder=ms.builder.LocalBuilder(timeout_sec=600),
            runner=ms.runner.LocalRunner(timeout_sec=600),
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


# --- single convs ----------------------------------------------------------------------------
def measure_kernel(w: ConvWorkload, threads: int, kernel_path: Path) -> float:
    """Median time of a kernel at `threads`, measured exactly as a run measures it."""
    task = measure_task(w, threads, "tvm", "native", RunConfig(), kernel=kernel_path)
    return float(run_worker(task, 600)["median_s"])


def tune_workload(
    w: ConvWorkload, threads: int, trials: int, root: Path, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Tunes one conv workload for `threads` threads into `root`; returns its summary.

    The tuning runner times candidates with a pool of `threads` workers (TVM_NUM_THREADS), so
    the best record is best at the thread count it will run with; a tuned kernel that loses to
    the default schedule afterwards is not used.
    """

    def time_both(target: Any) -> tuple[float | None, float]:
        tuned = KernelCache(cache_dir, tuning=TuningDatabase([root])).conv(w, threads)
        default = KernelCache(cache_dir).conv(w)
        tuned_s = measure_kernel(w, threads, tuned.path) if tuned.tuned_from else None
        return tuned_s, measure_kernel(w, threads, default.path)

    return tune_task(w.key, workload_key(w), conv_module(w), threads, trials, root, time_both)


def _run_jobs(
    jobs: list[tuple[str, int, Callable[[], dict[str, Any]]]], trials: int, progress: Progress
) -> list[dict[str, Any]]:
    """Runs (label, threads, tune) jobs in turn; a KeyboardInterrupt keeps what finished."""
    summaries = []
    for i, (label, t, tune) in enumerate(jobs, 1):
        where = {"index": i, "total": len(jobs), "label": label, "threads": t, "trials": trials}
        progress({"event": "start", **where})
        summary = tune()
        event = "skipped" if summary.get("skipped") else "done"
        progress({"event": event, **where, "summary": summary})
        summaries.append(summary)
    return summaries


def tune_many(
    specs: list[ConvSpec],
    threads: list[int],
    batches: list[int],
    trials: int,
    root: Path,
    cache_dir: Path | None = None,
    progress: Progress = _quiet,
) -> list[dict[str, Any]]:
    """Tunes every (conv workload, batch, threads) in turn."""
    jobs = []
    for s in specs:
        for b in batches:
            w = ConvWorkload(s, b)
            for t in threads:
                jobs.append(
                    (w.key, t, lambda w=w, t=t: tune_workload(w, t, trials, root, cache_dir))
                )
    return _run_jobs(jobs, trials, progress)


# --- a model's fused functions ---------------------------------------------------------------
def model_tasks(spec: ModelSpec, which: str, batch: int) -> dict[str, tuple[str, Any]]:
    """The distinct fused functions of the model's blocks (`which`="blocks") or of the whole
    model ("all"): {func_key: (name, PrimFunc)}."""
    g = spec.graph
    cuts = [(b.start, b.stop) for b in spec.blocks] if which == "blocks" else [(None, g.output)]
    out: dict[str, tuple[str, Any]] = {}
    for start, stop in cuts:
        part = g.cut(start, stop)
        mod = to_primfuncs(relax_module(part, batch, part.weights()), fuse=True)
        for key, item in distinct_functions(mod).items():
            out.setdefault(key, item)
    return out


def time_function(mod: Any, target: Any, threads: int) -> float:
    """Median time of the one-function module `mod`, compiled for `target`, on random arguments
    (its last parameter is the output), measured in a worker as a run measures."""
    import tvm

    func = mod["main"]
    shapes = [[int(d) for d in p.shape] for p in func.params]
    with tempfile.TemporaryDirectory(prefix="convbench-tune-") as tmp:
        lib = Path(tmp) / "f.so"
        with target:
            tvm.compile(mod, target=target).export_library(str(lib))
        task = TimeFuncTask(kernel_path=str(lib), shapes=shapes, cpus=list(plan_cpus(threads).cpus))
        return float(run_worker(task, 600)["median_s"])


def _tune_function(key: str, label: str, func: Any, t: int, trials: int, root: Path) -> dict:
    from tvm import s_tir

    mod = task_module(func)

    def time_both(target: Any) -> tuple[float | None, float]:
        rec = TuningDatabase([root]).lookup_key(key, target, mod, honour_summary=False)
        sch = s_tir.Schedule(mod)
        schedule_primfunc(sch)
        tuned_s = time_function(rec.mod, target, t) if rec is not None else None
        return tuned_s, time_function(sch.mod, target, t)

    return tune_task(label, key, mod, t, trials, root, time_both)


def tune_model(
    spec: ModelSpec,
    which: str,
    threads: list[int],
    batches: list[int],
    trials: int,
    root: Path,
    progress: Progress = _quiet,
) -> list[dict[str, Any]]:
    """Tunes each distinct fused function of the model (its blocks', or all of them) per thread
    count; a build then uses a tuned function only where it won its duel."""
    jobs = []
    for b in batches:
        for key, (name, func) in model_tasks(spec, which, b).items():
            label = f"{name} ({key})"
            for t in threads:
                jobs.append(
                    (
                        label,
                        t,
                        lambda k=key, lb=label, f=func, t=t: _tune_function(
                            k, lb, f, t, trials, root
                        ),
                    )
                )
    return _run_jobs(jobs, trials, progress)
