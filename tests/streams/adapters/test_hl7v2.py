"""HL7 v2 adapter over the real samples in shared/data/feeds/hl7v2 and hand-made edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.streams.adapters.support import FEEDS, requires_shared, run

HL7 = FEEDS / "hl7v2"

pytestmark = requires_shared


# file -> (events emitted, rejected reasons, skipped message types)
SAMPLES: dict[str, tuple[int, list[str], dict[str, int]]] = {
    "fhirconverter_rde_o11_01_v28.hl7": (1, [], {}),
    "fhirconverter_rds_o13_01_v28.hl7": (1, [], {}),
    "gdh_oru_r01_ex6_simhosp_lf.hl7": (1, [], {}),
    "gdh_rde_o01_ex1_cerner_cancel.hl7": (1, [], {}),
    "mirth_donkey_large_oru_r01_v22.hl7": (3, [], {}),
    "mirth_donkey_small_oru_r01_v24.hl7": (2, [], {}),
    "mirth_server_batch_orm_o01_v24.hl7": (0, ["hl7_unsupported_message"], {}),
    "simhospital_messages_out_potassium_subset.hl7": (69, [], {}),
}


def test_every_sample_is_in_the_table() -> None:
    assert sorted(p.name for p in HL7.glob("*.hl7")) == sorted(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_counts(name: str) -> None:
    emitted, reasons, skipped = SAMPLES[name]
    result = run("hl7v2", HL7 / name)
    assert len(result.events) == emitted
    assert [r.reason for r in result.rejected] == reasons
    assert dict(result.stats.skipped) == skipped
    assert result.stats.emitted == emitted


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_is_deterministic_and_chunking_does_not_matter(name: str) -> None:
    whole = run("hl7v2", HL7 / name)
    again = run("hl7v2", HL7 / name, chunk=7)
    assert again.outputs == whole.outputs


def test_simhosp_oru_potassium_with_local_code_and_unit_alias() -> None:
    event = run("hl7v2", HL7 / "gdh_oru_r01_ex6_simhosp_lf.hl7").only()
    assert event == {
        "kind": "lab_result",
        "event_id": "hl7:SIMHOSP:7:1.1",
        "patient_id": "1076943130",
        "encounter_id": "4637913778641671097",
        "location": "OtherWard",
        "code": "2823-3",
        "value": 5.1,
        "unit": "mmol/L",  # sent as MMOLL
        "collected_at": "2020-05-08T13:06:44Z",
        "resulted_at": "2020-05-08T13:06:44Z",
        "status": "final",
        "result_id": "2427424202:tt-0003-02",
        "flags": None,
    }


def test_simhospital_subset_one_potassium_per_message() -> None:
    result = run("hl7v2", HL7 / "simhospital_messages_out_potassium_subset.hl7")
    events = result.events
    assert {e["code"] for e in events} == {"2823-3"}
    assert {e["unit"] for e in events} == {"mmol/L"}
    assert len({e["event_id"] for e in events}) == 69
    by_id = result.by_id()
    second = by_id["hl7:SIMHOSP:24:1.2"]  # Potassium is the 2nd OBX of message 24
    assert (second["patient_id"], second["value"]) == ("2293823204", 4.27)
    assert second["result_id"] == "743400791:tt-0003-02"
    assert min(e["value"] for e in events) == 3.52
    assert max(e["value"] for e in events) == 5.28


def test_mirth_small_potassium_and_magnesium_by_name() -> None:
    events = run("hl7v2", HL7 / "mirth_donkey_small_oru_r01_v24.hl7").events
    potassium, magnesium = events
    assert (potassium["code"], potassium["value"], potassium["unit"]) == ("2823-3", 5.2, "mmol/L")
    assert (magnesium["code"], magnesium["value"], magnesium["unit"]) == ("19123-9", 2.2, "mg/dL")
    for event in events:
        assert event["patient_id"] == "4223161584"
        assert event["location"] == "Mirth Corporation"
        assert event["encounter_id"] is None
        # OBR-7 is empty: collected from OBX-14; no OBR-22/OBX-19: resulted from MSH-7
        assert event["collected_at"] == "2006-09-22T15:23:00Z"
        assert event["resulted_at"] == "2006-12-13T15:19:00Z"
    assert magnesium["event_id"] == "hl7:MIRTH:12345678:1.10"
    assert magnesium["result_id"] == "123:82312"


def test_mirth_large_potassium_from_loinc_alternate_code() -> None:
    events = run("hl7v2", HL7 / "mirth_donkey_large_oru_r01_v22.hl7").events
    assert [e["event_id"] for e in events] == [
        "hl7:LAB:1275709644085:2.2",
        "hl7:LAB:1275709644085:3.2",
        "hl7:LAB:1275709644085:4.2",
    ]
    for event in events:
        assert (event["code"], event["value"], event["unit"]) == ("2823-3", 4.4, "mmol/L")
        assert event["patient_id"] == "1424589"
        assert event["collected_at"] == "2010-06-04T11:44:00Z"  # OBR-7
        assert event["resulted_at"] == "2010-06-04T18:26:00Z"  # OBR-22
        assert event["result_id"] == "1:K"  # OBR-3 filler number 1^LAB, the same panel thrice


def test_fhirconverter_rde_order_with_offset_timestamp() -> None:
    event = run("hl7v2", HL7 / "fhirconverter_rde_o11_01_v28.hl7").only()
    assert event == {
        "kind": "medication",
        "event_id": "hl7:IMMAPP:MSG00001:o1",
        "patient_id": "PATID1234",
        "encounter_id": "40007716",
        "location": "HUH AE OMU",
        "action": "ordered",
        "code": "0143963401",  # RXE-2 wins over RXO-1 (ampicillin)
        "name": "200 ML BAG : NICARDIPINE IN NACL (ISO-OS) 40 MG/200 ML IV PGBK",
        "route": "IV",
        "dose": 5,
        "dose_unit": "mg/hr",  # RXE-5 is 43^mg/hr
        "at": "2019-11-04T06:27:26+02:15",
        "order_id": "1163422591",
    }


def test_fhirconverter_rds_dispense_route_follows_rxe() -> None:
    event = run("hl7v2", HL7 / "fhirconverter_rds_o13_01_v28.hl7").only()
    assert (event["action"], event["code"], event["name"]) == ("ordered", "01151327", "Doxycycline")
    assert (event["route"], event["dose"], event["dose_unit"]) == ("PO", 1, "Tablet")
    assert event["order_id"] == "1163422591"


def test_cerner_cancel() -> None:
    event = run("hl7v2", HL7 / "gdh_rde_o01_ex1_cerner_cancel.hl7").only()
    assert event["action"] == "cancelled"
    assert event["order_id"] == "31320845"
    assert event["patient_id"] == "1516070"
    assert event["encounter_id"] == "10012589"
    assert event["location"] == "ZZZTEST LAB"
    # RXE-2 holds unresolved "##ITEM##" templates: the name comes from its alternate text
    assert (event["code"], event["name"]) == (None, "Diltiazem")
    assert (event["route"], event["dose"], event["dose_unit"]) == ("PO", 120, "mg")
    assert event["at"] == "2020-03-10T09:56:41Z"  # ORC-9


def test_mirth_batch_orm_with_results_is_rejected_with_message_bytes() -> None:
    result = run("hl7v2", HL7 / "mirth_server_batch_orm_o01_v24.hl7")
    (rejected,) = result.rejected
    raw = (HL7 / "mirth_server_batch_orm_o01_v24.hl7").read_bytes()
    start = raw.index(b"MSH|")
    assert rejected.raw == raw[start:].rstrip(b"\r\n")
    assert "ORM^O01" in rejected.detail


def test_facility_timezone_applies_to_local_times_only() -> None:
    london = run("hl7v2", HL7 / "gdh_oru_r01_ex6_simhosp_lf.hl7", tz="Europe/London").only()
    assert london["collected_at"] == "2020-05-08T13:06:44+01:00"  # BST
    new_york = run("hl7v2", HL7 / "mirth_donkey_large_oru_r01_v22.hl7", tz="America/New_York")
    assert new_york.events[0]["collected_at"] == "2010-06-04T11:44:00-04:00"
    order = run("hl7v2", HL7 / "fhirconverter_rde_o11_01_v28.hl7", tz="America/New_York").only()
    assert order["at"] == "2019-11-04T06:27:26+02:15"  # ORC-9 carries its own offset


# ---- hand-made messages -------------------------------------------------------------------

MSH = "MSH|^~\\&|LIS|HOSP|KMG|HOSP|20240304064500||{type}|{ctl}|P|2.5"
PID = "PID|1||P77^^^HOSP^MR||DOE^JANE"
PV1 = "PV1|1|I|ICU-A^12^1||||||||||||||||ENC-9"
OBR = "OBR|1|PL1|FL1|BMP^BASIC PANEL^L|||20240304060000|||||||||||||||20240304064000|||F"


def message(*segments: str, type: str = "ORU^R01", ctl: str = "C1") -> bytes:
    return "\r".join([MSH.format(type=type, ctl=ctl), *segments]).encode() + b"\r"


def obx(code: str, value: str, unit: str, status: str = "F", extra: str = "") -> str:
    return f"OBX|1|NM|{code}||{value}|{unit}|3.5-5.1|{extra}|||{status}"


def test_statuses_and_removals() -> None:
    cases = {"F": "final", "C": "corrected", "P": "preliminary", "X": "cancelled"}
    cases |= {"D": "entered-in-error", "W": "entered-in-error"}
    for flag, status in cases.items():
        value = "" if flag == "X" else "3.1"
        event = run("hl7v2", message(PID, OBR, obx("K^Potassium^L", value, "mmol/L", flag))).only()
        assert event["status"] == status
        assert event["value"] == (None if flag == "X" else 3.1)


def test_magnesium_in_mmol_gets_the_molar_loinc() -> None:
    event = run("hl7v2", message(PID, OBR, obx("MG^MG^L", "0.62", "MMOL/L"))).only()
    assert (event["code"], event["value"], event["unit"]) == ("2601-3", 0.62, "mmol/L")


def test_loinc_is_authoritative_over_the_name() -> None:
    urine = "UK^Potassium^L^2828-3^Potassium urine^LN"
    assert run("hl7v2", message(PID, OBR, obx(urine, "40", "mmol/L"))).events == []


def test_unknown_unit_passes_through() -> None:
    event = run("hl7v2", message(PID, OBR, obx("K^K^L", "4.0", "mmol/kg"))).only()
    assert event["unit"] == "mmol/kg"


def test_visit_fields_and_hemolysis_comment() -> None:
    segments = [PID, PV1, OBR, obx("MG^Magnesium^L", "2.4", "mg/dL"), "NTE|1||Specimen hemolyzed"]
    event = run("hl7v2", message(*segments)).only()
    assert (event["encounter_id"], event["location"]) == ("ENC-9", "ICU-A")
    assert event["flags"] == ["hemolyzed"]
    assert event["collected_at"] == "2024-03-04T06:00:00Z"
    assert event["resulted_at"] == "2024-03-04T06:40:00Z"
    negated = [PID, OBR, obx("MG^Magnesium^L", "2.4", "mg/dL"), "NTE|1||VERIFIED. NOT HEMOLYZED."]
    assert run("hl7v2", message(*negated)).only()["flags"] is None
    spm = [PID, OBR, "SPM|1|||SER" + "|" * 20 + "HEM", obx("K^K^L", "5.9", "mmol/L")]
    assert run("hl7v2", message(*spm)).only()["flags"] == ["hemolyzed"]


def test_structured_numeric_values() -> None:
    sn = "OBX|1|SN|K^Potassium^L||^3.4|mmol/L|||||F"
    assert run("hl7v2", message(PID, OBR, sn)).only()["value"] == 3.4
    below = run("hl7v2", message(PID, OBR, sn.replace("^3.4", "<^0.5")))
    assert [r.reason for r in below.rejected] == ["bad_value"]


@pytest.mark.parametrize(
    ("segments", "reason"),
    [
        ((PID, OBR, obx("K^Potassium^L", "<15", "mmol/L")), "bad_value"),
        ((PID, OBR, obx("K^Potassium^L", "\u0663.\u0665", "mmol/L")), "bad_value"),
        ((PID, OBR, obx("K^Potassium^L", "", "mmol/L")), "missing_field:value"),
        (
            (PID, OBR.replace("20240304060000", "20241304060000"), obx("K^K^L", "4", "mmol/L")),
            "bad_timestamp",
        ),
        ((OBR, obx("K^Potassium^L", "4.0", "mmol/L")), "missing_field:patient_id"),
        ((PID, OBR, obx("K^Potassium^L", "4.0", "mmol/L", status="Z")), "bad_status"),
    ],
)
def test_unmappable_results_keep_the_message_bytes(segments: tuple[str, ...], reason: str) -> None:
    raw = message(*segments)
    result = run("hl7v2", raw)
    assert [(r.reason, r.raw) for r in result.rejected] == [(reason, raw.rstrip(b"\r"))]
    assert result.events == []


def test_parse_errors_do_not_stop_the_stream() -> None:
    good = message(PID, OBR, obx("K^K^L", "3.9", "mmol/L"), ctl="C2")
    broken = b"MSH|^~\\&|LIS|HOSP\rthis is not a segment\r"
    result = run("hl7v2", b"garbage\n" + broken + good)
    assert [(r.reason, r.raw) for r in result.rejected] == [
        ("hl7_parse_error", b"garbage"),
        ("hl7_parse_error", broken.rstrip(b"\r")),
    ]
    assert result.only()["event_id"] == "hl7:LIS:C2:1.1"


def test_batch_and_mllp_framing_and_line_endings() -> None:
    one = message(PID, OBR, obx("K^K^L", "3.9", "mmol/L"), ctl="A").replace(b"\r", b"\r\n")
    two = message(PID, OBR, obx("K^K^L", "4.1", "mmol/L"), ctl="B").replace(b"\r", b"\n")
    batch = b"FHS|^~\\&\rBHS|^~\\&\r" + one + two + b"BTS|2\rFTS|1\r"
    assert [e["value"] for e in run("hl7v2", batch).events] == [3.9, 4.1]
    mllp = b"\x0b" + one + b"\x1c\r\x0b" + two + b"\x1c\r"
    result = run("hl7v2", mllp)
    assert [e["value"] for e in result.events] == [3.9, 4.1]
    assert result.rejected == []
    with_bom = run("hl7v2", b"\xef\xbb\xbf" + one, chunk=2)
    assert [e["value"] for e in with_bom.events] == [3.9]
    assert with_bom.rejected == []


def test_irrelevant_messages_are_counted_not_rejected() -> None:
    adt = message(PID, PV1, type="ADT^A01", ctl="A1")
    sodium = message(PID, OBR, obx("NA^Sodium^L", "140", "mmol/L"), ctl="A2")
    lab_order = message(PID, "ORC|NW|77", OBR, type="ORM^O01", ctl="A3")
    result = run("hl7v2", adt + sodium + lab_order)
    assert result.outputs == []
    assert dict(result.stats.skipped) == {"ADT^A01": 1, "ORU^R01": 1, "ORM^O01": 1}


def test_pharmacy_orders_cancels_and_administrations() -> None:
    rxe = "RXE|^BID|8591^Potassium chloride ER 20 mEq tablet^RXNORM|20||mEq^mEq"
    order = message(PID, PV1, "ORC|NW|ORD-1|||||||20240304080000", rxe, "RXR|PO", type="RDE^O11")
    event = run("hl7v2", order).only()
    assert (event["action"], event["code"], event["order_id"]) == ("ordered", "8591", "ORD-1")
    assert (event["dose"], event["dose_unit"], event["route"]) == (20, "mEq", "PO")
    assert event["at"] == "2024-03-04T08:00:00Z"
    cancel = message(PID, "ORC|DC|ORD-1|||||||20240304081500", type="RDE^O11", ctl="C2")
    event = run("hl7v2", cancel).only()
    assert (event["action"], event["code"], event["name"]) == ("cancelled", None, None)
    rxa = "RXA|0|1|20240304082000||8591^Potassium chloride^RXNORM|20|mEq"
    refused = rxa + "|" * 13 + "RE"  # RXA-20 completion status RE: refused
    given = message(PID, "ORC|RE|ORD-1", rxa, "RXR|PO", refused, type="RAS^O17")
    result = run("hl7v2", given)
    event = result.only()
    assert (event["action"], event["at"], event["route"]) == (
        "administered",
        "2024-03-04T08:20:00Z",
        "PO",
    )
    assert event["event_id"].endswith(":o1.1")
    assert dict(result.stats.skipped) == {"RAS:RXA-20=RE": 1}


def test_pharmacy_rejections() -> None:
    hold = message(PID, "ORC|HD|ORD-2", "RXE||8591^KCl^RXNORM|20", type="RDE^O11")
    assert [r.reason for r in run("hl7v2", hold).rejected] == ["hl7_unsupported_order_control"]
    no_drug = message(PID, "ORC|NW|ORD-3", "RXE||", type="RDE^O11")
    assert [r.reason for r in run("hl7v2", no_drug).rejected] == ["missing_code_and_name"]


def test_escape_sequences_are_decoded() -> None:
    rxe = "RXE||K-PHOS\\T\\NEUTRAL^Potassium \\T\\ sodium phosphates|1"
    event = run("hl7v2", message(PID, "ORC|NW|O9", rxe, type="RDE^O11")).only()
    assert (event["code"], event["name"]) == ("K-PHOS&NEUTRAL", "Potassium & sodium phosphates")


def test_file_from_disk_equals_bytes(tmp_path: Path) -> None:
    path = tmp_path / "one.hl7"
    path.write_bytes(message(PID, OBR, obx("K^K^L", "3.9", "mmol/L")))
    assert run("hl7v2", path).outputs == run("hl7v2", path.read_bytes()).outputs
