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

from ..build.compute import superset
from ..build.winograd import layer_problem
from ..paths import BACKENDS, RUNGS, ladder_paths, wraps
from ..spec.conv import ConvWorkload
from ..spec.model import Graph, ModelWorkload
from ..spec.workload import Workload
from .decomposition import BETWEEN_OPS, SESSION, cut_decomposition
from .record import Record

__all__ = [
    "EVALUATOR_TOLERANCE",
    "by_cell",
    "call_layers",
    "choose_in_context",
    "conv_prediction",
    "cross_checks",
    "faster_beyond_noise",
    "framework_shares",
    "ladder",
    "layer_table",
    "node_layers",
    "problem_seconds",
    "serial_cells",
]

EVALUATOR_TOLERANCE = 0.05  # native and evaluator time the same call: they must agree this well
# A kernel is not slower, and a wrapper not faster, than the call around / beneath it by more
# than this or twice their CV: closer than that, the two are the same time measured twice.
CONTAINMENT_TOLERANCE = 0.01


def _noise(a: Record, b: Record, floor: float) -> float:
    return max(floor, 2 * max(a.cv or 0.0, b.cv or 0.0))


def faster_beyond_noise(a: Record, b: Record, b_s: float | None = None) -> bool:
    """Whether `a` is faster than `b` (its median, or `b_s` where b's time is derived from it,
    as TVM's kernel is) by more than CONTAINMENT_TOLERANCE or twice their CVs: a call faster
    than what it contains, which cannot be."""
    limit = b.median_s if b_s is None else b_s
    return a.median_s * (1 + _noise(a, b, CONTAINMENT_TOLERANCE)) < limit


Cell = tuple[str, int, int]


def by_cell(records: Sequence[Record]) -> dict[Cell, dict[str, Record]]:
    """Records grouped by (workload, batch, threads), then keyed by "backend/path"."""
    out: dict[Cell, dict[str, Record]] = {}
    for r in records:
        out.setdefault(r.cell, {})[r.id] = r
    return out


def _rung(seconds: float, total: float) -> dict[str, float]:
    return {"us": seconds * 1e6, "share": seconds / total if total > 0 else 0.0}


def inconsistencies(records: Sequence[Record]) -> dict[tuple[Cell, str], str]:
    """Measurements that contradict each other, {(cell, "backend/path"): why}: the record named
    is the one that cannot be right, and it is left out of every derived table.

    - tvm/evaluator against tvm/native: the same call timed two ways; apart by more than
      EVALUATOR_TOLERANCE or twice their noise, the evaluator is marked. Where the evaluator's
      cell alternated its samples with the native loop's (`paired_native_s`), the median of the
      pairs' ratios, each pair taken under the same conditions, and the noise that of the
      ratios; else the two cells' medians, and the noise their CVs;
    - tf/kernel slower than tf/native, the call that contains it: the kernel is marked;
    - a wrapper (a Cython or Python loop, a TF Python API) faster than the native rung it adds
      to: the wrapper is marked.
    "Slower" and "faster" mean beyond their noise (CONTAINMENT_TOLERANCE or twice their CV);
    within it, the ladder shows the difference as zero.
    """
    out: dict[tuple[Cell, str], str] = {}
    for cell, m in by_cell(records).items():
        nat, ev = m.get("tvm/native"), m.get("tvm/evaluator")
        ratio = ev.paired_ratio if ev else None
        if ev and ratio:
            # the native loop's samples alternated with the evaluator's, in the same processes:
            # the median of the pairs' ratios
            diff = abs(1 / ratio - 1)  # native over evaluator, as for two cells' medians
            allowed = max(EVALUATOR_TOLERANCE, 2 * ev.paired_ratio_cv)
            if diff > allowed:
                native_us = ev.paired_native_median_s * 1e6
                out[(cell, ev.id)] = (
                    f"tvm/native (alternated with the evaluator, {native_us:.2f} us) and "
                    f"tvm/evaluator ({ev.median_s * 1e6:.2f} us) differ by {diff:.0%} "
                    f"(the median of {len(ev.pair_ratios)} pairs' ratios), more than "
                    f"{allowed:.0%}: they time the same call"
                )
        elif nat and ev:
            diff = abs(nat.median_s - ev.median_s) / ev.median_s
            allowed = _noise(nat, ev, EVALUATOR_TOLERANCE)
            if diff > allowed:
                out[(cell, ev.id)] = (
                    f"tvm/native ({nat.median_s * 1e6:.2f} us) and tvm/evaluator "
                    f"({ev.median_s * 1e6:.2f} us) differ by {diff:.0%}, more than "
                    f"{allowed:.0%}: they time the same call"
                )
        for backend in ("tvm", "tf"):
            kernel = m.get(f"{backend}/kernel")
            native = m.get(f"{backend}/native")
            if kernel and native and faster_beyond_noise(native, kernel):
                out[(cell, kernel.id)] = (
                    f"{kernel.id} ({kernel.median_s * 1e6:.2f} us) is slower than "
                    f"{native.id} ({native.median_s * 1e6:.2f} us), which contains it"
                )
            for path, inner in wraps(backend, references=False).items():
                outer_r, inner_r = m.get(f"{backend}/{path}"), m.get(f"{backend}/{inner}")
                if outer_r and inner_r and faster_beyond_noise(outer_r, inner_r):
                    out[(cell, outer_r.id)] = (
                        f"{outer_r.id} ({outer_r.median_s * 1e6:.2f} us) is faster than "
                        f"{inner_r.id} ({inner_r.median_s * 1e6:.2f} us), which it wraps"
                    )
    return out


def _kernels_in_context(layers: Sequence[dict[str, Any]]) -> dict[tuple, float]:
    """{(workload, batch, threads, backend): the cut's layers' kernels in context} from the
    per-layer tables that have them."""
    return {
        (e["workload"], e["batch"], e["threads"], fw): e[f"{fw}_kernels_s"]
        for e in layers
        for fw in BACKENDS
        if e.get(f"{fw}_kernels_s")
    }


def ladder(
    records: Sequence[Record], floor_s: float | None, layers: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """One entry per (workload, batch, threads, backend) that has its native time: the kernel,
    the native dispatch around it, and what each wrapper adds over the native rung it wraps.
    A model cut's kernel is its layers' kernels in context (`layers`, the per-layer tables),
    where a table has them.

    Never negative: a rung that contradicts another (`inconsistencies`) is left out and named
    in the entry's `excluded` with the reason, and so is a TVM kernel time that the harness's
    floor would make negative."""
    bad = inconsistencies(records)
    in_context = _kernels_in_context(layers)
    entries = []
    for cell, m in by_cell(records).items():
        name, batch, threads = cell
        for backend in ("tvm", "tf"):
            context_s = in_context.get((*cell, backend))
            native_r = m.get(f"{backend}/native")
            if native_r is None:
                continue
            native = native_r.median_s
            excluded: dict[str, str] = {
                p.split("/", 1)[1]: why
                for (c, p), why in bad.items()
                if c == cell and p.startswith(backend + "/")
            }
            kernel: float | None = None
            if context_s is not None:
                kernel = min(context_s, native)  # from another process: within noise of it
            elif backend == "tvm" and floor_s is not None:
                if floor_s < native:
                    kernel = native - floor_s
                else:
                    excluded["kernel"] = (
                        f"the harness's per-call floor ({floor_s * 1e9:.1f} ns) is not below "
                        f"tvm/native ({native * 1e9:.1f} ns)"
                    )
            elif backend == "tf" and "tf/kernel" in m and "kernel" not in excluded:
                kernel = min(m["tf/kernel"].median_s, native)  # within noise: no dispatch
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
            over = wraps(backend)
            for path in ladder_paths(backend):
                r = m.get(f"{backend}/{path}")
                base = m.get(f"{backend}/{over.get(path, 'native')}")
                if r is None or base is None or path in excluded:
                    continue
                t = r.median_s
                python[path] = {
                    # a wrapper within noise of its rung (not excluded above) adds nothing
                    **_rung(max(t - base.median_s, 0.0), t),
                    "total_us": t * 1e6,
                    "over": base.path,
                }
                if t < base.median_s:
                    python[path]["within_noise"] = True
            entry["python_overhead"] = python
            if excluded:
                entry["excluded"] = excluded
            entries.append(entry)
    return entries


# The rungs a user calls through a framework: every native and wrapper rung of single convs but
# TVM's evaluator (a reference for native).
FRAMEWORK_RUNGS = tuple(
    r for r in RUNGS if r.depth != "kernel" and r.name != "evaluator" and "conv" in r.kinds
)


def framework_shares(
    records: Sequence[Record],
    floor_s: float | None,
    kinds: dict[str, str],
    layers: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """How much of each path's time is framework, per (cell, backend): the path's time minus
    the kernel it calls, over the path's time. `kinds`: {workload name: "conv" or "model"}.

    A path is set against the kernel measured inside its own call chain: TVM's kernel (its
    native time, less the harness's per-call floor for a single conv) under every TVM path; for
    TF, oneDNN's profile (`tf/kernel`, taken inside the op `tf/native` calls) under `tf/native`
    and the Python paths that wrap it. TF's graph paths (`native-graph` and the sessions that
    wrap it) run a kernel of their own (constant weights, grappler's rewrites), which nothing
    profiles: their wrappers' shares are taken over `native-graph` and say so (`over`). A model
    cut's kernel is the sum of its layers' kernels as they ran in the whole cut (the per-layer
    table's in-context figures, `layers`), under every path of its backend; without a table
    (`--no-layers`, an older file), each backend's native rung.

    Never negative: a record marked inconsistent, or a path faster than the time it contains
    (beyond CONTAINMENT_TOLERANCE or twice their CV), is left out and named in `excluded`, with
    the reason (the paths left out here, not by a record's own mark, also in `contradicts`); a
    path within noise of it shares 0."""
    entries = []
    in_context = _kernels_in_context(layers)
    for cell, m in by_cell(records).items():
        name, batch, threads = cell
        conv = kinds.get(name.removesuffix(" (cold)"), "conv") == "conv"
        for backend in BACKENDS:
            context_s = None if conv else in_context.get((*cell, backend))
            # the time each chain's root stands on: {root path: (seconds, what it is, record)}
            bases: dict[str, tuple[float, str, Record]] = {}
            excluded: dict[str, str] = {
                r.path: r.inconsistent
                for r in m.values()
                if r.backend == backend and r.inconsistent
            }
            native = m.get(f"{backend}/native")
            if backend == "tvm" and native and "native" not in excluded:
                t = native.median_s
                if context_s is not None:
                    bases["native"] = (context_s, "TVM's layers' kernels in context", native)
                elif conv and floor_s is not None and floor_s >= t:
                    excluded["kernel"] = (
                        f"the harness's per-call floor ({floor_s * 1e9:.1f} ns) is not below "
                        f"tvm/native ({t * 1e9:.1f} ns)"
                    )
                elif conv and floor_s is not None:
                    bases["native"] = (t - floor_s, "tvm/native less the harness's floor", native)
                else:
                    bases["native"] = (t, "tvm/native", native)
            elif backend == "tf" and conv:
                kernel = m.get("tf/kernel")
                if kernel and "kernel" not in excluded:
                    bases["native"] = (kernel.median_s, "tf/kernel", kernel)
                graph = m.get("tf/native-graph")
                if graph and "native-graph" not in excluded:
                    bases["native-graph"] = (graph.median_s, "tf/native-graph", graph)
            elif backend == "tf":
                # a model cut has no tf/native: every path stands on the graph's native call
                graph = m.get("tf/native-graph")
                if graph and "native-graph" not in excluded:
                    bases["native-graph"] = (
                        (context_s, "TF's layers' kernels in context", graph)
                        if context_s is not None
                        else (graph.median_s, "tf/native-graph", graph)
                    )
                    bases["native"] = bases["native-graph"]
            shares: dict[str, float] = {}
            over: dict[str, str] = {}
            contradicts: list[str] = []  # paths left out here (not by a record's own mark)
            kernel_s = None
            for rung in FRAMEWORK_RUNGS:
                r = m.get(rung.id)
                if r is None or rung.backend != backend or rung.name in excluded:
                    continue
                root = rung.name if rung.depth == "native" else rung.wraps
                if root not in bases:
                    continue
                base_s, what, base_r = bases[root]
                if what == r.id:
                    continue  # the chain's root standing as its own kernel
                t = r.median_s
                if faster_beyond_noise(r, base_r, base_s):
                    excluded[rung.name] = (
                        f"{r.id} ({t * 1e6:.2f} us) is faster than {what} "
                        f"({base_s * 1e6:.2f} us), which it contains: "
                        + (
                            "it runs another kernel, or one of the two is wrong"
                            if base_r.path == "kernel"
                            else "one of the two is wrong"
                        )
                    )
                    contradicts.append(rung.name)
                    continue
                shares[rung.name] = max(t - base_s, 0.0) / t if t > 0 else 0.0
                if conv and root == "native-graph":
                    over[rung.name] = what
            if "native" in bases:
                kernel_s = bases["native"][0]
            if not shares and not excluded and kernel_s is None:
                continue
            entry: dict[str, Any] = {
                "workload": name,
                "batch": batch,
                "threads": threads,
                "backend": backend,
                "kernel_us": kernel_s * 1e6 if kernel_s is not None else None,
                "shares": shares,
            }
            if over:
                entry["over"] = over
            if excluded:
                entry["excluded"] = excluded
            if contradicts:
                entry["contradicts"] = contradicts
            entries.append(entry)
    return entries


SERIAL_PARALLELISM = 1.2  # a multi-thread cell that kept fewer CPUs busy than this ran serially


def serial_cells(records: Sequence[Record]) -> list[Record]:
    """Records at 2 or more threads (not oversubscribed) whose calls kept fewer than
    SERIAL_PARALLELISM CPUs busy: a thread setting that did not take effect (or a kernel too
    small to split) looks like this, and its time is a one-thread time under another name."""
    return [
        r
        for r in records
        if r.threads >= 2
        and not r.oversubscribed
        and r.parallelism is not None
        and r.parallelism < SERIAL_PARALLELISM
    ]


def cross_checks(records: Sequence[Record]) -> list[str]:
    """Warnings for measurements that contradict each other (see `inconsistencies`)."""
    return [
        f"{name} b{batch} t{threads}: {why}"
        for ((name, batch, threads), _), why in inconsistencies(records).items()
    ]


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


def _conv_signature(oh: int, ow: int, per_channel: int, cout: int) -> tuple:
    """What a conv computes, batch aside: output size, multiply-adds per output value
    (KH x KW x input channels of its group) and output channels, rounded up to the vector width
    as the stand-in's TVM build pads them (and slices the padding off after). Independent of the
    weight's layout, which differs between builds (HWIO; a TFLite import's OHWI)."""
    return (oh, ow, per_channel, -(-cout // _VEC) * _VEC)


_VEC = 16


def _call_conv(call: dict[str, Any]) -> tuple[tuple, int] | None:
    """(signature, FLOPs per output channel) of a conv function call of the TVM build, from its
    argument shapes: the weights are its 4-D constant argument (HWIO in every build; a Winograd
    call's are its 5-D transformed ones, of a 3x3 conv), the output its last. FLOPs count per
    output channel: the caller knows how many the layer keeps."""
    args = call.get("args")
    if "conv2d" not in call["func"] or not args:
        return None
    n, oh, ow, out_c = call["shape"]
    if "winograd" in call["func"]:  # weights transformed: U [a, a, K/KB, C, KB], a 3x3 conv
        u = [shape for kind, shape in args if kind == "const" and len(shape) == 5]
        if not u:
            return None
        per_channel, cout = 9 * int(u[0][3]), int(out_c)
        return _conv_signature(oh, ow, per_channel, cout), 2 * n * oh * ow * per_channel
    weights = [shape for kind, shape in args if kind == "const" and len(shape) == 4]
    if not weights:
        return None
    elements = 1
    for d in weights[0]:
        elements *= int(d)
    cout = int(weights[0][-1])
    per_channel = elements // cout
    return _conv_signature(oh, ow, per_channel, cout), 2 * n * oh * ow * per_channel


def call_layers(g: Graph, calls: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, int]]:
    """The layer of `g` each call of a TVM build belongs to, and how many groups of each conv
    layer the build computes as one (a block-diagonal group).

    TVM's conv functions are matched to the graph's conv layers by what they compute (kernel,
    input channels, output size and channels), not by their order in the call sequence: Relax
    may run a shortcut conv before the branch beside it. A conv function opens its layer; the
    functions after it (a slice, a Winograd conv's epilogue, unfused element-wise ops) belong
    to it too. Raises ValueError when the build calls another number of conv functions than
    the graph has conv layers."""
    layers, _ = node_layers(g)
    conv_layers = [name for name in layers if g.node(name).kind == "conv"]
    n_conv = sum("conv2d" in c["func"] for c in calls)
    if n_conv != len(conv_layers):
        raise ValueError(
            f"the TVM build calls {n_conv} conv functions for {len(conv_layers)} conv "
            "layers: the call plan does not match the graph"
        )
    waiting: dict[tuple, list[str]] = {}
    merged: dict[str, int] = {}  # groups a TVM build computes as one block-diagonal group
    for name in conv_layers:
        c = g.node(name).conv
        assert c is not None
        w = ConvWorkload(c, 1)
        _, oh, ow, cout = w.output_shape
        kh, kw, ipg, _ = w.weight_shape
        merged[name] = superset(c.groups, ipg, cout // c.groups)
        sig = _conv_signature(oh, ow, kh * kw * ipg * merged[name], cout)
        waiting.setdefault(sig, []).append(name)
    in_order = iter(conv_layers)
    current = layers[0] if layers else OUTSIDE
    out = []
    for c in calls:
        conv = _call_conv(c)
        if conv is not None:
            sig, _ = conv
            current = waiting[sig].pop(0) if waiting.get(sig) else f"(unmatched) {c['func']}"
        elif "conv2d" in c["func"]:
            current = next(in_order)  # a plan without shapes (older results): call order
        out.append(current)
    return out, merged


def problem_seconds(
    g: Graph, batch: int, calls: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """{problem: {"s": seconds, "layers": [...]}}: the in-context time (each call's `context_s`)
    of the layers of `g` that Winograd can compute, summed per problem (winograd.layer_problem):
    each layer's conv call and the calls after it (its slice, its epilogue), as call_layers
    assigns them. What a model build's choice of algorithm per problem compares."""
    at, _ = call_layers(g, calls)
    out: dict[str, dict[str, Any]] = {}
    for c, layer in zip(calls, at, strict=True):
        node = g.node(layer) if layer in g else None
        if node is None or node.conv is None:
            continue
        problem = layer_problem(ConvWorkload(node.conv, batch))
        if problem is None:
            continue
        entry = out.setdefault(problem, {"s": 0.0, "layers": []})
        entry["s"] += float(c["context_s"])
        if layer not in entry["layers"]:
            entry["layers"].append(layer)
    return out


def choose_in_context(
    g: Graph, batch: int, candidates: dict[str, dict[str, Any]]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The algorithm of each Winograd problem of a model cut from its candidate builds' probe
    (`candidates`: {algorithm: {"calls": [...]}}, model_handlers.probe_algorithms): for each
    problem, the algorithm whose layers took the least time in context. Returns {problem:
    algorithm} and a row per problem (its layers, each candidate's seconds, the chosen one)."""
    per = {a: problem_seconds(g, batch, c["calls"]) for a, c in candidates.items()}
    chosen: dict[str, str] = {}
    rows = []
    for problem in sorted({p for times in per.values() for p in times}):
        times = {a: t[problem]["s"] for a, t in per.items() if problem in t}
        best = min(times, key=lambda a: times[a])
        chosen[problem] = best
        layers = next(t[problem]["layers"] for t in per.values() if problem in t)
        rows.append({"problem": problem, "layers": layers, "in_context_s": times, "chosen": best})
    return chosen, rows


def layer_table(g: Graph, raw: dict[str, Any]) -> dict[str, Any]:
    """Rows of the per-layer table from a `layers` worker result.

    TVM's calls are assigned to the graph's layers by call_layers. Each row carries the FLOPs
    of both sides (TVM's from the call's shapes, counting the channels the layer keeps; TF's
    from the graph node its ops map to): a row whose FLOPs differ is marked `flops_mismatch`
    and its ratio must not be read."""
    layers, of = node_layers(g)
    rows: dict[str, dict[str, Any]] = {}

    def row(layer: str) -> dict[str, Any]:
        return rows.setdefault(
            layer,
            {
                "layer": layer,
                "tvm_s": 0.0,
                "tvm_funcs": [],
                "tvm_flops": 0,
                "tf_s": 0.0,
                "tf_ops": [],
                "tf_flops": 0,
            },
        )

    for name in layers:
        row(name)
    calls = raw["tvm_calls"]
    at, merged = call_layers(g, calls)
    for c, layer in zip(calls, at, strict=True):
        r = row(layer)
        # in context where the entry has it; an older entry's only figure is the call alone
        r["tvm_s"] += c["context_s"] if "context_s" in c else c["median_s"]
        alone = c.get("alone_s", c.get("median_s"))
        if alone is not None:
            r["tvm_alone_s"] = r.get("tvm_alone_s", 0.0) + alone
        if c.get("cold_s") is not None:
            r["tvm_cold_s"] = r.get("tvm_cold_s", 0.0) + c["cold_s"]
        r["tvm_funcs"].append(c["func"])
        r.setdefault("_calls", []).append(c)
    names = g.names
    tf_layers: set[str] = set()
    for op, t in raw["tf_ops"].items():
        node = _tf_node(op, names)
        r = row(of.get(node, OUTSIDE) if node else OUTSIDE)
        r["tf_s"] += t
        r["tf_ops"].append(f"{op}:{raw['tf_op_types'].get(op, '')}")
        tf_layers.add(r["layer"])
    for r in rows.values():
        calls_of = r.pop("_calls", [])
        convs = [conv for conv in map(_call_conv, calls_of) if conv is not None]
        # FLOPs of the channels the layer keeps: the build pads a conv's output channels to the
        # vector width and slices them off in the call after it
        r["tvm_flops"] = 0
        for i, c in enumerate(calls_of):
            conv = _call_conv(c)
            if conv is None:
                continue
            kept = c["shape"][-1]  # a slice fused into the conv's function already cut them
            after = calls_of[i + 1] if i + 1 < len(calls_of) else None
            if after is not None and "slice" in after["func"]:
                kept = min(kept, after["shape"][-1])
            # the useful multiply-adds: a block-diagonal weight's zeros are not counted
            r["tvm_flops"] += conv[1] * kept // merged.get(r["layer"], 1)
        if calls_of and not convs and any("conv2d" in c["func"] for c in calls_of):
            r["tvm_flops"] = None  # a plan without shapes: nothing to compare
        node = g.node(r["layer"]) if r["layer"] in g else None
        if node is not None and node.conv is not None and r["layer"] in tf_layers:
            r["tf_flops"] = ConvWorkload(node.conv, int(raw.get("batch", 1))).flops
        r["flops_mismatch"] = r["tvm_flops"] is not None and r["tvm_flops"] != r["tf_flops"]

    out_rows = list(rows.values())
    tvm_sum = sum(r["tvm_s"] for r in out_rows)
    tf_sum = sum(r["tf_s"] for r in out_rows)
    out = {
        "rows": out_rows,
        "tvm_sum_s": tvm_sum,
        "tf_sum_s": tf_sum,
        "tvm_sum_vs_whole": tvm_sum / raw["tvm_whole_s"] if raw["tvm_whole_s"] else None,
        "tf_sum_vs_whole": tf_sum / raw["tf_whole_s"] if raw["tf_whole_s"] else None,
        "flops_mismatch": [r["layer"] for r in out_rows if r["flops_mismatch"]],
    }
    _in_context(raw, rows, out)
    return out


def _in_context(raw: dict[str, Any], rows: dict[str, dict[str, Any]], out: dict[str, Any]) -> None:
    """The in-context figures of a layers table, where its worker measured them (a results file
    from before has none): each framework's layers' kernels, its glue items and totals, its
    unaccounted time, and TF's layers alone."""
    calls = raw["tvm_calls"]
    out_rows = out["rows"]
    tf_sum = out["tf_sum_s"]
    tvm_sum = out["tvm_sum_s"]
    if calls and all("context_s" in c for c in calls):
        # every call of the plan, in context: the worker's median of each run's sum
        out["tvm_kernels_s"] = raw.get("tvm_kernels_s", tvm_sum)
        for r in out_rows:
            r["tvm_context_s"] = r["tvm_s"]
            r["tf_context_s"] = r["tf_s"]
    if "tf_gaps_s" in raw:
        # TF's layers' kernels are its ops inside the graph's layers; the ops outside them (the
        # feed and fetch, _Arg and _Retval), the executor's time between ops and the session's
        # time outside them are its glue
        outside = rows.get(OUTSIDE)
        outside_s = outside["tf_s"] if outside else 0.0
        outside_n = len(outside["tf_ops"]) if outside else 0
        out["tf_kernels_s"] = tf_sum - outside_s
        out["tf_glue"] = [
            {"what": "ops outside the graph's layers", "s": outside_s, "calls": outside_n},
            {"what": BETWEEN_OPS, "s": raw["tf_gaps_s"], "calls": 0},
            {"what": SESSION, "s": raw["tf_session_s"], "calls": 0},
        ]
    for layer, t in (raw.get("tf_alone") or {}).items():
        if layer in rows:
            rows[layer]["tf_alone_s"] = t
    for fw in BACKENDS:  # the decomposition's own figures, named in the JSON
        d = cut_decomposition({**raw, **out}, fw)
        if d is not None:
            out[f"{fw}_glue_s"] = d["glue_s"]
            out[f"{fw}_unaccounted_s"] = d["unaccounted_s"]


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
    # like for like: the model streams its weights from memory, so the convs' cold-cache
    # times stand for them where the run has them
    cold = any(r.cache == "cold" for r in records)
    med = {
        (r.workload, r.batch, r.threads, r.backend, r.path): r.median_s
        for r in records
        if r.inconsistent is None and (r.kind != "conv" or (r.cache == "cold") == cold)
    }
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
                        "conv_cache": "cold" if cold else "warm",
                        "model_path": f"{backend}/{model_path}",
                        "predicted_conv_s": predicted,
                        "measured_s": measured,
                        "outside_convs_share": 1.0 - predicted / measured,
                    }
                )
    return out
