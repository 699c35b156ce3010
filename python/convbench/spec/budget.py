"""What a workload will need, from the parsed shapes file alone: its tensors' element counts (TVM
indexes them with int32) and an estimate of the bytes a worker allocates for it, so that a run
refuses an impossible workload before it builds or starts anything.

The estimate counts what the worker that needs the most holds at once:

- a conv: input, zero-padded input and weights, the outputs (TVM's, TF's, the timed call's), each
  `copies` times (cold-cache copies rotate through several sets of buffers), plus the float64
  reference the check computes (input, weights, output) and the float64 arrays the seeded inputs
  are drawn into;
- a model cut: its weights (float32 in each framework's copy of the graph, float64 when drawn and
  in the float64 reference) and its activations (the largest tensor of the cut, a few alive at
  once, in float32 and in the float64 reference), times the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .conv import ConvWorkload
from .limits import check_int32
from .model import ModelWorkload
from .shapes import ShapesFile
from .workload import Workload

__all__ = ["Estimate", "LIVE_ACTIVATIONS", "estimate", "fmt_bytes", "refusals"]

F32, F64 = 4, 8
LIVE_ACTIVATIONS = 4  # tensors of the largest size alive at once in a model (a residual unit)


@dataclass(frozen=True)
class Estimate:
    """Bytes by what holds them; `field` is the shapes file's field that drives the biggest."""

    parts: dict[str, int]
    field: str

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def _conv(w: ConvWorkload, copies: int) -> Estimate:
    t = w.spec.tensor_elements(w.batch)
    parts = {
        "input and weights": (t["input"] + t["padded input"] + t["weight tensor"]) * F32 * copies,
        "outputs": 3 * t["output"] * F32 * copies,
        "float64 reference": (t["input"] + t["weight tensor"] + t["output"]) * F64 * 2,
    }
    field = "out_channels" if t["weight tensor"] > t["input"] + t["output"] else "input"
    return Estimate(parts, field)


def _model(w: ModelWorkload, copies: int) -> Estimate:
    g = w.graph
    weights = 0
    for n in g.nodes:
        if n.weights:  # a model file's node: the constants it reads, counted by extract
            weights += n.weights
        elif n.kind == "conv" and n.conv is not None:
            kh, kw = n.conv.kernel
            weights += kh * kw * (n.conv.input[3] // n.conv.groups) * n.conv.out_channels
        elif n.kind == "bn":
            weights += 4 * n.shape[-1]
        elif n.kind == "bias_add":
            weights += n.shape[-1]
    largest = max(_elements(n.shape[1:]) for n in g.nodes) * w.batch
    parts = {
        "weights": weights * (2 * F32 + 2 * F64),
        "activations": largest * LIVE_ACTIVATIONS * (F32 * copies + F64),
    }
    field = "model.stages" if parts["weights"] > parts["activations"] else "model.input"
    return Estimate(parts, field)


def estimate(w: Workload, copies: int = 1) -> Estimate:
    """The bytes `w` needs (see the module's docstring); `copies`: sets of timed buffers."""
    if isinstance(w, ConvWorkload):
        return _conv(w, copies)
    if isinstance(w, ModelWorkload):
        return _model(w, copies)
    raise TypeError(f"no estimate for a {type(w).__name__}")


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _int32(w: Workload) -> tuple[str, str] | None:
    """(field, message) for the first tensor of `w` at its batch that int32 cannot index."""
    if isinstance(w, ConvWorkload):
        problem = check_int32(w.spec.tensor_elements(w.batch))
        field = "out_channels" if problem and problem.startswith("the weight") else "input"
        return (field, problem) if problem else None
    if isinstance(w, ModelWorkload):
        for n in w.graph.nodes:
            if n.kind == "conv" and n.conv is not None:
                problem = check_int32(n.conv.tensor_elements(w.batch))
            else:
                problem = check_int32({"output": _elements(n.shape[1:]) * w.batch})
            if problem:
                return "model.input", f"node '{n.name}': {problem}"
    return None


def _entry(shapes: ShapesFile, w: Workload) -> str:
    if isinstance(w, ConvWorkload):
        i = next((i for i, c in enumerate(shapes.convs) if c.name == w.name), None)
        return f"convs[{i}] ('{w.name}')" if i is not None else f"conv '{w.name}'"
    model = shapes.model.name if shapes.model is not None else "?"
    return f"model ('{model}'), {getattr(w, 'kind', 'cut')} '{w.name}'"


def refusals(
    shapes: ShapesFile,
    workloads: list[Workload],
    limit_bytes: int,
    limit_text: str,
    copies: int = 1,
) -> list[str]:
    """A message for every workload that TVM cannot index or that needs more than
    `limit_bytes` (`limit_text` says where the limit comes from); [] when all fit."""
    out = []
    for w in workloads:
        where = f"{shapes.source}: {_entry(shapes, w)}"
        bad = _int32(w)
        if bad is not None:
            field, problem = bad
            out.append(f"{where}: field '{field}' at batch {w.batch}: {problem}")
            continue
        e = estimate(w, copies)
        if e.total > limit_bytes:
            parts = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in e.parts.items())
            out.append(
                f"{where}: field '{e.field}' at batch {w.batch}: needs about "
                f"{fmt_bytes(e.total)} ({parts}), more than the limit of "
                f"{fmt_bytes(limit_bytes)} ({limit_text})"
            )
    return out
