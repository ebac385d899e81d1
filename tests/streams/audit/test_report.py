"""The HTML report: self-contained, with the figures, the definitions and every parameter."""

from __future__ import annotations

import re

import pytest

from streams.audit.charts import Series, bar_chart, column_chart, nice_step
from tests.conftest import SCENARIOS
from tests.streams.audit.support import concatenated, run, scenario_inputs

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
    assert html.count("<svg") == 6  # 2 monthly, 1 location, 2 time histograms, 1 alerts
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
