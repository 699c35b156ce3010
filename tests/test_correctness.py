"""TVM kernels called natively on numpy arrays, against TensorFlow on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from convbench.frameworks.numerics import relative_error
from convbench.frameworks.tf_conv import tf_reference
from convbench.native.harness import ConvKernel
from convbench.spec import ConvWorkload, parse_spec
from convbench.spec.arrays import conv_inputs

CASES = {
    "same3x3": "input: [1, 10, 9, 16], kernel: [3, 3], out_channels: 32",
    "logits_valid_1x6": "input: [1, 5, 6, 32], kernel: [1, 6], out_channels: 45, padding: VALID",
    "odd_channels": "input: [1, 6, 7, 3], kernel: [3, 3], out_channels: 5",
    "stride2": "input: [1, 9, 8, 16], kernel: [3, 3], out_channels: 16, strides: [2, 2]",
    "explicit_pad_dilated": "input: [1, 8, 8, 16], kernel: [3, 3], out_channels: 16, "
    "padding: [[2, 1], [0, 2]], dilation: [2, 1]",
    "depthwise": "input: [1, 9, 10, 32], kernel: [3, 3], out_channels: 32, groups: 32",
    "depthwise_mult2_stride2": "input: [1, 11, 12, 8], kernel: [3, 3], out_channels: 16, "
    "groups: 8, strides: [2, 2]",
    "depthwise_tail_dilated": "input: [1, 9, 9, 40], kernel: [3, 3], out_channels: 40, "
    "groups: 40, padding: [[2, 1], [1, 2]], dilation: [2, 2]",
    "grouped4": "input: [1, 8, 9, 32], kernel: [3, 3], out_channels: 48, groups: 4",
    "grouped_small": "input: [1, 7, 9, 32], kernel: [3, 3], out_channels: 32, groups: 8",
    "grouped_odd": "input: [1, 6, 7, 12], kernel: [3, 1], out_channels: 6, groups: 3, "
    "padding: VALID",
}
GROUPED = sorted(c for c in CASES if "group" in CASES[c])


def numpy_conv(w: ConvWorkload, data: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The conv in float64 numpy, written from its definition: an independent reference for the
    grouped and depthwise convs (TF computes the check's own reference)."""
    (pt, pb), (pl, pr) = w.spec.pads
    x = np.pad(data.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    k = weight.astype(np.float64)
    n, oh, ow, oc = w.output_shape
    (kh, kw), (sh, sw), (dh, dw) = w.spec.kernel, w.spec.strides, w.spec.dilation
    ipg, opg = k.shape[2], oc // w.spec.groups
    out = np.zeros((n, oh, ow, oc))
    for g in range(w.spec.groups):
        xs = x[..., g * ipg : (g + 1) * ipg]
        ks = k[..., g * opg : (g + 1) * opg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, i * dh : i * dh + sh * oh : sh, j * dw : j * dw + sw * ow : sw]
                out[..., g * opg : (g + 1) * opg] += patch[:, :oh, :ow] @ ks[i, j]
    return out


@pytest.mark.parametrize("case", GROUPED)
def test_grouped_convs_match_their_definition(case: str, kernel_cache, tf) -> None:
    """TVM's kernel and TF's op (DepthwiseConv2dNative for a depthwise conv, grouped Conv2D
    otherwise) both against numpy in float64: neither framework is the other's only check."""
    spec = parse_spec(f"convs: [{{name: {case}, {CASES[case]}, count: 1}}]")[0]
    w = ConvWorkload(spec, 2)
    data, weight = conv_inputs(w, seed=5)
    exact = numpy_conv(w, data, weight)
    tvm_out = ConvKernel(kernel_cache.conv(w).path, w)(data, weight)
    tf_out = tf_reference(tf, w, data, weight)
    for got in (tvm_out, tf_out):
        assert got.shape == w.output_shape
        assert relative_error(got, exact, rtol=1e-5)["ok"]
    # the float64 reference every check uses (TF's float64 kernels are not oneDNN's)
    tf64 = tf_reference(tf, w, data.astype(np.float64), weight.astype(np.float64))
    assert relative_error(tf64, exact, rtol=1e-12)["ok"]
    # a wrong grouping (every output channel reading group 0's inputs) is caught
    wrong = numpy_conv(w, np.repeat(data[..., : weight.shape[2]], spec.groups, axis=3), weight)
    assert not relative_error(wrong, exact, rtol=1e-5)["ok"]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_native_call_matches_tf(case: str, batch: int, kernel_cache, tf) -> None:
    spec = parse_spec(f"convs: [{{name: {case}, {CASES[case]}, count: 1}}]")[0]
    w = ConvWorkload(spec, batch)
    k = ConvKernel(kernel_cache.conv(w).path, w)
    data, weight = conv_inputs(w, seed=3)
    got = k(data, weight)
    ref = tf_reference(tf, w, data, weight)
    assert got.shape == ref.shape == w.output_shape
    result = relative_error(got, ref, rtol=1e-5)
    assert result["ok"], result


def test_the_check_catches_a_wrong_kernel(kernel_cache, tf) -> None:
    spec = parse_spec(f"convs: [{{name: same3x3, {CASES['same3x3']}, count: 1}}]")[0]
    w = ConvWorkload(spec, 1)
    data, weight = conv_inputs(w, seed=3)
    ref = tf_reference(tf, w, data, weight)
    wrong = ConvKernel(kernel_cache.conv(w).path, w)(data, weight * np.float32(1.001))
    result = relative_error(wrong, ref, rtol=1e-5)
    assert not result["ok"]
    assert result["max_rel_err"] == pytest.approx(1e-3, rel=0.05)


def test_timed_kernel_reports_consistent_statistics(kernel_cache) -> None:
    from convbench.native.harness import RunConfig

    spec = parse_spec(f"convs: [{{name: same3x3, {CASES['same3x3']}, count: 1}}]")[0]
    w = ConvWorkload(spec, 1)
    k = ConvKernel(kernel_cache.conv(w).path, w)
    data, weight = conv_inputs(w)
    t = k.time(data, weight, k.new_output(), config=RunConfig(0.001, 0.002, 5))
    s = t.summary
    assert s["n"] == 5 and s["min"] <= s["p10"] <= s["median"] <= s["p90"] <= s["max"]
    assert s["min"] > 0


@pytest.mark.parametrize("path", ["function", "session", "session-feedless"])
def test_every_tf_path_computes_the_same_conv(path: str, tf) -> None:
    from convbench.frameworks.tf_conv import tf_conv_callables

    spec = parse_spec(f"convs: [{{name: same3x3, {CASES['same3x3']}, count: 1}}]")[0]
    w = ConvWorkload(spec, 2)
    data, weight = conv_inputs(w, seed=5)
    ref = tf_reference(tf, w, data, weight)
    got = np.asarray(tf_conv_callables(tf, w, data, weight, (path,))[path]())
    assert relative_error(got, ref, rtol=1e-6)["ok"]


@pytest.mark.parametrize("path", ["cython", "python"])
def test_every_tvm_path_runs_the_kernel(path: str, kernel_cache) -> None:
    from convbench.measure.conv_handlers import tvm_path_timer
    from convbench.native.harness import RunConfig

    spec = parse_spec(f"convs: [{{name: same3x3, {CASES['same3x3']}, count: 1}}]")[0]
    w = ConvWorkload(spec, 1)
    k = ConvKernel(kernel_cache.conv(w).path, w)
    data, weight = conv_inputs(w, seed=5)
    expected = k(data, weight)
    out = k.new_output()
    out[...] = np.nan
    t = tvm_path_timer(path, k, [data, weight, out], RunConfig(0.001, 0.001, 2))
    assert t.summary["n"] == 2
    np.testing.assert_array_equal(out, expected)  # the timed calls really wrote the output
    with pytest.raises(ValueError, match="expected shape"):
        tvm_path_timer(path, k, [data[:, :1].copy(), weight, out], RunConfig(0.001, 0.001, 2))


@pytest.mark.parametrize("kind", ["eager", "graph"])
@pytest.mark.parametrize(
    "case",
    ["same3x3", "logits_valid_1x6", "explicit_pad_dilated", "depthwise_tail_dilated"]
    + ["depthwise_mult2_stride2", "grouped4"],
)
def test_tf_c_api_path_matches_tf_python(kind: str, case: str, tf) -> None:
    """TF's Conv2D through the C API from the C++ harness gives tf.nn.conv2d's output."""
    from convbench.native.harness import RunConfig, Timing
    from convbench.native.tf_capi import tf_native_conv

    spec = parse_spec(f"convs: [{{name: {case}, {CASES[case]}, count: 1}}]")[0]
    w = ConvWorkload(spec, 2)
    data, weight = conv_inputs(w, seed=7)
    conv = tf_native_conv(kind, w, data, weight, threads=1)
    out = np.empty(w.output_shape, np.float32)
    conv.run(out)
    assert relative_error(out, tf_reference(tf, w, data, weight), rtol=1e-6)["ok"]
    t = Timing.from_native(conv.time(**RunConfig(0.001, 0.001, 2).kwargs()))
    assert t.summary["n"] == 2 and t.summary["min"] > 0
    with pytest.raises(ValueError, match="elements"):
        conv.run(np.empty(3, np.float32))


@pytest.mark.parametrize("kind", ["eager", "graph"])
def test_tf_c_api_path_refuses_an_output_it_cannot_write(kind: str) -> None:
    """run(out) copies into the caller's array or refuses it: no converted temporary takes the
    output while the caller's array stays as it was."""
    from convbench.native.tf_capi import tf_native_conv

    w = ConvWorkload(parse_spec(f"convs: [{{name: a, {CASES['same3x3']}, count: 1}}]")[0], 1)
    data, weight = conv_inputs(w)
    conv = tf_native_conv(kind, w, data, weight, 1)
    with pytest.raises(TypeError, match="output array must be float32, got float64"):
        conv.run(np.empty(w.output_shape, np.float64))
    wide = np.empty((*w.output_shape[:3], 2 * w.output_shape[3]), np.float32)
    with pytest.raises(ValueError, match="output array must be C-contiguous"):
        conv.run(wide[..., ::2])
    read_only = np.empty(w.output_shape, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="output array is read-only"):
        conv.run(read_only)
    with pytest.raises(TypeError):
        conv.run(np.zeros(w.output_shape, np.float32).tolist())
    out = np.full(w.output_shape, np.nan, np.float32)
    conv.run(out)
    assert np.isfinite(out).all()


def test_tf_c_api_path_takes_the_output_dims_from_python(monkeypatch) -> None:
    """The C++ side computes no conv geometry: OH and OW come with the shape, are checked to be
    positive, and TF's output is checked against them."""
    from convbench import _core
    from convbench.native.tf_capi import tf_library_path, tf_native_conv

    spec = parse_spec(f"convs: [{{name: a, {CASES['explicit_pad_dilated']}, count: 1}}]")[0]
    w = ConvWorkload(spec, 1)
    data, weight = conv_inputs(w)
    made = []
    real = _core.TfNativeConv
    monkeypatch.setattr(_core, "TfNativeConv", lambda lib, kind, shape, *a: made.append(shape))
    tf_native_conv("eager", w, data, weight, 1, lib="unused")
    monkeypatch.undo()
    shape = made[0]
    assert (shape["OH"], shape["OW"]) == w.output_shape[1:3]

    lib = tf_library_path()
    for bad in ({"OH": 0}, {"OW": -1}):
        with pytest.raises(ValueError, match="output height and width must be >= 1"):
            real(lib, "eager", {**shape, **bad}, data, weight, 1)
    with pytest.raises(KeyError, match="OW"):
        real(lib, "eager", {k: v for k, v in shape.items() if k != "OW"}, data, weight, 1)
    with pytest.raises(ValueError, match="TF conv input: expected shape"):
        real(lib, "eager", shape, data[..., :1].copy(), weight, 1)
    taller = {**shape, "OH": shape["OH"] + 1}
    conv = real(lib, "graph", taller, data, weight, 1)
    out_shape = (w.output_shape[0], taller["OH"], *w.output_shape[2:])
    with pytest.raises(RuntimeError, match=f"output dim 1 is {shape['OH']}, expected"):
        conv.run(np.empty(out_shape, np.float32))


def test_missing_tf_library_is_an_error_not_a_crash(tmp_path) -> None:
    from convbench import _core

    w = ConvWorkload(parse_spec(f"convs: [{{name: a, {CASES['same3x3']}, count: 1}}]")[0], 1)
    data, weight = conv_inputs(w)
    from convbench.native.tf_capi import tf_native_conv

    with pytest.raises(RuntimeError, match="cannot load TensorFlow's C API"):
        tf_native_conv("eager", w, data, weight, 1, lib=str(tmp_path / "libtensorflow_cc.so.2"))
    not_tf = tmp_path / "libnot_tf.so"
    import shutil

    shutil.copy(_core.__file__, not_tf)  # a real shared library without TF's symbols
    with pytest.raises(RuntimeError, match="lacks TF C API symbol"):
        tf_native_conv("eager", w, data, weight, 1, lib=str(not_tf))


@pytest.mark.parametrize("batch", [1, 2])
def test_default_schedules_are_correct_on_the_six_model_shapes(
    batch: int, kernel_cache, tf
) -> None:
    from pathlib import Path

    from convbench.build.schedules import schedule_tag
    from convbench.spec import load_spec

    for spec in load_spec(Path(__file__).resolve().parents[1] / "shapes.yaml"):
        w = ConvWorkload(spec, batch)
        built = kernel_cache.conv(w)
        # the hand-written schedule with the tile it picks for this shape (a cache with no
        # tuning database never builds anything else)
        assert built.schedule == schedule_tag(w) and built.tuned_from is None
        data, weight = conv_inputs(w, seed=11)
        result = relative_error(
            ConvKernel(built.path, w)(data, weight), tf_reference(tf, w, data, weight), rtol=1e-5
        )
        assert result["ok"], (spec.name, result)


def test_tensorflow_not_installed_is_a_clear_error(monkeypatch) -> None:
    import importlib.util

    from convbench.native import tf_capi

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real(name, *a),
    )
    with pytest.raises(RuntimeError, match="TensorFlow is not installed"):
        tf_capi.tf_library_path()
