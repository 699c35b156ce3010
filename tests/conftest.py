from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
    from convbench.kernels import KernelCache

    return KernelCache(tmp_path_factory.mktemp("kernels"))


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("shapes") / "tiny.yaml"
    p.write_text(TINY_SHAPES)
    return p


@pytest.fixture(scope="session")
def tf():
    from convbench.tfconv import configure_tf

    return configure_tf(1)
