"""A results document as one self-contained HTML file: the run's summary, every table and every
plot (base64 PNG in data: URLs), no script and no external URL, so it can be mailed or attached
to a pull request and read offline."""

from __future__ import annotations

import html
import io

from rich.console import Console

from ..results.document import ResultsDoc
from .format import WIDTH
from .plot import PLOTS, NoData, png_base64
from .tables import print_report

__all__ = ["html_report"]

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 75em; color: #222; }
pre { font-size: 12px; background: #f7f7f7; padding: 1em; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
td { padding: 0 1em 0 0; vertical-align: top; }
.skipped { color: #777; }
"""


def _summary(doc: ResultsDoc) -> str:
    h = doc.header
    machine = h.get("machine") or {}
    config = h.get("config") or {}
    rows = [
        ("convbench", h.get("convbench")),
        ("started", h.get("started_at")),
        ("finished", h.get("finished_at")),
        ("complete", h.get("complete")),
        (
            "CPU",
            f"{machine.get('cpu_model', '')} ({machine.get('llvm_cpu', '')}), "
            f"{machine.get('cores', '')} CPUs available",
        ),
        ("TVM target", h.get("tvm_target")),
        ("libraries", ", ".join(f"{k} {v}" for k, v in (h.get("libraries") or {}).items())),
        ("threads", config.get("threads")),
        ("samples", config.get("samples")),
        ("records", len(doc.records)),
        ("errors", len(doc.errors)),
        ("failed checks", sum(1 for c in doc.checks if not c.get("ok"))),
    ]
    cells = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
        if v is not None
    )
    return f"<table>{cells}</table>"


def html_report(doc: ResultsDoc, title: str = "convbench report") -> str:
    console = Console(width=WIDTH, record=True, file=io.StringIO(), color_system=None)
    print_report(doc, console, details=True)
    tables = html.escape(console.export_text())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Summary</h2>",
        _summary(doc),
        "<h2>Tables</h2>",
        f"<pre>{tables}</pre>",
        "<h2>Plots</h2>",
    ]
    for name, make in PLOTS.items():
        try:
            figures = make(doc)
        except NoData as e:
            parts.append(f'<p class="skipped">{html.escape(name)}: {html.escape(str(e))}</p>')
            continue
        for stem, fig in figures:
            parts.append(f"<h3>{html.escape(stem)}</h3>")
            parts.append(
                f'<img alt="{html.escape(stem)}" src="data:image/png;base64,{png_base64(fig)}">'
            )
    if doc.errors:
        parts.append("<h2>Errors</h2><ul>")
        parts += [f"<li>{html.escape(str(e))}</li>" for e in doc.errors]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
