"""The decoder's lean checks give exactly what the pydantic wire models give, defects included."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.decoder import DeadLetter, Decoder, Ignored
from alerts.events import LabResult, Medication
from tests.alerts.feed import k, kcl, lab, med, mg, t
from tests.alerts.harness import config
from tests.search_depth import SEARCH, examples
from tests.strategies import feeds, field_values, json_values, mutated_events

PROFILE = settings(SEARCH, max_examples=examples(300))
DECODER = Decoder(config())

LAB_FIELDS = ("status", "value", "unit", "collected_at", "resulted_at", "result_id", "flags",
              "encounter_id", "location", "code")  # fmt: skip
MED_FIELDS = ("action", "code", "name", "at", "order_id", "route", "dose", "dose_unit",
              "encounter_id", "location")  # fmt: skip
# Values of every JSON type, and near misses of the valid ones, for each field the models read.
NEAR_MISSES = st.sampled_from(
    (
        None,
        True,
        False,
        0,
        1,
        -1,
        2**63 - 1,
        3.2,
        -0.0,
        1e308,
        "",
        " ",
        "final",
        "FINAL",
        "corrected",
        "preliminary",
        "cancelled",
        "entered-in-error",
        "ordered",
        "administered",
        "given",
        "mmol/L",
        " MG/DL ",
        "mg/L",
        "2024-03-04T07:00:00Z",
        "2024-03-04T07:00:00z",
        "2024-03-04T07:00:00.123456789+05:30",
        "2024-03-04T07:00:00",
        "2024-03-04T07:00:60Z",
        "2024-02-30T07:00:00Z",
        "0001-01-01T00:00:00+00:01",
        "2024-03-04 07:00:00Z",
        [],
        ["hemolyzed"],
        [" Hemolysed "],
        ["lipemic", 1],
        [None],
        {},
        {"a": 1},
    )
)


def same(raw: bytes) -> None:
    lean, models = DECODER.decode(raw), DECODER.decode_by_models(raw)
    assert type(lean) is type(models), (raw, lean, models)
    assert lean == models, raw
    # Equal values of other types (1 == 1.0 == True) would hide a changed type.
    assert [type(v) for v in lean] == [type(v) for v in models], (raw, lean, models)


def _valid() -> list[dict[str, Any]]:
    collected, resulted = t("07:00"), t("07:30")
    return [
        k("e1", 3.2, collected, resulted),
        mg("e2", 1.4, collected, resulted),
        mg("e3", 0.6, collected, resulted) | {"unit": "mmol/L", "flags": ["Hemolyzed"]},
        lab("e4", code="2823-3", value=4, unit="mEq/L", collected=collected),
        kcl("e5", t("08:00"), order_id="O1"),
        med("e6", t("08:00"), action="cancelled", order_id="O1"),
        med("e7", t("08:00"), code=None, name="Magnesium sulfate 2 g IV", dose="2 g"),
        med("e8", t("08:00"), code="161", name="Acetaminophen 500 mg"),
    ]


@pytest.mark.parametrize("event", _valid(), ids=lambda e: e["event_id"])
def test_valid_events_take_the_lean_path_with_the_models_result(event):
    raw = orjson.dumps(event)
    assert isinstance(DECODER.decode(raw), LabResult | Medication | Ignored)
    same(raw)


@PROFILE
@given(
    event=st.sampled_from(_valid()),
    changes=st.dictionaries(st.sampled_from(LAB_FIELDS + MED_FIELDS), NEAR_MISSES, max_size=3),
    removed=st.sets(st.sampled_from(LAB_FIELDS + MED_FIELDS), max_size=2),
)
def test_near_misses_of_each_field_decode_as_the_models_decode(event, changes, removed):
    changed = {f: v for f, v in (event | changes).items() if f not in removed}
    same(orjson.dumps(changed))


@PROFILE
@given(event=mutated_events())
def test_mutated_events_decode_as_the_models_decode(event):
    same(orjson.dumps(event))


@PROFILE
@given(feed=feeds(max_patients=2, max_events=6))
def test_generated_feeds_decode_as_the_models_decode(feed):
    for item in feed:
        same(orjson.dumps(item.event))


@PROFILE
@given(
    kind=st.sampled_from(("lab_result", "medication")),
    body=st.dictionaries(
        st.sampled_from(LAB_FIELDS + MED_FIELDS), st.one_of(json_values, field_values)
    ),
)
def test_arbitrary_bodies_decode_as_the_models_decode(kind, body):
    same(orjson.dumps({"kind": kind, "event_id": "e1", "patient_id": "P1", **body}))


@pytest.mark.parametrize(
    "raw",
    [
        # Only the standard parser reads these: they go through the models whatever they hold.
        b'{"kind":"lab_result","event_id":"e1","patient_id":"P1","code":"2823-3","value":1e400,'
        b'"unit":"mmol/L","collected_at":"2024-03-04T07:00:00Z","resulted_at":"2024-03-04T07:30:00Z"}',
        b'{"kind":"medication","event_id":"\\ud800","patient_id":"P1","action":"ordered",'
        b'"code":"8591","at":"2024-03-04T08:00:00Z"}',
        b'{"kind":"medication","event_id":"e1","patient_id":"P1","action":"ordered",'
        b'"code":"8591","name":"\\udc00","at":"2024-03-04T08:00:00Z","dose":1e999}',
    ],
)
def test_messages_only_the_standard_parser_reads_decode_as_the_models_decode(raw):
    result = DECODER.decode(raw)
    assert isinstance(result, DeadLetter | Medication | LabResult)
    same(raw)
