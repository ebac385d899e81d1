"""RULES.md section 7, timestamps: accepted forms, rejected forms, truncation and output format."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.decoder import DeadLetter
from alerts.events import LabResult
from alerts.timestamps import TimestampError, format_timestamp, from_datetime, parse_timestamp
from tests.alerts.feed import NOT_CHECKED, fired, k, kcl, micros, resolved, t
from tests.alerts.harness import assert_alerts, decode, project, replay, replay_alerts

OUTPUT_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z")
EIGHT_UTC = micros("2024-03-04T08:00:00Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-04T08:00:00Z", EIGHT_UTC),
        ("2024-03-04t08:00:00z", EIGHT_UTC),
        ("2024-03-04T08:00:00z", EIGHT_UTC),
        ("2024-03-04t08:00:00Z", EIGHT_UTC),
        ("2024-03-04T09:00:00+01:00", EIGHT_UTC),
        ("2024-03-04T02:30:00-05:30", EIGHT_UTC),
        ("2024-03-04T08:00:00+00:00", EIGHT_UTC),
        ("2024-03-04T08:00:00-00:00", EIGHT_UTC),
        ("2024-03-03T23:00:00-09:00", EIGHT_UTC),
        ("2024-03-04T08:00:00.5Z", EIGHT_UTC + 500_000),
        ("2024-03-04T08:00:00.000001Z", EIGHT_UTC + 1),
        ("2024-03-04T08:00:00.123456Z", EIGHT_UTC + 123_456),
        ("2024-03-04T08:00:00.1234567Z", EIGHT_UTC + 123_456),
        ("2024-03-04T08:00:00.9999999999Z", EIGHT_UTC + 999_999),  # truncated, never rounded
        ("2024-03-04T08:00:00.0000009Z", EIGHT_UTC),
        ("2024-02-29T00:00:00Z", micros("2024-02-29T00:00:00Z")),
        ("2024-03-04T08:00:59Z", EIGHT_UTC + 59_000_000),
    ],
)
def test_accepted_forms(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-04 08:00:00Z",  # T separator required
        "2024-03-04_08:00:00Z",
        "2024-03-04T08:00:60Z",  # :60 leap second
        "2024-12-31T23:59:60Z",
        "2024-03-04T08:00:00+0100",  # offset without colon
        "2024-03-04T08:00:00+01",
        "2024-03-04T08:00:00 +01:00",
        "2024-03-04T08:00Z",  # seconds required
        "2024-03-04T08:00:00.Z",
        "2024-03-04T24:00:00Z",
        "2024-03-04T08:60:00Z",
        "2024-02-30T08:00:00Z",
        "2023-02-29T08:00:00Z",
        "2024-13-01T08:00:00Z",
        "2024-00-01T08:00:00Z",
        "2024-03-00T08:00:00Z",
        "2024-03-04T08:00:00+24:00",
        "2024-03-04T08:00:00+01:60",
        "20240304T080000Z",
        "2024-3-4T08:00:00Z",
        "2024-03-04",
        "",
        "2024-03-04T08:00:00ZZ",
        " 2024-03-04T08:00:00Z",
        "2024-03-04T08:00:00Z ",
        "\u0662\u0660\u0662\u0664-03-04T08:00:00Z",  # RFC 3339 digits are ASCII digits
        "2024-03-04T08:00:00.\u0661Z",
    ],
)
def test_rejected_forms_are_bad_timestamp(text):
    with pytest.raises(TimestampError) as info:
        parse_timestamp(text)
    assert info.value.reason == "bad_timestamp"
    dead = decode(k("e1", 3.2, text, t("09:00")))
    assert isinstance(dead, DeadLetter) and dead.reason == "bad_timestamp:collected_at"


@pytest.mark.parametrize(
    "text", ["2024-03-04T08:00:00", "2024-03-04t08:00:00.25", "2024-03-04T08:00:00.1234567"]
)
def test_a_timestamp_without_offset(text):
    with pytest.raises(TimestampError) as info:
        parse_timestamp(text)
    assert info.value.reason == "timestamp_without_offset"


@pytest.mark.parametrize(
    ("micros_value", "text"),
    [
        (EIGHT_UTC, "2024-03-04T08:00:00Z"),
        (EIGHT_UTC + 1, "2024-03-04T08:00:00.000001Z"),
        (EIGHT_UTC + 500_000, "2024-03-04T08:00:00.500000Z"),
        (0, "1970-01-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
        (micros("0999-03-04T08:00:00Z"), "0999-03-04T08:00:00Z"),
        (micros("9999-12-31T23:59:59.999999Z"), "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_output_format(micros_value, text):
    assert format_timestamp(micros_value) == text
    assert OUTPUT_FORMAT.fullmatch(text)


def test_alert_times_are_printed_in_utc_with_z_whatever_the_input_offset():
    events = [
        kcl("e1", "2024-03-04T09:00:00.000001+01:00"),
        k("k1", 3.2, "2024-03-04T01:00:00-05:00", "2024-03-04T01:30:00-05:00"),
    ]
    alerts = replay_alerts(events)
    assert [a["at"] for a in alerts] == [
        "2024-03-04T08:30:00.000001Z",
        "2024-03-06T08:00:00.000001Z",
    ]
    evidence = alerts[0]["evidence"]
    assert evidence["latest_k"]["collected_at"] == "2024-03-04T06:00:00Z"
    assert evidence["episode_t0"] == "2024-03-04T08:00:00.000001Z"
    for alert in alerts:
        assert OUTPUT_FORMAT.fullmatch(alert["at"])


def test_instants_are_compared_not_strings():
    # 08:00+01:00 is 07:00Z: the K (collected 07:30Z) is the latest, so the severity is high.
    events = [
        k("k-early", 3.6, "2024-03-04T08:00:00+01:00", "2024-03-04T08:10:00+01:00"),
        k("k-late", 2.8, "2024-03-04T07:30:00Z", "2024-03-04T07:40:00Z"),
        kcl("e1", t("08:00")),
    ]
    expected = [
        fired(NOT_CHECKED, "high", t("08:30"), "e1"),
        resolved(NOT_CHECKED, "high", t("08:00", day=3), "e1", "expired"),
    ]
    assert_alerts(replay_alerts(events), expected)


def test_fractions_beyond_microseconds_are_truncated_on_decode():
    result = decode(k("e1", 3.2, "2024-03-04T07:00:00.1234569Z", "2024-03-04T07:00:00.9999999Z"))
    assert isinstance(result, LabResult)
    assert result.collected == micros("2024-03-04T07:00:00Z") + 123_456
    assert result.available == micros("2024-03-04T07:00:00Z") + 999_999


def test_an_edge_of_range_timestamp_never_stops_a_replay():
    # Year 1 at +01:00 is an instant in year 0. Whatever the verdict (dead letter or alert),
    # invalid or odd input must never stop processing (RULES.md section 1).
    events = [kcl("e1", "0001-01-01T00:00:00+01:00", patient="P-odd"), kcl("e2", t("08:00"))]
    outcome = replay(events)
    assert fired(NOT_CHECKED, "warning", t("08:30"), "e2") in [project(a) for a in outcome.alerts]


# Minutes seen once are cached with their offset; every second of a cached minute, the first
# sight and the cache hits alike, must parse as the standard library reads the text.
@given(
    instant=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30, 23, 59, 59)),
    offset_minutes=st.integers(-23 * 60 - 59, 23 * 60 + 59),
    seconds=st.lists(st.integers(0, 59), min_size=1, max_size=4),
    zulu=st.booleans(),
)
def test_cached_minutes_parse_every_second_as_the_standard_library(
    instant, offset_minutes, seconds, zulu
):
    sign, magnitude = ("-" if offset_minutes < 0 else "+"), abs(offset_minutes)
    suffix = "Z" if zulu else f"{sign}{magnitude // 60:02d}:{magnitude % 60:02d}"
    minute = (
        f"{instant.year:04d}-{instant.month:02d}-{instant.day:02d}"
        f"T{instant.hour:02d}:{instant.minute:02d}"
    )
    for second in seconds:
        text = f"{minute}:{second:02d}{suffix}"
        expected = datetime.fromisoformat(text.replace("Z", "+00:00"))
        assert parse_timestamp(text) == from_datetime(expected), text


@pytest.mark.parametrize("suffix", ["Z", "+01:00", "-05:30"])
def test_a_cached_minute_still_rejects_a_bad_second(suffix):
    parse_timestamp(f"2024-03-04T08:00:00{suffix}")  # the minute enters the cache
    for bad in ("60", "6x", "-1", " 1"):
        with pytest.raises(TimestampError):
            parse_timestamp(f"2024-03-04T08:00:{bad}{suffix}")
    with pytest.raises(TimestampError):
        parse_timestamp(f"2024-03-04T08:00x00{suffix}")


@given(st.integers(micros("0001-01-01T00:00:00Z"), micros("9999-12-31T23:59:59.999999Z")))
def test_output_format_matches_the_standard_library_and_parses_back(instant):
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=instant)
    expected = dt.strftime("%H:%M:%S") + (f".{dt.microsecond:06d}" if dt.microsecond else "")
    expected = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{expected}Z"
    assert format_timestamp(instant) == expected
    assert parse_timestamp(expected) == instant
