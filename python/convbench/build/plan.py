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

    def arg_shapes(self, input_shape: tuple[int, ...] | list[int]) -> list[list[list[Any]]]:
        """Per call, [source kind, shape] of each argument (not its output): what the call
        computes, for matching it to the graph's layers."""
        out = []
        for call in self.calls:
            args = []
            for src in call["args"]:
                if src[0] == "input":
                    shape = list(input_shape)
                elif src[0] == "call":
                    shape = list(self.calls[src[1]]["shape"])
                else:
                    shape = list(self.constants[src[1]].shape)
                args.append([src[0], shape])
            out.append(args)
        return out

    @classmethod
    def load(cls, directory: Path) -> LayerPlan:
        calls = json.loads((directory / "plan.json").read_text())["calls"]
        with np.load(directory / "constants.npz") as z:
            consts = [z[f"arr_{i}"] for i in range(len(z.files))]
        return cls(calls, consts)
