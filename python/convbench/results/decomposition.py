"""Where a model cut's time goes, per framework: its layers' kernels as they ran in the whole cut
(in context), the glue between them (every call that is not a layer's kernel, and the time
between calls), and what the measured whole leaves unaccounted (the whole minus both).

TVM's side comes from the Relax VM's instrument (a clock stamp before and after every call the VM
makes, RelaxVm.profile), reduced here to medians over runs, so the worker sends figures, not
stamps; TF's from its step stats (every op's start and end in a traced Session.run, reduced by
frameworks.tf_model.timeline_summary).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

__all__ = [
    "BETWEEN_CALLS",
    "BETWEEN_OPS",
    "SESSION",
    "VM_ENTRY",
    "cut_decomposition",
    "explain_cut",
    "vm_profile_summary",
]

# The glue items that are not calls.
BETWEEN_CALLS = "between calls (VM dispatch)"
VM_ENTRY = "VM entry and return"
BETWEEN_OPS = "between ops (executor)"
SESSION = "session outside the ops"

# Glue items (not calls) and unaccounted time below this share of the whole are left out of the
# sentence that explains a cut.
_SENTENCE_SHARE = 0.02


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def vm_profile_summary(profile: dict[str, Any], plan_funcs: Sequence[str]) -> dict[str, Any]:
    """Medians over runs of a RelaxVm.profile result: each call of the plan (`plan_funcs`, the
    compiled functions in the VM's order) in context, the glue (the VM's builtins by name, the
    time between calls, the entry and return) and the whole, instrumented and plain.

    Raises ValueError when the VM's calls do not contain the plan's functions in its order."""
    symbols = list(profile["symbols"])
    kernel_at: list[int] = []
    k = 0
    for i, s in enumerate(symbols):
        if k < len(plan_funcs) and s == plan_funcs[k]:
            kernel_at.append(i)
            k += 1
    if k != len(plan_funcs):
        missing = plan_funcs[k] if k < len(plan_funcs) else "?"
        raise ValueError(
            f"the VM's {len(symbols)} calls do not follow the call plan: {k} of its "
            f"{len(plan_funcs)} functions found in order, then not '{missing}'"
        )
    kernels = set(kernel_at)
    glue_names = sorted({s for i, s in enumerate(symbols) if i not in kernels})
    runs = len(profile["call_s"])
    context: list[list[float]] = [[] for _ in kernel_at]
    glue: dict[str, list[float]] = {name: [] for name in [*glue_names, BETWEEN_CALLS, VM_ENTRY]}
    kernel_sums, glue_sums = [], []
    for r in range(runs):
        calls, gaps = profile["call_s"][r], profile["gap_s"][r]
        per = dict.fromkeys(glue, 0.0)
        for j, i in enumerate(kernel_at):
            context[j].append(calls[i])
        for i, s in enumerate(symbols):
            if i not in kernels:
                per[s] += calls[i]
        per[BETWEEN_CALLS] = sum(gaps[1:])
        per[VM_ENTRY] = (gaps[0] if gaps else 0.0) + profile["tail_s"][r]
        for name, v in per.items():
            glue[name].append(v)
        kernel_sums.append(sum(calls[i] for i in kernel_at))
        glue_sums.append(sum(per.values()))
    counts = {
        name: sum(1 for i, s in enumerate(symbols) if s == name and i not in kernels)
        for name in glue_names
    }
    items = [
        {"what": name, "s": _median(v), "calls": counts.get(name, 0)} for name, v in glue.items()
    ]
    return {
        "context_s": [_median(v) for v in context],
        # the totals are medians of each run's own sums, as the whole is a median of runs: a
        # sum of per-call medians leaves out the stalls that some call of most runs takes
        "kernels_s": _median(kernel_sums),
        "glue_s": _median(glue_sums),
        "glue": sorted(items, key=lambda g: -g["s"]),
        "instrumented_s": _median(profile["whole_s"]),
        # what the instrument adds: the median of each instrumented run over the plain run
        # beside it (alternated, so both saw the same state of the machine)
        "clock_cost": _median(
            [
                a / b - 1
                for a, b in zip(profile["whole_s"], profile["plain_s"], strict=True)
                if b > 0
            ]
        ),
        "whole_s": _median(profile["plain_s"]),
        "runs": runs,
        "calls": len(symbols),
    }


def cut_decomposition(entry: dict[str, Any], framework: str) -> dict[str, Any] | None:
    """One framework's decomposition of a layers entry: {whole_s, kernels_s, glue_s,
    unaccounted_s, glue: [{what, s, calls}]}; None where the entry has no in-context figures for
    it (a results file written before they existed). The totals are the entry's own where it has
    them (TVM's: medians of each run's sums), else the sums of its rows and glue items."""
    whole = entry.get(f"{framework}_whole_s")
    kernels = entry.get(f"{framework}_kernels_s")
    glue = entry.get(f"{framework}_glue")
    if whole is None or kernels is None or glue is None:
        return None
    glue_s = entry.get(f"{framework}_glue_s")
    if glue_s is None:
        glue_s = sum(g["s"] for g in glue)
    return {
        "whole_s": whole,
        "kernels_s": kernels,
        "glue_s": glue_s,
        "unaccounted_s": whole - kernels - glue_s,
        "glue": sorted(glue, key=lambda g: -g["s"]),
    }


def _t(s: float) -> str:
    a = abs(s)
    if a >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} us"


def explain_cut(
    entry: dict[str, Any], tvm_s: float | None = None, tf_s: float | None = None, tf_path: str = ""
) -> str | None:
    """The answer for one cut and thread count, in words, from its layers entry (and the cells'
    medians where given: TVM's native cell and TF's fastest path): which framework is faster, by
    how much, how the layers' kernels compare, and the largest contributions to the difference."""
    tvm, tf = cut_decomposition(entry, "tvm"), cut_decomposition(entry, "tf")
    if tvm is None or tf is None:
        return None
    where = f"{entry['workload']} b{entry['batch']} t{entry['threads']}"
    a = tvm_s if tvm_s else tvm["whole_s"]
    b = tf_s if tf_s else tf["whole_s"]
    against = f"TF ({tf_path})" if tf_path else "TF"
    verdict = (
        f"TVM {b / a:.2f}x faster than {against}"
        if a <= b
        else (f"TVM {a / b:.2f}x slower than {against}")
    )
    parts = [f"{where}: {verdict}"]
    if tf["kernels_s"] > 0 and tvm["kernels_s"] > 0:
        parts.append(
            f"its layers' kernels in context {_t(tvm['kernels_s'])} against TF's "
            f"{_t(tf['kernels_s'])} ({tvm['kernels_s'] / tf['kernels_s']:.2f}x TF's)"
        )
    glue_d = tvm["glue_s"] - tf["glue_s"]
    top = [g for g in tvm["glue"] if g["s"] >= _SENTENCE_SHARE * tvm["whole_s"]][:2]
    glue = f"its glue {_t(tvm['glue_s'])} against TF's {_t(tf['glue_s'])} ({_sign(glue_d)})"
    if top:
        glue += ", the largest: " + ", ".join(f"{g['what']} {_t(g['s'])}" for g in top)
    parts.append(glue)
    rows = [
        r
        for r in entry.get("rows", [])
        if r.get("tvm_s") is not None
        and r.get("tf_s") is not None
        and not r.get("flops_mismatch")
        and r["layer"] != "(outside the graph)"
    ]
    rows.sort(key=lambda r: -(r["tvm_s"] - r["tf_s"]))
    slower = [r for r in rows if r["tvm_s"] > r["tf_s"]][:3]
    if slower:
        parts.append(
            "the layers where TVM loses most: "
            + ", ".join(
                f"{r['layer']} {_sign(r['tvm_s'] - r['tf_s'])} ({_t(r['tvm_s'])} vs "
                f"{_t(r['tf_s'])})"
                for r in slower
            )
        )
    for name, d in (("TVM", tvm), ("TF", tf)):
        if abs(d["unaccounted_s"]) >= _SENTENCE_SHARE * d["whole_s"]:
            parts.append(f"{name} leaves {_sign(d['unaccounted_s'])} unaccounted")
    return "; ".join(parts)


def _sign(s: float) -> str:
    return ("+" if s >= 0 else "-") + _t(abs(s))
