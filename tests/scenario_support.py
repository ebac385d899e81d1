"""Read golden scenarios and compare alert outputs the way the scenario README says."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.timestamps import parse_timestamp

COMPARED = (
    "alert_id",
    "rule",
    "status",
    "severity",
    "patient_id",
    "at",
    "trigger_event_id",
    "resolution",
)


@dataclass(frozen=True)
class Scenario:
    name: str
    input: Path
    expected: list[dict[str, Any]]
    dead_lines: list[int] | None  # None: the scenario names no dead-letter expectation


def load_scenarios(folder: Path) -> list[Scenario]:
    """Return every NN_name.ndjson with its expected output, in name order."""
    found = []
    for path in sorted(folder.glob("*.ndjson")):
        if path.name.endswith(".expected.ndjson"):
            continue
        stem = path.name[: -len(".ndjson")]
        expected_path = folder / f"{stem}.expected.ndjson"
        expected = [json.loads(line) for line in expected_path.read_text().splitlines() if line]
        dlq_path = folder / f"{stem}.dlq.json"
        dead = (
            [entry["line"] for entry in json.loads(dlq_path.read_text())]
            if dlq_path.exists()
            else None
        )
        found.append(Scenario(stem, path, expected, dead))
    return found


def comparable(alert: dict[str, Any]) -> tuple[Any, ...]:
    """Project an alert onto the compared fields, with `at` as an instant."""
    return tuple(parse_timestamp(alert[k]) if k == "at" else alert[k] for k in COMPARED)


def grouped_by_instant(alerts: list[dict[str, Any]]) -> list[Counter[tuple[Any, ...]]]:
    """Group consecutive outputs with one `at` into multisets: order within an instant is free."""
    groups: list[Counter[tuple[Any, ...]]] = []
    last_at = None
    for alert in alerts:
        row = comparable(alert)
        at = row[COMPARED.index("at")]
        if not groups or at != last_at:
            groups.append(Counter())
            last_at = at
        groups[-1][row] += 1
    return groups
