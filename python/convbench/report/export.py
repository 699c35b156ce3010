"""A results document in the formats other tools read: Google Benchmark's JSON (so its
`tools/compare.py` diffs two convbench runs) and CSV (one row per record, stable columns).

Google Benchmark's JSON: every sample of a record is one `iteration` run (its per-call time, so
compare.py's U test has one repetition per sample), followed by the `_mean`, `_median`,
`_stddev` and `_cv` aggregates of those samples. A run's name carries everything that makes a
cell: `workload/backend/path/batch:B/threads:T`.
"""

from __future__ import annotations

import csv
import io
import socket
import statistics
from collections.abc import Iterable
from typing import Any

from ..results.document import ResultsDoc
from ..results.record import Record

__all__ = ["CSV_COLUMNS", "GBENCH_TIME_UNIT", "gbench_json", "gbench_name", "to_csv"]

GBENCH_TIME_UNIT = "ns"  # one unit for every run: compare.py matches runs only within a unit
_NS = 1e9


def gbench_name(r: Record) -> str:
    return f"{r.workload}/{r.backend}/{r.path}/batch:{r.batch}/threads:{r.threads}"


def _cpu_per_wall(r: Record) -> float:
    """Process CPU time per wall second of the cell (its `par`); 1 where the path's time comes
    from TVM or oneDNN themselves and no CPU clock was read."""
    return r.parallelism if r.parallelism else 1.0


def _context(doc: ResultsDoc) -> dict[str, Any]:
    machine = doc.header.get("machine") or {}
    libraries = doc.header.get("libraries") or {}
    return {
        "date": doc.header.get("started_at") or "",
        "host_name": machine.get("host_name") or socket.gethostname(),
        "executable": "convbench",
        "num_cpus": int(machine.get("cores") or machine.get("logical_cpus") or 0),
        "mhz_per_cpu": 0,  # not measured by convbench
        "cpu_scaling_enabled": False,
        "caches": [],
        "library_version": str(doc.header.get("convbench") or ""),
        "library_build_type": "release",
        "json_schema_version": 1,
        "convbench": {
            "cpu_model": machine.get("cpu_model"),
            "tvm_target": doc.header.get("tvm_target"),
            "libraries": libraries,
        },
    }


def _runs(r: Record, family: int, instance: int) -> Iterable[dict[str, Any]]:
    name = gbench_name(r)
    samples = list(r.wall_samples_s or []) or [r.median_s]
    par = _cpu_per_wall(r)
    common = {
        "family_index": family,
        "per_family_instance_index": instance,
        "run_name": name,
        "repetitions": len(samples),
        "threads": r.threads,
        "time_unit": GBENCH_TIME_UNIT,
    }
    iters = int(r.iters_per_sample or 1)
    for i, s in enumerate(samples):
        yield {
            "name": name,
            **common,
            "run_type": "iteration",
            "repetition_index": i,
            "iterations": iters,
            "real_time": s * _NS,
            "cpu_time": s * par * _NS,
        }
    mean = statistics.fmean(samples)
    median = statistics.median(samples)
    stddev = statistics.stdev(samples) if len(samples) > 1 else 0.0
    cv = stddev / mean if mean > 0 else 0.0
    for agg, value, unit in (
        ("mean", mean * _NS, "time"),
        ("median", median * _NS, "time"),
        ("stddev", stddev * _NS, "time"),
        ("cv", cv, "percentage"),
    ):
        yield {
            "name": f"{name}_{agg}",
            **common,
            "run_type": "aggregate",
            "aggregate_name": agg,
            "aggregate_unit": unit,
            "iterations": len(samples),
            "real_time": value,
            "cpu_time": value if agg == "cv" else value * par,
        }


def gbench_json(doc: ResultsDoc) -> dict[str, Any]:
    """Google Benchmark's JSON (json_schema_version 1) for every record of `doc`.

    cpu_time: convbench reads the process CPU clock per sample but keeps its median per cell, so
    each sample's CPU time is its wall time times the cell's parallelism (CPU over wall); for
    `tvm/evaluator` and `tf/kernel`, whose times come from TVM and oneDNN, it is the wall time."""
    families: dict[tuple[str, str, str], int] = {}
    instances: dict[int, int] = {}
    benchmarks: list[dict[str, Any]] = []
    for r in doc.records:
        family = families.setdefault((r.workload, r.backend, r.path), len(families))
        instance = instances.get(family, 0)
        instances[family] = instance + 1
        benchmarks.extend(_runs(r, family, instance))
    return {"context": _context(doc), "benchmarks": benchmarks}


# Stable CSV columns, in order: new columns are only ever appended.
CSV_COLUMNS = (
    "workload",
    "kind",
    "backend",
    "path",
    "batch",
    "threads",
    "samples",
    "iters_per_sample",
    "median_s",
    "min_s",
    "max_s",
    "mean_s",
    "stddev_s",
    "cv",
    "p10_s",
    "p90_s",
    "cpu_s",
    "thread_cpu_s",
    "parallelism",
    "gflops",
    "peak_gflops",
    "pct_peak",
    "oversubscribed",
    "unstable",
    "outliers",
    "spread",
    "pinned",
    "schedule",
    "tuned",
    "cpus",
    "wall_samples_s",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    if isinstance(value, (list, tuple)):
        return " ".join(_cell(v) for v in value)
    return str(value)


def to_csv(doc: ResultsDoc) -> str:
    """One row per record; empty where a path has no such figure; lists space-separated."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in doc.records:
        w.writerow([_cell(getattr(r, c, None)) for c in CSV_COLUMNS])
    return out.getvalue()
