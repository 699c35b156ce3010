"""TensorFlow's side of a conv workload: the same inputs, through TF's Python paths."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..paths import RUNGS
from ..spec.conv import ConvWorkload

__all__ = [
    "TF_PYTHON_PATHS",
    "configure_tf",
    "session_config",
    "tf_conv_callables",
    "tf_conv_op",
    "tf_weight",
    "tf_padding",
    "tf_reference",
]

# TF's Python paths of a single conv, from the ladder's registry.
TF_PYTHON_PATHS = tuple(
    r.name for r in RUNGS if r.backend == "tf" and r.is_python and "conv" in r.kinds
)


def configure_tf(threads: int) -> Any:
    """Import TF with intra-op = threads and inter-op = 1. Must run before TF executes anything."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def tf_padding(w: ConvWorkload) -> Any:
    """The conv's padding as tf.nn.conv2d takes it: SAME/VALID, or explicit per-dimension pads."""
    p = w.spec.padding
    if isinstance(p, str):
        return p
    (pt, pb), (pl, pr) = w.spec.pads
    return [[0, 0], [pt, pb], [pl, pr], [0, 0]]


def tf_conv_op(tf: Any, w: ConvWorkload, float64: bool = False) -> Callable[[Any, Any], Any]:
    """`conv(x, weight)` as TF computes this workload, on the weight in TF's layout (tf_weight):
    Conv2D (grouped when groups > 1), or for a depthwise conv DepthwiseConv2dNative, the op TF's
    own models use. `float64`: for the float64 reference, whose dilated depthwise conv takes
    another route (chosen here, not in every timed call)."""
    strides = [1, *w.spec.strides, 1]
    dilations = [1, *w.spec.dilation, 1]
    padding = tf_padding(w)
    if w.depthwise:
        explicit = None
        if not isinstance(padding, str):
            explicit, padding = [p for side in padding for p in side], "EXPLICIT"

        if float64 and dilations != [1, 1, 1, 1]:
            # TF's float64 depthwise kernel (Eigen; oneDNN is float32) has no dilation: the
            # float64 reference takes the space-to-batch route tf.nn.depthwise_conv2d takes
            (pt, pb), (pl, pr) = w.spec.pads
            pads = [[0, 0], [pt, pb], [pl, pr], [0, 0]]

            def space_to_batch(a: Any, b: Any) -> Any:
                a = tf.pad(a, pads)
                return tf.nn.depthwise_conv2d(a, b, strides, "VALID", dilations=dilations[1:3])

            return space_to_batch

        def depthwise(a: Any, b: Any) -> Any:
            return tf.raw_ops.DepthwiseConv2dNative(
                input=a,
                filter=b,
                strides=strides,
                padding=padding,
                explicit_paddings=explicit or [],
                dilations=dilations,
            )

        return depthwise

    def conv(a: Any, b: Any) -> Any:
        return tf.nn.conv2d(a, b, strides=strides, padding=padding, dilations=dilations)

    return conv


def tf_weight(w: ConvWorkload, weight: np.ndarray) -> np.ndarray:
    """The spec's HWIO weight (KH, KW, C / groups, O) in the layout TF's op takes: the same
    array for Conv2D; for a depthwise conv, DepthwiseConv2dNative's (KH, KW, C, O / C), a view of
    the same bytes (output channel c * multiplier + j reads input channel c in both)."""
    if not w.depthwise:
        return weight
    kh, kw = w.spec.kernel
    c = w.spec.input[3]
    return weight.reshape(kh, kw, c, w.spec.out_channels // c)


def session_config(tf: Any, threads: int, optimize: bool = True) -> Any:
    """The ConfigProto of every TF session convbench makes: intra-op = threads, inter-op = 1;
    optimize=False turns grappler and constant folding off."""
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1
    )
    if not optimize:
        from tensorflow.core.protobuf import rewriter_config_pb2

        config.graph_options.rewrite_options.disable_meta_optimizer = True
        config.graph_options.rewrite_options.constant_folding = (
            rewriter_config_pb2.RewriterConfig.OFF
        )
        config.graph_options.optimizer_options.opt_level = tf.compat.v1.OptimizerOptions.L0
        config.graph_options.optimizer_options.do_constant_folding = False
    return config


def _session(tf: Any, graph: Any, threads: int) -> Any:
    return tf.compat.v1.Session(graph=graph, config=session_config(tf, threads))


def tf_conv_callables(
    tf: Any,
    w: ConvWorkload,
    data: np.ndarray,
    weight: np.ndarray,
    paths: tuple[str, ...] = TF_PYTHON_PATHS,
    threads: int = 1,
    copies: int = 1,
) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables, one per TF Python path, each running the conv on `data`/`weight`.

    eager: tf.nn.conv2d on resident tensors. function: the same inside a traced tf.function.
    session: tf.compat.v1 Session.run with the input fed through feed_dict and the output fetched,
    the runner the research log suspected. session-feedless: the same graph with input and
    weights held in variables, so nothing is fed (variables, not constants, so that grappler
    cannot fold the conv away). copies > 1 (a cold-cache cell, eager only): each call takes the
    next of that many copies of data and weights, so none is in cache when its turn comes.
    """
    conv = tf_conv_op(tf, w, float64=data.dtype == np.float64)
    weight = tf_weight(w, weight)

    out: dict[str, Callable[[], Any]] = {}
    if copies > 1:
        if set(paths) - {"eager"}:
            raise ValueError("only the eager path rotates through copies (cold cache)")
        pairs = itertools.cycle(
            [(tf.constant(data.copy()), tf.constant(weight.copy())) for _ in range(copies)]
        )

        def rotating() -> Any:
            a, b = next(pairs)
            return conv(a, b)

        return {"eager": rotating}
    if "eager" in paths or "function" in paths:
        x, k = tf.constant(data), tf.constant(weight)
        out["eager"] = lambda: conv(x, k)
        graph_fn = tf.function(conv, jit_compile=False)
        graph_fn(x, k)  # trace once, outside the timing
        out["function"] = lambda: graph_fn(x, k)
    if "session" in paths:
        g = tf.Graph()
        with g.as_default():
            ph = tf.compat.v1.placeholder(tf.float32, shape=data.shape, name="data")
            y = conv(ph, tf.constant(weight))
        sess = _session(tf, g, threads)
        feed = {ph: data}
        out["session"] = lambda: sess.run(y, feed_dict=feed)
    if "session-feedless" in paths:
        g = tf.Graph()
        with g.as_default():
            xv = tf.compat.v1.Variable(data, name="data")
            kv = tf.compat.v1.Variable(weight, name="weight")
            y2 = conv(xv, kv)
            init = tf.compat.v1.global_variables_initializer()
        sess2 = _session(tf, g, threads)
        sess2.run(init)
        out["session-feedless"] = lambda: sess2.run(y2)
    return {p: out[p] for p in paths}


def tf_reference(tf: Any, w: ConvWorkload, data: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.asarray(tf_conv_callables(tf, w, data, weight, ("eager",))["eager"]())
