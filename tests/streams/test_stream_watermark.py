"""One partition's clock: release rule, lateness, lagging inputs, idle advance, final drain."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from alerts.alert import Alert
from alerts.decoder import Decoder
from alerts.engine import Engine
from alerts.events import MICROS_PER_MINUTE
from alerts.rule_config import RuleConfig
from alerts.scheduler import FOREVER, NEVER
from alerts.timestamps import parse_timestamp
from streams.state_store import PatientStore
from streams.watermark import Arrival, PartitionClock
from tests.integration.stream_harness import replay_alerts

LABS, MEDS = "labs", "meds"
MIN = MICROS_PER_MINUTE


def t(hhmm: str, day: int = 4) -> int:
    return parse_timestamp(f"2024-03-{day:02d}T{hhmm}:00Z")


def _iso(micros: int) -> str:
    from alerts.timestamps import format_timestamp

    return format_timestamp(micros)


def lab(eid: str, resulted: int, code: str = "2823-3", value: float = 3.2, pid: str = "P1") -> dict:
    return {
        "kind": "lab_result",
        "event_id": eid,
        "patient_id": pid,
        "code": code,
        "value": value,
        "unit": "mg/dL" if code == "19123-9" else "mmol/L",
        "collected_at": _iso(resulted - 30 * MIN),
        "resulted_at": _iso(resulted),
    }


def kcl(eid: str, at: int, pid: str = "P1") -> dict:
    return {
        "kind": "medication",
        "event_id": eid,
        "patient_id": pid,
        "action": "ordered",
        "code": "8591",
        "name": "Potassium chloride 20 mEq",
        "at": _iso(at),
        "order_id": f"O-{eid}",
    }


class Rig:
    def __init__(self, cfg: RuleConfig) -> None:
        self.decode = Decoder(cfg).decode
        self.store = PatientStore({})
        self.alerts: list[Alert] = []
        self.clock = PartitionClock(
            0, Engine(cfg), self.store, self.alerts.extend, 10 * MIN, (LABS, MEDS)
        )

    def arrive(self, obj: dict, wall: float = 0.0, lagging: tuple[str, ...] = ()) -> Arrival:
        topic = MEDS if obj["kind"] == "medication" else LABS
        ev = self.decode(orjson.dumps(obj))
        return self.clock.arrive(ev, topic, lambda name: name in lagging, wall)  # type: ignore[arg-type]

    def fired(self) -> list[tuple[str, str, str]]:
        return [(a.rule, a.status, _iso(a.at)) for a in self.alerts]

    def pending(self, pid: str = "P1") -> list[str]:
        state = self.store.get(pid)
        return [] if state is None else [e[3] for e in state.pending]


def test_an_event_waits_until_the_watermark_reaches_it(cfg):
    rig = Rig(cfg)
    assert rig.arrive(lab("a", t("08:00"))) is Arrival.ACCEPTED
    assert rig.clock.watermark == t("07:50")
    rig.arrive(lab("b", t("08:09")))
    assert rig.pending() == ["a", "b"]
    rig.arrive(lab("c", t("08:10")))  # W = 08:00 = a
    assert rig.pending() == ["b", "c"]
    assert list(rig.store.get("P1").k) == ["a"]  # type: ignore[union-attr]


def test_a_timer_runs_only_once_the_watermark_is_past_it(cfg):
    rig = Rig(cfg)
    rig.arrive(kcl("o1", t("08:00")))
    rig.clock.release(t("08:30"))  # an event at exactly 08:30 would still come first
    assert rig.fired() == []
    rig.clock.release(t("08:30") + 1)
    assert rig.fired() == [("MG_NOT_CHECKED", "firing", "2024-03-04T08:30:00Z")]


def test_a_late_event_is_applied_at_once_and_counted(cfg):
    rig = Rig(cfg)
    rig.arrive(kcl("o1", t("08:00")))
    rig.clock.release(t("09:00"))
    assert rig.arrive(lab("mg", t("08:40"), code="19123-9", value=2.0)) is Arrival.LATE
    assert rig.fired()[-1] == ("MG_NOT_CHECKED", "resolved", "2024-03-04T08:40:00Z")
    assert rig.pending() == []


def test_a_late_order_runs_its_evaluation_at_once(cfg):
    rig = Rig(cfg)
    rig.arrive(lab("k", t("07:00")))
    rig.clock.release(t("10:00"))
    assert rig.arrive(kcl("o1", t("08:00"))) is Arrival.LATE
    assert rig.fired() == [("MG_NOT_CHECKED", "firing", "2024-03-04T08:30:00Z")]


def test_a_lagging_input_holds_the_watermark_back(cfg):
    rig = Rig(cfg)
    rig.arrive(lab("k", t("12:00")), lagging=(MEDS,))
    assert rig.clock.watermark == NEVER  # meds has unread messages and none seen yet
    rig.arrive(kcl("o1", t("08:00")), lagging=(MEDS,))
    assert rig.clock.watermark == t("07:50")
    assert rig.pending() == ["k", "o1"]
    rig.clock.advance(lambda name: False)  # meds caught up
    assert rig.clock.watermark == t("11:50")
    assert rig.pending() == ["k"]


ARRIVAL = t("08:30") / 1e6  # the lab reaches the worker half an hour after its availability


@pytest.mark.parametrize(
    ("idle_seconds", "lagging", "expected"),
    [
        (0, (), "07:50"),
        (60, (), "07:51"),
        (600, (), "08:00"),
        (60, (LABS,), "07:50"),  # a backlog is not idleness
        (60, (MEDS,), "07:50"),
    ],
)
def test_idle_advance_moves_at_wall_clock_rate_since_the_last_message(
    cfg, idle_seconds, lagging, expected
):
    rig = Rig(cfg)
    rig.arrive(lab("k", t("08:00")), wall=ARRIVAL)
    rig.clock.idle(lambda name: name in lagging, ARRIVAL + idle_seconds)
    assert rig.clock.watermark == t(expected)


def test_idle_advance_never_passes_now_minus_lateness(cfg):
    rig = Rig(cfg)
    a = t("08:00")
    arrival = (a - 5 * MIN) / 1e6  # the event is stamped 5 minutes ahead of the wall clock
    rig.arrive(lab("k", a), wall=arrival)
    rig.clock.idle(lambda name: False, arrival + 60)
    assert rig.clock.watermark == t("07:50")  # 07:51 would pass now - lateness = 07:46
    rig.clock.idle(lambda name: False, arrival + 20 * 60)
    assert rig.clock.watermark == t("08:05")  # now - lateness = 08:15 - 10 min


def test_a_partition_never_seen_does_not_advance(cfg):
    rig = Rig(cfg)
    rig.clock.idle(lambda name: False, 2e9)
    assert rig.clock.watermark == NEVER


def test_final_drains_the_partition_once_its_offsets_are_consumed(cfg):
    rig = Rig(cfg)
    rig.arrive(kcl("o1", t("08:00")))
    rig.clock.finish_after({LABS: 5, MEDS: 1})
    assert not rig.clock.maybe_finish(lambda name: {LABS: 4, MEDS: 1}[name])
    assert rig.fired() == []
    assert rig.clock.maybe_finish(lambda name: {LABS: 5, MEDS: 1}[name])
    assert rig.clock.watermark == FOREVER
    assert rig.fired() == [
        ("MG_NOT_CHECKED", "firing", "2024-03-04T08:30:00Z"),
        ("MG_NOT_CHECKED", "resolved", "2024-03-06T08:00:00Z"),
    ]
    assert not rig.clock.maybe_finish(lambda name: 99)  # once only
    assert rig.arrive(lab("k", t("09:00"))) is Arrival.LATE


def test_the_first_copy_wins_and_an_ignored_event_registers_its_id(cfg):
    rig = Rig(cfg)
    assert rig.arrive(lab("a", t("08:00"))) is Arrival.ACCEPTED
    assert rig.arrive(lab("a", t("08:00"))) is Arrival.DUPLICATE
    assert rig.clock.ignored("P1", "x", 0.0)
    assert not rig.clock.ignored("P1", "x", 0.0)
    assert rig.arrive(lab("x", t("08:01"))) is Arrival.DUPLICATE
    assert rig.pending() == ["a"]


def test_a_restored_clock_rebuilds_its_buffer_and_timers_from_the_states(cfg):
    events = [lab("k", t("07:00"), value=3.1), kcl("o1", t("08:00")), lab("k2", t("08:15"))]
    rig = Rig(cfg)
    for e in events:
        rig.arrive(e)
    rig.store.put_clock(0, rig.clock.snapshot())
    asyncio.run(rig.store.flush())
    assert (rig.clock.buffered(), rig.clock.pending_timers()) == (1, 1)

    alerts: list[Alert] = []
    restored = PartitionClock(0, Engine(cfg), rig.store, alerts.extend, 10 * MIN, (LABS, MEDS))
    states, clocks = rig.store.scan({0})
    restored.restore(clocks[0], states[0])
    assert restored.watermark == rig.clock.watermark
    assert restored.snapshot() == rig.clock.snapshot()
    assert (restored.buffered(), restored.pending_timers()) == (1, 1)
    restored.release(FOREVER)
    expected = replay_alerts(cfg, [orjson.dumps(e) for e in events])
    assert [a.to_wire()["alert_id"] for a in alerts] == [a["alert_id"] for a in expected]
    assert [(a.status, a.at) for a in alerts] == [
        (x["status"], parse_timestamp(x["at"])) for x in expected
    ]


def test_a_patient_with_only_ignored_events_keeps_a_bounded_memory(cfg):
    rig = Rig(cfg)
    rig.arrive(lab("k1", t("08:00", day=1)))
    assert rig.clock.ignored("P2", "old", 0.0)
    rig.arrive(lab("k2", t("08:00", day=12)))  # more than history_hours (168) later
    assert rig.clock.ignored("P2", "new", 0.0)
    assert list(rig.store.get("P2").seen) == ["new"]  # type: ignore[union-attr]
