"""TVM kernels called natively on numpy arrays, against TensorFlow on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest

from convbench.harness import ConvKernel
from convbench.numerics import compare
from convbench.spec import Workload, parse_spec
from convbench.tfconv import conv_inputs, tf_reference

CASES = {
    "same3x3": "input: [1, 10, 9, 16], kernel: [3, 3], out_channels: 32",
    "logits_valid_1x6": "input: [1, 5, 6, 32], kernel: [1, 6], out_channels: 45, padding: VALID",
    "odd_channels": "input: [1, 6, 7, 3], kernel: [3, 3], out_channels: 5",
    "stride2": "input: [1, 9, 8, 16], kernel: [3, 3], out_channels: 16, strides: [2, 2]",
    "explicit_pad_dilated": "input: [1, 8, 8, 16], kernel: [3, 3], out_channels: 16, "
    "padding: [[2, 1], [0, 2]], dilation: [2, 1]",
}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_native_call_matches_tf(case: str, batch: int, kernel_cache, tf) -> None:
    spec = parse_spec(f"convs: [{{name: {case}, {CASES[case]}, count: 1}}]")[0]
    w = Workload(spec, batch)
    k = ConvKernel(kernel_cache.conv(w).path, w)
    data, weight = conv_inputs(w, seed=3)
    got = k(data, weight)
    ref = tf_reference(tf, w, data, weight)
    assert got.shape == ref.shape == w.output_shape
    result = compare(got, ref, rtol=1e-5)
    assert result["ok"], result


def test_the_check_catches_a_wrong_kernel(kernel_cache, tf) -> None:
    spec = parse_spec(f"convs: [{{name: same3x3, {CASES['same3x3']}, count: 1}}]")[0]
    w = Workload(spec, 1)
    data, weight = conv_inputs(w, seed=3)
    ref = tf_reference(tf, w, data, weight)
    wrong = ConvKernel(kernel_cache.conv(w).path, w)(data, weight * np.float32(1.001))
    result = compare(wrong, ref, rtol=1e-5)
    assert not result["ok"]
    assert result["max_rel_err"] == pytest.approx(1e-3, rel=0.05)


def test_timed_kernel_reports_consistent_statistics(kernel_cache) -> None:
    from convbench.harness import RunConfig

    spec = parse_spec(f"convs: [{{name: same3x3, {CASES['same3x3']}, count: 1}}]")[0]
    w = Workload(spec, 1)
    k = ConvKernel(kernel_cache.conv(w).path, w)
    data, weight = conv_inputs(w)
    t = k.time(data, weight, k.new_output(), config=RunConfig(0.001, 0.002, 5))
    s = t.summary
    assert s["n"] == 5 and s["min"] <= s["p10"] <= s["median"] <= s["p90"] <= s["max"]
    assert s["min"] > 0
