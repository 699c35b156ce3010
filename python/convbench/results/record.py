"""One measured cell: the `Record`, built once by the worker that measured it.

The worker knows everything a record says except the machine's peak; the parent adds that with
`with_peak`, which returns a new record. What is derived (the share of peak, the unstable flag) is
computed from the fields, never stored apart from them. The JSON form is the results file's
`records` entry, field for field as convbench has always written it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["UNSTABLE_CV", "Record"]

UNSTABLE_CV = 0.10  # pyperf's threshold: std >= 10% of the mean

# Fields that only some paths have: left out of the JSON when not set.
_OPTIONAL = (
    "timing_thread_cpus",
    "pinned",
    "pool_threads",
    "primitives",
    "primitives_summed",
    "calls_profiled",
    "verbose_median_s",
    "schedule",
    "tuned",
    "inconsistent",
)
_DERIVED = ("pct_peak", "unstable")


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
    pool_threads: int | None = None  # TVM's pool size as read back
    primitives: list[str] | None = None  # tf/kernel: oneDNN primitives summed per call
    primitives_summed: bool | None = None
    calls_profiled: int | None = None
    verbose_median_s: float | None = None  # tf/kernel: the plain median over every call
    schedule: str | None = None  # TVM: the kernel's schedule tag
    tuned: bool | None = None
    peak_gflops: float | None = None  # the measured fp32 peak at this thread count
    inconsistent: str | None = None  # why a cross-check rejects this figure (left out of tables)
    extra: dict[str, Any] = field(default_factory=dict)  # fields of newer or older versions

    # --- derived -----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return f"{self.backend}/{self.path}"

    @property
    def cell(self) -> tuple[str, int, int]:
        """(workload, batch, threads): the cell every path of the ladder shares."""
        return (self.workload, self.batch, self.threads)

    @property
    def pct_peak(self) -> float | None:
        if not self.peak_gflops or not self.gflops:
            return None
        return 100.0 * self.gflops / self.peak_gflops

    @property
    def unstable(self) -> bool:
        return self.cv is not None and self.cv >= UNSTABLE_CV

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
