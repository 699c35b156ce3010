"""What a run shows while it runs, behind one interface: the runner reports events to a
`Reporter` and never formats anything; `ConsoleReporter` prints them under a progress bar.
Warnings are not printed as they come: the closing report groups them by kind."""

from __future__ import annotations

from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..paths import BACKENDS
from ..results.decomposition import cut_decomposition
from ..results.record import Record
from .format import fmt_time
from .tables import COLUMNS, record_row

__all__ = ["ConsoleReporter", "NullReporter", "Reporter"]


class Reporter(Protocol):
    """The events of a run, in the order they happen."""

    def start(self, cells: int, workloads: int) -> None: ...
    def building(self, workload: str, batch: int, threads: Any) -> None: ...
    def kernel(self, entry: dict[str, Any]) -> None: ...
    def peak(self, threads: int, peak: dict[str, Any]) -> None: ...
    def overhead(self, floor: dict[str, Any]) -> None: ...
    def check(self, result: dict[str, Any]) -> None: ...
    def record(self, record: Record) -> None: ...
    def layers(self, entry: dict[str, Any]) -> None: ...
    def error(self, entry: dict[str, Any]) -> None: ...
    def warning(self, message: str) -> None: ...
    def note(self, message: str) -> None: ...
    def more(self, cells: int) -> None: ...
    def stop(self) -> None: ...


class NullReporter:
    """Reports nothing (a run driven from code)."""

    def start(self, cells: int, workloads: int) -> None:
        pass

    def building(self, workload: str, batch: int, threads: Any) -> None:
        pass

    def kernel(self, entry: dict[str, Any]) -> None:
        pass

    def peak(self, threads: int, peak: dict[str, Any]) -> None:
        pass

    def overhead(self, floor: dict[str, Any]) -> None:
        pass

    def check(self, result: dict[str, Any]) -> None:
        pass

    def record(self, record: Record) -> None:
        pass

    def layers(self, entry: dict[str, Any]) -> None:
        pass

    def error(self, entry: dict[str, Any]) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def more(self, cells: int) -> None:
        pass

    def stop(self) -> None:
        pass


class ConsoleReporter:
    """Prints each result as it arrives, under a progress bar."""

    # Left-justified to these widths, one space apart; the numbers of a row fit 100 columns.
    WIDTHS = (14, 1, 3, 21, 10, 17, 6, 7, 5, 4, 0)

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: Any = None
        self.header_pending = True
        self.warnings = 0

    def _print(self, text: str, style: str | None = None) -> None:
        # rows and lines carry names from outside convbench: text, never markup
        self.console.print(text, style=style, highlight=False, markup=False)

    def _line(self, cells: list[str] | tuple[str, ...], style: str = "") -> None:
        text = " ".join(c.ljust(w) if w else c for c, w in zip(cells, self.WIDTHS, strict=True))
        self._print(text.rstrip(), style or None)

    def _describe(self, text: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, description=escape(text))

    def _advance(self) -> None:
        if self.task is not None:
            self.progress.advance(self.task)

    def start(self, cells: int, workloads: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("building kernels", total=cells)

    def building(self, workload: str, batch: int, threads: Any) -> None:
        self._describe(f"building {workload} b{batch}")

    def kernel(self, entry: dict[str, Any]) -> None:
        how = "cached" if entry["cached"] else f"built in {entry['build_s']:.1f} s"
        self._print(f"kernel {entry['workload']} b{entry['batch']}: {how} ({entry['schedule']})")

    def peak(self, threads: int, peak: dict[str, Any]) -> None:
        how = "cached" if peak["cached"] else "measured"
        self._print(
            f"fp32 peak at {threads} thread(s): {peak['gflops']:.1f} GFLOP/s "
            f"({peak['isa']}, CPUs {peak['cpus']}, {how})"
        )

    def overhead(self, floor: dict[str, Any]) -> None:
        self._print(
            f"harness overhead: {fmt_time(floor['per_call_s'])} per call (empty kernel, "
            "native loop)"
        )
        self._describe("checking against TF")

    def check(self, result: dict[str, Any]) -> None:
        ok = result["ok"]
        self._print(
            f"check {result['workload']} b{result['batch']}"
            + (f" {result['algorithm']}" if result.get("algorithm", "direct") != "direct" else "")
            + f": {'ok' if ok else 'FAIL'}  "
            f"max_abs_err={result['max_abs_err']:.3g}  max_rel_err={result['max_rel_err']:.3g} "
            f"(rtol {result['rtol']:g})",
            None if ok else "bold red",
        )
        self._describe("measuring")
        self.header_pending = True

    def note(self, message: str) -> None:
        """A decision of the run (an algorithm chosen), on its own line."""
        self._print(message)

    def more(self, cells: int) -> None:
        """`cells` more to measure than the run started with (a pass over unstable cells)."""
        if self.task is not None:
            total = self.progress.tasks[self.task].total or 0
            self.progress.update(self.task, total=total + cells)

    def record(self, record: Record) -> None:
        if self.header_pending:
            self._line(COLUMNS, style="bold")
            self.header_pending = False
        flagged = record.unstable or record.oversubscribed
        self._line(record_row(record), style="yellow" if flagged else "")
        self._advance()

    def layers(self, entry: dict[str, Any]) -> None:
        parts = []
        for fw in BACKENDS:
            d = cut_decomposition(entry, fw)
            if d is not None and d["whole_s"]:
                w = d["whole_s"]
                parts.append(
                    f"{fw} kernels {d['kernels_s'] / w:.1%} + glue {d['glue_s'] / w:.1%} "
                    f"(unaccounted {d['unaccounted_s'] / w:+.1%})"
                )
        if not parts:  # no in-context figures
            parts = [
                f"sum of the parts / whole: TVM {entry['tvm_sum_vs_whole']:.1%}, "
                f"TF {entry['tf_sum_vs_whole']:.1%}"
            ]
        self._print(
            f"layers {entry['workload']} b{entry['batch']} t{entry['threads']}: " + "; ".join(parts)
        )

    def error(self, entry: dict[str, Any]) -> None:
        what = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("error", "stage"))
        self.console.print(
            f"[bold red]error[/] ({escape(entry['stage'])} {escape(what)}): "
            f"{escape(str(entry['error']))}",
            highlight=False,
        )
        if entry["stage"] == "measure":
            self._advance()

    def warning(self, message: str) -> None:
        self.warnings += 1
        self._describe(f"measuring ({self.warnings} warning(s), grouped at the end)")

    def stop(self) -> None:
        self.progress.stop()
