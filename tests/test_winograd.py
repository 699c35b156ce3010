"""Winograd F(2x2, 3x3) and F(4x4, 3x3) kernels: right against float64 within their documented
tolerance on any 3x3 stride-1 shape, refused where they do not apply, the weight transform done
once at load, and `--algos` choosing, recording and checking them in a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICK
from convbench.build.winograd import TILES, multiplies, u_shape, winograd_applicable
from convbench.frameworks.numerics import WINOGRAD_RTOL_FACTOR, relative_error, winograd_rtol
from convbench.measure.conv_handlers import conv_kernel
from convbench.spec import ConvWorkload, parse_spec
from convbench.spec.arrays import conv_inputs

SHAPES = """
convs:
  - {name: odd, input: [1, 17, 13, 24], kernel: [3, 3], out_channels: 40, count: 1}
  - {name: valid_b2, input: [2, 9, 7, 16], kernel: [3, 3], out_channels: 48, count: 1,
     padding: VALID}
  - {name: pads, input: [1, 9, 7, 16], kernel: [3, 3], out_channels: 33, count: 1,
     padding: [[0, 2], [1, 0]]}
  - {name: rgb, input: [1, 5, 6, 3], kernel: [3, 3], out_channels: 17, count: 1}
  - {name: one_pixel, input: [1, 1, 1, 8], kernel: [3, 3], out_channels: 16, count: 1}
"""


def _f64(w: ConvWorkload, data: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The conv in float64 with numpy: the exact answer both float32 kernels are held to."""
    (pt, pb), (pl, pr) = w.spec.pads
    xp = np.pad(data.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    _, oh, ow, _ = w.output_shape
    out = np.zeros(w.output_shape)
    for r in range(3):
        for s in range(3):
            out += xp[:, r : r + oh, s : s + ow, :] @ weight[r, s].astype(np.float64)
    return out


@pytest.fixture(scope="module")
def workloads() -> list[ConvWorkload]:
    return [ConvWorkload(s, s.input[0]) for s in parse_spec(SHAPES)]


@pytest.mark.parametrize("m", TILES)
def test_winograd_matches_float64_within_its_tolerance(m, workloads, kernel_cache) -> None:
    for w in workloads:
        assert winograd_applicable(w) is None
        k = kernel_cache.winograd(w, m)
        assert k.algorithm == f"winograd-{m}" and f"F({m}x{m},3x3)" in k.schedule
        data, weight = conv_inputs(w, seed=3)
        kernel = conv_kernel(str(k.path), w, k.algorithm)
        u, transform_s = kernel.prepare(weight)
        assert u.shape == u_shape(w, m) and transform_s is not None and transform_s > 0
        out = kernel.new_output()
        kernel.call(data, u, out)  # main on the transformed weights, through the C++ harness
        err = relative_error(out, _f64(w, data, weight), winograd_rtol(1e-5))
        assert err["ok"], (w.name, m, err)
        # not a vacuous bound: a wrong weight (one tap off) is far outside it
        bad = weight.copy()
        bad[1, 1] *= 1.01
        wrong = kernel(data, bad)
        assert not relative_error(wrong, _f64(w, data, weight), winograd_rtol(1e-5))["ok"]


def test_the_winograd_tolerance_is_the_documented_multiple_of_the_direct_one() -> None:
    assert winograd_rtol(1e-5) == pytest.approx(1e-5 * WINOGRAD_RTOL_FACTOR)
    assert WINOGRAD_RTOL_FACTOR == 10.0


def test_winograd_saves_multiplies_on_the_shipped_shapes() -> None:
    from convbench.spec import load_shapes

    for s in load_shapes(Path(__file__).resolve().parents[1] / "shapes.yaml").convs:
        w = ConvWorkload(s, 1)
        if winograd_applicable(w) is None:
            assert multiplies(w, 2) < 0.6 and multiplies(w, 4) < 0.45, s.name


def test_winograd_is_refused_where_it_does_not_apply(kernel_cache) -> None:
    spec = """
convs:
  - {name: s2, input: [1, 8, 8, 16], kernel: [3, 3], out_channels: 16, strides: [2, 2], count: 1}
  - {name: d2, input: [1, 8, 8, 16], kernel: [3, 3], out_channels: 16, dilation: [2, 2],
     count: 1}
  - {name: k16, input: [1, 6, 6, 16], kernel: [1, 6], out_channels: 16, padding: VALID, count: 1}
  - {name: dw, input: [1, 8, 8, 16], kernel: [3, 3], out_channels: 16, groups: 16, count: 1}
"""
    for s in parse_spec(spec):
        w = ConvWorkload(s, 1)
        why = winograd_applicable(w)
        assert why, s.name
        with pytest.raises(ValueError, match="no Winograd kernel"):
            kernel_cache.winograd(w, 2)
    with pytest.raises(ValueError, match="unknown conv algorithm"):
        conv_kernel("x.so", ConvWorkload(parse_spec(spec)[0], 1), "fft-3")


def _run(convbench, shapes, tmp_path, name: str, *args: str) -> dict:
    out = tmp_path / f"{name}.json"
    proc = convbench(
        "--shapes",
        str(shapes),
        "--threads",
        "1",
        *QUICK,
        "--paths",
        "tvm/native,tvm/evaluator",
        "--no-model",
        "--json",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
        *args,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()) | {"stdout": proc.stdout}


def test_algos_choose_record_and_check_the_kernels(convbench, tiny_shapes, tmp_path) -> None:
    auto = _run(convbench, tiny_shapes, tmp_path, "auto")  # the default: --algos auto
    (choice,) = auto["algorithms"]  # tiny_logits (1x6) has no Winograd kernel: no choice
    assert choice["workload"] == "tiny_same" and choice["mode"] == "auto"
    probe = choice["probe_median_s"]
    assert set(probe) == {"direct", "winograd-2", "winograd-4"}
    assert choice["chosen"] == min(probe, key=probe.get)  # the faster one, as probed
    tvm = {(r["workload"], r["path"]): r for r in auto["records"]}
    for path in ("native", "evaluator"):
        same, logits = tvm["tiny_same", path], tvm["tiny_logits", path]
        assert same["algorithm"] == choice["chosen"] and logits["algorithm"] == "direct"
        winograd = choice["chosen"] != "direct"
        assert winograd == ("weight_transform_s" in same)
        assert winograd == same["schedule"].startswith("winograd-nhwc")
    # every kernel checked: the direct one at --rtol, each Winograd one at its documented multiple
    checks = {(c["workload"], c["algorithm"]): c for c in auto["checks"]}
    assert checks["tiny_same", "direct"]["rtol"] == pytest.approx(1e-5)
    for m in TILES:
        c = checks["tiny_same", f"winograd-{m}"]
        assert c["ok"] and c["rtol"] == pytest.approx(winograd_rtol(1e-5))
        assert 0 < c["tvm_vs_f64_rel_err"] < c["rtol"]
    assert "TVM's algorithm per conv" in auto["stdout"]

    wino = _run(convbench, tiny_shapes, tmp_path, "wino", "--algos", "winograd")
    (choice,) = wino["algorithms"]
    assert set(choice["probe_median_s"]) == {"winograd-2", "winograd-4"}
    same = [r for r in wino["records"] if r["workload"] == "tiny_same"]
    assert same and all(r["algorithm"].startswith("winograd-") for r in same)
    assert any("tiny_logits: no Winograd kernel" in w for w in wino["warnings"])

    direct = _run(convbench, tiny_shapes, tmp_path, "direct", "--algos", "direct")
    assert "algorithms" not in direct
    assert all(r["algorithm"] == "direct" for r in direct["records"])
    assert not any(k["schedule"].startswith("winograd") for k in direct["kernels"])


def test_a_bad_algos_value_is_refused(convbench, tiny_shapes, tmp_path) -> None:
    proc = convbench("--shapes", str(tiny_shapes), "--algos", "fft", cwd=tmp_path)
    assert proc.returncode == 2 and "--algos" in proc.stderr and "Traceback" not in proc.stderr


def test_model_builds_compute_the_chosen_convs_by_winograd(convbench, tiny_model, tmp_path):
    args = ("--paths", "tvm/native,tf/native-graph")
    args += ("--from", "expand_conv1/add_1", "--to", "conv_block1/unit1/add_2")  # blockA
    common = ("--shapes", str(tiny_model), "--threads", "1", *QUICK, *args)
    common += ("--cache-dir", str(tmp_path / "cache"))
    docs = {}
    for algos in ("winograd", "direct"):
        out = tmp_path / f"{algos}.json"
        proc = convbench(*common, "--algos", algos, "--json", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        docs[algos] = json.loads(out.read_text())
    wino, direct = docs["winograd"], docs["direct"]
    # the cut's 3x3 convs are the convs section's tiny_32: each conv chose a Winograd tile
    assert {c["workload"] for c in wino["algorithms"]} == {"tiny_16", "tiny_32"}
    for doc, uses in ((wino, True), (direct, False)):
        assert all(c["ok"] for c in doc["checks"]), doc["checks"]
        models = [
            k
            for k in doc["kernels"]
            if k["schedule"].startswith("direct-nhwc") and "relax" in k["schedule"]
        ]
        assert models and all(("winograd" in k["schedule"]) == uses for k in models)
        (table,) = doc["layers"]
        convs = [r for r in table["rows"] if r["tvm_funcs"] and r["tvm_flops"]]
        assert convs and not table["flops_mismatch"]
        # every 3x3 conv layer of the cut runs a Winograd function, named as such in its row
        for r in convs:
            assert any("winograd" in f for f in r["tvm_funcs"]) == uses, r
            assert r["tvm_flops"] == r["tf_flops"]  # nominal (direct) FLOPs on both sides
