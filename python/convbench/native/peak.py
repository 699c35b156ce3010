"""The host's measured fp32 FMA peak per thread count, cached once per machine.

The cache file sits next to the kernel cache; its entry is keyed by CPU model, vector ISA and the
CPUs the threads were pinned to, so another machine (or another affinity mask) measures afresh.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .. import _core
from ..cpus import cpu_model, plan_cpus

__all__ = ["PeakCache"]


class PeakCache:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, threads: int) -> dict[str, Any]:
        """{isa, threads, gflops, cpus, cached} for `threads` threads pinned as a run pins them."""
        plan = plan_cpus(threads)
        key = f"{cpu_model()}|{_core.peak_isa()}|{','.join(map(str, plan.cpus))}"
        entries = self._load()
        if key in entries:
            return {**entries[key], "cached": True}
        result = dict(_core.measure_peak(list(plan.cpus)))
        result["cpus"] = list(plan.cpus)
        entries[key] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
        return {**result, "cached": False}
