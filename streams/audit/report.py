"""The audit as one self-contained HTML page for pharmacy and quality teams (no script, no net)."""

from __future__ import annotations

from html import escape
from typing import Any

from streams.audit.glossary import how_to_read
from streams.audit.group_sections import alerts_by_group, context_section, times_by_group
from streams.audit.legend import RULE_NAMES, SEVERITY_COLORS
from streams.audit.overall_sections import alerts_section, headline, times_section
from streams.audit.provenance import config_section, input_section
from streams.audit.style import CSS

MAX_LOCATIONS_CHARTED = 40


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
        context_section("By month (of t0)", months, list(months), True),
        context_section("By location", locations, charted, False),
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
        times_by_group("By month (of t0)", months, [], True, follow_up),
        times_by_group("By location", locations, charted, False, follow_up),
        alerts_section(o),
        "<h2>Alerts per 100 episodes, by month and by location</h2>",
        alerts_by_group("By month (of t0)", "month", months, [], True, kinds),
        alerts_by_group("By location", "location", locations, charted, False, kinds),
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
