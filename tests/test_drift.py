"""The machine's speed read from a run's own cells: pass by pass, recomputed on synthetic runs
whose drift is known."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import process_record
from convbench.results.drift import (
    DRIFT_WARN,
    MIN_CELLS,
    common_shift,
    drift_warning,
    pass_drift,
)
from convbench.results.record import Record, pool_processes


def _process(median: float, rng: np.random.Generator) -> Record:
    return process_record(list(median * (1 + 0.002 * rng.standard_normal(5))))


def _run(
    factors: list[float], cells: int, seed: int = 0, noise: float = 0.03, recorded: bool = True
) -> list[Record]:
    """`cells` cells of different times, each measured once per pass; pass p runs every cell
    `factors[p]` times slower, and each process `noise` (lognormal) apart."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(cells):
        base = 1e-4 * (1 + c)
        procs = [_process(base * f * np.exp(noise * rng.standard_normal()), rng) for f in factors]
        out.append(pool_processes(procs, list(range(len(factors))) if recorded else None))
    return out


def test_a_slow_pass_is_read_from_the_cells() -> None:
    factors = [1.0, 1.05, 0.99]
    drift = pass_drift(_run(factors, 150))
    assert drift["passes"] == [0, 1, 2] and drift["cells"] == 150
    # each pass against the cells' mean over the passes (geometric)
    mean = np.exp(np.mean(np.log(factors)))
    want = [f / mean - 1 for f in factors]
    assert drift["change"] == pytest.approx(want, abs=0.006)
    assert drift["range"] == pytest.approx(1.05 / 0.99 - 1, abs=0.01)
    message = drift_warning(drift)
    assert "slower in pass 2 than in pass 3" in message and "150 cells" in message


def test_a_steady_machine_gives_no_warning() -> None:
    drift = pass_drift(_run([1.0, 1.0, 1.0], 150, seed=1))
    assert drift["range"] < DRIFT_WARN and drift_warning(drift) is None
    assert drift_warning(None) is None


def test_too_few_cells_or_passes_give_no_estimate() -> None:
    assert pass_drift(_run([1.0, 1.1], MIN_CELLS - 1)) is None
    assert pass_drift(_run([1.0], 50)) is None
    assert pass_drift([]) is None


def test_extra_passes_and_failed_processes_leave_the_estimate_alone() -> None:
    """A pass that only some cells ran in (the unstable ones measured again) is not a pass of
    the estimate; a cell a failed process left without a pass is left out of it."""
    rng = np.random.default_rng(2)
    records = _run([1.0, 1.04, 1.0], 60, seed=2)
    again = [pool_processes([_process(1e-4, rng) for _ in range(4)], [0, 1, 2, 3])] * 3
    failed = [pool_processes([_process(1e-4, rng) for _ in range(2)], [0, 2])]
    drift = pass_drift(records + again + failed)
    assert drift["passes"] == [0, 1, 2] and drift["cells"] == 63
    assert drift["change"][1] > drift["change"][0] + 0.03


def test_a_file_from_before_passes_were_recorded() -> None:
    records = _run([1.0, 1.05, 1.0], 40, seed=3, recorded=False)
    assert pass_drift(records) is None  # the passes are not known
    drift = pass_drift(records, repetitions=3)  # as many processes as repetitions: in order
    assert drift["passes"] == [0, 1, 2] and drift["change"][1] > 0.03
    assert pass_drift(records, repetitions=4) is None


def test_common_shift_is_the_median_ratio() -> None:
    rows = [{"ratio": r} for r in (0.9, 1.0, 1.1, 3.0, float("nan"))]
    assert common_shift(rows) == pytest.approx(np.median([0.9, 1.0, 1.1, 3.0]))
    assert common_shift([]) is None


def test_a_malformed_file_gives_no_reading_rather_than_an_error() -> None:
    """A hand-edited results file: passes that are not pass numbers, a peak that is not an
    entry. Neither is read; nothing raises."""
    import dataclasses

    from convbench.results.compare import machine_factor
    from convbench.results.document import ResultsDoc

    records = [
        dataclasses.replace(r, process_passes=["a", "b", "c"]) for r in _run([1.0, 1.1, 1.0], 20)
    ]
    assert pass_drift(records) is None
    good = ResultsDoc(peak={"1": {"gflops": 100.0, "cached": True, "this_run_gflops": 90.0}})
    for bad in ({"1": 5}, {"1": {"this_run_gflops": "fast"}}, []):
        assert machine_factor(good, ResultsDoc(peak=bad), 1) is None
    assert machine_factor(good, good, 1) == 1.0
