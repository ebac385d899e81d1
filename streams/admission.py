"""Valid input messages a worker will not take: mis-keyed, timed too far ahead, a flooded patient.

Each refusal is a dead letter with a reason of its own (the processor keeps the original bytes).
A warning names the partition and the limit, never the patient, once per reason and partition.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Protocol

from alerts.decoder import Ignored
from alerts.events import LabResult, Medication
from streams.watermark import DEFAULT_MAX_EVENT_LEAD_HOURS, DEFAULT_MAX_PATIENT_EVENTS

log = logging.getLogger("kmg.stream")

_MICROS_PER_HOUR = 3_600_000_000


class Refusal(NamedTuple):
    """Why a valid message is dead-lettered: its reason and a detail without the patient."""

    reason: str
    detail: str


class PatientLoad(Protocol):
    """A partition's view of how many events each of its patients holds in memory."""

    def overloaded(self, patient_id: str) -> int | None:
        """Return the patient's events in memory if at the limit, else None."""


class Admission:
    """Decide, message by message, whether a valid event may enter its partition's state."""

    def __init__(
        self,
        max_event_lead_hours: float = DEFAULT_MAX_EVENT_LEAD_HOURS,
        max_patient_events: int = DEFAULT_MAX_PATIENT_EVENTS,
    ) -> None:
        """Build the guards; `max_event_lead_hours` 0 takes events of any time ahead."""
        self.max_event_lead_hours = max_event_lead_hours
        self.max_patient_events = max_patient_events
        self._max_lead = round(max_event_lead_hours * _MICROS_PER_HOUR) or None
        self._warned: set[tuple[str, int]] = set()

    def refusal(
        self,
        key: bytes | None,
        partition: int,
        ev: LabResult | Medication | Ignored,
        load: PatientLoad,
        wall: float,
    ) -> Refusal | None:
        """Return why the message keyed `key` carrying `ev` is refused, or None to take it."""
        ignored = type(ev) is Ignored
        patient_id: str = ev[0] if ignored else ev[1]  # type: ignore[assignment]
        if key != patient_id.encode():
            # patient_id is the partition key of every topic (RULES.md 1): a message keyed
            # otherwise may sit on another patient's partition, where a second state would grow.
            return Refusal("key_mismatch", "the message key is not the patient_id of its body")
        if not ignored and self._max_lead is not None:
            # An event the rules read moves its partition's W: one stamped by a clock set days
            # on would make every later event there late. Ignored events move no W.
            lead: int = ev[0] - round(wall * 1_000_000)  # type: ignore[operator]
            if lead > self._max_lead:
                return self._ahead(partition, lead)
        held = load.overloaded(patient_id)
        if held is not None:
            return self._overloaded(partition, held)
        return None

    def _ahead(self, partition: int, lead: int) -> Refusal:
        hours = lead / _MICROS_PER_HOUR
        if self._first_warning("ahead_of_clock", partition):
            log.warning(
                "partition %d: an event's time is %.1f h ahead of this worker's clock "
                "(KMG_MAX_EVENT_LEAD_HOURS %g): such events are dead-lettered ahead_of_clock "
                "so that they do not move the partition's watermark",
                partition,
                hours,
                self.max_event_lead_hours,
            )
        detail = (
            f"its time is {hours:.1f} h ahead of the worker's clock "
            f"(more than {self.max_event_lead_hours:g} h)"
        )
        return Refusal("ahead_of_clock", detail)

    def _overloaded(self, partition: int, held: int) -> Refusal:
        if self._first_warning("patient_overloaded", partition):
            log.warning(
                "partition %d: a patient holds %d events in memory (KMG_MAX_PATIENT_EVENTS %d): "
                "their messages are dead-lettered patient_overloaded until older ones age out",
                partition,
                held,
                self.max_patient_events,
            )
        detail = f"the patient holds {held} events in memory, the limit of this worker"
        return Refusal("patient_overloaded", detail)

    def _first_warning(self, reason: str, partition: int) -> bool:
        """Say whether this worker has yet to warn of `reason` on `partition`, and note it."""
        if (reason, partition) in self._warned:
            return False
        self._warned.add((reason, partition))
        return True
