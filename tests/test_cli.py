"""`convbench` end to end on a tiny shapes file, in subprocesses as a user runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICK
from convbench.native.harness import RunConfig
from convbench.paths import PATHS
from convbench.results.record import Record, pool_processes
from convbench.run import Runner, RunOptions
from convbench.spec import load_spec

RECORD_FIELDS = {
    "workload",
    "backend",
    "path",
    "threads",
    "batch",
    "samples",
    "median_s",
    "min_s",
    "mean_s",
    "stddev_s",
    "cpu_s",
    "gflops",
    "oversubscribed",
    "cv",
    "p10_s",
    "p90_s",
    "parallelism",
}


def _unstable_after(r: dict, n: int) -> bool:
    """Whether a record's first `n` processes, pooled, leave its cell unstable."""
    one = {**r, "process_samples_s": None, "process_passes": None, "repetitions": None}
    rs = [Record.from_json({**one, "wall_samples_s": s}) for s in r["process_samples_s"][:n]]
    return pool_processes(rs).unstable


@pytest.fixture(scope="module")
def cli_run(convbench, tiny_shapes: Path, tmp_path_factory: pytest.TempPathFactory):
    cwd = tmp_path_factory.mktemp("run")
    over = len(os.sched_getaffinity(0)) + 1  # always more threads than this machine lets us use
    out = cwd / "results.json"
    cache = cwd / "cache"
    proc = convbench(
        "--shapes",
        str(tiny_shapes),
        "--threads",
        f"1,{over}",
        "--json",
        str(out),
        "--cache-dir",
        str(cache),
        *QUICK,
        "--repetitions",
        "2",
        "--max-repetitions",
        "3",
        cwd=cwd,
    )
    return proc, json.loads(out.read_text()), over, cwd, cache


def test_cli_runs_every_cell_and_writes_json(cli_run) -> None:
    proc, doc, over, _, _ = cli_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert doc["complete"] and doc["errors"] == []
    for key in (
        "convbench",
        "machine",
        "libraries",
        "tvm_target",
        "harness_overhead",
        "workloads",
        "records",
        "checks",
    ):
        assert key in doc
    assert doc["machine"]["cores"] == len(os.sched_getaffinity(0))
    assert doc["harness_overhead"]["per_call_s"] > 0
    assert {w["name"] for w in doc["workloads"]} == {"tiny_same", "tiny_logits"}
    assert all(w["kind"] == "conv" and w["benchdnn"].startswith("mb1ic") for w in doc["workloads"])
    cells = {(r["workload"], r["threads"], r["backend"], r["path"]) for r in doc["records"]}
    assert cells == {
        (w, t, b, p) for w in ("tiny_same", "tiny_logits") for t in (1, over) for b, p in PATHS
    }
    assert {"native", "cython", "python", "evaluator"} <= {p for b, p in PATHS if b == "tvm"}
    assert {"eager", "function"} <= {p for b, p in PATHS if b == "tf"}
    for r in doc["records"]:
        assert RECORD_FIELDS <= set(r), RECORD_FIELDS - set(r)
        assert r["oversubscribed"] == (r["threads"] == over)
        # two processes of three samples each, pooled, and a third in a pass of its own where
        # the first two left the cell unstable; every derived figure recomputed
        n = r["repetitions"]
        assert r["process_passes"] == list(range(n))
        assert n == (3 if _unstable_after(r, 2) else 2)
        assert [len(s) for s in r["process_samples_s"]] == [3] * n
        pooled = [t for s in r["process_samples_s"] for t in s]
        assert r["samples"] == 3 * n and sorted(r["wall_samples_s"]) == sorted(pooled)
        assert r["median_s"] == pytest.approx(np.median(pooled), rel=1e-12)
        assert r["p10_s"] == pytest.approx(np.percentile(pooled, 10), rel=1e-12)
        assert r["cv"] == pytest.approx(np.std(pooled, ddof=1) / np.mean(pooled), rel=1e-9)
        assert r["process_medians_s"] == pytest.approx(
            [np.median(s) for s in r["process_samples_s"]]
        )
        assert r["min_s"] <= r["median_s"] and r["gflops"] > 0
        flops = next(w["flops"] for w in doc["workloads"] if w["name"] == r["workload"])
        assert r["gflops"] == pytest.approx(flops / r["median_s"] / 1e9, rel=1e-9)
        peak = doc["peak"][str(r["threads"])]["gflops"]
        assert r["pct_peak"] == pytest.approx(100 * r["gflops"] / peak, rel=1e-9)
        assert r["pinned"] is True
        assert 0 < r["pct_peak"]
        if r["path"] == "evaluator":  # times reported by TVM: no CPU clock
            assert r["cpu_s"] is None
            # the native loop's samples alternated with its own, one for one, in each process
            paired = r["paired_native_s"]
            assert len(paired) == r["samples"] and all(t > 0 for t in paired)
        else:
            assert r["cpu_s"] > 0 and r["parallelism"] > 0
        if r["path"] == "kernel":
            assert "convolution" in r["primitives"] and r["calls_profiled"] >= 3
    floor = doc["harness_overhead"]["paths"]
    assert set(floor) == {"native", "cython", "python", "evaluator"}
    assert all(v["per_call_s"] > 0 for v in floor.values())
    assert doc["peak"]["1"]["gflops"] > 0
    for entry in doc["peak"].values():  # the short probe again at the start of each pass
        readings = entry["pass_gflops"]
        assert len(readings) == 2 and min(readings) > 0
        assert entry["this_run_gflops"] == pytest.approx(np.median(readings), rel=1e-12)
        assert entry["drift"] == pytest.approx(np.median(readings) / entry["gflops"] - 1)
    ladders = {(e["workload"], e["threads"], e["backend"]): e for e in doc["overheads"]}
    assert len(ladders) == 2 * 2 * 2
    medians = {
        (r["workload"], r["threads"], r["backend"], r["path"]): r["median_s"]
        for r in doc["records"]
    }
    for (name, t, backend), e in ladders.items():
        # every wrapper is decomposed or left out with its reason; nothing is negative
        assert set(e["python_overhead"]) | set(e.get("excluded", {})) >= (
            {"eager", "function", "session", "session-feedless"}
            if backend == "tf"
            else {"cython", "python", "evaluator"}
        )
        native = medians[(name, t, backend, "native")]
        for path, v in e["python_overhead"].items():
            base = medians[(name, t, backend, v["over"])]
            added = (medians[(name, t, backend, path)] - base) * 1e6
            # a wrapper within noise of its rung adds nothing (never a negative figure)
            assert v["us"] == pytest.approx(max(added, 0.0))
            assert v.get("within_noise", False) == (added < 0)
            assert v["us"] >= 0
        if "kernel" in e:
            assert 0 <= e["kernel"]["us"] <= native * 1e6
            assert e["kernel"]["us"] + e["native_dispatch"]["us"] == pytest.approx(native * 1e6)
    tf1 = ladders[("tiny_same", 1, "tf")]
    assert "kernel" in tf1 or "kernel" in tf1["excluded"]
    assert {(c["workload"], c["batch"]) for c in doc["checks"]} == {
        ("tiny_same", 1),
        ("tiny_logits", 1),
    }
    assert all(c["ok"] and c["max_rel_err"] <= 1e-5 for c in doc["checks"])


def test_cli_prints_results_and_warns_about_oversubscription(cli_run) -> None:
    proc, _, over, _, _ = cli_run
    assert "tvm/native" in proc.stdout and "tf/function" in proc.stdout
    assert f"{over} threads on" in proc.stdout and "oversubscribed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_second_run_reuses_the_kernel_cache(convbench, cli_run, tiny_shapes: Path) -> None:
    _, _, _, cwd, cache = cli_run
    out = cwd / "again.json"
    proc = convbench(
        "--shapes",
        str(tiny_shapes),
        "--threads",
        "1",
        "--json",
        str(out),
        "--cache-dir",
        str(cache),
        *QUICK,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    assert all(k["cached"] for k in json.loads(out.read_text())["kernels"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "positive integers"),
        (["--threads", "two"], "positive integers"),
        (["--batch", "1,-3"], "positive integers"),
        (["--samples", "0"], "positive integer"),
    ],
)
def test_bad_arguments_are_refused_clearly(
    convbench, args: list[str], message: str, tiny_shapes: Path, tmp_path: Path
) -> None:
    proc = convbench("--shapes", str(tiny_shapes), *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_bad_shapes_file_is_refused_clearly(convbench, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "convs: [{name: x, input: [1, 4, 4, 2], kernel: [3, 3], out_channels: 2, count: -2}]"
    )
    proc = convbench("--shapes", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert "convs[0] ('x')" in proc.stderr and "'count'" in proc.stderr
    assert "Traceback" not in proc.stderr
    missing = convbench("--shapes", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_a_failing_cell_is_reported_and_the_run_goes_on(tiny_shapes: Path, tmp_path: Path) -> None:
    """A kernel that cannot be loaded fails its cells; every other cell is still measured."""
    from convbench.build.cache import BuiltKernel

    specs = load_spec(tiny_shapes)
    runner = Runner(
        specs,
        RunOptions(
            threads=[1],
            config=RunConfig(0.001, 0.001, 2),
            cache_dir=tmp_path / "cache",
            algos="direct",  # the broken kernel is the cell's (auto would pick Winograd over it)
        ),
        json_path=tmp_path / "r.json",
    )
    original_build = runner.build

    def build_then_break(cache):  # sabotage one kernel after a good build
        empty = original_build(cache)
        broken = tmp_path / "broken.so"
        broken.write_text("not a shared library")
        runner.kernels[(runner.workloads[0].key, 1)] = BuiltKernel(
            "x", broken, "k", "s", False, 0.0
        )
        return empty

    runner.build = build_then_break  # type: ignore[method-assign]
    doc = runner.run()
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["complete"]
    failed = {(e["stage"], e.get("workload"), e.get("path")) for e in saved["errors"]}
    assert ("measure", "tiny_same", "native") in failed and ("check", "tiny_same", None) in failed
    assert any("cannot load TVM kernel" in e["error"] for e in saved["errors"])
    measured = {(r.workload, r.backend, r.path) for r in doc.records}
    assert ("tiny_logits", "tvm", "native") in measured
    assert ("tiny_same", "tf", "eager") in measured


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
@pytest.mark.parametrize(
    ("backend", "path"), [("tf", "eager"), ("tf", "native"), ("tvm", "native")]
)
def test_thread_pools_are_not_trapped_on_the_timing_cpu(
    backend: str, path: str, tiny_shapes, tmp_path
):
    """Pinning the timing thread must not pin the pools it creates: a 2-thread cell's other
    threads may use the second CPU."""
    from convbench.build.cache import KernelCache
    from convbench.cpus import plan_cpus
    from convbench.measure.pool import run_worker
    from convbench.measure.tasks import MeasureTask
    from convbench.spec import ConvWorkload

    w = ConvWorkload(load_spec(tiny_shapes)[0], 1)
    plan = plan_cpus(2)
    task = MeasureTask(
        workload=w,
        backend=backend,
        path=path,
        threads=2,
        cpus=list(plan.cpus),
        available_cpus=plan.available,
        seed=0,
        config=RunConfig(warmup_s=0.001, min_sample_s=0.001, samples=2),
        kernel_path=str(KernelCache(tmp_path).conv(w).path) if backend == "tvm" else None,
    )
    record = run_worker(task, 300)
    assert record["timing_thread_cpus"] == [plan.cpus[0]]
    others = record["other_threads_cpus"]
    assert any(plan.cpus[1] in cpus for cpus in others), others
    # no pool thread inherited the timing thread's single CPU
    assert [plan.cpus[0]] not in others, others


@pytest.mark.parametrize("path", ["native", "python"])
def test_one_thread_cell_keeps_one_cpu_busy(path: str, tiny_shapes, tmp_path):
    """A 1-thread cell must be the only busy thread of its worker. numpy's OpenBLAS pool, started
    at import, busy-waited beside it (par 1.9) until workers got OPENBLAS_NUM_THREADS=1."""
    from convbench.build.cache import KernelCache
    from convbench.measure.pool import run_worker
    from convbench.run import measure_task
    from convbench.spec import ConvWorkload

    w = ConvWorkload(load_spec(tiny_shapes)[0], 1)
    config = RunConfig(warmup_s=0.005, min_sample_s=0.002, samples=5)
    kernel = KernelCache(tmp_path).conv(w).path
    record = run_worker(measure_task(w, 1, "tvm", path, config, kernel=kernel), 300)
    # process CPU time over wall time: a second busy thread in the process shows as ~2
    assert record["parallelism"] < 1.3, record["parallelism"]


def test_report_reprints_a_results_file(convbench, cli_run, tmp_path: Path) -> None:
    _, _, _, cwd, _ = cli_run
    proc = convbench("report", str(cwd / "results.json"), cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    for title in ("every path", "kernel against kernel", "where the time goes", "cross-checks"):
        assert title in proc.stdout
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    proc = convbench("report", str(bad), cwd=tmp_path)
    assert proc.returncode == 2 and "not a convbench results file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_paths_option_selects_cells(convbench, tiny_shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = convbench(
        "--shapes",
        str(tiny_shapes),
        "--threads",
        "1",
        "--paths",
        "tvm/native,tf/kernel",
        "--json",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
        *QUICK,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert {(r["backend"], r["path"]) for r in doc["records"]} == {
        ("tvm", "native"),
        ("tf", "kernel"),
    }
    k = next(r for r in doc["records"] if r["path"] == "kernel")
    assert k["verbose_median_s"] > 0
    bad = convbench("--shapes", str(tiny_shapes), "--paths", "tvm/fast", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown path(s) tvm/fast" in bad.stderr


def _with_processes(doc: dict, rng, n: int = 3, scale: dict | None = None) -> dict:
    """A copy of `doc` whose records were each measured in `n` processes of ten samples with 1%
    noise (times `scale[(backend, path)]` where given)."""
    out = json.loads(json.dumps(doc))
    for r in out["records"]:
        f = (scale or {}).get((r["backend"], r["path"]), 1.0)
        groups = [list(r["median_s"] * f * (1 + 0.01 * rng.standard_normal(10))) for _ in range(n)]
        r["process_samples_s"] = groups
        r["wall_samples_s"] = [t for g in groups for t in g]
        r["median_s"] = float(np.median(r["wall_samples_s"]))
        r["repetitions"] = n
        r["process_passes"] = list(range(n))
    return out


def test_compare_sets_a_change_beside_the_machines_own(cli_run) -> None:
    """Two runs whose peak probes say the machine ran 5% faster in the second: cells 5% faster
    went with the machine; a cell 20% faster, or 5% slower, changed."""
    from convbench.results.compare import compare_runs, machine_factor
    from convbench.results.document import ResultsDoc

    _, doc, _, _, _ = cli_run
    rng = np.random.default_rng(1)
    old = _with_processes(doc, rng)
    scale = {("tvm", "native"): 0.8 * 0.95, ("tf", "kernel"): 1.05}
    new = _with_processes(doc, rng, scale={**{p: 0.95 for p in PATHS}, **scale})
    threads = sorted({r["threads"] for r in doc["records"]})
    old["peak"] = {
        str(t): {"gflops": 100.0, "cached": True, "this_run_gflops": 95.0} for t in threads
    }
    new["peak"] = {
        str(t): {"gflops": 100.0, "cached": True, "this_run_gflops": 100.0} for t in threads
    }
    a, b = ResultsDoc.from_json(old), ResultsDoc.from_json(new)
    assert machine_factor(a, b, threads[0]) == pytest.approx(0.95)
    for r in compare_runs(a, b):
        assert r["machine"] == pytest.approx(0.95)
        if (r["backend"], r["path"]) == ("tvm", "native"):
            assert r["verdict"] == "faster"
        elif (r["backend"], r["path"]) == ("tf", "kernel"):
            assert r["verdict"] == "slower"
        else:
            assert r["verdict"] in ("faster as the machine (x0.950)", "no significant change")
    # without a probe on one side (a file from before, a failed probe): no machine to set beside
    del new["peak"][str(threads[0])]
    rows = compare_runs(a, ResultsDoc.from_json(new))
    assert all(r["machine"] is None for r in rows if r["threads"] == threads[0])
    assert any(r["verdict"] == "faster" for r in rows if r["path"] == "eager")


def test_compare_tests_per_process_medians(convbench, cli_run, tmp_path: Path) -> None:
    from convbench.results.compare import compare_runs
    from convbench.results.document import ResultsDoc

    _, doc, _, cwd, _ = cli_run
    rng = np.random.default_rng(0)
    old = _with_processes(doc, rng)
    new = _with_processes(doc, rng, scale={("tvm", "native"): 3.0})
    rows = {
        (r["workload"], r["threads"], r["backend"], r["path"]): r
        for r in compare_runs(ResultsDoc.from_json(old), ResultsDoc.from_json(new))
    }
    assert len(rows) == len(doc["records"])
    changed = rows[("tiny_same", 1, "tvm", "native")]
    assert changed["verdict"] == "slower" and changed["processes"] == [3, 3]
    assert changed["ratio"] == pytest.approx(3, rel=0.02)
    # every other cell is the same distribution drawn again: an A/A pair
    others = [r for k, r in rows.items() if k[2:] != ("tvm", "native")]
    called = [r for r in others if r["verdict"] != "no significant change"]
    assert len(called) <= 0.1 * len(others), called
    # one process per side (a run with --repetitions 1, or an older file) is not tested
    doc1 = json.loads(json.dumps(doc))
    for r in doc1["records"]:
        r.pop("process_samples_s", None)
    single = compare_runs(ResultsDoc.from_json(doc1), ResultsDoc.from_json(doc1))
    assert all(r["verdict"].startswith("too few processes (1 and 1") for r in single)
    paths = []
    for name, d in (("old.json", old), ("new.json", new)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(d))
    proc = convbench("compare", *map(str, paths), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "slower" in proc.stdout and "per-process medians" in proc.stdout
    # what moved every cell alike, and each run's passes: recomputed
    shift = np.median([r["ratio"] for r in rows.values()])
    assert f"the median new/old is {shift:.3f} over {len(rows)} cells" in proc.stdout
    assert "old run, the median cell pass by pass" in proc.stdout
    bad = convbench("compare", str(paths[0]), str(tmp_path / "missing.json"), cwd=tmp_path)
    assert bad.returncode == 2 and "not a convbench results file" in bad.stderr
    # two machines: shown side by side, no verdict unless asked
    other = json.loads(json.dumps(new))
    other["machine"]["cpu_model"] = "Some Other CPU"
    paths[1].write_text(json.dumps(other))
    proc = convbench("compare", *map(str, paths), cwd=tmp_path)
    assert "different machines" in proc.stdout and "Some Other CPU" in proc.stdout
    assert " slower" not in proc.stdout
    proc = convbench("compare", *map(str, paths), "--across-machines", cwd=tmp_path)
    assert "slower" in proc.stdout
    # TVM's cells measured on an RPC device ran on another machine than the run's own
    remote = json.loads(json.dumps(new))
    remote["remote"] = {"cpu_model": "Remote CPU", "llvm_cpu": "neoverse-v2", "key": "arm"}
    for r in remote["records"]:
        if r["backend"] == "tvm":
            r["device"] = "arm:board/pid1/cpus0"
    rows = compare_runs(ResultsDoc.from_json(new), ResultsDoc.from_json(remote))
    assert rows and all(
        r["verdict"].startswith("different machines") == (r["backend"] == "tvm") for r in rows
    )
    paths[1].write_text(json.dumps(remote))
    proc = convbench("compare", *map(str, paths), cwd=tmp_path)
    assert "TVM's cells on Remote CPU (neoverse-v2) through RPC" in proc.stdout
