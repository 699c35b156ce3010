"""A user's TensorFlow model file, read the way TF runs it: loaded (frozen GraphDef, SavedModel,
Keras), its variables frozen to constants in a concrete function, its input given a static
shape, then read op by op. From that graph come the node table and the convs of
`convbench extract`, the cut between two named nodes that both frameworks run, and (through TF's
own TFLite converter, builtin ops only) the flatbuffer TVM's Relax frontend imports.

Every problem with the file (not a model, truncated, several inputs, unknown dimensions, an op
the converter cannot express) raises SpecError with a message that names it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..spec.errors import SpecError, did_you_mean, quote
from ..spec.model_file import ModelFileSpec, file_digest, model_format

__all__ = [
    "CONV_OPS",
    "FrozenModel",
    "cut_graph_def",
    "extract_section",
    "float64_graph_def",
    "import_cut",
    "load_model",
    "load_spec_model",
    "pruned_function",
    "to_tflite",
]

CONV_OPS = ("Conv2D", "DepthwiseConv2dNative")
# Ops that compute nothing from the input: never nodes of the table, never cut points.
_STATIC = {"Const", "NoOp", "VarHandleOp", "ReadVariableOp"}


@dataclass
class FrozenModel:
    """A model's frozen graph with a static input: `graph_def` (a tf GraphDef), the input and
    output node names, the input's shape at the batch it was made for."""

    graph_def: Any
    input: str
    output: str
    input_shape: tuple[int, ...]


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _freeze(tf: Any, fn: Any) -> tuple[Any, str, str]:
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    # aggressive_inlining: function calls (Keras wraps a grouped conv in one) inlined, so that
    # every op is a node of the graph
    frozen = convert_variables_to_constants_v2(fn, aggressive_inlining=True)
    inputs = [t for t in frozen.inputs if t.dtype != tf.resource]
    if len(inputs) != 1:
        raise SpecError(f"the model has {len(inputs)} inputs; convbench reads single-input models")
    if len(frozen.outputs) != 1:
        names = ", ".join(t.op.name for t in frozen.outputs)
        raise SpecError(
            f"the model has {len(frozen.outputs)} outputs ({names}); convbench reads "
            "single-output models (cut to one of them with --output NODE)"
        )
    gd = _inline_calls(tf, frozen.graph.as_graph_def())
    return gd, inputs[0].op.name, frozen.outputs[0].op.name


_CALLS = ("PartitionedCall", "StatefulPartitionedCall")


def _output_offsets(op_type: str, node: Any) -> dict[str, int]:
    """{output arg name: its first flat output index} of an op (args with number_attr span that
    many outputs)."""
    from tensorflow.python.framework import op_def_registry

    op_def = op_def_registry.get(op_type)
    out, k = {}, 0
    for arg in op_def.output_arg if op_def is not None else ():
        out[arg.name] = k
        if arg.number_attr:
            k += node.attr[arg.number_attr].i
        elif arg.type_list_attr:
            k += len(node.attr[arg.type_list_attr].list.type)
        else:
            k += 1
    return out


def _inline_calls(tf: Any, gd: Any) -> Any:
    """Function calls (PartitionedCall, StatefulPartitionedCall) replaced by their bodies, named
    `<call>/<node>`. Grappler will not inline a call marked for XLA, and Keras compiles its
    grouped conv that way; the ops inside are plain TF ops that run without XLA."""
    funcs = {f.signature.name: f for f in gd.library.function}
    for _ in range(8):  # nested calls, a few levels
        calls = [n for n in gd.node if n.op in _CALLS and n.attr["f"].func.name in funcs]
        if not calls:
            return gd
        out = tf.compat.v1.GraphDef()
        out.versions.CopyFrom(gd.versions)
        out.library.CopyFrom(gd.library)
        rename: dict[str, str] = {}  # "call:k" -> tensor
        for call in calls:
            f = funcs[call.attr["f"].func.name]
            data_in = [i for i in call.input if not i.startswith("^")]
            args = {a.name: data_in[i] for i, a in enumerate(f.signature.input_arg)}
            inner = {nd.name: nd for nd in f.node_def}

            def tensor(ref: str, call=call, args=args, inner=inner) -> str:
                if ref in args:
                    return args[ref]
                parts = ref.split(":")
                node = inner[parts[0]]
                if len(parts) == 1:
                    return f"{call.name}/{parts[0]}"
                idx = _output_offsets(node.op, node).get(parts[1], 0) + int(parts[2])
                return f"{call.name}/{parts[0]}" + (f":{idx}" if idx else "")

            for nd in f.node_def:
                new = out.node.add()
                new.CopyFrom(nd)
                new.name = f"{call.name}/{nd.name}"
                new.device = ""
                del new.input[:]
                new.input.extend(tensor(i) for i in nd.input if not i.startswith("^"))
            for k, arg in enumerate(f.signature.output_arg):
                rename[f"{call.name}:{k}"] = tensor(f.ret[arg.name])
            rename[call.name] = rename[f"{call.name}:0"]
        called = {c.name for c in calls}
        for n in gd.node:
            if n.name in called:
                continue
            new = out.node.add()
            new.CopyFrom(n)
            ins = [
                rename.get(i, i)
                for i in n.input
                if not (i.startswith("^") and i[1:].split(":")[0] in called)
            ]
            del new.input[:]
            new.input.extend(ins)
        gd = out
    return gd


def _signature_shape(spec_shape: Any, input_shape: tuple[int, ...] | None) -> list[int | None]:
    dims = list(spec_shape)
    if input_shape is not None:
        if len(input_shape) != len(dims) - 1:
            raise SpecError(
                f"--input-shape has {len(input_shape)} dimensions, the model's input has "
                f"{len(dims) - 1} besides the batch ({_shape_text(dims)})"
            )
        return [None, *input_shape]
    return [None, *dims[1:]]


def _shape_text(dims: Any) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _load_keras(tf: Any, path: Path, input_shape: tuple[int, ...] | None) -> tuple[Any, str, str]:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - keras raises many kinds for a bad file
        raise SpecError(f"{path}: Keras cannot load it: {_first_line(e)}") from None
    if len(model.inputs) != 1:
        raise SpecError(f"{path}: the model has {len(model.inputs)} inputs; convbench reads one")
    shape = _signature_shape(model.inputs[0].shape, input_shape)
    spec = tf.TensorSpec(shape, tf.float32, name=model.inputs[0].name.split(":")[0])
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return _freeze(tf, fn)


def _load_saved_model(
    tf: Any, path: Path, input_shape: tuple[int, ...] | None
) -> tuple[Any, str, str]:
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # noqa: BLE001
        raise SpecError(f"{path}: TF cannot load this SavedModel: {_first_line(e)}") from None
    sigs = dict(getattr(loaded, "signatures", {}) or {})
    if not sigs:
        raise SpecError(f"{path}: the SavedModel has no signature to call")
    key = next((k for k in ("serving_default", "serve") if k in sigs), sorted(sigs)[0])
    sig = sigs[key]
    named = dict(sig.structured_input_signature[1])
    specs = list(named.values()) or list(sig.structured_input_signature[0])
    if len(specs) != 1:
        raise SpecError(f"{path}: signature {key!r} has {len(specs)} inputs; convbench reads one")
    arg = next(iter(named), None)
    # Always the same wrapper, with or without --input-shape: node names do not depend on it.
    shape = _signature_shape(specs[0].shape, input_shape)
    fn = tf.function(lambda x: sig(**{arg: x}) if arg else sig(x)).get_concrete_function(
        tf.TensorSpec(shape, specs[0].dtype, name=arg or specs[0].name)
    )
    return _freeze(tf, fn)


def _load_graph_def(tf: Any, path: Path) -> tuple[Any, str, str]:
    gd = tf.compat.v1.GraphDef()
    try:
        gd.ParseFromString(path.read_bytes())
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise SpecError(
            f"{path}: not a frozen GraphDef (the bytes do not parse as one; truncated?)"
        ) from None
    if not gd.node:
        raise SpecError(f"{path}: not a frozen GraphDef (no nodes)")
    placeholders = [n.name for n in gd.node if n.op == "Placeholder"]
    if len(placeholders) != 1:
        raise SpecError(
            f"{path}: the graph has {len(placeholders)} Placeholder inputs "
            f"({', '.join(placeholders) or 'none'}); convbench reads single-input graphs"
        )
    if any(n.op in ("VariableV2", "VarHandleOp") for n in gd.node):
        raise SpecError(f"{path}: the graph still has variables: freeze it first")
    gd = _inline_calls(tf, gd)
    consumed = {i.split(":")[0].lstrip("^") for n in gd.node for i in n.input}
    live = _live_from(gd, placeholders[0])
    sinks = [n.name for n in gd.node if n.name in live and n.name not in consumed]
    if len(sinks) != 1:
        raise SpecError(
            f"{path}: the graph has {len(sinks)} outputs ({', '.join(sinks[:8])}); give the one "
            "to read with --output NODE"
        )
    return gd, placeholders[0], sinks[0]


def _live_from(gd: Any, start: str) -> set[str]:
    """Names of the nodes that depend on `start` (data edges), `start` included."""
    consumers: dict[str, list[str]] = {}
    for n in gd.node:
        for i in n.input:
            if not i.startswith("^"):
                consumers.setdefault(i.split(":")[0], []).append(n.name)
    live, stack = set(), [start]
    while stack:
        v = stack.pop()
        if v not in live:
            live.add(v)
            stack.extend(consumers.get(v, ()))
    return live


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def load_model(
    path: Path | str,
    input_shape: tuple[int, ...] | None = None,
    batch: int = 1,
    output: str | None = None,
    fmt: str | None = None,
) -> FrozenModel:
    """The model at `path` frozen, its input `[batch, *input_shape]` (input_shape: the input's
    dimensions after the batch, for a model whose own are unknown)."""
    tf = _tf()
    path = Path(path)
    fmt = fmt or model_format(path)
    if fmt == "keras":
        gd, inp, out = _load_keras(tf, path, input_shape)
    elif fmt == "savedmodel":
        gd, inp, out = _load_saved_model(tf, path, input_shape)
    else:
        gd, inp, out = _load_graph_def(tf, path)
    if output is not None:
        if not any(n.name == output for n in gd.node):
            raise SpecError(_unknown_node(output, [n.name for n in gd.node]))
        out = output
    node = next(n for n in gd.node if n.name == inp)
    dims = [d.size for d in node.attr["shape"].shape.dim] if "shape" in node.attr else []
    if node.attr["shape"].shape.unknown_rank and input_shape is None:
        raise SpecError(f"input {quote(inp)} has an unknown rank: give --input-shape H,W,C")
    if input_shape is not None:
        dims = [-1, *input_shape]
    if len(dims) < 2:
        raise SpecError(f"input {quote(inp)} has shape {dims}: expected a batch and more")
    unknown = [i for i, d in enumerate(dims[1:], start=1) if d is None or d < 0]
    if unknown:
        raise SpecError(
            f"input {quote(inp)} has unknown dimensions {_shape_text([None] + dims[1:])} "
            "(besides the batch): give them with --input-shape, e.g. --input-shape "
            + ",".join("224" if d is None or d < 0 else str(d) for d in dims[1:])
        )
    shape = (batch, *[int(d) for d in dims[1:]])
    gd = _with_input_shape(tf, gd, inp, shape)
    return FrozenModel(gd, inp, out, shape)


def _with_input_shape(tf: Any, gd: Any, inp: str, shape: tuple[int, ...]) -> Any:
    """The graph with the input's shape static, and without control edges: a frozen inference
    graph orders nothing by them (they tie ops to variable reads and function calls that are
    gone), and a cut must not pull in what they point at."""
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(gd)
    for n in out.node:
        if n.name == inp:
            n.attr["shape"].shape.CopyFrom(tf.TensorShape(list(shape)).as_proto())
        data = [i for i in n.input if not i.startswith("^")]
        if len(data) != len(n.input):
            del n.input[:]
            n.input.extend(data)
    return out


def _graph(tf: Any, gd: Any) -> Any:
    g = tf.Graph()
    with g.as_default():
        try:
            tf.graph_util.import_graph_def(gd, name="")
        except Exception as e:  # noqa: BLE001 - TF's ValueError / InvalidArgumentError
            raise SpecError(f"TF cannot import the graph: {_first_line(e)}") from None
    return g


def _unknown_node(name: str, names: list[str]) -> str:
    return f"the model has no node named {quote(name)}{did_you_mean(name, names)}"


# ------------------------------------------------------------------------------------------------
# The node table and the convs
# ------------------------------------------------------------------------------------------------
def _static_value(tf: Any, t: Any) -> np.ndarray | None:
    try:
        v = tf.get_static_value(t)
    except Exception:  # noqa: BLE001
        return None
    return None if v is None else np.asarray(v)


def _weights_read(op: Any, live: set[str]) -> int:
    """Elements of the float constants `op` reads (through Identity chains)."""
    n = 0
    for t in op.inputs:
        src = t.op
        while src.type == "Identity" and src.inputs and src.name not in live:
            src = src.inputs[0].op
        if src.name not in live and src.type == "Const" and t.dtype.is_floating:
            n += int(np.prod(t.shape.as_list() or [1]))
    return n


def _shape(t: Any, name: str) -> list[int]:
    dims = t.shape.as_list() if t.shape.rank is not None else None
    if dims is None or any(d is None for d in dims):
        raise SpecError(
            f"node {quote(name)}: TF cannot tell its output shape ({t.shape}) at a static input "
            "shape; convbench needs every shape known"
        )
    return [int(d) for d in dims]


def _conv_fields(tf: Any, op: Any) -> dict[str, Any] | None:
    """What a Conv2D / DepthwiseConv2dNative computes, its padding folded from a Pad node before
    it and its dilation from a SpaceToBatchND / BatchToSpaceND pair around it."""
    fmt = op.get_attr("data_format").decode() if "data_format" in op.node_def.attr else "NHWC"
    if fmt != "NHWC":
        raise SpecError(f"node {quote(op.name)} ({op.type}): data_format {fmt}, only NHWC is read")
    x, f = op.inputs[0], op.inputs[1]
    xs, fs = _shape(x, op.name), _shape(f, op.name)
    if len(xs) != 4 or len(fs) != 4:
        return None
    kh, kw, fi, fo = fs
    c = xs[3]
    if op.type == "DepthwiseConv2dNative":
        groups, out_channels = c, c * fo
    else:
        if c % fi:
            raise SpecError(f"node {quote(op.name)}: {c} input channels, filter has {fi}")
        groups, out_channels = c // fi, fo
    strides = [int(v) for v in op.get_attr("strides")]
    dil = [int(v) for v in op.get_attr("dilations")]
    padding = op.get_attr("padding").decode()
    pads: Any = padding
    if padding == "EXPLICIT":
        e = [int(v) for v in op.get_attr("explicit_paddings")]
        pads = [[e[2], e[3]], [e[4], e[5]]]
    fields: dict[str, Any] = {
        "input": [1, *xs[1:]],
        "kernel": [kh, kw],
        "out_channels": out_channels,
        "strides": strides[1:3],
        "padding": pads,
        "dilation": dil[1:3],
        "groups": groups,
    }
    src = x.op
    if src.type == "SpaceToBatchND" and padding == "VALID" and strides[1:3] == [1, 1]:
        block = _static_value(tf, src.inputs[1])
        spad = _static_value(tf, src.inputs[2])
        b2s = [c_ for c_ in op.outputs[0].consumers() if c_.type == "BatchToSpaceND"]
        if block is not None and spad is not None and len(b2s) == 1:
            crops = _static_value(tf, b2s[0].inputs[2])
            if crops is not None and block.shape == (2,):
                inner = _shape(src.inputs[0], op.name)
                fields["input"] = [1, *inner[1:]]
                fields["dilation"] = [int(block[0]), int(block[1])]
                fields["padding"] = [
                    [int(spad[0][0]), int(spad[0][1]) - int(crops[0][1])],
                    [int(spad[1][0]), int(spad[1][1]) - int(crops[1][1])],
                ]
                return fields
    if src.type in ("Pad", "PadV2"):
        p = _static_value(tf, src.inputs[1])
        value = _static_value(tf, src.inputs[2]) if src.type == "PadV2" else np.float32(0)
        if (
            p is not None
            and p.shape == (4, 2)
            and not p[0].any()
            and not p[3].any()
            and value is not None
            and float(value) == 0.0
        ):
            inner = _shape(src.inputs[0], op.name)
            own = _own_pads(fields, xs)
            fields["input"] = [1, *inner[1:]]
            fields["padding"] = [
                [int(p[1][0]) + own[0][0], int(p[1][1]) + own[0][1]],
                [int(p[2][0]) + own[1][0], int(p[2][1]) + own[1][1]],
            ]
    return fields


def _own_pads(fields: dict[str, Any], xs: list[int]) -> list[list[int]]:
    """The conv's own pads on its (already padded) input: TF's SAME rule, VALID, or explicit."""
    from ..spec.conv import ConvSpec

    spec = ConvSpec(name="c", count=1, **{**fields, "input": [1, *xs[1:]]})
    return [list(p) for p in spec.pads]


def node_table(frozen: FrozenModel) -> tuple[list[dict[str, Any]], list[str]]:
    """The nodes that compute from the input, in execution order: name, op, the table's nodes it
    reads, its output shape (at the frozen model's batch), the constants it reads and, for a
    conv, what it computes. Also the ops TF could not say a conv for (named, skipped)."""
    tf = _tf()
    g = _graph(tf, frozen.graph_def)
    live = _live_from(frozen.graph_def, frozen.input)
    needed = _needed_for(frozen.graph_def, frozen.output)
    order = [op for op in g.get_operations() if op.name in live and op.name in needed]
    order = _topological(order, live)
    table: list[dict[str, Any]] = []
    skipped: list[str] = []
    for op in order:
        if op.type in _STATIC:
            continue
        if not op.outputs:
            continue
        entry: dict[str, Any] = {
            "name": op.name,
            "op": "Placeholder" if op.name == frozen.input else op.type,
            "inputs": list(
                dict.fromkeys(t.op.name for t in op.inputs if t.op.name in live and t.op.name)
            ),
            "shape": _shape(op.outputs[0], op.name),
        }
        w = _weights_read(op, live)
        if w:
            entry["weights"] = w
        if op.type in CONV_OPS:
            fields = _conv_fields(tf, op)
            if fields is None:
                skipped.append(f"{op.name} ({op.type})")
            else:
                entry["conv"] = fields
        table.append(entry)
    return table, skipped


def _needed_for(gd: Any, output: str) -> set[str]:
    by_name = {n.name: n for n in gd.node}
    need, stack = set(), [output]
    while stack:
        v = stack.pop()
        if v in need or v not in by_name:
            continue
        need.add(v)
        stack.extend(i.split(":")[0].lstrip("^") for i in by_name[v].input)
    return need


def _topological(ops: list[Any], live: set[str]) -> list[Any]:
    names = {op.name for op in ops}
    done: set[str] = set()
    out: list[Any] = []
    pending = list(ops)
    while pending:
        rest = []
        for op in pending:
            deps = {t.op.name for t in op.inputs if t.op.name in names}
            if deps <= done:
                out.append(op)
                done.add(op.name)
            else:
                rest.append(op)
        if len(rest) == len(pending):
            raise SpecError(f"the graph has a cycle through {quote(rest[0].name)}")
        pending = rest
    return out


def _entry_name(f: dict[str, Any]) -> str:
    _, h, w, c = f["input"]
    kh, kw = f["kernel"]
    name = f"conv_{h}x{w}x{c}_k{kh}x{kw}_o{f['out_channels']}"
    if f["strides"] != [1, 1]:
        name += f"_s{f['strides'][0]}x{f['strides'][1]}"
    if f["dilation"] != [1, 1]:
        name += f"_d{f['dilation'][0]}x{f['dilation'][1]}"
    if f["groups"] != 1:
        name += "_dw" if f["groups"] == c else f"_g{f['groups']}"
    if not isinstance(f["padding"], str):
        (a, b), (c_, d) = f["padding"]
        name += f"_p{a}{b}{c_}{d}"
    elif f["padding"] == "VALID":
        name += "_valid"
    return name


def extract_section(
    path: Path | str,
    input_shape: tuple[int, ...] | None = None,
    output: str | None = None,
    shapes_dir: Path | None = None,
    name: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """(convs, model section, notes) of a shapes file for the model at `path`: every conv with
    its count, and the section that refers to the file (relative to `shapes_dir`)."""
    path = Path(path)
    fmt = model_format(path)
    frozen = load_model(path, input_shape, 1, output, fmt)
    table, skipped = node_table(frozen)
    notes = [f"{s}: not a 4-D conv; left out of the convs" for s in skipped]
    convs: dict[str, dict[str, Any]] = {}
    for n in table:
        f = n.get("conv")
        if f is None:
            continue
        key = _entry_name(f)
        entry = convs.get(key)
        if entry is None:
            convs[key] = {"name": key, **f, "count": 1, "note": f"first at node {n['name']}"}
        else:
            entry["count"] += 1
    where = path.resolve()
    if shapes_dir is not None:
        try:
            where = Path(os.path.relpath(where, shapes_dir.resolve()))
        except ValueError:  # another drive
            pass
    stem = name or "".join(c if c.isalnum() or c in "_.-" else "_" for c in path.stem) or "model"
    section = {
        "name": stem[:128],
        "file": str(where),
        "format": fmt,
        "digest": file_digest(path),
        "input": [1, *frozen.input_shape[1:]],
        "input_node": frozen.input,
        "output_node": frozen.output,
        "blocks": [],
        "partsearch": [],
        "nodes": table,
    }
    return list(convs.values()), section, notes


# ------------------------------------------------------------------------------------------------
# A cut, as both frameworks run it
# ------------------------------------------------------------------------------------------------
def load_spec_model(spec: ModelFileSpec, batch: int) -> FrozenModel:
    """The model of a shapes file's section at `batch`, after checking the file is the one the
    table was read from."""
    path = spec.path
    if not path.exists():
        raise SpecError(f"model {quote(spec.name)}: {path} does not exist")
    if file_digest(path) != spec.digest:
        raise SpecError(
            f"model {quote(spec.name)}: {path} changed since its node table was written "
            "(digest differs): run `convbench extract` again"
        )
    inner = tuple(spec.input[1:])
    return load_model(path, inner, batch, spec.output_node, spec.format)


def cut_graph_def(frozen: FrozenModel, start: str | None, stop: str, start_shape: tuple) -> Any:
    """The GraphDef computing `stop` from `start` (None: the model's input): `start` replaced by a
    float32 Placeholder of that name and shape, everything `stop` does not need dropped."""
    tf = _tf()
    gd = tf.compat.v1.GraphDef()
    gd.CopyFrom(frozen.graph_def)
    names = [n.name for n in gd.node]
    for n in (start, stop):
        if n is not None and n not in names:
            raise SpecError(_unknown_node(n, names))
    if start is not None and start != frozen.input:
        for n in gd.node:
            if n.name == start:
                n.Clear()
                n.name = start
                n.op = "Placeholder"
                n.attr["dtype"].type = tf.float32.as_datatype_enum
                n.attr["shape"].shape.CopyFrom(tf.TensorShape(list(start_shape)).as_proto())
            else:  # a consumer of another output of the replaced node
                for src in n.input:
                    if src.startswith(start + ":") and src != start + ":0":
                        raise SpecError(
                            f"node {quote(n.name)} reads output {src} of {quote(start)}: a cut "
                            "starts from a node's first output only"
                        )
    sub = tf.compat.v1.graph_util.extract_sub_graph(gd, [stop])
    inp = start or frozen.input
    if start is not None and start != frozen.input:
        if any(n.name == frozen.input for n in sub.node):
            raise SpecError(
                f"cannot cut from {quote(start)} to {quote(stop)}: a node between reads a tensor "
                f"computed before {quote(start)}"
            )
    if not any(n.name == inp for n in sub.node):
        raise SpecError(f"cannot cut from {quote(inp)} to {quote(stop)}: it does not lead there")
    return sub


def import_cut(tf: Any, gd: Any, inp: str, out: str) -> tuple[Any, Any, Any]:
    """(tf.Graph, input placeholder, output tensor) of a cut GraphDef."""
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    return g, g.get_tensor_by_name(f"{inp}:0"), g.get_tensor_by_name(f"{out}:0")


def float64_graph_def(tf: Any, gd: Any) -> Any:
    """The same graph computing in float64: every float32 type attribute and constant widened.
    Ops with no float64 kernel fail when the graph runs, naming themselves."""
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(gd)
    f32, f64 = tf.float32.as_datatype_enum, tf.float64.as_datatype_enum
    for n in out.node:
        for _key, attr in n.attr.items():
            if attr.type == f32:
                attr.type = f64
            if attr.list.type:
                attr.list.type[:] = [f64 if t == f32 else t for t in attr.list.type]
        if n.op == "Const" and n.attr["value"].tensor.dtype == f32:
            arr = tf.make_ndarray(n.attr["value"].tensor).astype(np.float64)
            n.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr))
    return out


def pruned_function(tf: Any, gd: Any, inp: str, out: str) -> tuple[Any, Any]:
    """(concrete function computing `out` from `inp` of the GraphDef, the wrapped function that
    owns it): tf.function's form of a graph."""

    def body() -> Any:
        tf.compat.v1.import_graph_def(gd, name="")

    wrapped = tf.compat.v1.wrap_function(body, [])
    return wrapped.prune(feeds=f"{inp}:0", fetches=f"{out}:0"), wrapped


def to_tflite(gd: Any, inp: str, out: str) -> bytes:
    """The cut as a TFLite flatbuffer, by TF's own converter with builtin ops only (TVM's frontend
    takes no Flex op). The converter folds batch norms into convs and fuses activations."""
    tf = _tf()

    fn, wrapped = pruned_function(tf, gd, inp, out)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], wrapped)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as e:  # noqa: BLE001 - ConverterError and friends
        text = str(e)
        ops = sorted(set(_converter_ops(text)))
        named = []
        for op in ops:
            nodes = [n.name for n in gd.node if n.op == op]
            shown = ", ".join(repr(n) for n in nodes[:3]) + (", ..." if len(nodes) > 3 else "")
            named.append(f"{op} (node {shown})" if nodes else op)
        what = f"ops it cannot express with builtin ops: {'; '.join(named)}" if ops else text[:400]
        raise SpecError(f"TF's TFLite converter refused the cut {inp}..{out}: {what}") from None


def _converter_ops(text: str) -> list[str]:
    import re

    return re.findall(r"'tf\.([A-Za-z0-9_]+)'", text) + re.findall(
        r"\btf\.([A-Z][A-Za-z0-9]+)", text
    )
