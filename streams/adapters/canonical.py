"""Building canonical events (RULES.md section 1) shared by every adapter.

Key order follows the scenario files in shared/scenarios; encoding is compact orjson.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable

import orjson

from streams.adapters import Canonical

MAX_EVENT_ID = 128
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_HEMOLYSIS = re.compile(r"ha?emoly[sz]", re.IGNORECASE)
# "not hemolyzed", "no hemolysis", "non-hemolysed", "QNS to verify hemolysis": no flag.
_NEGATED = re.compile(
    r"\b(?:not|no|non|without|verify|r/o|rule out)[\s-]+(?:\w+[\s-]+)?ha?emoly[sz]",
    re.IGNORECASE,
)


def event_id(*parts: object) -> str:
    """Join the parts with ':'; an id longer than 128 characters becomes a stable hash."""
    text = ":".join(str(p) for p in parts)
    if len(text) <= MAX_EVENT_ID:
        return text
    return f"{parts[0]}:sha256:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


_INT64 = 2**63


def parse_number(text: str) -> int | float:
    """A decimal number as sent ("5.10" -> 5.1, "20" -> 20); ValueError otherwise."""
    value = text.strip()
    if not _NUMBER.fullmatch(value):
        raise ValueError(text)
    if _INTEGER.fullmatch(value):
        whole = int(value)
        if -_INT64 <= whole < _INT64:
            return whole
        # Past 64 bits no JSON encoder here writes it as an integer: sent on as a double.
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(text)
    return number


def json_number(value: object) -> int | float:
    """A JSON number from a parsed document (bool and non-finite refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(repr(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(repr(value))
    return value


def says_hemolyzed(texts: Iterable[str | None]) -> bool:
    """True when a comment reports a hemolysed specimen (negated mentions do not count)."""
    for text in texts:
        if not text:
            continue
        mentions = len(_HEMOLYSIS.findall(text))
        if mentions > len(_NEGATED.findall(text)):
            return True
    return False


def lab_result(
    *,
    event_id: str,
    patient_id: str,
    encounter_id: str | None,
    location: str | None,
    code: str,
    value: int | float | None,
    unit: str | None,
    collected_at: str,
    resulted_at: str,
    status: str,
    result_id: str | None,
    hemolyzed: bool = False,
) -> Canonical:
    return Canonical(
        orjson.dumps(
            {
                "kind": "lab_result",
                "event_id": event_id,
                "patient_id": patient_id,
                "encounter_id": encounter_id,
                "location": location,
                "code": code,
                "value": value,
                "unit": unit,
                "collected_at": collected_at,
                "resulted_at": resulted_at,
                "status": status,
                "result_id": result_id,
                "flags": ["hemolyzed"] if hemolyzed else None,
            }
        )
    )


def medication(
    *,
    event_id: str,
    patient_id: str,
    encounter_id: str | None,
    location: str | None,
    action: str,
    code: str | None,
    name: str | None,
    route: str | None,
    dose: int | float | None,
    dose_unit: str | None,
    at: str,
    order_id: str | None,
) -> Canonical:
    return Canonical(
        orjson.dumps(
            {
                "kind": "medication",
                "event_id": event_id,
                "patient_id": patient_id,
                "encounter_id": encounter_id,
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
        )
    )
