"""RepeatedLines: a client's connection errors through an outage are logged once per interval."""

from __future__ import annotations

import logging

from streams.log_repeats import RepeatedLines


def _record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_repeating_line_passes_once_per_interval_with_the_count_held_back():
    now = [0.0]
    repeats = RepeatedLines(interval=30.0, clock=lambda: now[0])
    passed = []
    for second in range(0, 95):
        now[0] = float(second)
        for _ in range(100):  # a hundred failed connections a second
            record = _record("aiokafka.conn", "Unable connect to node with id %s: %s", 1, "refused")
            if repeats.filter(record):
                passed.append((second, record.getMessage()))
    assert [second for second, _ in passed] == [0, 30, 60, 90]
    assert passed[0][1] == "Unable connect to node with id 1: refused"
    assert passed[1][1].endswith("[2999 more like it in the last 30 s]")


def test_other_loggers_and_other_lines_are_untouched():
    repeats = RepeatedLines(clock=lambda: 0.0)
    assert all(repeats.filter(_record("kmg.worker", "same")) for _ in range(5))
    assert repeats.filter(_record("aiokafka.conn", "one"))
    assert repeats.filter(_record("aiokafka.conn", "two"))
    assert repeats.filter(_record("aiokafka.conn", "one", level=logging.WARNING))
    assert not repeats.filter(_record("aiokafka.conn", "one"))


def test_a_run_that_stops_inside_its_interval_is_counted_when_the_log_ends():
    now = [0.0]
    repeats = RepeatedLines(interval=30.0, clock=lambda: now[0])
    for second in range(0, 40):  # the broker comes back after 40 s
        now[0] = float(second)
        repeats.filter(_record("aiokafka.conn", "Unable connect to node with id %s", 1))
    repeats.filter(_record("aiokafka.conn", "other", level=logging.WARNING))
    (record,) = repeats.held_back()
    assert record.getMessage() == "Unable connect to node with id 1 [9 like it since the one above]"
    assert repeats.held_back() == []


def test_the_held_back_runs_are_written_past_the_handlers_filter(capsys):
    import sys

    from streams.log_repeats import report_held_back

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatedLines(clock=lambda: 0.0))
    for _ in range(3):
        handler.handle(_record("aiokafka.conn", "refused"))
    report_held_back(handler)
    assert capsys.readouterr().err.splitlines() == [
        "refused",
        "refused [2 like it since the one above]",
    ]


def test_a_broker_command_ends_its_log_with_the_repeats_it_held_back(capsys):
    from streams.log_repeats import broker_client_logging

    with broker_client_logging():
        for _ in range(4):
            logging.getLogger("aiokafka.conn").error("Unable connect to node with id %s", 1)
    assert capsys.readouterr().err.splitlines() == [
        "ERROR aiokafka.conn: Unable connect to node with id 1",
        "ERROR aiokafka.conn: Unable connect to node with id 1 [3 like it since the one above]",
    ]
