"""The parent's side of a worker: one task per process, plain JSON in and out, so a crash, a hang
or a leak costs one cell and never the run.

`run_worker` starts a fresh interpreter for a task. `Workers` does the same for most measuring
tasks through a fork server (measure/forkserver.py) that has imported TF and TVM once: a
child costs a fork instead of a 3-6 s import, and is otherwise as fresh (its pools are made and
pinned by the task). A task that needs an environment TF reads when it loads
(`tf/session-no-onednn`) still gets a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .tasks import MeasureTask, Task

__all__ = ["WORKER_ENV", "WorkerError", "Workers", "forkable", "run_worker"]

# numpy's OpenBLAS starts a pool at import whose threads busy-wait for a while after it: in a
# fresh worker that thread competed with the measured one (`par` 1.9 at 1 thread; at 2 threads a
# 3 us kernel's median was 4-8 ms, scheduler slices lost to the spinner). Workers use no BLAS.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class WorkerError(RuntimeError):
    pass


def _env() -> dict[str, str]:
    return dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        **WORKER_ENV,
    )


def _tail(text: str, lines: int = 5) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _status(status: int) -> str:
    """A wait status in words."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        oom = " (as the kernel's OOM killer does)" if sig == signal.SIGKILL else ""
        return f"was killed by {name}{oom}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def _read_result(result_path: Path, how: str, log_tail: str) -> dict[str, Any]:
    if not result_path.exists():
        raise WorkerError(
            f"worker {how} and left no result" + (f": {log_tail}" if log_tail else "")
        )
    try:
        result = json.loads(result_path.read_text())
    except ValueError:
        raise WorkerError(f"worker {how} and left a torn result") from None
    if not result["ok"]:
        raise WorkerError(result["error"])
    return dict(result["result"])


def run_worker(task: Task, timeout_s: float) -> dict[str, Any]:
    """Runs one task in a fresh interpreter; returns its result or raises WorkerError."""
    with tempfile.TemporaryDirectory(prefix="convbench-") as tmp:
        task_path, result_path = Path(tmp) / "task.json", Path(tmp) / "result.json"
        task_path.write_text(json.dumps(task.to_json()))
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
                env=_env(),
            )
        except subprocess.TimeoutExpired:
            raise WorkerError(f"timed out after {timeout_s:.0f} s") from None
        if proc.returncode < 0:  # subprocess's way of saying "killed by signal -N"
            how = f"was killed by {signal.Signals(-proc.returncode).name}"
        else:
            how = f"exited with code {proc.returncode}"
        return _read_result(result_path, how, _tail(proc.stderr))


def forkable(task: Task) -> bool:
    """Whether a task can run in a child of the fork server: any task whose environment is the
    parent's (`tf/session-no-onednn` sets TF_ENABLE_ONEDNN_OPTS, which TF reads when it loads,
    before any task)."""
    return not (isinstance(task, MeasureTask) and task.path == "session-no-onednn")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Workers:
    """Runs tasks one at a time, each in a process of its own: through a fork server where the
    task allows it (`forkable`), else in a fresh interpreter. `restart()` starts a new server
    (a fresh address layout), as a run does before every repetition."""

    def __init__(self, timeout_s: float, fork: bool = True) -> None:
        self.timeout_s = timeout_s
        self.fork = fork
        self.server: subprocess.Popen[str] | None = None
        self.current_pid: int | None = None  # the child measuring now (for tests and faults)
        self.forked = 0  # tasks run in forked children
        self.spawned = 0  # tasks run in fresh interpreters

    def run(self, task: Task) -> dict[str, Any]:
        if not (self.fork and forkable(task)):
            self.spawned += 1
            return run_worker(task, self.timeout_s)
        self.forked += 1
        return self._run_forked(task)

    def restart(self) -> None:
        self.close()

    def close(self) -> None:
        if self.server is None:
            return
        server, self.server = self.server, None
        try:
            if server.stdin:
                server.stdin.close()
            server.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            server.kill()
            server.wait()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the fork server ----------------------------------------------------------------------
    def _start(self) -> subprocess.Popen[str]:
        if self.server is None or self.server.poll() is not None:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "convbench.measure.forkserver"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=_env(),
                # A session of its own: a Ctrl-C at the terminal reaches the parent only, which
                # stops the child measuring (the cell is lost) and keeps what was measured.
                start_new_session=True,
            )
        return self.server

    def _line(self, server: subprocess.Popen[str], deadline: float) -> str | None:
        """The server's next line, or None at the deadline."""
        assert server.stdout is not None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([server.stdout], [], [], left)
            if ready:
                line = server.stdout.readline()
                if not line:
                    raise WorkerError("the fork server ended unexpectedly")
                return line

    def _send(self, task_path: Path, result_path: Path, log_path: Path) -> int:
        """Hands a task to the server; the pid of the child it forked."""
        server = self._start()
        assert server.stdin is not None
        try:
            server.stdin.write(json.dumps([str(task_path), str(result_path), str(log_path)]) + "\n")
            server.stdin.flush()
            started = self._line(server, time.monotonic() + 120)
        except (OSError, WorkerError) as e:
            self.close()
            raise WorkerError(f"the fork server failed: {e}") from None
        if started is None or not started.startswith("started "):
            self.close()
            raise WorkerError(f"the fork server did not start the task ({started!r})")
        return int(started.split()[1])

    def _run_forked(self, task: Task) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="convbench-") as tmp:
            task_path, result_path = Path(tmp) / "task.json", Path(tmp) / "result.json"
            log_path = Path(tmp) / "log.txt"
            task_path.write_text(json.dumps(task.to_json()))
            pid = self._send(task_path, result_path, log_path)
            self.current_pid = pid
            assert self.server is not None
            try:
                ended = self._line(self.server, time.monotonic() + self.timeout_s)
                if ended is None:
                    _kill(pid)
                    self._line(self.server, time.monotonic() + 30)
                    raise WorkerError(f"timed out after {self.timeout_s:.0f} s")
            except WorkerError:
                raise
            except BaseException:
                _kill(pid)  # Ctrl-C (or a fault) here: the child must not outlive its cell
                self.close()
                raise
            finally:
                self.current_pid = None
            status = int(ended.split()[2])
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            return _read_result(result_path, _status(status), _tail(log))
