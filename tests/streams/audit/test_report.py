"""The HTML report: self-contained, with the figures, the definitions and every parameter."""

from __future__ import annotations

import re

import pytest

from streams.audit.charts import Series, bar_chart, column_chart, nice_step
from tests.conftest import SCENARIOS
from tests.streams.audit.support import KCL, concatenated, med, ndjson, run, scenario_inputs

SVG_NS = "http://www.w3.org/2000/svg"


def _external_references(html: str) -> list[str]:
    found = re.findall(r"(?:src|href)\s*=|url\(|@import|<script|<link|<iframe|<img", html)
    found += [u for u in re.findall(r"https?://[^\s\"'<>]+", html) if u != SVG_NS]
    return found


@pytest.mark.skipif(not SCENARIOS.is_dir(), reason=f"no scenarios at {SCENARIOS}")
def test_report_is_self_contained_and_shows_the_figures(cfg, tmp_path):
    audit = run(cfg, concatenated(scenario_inputs()), tmp_path, produced_at="2024-06-01 10:00 UTC")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert _external_references(html) == []
    # Shares: 2 monthly, 1 location; 2 time histograms; median times by month and location;
    # alerts overall, by month and by location.
    assert html.count("<svg") == 10
    for shown in (
        "How to read this",
        "29</div>",  # episodes
        "51.7%",  # Mg not checked
        "27.6%",  # Mg low, not corrected
        "75.9",  # alerts per 100 episodes
        "2 more were cancelled before the check",
        "none in 48 h",
        "Produced 2024-06-01 10:00 UTC",
        audit.doc["rule_version"],
    ):
        assert shown in html, shown
    for key in audit.doc["config"]:
        assert f"<code>{key}</code>" in html, key


def test_report_of_an_empty_input_says_there_is_nothing(cfg, tmp_path):
    audit = run(cfg, b"", tmp_path)
    assert audit.overall["episodes"] == 0
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "no episodes" in html and "No data for this chart." in html
    assert _external_references(html) == []


def test_names_from_the_feed_are_escaped(cfg, tmp_path):
    line = (
        b'{"kind": "medication", "event_id": "x1", "patient_id": "P1", "encounter_id": null, '
        b'"location": "<script>alert(1)</script>", "action": "ordered", "code": "8591", '
        b'"name": "KCl", "at": "2024-03-04T08:00:00Z", "order_id": "O1"}\n'
    )
    audit = run(cfg, line, tmp_path)
    assert list(audit.doc["by_location"]) == ["<script>alert(1)</script>"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize(
    ("top", "step"), [(0, 1.0), (4, 1.0), (9, 2.0), (29, 10.0), (51.7, 20.0), (21947, 5000.0)]
)
def test_axis_steps_are_round(top, step):
    assert nice_step(top) == step


def test_charts_draw_one_shape_per_value_and_skip_missing_ones():
    series = [Series("a", "#000", [1.0, None, 3.0]), Series("b", "#111", [2.0, 0.0, None])]
    svg = column_chart("label", ["x", "y", "z"], series)
    assert svg.count("<rect") == 4 + 2  # four values, two legend keys
    bars = bar_chart("label", ["x", "y", "z"], series)
    assert bars.count("<rect") == 4 + 2 and bars.count("no episodes") == 2
    assert "No data" in column_chart("label", [], series)


def _section(html: str, title: str) -> str:
    start = html.index(f"<h2>{title}</h2>")
    return html[start : html.index("<h2>", start + 4)]


@pytest.mark.skipif(not SCENARIOS.is_dir(), reason=f"no scenarios at {SCENARIOS}")
@pytest.mark.parametrize(
    ("title", "shown"),
    [
        # 5 of 29 with a result (17.2%), median 80 min, 90th percentile 25 h; 3 repletions
        # (10.3%), median 10 min, 90th percentile 65 min. Month and ward tables alike.
        (
            "Time to magnesium, by month and by location",
            ["<td>5 (17.2%)</td><td>1.3 h</td><td>25.0 h</td><td>3 (10.3%)</td><td>0.2 h</td>"],
        ),
        # Every rule and severity that fired, per 100 episodes (count): 10/29, 1/29, 9/29,
        # 1/29, 1/29; 22/29 in all.
        (
            "Alerts per 100 episodes, by month and by location",
            [
                "<th>Mg not checked, warning</th><th>Mg not checked, high</th>"
                "<th>Mg low, high</th><th>Mg low, critical</th><th>Refractory, critical</th>",
                "<td>34.5 (10)</td><td>3.4 (1)</td><td>31.0 (9)</td><td>3.4 (1)</td>"
                "<td>3.4 (1)</td><td>75.9 (22)</td>",
            ],
        ),
    ],
)
def test_report_shows_times_and_alert_rates_per_month_and_location(cfg, tmp_path, title, shown):
    run(cfg, concatenated(scenario_inputs()), tmp_path)
    section = _section((tmp_path / "report.html").read_text(encoding="utf-8"), title)
    for row in ('<td class="t">2024-03</td>', '<td class="t">ICU-A</td>'):
        assert section.count(row) == 1, row
    for text in shown:
        assert section.count(text) == 2, text  # once for the month, once for the ward


def test_missing_location_is_shown_apart_from_a_ward_named_like_it(cfg, tmp_path):
    events = [
        med("a", "PA", KCL, "2024-03-04T08:00", "OA", location="(none)"),
        med("b", "PB", KCL, "2024-03-04T08:00", "OB", location=None),
    ]
    run(cfg, ndjson(*events), tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    table = _section(html, "By location")
    assert table.count('<td class="t"><i>no location</i></td>') == 1
    assert table.count('<td class="t">(none)</td>') == 1
