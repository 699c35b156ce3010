"""Plots of a results document (matplotlib's Agg backend: written to files, no display needed).

Each plot is a function from the document to named figures; one that lacks its data raises
`NoData` saying what is missing, so `convbench plot` writes the others and says why it skipped
that one:

- `ladder`: per workload and thread count, each path as a stacked bar: the kernel, the native
  dispatch around it and what the path adds over native, TVM's and TF's bars side by side;
- `scaling`: speedup against threads per path, with the ideal line; oversubscribed points marked;
- `peak`: each conv's TVM and oneDNN GFLOP/s against the measured fp32 roof per thread count;
- `layers`: TVM against TF per layer, one figure per model cut and thread count;
- `decomposition`: each cut's whole split into its layers' kernels in context, glue and what
  stays unaccounted, per thread count and framework;
- `partsearch`: the research log's plot, time per model prefix, with each framework's layers'
  kernels in context beside its whole and, below, the framework's share of each prefix.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..paths import BACKENDS
from ..results.analysis import by_cell
from ..results.decomposition import cut_decomposition
from ..results.document import ResultsDoc

__all__ = [
    "PLOTS",
    "NoData",
    "decomposition_figures",
    "ladder_figures",
    "layers_figures",
    "partsearch_figures",
    "partsearch_plot",
    "peak_figures",
    "png_base64",
    "scaling_figures",
    "write_plots",
]

Figures = list[tuple[str, Any]]  # (file stem, matplotlib Figure)

COLORS = {"kernel": "#4c72b0", "dispatch": "#dd8452", "added": "#55a868"}
BACKEND_COLORS = {"tvm": "#4c72b0", "tf": "#c44e52"}


MAX_BARS = 60  # a figure's rows, however many cuts a results file holds


class NoData(ValueError):
    """The results hold nothing this plot draws."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _machine(doc: ResultsDoc) -> str:
    return (doc.header.get("machine") or {}).get("cpu_model", "")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _grid(plt: Any, n: int, cols: int, width: float, height: float) -> tuple[Any, list[Any]]:
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


# --- the ladder ---------------------------------------------------------------------------------
def ladder_figures(doc: ResultsDoc) -> Figures:
    """One panel per (workload, batch, threads): a horizontal stacked bar per path."""
    if not doc.overheads:
        raise NoData("no ladder: the results have no native time (tvm/native or tf/native)")
    plt = _pyplot()
    cells: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for e in doc.overheads:
        cells.setdefault((e["workload"], e["batch"], e["threads"]), []).append(e)
    fig, axes = _grid(plt, len(cells), 2, 7.5, 3.6)
    for ax, ((name, batch, threads), entries) in zip(axes, cells.items(), strict=True):
        bars: list[
            tuple[str, float, float, float, float]
        ] = []  # label, kernel, dispatch, whole, added
        for e in sorted(entries, key=lambda e: e["backend"] != "tvm"):
            if e.get("kernel"):
                base = (max(e["kernel"]["us"], 0.0), max(e["native_dispatch"]["us"], 0.0), 0.0)
            else:  # no kernel time for this backend: native is drawn whole
                base = (0.0, 0.0, e["native_us"])
            bars.append((f"{e['backend']}/native", *base, 0.0))
            for path, v in e["python_overhead"].items():
                if path == "evaluator":
                    continue  # TVM's own timer: a reference for native, not a framework path
                star = " *" if v["us"] < 0 else ""
                bars.append((f"{e['backend']}/{path}{star}", *base, max(v["us"], 0.0)))
        y = list(range(len(bars)))[::-1]
        left = [0.0] * len(bars)
        segments = (
            ("kernel", COLORS["kernel"]),
            ("native dispatch", COLORS["dispatch"]),
            ("native, not split", "#999999"),
            ("added by the path", COLORS["added"]),
        )
        for i, (label, color) in enumerate(segments, start=1):
            widths = [b[i] for b in bars]
            if any(widths):
                ax.barh(y, widths, left=left, color=color, label=label)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_yticks(y)
        ax.set_yticklabels([b[0] for b in bars], fontsize=8)
        ax.set_xlabel("median time per call (us)")
        ax.set_title(f"{name}  batch {batch}  {threads} thread(s)", fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
    handles = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(
        f"kernel or framework? where each path's time goes ({_machine(doc)})\n"
        "TVM's kernel: native minus the harness's per-call floor; TF's: oneDNN's profile. "
        "* a path faster than native",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return [("ladder", fig)]


# --- thread scaling -----------------------------------------------------------------------------
def scaling_figures(doc: ResultsDoc) -> Figures:
    """Speedup over the fewest threads measured, per path, one panel per workload and batch."""
    series: dict[tuple[str, int], dict[str, dict[int, Any]]] = {}
    for r in doc.records:
        series.setdefault((r.workload, r.batch), {}).setdefault(r.id, {})[r.threads] = r
    panels = {
        k: {p: pts for p, pts in paths.items() if len(pts) >= 2} for k, paths in series.items()
    }
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        raise NoData("no thread scaling: every cell was measured at one thread count only")
    plt = _pyplot()
    fig, axes = _grid(plt, len(panels), 2, 6.5, 4.2)
    palette = plt.get_cmap("tab20")
    for ax, ((name, batch), paths) in zip(axes, panels.items(), strict=True):
        measured: set[int] = set()
        for i, (path, pts) in enumerate(sorted(paths.items())):
            ts = sorted(pts)
            base = pts[ts[0]].median_s
            speedup = [base / pts[t].median_s for t in ts]
            ax.plot(
                ts,
                speedup,
                "-o" if path.startswith("tvm/") else "--^",
                color=palette(i % 20),
                label=path,
                markersize=4,
            )
            over = [(t, s) for t, s in zip(ts, speedup, strict=True) if pts[t].oversubscribed]
            if over:
                ax.scatter(
                    *zip(*over, strict=True), s=90, facecolors="none", edgecolors="red", zorder=3
                )
            measured.update(ts)
        ticks = sorted(measured)
        ax.plot(ticks, [t / ticks[0] for t in ticks], ":", color="gray", label="ideal")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("threads")
        ax.set_ylabel("speedup over the fewest threads")
        ax.set_title(f"{name}  batch {batch}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(
        f"thread scaling (red rings: oversubscribed, more threads than CPUs) ({_machine(doc)})",
        fontsize=10,
    )
    fig.tight_layout()
    return [("scaling", fig)]


# --- kernel against peak ------------------------------------------------------------------------
def peak_figures(doc: ResultsDoc) -> Figures:
    """GFLOP/s of tvm/native and tf/kernel per conv and thread count, under the measured roof."""
    groups = []
    kinds = doc.kinds()
    for (name, batch, threads), m in by_cell(doc.records).items():
        if kinds.get(name, "conv") != "conv":
            continue
        tvm, tf = m.get("tvm/native"), m.get("tf/kernel")
        if (tvm and tvm.gflops) or (tf and tf.gflops):
            groups.append((name, batch, threads, tvm, tf))
    if not groups:
        raise NoData("no kernel rates: the results have no conv with tvm/native or tf/kernel")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) + 2), 5))
    xs = list(range(len(groups)))
    w = 0.38
    for dx, idx, label in ((-w / 2, 3, "TVM (tvm/native)"), (w / 2, 4, "oneDNN (tf/kernel)")):
        vals = [(g[idx].gflops or 0.0) if g[idx] else 0.0 for g in groups]
        color = BACKEND_COLORS["tvm" if idx == 3 else "tf"]
        ax.bar([x + dx for x in xs], vals, w, label=label, color=color)
    roof_labelled = False
    for x, (_, _, threads, *_) in zip(xs, groups, strict=True):
        peak = doc.peak_gflops(threads)
        if peak:
            ax.hlines(
                peak,
                x - 0.45,
                x + 0.45,
                colors="black",
                linestyles="--",
                label=None if roof_labelled else "measured fp32 peak",
            )
            roof_labelled = True
    ax.set_xticks(xs)
    ax.set_xticklabels(
        [f"{n}\nb{b} t{t}" for n, b, t, *_ in groups], rotation=30, ha="right", fontsize=8
    )
    ax.set_ylabel("GFLOP/s (nominal FLOPs over the median)")
    ax.set_title(f"kernel against peak ({_machine(doc)})", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return [("peak", fig)]


# --- per layer ----------------------------------------------------------------------------------
def layers_figures(doc: ResultsDoc) -> Figures:
    """TVM's fused function against TF's ops, per layer, one figure per cut and thread count."""
    if not doc.layers:
        raise NoData("no per-layer tables: the results have no model cut (or ran --no-layers)")
    plt = _pyplot()
    out = []
    for e in doc.layers:
        rows = e["rows"]
        fig, ax = plt.subplots(figsize=(9, max(3.0, 0.28 * len(rows) + 1.5)))
        y = list(range(len(rows)))[::-1]
        context = any("tvm_alone_s" in r for r in rows)
        bars = [("TVM in context" if context else "TVM alone", "tvm_s", BACKEND_COLORS["tvm"])]
        if context:
            bars.append(("TVM alone (warm)", "tvm_alone_s", "#9db4d8"))
        bars.append(("TF in the graph", "tf_s", BACKEND_COLORS["tf"]))
        h = 0.8 / len(bars)
        for i, (label, key, color) in enumerate(bars):
            ax.barh(
                [v + 0.4 - h * (i + 0.5) for v in y],
                [(r.get(key) or 0.0) * 1e6 for r in rows],
                h,
                label=label,
                color=color,
            )
        ax.set_yticks(y)
        ax.set_yticklabels([r["layer"] for r in rows], fontsize=7)
        ax.set_xlabel("median time per call (us)")
        ax.set_title(
            f"per layer: {e['workload']}  batch {e['batch']}  {e['threads']} thread(s)\n"
            f"sum of layers / whole: TVM {e['tvm_sum_vs_whole']:.0%}, "
            f"TF {e['tf_sum_vs_whole']:.0%}",
            fontsize=10,
        )
        ax.grid(True, axis="x", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.append((f"layers-{_slug(e['workload'])}-b{e['batch']}-t{e['threads']}", fig))
    return out


def decomposition_figures(doc: ResultsDoc) -> Figures:
    """Where each cut's whole goes, per thread count and framework: its layers' kernels in
    context, its glue and what stays unaccounted, as shares of the whole (bars of one length
    read alike for a 1 ms block and a 100 ms model), each bar labelled with its whole."""
    rows = []
    for e in doc.layers:
        for fw in BACKENDS:
            d = cut_decomposition(e, fw)
            if d is not None and d["whole_s"] > 0:
                rows.append((f"{e['workload']} b{e['batch']} t{e['threads']} {fw}", d))
    if not rows:
        raise NoData(
            "no decomposition: no per-layer table with times in context (a model cut run "
            "without --no-layers, by this version)"
        )
    plt = _pyplot()
    shown = f" (the first {MAX_BARS} of {len(rows)})" if len(rows) > MAX_BARS else ""
    rows = rows[:MAX_BARS]
    fig, ax = plt.subplots(figsize=(10, 2.0 + 0.32 * len(rows)))
    y = list(range(len(rows)))[::-1]
    kernels = [100 * d["kernels_s"] / d["whole_s"] for _, d in rows]
    glue = [100 * d["glue_s"] / d["whole_s"] for _, d in rows]
    rest = [max(100 * d["unaccounted_s"] / d["whole_s"], 0.0) for _, d in rows]
    ax.barh(y, kernels, color=COLORS["kernel"], label="layers' kernels in context")
    ax.barh(y, glue, left=kernels, color=COLORS["dispatch"], label="glue (calls and gaps)")
    ax.barh(
        y,
        rest,
        left=[a + b for a, b in zip(kernels, glue, strict=True)],
        color="#bbbbbb",
        label="unaccounted",
    )
    for v, (_, d), k, g in zip(y, rows, kernels, glue, strict=True):
        ax.text(max(k + g, 100) + 1, v, _seconds(d["whole_s"]), va="center", fontsize=7)
    ax.axvline(100, color="black", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([name for name, _ in rows], fontsize=7)
    ax.set_xlim(0, 125)
    ax.set_xlabel("share of the measured whole (%)")
    ax.set_title(f"where each cut's time goes{shown} ({_machine(doc)})", fontsize=10)
    height = fig.get_figheight()
    fig.legend(fontsize=7, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.35 / height, 1, 1))  # the legend's line below the axis
    return [("decomposition", fig)]


def _seconds(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.0f} us"


# --- partsearch ---------------------------------------------------------------------------------
def partsearch_figures(doc: ResultsDoc) -> Figures:
    """Median time per prefix; x = the partsearch nodes in model order, as in the log."""
    if not any(w.get("kind") == "prefix" for w in doc.workloads):
        raise NoData("no partsearch: the results have no model prefix (convbench partsearch)")
    prefixes = [w for w in doc.workloads if w.get("kind") in ("prefix", "model")]
    plt = _pyplot()
    order = {w["name"]: i for i, w in enumerate(prefixes)}
    lines: dict[tuple[str, int, int], dict[int, float]] = {}
    for r in doc.records:
        if r.workload in order:
            lines.setdefault((r.id, r.threads, r.batch), {})[order[r.workload]] = r.median_s
    if not lines:
        raise NoData("no partsearch: no model prefix was measured")
    # each prefix's layers' kernels in context, per framework and thread count (its tables)
    kernels: dict[tuple[str, int, int], dict[int, float]] = {}
    shares: dict[tuple[str, int, int], dict[int, float]] = {}
    for e in doc.layers:
        if e["workload"] not in order:
            continue
        for fw in BACKENDS:
            d = cut_decomposition(e, fw)
            if d is None or d["whole_s"] <= 0:
                continue
            key = (fw, e["threads"], e["batch"])
            kernels.setdefault(key, {})[order[e["workload"]]] = d["kernels_s"]
            shares.setdefault(key, {})[order[e["workload"]]] = 1 - d["kernels_s"] / d["whole_s"]
    if shares:
        fig, (ax, low) = plt.subplots(2, 1, figsize=(10, 9), height_ratios=(2, 1), sharex=True)
    else:
        fig, ax = plt.subplots(figsize=(10, 6))
    styles = ["-", "--", ":", "-."]
    threads = sorted({k[1] for k in lines})
    paths = sorted({k[0] for k in lines})
    palette = plt.get_cmap("tab10")
    for (path, t, b), pts in sorted(lines.items()):
        xs = sorted(pts)
        ax.plot(
            xs,
            [pts[x] for x in xs],
            styles[threads.index(t) % len(styles)],
            marker="o" if path.startswith("tvm/") else "^",
            color=palette(paths.index(path) % 10),
            label=f"{path} t{t}" + (f" b{b}" if b != 1 else ""),
        )
    for (fw, t, b), pts in sorted(kernels.items()):
        xs = sorted(pts)
        ax.plot(
            xs,
            [pts[x] for x in xs],
            styles[threads.index(t) % len(styles)] if t in threads else ":",
            color=BACKEND_COLORS[fw],
            alpha=0.6,
            lw=3,
            label=f"{fw} layers' kernels in context t{t}" + (f" b{b}" if b != 1 else ""),
        )
    bottom = _share_panel(low, shares) if shares else ax
    bottom.set_xticks(range(len(prefixes)))
    bottom.set_xticklabels(
        [w.get("to") or w["name"] for w in prefixes], rotation=20, ha="right", fontsize=8
    )
    ax.set_yscale("log")
    ax.set_ylabel("median time per run (s)")
    bottom.set_xlabel("model prefix: input -> node")
    ax.set_title(f"partsearch: {prefixes[0].get('model', '')} ({_machine(doc)})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return [("partsearch", fig)]


def _share_panel(low: Any, shares: dict[tuple[str, int, int], dict[int, float]]) -> Any:
    """partsearch's lower panel: per prefix, each framework's and thread count's share of the
    whole that is not its layers' kernels in context."""
    groups = sorted(shares)
    width = 0.8 / len(groups)
    for i, key in enumerate(groups):
        fw, t, b = key
        xs = sorted(shares[key])
        low.bar(
            [x - 0.4 + width * (i + 0.5) for x in xs],
            [100 * shares[key][x] for x in xs],
            width,
            color=BACKEND_COLORS[fw],
            alpha=0.5 + 0.5 * (i % 2),
            label=f"{fw} t{t}" + (f" b{b}" if b != 1 else ""),
        )
    low.set_ylabel("framework share of the whole (%)\n(whole - layers' kernels in context)")
    low.grid(True, axis="y", alpha=0.3)
    low.legend(fontsize=7, ncol=4)
    return low


def partsearch_plot(doc: ResultsDoc, png: Path) -> None:
    """partsearch's PNG (ValueError when no prefix was measured)."""
    ((_, fig),) = partsearch_figures(doc)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    _pyplot().close(fig)


PLOTS: dict[str, Callable[[ResultsDoc], Figures]] = {
    "ladder": ladder_figures,
    "scaling": scaling_figures,
    "peak": peak_figures,
    "layers": layers_figures,
    "decomposition": decomposition_figures,
    "partsearch": partsearch_figures,
}


def write_plots(
    doc: ResultsDoc, out_dir: Path, formats: Sequence[str] = ("png", "svg")
) -> tuple[list[Path], list[str]]:
    """Every plot the results have data for, in each format: (files written, why others were
    skipped)."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: list[str] = []
    for make in PLOTS.values():
        try:
            figures = make(doc)
        except NoData as e:
            skipped.append(str(e))
            continue
        for stem, fig in figures:
            for fmt in formats:
                path = out_dir / f"{stem}.{fmt}"
                fig.savefig(path, dpi=120)
                written.append(path)
            plt.close(fig)
    return written, skipped


def png_base64(fig: Any) -> str:
    """A figure as a base64 PNG, for a data: URL."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()
