"""The audit report's sections by month (of t0) and by location: episodes by magnesium status,
times to magnesium, and alerts per 100 episodes, each a chart beside its table."""

from __future__ import annotations

from html import escape
from typing import Any

from streams.audit.charts import BLUE, ORANGE, PURPLE, VERMILION, Series, bar_chart, column_chart
from streams.audit.legend import CONTEXTS, RULE_NAMES, SHORT_RULE_NAMES
from streams.audit.report_cells import (
    count_text,
    group_cell,
    group_label,
    hours_text,
    html_table,
    rate_text,
    share_cell,
)


def context_section(title: str, groups: dict[str, Any], charted: list[str], columns: bool) -> str:
    """Return each group's episodes by magnesium status: counts, the shares that matter, a table."""
    names = list(groups)
    labels = [group_label(g) for g in names]
    charted_labels = [group_label(g) for g in charted]
    counts = [
        Series(name, color, [groups[g]["mg_context"][key]["n"] for g in names])
        for key, name, color in CONTEXTS
    ]
    shares = [
        Series(name, color, [groups[g]["mg_context"][key]["pct"] for g in charted])
        for key, name, color in CONTEXTS[:2]
    ] + [Series("Refractory pattern", PURPLE, [groups[g]["refractory"]["pct"] for g in charted])]
    parts = [f"<h2>{escape(title)}</h2>"]
    if columns:
        parts.append("<h3>Episodes by magnesium status</h3>")
        label = f"{title}: episodes by magnesium status"
        parts.append(column_chart(label, labels, counts, stacked=True))
        parts.append("<h3>Share of episodes with a magnesium problem</h3>")
        label = f"{title}: share of episodes"
        parts.append(column_chart(label, labels, shares, unit="%", decimals=1))
    else:
        parts.append("<h3>Share of episodes with a magnesium problem</h3>")
        if len(charted) < len(names):
            parts.append(
                f'<p class="small">The chart shows the {len(charted)} locations with the most '
                "episodes; the table lists all.</p>"
            )
        label = f"{title}: share of episodes"
        parts.append(bar_chart(label, charted_labels, shares, unit="%", decimals=1))
    head = [
        "",
        "episodes",
        "Mg not checked",
        "Mg low, not corrected",
        "Mg low, corrected",
        "Mg given, not checked",
        "Mg normal",
        "refractory",
        "alerts per 100",
        "cancelled",
    ]
    rows = []
    for g in names:
        f = groups[g]
        ctx = f["mg_context"]
        rows.append(
            [group_cell(g), count_text(f["episodes"])]
            + [share_cell(ctx[key]) for key, _, _ in CONTEXTS]
            + [
                share_cell(f["refractory"]),
                rate_text(f["alerts_per_100_episodes"]["total"]),
                count_text(f["withdrawn_episodes"]),
            ]
        )
    parts.append(html_table(head, rows))
    return "".join(parts)


def _shown(groups: dict[str, Any], charted: list[str], columns: bool) -> list[str]:
    return list(groups) if columns else charted


def _chart(label: str, groups: list[str], series: list[Series], columns: bool) -> str:
    names = [group_label(g) for g in groups]
    if columns:
        return column_chart(label, names, series, decimals=1, height=260)
    return bar_chart(label, names, series, decimals=1)


def times_by_group(
    title: str, groups: dict[str, Any], charted: list[str], columns: bool, follow_up: int
) -> str:
    """Return median and 90th-percentile times to Mg result and Mg repletion for each group."""
    shown = _shown(groups, charted, columns)
    kinds = (("hours_to_first_mg_result", BLUE), ("hours_to_first_mg_repletion", ORANGE))
    names = ("median to Mg result", "median to Mg order or dose")
    series = [
        Series(name, color, [groups[g][key]["all_episodes"]["median_hours"] for g in shown])
        for name, (key, color) in zip(names, kinds, strict=True)
    ]
    rows = []
    for g, f in groups.items():
        row = [group_cell(g), count_text(f["episodes"])]
        for key, _ in kinds:
            q = f[key]["all_episodes"]
            pct = None if f["episodes"] == 0 else round(100 * q["n"] / f["episodes"], 1)
            row += [
                share_cell({"n": q["n"], "pct": pct}),
                hours_text(q["median_hours"]),
                hours_text(q["p90_hours"]),
            ]
        rows.append(row)
    head = ["", "episodes", "Mg result", "median", "90th pct", "Mg order or dose", "median"]
    return (
        f"<h3>{escape(title)}</h3><p>Episodes with a first magnesium result, and with a first "
        f"magnesium order or dose, within {follow_up} h of t0; the median and 90th percentile "
        "of those times (half, and nine in ten, of them came sooner).</p>"
        + _chart(f"{title}: median hours", shown, series, columns)
        + html_table([*head, "90th pct"], rows)
    )


def alerts_by_group(
    title: str,
    noun: str,
    groups: dict[str, Any],
    charted: list[str],
    columns: bool,
    kinds: list[tuple[str, str]],
) -> str:
    """Return alerts per 100 episodes by rule (chart) and by rule and severity (table)."""
    shown = _shown(groups, charted, columns)
    colors = (VERMILION, ORANGE, PURPLE)
    series = [
        Series(name, color, [groups[g]["alerts_per_100_episodes"][r]["total"] for g in shown])
        for (r, name), color in zip(RULE_NAMES.items(), colors, strict=True)
    ]
    head = ["", "episodes", *(f"{SHORT_RULE_NAMES[r]}, {s}" for r, s in kinds), "all alerts"]
    rows = []
    for g, f in groups.items():
        fired, per = f["alerts_fired"], f["alerts_per_100_episodes"]
        rows.append(
            [group_cell(g), count_text(f["episodes"])]
            + [f"{rate_text(per[r][s])} ({count_text(fired[r][s])})" for r, s in kinds]
            + [f"{rate_text(per['total'])} ({count_text(fired['total'])})"]
        )
    return (
        f"<h3>{escape(title)}</h3><p>Alerts per 100 episodes of the {noun}, by rule and "
        "severity, with the number of alerts in brackets. An alert counts with the episode it "
        "was raised for.</p>"
        + _chart(f"{title}: alerts per 100 episodes by rule", shown, series, columns)
        + html_table(head, rows)
    )
