"""TensorFlow's side of a conv workload: the same inputs, through TF's Python paths."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .spec import Workload

__all__ = [
    "TF_PYTHON_PATHS",
    "configure_tf",
    "conv_inputs",
    "tf_conv_callables",
    "tf_library_path",
    "tf_native_conv",
    "tf_padding",
    "tf_reference",
]

TF_PYTHON_PATHS = ("eager", "function", "session", "session-feedless")


def conv_inputs(w: Workload, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded inputs shared by every backend and path: data in [-1, 1), He-scaled weights."""
    from .harness import aligned_empty

    rng = np.random.default_rng(seed)
    data = aligned_empty(w.input_shape)
    data[...] = rng.uniform(-1.0, 1.0, size=w.input_shape)
    weight = aligned_empty(w.weight_shape)
    fan_in = w.weight_shape[0] * w.weight_shape[1] * w.weight_shape[2]
    weight[...] = rng.standard_normal(size=w.weight_shape) * np.sqrt(2.0 / fan_in)
    return data, weight


def configure_tf(threads: int) -> Any:
    """Import TF with intra-op = threads and inter-op = 1. Must run before TF executes anything."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def tf_padding(w: Workload) -> Any:
    """The conv's padding as tf.nn.conv2d takes it: SAME/VALID, or explicit per-dimension pads."""
    p = w.spec.padding
    if isinstance(p, str):
        return p
    (pt, pb), (pl, pr) = w.spec.pads
    return [[0, 0], [pt, pb], [pl, pr], [0, 0]]


def _session(tf: Any, graph: Any, threads: int) -> Any:
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1
    )
    return tf.compat.v1.Session(graph=graph, config=config)


def tf_conv_callables(
    tf: Any,
    w: Workload,
    data: np.ndarray,
    weight: np.ndarray,
    paths: tuple[str, ...] = TF_PYTHON_PATHS,
    threads: int = 1,
) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables, one per TF Python path, each running the conv on `data`/`weight`.

    eager: tf.nn.conv2d on resident tensors. function: the same inside a traced tf.function.
    session: tf.compat.v1 Session.run with the input fed through feed_dict and the output fetched,
    the runner the research log suspected. session-feedless: the same graph with input and
    weights held in variables, so nothing is fed (variables, not constants, so that grappler
    cannot fold the conv away).
    """
    strides = [1, *w.spec.strides, 1]
    dilations = [1, *w.spec.dilation, 1]
    padding = tf_padding(w)

    def conv(a: Any, b: Any) -> Any:
        return tf.nn.conv2d(a, b, strides=strides, padding=padding, dilations=dilations)

    out: dict[str, Callable[[], Any]] = {}
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


def tf_library_path() -> str:
    """libtensorflow_cc.so.2 of the installed tensorflow wheel, found without importing TF."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "TensorFlow is not installed: the TF native paths need its C API "
            "(pip install tensorflow-cpu)"
        )
    for loc in spec.submodule_search_locations:
        lib = Path(loc) / "libtensorflow_cc.so.2"
        if lib.exists():
            return str(lib)
    raise RuntimeError(
        "the installed tensorflow has no libtensorflow_cc.so.2: cannot reach TF's C API"
    )


def tf_native_conv(
    kind: str,
    w: Workload,
    data: np.ndarray,
    weight: np.ndarray,
    threads: int,
    lib: str | None = None,
) -> Any:
    """TF's Conv2D through the C API from the C++ harness: kind 'eager' (TFE_Execute) or
    'graph' (a one-op graph, input fed, run with TF_SessionRun)."""
    from . import _core

    (pt, pb), (pl, pr) = w.spec.pads
    n, h, wd, c = w.input_shape
    kh, kw, _, o = w.weight_shape
    shape = {
        "N": n,
        "H": h,
        "W": wd,
        "C": c,
        "KH": kh,
        "KW": kw,
        "O": o,
        "stride_h": w.spec.strides[0],
        "stride_w": w.spec.strides[1],
        "dil_h": w.spec.dilation[0],
        "dil_w": w.spec.dilation[1],
        "padding": w.spec.padding if isinstance(w.spec.padding, str) else "EXPLICIT",
        "pad_top": pt,
        "pad_bottom": pb,
        "pad_left": pl,
        "pad_right": pr,
    }
    return _core.TfNativeConv(lib or tf_library_path(), kind, shape, data, weight, threads)


def tf_reference(tf: Any, w: Workload, data: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.asarray(tf_conv_callables(tf, w, data, weight, ("eager",))["eager"]())
