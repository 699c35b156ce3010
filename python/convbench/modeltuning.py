"""`convbench tune --model`: MetaSchedule on the model's fused functions, as `convbench tune` does
for single convs. Each distinct fused PrimFunc (by structural hash) is a task per thread count;
after tuning, its best tuned schedule and the hand-written one are both compiled and timed by the
harness on random arguments, and a build uses the tuned one only where it won."""

from __future__ import annotations

import json
import tempfile
import time
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

    from .machine import host_target
    from .relaxmodel import _schedule_func, task_module
    from .tuning import TuningDatabase, _read_json, run_metaschedule, target_key

    jobs = []
    for b in batches:
        for key, (name, func) in model_tasks(spec, which, b).items():
            for t in threads:
                jobs.append((key, name, func, t))
    summaries = []
    for i, (key, name, func, t) in enumerate(jobs, 1):
        target = host_target(t)
        d = root / target_key(target) / key
        summary = _read_json(d / "summary.json")
        if summary.get("trials", 0) >= trials:
            log(f"[{i}/{len(jobs)}] {name} ({key}) t{t}: already tuned, skipped")
            summaries.append({**summary, "skipped": True})
            continue
        log(f"[{i}/{len(jobs)}] tuning {name} ({key}) for {t} thread(s), {trials} trials")
        d.mkdir(parents=True, exist_ok=True)
        (d / "summary.json").unlink(missing_ok=True)
        mod = task_module(func)
        elapsed, best = run_metaschedule(mod, target, t, trials, d)
        rec = TuningDatabase([root]).lookup_key(key, target, mod, honour_summary=False)
        sch = s_tir.Schedule(mod)
        _schedule_func(sch)
        default_s = _time_func(sch.mod, target, t)
        tuned_s = _time_func(rec.mod, target, t) if rec is not None else None
        use = "tuned" if tuned_s is not None and tuned_s < default_s else "default"
        summary = {
            "workload": f"{name} ({key})",
            "threads": t,
            "target": str(target),
            "trials": trials,
            "records": len(best),
            "tune_s": elapsed,
            "metaschedule_best_s": min(best, default=None),
            "best_run_s": tuned_s,
            "default_run_s": default_s,
            "use": use,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (d / "summary.json").write_text(json.dumps(summary, indent=1))
        log(
            f"[{i}/{len(jobs)}] {name} t{t}: tuned {tuned_s}, hand-written {default_s}: "
            f"builds use the {use} schedule ({elapsed:.0f} s of tuning)"
        )
        summaries.append(summary)
    return summaries
