"""The oneDNN execution-profile parser, on lines captured from this project's TF (2.21)."""

from __future__ import annotations

from pathlib import Path

import pytest
from convbench.frameworks.onednn import (
    MARK,
    matches,
    parse_conv_descriptor,
    parse_verbose,
    per_call_times,
)
from convbench.spec import ConvWorkload, parse_spec

SAMPLE = Path(__file__).parent / "data" / "onednn_verbose_tf2.21.txt"


def _workload(text: str) -> ConvWorkload:
    return ConvWorkload(parse_spec(f"convs: [{{name: w, {text}, count: 1}}]")[0], 1)


def test_parses_real_lines() -> None:
    records = parse_verbose(SAMPLE.read_text())
    execs = [r for r in records if r["kind"] == "exec"]
    assert len(execs) == 25
    assert all(r["primitive"] == "convolution" and r["time_ms"] > 0 for r in execs)
    assert {r["impl"] for r in execs} >= {"brg_conv_fwd:avx512_core"}
    assert any(r["kind"] == "create:cache_miss" for r in records)


def test_joins_lines_to_workloads_by_descriptor() -> None:
    records = parse_verbose(SAMPLE.read_text())
    same64 = _workload("input: [1, 108, 21, 64], kernel: [3, 3], out_channels: 64")
    logits = _workload("input: [1, 54, 6, 256], kernel: [1, 6], out_channels: 1318, padding: VALID")
    mine = [
        r for r in records if r["kind"] == "exec" and r["descriptor"].startswith("mb1_ic64oc64")
    ]
    times, primitives = per_call_times(mine, same64)
    assert len(times) == len(mine) and primitives == ["convolution"]
    assert times[0] == pytest.approx(mine[0]["time_ms"] / 1e3)
    with pytest.raises(ValueError, match="no oneDNN convolution matches mb1ic256ih54iw6oc1318"):
        per_call_times(mine, logits)


def test_marks_split_calls_and_sum_their_primitives() -> None:
    lines = SAMPLE.read_text().splitlines()
    conv = next(line for line in lines if ",exec," in line and "mb1_ic64oc64" in line)
    reorder = (
        "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:abcd::f0"
        " dst:f32::blocked:acdb::f0,,,1x64x108x21,0.25"
    )
    text = "\n".join([conv, MARK, reorder, conv, MARK, conv, "TF log line on stdout"])
    w = _workload("input: [1, 108, 21, 64], kernel: [3, 3], out_channels: 64")
    times, _ = per_call_times(parse_verbose(text, skip_foreign=True), w)
    t = float(conv.rsplit(",", 1)[1]) / 1e3
    assert times == pytest.approx([t + 0.25e-3, t])  # warm-up before the first mark is dropped


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello world", "not a oneDNN verbose line"),
        ("onednn_verbose,v1,primitive,exec,cpu,convolution,x,y", "expected 9 fields"),
        (
            "onednn_verbose,v1,primitive,exec,cpu,convolution,i,p,m,a,x,mb1_ic1oc1_iw1ow1kw1sw1dw0pw0,fast",
            "is not a number",
        ),
        (
            "onednn_verbose,v1,primitive,exec,cpu,convolution,i,p,m,a,x,garbage,1.0",
            "malformed convolution",
        ),
        ("onednn_verbose,v1,primitive,teleport,cpu", "unknown line kind"),
    ],
)
def test_garbage_is_rejected_with_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_verbose(text)
    assert "line 1" in str(info.value)


def test_a_grouped_conv_matches_only_its_own_groups() -> None:
    dw = _workload("input: [1, 56, 56, 64], kernel: [3, 3], out_channels: 64, groups: 64")
    assert dw.benchdnn == "g64mb1ic64ih56iw56oc64oh56ow56kh3kw3ph1pw1"
    desc = "g64mb1_ic64oc64_ih56oh56kh3sh1dh0ph1_iw56ow56kw3sw1dw0pw1"
    assert matches(desc, dw)
    assert not matches(desc.removeprefix("g64"), dw)  # the dense conv of the same sizes
    dense = _workload("input: [1, 56, 56, 64], kernel: [3, 3], out_channels: 64")
    assert not matches(desc, dense) and matches(desc.removeprefix("g64"), dense)


def test_descriptor_fields() -> None:
    d = parse_conv_descriptor("mb1_ic256oc1318_ih54oh54kh1sh1dh0ph0_iw6ow1kw6sw1dw0pw0")
    assert (d["mb"], d["ic"], d["oc"], d["kw"], d["ow"]) == (1, 256, 1318, 6, 1)
    with pytest.raises(ValueError):
        parse_conv_descriptor("mb1ic64")


def test_cross_checks_compare_each_python_path_with_the_rung_it_wraps() -> None:
    from convbench.results.analysis import cross_checks
    from convbench.results.record import Record

    def rec(path: str, us: float) -> Record:
        return Record.from_json(
            {
                "workload": "w",
                "batch": 1,
                "threads": 1,
                "backend": "tf",
                "path": path,
                "median_s": us * 1e-6,
            }
        )

    records = [
        rec("kernel", 90),
        rec("native", 100),
        rec("native-graph", 70),
        rec("eager", 95),
        rec("session", 80),
    ]
    warnings = cross_checks(records)
    assert any("tf/eager (95.00 us) is faster than tf/native" in w for w in warnings)
    # a session wraps the graph rung (70 us), not the eager one: 80 us is no contradiction
    assert not any("tf/session" in w for w in warnings)
    assert not any("tf/kernel" in w for w in warnings)
