"""The results document and its records: a file written by an earlier version still loads,
round-trips field for field, and `convbench report` / `compare` read it; derived figures are
recomputed from the fields; tasks cross the process boundary unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from convbench.measure.tasks import (
    CheckTask,
    GraphDefTask,
    LayersTask,
    MeasureTask,
    OverheadTask,
    ProbeTask,
    TimeFuncTask,
    task_from_json,
)
from convbench.native.harness import RunConfig
from convbench.results.document import ResultsDoc, ResultsError
from convbench.results.record import UNSTABLE_CV, Record
from convbench.spec import ConvWorkload, load_shapes, parse_spec
from convbench.spec.model import ModelWorkload

# Written by convbench at commit a5b5bf9 (before the package was layered): two convs, a block
# and a tiny model at 1 thread, every path.
OLD = Path(__file__).parent / "data" / "results-a5b5bf9.json"


@pytest.fixture(scope="module")
def old() -> dict:
    return json.loads(OLD.read_text())


def test_an_old_results_file_round_trips_field_for_field(old) -> None:
    doc = ResultsDoc.load(OLD)
    assert len(doc.records) == len(old["records"]) == 42
    assert doc.to_json() == old


def test_derived_figures_are_recomputed_from_the_fields(old) -> None:
    doc = ResultsDoc.load(OLD)
    for r, raw in zip(doc.records, old["records"], strict=True):
        peak = old["peak"][str(raw["threads"])]["gflops"]
        if raw["gflops"]:
            assert r.pct_peak == pytest.approx(100 * raw["gflops"] / peak, rel=1e-12)
        assert r.unstable == (raw["cv"] >= UNSTABLE_CV)
        assert r.with_peak(2 * peak).pct_peak == pytest.approx(r.pct_peak / 2, rel=1e-12)
        assert r.with_peak(None).pct_peak is None
    # a record is never changed: with_peak returns a new one
    r0 = doc.records[0]
    assert r0.with_peak(1.0) is not r0 and r0.peak_gflops == old["records"][0]["peak_gflops"]


def test_report_reads_an_old_file(convbench, tmp_path) -> None:
    proc = convbench("report", str(OLD), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for title in (
        "every path",
        "kernel against kernel",
        "where the time goes",
        "cross-checks",
        "model cuts",
        "per layer: blockA",
        "predicted from the single convs",
    ):
        assert title in proc.stdout, title
    assert "Traceback" not in proc.stdout + proc.stderr


def test_compare_reads_old_files(convbench, old, tmp_path) -> None:
    new = json.loads(json.dumps(old))
    for r in new["records"]:
        if (r["workload"], r["backend"], r["path"]) == ("tiny_same", "tvm", "native"):
            r["wall_samples_s"] = [t * 3 for t in r["wall_samples_s"]]
            r["median_s"] *= 3
    path = tmp_path / "new.json"
    path.write_text(json.dumps(new))
    proc = convbench("compare", str(OLD), str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = next(
        line for line in proc.stdout.splitlines() if "tiny_same" in line and "tvm/native" in line
    )
    # an older file has one process per cell: the ratio is shown, no test is claimed
    assert "3.000" in row and "too few processes (1 and 1" in row


@pytest.mark.parametrize("text", ["[1, 2]", '{"records": 3}', '{"records": [7]}', "not json"])
def test_a_file_that_is_not_a_results_file_is_refused(text: str, tmp_path) -> None:
    p = tmp_path / "x.json"
    p.write_text(text)
    with pytest.raises(ResultsError):
        ResultsDoc.load(p)


def test_a_record_of_an_unknown_version_keeps_its_extra_fields(old) -> None:
    raw = {**old["records"][0], "from_the_future": [1, 2]}
    r = Record.from_json(raw)
    assert r.extra == {"from_the_future": [1, 2]}
    assert r.to_json()["from_the_future"] == [1, 2]


def test_tasks_cross_the_process_boundary_unchanged(tiny_model) -> None:
    conv = ConvWorkload(
        parse_spec(
            "convs: [{name: a, input: [1, 5, 5, 3], kernel: [3, 3], out_channels: 4, count: 1}]"
        )[0],
        2,
    )
    model = load_shapes(tiny_model).model
    cut = ModelWorkload(
        "blockA", "block", model, "expand_conv1/add_1", "conv_block1/unit1/add_2", 1
    )
    config = RunConfig(warmup_s=0.5, min_sample_s=0.25, samples=7)
    tasks = [
        MeasureTask(
            workload=conv,
            backend="tvm",
            path="native",
            threads=2,
            cpus=[0, 1],
            available_cpus=2,
            seed=3,
            config=config,
            kernel_path="/k.so",
            schedule="s",
            tuned=False,
        ),
        MeasureTask(
            workload=cut,
            backend="tf",
            path="native-graph",
            threads=1,
            cpus=[0],
            available_cpus=2,
            graph_def="/g.pb",
        ),
        CheckTask(workload=conv, kernel_paths={"kernel": "/k.so"}, seed=1, rtol=1e-6),
        CheckTask(workload=cut, kernel_paths={"fused": "/f.so", "unfused": "/u.so"}),
        LayersTask(workload=cut, kernel_path="/f.so", threads=1, cpus=[0], tf_runs=3),
        OverheadTask(kernel_path="/e.so", cpus=[1], config=config),
        TimeFuncTask(kernel_path="/f.so", shapes=[[1, 2], [2]], cpus=[0]),
        GraphDefTask(workload=cut, out="/g.pb"),
        ProbeTask(
            workload=conv,
            kernels={"direct": "/d.so", "winograd-4": "/w4.so"},
            threads=2,
            cpus=[0, 1],
            config=config,
        ),
    ]
    for t in tasks:
        back = task_from_json(json.loads(json.dumps(t.to_json())))
        assert type(back) is type(t)
        assert back.to_json() == t.to_json()
        w = getattr(back, "workload", None)
        if w is not None:
            assert (w.kind, w.key, w.flops) == (t.workload.kind, t.workload.key, t.workload.flops)
    with pytest.raises(ValueError, match="unknown task type"):
        task_from_json({"type": "nap"})
