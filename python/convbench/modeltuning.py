"""`convbench tune --model`: MetaSchedule on the model's fused functions, as `convbench tune` does
for single convs. Each distinct fused PrimFunc (by structural hash) is a task per thread count;
after tuning, its best tuned schedule and the hand-written one are both compiled and timed by the
harness on random arguments, and a build uses the tuned one only where it won."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["model_tasks", "tune_model"]


def model_tasks(spec: Any, which: str, batch: int) -> dict[str, tuple[str, Any]]:
    """The distinct fused functions of the model's blocks (`which`="blocks") or of the whole
    model ("all"): {func_key: (name, PrimFunc)}."""
    from .model import Graph
    from .relaxmodel import distinct_functions, relax_module, to_primfuncs

    g = Graph.from_spec(spec)
    cuts = [(b.start, b.stop) for b in spec.blocks] if which == "blocks" else [(None, g.output)]
    out: dict[str, tuple[str, Any]] = {}
    for start, stop in cuts:
        part = g.cut(start, stop)
        mod = to_primfuncs(relax_module(part, batch, part.weights()), fuse=True)
        for key, item in distinct_functions(mod).items():
            out.setdefault(key, item)
    return out


def _time_func(mod: Any, target: Any, threads: int) -> float:
    """Median time of the one-function module `mod`, compiled for `target`, on random arguments
    (its last parameter is the output), measured in a worker as a run measures."""
    import tvm

    from .harness import RunConfig
    from .machine import plan_cpus
    from .run import run_worker

    func = mod["main"]
    shapes = [[int(d) for d in p.shape] for p in func.params]
    with tempfile.TemporaryDirectory(prefix="convbench-tune-") as tmp:
        lib = Path(tmp) / "f.so"
        with target:
            tvm.compile(mod, target=target).export_library(str(lib))
        plan = plan_cpus(threads)
        task = {
            "kind": "time_func",
            "kernel_path": str(lib),
            "shapes": shapes,
            "cpus": list(plan.cpus),
            "config": RunConfig().__dict__,
        }
        return float(run_worker(task, 600)["median_s"])


def tune_model(
    spec: Any,
    which: str,
    threads: list[int],
    batches: list[int],
    trials: int,
    root: Path,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    from tvm import s_tir

    from .relaxmodel import _schedule_func, task_module
    from .report import fmt_time
    from .tuning import TuningDatabase, tune_task

    jobs = []
    for b in batches:
        for key, (name, func) in model_tasks(spec, which, b).items():
            for t in threads:
                jobs.append((key, name, func, t))
    summaries = []
    for i, (key, name, func, t) in enumerate(jobs, 1):
        mod = task_module(func)

        def time_both(target: Any, key: str = key, mod: Any = mod, t: int = t) -> tuple:
            rec = TuningDatabase([root]).lookup_key(key, target, mod, honour_summary=False)
            sch = s_tir.Schedule(mod)
            _schedule_func(sch)
            tuned_s = _time_func(rec.mod, target, t) if rec is not None else None
            return tuned_s, _time_func(sch.mod, target, t)

        log(f"[{i}/{len(jobs)}] tuning {name} ({key}) for {t} thread(s), {trials} trials")
        label = f"{name} ({key})"
        summary = tune_task(label, key, mod, t, trials, root, time_both, log)
        if not summary.get("skipped"):
            log(
                f"[{i}/{len(jobs)}] {name} t{t}: best tuned {fmt_time(summary['best_run_s'])}, "
                f"hand-written {fmt_time(summary['default_run_s'])}: builds use the "
                f"{summary['use']} schedule ({summary['tune_s']:.0f} s of tuning)"
            )
        summaries.append(summary)
    return summaries
