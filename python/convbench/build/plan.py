"""A Relax build's call plan: the compiled functions its VM calls, in order, with where each
argument comes from. Written beside the library by build.relax, replayed one function at a time by
the per-layer timer. numpy and JSON only, so a worker reads it without importing TVM's compiler."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LayerPlan"]


@dataclass
class LayerPlan:
    """The compiled functions the VM calls, in order. An argument is ["input"], ["call", k] (the
    output of call k) or ["const", j] (constants.npz's array j); the last argument of every call
    is its own output."""

    calls: list[dict[str, Any]]
    constants: list[np.ndarray]

    def save(self, directory: Path) -> None:
        (directory / "plan.json").write_text(json.dumps({"calls": self.calls}, indent=1))
        np.savez(directory / "constants.npz", *self.constants)

    @classmethod
    def load(cls, directory: Path) -> LayerPlan:
        calls = json.loads((directory / "plan.json").read_text())["calls"]
        with np.load(directory / "constants.npz") as z:
            consts = [z[f"arr_{i}"] for i in range(len(z.files))]
        return cls(calls, consts)
