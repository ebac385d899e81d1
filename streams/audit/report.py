"""The audit as one self-contained HTML page for pharmacy and quality teams (no script, no net)."""

from __future__ import annotations

from html import escape
from typing import Any

from streams.audit.charts import (
    BLUE,
    ORANGE,
    PURPLE,
    VERMILION,
    Series,
    bar_chart,
    column_chart,
)
from streams.audit.glossary import how_to_read
from streams.audit.legend import CONTEXTS, RULE_NAMES, SEVERITY_COLORS, SHORT_RULE_NAMES
from streams.audit.overall_sections import alerts_section, headline, times_section
from streams.audit.provenance import config_section, input_section
from streams.audit.report_cells import (
    count_text,
    group_cell,
    group_label,
    hours_text,
    html_table,
    rate_text,
    share_cell,
)
from streams.audit.style import CSS

MAX_LOCATIONS_CHARTED = 40


def _context_section(title: str, groups: dict[str, Any], charted: list[str], columns: bool) -> str:
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


def _times_by_group(
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


def _alerts_by_group(
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


def _anything(group: dict[str, Any]) -> bool:
    return bool(group["episodes"] or group["withdrawn_episodes"] or group["alerts_fired"]["total"])


def render_report(summary: dict[str, Any], produced_at: str | None = None) -> str:
    """Return the report page for a summary.json document."""
    o, cfg, defs = summary["overall"], summary["config"], summary["definitions"]
    # A month or location with only resolutions in it (an alert closing after the last
    # episode) has nothing to show: JSON keeps it, the page leaves it out.
    months = {k: v for k, v in summary["by_month"].items() if _anything(v)}
    locations = {k: v for k, v in summary["by_location"].items() if _anything(v)}
    period = summary["period"]
    span = (
        f"{period['first_t0'][:10]} to {period['last_t0'][:10]}"
        if period["first_t0"]
        else "no episodes"
    )
    charted = sorted(locations, key=lambda k: (-locations[k]["episodes"], k))[
        :MAX_LOCATIONS_CHARTED
    ]
    charted.sort()
    definitions = "".join(
        f"<li><b>{escape(k.replace('_', ' '))}</b>: {escape(str(v))}</li>"
        for k, v in defs.items()
        if isinstance(v, str)
    )
    produced = f" Produced {escape(produced_at)}." if produced_at else ""
    follow_up = defs["follow_up_hours"]
    # Table columns for the rule and severity pairs that fired at all: the rules give each
    # rule two severities at most, and empty columns would only crowd the page.
    kinds = [(r, s) for r in RULE_NAMES for s, _ in SEVERITY_COLORS if o["alerts_fired"][r][s]]
    body = [
        "<h1>Potassium repletion without magnesium: retrospective audit</h1>",
        f'<p class="meta">Episodes started {escape(span)} (UTC dates). Rule version '
        f"<code>{escape(summary['rule_version'])}</code>.{produced}</p>",
        how_to_read(cfg, defs["follow_up_hours"]),
        "<h2>Headline</h2>",
        headline(o),
        _context_section("By month (of t0)", months, list(months), True),
        _context_section("By location", locations, charted, False),
        times_section(
            "Time to the first magnesium result",
            o["time_to_first_mg_result"],
            o["hours_to_first_mg_result"],
            "mg_not_checked_episodes",
            "episodes with Mg not checked",
            "the first magnesium result that became available",
        ),
        times_section(
            "Time to the first magnesium repletion",
            o["time_to_first_mg_repletion"],
            o["hours_to_first_mg_repletion"],
            "mg_low_uncorrected_episodes",
            "episodes with Mg low, not corrected",
            "the first magnesium order or dose",
        ),
        "<h2>Time to magnesium, by month and by location</h2>",
        _times_by_group("By month (of t0)", months, [], True, follow_up),
        _times_by_group("By location", locations, charted, False, follow_up),
        alerts_section(o),
        "<h2>Alerts per 100 episodes, by month and by location</h2>",
        _alerts_by_group("By month (of t0)", "month", months, [], True, kinds),
        _alerts_by_group("By location", "location", locations, charted, False, kinds),
        input_section(summary["input"]),
        f"<h2>Definitions</h2><ul>{definitions}</ul>",
        config_section(cfg, summary["rule_version"]),
        '<p class="small">Made by <code>kmg audit</code>. The numbers are also in summary.json; '
        "one row per episode in episodes.csv; the alerts in alerts.ndjson.</p>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>K/Mg audit</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
