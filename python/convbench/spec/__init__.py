"""Layer 0: what is measured. The shapes file, the conv and model descriptions, the workloads they
make, and the arrays every backend shares. pydantic, PyYAML and numpy only."""

from __future__ import annotations

from .conv import ConvSpec, ConvWorkload
from .errors import SpecError
from .model import Graph, ModelSpec, ModelWorkload, Node, histogram_mismatch, model_workloads
from .shapes import ShapesFile, load_shapes, load_spec, parse_shapes, parse_spec
from .workload import Workload, workload_from_task

__all__ = [
    "ConvSpec",
    "ConvWorkload",
    "Graph",
    "ModelSpec",
    "ModelWorkload",
    "Node",
    "ShapesFile",
    "SpecError",
    "Workload",
    "histogram_mismatch",
    "load_shapes",
    "load_spec",
    "model_workloads",
    "parse_shapes",
    "parse_spec",
    "workload_from_task",
]
