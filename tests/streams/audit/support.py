"""Run the audit in tests: over scenario files, into a temporary folder, read back."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from alerts.rule_config import RuleConfig
from streams.audit.run import AuditInput, AuditOptions, run_audit
from tests.conftest import SCENARIOS


@dataclass
class Audit:
    out: Path
    doc: dict[str, Any]

    @property
    def overall(self) -> dict[str, Any]:
        return self.doc["overall"]

    def rows(self) -> list[dict[str, str]]:
        with (self.out / "episodes.csv").open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def row(self, trigger_event_id: str) -> dict[str, str]:
        (found,) = [r for r in self.rows() if r["trigger_event_id"] == trigger_event_id]
        return found

    def summary_json(self) -> dict[str, Any]:
        return orjson.loads((self.out / "summary.json").read_bytes())


def scenario_inputs() -> list[Path]:
    """Return every scenario input file in name order (expected outputs left out)."""
    return sorted(p for p in SCENARIOS.glob("*.ndjson") if not p.name.endswith(".expected.ndjson"))


def scenario(name: str) -> Path:
    (path,) = [p for p in scenario_inputs() if p.name.startswith(name)]
    return path


def concatenated(paths: list[Path]) -> bytes:
    """Return the files joined into one input, each ending with a newline."""
    return b"".join(p.read_bytes().rstrip(b"\n") + b"\n" for p in paths)


def run(
    cfg: RuleConfig,
    data: bytes,
    out: Path,
    fmt: str = "canonical",
    name: str = "input.ndjson",
    **options: Any,
) -> Audit:
    """Audit bytes as one named input into `out`."""
    source = AuditInput(name, io.BytesIO(data), len(data))
    doc = run_audit(cfg, [source], AuditOptions(fmt, out, **options))
    return Audit(out, doc)


K, MG = "2823-3", "19123-9"  # serum potassium (mmol/L) and magnesium (mg/dL) LOINC codes
KCL, MGSO4 = "Potassium chloride 20 mEq", "Magnesium sulfate 2 g IV"


def lab(
    eid: str, pid: str, code: str, value: float, collected: str, resulted: str, **extra: Any
) -> dict[str, Any]:
    """Return a final canonical lab result ("2024-03-04T06:00" style times, UTC)."""
    unit = "mmol/L" if code == K else "mg/dL"
    return {
        "kind": "lab_result",
        "event_id": eid,
        "patient_id": pid,
        "encounter_id": f"E-{pid}",
        "location": "ICU-A",
        "code": code,
        "value": value,
        "unit": unit,
        "collected_at": f"{collected}:00Z",
        "resulted_at": f"{resulted}:00Z",
        "status": "final",
        "result_id": None,
        "flags": None,
        **extra,
    }


def med(eid: str, pid: str, name: str, at: str, order_id: str, **extra: Any) -> dict[str, Any]:
    """Return a canonical medication event, ordered unless `action` says otherwise."""
    return {
        "kind": "medication",
        "event_id": eid,
        "patient_id": pid,
        "encounter_id": f"E-{pid}",
        "location": "ICU-A",
        "action": "ordered",
        "code": None,
        "name": name,
        "at": f"{at}:00Z",
        "order_id": order_id,
        **extra,
    }


def ndjson(*events: dict[str, Any]) -> bytes:
    """Return the events as canonical NDJSON input."""
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def firing(audit: Audit) -> list[dict[str, Any]]:
    """Return the firing alerts of alerts.ndjson."""
    lines = (audit.out / "alerts.ndjson").read_bytes().splitlines()
    return [a for a in map(orjson.loads, lines) if a["status"] == "firing"]
