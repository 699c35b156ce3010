"""Layer 5: the command line. One module per subcommand; what they share is in `common`."""

from __future__ import annotations

import sys

from .compare import compare_main
from .export_model import export_model_main
from .extract import extract_main
from .nodes import nodes_main
from .partsearch import partsearch_main
from .plot import plot_main
from .report import report_main
from .rpc import rpc_main
from .run import run_main
from .tune import tune_main

__all__ = ["main"]

SUBCOMMANDS = {
    "tune": tune_main,
    "report": report_main,
    "compare": compare_main,
    "partsearch": partsearch_main,
    "plot": plot_main,
    "nodes": nodes_main,
    "extract": extract_main,
    "export-model": export_model_main,
    "rpc": rpc_main,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return SUBCOMMANDS[argv[0]](argv[1:])
        return run_main(argv)
    except KeyboardInterrupt:  # a second Ctrl-C, after the run has saved what it measured
        print("convbench: interrupted", file=sys.stderr)
        return 130
