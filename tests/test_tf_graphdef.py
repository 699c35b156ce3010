"""A frozen TF graph (serialized GraphDef) run through TF's C API by _core.TfGraphRunner, against
tf.compat.v1.Session on the same graph; and the hand-serialized ConfigProto it runs under.

Python's TensorFlow and the C API library dlopen'ed by _core share one process here, as in
test_correctness.py: dlopen of libtensorflow_cc.so.2 finds the copy the tensorflow import loaded.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MEASUREMENT_KEYS
from convbench import _core

INPUT_SHAPE = (1, 8, 8, 4)
OUT_CHANNELS = 6


def _build_graph(tf, input_shape, seed: int = 3):
    """placeholder "input" -> conv2d (constant filter) -> relu -> add a constant -> "out"."""
    rng = np.random.default_rng(seed)
    filt = rng.standard_normal((3, 3, input_shape[-1], OUT_CHANNELS)).astype(np.float32)
    # An offset away from 0 keeps every output, relu'd zeros included, well inside rtol's reach.
    offset = rng.uniform(0.5, 1.5, OUT_CHANNELS).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape=input_shape, name="input")
        y = tf.nn.conv2d(x, tf.constant(filt), strides=1, padding="SAME")
        y = tf.add(tf.nn.relu(y), tf.constant(offset), name="out")
    return g, x, y


@pytest.fixture(scope="module")
def frozen(tf):
    from convbench.native.tf_capi import tf_library_path

    g, x, y = _build_graph(tf, INPUT_SHAPE)
    data = np.random.default_rng(0).uniform(-1.0, 1.0, INPUT_SHAPE).astype(np.float32)
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=1, inter_op_parallelism_threads=1
    )
    with tf.compat.v1.Session(graph=g, config=config) as sess:
        expected = sess.run(y, feed_dict={x: data})
    return {
        "lib": tf_library_path(),
        "graph_def": g.as_graph_def().SerializeToString(),
        "data": data,
        "expected": expected,
    }


@pytest.mark.parametrize("disable_grappler", [False, True])
@pytest.mark.parametrize("disable_constant_folding", [False, True])
def test_config_proto_parses_as_tfs_config_proto(
    disable_constant_folding: bool, disable_grappler: bool, tf
) -> None:
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

    raw = _core.make_config_proto(3, 1, disable_constant_folding, disable_grappler)
    assert isinstance(raw, bytes)
    cfg = config_pb2.ConfigProto.FromString(raw)
    assert cfg.intra_op_parallelism_threads == 3
    assert cfg.inter_op_parallelism_threads == 1
    go = cfg.graph_options
    assert cfg.HasField("graph_options") == (disable_constant_folding or disable_grappler)
    if cfg.HasField("graph_options"):
        assert go.optimizer_options.opt_level == config_pb2.OptimizerOptions.L0
        assert go.optimizer_options.do_constant_folding is False
    rw = go.rewrite_options
    assert rw.disable_meta_optimizer is disable_grappler
    off = rewriter_config_pb2.RewriterConfig.OFF
    assert (rw.constant_folding == off) is disable_constant_folding
    # Nothing but what was asked for: re-serializing gives the same bytes back.
    assert cfg.SerializeToString() == raw


def test_config_proto_leaves_zero_threads_unset(tf) -> None:
    from tensorflow.core.protobuf import config_pb2

    assert _core.make_config_proto(0, 0) == b""
    assert config_pb2.ConfigProto.FromString(_core.make_config_proto(0, 0)) == (
        config_pb2.ConfigProto()
    )


@pytest.mark.parametrize("optimize", [True, False])
def test_graph_runner_matches_session(optimize: bool, frozen) -> None:
    data = frozen["data"].copy()
    r = _core.TfGraphRunner(
        frozen["lib"], frozen["graph_def"], "input", "out", data, 1, optimize=optimize
    )
    assert r.output_shape == [*INPUT_SHAPE[:3], OUT_CHANNELS]
    assert r.input_shape == list(INPUT_SHAPE)
    data[...] = 0.0  # the runner copied the input when it was made
    out = np.full(r.output_shape, np.nan, np.float32)
    r.run_and_copy(out)
    np.testing.assert_allclose(out, frozen["expected"], rtol=1e-5)
    r.run()

    m = r.time(warmup_s=0.001, min_sample_s=0.001, samples=3, max_iters=1000)
    assert m.keys() == MEASUREMENT_KEYS
    assert len(m["wall_s"]) == 3 and m["iters_per_sample"] >= 1
    assert _core.summarize(m["wall_s"])["median"] > 0
    assert _core.summarize(m["process_cpu_s"])["median"] > 0


def test_open_batch_dim_takes_its_output_shape_from_a_run(tf, frozen) -> None:
    g, x, y = _build_graph(tf, (None, *INPUT_SHAPE[1:]))
    data = np.random.default_rng(1).uniform(-1.0, 1.0, (2, *INPUT_SHAPE[1:])).astype(np.float32)
    with tf.compat.v1.Session(graph=g) as sess:
        expected = sess.run(y, feed_dict={x: data})
    r = _core.TfGraphRunner(
        frozen["lib"], g.as_graph_def().SerializeToString(), "input", "out", data, 1, False
    )
    assert r.output_shape == [2, *INPUT_SHAPE[1:3], OUT_CHANNELS]
    out = np.empty(r.output_shape, np.float32)
    r.run_and_copy(out)
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_graph_runner_errors_name_what_is_wrong(frozen) -> None:
    lib, gd, data = frozen["lib"], frozen["graph_def"], frozen["data"]
    with pytest.raises(ValueError, match="no operation named 'nope' \\(the input operation\\)"):
        _core.TfGraphRunner(lib, gd, "nope", "out", data, 1)
    with pytest.raises(ValueError, match="no operation named 'nope' \\(the output operation\\)"):
        _core.TfGraphRunner(lib, gd, "input", "nope", data, 1)
    with pytest.raises(RuntimeError, match="cannot import the GraphDef \\(14 bytes\\)"):
        _core.TfGraphRunner(lib, b"\xff\xfe not a graph", "input", "out", data, 1)
    with pytest.raises(ValueError, match="GraphDef is empty"):
        _core.TfGraphRunner(lib, b"", "input", "out", data, 1)
    with pytest.raises(ValueError, match=r"shape \[1, 8, 8, 3\] does not fit 'input:0'"):
        _core.TfGraphRunner(lib, gd, "input", "out", data[..., :3].copy(), 1)
    with pytest.raises(ValueError, match=r"shape \[8, 8, 4\] does not fit 'input:0'"):
        _core.TfGraphRunner(lib, gd, "input", "out", data[0], 1)
    with pytest.raises(TypeError, match="input must be a float32 array, got float64"):
        _core.TfGraphRunner(lib, gd, "input", "out", data.astype(np.float64), 1)
    with pytest.raises(RuntimeError, match="cannot load TensorFlow's C API"):
        _core.TfGraphRunner("/nonexistent/libtensorflow_cc.so.2", gd, "input", "out", data, 1)

    r = _core.TfGraphRunner(lib, gd, "input", "out", data, 1)
    with pytest.raises(ValueError, match="output array has 5 elements, 'out:0' produces 384"):
        r.run_and_copy(np.empty(5, np.float32))
    with pytest.raises(TypeError, match="output array must be float32"):
        r.run_and_copy(np.empty(r.output_shape, np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        r.run_and_copy(np.empty((1, 8, 8, 12), np.float32)[..., ::2])


def test_a_placeholder_left_unfed_fails_the_run_not_the_process(tf, frozen) -> None:
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape=(2,), name="input")
        other = tf.compat.v1.placeholder(tf.float32, shape=(2,), name="other")
        tf.add(x, other, name="out")
    data = np.ones(2, np.float32)
    r = _core.TfGraphRunner(
        frozen["lib"], g.as_graph_def().SerializeToString(), "input", "out", data, 1
    )
    with pytest.raises(RuntimeError, match="running 'out:0' failed .*other"):
        r.run()
