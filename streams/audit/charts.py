"""Inline SVG charts for the audit report: column charts (grouped or stacked) and bar charts.

Plain SVG strings with their own text, so the report needs no script, font download or network;
colours are the Okabe-Ito palette, readable with the common colour-vision deficiencies, and every
chart sits next to a table with the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import NamedTuple

BLUE, ORANGE, GREEN, VERMILION = "#0072B2", "#E69F00", "#009E73", "#D55E00"
PURPLE, SKY, YELLOW, GREY = "#CC79A7", "#56B4E9", "#F0E442", "#8C8C8C"
INK, RULE_LINE, FAINT = "#1f2933", "#9aa5b1", "#e4e7eb"
FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif"
CHAR_W = 6.8  # average width of a 12 px DejaVu Sans character, for fitting labels


class Series(NamedTuple):
    """One named, coloured row of values, one per category (None: no data)."""

    name: str
    color: str
    values: Sequence[float | None]


def nice_step(top: float, ticks: int = 5) -> float:
    """Return a round tick step (1, 2, 2.5 or 5 times a power of ten) covering top in ~ticks."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def _fmt(value: float, decimals: int | None = None) -> str:
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _text(x: float, y: float, body: str, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(body)}</text>'


def _label_lines(label: str, room: float) -> list[str] | None:
    """Return the label on one or two lines that fit `room` pixels, or None if it cannot."""
    if len(label) * CHAR_W <= room:
        return [label]
    spaces = [i for i, ch in enumerate(label) if ch == " "]
    if not spaces:
        return None
    cut = min(spaces, key=lambda i: abs(i - len(label) / 2))
    lines = [label[:cut], label[cut + 1 :]]
    return lines if max(len(x) for x in lines) * CHAR_W <= room else None


def _legend(series: Sequence[Series], x: float, y: float, width: float) -> tuple[list[str], float]:
    """Lay the legend out in rows from (x, y); return its parts and the height used."""
    parts, cx, cy = [], x, y
    for s in series:
        w = 22 + 7.2 * len(s.name)
        if cx + w > x + width and cx > x:
            cx, cy = x, cy + 20
        parts.append(
            f'<rect x="{cx:.1f}" y="{cy - 10:.1f}" width="12" height="12" fill="{s.color}"/>'
        )
        parts.append(_text(cx + 17, cy, s.name))
        cx += w + 14
    return parts, cy - y + 20


def _empty(width: int, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="60" role="img" '
        f'aria-label="{escape(label)}" font-family="{FONT}" font-size="13" fill="{INK}">'
        f"{_text(12, 34, 'No data for this chart.')}</svg>"
    )


def column_chart(
    label: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    stacked: bool = False,
    unit: str = "",
    y_max: float | None = None,
    decimals: int | None = None,
    width: int = 1000,
    height: int = 300,
) -> str:
    """Return an SVG column chart: one group (or stack) of columns per category.

    `decimals` fixes the value labels' decimals (None: whole numbers bare, else one decimal).
    """
    values = [v for s in series for v in s.values if v is not None]
    if not categories or not series or not values:
        return _empty(width, label)
    if stacked:
        top = max(sum(s.values[i] or 0 for s in series) for i in range(len(categories)))
    else:
        top = max(values)
    top = y_max if y_max is not None else top
    step = nice_step(top)
    axis_top = max(step, math.ceil(top / step) * step)
    # Category labels go on one line, else two, else turned 40 degrees (long or many labels).
    room = (width - 72) / len(categories) - 6
    fitted = [_label_lines(c, room) for c in categories]
    rotate = any(f is None for f in fitted)
    longest = max(len(c) for c in categories) * CHAR_W
    legend, legend_h = _legend(series, 60, 18, width - 70)
    left, right, top_m = 60, 12, 18 + legend_h + 6
    if rotate:
        # A turned label reaches left of its slot: keep the first one inside the picture.
        left = max(left, int(longest * 0.77 - room / 2) + 8)
        bottom = int(longest * 0.64) + 24
    else:
        bottom = 34 if all(len(f) == 1 for f in fitted if f) else 48
    plot_w, plot_h = width - left - right, height - top_m - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'font-family="{FONT}" font-size="12" fill="{INK}">',
        f"<title>{escape(label)}</title>",
        *legend,
    ]
    ticks = int(round(axis_top / step))
    for i in range(ticks + 1):
        tick = i * step
        y = top_m + plot_h - plot_h * tick / axis_top
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{FAINT if i else RULE_LINE}"/>'
        )
        parts.append(_text(left - 6, y + 4, _fmt(tick) + unit, text_anchor="end"))
    slot = plot_w / len(categories)
    # Few categories would make slabs: a column is at most 90 px wide.
    bar_w = min(90.0, slot * 0.78 if stacked else slot * 0.78 / len(series))
    inner = bar_w if stacked else bar_w * len(series)
    show_values = bar_w >= 22
    for i, cat in enumerate(categories):
        x0 = left + slot * i + (slot - inner) / 2
        base = 0.0
        for j, s in enumerate(series):
            v = s.values[i]
            if v is None:
                continue
            h = plot_h * v / axis_top
            x = x0 if stacked else x0 + j * bar_w
            y = top_m + plot_h - plot_h * (base + v) / axis_top
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{s.color}"><title>{escape(cat)}, {escape(s.name)}: '
                f"{escape(_fmt(v, decimals) + unit)}</title></rect>"
            )
            if show_values and not stacked and v:
                shown = _fmt(v, decimals) + unit
                parts.append(
                    _text(x + bar_w / 2, y - 4, shown, text_anchor="middle", font_size="11")
                )
            elif stacked and show_values and h >= 16:
                parts.append(
                    _text(
                        x + bar_w / 2,
                        y + h / 2 + 4,
                        _fmt(v),
                        text_anchor="middle",
                        font_size="11",
                        fill="#ffffff" if s.color in (BLUE, VERMILION, GREEN, PURPLE) else INK,
                    )
                )
            if stacked:
                base += v
        if stacked and show_values:
            y_top = top_m + plot_h - plot_h * base / axis_top
            parts.append(_text(x0 + bar_w / 2, y_top - 4, _fmt(base) + unit, text_anchor="middle"))
        cx, cy = left + slot * i + slot / 2, top_m + plot_h + 16
        lines = fitted[i]
        if rotate or lines is None:
            parts.append(
                f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" '
                f'transform="rotate(-40 {cx:.1f} {cy:.1f})">{escape(cat)}</text>'
            )
        else:
            for k, line in enumerate(lines):
                parts.append(_text(cx, cy + 14 * k, line, text_anchor="middle"))
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    label: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str = "",
    x_max: float | None = None,
    decimals: int | None = None,
    width: int = 1000,
) -> str:
    """Return an SVG horizontal bar chart: one group of bars per category, label on the left."""
    values = [v for s in series for v in s.values if v is not None]
    if not categories or not series or not values:
        return _empty(width, label)
    top = x_max if x_max is not None else max(values)
    step = nice_step(top)
    axis_top = max(step, math.ceil(top / step) * step)
    legend, legend_h = _legend(series, 10, 18, width - 20)
    name_w = int(min(240, 20 + 1.15 * CHAR_W * max(len(c) for c in categories)))
    left, right, top_m = name_w, 56, 18 + legend_h + 18
    bar_h = 14
    group_h = bar_h * len(series) + 10
    plot_w = width - left - right
    height = int(top_m + group_h * len(categories) + 10)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'font-family="{FONT}" font-size="12" fill="{INK}">',
        f"<title>{escape(label)}</title>",
        *legend,
    ]
    ticks = int(round(axis_top / step))
    plot_bottom = top_m + group_h * len(categories)
    for i in range(ticks + 1):
        tick = i * step
        x = left + plot_w * tick / axis_top
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top_m - 4}" y2="{plot_bottom:.1f}" '
            f'stroke="{FAINT if i else RULE_LINE}"/>'
        )
        parts.append(_text(x, top_m - 8, _fmt(tick) + unit, text_anchor="middle", font_size="11"))
    for i, cat in enumerate(categories):
        y0 = top_m + group_h * i + 5
        shown = cat if len(cat) <= 30 else cat[:29] + "…"
        parts.append(_text(left - 8, y0 + group_h / 2, shown, text_anchor="end"))
        for j, s in enumerate(series):
            v = s.values[i]
            y = y0 + j * bar_h
            if v is None:
                parts.append(_text(left + 4, y + bar_h - 3, "no episodes", font_size="11"))
                continue
            w = plot_w * v / axis_top
            parts.append(
                f'<rect x="{left}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{bar_h - 2}" '
                f'fill="{s.color}"><title>{escape(cat)}, {escape(s.name)}: '
                f"{escape(_fmt(v, decimals) + unit)}</title></rect>"
            )
            shown = _fmt(v, decimals) + unit
            parts.append(_text(left + w + 4, y + bar_h - 4, shown, font_size="11"))
    parts.append("</svg>")
    return "".join(parts)
