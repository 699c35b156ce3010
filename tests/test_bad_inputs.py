"""The corpus of bad inputs: shapes files (tests/data/bad_inputs/, plus a directory, a device, a
FIFO, a missing and an oversized file made here) and command lines. Each is refused by
`convbench` as a user runs it: exit status 2, a message naming what is wrong, no traceback, and
quickly (nothing is built or allocated first; the bound asserted here is loose on purpose, the
figure to reach is 5 s)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data" / "bad_inputs"
SHIPPED = Path(__file__).resolve().parents[1] / "shapes.yaml"
LIMIT_S = 30.0  # a loaded 2-core machine; an unbounded input takes minutes or never ends

# file -> pieces the message must contain (the file's name is always required too)
BAD_FILES = {
    "binary_garbage.yaml": ["not UTF-8", "line 1"],
    "latin1_comment.yaml": ["not UTF-8", "0xe9", "line 1, column 21"],
    "not_yaml.yaml": ["not valid YAML", "line 2"],
    "tab_indent.yaml": ["not valid YAML", "'\\t'"],
    "alias_bomb.yaml": ["alias", "100,000 values"],
    "recursive_alias.yaml": ["alias refers to a value that contains it"],
    "deep_nesting.yaml": ["nested more than 32 levels"],
    "top_level_list.yaml": ["expected a mapping", "got a list"],
    "empty.yaml": ["expected a mapping", "got empty"],
    "scalar.yaml": ["expected a mapping", "got a str"],
    "convs_not_a_list.yaml": ["'convs'", "valid list"],
    "model_not_a_mapping.yaml": ["'model'", "dictionary"],
    "conv_named_like_block.yaml": ["convs[0] ('blockA')", "'name'", "model.blocks[0].name"],
    "conv_named_like_model.yaml": ["convs[0] ('tiny_model')", "'name'", "model.name"],
    "block_named_like_model.yaml": ["blocks[0]", "'tiny_model'", "model's own name"],
    "duplicate_conv_names.yaml": ["convs[1]", "duplicate name 'a'"],
    "negative_seed.yaml": ["model.seed", "greater than or equal to 0"],
    "nan_bn_epsilon.yaml": ["model.bn_epsilon", "finite"],
    "units_explode.yaml": ["model.stages[0].units", "less than or equal to 256"],
    "depth_explode.yaml": ["model.stem.depth", "less than or equal to 64"],
    "nodes_explode.yaml": ["144,058 nodes", "20,000"],
    "int32_conv_input.yaml": ["convs[0] ('a')", "'input'", "40,000,000,000 elements", "int32"],
    "int32_issue_shapes.yaml": ["convs[5]", "'out_channels'", "6,291,456,000", "int32"],
    "int32_model_logits.yaml": ["conv2d_12/Conv2D", "'out_channels'", "int32"],
    "huge_name.yaml": ["convs[0]", "'name'", "at most 128 characters"],
    "long_input_list.yaml": ["convs[0] ('a')", "'input'", "NHWC"],
    "unknown_key.yaml": ["convs[0] ('a')", "'stride'", "unknown key"],
    "impossible_shape.yaml": ["convs[0] ('a')", "impossible shape"],
    "unknown_cut_node.yaml": ["blocks[0] ('blockA')", "'to'", "conv_block1/unit9/add_99"],
}

MAX_MESSAGE = 2000  # a refusal is a few lines: nothing in it echoes a value unbounded


def _refused(convbench, args: list[str], cwd: Path, expected: list[str]) -> str:
    t0 = time.monotonic()
    proc = convbench(*args, cwd=cwd)
    elapsed = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    for piece in expected:
        assert piece in proc.stderr, proc.stderr
    assert len(proc.stderr) < MAX_MESSAGE + 2000, len(proc.stderr)  # + argparse's usage
    assert elapsed < LIMIT_S, elapsed
    return proc.stderr


def test_the_corpus_is_at_least_thirty_inputs() -> None:
    stored = sorted(p.name for p in DATA.iterdir())
    assert stored == sorted(BAD_FILES), set(stored) ^ set(BAD_FILES)
    assert len(BAD_FILES) + len(SPECIAL_FILES) + len(BAD_COMMAND_LINES) >= 30


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_shapes_file_is_refused(convbench, name: str, tmp_path: Path) -> None:
    path = DATA / name
    err = _refused(convbench, ["--shapes", str(path)], tmp_path, [str(path), *BAD_FILES[name]])
    assert len(err) < MAX_MESSAGE


def _directory(tmp: Path) -> str:
    (tmp / "shapes.d").mkdir()
    return str(tmp / "shapes.d")


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "shapes.fifo")  # nobody writes: reading it would block forever
    return str(tmp / "shapes.fifo")


def _oversized(tmp: Path) -> str:
    p = tmp / "big.yaml"
    p.write_text("convs: []\n" + "# padding\n" * 500_000)
    return str(p)


SPECIAL_FILES = {
    "directory": (_directory, ["is a directory"]),
    "device": (lambda tmp: "/dev/zero", ["/dev/zero", "is a device"]),  # endless zeros
    "fifo": (_fifo, ["is a FIFO"]),
    "missing": (lambda tmp: str(tmp / "nope.yaml"), ["cannot read the shapes file"]),
    "oversized": (_oversized, ["larger than 4096 KiB"]),
}


@pytest.mark.parametrize("kind", sorted(SPECIAL_FILES))
def test_a_shapes_path_that_is_not_a_file_is_refused(convbench, kind: str, tmp_path) -> None:
    make, expected = SPECIAL_FILES[kind]
    _refused(convbench, ["--shapes", make(tmp_path)], tmp_path, expected)


# (command line, pieces of the message)
BAD_COMMAND_LINES = [
    (["--threads", "0"], ["--threads", "positive integers"]),
    (["--threads", "two"], ["--threads", "positive integers"]),
    (["--threads", "5000"], ["--threads", "at most 4,096"]),
    (["--batch", "1,-3"], ["--batch", "positive integers"]),
    (["--batch", "3000000000"], ["--batch", "at most 2,147,483,647"]),
    (["--batch", "100000000"], ["tiny_same", "'input' at batch 100000000", "int32"]),
    (
        ["--batch", "100000", "--max-memory", "1G"],
        ["tiny_same", "at batch 100000: needs about", "limit of 1.0 GiB"],
    ),
    (["--samples", "0"], ["--samples", "positive integer"]),
    (["--samples", "6000"], ["--samples", "5,000"]),
    (["--samples", "1e3"], ["--samples", "positive integer"]),
    (["--min-sample-time", "0"], ["--min-sample-time", "above 0"]),
    (["--min-sample-time", "nan"], ["--min-sample-time", "'nan'"]),
    (["--min-sample-time", "-1"], ["--min-sample-time"]),
    (["--warmup", "inf"], ["--warmup", "'inf'"]),
    (["--cell-timeout", "0"], ["--cell-timeout", "above 0"]),
    (
        ["--cell-timeout", "1", "--samples", "200", "--min-sample-time", "0.01"],
        ["--cell-timeout 1 s is shorter", "2.05 s"],
    ),
    (["--rtol", "nan"], ["--rtol", "tolerance"]),
    (["--rtol", "2"], ["--rtol", "at most 1"]),
    (["--seed", "-1"], ["--seed", "from 0"]),
    (["--max-memory", "lots"], ["--max-memory", "8G"]),
    (["--max-memory", "1K"], ["--max-memory", "from 1M"]),
    (["--paths", "tvm/fast"], ["unknown path(s) tvm/fast"]),
    (["tune", "--trials", "0"], ["--trials", "positive integer"]),
    (["tune", "--trials", "1000000000"], ["--trials", "100,000"]),
    (["partsearch", "--samples", "-5"], ["--samples"]),
    (["--from", "input"], ["has no `model` section"]),
]


@pytest.mark.parametrize(
    ("args", "expected"), BAD_COMMAND_LINES, ids=[" ".join(a) for a, _ in BAD_COMMAND_LINES]
)
def test_a_bad_command_line_is_refused(
    convbench, tiny_shapes: Path, args: list[str], expected: list[str], tmp_path: Path
) -> None:
    sub = [args[0]] if args[0] in ("tune", "partsearch") else []
    rest = args[len(sub) :]
    _refused(convbench, [*sub, "--shapes", str(tiny_shapes), *rest], tmp_path, expected)


def test_the_memory_bound_covers_the_model_and_names_the_limit(convbench, tmp_path) -> None:
    """The shipped file at batch 100 against a 100 MiB limit: every workload over it is named,
    with its field and its figure, before anything is built."""
    err = _refused(
        convbench,
        ["--shapes", str(SHIPPED), "--batch", "100", "--max-memory", "100M"],
        tmp_path,
        ["refused before building anything", "convs[1] ('conv_108x21x64')", "--max-memory"],
    )
    assert "at batch 100: needs about" in err and "100.0 MiB" in err
    assert not list(tmp_path.iterdir())  # no results file, no cache: nothing was started


# --- text from outside convbench is text, never markup ------------------------------------------
MARKUP = "[/x]"


def test_markup_in_names_and_warnings_prints_as_text(tmp_path) -> None:
    """A results file whose workload names and warnings look like rich markup (a busy process
    named `[/x]`, a model node `[bold]`) reports and prints as it is, with no MarkupError."""
    import io
    import json

    from convbench.report.live import ConsoleReporter
    from convbench.report.tables import print_report
    from convbench.results.document import ResultsDoc
    from rich.console import Console

    data = Path(__file__).parent / "data" / "results-a5b5bf9.json"
    text = data.read_text().replace('"tiny_16"', json.dumps(f"tiny{MARKUP}16"))
    raw = json.loads(text.replace('"blockA"', json.dumps("[bold]blockA")))
    raw["warnings"].append(f"other busy processes while the run started: {MARKUP} (93%)")
    doc = ResultsDoc.from_json(raw)
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    for details in (True, False):
        print_report(doc, console, details=details)
    shown = out.getvalue()
    assert f"tiny{MARKUP}16" in shown and "[bold]blockA" in shown and f"{MARKUP} (93%)" in shown
    live = ConsoleReporter(console)
    live.record(next(r for r in doc.records if MARKUP in r.workload))
    live.error({"stage": "measure", "workload": MARKUP, "error": f"server said {MARKUP}"})
    live.note(f"algorithm {MARKUP}: winograd-4")
    live.stop()
    assert out.getvalue().count(f"server said {MARKUP}") == 1


def test_report_of_a_file_with_markup_names(convbench, tmp_path) -> None:
    import json

    data = Path(__file__).parent / "data" / "results-a5b5bf9.json"
    src = tmp_path / "markup.json"
    src.write_text(data.read_text().replace('"tiny_16"', json.dumps(f"tiny{MARKUP}16")))
    proc = convbench("report", str(src), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"tiny{MARKUP}16" in proc.stdout and "Traceback" not in proc.stderr


def test_results_files_are_bounded(convbench, tmp_path) -> None:
    """200000 nested brackets and a file past the size bound are refused with a message, not a
    RecursionError or a read of the whole file."""
    from convbench.results.document import MAX_RESULTS_BYTES

    nested = tmp_path / "nested.json"
    nested.write_text("[" * 200_000)
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(MAX_RESULTS_BYTES + 1)  # sparse: no disk is used
    for path, why in ((nested, "nested too deeply"), (huge, "a results file is at most")):
        for args in (["report", str(path)], ["compare", str(path), str(path)]):
            proc = convbench(*args, cwd=tmp_path)
            assert proc.returncode != 0
            assert why in proc.stdout + proc.stderr
            assert "Traceback" not in proc.stderr


def test_results_file_mode_and_default_name(tmp_path) -> None:
    """A results file is as readable as the user's other files (not mkstemp's 0600), and two
    runs started in the same second get two default names (the process id is in it)."""
    from convbench.cli.common import default_json_path
    from convbench.results.document import ResultsDoc

    path = tmp_path / "r.json"
    old = os.umask(0o022)
    try:
        ResultsDoc().save(path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert str(os.getpid()) in default_json_path("run").name
