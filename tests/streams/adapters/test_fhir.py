"""FHIR R4 adapter over the real samples in shared/data/feeds/fhir and hand-made resources."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.streams.adapters.support import FEEDS, requires_shared, run

FHIR = FEEDS / "fhir"

pytestmark = requires_shared

CATHRYN_SKIPPED = {
    "Patient": 1,
    "Organization": 3,
    "Practitioner": 3,
    "Encounter": 19,
    "Condition": 5,
    "Claim": 24,
    "ExplanationOfBenefit": 19,
    "Observation": 127,
    "Immunization": 12,
    "DiagnosticReport": 9,
    "Procedure": 10,
    "CarePlan": 2,
    "ImagingStudy": 4,
    "Goal": 3,
}
# file -> (lab_result events, medication events, skipped resource types)
SAMPLES: dict[str, tuple[int, int, dict[str, int]]] = {
    "r4spec_Bundle-72ac8493-52ac-41bd-8d5d-7258c289b5ea.json": (
        14,
        0,
        {"DiagnosticReport": 17, "Observation": 351},
    ),
    "r4spec_Bundle-ghp.json": (1, 0, {"DiagnosticReport": 1, "Specimen": 3, "Observation": 50}),
    "r4spec_MedicationAdministration-medadmin0302.json": (0, 1, {}),
    "r4spec_MedicationAdministration-medadmin0309.json": (0, 1, {}),
    "r4spec_MedicationRequest-medrx0311.json": (0, 1, {}),
    "r4spec_MedicationRequest-medrx0322.json": (0, 1, {}),
    "synthea_bulk10_medicationrequest_extract.ndjson": (0, 7, {}),
    "synthea_r4_Cathryn_Windler_bundle.json": (3, 5, CATHRYN_SKIPPED),
    "synthea_r4_extract_k_diuretic.ndjson": (13, 2, {}),
    "uscore_observation-serum-potassium.json": (1, 0, {}),
}


def test_every_sample_is_in_the_table() -> None:
    names = sorted(p.name for p in FHIR.iterdir() if p.suffix in (".json", ".ndjson"))
    assert names == sorted(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_counts(name: str) -> None:
    labs, meds, skipped = SAMPLES[name]
    result = run("fhir", FHIR / name)
    kinds = [e["kind"] for e in result.events]
    assert (kinds.count("lab_result"), kinds.count("medication")) == (labs, meds)
    assert result.rejected == []
    assert dict(result.stats.skipped) == skipped


def test_us_core_serum_potassium() -> None:
    event = run("fhir", FHIR / "uscore_observation-serum-potassium.json").only()
    assert event == {
        "kind": "lab_result",
        "event_id": "fhir:Observation/serum-potassium@2005-07-05T15:29:58.597000+00:00:final",
        "patient_id": "example",
        "encounter_id": None,
        "location": None,
        "code": "2823-3",
        "value": 5.4,
        "unit": "mmol/L",
        # effectiveDateTime is the date 2005-07-05: the start of that day, facility time zone;
        # no `issued`, so resulted_at falls back to it
        "collected_at": "2005-07-05T00:00:00Z",
        "resulted_at": "2005-07-05T00:00:00Z",
        "status": "final",
        "result_id": "serum-potassium",
        "flags": None,
    }
    paris = run("fhir", FHIR / "uscore_observation-serum-potassium.json", tz="Europe/Paris")
    assert paris.only()["collected_at"] == "2005-07-05T00:00:00+02:00"


def test_bundle_observation_without_times_inherits_from_panel_and_report() -> None:
    ghp = run("fhir", FHIR / "r4spec_Bundle-ghp.json").only()
    assert (ghp["event_id"], ghp["patient_id"], ghp["value"]) == (
        "fhir:Observation/o2:final",
        "pat2",
        4.2,
    )
    assert ghp["collected_at"] == "2015-08-16T06:40:17Z"  # panel p1 effectiveDateTime
    assert ghp["resulted_at"] == "2015-08-17T06:40:17Z"  # panel p1 issued
    nested = run("fhir", FHIR / "r4spec_Bundle-72ac8493-52ac-41bd-8d5d-7258c289b5ea.json")
    o2_4 = nested.by_id()["fhir:Observation/o2-4:final"]
    assert (o2_4["patient_id"], o2_4["value"], o2_4["unit"]) == ("2", 4.1, "mmol/L")
    assert o2_4["collected_at"] == "2004-12-08T07:45:17Z"  # DiagnosticReport/4
    assert o2_4["resulted_at"] == "2005-02-23T10:04:01Z"
    # Report 3 is issued 16 s before its effective time; mapped as sent (the validator
    # dead-letters it as resulted_before_collected)
    o2_3 = nested.by_id()["fhir:Observation/o2-3:final"]
    assert (o2_3["collected_at"], o2_3["resulted_at"]) == (
        "2005-01-27T06:40:17Z",
        "2005-01-27T06:40:01Z",
    )


def test_potassium_chloride_request_and_its_administration_share_the_order_id() -> None:
    order = run("fhir", FHIR / "r4spec_MedicationRequest-medrx0322.json").only()
    given = run("fhir", FHIR / "r4spec_MedicationAdministration-medadmin0302.json").only()
    assert order == {
        "kind": "medication",
        "event_id": "fhir:MedicationRequest/medrx0322:completed",
        "patient_id": "pat1",
        "encounter_id": None,
        "location": None,
        "action": "ordered",
        "code": None,  # the contained Medication has no code, only ingredients
        "name": "Potassium Chloride 20mEq in 1L Normal Saline",  # medicationReference.display
        "route": "Intravenous route (qualifier value)",
        "dose": 20,
        "dose_unit": "mEq",
        "at": "2015-01-15T00:00:00Z",  # authoredOn is a date
        "order_id": "medrx0322",
    }
    assert given["action"] == "administered"
    assert given["order_id"] == "medrx0322"  # MedicationAdministration.request
    assert given["name"] == "Potassium Chloride + Sodium Chloride 0.9% injectable solution"
    assert (given["dose"], given["dose_unit"]) == (20, "meq")
    assert given["at"] == "2015-01-15T04:30:00+01:00"  # effectivePeriod.start
    assert given["encounter_id"] == "f001"  # context


def test_other_r4spec_medications() -> None:
    thiazide = run("fhir", FHIR / "r4spec_MedicationRequest-medrx0311.json").only()
    assert (thiazide["action"], thiazide["code"], thiazide["name"]) == (
        "ordered",
        None,  # SNOMED only: code carries RxNorm codes alone
        "Chlorthalidone 50mg tablet (product)",
    )
    assert (thiazide["route"], thiazide["dose"], thiazide["dose_unit"]) == ("Oral Route", 1, "TAB")
    tpn = run("fhir", FHIR / "r4spec_MedicationAdministration-medadmin0309.json").only()
    assert tpn["order_id"] == "medrx0323"
    assert "POTASSIUM CHLORIDE, MAGNESIUM CHLORIDE" in tpn["name"]


def test_synthea_bulk_requests_stopped_stay_orders() -> None:
    # A stopped request was active before it stopped: doses may have been given (safer reading).
    events = run("fhir", FHIR / "synthea_bulk10_medicationrequest_extract.ndjson").events
    actions = [(e["code"], e["action"]) for e in events]
    assert actions == [
        ("310798", "ordered"),
        ("310798", "ordered"),
        ("310798", "ordered"),
        ("310798", "ordered"),
        ("834061", "ordered"),
        ("834102", "ordered"),
        ("310798", "ordered"),
    ]
    active = events[3]
    assert active["name"] == "Hydrochlorothiazide 25 MG Oral Tablet"
    assert active["at"] == "2022-04-11T14:37:35-04:00"
    assert active["order_id"] == active["event_id"].split("/")[1].split(":")[0]


def test_synthea_records() -> None:
    cathryn = run("fhir", FHIR / "synthea_r4_Cathryn_Windler_bundle.json").events
    labs = [e for e in cathryn if e["kind"] == "lab_result"]
    assert {e["code"] for e in labs} == {"6298-4"}
    assert labs[0]["value"] == pytest.approx(4.9711782414492784)
    assert labs[0]["resulted_at"] == "2005-12-30T02:28:09.230Z"
    codes = {e["code"]: e["name"] for e in cathryn if e["kind"] == "medication"}
    assert codes["315971"] == "Lasix 40mg"
    assert codes["1719286"] == "10 ML Furosemide 10 MG/ML Injection"
    extract = run("fhir", FHIR / "synthea_r4_extract_k_diuretic.ndjson").events
    first = extract[0]
    assert first["patient_id"] == "06895d41-5937-4e83-9f3d-0af09db31c69"  # urn:uuid: reference
    assert (first["value"], first["collected_at"]) == (4.10497875322802, "2019-06-26T19:20:06Z")
    assert sum(e["code"] == "2823-3" for e in extract) == 1


# ---- hand-made resources --------------------------------------------------------------------


def observation(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "k1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "subject": {"reference": "Patient/P1"},
        "effectiveDateTime": "2024-03-04T06:00:00+01:00",
        "issued": "2024-03-04T06:40:00+01:00",
        "valueQuantity": {"value": 3.2, "unit": "mmol/L"},
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def dump(*resources: dict[str, Any]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in resources) + b"\n"


def test_status_mapping_and_version_in_event_id() -> None:
    amended = observation(status="amended", meta={"versionId": "2"})
    event = run("fhir", dump(amended)).only()
    assert (event["status"], event["event_id"]) == (
        "corrected",
        "fhir:Observation/k1/_history/2:amended",
    )
    cancelled = observation(status="cancelled", valueQuantity=None)
    assert run("fhir", dump(cancelled)).only()["value"] is None
    assert run("fhir", dump(observation(status="preliminary"))).only()["status"] == "preliminary"
    assert [r.reason for r in run("fhir", dump(observation(status="bogus"))).rejected] == [
        "bad_status"
    ]


def test_local_codes_and_names_through_the_aliases() -> None:
    local = {"coding": [{"system": "WinPath", "code": "tt-0003-02", "display": "Potassium"}]}
    assert run("fhir", dump(observation(code=local))).only()["code"] == "2823-3"
    mg = observation(code={"text": "Magnesium"}, valueQuantity={"value": 0.6, "unit": "MMOLL"})
    event = run("fhir", dump(mg)).only()
    assert (event["code"], event["unit"]) == ("2601-3", "mmol/L")
    sodium = observation(code={"coding": [{"system": "http://loinc.org", "code": "2951-2"}]})
    result = run("fhir", dump(sodium, {"resourceType": "Patient", "id": "P1"}))
    assert result.outputs == []
    assert dict(result.stats.skipped) == {"Observation": 1, "Patient": 1}


def test_components_and_hemolysis_note() -> None:
    gas = observation(
        id="bg1",
        code={"text": "Blood gas panel"},
        valueQuantity=None,
        note=[{"text": "Specimen haemolysed"}],
        component=[
            {"code": {"text": "pH"}, "valueQuantity": {"value": 7.31}},
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "6298-4"}]},
                "valueQuantity": {"value": 5.9, "unit": "mmol/L"},
            },
        ],
    )
    event = run("fhir", dump(gas)).only()
    assert (event["code"], event["value"], event["result_id"]) == ("6298-4", 5.9, "bg1#1")
    assert event["flags"] == ["hemolyzed"]


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        (
            observation(valueQuantity={"value": 0.5, "comparator": "<", "unit": "mmol/L"}),
            "bad_value",
        ),
        (observation(valueQuantity=None), "missing_field:value"),
        (observation(subject=None), "missing_field:patient_id"),
        (observation(effectiveDateTime="2024-13-01T00:00:00Z"), "bad_timestamp"),
        (observation(effectiveDateTime="2024-03"), "bad_timestamp"),
        (observation(effectiveDateTime=None), "missing_field:collected_at"),
        ({"resourceType": "MedicationStatement", "id": "s1"}, "fhir_unsupported_resource"),
        ({"resourceType": "MedicationRequest", "intent": "plan"}, "fhir_unsupported_intent"),
        ({"resourceType": "MedicationRequest", "status": "draft"}, "fhir_unsupported_status"),
        (
            {"resourceType": "MedicationAdministration", "status": "not-done"},
            "fhir_unsupported_status",
        ),
        ({"id": "no-type"}, "fhir_parse_error"),
    ],
)
def test_unmappable_resources_keep_their_bytes(resource: dict[str, Any], reason: str) -> None:
    line = orjson.dumps(resource)
    result = run("fhir", line + b"\n")
    assert [(r.reason, r.raw) for r in result.rejected] == [(reason, line)]


def test_ndjson_bad_line_and_broken_document() -> None:
    good = orjson.dumps(observation())
    result = run("fhir", good + b"\n{not json\n" + good.replace(b'"k1"', b'"k2"') + b"\n")
    assert [r.raw for r in result.rejected] == [b"{not json"]
    assert len(result.events) == 2
    broken = b'{\n  "resourceType": "Observation",\n  "id": \n'
    assert [(r.reason, r.raw) for r in run("fhir", broken).rejected] == [
        ("fhir_parse_error", broken.strip())
    ]


def test_medication_referenced_in_the_bundle_and_rxnorm_code() -> None:
    med = {
        "resourceType": "Medication",
        "id": "m1",
        "code": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "111"},
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6585"},
            ],
            "text": "Magnesium sulfate 2 g IV",
        },
    }
    admin = {
        "resourceType": "MedicationAdministration",
        "id": "a1",
        "status": "completed",
        "medicationReference": {"reference": "Medication/m1"},
        "subject": {"reference": "Patient/P1"},
        "effectiveDateTime": "2024-03-04T09:00:00Z",
        "request": {"reference": "MedicationRequest/r9"},
        "dosage": {"route": {"text": "IV"}, "dose": {"value": 2, "unit": "g"}},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": med}, {"resource": admin}],
    }
    event = run("fhir", orjson.dumps(bundle, option=orjson.OPT_INDENT_2)).only()
    assert (event["code"], event["name"], event["order_id"]) == (
        "6585",
        "Magnesium sulfate 2 g IV",
        "r9",
    )
    assert (event["route"], event["dose"], event["dose_unit"]) == ("IV", 2, "g")
