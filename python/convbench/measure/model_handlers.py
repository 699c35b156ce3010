"""A worker's handlers for model cuts (blocks, prefixes, the whole model): measure one path, check
TVM against TF, time every layer of both, and write the TF GraphDef the C API path imports. Same
rules as for convs: one task per process, thread pools made before the timing thread is pinned."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from ..build.plan import LayerPlan
from ..frameworks.numerics import relative_error
from ..frameworks.tf_conv import configure_tf
from ..frameworks.tf_model import (
    GraphParts,
    graph_def,
    tf_forward,
    tf_model_callables,
    tf_step_stats,
)
from ..host import cold_copies
from ..native.harness import Timing, pin_threads, relax_vm, time_callable
from ..native.tf_capi import tf_graph_runner
from ..results.analysis import node_layers
from ..results.decomposition import vm_profile_summary
from ..results.record import Record
from ..spec.arrays import aligned_copy, aligned_empty, fresh_copy
from ..spec.errors import SpecError
from ..spec.model import ModelWorkload
from .process import make_record, pin_timing_thread, restrict_process
from .tasks import CheckTask, GraphDefTask, LayersTask, MeasureTask, ProbeTask

__all__ = [
    "check_model",
    "layers",
    "measure_model_tf",
    "measure_model_tvm",
    "probe_algorithms",
    "write_graph_def",
]


# Below this spread (max - min over max |value|) an output is taken as constant.
DEGENERATE_SPREAD = 1e-3


def _model(task: Any) -> ModelWorkload:
    w = task.workload
    assert isinstance(w, ModelWorkload)
    return w


def _file_parts(tf: Any, mw: ModelWorkload, graph_def_path: str | None) -> GraphParts | None:
    """A model file's cut, as the GraphDef the run exported (None for the stand-in, whose graph
    is built from its description)."""
    if not mw.from_file:
        return None
    if graph_def_path is None:
        raise ValueError(f"{mw.name}: a model file's cut needs its exported GraphDef")
    from ..frameworks.tf_import import import_cut

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(Path(graph_def_path).read_bytes())
    return lambda: import_cut(tf, gd, mw.graph.input, mw.graph.output)


def measure_model_tvm(task: MeasureTask) -> Record:
    mw = _model(task)
    restrict_process(sorted(set(task.cpus)))
    pin_threads(task.cpus)
    pin = pin_timing_thread(task.cpus)
    x = mw.graph.input_data(mw.batch, task.seed)
    assert task.kernel_path is not None
    if task.path in ("native", "native-unfused"):
        vm = relax_vm(task.kernel_path, mw.input_shape, mw.output_shape)
        timing = Timing.from_native(vm.time([x], **task.config.kwargs()))
    elif task.path == "python":
        import tvm
        from tvm import relax

        vm = relax.VirtualMachine(tvm.runtime.load_module(task.kernel_path), tvm.cpu())
        f, xt = vm["main"], tvm.runtime.tensor(x)
        timing = time_callable(lambda: f(xt), task.config)
    else:
        raise ValueError(f"unknown TVM model path {task.path!r}")
    return make_record(task, timing, **pin, pool_threads=_core.tvm_num_threads())


def measure_model_tf(task: MeasureTask) -> Record:
    mw = _model(task)
    restrict_process(sorted(set(task.cpus)))
    path = task.path
    x = mw.graph.input_data(mw.batch, task.seed)
    if path.startswith("native-graph"):
        # The C API in a process where Python's TF is never imported (see conv_handlers).
        assert task.graph_def is not None
        runner = tf_graph_runner(
            Path(task.graph_def).read_bytes(),
            mw.graph.output,
            x,
            task.threads,
            optimize=path == "native-graph",
            input_name=mw.graph.input,
        )
        runner.run()  # pools created before the pinning
        pin = pin_timing_thread(task.cpus)
        timing = Timing.from_native(runner.time(**task.config.kwargs()))
        return make_record(task, timing, **pin)
    if path == "session-no-onednn":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # read when TF loads, below
    tf = configure_tf(task.threads)
    tf_path = "session" if path == "session-no-onednn" else path
    parts = _file_parts(tf, mw, task.graph_def)
    fn = tf_model_callables(tf, mw.graph, x, (tf_path,), task.threads, parts)[tf_path]
    fn()
    pin = pin_timing_thread(task.cpus)
    timing = time_callable(fn, task.config)
    return make_record(task, timing, **pin)


def write_graph_def(task: GraphDefTask) -> dict[str, Any]:
    """The cut's frozen GraphDef at `task.out`; for a model file's cut also the TFLite flatbuffer
    TVM imports, beside it (same name, .tflite)."""
    mw = _model(task)
    tf = configure_tf(1)
    out = Path(task.out)
    facts: dict[str, Any] = {"path": str(out)}
    if mw.from_file:
        from ..frameworks.tf_import import cut_graph_def, load_spec_model, to_tflite

        frozen = load_spec_model(mw.spec, mw.batch)
        start = mw.start if mw.start not in (None, frozen.input) else None
        gd = cut_graph_def(frozen, start, mw.stop, mw.input_shape)
        data = gd.SerializeToString()
        _write(out, data)
        try:
            flat = to_tflite(gd, mw.graph.input, mw.graph.output)
        except SpecError as e:  # no TVM build of this cut; TF's paths still run the GraphDef
            facts["tflite_error"] = str(e)
        else:
            _write(out.with_suffix(".tflite"), flat)
            facts["tflite"] = str(out.with_suffix(".tflite"))
    else:
        data = graph_def(tf, mw.graph, mw.batch, mw.graph.weights())
        _write(out, data)
    facts["bytes"] = len(data)
    return facts


def _write(out: Path, data: bytes) -> None:
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)


def _tf_f64(tf: Any, mw: ModelWorkload, x: np.ndarray, parts: GraphParts | None) -> np.ndarray:
    if parts is None:
        w64 = {k: v.astype(np.float64) for k, v in mw.graph.weights().items()}
        return np.asarray(tf_forward(tf, mw.graph, w64)(tf.constant(x.astype(np.float64))))
    from ..frameworks.tf_import import float64_graph_def, import_cut

    graph, _, _ = parts()
    gd64 = float64_graph_def(tf, graph.as_graph_def())
    g64, ph, y = import_cut(tf, gd64, mw.graph.input, mw.graph.output)
    with tf.compat.v1.Session(graph=g64) as sess:
        return np.asarray(sess.run(y, feed_dict={ph: x.astype(np.float64)}))


def check_model(task: CheckTask) -> dict[str, Any]:
    """Each TVM build (fused, unfused) against TF's session output, and all three against a
    float64 run of the same graph."""
    mw = _model(task)
    tf = configure_tf(1)
    x = mw.graph.input_data(mw.batch, task.seed)
    parts = _file_parts(tf, mw, task.graph_def)
    ref = np.asarray(tf_model_callables(tf, mw.graph, x, ("session",), 1, parts)["session"]())
    try:
        exact: np.ndarray | None = _tf_f64(tf, mw, x, parts)
        f64_note = None
    except Exception as e:  # noqa: BLE001 - an op with no float64 kernel, named by TF
        exact, f64_note = None, f"no float64 run of this graph: {str(e).splitlines()[0][:300]}"
    rtol = mw.rtol
    out: dict[str, Any] = {
        "workload": mw.name,
        "kind": mw.kind,
        "batch": mw.batch,
        "tf_vs_f64_rel_err": (
            relative_error(ref, exact, rtol)["max_rel_err"] if exact is not None else None
        ),
        "builds": {},
    }
    if f64_note:
        out["float64_note"] = f64_note
    # A nearly constant output (a softmax over logits that an untrained network's activations
    # shrank to nothing) passes any build: say so, so that nobody reads the check as evidence.
    peak = float(np.max(np.abs(ref))) if ref.size else 0.0
    spread = float(np.max(ref) - np.min(ref)) / peak if peak > 0 else 0.0
    out["output_spread"] = spread
    if spread < DEGENERATE_SPREAD:
        out["degenerate_output"] = True
    for label, path in task.kernel_paths.items():
        vm = relax_vm(path, mw.input_shape, mw.output_shape)
        got = np.empty(mw.output_shape, np.float32)
        vm.call([x], got)
        out["builds"][label] = {
            **relative_error(got, ref, rtol),
            "tvm_vs_f64_rel_err": (
                relative_error(got, exact, rtol)["max_rel_err"] if exact is not None else None
            ),
        }
    out["ok"] = all(b["ok"] for b in out["builds"].values())
    first = next(iter(out["builds"].values()), {})
    out.update({k: first.get(k) for k in ("max_rel_err", "max_abs_err", "rtol")})
    return out


def layers(task: LayersTask) -> dict[str, Any]:
    """Per-layer times, three ways for TVM: every call of the cut's VM as it ran in the whole
    cut (in context: the VM's instrument, runs alternated with plain ones), each compiled
    function called alone on its real intermediates (warm), and alone on copies of its arrays
    that miss the cache (cold); TF's ops as they ran in the graph (step stats). Both with the
    glue between their layers' kernels."""
    mw = _model(task)
    restrict_process(sorted(set(task.cpus)))
    x = mw.graph.input_data(mw.batch, task.seed)
    # TF first: its pools are made here, before anything is pinned.
    tf = configure_tf(task.threads)
    parts = _file_parts(tf, mw, task.graph_def)
    names, of = node_layers(mw.graph)
    members = {layer: [n for n, at in of.items() if at == layer] for layer in names}
    tf_stats = tf_step_stats(
        tf, mw.graph, x, task.threads, runs=task.tf_runs, parts=parts, layers=members
    )
    pin_threads(task.cpus)
    pin_timing_thread(task.cpus)
    kernel_path = task.kernel_path
    plan = LayerPlan.load(Path(kernel_path).parent)
    config = task.config
    # in context first, with the warm-up a tvm/native cell has
    vm = relax_vm(kernel_path, mw.input_shape, mw.output_shape)
    profile = vm.profile([x], **config.kwargs(), min_runs=task.context_runs)
    context = vm_profile_summary(profile, [c["func"] for c in plan.calls])
    tvm_calls = _alone(task, plan, x)
    for call, in_context in zip(tvm_calls, context["context_s"], strict=True):
        call["context_s"] = in_context
    return {
        "workload": mw.name,
        "kind": mw.kind,
        "batch": mw.batch,
        "threads": task.threads,
        "tvm_calls": tvm_calls,
        "tvm_whole_s": context["whole_s"],
        "tvm_instrumented_s": context["instrumented_s"],
        "tvm_kernels_s": context["kernels_s"],
        "tvm_glue_s": context["glue_s"],
        "tvm_clock_cost": context["clock_cost"],
        "tvm_glue": context["glue"],
        "tvm_runs": context["runs"],
        "tvm_vm_calls": context["calls"],
        "tf_ops": tf_stats["ops"],
        "tf_op_types": tf_stats["op_types"],
        "tf_whole_s": tf_stats["wall_s"],
        "tf_traced_whole_s": tf_stats["traced_wall_s"],
        "tf_trace_cost": tf_stats["trace_cost"],
        "tf_gaps_s": tf_stats["gaps_s"],
        "tf_session_s": tf_stats["session_s"],
        "tf_alone": tf_stats["alone"],
    }


def _alone(task: LayersTask, plan: LayerPlan, x: np.ndarray) -> list[dict[str, Any]]:
    """Each call of the plan timed by itself with the native loop, on its real intermediates:
    warm (the same arrays every call) and cold (rotating copies that together exceed the
    last-level cache)."""
    consts = [aligned_copy(c) for c in plan.constants]
    outs: list[np.ndarray] = []
    out = []
    kwargs = task.config.kwargs()
    for call, arg_shapes in zip(
        plan.calls, plan.arg_shapes(task.workload.input_shape), strict=True
    ):
        args = []
        for src in call["args"]:
            if src[0] == "input":
                args.append(x)
            elif src[0] == "call":
                args.append(outs[src[1]])
            else:
                args.append(consts[src[1]])
        y = aligned_empty(tuple(call["shape"]))
        specs = [(f"arg{i}", list(a.shape), False) for i, a in enumerate(args)]
        specs.append(("out", list(y.shape), True))
        k = _core.TvmKernel(task.kernel_path, specs, call["func"])
        k.call([*args, y])
        outs.append(y)
        warm = Timing.from_native(k.time([*args, y], **kwargs)).summary["median"]
        cold_s = None
        if task.cold:
            arrays = [*args, y]
            copies = cold_copies(sum(a.nbytes for a in arrays))
            sets = [[fresh_copy(a) for a in arrays] for _ in range(copies)]
            cold_s = Timing.from_native(k.time_rotating(sets, **kwargs)).summary["median"]
            del sets
        out.append(
            {
                "func": call["func"],
                "alone_s": warm,
                "cold_s": cold_s,
                "args": arg_shapes,  # what the call computes: its arguments' sources and shapes
                "shape": list(y.shape),
            }
        )
    return out


# A round of a model probe: each candidate build profiled for this many runs, after the warm-up
# a cell has; the rounds alternate the candidates.
PROBE_RUNS = 5


def probe_algorithms(task: ProbeTask) -> dict[str, Any]:
    """The candidate builds of a model cut ({algorithm: library}: every Winograd-capable conv
    direct, or by one Winograd tile) timed in context in this one process, their rounds
    alternated (`config.samples` rounds of PROBE_RUNS profiled runs each, as ProbeTask does for
    a conv): per build, the whole cut's median and each call's median as it ran in the cut,
    with the shapes that say which layer the call computes."""
    mw = _model(task)
    restrict_process(sorted(set(task.cpus)))
    pin_threads(task.cpus)
    pin_timing_thread(task.cpus)
    x = mw.graph.input_data(mw.batch, task.seed)
    builds = {}
    for algorithm, path in task.kernels.items():
        plan = LayerPlan.load(Path(path).parent)
        builds[algorithm] = (relax_vm(path, mw.input_shape, mw.output_shape), plan)
    profiles: dict[str, dict[str, Any]] = {}
    kwargs = {**task.config.kwargs(), "samples": 1}
    for _ in range(task.config.samples):
        for algorithm, (vm, _) in builds.items():
            p = vm.profile([x], **kwargs, min_runs=PROBE_RUNS)
            if algorithm not in profiles:
                profiles[algorithm] = p
                continue
            for key in ("call_s", "gap_s", "tail_s", "whole_s", "plain_s"):
                profiles[algorithm][key] = list(profiles[algorithm][key]) + list(p[key])
    out = {}
    for algorithm, (_, plan) in builds.items():
        summary = vm_profile_summary(profiles[algorithm], [c["func"] for c in plan.calls])
        calls = [
            {"func": c["func"], "args": shapes, "shape": list(c["shape"]), "context_s": s}
            for c, shapes, s in zip(
                plan.calls, plan.arg_shapes(mw.input_shape), summary["context_s"], strict=True
            )
        ]
        out[algorithm] = {"whole_s": summary["whole_s"], "calls": calls}
    return {"candidates": out}
