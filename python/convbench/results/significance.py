"""Statistics of one record's samples under pytest-benchmark's names, and the comparisons a
performance test should assert: ratios of medians, called significant only by a one-sided
Mann-Whitney U test on the per-sample times (never an absolute time)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .record import Record

__all__ = ["STAT_NAMES", "Comparison", "compare_samples", "quartiles", "samples_of", "stats"]


# pytest-benchmark's statistics, by the names it gives them.
STAT_NAMES = (
    "min",
    "max",
    "mean",
    "stddev",
    "median",
    "iqr",
    "q1",
    "q3",
    "rounds",
    "iterations",
    "ops",
)


def quartiles(samples: Sequence[float]) -> tuple[float, float]:
    """(q1, q3) as pytest-benchmark computes them (Wikipedia's methods 2 and 3)."""
    data = sorted(samples)
    n = len(data)
    if n == 1:
        return data[0], data[0]
    if n % 2 == 0:
        return statistics.median(data[: n // 2]), statistics.median(data[n // 2 :])
    k, q = n // 4, n % 4
    if q == 1:
        return (
            0.25 * data[k - 1] + 0.75 * data[k],
            0.75 * data[3 * k] + 0.25 * data[3 * k + 1],
        )
    return (
        0.75 * data[k] + 0.25 * data[k + 1],
        0.25 * data[3 * k + 1] + 0.75 * data[3 * k + 2],
    )


def stats(r: Record) -> dict[str, Any]:
    """pytest-benchmark's statistics of a record, in seconds per call: min, max, mean, stddev,
    median, iqr, q1, q3, rounds (samples), iterations (calls per sample), ops (calls per second
    at the mean)."""
    q1, q3 = quartiles(r.wall_samples_s or [r.median_s])
    return {
        "min": r.min_s,
        "max": r.max_s,
        "mean": r.mean_s,
        "stddev": r.stddev_s,
        "median": r.median_s,
        "iqr": q3 - q1,
        "q1": q1,
        "q3": q3,
        "rounds": r.samples,
        "iterations": r.iters_per_sample or 1,
        "ops": 1.0 / r.mean_s if r.mean_s > 0 else 0.0,
    }


def samples_of(x: Any) -> list[float]:
    """Per-call times of a sample: a Record, anything with a `record`, or a list of seconds."""
    record = getattr(x, "record", x)
    if isinstance(record, Record):
        return list(record.wall_samples_s)
    return [float(v) for v in x]


@dataclass(frozen=True)
class Comparison:
    """a against b: the ratio of medians (a / b) and the one-sided p-values of "a slower" and
    "a faster" (Mann-Whitney U on the samples, b's times scaled by 1 + tolerance)."""

    ratio: float
    p_slower: float
    p_faster: float
    n_a: int
    n_b: int

    def describe(self, a: str = "a", b: str = "b") -> str:
        return (
            f"{a} / {b} = {self.ratio:.3f} (medians; {self.n_a} vs {self.n_b} samples; "
            f"p(slower) = {self.p_slower:.3g}, p(faster) = {self.p_faster:.3g})"
        )


def compare_samples(a: Any, b: Any, tolerance: float = 0.0) -> Comparison:
    from scipy.stats import mannwhitneyu

    xa, xb = samples_of(a), samples_of(b)
    if len(xa) < 2 or len(xb) < 2:
        raise ValueError(f"a comparison needs at least 2 samples each, got {len(xa)} and {len(xb)}")
    yb = [v * (1.0 + tolerance) for v in xb]
    return Comparison(
        ratio=statistics.median(xa) / statistics.median(xb),
        p_slower=float(mannwhitneyu(xa, yb, alternative="greater").pvalue),
        p_faster=float(mannwhitneyu(xa, yb, alternative="less").pvalue),
        n_a=len(xa),
        n_b=len(xb),
    )
