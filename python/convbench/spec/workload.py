"""What every workload is, whether a single conv or a cut of a model: one protocol, and the one
way a worker process rebuilds a workload from its task."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .conv import ConvWorkload
from .model import ModelWorkload

__all__ = ["Workload", "workload_from_task"]


@runtime_checkable
class Workload(Protocol):
    """A unit of measurement at one batch size. `kind` is "conv" for a single conv, and "block",
    "model" or "prefix" for a cut of a model; `key` is unique within a run (name and batch)."""

    @property
    def name(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def batch(self) -> int: ...

    @property
    def flops(self) -> int: ...

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def output_shape(self) -> tuple[int, ...]: ...

    def problem(self) -> dict[str, Any]:
        """What determines the computation: the identity a kernel or a tuning record is kept by."""
        ...

    def describe(self) -> dict[str, Any]:
        """The workload as it appears in the results' `workloads` section."""
        ...

    def to_task(self) -> dict[str, Any]:
        """Plain JSON a worker process rebuilds the workload from (workload_from_task)."""
        ...


def workload_from_task(d: dict[str, Any]) -> Workload:
    """The workload a `to_task()` dict describes."""
    if d.get("kind") == "conv":
        return ConvWorkload.from_task(d)
    return ModelWorkload.from_task(d)
