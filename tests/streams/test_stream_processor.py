"""The stream's per-message logic equals replay, survives crashes and never stops on bad input."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
from collections import defaultdict
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine import Engine
from alerts.rule_config import Windows
from alerts.scheduler import NEVER
from alerts.timestamps import format_timestamp, parse_timestamp
from streams.consumed import InputMessage
from streams.rule_files import load_rule_config
from streams.settings import Settings
from streams.state_codec import clock_key, encode_clock
from tests.conftest import SCENARIOS
from tests.integration.stream_harness import merge_by_availability, replay_alerts
from tests.scenario_support import load_scenarios
from tests.search_depth import SEARCH, examples
from tests.strategies import feeds, non_late_arrivals
from tests.streams.test_stream_fakes import (
    COMPARED,
    LABS,
    MEDS,
    TICKS,
    Broker,
    LoggedTable,
    Outbox,
    Rig,
    partition_of,
    rows,
)

SCENARIO_LIST = load_scenarios(SCENARIOS) if SCENARIOS.is_dir() else []
SCENARIO_01 = SCENARIOS / "01_mg_not_checked_basic.ndjson"
SCENARIO_17 = SCENARIOS / "17_invalid_events_dead_lettered.ndjson"


def _lines(path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def _rig(cfg, lines: list[bytes], partitions: int, final: bool = True, **kw: Any) -> Rig:
    broker = Broker(partitions)
    for line in lines:
        broker.produce_line(line)
    if final:
        broker.produce_final()
    return Rig(cfg, broker, **kw)


BATCHES = [1, 8, 500]  # messages handed over at once (at most): 1 is the per-message path


@pytest.mark.parametrize("batch_max", BATCHES)
@pytest.mark.parametrize("partitions", [1, 3, 8])
@pytest.mark.parametrize("seed", range(4))
def test_all_scenarios_through_the_stream_give_replays_alerts(cfg, partitions, seed, batch_max):
    lines = merge_by_availability([s.input for s in SCENARIO_LIST])
    rig = _rig(cfg, lines, partitions, batch_max=batch_max)
    rig.consume(random.Random(seed))
    assert rows(rig.outbox.alerts) == rows(replay_alerts(cfg, lines))
    assert rig.metric("kmg_late_events_total") == 0


@settings(SEARCH, max_examples=examples(60))
@given(
    feed=feeds(max_patients=4, max_events=40),
    data=st.data(),
    partitions=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    batch_max=st.sampled_from(BATCHES),
)
def test_any_arrival_order_without_late_events_gives_replays_alerts(
    cfg, feed, data, partitions, seed, batch_max
):
    arrivals = data.draw(non_late_arrivals(feed, Windows(cfg).allowed_lateness))
    lines = [orjson.dumps(e.event) for e in arrivals]
    rig = _rig(cfg, lines, partitions, batch_max=batch_max)
    rig.consume(random.Random(seed))
    assert rows(rig.outbox.alerts) == rows(replay_alerts(cfg, lines))


@settings(SEARCH, max_examples=examples(60))
@given(
    feed=feeds(max_patients=4, max_events=40),
    data=st.data(),
    partitions=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    crash=st.floats(0, 1),
    commit=st.floats(0, 1),
    survive=st.floats(0, 1),
    batch_max=st.sampled_from(BATCHES),
)
def test_a_crash_anywhere_loses_no_alert_and_repeats_only_whole_alerts(
    cfg, feed, data, partitions, seed, crash, commit, survive, batch_max
):
    """Kill the worker after any batch; restart from the last commit and a changelog prefix.

    A commit covers every write made before it (the producer is flushed first) and only whole
    batches (they are acknowledged once handled); after it, any prefix of the later
    changelog writes may have survived.
    """
    arrivals = data.draw(non_late_arrivals(feed, Windows(cfg).allowed_lateness))
    lines = [orjson.dumps(e.event) for e in arrivals]
    rng = random.Random(seed)
    first = _rig(cfg, lines, partitions, batch_max=batch_max)
    total = sum(len(log) for log in first.broker.logs.values())
    trace: list[tuple[list[tuple[str, int]], int]] = []  # (batch's partitions, writes so far)
    crashed_at = int(crash * total)
    while sum(len(tps) for tps, _ in trace) < crashed_at:
        before = dict(first.positions)
        first.consume(rng, limit=1 if batch_max == 1 else batch_max)
        if batch_max == 1:
            moved = [next(tp for tp, n in first.positions.items() if before.get(tp, 0) != n)]
        else:
            moved = first.last_batch
        trace.append((moved, len(first.table.log)))
    committed_at = int(commit * len(trace))
    committed: dict[tuple[str, int], int] = defaultdict(int)
    for tps, _ in trace[:committed_at]:
        for tp in tps:
            committed[tp] += 1
    flushed = trace[committed_at - 1][1] if committed_at else 0
    kept = flushed + int(survive * (len(first.table.log) - flushed))
    table = LoggedTable()
    for key, value in first.table.log[:kept]:
        table[key] = value

    second = Rig(cfg, first.broker, table=table, outbox=first.outbox, batch_max=batch_max)
    second.positions.update(committed)
    second.backlog.committed = dict(committed)
    second.consume(rng)

    expected = rows(replay_alerts(cfg, lines))
    got = rows(second.outbox.alerts)
    assert set(got) == set(expected)
    assert all(got[row] >= 1 for row in expected)
    by_pair: dict[tuple[str, str], set[tuple[Any, ...]]] = defaultdict(set)
    for row in got:
        by_pair[row[0], row[2]].add(row)
    assert all(len(v) == 1 for v in by_pair.values())


@pytest.mark.parametrize("batch_max", BATCHES)
def test_dead_letters_keep_the_original_bytes_key_and_source(cfg, batch_max):
    lines = _lines(SCENARIO_17)
    rig = _rig(cfg, lines, partitions=2, batch_max=batch_max)
    rig.consume(random.Random(1))
    dead_lines = next(s for s in SCENARIO_LIST if s.name.startswith("17_")).dead_lines or []
    assert sorted(value for _, _, value, _ in rig.outbox.dead) == sorted(
        lines[n - 1] for n in dead_lines
    )
    for partition, key, value, headers in rig.outbox.dead:
        obj = _try_json(value)
        pid = obj.get("patient_id") if isinstance(obj, dict) else None
        assert key == (pid.encode() if pid else None)
        assert headers["source_topic"] in (LABS.encode(), MEDS.encode())
        assert int(headers["source_partition"]) == partition
        offset = int(headers["source_offset"])
        assert rig.broker.logs[headers["source_topic"].decode(), partition][offset][1] == value
        assert headers["reason"] and headers["detail"]
    assert rig.metric("kmg_dead_letters_total", reason_class="bad_json") == 1
    assert rig.metric("kmg_dead_letters_total", reason_class="bad_unit") == 1
    assert rig.metric("kmg_dead_letters_total", reason_class="timestamp_without_offset") == 2
    assert rig.metric("kmg_events_total", kind="unknown", outcome="dead_letter") == 8
    assert rig.metric("kmg_duplicates_total") == 1
    assert rig.metric("kmg_events_total", kind="medication", outcome="duplicate") == 1
    assert rows(rig.outbox.alerts) == rows(replay_alerts(cfg, lines))


def _try_json(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _failing(monkeypatch, method: str, event_id: str, times: int = 1) -> list[str]:
    """Make Engine.<method> raise for one event id (its first `times` calls)."""
    calls: list[str] = []
    original = getattr(Engine, method)

    def wrapper(self, state, ev, *args):
        if ev.event_id == event_id and len(calls) < times:
            calls.append(ev.event_id)
            raise RuntimeError("boom")
        return original(self, state, ev, *args)

    monkeypatch.setattr(Engine, method, wrapper)
    return calls


@pytest.mark.parametrize("batch_max", BATCHES)
def test_a_failing_buffered_event_is_set_aside_and_the_stream_goes_on(
    cfg, monkeypatch, caplog, batch_max
):
    lines = _lines(SCENARIO_01)
    expected = rows(replay_alerts(cfg, lines))
    calls = _failing(monkeypatch, "_medication", "s01-e03", times=99)
    rig = _rig(cfg, lines, partitions=1, final=False, batch_max=batch_max)
    rig.consume(random.Random(0))
    rig.broker.produce_final()  # releases e03 from the buffer
    rig.consume(random.Random(0))
    # Once per message; in a batch, once more before the batch is taken message by message.
    assert calls == ["s01-e03"] * len(calls) and 1 <= len(calls) <= (1 if batch_max == 1 else 2)
    [(_, key, value, headers)] = rig.outbox.dead
    assert headers["reason"] == b"processing_error" and headers["buffered"] == b"true"
    assert key == b"P01" and b"s01-e03" in value
    # e03 (an administration under the same order) adds nothing: the alerts are replay's.
    assert rows(rig.outbox.alerts) == expected
    assert rig.metric("kmg_processing_errors_total") == 1
    assert rig.metric("kmg_dead_letters_total", reason_class="processing_error") == 1
    assert "P01" not in "".join(r.getMessage() for r in caplog.records if r.levelname != "DEBUG")


def test_a_batch_that_fails_once_is_taken_again_and_loses_nothing(cfg, monkeypatch):
    lines = _lines(SCENARIO_01)
    expected = rows(replay_alerts(cfg, lines))
    calls = _failing(monkeypatch, "_medication", "s01-e03", times=1)
    rig = _rig(cfg, lines, partitions=1, batch_max=500)
    rig.consume(random.Random(0))
    assert calls == ["s01-e03"]
    assert rig.outbox.dead == []
    assert rows(rig.outbox.alerts) == expected
    assert rig.metric("kmg_events_total", kind="medication", outcome="accepted") == sum(
        b'"medication"' in line for line in lines
    )


def test_a_failing_event_of_the_message_itself_dead_letters_that_message(monkeypatch):
    cfg = load_rule_config(overrides={"allowed_lateness_minutes": 0})
    lines = _lines(SCENARIO_01)
    _failing(monkeypatch, "_lab", "s01-e01")
    # Another patient's result 1 us later puts W past e01, which is then late: it is applied
    # as it arrives (not from the buffer), and fails.
    ahead = orjson.loads(lines[0]) | {
        "patient_id": "PX",
        "event_id": "px-1",
        "resulted_at": "2024-03-04T06:45:00.000001Z",
    }
    rig = _rig(cfg, [orjson.dumps(ahead), lines[0]], partitions=1, final=False)
    rig.consume(random.Random(0))
    [(_, key, value, headers)] = rig.outbox.dead
    assert (key, value, headers["reason"]) == (b"P01", lines[0], b"processing_error")
    assert "buffered" not in headers
    for line in lines[1:]:
        rig.broker.produce_line(line)
    rig.broker.produce_final()
    rig.consume(random.Random(0))
    assert rows(rig.outbox.alerts) == rows(replay_alerts(cfg, lines[1:]))
    assert rig.metric("kmg_events_total", kind="unknown", outcome="processing_error") == 1


@pytest.mark.parametrize("batch_max", BATCHES)
def test_a_failing_timer_is_dropped_and_the_stream_goes_on(cfg, monkeypatch, batch_max):
    lines = _lines(SCENARIO_01)
    calls: list[Any] = []
    original = Engine._evaluate_episode

    def failing(self, state, timer, *args):
        calls.append(timer)
        raise RuntimeError("boom")

    monkeypatch.setattr(Engine, "_evaluate_episode", failing)
    rig = _rig(cfg, lines, partitions=1, final=False, batch_max=batch_max)
    rig.consume(random.Random(0))
    rig.broker.produce_final()  # the episode's timer is due only once the feed is drained
    rig.consume(random.Random(0))
    monkeypatch.setattr(Engine, "_evaluate_episode", original)
    # One timer, failing once; in a batch once more before the batch is taken message by message.
    assert len(set(calls)) == 1 and len(calls) == (1 if batch_max == 1 else 2)
    assert rig.outbox.alerts == []  # the one evaluation was lost, nothing else failed
    assert rig.outbox.dead == []
    assert rig.metric("kmg_processing_errors_total") == 1
    assert rig.metric("kmg_events_total", kind="control", outcome="final") == 1


@pytest.mark.parametrize(
    "key", [None, b"P99", b"\xffP01"], ids=["null_key", "other_patient", "not_utf8"]
)
def test_a_message_keyed_other_than_its_patient_is_dead_lettered(cfg, key):
    # Found by review: it was processed wherever it landed, and a second state of the patient
    # could grow on another partition.
    lines = _lines(SCENARIO_01)
    rig = _rig(cfg, [], partitions=1, final=False)
    rig.broker.append(LABS, 0, key, lines[0])
    rig.consume(random.Random(0))
    [(_, dead_key, value, headers)] = rig.outbox.dead
    assert (dead_key, value, headers["reason"]) == (key, lines[0], b"key_mismatch")
    assert rig.metric("kmg_dead_letters_total", reason_class="key_mismatch") == 1
    assert rig.metric("kmg_events_total", kind="lab_result", outcome="accepted") in (None, 0)


def _k(eid: str, pid: str, resulted: str, code: str = "2823-3") -> bytes:
    collected = parse_timestamp(resulted) - 30 * 60_000_000
    return orjson.dumps(
        {
            "kind": "lab_result",
            "event_id": eid,
            "patient_id": pid,
            "code": code,
            "value": 3.2,
            "unit": "mmol/L",
            "collected_at": format_timestamp(collected),
            "resulted_at": resulted,
        }
    )


def test_a_flooded_patient_is_dead_lettered_at_the_limit_and_taken_again_later(cfg, caplog):
    # Found by review: a patient's state past the changelog's message limit stopped the worker
    # at every start, leaving every patient of the partition unwatched.
    flood = [_k(f"f{i}", "P1", f"2024-03-04T08:{i:02d}:00Z") for i in range(12)]
    other = _k("o1", "P1", "2024-03-04T09:00:00Z", code="1234-5")  # ignored: refused too
    later = [
        _k("p2", "P2", "2024-03-12T09:00:00Z"),  # another patient moves W 8 days on
        _k("again", "P1", "2024-03-12T09:05:00Z"),
    ]
    rig = _rig(cfg, [*flood, other, *later], partitions=1, final=False, max_patient_events=10)
    with caplog.at_level(logging.INFO):
        rig.consume(random.Random(0))
    refused = [(value, headers["reason"]) for _, _, value, headers in rig.outbox.dead]
    assert refused == [(line, b"patient_overloaded") for line in (*flood[10:], other)]
    assert rig.metric("kmg_dead_letters_total", reason_class="patient_overloaded") == 3
    accepted = rig.metric("kmg_events_total", kind="lab_result", outcome="accepted")
    assert accepted == 10 + 2  # the flood up to the limit; P2; P1 once its flood aged out
    [warning] = [r.getMessage() for r in caplog.records if "patient_overloaded" in r.getMessage()]
    assert "P1" not in warning and "KMG_MAX_PATIENT_EVENTS 10" in warning


CLOCK_NOW = "2024-03-04T10:00:00Z"


@pytest.mark.parametrize(
    ("resulted", "lead_hours", "refused"),
    [
        ("2024-03-04T10:30:00Z", 24, False),  # minutes ahead: clocks differ a little
        ("2024-03-05T10:00:00Z", 24, False),  # exactly the limit
        ("2024-03-05T10:00:01Z", 24, True),
        ("2025-03-04T10:00:00Z", 24, True),  # an analyser's clock set a year on
        ("2025-03-04T10:00:00Z", 0, False),  # the guard off: a simulated feed
        ("2024-03-04T17:00:00Z", 6, True),
    ],
)
def test_an_event_too_far_ahead_of_the_clock_is_dead_lettered_and_moves_no_watermark(
    cfg, caplog, resulted, lead_hours, refused
):
    # Found by review: one such event carried its partition's W with it, and every later
    # event there was late (applied at once, holds skipped) until the wall clock caught up.
    ahead = _k("ahead", "P2", resulted)
    lines = [_k("k1", "P1", "2024-03-04T09:00:00Z"), ahead, _k("k3", "P3", "2024-03-04T09:20:00Z")]
    wall = parse_timestamp(CLOCK_NOW) / 1_000_000
    rig = _rig(cfg, lines, partitions=1, final=False, wall=wall, max_event_lead_hours=lead_hours)
    with caplog.at_level(logging.INFO):
        rig.consume(random.Random(0))
    dead = [(value, headers["reason"]) for _, _, value, headers in rig.outbox.dead]
    accepted = rig.metric("kmg_events_total", kind="lab_result", outcome="accepted")
    late = rig.metric("kmg_late_events_total") or 0
    warnings = [r.getMessage() for r in caplog.records if "ahead_of_clock" in r.getMessage()]
    if refused:
        assert dead == [(ahead, b"ahead_of_clock")]
        assert rig.metric("kmg_dead_letters_total", reason_class="ahead_of_clock") == 1
        assert (accepted, late) == (2, 0)  # k3 after it is on time
        assert len(warnings) == 1 and "P2" not in warnings[0]
    else:
        assert dead == [] and warnings == []
        assert accepted + late == 3


def test_only_events_the_rules_read_are_held_to_the_clock(cfg):
    # An ignored event's time moves no watermark: it is taken, whatever its time.
    ignored = _k("other", "P1", "2025-03-04T10:00:00Z", code="1234-5")
    wall = parse_timestamp(CLOCK_NOW) / 1_000_000
    rig = _rig(cfg, [ignored], partitions=1, final=False, wall=wall)
    rig.consume(random.Random(0))
    assert rig.outbox.dead == []
    assert rig.metric("kmg_events_total", kind="lab_result", outcome="ignored") == 1


def test_unreadable_control_messages_are_dead_lettered_and_counted(cfg, caplog):
    # Found by review: they were only counted, and an unknown control's text was logged.
    values = [b"not json", b'{"control": "MRN-0042117"}', b'{"control": "final"}', b"[]"]
    rig = _rig(cfg, [], partitions=1, final=False)
    for value in values:
        rig.broker.append(TICKS, 0, None, value)
    rig.consume(random.Random(0))
    assert [value for _, _, value, _ in rig.outbox.dead] == values
    assert {headers["reason"] for *_, headers in rig.outbox.dead} == {b"bad_control"}
    assert rig.metric("kmg_events_total", kind="control", outcome="invalid") == 4
    assert rig.metric("kmg_dead_letters_total", reason_class="bad_control") == 4
    assert "MRN" not in "".join(r.getMessage() for r in caplog.records if r.levelname != "DEBUG")


def test_a_tick_never_reaches_the_alert_output_and_idle_time_fires_timers(cfg):
    lines = _lines(SCENARIO_01)
    rig = _rig(cfg, lines, partitions=1, final=False)
    rig.consume(random.Random(0))
    assert rig.outbox.alerts == []  # W = 08:10: the 08:30 evaluation is not due
    rig.tick(seconds=19 * 60)  # W = 08:29
    assert rig.outbox.alerts == []
    rig.tick(seconds=2 * 60)  # W = 08:31
    assert [(a["rule"], a["status"]) for a in rig.outbox.alerts] == [("MG_NOT_CHECKED", "firing")]
    assert all(a.keys() >= set(COMPARED) for a in rig.outbox.alerts)
    assert rig.outbox.keys == [b"P01"]


def test_ignored_and_invalid_messages_do_not_hold_idle_time_back(cfg):
    # Found by review: each such message restarted the idle clock from S - lateness.
    lines = _lines(SCENARIO_01)
    rig = _rig(cfg, lines, partitions=1, final=False)
    rig.consume(random.Random(0))
    rig.tick(seconds=10 * 60)  # W = 08:20
    sodium = orjson.loads(lines[0]) | {"event_id": "na1", "code": "2951-2", "value": 140}
    rig.broker.produce_line(orjson.dumps(sodium))
    rig.broker.produce_line(b'{"kind": "lab_result", not json')
    rig.consume(random.Random(0))
    assert rig.metric("kmg_events_total", kind="lab_result", outcome="ignored") == 1
    assert len(rig.outbox.dead) == 1
    rig.tick(seconds=11 * 60)  # W = 08:31
    assert [(a["rule"], a["status"]) for a in rig.outbox.alerts] == [("MG_NOT_CHECKED", "firing")]


def test_without_idle_advance_a_quiet_partition_keeps_its_watermark(cfg):
    rig = _rig(cfg, _lines(SCENARIO_01), partitions=1, final=False, idle_advance=False)
    rig.consume(random.Random(0))
    rig.tick(seconds=3600)
    assert rig.outbox.alerts == []


@pytest.mark.parametrize("idle_advance", [True, False])
def test_a_batch_ends_by_letting_its_caught_up_partitions_time_run_on(idle_advance):
    # Hold and lateness 0: the evaluation is due at the order's own time and runs once W
    # passes it. Without idle advance that needs a later message; with it, the batch's end.
    cfg0 = Settings(hold_minutes=0, allowed_lateness_minutes=0).rule_config()
    lines = _lines(SCENARIO_01)[:2]  # K 3.2 resulted 06:45, KCl ordered 08:00
    now = 1_709_539_200.0  # 2024-03-04T08:00:00Z: the order is available now
    rig = _rig(cfg0, lines, partitions=1, final=False, idle_advance=idle_advance, wall=now)
    clock = itertools.count()
    rig.processor.wall = lambda: now + 0.001 * next(clock)  # 1 ms passes per reading
    msgs = [
        InputMessage(topic, 0, 0, b"P01", rig.broker.logs[topic, 0][0][1]) for topic in (LABS, MEDS)
    ]
    asyncio.run(rig.processor.handle_batch(msgs, rig.table.scope))
    expected = [("MG_NOT_CHECKED", "firing")] if idle_advance else []
    assert [(a["rule"], a["status"]) for a in rig.outbox.alerts] == expected


class _RefusedAtSend(Outbox):
    """The producer cannot take the dead letter (no metadata for its topic), once."""

    failures = 1

    async def dead_letter(self, *args: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise TimeoutError("no metadata for the dead-letter topic")
        return await super().dead_letter(*args)


class _NotAcknowledged(Outbox):
    """The producer takes the dead letter, but the broker does not acknowledge it, once."""

    failures = 1

    async def dead_letter(self, *args: Any) -> Any:
        sent = await super().dead_letter(*args)
        if self.failures:
            self.failures -= 1
            failed = asyncio.get_running_loop().create_future()
            failed.set_exception(TimeoutError("not acknowledged"))
            return failed
        return sent


@pytest.mark.parametrize("outbox", [_RefusedAtSend, _NotAcknowledged])
def test_a_message_whose_outputs_failed_is_counted_once_when_taken_again(cfg, outbox):
    # Found by reviews: the per-message path counted the message before sending, and the dead
    # letter itself at each attempt.
    invalid = b'{"kind": "lab_result", "event_id": "x-1", "patient_id": "P01"}'
    rig = _rig(cfg, [invalid], partitions=1, final=False, outbox=outbox())
    msg = InputMessage(LABS, 0, 0, b"P01", invalid)

    async def take_twice() -> None:
        with pytest.raises(TimeoutError):
            await rig.processor.handle(msg)
        rig.processor.on_rebalance()  # what the agent does before taking it again
        await rig.processor.handle(msg)

    asyncio.run(take_twice())
    assert rig.metric("kmg_events_total", kind="unknown", outcome="dead_letter") == 1
    assert rig.metric("kmg_dead_letters_total", reason_class="missing_field") == 1


def test_the_lag_of_a_partition_without_events_is_not_a_number(cfg):
    # Found by review: wall time minus the "no watermark yet" sentinel read as 146,000 years.
    lines = _lines(SCENARIO_01)
    rig = _rig(cfg, lines, partitions=2, final=False)
    rig.consume(random.Random(0))
    rig.tick(5.0)
    busy = partition_of(b"P01", 2)
    lag = {p: rig.registry.get_sample_value("kmg_watermark_lag_seconds", {"partition": str(p)})
           for p in range(2)}  # fmt: skip
    assert math.isnan(lag[1 - busy])
    assert 0 < lag[busy] < 1e10  # wall (2030) minus the scenario's event time (2024)


def test_after_a_rebalance_only_the_partitions_still_held_are_reported(cfg, monkeypatch):
    rig = _rig(cfg, _lines(SCENARIO_01), partitions=3, final=False)
    rig.consume(random.Random(0))
    rig.tick(5.0)
    reported = {s.labels["partition"] for m in rig.registry.collect() for s in m.samples
                if m.name == "kmg_pending_timers"}  # fmt: skip
    assert reported == {"0", "1", "2"}
    monkeypatch.setattr(rig.backlog, "assigned", lambda: {1})
    rig.processor.on_rebalance()
    rig.broker.append(TICKS, 1, None, b'{"control":"tick"}')
    rig.table.scope(1)
    tick = InputMessage(TICKS, 1, rig.broker.end(TICKS, 1) - 1, None, b'{"control":"tick"}')
    asyncio.run(rig.processor.handle(tick))  # the next message reads the new assignment
    reported = {s.labels["partition"] for m in rig.registry.collect() for s in m.samples
                if m.name == "kmg_pending_timers"}  # fmt: skip
    assert reported == {"1"}


def test_a_worker_left_with_no_partition_reports_none(cfg, monkeypatch):
    # Found by review: without a message after the rebalance, the frozen gauges stayed.
    rig = _rig(cfg, _lines(SCENARIO_01), partitions=3, final=False)
    rig.consume(random.Random(0))
    rig.tick(5.0)
    monkeypatch.setattr(rig.backlog, "assigned", lambda: set())
    rig.processor.on_rebalance()
    reported = {s.labels["partition"] for m in rig.registry.collect() for s in m.samples
                if m.name.startswith(("kmg_pending_timers", "kmg_watermark_lag"))}  # fmt: skip
    assert reported == set()


@pytest.mark.parametrize("batch_max", [1, 500])
def test_a_saved_clock_of_other_input_topics_does_not_make_events_late(cfg, caplog, batch_max):
    # Found by review: restarted with another KMG_TOPIC_PREFIX under the same KMG_APP_ID, the
    # worker rebuilt its clocks from the table, whose stream times named the old input topics
    # (here a day ahead), and W followed them: the new topics' events were all late.
    lines = _lines(SCENARIO_01)
    ahead = parse_timestamp("2030-01-01T00:00:00Z")  # past every event of the scenario
    old = {
        "stream_time": {"old.labs": ahead, "old.meds": ahead},
        "watermark": NEVER,
        "last": NEVER,
        "arrival_wall": None,
        "final_offsets": None,
    }
    table = LoggedTable()
    table[clock_key(0)] = encode_clock(0, old)
    rig = _rig(cfg, lines[:1], partitions=1, final=False, table=table, batch_max=batch_max)
    with caplog.at_level(logging.INFO, logger="kmg.stream"):
        rig.consume(random.Random(0))  # caught up: W follows the events seen
        for line in lines[1:]:
            rig.broker.produce_line(line)
        rig.broker.produce_final()
        rig.consume(random.Random(0))
    assert rig.metric("kmg_late_events_total") == 0
    assert rows(rig.outbox.alerts) == rows(replay_alerts(cfg, lines))
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "old.labs, old.meds" in warned[0], warned
    assert "P01" not in "".join(r.getMessage() for r in caplog.records if r.levelname != "DEBUG")
