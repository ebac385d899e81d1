"""`kmg audit` on the command line: outputs, errors, feed formats, months in the facility zone."""

from __future__ import annotations

import io

import orjson
import pytest

from streams.audit.run import OUTPUTS, AuditInput, AuditOptions, run_audit
from streams.cli import main
from tests.streams.audit.support import Audit, run

KCL = (
    '{{"kind": "medication", "event_id": "{eid}", "patient_id": "P1", "encounter_id": "E1", '
    '"location": "ICU-A", "action": "ordered", "code": "8591", "name": "Potassium chloride", '
    '"at": "{at}", "order_id": "{eid}"}}\n'
)


def test_audit_command_writes_every_output(tmp_path, capsys):
    feed = tmp_path / "feed.ndjson"
    feed.write_text(KCL.format(eid="k1", at="2024-03-04T08:00:00Z"))
    assert main(["audit", str(feed), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(OUTPUTS)
    assert "audit: 1 episodes, 1 with Mg not checked, 1 alerts" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--facility-timezone", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["does-not-exist.ndjson"], "cannot read does-not-exist.ndjson"),
    ],
)
def test_audit_command_errors_are_one_line_and_status_2(tmp_path, capsys, args, message):
    assert main(["audit", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kmg: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("zone", "month"),
    [("UTC", "2024-03"), ("Europe/Berlin", "2024-04"), ("America/Chicago", "2024-03")],
)
def test_months_are_calendar_months_of_the_facility(cfg, tmp_path, zone, month):
    # 23:30 UTC on 31 March is 01:30 on 1 April in Berlin (summer time) and 18:30 in Chicago.
    data = KCL.format(eid="k1", at="2024-03-31T23:30:00Z").encode()
    audit = run(cfg, data, tmp_path, facility_timezone=zone)
    # (The alert's expiry two days later may fall in the next month: counted there.)
    assert [m for m, f in audit.doc["by_month"].items() if f["episodes"]] == [month]
    assert audit.row("k1")["month"] == month
    assert audit.row("k1")["t0"] == "2024-03-31T23:30:00Z"  # times stay UTC


_RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_KCL_CODE = {"coding": [{"system": _RXNORM, "code": "8591", "display": "Potassium chloride"}]}
FHIR = b"".join(
    orjson.dumps(resource) + b"\n"
    for resource in (
        {
            "resourceType": "Observation",
            "id": "k1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
            "subject": {"reference": "Patient/PF1"},
            "effectiveDateTime": "2024-05-02T06:00:00Z",
            "issued": "2024-05-02T06:40:00Z",
            "valueQuantity": {"value": 3.1, "unit": "mmol/L"},
        },
        {
            "resourceType": "MedicationRequest",
            "id": "rx1",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _KCL_CODE,
            "subject": {"reference": "Patient/PF1"},
            "authoredOn": "2024-05-02T08:00:00Z",
        },
        {  # no subject: unmappable
            "resourceType": "MedicationRequest",
            "id": "rx2",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _KCL_CODE,
            "authoredOn": "2024-05-02T09:00:00Z",
        },
    )
)


def test_fhir_feed_is_audited_and_unmappable_resources_are_dead_letters(cfg, tmp_path):
    audit = run(cfg, FHIR, tmp_path, fmt="fhir", name="feed.ndjson")
    # K 3.1 at 06:40, KCl ordered 08:00 without any Mg: one not-checked episode, one alert.
    # The second order has no subject: the adapter rejects it.
    assert audit.overall["episodes"] == 1
    assert audit.overall["mg_context"]["not_checked"]["n"] == 1
    assert audit.overall["alerts_fired"]["total"] == 1
    assert audit.doc["input"]["adapter_rejected"] == {"missing_field:patient_id": 1}
    assert audit.doc["input"]["dead_letters"] == 1
    dead = audit_dead_letters(audit)
    assert [(d["reason"], d["stage"], d["message"], d["source"]) for d in dead] == [
        ("missing_field:patient_id", "adapter", 3, "feed.ndjson")
    ]
    assert '"id":"rx2"' in dead[0]["raw"]


def audit_dead_letters(audit: Audit) -> list[dict]:
    lines = (audit.out / "dead_letters.ndjson").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


HL7 = __import__("tests.streams.adapters.support", fromlist=["FEEDS"]).FEEDS / "hl7v2"


@pytest.mark.skipif(not HL7.is_dir(), reason=f"shared HL7 v2 samples not found at {HL7}")
def test_hl7v2_feed_counts_results_and_rejected_messages(cfg, tmp_path):
    data = (HL7 / "simhospital_messages_out_potassium_subset.hl7").read_bytes()
    data += (HL7 / "mirth_server_batch_orm_o01_v24.hl7").read_bytes()
    audit = run(cfg, data, tmp_path, fmt="hl7v2", name="feed.hl7")
    # 69 potassium results and no medication: no episode; the ORM batch is rejected.
    assert audit.doc["input"]["events_by_kind"] == {"lab_result": 69}
    assert audit.doc["input"]["adapter_rejected"] == {"hl7_unsupported_message": 1}
    assert audit.overall["episodes"] == 0
    assert [d["stage"] for d in audit_dead_letters(audit)] == ["adapter"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_only(cfg, tmp_path):
    data = KCL.format(eid="k1", at="2024-03-04T08:00:00Z").encode()
    source = AuditInput("feed.ndjson", io.BytesIO(data), len(data))
    terminal = _Terminal()
    run_audit(cfg, [source], AuditOptions("canonical", tmp_path / "a"), terminal)
    shown = terminal.getvalue()
    assert "audit: reading [" in shown and "100.0%" in shown and "1 events" in shown
    assert "audit: rules" in shown and "1 episodes" in shown
    quiet = io.StringIO()  # not a terminal: a log file stays clean
    source = AuditInput("feed.ndjson", io.BytesIO(data), len(data))
    run_audit(cfg, [source], AuditOptions("canonical", tmp_path / "b"), quiet)
    assert quiet.getvalue() == ""
