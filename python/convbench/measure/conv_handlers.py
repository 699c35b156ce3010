"""A worker's handlers for single convs: measure one TVM or TF path, check TVM against TF, time the
harness's per-call floor on the empty kernel, time one compiled function (tuning's duel).

Every handler runs in a process of its own (measure/worker.py): fresh thread pools, pinned,
nothing shared with the cell before it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _core
from ..build.winograd import tile_of, u_shape
from ..frameworks.numerics import relative_error
from ..frameworks.onednn import MARK, parse_verbose, per_call_times
from ..frameworks.tf_conv import configure_tf, tf_conv_callables, tf_reference
from ..host import cold_copies
from ..native.harness import (
    ConvKernel,
    EmptyKernel,
    RunConfig,
    Timing,
    pin_threads,
    time_callable,
    time_run_n,
)
from ..native.tf_capi import tf_native_conv
from ..paths import COLD_PATHS, ladder_paths
from ..results.record import Record
from ..spec.arrays import aligned_empty, conv_inputs, fresh_copy
from ..spec.conv import ConvWorkload
from .process import make_record, pin_timing_thread, restrict_process
from .tasks import CheckTask, MeasureTask, OverheadTask, PeakTask, ProbeTask, TimeFuncTask

__all__ = [
    "peak",
    "MAX_PROFILED_CALLS",
    "check_conv",
    "conv_kernel",
    "evaluator_timing",
    "measure_conv_tf",
    "measure_conv_tvm",
    "overhead",
    "tf_kernel_calls",
    "time_func",
    "tvm_path_timer",
]


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


def tvm_path_timer(
    path: str,
    kernel: Any,
    arrays: list[Any],
    config: RunConfig,
    paired: list[float] | None = None,
) -> Timing:
    """Times `kernel` on `arrays` along one TVM path of the overhead ladder. `paired` (the
    evaluator): filled with samples of the native loop, one after each of the evaluator's
    (evaluator_timing's `beside`)."""
    if path == "native":
        return kernel.time(*arrays, config=config)
    kernel.native.check(arrays)  # the paths below hand the arrays to TVM unchecked
    if path == "python":
        import tvm_ffi

        f = tvm_ffi.load_module(str(kernel.path))["main"]
        return time_run_n(_python_loop(f, [tvm_ffi.from_dlpack(x) for x in arrays]), config)
    if path == "cython":
        from .._cyloop import CyLoop

        loop = CyLoop(kernel.native.function_handle, arrays, kernel.native)
        return time_run_n(loop.run_n, config)
    if path == "evaluator":
        import tvm
        import tvm_ffi

        mod = tvm.runtime.load_module(str(kernel.path))
        # The very arrays the native loop times (no copies: a copy is other memory, placed and
        # aligned otherwise).
        tensors = [tvm_ffi.from_dlpack(x) for x in arrays]
        beside = native_sample(kernel, arrays, config) if paired is not None else None
        timing, samples = evaluator_timing(mod, tvm.cpu(0), tensors, config, beside)
        if paired is not None:
            paired.extend(samples)
        return timing
    raise ValueError(f"unknown TVM path {path!r}")


def evaluator_timing(
    mod: Any,
    dev: Any,
    tensors: list[Any],
    config: RunConfig,
    beside: Callable[[], float] | None = None,
) -> tuple[Timing, list[float]]:
    """`main` of a loaded module (here, or in an RPC session) timed by TVM's time_evaluator,
    after the same warm-up as the native loop's, by count and by time. TVM reports wall time
    only: no CPU clocks for this path. `beside`: a sample of another timer of the same call,
    taken after each of the evaluator's samples, so that the two alternate under the same
    conditions (what the machine's other load and the placement of the process's threads did
    to one, they did to the other); its samples are returned with the timing."""
    import time

    f = mod["main"]
    t0, calls = time.perf_counter(), 0
    while calls < config.warmup_iters or time.perf_counter() - t0 < config.warmup_s:
        f(*tensors)
        calls += 1
    evaluator = mod.time_evaluator(
        "main",
        dev,
        number=1,
        repeat=1 if beside else config.samples,
        min_repeat_ms=max(1, round(config.min_sample_s * 1000)),
        repeats_to_cooldown=0,
    )
    if beside is None:
        results = [float(r) for r in evaluator(*tensors).results]
        return Timing(0, results, [], [], -1, -1, calls), []
    results, paired = [], []
    for _ in range(config.samples):
        results.append(float(evaluator(*tensors).results[0]))
        paired.append(beside())
    return Timing(0, results, [], [], -1, -1, calls), paired


def native_sample(kernel: Any, arrays: list[Any], config: RunConfig) -> Callable[[], float]:
    """One sample of the native loop at a time (calibrated afresh, no warm-up beyond a call):
    the timer a `tvm/evaluator` cell alternates with its own samples."""
    one = dataclasses.replace(config, samples=1, warmup_iters=1, warmup_s=0.0)
    return lambda: kernel.time(*arrays, config=one).wall_s[0]


def _cold(task: MeasureTask) -> int:
    """How many copies of a call's arrays (input, weights, output) a cold-cache cell rotates
    through (0: warm)."""
    if task.cache != "cold":
        return 0
    if (task.backend, task.path) not in COLD_PATHS:
        raise ValueError(f"{task.backend}/{task.path} has no cold-cache mode")
    w = task.workload
    shapes = (w.input_shape, w.weight_shape, w.output_shape)
    return cold_copies(4 * sum(math.prod(s) for s in shapes))  # float32


def conv_kernel(path: str, w: ConvWorkload, algorithm: str = "direct") -> ConvKernel:
    """The exported kernel of `w` for its algorithm: "direct" (HWIO weights), "winograd-<m>"
    (weights transformed when it is loaded)."""
    m = tile_of(algorithm)
    return ConvKernel(path, w) if m is None else ConvKernel(path, w, u_shape(w, m))


# The weight transform's time is the median of this many runs, taken when the kernel is loaded.
TRANSFORM_RUNS = 5


def _pin_tvm(cpus: list[int]) -> dict[str, Any]:
    """This process confined to `cpus`, TVM's pool pinned one worker per CPU, and the timing
    thread pinned: what the pinning read back."""
    restrict_process(sorted(set(cpus)))
    pin_threads(cpus)
    return pin_timing_thread(cpus)


def measure_conv_tvm(task: MeasureTask) -> Record:
    w = task.workload
    assert isinstance(w, ConvWorkload)
    pin = _pin_tvm(task.cpus)
    assert task.kernel_path is not None
    kernel = conv_kernel(task.kernel_path, w, task.algorithm)
    data, hwio = conv_inputs(w, task.seed)
    # done once, as oneDNN reorders weights when it creates a primitive; timed apart
    weight, transform_s = kernel.prepare(hwio, runs=TRANSFORM_RUNS)
    extra: dict[str, Any] = {}
    if transform_s is not None:
        extra["weight_transform_s"] = transform_s
    out = kernel.new_output()
    copies = _cold(task)
    if copies:
        sets = [[fresh_copy(data), fresh_copy(weight), kernel.new_output()] for _ in range(copies)]
        timing = Timing.from_native(kernel.native.time_rotating(sets, **task.config.kwargs()))
        return make_record(
            task,
            timing,
            **pin,
            **extra,
            pool_threads=_core.tvm_num_threads(),
            cache="cold",
            cold_copies=copies,
        )
    # the evaluator's samples alternate with the native loop's: the cross-check between the two
    # timers of one call compares them under the same conditions
    paired: list[float] | None = [] if task.path == "evaluator" else None
    timing = tvm_path_timer(task.path, kernel, [data, weight, out], task.config, paired)
    if paired:
        extra["paired_native_s"] = paired
    return make_record(task, timing, **pin, **extra, pool_threads=_core.tvm_num_threads())


def measure_conv_tf(task: MeasureTask) -> Record:
    restrict_process(sorted(set(task.cpus)))
    if task.path in ("native", "native-graph"):
        return _measure_tf_native(task)
    if task.path == "kernel":
        return _measure_tf_kernel(task)
    w = task.workload
    tf = configure_tf(task.threads)
    data, weight = conv_inputs(w, task.seed)
    copies = _cold(task)
    fn = tf_conv_callables(tf, w, data, weight, (task.path,), task.threads, copies=max(copies, 1))[
        task.path
    ]
    fn()  # TF creates its pools now, from this still unpinned thread (threads inherit its mask)
    pin = pin_timing_thread(task.cpus)
    timing = time_callable(fn, task.config)
    if copies:
        return make_record(task, timing, **pin, cache="cold", cold_copies=copies)
    return make_record(task, timing, **pin)


def _measure_tf_native(task: MeasureTask) -> Record:
    """TF's C API from the C++ loop. Python's tensorflow module is never imported here: TF's
    intra-op pool is sized by the first context in the process, and that must be ours."""
    w = task.workload
    assert isinstance(w, ConvWorkload)
    data, weight = conv_inputs(w, task.seed)
    kind = "eager" if task.path == "native" else "graph"
    conv = tf_native_conv(kind, w, data, weight, task.threads)
    conv.run(aligned_empty(w.output_shape))  # pools created before the pinning, as above
    pin = pin_timing_thread(task.cpus)
    timing = Timing.from_native(conv.time(**task.config.kwargs()))
    return make_record(task, timing, **pin)


# The most calls profiled for one tf/kernel cell (each prints a line of oneDNN's profile), unless
# --samples asks for more: every sample gets at least one call.
MAX_PROFILED_CALLS = 5000


def tf_kernel_calls(config: RunConfig, per_call_s: float) -> int:
    """How many calls a tf/kernel cell profiles: enough for --samples x --min-sample-time, at
    most 50 per sample and MAX_PROFILED_CALLS in all, and never fewer than one per sample (a
    sample of no calls would divide by zero)."""
    budget = config.samples * config.min_sample_s
    wanted = budget / per_call_s if per_call_s > 0 else float(50 * config.samples)
    n = int(min(wanted, 50 * config.samples, MAX_PROFILED_CALLS))
    return max(n, config.samples)


def _measure_tf_kernel(task: MeasureTask) -> Record:
    """The oneDNN primitive's own execution time inside TF, from oneDNN's execution profile."""
    import ctypes
    import tempfile
    import time

    w = task.workload
    assert isinstance(w, ConvWorkload)
    os.environ["ONEDNN_VERBOSE"] = "profile_exec"  # read by oneDNN when TF loads it
    config = task.config
    tf = configure_tf(task.threads)
    data, weight = conv_inputs(w, task.seed)
    copies = _cold(task)
    fn = tf_conv_callables(tf, w, data, weight, ("eager",), copies=max(copies, 1))["eager"]
    fn()  # pools created before the pinning, as above
    pin = pin_timing_thread(task.cpus)
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
            while calls < max(2, config.warmup_iters) or time.perf_counter() - t0 < config.warmup_s:
                fn()
                calls += 1
            per_call = (time.perf_counter() - t0) / calls
            n_calls = tf_kernel_calls(config, per_call)
            # The process's CPU time over the wall time of the profiled calls: how many cores
            # the calls kept busy (oneDNN's own times carry no CPU clock).
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(n_calls):
                libc.printf(b"%s", mark)
                fn()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
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
    return make_record(
        task,
        timing,
        **pin,
        primitives=primitives,
        primitives_summed=len(primitives) > 1,
        calls_profiled=len(times),
        # the plain median over every profiled call, as ONEDNN_VERBOSE alone would give it
        verbose_median_s=statistics.median(times),
        cpu_s=cpu / n_calls,
        parallelism=cpu / wall if wall > 0 else None,
        cache="cold" if copies else None,
        cold_copies=copies or None,
    )


def probe_algorithms(task: ProbeTask) -> dict[str, Any]:
    """{"median_s": {algorithm: median}} of the candidate kernels of a conv, their samples
    alternated round by round in this one process (ProbeTask)."""
    w = task.workload
    assert isinstance(w, ConvWorkload)
    _pin_tvm(task.cpus)
    data, hwio = conv_inputs(w, task.seed)
    runs = {}
    for algorithm, path in task.kernels.items():
        kernel = conv_kernel(path, w, algorithm)
        weight, _ = kernel.prepare(hwio)
        runs[algorithm] = (kernel, [data, weight, kernel.new_output()])
    warm = dataclasses.replace(task.config, samples=1)
    for kernel, arrays in runs.values():
        kernel.time(*arrays, config=warm)  # each warmed up as a cell is, before any round
    samplers = {a: native_sample(k, arrays, task.config) for a, (k, arrays) in runs.items()}
    times: dict[str, list[float]] = {a: [] for a in runs}
    for _ in range(task.config.samples):
        for algorithm, sample in samplers.items():
            times[algorithm].append(sample())
    return {"median_s": {a: statistics.median(v) for a, v in times.items()}}


def check_conv(task: CheckTask) -> dict[str, Any]:
    w = task.workload
    assert isinstance(w, ConvWorkload)
    tf = configure_tf(1)
    data, weight = conv_inputs(w, task.seed)
    ref = tf_reference(tf, w, data, weight)
    got = conv_kernel(task.kernel_paths["kernel"], w, task.algorithm)(data, weight)
    # A float64 reference says which of the two float32 results is closer to the exact one.
    exact = tf_reference(tf, w, data.astype(np.float64), weight.astype(np.float64))
    return {
        "workload": w.name,
        "batch": w.batch,
        "algorithm": task.algorithm,
        **relative_error(got, ref, task.rtol),
        "tvm_vs_f64_rel_err": relative_error(got, exact, task.rtol)["max_rel_err"],
        "tf_vs_f64_rel_err": relative_error(ref, exact, task.rtol)["max_rel_err"],
    }


def overhead(task: OverheadTask) -> dict[str, Any]:
    """Each TVM path's fixed price per call: the same loops on a kernel that does nothing."""
    restrict_process(sorted(set(task.cpus)))
    pin = pin_timing_thread(task.cpus)
    kernel = EmptyKernel(task.kernel_path)
    paths = {}
    for path in ("native", *ladder_paths("tvm")):
        timing = tvm_path_timer(path, kernel, [kernel.arg], task.config)
        s = timing.summary
        paths[path] = {
            "per_call_s": s["median"],
            "min_s": s["min"],
            "cv": s["cv"],
            "samples": s["n"],
            "iters_per_sample": timing.iters_per_sample,
        }
    return {"per_call_s": paths["native"]["per_call_s"], "paths": paths, **pin}


def peak(task: PeakTask) -> dict[str, Any]:
    """The fp32 FMA roof, measured in a process of its own (nothing else runs beside it)."""
    restrict_process(sorted(set(task.cpus)))
    return dict(_core.measure_peak(list(task.cpus), task.seconds, task.repeats))


def time_func(task: TimeFuncTask) -> dict[str, Any]:
    """One compiled function on seeded random arguments (the last one is its output)."""
    restrict_process(sorted(set(task.cpus)))
    pin_threads(task.cpus)
    rng = np.random.default_rng(0)
    arrays = []
    for shape in task.shapes:
        a = aligned_empty(tuple(shape))
        a[...] = rng.standard_normal(a.shape)
        arrays.append(a)
    specs = [(f"arg{i}", list(a.shape), i == len(arrays) - 1) for i, a in enumerate(arrays)]
    k = _core.TvmKernel(task.kernel_path, specs, "main")
    timing = Timing.from_native(k.time(arrays, **task.config.kwargs()))
    return {"median_s": timing.summary["median"], "cv": timing.summary["cv"]}
