"""TensorFlow's side of a model graph: one Python function that applies the graph's nodes with
tf.nn ops (run eagerly, traced by tf.function, or built into a tf.compat.v1 graph whose op names
are the graph's node names), the paths that run it, and TF's own per-op timings (step stats).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..spec.conv import ConvWorkload
from ..spec.model import Graph
from .tf_conv import session_config, tf_padding
from .tf_import import pruned_function

__all__ = [
    "GraphParts",
    "graph_def",
    "tf_forward",
    "tf_model_callables",
    "tf_step_stats",
    "timeline_summary",
]


def tf_forward(tf: Any, g: Graph, weights: dict[str, np.ndarray], named: bool = False) -> Callable:
    """x -> g.output with TF ops. named: give every op its node's name (graph mode)."""
    eps = np.float32(g.bn_epsilon)
    consts: dict[str, Any] = {}

    def c(name: str) -> Any:
        # In graph mode the constants are named after their weights.
        if name not in consts:
            label = name.replace("/", "_") + "_c" if named else None
            consts[name] = tf.constant(weights[name], name=label)
        return consts[name]

    def nm(name: str) -> str | None:
        return name if named else None

    def op(n: Any, a: list[Any]) -> Any:
        if n.kind == "conv":
            assert n.conv is not None
            return tf.nn.conv2d(
                a[0],
                c(n.params[0]),
                strides=[1, *n.conv.strides, 1],
                padding=tf_padding(ConvWorkload(n.conv, 1)),
                dilations=[1, *n.conv.dilation, 1],
                name=nm(n.name),
            )
        if n.kind == "bn":
            gamma, beta, mean, var = (c(p) for p in n.params)
            # tf.nn.batch_normalization, spelled out so the output op carries the node's name
            sub = (lambda op, n=n: f"{n.name}/{op}") if named else (lambda op: None)
            inv = tf.multiply(tf.math.rsqrt(var + eps, name=sub("rsqrt")), gamma, name=sub("inv"))
            shift = tf.subtract(beta, mean * inv, name=sub("shift"))
            return tf.add(tf.multiply(a[0], inv, name=sub("mul")), shift, name=nm(n.name))
        if n.kind == "relu":
            return tf.nn.relu(a[0], name=nm(n.name))
        if n.kind == "add":
            return tf.add(a[0], a[1], name=nm(n.name))
        if n.kind == "bias_add":
            return tf.nn.bias_add(a[0], c(n.params[0]), name=nm(n.name))
        raise ValueError(f"node '{n.name}': no TF lowering for kind '{n.kind}'")

    def forward(x: Any) -> Any:
        return g.evaluate(x, op)

    return forward


def build_graph(tf: Any, g: Graph, batch: int, weights: dict[str, np.ndarray]) -> tuple:
    """A tf.Graph with a placeholder named g.input and the output op named g.output."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (batch, *g.input_shape[1:]), name=g.input)
        y = tf_forward(tf, g, weights, named=True)(x)
    return graph, x, y


def graph_def(tf: Any, g: Graph, batch: int, weights: dict[str, np.ndarray]) -> bytes:
    """The serialized GraphDef the C API path imports: input g.input, output g.output."""
    graph, _, y = build_graph(tf, g, batch, weights)
    if y.op.name != g.output:
        raise RuntimeError(f"TF named the output op '{y.op.name}', not '{g.output}'")
    return graph.as_graph_def().SerializeToString()


GraphParts = Callable[[], tuple]  # () -> (tf.Graph, input placeholder, output tensor)


def tf_model_callables(
    tf: Any,
    g: Graph,
    x: np.ndarray,
    paths: tuple[str, ...],
    threads: int = 1,
    parts: GraphParts | None = None,
) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables running the graph on `x`, one per TF path. `parts`: the graph
    to run instead of one built from `g` (a model file's cut); it has no eager form."""
    out: dict[str, Callable[[], Any]] = {}
    from_file = parts is not None
    if parts is None:
        weights = g.weights()
        parts = lambda: build_graph(tf, g, x.shape[0], weights)  # noqa: E731
    for path in paths:
        if path in ("eager", "function") and not from_file:
            fwd = tf_forward(tf, g, g.weights())
            xt = tf.constant(x)
            if path == "eager":
                out[path] = lambda f=fwd, v=xt: f(v)
            else:
                traced = tf.function(fwd, jit_compile=False)
                traced(xt)
                out[path] = lambda f=traced, v=xt: f(v)
        elif path == "function":
            graph, ph, y = parts()
            fn, _ = pruned_function(tf, graph.as_graph_def(), ph.op.name, y.op.name)
            xt = tf.constant(x)
            fn(xt)
            out[path] = lambda f=fn, v=xt: f(v)
        elif path.startswith("session"):
            graph, ph, y = parts()
            sess = tf.compat.v1.Session(
                graph=graph, config=session_config(tf, threads, path != "session-noopt")
            )
            feed = {ph: x}
            out[path] = lambda s=sess, t=y, f=feed: s.run(t, feed_dict=f)
        elif path == "eager":
            raise ValueError(
                "tf/eager: a model file's graph has no op-by-op eager form (its ops come as a "
                "GraphDef); tf/function runs it from Python"
            )
        else:
            raise ValueError(f"unknown TF model path {path!r}")
    return out


def timeline_summary(runs: Sequence[Sequence[tuple[float, float]]], walls: Sequence[float]) -> dict:
    """TF's glue from traced runs: per run, its ops' (start, end) intervals and the run's wall
    time. The time between ops is the ops' span less the union of their intervals; the session's
    own time is the wall less the span. Medians over runs."""
    gaps, session = [], []
    for intervals, wall in zip(runs, walls, strict=True):
        if not intervals:
            continue
        spans = sorted(intervals)
        covered, (lo, hi) = 0.0, spans[0]
        for a, b in spans[1:]:
            if a > hi:
                covered += hi - lo
                lo, hi = a, b
            else:
                hi = max(hi, b)
        covered += hi - lo
        span = max(b for _, b in spans) - spans[0][0]
        gaps.append(span - covered)
        session.append(max(wall - span, 0.0))
    return {
        "gaps_s": statistics.median(gaps) if gaps else 0.0,
        "session_s": statistics.median(session) if session else 0.0,
    }


def _node_stat(ns: Any) -> tuple[str, float, float]:
    """One executed op of a step's stats: its op type (from the timeline label), its start and
    its duration in seconds (nanoseconds where TF gives them, else microseconds)."""
    label = ns.timeline_label.split(" = ")[-1].split("(")[0] if ns.timeline_label else ""
    base = ns.all_start_nanos * 1e-9 if ns.all_start_nanos else ns.all_start_micros * 1e-6
    dt = (ns.op_end_rel_nanos - ns.op_start_rel_nanos) * 1e-9
    rel = ns.op_start_rel_nanos * 1e-9
    if dt <= 0:
        dt = (ns.op_end_rel_micros - ns.op_start_rel_micros) * 1e-6
        rel = ns.op_start_rel_micros * 1e-6
    return label, base + rel, dt


def _traced_ops_s(meta: Any) -> float:
    """The executed ops' time in one traced run, the feed and fetch (_Arg, _Retval) aside."""
    total = 0.0
    for dev in meta.step_stats.dev_stats:
        for ns in dev.node_stats:
            label, _, dt = _node_stat(ns)
            if not ns.node_name.startswith("_") and label not in ("_Arg", "_Retval"):
                total += dt
    return total


def _layers_alone(
    tf: Any,
    sess: Any,
    graph: Any,
    feed: dict,
    g: Graph,
    layers: dict[str, list[str]],
    runs: int,
    options: Any,
) -> dict[str, float]:
    """{layer: its ops' time when the session runs that layer alone}: its inputs from outside
    the layer fed (their values from a full run), its last node fetched, warm (the same feed
    every run), traced. A layer whose tensors the graph does not name is left out."""
    plans = {}
    for layer, nodes in layers.items():
        inside = set(nodes)
        outer = sorted({i for n in nodes for i in g.node(n).inputs if i not in inside})
        try:
            plans[layer] = (
                [graph.get_tensor_by_name(f"{i}:0") for i in outer],
                graph.get_tensor_by_name(f"{nodes[-1]}:0"),
            )
        except (KeyError, ValueError):
            continue
    needed = sorted({t.name: t for ins, _ in plans.values() for t in ins}.items())
    values = dict(zip([n for n, _ in needed], sess.run([t for _, t in needed], feed), strict=True))
    out = {}
    for layer, (ins, y) in plans.items():
        layer_feed = {t: values[t.name] for t in ins}
        for _ in range(3):  # the session prunes and optimizes this feed and fetch once
            sess.run(y, feed_dict=layer_feed)
        times = []
        for _ in range(runs):
            meta = tf.compat.v1.RunMetadata()
            sess.run(y, feed_dict=layer_feed, options=options, run_metadata=meta)
            times.append(_traced_ops_s(meta))
        out[layer] = statistics.median(times)
    return out


def tf_step_stats(
    tf: Any,
    g: Graph,
    x: np.ndarray,
    threads: int,
    runs: int = 10,
    optimize: bool = True,
    parts: GraphParts | None = None,
    layers: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """TF's own per-op times: Session.run with a full trace, `runs` times after a warm-up, each
    traced run beside a plain one. Returns {op name: median seconds} over the runs, the ops' op
    type, the plain and traced runs' wall medians and the trace's cost (their paired ratio).
    Op names are TF's after grappler (a fused op keeps the name of the node it replaced).
    `layers` ({layer: its nodes in order}): also each layer's ops run alone (`alone`)."""
    import time

    graph, ph, y = parts() if parts is not None else build_graph(tf, g, x.shape[0], g.weights())
    sess = tf.compat.v1.Session(graph=graph, config=session_config(tf, threads, optimize))
    feed = {ph: x}
    # A long warm-up: at 2 threads the first ten or so runs of a small graph are up to 1.7x slower
    # than the rest, and traced runs taken then do not add up to a warm run.
    t_end = time.perf_counter() + 0.5
    warm = 0
    while warm < 10 or time.perf_counter() < t_end:
        sess.run(y, feed_dict=feed)
        warm += 1
    plain = []

    def plain_run() -> None:
        t0 = time.perf_counter()
        sess.run(y, feed_dict=feed)
        plain.append(time.perf_counter() - t0)

    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    per_op: dict[str, list[float]] = {}
    kinds: dict[str, str] = {}
    walls = []
    timelines: list[list[tuple[float, float]]] = []  # per traced run, each op's (start, end)
    for r in range(runs):
        # plain and traced runs alternated, in alternating order, as the VM's are: a moment
        # of the machine slow for one is slow for the run beside it
        if r % 2 == 0:
            plain_run()
        meta = tf.compat.v1.RunMetadata()
        t0 = time.perf_counter()
        sess.run(y, feed_dict=feed, options=options, run_metadata=meta)
        walls.append(time.perf_counter() - t0)
        if r % 2 == 1:
            plain_run()
        seen: dict[str, float] = {}
        intervals = []
        for dev in meta.step_stats.dev_stats:
            for ns in dev.node_stats:
                if ns.node_name in ("_SOURCE", "_SINK"):
                    continue
                label, start, dt = _node_stat(ns)
                intervals.append((start, start + dt))
                seen[ns.node_name] = seen.get(ns.node_name, 0.0) + dt
                kinds.setdefault(ns.node_name, label)
        for k, v in seen.items():
            per_op.setdefault(k, []).append(v)
        timelines.append(intervals)
    alone = _layers_alone(tf, sess, graph, feed, g, layers, runs, options) if layers else None
    sess.close()
    return {
        "alone": alone,
        "ops": {k: statistics.median(v) for k, v in per_op.items()},
        "op_types": kinds,
        "traced_wall_s": statistics.median(walls),
        "wall_s": statistics.median(plain),
        # what the trace adds: each traced run over the plain run beside it
        "trace_cost": statistics.median([a / b - 1 for a, b in zip(walls, plain, strict=True)]),
        **timeline_summary(timelines, walls),
    }
