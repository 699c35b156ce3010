"""Numerical comparison of two outputs of the same workload."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["WINOGRAD_RTOL_FACTOR", "relative_error", "winograd_rtol"]

# A Winograd kernel is checked at this many times the direct kernels' tolerance (--rtol, 1e-5 by
# default: 1e-4). Its transforms add and scale the inputs before the products and the outputs
# after the sums, so F(4x4, 3x3)'s float32 error is larger than a direct sum's: against float64
# on the five shipped 3x3 shapes it measured 1.7-4.3e-6 of max |ref|, F(2x2, 3x3) 2.6-6.8e-7,
# the direct TVM kernels 0.65-2.1e-6 and TF's oneDNN 0.65-1.7e-6; it grows with the input
# channels summed. The factor leaves F(4x4) an order of magnitude of room and still fails a
# wrong transform (one weight tap off by 1% errs by 1e-3 and more). The direct check is never
# loosened.
WINOGRAD_RTOL_FACTOR = 10.0


def winograd_rtol(rtol: float) -> float:
    """The tolerance a Winograd kernel is checked at when direct kernels are checked at rtol."""
    return rtol * WINOGRAD_RTOL_FACTOR


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
