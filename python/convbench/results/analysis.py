"""What a run's records say, derived in one place: records grouped by cell, the overhead ladder,
the cross-checks between measurements of the same call, the per-layer tables of model cuts and the
model's conv time predicted from the single convs.

The ladder, from the kernel up: the kernel itself, the native dispatch around it (native minus
kernel), and what each Python path adds on top of native (path minus native). TVM's kernel time
is its native time minus the harness's own per-call floor (the empty kernel); TF's is oneDNN's
execution profile (`tf/kernel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..paths import BACKENDS, ladder_paths, wraps
from ..spec.conv import ConvWorkload
from ..spec.model import Graph, ModelWorkload
from ..spec.workload import Workload
from .record import Record

__all__ = [
    "EVALUATOR_TOLERANCE",
    "by_cell",
    "conv_prediction",
    "cross_checks",
    "ladder",
    "layer_table",
    "node_layers",
]

EVALUATOR_TOLERANCE = 0.05  # native and evaluator time the same call: they must agree this well

Cell = tuple[str, int, int]


def by_cell(records: Sequence[Record]) -> dict[Cell, dict[str, Record]]:
    """Records grouped by (workload, batch, threads), then keyed by "backend/path"."""
    out: dict[Cell, dict[str, Record]] = {}
    for r in records:
        out.setdefault(r.cell, {})[r.id] = r
    return out


def _medians(records: Sequence[Record]) -> dict[Cell, dict[str, float]]:
    return {
        cell: {p: r.median_s for p, r in paths.items()} for cell, paths in by_cell(records).items()
    }


def _rung(seconds: float, total: float) -> dict[str, float]:
    return {"us": seconds * 1e6, "share": seconds / total if total > 0 else 0.0}


def ladder(records: Sequence[Record], floor_s: float | None) -> list[dict[str, Any]]:
    """One entry per (workload, batch, threads, backend) that has its native time."""
    entries = []
    for (name, batch, threads), m in _medians(records).items():
        for backend in ("tvm", "tf"):
            native = m.get(f"{backend}/native")
            if native is None:
                continue
            if backend == "tvm":
                kernel = native - floor_s if floor_s is not None else None
            else:
                kernel = m.get("tf/kernel")
            entry: dict[str, Any] = {
                "workload": name,
                "batch": batch,
                "threads": threads,
                "backend": backend,
                "native_us": native * 1e6,
            }
            if kernel is not None:
                entry["kernel"] = _rung(kernel, native)
                entry["native_dispatch"] = _rung(native - kernel, native)
            python = {}
            for path in ladder_paths(backend):
                t = m.get(f"{backend}/{path}")
                if t is not None:
                    python[path] = {**_rung(t - native, t), "total_us": t * 1e6}
            entry["python_overhead"] = python
            entries.append(entry)
    return entries


def cross_checks(records: Sequence[Record]) -> list[str]:
    """Warnings for measurements that contradict each other."""
    warnings = []
    for (name, batch, threads), m in _medians(records).items():
        where = f"{name} b{batch} t{threads}"
        native, ev = m.get("tvm/native"), m.get("tvm/evaluator")
        if native and ev and abs(native - ev) / ev > EVALUATOR_TOLERANCE:
            warnings.append(
                f"{where}: tvm/native ({native * 1e6:.2f} us) and tvm/evaluator "
                f"({ev * 1e6:.2f} us) differ by {abs(native - ev) / ev:.0%}, more than "
                f"{EVALUATOR_TOLERANCE:.0%}: they time the same call"
            )
        kernel, tf_native = m.get("tf/kernel"), m.get("tf/native")
        if kernel and tf_native and kernel > tf_native:
            warnings.append(
                f"{where}: tf/kernel ({kernel * 1e6:.2f} us) is slower than "
                f"tf/native ({tf_native * 1e6:.2f} us), which contains it"
            )
        # The native rung each TF Python path adds Python to: the eager runtime for eager and
        # tf.function, a session over a graph with constant weights for the session paths.
        for path, inner in wraps("tf").items():
            t, t_inner = m.get(f"tf/{path}"), m.get(f"tf/{inner}")
            if t and t_inner and t < t_inner:
                warnings.append(
                    f"{where}: tf/{path} ({t * 1e6:.2f} us) is faster than "
                    f"tf/{inner} ({t_inner * 1e6:.2f} us), which it wraps"
                )
    return warnings


# ------------------------------------------------------------------------------------------------
# Per-layer tables of model cuts, and the conv-time prediction
#
# A layer is a conv and the element-wise nodes after it up to the next conv (its BN, ReLU and a
# residual add): what Relax's FuseOps puts in one function, and what grappler fuses into one
# _FusedConv2D where it can.
# ------------------------------------------------------------------------------------------------
OUTSIDE = "(outside the graph)"


def node_layers(g: Graph) -> tuple[list[str], dict[str, str]]:
    """The layer names in order, and the layer of every node."""
    layers: list[str] = []
    of: dict[str, str] = {}
    current = None
    for n in g.nodes:
        if n.kind == "input":
            continue
        if n.kind == "conv" or current is None:
            current = n.name
            layers.append(current)
        of[n.name] = current
    return layers, of


def _tf_node(op: str, names: list[str]) -> str | None:
    """The graph node an executed TF op belongs to: the node named like it, or whose name is
    the longest prefix of it followed by '/' (ops grappler made keep their node's scope)."""
    best = None
    for name in names:
        if (op == name or op.startswith(name + "/")) and (best is None or len(name) > len(best)):
            best = name
    return best


def layer_table(g: Graph, raw: dict[str, Any]) -> dict[str, Any]:
    """Rows of the per-layer table from a `layers` worker result."""
    layers, of = node_layers(g)
    conv_layers = [name for name in layers if g.node(name).kind == "conv"]
    rows: dict[str, dict[str, Any]] = {}

    def row(layer: str) -> dict[str, Any]:
        return rows.setdefault(
            layer, {"layer": layer, "tvm_s": 0.0, "tvm_funcs": [], "tf_s": 0.0, "tf_ops": []}
        )

    for name in layers:
        row(name)
    calls = raw["tvm_calls"]
    n_conv = sum("conv2d" in c["func"] for c in calls)
    if n_conv != len(conv_layers):
        raise ValueError(
            f"the TVM build calls {n_conv} conv functions for {len(conv_layers)} conv "
            "layers: the call plan does not match the graph"
        )
    # A conv function opens its layer; the functions after it (a slice, or unfused element-wise
    # ops) belong to it too.
    next_conv = iter(conv_layers)
    current = layers[0] if layers else OUTSIDE
    for c in calls:
        if "conv2d" in c["func"]:
            current = next(next_conv)
        row(current)["tvm_s"] += c["median_s"]
        row(current)["tvm_funcs"].append(c["func"])
    names = g.names
    for op, t in raw["tf_ops"].items():
        node = _tf_node(op, names)
        r = row(of.get(node, OUTSIDE) if node else OUTSIDE)
        r["tf_s"] += t
        r["tf_ops"].append(f"{op}:{raw['tf_op_types'].get(op, '')}")
    out_rows = list(rows.values())
    tvm_sum = sum(r["tvm_s"] for r in out_rows)
    tf_sum = sum(r["tf_s"] for r in out_rows)
    return {
        "rows": out_rows,
        "tvm_sum_s": tvm_sum,
        "tf_sum_s": tf_sum,
        "tvm_sum_vs_whole": tvm_sum / raw["tvm_whole_s"] if raw["tvm_whole_s"] else None,
        "tf_sum_vs_whole": tf_sum / raw["tf_whole_s"] if raw["tf_whole_s"] else None,
    }


def conv_prediction(
    workloads: Sequence[Workload], records: Sequence[Record]
) -> list[dict[str, Any]]:
    """For each whole-model record: sum over the six single convs of count x median time, against
    the model's measured time; `outside_convs_share` is the rest as a share of the model.

    The six convs are the reconstructed single workloads (3x3, stride 1, C -> C), counted by
    output shape as the research log counted them; the model's stride-2, 1x1 shortcut and
    1-channel stem convs differ from them, and that difference lands in the share too. Each
    framework's conv time is its `paths.BACKENDS` conv rung, held against its model rung."""
    convs = [w for w in workloads if isinstance(w, ConvWorkload)]
    med = {(r.workload, r.batch, r.threads, r.backend, r.path): r.median_s for r in records}
    out = []
    for m in workloads:
        if not isinstance(m, ModelWorkload):
            continue
        # the whole model: the default run's, or partsearch's prefix that ends at its output
        if m.kind != "model" and not (m.start is None and m.stop == m.spec.graph.output):
            continue
        for threads in sorted({r.threads for r in records if r.workload == m.name}):
            for backend, b in BACKENDS.items():
                conv_path, model_path = b.conv_rung, b.model_rung
                measured = med.get((m.name, m.batch, threads, backend, model_path))
                parts = [
                    (w.spec.count, med.get((w.name, m.batch, threads, backend, conv_path)))
                    for w in convs
                    if w.batch == m.batch and w.spec.count
                ]
                if measured is None or not parts or any(t is None for _, t in parts):
                    continue
                predicted = sum(c * t for c, t in parts)  # type: ignore[operator]
                out.append(
                    {
                        "workload": m.name,
                        "batch": m.batch,
                        "threads": threads,
                        "backend": backend,
                        "conv_path": f"{backend}/{conv_path}",
                        "model_path": f"{backend}/{model_path}",
                        "predicted_conv_s": predicted,
                        "measured_s": measured,
                        "outside_convs_share": 1.0 - predicted / measured,
                    }
                )
    return out
