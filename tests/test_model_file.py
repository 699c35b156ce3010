"""A user's own TF model: a small Keras CNN (conv, depthwise, grouped and dilated convs, a
separate ZeroPadding, BN, ReLU/ReLU6, a residual add, pooling, dense) built here and saved as a
Keras file, an HDF5 file, a SavedModel and a frozen GraphDef; `convbench extract` reads each, the
extracted file runs, cuts by the model's own node names check against TF, and bad input is
refused with a message. Nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import QUICK

CONV_LAYERS = {"stem": "dense", "dw1": "depthwise", "grp1": "grouped", "conv2": "dense"}
CONV_LAYERS["dw_dil"] = "depthwise"
FORMATS = ("keras", "h5", "savedmodel", "graphdef")


def _build(tf):
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(1)
    inp = keras.Input((20, 16, 3), name="image")
    x = L.Conv2D(16, 3, padding="same", name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw1")(x)
    y = L.BatchNormalization(name="dw1_bn")(y)
    y = L.ReLU(name="dw1_relu")(y)
    y = L.Conv2D(16, 3, padding="same", groups=4, name="grp1")(y)
    x = L.Add(name="add1")([x, y])
    x = L.ZeroPadding2D(((1, 1), (1, 1)), name="pad2")(x)
    x = L.Conv2D(32, 3, strides=2, padding="valid", name="conv2")(x)
    x = L.DepthwiseConv2D(3, padding="same", dilation_rate=2, name="dw_dil")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(10, name="fc")(x)
    model = keras.Model(inp, out, name="tiny_cnn")
    # BN statistics that are not the identity, so that folding them matters
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c),
                    rng.normal(0, 0.1, c),
                    rng.normal(0, 0.1, c),
                    rng.uniform(0.5, 1.5, c),
                ]
            )
    return model


@pytest.fixture(scope="module")
def models(tf, tmp_path_factory) -> dict[str, Path]:
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    d = tmp_path_factory.mktemp("models")
    model = _build(tf)
    out = {"keras": d / "cnn.keras", "h5": d / "cnn.h5", "savedmodel": d / "cnn_saved"}
    model.save(out["keras"])
    model.save(out["h5"])
    model.export(out["savedmodel"], verbose=False)
    spec = tf.TensorSpec([None, 20, 16, 3], tf.float32, name="image")
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(fn)
    out["graphdef"] = d / "cnn.pb"
    out["graphdef"].write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return out


@pytest.fixture(scope="module")
def extracted(models, tmp_path_factory) -> dict[str, Path]:
    """Each format through `convbench extract -o`, in-process (the CLI's own function)."""
    from convbench.cli.extract import extract_main

    d = tmp_path_factory.mktemp("extracted")
    out = {}
    for fmt, path in models.items():
        out[fmt] = d / f"{fmt}.yaml"
        assert extract_main([str(path), "-o", str(out[fmt])]) == 0
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_extract_counts_equal_the_layers(fmt, extracted) -> None:
    doc = yaml.safe_load(extracted[fmt].read_text())
    convs = doc["convs"]
    assert sum(c["count"] for c in convs) == len(CONV_LAYERS)
    by_kind: dict[str, int] = {}
    for c in convs:
        kind = "dense" if c["groups"] == 1 else "depthwise"
        if 1 < c["groups"] < c["input"][3]:
            kind = "grouped"
        by_kind[kind] = by_kind.get(kind, 0) + c["count"]
    want: dict[str, int] = {}
    for kind in CONV_LAYERS.values():
        want[kind] = want.get(kind, 0) + 1
    assert by_kind == want
    # the separate ZeroPadding folded into the strided conv's pads, the dilated depthwise conv
    # (SpaceToBatchND, VALID conv, BatchToSpaceND in TF's graph) read back as dilation 2 SAME
    strided = next(c for c in convs if c["strides"] == [2, 2])
    assert strided["input"] == [1, 20, 16, 16] and strided["padding"] == [[1, 1], [1, 1]]
    dilated = next(c for c in convs if c["dilation"] != [1, 1])
    assert dilated["dilation"] == [2, 2] and dilated["padding"] == [[2, 2], [2, 2]]
    assert dilated["input"] == [1, 10, 8, 32]
    model = doc["model"]
    assert model["format"] == {"h5": "keras"}.get(fmt, fmt) and model["input"] == [1, 20, 16, 3]
    names = [n["name"] for n in model["nodes"]]
    assert names[0] == model["input_node"] and model["output_node"] in names
    assert any("grp1" in n and n.endswith("convolution") for n in names)


def test_extracted_convs_are_the_models(extracted, models, tf) -> None:
    """Every extracted conv's output shape is the one Keras says its layer has."""
    import keras
    from convbench.spec import ConvWorkload, load_shapes

    model = keras.models.load_model(models["keras"], compile=False)
    want = sorted(tuple(model.get_layer(n).output.shape[1:]) for n in CONV_LAYERS)
    spec = load_shapes(extracted["keras"])
    got = sorted(ConvWorkload(c, 1).output_shape[1:] for c in spec.convs for _ in range(c.count))
    assert got == want


def _node(doc: dict, suffix: str) -> str:
    return next(n["name"] for n in doc["model"]["nodes"] if n["name"].endswith(suffix))


def test_the_extracted_file_runs_as_it_is(convbench, extracted, tmp_path) -> None:
    """Convs and the whole model, both frameworks, every check ok, a per-layer table with
    matching FLOPs, and every function of the TVM build under a stated schedule."""
    proc = convbench(
        "--shapes",
        str(extracted["keras"]),
        "--threads",
        "1",
        *QUICK,
        "--paths",
        "tvm/native,tvm/evaluator,tf/kernel,tf/native-graph,tf/session,tf/function,tf/eager",
        "--json",
        str(tmp_path / "run.json"),
        "--cache-dir",
        str(tmp_path / "cache"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["errors"] == []
    assert doc["checks"] and all(c["ok"] for c in doc["checks"])
    model_checks = [c for c in doc["checks"] if c.get("kind") == "model"]
    assert len(model_checks) == 1 and model_checks[0]["tf_vs_f64_rel_err"] < 1e-5
    kinds = {w["name"]: w.get("conv_kind") for w in doc["workloads"] if w["kind"] == "conv"}
    assert sorted(kinds.values()) == ["dense", "dense", "depthwise", "depthwise", "grouped"]
    measured = {(r["workload"], r["backend"], r["path"]) for r in doc["records"]}
    for path in (("tvm", "native"), ("tf", "native-graph"), ("tf", "session"), ("tf", "function")):
        assert ("cnn", *path) in measured
    assert ("cnn", "tf", "eager") not in measured  # no op-by-op form: said so, not run
    assert any("tf/eager is not run on cnn" in w for w in doc["warnings"])
    schedules = next(k["schedules"] for k in doc["kernels"] if k.get("schedules"))
    assert not any(v.startswith("default") for v in schedules.values()), schedules
    assert sum(v in ("conv", "depthwise") for v in schedules.values()) == len(CONV_LAYERS)
    (table,) = doc["layers"]
    assert table["flops_mismatch"] == []
    conv_rows = [r for r in table["rows"] if r["tvm_flops"]]
    assert len(conv_rows) == len(CONV_LAYERS)
    assert all(r["tvm_flops"] == r["tf_flops"] for r in conv_rows)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_cut_of_each_format_checks_ok(fmt, convbench, extracted, tmp_path) -> None:
    doc = yaml.safe_load(extracted[fmt].read_text())
    start, stop = _node(doc, "stem_relu_1/Relu6"), _node(doc, "conv2_1/BiasAdd")
    proc = convbench(
        "--shapes",
        str(extracted[fmt]),
        "--no-convs",
        "--no-layers",
        "--from",
        start,
        "--to",
        stop,
        "--threads",
        "1",
        "--batch",
        "2",
        *QUICK,
        "--paths",
        "tvm/native,tf/native-graph",
        "--json",
        str(tmp_path / "cut.json"),
        "--cache-dir",
        str(tmp_path / "cache"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = json.loads((tmp_path / "cut.json").read_text())
    (check,) = run["checks"]
    assert check["ok"] and check["batch"] == 2, check
    (w,) = [w for w in run["workloads"] if w["kind"] != "conv"]
    assert w["input_shape"] == [2, 20, 16, 16] and w["output_shape"] == [2, 10, 8, 32]
    assert {(r["backend"], r["path"]) for r in run["records"]} == {
        ("tvm", "native"),
        ("tf", "native-graph"),
    }


def test_nodes_lists_the_models_own_names(convbench, extracted, tmp_path) -> None:
    proc = convbench("nodes", "--shapes", str(extracted["graphdef"]), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "tiny_cnn_1/dw1_1/depthwise" in proc.stdout.replace("│", " ")
    assert "5 convs" in proc.stdout


# --- bad input --------------------------------------------------------------------------------
def _refused(proc, *pieces: str) -> None:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = " ".join((proc.stdout + proc.stderr).split())
    assert "Traceback" not in text, text
    for piece in pieces:
        assert piece in text, text


def test_extract_refuses_what_is_not_a_model(convbench, models, tmp_path) -> None:
    text = tmp_path / "notes.pb"
    text.write_text("this is not a graph\n" * 10)
    _refused(convbench("extract", str(text), cwd=tmp_path), "not a frozen GraphDef")
    truncated = tmp_path / "half.pb"
    data = models["graphdef"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    _refused(convbench("extract", str(truncated), cwd=tmp_path), "not a frozen GraphDef")
    _refused(
        convbench("extract", str(tmp_path / "missing.keras"), cwd=tmp_path),
        "no such file or directory",
    )
    other = tmp_path / "weights.npz"
    other.write_bytes(b"PK")
    _refused(convbench("extract", str(other), cwd=tmp_path), "not a model convbench reads")
    _refused(
        convbench("extract", str(models["savedmodel"] / "saved_model.pb"), cwd=tmp_path),
        "give its directory",
    )
    out = tmp_path / "never.yaml"
    _refused(convbench("extract", str(text), "-o", str(out), cwd=tmp_path))
    assert not out.exists()  # nothing half-written


def test_unknown_dimensions_need_input_shape(convbench, tf, tmp_path) -> None:
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="x")
        w = tf.constant(np.ones((3, 3, 3, 8), np.float32))
        tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"), name="y")
    pb = tmp_path / "dynamic.pb"
    pb.write_bytes(g.as_graph_def().SerializeToString())
    _refused(convbench("extract", str(pb), cwd=tmp_path), "unknown dimensions", "--input-shape")
    proc = convbench("extract", str(pb), "--input-shape", "12,10,3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(proc.stdout)
    assert doc["convs"][0]["input"] == [1, 12, 10, 3] and doc["model"]["input"] == [1, 12, 10, 3]


def test_bad_cuts_are_refused_with_the_models_names(convbench, extracted, tmp_path) -> None:
    path = str(extracted["graphdef"])
    doc = yaml.safe_load(extracted["graphdef"].read_text())
    relu6, add = _node(doc, "stem_relu_1/Relu6"), _node(doc, "add1_1/Add")
    dw = _node(doc, "dw1_1/depthwise")
    base = ("--shapes", path, "--no-convs", "--threads", "1", *QUICK)
    _refused(
        convbench(*base, "--from", relu6, "--to", add.replace("add1", "add7"), cwd=tmp_path),
        "has no node named",
        "did you mean",
    )
    _refused(convbench(*base, "--from", add, "--to", relu6, cwd=tmp_path), "comes before")
    # the add also reads the stem's output, computed before the depthwise conv
    _refused(convbench(*base, "--from", dw, "--to", add, cwd=tmp_path), "computed before")


def test_a_model_too_large_is_refused_before_any_build(convbench, extracted, tmp_path) -> None:
    proc = convbench(
        "--shapes",
        str(extracted["keras"]),
        "--no-convs",
        "--batch",
        "1000",
        "--max-memory",
        "1M",
        "--json",
        str(tmp_path / "r.json"),
        "--cache-dir",
        str(tmp_path / "cache"),
        cwd=tmp_path,
    )
    _refused(proc, "more than the limit")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_changed_model_file_is_named(convbench, extracted, models, tmp_path) -> None:
    import shutil

    copy = tmp_path / "cnn.pb"
    shutil.copy(models["graphdef"], copy)
    shapes = tmp_path / "cnn.yaml"
    assert convbench("extract", str(copy), "-o", str(shapes), cwd=tmp_path).returncode == 0
    copy.write_bytes(copy.read_bytes() + b"\n")  # still parses as a GraphDef
    proc = convbench(
        "--shapes",
        str(shapes),
        "--no-convs",
        "--threads",
        "1",
        *QUICK,
        "--paths",
        "tvm/native",
        "--json",
        str(tmp_path / "r.json"),
        "--cache-dir",
        str(tmp_path / "cache"),
        cwd=tmp_path,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "changed since its node table was written" in text, text
    assert "Traceback" not in text


def test_an_op_tflite_cannot_express_is_named(convbench, tf, tmp_path) -> None:
    """A graph op with no TFLite builtin: its cut's TVM build fails naming the op, TF's paths and
    the single convs still run."""
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 4], name="x")
        w = tf.constant(np.ones((3, 3, 4, 8), np.float32) / 36)
        y = tf.nn.conv2d(x, w, 1, "SAME", name="conv")
        tf.math.cumprod(y, axis=3, name="running_product")
    pb = tmp_path / "odd.pb"
    pb.write_bytes(g.as_graph_def().SerializeToString())
    shapes = tmp_path / "odd.yaml"
    assert convbench("extract", str(pb), "-o", str(shapes), cwd=tmp_path).returncode == 0
    proc = convbench(
        "--shapes",
        str(shapes),
        "--threads",
        "1",
        *QUICK,
        "--paths",
        "tvm/native,tf/native-graph",
        "--json",
        str(tmp_path / "r.json"),
        "--cache-dir",
        str(tmp_path / "cache"),
        cwd=tmp_path,
    )
    doc = json.loads((tmp_path / "r.json").read_text())
    messages = " ".join(e["error"] for e in doc["errors"])
    assert "Cumprod (node 'running_product')" in messages, messages
    measured = {(r["workload"], r["backend"], r["path"]) for r in doc["records"]}
    assert ("odd", "tf", "native-graph") in measured  # the rest of the run went on
    conv = next(w["name"] for w in doc["workloads"] if w["kind"] == "conv")
    assert (conv, "tvm", "native") in measured
    assert proc.returncode != 0  # a failed build is an error of the run


# --- the stand-in as a file ---------------------------------------------------------------------
def test_export_model_round_trip(convbench, tiny_model, tmp_path) -> None:
    """The YAML stand-in written as a frozen GraphDef and read back by extract: the same convs,
    the same cut points, and its block and whole model check against TF through the file path
    (the logits conv's 10 channels padded to 16 and sliced, as the YAML build does)."""
    from convbench.spec import ConvWorkload, load_shapes

    pb, shapes = tmp_path / "standin.pb", tmp_path / "standin.yaml"
    proc = convbench(
        "export-model",
        "--shapes",
        str(tiny_model),
        "-o",
        str(pb),
        "--extract",
        str(shapes),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    yaml_model = load_shapes(tiny_model).model
    file_model = load_shapes(shapes).model
    assert file_model is not None and yaml_model is not None
    assert file_model.name == yaml_model.name and file_model.blocks == yaml_model.blocks
    names = set(file_model.graph.names)
    assert set(yaml_model.partsearch) <= names
    got = sorted(
        ConvWorkload(n.conv, 1).problem()["weight_shape"] for n in file_model.graph.convs()
    )
    want = sorted(
        ConvWorkload(n.conv, 1).problem()["weight_shape"] for n in yaml_model.graph.convs()
    )
    assert got == want
    proc = convbench(
        "--shapes",
        str(shapes),
        "--no-convs",
        "--threads",
        "1",
        *QUICK,
        "--paths",
        "tvm/native,tf/native-graph",
        "--json",
        str(tmp_path / "r.json"),
        "--cache-dir",
        str(tmp_path / "cache"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "r.json").read_text())
    checks = {c["workload"]: c for c in doc["checks"]}
    assert set(checks) == {"blockA", yaml_model.name}
    assert all(c["ok"] for c in checks.values()), checks
    assert all(t["flops_mismatch"] == [] for t in doc["layers"])
    whole = next(
        k["schedules"] for k in doc["kernels"] if k.get("schedules") and k["workload"] != "blockA"
    )
    assert any("strided_slice" in f for f in whole), whole  # the padded logits conv


def test_tune_sees_the_fused_functions_of_a_model_file(extracted) -> None:
    """`convbench tune --model` on a model file tunes the functions a run builds: the cut
    imported the same way, through TFLite, in a worker."""
    from convbench.spec import load_shapes
    from convbench.tune import model_tasks

    spec = load_shapes(extracted["graphdef"]).model
    tasks = model_tasks(spec, "all", 1)
    names = [name for name, _ in tasks.values()]
    assert sum("conv2d" in n for n in names) == len(CONV_LAYERS), names
    assert any("matmul" in n or "mean" in n for n in names), names


def test_a_check_that_cannot_fail_is_called_out(convbench, tf, tmp_path) -> None:
    """A softmax over vanishing logits is the same for any build: the run says its check
    cannot tell, instead of letting it pass as evidence. The logits before it check as usual."""
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6, 6, 4], name="x")
        w = tf.constant(np.random.default_rng(0).normal(0, 1e-9, (3, 3, 4, 8)).astype(np.float32))
        logits = tf.reduce_mean(tf.nn.conv2d(x, w, 1, "SAME"), axis=[1, 2], name="logits")
        tf.nn.softmax(logits, name="probs")
    pb = tmp_path / "flat.pb"
    pb.write_bytes(g.as_graph_def().SerializeToString())
    shapes = tmp_path / "flat.yaml"
    assert convbench("extract", str(pb), "-o", str(shapes), cwd=tmp_path).returncode == 0
    run = ("--shapes", str(shapes), "--no-convs", "--no-layers", "--threads", "1", *QUICK)
    run += ("--paths", "tvm/native", "--cache-dir", str(tmp_path / "cache"))
    proc = convbench(*run, "--json", str(tmp_path / "a.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "a.json").read_text())
    (check,) = doc["checks"]
    assert check["degenerate_output"] and check["output_spread"] < 1e-3
    assert any("cannot tell a wrong build from a right one" in w for w in doc["warnings"])
    proc = convbench(*run, "--to", "logits", "--json", str(tmp_path / "b.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (check,) = json.loads((tmp_path / "b.json").read_text())["checks"]
    assert check["ok"] and "degenerate_output" not in check and check["output_spread"] > 0.1
