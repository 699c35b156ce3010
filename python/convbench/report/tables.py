"""Tables over a results document: printed at the end of a run, and by `convbench report FILE`.

Every figure here is a ratio or a difference of medians taken in the same run.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ..paths import RUNGS
from ..results.analysis import by_cell
from ..results.document import ResultsDoc
from ..results.record import Record
from .format import fmt_time, table

__all__ = [
    "COLUMNS",
    "agreement_table",
    "compare_table",
    "kernel_table",
    "ladder_table",
    "layers_tables",
    "model_table",
    "paths_table",
    "prediction_table",
    "print_report",
    "record_row",
]

# The live display's row of one record.
COLUMNS = (
    "workload",
    "batch",
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
    if r.pinned is False:
        flags.append("unpinned")
    return [
        r.workload,
        str(r.batch),
        str(r.threads),
        r.id,
        fmt_time(r.median_s),
        f"{fmt_time(r.p10_s)}..{fmt_time(r.p90_s)}",
        f"{r.cv * 100:.1f}%",
        f"{r.gflops:.1f}" if r.gflops else "-",
        f"{r.pct_peak:.0f}%" if r.pct_peak is not None else "-",
        f"{r.parallelism:.2f}" if r.parallelism is not None else "-",
        ",".join(flags),
    ]


def paths_table(doc: ResultsDoc) -> Table:
    """Median per workload, batch and thread count, one column per path."""
    present = {r.id for r in doc.records}
    paths = [r.id for r in RUNGS if r.id in present]
    paths += sorted(present - set(paths))
    t = table("median time per call, every path", ("workload", "batch", "thr", *paths))
    for (name, batch, threads), m in by_cell(doc.records).items():
        t.add_row(
            name,
            str(batch),
            str(threads),
            *[fmt_time(m[p].median_s) if p in m else "-" for p in paths],
        )
    return t


def kernel_table(doc: ResultsDoc) -> Table:
    """TVM's kernel against oneDNN's inside TF: the kernel question without any framework."""
    t = table(
        "kernel against kernel: TVM native vs TF's oneDNN primitive (ratio > 1: TVM faster)",
        (
            "workload",
            "batch",
            "thr",
            "tvm/native",
            "GFLOP/s",
            "%peak",
            "tvm schedule",
            "tf/kernel",
            "GFLOP/s",
            "%peak",
            "kernel ÷ native",
            "tf/eager ÷ tvm/native",
        ),
    )

    def pct(r: Record) -> str:
        return f"{r.pct_peak:.0f}%" if r.pct_peak is not None else "-"

    def gflops(r: Record) -> str:
        return f"{r.gflops:.0f}" if r.gflops is not None else "-"

    for (name, batch, threads), m in by_cell(doc.records).items():
        tvm, tf, eager = m.get("tvm/native"), m.get("tf/kernel"), m.get("tf/eager")
        if tvm is None and tf is None:
            continue
        if tf is not None and tf.inconsistent:
            tf = None  # a kernel time that contradicts the call containing it: not a result
        ratio = f"{tf.median_s / tvm.median_s:.2f}" if tvm and tf else "-"
        eratio = f"{eager.median_s / tvm.median_s:.2f}" if tvm and eager else "-"
        t.add_row(
            name,
            str(batch),
            str(threads),
            fmt_time(tvm.median_s) if tvm else "-",
            gflops(tvm) if tvm else "-",
            pct(tvm) if tvm else "-",
            (tvm.schedule or "-").split(":")[0] if tvm else "-",
            fmt_time(tf.median_s) if tf else "-",
            gflops(tf) if tf else "-",
            pct(tf) if tf else "-",
            ratio,
            eratio,
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
            "python paths: added over the native rung they wrap",
            "left out",
        ),
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
        "cross-checks: two measurements of the same call",
        (
            "workload",
            "batch",
            "thr",
            "tvm/native",
            "tvm/evaluator",
            "differ",
            "tf/kernel",
            "ONEDNN_VERBOSE median",
            "differ",
        ),
    )
    for (name, batch, threads), m in by_cell(doc.records).items():
        nat, ev, ker = m.get("tvm/native"), m.get("tvm/evaluator"), m.get("tf/kernel")
        d1 = f"{(nat.median_s - ev.median_s) / ev.median_s:+.1%}" if nat and ev else "-"
        raw = ker.verbose_median_s if ker else None
        d2 = f"{(ker.median_s - raw) / raw:+.1%}" if ker and raw else "-"
        t.add_row(
            name,
            str(batch),
            str(threads),
            fmt_time(nat.median_s) if nat else "-",
            fmt_time(ev.median_s) if ev else "-",
            d1,
            fmt_time(ker.median_s) if ker else "-",
            fmt_time(raw),
            d2,
        )
    return t


def print_report(doc: ResultsDoc, console: Console) -> None:
    floor = doc.harness_overhead or {}
    if floor.get("paths"):
        console.print(
            "per-call floor on an empty TVM kernel: "
            + ", ".join(f"{k} {fmt_time(v['per_call_s'])}" for k, v in floor["paths"].items()),
            highlight=False,
        )
    if not doc.records:
        return
    console.print(paths_table(doc))
    console.print(kernel_table(doc))
    if doc.overheads:
        console.print(ladder_table(doc))
    console.print(agreement_table(doc))
    print_model_report(doc, console)


def model_table(doc: ResultsDoc) -> Table:
    """Model cuts: TVM native against TF's fastest path, and what fusion and TF's graph
    optimisations are worth, all medians of this run."""
    t = table(
        "model cuts: TVM native vs TF's fastest path (ratio > 1: TVM faster)",
        (
            "workload",
            "kind",
            "batch",
            "thr",
            "tvm/native",
            "TF fastest",
            "ratio",
            "fusion gain",
            "grappler gain",
            "oneDNN gain",
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
            name,
            kinds[name],
            str(batch),
            str(threads),
            fmt_time(tvm),
            f"{fmt_time(best[1])} ({best[0]})" if best else "-",
            f"{best[1] / tvm:.2f}" if best and tvm else "-",
            gain("tvm/native-unfused", "tvm/native"),
            gain("tf/session-noopt", "tf/session"),
            gain("tf/session-no-onednn", "tf/session"),
        )
    return t


def layers_tables(doc: ResultsDoc) -> list[Table]:
    """Per layer, side by side: TVM's fused function and TF's ops, with the sums against the
    measured whole of each."""
    out = []
    for e in doc.layers:
        t = table(
            f"per layer: {e['workload']} b{e['batch']} t{e['threads']}: TVM sum "
            f"{fmt_time(e['tvm_sum_s'])} vs whole {fmt_time(e['tvm_whole_s'])} "
            f"({e['tvm_sum_vs_whole']:.1%}); TF sum {fmt_time(e['tf_sum_s'])} vs whole "
            f"{fmt_time(e['tf_whole_s'])} ({e['tf_sum_vs_whole']:.1%})",
            ("layer", "TVM", "TF", "TF/TVM", "TF ops"),
        )
        for r in e["rows"]:
            ratio = f"{r['tf_s'] / r['tvm_s']:.2f}" if r["tvm_s"] and r["tf_s"] else "-"
            if r.get("flops_mismatch"):
                ratio = "FLOPs differ"
            ops = sorted({op.split(":", 1)[1] for op in r["tf_ops"]} - {"", "Const"})
            t.add_row(r["layer"], fmt_time(r["tvm_s"]), fmt_time(r["tf_s"]), ratio, ",".join(ops))
        out.append(t)
    return out


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
