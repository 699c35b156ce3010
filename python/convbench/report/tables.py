"""Tables over a results document: printed at the end of a run, and by `convbench report FILE`.

Every figure here is a ratio or a difference of medians taken in the same run.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..build.winograd import ALGORITHMS
from ..paths import BACKENDS, RUNGS
from ..results.analysis import by_cell, faster_beyond_noise, framework_shares
from ..results.decomposition import cut_decomposition, explain_cut
from ..results.document import ResultsDoc
from ..results.record import Record
from .format import WIDTH, fmt_range, fmt_time, split_columns, table

__all__ = [
    "COLUMNS",
    "agreement_table",
    "compare_table",
    "cut_answers",
    "decomposition_table",
    "kernel_table",
    "ladder_table",
    "layers_tables",
    "model_table",
    "paths_tables",
    "prediction_table",
    "print_report",
    "print_warnings",
    "summary_table",
    "warning_groups",
    "record_row",
]

# The live display's row of one record.
COLUMNS = (
    "workload",
    "b",
    "thr",
    "backend/path",
    "median",
    "p10..p90",
    "CV",
    "GFLOP/s",
    "%peak",
    "par",
    "flags",
)


def record_row(r: Record) -> list[str]:
    flags = []
    if r.oversubscribed:
        flags.append("oversubscribed")
    if r.unstable:
        flags.append("unstable")
    elif r.outliers:
        flags.append("outliers")
    if r.pinned is False:
        flags.append("unpinned")
    if r.algorithm and r.algorithm != "direct":
        flags.append(f"{r.algorithm} (effective GFLOP/s)")
    elif r.schedule and "winograd" in r.schedule:  # a model build with Winograd layers
        flags.append("winograd layers (effective GFLOP/s)")
    return [
        r.workload,
        str(r.batch),
        str(r.threads),
        r.id,
        fmt_time(r.median_s),
        fmt_range(r.p10_s, r.p90_s),
        f"{r.cv * 100:.1f}%",
        f"{r.gflops:.1f}" if r.gflops else "-",
        f"{r.pct_peak:.0f}%" if r.pct_peak is not None else "-",
        f"{r.parallelism:.2f}" if r.parallelism is not None else "-",
        ",".join(flags),
    ]


def paths_tables(doc: ResultsDoc) -> list[Table]:
    """Median per workload, batch and thread count, one table per backend (split further where
    its paths would not fit the width), one column per path."""
    present = {r.id for r in doc.records}
    ordered = [r for r in RUNGS if r.id in present]
    out = []
    cells = by_cell(doc.records)
    for backend in dict.fromkeys(r.backend for r in ordered):
        paths = [r for r in ordered if r.backend == backend]
        keys = ("workload", "batch", "thr")
        rows = [(cell, m) for cell, m in cells.items() if any(p.id in m for p in paths)]
        key_rows = [(name, str(batch), str(threads)) for (name, batch, threads), _ in rows]
        value_rows = [
            [fmt_time(m[p.id].median_s) if p.id in m else "-" for p in paths] for _, m in rows
        ]
        headers = [p.name for p in paths]
        groups = split_columns(keys, key_rows, headers, value_rows)
        for n, group in enumerate(groups, 1):
            part = f" ({n}/{len(groups)})" if len(groups) > 1 else ""
            t = table(
                f"median time per call, every path: {backend}{part}",
                (*keys, *(headers[j] for j in group)),
            )
            for key, values in zip(key_rows, value_rows, strict=True):
                t.add_row(*key, *(values[j] for j in group))
            out.append(t)
    return out


def kernel_table(doc: ResultsDoc) -> Table:
    """TVM's kernel against oneDNN's inside TF: the kernel question without any framework."""
    t = table(
        "kernel against kernel: TVM native vs TF's oneDNN primitive (ratio > 1: TVM faster)",
        (
            "workload",
            "batch",
            "thr",
            "tvm/native",
            "GFLOP/s %peak",
            "tf/kernel",
            "GFLOP/s %peak",
            "kernel ÷ native",
        ),
    )

    def rate(r: Record | None) -> str:
        if r is None or r.gflops is None:
            return "-"
        pct = f" {r.pct_peak:.0f}%" if r.pct_peak is not None else ""
        # Winograd: the direct conv's FLOPs over its time, as benchdnn counts them
        eff = f" ({r.algorithm}, effective)" if r.algorithm not in (None, "direct") else ""
        return f"{r.gflops:.0f}{pct}{eff}"

    for (name, batch, threads), m in by_cell(doc.records).items():
        tvm, tf = m.get("tvm/native"), m.get("tf/kernel")
        if tf is None:
            continue
        if tf.inconsistent:
            continue  # a kernel time that contradicts the call containing it: not a result
        ratio = f"{tf.median_s / tvm.median_s:.2f}" if tvm else "-"
        t.add_row(
            name,
            str(batch),
            str(threads),
            fmt_time(tvm.median_s) if tvm else "-",
            rate(tvm),
            fmt_time(tf.median_s),
            rate(tf),
            ratio,
        )
    return t


def ladder_table(doc: ResultsDoc) -> Table:
    """Where the time goes: kernel, native dispatch, what each wrapper adds over the native
    rung it wraps. A rung that failed a cross-check is left out and named."""
    t = table(
        "where the time goes (us, and share of that path's total)",
        (
            "workload",
            "batch",
            "thr",
            "backend",
            "kernel",
            "native dispatch",
            "wrappers: added over the rung they wrap",
            "left out",
        ),
        wrap=("workload", "wrappers: added over the rung they wrap", "left out"),
    )
    for e in doc.overheads:

        def rung(key: str, e: dict[str, Any] = e) -> str:
            r = e.get(key)
            return f"{r['us']:.2f} ({r['share']:.0%})" if r else "-"

        python = "  ".join(
            f"{p} +{v['us']:.2f} ({v['share']:.0%})" for p, v in e["python_overhead"].items()
        )
        t.add_row(
            e["workload"],
            str(e["batch"]),
            str(e["threads"]),
            e["backend"],
            rung("kernel"),
            rung("native_dispatch"),
            python,
            ", ".join(sorted(e.get("excluded", {}))) or "-",
        )
    return t


def agreement_table(doc: ResultsDoc) -> Table:
    """Two measurements of the same thing, side by side: they must agree."""
    t = table(
        "cross-checks: two measurements of the same call (tvm/native against TVM's evaluator, "
        "their samples alternated in the evaluator's processes, differ: the median of the "
        "pairs' ratios (*: of the two cells' medians); "
        "tf/kernel against the plain median of the same ONEDNN_VERBOSE profile)",
        (
            "workload",
            "batch",
            "thr",
            "tvm/native",
            "evaluator",
            "differ",
            "tf/kernel",
            "plain median",
            "differ ",
        ),
    )
    for (name, batch, threads), m in by_cell(doc.records).items():
        nat, ev, ker = m.get("tvm/native"), m.get("tvm/evaluator"), m.get("tf/kernel")
        paired = ev.paired_native_median_s if ev else None
        native = paired or (nat.median_s if nat else None)
        if paired:  # the median of the alternated pairs' ratios
            d1 = f"{1 / ev.paired_ratio - 1:+.1%}"
        else:
            d1 = f"{(native - ev.median_s) / ev.median_s:+.1%}*" if native and ev else "-"
        raw = ker.verbose_median_s if ker else None
        d2 = f"{(ker.median_s - raw) / raw:+.1%}" if ker and raw else "-"
        t.add_row(
            name,
            str(batch),
            str(threads),
            fmt_time(native),
            fmt_time(ev.median_s) if ev else "-",
            d1,
            fmt_time(ker.median_s) if ker else "-",
            fmt_time(raw),
            d2,
        )
    return t


LEFT_OUT_SHOWN = 4  # the reasons a summary table's caption spells out


def _onednn(m: dict[str, Record], conv: bool) -> tuple[float | None, str]:
    """oneDNN's kernel time in a cell, and a mark: a single conv's profiled kernel (`tf/kernel`),
    or, where TF's whole graph call (`tf/native-graph`) is faster than that beyond noise, the
    graph call as an upper bound of the graph's own kernel ("<="); a model cut's native-graph."""
    ker, graph = m.get("tf/kernel"), m.get("tf/native-graph")
    ker = ker if ker and not ker.inconsistent else None
    graph = graph if graph and not graph.inconsistent else None
    if not conv:
        return (graph.median_s if graph else None), ""
    if ker and graph and faster_beyond_noise(graph, ker):
        return graph.median_s, "<="
    return (ker.median_s if ker else None), ""


def summary_table(doc: ResultsDoc) -> Table:
    """The answer, per workload and thread count: TVM's kernel against oneDNN's, and how much of
    each path's time is framework (results.analysis.framework_shares: never negative; a path that
    contradicts its kernel is left out and counted)."""
    t = table(
        "kernel or framework? kernel against kernel, and the framework's share of each path "
        "(path minus the kernel in its call chain, over path; TF's graph paths: over "
        "native-graph, whose kernel is not profiled; model cuts: the sum of the layers' "
        "kernels in context, as the per-layer table measured them; <=: TF's graph call beat the "
        "profiled kernel, so oneDNN's graph kernel is at most that)",
        ("workload", "batch", "thr", "TVM kernel", "oneDNN", "TVM vs oneDNN", "framework share"),
        wrap=("workload", "framework share"),
    )
    floor = (doc.harness_overhead or {}).get("per_call_s")
    kinds = doc.kinds()
    shares: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for e in framework_shares(doc.records, floor, kinds, doc.layers):
        shares.setdefault((e["workload"], e["batch"], e["threads"]), []).append(e)
    left_out: list[str] = []
    for cell, m in by_cell(doc.records).items():
        name, batch, threads = cell
        conv = kinds.get(name.removesuffix(" (cold)"), "conv") == "conv"
        tvm = next(
            (e["kernel_us"] / 1e6 for e in shares.get(cell, []) if e["backend"] == "tvm"), None
        )
        tvm = tvm if tvm else None
        tf, mark = _onednn(m, conv)
        if not conv:  # a model cut: TF's layers' kernels in context, where a table has them
            tf = next(
                (e["kernel_us"] / 1e6 for e in shares.get(cell, []) if e["backend"] == "tf"), tf
            )
        parts = []
        for e in shares.get(cell, []):
            plain = [f"{p} {v:.0%}" for p, v in e["shares"].items() if p not in e.get("over", {})]
            graph = [f"{p} {v:.0%}" for p, v in e["shares"].items() if p in e.get("over", {})]
            if plain:
                parts.append(f"{e['backend']}: " + ", ".join(plain))
            if graph:
                parts.append(f"{e['backend']} over native-graph: " + ", ".join(graph))
            for path, why in e.get("excluded", {}).items():
                parts.append(f"{e['backend']}/{path} left out*")
                left_out.append(f"{name} b{batch} t{threads}: {why}")
        if not parts and tvm is None and tf is None:
            continue
        versus = "-"
        if tvm and tf:
            # oneDNN's time an upper bound ("<="): TVM's lead at most, its lag at least, this
            if tf >= tvm:
                versus = f"{mark}{tf / tvm:.2f}x faster"
            else:
                versus = f"{'>=' if mark else ''}{tvm / tf:.2f}x slower"
        t.add_row(
            name,
            str(batch),
            str(threads),
            fmt_time(tvm),
            f"{mark}{fmt_time(tf)}" if tf else "-",
            versus,
            "; ".join(parts),
        )
    if left_out:
        shown = "; ".join(left_out[:LEFT_OUT_SHOWN])
        more = len(left_out) - LEFT_OUT_SHOWN
        t.caption = f"* left out ({len(left_out)}): {shown}" + (
            f"; and {more} more (the JSON's warnings)" if more > 0 else ""
        )
    return t


# The kinds of warning a run gives, each recognised by a phrase of its message.
WARNING_KINDS = (
    ("tvm/evaluator", "tvm/native and TVM's evaluator disagree"),
    ("which contains it", "a TF kernel slower than the native call containing it"),
    ("which it wraps", "a Python path faster than the native rung it wraps"),
    ("which it contains", "a path faster than the kernel in its call chain"),
    ("oversubscribed", "oversubscribed thread counts"),
    ("unstable", "unstable measurements"),
    ("outlying samples", "outlying samples"),
    ("untuned", "untuned kernels"),
    ("tuned schedule", "model cuts without tuned functions"),
    ("histogram", "the model's conv histogram differs from the convs"),
)


def warning_groups(warnings: list[str]) -> list[tuple[str, list[str]]]:
    """The warnings grouped by kind, in the order the kinds first occur."""
    groups: dict[str, list[str]] = {}
    for message in warnings:
        kind = next((k for phrase, k in WARNING_KINDS if phrase in message), "other")
        groups.setdefault(kind, []).append(message)
    return list(groups.items())


def _clip(text: str, width: int) -> str:
    """`text` cut at a word boundary to fit `width`, marked with " ..." where cut."""
    if len(text) <= width:
        return text
    cut = text[: width - 4].rsplit(" ", 1)[0]
    return cut + " ..."


def print_warnings(doc: ResultsDoc, console: Console, details: bool) -> None:
    """Every warning (`details`), or one line per kind with its count and first message."""
    if not doc.warnings:
        return
    console.print(f"[yellow]warnings ({len(doc.warnings)}):[/]", highlight=False)
    for kind, messages in warning_groups(doc.warnings):
        if details:
            for m in messages:
                console.print(f"  [yellow]{kind}:[/] {escape(m)}", highlight=False)
            continue
        head = f"  {kind} ({len(messages)}): "
        console.print(
            f"[yellow]{head}[/]{escape(_clip(messages[0], WIDTH - len(head)))}", highlight=False
        )
    if not details:
        console.print("  every warning in full: the JSON's `warnings`, or convbench report FILE")


def print_report(doc: ResultsDoc, console: Console, details: bool = True) -> None:
    """The closing tables, the summary last; `details`: every warning in full (else one line
    per kind)."""
    floor = doc.harness_overhead or {}
    if floor.get("paths"):
        console.print(
            "per-call floor on an empty TVM kernel: "
            + ", ".join(f"{k} {fmt_time(v['per_call_s'])}" for k, v in floor["paths"].items()),
            highlight=False,
        )
    if doc.records:
        for t in paths_tables(doc):
            console.print(t)
        console.print(kernel_table(doc))
        if doc.extra.get("algorithms"):
            console.print(algorithm_table(doc))
        if doc.overheads:
            console.print(ladder_table(doc))
        console.print(agreement_table(doc))
        print_model_report(doc, console)
        console.print(summary_table(doc))
        for line in cut_answers(doc):
            console.print(line, highlight=False, markup=False)
    print_warnings(doc, console, details)


def cut_answers(doc: ResultsDoc) -> list[str]:
    """Per model cut and thread count with a per-layer table: the answer in words
    (results.decomposition.explain_cut), against the cells' medians where the run has them:
    TVM's native rung and TF's fastest path."""
    cells = by_cell(doc.records)
    out = []
    for e in doc.layers:
        m = cells.get((e["workload"], e["batch"], e["threads"]), {})
        tvm = m.get("tvm/native")
        tf = [r for p, r in m.items() if p.startswith("tf/") and not r.inconsistent]
        best = min(tf, key=lambda r: r.median_s) if tf else None
        line = explain_cut(
            e,
            tvm.median_s if tvm else None,
            best.median_s if best else None,
            best.id if best else "",
        )
        if line:
            out.append(line)
    return out


def algorithm_table(doc: ResultsDoc) -> Table:
    """TVM's algorithm per conv and thread count (--algos auto or winograd): each candidate's
    time in the probe that chose, and the weight transform each Winograd kernel does once."""
    t = table(
        "TVM's algorithm per conv: the probe's median per candidate (native loop), the one "
        "chosen, and the Winograd weight transform (once, when loaded)",
        (
            "workload",
            "batch",
            "thr",
            "mode",
            *ALGORITHMS,
            "chosen",
            "transform",
        ),
    )
    transform = {
        (r.workload, r.batch, r.threads): r.weight_transform_s
        for r in doc.records
        if r.id == "tvm/native" and r.weight_transform_s is not None
    }
    for e in doc.extra.get("algorithms", []):
        probe = e.get("probe_median_s", {})
        t.add_row(
            e["workload"],
            str(e["batch"]),
            str(e["threads"]),
            e.get("mode", "-"),
            *(fmt_time(probe.get(a)) for a in ALGORITHMS),
            e["chosen"],
            fmt_time(transform.get((e["workload"], e["batch"], e["threads"]))),
        )
    return t


def model_algorithm_table(doc: ResultsDoc) -> Table:
    """TVM's algorithm per conv problem of each model cut, chosen in context: the time the
    problem's layers took in the whole cut under each candidate build, and the cut's whole."""
    t = table(
        "TVM's algorithm per model layer, chosen in context: the layers of each problem "
        "(input, output channels, pads) summed as they ran in the whole cut, per candidate build",
        ("workload", "batch", "thr", "problem", "layers", *ALGORITHMS, "chosen"),
    )
    for e in doc.extra.get("model_algorithms", []):
        rows = [("(the whole cut)", "", e.get("whole_s", {}), "")]
        rows += [
            (r["problem"], str(len(r["layers"])), r["in_context_s"], r["chosen"])
            for r in e.get("problems", [])
        ]
        for problem, layers, times, chosen in rows:
            t.add_row(
                e["workload"],
                str(e["batch"]),
                str(e["threads"]),
                problem,
                layers,
                *(fmt_time(times.get(a)) for a in ALGORITHMS),
                chosen,
            )
    return t


def model_table(doc: ResultsDoc) -> Table:
    """Model cuts: TVM native against TF's fastest path, and what fusion and TF's graph
    optimisations are worth, all medians of this run."""
    t = table(
        "model cuts: TVM native vs TF's fastest path (ratio > 1: TVM faster); gains: fusion "
        "(unfused ÷ fused TVM), grappler (session-noopt ÷ session), oneDNN (no-onednn ÷ session)",
        (
            "workload",
            "batch",
            "thr",
            "tvm/native",
            "TF fastest",
            "TF path",
            "ratio",
            "fusion",
            "grappler",
            "oneDNN",
        ),
    )
    kinds = doc.kinds()
    for (name, batch, threads), m in by_cell(doc.records).items():
        if kinds.get(name, "conv") == "conv":
            continue
        med = {p: r.median_s for p, r in m.items()}
        tvm = med.get("tvm/native")
        tf = {p: v for p, v in med.items() if p.startswith("tf/")}
        best = min(tf.items(), key=lambda kv: kv[1]) if tf else None

        def gain(slow: str, fast: str, med: dict[str, float] = med) -> str:
            a, b = med.get(slow), med.get(fast)
            return f"{a / b:.2f}x" if a and b else "-"

        t.add_row(
            f"{name} ({kinds[name]})",
            str(batch),
            str(threads),
            fmt_time(tvm),
            fmt_time(best[1]) if best else "-",
            best[0].removeprefix("tf/") if best else "-",
            f"{best[1] / tvm:.2f}" if best and tvm else "-",
            gain("tvm/native-unfused", "tvm/native"),
            gain("tf/session-noopt", "tf/session"),
            gain("tf/session-no-onednn", "tf/session"),
        )
    return t


def layers_tables(doc: ResultsDoc) -> list[Table]:
    """Per layer, side by side: TVM's functions in context (as they ran in the whole cut), alone
    warm and alone cold, what the surrounding cut cost them (in context minus alone), and TF's
    ops in the graph; then each cut's decomposition of both frameworks' wholes."""
    out = []
    for e in doc.layers:
        context = any("tvm_alone_s" in r for r in e["rows"])
        if not context:  # a results file from before the in-context times: functions alone
            out.append(_layers_table_alone(e))
            continue
        t = table(
            f"per layer: {e['workload']} b{e['batch']} t{e['threads']} (in context, as it ran "
            "in the whole cut; alone: by itself, warm (TVM also cold); cost: what the cut costs "
            "the layer, in context over alone)",
            ("layer", "TVM", "alone", "cold", "cost", "TF", "alone", "cost", "TF/TVM", "TF ops"),
            wrap=("layer", "TF ops"),
        )
        for r in e["rows"]:
            tvm, tf, alone = r["tvm_s"], r["tf_s"], r.get("tvm_alone_s")
            tf_alone = r.get("tf_alone_s")
            ratio = f"{tf / tvm:.2f}" if tvm and tf else "-"
            if r.get("flops_mismatch"):
                ratio = "FLOPs differ"
            ops = sorted({op.split(":", 1)[1] for op in r["tf_ops"]} - {"", "Const"})
            t.add_row(
                r["layer"],
                fmt_time(tvm) if r["tvm_funcs"] else "-",
                fmt_time(alone),
                fmt_time(r.get("tvm_cold_s")),
                _cost(tvm, alone),
                fmt_time(tf) if r["tf_ops"] else "-",
                fmt_time(tf_alone),
                _cost(tf, tf_alone),
                ratio,
                ", ".join(ops),
            )
        out.append(t)
        out.append(decomposition_table(e))
    return out


def _cost(context: float | None, alone: float | None) -> str:
    """What the surrounding cut costs a layer: in context over alone, less one."""
    return f"{(context - alone) / alone:+.0%}" if context and alone else "-"


def _layers_table_alone(e: dict[str, Any]) -> Table:
    t = table(
        f"per layer: {e['workload']} b{e['batch']} t{e['threads']}: TVM sum "
        f"{fmt_time(e['tvm_sum_s'])} vs whole {fmt_time(e['tvm_whole_s'])} "
        f"({e['tvm_sum_vs_whole']:.1%}); TF sum {fmt_time(e['tf_sum_s'])} vs whole "
        f"{fmt_time(e['tf_whole_s'])} ({e['tf_sum_vs_whole']:.1%}) (TVM's functions alone)",
        ("layer", "TVM", "TF", "TF/TVM", "TF ops"),
        wrap=("layer", "TF ops"),
    )
    for r in e["rows"]:
        ratio = f"{r['tf_s'] / r['tvm_s']:.2f}" if r["tvm_s"] and r["tf_s"] else "-"
        if r.get("flops_mismatch"):
            ratio = "FLOPs differ"
        ops = sorted({op.split(":", 1)[1] for op in r["tf_ops"]} - {"", "Const"})
        t.add_row(r["layer"], fmt_time(r["tvm_s"]), fmt_time(r["tf_s"]), ratio, ", ".join(ops))
    return t


def decomposition_table(e: dict[str, Any]) -> Table:
    """Where one cut's whole goes, per framework: its layers' kernels in context, its glue, and
    what the measured whole leaves unaccounted; the largest glue items named."""
    t = table(
        f"where the time goes: {e['workload']} b{e['batch']} t{e['threads']} (whole: plain "
        "runs; kernels + glue: instrumented runs; unaccounted: whole - kernels - glue)",
        ("framework", "whole", "kernels", "glue", "unaccounted", "largest glue"),
        wrap=("largest glue",),
    )
    for fw in BACKENDS:
        d = cut_decomposition(e, fw)
        if d is None:
            continue
        w = d["whole_s"]
        top = [g for g in d["glue"] if g["s"] > 0][:3]
        t.add_row(
            fw,
            fmt_time(w),
            f"{fmt_time(d['kernels_s'])} {d['kernels_s'] / w:.1%}" if w else "-",
            f"{fmt_time(d['glue_s'])} {d['glue_s'] / w:.1%}" if w else "-",
            f"{d['unaccounted_s'] / w:+.1%}" if w else "-",
            "; ".join(f"{g['what']} {fmt_time(g['s'])}" for g in top),
        )
    notes = []
    if e.get("tvm_clock_cost") is not None:
        notes.append(
            f"TVM's clock stamps ({e.get('tvm_vm_calls', '?')} VM calls, 2 each): instrumented "
            f"runs {e['tvm_clock_cost']:+.2%} against the plain run beside each"
        )
    if e.get("tf_trace_cost") is not None:
        notes.append(
            f"TF's trace: traced runs {e['tf_trace_cost']:+.2%} against the plain run beside each"
        )
    elif e.get("tf_traced_whole_s") and e.get("tf_whole_s"):
        notes.append(
            f"TF's trace: traced runs {e['tf_traced_whole_s'] / e['tf_whole_s'] - 1:+.2%} "
            "against plain ones"
        )
    if notes:
        t.caption = "; ".join(notes)
    return t


def prediction_table(doc: ResultsDoc) -> Table:
    t = table(
        "the model's conv time predicted from the single convs (count x time)",
        (
            "workload",
            "batch",
            "thr",
            "conv path",
            "predicted",
            "model path",
            "measured",
            "outside convs",
        ),
    )
    for p in doc.conv_prediction or []:
        t.add_row(
            p["workload"],
            str(p["batch"]),
            str(p["threads"]),
            p["conv_path"],
            fmt_time(p["predicted_conv_s"]),
            p["model_path"],
            fmt_time(p["measured_s"]),
            f"{p['outside_convs_share']:+.1%}",
        )
    return t


def print_model_report(doc: ResultsDoc, console: Console) -> None:
    if set(doc.kinds().values()) <= {"conv"}:
        return
    console.print(model_table(doc))
    if doc.extra.get("model_algorithms"):
        console.print(model_algorithm_table(doc))
    for t in layers_tables(doc):
        console.print(t)
    if doc.conv_prediction:
        console.print(prediction_table(doc))


def compare_table(rows: list[dict[str, Any]], only_a: int, only_b: int) -> Table:
    t = table(
        f"new / old per cell (Welch's t on per-process medians); cells only in old: {only_a}, "
        f"only in new: {only_b}",
        (
            "workload",
            "batch",
            "thr",
            "backend/path",
            "old",
            "new",
            "new/old",
            "p",
            "verdict",
        ),
        wrap=("workload", "verdict"),
    )
    for r in rows:
        style = {"slower": "red", "faster": "green"}.get(r["verdict"])
        p = f"{r['p_value']:.3f}" if r["p_value"] is not None else "-"
        verdict = r["verdict"] + (" (unstable)" if r["unstable"] else "")
        t.add_row(
            r["workload"],
            str(r["batch"]),
            str(r["threads"]),
            f"{r['backend']}/{r['path']}",
            fmt_time(r["old_median_s"]),
            fmt_time(r["new_median_s"]),
            f"{r['ratio']:.3f}",
            p,
            verdict,
            style=style,
        )
    return t
