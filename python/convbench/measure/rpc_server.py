"""convbench's RPC server: TVM's own server (`tvm.rpc.Server`, the one `python -m
tvm.exec.rpc_server` starts), with two functions of convbench's registered in every session:

- `convbench.info()`: the machine as the server sees it (CPU model, the CPUs it may use, the
  LLVM CPU and triple of its target, versions), as JSON;
- `convbench.threads(n)`: the session's TVM pool sized to n and pinned to the server's CPUs
  (MetaSchedule's RPCRunner times candidates in the session itself);
- `convbench.measure(task_json, timeout_s)`: one measuring task (measure/tasks.py) run exactly
  as a local run runs it, in a fresh worker process on the server's machine, pinned to the
  server's CPUs; its kernel is a library the client uploaded into the session. The answer is
  `{"ok": true, "result": record}` or `{"ok": false, "error": why}`: a cell that fails leaves
  the session usable.

So every TVM rung of the ladder (tvm/native's C++ loop included) runs on the remote. A plain TVM
server (without convbench) only gets TVM's time_evaluator (measure/rpc.py).

RPC runs whatever a client uploads, with the server's rights: bind to another address than
127.0.0.1 only on a network you trust.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import platform
import socket
from dataclasses import replace
from typing import Any

from ..build.target import host_cpu_name, host_triple
from ..cpus import allowed_cpus, cpu_model, plan_cpus
from ..version import __version__, code_digest
from .pool import WorkerError, run_worker
from .tasks import MeasureTask, PeakTask, TimeFuncTask, task_from_json

__all__ = ["register", "serve", "server_info"]


def server_info(cpus: list[int]) -> dict[str, Any]:
    """What a client needs to build for this machine and to plan threads on its CPUs."""
    import tvm

    return {
        "convbench": __version__,
        "convbench_code": code_digest(),
        "tvm": tvm.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpus": list(cpus),
        "llvm_cpu": host_cpu_name(),  # as a local run names this CPU (CONVBENCH_MCPU too)
        "triple": host_triple(),
    }


def _measure(task_json: str, timeout_s: float) -> str:
    """One task in a fresh worker here; its kernel, named relative to the session's work
    directory, is resolved there."""
    import tvm

    try:
        task = task_from_json(json.loads(task_json))
        if not isinstance(task, (MeasureTask, PeakTask, TimeFuncTask)):
            raise ValueError(f"a remote device runs measuring tasks only, not {task.type!r}")
        if isinstance(task, (MeasureTask, TimeFuncTask)) and task.kernel_path is not None:
            workpath = tvm.get_global_func("tvm.rpc.server.workpath")
            path = str(workpath(os.path.basename(task.kernel_path)))
            if not os.path.isfile(path):
                raise ValueError(f"no uploaded kernel {task.kernel_path!r} in this session")
            task = replace(task, kernel_path=path)
        return json.dumps({"ok": True, "result": run_worker(task, float(timeout_s))})
    except (WorkerError, ValueError, KeyError, TypeError) as e:
        return json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"})


def register(cpus: list[int]) -> None:
    """Run by TVM's server process before it listens: every session it forks inherits the
    functions and the CPU mask."""
    import tvm_ffi

    # sessions are forked from this process, so that they keep what is registered here
    multiprocessing.set_start_method("fork", force=True)
    os.sched_setaffinity(0, set(cpus))
    # the device's name in records: this process lives as long as the server
    where = f"{socket.gethostname()}/pid{os.getpid()}/cpus{','.join(map(str, cpus))}"
    info = json.dumps({**server_info(cpus), "server": where})
    tvm_ffi.register_global_func("convbench.info", lambda: info, override=True)
    tvm_ffi.register_global_func("convbench.measure", _measure, override=True)
    tvm_ffi.register_global_func(
        "convbench.threads", functools.partial(_threads, list(cpus)), override=True
    )


def _threads(cpus: list[int], threads: int) -> None:
    """The session's TVM pool: `threads` workers on the server's first CPUs, the calling thread
    (the session's, which runs TVM's evaluator) on the first, as a local worker pins."""
    from ..native.harness import pin_threads

    pin_threads(plan_cpus(int(threads), cpus).cpus)


def serve(
    host: str,
    port: int,
    port_end: int,
    tracker: tuple[str, int],
    key: str,
    cpus: list[int] | None = None,
) -> int:
    """Runs a server registered with `tracker` under `key` until it is killed."""
    from tvm import rpc

    use = sorted(cpus) if cpus else allowed_cpus()
    server = rpc.Server(
        host=host,
        port=port,
        port_end=port_end,
        tracker_addr=tracker,
        key=key,
        custom_addr="127.0.0.1" if host in ("127.0.0.1", "localhost") else None,
        server_init_callback=functools.partial(register, use),
    )
    print(
        f"convbench rpc server: port {server.port}, key {key!r}, tracker "
        f"{tracker[0]}:{tracker[1]}, CPUs {','.join(map(str, use))}",
        flush=True,
    )
    server.proc.join()
    return 0
