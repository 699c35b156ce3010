"""`convbench tune`: MetaSchedule on single convs, or on a model's distinct fused functions, per
thread count, into a database that later builds read (build.tuning_db).

One directory per target and task: an interrupted tune loses at most the task in progress (its
records stay, and a rerun resumes from them; until a summary is written, builds do not use them),
and a rerun skips finished tasks. After tuning, the best tuned schedule and the default
(hand-written) one duel: each is timed DUEL_RUNS times by the harness, each time in a worker of
its own, as a run measures, alternating; the tuned one is used only where it won by more than the
noise (build.tuning_db.duel_verdict), and summary.json records the test. Nothing here prints:
progress goes to a callback as events, and the summaries are returned.
"""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .build.cache import KernelCache
from .build.compute import conv_module
from .build.relax import (
    distinct_functions,
    relax_module,
    scheduled_function,
    task_module,
    tflite_module,
    to_primfuncs,
)
from .build.target import host_target, llvm_target
from .build.tuning_db import (
    DUEL_RUNS,
    TuningDatabase,
    duel_verdict,
    read_summary,
    task_dir,
    workload_key,
    write_summary,
)
from .cpus import plan_cpus
from .measure.pool import run_worker
from .measure.tasks import GraphDefTask, MeasureTask, TimeFuncTask
from .native.harness import RunConfig
from .run import measure_task
from .spec.conv import ConvSpec, ConvWorkload
from .spec.errors import SpecError
from .spec.model import AnyModelSpec, ModelWorkload
from .spec.model_file import ModelFileSpec

__all__ = [
    "Progress",
    "TuneDevice",
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


class TuneDevice:
    """Where tuning measures: here (`remote` None), or on the servers of an RPC tracker
    (measure.rpc.RemoteDevices): MetaSchedule's RPCRunner times candidates on every server
    under the key in parallel, the duel runs there too, and the database is keyed by the
    remote's target."""

    def __init__(self, remote: Any = None) -> None:
        self.remote = remote
        self.info: dict[str, Any] = remote.info() if remote is not None else {}
        self.servers = remote.servers() if remote is not None else 0

    def target(self, threads: int | None = None) -> Any:
        if self.remote is None:
            return host_target(threads)
        cores = threads if threads is not None else len(self.info["cpus"])
        return llvm_target(self.info["llvm_cpu"], self.info["triple"], cores)

    def cache(self, cache_dir: Path | None, tuning: Any = None) -> KernelCache:
        return KernelCache(cache_dir, target=self.target(), tuning=tuning)

    def runner(self, threads: int) -> Any:
        from tvm.s_tir import meta_schedule as ms

        if self.remote is None:
            return ms.runner.LocalRunner(timeout_sec=CANDIDATE_TIMEOUT_S)
        from .measure.rpc import run_evaluator_on_threads

        return ms.runner.RPCRunner(
            rpc_config=ms.runner.RPCConfig(
                tracker_host=self.remote.host,
                tracker_port=self.remote.port,
                tracker_key=self.remote.key,
                session_priority=1,
                session_timeout_sec=int(CANDIDATE_TIMEOUT_S),
            ),
            f_run_evaluator=functools.partial(run_evaluator_on_threads, threads),
            max_workers=max(1, self.servers),
        )

    def time(self, task: MeasureTask | TimeFuncTask, library: Path) -> float:
        """The median time of a measuring task, here in a worker or on a device."""
        if self.remote is None:
            return float(run_worker(task, 600)["median_s"])
        return float(self.remote.measure_one(task, library)["median_s"])

    @property
    def path(self) -> str:
        """The rung a duel times a conv on: the native harness, or TVM's evaluator where the
        device is a plain TVM server."""
        return "native" if self.remote is None or self.info.get("convbench") else "evaluator"


HERE = TuneDevice()


def tune_task(
    label: str,
    key: str,
    mod: Any,
    threads: int,
    trials: int,
    root: Path,
    time_both: Callable[[Any], tuple[float | None, float]],
    runs: int = DUEL_RUNS,
    device: TuneDevice = HERE,
) -> dict[str, Any]:
    """One task (a conv workload or a fused model function, kept under `key`) tuned for
    `threads` threads into `root`; returns its summary. `time_both(target)` times the best tuned
    schedule (None when there is none) and the hand-written one once each, in workers; it is
    called `runs` times, and duel_verdict says which one builds use. A task whose summary says it
    finished with at least `trials` is skipped; one whose summary predates the duel's test is
    timed again (not tuned again) and gets a new verdict."""
    target = device.target(threads)
    d = task_dir(root, key, target)
    summary = read_summary(d)
    if summary.get("trials", 0) >= trials and "duel" in summary:
        return {**summary, "skipped": True}
    d.mkdir(parents=True, exist_ok=True)
    if summary.get("trials", 0) >= trials:  # tuned before the duel had a test: re-decide
        elapsed, best = float(summary.get("tune_s", 0.0)), []
        metaschedule_best = summary.get("metaschedule_best_s")
        records = summary.get("records")
    else:
        # Stale once tuning resumes: until the new verdict is written, no build uses this task.
        (d / "summary.json").unlink(missing_ok=True)
        elapsed, best = run_metaschedule(mod, target, threads, trials, d, device)
        metaschedule_best, records = min(best, default=None), len(best)
    tuned_runs: list[float] | None = []
    default_runs: list[float] = []
    for _ in range(runs):
        tuned_s, default_s = time_both(target)
        default_runs.append(default_s)
        if tuned_s is None:
            tuned_runs = None
        elif tuned_runs is not None:
            tuned_runs.append(tuned_s)
    duel = duel_verdict(tuned_runs, default_runs)
    summary = {
        "workload": label,
        "threads": threads,
        "target": str(target),
        "device": device.remote.key if device.remote is not None else None,
        "trials": trials,
        "records": records,
        "tune_s": elapsed,
        "metaschedule_best_s": metaschedule_best,  # MetaSchedule runner's own figure
        "best_run_s": statistics.median(tuned_runs) if tuned_runs else None,
        "default_run_s": statistics.median(default_runs),
        "use": duel["use"],
        "duel": duel,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_summary(d, summary)
    return summary


# MetaSchedule's builder and runner give up on a candidate after 30 s by default: on a loaded
# machine every candidate of a tune timed out (a bare conv's build took 60 s at a load of 3 on
# 2 cores) and the tune ended with no record. A candidate that is slow to build is not a bad one.
CANDIDATE_TIMEOUT_S = 300.0


def run_metaschedule(
    mod: Any, target: Any, threads: int, trials: int, d: Path, device: TuneDevice = HERE
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
            builder=ms.builder.LocalBuilder(timeout_sec=CANDIDATE_TIMEOUT_S),
            runner=device.runner(threads),
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


# --- single convs ----------------------------------------------------------------------------
def measure_kernel(
    w: ConvWorkload, threads: int, kernel_path: Path, device: TuneDevice = HERE
) -> float:
    """Median time of a kernel at `threads`, measured exactly as a run measures it."""
    task = measure_task(w, threads, "tvm", device.path, RunConfig(), kernel=kernel_path)
    return device.time(task, kernel_path)


def tune_workload(
    w: ConvWorkload,
    threads: int,
    trials: int,
    root: Path,
    cache_dir: Path | None = None,
    device: TuneDevice = HERE,
) -> dict[str, Any]:
    """Tunes one conv workload for `threads` threads into `root`; returns its summary.

    The tuning runner times candidates with a pool of `threads` workers (TVM_NUM_THREADS), so
    the best record is best at the thread count it will run with; a tuned kernel that loses to
    the default schedule afterwards is not used.
    """

    kernels: dict[str, Path | None] = {}

    def time_both(target: Any) -> tuple[float | None, float]:
        if not kernels:  # built once, timed in every run of the duel
            db = TuningDatabase([root])
            tuned = device.cache(cache_dir, tuning=db).conv(w, threads, honour_summary=False)
            kernels["tuned"] = tuned.path if tuned.tuned_from else None
            kernels["default"] = device.cache(cache_dir).conv(w).path
        default = kernels["default"]
        assert default is not None
        tuned_path = kernels["tuned"]
        tuned_s = measure_kernel(w, threads, tuned_path, device) if tuned_path is not None else None
        return tuned_s, measure_kernel(w, threads, default, device)

    return tune_task(
        w.key, workload_key(w), conv_module(w), threads, trials, root, time_both, device=device
    )


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
    device: TuneDevice = HERE,
) -> list[dict[str, Any]]:
    """Tunes every (conv workload, batch, threads) in turn."""
    jobs = []
    for s in specs:
        for b in batches:
            w = ConvWorkload(s, b)
            for t in threads:
                jobs.append(
                    (
                        w.key,
                        t,
                        lambda w=w, t=t: tune_workload(w, t, trials, root, cache_dir, device),
                    )
                )
    return _run_jobs(jobs, trials, progress)


# --- a model's fused functions ---------------------------------------------------------------
def model_tasks(spec: AnyModelSpec, which: str, batch: int) -> dict[str, tuple[str, Any]]:
    """The distinct fused functions of the model's blocks (`which`="blocks") or of the whole
    model ("all"): {func_key: (name, PrimFunc)}."""
    g = spec.graph
    cuts = [(b.start, b.stop) for b in spec.blocks] if which == "blocks" else [(None, g.output)]
    out: dict[str, tuple[str, Any]] = {}
    for start, stop in cuts:
        if isinstance(spec, ModelFileSpec):
            mod = to_primfuncs(_file_cut_module(spec, start, stop, batch), fuse=True)
        else:
            part = g.cut(start, stop)
            mod = to_primfuncs(relax_module(part, batch, part.weights()), fuse=True)
        for key, item in distinct_functions(mod).items():
            out.setdefault(key, item)
    return out


def _file_cut_module(spec: ModelFileSpec, start: str | None, stop: str, batch: int) -> Any:
    """A model file's cut as a Relax module, imported as a run imports it: TF's TFLite converter
    in a worker (TF stays out of this process), then Relax's TFLite frontend."""
    mw = ModelWorkload(f"{start or spec.input_node}..{stop}", "block", spec, start, stop, batch)
    with tempfile.TemporaryDirectory(prefix="convbench-tune-") as tmp:
        out = Path(tmp) / "cut.pb"
        facts = run_worker(GraphDefTask(workload=mw, out=str(out)), 600)
        if facts.get("tflite_error"):
            raise SpecError(facts["tflite_error"])
        return tflite_module(out.with_suffix(".tflite"))


def compile_function(mod: Any, target: Any, lib: Path) -> tuple[Path, list[list[int]]]:
    """The one-function module `mod` compiled for `target` into `lib`; (lib, its parameters'
    shapes)."""
    import tvm

    shapes = [[int(d) for d in p.shape] for p in mod["main"].params]
    with target:
        tvm.compile(mod, target=target).export_library(str(lib))
    return lib, shapes


def time_compiled(
    lib: Path, shapes: list[list[int]], threads: int, device: TuneDevice = HERE
) -> float:
    """Median time of a compiled one-function module on random arguments (its last parameter is
    the output), measured in a worker as a run measures (on the device's CPUs)."""
    cpus = list(plan_cpus(threads, device.info.get("cpus")).cpus)
    return device.time(TimeFuncTask(kernel_path=str(lib), shapes=shapes, cpus=cpus), lib)


def time_function(mod: Any, target: Any, threads: int) -> float:
    """time_compiled of `mod` compiled for `target`, in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="convbench-tune-") as tmp:
        return time_compiled(*compile_function(mod, target, Path(tmp) / "f.so"), threads)


def _tune_function(
    key: str, label: str, func: Any, t: int, trials: int, root: Path, device: TuneDevice = HERE
) -> dict:

    mod = task_module(func)
    with tempfile.TemporaryDirectory(prefix="convbench-tune-") as tmp:
        libs: dict[str, tuple[Path, list[list[int]]] | None] = {}

        def time_both(target: Any) -> tuple[float | None, float]:
            if not libs:  # compiled once, timed in every run of the duel
                rec = TuningDatabase([root]).lookup_key(key, target, mod, honour_summary=False)
                default_func, _ = scheduled_function(mod["main"])
                default_mod = task_module(default_func.without_attr("global_symbol"))
                libs["default"] = compile_function(default_mod, target, Path(tmp) / "default.so")
                libs["tuned"] = (
                    compile_function(rec.mod, target, Path(tmp) / "tuned.so") if rec else None
                )
            default, tuned = libs["default"], libs["tuned"]
            assert default is not None
            tuned_s = time_compiled(*tuned, t, device) if tuned is not None else None
            return tuned_s, time_compiled(*default, t, device)

        return tune_task(label, key, mod, t, trials, root, time_both, device=device)


def tune_model(
    spec: AnyModelSpec,
    which: str,
    threads: list[int],
    batches: list[int],
    trials: int,
    root: Path,
    progress: Progress = _quiet,
    device: TuneDevice = HERE,
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
                            k, lb, f, t, trials, root, device
                        ),
                    )
                )
    return _run_jobs(jobs, trials, progress)
