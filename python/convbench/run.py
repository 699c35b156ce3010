"""A benchmark run: build or reuse kernels, check them against TF, then measure every cell
(workload, batch, threads, backend, path) in a worker process of its own.

The plan (`RunPlan`) says which cells there are; the `Runner` sequences the stages (build, peak,
harness floor, checks, cells, layer tables, analysis), each a short method. Results go into a
`ResultsDoc` saved after every change (atomic rename), so an interrupted or crashed run keeps
everything measured before the fault; progress goes to a `Reporter`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .build.cache import BuiltKernel, KernelCache, source_digest
from .build.target import host_cpu_name, llvm_target
from .build.tuning_db import TuningDatabase
from .build.winograd import ALGORITHMS, TILES, layer_problem, tile_of, winograd_applicable
from .cpus import CpuPlan, allowed_cpus, cpu_model, plan_cpus
from .frameworks.numerics import winograd_rtol
from .host import state, state_warnings
from .measure.pool import WORKER_ENV, WorkerError, Workers
from .measure.tasks import (
    CheckTask,
    GraphDefTask,
    LayersTask,
    MeasureTask,
    OverheadTask,
    PeakTask,
    ProbeTask,
)
from .native.harness import RunConfig
from .native.peak import PeakCache
from .paths import ALL_PATHS, COLD_PATHS, MODEL_PATHS, PATHS
from .report.live import NullReporter, Reporter
from .results.analysis import (
    SERIAL_PARALLELISM,
    choose_in_context,
    conv_prediction,
    cross_checks,
    framework_shares,
    inconsistencies,
    ladder,
    layer_table,
    serial_cells,
)
from .results.document import ResultsDoc
from .results.drift import drift_warning, pass_drift
from .results.record import Record, pool_processes, stability_warnings
from .spec.conv import ConvSpec, ConvWorkload
from .spec.model import ModelSpec, ModelWorkload, histogram_mismatch, model_workloads
from .spec.workload import Workload
from .version import __version__, code_digest

__all__ = ["Cell", "RunOptions", "RunPlan", "Runner", "library_versions", "measure_task"]


@dataclass(frozen=True)
class Cell:
    workload: Workload
    threads: int
    backend: str
    path: str
    cache: str = "warm"


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
    model: ModelSpec | None = None  # its blocks and whole model run beside the convs
    cuts: list[tuple[str | None, str]] | None = None  # from/to pairs instead of the blocks
    partsearch: bool = False  # the model's prefixes instead of its blocks
    convs: bool = True  # the single convs of the shapes file
    layers: bool = True  # per-layer tables of every model cut
    repetitions: int = 3  # each cell measured in this many fresh processes, interleaved
    # then a cell still unstable is measured again, a pass at a time, up to this many processes
    max_repetitions: int = 6
    caches: tuple[str, ...] = ("warm",)  # and/or "cold": conv cells on arrays not in cache
    fork: bool = True  # processes forked from a server that imported TF and TVM once
    rpc: tuple[str, int, str] | None = None  # (tracker host, port, key): TVM cells go there
    algos: str = "auto"  # TVM's 3x3 stride-1 convs: "direct", "winograd" or "auto" (the faster)
    tf: bool = True  # TF's cells (always local)


# The rungs a model file's cut has no form for: its ops come as a GraphDef, with no op-by-op
# eager program to run.
FILE_MODEL_MISSING = {("tf", "eager"): "a model file's graph has no op-by-op eager form"}


class RunPlan:
    """The workloads of a run and its cells: workloads x thread counts x paths, in order."""

    def __init__(self, specs: list[ConvSpec], options: RunOptions) -> None:
        self.options = options
        self.workloads: list[Workload] = (
            [ConvWorkload(s, b) for s in specs for b in options.batches] if options.convs else []
        )
        if options.model is not None:
            self.workloads += model_workloads(
                options.model, options.batches, options.cuts, options.partsearch
            )

    @property
    def convs(self) -> list[ConvWorkload]:
        return [w for w in self.workloads if isinstance(w, ConvWorkload)]

    @property
    def models(self) -> list[ModelWorkload]:
        return [w for w in self.workloads if isinstance(w, ModelWorkload)]

    def paths_of(self, w: Workload) -> tuple[tuple[str, str], ...]:
        valid = PATHS if w.kind == "conv" else MODEL_PATHS
        if isinstance(w, ModelWorkload) and w.from_file:
            valid = tuple(p for p in valid if p not in FILE_MODEL_MISSING)
        if not self.options.tf:
            valid = tuple(p for p in valid if p[0] != "tf")
        return tuple(p for p in self.options.paths if p in valid)

    def cells(self) -> Iterator[Cell]:
        for w in self.workloads:
            for cache in self.options.caches:
                if cache == "cold" and w.kind != "conv":
                    continue  # a model cut streams its weights: cold by nature
                for t in self.options.threads:
                    for backend, path in self.paths_of(w):
                        if cache == "cold" and (backend, path) not in COLD_PATHS:
                            continue
                        yield Cell(w, t, backend, path, cache)

    def schedule(self) -> list[tuple[int, Cell]]:
        """(repetition, cell) in the order they run: every cell once per repetition, a cell's
        repetitions a whole pass apart, and the order of each pass after the first shuffled
        (seeded), so that no cell always follows the same neighbour (google/benchmark's
        random interleaving; pyperf's many processes)."""
        cells = list(self.cells())
        out: list[tuple[int, Cell]] = [(0, c) for c in cells]
        for rep in range(1, self.options.repetitions):
            out += self.shuffled_pass(cells, rep)
        return out

    def shuffled_pass(self, cells: list[Cell], repetition: int) -> list[tuple[int, Cell]]:
        """(repetition, cell) for one pass over `cells` (all of them, or the ones still
        unstable after the fixed passes), in an order seeded by the run's seed and the pass."""
        order = list(cells)
        random.Random(self.options.seed * 1000 + repetition).shuffle(order)
        return [(repetition, c) for c in order]


def measure_task(
    w: Workload,
    threads: int,
    backend: str,
    path: str,
    config: RunConfig,
    seed: int = 0,
    kernel: BuiltKernel | Path | None = None,
    available: list[int] | None = None,
    graph_def: Path | None = None,
    cache: str = "warm",
) -> MeasureTask:
    """The task that measures one cell, its threads planned on the available CPUs."""
    plan = plan_cpus(threads, available)
    built = kernel if isinstance(kernel, BuiltKernel) else None
    return MeasureTask(
        workload=w,
        backend=backend,
        path=path,
        threads=threads,
        cpus=list(plan.cpus),
        available_cpus=plan.available,
        seed=seed,
        config=config,
        kernel_path=str(kernel.path if built else kernel) if kernel is not None else None,
        graph_def=str(graph_def) if graph_def is not None else None,
        schedule=built.schedule if built else None,
        tuned=(built.tuned_from is not None) if built else None,
        cache=cache,
        algorithm=built.algorithm if built and isinstance(w, ConvWorkload) else "direct",
    )


def _where(cell: Cell, repetition: int) -> dict[str, Any]:
    """A cell's place in an error entry."""
    w = cell.workload
    where = {
        "workload": w.name,
        "batch": w.batch,
        "threads": cell.threads,
        "backend": cell.backend,
        "path": cell.path,
        "repetition": repetition + 1,
    }
    if cell.cache != "warm":
        where["cache"] = cell.cache
    return where


def _with_reading(entry: dict[str, Any], gflops: float) -> dict[str, Any]:
    """A peak entry with one more of this run's short probes: `pass_gflops` (one per pass),
    their median as `this_run_gflops`, and its drift against the entry's figure."""
    readings = [*entry.get("pass_gflops", []), float(gflops)]
    now = statistics.median(readings)
    return {
        **entry,
        "pass_gflops": readings,
        "this_run_gflops": now,
        "drift": now / entry["gflops"] - 1,
    }


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("apache-tvm", "apache-tvm-ffi", "tensorflow-cpu", "tensorflow", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _digest(w: Workload) -> str:
    text = json.dumps({**w.problem(), "source": source_digest()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Runner:
    """Drives a run; a `reporter` shows progress as results arrive."""

    def __init__(
        self,
        specs: list[ConvSpec],
        options: RunOptions,
        json_path: Path | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.specs = specs
        self.options = options
        self.json_path = json_path
        self.reporter: Reporter = reporter or NullReporter()
        self.available = allowed_cpus()
        self.plan = RunPlan(specs, options)
        self.kernels: dict[tuple[str, int | None], BuiltKernel] = {}
        self.unfused: dict[str, BuiltKernel] = {}
        self.untuned_cuts: set[str] = set()
        self.graph_defs: dict[str, Path] = {}
        self.doc = ResultsDoc()
        # each cell's process records, in the order cells were first measured
        self.processes: dict[tuple[str, int, str, str, str], list[Record]] = {}
        self.passes: dict[tuple[str, int, str, str, str], list[int]] = {}  # each process's pass
        # each cell's processes pooled (pool_processes), updated as its processes come in
        self.pooled: dict[tuple[str, int, str, str, str], Record] = {}
        self.workers = Workers(options.cell_timeout_s, fork=options.fork)
        self.machine_state: dict[str, Any] = {}
        self.timed_s = 0.0  # time spent inside the timed loops of the measured cells
        self.remote: Any = None  # measure.rpc.RemoteDevices with --rpc
        self.remote_s = 0.0  # wall time from the first remote cell handed out to the last back
        self.remote_kernels: dict[tuple[str, int | None, bool], BuiltKernel | None] = {}
        self.winograd: dict[tuple[str, int], BuiltKernel] = {}  # (workload key, m) -> kernel
        # {winograd.problem_key: m}: the single convs' choice at the run's first thread count,
        # what a model cut's build takes where no choice in context was made
        self.winograd_problems: dict[str, int] = {}
        # (model workload key, threads) -> {problem: m}: a cut's choice in context
        self.model_winograd: dict[tuple[str, int], dict[str, int]] = {}
        self.untuned: dict[str, list[int]] = {}  # conv workload key -> untuned thread counts

    @property
    def workloads(self) -> list[Workload]:
        return self.plan.workloads

    # --- the results document -----------------------------------------------------------------
    def _header(self, target: str) -> dict[str, Any]:
        o = self.options
        return {
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
                "state": self.machine_state,
            },
            "libraries": library_versions(),
            "tvm_target": target,
            "config": {
                "threads": o.threads,
                "batches": o.batches,
                "warmup_s": o.config.warmup_s,
                "warmup_iters": o.config.warmup_iters,
                "min_sample_s": o.config.min_sample_s,
                "samples": o.config.samples,
                "repetitions": o.repetitions,
                "caches": list(o.caches),
                "processes": "forked from a server that imported TF and TVM once, a new server "
                "for every repetition (a task that needs TF's load-time environment: a fresh "
                "interpreter)"
                if o.fork
                else "a fresh interpreter per cell",
                "max_repetitions": o.max_repetitions,
                "interleaving": "every cell once per repetition; passes after the first "
                "shuffled; then the cells still unstable, a pass at a time",
                "rtol": o.rtol,
                "seed": o.seed,
                "tf_threads": "intra_op=threads, inter_op=1",
                "worker_env": WORKER_ENV,
                "tvm_threads": "pool size=threads, worker i bound to cpus[i]",
            },
        }

    def save(self) -> None:
        if self.json_path is not None:
            self.doc.save(self.json_path)

    def _error(self, stage: str, what: dict[str, Any], message: str) -> None:
        entry = {"stage": stage, **what, "error": message}
        self.doc.errors.append(entry)
        self.reporter.error(entry)
        self.save()

    def _warn(self, message: str) -> None:
        if self.doc.warn(message):
            self.reporter.warning(message)

    def _worker(self, task: Any, stage: str, where: dict[str, Any]) -> dict[str, Any] | None:
        """Runs a task; a failure is recorded as an error of `stage` and gives None."""
        try:
            return self.workers.run(task)
        except WorkerError as e:
            self._error(stage, where, str(e))
            return None

    # --- build --------------------------------------------------------------------------------
    def build(self, cache: KernelCache) -> BuiltKernel | None:
        """Kernels for every workload and thread count (tuned where the database has one)."""
        empty = None
        try:
            empty = cache.empty()
        except Exception as e:
            self._error("build", {"workload": "empty"}, f"{type(e).__name__}: {e}")
        for w in self.plan.convs:
            for t in self.options.threads:
                k = self._build_one(w, t, lambda w=w, t=t: cache.conv(w, t))
                if k is not None and k.tuned_from is None:
                    self.untuned.setdefault(w.key, []).append(t)
            self._build_winograd(cache, w)
        self.save()
        return empty

    def build_models(self, cache: KernelCache) -> None:
        """The model cuts' builds, each conv layer by the algorithm its cut chose in context
        (choose_model_algorithms)."""
        for mw in self.plan.models:
            self._build_model(cache, mw)
        if cache.tuning is not None:
            self._warn_untuned(self.untuned)
        self.save()

    def _build_one(self, w: Workload, t: int, make: Any) -> BuiltKernel | None:
        self.reporter.building(w.name, w.batch, t)
        where = {"workload": w.name, "batch": w.batch, "threads": t}
        try:
            k = make()
        except Exception as e:
            self._error("build", where, f"{type(e).__name__}: {e}")
            return None
        self.kernels[(w.key, t)] = k
        self._kernel_entry(k, **where)
        return k

    def _build_winograd(self, cache: KernelCache, w: ConvWorkload) -> None:
        """With --algos winograd or auto, `w`'s Winograd kernels (one per tile size; one build
        serves every thread count), where Winograd computes it."""
        if self.options.algos == "direct" or not any(p[0] == "tvm" for p in self.plan.paths_of(w)):
            return
        why = winograd_applicable(w)
        if why is not None:
            if self.options.algos == "winograd":
                self._warn(f"{w.name}: no Winograd kernel ({why}): its TVM cells run direct")
            return
        for m in TILES:
            self.reporter.building(f"{w.name} winograd F({m}x{m},3x3)", w.batch, "all")
            where = {"workload": w.name, "batch": w.batch, "algorithm": f"winograd-{m}"}
            try:
                k = cache.winograd(w, m)
            except Exception as e:
                self._error("build", where, f"{type(e).__name__}: {e}")
                continue
            self.winograd[(w.key, m)] = k
            self._kernel_entry(k, **where)

    def _warn_untuned(self, untuned: dict[str, list[int]]) -> None:
        threads = ",".join(map(str, self.options.threads))
        if self.untuned_cuts:
            self._warn(
                "no fused function of "
                + ", ".join(sorted(self.untuned_cuts))
                + " has a winning tuned schedule: those builds use the hand-written schedules "
                f"only. Tune with: convbench tune --shapes <file> --model all --threads {threads}"
            )
        if untuned:
            which = "; ".join(
                f"{name} (threads {','.join(map(str, ts))})" for name, ts in untuned.items()
            )
            batches = self.options.batches
            self._warn(
                f"untuned kernels use the default schedule: {which}. Tune them for this CPU "
                f"with: convbench tune --shapes <file> --threads {threads}"
                + (f" --batch {','.join(map(str, batches))}" if batches != [1] else "")
            )

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
        if not any(e["key"] == k.key for e in self.doc.kernels):
            self.reporter.kernel(entry)
        self.doc.kernels.append(entry)

    def _build_model(self, cache: KernelCache, w: ModelWorkload) -> None:
        """The fused Relax build (and the unfused one, and TF's GraphDef, when a path needs
        them). One build serves every thread count: the pool size is set at run time."""
        paths = self.plan.paths_of(w)
        where = {"workload": w.name, "batch": w.batch}
        tflite = None
        if w.from_file:
            for key, why in FILE_MODEL_MISSING.items():
                if key in self.options.paths:
                    self._warn(f"{'/'.join(key)} is not run on {w.spec.name}'s cuts: {why}")
            # TF's GraphDef of the cut, and the TFLite form TVM imports, before the build
            self._export_graph_def(cache, w, where)
            if w.key not in self.graph_defs:
                self._error("build", where, "no GraphDef of the cut: see the error above")
                return
            tflite = self.graph_defs[w.key].with_suffix(".tflite")
            if not tflite.exists():
                return  # the reason is the build error above; TF's cells run
        self.choose_model_algorithms(cache, w, tflite)
        jobs: list[tuple[bool, int | None]] = [(True, t) for t in self.options.threads]
        if ("tvm", "native-unfused") in paths:
            jobs.append((False, None))
        for fuse, t in jobs:
            self.reporter.building(w.name, w.batch, t or "all")
            try:
                winograd = self._model_winograd(w, t)
                k = cache.model(w, fuse, threads=t, tflite=tflite, winograd=winograd)
            except Exception as e:
                self._error("build", {**where, "fused": fuse}, f"{type(e).__name__}: {e}")
                continue
            if fuse:
                self.kernels[(w.key, t)] = k
                if k.tuned_from is None:
                    self.untuned_cuts.add(f"{w.name} t{t}")
            else:
                self.unfused[w.key] = k
            threads = t if t is not None else self.options.threads
            self._kernel_entry(k, **where, threads=threads, fused=fuse)
            self._schedules_of(k, w, fuse)
        if not w.from_file and any(b == "tf" and p.startswith("native-graph") for b, p in paths):
            self._export_graph_def(cache, w, where)

    def _model_winograd(self, w: ModelWorkload, threads: int | None) -> dict[str, int] | None:
        """The Winograd choices a model cut's build takes at `threads` (None: the build that
        serves every count, the first count's): the cut's own, chosen in context; where it has
        none (its probe failed), the single convs' of the same problems."""
        if self.options.algos == "direct":
            return None
        t = threads if threads is not None else self.options.threads[0]
        if (w.key, t) in self.model_winograd:
            return self.model_winograd[w.key, t] or None
        prefix = f"{w.batch}x"
        return {k: m for k, m in self.winograd_problems.items() if k.startswith(prefix)} or None

    def choose_model_algorithms(
        self, cache: KernelCache, w: ModelWorkload, tflite: Path | None
    ) -> None:
        """--algos auto or winograd: per thread count, the algorithm of each Winograd-capable
        conv problem of the cut, chosen in context. The cut is built once per candidate (every
        such conv direct, or by one Winograd tile), the builds are profiled in one worker, their
        rounds alternated (model_handlers.probe_algorithms), and each problem takes the
        algorithm under which its layers ran fastest in the whole cut: alone, a conv's weights
        stay in the cache from one call to the next; in a cut, each layer's are evicted by the
        layers between. The choice and every candidate's times are kept (the JSON's
        `model_algorithms`)."""
        if self.options.algos == "direct" or not any(b == "tvm" for b, _ in self.plan.paths_of(w)):
            return
        problems = sorted(
            {
                p
                for n in w.graph.nodes
                if n.conv is not None and (p := layer_problem(ConvWorkload(n.conv, w.batch)))
            }
        )
        if not problems:
            return
        algorithms = [a for a in ALGORITHMS if self.options.algos == "auto" or a != "direct"]
        probe = dataclasses.replace(
            self.options.config, samples=3, min_sample_s=0.005, warmup_s=0.02
        )
        for t in self.options.threads:
            where = {"workload": w.name, "batch": w.batch, "threads": t}
            builds = {}
            for a in algorithms:
                m = tile_of(a)
                self.reporter.building(f"{w.name} candidate: its 3x3 convs {a}", w.batch, t)
                try:
                    builds[a] = cache.model(
                        w,
                        True,
                        threads=t,
                        tflite=tflite,
                        winograd={p: m for p in problems} if m else None,
                    )
                except Exception as e:
                    self._error("build", {**where, "algorithm": a}, f"{type(e).__name__}: {e}")
            if not builds:
                continue
            task = ProbeTask(
                workload=w,
                kernels={a: str(k.path) for a, k in builds.items()},
                threads=t,
                cpus=list(plan_cpus(t, self.available).cpus),
                seed=self.options.seed,
                config=probe,
            )
            result = self._worker(task, "choose", where)
            if result is None:
                continue
            try:
                chosen, rows = choose_in_context(w.graph, w.batch, result["candidates"])
            except ValueError as e:  # the plan does not match the graph: no choice
                self._error("choose", where, str(e))
                continue
            self.model_winograd[w.key, t] = {
                p: m for p, a in chosen.items() if (m := tile_of(a)) is not None
            }
            whole = {a: float(c["whole_s"]) for a, c in result["candidates"].items()}
            entry = {
                **where,
                "mode": self.options.algos,
                "kernels": {a: k.key for a, k in builds.items()},  # each candidate's build
                "whole_s": whole,
                "problems": rows,
            }
            self.doc.extra.setdefault("model_algorithms", []).append(entry)
            self.reporter.note(
                f"algorithm {w.name} b{w.batch} t{t}, in context: "
                + "; ".join(
                    f"{r['problem']} x{len(r['layers'])}: {r['chosen']} ("
                    + ", ".join(f"{a} {v * 1e3:.3f} ms" for a, v in r["in_context_s"].items())
                    + ")"
                    for r in rows
                )
            )

    def _schedules_of(self, k: BuiltKernel, w: ModelWorkload, fuse: bool) -> None:
        """The schedule each function of a model build got, in its kernel entry; a warning for
        any function left to TVM's unscheduled default."""
        try:
            chosen = json.loads((k.path.parent / "schedules.json").read_text())
        except (OSError, ValueError):
            return
        self.doc.kernels[-1]["schedules"] = chosen
        default = sorted(f"{f} ({why})" for f, why in chosen.items() if why.startswith("default"))
        if default:
            self._warn(
                f"{w.name} b{w.batch} ({'fused' if fuse else 'unfused'}): functions no schedule "
                f"here fits, compiled unscheduled: {'; '.join(default)}"
            )

    def _export_graph_def(self, cache: KernelCache, w: ModelWorkload, where: dict) -> None:
        out = cache.root / "graphdefs" / f"{w.key.replace('/', '_')}-{_digest(w)}.pb"
        ready = out.exists() and (not w.from_file or out.with_suffix(".tflite").exists())
        if not ready:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                facts = self.workers.run(GraphDefTask(workload=w, out=str(out)))
            except (WorkerError, OSError) as e:
                self._error("build", {**where, "backend": "tf"}, f"GraphDef: {e}")
                return
            if facts.get("tflite_error"):  # TF's cells still run on the GraphDef
                self._error("build", {**where, "backend": "tvm"}, facts["tflite_error"])
        self.graph_defs[w.key] = out

    # --- machine: peak and the harness's floor ------------------------------------------------
    def measure_peaks(self, cache: KernelCache) -> None:
        """The fp32 roof per thread count: the machine's cached figure (a long probe, taken
        once), and a short probe in a worker of this run, to catch a machine that is not what
        it was (another load, a clock cap): a drift of more than 10% is warned about."""
        peaks = PeakCache(cache.root / "peak.json")
        for t in self.options.threads:
            try:
                entry = peaks.get(t)
            except Exception as e:
                self._error("peak", {"threads": t}, f"{type(e).__name__}: {e}")
                continue
            now = self._worker(PeakTask(cpus=entry["cpus"]), "peak", {"threads": t})
            if now is not None:
                entry = _with_reading({**entry, "pass_gflops": []}, now["gflops"])
                drift = entry["drift"]
                if abs(drift) > 0.10:
                    self._warn(
                        f"the fp32 peak at {t} thread(s) measures {now['gflops']:.1f} GFLOP/s now "
                        f"against {entry['gflops']:.1f} cached ({drift:+.0%}): the machine is "
                        "not in the state its peak was measured in (%peak uses the cached figure)"
                    )
            self.doc.peak[str(t)] = entry
            self.reporter.peak(t, entry)
        self.save()

    def probe_again(self) -> None:
        """The short peak probe once more at every thread count (at the start of each pass):
        this run's reading of the machine is the median of its passes' readings."""
        for t, entry in list(self.doc.peak.items()):
            if "pass_gflops" not in entry:
                continue  # its first probe failed: no reading to add to
            now = self._worker(PeakTask(cpus=entry["cpus"]), "peak", {"threads": int(t)})
            if now is not None:
                self.doc.peak[t] = _with_reading(entry, now["gflops"])

    def measure_overhead(self, empty: BuiltKernel) -> None:
        config = dataclasses.replace(self.options.config, min_sample_s=0.05)
        task = OverheadTask(kernel_path=str(empty.path), cpus=[self.available[0]], config=config)
        result = self._worker(task, "overhead", {})
        if result is not None:
            self.doc.harness_overhead = result
            self.reporter.overhead(result)
        self.save()

    # --- checks -------------------------------------------------------------------------------
    def check(self, w: Workload) -> None:
        if isinstance(w, ModelWorkload):
            self._check_model(w)
        elif isinstance(w, ConvWorkload):
            self._check_conv(w)

    def _check_conv(self, w: ConvWorkload) -> None:
        """Every distinct kernel of `w` (one per thread count when tuned) against TF."""
        seen: dict[str, dict[str, Any]] = {}
        for t in self.options.threads:
            k = self.kernels.get((w.key, t))
            if k is None:
                continue
            if k.key in seen:
                seen[k.key]["threads"].append(t)
                continue
            task = CheckTask(
                workload=w,
                kernel_paths={"kernel": str(k.path)},
                seed=self.options.seed,
                rtol=self.options.rtol,
            )
            where = {"workload": w.name, "batch": w.batch, "threads": t}
            result = self._worker(task, "check", where)
            if result is None:
                continue
            result.update(threads=[t], schedule=k.schedule)
            seen[k.key] = result
            self.doc.checks.append(result)
        for m in TILES:  # Winograd: its own documented tolerance, the direct check unchanged
            k = self.winograd.get((w.key, m))
            if k is None:
                continue
            rtol = winograd_rtol(self.options.rtol)
            task = CheckTask(
                workload=w,
                kernel_paths={"kernel": str(k.path)},
                seed=self.options.seed,
                rtol=rtol,
                algorithm=k.algorithm,
            )
            where = {"workload": w.name, "batch": w.batch, "algorithm": k.algorithm}
            result = self._worker(task, "check", where)
            if result is None or not result["ok"]:
                self.winograd.pop((w.key, m))  # a kernel that fails its check is never chosen
            if result is None:
                continue
            result.update(threads=list(self.options.threads), schedule=k.schedule)
            seen[k.key] = result
            self.doc.checks.append(result)
        for result in seen.values():
            self.reporter.check(result)
        self.save()

    def choose_algorithms(self) -> None:
        """--algos auto: per conv and thread count, the faster of the direct kernel and each
        Winograd one, timed by the native loop in one worker that alternates their samples (a
        short probe, ProbeTask), becomes the kernel of the cell; --algos winograd: the faster
        Winograd tile. The choice and every candidate's time are kept (the JSON's
        `algorithms`)."""
        chosen = []
        probe = dataclasses.replace(
            self.options.config, samples=5, min_sample_s=0.005, warmup_s=0.02
        )
        for w in self.plan.convs:
            wino = [k for m in TILES if (k := self.winograd.get((w.key, m))) is not None]
            if not wino:
                continue
            for t in self.options.threads:
                direct = self.kernels.get((w.key, t))
                candidates = list(wino)
                if self.options.algos == "auto" and direct is not None:
                    candidates.insert(0, direct)
                task = ProbeTask(
                    workload=w,
                    kernels={k.algorithm: str(k.path) for k in candidates},
                    threads=t,
                    cpus=list(plan_cpus(t, self.available).cpus),
                    seed=self.options.seed,
                    config=probe,
                )
                where = {"workload": w.name, "batch": w.batch, "threads": t}
                result = self._worker(task, "choose", where)
                if result is None:
                    continue
                times = {a: float(v) for a, v in result["median_s"].items()}
                best = min(times, key=lambda a: times[a])
                self.kernels[(w.key, t)] = next(k for k in candidates if k.algorithm == best)
                m = tile_of(best)
                if t == self.options.threads[0] and m is not None:
                    key = layer_problem(w)
                    assert key is not None  # a Winograd kernel was built for it
                    self.winograd_problems[key] = m
                entry = {
                    "workload": w.name,
                    "batch": w.batch,
                    "threads": t,
                    "mode": self.options.algos,
                    "chosen": best,
                    "probe_median_s": times,
                }
                chosen.append(entry)
                self.reporter.note(
                    f"algorithm {w.name} b{w.batch} t{t}: {best} ("
                    + ", ".join(f"{a} {v * 1e6:.1f} us" for a, v in times.items())
                    + ")"
                )
        if chosen:
            self.doc.extra["algorithms"] = chosen
        self.save()

    def _check_model(self, w: ModelWorkload) -> None:
        """The fused and unfused builds of a model cut against TF, and all against float64."""
        k = self.kernels.get((w.key, self.options.threads[0]))
        if k is None:
            return
        paths = {"fused": str(k.path)}
        if w.key in self.unfused:
            paths["unfused"] = str(self.unfused[w.key].path)
        gd = self.graph_defs.get(w.key)
        task = CheckTask(
            workload=w,
            kernel_paths=paths,
            seed=self.options.seed,
            graph_def=str(gd) if gd is not None else None,
        )
        result = self._worker(task, "check", {"workload": w.name, "batch": w.batch})
        if result is None:
            return
        result.update(threads=list(self.options.threads), schedule=k.schedule)
        if result.get("degenerate_output"):
            self._warn(
                f"{w.name} b{w.batch}: TF's output is nearly constant (spread "
                f"{result['output_spread']:.1e} of its magnitude): this cut's check cannot tell a "
                "wrong build from a right one; check a cut that ends earlier (--to a node before "
                "the last, e.g. the logits before a softmax)"
            )
        self.doc.checks.append(result)
        self.reporter.check(result)
        self.save()

    # --- cells --------------------------------------------------------------------------------
    def _kernel_of(self, cell: Cell) -> BuiltKernel | None:
        if cell.backend != "tvm":
            return None
        if cell.path == "native-unfused":
            return self.unfused.get(cell.workload.key)
        return self.kernels.get((cell.workload.key, cell.threads))

    def measure(self, cell: Cell, repetition: int = 0) -> Record | None:
        """One process measuring one cell; the cell's record pools every process so far."""
        w = cell.workload
        plan: CpuPlan = plan_cpus(cell.threads, self.available)
        where = _where(cell, repetition)
        if plan.oversubscribed:
            self._warn(
                f"{cell.threads} threads on {plan.available} available CPUs: cells with "
                f"threads={cell.threads} are oversubscribed (flagged in their records)"
            )
        k = self._kernel_of(cell)
        if cell.backend == "tvm" and k is None:
            self._error("measure", where, "no kernel: its build failed (see the build error)")
            return None
        graph_def = self.graph_defs.get(w.key)
        if (
            cell.backend == "tf"
            and cell.path.startswith("native-graph")
            and isinstance(w, ModelWorkload)
            and graph_def is None
        ):
            self._error("measure", where, "no GraphDef: its export failed (see the error)")
            return None
        task = measure_task(
            w,
            cell.threads,
            cell.backend,
            cell.path,
            self.options.config,
            self.options.seed,
            k,
            self.available,
            graph_def,
            cell.cache,
        )
        result = self._worker(task, "measure", where)
        if result is None:
            return None
        record = Record.from_json(result).with_peak(self.doc.peak_gflops(cell.threads))
        self._add_record(cell, record, repetition)
        return record

    def still_unstable(self, cells: list[Cell]) -> list[Cell]:
        """The cells among `cells` whose pooled record is unstable and that have fewer than
        `max_repetitions` processes: those an extra pass measures again."""
        out = []
        for cell in cells:
            key = self._key(cell)
            if key in self.pooled and len(self.processes[key]) < self.options.max_repetitions:
                if self.pooled[key].unstable:
                    out.append(cell)
        return out

    def measure_schedule(self, schedule: list[tuple[int, Cell]]) -> None:
        """The passes of `schedule`, a new fork server for each; then, pass by pass, the cells
        still unstable again (up to `max_repetitions` processes each): more processes, so that
        one that a neighbour on the machine slowed no longer decides the spread."""
        current = 0
        for repetition, cell in schedule:
            if repetition != current:  # a new server: a fresh address layout per pass
                self.workers.restart()
                self.probe_again()
                current = repetition
            self.measure(cell, repetition)
        cells = list({self._key(c): c for _, c in schedule}.values())
        repetition = self.options.repetitions
        while repetition < self.options.max_repetitions:
            again = self.still_unstable(cells)
            if not again:
                break
            self.reporter.note(
                f"pass {repetition + 1}: {len(again)} unstable cell(s) measured again "
                f"(up to {self.options.max_repetitions} processes each)"
            )
            self.reporter.more(len(again))
            self.workers.restart()
            for _, cell in self.plan.shuffled_pass(again, repetition):
                self.measure(cell, repetition)
            cells = again
            repetition += 1

    @staticmethod
    def _key(cell: Cell) -> tuple[str, int, str, str, str]:
        return (cell.workload.key, cell.threads, cell.backend, cell.path, cell.cache)

    def _add_record(self, cell: Cell, record: Record, repetition: int) -> None:
        """One process's record of a cell: pooled with the cell's others, shown, saved."""
        key = self._key(cell)
        self.processes.setdefault(key, []).append(record)
        self.passes.setdefault(key, []).append(repetition)
        self.timed_s += sum(record.wall_samples_s) * (record.iters_per_sample or 1)
        self.pooled[key] = pool_processes(self.processes[key], self.passes[key])
        self.doc.records = list(self.pooled.values())  # only this cell's pooling is new
        self.reporter.record(record)
        self.save()

    # --- remote devices ------------------------------------------------------------------------
    def measure_remote(self, schedule: list[tuple[int, Cell]]) -> None:
        """The TVM cells on the tracker's devices, in parallel, one cell per device at a time;
        each record says which device measured it. A failed device costs its cell a retry."""
        from .measure.rpc import RemoteCell, RemoteDevices, RpcError

        host, port, key = self.options.rpc  # type: ignore[misc]
        where = {"backend": "tvm", "rpc": f"{host}:{port}/{key}"}
        cells = [(r, c) for r, c in schedule if c.backend == "tvm"]
        if not cells:
            return
        try:
            self.remote = RemoteDevices(host, port, key)
            devices = self.remote.wait_for(1, timeout_s=30.0)
            if devices < 1:
                raise RpcError(f"the tracker at {host}:{port} has no server under key {key!r}")
            sess = self.remote.session()
            info = RemoteDevices.describe(sess)
            peaks = self._remote_peaks(sess, info)
            del sess
        except RpcError as e:
            self._error("rpc", where, str(e))
            return
        target = llvm_target(info["llvm_cpu"], info["triple"], len(info["cpus"]))
        self.doc.header["remote"] = {
            "tracker": f"{host}:{port}",
            "key": key,
            "servers": devices,
            **{k: v for k, v in info.items() if k not in ("device", "server")},
            "target": str(target),
            "peak": peaks,
            "tf": "here (locally)" if self.options.tf else "not run (--no-tf)",
        }
        if info.get("convbench") and info.get("convbench_code") != code_digest():
            self._warn(
                f"the remote's convbench ({info['convbench']}, code {info.get('convbench_code')})"
                f" is not this one ({__version__}, code {code_digest()}): a task it cannot read "
                "fails its cell; install the same convbench there and restart its servers"
            )
        if not info.get("convbench"):
            kept = [(r, c) for r, c in cells if c.workload.kind == "conv" and c.path == "evaluator"]
            if len(kept) < len(cells):
                self._warn(
                    "the remote devices are plain TVM servers: only tvm/evaluator of single "
                    "convs runs there; the other TVM cells need convbench on the remote "
                    "(`convbench rpc server`) and are not run"
                )
            cells = kept
        self._warn(
            f"--rpc {host}:{port} key {key}: TVM's timed cells ran on the remote devices "
            f"({info['cpu_model'] or info['llvm_cpu']}, records name each); the checks and "
            "per-layer tables ran here, on this machine's build; TF's cells are "
            + ("run here, locally" if self.options.tf else "not run (--no-tf)")
        )
        cache = KernelCache(
            self.options.cache_dir, target=target, tuning=TuningDatabase(self.options.tuning_dirs)
        )
        jobs = []
        for i, (_, cell) in enumerate(cells):
            k = self._remote_kernel(cache, cell)
            if k is None:
                continue
            task = measure_task(
                cell.workload,
                cell.threads,
                cell.backend,
                cell.path,
                self.options.config,
                self.options.seed,
                k,
                info["cpus"],
                cache=cell.cache,
            )
            jobs.append(RemoteCell(i, task, k.path, self.options.cell_timeout_s))
        self.save()
        stall_s = self.options.cell_timeout_s + 60
        t0 = time.perf_counter()
        for job, result, error in self.remote.run(jobs, workers=devices, stall_s=stall_s):
            rep, cell = cells[job.index]
            self._remote_record(rep, cell, result, error, peaks)
        self.remote_s = time.perf_counter() - t0

    def _remote_peaks(self, sess: Any, info: dict[str, Any]) -> dict[str, float]:
        """The remote's fp32 roof per thread count (convbench's server only), for %peak."""
        from .measure.rpc import remote_task

        out: dict[str, float] = {}
        if not info.get("convbench"):
            return out
        for t in self.options.threads:
            cpus = plan_cpus(t, info["cpus"]).cpus
            try:
                out[str(t)] = float(remote_task(sess, PeakTask(cpus=list(cpus)), 60.0)["gflops"])
            except Exception as e:  # noqa: BLE001 - no %peak for the remote, said why
                self._error("peak", {"threads": t, "remote": True}, f"{type(e).__name__}: {e}")
        return out

    def _remote_kernel(self, cache: KernelCache, cell: Cell) -> BuiltKernel | None:
        """The cell's kernel built for the remote's target (the tuning database looked up under
        that target), once per workload, thread count and fusion; the algorithm is the one the
        run chose here (its probe ran on this machine)."""
        w, t = cell.workload, cell.threads
        fuse = cell.path != "native-unfused"
        key = (w.key, t if fuse else None, fuse)
        if key in self.remote_kernels:
            return self.remote_kernels[key]
        where = {"workload": w.name, "batch": w.batch, "threads": t, "remote": True}
        try:
            if isinstance(w, ModelWorkload):
                gd = self.graph_defs.get(w.key)
                tflite = gd.with_suffix(".tflite") if (w.from_file and gd is not None) else None
                k = cache.model(
                    w,
                    fuse,
                    threads=t if fuse else None,
                    tflite=tflite,
                    winograd=self._model_winograd(w, t if fuse else None),
                )
            else:
                assert isinstance(w, ConvWorkload)
                local = self.kernels.get((w.key, t))
                m = tile_of(local.algorithm) if local is not None else None
                k = cache.conv(w, t) if m is None else cache.winograd(w, m)  # as chosen here
        except Exception as e:
            self._error("build", where, f"{type(e).__name__}: {e}")
            k = None
        self.remote_kernels[key] = k
        return k

    def _remote_record(
        self,
        rep: int,
        cell: Cell,
        result: dict | None,
        error: str | None,
        peaks: dict[str, float],
    ) -> None:
        if result is None:
            self._error("measure", _where(cell, rep), f"remote: {error}")
            return
        record = Record.from_json(result).with_peak(peaks.get(str(cell.threads)))
        self._add_record(cell, record, rep)

    # --- per-layer tables and the analysis ----------------------------------------------------
    def layers(self, w: ModelWorkload, threads: int) -> None:
        """Per-layer times of both frameworks for one model cut and thread count."""
        k = self.kernels.get((w.key, threads))
        if k is None:
            return
        task = LayersTask(
            workload=w,
            kernel_path=str(k.path),
            threads=threads,
            cpus=list(plan_cpus(threads, self.available).cpus),
            seed=self.options.seed,
            config=self.options.config,
            graph_def=str(self.graph_defs[w.key]) if w.key in self.graph_defs else None,
        )
        where = {"workload": w.name, "batch": w.batch, "threads": threads}
        raw = self._worker(task, "layers", where)
        if raw is None:
            return
        try:
            entry = {**raw, **layer_table(w.graph, raw)}
        except ValueError as e:
            self._error("layers", where, str(e))
            return
        if entry["flops_mismatch"]:
            self._warn(
                f"{w.name} b{w.batch} t{threads}: per-layer rows whose FLOPs differ between TVM "
                f"and TF (not comparable, ratios left out): {', '.join(entry['flops_mismatch'])}"
            )
        self.doc.layers.append(entry)
        self.reporter.layers(entry)
        self.save()

    def summarize(self) -> None:
        """The analysis of the records: a record that fails a cross-check is marked (with the
        reason) and left out of the ladder and the prediction."""
        bad = inconsistencies(self.doc.records)
        self.doc.records = [r.with_inconsistency(bad.get((r.cell, r.id))) for r in self.doc.records]
        floor = self.doc.harness_overhead or {}
        self.doc.overheads = ladder(self.doc.records, floor.get("per_call_s"), self.doc.layers)
        self.doc.conv_prediction = conv_prediction(self.plan.workloads, self.doc.records)
        for message in cross_checks(self.doc.records):
            self._warn(message)
        shares = framework_shares(
            self.doc.records, floor.get("per_call_s"), self.doc.kinds(), self.doc.layers
        )
        for e in shares:
            for path in e.get("contradicts", ()):  # records' own marks are warned above
                self._warn(f"{e['workload']} b{e['batch']} t{e['threads']}: {e['excluded'][path]}")
        for message in stability_warnings(self.doc.records):
            self._warn(message)
        drift = pass_drift(self.doc.records)
        if drift is not None:
            self.doc.extra["drift"] = drift
        message = drift_warning(drift)
        if message:
            self._warn(message)
        serial = serial_cells(self.doc.records)
        if serial:
            self._warn(
                f"{len(serial)} multi-thread cell(s) kept fewer than {SERIAL_PARALLELISM} CPUs "
                "busy (a thread setting that did not take effect, or a call too small to split): "
                + ", ".join(
                    f"{r.workload} {r.id} t{r.threads} par {r.parallelism:.2f}" for r in serial[:6]
                )
                + (" ..." if len(serial) > 6 else "")
            )

    def _warn_histogram(self) -> None:
        if self.options.model is None or not self.specs:
            return
        diff = histogram_mismatch(self.options.model.graph, self.specs)
        if diff:
            self._warn(
                "the model's conv histogram differs from the convs section, so the conv-time "
                "prediction is off by that much: " + "; ".join(diff)
            )

    def run(self) -> ResultsDoc:
        t0 = time.perf_counter()
        self.machine_state = state(self.available)
        cache = KernelCache(self.options.cache_dir, tuning=TuningDatabase(self.options.tuning_dirs))
        self.doc = ResultsDoc(
            header=self._header(str(cache.target)),
            workloads=[w.describe() for w in self.plan.workloads],
        )
        self.save()
        schedule = self.plan.schedule()
        self.reporter.start(len(schedule), len(self.plan.workloads))
        self._warn_histogram()
        for message in state_warnings(self.machine_state, self.available):
            self._warn(message)
        try:
            empty = self.build(cache)
            self.measure_peaks(cache)
            if empty is not None:
                self.measure_overhead(empty)
            for conv in self.plan.convs:
                self.check(conv)
            self.choose_algorithms()
            self.build_models(cache)
            for mw in self.plan.models:
                self.check(mw)
            if self.options.rpc is not None:
                self.measure_remote(schedule)
                schedule = [(r, c) for r, c in schedule if c.backend != "tvm"]
            self.measure_schedule(schedule)
            if self.options.layers:
                for mw in self.plan.models:
                    for t in self.options.threads:
                        self.layers(mw, t)
            self.doc.header["complete"] = True
        finally:
            self.workers.close()
            self.summarize()
            self.doc.header["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self.doc.duration_s = time.perf_counter() - t0
            self.doc.extra["time"] = {
                "wall_s": self.doc.duration_s,
                "timed_loops_s": self.timed_s,
                "timed_share": self.timed_s / self.doc.duration_s,
                "processes_forked": self.workers.forked,
                "processes_spawned": self.workers.spawned,
            }
            if self.options.rpc is not None:  # the remote cells' share of the wall time
                self.doc.extra["time"]["remote_cells_wall_s"] = self.remote_s
            self.save()
        return self.doc
