"""Tables over a results document: printed at the end of a run, and by `convbench report FILE`.

Every figure here is a ratio or a difference of medians taken in the same run.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .overheads import by_cell

__all__ = ["fmt_time", "kernel_table", "ladder_table", "paths_table", "print_report", "table"]


def table(title: str, columns: tuple[str, ...] | list[str]) -> Table:
    """A rich table with these columns, none of them wrapped (numbers must stay on one line)."""
    t = Table(title=title)
    for col in columns:
        t.add_column(col, no_wrap=True)
    return t


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.2f} us"
    return f"{s * 1e9:.1f} ns"


def paths_table(doc: dict[str, Any]) -> Table:
    """Median per workload, batch and thread count, one column per path."""
    from .run import PATHS

    present = {f"{r['backend']}/{r['path']}" for r in doc["records"]}
    paths = [f"{b}/{p}" for b, p in PATHS if f"{b}/{p}" in present]
    paths += sorted(present - set(paths))
    t = table("median time per call, every path", ("workload", "batch", "thr", *paths))
    for (name, batch, threads), m in by_cell(doc["records"]).items():
        t.add_row(
            name,
            str(batch),
            str(threads),
            *[fmt_time(m[p]["median_s"]) if p in m else "-" for p in paths],
        )
    return t


def kernel_table(doc: dict[str, Any]) -> Table:
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

    def pct(r: dict[str, Any]) -> str:
        return f"{r['pct_peak']:.0f}%" if r.get("pct_peak") is not None else "-"

    for (name, batch, threads), m in by_cell(doc["records"]).items():
        tvm, tf, eager = m.get("tvm/native"), m.get("tf/kernel"), m.get("tf/eager")
        if tvm is None and tf is None:
            continue
        ratio = f"{tf['median_s'] / tvm['median_s']:.2f}" if tvm and tf else "-"
        eratio = f"{eager['median_s'] / tvm['median_s']:.2f}" if tvm and eager else "-"
        t.add_row(
            name,
            str(batch),
            str(threads),
            fmt_time(tvm["median_s"]) if tvm else "-",
            f"{tvm['gflops']:.0f}" if tvm else "-",
            pct(tvm) if tvm else "-",
            (tvm.get("schedule") or "-").split(":")[0] if tvm else "-",
            fmt_time(tf["median_s"]) if tf else "-",
            f"{tf['gflops']:.0f}" if tf else "-",
            pct(tf) if tf else "-",
            ratio,
            eratio,
        )
    return t


def ladder_table(doc: dict[str, Any]) -> Table:
    """Where the time goes: kernel, native dispatch, what each Python path adds over native."""
    t = table(
        "where the time goes (us, and share of that path's total)",
        (
            "workload",
            "batch",
            "thr",
            "backend",
            "kernel",
            "native dispatch",
            "python paths: added over native",
        ),
    )
    for e in doc.get("overheads", []):

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
        )
    return t


def agreement_table(doc: dict[str, Any]) -> Table:
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
    for (name, batch, threads), m in by_cell(doc["records"]).items():
        nat, ev, ker = m.get("tvm/native"), m.get("tvm/evaluator"), m.get("tf/kernel")
        d1 = f"{(nat['median_s'] - ev['median_s']) / ev['median_s']:+.1%}" if nat and ev else "-"
        raw = ker.get("verbose_median_s") if ker else None
        d2 = f"{(ker['median_s'] - raw) / raw:+.1%}" if ker and raw else "-"
        t.add_row(
            name,
            str(batch),
            str(threads),
            fmt_time(nat["median_s"]) if nat else "-",
            fmt_time(ev["median_s"]) if ev else "-",
            d1,
            fmt_time(ker["median_s"]) if ker else "-",
            fmt_time(raw),
            d2,
        )
    return t


def print_report(doc: dict[str, Any], console: Console) -> None:
    floor = doc.get("harness_overhead") or {}
    if floor.get("paths"):
        console.print(
            "per-call floor on an empty TVM kernel: "
            + ", ".join(f"{k} {fmt_time(v['per_call_s'])}" for k, v in floor["paths"].items()),
            highlight=False,
        )
    if not doc["records"]:
        return
    console.print(paths_table(doc))
    console.print(kernel_table(doc))
    if doc.get("overheads"):
        console.print(ladder_table(doc))
    console.print(agreement_table(doc))
    print_model_report(doc, console)


def model_table(doc: dict[str, Any]) -> Table:
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
    kinds = {w["name"]: w.get("kind", "conv") for w in doc["workloads"]}
    for (name, batch, threads), m in by_cell(doc["records"]).items():
        if kinds.get(name, "conv") == "conv":
            continue
        med = {p: r["median_s"] for p, r in m.items()}
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


def layers_tables(doc: dict[str, Any]) -> list[Table]:
    """Per layer, side by side: TVM's fused function and TF's ops, with the sums against the
    measured whole of each."""
    out = []
    for e in doc.get("layers", []):
        t = table(
            f"per layer: {e['workload']} b{e['batch']} t{e['threads']}: TVM sum "
            f"{fmt_time(e['tvm_sum_s'])} vs whole {fmt_time(e['tvm_whole_s'])} "
            f"({e['tvm_sum_vs_whole']:.1%}); TF sum {fmt_time(e['tf_sum_s'])} vs whole "
            f"{fmt_time(e['tf_whole_s'])} ({e['tf_sum_vs_whole']:.1%})",
            ("layer", "TVM", "TF", "TF/TVM", "TF ops"),
        )
        for r in e["rows"]:
            ratio = f"{r['tf_s'] / r['tvm_s']:.2f}" if r["tvm_s"] and r["tf_s"] else "-"
            ops = sorted({op.split(":", 1)[1] for op in r["tf_ops"]} - {"", "Const"})
            t.add_row(r["layer"], fmt_time(r["tvm_s"]), fmt_time(r["tf_s"]), ratio, ",".join(ops))
        out.append(t)
    return out


def prediction_table(doc: dict[str, Any]) -> Table:
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
    for p in doc.get("conv_prediction", []):
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


def print_model_report(doc: dict[str, Any], console: Console) -> None:
    kinds = {w.get("kind", "conv") for w in doc["workloads"]}
    if kinds <= {"conv"}:
        return
    console.print(model_table(doc))
    for t in layers_tables(doc):
        console.print(t)
    if doc.get("conv_prediction"):
        console.print(prediction_table(doc))
