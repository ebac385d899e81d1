"""Feed timestamps -> RFC 3339 with offset; local times read in the facility time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from streams.adapters.timestamps import BadTimestamp, format_rfc3339, parse_hl7_ts, parse_iso

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("20240304064500", UTC, "2024-03-04T06:45:00Z"),
        ("202403040645", UTC, "2024-03-04T06:45:00Z"),
        ("2024030406", UTC, "2024-03-04T06:00:00Z"),
        ("20240304", UTC, "2024-03-04T00:00:00Z"),
        ("20240304064500", BERLIN, "2024-03-04T06:45:00+01:00"),
        ("20240704064500", BERLIN, "2024-07-04T06:45:00+02:00"),
        ("20240304064500", NEW_YORK, "2024-03-04T06:45:00-05:00"),
        ("20100604234724.085-0400", BERLIN, "2010-06-04T23:47:24.085-04:00"),
        ("202108181126+0215", UTC, "2021-08-18T11:26:00+02:15"),
        ("20240304064500+0000", BERLIN, "2024-03-04T06:45:00Z"),
        ("20240304064500.1234567", UTC, "2024-03-04T06:45:00.123456Z"),
        ("200612131230^M", UTC, "2006-12-13T12:30:00Z"),  # v2.3 TS with degree of precision
        # DST: a skipped local time keeps the offset before the change; a repeated one is the
        # first occurrence (zoneinfo fold=0)
        ("20240310023000", NEW_YORK, "2024-03-10T02:30:00-05:00"),
        ("20241103013000", NEW_YORK, "2024-11-03T01:30:00-04:00"),
    ],
)
def test_hl7_timestamps(text: str, tz: ZoneInfo, expected: str) -> None:
    assert parse_hl7_ts(text, tz) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024",
        "202403",
        "20241304",
        "20240230",
        "20240304246000",
        "20240304064560",  # :60 seconds
        "2024030406450",
        "20240304064500+2460",
        "20240304064500+01",
        "2024-03-04T06:45:00Z",
        "yesterday",
        "\u0662\u0660\u0662\u0664" + "0304064500",  # Arabic-Indic digits
    ],
)
def test_bad_hl7_timestamps(text: str) -> None:
    with pytest.raises(BadTimestamp):
        parse_hl7_ts(text, UTC)


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("2019-06-26T19:20:06.629+00:00", UTC, "2019-06-26T19:20:06.629Z"),
        ("2015-01-15T04:30:00+01:00", NEW_YORK, "2015-01-15T04:30:00+01:00"),
        ("2024-03-04T06:45:00z", BERLIN, "2024-03-04T06:45:00Z"),
        ("2015-01-15", BERLIN, "2015-01-15T00:00:00+01:00"),  # FHIR date: start of the day
        ("2024-03-04T07:00:00", BERLIN, "2024-03-04T07:00:00+01:00"),  # no offset: local
        ("2180-05-07 00:44:00", NEW_YORK, "2180-05-07T00:44:00-04:00"),  # MIMIC, shifted years
    ],
)
def test_iso_timestamps(text: str, tz: ZoneInfo, expected: str) -> None:
    assert parse_iso(text, tz) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2024",
        "2024-03",
        "2024-03-04T07:00:00+0100",
        "2024-02-30",
        "2024-03-04T24:00:00Z",
        "2024-03-04T08:00:00.\u0661Z",
    ],
)
def test_bad_iso_timestamps(text: str) -> None:
    with pytest.raises(BadTimestamp):
        parse_iso(text, UTC)


def test_date_alone_can_be_refused() -> None:
    with pytest.raises(BadTimestamp):
        parse_iso("2015-01-15", UTC, date_only=False)


def test_offsets_with_seconds_are_rendered_in_utc() -> None:
    lmt = datetime(1850, 1, 1, 12, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))  # +00:19:32
    assert format_rfc3339(lmt) == "1850-01-01T11:40:28Z"
