"""The host: CPU model, the CPUs this process may use, and the TVM target built for them."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["CpuPlan", "TargetError", "allowed_cpus", "cpu_model", "host_target", "plan_cpus"]

# The wheel's default triple is a conda one; the kernels are plain Linux shared objects.
TRIPLE = "x86_64-linux-gnu"


class TargetError(RuntimeError):
    """The host CPU cannot be turned into a TVM target that is not `generic`."""


def allowed_cpus() -> list[int]:
    """CPUs this process may run on (its affinity mask, not the machine's core count)."""
    return sorted(os.sched_getaffinity(0))


@cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class CpuPlan:
    """Which CPU each of `threads` threads is bound to. Thread 0 is the timing thread."""

    threads: int
    cpus: tuple[int, ...]
    available: int

    @property
    def oversubscribed(self) -> bool:
        return self.threads > self.available


def plan_cpus(threads: int, available: list[int] | None = None) -> CpuPlan:
    """Bind thread i to available[i % len(available)]: more threads than CPUs share them."""
    if threads < 1:
        raise ValueError(f"a thread count must be at least 1, got {threads}")
    cpus = available if available is not None else allowed_cpus()
    if not cpus:
        raise ValueError("no CPU is available to this process")
    return CpuPlan(threads, tuple(cpus[i % len(cpus)] for i in range(threads)), len(cpus))


@cache
def host_cpu_name() -> str:
    """LLVM's name for the host CPU, as TVM's LLVM sees it (e.g. 'znver5', 'sapphirerapids')."""
    import tvm  # noqa: F401  (registers the LLVM functions)
    import tvm_ffi

    override = os.environ.get("CONVBENCH_MCPU")
    name = override or str(tvm_ffi.get_global_func("tvm.codegen.llvm.GetHostCPUName")())
    valid = tvm_ffi.get_global_func("target.llvm_is_valid_cpu")
    if not name or name == "generic" or not valid(name, TRIPLE):
        raise TargetError(
            f"TVM's LLVM does not know this CPU ({cpu_model()!r}, LLVM name {name!r}); kernels "
            "built for 'generic' would be slow. Set CONVBENCH_MCPU to the closest LLVM CPU name "
            "(e.g. x86-64-v4 for any AVX-512 CPU, x86-64-v3 for AVX2)."
        )
    return name


def host_target(num_cores: int | None = None) -> Any:
    """The TVM target for this host. `num-cores` is what MetaSchedule assumes when tuning."""
    import tvm

    cores = num_cores if num_cores is not None else len(allowed_cpus())
    return tvm.target.Target(
        {"kind": "llvm", "mcpu": host_cpu_name(), "mtriple": TRIPLE, "num-cores": int(cores)}
    )
