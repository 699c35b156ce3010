"""Plots of a results document (matplotlib, written to files; no display needed)."""

from __future__ import annotations

from pathlib import Path

from ..results.document import ResultsDoc

__all__ = ["partsearch_plot"]


def partsearch_plot(doc: ResultsDoc, png: Path) -> None:
    """Median time per prefix; x = the partsearch nodes in model order, as in the log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefixes = [w for w in doc.workloads if w.get("kind") in ("prefix", "model")]
    order = {w["name"]: i for i, w in enumerate(prefixes)}
    lines: dict[tuple[str, int, int], dict[int, float]] = {}
    for r in doc.records:
        if r.workload in order:
            lines.setdefault((r.id, r.threads, r.batch), {})[order[r.workload]] = r.median_s
    if not lines:
        raise ValueError("no prefix was measured: nothing to plot")
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
    ax.set_xticks(range(len(prefixes)))
    ax.set_xticklabels([w["to"] for w in prefixes], rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("median time per run (s)")
    ax.set_xlabel("model prefix: input -> node")
    cpu = doc.header.get("machine", {}).get("cpu_model", "")
    ax.set_title(f"partsearch: {prefixes[0].get('model', '')} ({cpu})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
