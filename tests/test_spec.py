from __future__ import annotations

from pathlib import Path

import pytest
from convbench.spec import ConvWorkload, SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]

GOOD = "convs: [{name: a, input: [1, 8, 8, 4], kernel: [3, 3], out_channels: 8, count: 1}]"


def test_shipped_shapes_match_the_research_log() -> None:
    specs = load_spec(ROOT / "shapes.yaml")
    got = [(ConvWorkload(s, 1).output_shape, s.count) for s in specs]
    assert got == [
        ((1, 108, 21, 32), 3),
        ((1, 108, 21, 64), 35),
        ((1, 108, 11, 128), 35),
        ((1, 54, 6, 192), 20),
        ((1, 54, 6, 256), 20),
        ((1, 54, 1, 1318), 1),
    ]
    logits = ConvWorkload(specs[-1], 1)
    assert logits.input_shape == (1, 54, 6, 256)
    assert logits.weight_shape == (1, 6, 256, 1318)


def test_derived_fields() -> None:
    w = ConvWorkload(load_spec(ROOT / "shapes.yaml")[1], 1)
    assert w.benchdnn == "mb1ic64ih108iw21oc64oh108ow21kh3kw3ph1pw1"
    assert w.flops == 2 * 1 * 108 * 21 * 64 * 64 * 3 * 3
    assert ConvWorkload(w.spec, 100).flops == 100 * w.flops
    assert ConvWorkload(w.spec, 100).benchdnn.startswith("mb100ic64")
    d = w.describe()
    assert d["kind"] == "conv" and d["output_shape"] == [1, 108, 21, 64] and d["count"] == 35


def test_grouped_and_depthwise_fields() -> None:
    grouped = ConvWorkload(parse_spec(GOOD.replace("count: 1", "count: 1, groups: 2"))[0], 3)
    assert grouped.weight_shape == (3, 3, 2, 8) and grouped.conv_kind == "grouped"
    assert grouped.flops == 2 * 3 * 8 * 8 * 8 * 2 * 3 * 3
    assert grouped.benchdnn.startswith("g2mb3ic4") and grouped.problem()["groups"] == 2
    text = GOOD.replace("count: 1", "count: 1, groups: 4")
    depthwise = ConvWorkload(parse_spec(text)[0], 1)
    assert depthwise.depthwise and depthwise.conv_kind == "depthwise"
    assert (
        depthwise.weight_shape == (3, 3, 1, 8) and depthwise.describe()["conv_kind"] == "depthwise"
    )
    dense = ConvWorkload(parse_spec(GOOD)[0], 1)
    assert dense.conv_kind == "dense" and "groups" not in dense.problem()  # old keys unchanged


@pytest.mark.parametrize(
    ("extra", "h", "w", "pads"),
    [
        ("strides: [2, 2]", 4, 4, ((0, 1), (0, 1))),  # TF's SAME: the extra row goes at the end
        ("padding: VALID", 6, 6, ((0, 0), (0, 0))),
        ("padding: [[2, 0], [1, 1]]", 8, 8, ((2, 0), (1, 1))),
        ("dilation: [2, 2]", 8, 8, ((2, 2), (2, 2))),
    ],
)
def test_output_shape_rules(extra: str, h: int, w: int, pads: tuple) -> None:
    text = GOOD.replace("count: 1", f"count: 1, {extra}")
    spec = parse_spec(text)[0]
    assert ConvWorkload(spec, 1).output_shape == (1, h, w, 8)
    assert spec.pads == pads


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("count: 1", "count: -1"), ["convs[0] ('a')", "'count'"]),
        (
            GOOD.replace("count: 1", "count: 1, stride: 2"),
            ["convs[0] ('a')", "'stride'", "unknown key"],
        ),
        (
            GOOD.replace("[1, 8, 8, 4]", "[1, 2, 2, 4]").replace(
                "count: 1", "count: 1, padding: VALID"
            ),
            ["convs[0] ('a')", "impossible shape"],
        ),
        (GOOD.replace("[1, 8, 8, 4]", "[1, 8, 4]"), ["'input'", "NHWC"]),
        (GOOD.replace("[1, 8, 8, 4]", "[1, 0, 8, 4]"), ["'input'", "positive"]),
        (GOOD.replace("out_channels: 8", "out_channels: 0"), ["'out_channels'"]),
        (GOOD.replace("kernel: [3, 3]", "kernel: [3]"), ["'kernel'", "pair"]),
        (GOOD.replace("count: 1", "count: 1, padding: HALF"), ["'padding'", "HALF"]),
        (GOOD.replace("count: 1", "count: 1, groups: 3"), ["'groups'", "divide", "(4)"]),
        (GOOD.replace("count: 1", "count: 1, groups: 0"), ["'groups'"]),
        ("convs: [{name: a, input: [1, 8", ["not valid YAML", "line 1"]),
        ("- 1\n- 2\n", ["mapping"]),
        ("convs: []", ["'convs'"]),
        (GOOD[:-1] + ", " + GOOD[8:-1] + "]", ["duplicate name 'a'"]),
        (
            "convs: [{name: a, input: [1, 8, 8, 4], kernel: [3, 3], out_channels: 8}]",
            ["'count'", "required"],
        ),
    ],
)
def test_bad_files_are_refused_with_a_message_naming_the_problem(
    text: str, expected: list[str]
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="bad.yaml")
    message = str(info.value)
    assert message.startswith("bad.yaml")
    for piece in expected:
        assert piece in message, message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml")
