"""Field extraction shared by the HL7 v2 result and pharmacy mappings."""

from __future__ import annotations

from streams.adapters import AdapterSettings
from streams.adapters.hl7_parse import Message
from streams.adapters.lab_aliases import Coding
from streams.adapters.timestamps import BadTimestamp, parse_hl7_ts


class Unmappable(Exception):
    """One event of a message cannot be mapped: becomes Rejected(message bytes, reason, detail)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


class Skip(Exception):
    """A part of a message that is valid but carries nothing to map; str() is the stats key."""


def codings(msg: Message, seg: list[str], n: int) -> list[Coding]:
    """(system, code, text) of a CE/CWE field: its two triplets and its original text (CWE-9)."""
    return [
        (msg.get(seg, n, 3), msg.get(seg, n, 1), msg.get(seg, n, 2)),
        (msg.get(seg, n, 6), msg.get(seg, n, 4), msg.get(seg, n, 5)),
        (None, None, msg.get(seg, n, 9)),
    ]


def patient_visit(
    msg: Message, pid: list[str] | None, pv1: list[str] | None
) -> tuple[str, str | None, str | None]:
    """(patient_id, encounter_id, location): PID-3.1 (PID-2.1 in old feeds), PV1-19.1, PV1-3.1."""
    patient_id, _ = msg.first((pid, 3, 1), (pid, 2, 1))
    if not patient_id:
        raise Unmappable("missing_field:patient_id", "no PID-3 (or PID-2) identifier")
    return patient_id, msg.get(pv1, 19) or None, msg.get(pv1, 3) or None


def timestamp(
    msg: Message, settings: AdapterSettings, name: str, *fields: tuple[list[str] | None, int]
) -> str:
    """The first non-empty of `fields` as RFC 3339; Unmappable when it is bad or none is set."""
    value, label = msg.first(*((seg, n, 1) for seg, n in fields))
    if not value:
        labels = ", ".join(f"{seg[0]}-{n}" for seg, n in fields if seg)
        raise Unmappable(f"missing_field:{name}", f"none of {labels} is set")
    try:
        return parse_hl7_ts(value, settings.tz)
    except BadTimestamp:
        raise Unmappable("bad_timestamp", f"{label} {value!r} ({name})") from None
