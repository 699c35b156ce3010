"""How numbers and tables look, everywhere convbench prints them.

Tables are drawn light (a rule under the header, two spaces between columns) so that they fit a
100-column terminal; numbers never wrap, names may (`wrap`): a long workload name folds onto a
second line instead of pushing a number out of the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

__all__ = ["WIDTH", "TextTable", "as_text", "fmt_range", "fmt_time", "split_columns", "table"]

WIDTH = 100  # every table fits this many columns
COLUMN_GAP = 2  # what a column costs beyond its text in `table`'s style
NAME_MIN = 12  # the narrowest a wrapping name column is folded to


class TextTable(Table):
    """A table whose title, caption and cells are text, never markup: they carry names from
    shapes files, model files, results files and other processes, and a name like `[/x]` is a
    name (rich would parse it as a closing tag and raise MarkupError)."""

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        super().add_row(*(as_text(r) for r in renderables), **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("title", "caption"):
            value = as_text(value)
        super().__setattr__(name, value)


def as_text(value: Any) -> Any:
    """A string as rich Text (printed as it is); anything else unchanged."""
    return Text(value) if isinstance(value, str) else value


def table(title: str, columns: Sequence[str], wrap: Sequence[str] = ("workload", "layer")) -> Table:
    """A rich table with these columns; those named in `wrap` may wrap (names), the others stay
    on one line (numbers). Title, caption and cells are text (TextTable)."""
    t = TextTable(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for col in columns:
        if col in wrap:
            t.add_column(col, overflow="fold")
        else:
            t.add_column(col, no_wrap=True)
    return t


def _width(header: str, cells: Sequence[str]) -> int:
    return max([len(header), *(len(c) for c in cells)]) + COLUMN_GAP


def split_columns(
    keys: Sequence[str],
    key_rows: Sequence[Sequence[str]],
    values: Sequence[str],
    value_rows: Sequence[Sequence[str]],
    width: int = WIDTH,
) -> list[list[int]]:
    """The value columns in groups, in order, each group fitting `width` beside the key columns
    (a wrapping first key column counted at most NAME_MIN wide)."""
    key_width = 0
    for i, k in enumerate(keys):
        w = _width(k, [r[i] for r in key_rows])
        key_width += min(w, NAME_MIN + COLUMN_GAP) if i == 0 else w
    groups: list[list[int]] = [[]]
    used = key_width
    for j, v in enumerate(values):
        w = _width(v, [r[j] for r in value_rows])
        if groups[-1] and used + w > width:
            groups.append([])
            used = key_width
        groups[-1].append(j)
        used += w
    return groups


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


def fmt_range(lo: float, hi: float) -> str:
    """'10.41..23.29 us': both ends in the unit of the larger one."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if hi >= scale or unit == "ns":
            digits = 3 if unit in ("s", "ms") else (2 if unit == "us" else 1)
            return f"{lo / scale:.{digits}f}..{hi / scale:.{digits}f} {unit}"
    raise AssertionError("unreachable")
