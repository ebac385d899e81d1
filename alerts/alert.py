"""The alert a rule emits: identity, closed sets of rules, severities and resolutions, wire form."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any, NamedTuple

from alerts.events import Micros
from alerts.timestamps import format_timestamp


class Rule(StrEnum):
    MG_NOT_CHECKED = "MG_NOT_CHECKED"
    MG_LOW_UNCORRECTED = "MG_LOW_UNCORRECTED"
    REFRACTORY_HYPOKALEMIA = "REFRACTORY_HYPOKALEMIA"


class Severity(StrEnum):
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Resolution(StrEnum):
    MG_CHECKED_NORMAL = "mg_checked_normal"
    SUPERSEDED = "superseded"
    MG_REPLETED = "mg_repleted"
    MG_NORMALIZED = "mg_normalized"
    K_NORMALIZED = "k_normalized"
    RESULT_CORRECTED = "result_corrected"
    RESULT_RETRACTED = "result_retracted"
    EXPIRED = "expired"


_MESSAGES = {
    Rule.MG_NOT_CHECKED: (
        "Potassium is being repleted but magnesium has not been checked in the lookback window: "
        "check serum magnesium; hypomagnesemia makes hypokalemia refractory."
    ),
    Rule.MG_LOW_UNCORRECTED: (
        "Potassium is being repleted while magnesium is low and not corrected: "
        "replete magnesium, or potassium will keep being lost."
    ),
    Rule.REFRACTORY_HYPOKALEMIA: (
        "Repeated potassium repletion without reaching normal potassium, and magnesium is "
        "unchecked or low: treat the magnesium; arrhythmia risk (QT prolongation, torsades)."
    ),
}


def alert_id_for(patient_id: str, rule: str, trigger_event_id: str) -> str:
    """Return the deterministic alert id: sha256 of patient|rule|trigger, first 32 hex digits."""
    digest = hashlib.sha256(f"{patient_id}|{rule}|{trigger_event_id}".encode())
    return digest.hexdigest()[:32]


class Alert(NamedTuple):
    """One alert event as the engine emits it; `evidence` is plain JSON-ready data."""

    alert_id: str
    rule: Rule
    status: AlertStatus
    severity: Severity
    patient_id: str
    encounter_id: str | None
    location: str | None
    at: Micros
    trigger_event_id: str
    resolution: Resolution | None
    evidence: dict[str, Any]
    rule_version: str

    def to_wire(self) -> dict[str, Any]:
        """Return the RULES.md section 6 JSON object."""
        resolved = self.resolution is not None
        message = _MESSAGES[self.rule]
        if resolved:
            message = f"Resolved ({self.resolution}): {message}"
        return {
            "kind": "alert",
            "alert_id": self.alert_id,
            "rule": str(self.rule),
            "status": str(self.status),
            "severity": str(self.severity),
            "patient_id": self.patient_id,
            "encounter_id": self.encounter_id,
            "location": self.location,
            "at": format_timestamp(self.at),
            "trigger_event_id": self.trigger_event_id,
            "resolution": str(self.resolution) if resolved else None,
            "evidence": self.evidence,
            "message": message,
            "rule_version": self.rule_version,
        }
