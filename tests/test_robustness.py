"""What a run does when its surroundings are hostile: a kernel cache shared by two processes, a
cache entry whose side files are damaged, killed builds' leftovers, a cache directory that cannot
be written, a full disk; and the bounds a run is held to before it starts (memory estimates,
int32 extents, the tf/kernel call count)."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from convbench.build.cache import STALE_TEMP_S, KernelCache, usable_cache_dir, writable_dir
from convbench.cli import common
from convbench.measure.conv_handlers import MAX_PROFILED_CALLS, tf_kernel_calls
from convbench.native.harness import RunConfig
from convbench.results.document import ResultsDoc
from convbench.run import RunOptions
from convbench.spec import ConvWorkload, load_shapes, parse_shapes
from convbench.spec.budget import estimate, refusals
from convbench.spec.limits import INT32_MAX
from convbench.spec.model import model_workloads
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
OLD = Path(__file__).parent / "data" / "results-a5b5bf9.json"

# --- the kernel cache ----------------------------------------------------------------------
BUILD_AND_LOAD = """
import sys
from convbench.build.cache import KernelCache
from convbench.native.harness import EmptyKernel
k = KernelCache(sys.argv[1]).empty()
EmptyKernel(str(k.path))  # loads and checks it
print(k.path)
"""


def test_two_processes_building_the_same_kernel_both_end_with_a_good_entry(tmp_path) -> None:
    """A corrupt entry, and two processes that find it so at once: one rebuilds under the
    entry's lock, the other waits, finds the new entry good and uses it; neither removes what
    the other published."""
    first = KernelCache(tmp_path).empty()
    first.path.write_bytes(b"corrupt")  # fails its checksum
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD_AND_LOAD, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert {out.strip() for out, _ in outs} == {str(first.path)}
    again = KernelCache(tmp_path).empty()
    assert again.cached and again.path == first.path
    assert not [d for d in tmp_path.iterdir() if d.is_dir() and d.name.startswith(".")]


def _fake_entry(root: Path, key: str) -> Path:
    """A published model entry as _build writes it: library, plan, constants, manifest."""
    import hashlib

    entry = root / f"m-{key}"
    entry.mkdir(parents=True)
    files = {"kernel.so": b"lib", "plan.json": b"{}", "constants.npz": b"npz"}
    for name, data in files.items():
        (entry / name).write_bytes(data)
    digests = {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    manifest = {"key": key, "sha256": digests["kernel.so"], "files": digests, "build_s": 1.5}
    (entry / "manifest.json").write_text(json.dumps(manifest))
    return entry


@pytest.mark.parametrize("damaged", ["plan.json", "constants.npz", "kernel.so", None])
def test_every_file_of_an_entry_is_checksummed(tmp_path, damaged) -> None:
    cache = KernelCache(tmp_path, target="llvm")
    entry = _fake_entry(tmp_path, "k1")
    if damaged is not None:
        (entry / damaged).write_bytes(b"changed")
    assert cache._load(entry, "k1") == (None if damaged else 1.5)


def test_a_killed_builds_temporary_directory_is_removed(tmp_path) -> None:
    old = time.time() - STALE_TEMP_S - 60
    dead = tmp_path / ".empty-0123.999999999.abcdefgh"  # no such process
    live = tmp_path / f".empty-0123.{os.getpid()}.abcdefgh"  # a build still running
    fresh = tmp_path / ".empty-4567.999999999.zzzzzzzz"  # too recent to judge
    for d in (dead, live, fresh):
        d.mkdir()
        (d / "kernel.so").write_bytes(b"half")
    for d in (dead, live):
        os.utime(d, (old, old))
    KernelCache(tmp_path).empty()  # a build cleans up before it starts
    assert not dead.exists() and live.exists() and fresh.exists()


def test_a_cache_path_that_cannot_be_written_falls_back_to_a_temporary_cache(tmp_path) -> None:
    a_file = tmp_path / "cache"
    a_file.write_text("not a directory")
    assert "is a file" in writable_dir(a_file)
    root, warning = usable_cache_dir(a_file)
    assert root != a_file and root.is_dir() and writable_dir(root) is None
    assert warning is not None and str(a_file) in warning and str(root) in warning
    assert usable_cache_dir(tmp_path / "new") == (tmp_path / "new", None)


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    return proc.returncode == 0


def test_a_read_only_cache_directory_is_refused_with_the_reason(tmp_path) -> None:
    ro = tmp_path / "ro"
    if not _mount_tmpfs(ro, "ro,size=64k"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        assert "not writable" in writable_dir(ro)
        root, warning = usable_cache_dir(ro)
        assert root != ro and "not writable" in warning
    finally:
        subprocess.run(["umount", str(ro)], check=True)


# --- a full disk -----------------------------------------------------------------------------
def test_a_full_disk_ends_the_run_with_what_was_measured(tmp_path, monkeypatch) -> None:
    """The results file on a 64 KiB file system: the run stops at the first save that does not
    fit, says so, the file keeps every record of the last save that did, and the records
    measured since are written to the temporary directory."""
    records = ResultsDoc.load(OLD).records
    disk = tmp_path / "disk"
    mounted = _mount_tmpfs(disk, "size=64k")
    if not mounted:  # no root: the same failure, raised where the file system would raise it
        real_save = ResultsDoc.save

        def save(doc, path):
            if path.parent == disk and len(doc.records) > 10:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            real_save(doc, path)

        monkeypatch.setattr(ResultsDoc, "save", save)

    class FillingRunner:  # a run that measures a record and saves, as Runner.measure does
        def __init__(self, specs, options, json_path, reporter) -> None:
            self.doc, self.json_path = ResultsDoc(), json_path

        def run(self) -> ResultsDoc:
            for r in records * 10:
                self.doc.records.append(r)
                self.doc.save(self.json_path)
            return self.doc

    monkeypatch.setattr(common, "Runner", FillingRunner)
    rescue_dir = tmp_path / "tmp"
    rescue_dir.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(rescue_dir))
    out, err = io.StringIO(), io.StringIO()
    json_path = disk / "results.json"
    try:
        status = common.execute(
            parse_shapes(
                "convs: [{name: a, input: [1, 4, 4, 2], kernel: [1, 1], out_channels: 2, count: 1}]"
            ),
            RunOptions(threads=[1]),
            json_path,
            Console(file=out),
            Console(file=err, width=300),
        )
        message = err.getvalue()
        assert status == 1, message
        assert "disk is full" in message and "Traceback" not in message
        saved = ResultsDoc.load(json_path).records
        assert 0 < len(saved) < len(records) * 10
        assert f"holds the {len(saved)} measurement(s) saved before the fault" in message
        rescued = ResultsDoc.load(rescue_dir / "convbench-rescued-results.json").records
        assert len(rescued) == len(saved) + 1 and str(rescue_dir) in message
        assert not [p for p in disk.iterdir() if p.name != "results.json"]  # no temp file left
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


# --- bounds before anything runs --------------------------------------------------------------
def test_the_estimate_grows_with_the_batch_and_names_the_field() -> None:
    shapes = load_shapes(ROOT / "shapes.yaml")
    w1, w100 = (ConvWorkload(shapes.convs[1], b) for b in (1, 100))
    assert 50 * estimate(w1).total < estimate(w100).total < 100 * estimate(w1).total  # weights
    assert estimate(w1, copies=4).total > estimate(w1).total  # cold-cache copies count
    whole = model_workloads(shapes.model, [1])[-1]
    assert estimate(whole).parts["weights"] > 100e6  # 102 MB of fp32 weights, and copies
    assert refusals(shapes, [w1, whole], 1 << 40, "test") == []
    (message,) = refusals(shapes, [w100], 1 << 20, "the test's limit")
    assert "convs[1] ('conv_108x21x64')" in message and "field 'input' at batch 100" in message
    assert "more than the limit of 1.0 MiB (the test's limit)" in message
    too_wide = ConvWorkload(shapes.convs[1], INT32_MAX // (108 * 21 * 64) + 1)
    (message,) = refusals(shapes, [too_wide], 1 << 60, "x")
    assert "int32" in message and "'input'" in message


def test_the_memory_limit_respects_the_machine() -> None:
    import psutil

    available = common.memory_available()
    assert 0 < available <= psutil.virtual_memory().available * 1.05


@pytest.mark.parametrize("samples", [1, 10, 5000])
@pytest.mark.parametrize("per_call_s", [1e-9, 1e-4, 10.0, 0.0])
def test_tf_kernel_profiles_at_least_one_call_per_sample(samples, per_call_s) -> None:
    """--samples above the profile's cap of calls gave samples of zero calls (a division by
    zero): every sample now gets one call at least."""
    config = RunConfig(warmup_s=0.01, min_sample_s=0.01, samples=samples)
    n = tf_kernel_calls(config, per_call_s)
    assert samples <= n <= max(MAX_PROFILED_CALLS, samples)
    assert n // samples >= 1


def test_memory_sizes_parse() -> None:
    assert common.memory_size("8G") == 8 << 30
    assert common.memory_size("512MiB") == 512 << 20
    assert common.memory_size("1.5g") == 3 << 29
    assert common.memory_size(str(1 << 30)) == 1 << 30


def test_the_node_count_bound_counts_what_the_graph_builds(tiny_model) -> None:
    """The cap on a model's size is checked before its graph is built, from its counts: the
    count must be the one the graph has."""
    for path in (ROOT / "shapes.yaml", tiny_model):
        model = load_shapes(path).model
        assert model.node_count == len(model.graph.nodes)
