"""Decode raw message bytes into a canonical event, an ignored event, or a dead letter."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from alerts.codes import CodeSets
from alerts.events import (
    REMOVAL_STATUSES,
    Analyte,
    LabResult,
    LabStatus,
    MedAction,
    Medication,
    Micros,
)
from alerts.rule_config import RuleConfig
from alerts.units import FACTORS
from alerts.wire import LabResultIn, MedicationIn

MAX_MESSAGE_BYTES = 65_536
_ENVELOPE_LIMITS = (("event_id", 128), ("patient_id", 64))
_HEMOLYZED = frozenset({"hemolyzed", "hemolysed"})
# Enum members bound once: attribute lookups on enum classes are slow in the per-event path.
_PRELIMINARY = LabStatus.PRELIMINARY
_CANCELLED_ACTION = MedAction.CANCELLED
_LAB_KIND = "lab_result"
_MED_KIND = "medication"
_KINDS = (_LAB_KIND, _MED_KIND)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class IgnoreReason(StrEnum):
    OTHER_LAB_CODE = "other_lab_code"
    PRELIMINARY = "preliminary"
    OTHER_MEDICATION = "other_medication"


class DeadLetter(NamedTuple):
    """An invalid message: its dead-letter reason, a human detail and the original bytes."""

    reason: str
    detail: str
    raw: bytes


class Ignored(NamedTuple):
    """A valid message the rules do not read; it still registers its event_id."""

    patient_id: str
    event_id: str
    why: IgnoreReason


Decoded = LabResult | Medication | Ignored | DeadLetter


def _first_reason(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors(include_url=False)[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    kind = err["type"]
    if kind == "kmg_reason":
        reason = err["ctx"]["reason"]
    elif kind == "missing":
        reason = f"missing_field:{field}"
    elif kind in ("bad_timestamp", "timestamp_without_offset"):
        reason = f"{kind}:{field}"
    elif field == "status":
        reason = "bad_status"
    elif field == "action":
        reason = "bad_action"
    else:
        reason = f"bad_type:{field}"
    return reason, f"{field}: {err['msg']}" if field else err["msg"]


def _envelope_defect(obj: dict[str, Any]) -> tuple[str, str] | None:
    kind = obj.get("kind")
    if kind != "lab_result" and kind != "medication":
        return "unknown_kind", f"kind {kind!r} is neither lab_result nor medication"
    for field, limit in _ENVELOPE_LIMITS:
        value = obj.get(field)
        if value is None:
            return f"missing_field:{field}", f"{field} is missing or null"
        if not isinstance(value, str) or not 1 <= len(value) <= limit:
            return f"bad_type:{field}", f"{field} must be a string of 1..{limit} characters"
    return None


class Decoder:
    """Validate messages once at the edge; the engine only ever sees the tuples this returns."""

    def __init__(self, cfg: RuleConfig, codes: CodeSets | None = None) -> None:
        self.codes = codes or CodeSets(cfg)
        self._factors = dict(FACTORS)
        self._plausible = {Analyte.POTASSIUM: cfg.k_plausible, Analyte.MAGNESIUM: cfg.mg_plausible}

    def decode(self, raw: bytes) -> Decoded:
        """Decode one message; never raises on any input."""
        if len(raw) > MAX_MESSAGE_BYTES:
            return DeadLetter("too_large", f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}", raw)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # orjson refuses numbers beyond a double (1e400) and NaN/Infinity literals; the
            # standard parser reads them, so such a message is non-finite, not broken JSON.
            try:
                obj = json.loads(raw, parse_constant=_no_constants)
            except (ValueError, RecursionError):
                return DeadLetter("bad_json", str(exc), raw)
        if type(obj) is not dict:
            return DeadLetter("not_an_object", f"a JSON {type(obj).__name__}", raw)
        kind, event_id, patient_id = obj.get("kind"), obj.get("event_id"), obj.get("patient_id")
        # The common case in one expression; the slow path names the first defect.
        if not (
            kind in _KINDS
            and type(event_id) is str
            and type(patient_id) is str
            and 0 < len(event_id) <= 128
            and 0 < len(patient_id) <= 64
        ):
            defect = _envelope_defect(obj)
            if defect is not None:
                return DeadLetter(defect[0], defect[1], raw)
        try:
            if kind == _LAB_KIND:
                return self._lab(obj, raw)
            return self._medication(obj, raw)
        except ValidationError as exc:
            reason, detail = _first_reason(exc)
            return DeadLetter(reason, detail, raw)

    def _lab(self, obj: dict[str, Any], raw: bytes) -> Decoded:
        code = obj.get("code")
        if code is None:
            return DeadLetter("missing_field:code", "code is missing or null", raw)
        if not isinstance(code, str):
            return DeadLetter("bad_type:code", "code must be a string", raw)
        analyte = self.codes.lab_analyte(code)
        if analyte is None:
            return Ignored(obj["patient_id"], obj["event_id"], IgnoreReason.OTHER_LAB_CODE)
        lab = LabResultIn.model_validate(obj)
        value: float | None = None
        if lab.status not in REMOVAL_STATUSES:
            if lab.value is None:
                return DeadLetter("missing_field:value", "value is missing or null", raw)
            if not math.isfinite(lab.value):
                return DeadLetter("non_finite_value", f"value {lab.value}", raw)
            if lab.unit is None:
                return DeadLetter("missing_field:unit", "unit is missing or null", raw)
            factor = self._factors[analyte].get(lab.unit.strip().lower())
            if factor is None:
                return DeadLetter(f"bad_unit:{lab.unit}", f"{analyte} in {lab.unit!r}", raw)
            value = lab.value * factor
            low, high = self._plausible[analyte]
            if not low <= value <= high:
                detail = f"{analyte} {lab.value} {lab.unit} outside [{low}, {high}]"
                return DeadLetter("implausible_value", detail, raw)
        collected: Micros = lab.collected_at  # type: ignore[assignment]
        resulted: Micros = lab.resulted_at  # type: ignore[assignment]
        if resulted < collected:
            return DeadLetter("resulted_before_collected", "resulted_at < collected_at", raw)
        if lab.status == _PRELIMINARY:
            return Ignored(lab.patient_id, lab.event_id, IgnoreReason.PRELIMINARY)
        flags = lab.flags
        hemolyzed = bool(flags) and any(f.strip().lower() in _HEMOLYZED for f in flags)  # type: ignore[union-attr]
        return LabResult(
            resulted,
            lab.patient_id,
            lab.event_id,
            analyte,
            value,
            collected,
            lab.status,
            lab.result_id if lab.result_id is not None else lab.event_id,
            hemolyzed,
            lab.encounter_id,
            lab.location,
        )

    def _medication(self, obj: dict[str, Any], raw: bytes) -> Decoded:
        med = MedicationIn.model_validate(obj)
        if med.code is None and med.name is None and med.action != _CANCELLED_ACTION:
            return DeadLetter("missing_code_and_name", "code and name are both null", raw)
        if isinstance(med.dose, float) and not math.isfinite(med.dose):
            return DeadLetter("non_finite_value", f"dose {med.dose}", raw)
        classes = self.codes.med_classes(med.code, med.name)
        if not classes and med.action != _CANCELLED_ACTION:
            return Ignored(med.patient_id, med.event_id, IgnoreReason.OTHER_MEDICATION)
        return Medication(
            med.at,  # type: ignore[arg-type]
            med.patient_id,
            med.event_id,
            med.action,
            classes,
            med.order_id,
            med.encounter_id,
            med.location,
        )
