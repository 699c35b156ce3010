"""Where the time goes: the overhead ladder of one workload, batch and thread count.

From the kernel up: the kernel itself, the native dispatch around it (native minus kernel), and
what each Python path adds on top of native (path minus native). TVM's kernel time is its native
time minus the harness's own per-call floor (the empty kernel); TF's is oneDNN's execution
profile (`tf/kernel`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["EVALUATOR_TOLERANCE", "ladder", "cross_checks"]

EVALUATOR_TOLERANCE = 0.05  # native and evaluator time the same call: they must agree this well

PYTHON_PATHS = {
    "tvm": ("cython", "python", "evaluator"),
    "tf": ("eager", "function", "session", "session-feedless"),
}


# The native rung each TF Python path adds Python to: the eager runtime for eager and
# tf.function, a session over a graph with constant weights for the two session paths.
TF_WRAPS = {
    "eager": "native",
    "function": "native",
    "session": "native-graph",
    "session-feedless": "native-graph",
}


def by_cell(records: list[dict[str, Any]]) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Records grouped by (workload, batch, threads), then keyed by "backend/path"."""
    out: dict[tuple[str, int, int], dict[str, Any]] = {}
    for r in records:
        out.setdefault((r["workload"], r["batch"], r["threads"]), {})[
            f"{r['backend']}/{r['path']}"
        ] = r
    return out


def _medians(records: list[dict[str, Any]]) -> dict[tuple[str, int, int], dict[str, float]]:
    return {
        cell: {p: r["median_s"] for p, r in paths.items()}
        for cell, paths in by_cell(records).items()
    }


def _rung(seconds: float, total: float) -> dict[str, float]:
    return {"us": seconds * 1e6, "share": seconds / total if total > 0 else 0.0}


def ladder(records: list[dict[str, Any]], floor_s: float | None) -> list[dict[str, Any]]:
    """One entry per (workload, batch, threads, backend) that has its native time."""
    entries = []
    for (name, batch, threads), m in _medians(records).items():
        for backend in ("tvm", "tf"):
            native = m.get(f"{backend}/native")
            if native is None:
                continue
            if backend == "tvm":
                kernel = native - floor_s if floor_s is not None else None
            else:
                kernel = m.get("tf/kernel")
            entry: dict[str, Any] = {
                "workload": name,
                "batch": batch,
                "threads": threads,
                "backend": backend,
                "native_us": native * 1e6,
            }
            if kernel is not None:
                entry["kernel"] = _rung(kernel, native)
                entry["native_dispatch"] = _rung(native - kernel, native)
            python = {}
            for path in PYTHON_PATHS[backend]:
                t = m.get(f"{backend}/{path}")
                if t is not None:
                    python[path] = {**_rung(t - native, t), "total_us": t * 1e6}
            entry["python_overhead"] = python
            entries.append(entry)
    return entries


def cross_checks(records: list[dict[str, Any]]) -> list[str]:
    """Warnings for measurements that contradict each other."""
    warnings = []
    for (name, batch, threads), m in _medians(records).items():
        where = f"{name} b{batch} t{threads}"
        native, ev = m.get("tvm/native"), m.get("tvm/evaluator")
        if native and ev and abs(native - ev) / ev > EVALUATOR_TOLERANCE:
            warnings.append(
                f"{where}: tvm/native ({native * 1e6:.2f} us) and tvm/evaluator "
                f"({ev * 1e6:.2f} us) differ by {abs(native - ev) / ev:.0%}, more than "
                f"{EVALUATOR_TOLERANCE:.0%}: they time the same call"
            )
        kernel, tf_native = m.get("tf/kernel"), m.get("tf/native")
        if kernel and tf_native and kernel > tf_native:
            warnings.append(
                f"{where}: tf/kernel ({kernel * 1e6:.2f} us) is slower than "
                f"tf/native ({tf_native * 1e6:.2f} us), which contains it"
            )
        for path, inner in TF_WRAPS.items():
            t, t_inner = m.get(f"tf/{path}"), m.get(f"tf/{inner}")
            if t and t_inner and t < t_inner:
                warnings.append(
                    f"{where}: tf/{path} ({t * 1e6:.2f} us) is faster than "
                    f"tf/{inner} ({t_inner * 1e6:.2f} us), which it wraps"
                )
    return warnings
