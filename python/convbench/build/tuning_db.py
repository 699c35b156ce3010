"""The tuning databases a build reads (written by `convbench tune`, see convbench.tune).

Layout of a database root:

    <root>/<target key>/<task key>/database_workload.json
                                   database_tuning_record.json
                                   summary.json        (written when that task finished)

One directory per target and task (a conv workload, or a fused model function kept under its
structural hash). A build uses a task's tuned schedule only when its summary says it won the
duel against the default schedule (`uses_tuned`): timed DUEL_RUNS times each, in separate worker
processes, the tuned one faster by a one-sided Mann-Whitney U test at DUEL_ALPHA and by at least
DUEL_MIN_MARGIN of the default's median. A task without a summary (a tune that was interrupted,
or is being resumed) is not used, nor is one whose summary predates the test.

The target key holds the LLVM CPU and core count, so a database tuned on one CPU is never used
for another. Roots are searched in order: the user's (``--db`` /
``$CONVBENCH_TUNING_DIR`` / ``~/.cache/convbench/tuning``), then the one shipped in the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec.conv import ConvWorkload
from .cache import cache_home

__all__ = [
    "DUEL_ALPHA",
    "DUEL_MIN_MARGIN",
    "DUEL_RUNS",
    "SHIPPED_DB",
    "TunedSchedule",
    "TuningDatabase",
    "default_db_dir",
    "duel_verdict",
    "read_summary",
    "target_key",
    "task_dir",
    "uses_tuned",
    "workload_key",
    "write_summary",
]

DUEL_RUNS = 5  # worker runs of each schedule after tuning (their medians are compared)
DUEL_ALPHA = 0.05  # one-sided Mann-Whitney U: the tuned runs faster than the default's
DUEL_MIN_MARGIN = 0.03  # and its median at least 3% below the default's
DUEL_TEST = "mannwhitneyu-less"

SHIPPED_DB = Path(__file__).resolve().parent.parent / "tuning_db"


def default_db_dir() -> Path:
    env = os.environ.get("CONVBENCH_TUNING_DIR")
    return Path(env) if env else cache_home() / "tuning"


def target_key(target: Any) -> str:
    attrs = target.attrs
    mcpu = str(attrs.get("mcpu", "generic"))
    cores = int(attrs.get("num-cores", 0))
    digest = hashlib.sha256(str(target).encode()).hexdigest()[:8]
    return f"{mcpu}-c{cores}-{digest}"


def task_dir(root: Path, key: str, target: Any) -> Path:
    """Where a database root keeps one task (`key`) tuned for one target."""
    return root / target_key(target) / key


def workload_key(w: ConvWorkload) -> str:
    digest = hashlib.sha256(json.dumps(w.problem(), sort_keys=True).encode()).hexdigest()[:10]
    return f"{w.key}-{digest}"


def read_summary(d: Path) -> dict[str, Any]:
    """A task directory's summary.json, or {} when it has none (or a torn one)."""
    try:
        data = json.loads((d / "summary.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_summary(d: Path, summary: dict[str, Any]) -> None:
    """summary.json written atomically (a temporary file renamed over it): a reader sees the
    previous summary or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=".summary.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(summary, f, indent=1)
        os.replace(tmp, d / "summary.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def duel_verdict(
    tuned_s: Sequence[float] | None,
    default_s: Sequence[float],
    alpha: float = DUEL_ALPHA,
    min_margin: float = DUEL_MIN_MARGIN,
) -> dict[str, Any]:
    """Whether the tuned schedule beat the default by more than the noise: `tuned_s` and
    `default_s` are the medians of separate worker runs of each (None: no tuned schedule). The
    verdict ("use": "tuned" or "default") and the evidence, as summary.json records it."""
    base = {
        "test": DUEL_TEST,
        "alpha": alpha,
        "min_margin": min_margin,
        "tuned_runs_s": list(tuned_s) if tuned_s is not None else None,
        "default_runs_s": list(default_s),
    }
    if not tuned_s or not default_s:
        return {**base, "p_value": None, "margin": None, "significant": False, "use": "default"}
    from scipy.stats import mannwhitneyu

    t_med, d_med = statistics.median(tuned_s), statistics.median(default_s)
    margin = (d_med - t_med) / d_med if d_med > 0 else 0.0
    if len(tuned_s) < 2 or len(default_s) < 2:
        p = 1.0
    else:
        p = float(mannwhitneyu(tuned_s, default_s, alternative="less").pvalue)
    significant = p < alpha
    use = "tuned" if significant and margin >= min_margin else "default"
    return {**base, "p_value": p, "margin": margin, "significant": significant, "use": use}


def uses_tuned(summary: dict[str, Any]) -> bool:
    """A build uses the tuned schedule only when a finished duel says it won (see the module's
    docstring): no summary, or one without the test's evidence, means the default schedule."""
    duel = summary.get("duel")
    return (
        summary.get("use") == "tuned"
        and isinstance(duel, dict)
        and duel.get("test") == DUEL_TEST
        and duel.get("use") == "tuned"
    )


@dataclass(frozen=True)
class TunedSchedule:
    mod: Any  # the scheduled IRModule
    trace_digest: str  # identifies the record: part of the kernel cache key
    source: Path  # the database directory it came from
    summary: dict[str, Any]  # summary.json ({} for an interrupted tune, never used by a build)


class TuningDatabase:
    def __init__(self, roots: list[Path] | None = None) -> None:
        self.roots = roots if roots is not None else [default_db_dir(), SHIPPED_DB]

    def directory(self, root: Path, w: ConvWorkload, target: Any) -> Path:
        return task_dir(root, workload_key(w), target)

    def lookup(
        self, w: ConvWorkload, target: Any, mod: Any, honour_summary: bool = True
    ) -> TunedSchedule | None:
        """The best tuned schedule of `mod` for exactly this target, from the first root that
        has one; None when no root does, or (with `honour_summary`) unless a finished tune's
        duel found it faster than the default schedule (uses_tuned)."""
        return self.lookup_key(workload_key(w), target, mod, honour_summary)

    def _usable(
        self, key: str, target: Any, honour_summary: bool = True
    ) -> Iterator[tuple[Path, dict[str, Any]]]:
        """The directories (and summaries) under `key` whose records a lookup may use, root by
        root; with `honour_summary`, only those whose finished duel the tuned schedule won, and
        none after a root whose finished duel the default schedule won."""
        for root in self.roots:
            d = task_dir(root, key, target)
            if not (
                (d / "database_workload.json").exists()
                and (d / "database_tuning_record.json").exists()
            ):
                continue
            summary = read_summary(d)
            if honour_summary and not uses_tuned(summary):
                if summary:
                    return  # this root's finished duel: the default schedule won
                continue  # an interrupted tune here: its records are not used
            yield d, summary

    def may_have(self, key: str, target: Any) -> bool:
        """Whether lookup_key(key, target, ...) can find a schedule a build uses, from the
        files alone (no module to compile)."""
        return next(self._usable(key, target), None) is not None

    def lookup_key(
        self, key: str, target: Any, mod: Any, honour_summary: bool = True
    ) -> TunedSchedule | None:
        """lookup() for any task kept under `key` (a conv workload, or a fused model function)."""
        from tvm.s_tir import meta_schedule as ms

        for d, summary in self._usable(key, target, honour_summary):
            wl, rec = d / "database_workload.json", d / "database_tuning_record.json"
            db = ms.database.JSONDatabase(path_workload=str(wl), path_tuning_record=str(rec))
            sch = ms.tir_integration.compile_tir(db, mod, target)
            if sch is None:
                continue
            digest = hashlib.sha256(str(sch.trace).encode()).hexdigest()[:16]
            return TunedSchedule(sch.mod, digest, d, summary)
        return None
