"""The worker's tasks for model cuts (blocks, prefixes, the whole model): measure one path, check
TVM against TF, time every layer of both, and write the TF GraphDef the C API path imports.
Same rules as worker.py: one task per process, thread pools made before the timing thread is
pinned, plain JSON in and out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import worker as w
from .model import ModelWorkload

__all__ = ["HANDLERS"]


def _measure_tvm_model(task: dict[str, Any]) -> dict[str, Any]:
    from . import _core
    from .harness import Timing, pin_threads, time_callable

    mw = ModelWorkload.from_task(task)
    cpus = task["cpus"]
    w._restrict_process(sorted(set(cpus)))
    pin_threads(cpus)
    pin = w._pin_timing_thread(cpus)
    x = mw.graph.input_data(mw.batch, task["seed"])
    path = task["path"]
    if path in ("native", "native-unfused"):
        vm = _relax_vm(task["kernel_path"], mw)
        timing = Timing.from_native(vm.time([x], **w._config(task).kwargs()))
    elif path == "python":
        import tvm
        from tvm import relax

        vm = relax.VirtualMachine(tvm.runtime.load_module(task["kernel_path"]), tvm.cpu())
        f, xt = vm["main"], tvm.runtime.tensor(x)
        timing = time_callable(lambda: f(xt), w._config(task))
    else:
        raise ValueError(f"unknown TVM model path {path!r}")
    pin["pool_threads"] = _core.tvm_num_threads()
    return w._record(task, mw, timing, pin)


def _relax_vm(path: str, mw: ModelWorkload) -> Any:
    from . import _core
    from .harness import ensure_tvm_runtime

    ensure_tvm_runtime()
    return _core.RelaxVm(
        path, [("x", list(mw.input_shape), False)], ("y", list(mw.output_shape), True)
    )


def _measure_tf_model(task: dict[str, Any]) -> dict[str, Any]:
    from .harness import Timing, time_callable

    mw = ModelWorkload.from_task(task)
    cpus = task["cpus"]
    w._restrict_process(sorted(set(cpus)))
    path = task["path"]
    x = mw.graph.input_data(mw.batch, task["seed"])
    if path.startswith("native-graph"):
        # The C API in a process where Python's TF is never imported (see worker.py).
        from . import _core
        from .tfconv import tf_library_path

        runner = _core.TfGraphRunner(
            tf_library_path(),
            Path(task["graph_def"]).read_bytes(),
            "input",
            mw.graph.output,
            x,
            task["threads"],
            path == "native-graph",
        )
        runner.run()  # pools created before the pinning
        pin = w._pin_timing_thread(cpus)
        timing = Timing.from_native(runner.time(**w._config(task).kwargs()))
        return w._record(task, mw, timing, pin)
    if path == "session-no-onednn":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # read when TF loads, below
    from .tfconv import configure_tf
    from .tfmodel import tf_model_callables

    tf = configure_tf(task["threads"])
    tf_path = "session" if path == "session-no-onednn" else path
    fn = tf_model_callables(tf, mw.graph, x, (tf_path,), task["threads"])[tf_path]
    fn()
    pin = w._pin_timing_thread(cpus)
    timing = time_callable(fn, w._config(task))
    return w._record(task, mw, timing, pin)


def _graph_def(task: dict[str, Any]) -> dict[str, Any]:
    from .tfconv import configure_tf
    from .tfmodel import graph_def

    mw = ModelWorkload.from_task(task)
    tf = configure_tf(1)
    data = graph_def(tf, mw.graph, mw.batch, mw.graph.weights())
    out = Path(task["out"])
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return {"path": str(out), "bytes": len(data)}


def _tf_f64(tf: Any, mw: ModelWorkload, x: np.ndarray) -> np.ndarray:
    from .tfmodel import tf_forward

    w64 = {k: v.astype(np.float64) for k, v in mw.graph.weights().items()}
    return np.asarray(tf_forward(tf, mw.graph, w64)(tf.constant(x.astype(np.float64))))


def _check_model(task: dict[str, Any]) -> dict[str, Any]:
    """Each TVM build (fused, unfused) against TF's session output, and all three against a
    float64 run of the same graph."""
    from .numerics import compare
    from .tfconv import configure_tf
    from .tfmodel import tf_model_callables

    mw = ModelWorkload.from_task(task)
    tf = configure_tf(1)
    x = mw.graph.input_data(mw.batch, task["seed"])
    ref = np.asarray(tf_model_callables(tf, mw.graph, x, ("session",))["session"]())
    exact = _tf_f64(tf, mw, x)
    rtol = mw.rtol
    out: dict[str, Any] = {
        "workload": mw.name,
        "kind": mw.kind,
        "batch": mw.batch,
        "tf_vs_f64_rel_err": compare(ref, exact, rtol)["max_rel_err"],
        "builds": {},
    }
    for label, path in task["kernel_paths"].items():
        vm = _relax_vm(path, mw)
        got = np.empty(mw.output_shape, np.float32)
        vm.call([x], got)
        out["builds"][label] = {
            **compare(got, ref, rtol),
            "tvm_vs_f64_rel_err": compare(got, exact, rtol)["max_rel_err"],
        }
    out["ok"] = all(b["ok"] for b in out["builds"].values())
    first = next(iter(out["builds"].values()), {})
    out.update({k: first.get(k) for k in ("max_rel_err", "max_abs_err", "rtol")})
    return out


def _layers(task: dict[str, Any]) -> dict[str, Any]:
    """Per-layer times: each compiled function of the fused TVM build called on its real
    intermediates, timed alone with the native loop; each TF op from TF's step stats."""
    from .harness import Timing, aligned_copy, aligned_empty, pin_threads
    from .relaxmodel import LayerPlan
    from .tfconv import configure_tf
    from .tfmodel import tf_step_stats

    mw = ModelWorkload.from_task(task)
    cpus = task["cpus"]
    w._restrict_process(sorted(set(cpus)))
    x = mw.graph.input_data(mw.batch, task["seed"])
    # TF first: its pools are made here, before anything is pinned.
    tf = configure_tf(task["threads"])
    tf_stats = tf_step_stats(tf, mw.graph, x, task["threads"], runs=task.get("tf_runs", 10))
    pin_threads(cpus)
    from . import _core

    kernel_path = task["kernel_path"]
    plan = LayerPlan.load(Path(kernel_path).parent)
    consts = [aligned_copy(c) for c in plan.constants]
    outs: list[np.ndarray] = []
    tvm_calls = []
    config = w._config(task)
    for call in plan.calls:
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
        tvm_calls.append({"func": call["func"], "median_s": t.summary["median"]})
    vm = _relax_vm(kernel_path, mw)
    whole = Timing.from_native(vm.time([x], **config.kwargs())).summary["median"]
    return {
        "workload": mw.name,
        "kind": mw.kind,
        "batch": mw.batch,
        "threads": task["threads"],
        "tvm_calls": tvm_calls,
        "tvm_whole_s": whole,
        "tf_ops": tf_stats["ops"],
        "tf_op_types": tf_stats["op_types"],
        "tf_whole_s": tf_stats["wall_s"],
        "tf_traced_whole_s": tf_stats["traced_wall_s"],
    }


HANDLERS = {
    ("measure", "tvm"): _measure_tvm_model,
    ("measure", "tf"): _measure_tf_model,
    ("check", None): _check_model,
    ("layers", None): _layers,
    ("graphdef", None): _graph_def,
}
