"""The pytest plugin in real pytest sessions (pytester, each in a subprocess): the fixture times
a kernel and returns pytest-benchmark's statistics, the ratio helpers, the results file it writes
(read back and reported by `convbench report`), and the skip when the native extension cannot
load. The comparison helpers are also checked on samples made up here."""

from __future__ import annotations

import pytest
from conftest import TINY_SHAPES
from convbench.pytest_plugin import assert_faster, assert_not_slower, ratio
from convbench.results.document import ResultsDoc
from convbench.results.significance import quartiles

# Options as --name=value: a path given as a separate argument would move pytest's rootdir.
QUICK = ["--convbench-samples=5", "--convbench-min-sample-time=0.002", "--convbench-warmup=0.005"]

INNER = """
import pytest
from convbench.pytest_plugin import assert_faster, ratio
from convbench.results.significance import quartiles


def test_tvm_native(convbench_kernel):
    r = convbench_kernel("tiny_same", threads=1)
    s = r.stats
    assert (r.record.backend, r.record.path, r.record.threads) == ("tvm", "native", 1)
    assert s["rounds"] == len(r.samples) == 5
    assert s["median"] == r.median == r.record.median_s
    assert s["min"] == min(r.samples) and s["max"] == max(r.samples)
    assert s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"]
    q1, q3 = quartiles(r.samples)
    assert (s["q1"], s["q3"], s["iqr"]) == (q1, q3, q3 - q1)
    assert s["ops"] == 1 / s["mean"]
    assert s["iterations"] == r.record.iters_per_sample >= 1
    assert r.record.pinned


def test_tf_kernel_of_an_inline_conv(convbench_kernel):
    conv = {"name": "inline8", "input": [1, 6, 6, 8], "kernel": [3, 3], "out_channels": 8}
    r = convbench_kernel(conv, backend="tf", path="kernel")
    assert (r.record.workload, r.record.backend, r.record.path) == ("inline8", "tf", "kernel")
    assert r.median > 0 and r.rounds == 5


def test_ratio_helpers(convbench_kernel):
    r = convbench_kernel("tiny_same", path="python")
    assert ratio(r, r) == 1.0
    c = convbench_kernel.assert_not_slower(r, r, confidence=0.95)
    assert c.p_slower > 0.05
    with pytest.raises(AssertionError, match="not shown faster"):
        assert_faster(r, r)


def test_an_unknown_name(convbench_kernel):
    convbench_kernel("no_such_conv")
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, kernel_cache):
    pytester.makefile(".yaml", tiny=TINY_SHAPES)
    pytester.makeini("[pytest]\nconvbench_shapes = tiny.yaml\n")  # relative to the rootdir
    return pytester, [f"--convbench-cache-dir={kernel_cache.root}", *QUICK]


def test_the_fixture_times_checks_and_writes_results(inner, convbench) -> None:
    pytester, args = inner
    pytester.makepyfile(test_inner=INNER)
    out = pytester.path / "session.json"
    result = pytester.runpytest_subprocess(*args, "--convbench-json=session.json")
    result.assert_outcomes(passed=3, failed=1)
    text = result.stdout.str()
    assert "no conv named 'no_such_conv' in" in text and "known: tiny_same, tiny_logits" in text
    assert "convbench: what this session measured" in text
    assert "results written to session.json" in text
    # the session's results file: what `convbench report` reads
    doc = ResultsDoc.load(out)
    cells = {(r.workload, r.backend, r.path) for r in doc.records}
    assert cells == {
        ("tiny_same", "tvm", "native"),
        ("inline8", "tf", "kernel"),
        ("tiny_same", "tvm", "python"),
    }
    assert {r.extra["pytest_test"].split("::")[1] for r in doc.records} == {
        "test_tvm_native",
        "test_tf_kernel_of_an_inline_conv",
        "test_ratio_helpers",
    }
    assert [c["workload"] for c in doc.checks] == ["tiny_same"] and doc.checks[0]["ok"]
    assert {w["name"] for w in doc.workloads} == {"tiny_same", "inline8"}
    proc = convbench("report", str(out), cwd=pytester.path)
    assert proc.returncode == 0, proc.stderr
    assert "every path: tvm" in proc.stdout and "kernel or framework?" in proc.stdout
    proc = convbench("report", str(out), "--format", "gbench", cwd=pytester.path)
    assert proc.returncode == 0 and "tiny_same/tvm/native/batch:1/threads:1" in proc.stdout


def test_it_skips_when_the_native_extension_cannot_load(inner) -> None:
    pytester, args = inner
    pytester.makeconftest(
        "import sys\nsys.modules['convbench._core'] = None  # import of it now fails\n"
    )
    pytester.makepyfile(
        test_inner="def test_t(convbench_kernel):\n    convbench_kernel('tiny_same')\n"
    )
    result = pytester.runpytest_subprocess(*args, "-rs")
    result.assert_outcomes(skipped=1)
    text = result.stdout.str()
    assert "convbench's native extension cannot load" in text
    assert "convbench: 1 measurement(s) skipped: convbench's native extension" in text


def test_bad_options_are_usage_errors(inner) -> None:
    pytester, args = inner
    pytester.makepyfile(test_inner="def test_t():\n    pass\n")
    result = pytester.runpytest_subprocess("--convbench-samples", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--convbench-samples: expected a positive integer" in result.stderr.str()


# --- the comparisons, on made-up samples ---------------------------------------------------------
FAST = [1.00, 1.01, 1.02, 0.99, 1.00, 1.03, 0.98, 1.01, 1.00, 1.02]
SLOW = [v * 1.5 for v in FAST]


def test_assert_not_slower_fails_only_on_a_significant_slowdown() -> None:
    assert_not_slower(FAST, SLOW)
    assert_not_slower(FAST, FAST)
    with pytest.raises(AssertionError, match="slower than") as e:
        assert_not_slower(SLOW, FAST, confidence=0.99)
    assert "a / b = 1.500" in str(e.value)
    # within a tolerance: 5% slower is not slower than 1.1 x the other
    a = [v * 1.05 for v in FAST]
    with pytest.raises(AssertionError):
        assert_not_slower(a, FAST)
    assert_not_slower(a, FAST, tolerance=0.10)


def test_assert_faster_needs_significance() -> None:
    c = assert_faster(FAST, SLOW, confidence=0.99)
    assert c.ratio == pytest.approx(1 / 1.5)
    for a, b in ((FAST, FAST), (SLOW, FAST)):
        with pytest.raises(AssertionError, match="not shown faster"):
            assert_faster(a, b)
    assert ratio(SLOW, FAST) == pytest.approx(1.5)


def test_too_few_samples_for_the_confidence_is_refused() -> None:
    """3 against 3 samples: the smallest one-sided p is 1/20, so no verdict at 95%."""
    with pytest.raises(ValueError, match="cannot show a difference"):
        assert_not_slower(SLOW[:3], FAST[:3], confidence=0.95)
    with pytest.raises(ValueError, match="cannot show a difference"):
        assert_faster(FAST[:3], SLOW[:3], confidence=0.95)
    assert_faster(FAST[:3], SLOW[:3], confidence=0.90)  # 1/20 < 0.10


def test_quartiles_as_pytest_benchmark_computes_them() -> None:
    assert quartiles([4.0, 1.0, 3.0, 2.0]) == (1.5, 3.5)  # even: medians of the halves
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (1.75, 4.25)  # 5 = 4k + 1
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == (2.25, 5.75)  # 7 = 4k + 3
    assert quartiles([2.0]) == (2.0, 2.0)
