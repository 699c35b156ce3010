"""What convbench prints and exports from a results file: every table fits 100 columns without
cutting a cell, warnings are grouped by kind, the Google Benchmark JSON has what its compare.py
reads, the CSV round-trips, the plots and the HTML report are written."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import pytest
from convbench.report.format import WIDTH, fmt_range
from convbench.report.live import ConsoleReporter
from convbench.report.tables import print_report, record_row, warning_groups
from convbench.results.document import ResultsDoc
from rich.console import Console

OLD = Path(__file__).parent / "data" / "results-a5b5bf9.json"


@pytest.fixture(scope="module")
def doc() -> ResultsDoc:
    return ResultsDoc.load(OLD)


def _long_names(doc: ResultsDoc) -> ResultsDoc:
    """The same results under the shipped shapes file's longest names, and a 2-thread copy of
    every record: what a default run prints."""
    names = {
        "tiny_same": "logits_54x1x1318",
        "tiny_16": "conv_108x21x128",
        "blockA": "expand_conv3/add_13..expand_conv4/add_17",
        "tiny_model": "rcnn_ctc_v3_standin",
    }
    records = []
    for r in doc.records:
        r = dataclasses.replace(r, workload=names[r.workload])
        records += [r, dataclasses.replace(r, threads=2, oversubscribed=True)]
    raw = json.loads(json.dumps(doc.to_json()))
    for section in ("workloads", "overheads", "layers", "conv_prediction"):
        for e in raw[section]:
            key = "name" if section == "workloads" else "workload"
            e[key] = names[e[key]]
    out = ResultsDoc.from_json(raw)
    out.records = records
    return out


def _render(doc: ResultsDoc, details: bool) -> str:
    console = Console(width=WIDTH, record=True, soft_wrap=False)
    print_report(doc, console, details=details)
    return console.export_text()


@pytest.mark.parametrize("long_names", [False, True])
def test_every_table_fits_100_columns_and_no_cell_is_cut(doc, long_names: bool) -> None:
    d = _long_names(doc) if long_names else doc
    text = _render(d, details=False)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    # every median is printed whole, in some table
    for r in d.records:
        assert record_row(r)[4] in text


def test_the_closing_summary_answers_kernel_or_framework(doc) -> None:
    text = _render(doc, details=False)
    summary = text[text.index("kernel or framework?") :]
    # tiny_same: oneDNN 14.89 us against TVM's 10.41 us native minus the 4.1 ns floor
    m = {r.id: r.median_s for r in doc.records if r.workload == "tiny_same"}
    floor = doc.harness_overhead["per_call_s"]
    ratio = m["tf/kernel"] / (m["tvm/native"] - floor)
    row = next(line for line in summary.splitlines() if line.startswith("tiny_same"))
    assert f"{ratio:.2f}x faster" in row
    # the framework's share of tf/eager: (eager - kernel) / eager
    share = (m["tf/eager"] - m["tf/kernel"]) / m["tf/eager"]
    assert f"eager {share:.0%}" in summary


def test_the_summary_leaves_out_a_path_faster_than_its_kernel_and_prints_no_negative(
    doc,
) -> None:
    # tf/eager made faster than oneDNN's profiled kernel under it: impossible, so left out
    kernel = next(r for r in doc.records if r.workload == "tiny_same" and r.id == "tf/kernel")
    records = [
        dataclasses.replace(r, median_s=kernel.median_s * 0.5, cv=0.01)
        if r.workload == "tiny_same" and r.id == "tf/eager"
        else r
        for r in doc.records
    ]
    text = _render(dataclasses.replace(doc, records=records), details=False)
    summary = text[text.index("kernel or framework?") : text.index("warnings")]
    assert "tf/eager left out*" in " ".join(summary.split())
    # every path left out is counted and explained (the old file has two more)
    left = " ".join(summary[summary.index("* left out (") :].split())
    assert left.startswith("* left out (3): tiny_same b1 t1: tf/eager (7.45 us) is faster than")
    assert left.count("which it contains") == 3
    assert not re.search(r"-\d+%", summary)


def test_warnings_are_grouped_one_line_per_kind(doc) -> None:
    grouped = _render(doc, details=False)
    full = _render(doc, details=True)
    assert len(doc.warnings) == 6
    groups = warning_groups(doc.warnings)
    assert sum(len(m) for _, m in groups) == 6
    assert dict(groups)["tvm/native and TVM's evaluator disagree"] == doc.warnings[3:5]
    lines = grouped[grouped.index("warnings (6)") :].splitlines()
    assert len(lines) == 1 + len(groups) + 1  # header, one per kind, where the details are
    assert "tvm/native and TVM's evaluator disagree (2)" in grouped
    assert "tiny_16 b1 t1: tvm/native (13.54 us)" not in grouped  # the second one: only counted
    assert "tiny_16 b1 t1: tvm/native (13.54 us)" in full  # `report` prints every one


def test_the_live_row_fits_100_columns(doc) -> None:
    console = Console(width=200, record=True)
    reporter = ConsoleReporter(console)
    for r in doc.records:
        reporter.record(r.with_peak(r.peak_gflops))
        reporter.warning("not printed as it comes")
    text = console.export_text()
    assert "not printed" not in text
    for line in text.splitlines():
        numbers = re.sub(r"\s+(flags|[a-z,]*(unstable|oversubscribed|unpinned))$", "", line)
        assert len(numbers) <= WIDTH, line


def test_a_range_is_printed_in_one_unit() -> None:
    assert fmt_range(10.41e-6, 23.29e-6) == "10.41..23.29 us"
    assert fmt_range(900e-6, 1.5e-3) == "0.900..1.500 ms"
    assert fmt_range(5e-9, 9e-9) == "5.0..9.0 ns"


# --- Google Benchmark's JSON ---------------------------------------------------------------------
def _gbench(convbench, path: Path, cwd: Path) -> dict:
    proc = convbench("report", str(path), "--format", "gbench", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_gbench_export_has_what_compare_py_reads(convbench, doc, tmp_path) -> None:
    out = _gbench(convbench, OLD, tmp_path)
    ctx = out["context"]
    assert ctx["json_schema_version"] == 1  # compare.py exits on any other version
    for key, kind in (
        ("date", str),
        ("host_name", str),
        ("executable", str),
        ("num_cpus", int),
        ("mhz_per_cpu", int),
        ("caches", list),
        ("library_version", str),
    ):
        assert isinstance(ctx[key], kind), key
    runs = out["benchmarks"]
    for b in runs:
        # compare.py: partition by name; comparable when time_unit, real_time, cpu_time exist
        assert isinstance(b["name"], str) and b["time_unit"] == "ns"
        assert isinstance(b["real_time"], float) and isinstance(b["cpu_time"], float)
        assert b["run_type"] in ("iteration", "aggregate")
        assert isinstance(b["repetitions"], int) and isinstance(b["threads"], int)
        assert isinstance(b["iterations"], int) and b["iterations"] >= 1
        if b["run_type"] == "aggregate":
            assert b["name"] == f"{b['run_name']}_{b['aggregate_name']}"
    # one iteration run per sample, named by cell, its real_time the sample in ns
    for r in doc.records:
        name = f"{r.workload}/{r.backend}/{r.path}/batch:{r.batch}/threads:{r.threads}"
        its = [b for b in runs if b["name"] == name]
        assert [b["repetition_index"] for b in its] == list(range(len(r.wall_samples_s)))
        assert all(b["repetitions"] == len(r.wall_samples_s) for b in its)
        assert [b["real_time"] for b in its] == pytest.approx([s * 1e9 for s in r.wall_samples_s])
        aggs = {
            b["aggregate_name"]: b
            for b in runs
            if b.get("run_name") == name and "aggregate_name" in b
        }
        assert set(aggs) == {"mean", "median", "stddev", "cv"}
        assert aggs["median"]["real_time"] == pytest.approx(r.median_s * 1e9)
        assert aggs["mean"]["real_time"] == pytest.approx(r.mean_s * 1e9)
        assert aggs["stddev"]["real_time"] == pytest.approx(r.stddev_s * 1e9)
        assert aggs["cv"]["real_time"] == pytest.approx(r.cv)
        par = r.parallelism or 1.0
        assert its[0]["cpu_time"] == pytest.approx(r.wall_samples_s[0] * par * 1e9)


def test_compare_py_sees_a_slower_cell_in_two_gbench_exports(convbench, tmp_path) -> None:
    """What compare.py does with two files (gbench/report.py: partition by name within one time
    unit, then a two-sided Mann-Whitney U over the iteration runs' real_time), done here."""
    from scipy.stats import mannwhitneyu

    raw = json.loads(OLD.read_text())
    for r in raw["records"]:
        if (r["workload"], r["backend"], r["path"]) == ("tiny_same", "tvm", "native"):
            r["wall_samples_s"] = [t * 3 for t in r["wall_samples_s"]]
    new = tmp_path / "new.json"
    new.write_text(json.dumps(raw))
    a, b = _gbench(convbench, OLD, tmp_path), _gbench(convbench, new, tmp_path)
    name = "tiny_same/tvm/native/batch:1/threads:1"
    names_a = [x["name"] for x in a["benchmarks"]]
    assert names_a == [x["name"] for x in b["benchmarks"]]
    lhs = [x["real_time"] for x in a["benchmarks"] if x["name"] == name]
    rhs = [x["real_time"] for x in b["benchmarks"] if x["name"] == name]
    assert len(lhs) == len(rhs) == 5  # >= 2 repetitions: compare.py runs its U test
    assert rhs == pytest.approx([3 * t for t in lhs])
    assert mannwhitneyu(lhs, rhs, alternative="two-sided").pvalue < 0.05
    other = "tiny_same/tvm/cython/batch:1/threads:1"
    same = [x["real_time"] for x in a["benchmarks"] if x["name"] == other]
    assert same == [x["real_time"] for x in b["benchmarks"] if x["name"] == other]


# --- CSV -----------------------------------------------------------------------------------------
def test_csv_round_trips_every_record(convbench, doc, tmp_path) -> None:
    import csv

    from convbench.report.export import CSV_COLUMNS

    out = tmp_path / "run.csv"
    proc = convbench("report", str(OLD), "--format", "csv", "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == len(doc.records)
    for row, r in zip(rows, doc.records, strict=True):
        assert (row["workload"], row["backend"], row["path"]) == (r.workload, r.backend, r.path)
        assert (int(row["batch"]), int(row["threads"])) == (r.batch, r.threads)
        for col in ("median_s", "mean_s", "stddev_s", "cv", "p10_s", "p90_s", "min_s", "max_s"):
            assert float(row[col]) == getattr(r, col), col
        assert row["cpu_s"] == ("" if r.cpu_s is None else repr(r.cpu_s))
        assert float(row["pct_peak"]) == r.pct_peak
        assert row["unstable"] == ("true" if r.unstable else "false")
        assert [float(v) for v in row["wall_samples_s"].split()] == r.wall_samples_s


# --- plots and HTML ------------------------------------------------------------------------------
def _two_threads(doc: ResultsDoc) -> dict:
    """The old file with every record also at 2 threads: data for the scaling plot."""
    raw = json.loads(json.dumps(doc.to_json()))
    raw["records"] += [
        {**r, "threads": 2, "median_s": r["median_s"] * 0.6, "oversubscribed": True}
        for r in raw["records"]
    ]
    return raw


def test_plot_writes_every_plot_it_has_data_for(convbench, doc, tmp_path) -> None:
    src = tmp_path / "two.json"
    src.write_text(json.dumps(_two_threads(doc)))
    proc = convbench("plot", str(src), "-o", str(tmp_path / "plots"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    stems = ["ladder", "scaling", "peak", "layers-blockA-b1-t1", "layers-tiny_model-b1-t1"]
    for stem in stems:
        for fmt, magic in (("png", b"\x89PNG"), ("svg", b"<?xml")):
            f = tmp_path / "plots" / f"{stem}.{fmt}"
            assert f.read_bytes().startswith(magic), f
            assert f.stat().st_size > 5000, f
    # no prefix in these results: partsearch's plot is skipped, with the reason
    assert "skipped: no partsearch" in proc.stdout


def test_plot_skips_what_the_results_lack(convbench, doc, tmp_path) -> None:
    raw = json.loads(OLD.read_text())
    raw["records"] = [r for r in raw["records"] if r["path"] == "eager"]
    raw["overheads"], raw["layers"] = [], []
    src = tmp_path / "eager-only.json"
    src.write_text(json.dumps(raw))
    proc = convbench("plot", str(src), "-o", str(tmp_path / "p"), "--format", "png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for reason in (
        "no ladder",
        "no thread scaling",
        "no kernel rates",
        "no per-layer",
        "no partsearch",
    ):
        assert f"skipped: {reason}" in proc.stdout, reason
    assert not list((tmp_path / "p").iterdir())


def test_plot_and_report_refuse_a_bad_file(convbench, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    for args in (["plot", str(bad)], ["report", str(bad), "--format", "csv"]):
        proc = convbench(*args, cwd=tmp_path)
        assert proc.returncode == 2 and "not a convbench results file" in proc.stderr
        assert "Traceback" not in proc.stderr
    proc = convbench("report", str(OLD), "--format", "xml", cwd=tmp_path)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_html_report_is_self_contained(convbench, doc, tmp_path) -> None:
    src = tmp_path / "two.json"
    src.write_text(json.dumps(_two_threads(doc)))
    out = tmp_path / "report.html"
    proc = convbench("report", str(src), "--html", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<script" not in text.lower()
    assert text.count('src="data:image/png;base64,') == 5  # ladder, scaling, peak, 2 layers
    for title in ("every path", "kernel against kernel", "kernel or framework?", "per layer"):
        assert title in text
    assert "AMD EPYC" in text


def test_the_progress_total_grows_with_the_passes_over_unstable_cells() -> None:
    reporter = ConsoleReporter(Console(file=io.StringIO(), width=120))
    reporter.start(3, 1)
    reporter.more(2)
    assert reporter.progress.tasks[reporter.task].total == 5
    reporter.stop()
