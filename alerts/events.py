"""Canonical events in the hot path: small immutable tuples with integer microsecond times."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

Micros = int
"""An instant as integer microseconds since the Unix epoch (UTC); exact for window arithmetic."""

MICROS_PER_MINUTE = 60_000_000
MICROS_PER_HOUR = 3_600_000_000


class EventKind(StrEnum):
    LAB_RESULT = "lab_result"
    MEDICATION = "medication"
    ALERT = "alert"


class Analyte(StrEnum):
    POTASSIUM = "potassium"
    MAGNESIUM = "magnesium"


class LabStatus(StrEnum):
    FINAL = "final"
    CORRECTED = "corrected"
    PRELIMINARY = "preliminary"
    CANCELLED = "cancelled"
    ENTERED_IN_ERROR = "entered-in-error"


REMOVAL_STATUSES = frozenset({LabStatus.CANCELLED, LabStatus.ENTERED_IN_ERROR})


class MedAction(StrEnum):
    ORDERED = "ordered"
    ADMINISTERED = "administered"
    CANCELLED = "cancelled"


class MedClass(StrEnum):
    POTASSIUM_REPLETION = "potassium_repletion"
    MAGNESIUM_REPLETION = "magnesium_repletion"
    LOOP_DIURETIC = "loop_diuretic"
    THIAZIDE_DIURETIC = "thiazide_diuretic"


DIURETIC_CLASSES = frozenset({MedClass.LOOP_DIURETIC, MedClass.THIAZIDE_DIURETIC})


class LabResult(NamedTuple):
    """A validated lab result; the first three fields are the release order (a, patient, event)."""

    available: Micros  # resulted_at
    patient_id: str
    event_id: str
    analyte: Analyte | None  # None: a code outside the K/Mg sets (ignored, counted)
    value: float | None  # normalised: K in mmol/L, Mg in mg/dL; None for removals
    collected: Micros | None
    status: LabStatus
    result_id: str
    hemolyzed: bool
    encounter_id: str | None
    location: str | None

    @property
    def kind(self) -> EventKind:
        return EventKind.LAB_RESULT


class Medication(NamedTuple):
    """A validated medication event; the first three fields are the release order."""

    available: Micros  # at
    patient_id: str
    event_id: str
    action: MedAction
    classes: frozenset[MedClass]  # empty: not a class the rules read (ignored, counted)
    order_id: str | None
    encounter_id: str | None
    location: str | None

    @property
    def kind(self) -> EventKind:
        return EventKind.MEDICATION


ClinicalEvent = LabResult | Medication
