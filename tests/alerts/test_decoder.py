"""RULES.md section 7, validation: every dead-letter reason, its order, and what is ignored."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from alerts.decoder import MAX_MESSAGE_BYTES, DeadLetter, Ignored, IgnoreReason
from alerts.events import Analyte, LabResult, LabStatus, MedAction, MedClass, Medication
from tests.alerts.feed import SODIUM_CODE, k, kcl, lab, med, mg, micros, t
from tests.alerts.harness import decode

COLLECTED, RESULTED = t("07:00"), t("07:30")


def good_k(**changes: Any) -> dict[str, Any]:
    event = k("e1", 3.2, COLLECTED, RESULTED)
    event.update(changes)
    return event


def good_mg(**changes: Any) -> dict[str, Any]:
    event = mg("e1", 2.0, COLLECTED, RESULTED)
    event.update(changes)
    return event


def good_med(**changes: Any) -> dict[str, Any]:
    event = kcl("e1", t("08:00"), order_id="O1")
    event.update(changes)
    return event


def without(event: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key not in fields}


def _escaped(event: dict[str, Any]) -> bytes:
    """Serialise as the standard library does: lone surrogates escaped, integers of any size."""
    return json.dumps(event).encode()


def case(name: str, message: Any, reason: str):
    return pytest.param(message, reason, id=name)


CASES = [
    case("bad_json", b'{"kind": "lab_result", ', "bad_json"),
    case("bad_json_not_utf8", b"\xff\xfe{}", "bad_json"),
    case("bad_json_empty", b"", "bad_json"),
    case("bad_json_nan_token", b'{"kind": "lab_result", "value": NaN}', "bad_json"),
    # Found by review: the standard parser guessed UTF-16 and accepted the event.
    case("bad_json_utf16", json.dumps(good_k()).encode("utf-16-le"), "bad_json"),
    case("bad_json_utf16_bom", json.dumps(good_k()).encode("utf-16"), "bad_json"),
    case("bad_json_utf32", json.dumps(good_k()).encode("utf-32"), "bad_json"),
    case("not_an_object_list", b"[1, 2]", "not_an_object"),
    case("not_an_object_number", b"3", "not_an_object"),
    case("not_an_object_string", b'"lab_result"', "not_an_object"),
    case("not_an_object_null", b"null", "not_an_object"),
    case("unknown_kind_alert", good_k(kind="alert"), "unknown_kind"),
    case("unknown_kind_missing", without(good_k(), "kind"), "unknown_kind"),
    case("unknown_kind_wrong_case", good_k(kind="Lab_Result"), "unknown_kind"),
    case("missing_event_id", without(good_k(), "event_id"), "missing_field:event_id"),
    case("null_event_id", good_k(event_id=None), "missing_field:event_id"),
    case("missing_patient_id", without(good_k(), "patient_id"), "missing_field:patient_id"),
    case("bad_type_event_id_number", good_k(event_id=17), "bad_type:event_id"),
    case("bad_type_event_id_empty", good_k(event_id=""), "bad_type:event_id"),
    case("bad_type_event_id_129_chars", good_k(event_id="x" * 129), "bad_type:event_id"),
    case("bad_type_patient_id_65_chars", good_k(patient_id="p" * 65), "bad_type:patient_id"),
    case("bad_type_patient_id_list", good_k(patient_id=["P1"]), "bad_type:patient_id"),
    case("missing_code", without(good_k(), "code"), "missing_field:code"),
    case("bad_type_code", good_k(code=2823), "bad_type:code"),
    case("missing_value", without(good_k(), "value"), "missing_field:value"),
    case("null_value", good_k(value=None), "missing_field:value"),
    case("bad_type_value_string", good_k(value="3.2"), "bad_type:value"),
    case("bad_type_value_bool", good_k(value=True), "bad_type:value"),
    case("missing_unit", without(good_k(), "unit"), "missing_field:unit"),
    case("bad_type_unit", good_k(unit=1), "bad_type:unit"),
    case("missing_collected_at", without(good_k(), "collected_at"), "missing_field:collected_at"),
    case("missing_resulted_at", without(good_k(), "resulted_at"), "missing_field:resulted_at"),
    case("bad_type_collected_at", good_k(collected_at=1709535600), "bad_type:collected_at"),
    case("bad_type_result_id", good_k(result_id=5), "bad_type:result_id"),
    case("bad_type_flags_string", good_k(flags="hemolyzed"), "bad_type:flags"),
    case("bad_type_flags_item", good_k(flags=[1]), "bad_type:flags"),
    case("bad_type_encounter_id", good_k(encounter_id=12), "bad_type:encounter_id"),
    case("bad_type_location", good_k(location={"ward": 7}), "bad_type:location"),
    case("bad_status", good_k(status="amended"), "bad_status"),
    case("bad_status_wrong_case", good_k(status="FINAL"), "bad_status"),
    case("bad_status_number", good_k(status=1), "bad_status"),
    case(
        "bad_timestamp_collected",
        good_k(collected_at="2024-03-04 07:00:00Z"),
        "bad_timestamp:collected_at",
    ),
    case(
        "bad_timestamp_resulted",
        good_k(resulted_at="2024-03-04T07:30:00+0100"),
        "bad_timestamp:resulted_at",
    ),
    case(
        "timestamp_without_offset_collected",
        good_k(collected_at="2024-03-04T07:00:00"),
        "timestamp_without_offset:collected_at",
    ),
    case(
        "timestamp_without_offset_resulted",
        good_k(resulted_at="2024-03-04T07:30:00.5"),
        "timestamp_without_offset:resulted_at",
    ),
    case(
        "resulted_before_collected",
        good_k(collected_at=t("07:30"), resulted_at=t("07:30", us=-1)),
        "resulted_before_collected",
    ),
    case(
        "non_finite_value_overflow", good_k(value=1e308) | {"value": "__INF__"}, "non_finite_value"
    ),
    case("bad_unit_mg_per_l", good_mg(value=20, unit="mg/L"), "bad_unit:mg/L"),
    case("bad_unit_as_given", good_mg(unit=" MG/L "), "bad_unit: MG/L "),
    case("bad_unit_k_in_mg_dl", good_k(unit="mg/dL"), "bad_unit:mg/dL"),
    case("bad_unit_empty", good_k(unit=""), "bad_unit:"),
    case("implausible_k_low", good_k(value=0.49), "implausible_value"),
    case("implausible_k_high", good_k(value=15.01), "implausible_value"),
    case("implausible_mg_low", good_mg(value=0.09), "implausible_value"),
    case("implausible_mg_high", good_mg(value=20.01), "implausible_value"),
    case("implausible_mg_after_conversion", good_mg(value=8.3, unit="mmol/L"), "implausible_value"),
    case("implausible_negative", good_k(value=-3.2), "implausible_value"),
    case("missing_action", without(good_med(), "action"), "missing_field:action"),
    case("bad_action", good_med(action="given"), "bad_action"),
    case("bad_action_null", good_med(action=None), "bad_action"),
    case("missing_at", without(good_med(), "at"), "missing_field:at"),
    case("bad_timestamp_at", good_med(at="2024-03-04T08:00Z"), "bad_timestamp:at"),
    case(
        "timestamp_without_offset_at",
        good_med(at="2024-03-04T08:00:00"),
        "timestamp_without_offset:at",
    ),
    case("missing_code_and_name", good_med(code=None, name=None), "missing_code_and_name"),
    case(
        "missing_code_and_name_absent",
        without(good_med(), "code", "name"),
        "missing_code_and_name",
    ),
    case("bad_type_name", good_med(name=42), "bad_type:name"),
    case("bad_type_order_id", good_med(order_id=7), "bad_type:order_id"),
    case("bad_type_dose", good_med(dose=[20]), "bad_type:dose"),
    # Only the standard library's parser reads these; orjson refuses them.
    case("non_finite_value_huge_integer", _escaped(good_mg(value=10**400)), "non_finite_value"),
    case("non_finite_value_negative_huge", _escaped(good_k(value=-(10**309))), "non_finite_value"),
    case("surrogate_event_id", _escaped(good_k(event_id="e\ud800")), "bad_type:event_id"),
    case("surrogate_patient_id", _escaped(good_med(patient_id="\udfffP")), "bad_type:patient_id"),
    case("surrogate_location", _escaped(good_med(location="ICU\ud800")), "bad_type:location"),
    case("surrogate_encounter", _escaped(good_k(encounter_id="\udc00")), "bad_type:encounter_id"),
    case("surrogate_unit", _escaped(good_mg(unit="mg/dL\ud800")), "bad_type:unit"),
    case("surrogate_flag", _escaped(good_mg(flags=["ok", "\ud800"])), "bad_type:flags"),
    case("surrogate_result_id", _escaped(good_k(result_id="R\ud801")), "bad_type:result_id"),
    case("surrogate_name", _escaped(good_med(name="KCl \ud800")), "bad_type:name"),
    case("surrogate_order_id", _escaped(good_med(order_id="\ud800")), "bad_type:order_id"),
    case("surrogate_dose", _escaped(good_med(dose="\ud800 mEq")), "bad_type:dose"),
    case("surrogate_route", _escaped(good_med(route="\ud800")), "bad_type:route"),
    case(
        "envelope_before_surrogate",
        _escaped(without(good_med(location="\ud800"), "event_id")),
        "missing_field:event_id",
    ),
]


def _message(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    raw = orjson.dumps(value)
    # JSON has no infinity literal; a number too large for a double is the finite way to send one.
    return raw.replace(b'"__INF__"', b"1e400")


@pytest.mark.parametrize(("message", "reason"), CASES)
def test_dead_letter_reason(message, reason):
    raw = _message(message)
    result = decode(raw)
    assert isinstance(result, DeadLetter), result
    assert result.reason == reason, result.detail
    assert result.raw == raw  # the original bytes, untouched


def test_too_large_is_over_65536_bytes():
    base = orjson.dumps(good_k(note=""))
    pad = MAX_MESSAGE_BYTES - len(base)
    at_limit = orjson.dumps(good_k(note="x" * pad))
    over = orjson.dumps(good_k(note="x" * (pad + 1)))
    assert len(at_limit) == 65_536 and len(over) == 65_537
    assert isinstance(decode(at_limit), LabResult)
    result = decode(over)
    assert isinstance(result, DeadLetter) and result.reason == "too_large"


def test_too_large_is_checked_before_json():
    result = decode(b"{" * 70_000)
    assert isinstance(result, DeadLetter) and result.reason == "too_large"


ENVELOPE_FIRST = [
    case(
        "missing_patient_before_bad_unit",
        without(good_mg(unit="mg/L"), "patient_id"),
        "missing_field:patient_id",
    ),
    case(
        "missing_event_id_before_bad_timestamp",
        without(good_k(collected_at="yesterday"), "event_id"),
        "missing_field:event_id",
    ),
    case(
        "kind_before_event_id",
        without(good_k(kind="vital_sign"), "event_id"),
        "unknown_kind",
    ),
    case(
        "event_id_before_patient_id",
        without(good_k(), "event_id", "patient_id"),
        "missing_field:event_id",
    ),
    case(
        "bad_patient_before_missing_code_and_name",
        good_med(patient_id=3, code=None, name=None),
        "bad_type:patient_id",
    ),
    case(
        "envelope_of_an_other_lab_code_is_checked",
        without(
            lab("e1", code=SODIUM_CODE, value=140, unit="mmol/L", collected=COLLECTED), "patient_id"
        ),
        "missing_field:patient_id",
    ),
]


@pytest.mark.parametrize(("message", "reason"), ENVELOPE_FIRST)
def test_envelope_is_checked_first(message, reason):
    result = decode(message)
    assert isinstance(result, DeadLetter) and result.reason == reason


@pytest.mark.parametrize(
    "message",
    [
        lab("e1", code=SODIUM_CODE, value=140, unit="mmol/L", collected=COLLECTED),
        lab("e1", code=SODIUM_CODE, value=None, unit="furlongs", collected="not a time")
        | {"value": "abc"},
        without(
            lab("e1", code="2345-7", value=None, unit=None, collected=COLLECTED), "resulted_at"
        ),
        lab("e1", code=SODIUM_CODE, value=1e6, unit="mmol/L", collected=COLLECTED, status="weird"),
    ],
    ids=["valid_sodium", "garbage_body", "no_timestamps", "bad_status_and_value"],
)
def test_other_lab_code_is_checked_for_its_envelope_only_then_ignored(message):
    result = decode(message)
    assert result == Ignored("P1", "e1", IgnoreReason.OTHER_LAB_CODE)


def test_other_lab_code_with_a_lone_surrogate_outside_its_envelope_is_ignored():
    message = lab("e1", code=SODIUM_CODE, value=140, unit="mmol/L", collected=COLLECTED)
    result = decode(_escaped(message | {"location": "\ud800", "unit": "\udc00"}))
    assert result == Ignored("P1", "e1", IgnoreReason.OTHER_LAB_CODE)


def test_a_surrogate_pair_escaped_is_ordinary_text():
    result = decode(_escaped(good_med(location="Ward \U0001f3e5")))
    assert isinstance(result, Medication) and result.location == "Ward \U0001f3e5"


def test_a_valid_preliminary_is_ignored():
    assert decode(good_mg(status="preliminary")) == Ignored("P1", "e1", IgnoreReason.PRELIMINARY)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"unit": "mg/L"}, "bad_unit:mg/L"),
        ({"value": 40}, "implausible_value"),
        ({"value": None}, "missing_field:value"),
        ({"resulted_at": t("06:00")}, "resulted_before_collected"),
        ({"collected_at": "2024-03-04T07:00:00"}, "timestamp_without_offset:collected_at"),
        ({"value": "1.9"}, "bad_type:value"),
    ],
    ids=["bad_unit", "implausible", "no_value", "resulted_first", "no_offset", "value_string"],
)
def test_an_invalid_preliminary_is_dead_lettered_not_ignored(changes, reason):
    result = decode(good_mg(status="preliminary", **changes))
    assert isinstance(result, DeadLetter), result
    assert result.reason == reason


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_a_removal_needs_no_value_or_unit(status):
    message = without(good_mg(status=status, result_id="R1"), "value", "unit")
    result = decode(message)
    assert isinstance(result, LabResult)
    assert result.status == LabStatus(status)
    assert result.value is None
    assert result.result_id == "R1"


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_a_removal_still_needs_valid_timestamps(status):
    message = without(good_mg(status=status, resulted_at="soon"), "value", "unit")
    result = decode(message)
    assert isinstance(result, DeadLetter) and result.reason == "bad_timestamp:resulted_at"


def test_a_valid_lab_decodes_to_normalised_values():
    result = decode(good_mg(value=0.8, unit="mmol/L", result_id=None, flags=["Hemolyzed"]))
    assert isinstance(result, LabResult)
    assert result.analyte is Analyte.MAGNESIUM
    assert result.value == 0.8 * 2.4305
    assert result.available == micros(RESULTED)
    assert result.collected == micros(COLLECTED)
    assert result.result_id == "e1"  # defaults to the event_id
    assert result.hemolyzed is True
    assert (result.encounter_id, result.location) == ("ENC-1", "ICU-A")


def test_status_defaults_to_final():
    result = decode(without(good_k(), "status"))
    assert isinstance(result, LabResult) and result.status is LabStatus.FINAL


def test_unknown_extra_fields_are_ignored():
    assert isinstance(decode(good_k(comment="x", loinc_display="K")), LabResult)


def test_a_cancel_needs_neither_code_nor_name():
    result = decode(med("c1", t("08:10"), action="cancelled", order_id="O1"))
    assert isinstance(result, Medication)
    assert result.action is MedAction.CANCELLED
    assert result.order_id == "O1"


def test_an_unclassified_medication_is_ignored():
    result = decode(med("e9", t("08:00"), code="161", name="Acetaminophen 500 mg"))
    assert result == Ignored("P1", "e9", IgnoreReason.OTHER_MEDICATION)


def test_a_valid_medication_decodes():
    result = decode(good_med(action="administered"))
    assert isinstance(result, Medication)
    assert result.classes == frozenset({MedClass.POTASSIUM_REPLETION})
    assert result.available == micros(t("08:00"))
    assert result.action is MedAction.ADMINISTERED


def test_a_utf8_byte_order_mark_is_allowed():
    assert isinstance(decode(b"\xef\xbb\xbf" + orjson.dumps(good_k())), LabResult)


LAST_DAY = "9999-12-31T12:00:00Z"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (good_k(collected_at="9999-12-31T11:00:00Z", resulted_at=LAST_DAY), "resulted_at"),
        (good_med(at=LAST_DAY), "at"),
        (good_med(at="9999-12-20T00:00:00Z"), "at"),  # the default windows add up to 19.5 days
    ],
)
def test_an_instant_too_late_for_the_timers_it_sets_is_a_bad_timestamp(message, reason):
    # Found by review: a timer past 9999-12-31 could not be printed, and the replay failed.
    result = decode(_message(message))
    assert isinstance(result, DeadLetter) and result.reason == f"bad_timestamp:{reason}", result


def test_an_instant_far_enough_inside_the_calendar_decodes():
    assert isinstance(decode(_message(good_med(at="9999-11-01T00:00:00Z"))), Medication)
    assert isinstance(decode(_message(good_k(collected_at="0001-01-01T00:00:00Z"))), LabResult)
