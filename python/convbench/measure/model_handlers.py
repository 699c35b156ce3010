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
from ..frameworks.tf_model import graph_def, tf_forward, tf_model_callables, tf_step_stats
from ..native.harness import Timing, pin_threads, relax_vm, time_callable
from ..native.tf_capi import tf_graph_runner
from ..results.record import Record
from ..spec.arrays import aligned_copy, aligned_empty
from ..spec.model import ModelWorkload
from .process import make_record, pin_timing_thread, restrict_process
from .tasks import CheckTask, GraphDefTask, LayersTask, MeasureTask

__all__ = ["check_model", "layers", "measure_model_tf", "measure_model_tvm", "write_graph_def"]


def _model(task: Any) -> ModelWorkload:
    w = task.workload
    assert isinstance(w, ModelWorkload)
    return w


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
        )
        runner.run()  # pools created before the pinning
        pin = pin_timing_thread(task.cpus)
        timing = Timing.from_native(runner.time(**task.config.kwargs()))
        return make_record(task, timing, **pin)
    if path == "session-no-onednn":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # read when TF loads, below
    tf = configure_tf(task.threads)
    tf_path = "session" if path == "session-no-onednn" else path
    fn = tf_model_callables(tf, mw.graph, x, (tf_path,), task.threads)[tf_path]
    fn()
    pin = pin_timing_thread(task.cpus)
    timing = time_callable(fn, task.config)
    return make_record(task, timing, **pin)


def write_graph_def(task: GraphDefTask) -> dict[str, Any]:
    mw = _model(task)
    tf = configure_tf(1)
    data = graph_def(tf, mw.graph, mw.batch, mw.graph.weights())
    out = Path(task.out)
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return {"path": str(out), "bytes": len(data)}


def _tf_f64(tf: Any, mw: ModelWorkload, x: np.ndarray) -> np.ndarray:
    w64 = {k: v.astype(np.float64) for k, v in mw.graph.weights().items()}
    return np.asarray(tf_forward(tf, mw.graph, w64)(tf.constant(x.astype(np.float64))))


def check_model(task: CheckTask) -> dict[str, Any]:
    """Each TVM build (fused, unfused) against TF's session output, and all three against a
    float64 run of the same graph."""
    mw = _model(task)
    tf = configure_tf(1)
    x = mw.graph.input_data(mw.batch, task.seed)
    ref = np.asarray(tf_model_callables(tf, mw.graph, x, ("session",))["session"]())
    exact = _tf_f64(tf, mw, x)
    rtol = mw.rtol
    out: dict[str, Any] = {
        "workload": mw.name,
        "kind": mw.kind,
        "batch": mw.batch,
        "tf_vs_f64_rel_err": relative_error(ref, exact, rtol)["max_rel_err"],
        "builds": {},
    }
    for label, path in task.kernel_paths.items():
        vm = relax_vm(path, mw.input_shape, mw.output_shape)
        got = np.empty(mw.output_shape, np.float32)
        vm.call([x], got)
        out["builds"][label] = {
            **relative_error(got, ref, rtol),
            "tvm_vs_f64_rel_err": relative_error(got, exact, rtol)["max_rel_err"],
        }
    out["ok"] = all(b["ok"] for b in out["builds"].values())
    first = next(iter(out["builds"].values()), {})
    out.update({k: first.get(k) for k in ("max_rel_err", "max_abs_err", "rtol")})
    return out


def layers(task: LayersTask) -> dict[str, Any]:
    """Per-layer times: each compiled function of the fused TVM build called on its real
    intermediates, timed alone with the native loop; each TF op from TF's step stats."""
    mw = _model(task)
    restrict_process(sorted(set(task.cpus)))
    x = mw.graph.input_data(mw.batch, task.seed)
    # TF first: its pools are made here, before anything is pinned.
    tf = configure_tf(task.threads)
    tf_stats = tf_step_stats(tf, mw.graph, x, task.threads, runs=task.tf_runs)
    pin_threads(task.cpus)
    kernel_path = task.kernel_path
    plan = LayerPlan.load(Path(kernel_path).parent)
    consts = [aligned_copy(c) for c in plan.constants]
    outs: list[np.ndarray] = []
    tvm_calls = []
    config = task.config
    for call, arg_shapes in zip(plan.calls, plan.arg_shapes(mw.input_shape), strict=True):
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
        k = _core.TvmKernel(kernel_path, specs, call["func"])
        k.call([*args, y])
        outs.append(y)
        t = Timing.from_native(k.time([*args, y], **config.kwargs()))
        tvm_calls.append(
            {
                "func": call["func"],
                "median_s": t.summary["median"],
                "args": arg_shapes,  # what the call computes: its arguments' sources and shapes
                "shape": list(y.shape),
            }
        )
    vm = relax_vm(kernel_path, mw.input_shape, mw.output_shape)
    whole = Timing.from_native(vm.time([x], **config.kwargs())).summary["median"]
    return {
        "workload": mw.name,
        "kind": mw.kind,
        "batch": mw.batch,
        "threads": task.threads,
        "tvm_calls": tvm_calls,
        "tvm_whole_s": whole,
        "tf_ops": tf_stats["ops"],
        "tf_op_types": tf_stats["op_types"],
        "tf_whole_s": tf_stats["wall_s"],
        "tf_traced_whole_s": tf_stats["traced_wall_s"],
    }
