"""What the records say, recomputed: the ladder never goes negative, a rung that contradicts
another is marked and left out with its reason, per-layer rows are matched by what they compute
(FLOPs agree between the frameworks on the log's blocks), and the derived figures equal their
definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from convbench.build.plan import LayerPlan
from convbench.build.winograd import layer_problem
from convbench.results.analysis import (
    call_layers,
    choose_in_context,
    conv_prediction,
    cross_checks,
    framework_shares,
    inconsistencies,
    ladder,
    layer_table,
    problem_seconds,
)
from convbench.results.record import Record
from convbench.spec import ConvWorkload, load_shapes
from convbench.spec.model import ModelWorkload

SHAPES = Path(__file__).resolve().parents[1] / "shapes.yaml"


# every rung of a single conv's ladder
CONV_RUNGS = (
    ("tvm", "native"),
    ("tvm", "cython"),
    ("tvm", "python"),
    ("tvm", "evaluator"),
    ("tf", "kernel"),
    ("tf", "native"),
    ("tf", "native-graph"),
    ("tf", "eager"),
    ("tf", "function"),
    ("tf", "session"),
    ("tf", "session-feedless"),
)


def rec(backend: str, path: str, us: float, cv: float = 0.01, workload: str = "w") -> Record:
    return Record.from_json(
        {
            "workload": workload,
            "batch": 1,
            "threads": 2,
            "backend": backend,
            "path": path,
            "median_s": us * 1e-6,
            "cv": cv,
        }
    )


def _all_figures(entries: list[dict]) -> list[float]:
    out = []
    for e in entries:
        for key in ("kernel", "native_dispatch"):
            if key in e:
                out += [e[key]["us"], e[key]["share"]]
        for v in e["python_overhead"].values():
            out += [v["us"], v["share"]]
    return out


def test_a_kernel_slower_than_its_call_is_left_out_not_printed_negative() -> None:
    # the case: oneDNN's profile at 3.086 ms inside a 1.531 ms call
    records = [
        rec("tf", "kernel", 3086),
        rec("tf", "native", 1531),
        rec("tf", "native-graph", 1400),
        rec("tf", "eager", 1600),
        rec("tf", "session", 1500),
    ]
    (entry,) = ladder(records, None)
    assert "kernel" not in entry and "native_dispatch" not in entry
    assert "slower than tf/native" in entry["excluded"]["kernel"]
    assert all(x >= 0 for x in _all_figures([entry]))
    # each wrapper is measured against the rung it wraps: session over native-graph
    assert entry["python_overhead"]["session"]["over"] == "native-graph"
    assert entry["python_overhead"]["session"]["us"] == pytest.approx(100)
    assert entry["python_overhead"]["eager"]["us"] == pytest.approx(69)
    bad = inconsistencies(records)
    assert list(bad) == [(("w", 1, 2), "tf/kernel")]
    assert any("tf/kernel" in w for w in cross_checks(records))


def test_wrappers_faster_than_their_rung_and_a_floor_above_native_are_left_out() -> None:
    records = [
        rec("tvm", "native", 10),
        rec("tvm", "python", 8),  # faster than the call it wraps: impossible
        rec("tvm", "cython", 11),
        rec("tvm", "evaluator", 15),  # 50% from native, both CVs 1%
    ]
    (entry,) = ladder(records, floor_s=12e-6)  # a floor above native
    assert set(entry["excluded"]) == {"python", "evaluator", "kernel"}
    assert set(entry["python_overhead"]) == {"cython"}
    assert entry["python_overhead"]["cython"]["us"] == pytest.approx(1)
    assert all(x >= 0 for x in _all_figures([entry]))
    # with the evaluator within twice its noise it is not a contradiction
    noisy = [rec("tvm", "native", 10, cv=0.2), rec("tvm", "evaluator", 13, cv=0.2)]
    assert inconsistencies(noisy) == {}


def test_the_evaluator_is_checked_against_the_native_samples_alternated_with_its_own() -> None:
    import dataclasses

    # the native cell's processes ran slower (another load on the machine) than the
    # evaluator's: 25% apart as cells, while the alternated pairs agree within 1%
    ev = dataclasses.replace(
        rec("tvm", "evaluator", 100.0, cv=0.01),
        wall_samples_s=[100e-6, 101e-6, 99e-6, 100e-6],
        paired_native_s=[100.5e-6, 100.8e-6, 99.4e-6, 100.2e-6],
    )
    records = [rec("tvm", "native", 125.0, cv=0.01), ev]
    assert ev.paired_native_median_s == pytest.approx(100.35e-6)
    assert inconsistencies(records) == {}
    # and the pairs disagreeing beyond the tolerance marks the evaluator, naming the pairs
    bad = dataclasses.replace(ev, paired_native_s=[t * 1.2 for t in ev.paired_native_s])
    (why,) = inconsistencies([records[0], bad]).values()
    assert "alternated with the evaluator" in why and "differ by 20%" in why
    assert "(the median of 4 pairs' ratios)" in why
    # two modes in both timers' samples, each pair in one of them: the two pooled medians
    # fall in different modes (31% apart), the pairs' ratios agree
    modal = dataclasses.replace(
        ev,
        wall_samples_s=[100e-6, 100e-6, 100e-6, 130e-6, 130e-6],
        paired_native_s=[101e-6, 101e-6, 131e-6, 131e-6, 131e-6],
    )
    assert modal.paired_native_median_s / modal.median_s == pytest.approx(1.31)
    ratios = [100 / 101, 100 / 101, 100 / 131, 130 / 131, 130 / 131]
    assert modal.pair_ratios == pytest.approx(ratios)
    assert modal.paired_ratio == pytest.approx(np.median(ratios))
    assert modal.paired_ratio_cv == pytest.approx(np.std(ratios, ddof=1) / np.mean(ratios))
    assert inconsistencies([records[0], modal]) == {}
    # without pairs (an older file, a plain RPC server), the two cells' medians are compared
    plain = dataclasses.replace(ev, paired_native_s=None)
    (why,) = inconsistencies([records[0], plain]).values()
    assert "tvm/native (125.00 us)" in why


@pytest.mark.parametrize("seed", range(20))
def test_the_ladder_never_goes_negative_on_random_records(seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    records = []
    for w in ("a", "b"):
        for backend, path in CONV_RUNGS:
            records.append(rec(backend, path, float(rng.uniform(1, 100)), workload=w))
    entries = ladder(records, floor_s=float(rng.uniform(0, 50e-6)))
    assert all(x >= 0 for x in _all_figures(entries))


def _shares(entries: list[dict]) -> dict[str, dict]:
    return {e["backend"]: e for e in entries}


def test_framework_shares_take_each_path_over_the_kernel_in_its_own_chain() -> None:
    # a default run's conv_54x6x256 at 1 thread: TF's graph paths beat the kernel profiled
    # inside the eager op (they run a kernel of their own), and tvm/python beat tvm/native
    records = [
        rec("tvm", "native", 670.0),
        rec("tvm", "cython", 700.0),
        rec("tvm", "python", 640.0),
        rec("tf", "kernel", 1658.0, cv=0.03),
        rec("tf", "native", 2248.0, cv=0.15),
        rec("tf", "native-graph", 1432.0, cv=0.03),
        rec("tf", "eager", 2275.0, cv=0.17),
        rec("tf", "function", 2381.0, cv=0.16),
        rec("tf", "session", 1518.0, cv=0.05),
        rec("tf", "session-feedless", 2363.0, cv=0.03),
    ]
    floor = 3e-9
    e = _shares(framework_shares(records, floor, {"w": "conv"}))
    tvm, tf = e["tvm"], e["tf"]
    kernel = 670e-6 - floor
    assert tvm["kernel_us"] == pytest.approx(kernel * 1e6)
    assert tvm["shares"]["native"] == pytest.approx(floor / 670e-6)
    assert tvm["shares"]["cython"] == pytest.approx((700e-6 - kernel) / 700e-6)
    assert "python" not in tvm["shares"] and tvm["contradicts"] == ["python"]
    assert "faster than tvm/native less the harness's floor" in tvm["excluded"]["python"]
    # TF: the eager op's chain over oneDNN's profile, the graph's wrappers over native-graph
    assert tf["kernel_us"] == pytest.approx(1658)
    for path, t in (("native", 2248), ("eager", 2275), ("function", 2381)):
        assert tf["shares"][path] == pytest.approx((t - 1658) / t)
    for path, t in (("session", 1518), ("session-feedless", 2363)):
        assert tf["shares"][path] == pytest.approx((t - 1432) / t)
        assert tf["over"][path] == "tf/native-graph"
    assert "native-graph" not in tf["shares"] and "excluded" not in tf
    # a graph call that beat its own wrapper's floor is left out too, never negative
    records[8] = rec("tf", "session", 1200.0, cv=0.01)
    tf = _shares(framework_shares(records, floor, {"w": "conv"}))["tf"]
    assert tf["contradicts"] == ["session"] and "session" not in tf["shares"]


def test_framework_shares_leave_out_a_marked_record_and_use_native_graph_for_model_cuts() -> None:
    records = [
        rec("tf", "kernel", 3086.0).with_inconsistency("tf/kernel (3086.00 us) is slower ..."),
        rec("tf", "native", 1531.0),
        rec("tf", "eager", 1600.0),
        rec("tvm", "native", 5000.0, workload="m"),
        rec("tvm", "python", 5100.0, workload="m"),
        rec("tf", "native-graph", 9000.0, workload="m"),
        rec("tf", "session", 9900.0, workload="m"),
        rec("tf", "eager", 12000.0, workload="m"),
    ]
    entries = framework_shares(records, 3e-9, {"w": "conv", "m": "model"})
    conv = _shares([e for e in entries if e["workload"] == "w"])
    # no kernel for the eager chain: nothing is set against the contradicted one
    assert conv["tf"]["shares"] == {} and conv["tf"]["kernel_us"] is None
    assert conv["tf"]["excluded"] == {"kernel": "tf/kernel (3086.00 us) is slower ..."}
    assert "contradicts" not in conv["tf"]
    model = _shares([e for e in entries if e["workload"] == "m"])
    assert model["tvm"]["kernel_us"] == pytest.approx(5000)
    assert model["tvm"]["shares"] == {"python": pytest.approx(100 / 5100)}
    assert model["tf"]["kernel_us"] == pytest.approx(9000)
    assert model["tf"]["shares"] == {
        "session": pytest.approx(900 / 9900),
        "eager": pytest.approx(3000 / 12000),
    }
    assert "over" not in model["tf"]


@pytest.mark.parametrize("seed", range(20))
def test_framework_shares_are_never_negative_and_account_for_every_path(seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    paths = [(b, p) for b, p in CONV_RUNGS if p != "evaluator"]
    records = [
        rec(b, p, float(rng.uniform(1, 100)), cv=float(rng.uniform(0, 0.1))) for b, p in paths
    ]
    for e in framework_shares(records, float(rng.uniform(0, 50e-6)), {"w": "conv"}):
        assert all(0 <= v <= 1 for v in e["shares"].values())
        assert not set(e["shares"]) & set(e.get("excluded", {}))
        if "kernel" in e.get("excluded", {}):  # TVM's floor above its native time
            assert e["shares"] == {}
            continue
        # every path but the chains' roots (kernel, native-graph) is shared or left out
        want = {p for b, p in paths if b == e["backend"]} - {"kernel", "native-graph"}
        assert set(e["shares"]) | set(e.get("excluded", {})) == want


def test_prediction_leaves_out_an_inconsistent_rung() -> None:
    spec = load_shapes(SHAPES)
    convs = [
        w
        for w in __import__("convbench.run", fromlist=["RunPlan"])
        .RunPlan(
            spec.convs, __import__("convbench.run", fromlist=["RunOptions"]).RunOptions(threads=[1])
        )
        .workloads
    ]
    model = ModelWorkload("m", "model", spec.model, None, spec.model.graph.output, 1)
    records = [rec("tvm", "native", 100.0, workload=w.name) for w in convs]
    records.append(rec("tvm", "native", 20000.0, workload="m"))
    (p,) = conv_prediction([*convs, model], records)
    want = sum(w.spec.count * 100e-6 for w in convs)
    assert p["predicted_conv_s"] == pytest.approx(want)
    assert p["outside_convs_share"] == pytest.approx(1 - want / 20000e-6)
    marked = [r.with_inconsistency("x") if r.workload == convs[0].name else r for r in records]
    assert conv_prediction([*convs, model], marked) == []


@pytest.fixture(scope="module")
def model():
    return load_shapes(SHAPES).model


def _raw_from_plan(kernel_cache, mw: ModelWorkload) -> dict:
    """The layers worker's result without timing: every call of the build with its shapes,
    every conv node of the graph as a TF op (TF's ops carry their node's name)."""
    k = kernel_cache.model(mw, True)
    plan = LayerPlan.load(k.path.parent)
    calls = [
        {"func": c["func"], "median_s": 1e-3, "args": a, "shape": c["shape"]}
        for c, a in zip(plan.calls, plan.arg_shapes(mw.input_shape), strict=True)
    ]
    ops = {n.name: 1e-3 for n in mw.graph.convs()}
    return {
        "batch": mw.batch,
        "tvm_calls": calls,
        "tvm_whole_s": 1.0,
        "tf_ops": ops,
        "tf_op_types": {op: "Conv2D" for op in ops},
        "tf_whole_s": 1.0,
    }


@pytest.mark.parametrize("block", ["block1", "block2"])
def test_per_layer_flops_agree_between_the_frameworks(kernel_cache, model, block) -> None:
    b = next(b for b in model.blocks if b.name == block)
    mw = ModelWorkload(block, "block", model, b.start, b.stop, 1)
    raw = _raw_from_plan(kernel_cache, mw)
    table = layer_table(mw.graph, raw)
    assert table["flops_mismatch"] == []
    convs = {n.name: n for n in mw.graph.convs()}
    for r in table["rows"]:
        if r["layer"] in convs:
            want = ConvWorkload(convs[r["layer"]].conv, 1).flops
            assert r["tvm_flops"] == r["tf_flops"] == want, r["layer"]
    if block == "block2":
        # the swap: the 1x1 shortcut (192 -> 256) and the 3x3 conv beside it (256 -> 256)
        rows = {r["layer"]: r for r in table["rows"]}
        shortcut, conv4 = rows["expand_conv4/shortcut"], rows["expand_conv4/conv4"]
        assert shortcut["tvm_flops"] * 9 * 256 == conv4["tvm_flops"] * 192
    # a call that computes something else is not matched to a layer, and the row says so
    bad = dict(raw)
    bad["tvm_calls"] = [dict(c) for c in raw["tvm_calls"]]
    first = next(c for c in bad["tvm_calls"] if "conv2d" in c["func"])
    first["args"] = [
        [k, [1, 1, *s[2:]] if k == "const" and len(s) == 4 else s] for k, s in first["args"]
    ]
    broken = layer_table(mw.graph, bad)
    assert any(name.startswith("(unmatched)") for name in broken["flops_mismatch"])


def test_the_in_context_choice_sums_each_problems_layers_and_takes_the_fastest(
    kernel_cache, model
) -> None:
    """block2's three problems (192 -> 192, 192 -> 256, 256 -> 256 at 54x6): each Winograd call
    of a build is its problem's, each direct build's call its layer's; a problem takes the
    candidate its layers were fastest under, whatever the others did."""
    b = next(b for b in model.blocks if b.name == "block2")
    mw = ModelWorkload("block2", "block", model, b.start, b.stop, 1)
    problems: dict[str, list[str]] = {}
    for n in mw.graph.convs():
        p = layer_problem(ConvWorkload(n.conv, 1))
        if p is not None:
            problems.setdefault(p, []).append(n.name)
    assert len(problems) == 3
    k = kernel_cache.model(mw, True, winograd=dict.fromkeys(problems, 2))
    plan = LayerPlan.load(k.path.parent)
    wino = [
        {"func": c["func"], "args": a, "shape": c["shape"], "context_s": 0.0}
        for c, a in zip(plan.calls, plan.arg_shapes(mw.input_shape), strict=True)
    ]
    for c in wino:
        c["context_s"] = 1.0 if "winograd" in c["func"] else 0.0
    by = problem_seconds(mw.graph, 1, wino)
    # every Winograd call found its problem: one per layer
    assert {p: (e["s"], e["layers"]) for p, e in by.items()} == {
        p: (float(len(names)), names) for p, names in problems.items()
    }
    direct = _raw_from_plan(kernel_cache, mw)["tvm_calls"]
    at, _ = call_layers(mw.graph, direct)
    favoured = sorted(problems)[0]  # under the direct build only this problem's layers are quick
    layer_of = {n: p for p, names in problems.items() for n in names}
    for c, layer in zip(direct, at, strict=True):
        c["context_s"] = 0.1 if layer_of.get(layer) == favoured else 5.0
    chosen, rows = choose_in_context(
        mw.graph, 1, {"direct": {"calls": direct}, "winograd-2": {"calls": wino}}
    )
    assert chosen == {p: "direct" if p == favoured else "winograd-2" for p in problems}
    for r in rows:
        assert r["layers"] == problems[r["problem"]]
        assert r["chosen"] == min(r["in_context_s"], key=r["in_context_s"].get)


def test_a_multi_thread_cell_that_ran_serially_is_named() -> None:
    """The issue's tf/kernel at 2 threads read its 1-thread time: its parallelism shows it."""
    from convbench.results.analysis import serial_cells

    def with_par(r: Record, par: float, oversubscribed: bool = False) -> Record:
        import dataclasses

        return dataclasses.replace(r, parallelism=par, oversubscribed=oversubscribed)

    records = [
        with_par(rec("tf", "kernel", 3000), 1.02),
        with_par(rec("tf", "native", 1500), 1.9),
        with_par(rec("tvm", "native", 1500, workload="v"), 1.0, oversubscribed=True),
    ]
    assert [r.id for r in serial_cells(records)] == ["tf/kernel"]
