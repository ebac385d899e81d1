"""Invariants of RULES.md sections 3 and 7 over generated feeds (Hypothesis)."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from alerts.decoder import DeadLetter, Decoder, Ignored
from alerts.events import Analyte, LabResult, MedAction, Medication
from alerts.timestamps import format_timestamp, from_datetime, parse_timestamp
from alerts.units import FACTORS, denormalise, normalise
from alerts.wire import AlertEvent
from tests.alerts.feed import encode
from tests.alerts.harness import SimulatedStream, by_instant, config, project, replay
from tests.search_depth import SEARCH, examples
from tests.strategies import (
    FIELDS,
    FeedEvent,
    feeds,
    json_values,
    mutated_events,
    non_late_arrivals,
    render,
)

PROFILE = settings(SEARCH, max_examples=examples(30))
# Shrinking a multi-day feed takes minutes; a failure prints the whole (unshrunk) feed instead.
FEED_PROFILE = settings(PROFILE, phases=[Phase.explicit, Phase.generate])
CFG = config()
LATENESS = 10 * 60_000_000

REASON = re.compile(
    r"bad_json|not_an_object|unknown_kind|bad_status|bad_action|missing_code_and_name"
    r"|resulted_before_collected|non_finite_value|implausible_value|too_large"
    r"|(missing_field|bad_type|bad_timestamp|timestamp_without_offset):[a-z_]+"
    r"|bad_unit:.*",
    re.DOTALL,
)


def raws(feed: list[FeedEvent]) -> list[bytes]:
    return [encode(fe.event) for fe in feed]


def per_patient(alerts: list[dict]) -> dict[str, list]:
    rows: dict[str, list] = defaultdict(list)
    for alert in alerts:
        rows[alert["patient_id"]].append(project(alert))
    return {patient: by_instant(r) for patient, r in rows.items()}


def non_decreasing_at(alerts: list[dict]) -> bool:
    instants = [parse_timestamp(a["at"]) for a in alerts]
    return all(a <= b for a, b in zip(instants, instants[1:], strict=False))


# -- (a) arrival order -----------------------------------------------------------------------


@FEED_PROFILE
@given(data=st.data(), feed=feeds())
def test_replay_output_does_not_depend_on_arrival_order(data, feed):
    reference = replay(raws(feed))
    shuffled = data.draw(st.permutations(feed))
    again = replay(raws(shuffled))
    assert again.alerts == reference.alerts
    assert non_decreasing_at(reference.alerts)
    for alert in reference.alerts:
        AlertEvent.model_validate(alert)


def run_stream(arrivals: list[FeedEvent]) -> SimulatedStream:
    stream = SimulatedStream(CFG)
    for fe in arrivals:
        stream.arrive(encode(fe.event))
    return stream


@FEED_PROFILE
@given(data=st.data(), feed=feeds())
def test_stream_with_no_late_event_matches_replay(data, feed):
    arrivals = data.draw(non_late_arrivals(feed, LATENESS))
    stream = run_stream(arrivals)
    alerts = stream.finish()
    assert stream.late == 0
    assert stream.scheduler.late == 0
    assert non_decreasing_at(alerts)
    assert per_patient(alerts) == per_patient(replay(raws(feed)).alerts)


@FEED_PROFILE
@given(data=st.data(), feed=feeds(max_patients=4), workers=st.integers(2, 3))
def test_several_workers_match_one(data, feed, workers):
    arrivals = data.draw(non_late_arrivals(feed, LATENESS))
    partition = {p: i % workers for i, p in enumerate(sorted({fe.patient_id for fe in feed}))}
    streams = [SimulatedStream(CFG) for _ in range(workers)]
    for fe in arrivals:
        streams[partition[fe.patient_id]].arrive(encode(fe.event))
    combined: list[dict] = []
    for stream in streams:
        alerts = stream.finish()
        assert stream.late == 0
        assert non_decreasing_at(alerts)
        combined += alerts
    assert per_patient(combined) == per_patient(replay(raws(feed)).alerts)


@FEED_PROFILE
@given(feed=feeds(days=12, max_events=50))
def test_pruning_never_changes_the_projected_output(feed):
    cfg = config(diuretic_lookback_hours=24, history_hours=48.5)
    pruned = replay(raws(feed), cfg)
    unpruned = replay(raws(feed), cfg, prune=False)
    assert [project(a) for a in pruned.alerts] == [project(a) for a in unpruned.alerts]


# -- (b) duplicates --------------------------------------------------------------------------


def retimed(fe: FeedEvent, shift: int) -> FeedEvent:
    """Return a copy of an event (same id) that becomes available `shift` microseconds later."""
    event = dict(fe.event)
    field = "resulted_at" if event["kind"] == "lab_result" else "at"
    event[field] = render(parse_timestamp(event[field]) + shift)
    return FeedEvent(fe.available + shift, fe.patient_id, event)


@FEED_PROFILE
@given(data=st.data(), feed=feeds(min_events=1))
def test_of_copies_with_other_times_the_one_released_first_wins_in_any_order(data, feed):
    # RULES.md 3 and 7: whatever the arrival order (no event late), the output is the one the
    # copy first in release order gives; here the original, a copy coming up to 9 minutes later.
    reference = replay(raws(feed))
    picks = data.draw(st.lists(st.integers(0, len(feed) - 1), min_size=1, max_size=5, unique=True))
    shifts = data.draw(st.lists(st.integers(1, LATENESS - 60_000_000), min_size=5, max_size=5))
    noisy = list(feed) + [retimed(feed[i], shift) for i, shift in zip(picks, shifts, strict=False)]
    shuffled = data.draw(st.permutations(noisy))
    outcome = replay(raws(shuffled))
    assert outcome.alerts == reference.alerts
    assert outcome.summary.duplicates == len(picks)
    arrivals = data.draw(non_late_arrivals(noisy, LATENESS))
    stream = run_stream(arrivals)
    alerts = stream.finish()
    assert stream.late == 0
    assert per_patient(alerts) == per_patient(reference.alerts)


@FEED_PROFILE
@given(data=st.data(), feed=feeds(min_events=1))
def test_duplicates_change_nothing(data, feed):
    lines = raws(feed)
    reference = replay(lines)
    copies = data.draw(st.lists(st.sampled_from(lines), min_size=1, max_size=10))
    noisy = list(lines)
    for copy in copies:
        noisy.insert(data.draw(st.integers(0, len(noisy))), copy)
    outcome = replay(noisy)
    assert outcome.alerts == reference.alerts
    assert outcome.summary.duplicates == len(copies)
    assert outcome.dead == reference.dead == []


# -- (c) round trips -------------------------------------------------------------------------

_UNITS = {
    Analyte.POTASSIUM: ("mmol/L", "mEq/L", "MMOL/L", " meq/l "),
    Analyte.MAGNESIUM: ("mg/dL", "mmol/L", "mEq/L", "MG/DL", " Mmol/l"),
}


@PROFILE
@given(
    analyte=st.sampled_from(tuple(Analyte)),
    data=st.data(),
    value=st.floats(0.001, 1000, allow_nan=False),
)
def test_units_round_trip(analyte, data, value):
    unit = data.draw(st.sampled_from(_UNITS[analyte]))
    normalised = normalise(analyte, value, unit)
    assert normalised == value * FACTORS[analyte][unit.strip().lower()]  # no rounding
    assert math.isclose(denormalise(analyte, normalised, unit), value, rel_tol=1e-12)


@PROFILE
@given(
    value=st.floats(0.1, 20, allow_nan=False), unit=st.sampled_from(("mg/dL", "mmol/L", "mEq/L"))
)
def test_decoder_converts_exactly_as_the_unit_table(value, unit):
    raw = orjson.dumps(
        {
            "kind": "lab_result",
            "event_id": "e1",
            "patient_id": "P1",
            "code": "19123-9",
            "value": value,
            "unit": unit,
            "collected_at": "2024-03-04T07:00:00Z",
            "resulted_at": "2024-03-04T07:30:00Z",
        }
    )
    result = Decoder(CFG).decode(raw)
    expected = normalise(Analyte.MAGNESIUM, value, unit)
    if 0.1 <= expected <= 20:
        assert isinstance(result, LabResult) and result.value == expected
    else:
        assert isinstance(result, DeadLetter) and result.reason == "implausible_value"


# Years 1000-9999: years below 1000 are covered by a unit test of the output format.
_MIN = parse_timestamp("1000-01-02T00:00:00Z")
_MAX = parse_timestamp("9999-12-30T23:59:59.999999Z")


@PROFILE
@given(micros=st.integers(_MIN, _MAX))
def test_timestamps_format_then_parse_round_trip(micros):
    text = format_timestamp(micros)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z", text)
    assert parse_timestamp(text) == micros


@PROFILE
@given(
    micros=st.integers(_MIN, _MAX),
    offset=st.integers(-23 * 60 - 59, 23 * 60 + 59),
    extra=st.text(alphabet="0123456789", max_size=5),
    lower=st.booleans(),
)
def test_timestamps_with_offsets_parse_to_the_same_instant(micros, offset, extra, lower):
    text = render(micros, offset)
    if "." in text:
        head, tail = text.split(".", 1)
        text = f"{head}.{tail[:6]}{extra}{tail[6:]}"  # digits past the sixth are truncated
    if lower:
        text = text.replace("T", "t").replace("Z", "z")
    assert parse_timestamp(text) == micros
    aware = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    assert from_datetime(aware.astimezone(timezone(timedelta(minutes=offset)))) == micros


# -- (d) hostile input -----------------------------------------------------------------------


def assert_decodes_safely(raw: bytes) -> None:
    result = Decoder(CFG).decode(raw)
    assert isinstance(result, LabResult | Medication | Ignored | DeadLetter)
    if isinstance(result, DeadLetter):
        assert REASON.fullmatch(result.reason), result.reason
        assert result.raw == raw
    elif isinstance(result, Medication):
        assert result.action in tuple(MedAction)


@settings(PROFILE, max_examples=examples(150))
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(raw):
    assert_decodes_safely(raw)


@settings(PROFILE, max_examples=examples(150))
@given(value=json_values)
def test_arbitrary_json_never_raises(value):
    assert_decodes_safely(orjson.dumps(value))


def assert_outputs_encode(raw: bytes) -> None:
    """Decode safely, and whatever comes out can be written as UTF-8 JSON."""
    assert_decodes_safely(raw)
    result = Decoder(CFG).decode(raw)
    fields = (result.reason, result.detail) if isinstance(result, DeadLetter) else result
    orjson.dumps([f for f in fields if isinstance(f, str | int | float | bool | None)])


# What only the standard library's parser yields: lone surrogates and integers past a double.
lone_surrogates = st.builds(
    lambda head, surrogate, tail: head + surrogate + tail,
    st.text(max_size=4),
    st.characters(categories=["Cs"]),
    st.text(max_size=4),
)
hostile_values = (
    lone_surrogates
    | st.lists(lone_surrogates, min_size=1, max_size=2)
    | st.integers(10**308, 10**400)
    | st.integers(-(10**400), -(10**308))
)


@settings(PROFILE, max_examples=examples(150))
@given(
    event=feeds(max_patients=1, min_events=1, max_events=1).map(lambda feed: feed[0].event),
    changes=st.dictionaries(st.sampled_from(FIELDS), hostile_values, min_size=1, max_size=2),
)
def test_surrogates_and_huge_integers_never_raise_and_always_encode(event, changes):
    assert_outputs_encode(json.dumps(event | changes).encode())


@settings(PROFILE, max_examples=examples(150))
@given(
    kind=st.sampled_from(("lab_result", "medication")),
    body=st.dictionaries(
        st.sampled_from(
            (
                "event_id",
                "patient_id",
                "code",
                "value",
                "unit",
                "collected_at",
                "resulted_at",
                "status",
                "action",
                "name",
                "at",
                "flags",
                "result_id",
            )
        ),
        json_values,
    ),
)
def test_arbitrary_objects_of_a_known_kind_never_raise(kind, body):
    assert_decodes_safely(orjson.dumps({"kind": kind, **body}))


@settings(PROFILE, max_examples=examples(150))
@given(event=mutated_events())
def test_mutated_events_never_raise(event):
    assert_decodes_safely(orjson.dumps(event))


def _dead(raw: bytes) -> bool:
    return isinstance(_DECODER.decode(raw), DeadLetter)


def _ndjson_line(raw: bytes) -> bool:
    # Blank lines are skipped by replay, and a line cannot hold a line break.
    return bool(raw.strip()) and b"\n" not in raw and b"\r" not in raw


_DECODER = Decoder(CFG)
junk_lines = st.one_of(
    st.binary(max_size=80),
    json_values.map(orjson.dumps),
    mutated_events().map(orjson.dumps),
).filter(lambda raw: _ndjson_line(raw) and _dead(raw))


@FEED_PROFILE
@given(data=st.data(), feed=feeds(max_events=20), junk=st.lists(junk_lines, max_size=8))
def test_a_replay_with_invalid_lines_gives_the_clean_output(data, feed, junk):
    lines = raws(feed)
    mixed = list(lines)
    for raw in junk:
        mixed.insert(data.draw(st.integers(0, len(mixed))), raw)
    outcome = replay(mixed)
    assert outcome.alerts == replay(lines).alerts
    assert sorted(d["line"] for d in outcome.dead) == sorted(
        i + 1 for i, raw in enumerate(mixed) if _dead(raw)
    )
    assert all(REASON.fullmatch(d["reason"]) for d in outcome.dead)
