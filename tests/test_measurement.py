"""How cells are measured: interleaved repetitions in fresh processes, their statistics pooled
and recomputed here against numpy, warm-up by count, cold caches."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import process_record
from convbench.build.cache import KernelCache
from convbench.host import COLD_MEMORY_CAP, cache_bytes, cold_copies
from convbench.measure.pool import Workers
from convbench.native.harness import RunConfig, time_callable
from convbench.results.record import Record, pool_processes
from convbench.run import RunOptions, RunPlan, measure_task
from convbench.spec import ConvWorkload, parse_spec


def test_pooled_statistics_equal_numpy_on_every_sample() -> None:
    rng = np.random.default_rng(1)
    groups = [list(1e-3 * (1 + 0.02 * rng.standard_normal(7)) + 1e-4 * i) for i in range(4)]
    r = pool_processes([process_record(g) for g in groups])
    every = np.concatenate(groups)
    assert r.repetitions == 4 and r.samples == 28
    assert r.median_s == pytest.approx(np.median(every), rel=1e-12)
    assert r.mean_s == pytest.approx(np.mean(every), rel=1e-12)
    assert r.p10_s == pytest.approx(np.percentile(every, 10), rel=1e-12)
    assert r.p90_s == pytest.approx(np.percentile(every, 90), rel=1e-12)
    assert r.cv == pytest.approx(np.std(every, ddof=1) / np.mean(every), rel=1e-12)
    medians = [np.median(g) for g in groups]
    assert r.process_medians_s == pytest.approx(medians)
    assert r.cv_between == pytest.approx(np.std(medians, ddof=1) / np.mean(medians))
    within = [np.std(g, ddof=1) / np.mean(g) for g in groups]
    assert r.cv_within == pytest.approx(np.mean(within))
    # GFLOP/s follows the pooled median (the work per call is the same)
    assert r.gflops == pytest.approx(1e-3 / np.median(every), rel=1e-12)
    # the spread between processes is larger here than inside one: both are reported
    assert r.cv_between > r.cv_within
    back = Record.from_json(r.to_json())
    assert back.process_samples_s == groups and back.median_s == r.median_s


def _mad_cv(g: list[float]) -> float:
    m = np.median(g)
    return 1.4826 * np.median(np.abs(np.asarray(g) - m)) / m


def test_a_median_is_unstable_when_it_can_move_not_when_a_few_samples_stray() -> None:
    rng = np.random.default_rng(2)
    steady = [list(1e-4 * (1 + 0.005 * rng.standard_normal(10))) for _ in range(3)]
    # two samples of ten at twice the time (another load took a CPU for a moment): the CV is
    # far above 10%, the median does not move
    stray = [g[:8] + [2e-4, 2.1e-4] for g in steady]
    r = pool_processes([process_record(g) for g in stray])
    assert r.cv > 0.10
    want = max(np.median([_mad_cv(g) for g in stray]), r.cv_between)
    assert r.spread == pytest.approx(want) and r.spread < 0.05
    assert not r.unstable and r.outliers
    # one process of three at 1.4x (a bimodal kernel): the median can move, so it is unstable
    slow = [*steady[:2], [1.4 * t for t in steady[2]]]
    r = pool_processes([process_record(g) for g in slow])
    medians = [np.median(g) for g in slow]
    assert r.spread == pytest.approx(np.std(medians, ddof=1) / np.mean(medians))
    assert r.unstable and not r.outliers
    # half of a process's samples at twice the time: unstable within the process
    halves = [g[:5] + [2 * t for t in g[5:]] for g in steady]
    r = pool_processes([process_record(g) for g in halves])
    assert r.spread == pytest.approx(np.median([_mad_cv(g) for g in halves]))
    assert r.unstable
    # the JSON says which, and reads back the same
    out = r.to_json()
    assert out["unstable"] is True and "outliers" not in out
    assert out["spread"] == pytest.approx(r.spread)
    assert Record.from_json(out).unstable


def test_from_five_processes_one_slow_process_does_not_make_a_cell_unstable() -> None:
    rng = np.random.default_rng(3)
    steady = [list(1e-4 * (1 + 0.005 * rng.standard_normal(10))) for _ in range(6)]
    slow = [1.7 * t for t in steady[0]]  # a neighbour took the machine for one process
    medians = lambda gs: [float(np.median(g)) for g in gs]  # noqa: E731
    # three or four processes: the spread between them is the CV of their medians
    for n in (3, 4):
        groups = [slow, *steady[1:n]]
        r = pool_processes([process_record(g) for g in groups])
        m = medians(groups)
        assert r.spread_between == pytest.approx(np.std(m, ddof=1) / np.mean(m))
        assert r.spread_between == pytest.approx(r.cv_between) and r.unstable
    # five or six: the CV of their medians without the one farthest from the median, which
    # one slow process does not make
    for n in (5, 6):
        groups = [slow, *steady[1:n]]
        r = pool_processes([process_record(g) for g in groups])
        kept = medians(groups)[1:]
        assert r.spread_between == pytest.approx(np.std(kept, ddof=1) / np.mean(kept))
        assert r.cv_between > 0.10 and r.spread_between < 0.02
        assert not r.unstable and r.outliers  # the slow process stays visible
    # two slow processes of five: the median can move, and the cell is unstable
    groups = [slow, [1.7 * t for t in steady[1]], *steady[2:5]]
    r = pool_processes([process_record(g) for g in groups])
    m = medians(groups)
    kept = sorted(m, key=lambda x: abs(x - np.median(m)))[:4]  # the farthest slow one left out
    assert r.spread_between == pytest.approx(np.std(kept, ddof=1) / np.mean(kept))
    assert r.unstable
    out = r.to_json()
    assert out["spread_between"] == pytest.approx(r.spread_between)


def test_each_process_keeps_its_pass() -> None:
    groups = [[1e-4, 1.1e-4], [1.2e-4, 1.0e-4], [1.05e-4, 1.0e-4]]
    r = pool_processes([process_record(g) for g in groups], passes=[0, 2, 4])
    assert r.process_passes == [0, 2, 4]
    assert Record.from_json(r.to_json()).process_passes == [0, 2, 4]
    with pytest.raises(ValueError, match="2 passes given for 3 processes"):
        pool_processes([process_record(g) for g in groups], passes=[0, 1])


def test_extra_passes_measure_again_only_the_cells_still_unstable(tiny_model) -> None:
    """After the fixed passes, a cell still unstable gets one more process per pass until it is
    stable or has max_repetitions; stable cells are not measured again; each extra pass runs in
    a new fork server, its cells shuffled. Conv and model cells alike."""
    from convbench.run import Runner
    from convbench.spec import load_shapes

    shapes = load_shapes(tiny_model)

    def runner_with(max_repetitions: int) -> Runner:
        options = RunOptions(
            threads=[1], repetitions=3, max_repetitions=max_repetitions, seed=4, model=shapes.model
        )
        return Runner(shapes.convs, options)

    runner = runner_with(6)
    cells = list(runner.plan.cells())
    # process medians by cell: a conv with one slow process (stable from five on), a model cut
    # that stays bimodal (never stable), the rest steady
    one_slow = cells[0]
    bimodal = next(c for c in cells if c.workload.kind != "conv")
    scale = {
        Runner._key(one_slow): [1.0, 1.7, 1.0, 1.0, 1.0, 1.0],
        Runner._key(bimodal): [1.0, 2.0, 1.0, 2.0, 1.0, 2.0],
    }
    order: list[tuple[int, object]] = []
    restarts = 0

    def measure(cell, repetition=0):
        key = Runner._key(cell)
        k = scale.get(key, [1.0] * 6)[len(runner.processes.get(key, []))]
        order.append((repetition, Runner._key(cell)))
        runner._add_record(cell, process_record([1e-4 * k, 1.01e-4 * k, 0.99e-4 * k]), repetition)

    def restart():
        nonlocal restarts
        restarts += 1

    more: list[int] = []

    def drive(r: Runner) -> None:
        r.measure = measure
        r.workers.restart = restart
        r.reporter.more = more.append  # the progress bar's total grows by each extra pass
        r.measure_schedule(r.plan.schedule())

    drive(runner)
    count = {k: len(rs) for k, rs in runner.processes.items()}
    assert len(count) == len(cells)
    assert count[Runner._key(one_slow)] == 5 and count[Runner._key(bimodal)] == 6
    assert all(n == 3 for k, n in count.items() if k not in scale)
    # passes 3, 4 hold both; pass 5 only the bimodal one, which stays unstable at the cap
    extra = [(r, k) for r, k in order if r >= 3]
    want = [
        (r, Runner._key(c))
        for p in (3, 4)
        for r, c in runner.plan.shuffled_pass([one_slow, bimodal], p)
    ]
    assert extra[:4] == want
    assert extra[4:] == [(5, Runner._key(bimodal))]
    assert restarts == 2 + 3  # a new server for each pass after the first
    assert more == [2, 2, 1]
    pooled = dict(zip(runner.processes, runner.doc.records, strict=True))
    first, second = pooled[Runner._key(one_slow)], pooled[Runner._key(bimodal)]
    assert first.process_passes == [0, 1, 2, 3, 4] and not first.unstable
    assert second.process_passes == [0, 1, 2, 3, 4, 5] and second.unstable
    # max_repetitions at the fixed count: no extra pass
    order.clear()
    runner = runner_with(3)
    drive(runner)
    assert max(r for r, _ in order) == 2


def test_repetitions_are_interleaved_not_in_a_row(tiny_shapes) -> None:
    from convbench.spec import load_spec

    plan = RunPlan(load_spec(tiny_shapes), RunOptions(threads=[1, 2], repetitions=3, seed=5))
    order = [(r, (c.workload.key, c.threads, c.backend, c.path)) for r, c in plan.schedule()]
    cells = [(c.workload.key, c.threads, c.backend, c.path) for c in plan.cells()]
    assert len(order) == 3 * len(cells)
    for rep in range(3):  # each pass holds every cell once
        assert sorted(c for r, c in order if r == rep) == sorted(cells)
    # a cell's repetitions are a whole pass apart, and the passes after the first are shuffled
    passes = [[c for r, c in order if r == rep] for rep in range(3)]
    assert passes[0] == cells and passes[1] != cells and passes[1] != passes[2]
    assert [r for r, _ in order] == sorted(r for r, _ in order)
    # the same seed gives the same order (a run can be repeated exactly)
    again = RunPlan(load_spec(tiny_shapes), RunOptions(threads=[1, 2], repetitions=3, seed=5))
    assert [
        (r, (c.workload.key, c.threads, c.backend, c.path)) for r, c in again.schedule()
    ] == order


def test_warm_up_runs_at_least_its_count_and_its_time() -> None:
    calls = 0

    def body() -> None:
        nonlocal calls
        calls += 1

    t = time_callable(body, RunConfig(warmup_s=0.0, min_sample_s=0.001, samples=2, warmup_iters=37))
    assert t.warmup_iters == 37
    t = time_callable(body, RunConfig(warmup_s=0.02, min_sample_s=0.001, samples=2, warmup_iters=1))
    assert t.warmup_iters > 1  # the time bound, not the count, ended this warm-up


def test_cold_copies_exceed_the_last_level_cache() -> None:
    llc = cache_bytes(3) or cache_bytes(2) or 32 << 20
    for set_bytes in (1 << 10, 1 << 20, 7 << 20, 64 << 20):
        n = cold_copies(set_bytes)
        assert n >= 2
        assert n * set_bytes >= 2 * llc or n * set_bytes > COLD_MEMORY_CAP - set_bytes


def test_a_cold_cell_rotates_through_every_copy(tmp_path) -> None:
    """The cold loop calls the kernel on each copy in turn: after timing, every copy's output
    has been written (they start as NaN), and the record says how many copies it used."""
    from convbench.native.harness import ConvKernel
    from convbench.spec.arrays import aligned_copy, aligned_empty, conv_inputs

    spec = parse_spec(
        "convs: [{name: c, input: [1, 8, 8, 16], kernel: [3, 3], out_channels: 16, count: 1}]"
    )[0]
    w = ConvWorkload(spec, 1)
    kernel = KernelCache(tmp_path).conv(w)
    k = ConvKernel(kernel.path, w)
    data, weight = conv_inputs(w)
    sets = []
    for _ in range(5):
        out = aligned_empty(w.output_shape)
        out[...] = np.nan
        sets.append([aligned_copy(data.copy()), aligned_copy(weight.copy()), out])
    config = RunConfig(warmup_s=0.0, min_sample_s=0.0001, samples=1, warmup_iters=1)
    k.native.time_rotating(sets, **config.kwargs())
    ref = k(data, weight)
    for _, _, out in sets:
        np.testing.assert_allclose(out, ref, rtol=1e-6)
    with Workers(300) as workers:
        cold = workers.run(measure_task(w, 1, "tvm", "native", config, kernel=kernel, cache="cold"))
        warm = workers.run(measure_task(w, 1, "tvm", "native", config, kernel=kernel))
    set_bytes = sum(a.nbytes for a in sets[0])
    assert cold["cache"] == "cold" and cold["cold_copies"] == cold_copies(set_bytes)
    assert "cache" not in warm and "cold_copies" not in warm
    with pytest.raises(Exception, match="no cold-cache mode"):
        with Workers(300) as workers:
            workers.run(measure_task(w, 1, "tvm", "python", config, kernel=kernel, cache="cold"))
