"""Which layer costs what: TVM's compiled functions and TF's ops mapped onto the model's layers,
side by side, with their sums against the measured whole; and the model's conv time predicted
from the single-conv results.

A layer is a conv and the element-wise nodes after it up to the next conv (its BN, ReLU and a
residual add): what Relax's FuseOps puts in one function, and what grappler fuses into one
_FusedConv2D where it can.
"""

from __future__ import annotations

from typing import Any

from .model import Graph

__all__ = ["conv_prediction", "layer_table", "node_layers"]

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


# The single-conv path standing for each framework's conv time, and the model path it is held
# against: kernels against kernels' framework.
PREDICTION_PATHS = {"tvm": ("native", "native"), "tf": ("kernel", "native-graph")}


def conv_prediction(workloads: list[Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each whole-model record: sum over the six single convs of count x median time, against
    the model's measured time; `outside_convs_share` is the rest as a share of the model.

    The six convs are the reconstructed single workloads (3x3, stride 1, C -> C), counted by
    output shape as the research log counted them; the model's stride-2, 1x1 shortcut and
    1-channel stem convs differ from them, and that difference lands in the share too."""
    from .spec import Workload

    convs = [w for w in workloads if isinstance(w, Workload)]
    med = {
        (r["workload"], r["batch"], r["threads"], r["backend"], r["path"]): r["median_s"]
        for r in records
    }
    out = []
    for m in workloads:
        if isinstance(m, Workload):
            continue
        # the whole model: the default run's, or partsearch's prefix that ends at its output
        if m.kind != "model" and not (m.start is None and m.stop == Graph.from_spec(m.spec).output):
            continue
        for threads in sorted({r["threads"] for r in records if r["workload"] == m.name}):
            for backend, (conv_path, model_path) in PREDICTION_PATHS.items():
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
