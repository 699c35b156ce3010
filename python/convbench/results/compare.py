"""Two runs' common cells side by side, with a significance test on values that are independent
(one median per process), so run-to-run noise does not read as a regression."""

from __future__ import annotations

from typing import Any

import numpy as np

from .document import ResultsDoc
from .record import Record

__all__ = ["compare_runs", "machine_factor", "machine_name"]

Key = tuple[str, int, int, str, str]


def _index(doc: ResultsDoc) -> dict[Key, Record]:
    return {(*r.cell, r.backend, r.path): r for r in doc.records}


def machine_name(doc: ResultsDoc, record: Record | None = None) -> str:
    """The machine a run (or one of its records) measured on: a record measured on an RPC
    device (`device`) ran on the run's `remote` machine, the others on its own."""
    remote = doc.header.get("remote")
    if record is not None and record.device and remote:
        return f"{remote.get('cpu_model') or '?'} ({remote.get('llvm_cpu', '?')})"
    m = doc.header.get("machine", {})
    name = f"{m.get('cpu_model', '?')} ({m.get('llvm_cpu', '?')})"
    if record is None and remote:
        name += (
            f"; TVM's cells on {remote.get('cpu_model') or '?'} "
            f"({remote.get('llvm_cpu', '?')}) through RPC"
        )
    return name


def _probe(doc: ResultsDoc, threads: int) -> float | None:
    """The fp32 peak a run's own short probe read at `threads` (GFLOP/s): `this_run_gflops`
    beside a cached figure, or the figure itself when the run measured it."""
    entry = doc.peak.get(str(threads)) if isinstance(doc.peak, dict) else None
    if not isinstance(entry, dict):
        return None
    value = entry.get("this_run_gflops") or (None if entry.get("cached") else entry.get("gflops"))
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def machine_factor(old: ResultsDoc, new: ResultsDoc, threads: int) -> float | None:
    """How much longer the same work took the machine in `new` than in `old` at `threads`, by
    the two runs' own peak probes (old GFLOP/s over new): a code-independent reading of the
    machine's drift between the runs. None without both probes."""
    a, b = _probe(old, threads), _probe(new, threads)
    return a / b if a and b else None


def compare_runs(
    old: ResultsDoc,
    new: ResultsDoc,
    alpha: float = 0.05,
    min_change: float = 0.02,
    across_machines: bool = False,
) -> list[dict[str, Any]]:
    """One row per cell present in both runs: medians, ratio new/old, p-value, verdict.

    The test is on the per-process medians of each cell (Welch's t-test on their logarithms):
    they are independent, while the samples inside one process are not, and a test on those
    calls nearly every cell of an A/A pair changed. A cell needs at least two processes on each
    side (`--repetitions`); the row says how many it had. A change smaller than `min_change`
    (as asv's factor) is not called, however small its p-value: a 1% shift between two runs is
    machine drift, not a regression of the code. Nor is a change in the direction the machine
    itself moved between the runs (`machine_factor`, from their peak probes) and no larger than
    that move plus `min_change`: the verdict says it went with the machine. Two files from
    different machines get no test unless `across_machines`: their difference is the
    machines'."""
    from scipy.stats import ttest_ind

    a, b = _index(old), _index(new)
    rows = []
    for key in [k for k in a if k in b]:
        ra, rb = a[key], b[key]
        same_machine = machine_name(old, ra) == machine_name(new, rb)
        xa, xb = ra.process_medians_s, rb.process_medians_s
        p = None
        if not (same_machine or across_machines):
            pass
        elif len(xa) >= 2 and len(xb) >= 2 and min(xa + xb) > 0:
            la, lb = np.log(xa), np.log(xb)
            if np.ptp(la) == 0 and np.ptp(lb) == 0:
                p = 1.0 if la[0] == lb[0] else 0.0
            else:
                p = float(ttest_ind(la, lb, equal_var=False).pvalue)
        ratio = rb.median_s / ra.median_s if ra.median_s > 0 else float("nan")
        machine = machine_factor(old, new, key[2]) if same_machine else None
        if not (same_machine or across_machines):
            verdict = "different machines: no test (--across-machines)"
        elif p is None:
            verdict = f"too few processes ({len(xa)} and {len(xb)}; 2 each needed)"
        elif p >= alpha or abs(np.log(ratio)) < np.log1p(min_change):
            verdict = "no significant change"
        elif machine is not None and _with_machine(ratio, machine, min_change):
            verdict = f"{'slower' if ratio > 1 else 'faster'} as the machine (x{machine:.3f})"
        else:
            verdict = "slower" if ratio > 1 else "faster"
        rows.append(
            {
                "workload": key[0],
                "batch": key[1],
                "threads": key[2],
                "backend": key[3],
                "path": key[4],
                "old_median_s": ra.median_s,
                "new_median_s": rb.median_s,
                "ratio": ratio,
                "p_value": p,
                "processes": [len(xa), len(xb)],
                "verdict": verdict,
                "unstable": ra.unstable or rb.unstable,
                "machine": machine,
            }
        )
    return rows


def _with_machine(ratio: float, machine: float, min_change: float) -> bool:
    """A change in the direction the machine moved, and no larger than its move plus
    `min_change`: not to be told apart from the machine's own drift."""
    r, m = np.log(ratio), np.log(machine)
    return bool(r * m > 0 and abs(r) <= abs(m) + np.log1p(min_change))
