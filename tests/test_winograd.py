"""Winograd F(2x2, 3x3) and F(4x4, 3x3) kernels: right against float64 within their documented
tolerance on any 3x3 stride-1 shape, refused where they do not apply, the weight transform done
once at load, and `--algos` choosing, recording and checking them in a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import QUICK, TINY_MODEL
from convbench.build.cache import KernelCache
from convbench.build.relax import relax_module, winograd_convs
from convbench.build.winograd import (
    TILES,
    layer_problem,
    multiplies,
    tile_of,
    u_shape,
    winograd_applicable,
)
from convbench.frameworks.numerics import WINOGRAD_RTOL_FACTOR, relative_error, winograd_rtol
from convbench.measure.conv_handlers import conv_kernel
from convbench.spec import ConvWorkload, load_shapes, parse_spec
from convbench.spec.arrays import conv_inputs
from convbench.spec.model import ModelWorkload, parse_model

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


WINOGRAD_ONLY = {f"winograd-{m}" for m in TILES}
TILES_AND_DIRECT = WINOGRAD_ONLY | {"direct"}
CUT = ("expand_conv1/add_1", "conv_block1/unit1/add_2")  # the tiny model's blockA


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


def test_model_builds_choose_each_convs_algorithm_in_context(convbench, tiny_model, tmp_path):
    args = ("--paths", "tvm/native,tf/native-graph")
    args += ("--from", CUT[0], "--to", CUT[1])  # blockA
    common = ("--shapes", str(tiny_model), "--threads", "1", *QUICK, *args)
    common += ("--cache-dir", str(tmp_path / "cache"))
    docs = {}
    for algos in ("auto", "winograd", "direct"):
        out = tmp_path / f"{algos}.json"
        # the cut chooses by itself: no single conv of the run need have its problem
        alone = ("--no-convs",) if algos == "winograd" else ()
        proc = convbench(*common, *alone, "--algos", algos, "--json", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        docs[algos] = json.loads(out.read_text()) | {"stdout": proc.stdout}
    # the cut's problems: its layers that Winograd computes, by the key the build gives them
    spec = load_shapes(tiny_model).model
    cut = spec.graph.cut(*CUT)
    problems: dict[str, list[str]] = {}
    for n in cut.convs():
        p = layer_problem(ConvWorkload(n.conv, 1))
        if p is not None:
            problems.setdefault(p, []).append(n.name)
    assert problems
    for algos, candidates in (("auto", TILES_AND_DIRECT), ("winograd", WINOGRAD_ONLY)):
        doc = docs[algos]
        (entry,) = doc["model_algorithms"]  # one cut, one thread count
        assert ("algorithms" in doc) == (algos == "auto")  # the single convs' probe
        assert entry["mode"] == algos and entry["threads"] == 1
        assert set(entry["whole_s"]) == set(entry["kernels"]) == candidates
        rows = {r["problem"]: r for r in entry["problems"]}
        assert {p: r["layers"] for p, r in rows.items()} == problems
        for r in rows.values():  # the fastest in context, of every candidate, is the one chosen
            assert set(r["in_context_s"]) == candidates and min(r["in_context_s"].values()) > 0
            assert r["chosen"] == min(r["in_context_s"], key=r["in_context_s"].get)
        assert f"algorithm {entry['workload']} b1 t1, in context" in doc["stdout"]
        assert "TVM's algorithm per model layer, chosen in context" in doc["stdout"]
        # the cut's build computes each layer as its problem chose; its check passed
        assert all(c["ok"] for c in doc["checks"]), doc["checks"]
        (table,) = doc["layers"]
        chosen = {n: r["chosen"] for r in rows.values() for n in r["layers"]}
        convs = [r for r in table["rows"] if r["tvm_funcs"] and r["tvm_flops"]]
        assert convs and not table["flops_mismatch"]
        for r in convs:
            algorithm = chosen.get(r["layer"], "direct")  # a layer Winograd can't compute: direct
            m = tile_of(algorithm)
            funcs = [f for f in r["tvm_funcs"] if "winograd" in f]
            # one Winograd call, of its tile (the builder numbers same-named functions on)
            assert len(funcs) == (1 if m else 0), r
            assert all(f.startswith(f"conv2d_winograd{m}") for f in funcs), r
            assert r["tvm_flops"] == r["tf_flops"]  # nominal (direct) FLOPs on both sides
        built = [k for k in doc["kernels"] if "relax-fused" in k["schedule"]]
        n_winograd = sum(r["chosen"] != "direct" for r in rows.values())
        assert built and all(
            k["schedule"].endswith(f"winograd-nhwc-v1-{n_winograd}") == (n_winograd > 0)
            for k in built
        )
        # reproducible: the chosen build is the cache's entry for that choice
        wanted = {p: int(r["chosen"][-1]) for p, r in rows.items() if r["chosen"] != "direct"}
        mw = ModelWorkload(entry["workload"], "block", spec, *CUT, 1)
        again = KernelCache(tmp_path / "cache").model(mw, True, winograd=wanted or None)
        assert again.cached and again.key in {k["key"] for k in built}
    direct = docs["direct"]
    assert "model_algorithms" not in direct and all(c["ok"] for c in direct["checks"])
    (table,) = direct["layers"]
    assert not any("winograd" in f for r in table["rows"] for f in r["tvm_funcs"])


def test_a_layer_problem_is_the_key_the_model_build_gives_its_conv() -> None:
    """A conv whose output channels the build pads to the vector width (24 -> 32) is still the
    problem its key names: a choice for it reaches it."""
    raw = yaml.safe_load(TINY_MODEL)["model"]
    raw["stem"]["channels"] = 24
    g = parse_model(raw).graph
    problems = {}
    for n in g.convs():
        p = layer_problem(ConvWorkload(n.conv, 1))
        assert (p is None) == (winograd_applicable(ConvWorkload(n.conv, 1)) is not None)
        if p is not None:
            problems.setdefault(p, []).append(n.name)
    assert any("-32-" in p for p in problems)  # a padded 24-channel conv's key
    mod = winograd_convs(relax_module(g, 1, g.weights()), dict.fromkeys(problems, 2))
    assert str(mod["main"]).count("conv2d_winograd2") == sum(map(len, problems.values()))
