"""TVM kernels: the conv computation, its build for the host, and the on-disk kernel cache.

A cache entry is a directory `<name>-<key>/` holding `kernel.so` and `manifest.json`. The key hashes
everything that changes the binary: the workload, the target, the TVM and tvm-ffi versions, and
the source of the compute and schedule code. An entry is published by an atomic rename after the
manifest (with the .so's SHA-256) is written, so a half-written or corrupt entry fails its check
and is rebuilt, never loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec.conv import ConvWorkload
from ..spec.model import ModelWorkload
from . import compute, relax, schedules
from .relax import build_relax, tuned_records
from .target import host_target

__all__ = [
    "BuiltKernel",
    "KernelCache",
    "cache_home",
    "default_cache_dir",
    "source_digest",
]

MANIFEST = "manifest.json"
LIBRARY = "kernel.so"


def cache_home() -> Path:
    """$XDG_CACHE_HOME/convbench, or ~/.cache/convbench."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "convbench"


def default_cache_dir() -> Path:
    env = os.environ.get("CONVBENCH_CACHE_DIR")
    return Path(env) if env else cache_home()


def source_digest() -> str:
    """A digest of the code that decides what a kernel computes and how it is scheduled: part of
    every cache key, so a change to it rebuilds the kernels."""
    from ..spec import model

    h = hashlib.sha256()
    for path in (__file__, compute.__file__, schedules.__file__, relax.__file__, model.__file__):
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class BuiltKernel:
    name: str
    path: Path
    key: str
    schedule: str
    cached: bool  # True when loaded from the cache, False when built by this call
    build_s: float  # compile time when built; the original compile time when cached
    tuned_from: str | None = None  # the tuning database directory, for a tuned kernel


class KernelCache:
    """Builds kernels into `root`, or loads them from it.

    `tuning`: where tuned schedules are looked up (None: never); a tuned record is used only for
    the exact target it was tuned for, which includes the thread count.
    """

    def __init__(
        self, root: Path | str | None = None, target: Any = None, tuning: Any = None
    ) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.target = target if target is not None else host_target()
        self.tuning = tuning

    def _identity(
        self, name: str, workload: dict[str, Any], schedule: str, target: Any
    ) -> dict[str, Any]:
        import tvm
        import tvm_ffi

        return {
            "name": name,
            "workload": workload,
            "target": str(target),
            "tvm": tvm.__version__,
            "tvm_ffi": tvm_ffi.__version__,
            "schedule": schedule,
            "source": source_digest(),
        }

    def conv(self, w: ConvWorkload, threads: int | None = None) -> BuiltKernel:
        """The kernel of `w`: tuned for `threads` if the tuning database has it, else default."""
        desc = {**w.problem(), "dtype": "float32"}
        if threads is not None and self.tuning is not None:
            target = host_target(threads)
            tuned = self.tuning.lookup(w, target, compute.conv_module(w))
            if tuned is not None:
                return self._get(
                    f"{w.key}-t{threads}",
                    desc,
                    f"tuned:{tuned.trace_digest}",
                    lambda: tuned.mod,
                    target,
                    str(tuned.source),
                )
        schedule = schedules.schedule_tag(w)
        return self._get(w.key, desc, schedule, lambda: schedules.scheduled_conv(w), self.target)

    def empty(self) -> BuiltKernel:
        return self._get("empty", {"empty": True}, "none", compute.empty_module, self.target)

    def model(
        self, mw: ModelWorkload, fuse: bool = True, threads: int | None = None
    ) -> BuiltKernel:
        """A model cut as one Relax executable, with its call plan (plan.LayerPlan) beside it;
        `fuse`: Relax's operator fusion on or off. With `threads` and a tuning database, fused
        functions that have a winning tuned schedule for that thread count get it (a build per
        thread count); the others, and every function when none has one, the hand-written
        schedules (one build for all thread counts)."""
        target, tuned, tuning = self.target, {}, None
        if fuse and threads is not None and self.tuning is not None:
            t_target = host_target(threads)
            tuned = tuned_records(mw.graph, mw.batch, self.tuning, t_target)
            if tuned:
                target, tuning = t_target, self.tuning
        schedule = f"{schedules.SCHEDULE_VERSION}:relax-{'fused' if fuse else 'unfused'}"
        name = f"{mw.key}-{'fused' if fuse else 'unfused'}"
        if tuned:
            digest = hashlib.sha256(json.dumps(tuned, sort_keys=True).encode()).hexdigest()[:16]
            schedule += f":tuned-{len(tuned)}-{digest}"
            name += f"-t{threads}"

        def export(directory: Path) -> None:
            build_relax(
                mw.graph, mw.batch, target, directory, fuse=fuse, library=LIBRARY, tuning=tuning
            )

        built = self._get(name, mw.problem(), schedule, None, target, export=export)
        if tuned:
            built = dataclasses.replace(built, tuned_from=f"{len(tuned)} functions")
        return built

    def _get(
        self,
        name: str,
        workload: dict[str, Any],
        schedule: str,
        make: Any,
        target: Any,
        tuned_from: str | None = None,
        export: Any = None,
    ) -> BuiltKernel:
        identity = self._identity(name, workload, schedule, target)
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
        entry = self.root / f"{_safe(name)}-{key}"
        cached_build_s = self._load(entry, key)
        cached = cached_build_s is not None
        if not cached:
            if entry.exists():
                shutil.rmtree(entry, ignore_errors=True)  # half-written or corrupt: rebuild it
        build_s = (
            cached_build_s if cached else self._build(entry, key, identity, make, target, export)
        )
        return BuiltKernel(name, entry / LIBRARY, key, schedule, cached, build_s, tuned_from)

    def _load(self, entry: Path, key: str) -> float | None:
        """The entry's original build time if it is whole and matches `key`, else None."""
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
            if manifest.get("key") != key or _sha256(entry / LIBRARY) != manifest.get("sha256"):
                return None
            return float(manifest.get("build_s", 0.0))
        except (OSError, ValueError, AttributeError, TypeError):
            return None

    def _build(
        self,
        entry: Path,
        key: str,
        identity: dict[str, Any],
        make: Any,
        target: Any,
        export: Any = None,
    ) -> float:
        """Compiles and publishes the entry; returns the compile time. `export(directory)`, when
        given, writes the library (and anything beside it) instead of compiling make()."""
        import tvm

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=self.root))
        try:
            t0 = time.perf_counter()
            lib = tmp / LIBRARY
            with target:
                if export is not None:
                    export(tmp)
                else:
                    tvm.compile(make(), target=target).export_library(str(lib))
            build_s = time.perf_counter() - t0
            manifest = {
                "key": key,
                "identity": identity,
                "sha256": _sha256(lib),
                "build_s": build_s,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            try:
                os.replace(tmp, entry)
            except OSError:
                # Another process published the same entry first; theirs is as good as ours.
                if self._load(entry, key) is None:
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return build_s


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
