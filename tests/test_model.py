"""The reconstructed model: its histogram and cut points, cuts and their errors, TVM's Relax
build against TF for the log's blocks, and the per-layer table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICK
from convbench.measure.pool import run_worker
from convbench.measure.tasks import CheckTask, LayersTask
from convbench.native.harness import RunConfig
from convbench.results.analysis import layer_table, node_layers
from convbench.results.decomposition import BETWEEN_CALLS, VM_ENTRY, cut_decomposition
from convbench.spec import ConvWorkload, SpecError, load_shapes, load_spec
from convbench.spec.model import ModelWorkload, histogram_mismatch, parse_model

SHAPES = Path(__file__).resolve().parents[1] / "shapes.yaml"

# The research log's conv histogram (26.10.2018), typed from the log, not derived.
LOG_HISTOGRAM = {
    (1, 108, 21, 32): 3,
    (1, 108, 21, 64): 35,
    (1, 108, 11, 128): 35,
    (1, 54, 6, 192): 20,
    (1, 54, 6, 256): 20,
    (1, 54, 1, 1318): 1,
}
# The log's cut points in model order, with the shapes the reconstruction gives them.
CUT_POINTS = [
    ("expand_conv1/add_1", (1, 108, 21, 64)),
    ("conv_block1/unit1/add_2", (1, 108, 21, 64)),
    ("expand_conv2/add_7", (1, 108, 11, 128)),
    ("expand_conv3/add_13", (1, 54, 6, 192)),
    ("expand_conv4/add_17", (1, 54, 6, 256)),
    ("conv2d_116/BiasAdd", (1, 54, 1, 1318)),
]


@pytest.fixture(scope="module")
def model():
    m = load_shapes(SHAPES).model
    assert m is not None, "shapes.yaml has no model section"
    return m


@pytest.fixture(scope="module")
def graph(model):
    return model.graph


def test_histogram_equals_the_logs(graph):
    assert dict(graph.histogram) == LOG_HISTOGRAM
    assert sum(graph.histogram.values()) == 114


def test_histogram_equals_the_convs_section(graph):
    assert histogram_mismatch(graph, load_spec(SHAPES)) == []
    want = Counter({ConvWorkload(c, 1).output_shape: c.count for c in load_spec(SHAPES)})
    assert dict(want) == LOG_HISTOGRAM


def test_cut_points_exist_in_order_with_their_shapes(graph):
    idx = [graph.names.index(name) for name, _ in CUT_POINTS]
    assert idx == sorted(idx)
    for name, shape in CUT_POINTS:
        assert graph.node(name).shape == shape
    assert graph.output == "conv2d_116/BiasAdd"


def test_the_logs_blocks(model, graph):
    blocks = {b.name: graph.cut(b.start, b.stop) for b in model.blocks}
    b1, b2 = blocks["block1"], blocks["block2"]
    assert (b1.input, b1.output) == ("expand_conv1/add_1", "conv_block1/unit1/add_2")
    assert (b2.input, b2.output) == ("expand_conv3/add_13", "expand_conv4/add_17")
    assert b1.input_shape == (1, 108, 21, 64) and b1.output_shape == (1, 108, 21, 64)
    assert b2.input_shape == (1, 54, 6, 192) and b2.output_shape == (1, 54, 6, 256)
    # block2 is conv_block3 (3 units of 5) and expand_conv4 (4 + 1x1 shortcut)
    assert len(b2.convs()) == 3 * 5 + 5
    assert model.partsearch == [name for name, _ in CUT_POINTS if name != "conv_block1/unit1/add_2"]


def test_a_cut_gets_the_full_models_weights(graph):
    b1 = graph.cut("expand_conv1/add_1", "conv_block1/unit1/add_2")
    full, part = graph.weights(), b1.weights()
    assert part.keys() <= full.keys() and len(part) > 0
    for k, v in part.items():
        np.testing.assert_array_equal(v, full[k])


@pytest.mark.parametrize(
    ("start", "stop", "message"),
    [
        ("expand_conv1/add_1", "no/such/node", "has no node named 'no/such/node'"),
        ("expand_conv1/add1", "expand_conv2/add_7", "did you mean 'expand_conv1/add_1'"),
        ("expand_conv2/add_7", "expand_conv1/add_1", "comes before 'expand_conv2/add_7'"),
        ("expand_conv1/add_1", "expand_conv1/add_1", "at the same place"),
        ("expand_conv1/relu1", "expand_conv1/add_1", "also reads 'stem/unit1/add'"),
    ],
)
def test_bad_cuts_are_refused_with_a_message(graph, start, stop, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        graph.cut(start, stop)


def test_a_bad_model_section_names_the_field():
    raw = {
        "name": "m",
        "input": [1, 8, 8, 1],
        "stem": {"channels": 8},
        "stages": [{"channels": 16, "expand_depth": 1, "units": -1, "depth": 1}],
        "logits": {"name": "out", "classes": 4, "kernel": [1, 8]},
    }
    with pytest.raises(SpecError, match=r"f\.yaml: model\.stages\[0\]\.units"):
        parse_model(raw, "f.yaml")
    raw["stages"][0]["units"] = 1
    raw["blocks"] = [{"name": "b", "from": "expand_conv1/add_1", "to": "nowhere"}]
    with pytest.raises(SpecError, match="has no node named 'nowhere'"):
        parse_model(raw, "f.yaml")


def test_layers_group_a_conv_with_its_epilogue(graph):
    b1 = graph.cut("expand_conv1/add_1", "conv_block1/unit1/add_2")
    layers, of = node_layers(b1)
    assert len(layers) == 6 and all(b1.node(name).kind == "conv" for name in layers)
    assert of["conv_block1/unit1/add_2"] == "conv_block1/unit1/conv6"
    assert of["conv_block1/unit1/relu1"] == "conv_block1/unit1/conv1"


def test_layer_table_refuses_a_plan_that_does_not_match(graph):
    b1 = graph.cut("expand_conv1/add_1", "conv_block1/unit1/add_2")
    raw = {
        "tvm_calls": [{"func": "fused_conv2d_add", "median_s": 1.0}],
        "tvm_whole_s": 1.0,
        "tf_ops": {},
        "tf_op_types": {},
        "tf_whole_s": 1.0,
    }
    with pytest.raises(ValueError, match="1 conv functions for 6 conv layers"):
        layer_table(b1, raw)


# --- TVM against TF --------------------------------------------------------------------------
def _check(kernel_cache, mw: ModelWorkload, unfused: bool = False) -> dict:
    paths = {"fused": str(kernel_cache.model(mw, True).path)}
    if unfused:
        paths["unfused"] = str(kernel_cache.model(mw, False).path)
    return run_worker(CheckTask(workload=mw, kernel_paths=paths, seed=0), 600)


@pytest.mark.parametrize("block", ["block1", "block2"])
def test_block_matches_tf(kernel_cache, model, block):
    b = next(b for b in model.blocks if b.name == block)
    mw = ModelWorkload(block, "block", model, b.start, b.stop, 1)
    result = _check(kernel_cache, mw, unfused=block == "block1")
    assert result["builds"].keys() == ({"fused", "unfused"} if block == "block1" else {"fused"})
    for label, r in result["builds"].items():
        assert r["rtol"] == 1e-4
        assert r["ok"], f"{block} {label}: max_rel_err {r['max_rel_err']:.3g} > 1e-4"
        # the error is a float32 rounding difference, far below the bar
        assert r["tvm_vs_f64_rel_err"] < 1e-5
    assert result["tf_vs_f64_rel_err"] < 1e-5


def test_whole_model_matches_tf(kernel_cache, model):
    mw = ModelWorkload(model.name, "model", model, None, "conv2d_116/BiasAdd", 1)
    result = _check(kernel_cache, mw)
    r = result["builds"]["fused"]
    assert r["rtol"] == 1e-3
    assert r["ok"], f"whole model: max_rel_err {r['max_rel_err']:.3g} > 1e-3"
    assert r["ref_max_abs"] > 0


def test_layers_worker_on_a_tiny_block(kernel_cache, tiny_model):
    m = load_shapes(tiny_model).model
    mw = ModelWorkload("blockA", "block", m, "expand_conv1/add_1", "conv_block1/unit1/add_2", 1)
    k = kernel_cache.model(mw, True)
    task = LayersTask(
        workload=mw,
        kernel_path=str(k.path),
        threads=1,
        cpus=[sorted(__import__("os").sched_getaffinity(0))[0]],
        seed=0,
        config=RunConfig(warmup_s=0.001, min_sample_s=0.001, samples=3),
        tf_runs=3,
    )
    raw = run_worker(task, 600)
    table = layer_table(mw.graph, raw)
    layers = [r["layer"] for r in table["rows"]]
    assert layers[:2] == ["conv_block1/unit1/conv1", "conv_block1/unit1/conv2"]
    for row in table["rows"][:2]:
        assert row["tvm_s"] > 0 and row["tf_s"] > 0 and row["tvm_funcs"] and row["tf_ops"]
    assert table["tvm_sum_s"] > 0 and table["tf_sum_s"] > 0
    # the sums are the rows', and the rows hold every call and every op exactly once
    assert table["tvm_sum_s"] == pytest.approx(sum(r["tvm_s"] for r in table["rows"]))
    assert table["tvm_sum_s"] == pytest.approx(sum(c["context_s"] for c in raw["tvm_calls"]))
    assert table["tf_sum_s"] == pytest.approx(sum(raw["tf_ops"].values()))
    assert table["tvm_sum_vs_whole"] == pytest.approx(table["tvm_sum_s"] / raw["tvm_whole_s"])
    assert table["flops_mismatch"] == []
    # three times per call: in context, alone warm, alone cold; the rows sum each
    for c in raw["tvm_calls"]:
        assert c["context_s"] > 0 and c["alone_s"] > 0 and c["cold_s"] > 0
    assert sum(r.get("tvm_alone_s", 0.0) for r in table["rows"]) == pytest.approx(
        sum(c["alone_s"] for c in raw["tvm_calls"])
    )
    # both decompositions: kernels + glue + unaccounted is the whole, with every glue item named
    entry = {**raw, **table}
    for fw in ("tvm", "tf"):
        d = cut_decomposition(entry, fw)
        assert d is not None and d["kernels_s"] > 0 and d["glue"]
        assert d["kernels_s"] + d["glue_s"] + d["unaccounted_s"] == pytest.approx(d["whole_s"])
        assert all(g["s"] >= 0 for g in d["glue"])
    assert table["tvm_kernels_s"] == raw["tvm_kernels_s"] > 0
    # TF's layers alone: each conv layer's ops with its inputs fed and its output fetched
    for row in table["rows"]:
        if row["layer"] in mw.graph and mw.graph.node(row["layer"]).kind == "conv":
            assert row["tf_alone_s"] > 0
    # each a ratio of paired runs, less one: finite, and no run took no time
    assert raw["tf_trace_cost"] > -1 and raw["tvm_clock_cost"] > -1
    names = {g["what"] for g in raw["tvm_glue"]}
    assert {"vm.builtin.alloc_tensor", BETWEEN_CALLS, VM_ENTRY} <= names
    assert raw["tvm_runs"] >= 20 and raw["tvm_vm_calls"] > len(raw["tvm_calls"])


# --- the CLI on a tiny model ------------------------------------------------------------------


def test_partsearch_writes_json_and_png(convbench, tiny_model, tmp_path):
    import json

    proc = convbench(
        "partsearch",
        "--shapes",
        str(tiny_model),
        "--threads",
        "1",
        *QUICK,
        "--paths",
        "tvm/native,tf/native-graph,tf/session,tf/kernel",
        "--json",
        str(tmp_path / "ps.json"),
        "--cache-dir",
        str(tmp_path / "cache"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "ps.json").read_text())
    png = (tmp_path / "ps.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    prefixes = [w for w in doc["workloads"] if w["kind"] != "conv"]
    assert [w["to"] for w in prefixes] == [
        "expand_conv1/add_1",
        "expand_conv2/add_3",
        "conv2d_12/BiasAdd",
    ]
    measured = {(r["workload"], r["backend"], r["path"]) for r in doc["records"]}
    for w in prefixes:
        for path in (("tvm", "native"), ("tf", "native-graph"), ("tf", "session")):
            assert (w["name"], *path) in measured
    checks = {c["workload"]: c for c in doc["checks"]}
    assert all(checks[w["name"]]["ok"] for w in prefixes)
    # each prefix has its per-layer table: the plot splits its whole into kernels and framework
    assert sorted(e["workload"] for e in doc["layers"]) == sorted(w["name"] for w in prefixes)
    assert all(e["tvm_kernels_s"] > 0 and e["tf_kernels_s"] > 0 for e in doc["layers"])
    # the whole-model prefix gets its conv time predicted from the two single convs
    pred = {p["backend"]: p for p in doc["conv_prediction"]}
    assert pred.keys() == {"tvm", "tf"}
    assert pred["tvm"]["workload"] == "to:conv2d_12/BiasAdd"
    assert pred["tvm"]["predicted_conv_s"] > 0 and pred["tvm"]["measured_s"] > 0
    # recomputed: count x median of each single conv's tvm/native, against the prefix
    counts = {w["name"]: w["count"] for w in doc["workloads"] if w["kind"] == "conv"}
    med = {(r["workload"], r["backend"], r["path"]): r["median_s"] for r in doc["records"]}
    want = sum(c * med[(name, "tvm", "native")] for name, c in counts.items())
    assert pred["tvm"]["predicted_conv_s"] == pytest.approx(want)
    measured = med[("to:conv2d_12/BiasAdd", "tvm", "native")]
    assert pred["tvm"]["measured_s"] == pytest.approx(measured)
    assert pred["tvm"]["outside_convs_share"] == pytest.approx(1 - want / measured)


def test_run_with_a_cut_measures_all_model_paths(convbench, tiny_model, tmp_path):
    import json

    from convbench.paths import MODEL_PATHS

    proc = convbench(
        "--shapes",
        str(tiny_model),
        "--threads",
        "1",
        *QUICK,
        "--no-convs",
        "--from",
        "expand_conv1/add_1",
        "--to",
        "expand_conv2/add_3",
        "--json",
        str(tmp_path / "r.json"),
        "--cache-dir",
        str(tmp_path / "cache"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [w["name"] for w in doc["workloads"]] == ["expand_conv1/add_1..expand_conv2/add_3"]
    assert {(r["backend"], r["path"]) for r in doc["records"]} == set(MODEL_PATHS)
    check = doc["checks"][0]
    assert check["ok"] and check["builds"].keys() == {"fused", "unfused"}
    (layers,) = doc["layers"]
    assert layers["tvm_sum_s"] > 0 and layers["tf_sum_s"] > 0
    assert layers["tvm_sum_s"] == pytest.approx(sum(r["tvm_s"] for r in layers["rows"]))
    assert layers["tf_sum_s"] == pytest.approx(sum(r["tf_s"] for r in layers["rows"]))
    assert "per layer" in proc.stdout and "model cuts" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "expand_conv2/add_3", "--to", "expand_conv1/add_1"], "comes before"),
        (["--from", "expand_conv1/add_1", "--to", "nowhere"], "has no node named 'nowhere'"),
        (["--from", "expand_conv1/add_1"], "--from needs --to"),
    ],
)
def test_bad_cut_on_the_command_line(convbench, tiny_model, tmp_path, args, message):
    proc = convbench("--shapes", str(tiny_model), *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_nodes_lists_the_cut_points(convbench, tmp_path):
    proc = convbench("nodes", "--shapes", str(SHAPES), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name, _ in CUT_POINTS:
        assert name in proc.stdout
