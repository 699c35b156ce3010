"""convbench's pytest plugin (registered through the `pytest11` entry point): timed kernels in
tests, shaped after pytest-benchmark's `benchmark` fixture, timed by convbench's C++ loop.

    def test_tvm_beats_onednn(convbench_kernel):
        tvm = convbench_kernel("conv_108x21x64", threads=1)          # built, checked, timed
        onednn = convbench_kernel("conv_108x21x64", backend="tf", path="kernel")
        convbench_kernel.assert_not_slower(tvm, onednn, confidence=0.95)

Each call measures one cell exactly as `convbench` does: the kernel from the kernel cache (built
for this CPU on first use), checked once against TensorFlow, then timed in a fresh worker process
with its threads pinned. The result carries pytest-benchmark's statistics (min, max, mean,
stddev, median, iqr, q1, q3, rounds, iterations, ops; seconds) and the convbench `Record`.

Options: `--convbench-shapes FILE` (ini `convbench_shapes`; default `shapes.yaml` in the rootdir)
names the workloads; `--convbench-json PATH` writes what the session measured as a convbench
results file (`convbench report`, `compare` and `plot` read it); `--convbench-samples`,
`--convbench-min-sample-time`, `--convbench-warmup` set the sampling; `--convbench-cache-dir`
(ini `convbench_cache_dir`) the kernel cache. A test skips, with the reason, when the native
extension, TVM or TensorFlow cannot load; the session summary says so.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import io
import os
import platform
import time
from math import comb
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .paths import PATHS
from .report.format import WIDTH, fmt_time, table
from .results.analysis import cross_checks, ladder
from .results.document import ResultsDoc
from .results.record import Record, stability_warnings
from .results.significance import STAT_NAMES, Comparison, compare_samples, stats
from .spec.conv import ConvSpec, ConvWorkload
from .spec.errors import SpecError
from .spec.shapes import load_shapes
from .version import __version__

__all__ = [
    "BenchResult",
    "KernelBench",
    "assert_faster",
    "assert_not_slower",
    "convbench_kernel",
    "ratio",
]


def _usage(message: str) -> NoReturn:
    """A test that calls the fixture wrongly fails with the message alone."""
    pytest.fail(message, pytrace=False)


# --- the comparisons a performance test asserts -------------------------------------------------
def _names(a: Any, b: Any) -> tuple[str, str]:
    """How a message names the two sides: a result's cell, a record's path, else a and b."""

    def name(x: Any, default: str) -> str:
        if isinstance(x, BenchResult):
            return x.name
        return x.id if isinstance(x, Record) else default

    return name(a, "a"), name(b, "b")


def _alpha(confidence: float, c: Comparison) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    alpha = round(1.0 - confidence, 12)  # 1 - 0.95 is 0.050000000000000044
    # the smallest one-sided p the U test can give: with fewer samples the verdict is fixed
    if 1.0 / comb(c.n_a + c.n_b, c.n_a) >= alpha:
        raise ValueError(
            f"{c.n_a} and {c.n_b} samples cannot show a difference at {confidence:.0%} "
            "confidence: take more samples (--convbench-samples)"
        )
    return alpha


def ratio(a: Any, b: Any) -> float:
    """median(a) / median(b) of two results (or Records, or lists of per-call seconds)."""
    return compare_samples(a, b).ratio


def assert_not_slower(
    a: Any, b: Any, confidence: float = 0.95, tolerance: float = 0.0
) -> Comparison:
    """Fails when `a` is slower than `b` (times `1 + tolerance`) at `confidence`: a one-sided
    Mann-Whitney U test on the per-sample times. Returns the comparison."""
    c = compare_samples(a, b, tolerance)
    na, nb = _names(a, b)
    if c.p_slower < _alpha(confidence, c):
        raise AssertionError(
            f"{na} is slower than {nb}"
            + (f" x {1 + tolerance:g}" if tolerance else "")
            + f" at {confidence:.0%} confidence: {c.describe(na, nb)}"
        )
    return c


def assert_faster(a: Any, b: Any, confidence: float = 0.95, tolerance: float = 0.0) -> Comparison:
    """Fails unless `a` is faster than `b` (times `1 + tolerance`) at `confidence`."""
    c = compare_samples(a, b, tolerance)
    na, nb = _names(a, b)
    if not c.p_faster < _alpha(confidence, c):
        raise AssertionError(
            f"{na} is not shown faster than {nb} at {confidence:.0%} confidence: "
            + c.describe(na, nb)
        )
    return c


# --- results ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BenchResult:
    """One measured cell: pytest-benchmark's statistics as attributes (`r.median`, `r.iqr`,
    `r.ops`, ...; `r.stats` as a dict), the samples, and convbench's `record`."""

    record: Record
    test: str

    @property
    def name(self) -> str:
        r = self.record
        return f"{r.workload} {r.id} t{r.threads}"

    @property
    def stats(self) -> dict[str, Any]:
        return stats(self.record)

    @property
    def samples(self) -> list[float]:
        return list(self.record.wall_samples_s)

    def __getattr__(self, name: str) -> Any:
        if name in STAT_NAMES:
            return self.stats[name]
        if name in ("cv", "gflops", "pct_peak", "parallelism", "unstable", "oversubscribed"):
            return getattr(self.record, name)
        raise AttributeError(name)


class Skip(Exception):
    """The environment cannot run this measurement (what is missing is the message)."""


def _tf_missing(message: str) -> bool:
    return "tensorflow" in message.lower() and ("ImportError" in message or "No module" in message)


class Session:
    """What the test session measured, and the machinery it shares (cache, checks)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.results: list[BenchResult] = []
        self.skipped: dict[str, int] = {}
        self.workloads: dict[tuple[str, int], dict[str, Any]] = {}
        self.kernels: list[dict[str, Any]] = []
        self.checks: dict[str, dict[str, Any]] = {}
        self.peak: dict[str, Any] = {}
        self._cache: Any = None
        self._shapes: dict[Path, dict[str, ConvSpec]] = {}

    # --- options ----------------------------------------------------------------------------
    def option(self, name: str, ini: str | None = None) -> Any:
        value = self.config.getoption(name)
        if value is None and ini is not None:
            value = self.config.getini(ini) or None
        return value

    def run_config(self, samples: int | None, min_sample_time: float | None, warmup: float | None):
        from .native.harness import RunConfig

        return RunConfig(
            warmup_s=warmup or self.option("convbench_warmup"),
            min_sample_s=min_sample_time or self.option("convbench_min_sample_time"),
            samples=samples or self.option("convbench_samples"),
        )

    # --- what can load ----------------------------------------------------------------------
    def require(self, backend: str) -> None:
        """Skip unless the native extension (and TVM, which builds and checks) can load."""
        try:
            importlib.import_module("convbench._core")
        except (ImportError, OSError) as e:
            raise Skip(
                f"convbench's native extension cannot load ({type(e).__name__}: {e})"
            ) from None
        if importlib.util.find_spec("tensorflow") is None:
            raise Skip(
                "TensorFlow cannot load: it is not installed (kernels are checked against it)"
            )
        if backend == "tvm":
            try:
                importlib.import_module("tvm")
            except Exception as e:
                raise Skip(f"TVM cannot load ({type(e).__name__}: {e})") from None

    @property
    def cache(self) -> Any:
        if self._cache is None:
            from .build.cache import KernelCache
            from .build.tuning_db import TuningDatabase

            root = self.option("convbench_cache_dir", "convbench_cache_dir")
            self._cache = KernelCache(root, tuning=TuningDatabase(None))
        return self._cache

    # --- workloads --------------------------------------------------------------------------
    def shapes_path(self, given: str | Path | None) -> Path:
        """The shapes file: the fixture's argument, --convbench-shapes (relative to where pytest
        was started), ini convbench_shapes (relative to the rootdir), or rootdir/shapes.yaml."""
        if given is not None:
            return Path(given)
        cli = self.config.getoption("convbench_shapes")
        if cli:
            return self.config.invocation_params.dir / cli
        return self.config.rootpath / (self.config.getini("convbench_shapes") or "shapes.yaml")

    def conv(self, workload: Any, shapes: str | Path | None) -> ConvSpec:
        if isinstance(workload, ConvSpec):
            return workload
        if isinstance(workload, dict):
            try:
                return ConvSpec.model_validate({"name": "inline", "count": 1, **workload})
            except ValueError as e:  # pydantic's ValidationError
                problem = str(e)
            _usage(f"convbench: invalid conv description: {problem}")
        if not isinstance(workload, str):
            _usage(f"convbench: a workload is a name, a dict or a ConvSpec, got {workload!r}")
        path = self.shapes_path(shapes)
        if path not in self._shapes:
            try:
                self._shapes[path] = {c.name: c for c in load_shapes(path).convs}
            except SpecError as e:
                problem = str(e)
            else:
                problem = ""
            if problem:
                _usage(f"convbench: {problem}")
        convs = self._shapes[path]
        if workload not in convs:
            _usage(f"convbench: no conv named {workload!r} in {path}; known: {', '.join(convs)}")
        return convs[workload]

    # --- one measurement --------------------------------------------------------------------
    def _worker(self, task: Any) -> dict[str, Any]:
        from .measure.pool import WorkerError, run_worker

        try:
            return run_worker(task, self.option("convbench_cell_timeout"))
        except WorkerError as e:
            if _tf_missing(str(e)):
                raise Skip(f"TensorFlow cannot load in a worker ({e})") from None
            raise

    def _check(self, w: ConvWorkload, kernel: Any) -> None:
        """TVM's kernel against TF, once per kernel; a mismatch fails the test."""
        from .measure.tasks import CheckTask

        if kernel.key not in self.checks:
            task = CheckTask(workload=w, kernel_paths={"kernel": str(kernel.path)})
            self.checks[kernel.key] = {**self._worker(task), "schedule": kernel.schedule}
        c = self.checks[kernel.key]
        if not c["ok"]:
            pytest.fail(
                f"convbench: {w.name}: TVM's output differs from TF's (max_rel_err "
                f"{c['max_rel_err']:.3g} > rtol {c['rtol']:g})",
                pytrace=False,
            )

    def _peak(self, threads: int) -> float | None:
        from .native.peak import PeakCache

        if str(threads) not in self.peak:
            try:
                self.peak[str(threads)] = PeakCache(self.cache.root / "peak.json").get(threads)
            except Exception:
                return None
        return self.peak[str(threads)]["gflops"]

    def measure(
        self,
        test: str,
        spec: ConvSpec,
        backend: str,
        path: str,
        threads: int,
        batch: int,
        config: Any,
        seed: int,
    ) -> BenchResult:
        from .cpus import allowed_cpus
        from .run import measure_task

        if (backend, path) not in PATHS:
            known = ", ".join(f"{b}/{p}" for b, p in PATHS)
            _usage(f"convbench: no conv path {backend}/{path}; known: {known}")
        w = ConvWorkload(spec, batch)
        self.workloads.setdefault((w.name, batch), w.describe())
        kernel = None
        if backend == "tvm":
            kernel = self.cache.conv(w, threads)
            self.kernels.append(
                {
                    "workload": w.name,
                    "batch": batch,
                    "threads": threads,
                    "path": str(kernel.path),
                    "key": kernel.key,
                    "schedule": kernel.schedule,
                    "tuned": kernel.tuned_from is not None,
                    "cached": kernel.cached,
                    "build_s": kernel.build_s,
                }
            )
            self._check(w, kernel)
        task = measure_task(w, threads, backend, path, config, seed, kernel, allowed_cpus())
        raw = self._worker(task)
        record = Record.from_json(raw).with_peak(self._peak(threads))
        record = dataclasses.replace(record, extra={**record.extra, "pytest_test": test})
        result = BenchResult(record, test)
        self.results.append(result)
        return result

    # --- the session's results --------------------------------------------------------------
    def document(self) -> ResultsDoc:
        from .cpus import allowed_cpus, cpu_model

        records = [r.record for r in self.results]
        warnings = cross_checks(records)
        warnings += stability_warnings(records)
        config = self.run_config(None, None, None)
        available = allowed_cpus()
        header = {
            "convbench": __version__,
            "started_at": self.started,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "complete": True,
            "machine": {
                "cpu_model": cpu_model(),
                "logical_cpus": os.cpu_count(),
                "cpus_available": available,
                "cores": len(available),
                "platform": platform.platform(),
            },
            "libraries": {"python": platform.python_version()},
            "tvm_target": str(self._cache.target) if self._cache is not None else None,
            "config": {
                "threads": sorted({r.threads for r in records}),
                "batches": sorted({r.batch for r in records}),
                "warmup_s": config.warmup_s,
                "min_sample_s": config.min_sample_s,
                "samples": config.samples,
                "source": "pytest",
            },
        }
        return ResultsDoc(
            header=header,
            peak=self.peak,
            workloads=list(self.workloads.values()),
            kernels=self.kernels,
            checks=[{**c, "threads": []} for c in self.checks.values()],
            overheads=ladder(records, None),
            records=records,
            warnings=warnings,
        )

    def summary(self) -> str:
        t = table(
            "convbench: what this session measured (per call)",
            ("test", "workload", "batch", "thr", "backend/path", "median", "iqr", "CV", "ops/s"),
            wrap=("test", "workload"),
        )
        for res in self.results:
            r = res.record
            s = res.stats
            t.add_row(
                res.test.split("::", 1)[-1],
                r.workload,
                str(r.batch),
                str(r.threads),
                r.id,
                fmt_time(r.median_s),
                fmt_time(s["iqr"]),
                f"{r.cv:.1%}",
                f"{s['ops']:,.0f}",
            )
        from rich.console import Console

        out = io.StringIO()
        Console(file=out, width=WIDTH, color_system=None).print(t)
        return out.getvalue()


SESSION = pytest.StashKey[Session]()


class KernelBench:
    """The `convbench_kernel` fixture: call it to build, check and time one cell."""

    ratio = staticmethod(ratio)
    assert_not_slower = staticmethod(assert_not_slower)
    assert_faster = staticmethod(assert_faster)

    def __init__(self, session: Session, test: str) -> None:
        self.session = session
        self.test = test

    def __call__(
        self,
        workload: str | dict[str, Any] | ConvSpec,
        threads: int = 1,
        backend: str = "tvm",
        path: str = "native",
        batch: int = 1,
        shapes: str | Path | None = None,
        samples: int | None = None,
        min_sample_time: float | None = None,
        warmup: float | None = None,
        seed: int = 0,
    ) -> BenchResult:
        """Times `workload` (a name in the shapes file, a dict of shapes.yaml fields, or a
        ConvSpec) along `backend/path` at `threads` threads, in a pinned worker process."""
        s = self.session
        spec = s.conv(workload, shapes)
        try:
            s.require(backend)
            config = s.run_config(samples, min_sample_time, warmup)
            return s.measure(self.test, spec, backend, path, threads, batch, config, seed)
        except Skip as e:
            s.skipped[str(e)] = s.skipped.get(str(e), 0) + 1
            pytest.skip(f"convbench: {e}")


@pytest.fixture
def convbench_kernel(request: pytest.FixtureRequest) -> KernelBench:
    """Build, check and time a conv kernel natively: `convbench_kernel("conv_108x21x64")`."""
    return KernelBench(request.config.stash[SESSION], request.node.nodeid)


# --- hooks --------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("convbench", "convbench: timed kernels (the convbench_kernel fixture)")
    g.addoption("--convbench-shapes", metavar="FILE", help="shapes file naming the workloads")
    g.addoption("--convbench-json", metavar="PATH", help="write the session's results here")
    g.addoption("--convbench-samples", type=int, default=10, help="samples per cell (10)")
    g.addoption(
        "--convbench-min-sample-time",
        type=float,
        default=0.01,
        metavar="S",
        help="minimum seconds per sample (0.01)",
    )
    g.addoption(
        "--convbench-warmup",
        type=float,
        default=0.05,
        metavar="S",
        help="warm-up seconds (0.05)",
    )
    g.addoption("--convbench-cache-dir", metavar="DIR", help="kernel cache directory")
    g.addoption(
        "--convbench-cell-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="give up on one cell after this many seconds (600)",
    )
    parser.addini("convbench_shapes", "shapes file naming the workloads (default: shapes.yaml)")
    parser.addini("convbench_cache_dir", "kernel cache directory")


def pytest_configure(config: pytest.Config) -> None:
    for name in ("convbench_samples",):
        if config.getoption(name) < 1:
            raise pytest.UsageError("--convbench-samples: expected a positive integer")
    for name in ("convbench_min_sample_time", "convbench_warmup", "convbench_cell_timeout"):
        if not config.getoption(name) > 0:
            raise pytest.UsageError(f"--{name.replace('_', '-')}: expected a positive number")
    config.stash[SESSION] = Session(config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    s = session.config.stash.get(SESSION, None)
    path = session.config.getoption("convbench_json")
    if s is None or path is None:
        return
    s.document().save(Path(path))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    s = config.stash.get(SESSION, None)
    if s is None or not (s.results or s.skipped):
        return
    tr = terminalreporter
    tr.write_sep("-", "convbench")
    if s.results:
        tr.write(s.summary())
    for reason, n in s.skipped.items():
        tr.write_line(f"convbench: {n} measurement(s) skipped: {reason}")
    path = config.getoption("convbench_json")
    if path is not None:
        tr.write_line(f"convbench: results written to {path} (convbench report {path})")
