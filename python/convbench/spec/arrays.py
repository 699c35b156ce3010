"""Arrays every backend shares: aligned float32 buffers and the seeded inputs of a conv.

numpy only, so that a workload's inputs are the same whichever framework reads them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["aligned_copy", "aligned_empty", "conv_inputs", "fresh_copy"]


def aligned_empty(shape: tuple[int, ...], dtype: Any = np.float32, align: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an `align`-byte boundary."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    buf = np.empty(nbytes + align, dtype=np.uint8)
    offset = (-buf.ctypes.data) % align
    return buf[offset : offset + nbytes].view(dt).reshape(shape)


def fresh_copy(a: np.ndarray, align: int = 64) -> np.ndarray:
    """A copy of `a` in new memory, float32 on an `align`-byte boundary, whatever `a` is: what a
    cold-cache loop rotates through (aligned_copy may return `a` itself)."""
    out = aligned_empty(a.shape, np.float32, align)
    out[...] = a
    return out


def aligned_copy(a: np.ndarray, align: int = 64) -> np.ndarray:
    """`a` itself when it is C-contiguous float32 on an `align`-byte boundary, else such a copy."""
    if a.dtype == np.float32 and a.flags.c_contiguous and a.ctypes.data % align == 0:
        return a
    return fresh_copy(a, align)


def conv_inputs(w: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded inputs of a conv workload shared by every backend and path: data in [-1, 1),
    He-scaled weights."""
    rng = np.random.default_rng(seed)
    data = aligned_empty(w.input_shape)
    data[...] = rng.uniform(-1.0, 1.0, size=w.input_shape)
    weight = aligned_empty(w.weight_shape)
    fan_in = w.weight_shape[0] * w.weight_shape[1] * w.weight_shape[2]
    weight[...] = rng.standard_normal(size=w.weight_shape) * np.sqrt(2.0 / fan_in)
    return data, weight
