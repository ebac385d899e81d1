from __future__ import annotations

import logging

import pytest

from alerts.decoder import Ignored, IgnoreReason
from alerts.events import Analyte, LabResult, LabStatus
from alerts.timestamps import parse_timestamp
from streams.admission import Admission, Refusal

NOW = parse_timestamp("2024-03-04T10:00:00Z")
WALL = NOW / 1_000_000
HOUR = 3_600_000_000


def _lab(patient_id: str, available: int) -> LabResult:
    return LabResult(
        available, patient_id, "e1", Analyte.POTASSIUM, 3.1, available - HOUR,
        LabStatus.FINAL, "e1", False, None, None,
    )  # fmt: skip


class Load:
    """Patients' events in memory, and the patients asked about."""

    def __init__(self, held: dict[str, int], limit: int = 10) -> None:
        self.held, self.limit, self.asked = held, limit, []

    def overloaded(self, patient_id: str) -> int | None:
        self.asked.append(patient_id)
        n = self.held.get(patient_id, 0)
        return n if n >= self.limit else None


IGNORED = Ignored("P1", "e9", IgnoreReason.OTHER_LAB_CODE)


@pytest.mark.parametrize(
    ("key", "ev", "held", "lead_hours", "reason"),
    [
        (b"P1", _lab("P1", NOW), 0, 24, None),
        (b"P1", _lab("P1", NOW + 24 * HOUR), 0, 24, None),
        (b"P1", _lab("P1", NOW + 24 * HOUR + 1), 0, 24, "ahead_of_clock"),
        (b"P1", _lab("P1", NOW + 9000 * HOUR), 0, 0, None),  # no limit
        (b"P1", _lab("P1", NOW - 9000 * HOUR), 0, 24, None),  # old events are not refused
        (b"P1", IGNORED, 0, 24, None),
        (b"P1", _lab("P1", NOW), 10, 24, "patient_overloaded"),
        (b"P1", IGNORED, 10, 24, "patient_overloaded"),
        (b"P2", _lab("P1", NOW), 0, 24, "key_mismatch"),
        (None, IGNORED, 0, 24, "key_mismatch"),
        # the first that applies names the refusal
        (b"P2", _lab("P1", NOW + 48 * HOUR), 10, 24, "key_mismatch"),
        (b"P1", _lab("P1", NOW + 48 * HOUR), 10, 24, "ahead_of_clock"),
    ],
)
def test_a_message_is_refused_for_the_first_reason_that_applies(key, ev, held, lead_hours, reason):
    refusal = Admission(lead_hours, 10).refusal(key, 0, ev, Load({"P1": held}), WALL)
    assert (refusal.reason if refusal else None) == reason


def test_a_refusal_warns_once_per_reason_and_partition_without_the_patient(caplog):
    admission = Admission(24, 10)
    ahead = _lab("MRN-0042117", NOW + 30 * HOUR)
    load = Load({"MRN-0042117": 12})
    with caplog.at_level(logging.INFO):
        for partition in (0, 0, 1):
            assert admission.refusal(b"MRN-0042117", partition, ahead, load, WALL) == Refusal(
                "ahead_of_clock", "its time is 30.0 h ahead of the worker's clock (more than 24 h)"
            )
        for partition in (0, 0):
            refusal = admission.refusal(b"MRN-0042117", partition, IGNORED._replace(
                patient_id="MRN-0042117"), load, WALL)  # fmt: skip
            assert refusal is not None and refusal.reason == "patient_overloaded"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [w.split(":")[0] for w in warnings] == ["partition 0", "partition 1", "partition 0"]
    assert "ahead_of_clock" in warnings[0] and "KMG_MAX_PATIENT_EVENTS 10" in warnings[2]
    assert not any("MRN-0042117" in w for w in warnings)
