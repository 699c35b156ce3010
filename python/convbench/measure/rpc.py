"""TVM cells on remote devices, through TVM's own RPC stack: a tracker hands out the servers
registered under a key, a kernel built for the remote's target is uploaded and timed there.
On a `convbench rpc server` (measure/rpc_server.py) a cell runs as it runs locally, in a fresh
worker pinned to the server's CPUs, on any TVM rung; on a plain TVM server (`python -m
tvm.exec.rpc_server --tracker HOST:PORT --key KEY`) only TVM's time_evaluator of a single conv.

Several servers under one key measure in parallel, one cell per server at a time (each worker
thread holds one session, that is one server, for as long as it lives). A server that dies costs
the cell it was measuring: the cell is retried on another server, or reported failed.

RPC runs whatever the client uploads on the server: start servers only on machines and networks
you trust. convbench's helpers bind to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import gc
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..build.target import TRIPLE
from ..build.winograd import tile_of, u_shape
from ..cpus import plan_cpus
from ..native.harness import Timing
from ..spec.arrays import conv_inputs
from ..spec.conv import ConvWorkload
from .conv_handlers import evaluator_timing
from .process import make_record
from .tasks import MeasureTask, Task, TimeFuncTask

__all__ = [
    "CellError",
    "RemoteCell",
    "RemoteDevices",
    "RpcError",
    "parse_address",
    "remote_task",
    "run_evaluator_on_threads",
    "set_remote_threads",
]


class RpcError(RuntimeError):
    """The tracker or a device cannot be reached or failed: the message says which."""


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT -> (host, port); ValueError with the reason."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"the port of {text!r} is not a number") from None
    if not 0 < p < 65536:
        raise ValueError(f"the port of {text!r} is outside 1..65535")
    return host, p


@dataclass(frozen=True)
class RemoteCell:
    """One TVM cell to time on a device: its index in the caller's list, its task (its CPUs are
    planned again on each device's own; a TimeFuncTask times one tuned function) and the
    kernel library built for the remote."""

    index: int
    task: MeasureTask | TimeFuncTask
    library: Path
    timeout_s: float = 600.0


class RemoteDevices:
    """The servers under `key` at the tracker `host:port`."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.tracker = self._connect()
        # a tracker connection is one socket with a request-answer protocol: two threads asking
        # at once tore it ("connection reset"); each thread asks on a connection of its own
        self._local = threading.local()

    def _connect(self) -> Any:
        from tvm import rpc

        try:
            return rpc.connect_tracker(self.host, self.port)
        except Exception as e:  # noqa: BLE001 - socket errors, TVMError
            raise RpcError(
                f"cannot reach the RPC tracker at {self.host}:{self.port}: {_first(e)}"
            ) from None

    def servers(self) -> int:
        """How many servers the tracker has under the key right now."""
        try:
            info = self.tracker.summary()
        except Exception as e:  # noqa: BLE001
            raise RpcError(f"the RPC tracker at {self.host}:{self.port}: {_first(e)}") from None
        return sum(1 for s in info.get("server_info", []) if _server_key(s) == self.key)

    def wait_for(self, count: int = 1, timeout_s: float = 30.0) -> int:
        """Waits until at least `count` servers are registered; returns how many are."""
        t_end = time.monotonic() + timeout_s
        n = self.servers()
        while n < count and time.monotonic() < t_end:
            time.sleep(0.2)
            n = self.servers()
        return n

    def session(self) -> Any:
        """A session on one free server under the key (the tracker's request, retried 3 times)."""
        tracker = getattr(self._local, "tracker", None)
        if tracker is None:
            tracker = self._local.tracker = self._connect()
        try:
            return tracker.request(self.key, priority=1, session_timeout=0, max_retry=3)
        except Exception as e:  # noqa: BLE001
            self._local.tracker = None  # a fresh connection next time
            raise RpcError(f"no device under key {self.key!r}: {_first(e)}") from None

    @staticmethod
    def describe(sess: Any) -> dict[str, Any]:
        """The remote machine as its server sees it: from convbench's server, everything
        `convbench.info` says (measure/rpc_server.py); from a plain TVM server, the CPU and triple
        as LLVM names them and TVM's default pool size. `device` is the server's work directory
        (it names the device) and `convbench` None where the server lacks convbench."""
        workpath = str(sess.get_function("tvm.rpc.server.workpath")(""))
        try:
            info = json.loads(str(sess.get_function("convbench.info")()))
        except Exception:  # noqa: BLE001 - the function is missing: a plain TVM server
            threads = int(sess.get_function("runtime.NumThreads")())
            triple = str(sess.get_function("target.llvm_get_system_triple")())
            if triple.startswith("x86_64-") and "linux" in triple:
                triple = TRIPLE  # the wheel's conda triple: the kernels are plain Linux ones
            info = {
                "convbench": None,
                "cpu_model": None,
                "cpus": list(range(threads)),
                "llvm_cpu": str(sess.get_function("target.llvm_get_system_cpu")()),
                "triple": triple,
                "machine": None,
            }
        return {**info, "device": info.get("server") or workpath}

    def info(self) -> dict[str, Any]:
        """describe() of one device under the key (a session held for the call only)."""
        sess = self.session()
        try:
            return self.describe(sess)
        finally:
            del sess

    def measure_one(
        self, task: MeasureTask | TimeFuncTask, library: Path, timeout_s: float = 600.0
    ) -> dict[str, Any]:
        """One task on one device (retried once on another); its result, or RpcError."""
        for _, result, error in self.run(
            [RemoteCell(0, task, library, timeout_s)], workers=1, stall_s=timeout_s + 60
        ):
            if result is None:
                raise RpcError(f"remote: {error}")
            return result
        raise RpcError("remote: no result")  # not reached: run yields once per cell

    def run(
        self,
        cells: list[RemoteCell],
        workers: int,
        retries: int = 1,
        stall_s: float = 660.0,
    ) -> Iterator[tuple[RemoteCell, dict[str, Any] | None, str | None]]:
        """Measures every cell on the devices, `workers` at a time, and yields (cell, result,
        error) as each finishes (in the caller's thread: it may save as it goes). A device
        that fails puts its cell back for another device, `retries` times; when no cell has
        finished for `stall_s` (no device answers), the cells left are reported failed."""
        todo: queue.Queue[tuple[RemoteCell, int]] = queue.Queue()
        for c in cells:
            todo.put((c, 0))
        done: queue.Queue[tuple[RemoteCell, dict[str, Any] | None, str | None]] = queue.Queue()
        left = [len(cells)]
        lock = threading.Lock()

        def finish(cell: RemoteCell, result: dict[str, Any] | None, error: str | None) -> None:
            with lock:
                left[0] -= 1
            done.put((cell, result, error))

        def worker() -> None:
            sess, device = None, None
            loaded: dict[str, Any] = {}
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                if sess is None:
                    # a device first, then a cell: a worker waiting for a device holds no cell,
                    # so the devices that answer measure them all
                    try:
                        sess, loaded = self.session(), {}
                        device = self.describe(sess)
                    except Exception:  # noqa: BLE001 - the tracker or the server refused
                        sess = None
                        time.sleep(0.5)
                        continue
                try:
                    cell, attempt = todo.get(timeout=0.2)
                except queue.Empty:
                    continue
                try:
                    assert device is not None
                    result = time_remote(sess, cell, device, loaded)
                except CellError as e:  # the cell failed, the device is fine
                    finish(cell, None, f"on {device['device']}: {e}")
                    continue
                except Exception as e:  # noqa: BLE001 - a dead server
                    why = f"{type(e).__name__}: {_first(e)}"
                    # this device is done for us: drop every reference to its session so that
                    # the server is free again (the traceback holds one until collected), and
                    # ask the tracker for another device
                    sess, loaded = None, {}
                    del e
                    gc.collect()
                    if attempt < retries:
                        todo.put((cell, attempt + 1))
                    else:
                        where = device["device"] if device else "a device"
                        finish(cell, None, f"on {where}: {why}")
                    continue
                result["device"] = f"{self.key}:{device['device']}"
                finish(cell, result, None)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, workers))]
        for t in threads:
            t.start()
        for _ in range(len(cells)):
            try:
                yield done.get(timeout=stall_s)
            except queue.Empty:  # devices gone or stuck: what is left is reported failed
                with lock:
                    left[0] = 0
                stuck = []
                while not todo.empty():
                    stuck.append(todo.get()[0])
                for cell in stuck:
                    yield cell, None, "no device answered (the tracker has no free server)"
                return
        for t in threads:
            t.join(timeout=5)


class CellError(RuntimeError):
    """A cell failed on a device that is still fine (its worker's error, or a path the device
    cannot run)."""


def time_remote(
    sess: Any, cell: RemoteCell, device: dict[str, Any], loaded: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Uploads the cell's kernel (once per session: `loaded` keeps what this session has;
    uploading over a library the server has loaded crashes it) and measures the cell there; its
    threads planned on the device's CPUs. Returns the record as JSON (without `device`).

    convbench's server runs the task as a local run does, in a fresh worker pinned to its CPUs.
    A plain TVM server has only TVM's time_evaluator (tvm/evaluator of a single conv): the
    kernel is loaded into the session, its pool sized (TVM's kBig mode: a CPU list is an Array,
    which RPC does not carry) and warmed up by count and time as locally."""
    lib = cell.library
    remote_name = f"{lib.parent.name}-{lib.name}"
    loaded = {} if loaded is None else loaded
    plan = plan_cpus(cell.task.threads, device["cpus"])
    if isinstance(cell.task, MeasureTask):
        task: MeasureTask | TimeFuncTask = replace(
            cell.task, cpus=list(plan.cpus), available_cpus=plan.available, kernel_path=remote_name
        )
    else:
        task = replace(cell.task, cpus=list(plan.cpus), kernel_path=remote_name)
    if device.get("convbench"):
        if remote_name not in loaded:
            sess.upload(str(lib), remote_name)
            loaded[remote_name] = None  # uploaded; the worker there loads it
        return remote_task(sess, task, cell.timeout_s)
    if not (
        isinstance(task, MeasureTask)
        and isinstance(task.workload, ConvWorkload)
        and task.path == "evaluator"
    ):
        what = (
            f"tvm/{task.path} of a {task.workload.kind}"
            if isinstance(task, MeasureTask)
            else ("timing a tuned function")
        )
        raise CellError(
            f"{what} needs convbench on the device (`convbench rpc server`); a plain TVM "
            "server runs tvm/evaluator of convs only"
        )
    if remote_name not in loaded:
        sess.upload(str(lib), remote_name)
        loaded[remote_name] = sess.load_module(remote_name)
    timing = _evaluate(sess, loaded[remote_name], task)
    return make_record(task, timing, other_threads_cpus=[]).to_json()


def remote_task(sess: Any, task: Task, timeout_s: float) -> dict[str, Any]:
    """A measuring task run by convbench's server in the session (`convbench.measure`): its
    result, or CellError with the server's reason."""
    answer = json.loads(
        str(sess.get_function("convbench.measure")(json.dumps(task.to_json()), timeout_s))
    )
    if not answer["ok"]:
        raise CellError(answer["error"])
    return dict(answer["result"])


def _evaluate(sess: Any, mod: Any, task: MeasureTask) -> Timing:
    """A plain TVM server's tvm/evaluator: the pool sized by TVM's kBig mode (RPC does not carry
    a CPU list), a Winograd kernel's weights transformed there once, then as locally."""
    import tvm

    w = task.workload
    assert isinstance(w, ConvWorkload)
    dev = sess.cpu(0)
    sess.get_function("runtime.config_threadpool")(1, task.threads)
    data, weight = conv_inputs(w, seed=task.seed)
    tensors = [tvm.runtime.tensor(a, device=dev) for a in (data, weight)]
    m = tile_of(task.algorithm)
    if m is not None:
        u = tvm.runtime.tensor(np.zeros(u_shape(w, m), np.float32), device=dev)
        mod["weight_transform"](tensors[1], u)
        tensors[1] = u
    tensors.append(tvm.runtime.tensor(np.zeros(w.output_shape, np.float32), device=dev))
    return evaluator_timing(mod, dev, tensors, task.config)[0]


def set_remote_threads(sess: Any, threads: int) -> None:
    """Sizes the session's TVM pool: on convbench's server pinned to its first `threads` CPUs,
    on a plain TVM server TVM's kBig mode (RPC does not carry a CPU list)."""
    try:
        pin = sess.get_function("convbench.threads")
    except Exception:  # noqa: BLE001 - a plain TVM server
        sess.get_function("runtime.config_threadpool")(1, threads)
        return
    pin(threads)


def run_evaluator_on_threads(
    threads: int,
    session: Any,
    rt_mod: Any,
    device: Any,
    evaluator_config: Any,
    repeated_args: Any,
) -> list[float]:
    """MetaSchedule RPCRunner's evaluator (bind `threads` with functools.partial): the remote
    pool sized to the thread count the candidate is tuned for, then MetaSchedule's own."""
    from tvm.s_tir.meta_schedule.runner.rpc_runner import default_run_evaluator

    set_remote_threads(session, threads)
    return list(default_run_evaluator(session, rt_mod, device, evaluator_config, repeated_args))


def _server_key(info: dict[str, Any]) -> str:
    key = str(info.get("key", ""))
    return key.split(":", 1)[1] if key.startswith("server:") else key


def _first(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
