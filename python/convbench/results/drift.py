"""The machine's own speed, read from the cells a run measured: pass by pass within one run, and
between two runs.

Every pass of a run measures every cell once, in a fresh process, so a change common to all the
cells of one pass is the machine's, not a cell's: the median over cells of each pass's deviation
from the cell's own mean (on a log scale, so each cell weighs the same) estimates it with the
noise of a single cell divided by the number of cells. Between two runs the same holds for the
median ratio of their common cells, which also carries any change made to all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .record import Record

__all__ = ["DRIFT_WARN", "MIN_CELLS", "common_shift", "drift_warning", "pass_drift"]

DRIFT_WARN = 0.02  # the median cell's time moving this much between passes is warned about
MIN_CELLS = 10  # fewer cells in every pass: no estimate (one cell's noise would be read as drift)


def _passes(r: Record, repetitions: int | None) -> list[int] | None:
    """The pass of each of `r`'s processes: recorded, or for a file from before they were, its
    processes in pass order when there are as many as the run's repetitions (none failed)."""
    n = len(r.process_samples_s or ())
    if r.process_passes is not None:
        ok = isinstance(r.process_passes, list) and len(r.process_passes) == n
        return r.process_passes if ok and all(type(p) is int for p in r.process_passes) else None
    return list(range(n)) if n and n == repetitions else None


def pass_drift(records: Sequence[Record], repetitions: int | None = None) -> dict[str, Any] | None:
    """{"passes": [...], "change": [...], "cells": n, "range": r}: for each pass that nearly every
    cell ran in (90%: a failed process leaves its cell out), how much slower (+) or faster (-)
    the median cell ran in it than on its own average over those passes, from the cells measured
    in all of them; `range` is the slowest pass over the fastest, minus one. None with fewer than
    two such passes or MIN_CELLS such cells. `repetitions`: the run's, for a file from before
    each process's pass was recorded."""
    cells = []
    for r in records:
        passes = _passes(r, repetitions)
        if passes:
            cells.append(dict(zip(passes, r.process_medians_s, strict=True)))
    if not cells:
        return None
    counts: dict[int, int] = {}
    for c in cells:
        for p in c:
            counts[p] = counts.get(p, 0) + 1
    passes = sorted(p for p, n in counts.items() if n >= 0.9 * len(cells))
    rows = [np.log([c[p] for p in passes]) for c in cells if all(c.get(p, 0) > 0 for p in passes)]
    if len(passes) < 2 or len(rows) < MIN_CELLS:
        return None
    logs = np.asarray(rows)
    deviation = np.median(logs - logs.mean(axis=1, keepdims=True), axis=0)
    change = np.expm1(deviation)
    return {
        "passes": passes,
        "change": [float(x) for x in change],
        "cells": len(rows),
        "range": float(np.exp(deviation.max() - deviation.min()) - 1),
    }


def drift_warning(drift: dict[str, Any] | None) -> str | None:
    """The warning a run's pass drift gives, when it reaches DRIFT_WARN."""
    if not drift or drift["range"] < DRIFT_WARN:
        return None
    change = drift["change"]
    slow, fast = int(np.argmax(change)), int(np.argmin(change))
    return (
        f"the machine's speed moved during this run: the median cell ran {drift['range']:.1%} "
        f"slower in pass {drift['passes'][slow] + 1} than in pass {drift['passes'][fast] + 1} "
        f"({drift['cells']} cells measured in every pass). Another run's figures on this machine "
        "can differ from these by as much without any change"
    )


def common_shift(rows: Sequence[dict[str, Any]]) -> float | None:
    """The median new/old ratio over compared cells (`compare_runs`' rows): what moved all of
    them alike (the machine's state, or a change made to every cell). None for no cell."""
    ratios = [r["ratio"] for r in rows if r["ratio"] > 0 and np.isfinite(r["ratio"])]
    return float(np.median(ratios)) if ratios else None
