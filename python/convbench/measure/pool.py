"""The parent's side of a worker: one task per fresh interpreter, plain JSON in and out, so a
crash, a hang or a leak costs one cell and never the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .tasks import Task

__all__ = ["WORKER_ENV", "WorkerError", "run_worker"]

# numpy's OpenBLAS starts a pool at import whose threads busy-wait for a while after it: in a
# fresh worker that thread competed with the measured one (`par` 1.9 at 1 thread; at 2 threads a
# 3 us kernel's median was 4-8 ms, scheduler slices lost to the spinner). Workers use no BLAS.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class WorkerError(RuntimeError):
    pass


def run_worker(task: Task, timeout_s: float) -> dict[str, Any]:
    """Runs one task in a fresh interpreter; returns its result or raises WorkerError."""
    with tempfile.TemporaryDirectory(prefix="convbench-") as tmp:
        task_path, result_path = Path(tmp) / "task.json", Path(tmp) / "result.json"
        task_path.write_text(json.dumps(task.to_json()))
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            **WORKER_ENV,
        )
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "convbench.measure.worker",
                    str(task_path),
                    str(result_path),
                ],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise WorkerError(f"timed out after {timeout_s:.0f} s") from None
        if not result_path.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise WorkerError(f"worker exited with code {proc.returncode} and no result: {tail}")
        result = json.loads(result_path.read_text())
    if not result["ok"]:
        raise WorkerError(result["error"])
    return dict(result["result"])
