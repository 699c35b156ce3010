"""A fork server for measurements: a process that imports TensorFlow's and TVM's Python modules
once, then forks one child per task. Each child is a fresh process as far as measuring goes: no
thread pool exists in the server (TF and TVM create theirs lazily, in the child, sized and pinned
by the task), the child restricts its CPUs, and it ends after its one task. What a child does
not get afresh is the address layout of a new interpreter: the parent restarts the server for
every repetition of a run, so each pass of cells comes from a different layout.

Protocol (run as `python -m convbench.measure.forkserver`): one JSON request per line on stdin,
`[task_path, result_path, log_path]`; for each, one line `started <pid>` when the child is
forked, then `ended <pid> <wait status>` when it has exited. SIGINT is ignored by the server
(the parent decides what an interrupt costs); the children take it as usual.
"""

from __future__ import annotations

import json
import os
import signal
import sys

__all__ = ["serve"]


def _preload() -> None:
    """The expensive imports, done once. TF's environment variables that must be set before its
    library loads (TF_ENABLE_ONEDNN_OPTS) are the parent's: tasks that change them are not
    sent here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("tensorflow", "tvm"):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001  (a child imports it again, and reports the error)
            pass
    from . import worker  # noqa: F401  (the handlers and everything they import)


def _child(task_path: str, result_path: str, log_path: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    from .worker import main

    return main([task_path, result_path])


def serve() -> int:
    _preload()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        task_path, result_path, log_path = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(task_path, result_path, log_path)
            finally:
                os._exit(code)
        out.write(f"started {pid}\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        out.write(f"ended {pid} {status}\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
