"""Numerical comparison of two outputs of the same workload."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["relative_error"]


def relative_error(got: Any, ref: Any, rtol: float) -> dict[str, Any]:
    """Max error relative to the reference's magnitude (max |ref|), not element by element: the
    error of a long fp32 sum grows with the size of its terms, and near-zero outputs would make an
    element-wise ratio meaningless."""
    got64, ref64 = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got64.shape != ref64.shape:
        raise ValueError(f"output shape {got64.shape} differs from the reference's {ref64.shape}")
    abs_err = float(np.max(np.abs(got64 - ref64))) if ref64.size else 0.0
    scale = float(np.max(np.abs(ref64))) if ref64.size else 0.0
    rel_err = abs_err / scale if scale > 0 else abs_err
    ok = bool(np.isfinite(rel_err) and rel_err <= rtol)
    return {
        "max_abs_err": abs_err,
        "max_rel_err": rel_err,
        "ref_max_abs": scale,
        "rtol": rtol,
        "ok": ok,
    }
