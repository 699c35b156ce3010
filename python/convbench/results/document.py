"""The results document: what a run writes (header, workloads, kernels, checks, records, ...),
saved atomically after every change so an interrupted run keeps what it measured, and loaded back
by `convbench report` and `convbench compare`, from this version or an older one."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .record import Record

__all__ = ["ResultsDoc", "ResultsError"]

# The header's keys, in the order the file has always had them.
HEADER_KEYS = (
    "convbench",
    "started_at",
    "finished_at",
    "complete",
    "machine",
    "libraries",
    "tvm_target",
    "config",
    "remote",  # --rpc: the tracker, key and the remote machine the TVM cells ran on
)


class ResultsError(ValueError):
    """A file that is not a convbench results file."""


# A default run writes a few MiB; anything this large is not a results file of convbench's.
MAX_RESULTS_BYTES = 256 << 20


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@dataclass
class ResultsDoc:
    header: dict[str, Any] = field(default_factory=dict)
    harness_overhead: dict[str, Any] | None = None
    peak: dict[str, Any] = field(default_factory=dict)  # thread count (str) -> peak probe
    workloads: list[dict[str, Any]] = field(default_factory=list)
    kernels: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    overheads: list[dict[str, Any]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    conv_prediction: list[dict[str, Any]] | None = None
    duration_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # sections of other versions, kept

    @property
    def complete(self) -> bool:
        return bool(self.header.get("complete"))

    def kinds(self) -> dict[str, str]:
        """{workload name: its kind} (conv, block, model, prefix)."""
        return {w["name"]: w.get("kind", "conv") for w in self.workloads}

    def peak_gflops(self, threads: int) -> float | None:
        p = self.peak.get(str(threads))
        return p["gflops"] if p else None

    def warn(self, message: str) -> bool:
        """Adds a warning once; True when it is new."""
        if message in self.warnings:
            return False
        self.warnings.append(message)
        return True

    # --- JSON --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: self.header.get(k) for k in HEADER_KEYS if k in self.header}
        out.update(
            harness_overhead=self.harness_overhead,
            peak=self.peak,
            workloads=self.workloads,
            kernels=self.kernels,
            checks=self.checks,
            layers=self.layers,
            overheads=self.overheads,
            records=[r.to_json() for r in self.records],
            errors=self.errors,
            warnings=self.warnings,
        )
        if self.conv_prediction is not None:
            out["conv_prediction"] = self.conv_prediction
        if self.duration_s is not None:
            out["duration_s"] = self.duration_s
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, d: Any) -> ResultsDoc:
        if not isinstance(d, dict) or not isinstance(d.get("records"), list):
            raise ResultsError("no 'records' list")
        try:
            records = [Record.from_json(r) for r in d["records"]]
        except (TypeError, AttributeError) as e:
            raise ResultsError(f"a record cannot be read ({e})") from None
        sections = {
            "harness_overhead",
            "peak",
            "workloads",
            "kernels",
            "checks",
            "layers",
            "overheads",
            "records",
            "errors",
            "warnings",
            "conv_prediction",
            "duration_s",
        }
        return cls(
            header={k: d[k] for k in HEADER_KEYS if k in d},
            harness_overhead=d.get("harness_overhead"),
            peak=d.get("peak") or {},
            workloads=list(d.get("workloads") or []),
            kernels=list(d.get("kernels") or []),
            checks=list(d.get("checks") or []),
            layers=list(d.get("layers") or []),
            overheads=list(d.get("overheads") or []),
            records=records,
            errors=list(d.get("errors") or []),
            warnings=list(d.get("warnings") or []),
            conv_prediction=d.get("conv_prediction"),
            duration_s=d.get("duration_s"),
            extra={k: v for k, v in d.items() if k not in sections and k not in HEADER_KEYS},
        )

    def save(self, path: Path) -> None:
        """Written to a temporary file unique to this process, then renamed over `path`: a reader
        never sees half a file, and two runs writing beside each other never collide."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            # mkstemp makes it 0600; a results file is as readable as any file the user writes
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_json(), f, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> ResultsDoc:
        """A results file; ResultsError saying why when it is not one: also when it is larger
        than MAX_RESULTS_BYTES or nested deeper than the JSON parser goes."""
        try:
            size = Path(path).stat().st_size
            if size > MAX_RESULTS_BYTES:
                raise ResultsError(
                    f"{size / 2**20:.0f} MiB: a results file is at most "
                    f"{MAX_RESULTS_BYTES // 2**20} MiB"
                )
            with open(path, "rb") as f:
                data = json.loads(f.read(MAX_RESULTS_BYTES + 1))
        except (OSError, ValueError) as e:
            raise ResultsError(str(e)) from None
        except RecursionError:
            raise ResultsError("its JSON is nested too deeply to be a results file") from None
        return cls.from_json(data)
