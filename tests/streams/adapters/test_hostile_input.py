"""Messages that once ended a feed or vanished: each is mapped, rejected or counted, never lost."""

from __future__ import annotations

import orjson
import pytest

from streams.adapters import hl7v2
from tests.streams.adapters.support import run
from tests.streams.adapters.test_fhir import observation
from tests.streams.adapters.test_hl7v2 import OBR, PID, message, obx

LABS_HEADER = (
    b"patient_id,encounter_id,analyte,value,unit,collected_at,resulted_at,flag,specimen,"
    b"itemid,ref_low,ref_high,priority,raw_value,comments,source_id\n"
)


def lab_row(value: bytes = b"1.8", comments: bytes = b"", source_id: int = 31) -> bytes:
    return (
        b"10000032,,magnesium," + value + b",mg/dL,2180-03-23 11:51:00,2180-03-23 16:40:00,,"
        b"serum,50960,1.6,2.6,ROUTINE," + value + b"," + comments + b"," + str(source_id).encode()
    )


def test_an_integer_past_64_bits_is_sent_on_as_a_double():
    # It ended the feed with "Integer exceeds 64-bit range"; the decoder now rejects it
    # downstream as an implausible value, like any other absurd number.
    event = run("hl7v2", message(PID, OBR, obx("K^Potassium^L", "9" * 20, "mmol/L"))).only()
    assert event["value"] == 1e20


def test_a_null_date_east_of_utc_is_a_bad_timestamp_not_a_crash():
    obr = OBR.replace("20240304060000", "00010101")
    outcome = run(
        "hl7v2", message(PID, obr, obx("K^Potassium^L", "3.1", "mmol/L")), "Europe/Berlin"
    )
    assert [r.reason for r in outcome.rejected] == ["bad_timestamp"]


def test_a_message_that_cannot_be_mapped_is_rejected_and_the_next_one_mapped(monkeypatch):
    def broken(*args: object) -> None:
        raise RuntimeError("a defect in the mapping")

    good = message(PID, OBR, obx("K^Potassium^L", "3.1", "mmol/L"), ctl="C2")
    monkeypatch.setattr(hl7v2, "_walk", broken)
    bad = run("hl7v2", message(PID, OBR, obx("K^Potassium^L", "3.1", "mmol/L")))
    assert [(r.reason, r.detail) for r in bad.rejected] == [
        ("hl7_parse_error", "cannot be mapped: RuntimeError")
    ]
    monkeypatch.undo()
    assert run("hl7v2", bad.rejected[0].raw + good).events[0]["value"] == 3.1


def test_a_pharmacy_message_with_k_results_maps_its_medication_and_rejects_the_results():
    rxe = "RXE|1|8591^Potassium chloride 20 mEq^RXNORM|20||mEq"
    orc = "ORC|NW|O1||||||||||||||20240304080000"
    k_obx = obx("2823-3^Potassium^LN", "2.9", "mmol/L")
    outcome = run("hl7v2", message(PID, orc, rxe, k_obx, type="RDE^O11"))
    assert [e["kind"] for e in outcome.events] == ["medication"]
    assert [r.reason for r in outcome.rejected] == ["hl7_unsupported_message"]


def test_a_cancelled_result_with_text_for_its_value_is_a_removal():
    flagged = obx("K^Potassium^L", "Specimen haemolysed - test cancelled", "mmol/L", "X")
    event = run("hl7v2", message(PID, OBR, flagged)).only()
    assert (event["status"], event["value"]) == ("cancelled", None)


@pytest.mark.parametrize(
    "shape",
    [
        {"resourceType": "Bundle", "entry": 5},
        {"resourceType": "Observation", "status": "final", "code": {"coding": 7}},
        {"resourceType": "MedicationRequest", "intent": ["order"], "status": "active"},
    ],
    ids=["entry_number", "coding_number", "intent_list"],
)
def test_a_fhir_resource_of_the_wrong_shape_is_rejected_and_the_next_line_mapped(shape):
    good = observation()
    outcome = run("fhir", orjson.dumps(shape) + b"\n" + orjson.dumps(good) + b"\n")
    assert [r.reason for r in outcome.rejected] == ["fhir_parse_error"]
    assert outcome.rejected[0].raw == orjson.dumps(shape)
    assert [e["value"] for e in outcome.events] == [3.2]


def test_bundle_entries_without_a_resource_are_counted():
    deleted = {"request": {"method": "DELETE", "url": "Observation/o1"}}
    history = {"resourceType": "Bundle", "entry": [deleted, {"resource": "o2"}]}
    assert run("fhir", orjson.dumps(history)).stats.skipped == {"Bundle.entry without resource": 2}
    empty = {"resourceType": "Bundle", "type": "searchset"}
    assert run("fhir", orjson.dumps(empty)).stats.skipped == {"Bundle without entries": 1}


def test_a_quote_inside_an_unquoted_csv_field_joins_nothing():
    # Rows were swallowed: a stray inch mark made the reader join lines until the next one.
    rows = [lab_row(comments=b'drawn from 5" line', source_id=n) for n in range(31, 36)]
    outcome = run("mimic", LABS_HEADER + b"\n".join(rows) + b"\n")
    assert [e["event_id"] for e in outcome.events] == [f"mimic:labevent:{n}" for n in range(31, 36)]
    assert outcome.rejected == []


@pytest.mark.parametrize(
    ("bad", "detail"),
    [
        (lab_row(comments=b"h\xe9molys\xe9", source_id=32), "not UTF-8"),
        (lab_row(comments=b"a\rb", source_id=32), "2 CSV rows in one record"),
        (lab_row(comments=b"x" * 140_000, source_id=32), "not a CSV record: field larger"),
    ],
    ids=["latin1_byte", "lone_cr", "field_past_csv_limit"],
)
def test_an_unreadable_csv_record_is_rejected_alone(bad, detail):
    outcome = run("mimic", LABS_HEADER + lab_row() + b"\n" + bad + b"\n" + lab_row(source_id=33))
    assert [r.raw for r in outcome.rejected] == [bad]
    assert outcome.rejected[0].detail.startswith(detail)
    assert [e["event_id"] for e in outcome.events] == ["mimic:labevent:31", "mimic:labevent:33"]
