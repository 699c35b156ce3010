"""The native harness: statistics, the timing loop, pinning, argument checks."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from convbench import _core
from convbench.native.harness import EmptyKernel, RunConfig, time_callable
from convbench.spec.arrays import aligned_empty

FAST = RunConfig(warmup_s=0.001, min_sample_s=0.001, samples=5)


def test_summary_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.lognormal(size=37).tolist()
    s = _core.summarize(x)
    assert s["n"] == 37
    assert s["min"] == min(x) and s["max"] == max(x)
    assert s["median"] == pytest.approx(np.median(x))
    assert s["mean"] == pytest.approx(np.mean(x))
    assert s["stddev"] == pytest.approx(np.std(x, ddof=1))
    assert s["cv"] == pytest.approx(np.std(x, ddof=1) / np.mean(x))
    assert s["p10"] == pytest.approx(np.percentile(x, 10))
    assert s["p90"] == pytest.approx(np.percentile(x, 90))


def test_summary_rejects_bad_samples() -> None:
    with pytest.raises(ValueError, match="zero samples"):
        _core.summarize([])
    with pytest.raises(ValueError, match="finite"):
        _core.summarize([1.0, float("nan")])


def test_timing_loop_calibrates_and_counts_calls() -> None:
    calls = 0

    def body() -> None:
        nonlocal calls
        calls += 1

    t = time_callable(body, RunConfig(warmup_s=0.001, min_sample_s=0.002, samples=4))
    assert len(t.wall_s) == len(t.thread_cpu_s) == len(t.process_cpu_s) == 4
    # calibration grew the count until a sample lasted the minimum time
    assert t.iters_per_sample > 1
    assert all(w * t.iters_per_sample >= 0.002 * 0.5 for w in t.wall_s)
    assert calls >= 4 * t.iters_per_sample
    assert t.summary["median"] > 0


def test_timing_loop_sees_cpu_time_of_busy_work() -> None:
    def spin() -> None:
        sum(range(2000))

    t = time_callable(spin, FAST)
    # pure Python work on one thread: thread CPU time is close to wall time
    assert 0.5 < np.median(t.thread_cpu_s) / t.summary["median"] < 1.5


def test_timing_loop_propagates_errors() -> None:
    def boom() -> None:
        raise KeyError("inside the timed body")

    with pytest.raises(KeyError, match="inside the timed body"):
        time_callable(boom, FAST)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samples": 0}, "samples"),
        ({"min_sample_s": 0.0}, "min_sample_s"),
        ({"warmup_s": -1.0}, "warmup_s"),
    ],
)
def test_bad_run_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _core.time_loop(lambda n: None, **kwargs)


def _in_thread(fn):
    """Runs fn in a fresh thread, so pinning it leaves the test process alone."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_pinning_is_really_applied() -> None:
    target = max(os.sched_getaffinity(0))

    def pin_and_read():
        _core.pin_current_thread([target])
        tid = _core.current_thread_id()
        return (
            _core.current_thread_affinity(),
            _core.process_thread_affinities()[tid],
            _core.current_cpu(),
        )

    mine, seen_by_kernel, cpu = _in_thread(pin_and_read)
    assert mine == [target]
    assert seen_by_kernel == [target]  # read back from the kernel's view of that thread
    assert cpu == target


def test_pinning_to_a_cpu_that_does_not_exist_is_an_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        _in_thread(lambda: _core.pin_current_thread([100000]))
    with pytest.raises(ValueError, match="empty"):
        _in_thread(lambda: _core.pin_current_thread([]))


def test_tvm_pool_workers_are_bound_to_the_planned_cpus() -> None:
    from convbench.cpus import plan_cpus
    from convbench.native.harness import pin_threads

    plan = plan_cpus(3)  # one more thread than the 2-core CI machine has: oversubscribed there

    def configure():
        before = set(_core.process_thread_affinities())
        pin_threads(plan.cpus)
        after = _core.process_thread_affinities()
        return _core.tvm_num_threads(), _core.current_thread_affinity(), before, after

    n, timing_thread, before, after = _in_thread(configure)
    assert n == 3
    assert timing_thread == [plan.cpus[0]]
    workers = sorted(cpus for tid, cpus in after.items() if tid not in before)
    # worker i (i >= 1) is bound to exactly cpus[i]; the calling thread is worker 0
    assert workers == sorted([c] for c in plan.cpus[1:])


def test_empty_kernel_overhead(kernel_cache) -> None:
    k = EmptyKernel(kernel_cache.empty().path)
    t = k.time(k.arg, config=FAST)
    assert (
        0 < t.summary["median"] < 1e-5
    )  # a no-op call costs nanoseconds, not tens of microseconds
    assert t.iters_per_sample > 100


def test_argument_checks_raise_python_errors(kernel_cache) -> None:
    from convbench.native.harness import ConvKernel
    from convbench.spec import ConvWorkload, parse_spec

    w = ConvWorkload(
        parse_spec(
            "convs: [{name: a, input: [1, 6, 5, 16], kernel: [3, 3], out_channels: 16, count: 1}]"
        )[0],
        1,
    )
    k = ConvKernel(kernel_cache.conv(w).path, w)
    x = aligned_empty(w.input_shape)
    wt = aligned_empty(w.weight_shape)
    out = k.new_output()
    with pytest.raises(ValueError, match=r"'data'.*dtype float32, got float64"):
        k.call(x.astype(np.float64), wt, out)
    with pytest.raises(ValueError, match=r"'weight'.*expected shape \(3, 3, 16, 16\)"):
        k.call(x, wt[:, :, :8, :].copy(), out)
    with pytest.raises(ValueError, match="C-contiguous"):
        k.call(np.asfortranarray(x), wt, out)
    ro = k.new_output()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        k.call(x, wt, ro)
    unaligned = np.empty(x.size + 1, np.float32)[1:].reshape(x.shape)
    unaligned[...] = x
    with pytest.raises(ValueError, match="64-byte aligned"):
        k.call(unaligned, wt, out)
    with pytest.raises(ValueError, match="64-byte aligned"):
        k.time(unaligned, wt, out)
    np.testing.assert_array_equal(k(unaligned, wt), k(x, wt))  # the convenience call copies
    with pytest.raises(ValueError, match="takes 3 arrays, got 2"):
        k.call(x, wt)
    with pytest.raises(TypeError, match="not a numpy array"):
        k.call(x, wt, [0.0])
    with pytest.raises(RuntimeError, match="cannot load TVM kernel"):
        ConvKernel(k.path.parent / "missing.so", w)


def test_peak_probe_is_plausible(tmp_path) -> None:
    from convbench.native.peak import PeakCache

    one = _core.measure_peak([min(os.sched_getaffinity(0))], seconds=0.05, repeats=1)
    assert one["isa"] in ("avx512f", "avx2+fma", "scalar") and one["threads"] == 1
    # any x86 core of the last decade does between 1 and 1000 fp32 GFLOP/s on one thread
    assert 1 < one["gflops"] < 1000
    cache = PeakCache(tmp_path / "peak.json")
    first = cache.get(1)
    assert not first["cached"] and first["gflops"] > 0
    again = PeakCache(tmp_path / "peak.json").get(1)
    assert again["cached"] and again["gflops"] == first["gflops"]
