"""HL7 v2 adapter: ORU/OUL results -> lab_result; RDE/ORM/OMP/RDS/RAS -> medication.

Ids are deterministic, so a redelivered message maps to the same events (dedup downstream):
  lab:        hl7:<MSH-3>:<MSH-10>:<OBR group #>.<OBX # within the group>
  medication: hl7:<MSH-3>:<MSH-10>:o<ORC group #>[.<RXA # within the group>]
The OBX number is its position in the OBR group (equal to OBX-1 in a conforming message,
but never colliding when a sender repeats set ids). A message without MSH-10 uses a hash of
its bytes instead. result_id is "<filler order number>:<OBX-3 code>", stable across corrections.
Rejected.raw is the message from MSH to its last segment as sent (trailing segment terminators
and MLLP framing removed). K/Mg OBX in a message other than ORU/OUL (an ORM order carrying
prior results, say) is rejected as hl7_unsupported_message rather than mapped or dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from streams.adapters import AdapterOutput, AdapterSettings, AdapterStats, Rejected
from streams.adapters import canonical as ev
from streams.adapters.hl7_parse import (
    BATCH_SEGMENTS,
    Hl7ParseError,
    Message,
    parse_message,
    split_blocks,
)
from streams.adapters.hl7_pharmacy import pharmacy_events
from streams.adapters.hl7_support import Skip, Unmappable, codings, patient_visit, timestamp

LAB_MESSAGES = frozenset({"ORU", "OUL"})
PHARMACY_MESSAGES = frozenset({"RDE", "ORM", "OMP", "RDS", "RAS"})
# OBX-11 (HL7 table 0085) -> canonical status; N ("not asked") carries no result: skipped.
OBX_STATUS = {
    "F": "final",
    "U": "final",
    "C": "corrected",
    "A": "corrected",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "I": "preliminary",
    "O": "preliminary",
    "X": "cancelled",
    "D": "entered-in-error",
    "W": "entered-in-error",
}
REMOVALS = frozenset({"cancelled", "entered-in-error"})


def iter_canonical(
    stream: BinaryIO, settings: AdapterSettings, stats: AdapterStats | None = None
) -> Iterator[AdapterOutput]:
    """Map a file or stream of HL7 v2 messages (batch files included)."""
    stats = stats if stats is not None else AdapterStats()
    for block in split_blocks(stream):
        try:
            outs = list(_block(block, settings, stats))
        except Exception as exc:  # a defect of this message must not end the feed
            outs = [Rejected(block, "hl7_parse_error", f"cannot be mapped: {type(exc).__name__}")]
        for out in outs:
            yield stats.count(out)


def _block(block: bytes, settings: AdapterSettings, stats: AdapterStats) -> Iterator[AdapterOutput]:
    head = block[:3].decode("latin-1")
    if head in BATCH_SEGMENTS:
        lines = [line for line in block.splitlines() if line.strip()]
        if len(lines) > 1:
            yield Rejected(block, "hl7_parse_error", f"segments outside a message after {head}")
        return
    if head != "MSH":
        yield Rejected(block, "hl7_parse_error", "data before the first MSH segment")
        return
    try:
        msg = parse_message(block)
    except Hl7ParseError as exc:
        yield Rejected(block, "hl7_parse_error", str(exc))
        return
    code, trigger = msg.type()
    label = f"{code}^{trigger}" if trigger else code or "(no MSH-9)"
    outs: list[AdapterOutput] = []
    if code in LAB_MESSAGES:
        outs = list(_results(msg, settings, stats))
    elif code in PHARMACY_MESSAGES:
        outs = list(pharmacy_events(msg, code, message_key(msg), settings, stats))
    yield from outs
    if code not in LAB_MESSAGES and _carries_k_mg(msg, settings):
        # Its medications are mapped; its K/Mg results are not, and must not vanish.
        detail = f"{label} carries K/Mg OBX results; only ORU/OUL results are mapped"
        yield Rejected(block, "hl7_unsupported_message", detail)
    elif not outs:
        stats.skip(label)


def message_key(msg: Message) -> tuple[str, str]:
    """(sending application, control id) that prefix every event id of a message."""
    app = msg.get(msg.msh, 3) or "-"
    control = msg.get(msg.msh, 10) or "sha256-" + hashlib.sha256(msg.raw).hexdigest()[:16]
    return app, control


def _carries_k_mg(msg: Message, settings: AdapterSettings) -> bool:
    aliases = settings.aliases
    for seg in msg.segments:
        if seg[0] == "OBX":
            unit = aliases.unit(msg.get(seg, 6) or msg.get(seg, 6, 2))
            if aliases.lab_loinc(codings(msg, seg, 3), unit):
                return True
    return False


@dataclass
class _Group:
    index: int
    obr: list[str] | None
    orc: list[str] | None
    notes: list[str] = field(default_factory=list)
    size: int = 0


@dataclass
class _Obs:
    group: _Group
    obx: list[str]
    pid: list[str] | None
    pv1: list[str] | None
    ordinal: int
    notes: list[str] = field(default_factory=list)


def _walk(msg: Message) -> list[_Obs]:
    """OBX segments with their OBR group, patient, visit and following NTE comments."""
    pid = pv1 = orc = None
    group: _Group | None = None
    last: _Group | _Obs | None = None
    groups = 0
    found: list[_Obs] = []
    for seg in msg.segments[1:]:
        name = seg[0]
        if name == "PID":
            pid, pv1, orc, group, last = seg, None, None, None, None
        elif name == "PV1":
            pv1 = seg
        elif name == "ORC":
            orc = seg
        elif name == "OBR":
            groups += 1
            group = last = _Group(groups, seg, orc)
        elif name == "OBX":
            if group is None:
                groups += 1
                group = _Group(groups, None, orc)
            group.size += 1
            last = _Obs(group, seg, pid, pv1, group.size)
            found.append(last)
        elif name == "NTE" and last is not None:
            last.notes.append(msg.unescape(msg.raw_field(seg, 3)))
        elif name == "SPM" and group is not None and msg.get(seg, 24).upper() == "HEM":
            group.notes.append("hemolyzed")  # SPM-24 specimen condition, HL7 table 0493
    return found


def _results(
    msg: Message, settings: AdapterSettings, stats: AdapterStats
) -> Iterator[AdapterOutput]:
    aliases = settings.aliases
    key = message_key(msg)
    for obs in _walk(msg):
        unit = aliases.unit(msg.get(obs.obx, 6) or msg.get(obs.obx, 6, 2))
        loinc = aliases.lab_loinc(codings(msg, obs.obx, 3), unit)
        if loinc is None:
            continue
        try:
            yield _lab(msg, obs, loinc, unit, key, settings)
        except Skip as skip:
            stats.skip(str(skip))
        except Unmappable as exc:
            yield Rejected(msg.raw, exc.reason, exc.detail)


def _value(msg: Message, obx: list[str], status: str) -> int | float | None:
    raw = msg.raw_field(obx, 5).split(msg.repetition, 1)[0]
    if msg.get(obx, 2).upper() == "SN":  # structured numeric: comparator^num1^separator^num2
        parts = raw.split(msg.component)
        if parts[0] not in ("", "=") or any(p.strip() for p in parts[2:]):
            raise Unmappable("bad_value", f"OBX-5 {raw!r} is not an exact number")
        text = parts[1] if len(parts) > 1 else ""
    else:
        text = msg.unescape(raw.split(msg.component, 1)[0])
    if not text.strip():
        if status in REMOVALS:
            return None
        raise Unmappable("missing_field:value", "OBX-5 is empty")
    try:
        return ev.parse_number(text)
    except ValueError:
        if status in REMOVALS:
            return None  # a removal needs no value (RULES.md 7); OBX-5 may say why it was
        raise Unmappable("bad_value", f"OBX-5 {text!r} is not a number") from None


def _lab(
    msg: Message,
    obs: _Obs,
    loinc: str,
    unit: str | None,
    key: tuple[str, str],
    settings: AdapterSettings,
) -> AdapterOutput:
    obx, obr, orc = obs.obx, obs.group.obr, obs.group.orc
    flag = msg.get(obx, 11).upper() or msg.get(obr, 25).upper() or "F"
    if flag == "N":
        raise Skip("OBX-11=N")
    status = OBX_STATUS.get(flag)
    if status is None:
        raise Unmappable("bad_status", f"OBX-11 {flag!r}")
    patient_id, encounter_id, location = patient_visit(msg, obs.pid, obs.pv1)
    collected = timestamp(msg, settings, "collected_at", (obr, 7), (obx, 14))
    resulted = timestamp(msg, settings, "resulted_at", (obr, 22), (obx, 19), (msg.msh, 7))
    filler, _ = msg.first((obr, 3, 1), (obr, 2, 1), (orc, 3, 1), (orc, 2, 1))
    local_code = msg.get(obx, 3) or loinc
    texts = [*obs.notes, *obs.group.notes, msg.raw_field(obx, 8)]
    return ev.lab_result(
        event_id=ev.event_id("hl7", *key, f"{obs.group.index}.{obs.ordinal}"),
        patient_id=patient_id,
        encounter_id=encounter_id,
        location=location,
        code=loinc,
        value=_value(msg, obx, status),
        unit=unit,
        collected_at=collected,
        resulted_at=resulted,
        status=status,
        result_id=f"{filler}:{local_code}" if filler else None,
        hemolyzed=ev.says_hemolyzed(texts),
    )
