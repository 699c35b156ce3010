"""One measurement in a process of its own: fresh thread pools, pinned, nothing shared with the
cell before it. Run as `python -m convbench.worker TASK.json RESULT.json` by the CLI; the task
and result are plain JSON so a crash here costs one cell, not the run.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import traceback
from typing import Any

from .spec import ConvSpec, Workload

__all__ = ["run_task"]


def _workload(task: dict[str, Any]) -> Workload:
    return Workload(ConvSpec.model_validate(task["spec"]), int(task["batch"]))


def _config(task: dict[str, Any]) -> Any:
    from .harness import RunConfig

    return RunConfig(**task.get("config", {}))


def _restrict_process(cpus: list[int]) -> None:
    # Threads created from here on (TF's pools, TVM's workers) inherit this mask.
    os.sched_setaffinity(0, set(cpus))


def _pin_timing_thread(cpus: list[int]) -> dict[str, Any]:
    """Pins the calling thread to cpus[0]. Threads it creates afterwards inherit that single CPU,
    so every thread pool must exist before this is called."""
    from . import _core

    _core.pin_current_thread([cpus[0]])
    applied = _core.current_thread_affinity()
    return {"timing_thread_cpus": applied, "pinned": applied == [cpus[0]]}


def _other_threads_cpus() -> list[list[int]]:
    """What the process's other threads (TF's or TVM's pools) may run on, read after timing: a
    pool trapped on the timing thread's CPU shows here as [cpu0], and as a parallelism of 1."""
    from . import _core

    me = _core.current_thread_id()
    others = {tuple(c) for tid, c in _core.process_thread_affinities().items() if tid != me}
    return sorted(list(c) for c in others)


def _record(
    task: dict[str, Any], w: Workload, timing: Any, extra: dict[str, Any]
) -> dict[str, Any]:
    s = timing.summary
    return {
        "workload": w.name,
        "backend": task["backend"],
        "path": task["path"],
        "threads": task["threads"],
        "batch": w.batch,
        "samples": s["n"],
        "iters_per_sample": timing.iters_per_sample or None,
        "median_s": s["median"],
        "min_s": s["min"],
        "mean_s": s["mean"],
        "stddev_s": s["stddev"],
        "cv": s["cv"],
        "p10_s": s["p10"],
        "p90_s": s["p90"],
        "max_s": s["max"],
        "cpu_s": timing.cpu_summary["median"] if timing.cpu_summary else None,
        "thread_cpu_s": timing.thread_cpu_summary["median"] if timing.thread_cpu_summary else None,
        "parallelism": timing.parallelism,
        "gflops": w.flops / s["median"] / 1e9 if s["median"] > 0 else None,
        "oversubscribed": task["threads"] > task["available_cpus"],
        "cpus": task["cpus"],
        "cpu_migrated": timing.cpu_before != timing.cpu_after,
        "wall_samples_s": timing.wall_s,
        "other_threads_cpus": _other_threads_cpus(),
        **extra,
    }


def _python_loop(f: Any, args: list[Any]) -> Any:
    """A Python loop calling f(*args) as a user writes it: arguments spelled out, no unpacking."""
    from itertools import repeat

    if len(args) == 3:
        a, b, c = args

        def run3(n: int) -> None:
            for _ in repeat(None, n):
                f(a, b, c)

        return run3
    if len(args) == 1:
        (x,) = args

        def run1(n: int) -> None:
            for _ in repeat(None, n):
                f(x)

        return run1
    raise ValueError(f"no Python loop for {len(args)} arguments")


def tvm_path_timer(path: str, kernel: Any, arrays: list[Any], config: Any) -> Any:
    """Times `kernel` on `arrays` along one TVM path of the overhead ladder."""
    from .harness import Timing, time_run_n

    if path == "native":
        return kernel.time(*arrays, config=config)
    kernel.native.check(arrays)  # the paths below hand the arrays to TVM unchecked
    if path == "python":
        import tvm_ffi

        f = tvm_ffi.load_module(str(kernel.path))["main"]
        return time_run_n(_python_loop(f, [tvm_ffi.from_dlpack(x) for x in arrays]), config)
    if path == "cython":
        from ._cyloop import CyLoop

        loop = CyLoop(kernel.native.function_handle, arrays, kernel.native)
        return time_run_n(loop.run_n, config)
    if path == "evaluator":
        import tvm

        mod = tvm.runtime.load_module(str(kernel.path))
        evaluator = mod.time_evaluator(
            "main",
            tvm.cpu(0),
            number=1,
            repeat=config.samples,
            min_repeat_ms=max(1, round(config.min_sample_s * 1000)),
            repeats_to_cooldown=0,
        )
        results = list(evaluator(*(tvm.runtime.tensor(x) for x in arrays)).results)
        # TVM reports wall time only: no CPU clocks for this path.
        return Timing(0, results, [], [], -1, -1)
    raise ValueError(f"unknown TVM path {path!r}")


def _measure_tvm(task: dict[str, Any]) -> dict[str, Any]:
    from . import _core
    from .harness import ConvKernel, pin_threads
    from .tfconv import conv_inputs

    w = _workload(task)
    cpus = task["cpus"]
    _restrict_process(sorted(set(cpus)))
    pin_threads(cpus)
    pin = _pin_timing_thread(cpus)
    kernel = ConvKernel(task["kernel_path"], w)
    data, weight = conv_inputs(w, task["seed"])
    out = kernel.new_output()
    timing = tvm_path_timer(task["path"], kernel, [data, weight, out], _config(task))
    pin["pool_threads"] = _core.tvm_num_threads()
    return _record(task, w, timing, pin)


def _measure_tf(task: dict[str, Any]) -> dict[str, Any]:
    w = _workload(task)
    cpus = task["cpus"]
    _restrict_process(sorted(set(cpus)))
    path = task["path"]
    if path in ("native", "native-graph"):
        return _measure_tf_native(task, w)
    if path == "kernel":
        return _measure_tf_kernel(task, w)
    from .harness import time_callable
    from .tfconv import configure_tf, conv_inputs, tf_conv_callables

    tf = configure_tf(task["threads"])
    data, weight = conv_inputs(w, task["seed"])
    fn = tf_conv_callables(tf, w, data, weight, (path,), task["threads"])[path]
    fn()  # TF creates its pools now, from this still unpinned thread (threads inherit its mask)
    pin = _pin_timing_thread(cpus)
    timing = time_callable(fn, _config(task))
    return _record(task, w, timing, pin)


def _measure_tf_native(task: dict[str, Any], w: Workload) -> dict[str, Any]:
    """TF's C API from the C++ loop. Python's tensorflow module is never imported here: TF's
    intra-op pool is sized by the first context in the process, and that must be ours."""
    from .harness import Timing, aligned_empty
    from .tfconv import conv_inputs, tf_native_conv

    data, weight = conv_inputs(w, task["seed"])
    kind = "eager" if task["path"] == "native" else "graph"
    conv = tf_native_conv(kind, w, data, weight, task["threads"])
    conv.run(aligned_empty(w.output_shape))  # pools created before the pinning, as above
    pin = _pin_timing_thread(task["cpus"])
    config = _config(task)
    timing = Timing.from_native(conv.time(**config.kwargs()))
    return _record(task, w, timing, pin)


def _measure_tf_kernel(task: dict[str, Any], w: Workload) -> dict[str, Any]:
    """The oneDNN primitive's own execution time inside TF, from oneDNN's execution profile."""
    import ctypes
    import tempfile
    import time

    from .harness import Timing
    from .onednn import MARK, parse_verbose, per_call_times

    os.environ["ONEDNN_VERBOSE"] = "profile_exec"  # read by oneDNN when TF loads it
    from .tfconv import configure_tf, conv_inputs, tf_conv_callables

    config = _config(task)
    tf = configure_tf(task["threads"])
    data, weight = conv_inputs(w, task["seed"])
    fn = tf_conv_callables(tf, w, data, weight, ("eager",))["eager"]
    fn()  # pools created before the pinning, as above
    pin = _pin_timing_thread(task["cpus"])
    libc = ctypes.CDLL(None)
    mark = (MARK + "\n").encode()
    with tempfile.TemporaryFile(mode="w+") as capture:
        # oneDNN prints on C stdio's stdout: point fd 1 at a file while the calls run.
        sys.stdout.flush()
        libc.fflush(None)
        saved = os.dup(1)
        os.dup2(capture.fileno(), 1)
        try:
            t0 = time.perf_counter()
            calls = 0
            while calls < 2 or time.perf_counter() - t0 < config.warmup_s:
                fn()
                calls += 1
            per_call = (time.perf_counter() - t0) / calls
            budget = config.samples * config.min_sample_s
            n_calls = int(min(max(budget / per_call, config.samples), 50 * config.samples, 5000))
            for _ in range(n_calls):
                libc.printf(b"%s", mark)
                fn()
            libc.fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        text = capture.read()
    times, primitives = per_call_times(parse_verbose(text, skip_foreign=True), w)
    if len(times) != n_calls:
        raise RuntimeError(
            f"oneDNN reported {len(times)} calls for the {n_calls} made: is "
            "ONEDNN_VERBOSE honoured by this TensorFlow?"
        )
    per_sample = len(times) // config.samples
    means = [
        sum(times[i * per_sample : (i + 1) * per_sample]) / per_sample
        for i in range(config.samples)
    ]
    timing = Timing(per_sample, means, [], [], -1, -1)
    extra = {
        **pin,
        "primitives": primitives,
        "primitives_summed": len(primitives) > 1,
        "calls_profiled": len(times),
        # the plain median over every profiled call, as ONEDNN_VERBOSE alone would give it
        "verbose_median_s": statistics.median(times),
    }
    return _record(task, w, timing, extra)


def _check(task: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from .harness import ConvKernel
    from .numerics import compare
    from .tfconv import configure_tf, conv_inputs, tf_reference

    w = _workload(task)
    tf = configure_tf(1)
    data, weight = conv_inputs(w, task["seed"])
    ref = tf_reference(tf, w, data, weight)
    got = ConvKernel(task["kernel_path"], w)(data, weight)
    # A float64 reference says which of the two float32 results is closer to the exact one.
    exact = tf_reference(tf, w, data.astype(np.float64), weight.astype(np.float64))
    return {
        "workload": w.name,
        "batch": w.batch,
        **compare(got, ref, task["rtol"]),
        "tvm_vs_f64_rel_err": compare(got, exact, task["rtol"])["max_rel_err"],
        "tf_vs_f64_rel_err": compare(ref, exact, task["rtol"])["max_rel_err"],
    }


def _overhead(task: dict[str, Any]) -> dict[str, Any]:
    """Each TVM path's fixed price per call: the same loops on a kernel that does nothing."""
    from .harness import EmptyKernel

    cpus = task["cpus"]
    _restrict_process(sorted(set(cpus)))
    pin = _pin_timing_thread(cpus)
    kernel = EmptyKernel(task["kernel_path"])
    paths = {}
    for path in ("native", "cython", "python", "evaluator"):
        timing = tvm_path_timer(path, kernel, [kernel.arg], _config(task))
        s = timing.summary
        paths[path] = {
            "per_call_s": s["median"],
            "min_s": s["min"],
            "cv": s["cv"],
            "samples": s["n"],
            "iters_per_sample": timing.iters_per_sample,
        }
    return {"per_call_s": paths["native"]["per_call_s"], "paths": paths, **pin}


def _time_func(task: dict[str, Any]) -> dict[str, Any]:
    """One compiled function on seeded random arguments (the last one is its output)."""
    import numpy as np

    from . import _core
    from .harness import Timing, aligned_empty, pin_threads

    cpus = task["cpus"]
    _restrict_process(sorted(set(cpus)))
    pin_threads(cpus)
    rng = np.random.default_rng(0)
    arrays = []
    for shape in task["shapes"]:
        a = aligned_empty(tuple(shape))
        a[...] = rng.standard_normal(a.shape)
        arrays.append(a)
    specs = [(f"arg{i}", list(a.shape), i == len(arrays) - 1) for i, a in enumerate(arrays)]
    k = _core.TvmKernel(task["kernel_path"], specs, "main")
    timing = Timing.from_native(k.time(arrays, **_config(task).kwargs()))
    return {"median_s": timing.summary["median"], "cv": timing.summary["cv"]}


HANDLERS = {
    ("time_func", None): _time_func,
    ("measure", "tvm"): _measure_tvm,
    ("measure", "tf"): _measure_tf,
    ("check", None): _check,
    ("overhead", None): _overhead,
}


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    if "model_workload" in task:  # a block, prefix or the whole model
        from .modelworker import HANDLERS as MODEL_HANDLERS

        return MODEL_HANDLERS[(task["kind"], task.get("backend"))](task)
    handler = HANDLERS[(task["kind"], task.get("backend"))]
    return handler(task)


def main(argv: list[str]) -> int:
    task_path, result_path = argv
    with open(task_path) as f:
        task = json.load(f)
    try:
        result: dict[str, Any] = {"ok": True, "result": run_task(task)}
    except Exception as e:  # reported to the parent as this cell's error
        result = {
            "ok": False,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
        }
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
