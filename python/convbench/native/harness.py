"""Python face of the native harness: load kernels, call them on numpy arrays, time them natively.

>>> from convbench.native.harness import ConvKernel
>>> k = ConvKernel(path, workload)
>>> out = k(x, w)                    # one call, output allocated
>>> t = k.time(x, w, out)            # C++ loop, GIL released
>>> t.summary["median"]
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from ..spec.arrays import aligned_copy, aligned_empty
from ..spec.conv import ConvWorkload

__all__ = [
    "ConvKernel",
    "EmptyKernel",
    "RunConfig",
    "Timing",
    "ensure_tvm_runtime",
    "pin_threads",
    "relax_vm",
    "time_callable",
    "time_run_n",
]


def tvm_runtime_path() -> Path:
    """libtvm_runtime.so of the installed apache-tvm, found without importing its compiler."""
    spec = importlib.util.find_spec("tvm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("apache-tvm is not installed: cannot find libtvm_runtime.so")
    for loc in spec.submodule_search_locations:
        lib = Path(loc) / "lib" / "libtvm_runtime.so"
        if lib.exists():
            return lib
    raise RuntimeError("apache-tvm is installed but its lib/libtvm_runtime.so is missing")


def ensure_tvm_runtime() -> None:
    if not _core.tvm_runtime_loaded():
        _core.load_tvm_runtime(str(tvm_runtime_path()))


@dataclass(frozen=True)
class RunConfig:
    """How the timing loop samples: see src/cpp/runner.h."""

    warmup_s: float = 0.05
    min_sample_s: float = 0.01
    samples: int = 10
    max_iters: int = 1 << 30
    warmup_iters: int = 10  # warm up for at least this many calls as well as warmup_s

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of every native `time` binding."""
        return asdict(self)


@dataclass
class Timing:
    """Per-call times of every sample, and their summaries (from the C++ statistics).

    CPU clock lists are empty where a path cannot read them (TVM's own time_evaluator).
    """

    iters_per_sample: int
    wall_s: list[float]
    thread_cpu_s: list[float]
    process_cpu_s: list[float]
    cpu_before: int
    cpu_after: int
    warmup_iters: int | None = None
    summary: dict[str, float] = field(init=False)
    cpu_summary: dict[str, float] | None = field(init=False)
    thread_cpu_summary: dict[str, float] | None = field(init=False)

    def __post_init__(self) -> None:
        self.summary = _core.summarize(self.wall_s)
        self.cpu_summary = _core.summarize(self.process_cpu_s) if self.process_cpu_s else None
        self.thread_cpu_summary = _core.summarize(self.thread_cpu_s) if self.thread_cpu_s else None

    @classmethod
    def from_native(cls, m: dict[str, Any]) -> Timing:
        return cls(
            int(m["iters_per_sample"]),
            list(m["wall_s"]),
            list(m["thread_cpu_s"]),
            list(m["process_cpu_s"]),
            int(m["cpu_before"]),
            int(m["cpu_after"]),
            int(m["warmup_iters"]),
        )

    @property
    def parallelism(self) -> float | None:
        """Process CPU time over wall time: how many cores the call kept busy on average."""
        wall = sum(self.wall_s)
        if not self.process_cpu_s or wall <= 0:
            return None
        return sum(self.process_cpu_s) / wall


def time_run_n(run_n: Callable[[int], Any], config: RunConfig | None = None) -> Timing:
    """Times `run_n(n)`, a loop making n calls, with the harness's warm-up, calibration, clocks."""
    return Timing.from_native(_core.time_loop(run_n, **(config or RunConfig()).kwargs()))


def time_callable(fn: Callable[[], Any], config: RunConfig | None = None) -> Timing:
    """Times `fn()` called from a Python loop: what a user's Python code pays per call."""

    def run_n(n: int) -> None:
        for _ in repeat(None, n):
            fn()

    return time_run_n(run_n, config)


def pin_threads(cpus: tuple[int, ...] | list[int]) -> None:
    """Size TVM's pool to len(cpus), bind worker i to cpus[i], pin the calling thread to cpus[0].

    The TVM pool is per calling thread: call this from the thread that will run the kernels, before
    the first parallel kernel runs.
    """
    ensure_tvm_runtime()
    _core.configure_tvm_threadpool(list(cpus))
    # TVM leaves the calling thread free to migrate; the timing thread gets its own core.
    _core.pin_current_thread([cpus[0]])


class _Kernel:
    def __init__(
        self, path: str | os.PathLike[str], specs: list[tuple[str, list[int], bool]]
    ) -> None:
        ensure_tvm_runtime()
        self._native = _core.TvmKernel(str(path), specs)
        self.path = Path(path)

    def call(self, *arrays: np.ndarray) -> None:
        """One call on exactly the kernel's arrays (inputs then output); checked first."""
        self._native.call(list(arrays))

    def time(self, *arrays: np.ndarray, config: RunConfig | None = None) -> Timing:
        return Timing.from_native(
            self._native.time(list(arrays), **(config or RunConfig()).kwargs())
        )

    @property
    def native(self) -> Any:
        return self._native


class ConvKernel(_Kernel):
    """An exported conv kernel: main(data NHWC, weight HWIO, out NHWC), float32. With
    `weight_shape` (a Winograd kernel), `main` takes the weights as `weight_transform(weight
    HWIO, U)` made them, once, when the kernel is loaded (`prepare`)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        workload: ConvWorkload,
        weight_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(
            path,
            [
                ("data", list(workload.input_shape), False),
                ("weight", list(weight_shape or workload.weight_shape), False),
                ("out", list(workload.output_shape), True),
            ],
        )
        self.workload = workload
        self.weight_shape = weight_shape

    def new_output(self) -> np.ndarray:
        return aligned_empty(self.workload.output_shape)

    def prepare(self, weight: np.ndarray, runs: int = 1) -> tuple[np.ndarray, float | None]:
        """The weights `main` takes, and the median time of the transform that made them over
        `runs` runs (None for a kernel that takes HWIO weights as they are)."""
        if self.weight_shape is None:
            return weight, None
        import time

        import tvm_ffi

        f = tvm_ffi.load_module(str(self.path))["weight_transform"]
        u = aligned_empty(self.weight_shape)
        src, dst = tvm_ffi.from_dlpack(aligned_copy(weight)), tvm_ffi.from_dlpack(u)
        times = []
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            f(src, dst)
            times.append(time.perf_counter() - t0)
        return u, float(np.median(times))

    def __call__(self, data: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Convenience call: inputs copied to aligned float32 if needed, output allocated."""
        out = self.new_output()
        prepared, _ = self.prepare(aligned_copy(weight))
        self.call(aligned_copy(data), prepared, out)
        return out


class EmptyKernel(_Kernel):
    """The do-nothing kernel: timing it gives the harness's fixed cost per call."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, [("a", [1], True)])
        self.arg = aligned_empty((1,))
        self.arg[0] = 0


def relax_vm(path: str | os.PathLike[str], input_shape: Any, output_shape: Any) -> Any:
    """An exported Relax executable `main(x) -> y`, called and timed from the C++ loop."""
    ensure_tvm_runtime()
    return _core.RelaxVm(
        str(path), [("x", list(input_shape), False)], ("y", list(output_shape), True)
    )
