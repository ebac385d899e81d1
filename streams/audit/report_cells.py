"""How the audit report writes its figures: counts, shares, rates and hours as text, a month
or location as a cell or a chart label, and the plain HTML table every chart sits beside."""

from __future__ import annotations

from html import escape
from typing import Any

from streams.audit.figures import NO_LOCATION

NO_LOCATION_SHOWN = "no location"  # in italics in tables, "(no location)" in charts


def group_cell(key: str) -> str:
    """Return a month or location as a table cell; the no-location group in italics."""
    return f"<i>{NO_LOCATION_SHOWN}</i>" if key == NO_LOCATION else escape(key)


def group_label(key: str) -> str:
    """Return a month or location as chart text (escaped by the chart)."""
    return f"({NO_LOCATION_SHOWN})" if key == NO_LOCATION else key


def hours_text(value: float | None) -> str:
    """Return hours with one decimal; a dash for none."""
    return "–" if value is None else f"{value:,.1f} h"


def count_text(value: int | float | None) -> str:
    """Return a count with thousands separators (a fraction with one decimal); a dash for none."""
    if value is None:
        return "–"
    if isinstance(value, float) and value != int(value):
        return f"{value:,.1f}"
    return f"{int(value):,}"


def pct_text(share: dict[str, Any]) -> str:
    """Return a share's percentage with one decimal; a dash for none."""
    return "–" if share["pct"] is None else f"{share['pct']:.1f}%"


def rate_text(value: float | None) -> str:
    """Return a rate or a percentage with one decimal; a dash for none."""
    return "–" if value is None else f"{value:,.1f}"


def episodes_text(n: int) -> str:
    """Return a number of episodes in words."""
    return f"{n:,} episode" if n == 1 else f"{n:,} episodes"


def share_cell(share: dict[str, Any]) -> str:
    """Return a share as its count with its percentage in brackets."""
    return f"{count_text(share['n'])} ({pct_text(share)})"


def html_table(head: list[str], rows: list[list[str]], first_text: bool = True) -> str:
    """Return an HTML table; its first column is text (left-aligned) unless told otherwise."""

    def cell(tag: str, i: int, body: str) -> str:
        cls = ' class="t"' if i == 0 and first_text else ""
        return f"<{tag}{cls}>{body}</{tag}>"

    out = ["<table><tr>", *(cell("th", i, escape(h)) for i, h in enumerate(head)), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)
