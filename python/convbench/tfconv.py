"""TensorFlow's side of a conv workload: the same inputs, through TF's Python paths."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from .spec import Workload

__all__ = ["configure_tf", "conv_inputs", "tf_conv_callables", "tf_reference"]


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


def _tf_padding(w: Workload) -> Any:
    p = w.spec.padding
    if isinstance(p, str):
        return p
    (pt, pb), (pl, pr) = w.spec.pads
    return [[0, 0], [pt, pb], [pl, pr], [0, 0]]


def tf_conv_callables(
    tf: Any, w: Workload, data: np.ndarray, weight: np.ndarray
) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables per TF path, inputs already resident as TF tensors."""
    x = tf.constant(data)
    k = tf.constant(weight)
    strides = [1, *w.spec.strides, 1]
    dilations = [1, *w.spec.dilation, 1]
    padding = _tf_padding(w)

    def eager() -> Any:
        return tf.nn.conv2d(x, k, strides=strides, padding=padding, dilations=dilations)

    @tf.function(jit_compile=False)
    def graph(a: Any, b: Any) -> Any:
        return tf.nn.conv2d(a, b, strides=strides, padding=padding, dilations=dilations)

    graph(x, k)  # trace once, outside the timing

    return {"eager": eager, "function": lambda: graph(x, k)}


def tf_reference(tf: Any, w: Workload, data: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.asarray(tf_conv_callables(tf, w, data, weight)["eager"]())
