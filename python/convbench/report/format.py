"""How numbers and tables look, everywhere convbench prints them."""

from __future__ import annotations

from rich.table import Table

__all__ = ["fmt_time", "table"]


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
