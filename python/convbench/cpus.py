"""The host's CPUs: its CPU model, the CPUs this process may use, and how a cell's threads are
placed on them. Pure Python (os only), so every layer can use it."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache

__all__ = ["CpuPlan", "allowed_cpus", "cpu_model", "plan_cpus"]


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
