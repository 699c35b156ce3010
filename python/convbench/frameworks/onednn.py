"""oneDNN's execution profile (ONEDNN_VERBOSE=profile_exec), as TensorFlow's oneDNN prints it.

A primitive line (oneDNN v3, comma-separated, no field contains a comma):

    onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,
    <memory descriptors>,<attributes>,<auxiliary>,
    mb1_ic64oc64_ih108oh108kh3sh1dh0ph1_iw21ow21kw3sw1dw0pw1,0.605957   (one line)

The last two fields are the problem descriptor and the time in ms (execution time for `exec`,
creation time for `create:*`). `info`, `graph` and `create:dispatch` lines (an implementation
declining the problem) carry no time and are skipped; anything else is an error naming the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..spec.conv import ConvWorkload

__all__ = ["MARK", "parse_conv_descriptor", "parse_verbose", "per_call_times"]

# Written into the same stdio stream between calls, so each call's primitives can be told apart.
MARK = "convbench_call_boundary"

_PREFIXES = ("onednn_verbose", "dnnl_verbose")
_TIMED_KINDS = ("exec", "create:cache_miss", "create:cache_hit")
_NUMBER = re.compile(r"^[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$")
_CONV = re.compile(
    r"^(?:g(?P<g>\d+))?mb(?P<mb>\d+)_ic(?P<ic>\d+)oc(?P<oc>\d+)"
    r"(?:_ih(?P<ih>\d+)oh(?P<oh>\d+)kh(?P<kh>\d+)sh(?P<sh>\d+)dh(?P<dh>\d+)ph(?P<ph>\d+))?"
    r"_iw(?P<iw>\d+)ow(?P<ow>\d+)kw(?P<kw>\d+)sw(?P<sw>\d+)dw(?P<dw>\d+)pw(?P<pw>\d+)$"
)


def _error(lineno: int, line: str, why: str) -> ValueError:
    shown = line if len(line) <= 160 else line[:157] + "..."
    return ValueError(f"oneDNN verbose line {lineno}: {why}: {shown!r}")


def parse_verbose(text: str | Iterable[str], skip_foreign: bool = False) -> list[dict[str, Any]]:
    """Timed primitive lines as dicts: kind, primitive, impl, prop, descriptor, time_ms.

    Lines equal to MARK come back as {"kind": "mark"}. Text that is not oneDNN's raises
    ValueError with its line number, unless `skip_foreign` (a process's stdout holds other text).
    """
    lines = text.splitlines() if isinstance(text, str) else text
    out: list[dict[str, Any]] = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == MARK:
            out.append({"kind": "mark"})
            continue
        f = line.split(",")
        if f[0] not in _PREFIXES:
            if skip_foreign:
                continue
            raise _error(lineno, line, "not a oneDNN verbose line")
        i = 1
        if i < len(f) and re.fullmatch(r"v\d+", f[i]):
            i += 1
        if i < len(f) and _NUMBER.match(f[i]):  # ONEDNN_VERBOSE_TIMESTAMP=1
            i += 1
        if i < len(f) and f[i] == "graph":
            continue
        if i < len(f) and f[i] == "primitive":
            i += 1
        if i >= len(f):
            raise _error(lineno, line, "truncated line")
        kind = f[i]
        if (
            kind.startswith("info")
            or kind.startswith("create:dispatch")
            or kind.startswith("create:check")
        ):
            continue
        if kind not in _TIMED_KINDS:
            raise _error(lineno, line, f"unknown line kind {kind!r}")
        rest = f[i + 1 :]
        if len(rest) != 9:
            raise _error(lineno, line, f"expected 9 fields after {kind!r}, got {len(rest)}")
        engine, primitive, impl, prop, _mds, _attrs, _aux, desc, t = rest
        if engine not in ("cpu", "gpu"):
            raise _error(lineno, line, f"engine is {engine!r}, expected cpu or gpu")
        if primitive == "convolution" and not _CONV.match(desc):
            raise _error(lineno, line, f"malformed convolution descriptor {desc!r}")
        try:
            time_ms = float(t)
        except ValueError:
            raise _error(lineno, line, f"time {t!r} is not a number") from None
        if not 0.0 <= time_ms < float("inf"):
            raise _error(lineno, line, f"time {t!r} is not a finite non-negative number")
        out.append(
            {
                "kind": kind,
                "primitive": primitive,
                "impl": impl,
                "prop": prop,
                "descriptor": desc,
                "time_ms": time_ms,
            }
        )
    return out


def parse_conv_descriptor(desc: str) -> dict[str, int]:
    """'mb1_ic64oc64_ih108oh108kh3sh1dh0ph1_iw21ow21kw3sw1dw0pw1' -> its integer fields.

    oneDNN counts dilation from 0 and gives only the top/left pads."""
    m = _CONV.match(desc)
    if not m:
        raise ValueError(f"not a oneDNN convolution descriptor: {desc!r}")
    return {k: int(v) for k, v in m.groupdict().items() if v is not None}


def matches(desc: str, w: ConvWorkload) -> bool:
    """Whether a oneDNN convolution descriptor is this workload's problem."""
    try:
        d = parse_conv_descriptor(desc)
    except ValueError:
        return False
    want = w.benchdnn_fields()
    return d.get("g", 1) == want.pop("g") and all(d.get(k) == v for k, v in want.items())


def per_call_times(records: list[dict[str, Any]], w: ConvWorkload) -> tuple[list[float], list[str]]:
    """Sums the `exec` times between marks into one time per call (seconds).

    With marks, what precedes the first mark (warm-up) is dropped; without any, every `exec`
    line is a call of its own.

    Returns the per-call times and the primitives seen in a call (e.g. ['convolution'] or
    ['reorder', 'convolution'] when TF reorders a tensor first). Raises ValueError when a call has
    no convolution for this workload: the profile and the workload do not belong together.
    """
    execs = [r for r in records if r["kind"] in ("exec", "mark")]
    if any(r["kind"] == "mark" for r in execs):
        calls: list[list[dict[str, Any]]] = []
        for r in execs:
            if r["kind"] == "mark":
                calls.append([])
            elif calls:
                calls[-1].append(r)
    else:
        calls = [[r] for r in execs]
    calls = [c for c in calls if c]
    times, primitives = [], []
    for i, call in enumerate(calls):
        if not any(r["primitive"] == "convolution" and matches(r["descriptor"], w) for r in call):
            seen = ", ".join(sorted({r["descriptor"] for r in call}))
            raise ValueError(
                f"call {i}: no oneDNN convolution matches {w.benchdnn} (seen: {seen or 'nothing'})"
            )
        times.append(sum(r["time_ms"] for r in call) / 1e3)
        primitives = [r["primitive"] for r in call]
    return times, primitives
