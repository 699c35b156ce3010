"""A worker process's set-up and the record it sends back: the CPUs it may use, the pinning of
its timing thread (after every thread pool exists), and the Record built once from a timing."""

from __future__ import annotations

import os
from typing import Any

from .. import _core
from ..native.harness import Timing
from ..results.record import Record
from .tasks import MeasureTask

__all__ = ["make_record", "other_threads_cpus", "pin_timing_thread", "restrict_process"]


def restrict_process(cpus: list[int]) -> None:
    """Threads created from here on (TF's pools, TVM's workers) inherit this CPU mask, and
    flush-to-zero and denormals-are-zero (MXCSR is inherited too): TF sets both in its threads,
    so both frameworks compute with the same denormal handling."""
    os.sched_setaffinity(0, set(cpus))
    _core.set_flush_denormals(True)


def pin_timing_thread(cpus: list[int]) -> dict[str, Any]:
    """Pins the calling thread to cpus[0]. Threads it creates afterwards inherit that single CPU,
    so every thread pool must exist before this is called."""
    _core.pin_current_thread([cpus[0]])
    applied = _core.current_thread_affinity()
    return {
        "timing_thread_cpus": applied,
        "pinned": applied == [cpus[0]],
        "flush_denormals": _core.flush_denormals(),
    }


def other_threads_cpus() -> list[list[int]]:
    """What the process's other threads (TF's or TVM's pools) may run on, read after timing: a
    pool trapped on the timing thread's CPU shows here as [cpu0], and as a parallelism of 1."""
    me = _core.current_thread_id()
    others = {tuple(c) for tid, c in _core.process_thread_affinities().items() if tid != me}
    return sorted(list(c) for c in others)


def make_record(task: MeasureTask, timing: Timing, **extra: Any) -> Record:
    """The record of `task` measured as `timing`; `extra`: the path's own fields (pinning,
    pool size, oneDNN's primitives), or figures the path measures its own way (tf/kernel's
    CPU time and parallelism, read around the profiled calls)."""
    w = task.workload
    s = timing.summary
    fields: dict[str, Any] = dict(
        workload=w.name,
        kind=w.kind,
        backend=task.backend,
        path=task.path,
        threads=task.threads,
        batch=w.batch,
        samples=int(s["n"]),
        iters_per_sample=timing.iters_per_sample or None,
        median_s=s["median"],
        min_s=s["min"],
        mean_s=s["mean"],
        stddev_s=s["stddev"],
        cv=s["cv"],
        p10_s=s["p10"],
        p90_s=s["p90"],
        max_s=s["max"],
        cpu_s=timing.cpu_summary["median"] if timing.cpu_summary else None,
        thread_cpu_s=timing.thread_cpu_summary["median"] if timing.thread_cpu_summary else None,
        parallelism=timing.parallelism,
        gflops=w.flops / s["median"] / 1e9 if s["median"] > 0 else None,
        oversubscribed=task.threads > task.available_cpus,
        cpus=list(task.cpus),
        cpu_migrated=timing.cpu_before != timing.cpu_after,
        wall_samples_s=list(timing.wall_s),
        other_threads_cpus=other_threads_cpus(),
        schedule=task.schedule,
        tuned=task.tuned,
        algorithm=task.algorithm if task.backend == "tvm" and w.kind == "conv" else None,
    )
    fields.update(extra)
    return Record(**fields)
