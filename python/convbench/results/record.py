"""One measured cell: the `Record`, built once by the worker that measured it.

The worker knows everything a record says except the machine's peak; the parent adds that with
`with_peak`, which returns a new record. What is derived (the share of peak, the unstable flag) is
computed from the fields, never stored apart from them. The JSON form is the results file's
`records` entry, field for field as convbench has always written it.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ROBUST_BETWEEN",
    "UNSTABLE_CV",
    "UNSTABLE_SPREAD",
    "Record",
    "pool_processes",
    "stability_warnings",
]

UNSTABLE_CV = 0.10  # pyperf's threshold: std >= 10% of the mean
# A cell's median is unstable when it can move this much: its processes' medians spread this far
# (their CV), or the samples inside its processes do (the scaled MAD over the median, a spread
# that a few outlying samples do not make, as they do not move the median either).
UNSTABLE_SPREAD = 0.10
# From this many processes on, the spread between them leaves out the one in five farthest from
# their median: one process of five that ran slow (a neighbour's burst on the machine) moves the
# pooled median little, and no longer makes the cell unstable, while two still do. With fewer
# processes it is the CV of all their medians.
ROBUST_BETWEEN = 5

# Fields that only some paths have: left out of the JSON when not set.
_OPTIONAL = (
    "timing_thread_cpus",
    "device",
    "algorithm",
    "weight_transform_s",
    "paired_native_s",
    "pinned",
    "pool_threads",
    "primitives",
    "primitives_summed",
    "calls_profiled",
    "verbose_median_s",
    "schedule",
    "tuned",
    "inconsistent",
    "cache",
    "cold_copies",
    "flush_denormals",
    "repetitions",
    "process_samples_s",
    "process_passes",
)
_DERIVED = (
    "pct_peak",
    "unstable",
    "outliers",
    "spread",
    "process_medians_s",
    "cv_within",
    "cv_between",
    "spread_between",
)


@dataclass(frozen=True)
class Record:
    workload: str
    kind: str  # the workload's kind: conv, block, model or prefix
    backend: str
    path: str
    threads: int
    batch: int
    samples: int
    iters_per_sample: int | None
    median_s: float
    min_s: float
    mean_s: float
    stddev_s: float
    cv: float
    p10_s: float
    p90_s: float
    max_s: float
    cpu_s: float | None  # process CPU time per call (None where the time is TVM's or oneDNN's)
    thread_cpu_s: float | None
    parallelism: float | None
    gflops: float | None
    oversubscribed: bool
    cpus: list[int]
    cpu_migrated: bool
    wall_samples_s: list[float]
    other_threads_cpus: list[list[int]]
    timing_thread_cpus: list[int] | None = None
    pinned: bool | None = None
    flush_denormals: bool | None = None  # FTZ and DAZ on in the timing thread
    pool_threads: int | None = None  # TVM's pool size as read back
    primitives: list[str] | None = None  # tf/kernel: oneDNN primitives summed per call
    primitives_summed: bool | None = None
    calls_profiled: int | None = None
    verbose_median_s: float | None = None  # tf/kernel: the plain median over every call
    schedule: str | None = None  # TVM: the kernel's schedule tag
    tuned: bool | None = None
    peak_gflops: float | None = None  # the measured fp32 peak at this thread count
    inconsistent: str | None = None  # why a cross-check rejects this figure (left out of tables)
    cache: str | None = None  # "cold": every call on arrays not in cache (None: warm)
    cold_copies: int | None = None  # how many copies of the arrays a cold cell rotates through
    repetitions: int | None = None  # processes that measured this cell (samples pooled)
    process_samples_s: list[list[float]] | None = None  # each process's samples, in run order
    process_passes: list[int] | None = None  # the pass of the run each process ran in (0-based)
    device: str | None = None  # where it ran: `<key>:<server>` of an RPC device (None: here)
    algorithm: str | None = None  # a TVM conv kernel's: "direct" or "winograd-<m>"
    weight_transform_s: float | None = None  # Winograd: the weight transform, once per load
    # tvm/evaluator: the native loop's samples, each taken right after one of the evaluator's
    paired_native_s: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields of newer or older versions

    # --- derived -----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return f"{self.backend}/{self.path}"

    @property
    def cell(self) -> tuple[str, int, int]:
        """(workload, batch, threads): the cell every path of the ladder shares. Cold-cache
        records are a cell of their own, named `<workload> (cold)`."""
        name = self.workload if self.cache != "cold" else f"{self.workload} (cold)"
        return (name, self.batch, self.threads)

    @property
    def pct_peak(self) -> float | None:
        if not self.peak_gflops or not self.gflops:
            return None
        return 100.0 * self.gflops / self.peak_gflops

    @property
    def spread(self) -> float | None:
        """How far the cell's median can move between runs: the larger of the spread between
        its processes (`spread_between`) and within them (the median over processes of
        1.4826 MAD / median, which estimates the CV of normal samples and ignores a few
        outliers). None for a file from before repetitions (no process samples)."""
        if not self.process_samples_s:
            return None
        within = [_robust_cv(s) for s in self.process_samples_s if len(s) > 1]
        parts = [float(np.median(within))] if within else []
        if self.spread_between is not None:
            parts.append(self.spread_between)
        return max(parts) if parts else None

    @property
    def spread_between(self) -> float | None:
        """The spread of the processes' medians: their CV, from ROBUST_BETWEEN processes on
        without the n // 5 farthest from their median (None for one process)."""
        medians = self.process_medians_s
        if len(medians) < ROBUST_BETWEEN:
            return self.cv_between
        mid = float(np.median(medians))
        kept = sorted(medians, key=lambda m: abs(m - mid))[: len(medians) - len(medians) // 5]
        return _cv(kept)

    @property
    def unstable(self) -> bool:
        """The median is not to be trusted to 10%: its spread (above) is at least
        UNSTABLE_SPREAD. A file from before repetitions: its CV is (pyperf's rule)."""
        spread = self.spread
        if spread is None:
            return self.cv is not None and self.cv >= UNSTABLE_CV
        return spread >= UNSTABLE_SPREAD

    @property
    def outliers(self) -> bool:
        """A steady median among outlying samples: the CV is at least UNSTABLE_CV (the
        samples' variance, shown) while the spread of the median is not."""
        return not self.unstable and self.cv is not None and self.cv >= UNSTABLE_CV

    @property
    def process_medians_s(self) -> list[float]:
        """Each process's median: the independent values (samples of one process are not)."""
        if not self.process_samples_s:
            return [self.median_s] if self.median_s is not None else []
        return [float(np.median(s)) for s in self.process_samples_s]

    @property
    def paired_native_median_s(self) -> float | None:
        """tvm/evaluator: the median of the native loop's samples alternated with its own."""
        return float(np.median(self.paired_native_s)) if self.paired_native_s else None

    @property
    def pair_ratios(self) -> list[float]:
        """tvm/evaluator: evaluator / native for each alternated pair (none without pairs): what
        the machine did to both timers of a pair cancels out of its ratio."""
        if not self.paired_native_s or not self.wall_samples_s:
            return []
        pairs = zip(self.wall_samples_s, self.paired_native_s, strict=False)
        return [e / n for e, n in pairs if n > 0]

    @property
    def paired_ratio(self) -> float | None:
        """tvm/evaluator: the median of `pair_ratios` (None without pairs). Unlike the ratio of
        the two medians, a process or a moment that ran slow for both timers does not move it."""
        ratios = self.pair_ratios
        return float(np.median(ratios)) if ratios else None

    @property
    def paired_ratio_cv(self) -> float:
        """tvm/evaluator: the CV of `pair_ratios` (0 for fewer than two)."""
        ratios = self.pair_ratios
        return _cv(ratios) if len(ratios) > 1 else 0.0

    @property
    def cv_within(self) -> float | None:
        """The spread inside a process: the mean of the processes' CVs."""
        groups = self.process_samples_s or ([self.wall_samples_s] if self.wall_samples_s else [])
        cvs = [_cv(s) for s in groups if len(s) > 1]
        return float(np.mean(cvs)) if cvs else None

    @property
    def cv_between(self) -> float | None:
        """The spread between processes: the CV of the processes' medians (None for one)."""
        medians = self.process_medians_s
        return _cv(medians) if len(medians) > 1 else None

    def with_peak(self, peak_gflops: float | None) -> Record:
        return dataclasses.replace(self, peak_gflops=peak_gflops)

    def with_inconsistency(self, why: str | None) -> Record:
        return dataclasses.replace(self, inconsistent=why)

    # --- JSON --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and value is None:
                continue
            out[f.name] = value
        out["pct_peak"] = self.pct_peak
        if self.unstable:
            out["unstable"] = True
        if self.process_samples_s:
            if self.outliers:
                out["outliers"] = True
            out["spread"] = self.spread
            out["process_medians_s"] = self.process_medians_s
            out["cv_within"] = self.cv_within
            out["cv_between"] = self.cv_between
            out["spread_between"] = self.spread_between
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Record:
        """A record from a results file, this version's or an older one (missing optional
        fields are None; unknown ones are kept in `extra` and written back)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names and k not in _DERIVED}
        known.setdefault("kind", "conv")
        for f in dataclasses.fields(cls):
            if f.name in names and f.name not in known:
                if f.default is dataclasses.MISSING:
                    known[f.name] = None
        return cls(**known, extra=extra)


def stability_warnings(records: Sequence[Record]) -> list[str]:
    """The warnings a set of records gives about its medians' stability."""
    out = []
    unstable = sum(r.unstable for r in records)
    if unstable:
        out.append(
            f"{unstable} measurement(s) unstable: their median's spread (between processes, or "
            f"within them) is {UNSTABLE_SPREAD:.0%} or more"
        )
    outliers = sum(r.outliers for r in records)
    if outliers:
        out.append(
            f"{outliers} measurement(s) with outlying samples: CV {UNSTABLE_CV:.0%} or more, "
            f"while their median's spread is under {UNSTABLE_SPREAD:.0%}"
        )
    return out


def _robust_cv(values: Sequence[float]) -> float:
    """1.4826 x the median absolute deviation over the median: the CV of normal samples,
    estimated without the outliers' weight."""
    med = float(np.median(values))
    mad = float(np.median(np.abs(np.asarray(values, dtype=float) - med)))
    return 1.4826 * mad / med if med > 0 else 0.0


def _cv(values: Sequence[float]) -> float:
    mean = float(np.mean(values))
    return float(np.std(values, ddof=1)) / mean if mean > 0 and len(values) > 1 else 0.0


def pool_processes(records: Sequence[Record], passes: Sequence[int] | None = None) -> Record:
    """One record of a cell from the records of the processes that measured it (repetitions):
    statistics over every sample of every process, each process's samples kept (with the pass
    of the run each ran in, `passes`, where given), and the spread within and between processes
    derived from them."""
    if not records:
        raise ValueError("no record to pool")
    if passes is not None and len(passes) != len(records):
        raise ValueError(f"{len(passes)} passes given for {len(records)} processes")
    first = records[0]
    passes = list(passes) if passes is not None else None
    if len(records) == 1 and first.process_samples_s is None:
        return dataclasses.replace(
            first, process_samples_s=[list(first.wall_samples_s)], process_passes=passes
        )
    groups = [list(r.wall_samples_s) for r in records]
    pooled = np.asarray([t for g in groups for t in g], dtype=float)
    median = float(np.median(pooled))
    mean = float(np.mean(pooled))
    std = float(np.std(pooled, ddof=1)) if pooled.size > 1 else 0.0

    def med(values: list[Any]) -> Any:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def mean_of(values: list[Any]) -> Any:
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    other_cpus = sorted({tuple(c) for r in records for c in r.other_threads_cpus})
    return dataclasses.replace(
        first,
        samples=int(pooled.size),
        iters_per_sample=med([r.iters_per_sample for r in records]),
        median_s=median,
        min_s=float(pooled.min()),
        mean_s=mean,
        stddev_s=std,
        cv=std / mean if mean > 0 else 0.0,
        p10_s=float(np.percentile(pooled, 10)),
        p90_s=float(np.percentile(pooled, 90)),
        max_s=float(pooled.max()),
        cpu_s=med([r.cpu_s for r in records]),
        thread_cpu_s=med([r.thread_cpu_s for r in records]),
        parallelism=mean_of([r.parallelism for r in records]),
        gflops=first.gflops * first.median_s / median if first.gflops and median > 0 else None,
        cpu_migrated=any(r.cpu_migrated for r in records),
        wall_samples_s=[float(t) for t in pooled],
        other_threads_cpus=[list(c) for c in other_cpus],
        pinned=None if first.pinned is None else all(bool(r.pinned) for r in records),
        calls_profiled=sum(r.calls_profiled or 0 for r in records) or None,
        verbose_median_s=med([r.verbose_median_s for r in records]),
        weight_transform_s=med([r.weight_transform_s for r in records]),
        paired_native_s=[t for r in records for t in r.paired_native_s or ()] or None,
        repetitions=len(records),
        process_samples_s=groups,
        process_passes=passes,
        device=", ".join(sorted({r.device for r in records if r.device})) or None,
    )
