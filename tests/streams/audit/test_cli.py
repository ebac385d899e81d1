"""`kmg audit` on the command line: outputs, errors, feed formats, months in the facility zone."""

from __future__ import annotations

import io

import orjson
import pytest

from streams.adapters import AdapterSettings, Canonical, iter_feed
from streams.audit.run import OUTPUTS, AuditInput, AuditOptions, run_audit
from streams.cli import main
from tests.streams.adapters.support import MIMIC, requires_shared
from tests.streams.audit.support import KCL as KCL_NAME
from tests.streams.audit.support import Audit, med, ndjson, run

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
    assert "audit: 1 episode, 1 with Mg not checked, 1 alert, 0 dead letters" in (
        capsys.readouterr().err
    )


def test_an_input_wholly_refused_does_not_read_as_an_empty_period(tmp_path, capsys):
    # Found by a new user: an HL7 file audited without --format said "0 episodes ... 0 alerts"
    # and nothing else, as a quiet month would.
    feed = tmp_path / "feed.hl7"
    feed.write_bytes(b"MSH|^~\\&|LAB|HOSP|||20240304083000||ORU^R01|1|P|2.4\r")
    assert main(["audit", str(feed), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "0 episodes, 0 with Mg not checked, 0 alerts, 1 dead letter;" in err
    assert "every input was refused (dead_letters.ndjson says why): is --format canonical" in err


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
    assert [(d["reason"], d["stage"], d["line"], d["source"]) for d in dead] == [
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


@pytest.mark.parametrize(
    "location", ["Ward\rEast", "Ward\nEast", "Ward\r\nEast", 'Ward "3", east', "Ward\u2028East"]
)
def test_episodes_csv_reads_back_one_row_per_episode(cfg, tmp_path, location):
    events = [
        med("a", "PA", KCL_NAME, "2024-03-04T08:00", "OA", location=location),
        med("b", "PB", KCL_NAME, "2024-03-04T08:00", "OB", location="North"),
    ]
    rows = run(cfg, ndjson(*events), tmp_path).rows()
    assert [(r["trigger_event_id"], r["location"]) for r in rows] == [
        ("a", location),
        ("b", "North"),
    ]


_MSH = "MSH|^~\\&|LIS|HOSP|KMG|HOSP|20240304064500||{type}|{ctl}|P|2.5"
_OBR = "OBR|1|PL1|FL1|BMP^BASIC PANEL^L|||20240304060000|||||||||||||||20240304064000|||F"


def _hl7(ctl: str, *segments: str, type: str = "ORU^R01") -> bytes:
    head = [_MSH.format(type=type, ctl=ctl), "PID|1||P77^^^HOSP^MR||DOE^JANE"]
    return "\r".join([*head, *segments]).encode() + b"\r"


def _obx(code: str, value: str, unit: str) -> str:
    return f"OBX|1|NM|{code}||{value}|{unit}|||||F"


_K_99 = _hl7("C2", _OBR, _obx("K^Potassium^L", "99", "mmol/L"))  # mapped, then implausible
_ORM = _hl7("C3", "ORC|NW|O1", _OBR, _obx("K^Potassium^L", "4.0", "mmol/L"), type="ORM^O01")
_FHIR_K_99 = orjson.dumps(
    {
        **orjson.loads(FHIR.splitlines()[0]),
        "id": "k2",
        "valueQuantity": {"value": 99, "unit": "mmol/L"},
    }
)


@pytest.mark.parametrize(
    ("fmt", "data", "expected"),
    [
        # Message 1 maps to two events (K and Mg), message 2 to an implausible K; a batch
        # header sits before message 2 and is no message; message 3 is an ORM with results.
        (
            "hl7v2",
            _hl7("C1", _OBR, _obx("K^K^L", "3.1", "mmol/L"), _obx("MG^MG^L", "2", "mg/dL"))
            + b"FHS|^~\\&|||||\rBHS|^~\\&|||||\r"
            + _K_99
            + _ORM,
            [
                ("implausible_value", "validation", {"message": 2}, _K_99.rstrip(b"\r")),
                ("hl7_unsupported_message", "adapter", {"message": 3}, _ORM.rstrip(b"\r")),
            ],
        ),
        # NDJSON with a blank line 2: the implausible Observation is line 4, the order without
        # subject line 5, though they are the 3rd and 4th resources.
        (
            "fhir",
            b"\n".join([*FHIR.splitlines()[:1], b"", *FHIR.splitlines()[1:2], _FHIR_K_99])
            + b"\n"
            + FHIR.splitlines()[2],
            [
                ("implausible_value", "validation", {"line": 4}, _FHIR_K_99),
                ("missing_field:patient_id", "adapter", {"line": 5}, FHIR.splitlines()[2]),
            ],
        ),
    ],
)
def test_dead_letters_name_the_source_message_or_line(cfg, tmp_path, fmt, data, expected):
    audit = run(cfg, data, tmp_path, fmt=fmt, name="feed")
    dead = audit_dead_letters(audit)
    where = ("message", "after_message", "line")
    assert [
        (d["reason"], d["stage"], {k: d[k] for k in where if k in d}, d["raw"].encode())
        for d in dead
    ] == expected
    # The validator's refusal also shows the canonical event it was mapped to.
    assert orjson.loads(dead[0]["mapped"])["kind"] == "lab_result"


@requires_shared
def test_the_mimic_demo_extracts_are_audited_as_their_canonical_events_replay(tmp_path, capsys):
    labs, meds = MIMIC / "labs.csv", MIMIC / "meds.csv"
    zone = "America/New_York"
    out = tmp_path / "audit"
    assert main(["audit", "--format", "mimic", "--facility-timezone", zone, str(labs),
                 str(meds), "--out", str(out)]) == 0  # fmt: skip
    # What the adapter maps, replayed as canonical NDJSON, gives the same alerts.
    settings = AdapterSettings(facility_timezone=zone)
    lines, rejected = [], []
    for path in (labs, meds):
        with path.open("rb") as fh:
            for item in iter_feed("mimic", fh, settings):
                (lines if isinstance(item, Canonical) else rejected).append(item)
    feed = tmp_path / "mimic.ndjson"
    feed.write_bytes(b"".join(c.line + b"\n" for c in lines))
    assert main(["replay", str(feed), "--out", str(tmp_path / "replayed.ndjson")]) == 0
    alerts = (out / "alerts.ndjson").read_bytes()
    assert alerts == (tmp_path / "replayed.ndjson").read_bytes() and alerts
    letters = [
        orjson.loads(line) for line in (out / "dead_letters.ndjson").read_bytes().splitlines()
    ]
    assert [d["raw"].encode() for d in letters] == [r.raw for r in rejected]
    assert {d["stage"] for d in letters} == {"adapter"}
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["overall"]["episodes"] > 0
    assert summary["input"]["dead_letters"] == len(rejected)


def test_an_out_that_is_a_file_is_named_as_such(tmp_path, capsys):
    feed, out = tmp_path / "feed.ndjson", tmp_path / "out.txt"
    feed.write_text(KCL.format(eid="k1", at="2024-03-04T08:00:00Z"))
    out.write_text("mine\n")
    assert main(["audit", str(feed), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"kmg: --out {out} is a file: name a folder (created if missing)\n"
    )
    assert out.read_text() == "mine\n"
