"""Bytes of the state table: patient states, partition clocks, and events waiting in the buffer.

Every value carries the Kafka partition it was written for, so the in-memory indices can be
rebuilt per partition from any store (RocksDB or memory) after a rebalance or a crash.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from alerts.events import Analyte, LabResult, LabStatus, MedAction, MedClass, Medication
from alerts.state import PatientState

# A table key longer than any patient_id (at most 64 characters, RULES.md section 1), so it can
# never be a patient's key.
_CLOCK_KEY = "kmg:partition-clock:{partition}:".ljust(80, "~")
_LAB, _MED = "lab", "med"
_ANALYTES: dict[str | None, Analyte | None] = {a.value: a for a in Analyte}
_ANALYTES[None] = None
_STATUSES = {s.value: s for s in LabStatus}
_ACTIONS = {a.value: a for a in MedAction}
_CLASSES: dict[tuple[str, ...], frozenset[MedClass]] = {}
_SORTED_CLASSES: dict[frozenset[MedClass], tuple[MedClass, ...]] = {}
_new = tuple.__new__


def clock_key(partition: int) -> str:
    """Return the table key under which a partition's clock is kept."""
    return _CLOCK_KEY.format(partition=partition)


class StoredPatient(NamedTuple):
    partition: int
    state: PatientState


class StoredClock(NamedTuple):
    partition: int
    clock: dict[str, Any]


def encode_patient(partition: int, state: PatientState) -> bytes:
    """Return the table value of a patient's state."""
    return orjson.dumps({"partition": partition, "patient": state.to_dict()})


def encode_clock(partition: int, clock: dict[str, Any]) -> bytes:
    """Return the table value of a partition's clock."""
    return orjson.dumps({"partition": partition, "clock": clock})


def decode_value(raw: bytes) -> StoredPatient | StoredClock:
    """Decode a table value written by encode_patient or encode_clock."""
    data = orjson.loads(raw)
    if "patient" in data:
        return StoredPatient(data["partition"], PatientState.from_dict(data["patient"]))
    return StoredClock(data["partition"], data["clock"])


def encode_event(ev: LabResult | Medication) -> list[Any]:
    """Return a buffered event as JSON-ready data (for PatientState.pending)."""
    if type(ev) is LabResult:
        return [_LAB, *ev]
    med: Medication = ev  # type: ignore[assignment]
    classes = _SORTED_CLASSES.get(med.classes)
    if classes is None:
        classes = _SORTED_CLASSES[med.classes] = tuple(sorted(med.classes))
    return [_MED, *med[:4], classes, *med[5:]]


def decode_event(data: list[Any]) -> LabResult | Medication:
    """Rebuild a buffered event with the enum members the engine compares by identity."""
    # Lookups by value and tuple.__new__: the enum and NamedTuple constructors cost more than
    # the rest of releasing a buffered event.
    if data[0] == _LAB:
        _, a, pid, eid, analyte, value, collected, status, rid, hemolyzed, enc, loc = data
        return _new(
            LabResult,
            (a, pid, eid, _ANALYTES[analyte], value, collected, _STATUSES[status], rid,
             hemolyzed, enc, loc),
        )  # fmt: skip
    _, a, pid, eid, action, classes, order_id, enc, loc = data
    key = tuple(classes)
    members = _CLASSES.get(key)
    if members is None:
        members = _CLASSES[key] = frozenset(MedClass(c) for c in classes)
    return _new(Medication, (a, pid, eid, _ACTIONS[action], members, order_id, enc, loc))


def buffered_id(data: list[Any]) -> str:
    """Return the event_id of a buffered event."""
    return str(data[3])


def buffered_available(data: list[Any]) -> int:
    """Return the availability time of a buffered event."""
    return int(data[1])
