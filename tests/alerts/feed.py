"""Build canonical input events (RULES.md section 1) for tests, with sensible clinical defaults.

Times are written as `t("08:00")` (day 1 = 2024-03-04, UTC); `t` returns the exact string the
service must print for that instant (RULES.md section 7), so expected alert times read as
`t("08:30")` and compare as strings.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

K_CODE = "2823-3"  # K [Moles/volume] in Serum or Plasma
MG_CODE = "19123-9"  # Mg [Mass/volume] in Serum or Plasma
MG_MMOL_CODE = "2601-3"  # Mg [Moles/volume] in Serum or Plasma
SODIUM_CODE = "2951-2"  # not in the K/Mg sets

KCL_CODE, MGSO4_CODE, MGO_CODE = "8591", "6585", "29155"
FUROSEMIDE_CODE, HCTZ_CODE = "4603", "5487"

PATIENT = "P1"
ENCOUNTER = "ENC-1"
LOCATION = "ICU-A"

DAY1 = datetime(2024, 3, 4, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def t(clock: str, day: int = 1, *, us: int = 0, hours: float = 0, minutes: float = 0) -> str:
    """Return the UTC instant `clock` (HH:MM[:SS[.ffffff]]) of `day`, shifted, as printed."""
    parts = clock.split(":")
    sec = float(parts[2]) if len(parts) > 2 else 0.0
    whole = int(sec)
    frac = round((sec - whole) * 1_000_000)
    dt = DAY1 + timedelta(
        days=day - 1,
        hours=int(parts[0]) + hours,
        minutes=int(parts[1]) + minutes,
        seconds=whole,
        microseconds=frac + us,
    )
    return stamp(dt)


def stamp(dt: datetime) -> str:
    """Format an aware datetime the way RULES.md section 7 prints output times."""
    dt = dt.astimezone(UTC)
    head = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{head}.{dt.microsecond:06d}Z" if dt.microsecond else f"{head}Z"


def instant(text: str) -> datetime:
    """Parse one of this module's `t(...)` strings (or any offset form) into a datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


def micros(text: str) -> int:
    """Return the instant of a timestamp string as integer microseconds since the epoch."""
    return (instant(text) - _EPOCH) // timedelta(microseconds=1)


def shift(text: str, *, hours: float = 0, minutes: float = 0, us: int = 0) -> str:
    """Return the timestamp `text` moved by the given amount."""
    return stamp(instant(text) + timedelta(hours=hours, minutes=minutes, microseconds=us))


def lab(
    event_id: str,
    *,
    code: str,
    value: float | None,
    unit: str | None,
    collected: str,
    resulted: str | None = None,
    patient: str = PATIENT,
    status: str = "final",
    result_id: str | None = None,
    flags: list[str] | None = None,
    encounter: str | None = ENCOUNTER,
    location: str | None = LOCATION,
    **extra: Any,
) -> dict[str, Any]:
    """Return a lab_result event; resulted defaults to the collected instant."""
    event = {
        "kind": "lab_result",
        "event_id": event_id,
        "patient_id": patient,
        "encounter_id": encounter,
        "location": location,
        "code": code,
        "value": value,
        "unit": unit,
        "collected_at": collected,
        "resulted_at": resulted if resulted is not None else collected,
        "status": status,
        "result_id": result_id,
        "flags": flags,
    }
    event.update(extra)
    return event


def k(
    event_id: str, value: float, collected: str, resulted: str | None = None, **kw: Any
) -> dict[str, Any]:
    """Return a serum potassium result in mmol/L unless `unit` is given."""
    kw.setdefault("unit", "mmol/L")
    return lab(event_id, code=K_CODE, value=value, collected=collected, resulted=resulted, **kw)


def mg(
    event_id: str, value: float, collected: str, resulted: str | None = None, **kw: Any
) -> dict[str, Any]:
    """Return a serum magnesium result in mg/dL unless `unit` is given."""
    kw.setdefault("unit", "mg/dL")
    return lab(event_id, code=MG_CODE, value=value, collected=collected, resulted=resulted, **kw)


def removal(
    event_id: str,
    result_id: str,
    at: str,
    *,
    code: str = MG_CODE,
    status: str = "entered-in-error",
    **kw: Any,
) -> dict[str, Any]:
    """Return a lab removal (entered-in-error or cancelled) of result_id, without value or unit."""
    event = lab(
        event_id,
        code=code,
        value=None,
        unit=None,
        collected=kw.pop("collected", at),
        resulted=at,
        status=status,
        result_id=result_id,
        **kw,
    )
    del event["value"], event["unit"]
    return event


def med(
    event_id: str,
    at: str,
    *,
    action: str = "ordered",
    code: str | None = None,
    name: str | None = None,
    order_id: str | None = None,
    patient: str = PATIENT,
    route: str | None = None,
    dose: float | str | None = None,
    dose_unit: str | None = None,
    encounter: str | None = ENCOUNTER,
    location: str | None = LOCATION,
    **extra: Any,
) -> dict[str, Any]:
    """Return a medication event."""
    event = {
        "kind": "medication",
        "event_id": event_id,
        "patient_id": patient,
        "encounter_id": encounter,
        "location": location,
        "action": action,
        "code": code,
        "name": name,
        "route": route,
        "dose": dose,
        "dose_unit": dose_unit,
        "at": at,
        "order_id": order_id,
    }
    event.update(extra)
    return event


def kcl(event_id: str, at: str, **kw: Any) -> dict[str, Any]:
    """Return a potassium chloride order (or administration, with action=...)."""
    kw.setdefault("code", KCL_CODE)
    kw.setdefault("name", "Potassium chloride ER 20 mEq tablet")
    kw.setdefault("route", "PO")
    kw.setdefault("dose", 20)
    kw.setdefault("dose_unit", "mEq")
    return med(event_id, at, **kw)


def mgso4(event_id: str, at: str, **kw: Any) -> dict[str, Any]:
    """Return a magnesium sulfate order (or administration)."""
    kw.setdefault("code", MGSO4_CODE)
    kw.setdefault("name", "Magnesium sulfate 2 g/50 mL IV")
    kw.setdefault("route", "IV")
    kw.setdefault("dose", 2)
    kw.setdefault("dose_unit", "g")
    return med(event_id, at, **kw)


def furosemide(event_id: str, at: str, **kw: Any) -> dict[str, Any]:
    """Return a furosemide (loop diuretic) order."""
    kw.setdefault("code", FUROSEMIDE_CODE)
    kw.setdefault("name", "Furosemide 40 mg IV")
    return med(event_id, at, **kw)


def hctz(event_id: str, at: str, **kw: Any) -> dict[str, Any]:
    """Return a hydrochlorothiazide (thiazide diuretic) order."""
    kw.setdefault("code", HCTZ_CODE)
    kw.setdefault("name", "Hydrochlorothiazide 25 mg tablet")
    return med(event_id, at, **kw)


def cancel(event_id: str, at: str, order_id: str, **kw: Any) -> dict[str, Any]:
    """Return a cancellation of order_id, with no code and no name (matched by order_id)."""
    return med(event_id, at, action="cancelled", order_id=order_id, **kw)


def encode(event: dict[str, Any] | bytes) -> bytes:
    """Return the message bytes of an event (bytes pass through unchanged)."""
    return event if isinstance(event, bytes) else orjson.dumps(event)


def alert_id(rule: str, trigger: str, patient: str = PATIENT) -> str:
    """Return the alert_id RULES.md 4.3 fixes, computed independently of the service."""
    return hashlib.sha256(f"{patient}|{rule}|{trigger}".encode()).hexdigest()[:32]


Expected = tuple[str, str, str, str, str, str, str | None]
"""(alert_id, rule, status, severity, at, trigger_event_id, resolution)."""


def fired(rule: str, severity: str, at: str, trigger: str, patient: str = PATIENT) -> Expected:
    """Return the expected projection of a firing alert."""
    return (alert_id(rule, trigger, patient), rule, "firing", severity, at, trigger, None)


def resolved(
    rule: str, severity: str, at: str, trigger: str, reason: str, patient: str = PATIENT
) -> Expected:
    """Return the expected projection of a resolved alert."""
    return (alert_id(rule, trigger, patient), rule, "resolved", severity, at, trigger, reason)


NOT_CHECKED, LOW, REFRACTORY = "MG_NOT_CHECKED", "MG_LOW_UNCORRECTED", "REFRACTORY_HYPOKALEMIA"
