"""`convbench compare OLD.json NEW.json`: the same cells of two runs, side by side.

Each matched cell's per-sample times are compared with a two-sided Mann-Whitney U test (as
google/benchmark's compare.py does): a change is reported only when it is significant at `alpha`,
so run-to-run noise does not read as a regression.
"""

from __future__ import annotations

from math import comb
from typing import Any

from .document import ResultsDoc
from .record import Record

__all__ = ["compare_runs"]

Key = tuple[str, int, int, str, str]


def _index(doc: ResultsDoc) -> dict[Key, Record]:
    return {(r.workload, r.batch, r.threads, r.backend, r.path): r for r in doc.records}


def compare_runs(old: ResultsDoc, new: ResultsDoc, alpha: float = 0.05) -> list[dict[str, Any]]:
    """One row per cell present in both runs: medians, ratio new/old, p-value, verdict."""
    from scipy.stats import mannwhitneyu

    a, b = _index(old), _index(new)
    rows = []
    for key in [k for k in a if k in b]:
        ra, rb = a[key], b[key]
        xa, xb = ra.wall_samples_s or [], rb.wall_samples_s or []
        p = None
        # The smallest two-sided p the test can give is 2 / C(n1 + n2, n1): with fewer samples
        # than that allows (3 and 3 give 0.1), no change could ever be called significant.
        if len(xa) >= 2 and len(xb) >= 2 and 2 / comb(len(xa) + len(xb), len(xa)) <= alpha:
            p = float(mannwhitneyu(xa, xb, alternative="two-sided").pvalue)
        ratio = rb.median_s / ra.median_s if ra.median_s > 0 else float("nan")
        if p is None:
            verdict = f"too few samples for alpha={alpha:g}"
        elif p >= alpha:
            verdict = "no significant change"
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
                "verdict": verdict,
                "unstable": ra.unstable or rb.unstable,
            }
        )
    return rows
