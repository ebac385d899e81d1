"""Every event any adapter emits from the real samples is a RULES.md section 1 canonical event,
shaped like the scenario files, and the validator downstream accepts it."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.decoder import DeadLetter, Decoder
from alerts.rule_config import RuleConfig
from streams.adapters import AdapterSettings, Canonical, FeedFormat, iter_feed
from streams.adapters.mimic import iter_mimic
from tests.streams.adapters.support import FEEDS, MIMIC, SCENARIOS, requires_shared, run

pytestmark = requires_shared

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
LAB_STATUSES = {"final", "corrected", "preliminary", "cancelled", "entered-in-error"}
ACTIONS = {"ordered", "administered", "cancelled"}
# Mapped as sent, dead-lettered downstream: DiagnosticReports 3, 6 and 7 of this r4spec Bundle
# are `issued` before their `effectiveDateTime`.
EXPECTED_DEAD = {
    "fhir:Observation/o2-3:final": "resulted_before_collected",
    "fhir:Observation/o2-6:final": "resulted_before_collected",
    "fhir:Observation/o2-7:final": "resulted_before_collected",
}


@cache
def scenario_key_order() -> dict[str, list[str]]:
    """Key order of the canonical examples (scenario 01 holds a lab and a medication)."""
    orders: dict[str, list[str]] = {}
    for line in (SCENARIOS / "01_mg_not_checked_basic.ndjson").read_bytes().splitlines():
        if line.strip():
            event = orjson.loads(line)
            orders.setdefault(event["kind"], list(event))
    return orders


def sample_files() -> list[tuple[str, Path]]:
    files = [("hl7v2", p) for p in sorted((FEEDS / "hl7v2").glob("*.hl7"))]
    files += [("fhir", p) for p in sorted((FEEDS / "fhir").iterdir()) if p.suffix != ".md"]
    return files


@cache
def all_lines() -> list[tuple[str, bytes]]:
    lines: list[tuple[str, bytes]] = []
    for tz in ("UTC", "America/New_York", "Asia/Kolkata"):
        for fmt, path in sample_files():
            lines += [
                (path.name, o.line)
                for o in run(fmt, path, tz=tz).outputs
                if isinstance(o, Canonical)
            ]
    settings = AdapterSettings(facility_timezone="America/New_York")
    mimic = iter_mimic(MIMIC / "labs.csv", MIMIC / "meds.csv", settings)
    lines += [("mimic", o.line) for o in mimic if isinstance(o, Canonical)]
    return lines


def check_fields(event: dict[str, Any]) -> None:
    assert list(event) == scenario_key_order()[event["kind"]]
    assert isinstance(event["event_id"], str) and 1 <= len(event["event_id"]) <= 128
    assert isinstance(event["patient_id"], str) and 1 <= len(event["patient_id"]) <= 64
    for key in ("encounter_id", "location"):
        assert event[key] is None or isinstance(event[key], str)
    if event["kind"] == "lab_result":
        assert isinstance(event["code"], str)
        assert event["status"] in LAB_STATUSES
        if event["status"] not in ("cancelled", "entered-in-error"):
            assert isinstance(event["value"], int | float) and not isinstance(event["value"], bool)
            assert isinstance(event["unit"], str)
        for key in ("collected_at", "resulted_at"):
            assert RFC3339.fullmatch(event[key]), event[key]
        assert event["result_id"] is None or isinstance(event["result_id"], str)
        assert event["flags"] in (None, ["hemolyzed"])
    else:
        assert event["kind"] == "medication"
        assert event["action"] in ACTIONS
        assert (
            event["code"] is not None or event["name"] is not None or event["action"] == "cancelled"
        )
        for key in ("code", "name", "route", "dose_unit", "order_id"):
            assert event[key] is None or isinstance(event[key], str)
        assert event["dose"] is None or isinstance(event["dose"], int | float)
        assert RFC3339.fullmatch(event["at"]), event["at"]


def test_scenarios_have_both_kinds() -> None:
    assert set(scenario_key_order()) == {"lab_result", "medication"}


def test_every_emitted_line_is_a_section_1_event() -> None:
    lines = all_lines()
    assert len(lines) > 10_000
    for source, line in lines:
        assert not line.endswith(b"\n"), source
        check_fields(orjson.loads(line))


def test_the_validator_accepts_every_emitted_event(cfg: RuleConfig) -> None:
    decoder = Decoder(cfg)
    dead = {}
    for _source, line in all_lines():
        decoded = decoder.decode(line)
        if isinstance(decoded, DeadLetter):
            dead[orjson.loads(line)["event_id"]] = decoded.reason
    assert dead == EXPECTED_DEAD


def test_canonical_format_passes_lines_through_unchanged() -> None:
    path = SCENARIOS / "01_mg_not_checked_basic.ndjson"
    expected = [line for line in path.read_bytes().splitlines() if line.strip()]
    result = run("canonical", path)
    assert result.outputs == [Canonical(line) for line in expected]
    messy = b"\n" + expected[0] + b"\r\n   \n" + b"not even json\n" + expected[1]
    assert run("canonical", messy).outputs == [
        Canonical(expected[0]),
        Canonical(b"not even json"),
        Canonical(expected[1]),
    ]


def test_feed_formats_and_dispatch() -> None:
    assert [f.value for f in FeedFormat] == ["canonical", "hl7v2", "fhir", "mimic"]
    with pytest.raises(ValueError):
        list(iter_feed("csv", None, AdapterSettings()))  # type: ignore[arg-type]
