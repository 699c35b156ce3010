"""MetaSchedule tuning into a database, and builds that read it."""

from __future__ import annotations

import json

import pytest
from convbench.build.cache import KernelCache
from convbench.build.compute import conv_module
from convbench.build.target import host_target
from convbench.build.tuning_db import (
    DUEL_MIN_MARGIN,
    DUEL_RUNS,
    SHIPPED_DB,
    TuningDatabase,
    duel_verdict,
    uses_tuned,
)
from convbench.frameworks.numerics import relative_error
from convbench.frameworks.tf_conv import tf_reference
from convbench.native.harness import ConvKernel
from convbench.spec import ConvWorkload, load_shapes, parse_spec
from convbench.spec.arrays import conv_inputs
from convbench.tune import tune_many, tune_workload

SPEC = "convs: [{name: tune_me, input: [1, 6, 8, 16], kernel: [3, 3], out_channels: 16, count: 1}]"
TRIALS = 4


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuning")
    cache = tmp_path_factory.mktemp("kernels")
    w = ConvWorkload(parse_spec(SPEC)[0], 1)
    summary = tune_workload(w, 1, TRIALS, root, cache)
    return w, root, cache, summary


def test_tune_writes_a_database_and_a_summary(tuned) -> None:
    w, root, _, summary = tuned
    assert summary["records"] >= 1 and summary["trials"] == TRIALS
    assert summary["default_run_s"] > 0 and summary["best_run_s"] > 0  # both timed by the harness
    assert summary["use"] in ("tuned", "default")
    # The verdict is the duel's: several worker runs of each, a significance test and a margin.
    duel = summary["duel"]
    assert duel["test"] == "mannwhitneyu-less" and duel["use"] == summary["use"]
    assert len(duel["tuned_runs_s"]) == len(duel["default_runs_s"]) == DUEL_RUNS
    wins = duel["significant"] and duel["margin"] >= duel["min_margin"]
    assert (summary["use"] == "tuned") == wins
    assert summary["best_run_s"] == pytest.approx(sorted(duel["tuned_runs_s"])[DUEL_RUNS // 2])
    d = TuningDatabase([root]).directory(root, w, host_target(1))
    assert json.loads((d / "summary.json").read_text()) == summary
    assert not list(d.glob(".summary.*"))  # written through a temporary file, renamed


def test_tuned_record_is_found_for_its_target_only(tuned) -> None:
    w, root, _, _ = tuned
    db = TuningDatabase([root])
    assert db.lookup(w, host_target(1), conv_module(w), honour_summary=False) is not None
    assert db.lookup(w, host_target(3), conv_module(w), honour_summary=False) is None  # other cores
    other = ConvWorkload(w.spec, 2)
    assert db.lookup(other, host_target(1), conv_module(other), honour_summary=False) is None


def _won(summary: dict) -> dict:
    """`summary` as if its duel had found the tuned schedule faster."""
    return {**summary, "use": "tuned", "duel": {**summary["duel"], "use": "tuned"}}


def test_build_uses_the_tuned_kernel_when_it_won(tuned, tf) -> None:
    w, root, cache, summary = tuned
    d = TuningDatabase([root]).directory(root, w, host_target(1))
    (d / "summary.json").write_text(json.dumps(_won(summary)))
    try:
        k = KernelCache(cache, tuning=TuningDatabase([root])).conv(w, threads=1)
        assert k.schedule.startswith("tuned:") and k.tuned_from == str(d)
        untuned = KernelCache(cache, tuning=TuningDatabase([root])).conv(w, threads=2)
        assert untuned.tuned_from is None and not untuned.schedule.startswith("tuned:")
        data, weight = conv_inputs(w, seed=1)
        got = ConvKernel(k.path, w)(data, weight)
        assert relative_error(got, tf_reference(tf, w, data, weight), rtol=1e-5)["ok"]
        (d / "summary.json").write_text(json.dumps({**summary, "use": "default"}))
        lost = KernelCache(cache, tuning=TuningDatabase([root])).conv(w, threads=1)
        assert lost.tuned_from is None  # a tuned kernel that lost to the default is not used
    finally:
        (d / "summary.json").write_text(json.dumps(summary))


def test_an_interrupted_tune_is_not_used_until_a_duel_decides(tuned) -> None:
    """Records are written as they are measured and stay for the rerun to resume from, but a
    build uses them only once a finished duel says they won: an interrupted (re-)tune, which
    has no summary, never brings back a schedule that lost. Nor does a summary from before the
    duel had a test (a bare "use": "tuned")."""
    w, root, _, summary = tuned
    d = TuningDatabase([root]).directory(root, w, host_target(1))
    saved = (d / "summary.json").read_text()
    db = TuningDatabase([root])
    (d / "summary.json").unlink()
    try:
        assert db.lookup(w, host_target(1), conv_module(w)) is None
        kept = db.lookup(w, host_target(1), conv_module(w), honour_summary=False)
        assert kept is not None and kept.summary == {}  # the records are there to resume from
        legacy = {k: v for k, v in summary.items() if k != "duel"}
        (d / "summary.json").write_text(json.dumps({**legacy, "use": "tuned"}))
        assert db.lookup(w, host_target(1), conv_module(w)) is None
        (d / "summary.json").write_text(json.dumps(_won(summary)))
        assert db.lookup(w, host_target(1), conv_module(w)) is not None
    finally:
        (d / "summary.json").write_text(saved)


@pytest.mark.parametrize(
    ("tuned_s", "default_s", "use"),
    [
        ([1.0, 1.01, 0.99, 1.0, 1.02], [1.5, 1.52, 1.49, 1.51, 1.5], "tuned"),  # clear win
        ([0.98, 1.03, 0.97, 1.01, 0.99], [1.0, 0.99, 1.02, 1.0, 1.01], "default"),  # noise
        ([0.99, 0.99, 0.99, 0.99, 0.99], [1.0, 1.0, 1.0, 1.0, 1.0], "default"),  # 1%: too small
        ([0.97], [1.0], "default"),  # one median each: no evidence
        (None, [1.0, 1.0, 1.0], "default"),  # no tuned schedule
        ([1.5, 1.5, 1.5, 1.5, 1.5], [1.0, 1.0, 1.0, 1.0, 1.0], "default"),  # lost
    ],
)
def test_the_duel_needs_a_significant_margin(tuned_s, default_s, use) -> None:
    verdict = duel_verdict(tuned_s, default_s)
    assert verdict["use"] == use
    if use == "tuned":
        assert verdict["p_value"] < verdict["alpha"] and verdict["margin"] >= DUEL_MIN_MARGIN


def test_the_shipped_database_claims_no_win_without_evidence() -> None:
    summaries = [json.loads(p.read_text()) for p in SHIPPED_DB.rglob("summary.json")]
    assert summaries
    for s in summaries:
        assert s["use"] == "tuned" if uses_tuned(s) else s["use"] == "default", s["workload"]


def test_rerun_skips_finished_workloads_and_interrupt_keeps_them(tuned, monkeypatch) -> None:
    w, root, cache, _ = tuned
    import convbench.tune as tuning

    calls = []
    real = tuning.tune_workload

    def fake(wl, t, trials, r, c, *device):
        calls.append((wl.key, t))
        if wl.key != w.key:
            raise KeyboardInterrupt
        return real(wl, t, trials, r, c, *device)

    monkeypatch.setattr(tuning, "tune_workload", fake)
    spec = w.spec
    bigger = spec.model_copy(update={"name": "second"})
    with pytest.raises(KeyboardInterrupt):
        tune_many([spec, bigger], [1], [1], TRIALS, root, cache)
    assert calls == [(w.key, 1), ("second@b1", 1)]
    skipped = real(w, 1, TRIALS, root, cache)
    assert skipped["skipped"] is True  # finished before the interrupt: not tuned again


# --- the model's fused functions ------------------------------------------------------------
@pytest.fixture(scope="module")
def tuned_model(convbench, tmp_path_factory, tiny_model):
    """`convbench tune --model blocks` as a user runs it (its own process: MetaSchedule's
    logging setup does not survive a second tuning session in one interpreter)."""

    root = tmp_path_factory.mktemp("model-tuning")
    args = ["tune", "--shapes", str(tiny_model), "--model", "blocks", "--threads", "1"]
    proc = convbench(*args, "--trials", "2", "--db", str(root), cwd=root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "tuned with 2 trials" in proc.stdout
    summaries = [json.loads(p.read_text()) for p in sorted(root.glob("*/*/summary.json"))]
    return load_shapes(tiny_model).model, root, summaries


def test_tune_model_tasks_writes_summaries(tuned_model) -> None:
    from convbench.tune import model_tasks

    spec, root, summaries = tuned_model
    tasks = model_tasks(spec, "blocks", 1)
    assert len(summaries) == len(tasks) >= 2  # blockA: conv+BN+ReLU, conv+BN+residual add
    for s in summaries:
        assert s["default_run_s"] > 0 and s["use"] in ("tuned", "default")
        duel = s["duel"]
        wins = duel["significant"] and duel["margin"] is not None
        wins = wins and duel["margin"] >= duel["min_margin"]
        assert (s["use"] == "tuned") == wins == uses_tuned(s)
    for key in tasks:
        assert list(root.glob(f"*/{key}/summary.json")), key


def test_model_build_uses_tuned_functions_that_won(tuned_model, tmp_path) -> None:
    from convbench.measure.pool import run_worker
    from convbench.measure.tasks import CheckTask
    from convbench.spec.model import ModelWorkload
    from convbench.tune import model_tasks

    spec, root, _ = tuned_model
    b = spec.blocks[0]
    mw = ModelWorkload(b.name, "block", spec, b.start, b.stop, 1)
    keys = sorted(model_tasks(spec, "blocks", 1))
    summaries = {k: next(root.glob(f"*/{k}/summary.json")) for k in keys}
    saved = {k: p.read_text() for k, p in summaries.items()}
    try:
        for k, p in summaries.items():  # pretend the first task's tuned schedule won
            s = json.loads(saved[k])
            p.write_text(json.dumps(_won(s) if k == keys[0] else {**s, "use": "default"}))
        cache = KernelCache(tmp_path, tuning=TuningDatabase([root]))
        k1 = cache.model(mw, True, threads=1)
        assert k1.tuned_from == "1 functions" and ":tuned-1-" in k1.schedule
        k2 = cache.model(mw, True, threads=2)  # nothing tuned for 2 threads: hand-written
        assert k2.tuned_from is None and "tuned" not in k2.schedule
        task = CheckTask(workload=mw, kernel_paths={"fused": str(k1.path)}, seed=0)
        result = run_worker(task, 600)
        assert result["builds"]["fused"]["ok"], result
    finally:
        for k, p in summaries.items():
            p.write_text(saved[k])
