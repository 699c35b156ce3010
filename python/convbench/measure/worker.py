"""The worker's entry point: `python -m convbench.measure.worker TASK.json RESULT.json`.

One task per process: fresh thread pools, pinned, nothing shared with the cell before it. The
task type and the workload's family pick the handler; the result goes back as plain JSON (a
measured cell as its Record), so a crash here costs one cell, not the run.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

from ..results.record import Record
from . import conv_handlers, model_handlers
from .tasks import (
    CheckTask,
    GraphDefTask,
    LayersTask,
    MeasureTask,
    OverheadTask,
    PeakTask,
    ProbeTask,
    Task,
    TimeFuncTask,
    task_from_json,
)

__all__ = ["HANDLERS", "main", "run_task"]

# (task type, workload family, backend) -> handler. Family: "conv" for a single conv, "model"
# for a cut of a model; None for tasks without a workload or a backend.
HANDLERS: dict[tuple[type[Task], str | None, str | None], Callable[[Any], Any]] = {
    (MeasureTask, "conv", "tvm"): conv_handlers.measure_conv_tvm,
    (MeasureTask, "conv", "tf"): conv_handlers.measure_conv_tf,
    (MeasureTask, "model", "tvm"): model_handlers.measure_model_tvm,
    (MeasureTask, "model", "tf"): model_handlers.measure_model_tf,
    (CheckTask, "conv", None): conv_handlers.check_conv,
    (CheckTask, "model", None): model_handlers.check_model,
    (LayersTask, "model", None): model_handlers.layers,
    (GraphDefTask, "model", None): model_handlers.write_graph_def,
    (OverheadTask, None, None): conv_handlers.overhead,
    (TimeFuncTask, None, None): conv_handlers.time_func,
    (PeakTask, None, None): conv_handlers.peak,
    (ProbeTask, "conv", None): conv_handlers.probe_algorithms,
    (ProbeTask, "model", None): model_handlers.probe_algorithms,
}


def run_task(task: Task) -> dict[str, Any]:
    w = getattr(task, "workload", None)
    family = None if w is None else ("conv" if w.kind == "conv" else "model")
    handler = HANDLERS.get((type(task), family, getattr(task, "backend", None)))
    if handler is None:
        raise ValueError(f"no handler for a {task.type} task on a {family} workload")
    result = handler(task)
    return result.to_json() if isinstance(result, Record) else result


def main(argv: list[str]) -> int:
    task_path, result_path = argv
    with open(task_path) as f:
        task = task_from_json(json.load(f))
    try:
        result: dict[str, Any] = {"ok": True, "result": run_task(task)}
    except Exception as e:  # reported to the parent as this cell's error
        result = {
            "ok": False,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
        }
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
