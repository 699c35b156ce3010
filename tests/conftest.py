from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = ["pytester"]  # the plugin's tests run pytest sessions of their own

# What every native `time` binding returns (the C++ Measurement).
MEASUREMENT_KEYS = {
    "iters_per_sample",
    "warmup_iters",
    "wall_s",
    "thread_cpu_s",
    "process_cpu_s",
    "cpu_before",
    "cpu_after",
}


def process_record(samples: list[float]) -> Any:
    """The record one process would give for a tvm/native cell with these samples."""
    import numpy as np
    from convbench.results.record import Record

    s = np.asarray(samples, dtype=float)
    return Record.from_json(
        {
            "workload": "w",
            "backend": "tvm",
            "path": "native",
            "threads": 1,
            "batch": 1,
            "samples": len(s),
            "median_s": float(np.median(s)),
            "cv": float(np.std(s, ddof=1) / np.mean(s)) if len(s) > 1 else 0.0,
            "wall_samples_s": [float(t) for t in s],
            "other_threads_cpus": [],
            "gflops": 1e-3 / float(np.median(s)),
        }
    )


# Timing options that keep a CLI run short: correctness, not speed, is what the tests check.
QUICK = [
    "--samples",
    "3",
    "--min-sample-time",
    "0.002",
    "--warmup",
    "0.005",
    "--warmup-iters",
    "2",
    "--repetitions",
    "1",
    "--max-repetitions",
    "1",
]


def _convbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convbench.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ),
    )


@pytest.fixture(scope="session")
def convbench() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`convbench ARGS...` in a subprocess, as a user runs it: convbench(*args, cwd=DIR)."""
    return _convbench


TINY_SHAPES = """\
version: 1
convs:
  - name: tiny_same
    input: [1, 12, 10, 16]
    kernel: [3, 3]
    out_channels: 32
    count: 2
  - name: tiny_logits
    input: [1, 6, 6, 32]
    kernel: [1, 6]
    out_channels: 40
    padding: VALID
    count: 1
"""


@pytest.fixture(scope="session")
def kernel_cache(tmp_path_factory: pytest.TempPathFactory):
    from convbench.build.cache import KernelCache

    return KernelCache(tmp_path_factory.mktemp("kernels"))


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("shapes") / "tiny.yaml"
    p.write_text(TINY_SHAPES)
    return p


@pytest.fixture(scope="session")
def tf():
    from convbench.frameworks.tf_conv import configure_tf

    return configure_tf(1)


TINY_MODEL = """\
version: 1
convs:
  - name: tiny_16
    input: [1, 16, 8, 16]
    kernel: [3, 3]
    out_channels: 16
    count: 3
  - name: tiny_32
    input: [1, 16, 8, 32]
    kernel: [3, 3]
    out_channels: 32
    count: 5
model:
  name: tiny_model
  input: [1, 16, 8, 1]
  seed: 3
  stem: {channels: 16, units: 1, depth: 2}
  stages:
    - {channels: 32, strides: [1, 1], expand_depth: 2, units: 1, depth: 2}
    - {channels: 48, strides: [2, 2], expand_depth: 2, units: 1, depth: 2}
  logits: {name: conv2d_12, classes: 10, kernel: [1, 4]}
  blocks:
    - {name: blockA, from: expand_conv1/add_1, to: conv_block1/unit1/add_2}
  partsearch: [expand_conv1/add_1, expand_conv2/add_3, conv2d_12/BiasAdd]
"""


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("model") / "tiny_model.yaml"
    p.write_text(TINY_MODEL)
    return p
