"""Decode raw message bytes into a canonical event, an ignored event, or a dead letter."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, NamedTuple, cast

import orjson
from pydantic import ValidationError

from alerts.codes import CodeSets
from alerts.events import (
    REMOVAL_STATUSES,
    Analyte,
    LabResult,
    LabStatus,
    MedAction,
    MedClass,
    Medication,
    Micros,
)
from alerts.rule_config import RuleConfig, Windows
from alerts.timestamps import LAST_INSTANT, TimestampError, parse_timestamp
from alerts.units import FACTORS
from alerts.wire import LabResultIn, MedicationIn, model_for

MAX_MESSAGE_BYTES = 65_536
_ENVELOPE_LIMITS = (("event_id", 128), ("patient_id", 64))
_SURROGATE = re.compile("[\ud800-\udfff]")
_HEMOLYZED = frozenset({"hemolyzed", "hemolysed"})
# Enum members bound once: attribute lookups on enum classes are slow in the per-event path.
_PRELIMINARY = LabStatus.PRELIMINARY
_CANCELLED_ACTION = MedAction.CANCELLED
_LAB_KIND = "lab_result"
_MED_KIND = "medication"
_KINDS = (_LAB_KIND, _MED_KIND)
_STATUSES = {s.value: s for s in LabStatus}
_ACTIONS = {a.value: a for a in MedAction}
# JSON types each field's model accepts (orjson yields exact built-in types: bool is not int).
_NoneType = type(None)
_TEXT_OR_NULL = frozenset({str, _NoneType})
_NUMBER_OR_NULL = frozenset({int, float, _NoneType})
_DOSE_TYPES = frozenset({int, float, str, _NoneType})
_MED_CACHE_LIMIT = 50_000
_new = tuple.__new__


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
_OTHER_LAB_CODE = IgnoreReason.OTHER_LAB_CODE
_PRELIMINARY_RESULT = IgnoreReason.PRELIMINARY
_OTHER_MEDICATION = IgnoreReason.OTHER_MEDICATION


def _finite(number: float) -> bool:
    """Say whether a JSON number is a finite double (an integer past 1.8e308 is not)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _field_not_unicode(obj: dict[str, Any], fields: Iterable[str]) -> str | None:
    """Return the first of `fields` whose text holds a lone surrogate, if any."""
    for field in fields:
        value = obj.get(field)
        texts = value if type(value) is list else (value,)
        if any(type(text) is str and _SURROGATE.search(text) for text in texts):
            return field
    return None


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


def _dead_letter(exc: ValidationError, raw: bytes) -> DeadLetter:
    reason, detail = _first_reason(exc)
    return DeadLetter(reason, detail, raw)


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

    def __init__(
        self, cfg: RuleConfig, codes: CodeSets | None = None, *, share_names: bool = False
    ) -> None:
        """Build the lookups; `share_names` keeps one copy of each patient, encounter and location.

        Sharing saves memory where decoded events are held by the hundred thousand (a replay's
        sort); its table grows with the distinct names, so a long-running stream leaves it off.
        """
        self.codes = codes or CodeSets(cfg)
        self._names: dict[str | None, str | None] | None = {None: None} if share_names else None
        self._factors = dict(FACTORS)
        self._plausible = {Analyte.POTASSIUM: cfg.k_plausible, Analyte.MAGNESIUM: cfg.mg_plausible}
        self._lab_codes = self.codes.lab
        # (code, name) -> classes: name matching and the union are done once per distinct pair.
        self._med_classes: dict[tuple[str | None, str | None], frozenset[MedClass]] = {}
        # Timers fall at most this far after the event that sets them; every instant they
        # print must be a date (years 1..9999).
        self._latest = LAST_INSTANT - Windows(cfg).reach

    def decode(self, raw: bytes) -> Decoded:
        """Decode one message; never raises on any input."""
        if len(raw) > MAX_MESSAGE_BYTES:
            return self._decode(raw, True)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._decode(raw, True)  # rare: parsed again where the defect is named
        # The common case, a valid envelope, without the general path's calls (orjson yields
        # exact built-in types); anything else is named by _decode_object.
        if type(obj) is dict:
            get = obj.get
            kind, event_id, patient_id = get("kind"), get("event_id"), get("patient_id")
            if (
                type(event_id) is str
                and type(patient_id) is str
                and 0 < len(event_id) <= 128
                and 0 < len(patient_id) <= 64
            ):
                try:
                    if kind == _LAB_KIND:
                        code = get("code")
                        # Most lab results carry codes the rules do not read, and the models
                        # read nothing else of them: they end here.
                        if type(code) is str and code not in self._lab_codes:
                            return _new(Ignored, (patient_id, event_id, _OTHER_LAB_CODE))
                        return self._lab(obj, raw, True)
                    if kind == _MED_KIND:
                        return self._medication(obj, raw, True)
                except ValidationError as exc:
                    return _dead_letter(exc, raw)
        return self._decode_object(obj, raw, True)

    def decode_by_models(self, raw: bytes) -> Decoded:
        """Decode one message through the pydantic wire models only (the reference path)."""
        return self._decode(raw, False)

    def _decode(self, raw: bytes, lean: bool) -> Decoded:
        if len(raw) > MAX_MESSAGE_BYTES:
            return DeadLetter("too_large", f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}", raw)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self._decode_standard(raw, exc)
        # orjson output holds no lone surrogates, which the lean checks could not tell apart.
        return self._decode_object(obj, raw, lean)

    def _decode_standard(self, raw: bytes, exc: orjson.JSONDecodeError) -> Decoded:
        # orjson refuses numbers beyond a double (1e400) and NaN/Infinity literals; the
        # standard parser reads them, so such a message is non-finite, not broken JSON. Given
        # bytes it would also guess UTF-16 or UTF-32: canonical JSON is UTF-8 (a BOM allowed).
        try:
            obj = json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constants)
        except (ValueError, RecursionError):
            return DeadLetter("bad_json", str(exc), raw)
        # It also reads escaped lone surrogates, which no output can encode: a text field
        # holding one is ill-typed, named after the envelope as any other defect is.
        if type(obj) is dict and _envelope_defect(obj) is None:
            code = obj.get("code")
            other_lab = (
                obj["kind"] == _LAB_KIND and type(code) is str and code not in self._lab_codes
            )
            model = model_for(obj["kind"])
            # A lab of another code is checked for its envelope alone (RULES.md 7).
            fields = (
                ("event_id", "patient_id") if other_lab or model is None else model.model_fields
            )
            field = _field_not_unicode(obj, fields)
            if field is not None:
                detail = f"{field}: holds a lone surrogate, not Unicode text"
                return DeadLetter(f"bad_type:{field}", detail, raw)
        return self._decode_object(obj, raw, False)

    def _decode_object(self, obj: Any, raw: bytes, lean: bool) -> Decoded:
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
                return self._lab(obj, raw, lean)
            return self._medication(obj, raw, lean)
        except ValidationError as exc:
            return _dead_letter(exc, raw)

    def _lab(self, obj: dict[str, Any], raw: bytes, lean: bool) -> Decoded:
        code = obj.get("code")
        if code is None:
            return DeadLetter("missing_field:code", "code is missing or null", raw)
        if not isinstance(code, str):
            return DeadLetter("bad_type:code", "code must be a string", raw)
        analyte = self._lab_codes.get(code)
        if analyte is None:
            return _new(Ignored, (obj["patient_id"], obj["event_id"], _OTHER_LAB_CODE))
        fields = _lean_lab(obj) if lean else None
        if fields is None:
            fields = _validated_lab(obj)
        status, given, unit, collected, resulted, result_id, flags, encounter_id, location = fields
        value: float | None = None
        if status not in REMOVAL_STATUSES:
            if given is None:
                return DeadLetter("missing_field:value", "value is missing or null", raw)
            if not _finite(given):
                return DeadLetter("non_finite_value", "value beyond a double's range", raw)
            if unit is None:
                return DeadLetter("missing_field:unit", "unit is missing or null", raw)
            factor = self._factors[analyte].get(unit.strip().lower())
            if factor is None:
                return DeadLetter(f"bad_unit:{unit}", f"{analyte} in {unit!r}", raw)
            value = given * factor
            low, high = self._plausible[analyte]
            if not low <= value <= high:
                detail = f"{analyte} {given} {unit} outside [{low}, {high}]"
                return DeadLetter("implausible_value", detail, raw)
        if resulted < collected:
            return DeadLetter("resulted_before_collected", "resulted_at < collected_at", raw)
        if resulted > self._latest:
            return DeadLetter("bad_timestamp:resulted_at", "too late for the rules' timers", raw)
        patient_id, event_id = obj["patient_id"], obj["event_id"]
        if status is _PRELIMINARY:
            return _new(Ignored, (patient_id, event_id, _PRELIMINARY_RESULT))
        names = self._names
        if names is not None:
            patient_id = names.setdefault(patient_id, patient_id)
            encounter_id = names.setdefault(encounter_id, encounter_id)
            location = names.setdefault(location, location)
        hemolyzed = bool(flags) and any(f.strip().lower() in _HEMOLYZED for f in flags)  # type: ignore[union-attr]
        return _new(
            LabResult,
            (
                resulted,
                patient_id,
                event_id,
                analyte,
                value,
                collected,
                status,
                result_id if result_id is not None else event_id,
                hemolyzed,
                encounter_id,
                location,
            ),
        )

    def _medication(self, obj: dict[str, Any], raw: bytes, lean: bool) -> Decoded:
        fields = _lean_medication(obj) if lean else None
        if fields is None:
            fields = _validated_medication(obj)
        action, code, name, at, order_id, dose, encounter_id, location = fields
        if code is None and name is None and action is not _CANCELLED_ACTION:
            return DeadLetter("missing_code_and_name", "code and name are both null", raw)
        if type(dose) is float and not math.isfinite(dose):
            return DeadLetter("non_finite_value", f"dose {dose}", raw)
        if at > self._latest:
            return DeadLetter("bad_timestamp:at", "too late for the rules' timers", raw)
        key = (code, name)
        classes = self._med_classes.get(key)
        if classes is None:
            classes = self.codes.med_classes(code, name)
            if len(self._med_classes) < _MED_CACHE_LIMIT:
                self._med_classes[key] = classes
        patient_id = obj["patient_id"]
        if not classes and action is not _CANCELLED_ACTION:
            return _new(Ignored, (patient_id, obj["event_id"], _OTHER_MEDICATION))
        names = self._names
        if names is not None:
            patient_id = names.setdefault(patient_id, patient_id)
            encounter_id = names.setdefault(encounter_id, encounter_id)
            location = names.setdefault(location, location)
        return _new(
            Medication,
            (
                at,
                patient_id,
                obj["event_id"],
                action,
                classes,
                order_id,
                encounter_id,
                location,
            ),
        )


LabFields = tuple[
    LabStatus, int | float | None, str | None, Micros, Micros, str | None, list[str] | None,
    str | None, str | None,
]  # fmt: skip
MedicationFields = tuple[
    MedAction, str | None, str | None, Micros, str | None, Any, str | None, str | None
]


def _validated_lab(obj: dict[str, Any]) -> LabFields:
    """Return the fields of LabResultIn; raise ValidationError naming the first defect."""
    lab = LabResultIn.model_validate(obj)
    return (
        lab.status,
        lab.value,
        lab.unit,
        cast(Micros, lab.collected_at),
        cast(Micros, lab.resulted_at),
        lab.result_id,
        lab.flags,
        lab.encounter_id,
        lab.location,
    )


def _validated_medication(obj: dict[str, Any]) -> MedicationFields:
    """Return the fields of MedicationIn; raise ValidationError naming the first defect."""
    med = MedicationIn.model_validate(obj)
    return (
        med.action,
        med.code,
        med.name,
        cast(Micros, med.at),
        med.order_id,
        med.dose,
        med.encounter_id,
        med.location,
    )


def _lean_lab(obj: dict[str, Any]) -> LabFields | None:
    """Return the fields LabResultIn would validate, or None for anything it might refuse.

    The envelope and code are already valid; None sends the message through the model, which
    names the first defect.
    """
    get = obj.get
    status = get("status", "final")
    status = _STATUSES.get(status) if type(status) is str else None
    value = get("value")
    unit, result_id, flags = get("unit"), get("result_id"), get("flags")
    encounter_id, location = get("encounter_id"), get("location")
    collected, resulted = get("collected_at"), get("resulted_at")
    if (
        status is None
        or type(value) not in _NUMBER_OR_NULL
        or type(unit) not in _TEXT_OR_NULL
        or type(collected) is not str
        or type(resulted) is not str
        or type(result_id) not in _TEXT_OR_NULL
        or type(encounter_id) not in _TEXT_OR_NULL
        or type(location) not in _TEXT_OR_NULL
    ):
        return None
    if flags is not None and (type(flags) is not list or any(type(f) is not str for f in flags)):
        return None
    try:
        collected, resulted = parse_timestamp(collected), parse_timestamp(resulted)
    except TimestampError:
        return None
    return status, value, unit, collected, resulted, result_id, flags, encounter_id, location


def _lean_medication(obj: dict[str, Any]) -> MedicationFields | None:
    """Return the fields MedicationIn would validate, or None for anything it might refuse."""
    get = obj.get
    action = get("action")
    action = _ACTIONS.get(action) if type(action) is str else None
    code, name, at, order_id = get("code"), get("name"), get("at"), get("order_id")
    dose, encounter_id, location = get("dose"), get("encounter_id"), get("location")
    if (
        action is None
        or type(code) not in _TEXT_OR_NULL
        or type(name) not in _TEXT_OR_NULL
        or type(at) is not str
        or type(order_id) not in _TEXT_OR_NULL
        or type(get("route")) not in _TEXT_OR_NULL
        or type(dose) not in _DOSE_TYPES
        or type(get("dose_unit")) not in _TEXT_OR_NULL
        or type(encounter_id) not in _TEXT_OR_NULL
        or type(location) not in _TEXT_OR_NULL
    ):
        return None
    try:
        at = parse_timestamp(at)
    except TimestampError:
        return None
    return action, code, name, at, order_id, dose, encounter_id, location
