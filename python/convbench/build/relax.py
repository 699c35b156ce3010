"""TVM's side of a model graph: a Relax module built node by node from spec.model.Graph with the
same weights as TF, lowered with or without Relax's operator fusion, every PrimFunc given the
hand-written schedule (build.schedules), compiled for the host and exported as one `.so`.

Next to the library the build writes `plan.json` and `constants.npz`: the sequence of compiled
functions the VM calls, with where each argument comes from (the input, an earlier call, a
constant). The per-layer timer replays that sequence on the real intermediates, one function at a
time, from the same library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..spec.model import Graph
from .compute import superset
from .plan import LayerPlan
from .schedules import VEC, schedule_primfunc

__all__ = [
    "winograd_convs",
    "build_relax",
    "call_plan",
    "distinct_functions",
    "block_diagonal",
    "func_key",
    "pad_conv_channels",
    "relax_module",
    "schedule_module",
    "scheduled_function",
    "task_module",
    "tflite_module",
    "to_primfuncs",
    "tuned_records",
]


def relax_module(g: Graph, batch: int, weights: dict[str, np.ndarray]) -> Any:
    """`main(x)` computing g.output from g.input; weights are constants, so the BN's
    gamma * rsqrt(var + eps) is folded at compile time, as TF's grappler folds it."""
    import tvm
    from tvm import relax
    from tvm.relax import op as R

    def const(a: np.ndarray) -> Any:
        return relax.const(np.ascontiguousarray(a, dtype=np.float32))

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((batch, *g.input_shape[1:]), "float32"))
    eps = relax.const(np.float32(g.bn_epsilon))

    def lower_node(n: Any, a: list[Any]) -> Any:
        if n.kind == "conv":
            assert n.conv is not None
            (pt, pb), (pl, pr) = n.conv.pads
            w = weights[n.params[0]]
            cout = w.shape[3]
            pad_c = -cout % VEC
            if pad_c:
                # Output channels padded to a multiple of the vector width and sliced back: a
                # predicated channel tail compiles to scalar code.
                w = np.concatenate([w, np.zeros((*w.shape[:3], pad_c), w.dtype)], axis=3)
            y = bb.emit(
                R.nn.conv2d(
                    a[0],
                    const(w),
                    strides=n.conv.strides,
                    padding=(pt, pl, pb, pr),
                    dilation=n.conv.dilation,
                    data_layout="NHWC",
                    kernel_layout="HWIO",
                )
            )
            if pad_c:
                y = bb.emit(R.strided_slice(y, axes=[3], begin=[0], end=[cout]))
            return y
        if n.kind == "bn":
            gamma, beta, mean, var = (const(weights[p]) for p in n.params)
            # tf.nn.batch_normalization's form: x * inv + (beta - mean * inv)
            inv = R.multiply(R.rsqrt(R.add(var, eps)), gamma)
            return bb.emit(R.add(R.multiply(a[0], inv), R.subtract(beta, R.multiply(mean, inv))))
        if n.kind == "relu":
            return bb.emit(R.nn.relu(a[0]))
        if n.kind == "add":
            return bb.emit(R.add(a[0], a[1]))
        if n.kind == "bias_add":
            return bb.emit(R.add(a[0], const(weights[n.params[0]])))
        raise ValueError(f"node '{n.name}': no Relax lowering for kind '{n.kind}'")

    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(g.evaluate(x, lower_node))
        bb.emit_func_output(out)
    return tvm.IRModule(bb.get().functions)


def to_primfuncs(mod: Any, fuse: bool = True) -> Any:
    """Relax ops -> call_tir of unscheduled PrimFuncs."""
    import tvm
    from tvm import relax

    passes = [relax.transform.FoldConstant(), relax.transform.LegalizeOps()]
    passes += [relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant()]
    if fuse:
        passes += [relax.transform.FuseOps(), relax.transform.FuseTIR()]
    passes += [relax.transform.DeadCodeElimination()]
    return tvm.transform.Sequential(passes)(mod)


def func_key(func: Any) -> str:
    """A PrimFunc's identity in the tuning database: its structural hash (names do not count,
    so the same fused function at two places of the model is one task)."""
    import tvm_ffi

    return f"fused-{tvm_ffi.structural_hash(func) & (2**64 - 1):016x}"


def task_module(func: Any) -> Any:
    """The one-function module a fused PrimFunc is tuned, looked up and timed as: MetaSchedule
    keys its database by the module, global symbol included."""
    import tvm

    return tvm.IRModule({"main": func.with_attr("global_symbol", "main")})


def distinct_functions(mod: Any) -> dict[str, tuple[str, Any]]:
    """{func_key: (a name it has, the PrimFunc)} over the PrimFuncs of `mod`."""
    from tvm import tirx

    out: dict[str, tuple[str, Any]] = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tirx.PrimFunc):
            out.setdefault(func_key(func), (gv.name_hint, func))
    return out


def schedule_module(
    mod: Any,
    tuning: Any = None,
    target: Any = None,
    tuned: dict[str, str] | None = None,
    chosen: dict[str, str] | None = None,
) -> Any:
    """Every PrimFunc of `mod` scheduled. With `tuning` (a tuning.TuningDatabase) and `target`,
    a function whose tuned schedule won its duel against the hand-written one gets it (and
    `tuned`, if given, collects {func_key: trace digest}); every other conv function gets the
    conv schedule with its element-wise epilogue computed in the register tile's write-back,
    and the rest parallel, vectorised element-wise loops, or the generic reduction schedule.
    `chosen`, if given, collects {function name: the schedule it got}: tuned, conv, depthwise,
    elementwise, reduction, or "default (<why>)" for one no schedule here applies to, which
    then runs as TVM compiles it unscheduled."""
    import tvm
    from tvm import tirx

    out = {}
    done: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    for gv, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc):
            out[gv] = func
            continue
        key = func_key(func)
        if key not in done and func.attrs is not None and "convbench.schedule" in func.attrs:
            done[key], kinds[key] = func, str(func.attrs["convbench.schedule"])  # Winograd's
        if key not in done:
            rec = None
            if tuning is not None and target is not None:
                rec = tuning.lookup_key(key, target, task_module(func))
            if rec is not None:
                done[key] = rec.mod["main"]
                kinds[key] = "tuned"
                if tuned is not None:
                    tuned[key] = rec.trace_digest
            else:
                done[key], kinds[key] = scheduled_function(func)
        if chosen is not None:
            chosen[gv.name_hint] = kinds[key]
        f = done[key]
        if f.attrs is not None and "global_symbol" in f.attrs:  # a tuned task module's "main"
            f = f.without_attr("global_symbol")
        out[gv] = f
    return tvm.IRModule(out, attrs=mod.attrs)


def scheduled_function(func: Any) -> tuple[Any, str]:
    """(the scheduled PrimFunc, which schedule): schedule_primfunc's, else the generic one, else
    the function as it is, with the reason."""
    import tvm
    from tvm import s_tir

    from .schedules import generic_schedule

    try:
        sch = s_tir.Schedule(tvm.IRModule({"main": func}))
        kind = schedule_primfunc(sch)
        return sch.mod["main"], kind
    except Exception as e:  # noqa: BLE001 - a function no hand-written schedule fits
        first = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e) else ''}"
    try:
        sch = s_tir.Schedule(tvm.IRModule({"main": func}))
        generic_schedule(sch)
        return sch.mod["main"], "reduction"
    except Exception as e:  # noqa: BLE001
        second = str(e).strip().splitlines()[0][:160] if str(e) else type(e).__name__
        return func, f"default ({first}; generic: {second})"


def tflite_module(path: Path) -> Any:
    """A TFLite flatbuffer as a Relax module, by TVM's own TFLite frontend (NHWC kept). An op the
    frontend does not support is named in the ValueError."""
    import tflite
    from tvm import relax
    from tvm.relax.frontend.tflite import from_tflite

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    try:
        mod = from_tflite(model)
    except Exception as e:  # noqa: BLE001 - tvm.error.OpNotImplemented and friends
        text = " ".join(str(e).split())[:400]
        raise ValueError(f"TVM's TFLite frontend cannot import {path.name}: {text}") from None
    # The frontend gives a depthwise conv's weight as HWOI: every conv's weight in HWIO, as the
    # stand-in's and the schedules' (the constant transposed once, at compile time).
    mod = relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "HWIO"]})(mod)
    return pad_conv_channels(relax.transform.FoldConstant()(mod))


def block_diagonal(w: np.ndarray, groups: int, s: int) -> np.ndarray:
    """A grouped conv's HWIO weight (KH, KW, C/groups, O) with every s groups merged into one
    group of s times the input channels, zero where an output channel does not read an input."""
    kh, kw, ipg, cout = w.shape
    opg = cout // groups
    out = np.zeros((kh, kw, ipg * s, cout), w.dtype)
    for o in range(cout):
        j = (o // opg) % s  # the group's place in its merged group
        out[:, :, j * ipg : (j + 1) * ipg, o] = w[:, :, :, o]
    return out


def pad_conv_channels(mod: Any) -> Any:
    """Every dense conv with a constant weight whose output channels are not a multiple of the
    vector width computes them padded with zero filters, then slices the padding off: what
    relax_module does for the stand-in (a predicated channel tail compiles to scalar code).
    A grouped conv of fewer than 16 output channels per group becomes block-diagonal groups of
    16 (compute.superset), as a single grouped conv's kernel does."""
    import tvm
    from tvm import relax
    from tvm.relax import op as R
    from tvm.relax.expr_functor import PyExprMutator, mutator

    conv2d = tvm.ir.Op.get("relax.nn.conv2d")

    @mutator
    class Pad(PyExprMutator):  # type: ignore[misc]
        def visit_call_(self, call: Any) -> Any:
            call = super().visit_call_(call)
            if not call.op.same_as(conv2d) or not isinstance(call.args[1], tvm.ir.expr.Constant):
                return call
            a = call.attrs
            if (a.data_layout, a.kernel_layout) != ("NHWC", "HWIO"):
                return call
            w = call.args[1].value.numpy()
            groups = int(a.groups)
            cout = w.shape[3]
            s = superset(groups, w.shape[2], cout // groups)
            if s > 1:  # as compute.conv_module does it: s groups as one block-diagonal group
                w, groups = block_diagonal(w, groups, s), groups // s
            pad = -cout % VEC if groups == 1 else 0
            if pad:
                w = np.concatenate([w, np.zeros((*w.shape[:3], pad), w.dtype)], axis=3)
            if s == 1 and not pad:
                return call
            y = self.builder_.emit(
                R.nn.conv2d(
                    call.args[0],
                    relax.const(w),
                    strides=a.strides,
                    padding=a.padding,
                    dilation=a.dilation,
                    groups=groups,
                    data_layout="NHWC",
                    kernel_layout="HWIO",
                )
            )
            return R.strided_slice(y, axes=[3], begin=[0], end=[cout]) if pad else y

    pad = Pad(mod)
    for gv, func in mod.functions_items():
        if isinstance(func, relax.Function):
            pad.builder_.update_func(gv, pad.visit_expr(func))
    return pad.builder_.get()


def winograd_convs(mod: Any, choices: dict[str, int]) -> Any:
    """Every dense 3x3 stride-1 conv of `mod` with constant weights whose problem
    (winograd.problem_key) `choices` maps to a tile size m becomes a call of its Winograd
    kernel (winograd.conv_primfunc) on weights transformed here, once, at build time. The call
    is opaque to Relax's fusion: what followed the conv (bias, BN, ReLU, add) runs as an
    element-wise function of its own after it."""
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    from ..spec.conv import ConvSpec, ConvWorkload
    from .winograd import conv_primfunc, problem_key, transform_weights, winograd_applicable

    if not choices:
        return mod
    conv2d = tvm.ir.Op.get("relax.nn.conv2d")
    made: dict[tuple[str, int], Any] = {}

    @mutator
    class Winograd(PyExprMutator):  # type: ignore[misc]
        def visit_call_(self, call: Any) -> Any:
            call = super().visit_call_(call)
            if not call.op.same_as(conv2d) or not isinstance(call.args[1], tvm.ir.expr.Constant):
                return call
            a = call.attrs
            if (a.data_layout, a.kernel_layout, a.out_layout) != ("NHWC", "HWIO", "NHWC"):
                return call
            x_shape = [int(d) for d in call.args[0].ty.shape.values]
            weight = call.args[1].value.numpy()
            pt, pl, pb, pr = (int(v) for v in a.padding)
            spec = ConvSpec(
                name="layer",
                input=tuple(x_shape),
                kernel=tuple(weight.shape[:2]),
                out_channels=int(weight.shape[3]),
                strides=tuple(int(v) for v in a.strides),
                padding=((pt, pb), (pl, pr)),
                dilation=tuple(int(v) for v in a.dilation),
                groups=int(a.groups),
                count=1,
            )
            w = ConvWorkload(spec, x_shape[0])
            m = choices.get(problem_key(w.input_shape, w.output_shape[3], spec.pads))
            if m is None or winograd_applicable(w) is not None or weight.shape[2] != x_shape[3]:
                return call
            key = (problem_key(w.input_shape, w.output_shape[3], spec.pads), m)
            if key not in made:
                made[key] = self.builder_.add_func(conv_primfunc(w, m), f"conv2d_winograd{m}")
            return relax.call_tir(
                made[key],
                [call.args[0], relax.const(transform_weights(weight, m))],
                relax.TensorType(w.output_shape, "float32"),
            )

    rewrite = Winograd(mod)
    for gv, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewrite.builder_.update_func(gv, rewrite.visit_expr(func))
    return rewrite.builder_.get()


def fused_keys(g: Graph, batch: int, module: Any = None) -> list[str]:
    """The func_keys of the fused functions of `g` (or of the Relax `module` given, a model
    file's): what the tuning database keys them by."""
    source = module if module is not None else relax_module(g, batch, g.weights())
    return sorted(distinct_functions(to_primfuncs(source, fuse=True)))


def tuned_records(
    g: Graph,
    batch: int,
    tuning: Any,
    target: Any,
    module: Any = None,
    keys: list[str] | None = None,
) -> dict[str, str]:
    """{func_key: trace digest} of the fused functions of `g` (or of the Relax `module` given,
    a model file's) that the database has a winning tuned schedule for at `target`. `keys`:
    their func_keys, known already (fused_keys): where the database's files show a schedule
    for none of them, the model is not lowered at all."""
    if keys is not None and not any(tuning.may_have(k, target) for k in keys):
        return {}
    source = module if module is not None else relax_module(g, batch, g.weights())
    mod = to_primfuncs(source, fuse=True)
    out = {}
    for key, (_, func) in distinct_functions(mod).items():
        rec = tuning.lookup_key(key, target, task_module(func))
        if rec is not None:
            out[key] = rec.trace_digest
    return out


# ------------------------------------------------------------------------------------------------
# Build, export and the call plan
# ------------------------------------------------------------------------------------------------
def call_plan(mod: Any) -> LayerPlan:
    """The call_tir sequence of a lowered `main` (to_primfuncs, then schedule_module): each
    call's function, argument sources and output shape."""
    import tvm
    from tvm import relax

    main = mod["main"]
    params = {p: "input" for p in main.params}
    calls: list[dict[str, Any]] = []
    consts: list[np.ndarray] = []
    produced: dict[Any, int] = {}
    alias: dict[Any, Any] = {}
    call_tir = tvm.ir.Op.get("relax.call_tir")
    for block in main.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Var):
                alias[binding.var] = alias.get(value, value)
                continue
            if not isinstance(value, tvm.ir.Call):
                raise ValueError(f"unexpected binding in main: {type(value).__name__}")
            if not value.op.same_as(call_tir):
                raise ValueError(f"main calls {value.op}, not a compiled function")
            func_gv, args = value.args[0], value.args[1]
            srcs = []
            for a in args.fields:
                a = alias.get(a, a)
                if isinstance(a, tvm.ir.expr.Constant):
                    consts.append(a.value.numpy())
                    srcs.append(["const", len(consts) - 1])
                elif a in params:
                    srcs.append(["input"])
                elif a in produced:
                    srcs.append(["call", produced[a]])
                else:
                    raise ValueError(f"argument {a} of {func_gv.name_hint} has no known source")
            shape = [int(d) for d in binding.var.ty.shape.values]
            produced[binding.var] = len(calls)
            calls.append({"func": func_gv.name_hint, "args": srcs, "shape": shape})
    return LayerPlan(calls, consts)


def build_relax(
    g: Graph,
    batch: int,
    target: Any,
    out_dir: Path,
    fuse: bool = True,
    library: str = "model.so",
    tuning: Any = None,
    module: Any = None,
    winograd: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Lower, compile and export `g` (or the Relax `module` given: a model file's, from its
    TFLite form) to out_dir/<library> with its call plan; returns facts about the build
    (functions, calls, tuned functions, the schedule each function got). `winograd`: the convs
    computed by Winograd ({winograd.problem_key: m}, winograd_convs)."""
    import tvm

    out_dir.mkdir(parents=True, exist_ok=True)
    tuned: dict[str, str] = {}
    chosen: dict[str, str] = {}
    source = module if module is not None else relax_module(g, batch, g.weights())
    mod = to_primfuncs(winograd_convs(source, winograd or {}), fuse)
    mod = schedule_module(mod, tuning, target, tuned, chosen)
    plan = call_plan(mod)
    ex = tvm.compile(mod, target=target)
    ex.export_library(str(out_dir / library))
    plan.save(out_dir)
    funcs = sorted({c["func"] for c in plan.calls})
    (out_dir / "schedules.json").write_text(json.dumps(chosen, indent=1, sort_keys=True))
    return {
        "calls": len(plan.calls),
        "functions": len(funcs),
        "fused": fuse,
        "tuned": tuned,
        "schedules": chosen,
    }
