"""What crosses the process boundary: one frozen task type per kind of work a worker does, each
written to JSON one way (`to_json`) and read back one way (`task_from_json`).

The workload travels as its own `to_task()` dict and is rebuilt by `workload_from_task`; the
sampling settings as a RunConfig.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..native.harness import RunConfig
from ..spec.workload import Workload, workload_from_task

__all__ = [
    "CheckTask",
    "GraphDefTask",
    "LayersTask",
    "MeasureTask",
    "OverheadTask",
    "PeakTask",
    "ProbeTask",
    "Task",
    "TimeFuncTask",
    "task_from_json",
]


@dataclass(frozen=True)
class Task:
    type: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, RunConfig):
                value = dataclasses.asdict(value)
            elif f.name == "workload":
                value = value.to_task()
            out[f.name] = value
        return out


@dataclass(frozen=True)
class MeasureTask(Task):
    """Time one cell: a workload along one path of the ladder at one thread count. `schedule`
    and `tuned` describe the TVM kernel for the record; `graph_def` is a model cut's frozen
    graph for TF's C API paths."""

    type: ClassVar[str] = "measure"
    workload: Workload
    backend: str
    path: str
    threads: int
    cpus: list[int]
    available_cpus: int
    seed: int = 0
    config: RunConfig = field(default_factory=RunConfig)
    kernel_path: str | None = None
    graph_def: str | None = None
    schedule: str | None = None
    tuned: bool | None = None
    cache: str = "warm"  # "cold": rotate through copies of the arrays that exceed the LLC
    algorithm: str = "direct"  # a conv's TVM kernel: "direct", or "winograd-<m>" (F(m x m, 3x3))


@dataclass(frozen=True)
class CheckTask(Task):
    """Each TVM build of a workload against TF, and both against float64. kernel_paths: {label:
    library} (a conv: one kernel; a model cut: its fused and unfused builds)."""

    type: ClassVar[str] = "check"
    workload: Workload
    kernel_paths: dict[str, str]
    seed: int = 0
    rtol: float = 1e-5
    graph_def: str | None = None  # a model file's cut: the GraphDef TF runs
    algorithm: str = "direct"  # a conv's kernel: as MeasureTask.algorithm


@dataclass(frozen=True)
class LayersTask(Task):
    """Per-layer times of a model cut: every compiled function of the TVM build, every TF op."""

    type: ClassVar[str] = "layers"
    workload: Workload
    kernel_path: str
    threads: int
    cpus: list[int]
    seed: int = 0
    config: RunConfig = field(default_factory=RunConfig)
    tf_runs: int = 20  # traced runs of TF's graph (each beside a plain one)
    graph_def: str | None = None  # a model file's cut: the GraphDef TF runs
    context_runs: int = 20  # instrumented runs of the whole cut (each beside a plain one)
    cold: bool = True  # also time each function alone on arrays that miss the cache


@dataclass(frozen=True)
class OverheadTask(Task):
    """Each TVM path's fixed price per call, on the empty kernel."""

    type: ClassVar[str] = "overhead"
    kernel_path: str
    cpus: list[int]
    config: RunConfig = field(default_factory=RunConfig)


@dataclass(frozen=True)
class TimeFuncTask(Task):
    """One compiled function on seeded random arguments of these shapes (the last is its output)."""

    type: ClassVar[str] = "time_func"
    kernel_path: str
    shapes: list[list[int]]
    cpus: list[int]
    config: RunConfig = field(default_factory=RunConfig)


@dataclass(frozen=True)
class GraphDefTask(Task):
    """Write a model cut's frozen TF GraphDef to `out` (for TF's C API paths)."""

    type: ClassVar[str] = "graphdef"
    workload: Workload
    out: str


@dataclass(frozen=True)
class ProbeTask(Task):
    """The candidate kernels of one conv ({algorithm: library}: direct, Winograd tiles) timed
    by the native loop in one process, one sample of each in turn for `config.samples` rounds:
    what the machine does to one candidate it does to the others, so the faster is the faster."""

    type: ClassVar[str] = "probe"
    workload: Workload
    kernels: dict[str, str]
    threads: int
    cpus: list[int]
    seed: int = 0
    config: RunConfig = field(default_factory=RunConfig)


@dataclass(frozen=True)
class PeakTask(Task):
    """The fp32 FMA roof on these CPUs, one pinned thread each: a short probe."""

    type: ClassVar[str] = "peak"
    cpus: list[int]
    seconds: float = 0.05
    repeats: int = 3


_TYPES: dict[str, type[Task]] = {
    t.type: t
    for t in (
        MeasureTask,
        CheckTask,
        LayersTask,
        OverheadTask,
        TimeFuncTask,
        GraphDefTask,
        PeakTask,
        ProbeTask,
    )
}


def task_from_json(d: dict[str, Any]) -> Task:
    cls = _TYPES.get(d.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown task type {d.get('type')!r}")
    kwargs = {k: v for k, v in d.items() if k != "type"}
    if "workload" in kwargs:
        kwargs["workload"] = workload_from_task(kwargs["workload"])
    if "config" in kwargs:
        kwargs["config"] = RunConfig(**kwargs["config"])
    return cls(**kwargs)
