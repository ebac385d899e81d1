from __future__ import annotations

import pytest

from streams.cli import main
from streams.redrive import NOT_AN_INPUT, OTHER_REASON, TRUNCATED, RedriveSummary, destination

INPUTS = ("k.labs", "k.meds")


def _headers(reason: str, source: str = "k.labs", **extra: str) -> list[tuple[str, bytes]]:
    headers = [("reason", reason.encode()), ("detail", b"d"), ("source_topic", source.encode())]
    return headers + [(k, v.encode()) for k, v in extra.items()]


@pytest.mark.parametrize(
    ("headers", "reasons", "expected"),
    [
        (_headers("patient_overloaded"), {"patient_overloaded"}, "k.labs"),
        (_headers("ahead_of_clock", "k.meds"), {"ahead_of_clock", "bad_unit"}, "k.meds"),
        (_headers("bad_unit:mg/dl"), {"bad_unit"}, "k.labs"),  # by its class, before ':'
        (_headers("bad_unit:mg/dl"), {"patient_overloaded"}, OTHER_REASON),
        (_headers("bad_control", "k.ticks"), {"bad_control"}, NOT_AN_INPUT),
        (_headers("too_large", truncated_from_bytes="2000000"), {"too_large"}, TRUNCATED),
        (_headers("made_up_reason"), {"other"}, "k.labs"),
        ([("detail", b"no reason header")], {"other"}, NOT_AN_INPUT),
        ([], {"bad_json"}, OTHER_REASON),
    ],
)
def test_a_dead_letter_goes_back_to_its_input_topic_only_when_chosen(headers, reasons, expected):
    assert destination(headers, reasons, INPUTS) == expected


def test_the_summary_says_what_was_sent_and_what_was_left():
    summary = RedriveSummary(read=4)
    summary.sent.update({"k.meds": 1, "k.labs": 2})
    summary.skipped[OTHER_REASON] += 1
    assert summary.render(dry_run=False) == (
        "read 4 dead letters; sent: k.labs 2, k.meds 1; left: other reason 1"
    )
    assert RedriveSummary().render(dry_run=True) == (
        "read 0 dead letters; would send: nothing; left: none"
    )


@pytest.mark.parametrize("since", ["yesterday", "2026-11-27T08:00:00", "2026-13-01T00:00:00Z"])
def test_a_since_without_an_offset_or_not_a_time_is_a_usage_error(since, capsys):
    # Refused before the broker is asked: without its offset the instant is unknown.
    assert main(["redrive", "--reason", "bad_unit", "--since", since]) == 2
    assert "--since" in capsys.readouterr().err
