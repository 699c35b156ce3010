"""Where a cut's time goes: the Relax VM's calls stamped in context (RelaxVm.profile), their
reduction to a decomposition (results.decomposition), TF's timeline, the layers table's three
times per layer, the "kernel or framework?" shares of a model cut, and the answer in words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from convbench.frameworks.tf_model import timeline_summary
from convbench.native.harness import RunConfig, relax_vm
from convbench.results.analysis import framework_shares
from convbench.results.decomposition import (
    BETWEEN_CALLS,
    VM_ENTRY,
    cut_decomposition,
    explain_cut,
    vm_profile_summary,
)
from convbench.spec.arrays import aligned_copy

FAST = RunConfig(warmup_s=0.001, min_sample_s=0.001, samples=3)
SHAPE = (4, 64)
SLEEP_S = 0.004
# the slow element-wise function's work per output element: it is made to cost thousands of
# times what its neighbours cost, so finding it does not depend on this machine's noise
SLOW_REPEAT = 4000


def _sleep(x):  # the injected call: a packed function the VM calls between two kernels
    import time

    time.sleep(SLEEP_S)
    return x


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, list[str]]:
    """main(x) = relu(sleep(slow(x + 1))): a slow element-wise function between two fast ones,
    and a packed call that sleeps; lowered as the model builds are (to_primfuncs, no fusion) and
    exported. Returns the library and its compiled functions in the order main calls them."""
    import tvm
    from convbench.build.relax import to_primfuncs
    from convbench.build.target import host_target
    from tvm import relax, te

    tvm.register_global_func("convbench_test.sleep", _sleep, override=True)

    def slow(a):
        k = te.reduce_axis((0, SLOW_REPEAT), name="k")
        return te.compute(
            a.shape,
            lambda i, j: te.sum(a[i, j] * te.const(1.0 / SLOW_REPEAT, "float32"), axis=k),
            name="slow_elementwise",
        )

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit(relax.op.add(x, relax.const(np.ones(SHAPE, np.float32))))
            b = bb.emit_te(slow, a, primfunc_name_hint="slow_elementwise")
            c = bb.emit(
                relax.call_pure_packed(
                    "convbench_test.sleep", b, ty_args=relax.TensorType(SHAPE, "float32")
                )
            )
            out = bb.emit_output(relax.op.nn.relu(c))
        bb.emit_func_output(out)
    mod = to_primfuncs(bb.get(), fuse=False)
    call_tir = tvm.ir.Op.get("relax.call_tir")
    funcs = [
        binding.value.args[0].name_hint
        for block in mod["main"].body.blocks
        for binding in block.bindings
        if isinstance(binding.value, tvm.ir.Call) and binding.value.op.same_as(call_tir)
    ]
    assert len(funcs) == 3
    path = tmp_path_factory.mktemp("synthetic") / "model.so"
    tvm.compile(mod, target=host_target(1)).export_library(str(path))
    return path, funcs


def _profile(synthetic, runs: int = 5) -> tuple[dict, list[str]]:
    path, funcs = synthetic
    vm = relax_vm(path, list(SHAPE), list(SHAPE))
    x = aligned_copy(np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32))
    return vm.profile([x], **FAST.kwargs(), min_runs=runs), funcs


def test_stamps_partition_every_run_exactly(synthetic):
    p, funcs = _profile(synthetic)
    assert len(p["plain_s"]) == len(p["whole_s"]) == len(p["call_s"]) >= 5
    # every call's start and end stamped: calls, gaps and the tail are the instrumented whole
    for calls, gaps, tail, whole in zip(
        p["call_s"], p["gap_s"], p["tail_s"], p["whole_s"], strict=True
    ):
        assert len(calls) == len(gaps) == len(p["symbols"])
        assert min(calls) >= 0 and min(gaps) >= 0 and tail >= 0
        assert sum(calls) + sum(gaps) + tail == pytest.approx(whole, rel=1e-9)
    assert [s for s in p["symbols"] if s in funcs] == funcs
    assert "convbench_test.sleep" in p["symbols"]


def test_the_slow_call_is_found_at_its_place_and_the_sleep_is_glue(synthetic):
    p, funcs = _profile(synthetic)
    s = vm_profile_summary(p, funcs)
    slow = funcs.index(next(f for f in funcs if "slow_elementwise" in f))
    ctx = s["context_s"]
    assert max(range(len(ctx)), key=ctx.__getitem__) == slow
    assert ctx[slow] > 0.9 * sum(ctx)
    glue = {g["what"]: g for g in s["glue"]}
    # the sleep is not a layer's kernel: it is glue, under its own name, and at least its length
    assert glue["convbench_test.sleep"]["calls"] == 1
    assert glue["convbench_test.sleep"]["s"] >= SLEEP_S
    assert {BETWEEN_CALLS, VM_ENTRY} <= glue.keys()
    assert all(g["s"] >= 0 for g in s["glue"])
    assert s["glue"] == sorted(s["glue"], key=lambda g: -g["s"])
    # the medians are the runs' own figures
    assert ctx[slow] == pytest.approx(
        float(np.median([c[p["symbols"].index(funcs[slow])] for c in p["call_s"]]))
    )
    assert s["whole_s"] == pytest.approx(float(np.median(p["plain_s"])))
    # the totals: medians of each run's own sums
    at = [p["symbols"].index(f) for f in funcs]
    assert s["kernels_s"] == pytest.approx(
        float(np.median([sum(c[i] for i in at) for c in p["call_s"]]))
    )
    glue_runs = [w - sum(c[i] for i in at) for w, c in zip(p["whole_s"], p["call_s"], strict=True)]
    assert s["glue_s"] == pytest.approx(float(np.median(glue_runs)), rel=1e-6)
    assert s["clock_cost"] == pytest.approx(
        float(np.median([a / b - 1 for a, b in zip(p["whole_s"], p["plain_s"], strict=True)]))
    )


def test_a_plan_the_vm_does_not_follow_is_refused(synthetic):
    p, funcs = _profile(synthetic, runs=1)
    with pytest.raises(ValueError, match="do not follow the call plan"):
        vm_profile_summary(p, [*funcs, "not_compiled"])
    with pytest.raises(ValueError, match="do not follow the call plan"):
        vm_profile_summary(p, list(reversed(funcs)))


def test_timeline_summary_on_known_intervals():
    # ops (0, 1), (1.5, 2) and (1.8, 3) in a run of 4 s: span 3, covered 2.5
    s = timeline_summary([[(0.0, 1.0), (1.5, 2.0), (1.8, 3.0)], [(10.0, 11.0)]], [4.0, 2.0])
    assert s["gaps_s"] == pytest.approx(0.25)  # median of 0.5 and 0
    assert s["session_s"] == pytest.approx(1.0)  # median of 1 and 1
    assert timeline_summary([], []) == {"gaps_s": 0.0, "session_s": 0.0}


def _entry(**kw) -> dict:
    e = {
        "workload": "block2",
        "batch": 1,
        "threads": 1,
        "rows": [
            {"layer": "conv1", "tvm_s": 3.0e-3, "tf_s": 1.0e-3, "tvm_funcs": ["f"], "tf_ops": []},
            {"layer": "conv2", "tvm_s": 1.0e-3, "tf_s": 2.0e-3, "tvm_funcs": ["g"], "tf_ops": []},
        ],
        "tvm_whole_s": 5.0e-3,
        "tvm_kernels_s": 4.0e-3,
        "tvm_glue": [
            {"what": BETWEEN_CALLS, "s": 0.2e-3, "calls": 0},
            {"what": "vm.builtin.alloc_tensor", "s": 0.7e-3, "calls": 3},
        ],
        "tf_whole_s": 4.0e-3,
        "tf_kernels_s": 3.0e-3,
        "tf_glue": [{"what": "session outside the ops", "s": 0.5e-3, "calls": 0}],
    }
    e.update(kw)
    return e


def test_decomposition_and_the_sentence_from_its_figures():
    e = _entry()
    tvm = cut_decomposition(e, "tvm")
    assert tvm["glue_s"] == pytest.approx(0.9e-3)
    assert tvm["unaccounted_s"] == pytest.approx(5.0e-3 - 4.0e-3 - 0.9e-3)
    assert [g["what"] for g in tvm["glue"]] == ["vm.builtin.alloc_tensor", BETWEEN_CALLS]
    line = explain_cut(e)
    # recomputed here from the entry's figures: 5 ms against 4 ms, kernels 4 ms against 3 ms
    assert line.startswith(f"block2 b1 t1: TVM {5.0 / 4.0:.2f}x slower than TF")
    assert f"({4.0 / 3.0:.2f}x TF's)" in line
    assert "its glue 900 us against TF's 500 us (+400 us)" in line
    assert "vm.builtin.alloc_tensor 700 us" in line
    # conv1 is where TVM loses (+2 ms); conv2, where it wins, is not named as a loss
    assert "the layers where TVM loses most: conv1 +2.00 ms (3.00 ms vs 1.00 ms)" in line
    assert "conv2 " not in line
    # the cells' medians, where given, decide the verdict
    line = explain_cut(e, 2.0e-3, 4.0e-3, "tf/native-graph")
    assert line.startswith(f"block2 b1 t1: TVM {4.0 / 2.0:.2f}x faster than TF (tf/native-graph)")
    # an entry from before the in-context figures has no decomposition and no sentence
    old = {k: v for k, v in e.items() if k not in ("tvm_kernels_s", "tvm_glue")}
    assert cut_decomposition(old, "tvm") is None and explain_cut(old) is None


def _rec(backend: str, path: str, seconds: float):
    from convbench.results.record import Record

    return Record.from_json(
        {
            "workload": "block2",
            "batch": 1,
            "threads": 1,
            "backend": backend,
            "path": path,
            "median_s": seconds,
            "cv": 0.01,
        }
    )


def test_model_cut_shares_stand_on_the_layers_in_context():
    native = _rec("tvm", "native", 5.0e-3)
    python = _rec("tvm", "python", 6.0e-3)
    graph = _rec("tf", "native-graph", 4.0e-3)
    kinds = {"block2": "block"}
    entries = framework_shares([native, python, graph], None, kinds, [_entry()])
    tvm = next(e for e in entries if e["backend"] == "tvm")
    tf = next(e for e in entries if e["backend"] == "tf")
    assert tvm["kernel_us"] == pytest.approx(4.0e3)
    assert tvm["shares"]["native"] == pytest.approx((5.0e-3 - 4.0e-3) / 5.0e-3)
    assert tvm["shares"]["python"] == pytest.approx((6.0e-3 - 4.0e-3) / 6.0e-3)
    assert tf["kernel_us"] == pytest.approx(3.0e3)
    assert tf["shares"]["native-graph"] == pytest.approx((4.0e-3 - 3.0e-3) / 4.0e-3)
    # without a table, the native rung stands as its own kernel: no share of its own
    plain = framework_shares([native, python, graph], None, kinds)
    tvm = next(e for e in plain if e["backend"] == "tvm")
    assert "native" not in tvm["shares"] and tvm["kernel_us"] == pytest.approx(5.0e3)


def test_decomposition_plot_and_tables_from_an_entry():
    from convbench.report.plot import NoData, decomposition_figures
    from convbench.report.tables import decomposition_table, layers_tables
    from convbench.results.document import ResultsDoc

    with pytest.raises(NoData, match="no decomposition"):
        decomposition_figures(ResultsDoc())
    e = _entry()
    for r in e["rows"]:
        r["tvm_alone_s"] = r["tvm_s"] / 2
    doc = ResultsDoc(layers=[e])
    ((stem, fig),) = decomposition_figures(doc)
    assert stem == "decomposition"
    # a bar per framework: kernels, then glue, then the positive unaccounted rest
    bars = fig.axes[0].patches
    assert len(bars) == 3 * 2
    widths = sorted(round(b.get_width(), 6) for b in bars)
    assert round(100 * 4.0 / 5.0, 6) in widths and round(100 * 3.0 / 4.0, 6) in widths
    t = decomposition_table(e)
    assert t.row_count == 2
    tables = layers_tables(doc)
    assert len(tables) == 2 and tables[0].row_count == 2
    # "cut's cost": in context over alone, less one (here +100%)
    assert "+100%" in [str(c) for c in tables[0].columns[4].cells]
