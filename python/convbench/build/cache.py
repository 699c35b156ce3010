"""TVM kernels: the conv computation, its build for the host, and the on-disk kernel cache.

A cache entry is a directory `<name>-<key>/` holding `kernel.so` (a model's also `plan.json` and
`constants.npz`) and `manifest.json`. The key hashes everything that changes the binary: the
workload, the target, the TVM and tvm-ffi versions, and the source of the compute and schedule
code. An entry is built in a temporary directory and published by an atomic rename after the
manifest (with every file's SHA-256) is written, so a half-written or corrupt entry fails its check
and is rebuilt, never loaded.

Processes share a cache: building an entry, and removing one that failed its check, happen under
an exclusive lock on `.<entry>.lock` (fcntl.flock), and the entry is checked again once the lock
is held, so a process never removes an entry another one has just published. A build killed
half-way leaves its temporary directory `.<entry>.<pid>.<random>`; the next build in that cache
removes those whose process is gone and that are older than STALE_TEMP_S.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import model as spec_model
from ..spec.conv import ConvWorkload
from ..spec.model import ModelWorkload
from . import compute, relax, schedules
from .relax import build_relax
from .target import host_target, with_cores
from .winograd import WINOGRAD_VERSION, winograd_module, winograd_tag

__all__ = [
    "BuiltKernel",
    "KernelCache",
    "cache_home",
    "default_cache_dir",
    "source_digest",
    "usable_cache_dir",
    "writable_dir",
]

MANIFEST = "manifest.json"
LIBRARY = "kernel.so"
STALE_TEMP_S = 600.0  # a dead process's temporary build directory older than this is removed
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[a-z0-9_]{8}$")


def writable_dir(path: Path | str) -> str | None:
    """None when `path` is, or can be made, a directory this process can write into; else a
    phrase saying why not ("<path> is a file, not a directory")."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"{p} is a file, not a directory"
    except OSError as e:
        return f"{p} cannot be created ({e.strerror})"
    if not p.is_dir():
        return f"{p} is not a directory"
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"{p} is not writable ({e.strerror})"
    return None


def usable_cache_dir(root: Path | str | None = None) -> tuple[Path, str | None]:
    """(the cache directory to use, a warning or None): `root` (default: default_cache_dir())
    when it is a writable directory, else a new temporary directory and the reason."""
    p = Path(root) if root is not None else default_cache_dir()
    problem = writable_dir(p)
    if problem is None:
        return p, None
    tmp = Path(tempfile.mkdtemp(prefix="convbench-cache-"))
    return tmp, (
        f"the kernel cache {problem}: this run uses the temporary cache {tmp} instead (kernels "
        "are rebuilt next time; --cache-dir or $CONVBENCH_CACHE_DIR picks another)"
    )


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
    h = hashlib.sha256()
    for path in (
        __file__,
        compute.__file__,
        schedules.__file__,
        relax.__file__,
        spec_model.__file__,
    ):
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
    algorithm: str = "direct"  # a conv kernel's: "direct" or "winograd-<m>" (build.winograd)


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
        self._imported: dict[Path, tuple[str, Any]] = {}  # TFLite flatbuffer -> (sha, module)

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

    def conv(
        self, w: ConvWorkload, threads: int | None = None, honour_summary: bool = True
    ) -> BuiltKernel:
        """The kernel of `w`: tuned for `threads` if the tuning database has a schedule that won
        its duel (any tuned schedule, with honour_summary=False: the duel itself), else
        default."""
        desc = {**w.problem(), "dtype": "float32"}
        if threads is not None and self.tuning is not None:
            target = with_cores(self.target, threads)
            tuned = self.tuning.lookup(w, target, compute.conv_module(w), honour_summary)
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

    def winograd(self, w: ConvWorkload, m: int) -> BuiltKernel:
        """The Winograd F(m x m, 3x3) kernel of `w` (build.winograd): `main` and the
        `weight_transform` it needs once per weight set."""
        algorithm = f"winograd-{m}"
        desc = {**w.problem(), "dtype": "float32", "algorithm": algorithm}
        built = self._get(
            f"{w.key}-{algorithm}",
            desc,
            winograd_tag(w, m),
            lambda: winograd_module(w, m),
            self.target,
        )
        return dataclasses.replace(built, algorithm=algorithm)

    def empty(self) -> BuiltKernel:
        return self._get("empty", {"empty": True}, "none", compute.empty_module, self.target)

    def model(
        self,
        mw: ModelWorkload,
        fuse: bool = True,
        threads: int | None = None,
        tflite: Path | None = None,
        winograd: dict[str, int] | None = None,
    ) -> BuiltKernel:
        """A model cut as one Relax executable, with its call plan (plan.LayerPlan) and the
        schedule each function got (schedules.json) beside it; `fuse`: Relax's operator fusion
        on or off. A model file's cut is imported from its TFLite flatbuffer (`tflite`, which the
        run exported), the stand-in's built from its description. With `threads` and a tuning
        database, fused functions that have a winning tuned schedule for that thread count get
        it (a build per thread count); the others, and every function when none has one, the
        hand-written schedules (one build for all thread counts). `winograd`: the convs
        computed by Winograd ({winograd.problem_key: m}: relax.winograd_convs)."""
        target, tuned, tuning = self.target, {}, None
        desc = mw.problem()
        module = None
        if mw.from_file:
            if tflite is None:
                raise ValueError(f"{mw.name}: a model file's cut is built from its TFLite form")
            # imported once per flatbuffer, for every build of the cut (fused, unfused, each
            # thread count); the digest keys the cache entry
            if tflite not in self._imported:
                self._imported[tflite] = (_sha256(tflite), relax.tflite_module(tflite))
            digest, module = self._imported[tflite]
            desc = {**desc, "tflite_sha256": digest}
        if fuse and threads is not None and self.tuning is not None:
            t_target = with_cores(self.target, threads)
            keys = self._fused_keys(mw, desc, module)
            tuned = relax.tuned_records(mw.graph, mw.batch, self.tuning, t_target, module, keys)
            if tuned:
                target, tuning = t_target, self.tuning
        schedule = f"{schedules.SCHEDULE_VERSION}:relax-{'fused' if fuse else 'unfused'}"
        if winograd:
            desc = {**desc, "winograd": dict(sorted(winograd.items()))}
            schedule += f":{WINOGRAD_VERSION}-{len(winograd)}"
        name = f"{mw.key}-{'fused' if fuse else 'unfused'}"
        if tuned:
            digest = hashlib.sha256(json.dumps(tuned, sort_keys=True).encode()).hexdigest()[:16]
            schedule += f":tuned-{len(tuned)}-{digest}"
            name += f"-t{threads}"

        def export(directory: Path) -> None:
            build_relax(
                mw.graph,
                mw.batch,
                target,
                directory,
                fuse=fuse,
                library=LIBRARY,
                tuning=tuning,
                module=module,
                winograd=winograd,
            )

        built = self._get(name, desc, schedule, None, target, export=export)
        if tuned:
            built = dataclasses.replace(built, tuned_from=f"{len(tuned)} functions")
        return built

    def _fused_keys(self, mw: ModelWorkload, desc: dict[str, Any], module: Any) -> list[str]:
        """relax.fused_keys of a cut, kept beside the kernels (lowering a whole model to find
        them costs seconds, at every thread count of every run)."""
        identity = self._identity(f"{mw.key}-fused-keys", desc, "fused-keys", None)
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
        path = self.root / "fused-keys" / f"{_safe(mw.key)}-{key}.json"
        try:
            keys = json.loads(path.read_text())
            if isinstance(keys, list) and all(isinstance(k, str) for k in keys):
                return keys
        except (OSError, ValueError):
            pass
        keys = relax.fused_keys(mw.graph, mw.batch, module)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(keys))
        os.replace(tmp, path)
        return keys

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
        build_s = self._load(entry, key)
        cached = build_s is not None
        if build_s is None:
            with self._locked(entry):
                build_s = self._load(entry, key)  # published while this process waited?
                cached = build_s is not None
                if build_s is None:
                    self._discard(entry)  # half-written or corrupt, checked under the lock
                    build_s = self._build(entry, key, identity, make, target, export)
        return BuiltKernel(name, entry / LIBRARY, key, schedule, cached, build_s, tuned_from)

    @contextlib.contextmanager
    def _locked(self, entry: Path) -> Iterator[None]:
        """An exclusive lock on `entry` among every process sharing this cache."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f".{entry.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _discard(self, entry: Path) -> None:
        """Removes an entry that failed its check (the caller holds its lock): moved aside
        first, so the name is free at once even if removing its files fails."""
        if not entry.exists():
            return
        aside = entry.with_name(f".{entry.name}.{os.getpid()}.discard")
        try:
            os.replace(entry, aside)
        except OSError:
            aside = entry
        shutil.rmtree(aside, ignore_errors=True)

    def _load(self, entry: Path, key: str) -> float | None:
        """The entry's original build time if it is whole (every file it lists has its
        checksum: the library, and a model's plan.json and constants.npz) and matches `key`."""
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
            files = manifest.get("files")
            if manifest.get("key") != key or not isinstance(files, dict) or LIBRARY not in files:
                return None
            for rel, digest in files.items():
                if _sha256(entry / rel) != digest:
                    return None
            return float(manifest.get("build_s", 0.0))
        except (OSError, ValueError, AttributeError, TypeError):
            return None

    def _clean_stale(self) -> None:
        """Removes temporary build directories left by killed builds: those whose process is
        gone and that are older than STALE_TEMP_S."""
        now = time.time()
        try:
            children = list(self.root.iterdir())
        except OSError:
            return
        for d in children:
            m = _TEMP_NAME.match(d.name)
            if m is None and not d.name.endswith(".discard"):
                continue
            try:
                if not d.is_dir() or now - d.stat().st_mtime < STALE_TEMP_S:
                    continue
            except OSError:
                continue
            pid = int(m.group(1)) if m else int(d.name.rsplit(".", 2)[-2])
            if not _alive(pid):
                shutil.rmtree(d, ignore_errors=True)

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
        self._clean_stale()
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.{os.getpid()}.", dir=self.root))
        try:
            t0 = time.perf_counter()
            lib = tmp / LIBRARY
            with target:
                if export is not None:
                    export(tmp)
                else:
                    tvm.compile(make(), target=target).export_library(str(lib))
            build_s = time.perf_counter() - t0
            files = {
                str(f.relative_to(tmp)): _sha256(f) for f in sorted(tmp.rglob("*")) if f.is_file()
            }
            manifest = {
                "key": key,
                "identity": identity,
                "sha256": files[LIBRARY],
                "files": files,
                "build_s": build_s,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            os.replace(tmp, entry)  # the caller holds the lock and removed any bad entry
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return build_s


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
