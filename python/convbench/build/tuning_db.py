"""The tuning databases a build reads (written by `convbench tune`, see convbench.tune).

Layout of a database root:

    <root>/<target key>/<task key>/database_workload.json
                                   database_tuning_record.json
                                   summary.json        (written when that task finished)

One directory per target and task (a conv workload, or a fused model function kept under its
structural hash). The target key holds the LLVM CPU and core count, so a database tuned on one
CPU is never used for another. Roots are searched in order: the user's (``--db`` /
``$CONVBENCH_TUNING_DIR`` / ``~/.cache/convbench/tuning``), then the one shipped in the package.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec.conv import ConvWorkload
from .cache import cache_home

__all__ = [
    "SHIPPED_DB",
    "TunedSchedule",
    "TuningDatabase",
    "default_db_dir",
    "read_summary",
    "target_key",
    "task_dir",
    "workload_key",
]

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


@dataclass(frozen=True)
class TunedSchedule:
    mod: Any  # the scheduled IRModule
    trace_digest: str  # identifies the record: part of the kernel cache key
    source: Path  # the database directory it came from
    summary: dict[str, Any]  # summary.json, or {} for a tune that was interrupted


class TuningDatabase:
    def __init__(self, roots: list[Path] | None = None) -> None:
        self.roots = roots if roots is not None else [default_db_dir(), SHIPPED_DB]

    def directory(self, root: Path, w: ConvWorkload, target: Any) -> Path:
        return task_dir(root, workload_key(w), target)

    def lookup(
        self, w: ConvWorkload, target: Any, mod: Any, honour_summary: bool = True
    ) -> TunedSchedule | None:
        """The best tuned schedule of `mod` for exactly this target, from the first root that
        has one; None when no root does, or (with `honour_summary`) when the finished tune found
        that the default schedule is faster."""
        return self.lookup_key(workload_key(w), target, mod, honour_summary)

    def lookup_key(
        self, key: str, target: Any, mod: Any, honour_summary: bool = True
    ) -> TunedSchedule | None:
        """lookup() for any task kept under `key` (a conv workload, or a fused model function)."""
        from tvm.s_tir import meta_schedule as ms

        for root in self.roots:
            d = task_dir(root, key, target)
            wl, rec = d / "database_workload.json", d / "database_tuning_record.json"
            if not (wl.exists() and rec.exists()):
                continue
            summary = read_summary(d)
            if honour_summary and summary.get("use") == "default":
                return None
            db = ms.database.JSONDatabase(path_workload=str(wl), path_tuning_record=str(rec))
            sch = ms.tir_integration.compile_tir(db, mod, target)
            if sch is None:
                continue
            digest = hashlib.sha256(str(sch.trace).encode()).hexdigest()[:16]
            return TunedSchedule(sch.mod, digest, d, summary)
        return None
