"""A benchmark run: build or reuse kernels, check them against TF, then measure every cell
(workload, batch, threads, backend, path) in a worker process of its own.

Results are written after every cell (atomic rename), so an interrupted or crashed run keeps
everything measured before the fault.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .harness import RunConfig
from .kernels import BuiltKernel, KernelCache
from .machine import allowed_cpus, cpu_model, plan_cpus
from .spec import ConvSpec, Workload

__all__ = ["ALL_PATHS", "Cell", "MODEL_PATHS", "PATHS", "RunOptions", "Runner"]

# Every (backend, path) a cell can measure, in display order.
PATHS: tuple[tuple[str, str], ...] = (
    ("tvm", "native"),
    ("tvm", "cython"),
    ("tvm", "python"),
    ("tvm", "evaluator"),
    ("tf", "kernel"),
    ("tf", "native"),
    ("tf", "native-graph"),
    ("tf", "eager"),
    ("tf", "function"),
    ("tf", "session"),
    ("tf", "session-feedless"),
)

# The paths of a model cut (block, prefix, whole model). native-unfused: the Relax build without
# operator fusion; *-noopt: TF with grappler off; session-no-onednn: TF_ENABLE_ONEDNN_OPTS=0.
MODEL_PATHS: tuple[tuple[str, str], ...] = (
    ("tvm", "native"),
    ("tvm", "native-unfused"),
    ("tvm", "python"),
    ("tf", "native-graph"),
    ("tf", "native-graph-noopt"),
    ("tf", "eager"),
    ("tf", "function"),
    ("tf", "session"),
    ("tf", "session-noopt"),
    ("tf", "session-no-onednn"),
)
ALL_PATHS = PATHS + tuple(p for p in MODEL_PATHS if p not in PATHS)

UNSTABLE_CV = 0.10  # pyperf's threshold: std >= 10% of the mean


@dataclass(frozen=True)
class Cell:
    workload: Any  # Workload (a conv) or model.ModelWorkload
    threads: int
    backend: str
    path: str


@dataclass
class RunOptions:
    threads: list[int]
    batches: list[int] = field(default_factory=lambda: [1])
    config: RunConfig = field(default_factory=RunConfig)
    rtol: float = 1e-5
    seed: int = 0
    cell_timeout_s: float = 600.0
    cache_dir: Path | None = None
    tuning_dirs: list[Path] | None = None  # None: the user's tuning dir, then the shipped one
    paths: tuple[tuple[str, str], ...] = ALL_PATHS
    model: Any = None  # model.ModelSpec: its blocks and whole model run beside the convs
    cuts: list[tuple[str | None, str]] | None = None  # from/to pairs instead of the blocks
    partsearch: bool = False  # the model's prefixes instead of its blocks
    convs: bool = True  # the single convs of the shapes file
    layers: bool = True  # per-layer tables of every model cut


# numpy's OpenBLAS starts a pool at import whose threads busy-wait for a while after it: in a
# fresh worker that thread competed with the measured one (`par` 1.9 at 1 thread; at 2 threads a
# 3 us kernel's median was 4-8 ms, scheduler slices lost to the spinner). Workers use no BLAS.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class WorkerError(RuntimeError):
    pass


def run_worker(task: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Runs one task in a fresh interpreter; returns its result or raises WorkerError."""
    with tempfile.TemporaryDirectory(prefix="convbench-") as tmp:
        task_path, result_path = Path(tmp) / "task.json", Path(tmp) / "result.json"
        task_path.write_text(json.dumps(task))
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            **WORKER_ENV,
        )
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "convbench.worker", str(task_path), str(result_path)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise WorkerError(f"timed out after {timeout_s:.0f} s") from None
        if not result_path.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise WorkerError(f"worker exited with code {proc.returncode} and no result: {tail}")
        result = json.loads(result_path.read_text())
    if not result["ok"]:
        raise WorkerError(result["error"])
    return dict(result["result"])


def measure_task(
    w: Any,
    threads: int,
    backend: str,
    path: str,
    config: RunConfig,
    seed: int = 0,
    kernel_path: Path | None = None,
    available: list[int] | None = None,
) -> dict[str, Any]:
    """The worker task that measures one cell, its threads planned on the available CPUs."""
    plan = plan_cpus(threads, available)
    task: dict[str, Any] = {
        "kind": "measure",
        "backend": backend,
        "path": path,
        **_workload_task(w),
        "batch": w.batch,
        "threads": threads,
        "cpus": list(plan.cpus),
        "available_cpus": plan.available,
        "seed": seed,
        "config": asdict(config),
    }
    if kernel_path is not None:
        task["kernel_path"] = str(kernel_path)
    return task


def _workload_task(w: Any) -> dict[str, Any]:
    """How a worker gets its workload: a conv spec, or a model cut."""
    if isinstance(w, Workload):
        return {"spec": w.spec.model_dump(mode="json")}
    return w.task()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("apache-tvm", "apache-tvm-ffi", "tensorflow-cpu", "tensorflow", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _digest(w: Any) -> str:
    import hashlib

    from .kernels import _source_digest

    text = json.dumps({**w.problem(), "source": _source_digest()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


class Runner:
    """Drives a run; `on_event(kind, payload)` lets a front end show progress as results arrive."""

    def __init__(
        self,
        specs: list[ConvSpec],
        options: RunOptions,
        json_path: Path | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.specs = specs
        self.options = options
        self.json_path = json_path
        self.emit = on_event or (lambda kind, payload: None)
        self.available = allowed_cpus()
        self.workloads: list[Any] = (
            [Workload(s, b) for s in specs for b in options.batches] if options.convs else []
        )
        if options.model is not None:
            from .model import model_workloads

            self.workloads += model_workloads(
                options.model, options.batches, options.cuts, options.partsearch
            )
        self.kernels: dict[tuple[str, int], BuiltKernel] = {}
        self.unfused: dict[str, BuiltKernel] = {}
        self.untuned_cuts: set[str] = set()
        self.graph_defs: dict[str, Path] = {}
        self.doc: dict[str, Any] = {}

    # --- results document ---------------------------------------------------------------------
    def _start_doc(self, target: str) -> None:
        from .machine import host_cpu_name

        o = self.options
        self.doc = {
            "convbench": __version__,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "finished_at": None,
            "complete": False,
            "machine": {
                "cpu_model": cpu_model(),
                "llvm_cpu": host_cpu_name(),
                "logical_cpus": os.cpu_count(),
                "cpus_available": self.available,
                "cores": len(self.available),
                "platform": platform.platform(),
            },
            "libraries": library_versions(),
            "tvm_target": target,
            "config": {
                "threads": o.threads,
                "batches": o.batches,
                "warmup_s": o.config.warmup_s,
                "min_sample_s": o.config.min_sample_s,
                "samples": o.config.samples,
                "rtol": o.rtol,
                "seed": o.seed,
                "tf_threads": "intra_op=threads, inter_op=1",
                "worker_env": WORKER_ENV,
                "tvm_threads": "pool size=threads, worker i bound to cpus[i]",
            },
            "harness_overhead": None,
            "peak": {},
            "workloads": [w.describe() for w in self.workloads],
            "kernels": [],
            "checks": [],
            "layers": [],
            "overheads": [],
            "records": [],
            "errors": [],
            "warnings": [],
        }

    def save(self) -> None:
        if self.json_path is not None and self.doc:
            _write_json_atomic(self.json_path, self.doc)

    def _error(self, stage: str, what: dict[str, Any], message: str) -> None:
        entry = {"stage": stage, **what, "error": message}
        self.doc["errors"].append(entry)
        self.emit("error", entry)
        self.save()

    def _warn(self, message: str) -> None:
        if message not in self.doc["warnings"]:
            self.doc["warnings"].append(message)
            self.emit("warning", {"message": message})

    # --- stages -------------------------------------------------------------------------------
    def paths_of(self, w: Any) -> tuple[tuple[str, str], ...]:
        valid = PATHS if isinstance(w, Workload) else MODEL_PATHS
        return tuple(p for p in self.options.paths if p in valid)

    def cells(self) -> Iterator[Cell]:
        for w in self.workloads:
            for t in self.options.threads:
                for backend, path in self.paths_of(w):
                    yield Cell(w, t, backend, path)

    def build(self, cache: KernelCache) -> BuiltKernel | None:
        """Kernels for every workload and thread count (tuned where the database has one)."""
        empty = None
        try:
            empty = cache.empty()
        except Exception as e:
            self._error("build", {"workload": "empty"}, f"{type(e).__name__}: {e}")
        untuned: dict[str, list[int]] = {}
        for w in self.workloads:
            if not isinstance(w, Workload):
                self._build_model(cache, w)
                continue
            for t in self.options.threads:
                self.emit("build_start", {"workload": w.name, "batch": w.batch, "threads": t})
                try:
                    k = cache.conv(w, t)
                except Exception as e:
                    self._error(
                        "build",
                        {"workload": w.name, "batch": w.batch, "threads": t},
                        f"{type(e).__name__}: {e}",
                    )
                    continue
                self.kernels[(w.key, t)] = k
                if k.tuned_from is None:
                    untuned.setdefault(w.key, []).append(t)
                self._kernel_entry(k, workload=w.name, batch=w.batch, threads=t)
        if self.untuned_cuts and cache.tuning is not None:
            self._warn(
                "no fused function of "
                + ", ".join(sorted(self.untuned_cuts))
                + " has a winning tuned schedule: those builds use the hand-written schedules "
                "only. Tune with: convbench tune --shapes <file> --model all --threads "
                + ",".join(map(str, self.options.threads))
            )
        if untuned and cache.tuning is not None:
            which = "; ".join(
                f"{name} (threads {','.join(map(str, ts))})" for name, ts in untuned.items()
            )
            self._warn(
                f"untuned kernels use the default schedule: {which}. Tune them for this CPU "
                f"with: convbench tune --shapes <file> --threads "
                f"{','.join(map(str, self.options.threads))}"
                + (
                    f" --batch {','.join(map(str, self.options.batches))}"
                    if self.options.batches != [1]
                    else ""
                )
            )
        self.save()
        return empty

    def _kernel_entry(self, k: BuiltKernel, **where: Any) -> None:
        """Records a built or cached kernel in the JSON; announces each cache entry once."""
        entry = {
            **where,
            "path": str(k.path),
            "key": k.key,
            "schedule": k.schedule,
            "tuned": k.tuned_from is not None,
            "tuned_from": k.tuned_from,
            "cached": k.cached,
            "build_s": k.build_s,
        }
        if not any(e["key"] == k.key for e in self.doc["kernels"]):
            self.emit("built", entry)
        self.doc["kernels"].append(entry)

    def _build_model(self, cache: KernelCache, w: Any) -> None:
        """The fused Relax build (and the unfused one, and TF's GraphDef, when a path needs
        them). One build serves every thread count: the pool size is set at run time."""
        paths = self.paths_of(w)
        where = {"workload": w.name, "batch": w.batch}
        jobs = [(True, t) for t in self.options.threads]
        if ("tvm", "native-unfused") in paths:
            jobs.append((False, None))
        for fuse, t in jobs:
            self.emit("build_start", {**where, "threads": t or "all", "fused": fuse})
            try:
                k = cache.model(w, fuse, threads=t)
            except Exception as e:
                self._error("build", {**where, "fused": fuse}, f"{type(e).__name__}: {e}")
                continue
            if fuse:
                self.kernels[(w.key, t)] = k
            else:
                self.unfused[w.key] = k
            if fuse and k.tuned_from is None:
                self.untuned_cuts.add(f"{w.name} t{t}")
            threads = t if t is not None else self.options.threads
            self._kernel_entry(k, **where, threads=threads, fused=fuse)
        if any(b == "tf" and p.startswith("native-graph") for b, p in paths):
            out = cache.root / "graphdefs" / f"{w.key.replace('/', '_')}-{_digest(w)}.pb"
            if not out.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    run_worker(
                        {"kind": "graphdef", **w.task(), "out": str(out)},
                        self.options.cell_timeout_s,
                    )
                except WorkerError as e:
                    self._error("build", {**where, "backend": "tf"}, f"GraphDef: {e}")
                    return
            self.graph_defs[w.key] = out

    def measure_peaks(self, cache: KernelCache) -> None:
        from .peak import PeakCache

        peaks = PeakCache(cache.root / "peak.json")
        for t in self.options.threads:
            try:
                self.doc["peak"][str(t)] = peaks.get(t)
            except Exception as e:
                self._error("peak", {"threads": t}, f"{type(e).__name__}: {e}")
                continue
            self.emit("peak", {"threads": t, **self.doc["peak"][str(t)]})
        self.save()

    def measure_overhead(self, empty: BuiltKernel) -> None:
        task = {
            "kind": "overhead",
            "kernel_path": str(empty.path),
            "cpus": [self.available[0]],
            "config": {**asdict(self.options.config), "min_sample_s": 0.05},
        }
        try:
            self.doc["harness_overhead"] = run_worker(task, self.options.cell_timeout_s)
            self.emit("overhead", self.doc["harness_overhead"])
        except WorkerError as e:
            self._error("overhead", {}, str(e))
        self.save()

    def check_model(self, w: Any) -> None:
        """The fused and unfused builds of a model cut against TF, and all against float64."""
        k = self.kernels.get((w.key, self.options.threads[0]))
        if k is None:
            return
        paths = {"fused": str(k.path)}
        if w.key in self.unfused:
            paths["unfused"] = str(self.unfused[w.key].path)
        task = {"kind": "check", **w.task(), "kernel_paths": paths, "seed": self.options.seed}
        try:
            result = run_worker(task, self.options.cell_timeout_s)
        except WorkerError as e:
            self._error("check", {"workload": w.name, "batch": w.batch}, str(e))
            return
        result.update(threads=list(self.options.threads), schedule=k.schedule)
        self.doc["checks"].append(result)
        self.emit("check", result)
        self.save()

    def layers(self, w: Any, threads: int) -> None:
        """Per-layer times of both frameworks for one model cut and thread count."""
        from .layers import layer_table

        k = self.kernels.get((w.key, threads))
        if k is None:
            return
        plan = plan_cpus(threads, self.available)
        task = {
            "kind": "layers",
            **w.task(),
            "kernel_path": str(k.path),
            "threads": threads,
            "cpus": list(plan.cpus),
            "seed": self.options.seed,
            "config": asdict(self.options.config),
        }
        where = {"workload": w.name, "batch": w.batch, "threads": threads}
        try:
            raw = run_worker(task, self.options.cell_timeout_s)
            entry = {**raw, **layer_table(w.graph, raw)}
        except (WorkerError, ValueError) as e:
            self._error("layers", where, str(e))
            return
        self.doc["layers"].append(entry)
        self.emit("layers", entry)
        self.save()

    def check(self, w: Any) -> None:
        """Every distinct kernel of `w` (one per thread count when tuned) against TF."""
        if not isinstance(w, Workload):
            self.check_model(w)
            return
        seen: dict[str, dict[str, Any]] = {}
        for t in self.options.threads:
            k = self.kernels.get((w.key, t))
            if k is None:
                continue
            if k.key in seen:
                seen[k.key]["threads"].append(t)
                continue
            task = {
                "kind": "check",
                "spec": w.spec.model_dump(mode="json"),
                "batch": w.batch,
                "kernel_path": str(k.path),
                "seed": self.options.seed,
                "rtol": self.options.rtol,
            }
            try:
                result = run_worker(task, self.options.cell_timeout_s)
            except WorkerError as e:
                self._error("check", {"workload": w.name, "batch": w.batch, "threads": t}, str(e))
                continue
            result.update(threads=[t], schedule=k.schedule)
            seen[k.key] = result
            self.doc["checks"].append(result)
        for result in seen.values():
            self.emit("check", result)
        self.save()

    def measure(self, cell: Cell) -> dict[str, Any] | None:
        w = cell.workload
        plan = plan_cpus(cell.threads, self.available)
        where = {
            "workload": w.name,
            "batch": w.batch,
            "threads": cell.threads,
            "backend": cell.backend,
            "path": cell.path,
        }
        if plan.oversubscribed:
            self._warn(
                f"{cell.threads} threads on {plan.available} available CPUs: cells with "
                f"threads={cell.threads} are oversubscribed (flagged in their records)"
            )
        k = self.kernels.get((w.key, cell.threads)) if cell.backend == "tvm" else None
        if cell.path == "native-unfused":
            k = self.unfused.get(w.key)
        if cell.backend == "tvm" and k is None:
            self._error("measure", where, "no kernel: its build failed (see the build error)")
            return None
        if (
            cell.backend == "tf"
            and cell.path.startswith("native-graph")
            and not isinstance(w, Workload)
        ):
            if w.key not in self.graph_defs:
                self._error("measure", where, "no GraphDef: its export failed (see the error)")
                return None
        task = measure_task(
            w,
            cell.threads,
            cell.backend,
            cell.path,
            self.options.config,
            self.options.seed,
            k.path if k is not None else None,
            self.available,
        )
        if w.key in self.graph_defs:
            task["graph_def"] = str(self.graph_defs[w.key])
        try:
            record = run_worker(task, self.options.cell_timeout_s)
            if k is not None:
                record.update(schedule=k.schedule, tuned=k.tuned_from is not None)
        except WorkerError as e:
            self._error("measure", where, str(e))
            return None
        peak = self.doc["peak"].get(str(cell.threads))
        record["peak_gflops"] = peak["gflops"] if peak else None
        record["pct_peak"] = (
            100.0 * record["gflops"] / peak["gflops"] if peak and record.get("gflops") else None
        )
        record["kind"] = "conv" if isinstance(w, Workload) else w.kind
        if record["cv"] >= UNSTABLE_CV:
            record["unstable"] = True
        self.doc["records"].append(record)
        self.emit("record", record)
        self.save()
        return record

    def summarize_overheads(self) -> None:
        from .overheads import cross_checks, ladder

        floor = self.doc.get("harness_overhead") or {}
        self.doc["overheads"] = ladder(self.doc["records"], floor.get("per_call_s"))
        from .layers import conv_prediction

        self.doc["conv_prediction"] = conv_prediction(self.workloads, self.doc["records"])
        for message in cross_checks(self.doc["records"]):
            self._warn(message)

    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        from .tuning import TuningDatabase

        cache = KernelCache(self.options.cache_dir, tuning=TuningDatabase(self.options.tuning_dirs))
        self._start_doc(str(cache.target))
        self.save()
        self.emit(
            "start", {"cells": sum(1 for _ in self.cells()), "workloads": len(self.workloads)}
        )
        if self.options.model is not None and self.specs:
            from .model import Graph, histogram_mismatch

            diff = histogram_mismatch(Graph.from_spec(self.options.model), self.specs)
            if diff:
                self._warn(
                    "the model's conv histogram differs from the convs section, so the conv-time "
                    "prediction is off by that much: " + "; ".join(diff)
                )
        try:
            empty = self.build(cache)
            self.measure_peaks(cache)
            if empty is not None:
                self.measure_overhead(empty)
            for w in self.workloads:
                self.check(w)
            for cell in self.cells():
                self.measure(cell)
            if self.options.layers:
                for w in self.workloads:
                    if not isinstance(w, Workload):
                        for t in self.options.threads:
                            self.layers(w, t)
            self.doc["complete"] = True
        finally:
            self.summarize_overheads()
            unstable = [r for r in self.doc["records"] if r.get("unstable")]
            if unstable:
                self._warn(f"{len(unstable)} measurement(s) unstable (CV >= {UNSTABLE_CV:.0%})")
            self.doc["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self.doc["duration_s"] = time.perf_counter() - t0
            self.save()
        return self.doc
