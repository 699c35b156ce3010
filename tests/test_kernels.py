"""Kernel build, export and the on-disk cache."""

from __future__ import annotations

import json

from convbench.build.cache import KernelCache
from convbench.spec import ConvWorkload, parse_spec

SPEC = "convs: [{name: c, input: [1, 7, 9, 16], kernel: [3, 3], out_channels: 16, count: 1}]"


def _workload(batch: int = 1) -> ConvWorkload:
    return ConvWorkload(parse_spec(SPEC)[0], batch)


def test_build_then_reuse(tmp_path) -> None:
    cache = KernelCache(tmp_path)
    first = cache.conv(_workload())
    assert not first.cached and first.path.exists()
    manifest = json.loads((first.path.parent / "manifest.json").read_text())
    assert manifest["identity"]["target"] == str(cache.target)
    assert (
        "mcpu" in manifest["identity"]["target"]
        and '"generic"' not in manifest["identity"]["target"]
    )
    second = KernelCache(tmp_path).conv(_workload())
    assert second.cached and second.path == first.path and second.key == first.key


def test_key_covers_the_workload(tmp_path) -> None:
    cache = KernelCache(tmp_path)
    assert cache.conv(_workload(1)).key != cache.conv(_workload(2)).key


def test_corrupt_entry_is_rebuilt_not_loaded(tmp_path) -> None:
    cache = KernelCache(tmp_path)
    k = cache.conv(_workload())
    k.path.write_bytes(k.path.read_bytes()[:100])  # truncated library
    again = cache.conv(_workload())
    assert not again.cached
    assert again.path.stat().st_size > 100


def test_half_written_entry_is_rebuilt(tmp_path) -> None:
    cache = KernelCache(tmp_path)
    k = cache.conv(_workload())
    (k.path.parent / "manifest.json").unlink()  # as if the build died before publishing
    again = cache.conv(_workload())
    assert not again.cached and (again.path.parent / "manifest.json").exists()
