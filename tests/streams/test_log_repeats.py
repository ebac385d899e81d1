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
