"""The audit report's sections over all episodes: the headline figures, the times from t0 to
the first magnesium result and repletion, and the alerts by rule and severity."""

from __future__ import annotations

from html import escape
from typing import Any

from streams.audit.charts import BLUE, VERMILION, Series, column_chart
from streams.audit.figures import TIME_BINS
from streams.audit.legend import RULE_NAMES, SEVERITY_COLORS
from streams.audit.report_cells import (
    count_text,
    episodes_text,
    hours_text,
    html_table,
    pct_text,
    rate_text,
)


def _card(value: str, label: str, sub: str) -> str:
    return (
        f'<div class="card"><div class="v">{value}</div><div class="l">{escape(label)}</div>'
        f'<div class="s">{escape(sub)}</div></div>'
    )


def headline(o: dict[str, Any]) -> str:
    """Return the headline cards: episodes and the shares that matter most."""
    n = o["episodes"]
    ctx = o["mg_context"]
    return (
        '<div class="cards">'
        + "".join(
            [
                _card(
                    count_text(n),
                    "potassium repletion episodes",
                    f"{count_text(o['withdrawn_episodes'])} more were cancelled before the check",
                ),
                _card(
                    pct_text(ctx["not_checked"]),
                    "magnesium not checked",
                    episodes_text(ctx["not_checked"]["n"]),
                ),
                _card(
                    pct_text(ctx["low_uncorrected"]),
                    "magnesium low and not corrected",
                    episodes_text(ctx["low_uncorrected"]["n"]),
                ),
                _card(
                    pct_text(o["refractory"]),
                    "refractory hypokalaemia pattern",
                    episodes_text(o["refractory"]["n"]),
                ),
                _card(
                    pct_text(o["episodes_with_alert"]),
                    "episodes that raised an alert",
                    episodes_text(o["episodes_with_alert"]["n"]),
                ),
                _card(
                    rate_text(o["alerts_per_100_episodes"]["total"]),
                    "alerts per 100 episodes",
                    f"{count_text(o['alerts_fired']['total'])} alerts would have fired",
                ),
            ]
        )
        + "</div>"
    )


def times_section(
    title: str,
    block: dict[str, Any],
    hours: dict[str, Any],
    subgroup: str,
    sub_name: str,
    what: str,
) -> str:
    """Return a time histogram: all episodes beside the subgroup the time matters most for."""
    all_bins, sub_bins = block["all_episodes"], block[subgroup]
    typical = " ".join(
        f"{escape(name[0].upper() + name[1:])}: median {hours_text(q['median_hours'])}, 90th "
        "percentile "
        f"{hours_text(q['p90_hours'])} ({episodes_text(q['n'])} with one)."
        for name, q in (("All episodes", hours["all_episodes"]), (sub_name, hours[subgroup]))
    )
    n_all, n_sub = sum(all_bins.values()), sum(sub_bins.values())

    def pct(bins: dict[str, int], total: int) -> list[float | None]:
        return [None if total == 0 else round(100 * bins[b.key] / total, 1) for b in TIME_BINS]

    labels = [b.label for b in TIME_BINS]
    series = [
        Series(f"all episodes (n={n_all:,})", BLUE, pct(all_bins, n_all)),
        Series(f"{sub_name} (n={n_sub:,})", VERMILION, pct(sub_bins, n_sub)),
    ]
    rows = [
        [
            escape(b.label),
            count_text(all_bins[b.key]),
            rate_text(pct(all_bins, n_all)[i]) + "%",
            count_text(sub_bins[b.key]),
            rate_text(pct(sub_bins, n_sub)[i]) + "%",
        ]
        for i, b in enumerate(TIME_BINS)
    ]
    return (
        f"<h2>{escape(title)}</h2><p>Hours from t0 to {what}. Share of episodes in each time "
        f"band; the last band holds episodes with none within the follow-up.</p><p>{typical}</p>"
        + '<div class="pair">'
        + column_chart(title, labels, series, unit="%", decimals=1, width=560, height=280)
        + html_table(
            ["time after t0", "all", "%", sub_name.replace("episodes with ", ""), "%"], rows
        )
        + "</div>"
    )


def alerts_section(o: dict[str, Any]) -> str:
    """Return the alerts that would have fired, by rule and severity."""
    rules = list(RULE_NAMES)
    series = [
        Series(sev, color, [o["alerts_per_100_episodes"][r][sev] for r in rules])
        for sev, color in SEVERITY_COLORS
    ]
    rows = []
    for r in rules:
        fired, per = o["alerts_fired"][r], o["alerts_per_100_episodes"][r]
        rows.append(
            [escape(RULE_NAMES[r]) + f"<br><code>{r}</code>"]
            + [f"{count_text(fired[s])} ({rate_text(per[s])})" for s, _ in SEVERITY_COLORS]
            + [f"{count_text(fired['total'])} ({rate_text(per['total'])})"]
        )
    stray = o["alerts_fired_without_episode"]
    note = (
        f'<p class="small">{count_text(stray)} of these alerts belong to no counted episode (see '
        "the definitions): they are in these totals only, in no month or location.</p>"
        if stray
        else ""
    )
    return (
        "<h2>Alerts that would have fired</h2><p>Alerts per 100 episodes by rule and severity. "
        "Counts, with the rate per 100 episodes in brackets.</p>"
        + '<div class="pair">'
        + column_chart(
            "Alerts per 100 episodes by rule and severity",
            [RULE_NAMES[r] for r in rules],
            series,
            decimals=1,
            width=480,
            height=260,
        )
        + html_table(["rule", "warning", "high", "critical", "all"], rows)
        + "</div>"
        + note
    )
