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


def test_an_event_waits_until_the_watermark_is_past_it(cfg):
    rig = Rig(cfg)
    assert rig.arrive(lab("a", t("08:00"))) is Arrival.ACCEPTED
    assert rig.clock.watermark == t("07:50")
    rig.arrive(lab("b", t("08:09")))
    rig.arrive(lab("c", t("08:10")))  # W = 08:00 = a: another event at 08:00 is not late yet
    assert rig.pending() == ["a", "b", "c"]
    rig.arrive(lab("d", t("08:10") + 1))
    assert rig.pending() == ["b", "c", "d"]
    assert list(rig.store.get("P1").k) == ["a"]  # type: ignore[union-attr]


def mg_repletion(eid: str, at: int) -> dict:
    return kcl(eid, at) | {"code": "6585", "name": "Magnesium sulfate 2 g IV"}


def test_an_event_at_exactly_the_watermark_is_not_late_and_keeps_its_place(cfg):
    # Found by review: events at a = W were released at once, so a low Mg result arriving
    # at that instant ran after the repletion that sorts after it (mg_repleted, not
    # superseded), and the stream differed from the replay.
    events = [
        lab("k1", t("07:00")),
        kcl("o1", t("08:00")),
        mg_repletion("r1", t("09:00")),
        lab("k2", t("09:10")),  # W = 09:00
        lab("m1", t("09:00"), code="19123-9", value=1.5),
    ]
    rig = Rig(cfg)
    outcomes = [rig.arrive(e) for e in events]
    assert Arrival.LATE not in outcomes
    rig.clock.release(FOREVER)
    expected = replay_alerts(cfg, [orjson.dumps(e) for e in events])
    assert [(a.alert_id, a.status, a.resolution, a.at) for a in rig.alerts] == [
        (x["alert_id"], x["status"], x["resolution"], parse_timestamp(x["at"])) for x in expected
    ]
    assert [a.resolution for a in rig.alerts] == [None, "superseded"]


def test_a_duplicate_moves_neither_stream_time_nor_the_watermark(cfg):
    rig = Rig(cfg)
    rig.arrive(kcl("o1", t("08:00")))
    rig.arrive(lab("k1", t("08:05")))
    assert rig.arrive(lab("k1", t("12:00"))) is Arrival.DUPLICATE  # a repeat, stamped later
    assert rig.clock.watermark == t("07:55")
    assert rig.arrive(lab("m1", t("08:20"), code="19123-9", value=2.0)) is Arrival.ACCEPTED
    rig.clock.release(FOREVER)
    assert rig.alerts == []  # the Mg result was there before the 08:30 evaluation


def test_an_ignored_event_prunes_at_the_watermark_not_the_stream_time(cfg):
    # Found by review: pruning at S dropped a diuretic that the evaluation due between W and S
    # still reads (168 h lookback), and MG_NOT_CHECKED came out warning instead of high.
    diuretic = kcl("d1", t("08:32", day=1)) | {"code": "4603", "name": "Furosemide 40 mg IV"}
    rig = Rig(cfg)
    for event in (diuretic, lab("k0", t("20:35", day=4), value=4.0), kcl("o1", t("08:00", day=8))):
        rig.arrive(event)
    rig.arrive(lab("x2", t("08:39", day=8), pid="P2"))  # S = 08:39, W = 08:29 < tau = 08:30
    assert rig.clock.ignored("P1", "na1")
    rig.clock.release(FOREVER)
    assert [(a.rule, a.severity) for a in rig.alerts][:1] == [("MG_NOT_CHECKED", "high")]


def test_an_ignored_event_does_not_hold_the_idle_watermark_back(cfg):
    # Found by review: each ignored (or dead-lettered) message restarted the idle clock from
    # S - lateness, so a feed of other lab codes kept W, and the alerts, waiting.
    rig = Rig(cfg)
    wall = t("08:00") / 1e6
    rig.arrive(kcl("o1", t("08:00")), wall=wall)
    for minute in range(5, 45, 5):
        assert rig.clock.ignored("P1", f"na{minute}")
        rig.clock.idle(lambda name: False, wall + minute * 60)
    assert rig.clock.watermark == t("08:30")  # 40 minutes after the order, less the lateness
    rig.clock.idle(lambda name: False, wall + 41 * 60)
    assert rig.fired() == [("MG_NOT_CHECKED", "firing", "2024-03-04T08:30:00Z")]


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
    assert rig.clock.ignored("P1", "x")
    assert not rig.clock.ignored("P1", "x")
    assert rig.arrive(lab("x", t("08:01"))) is Arrival.DUPLICATE
    assert rig.pending() == ["a"]


@pytest.mark.parametrize("earlier_first", [True, False])
def test_of_two_buffered_copies_the_one_released_first_wins(cfg, earlier_first):
    # An Mg copy at 08:25 (before the 08:30 evaluation) and one at 08:33 (after it): within
    # the allowed lateness of each other, so neither is late in either order.
    early = lab("m1", t("08:25"), code="19123-9", value=2.0)
    late = lab("m1", t("08:33"), code="19123-9", value=2.0)
    rig = Rig(cfg)
    rig.arrive(kcl("o1", t("08:00")))
    first, second = (early, late) if earlier_first else (late, early)
    assert rig.arrive(first) is Arrival.ACCEPTED
    assert rig.arrive(second) is Arrival.DUPLICATE  # one of the two copies is dropped
    assert rig.pending() == ["m1"]  # the KCl is out: W is past it
    assert rig.clock.buffered() == 1  # the replaced copy's index entry left with it
    rig.clock.release(FOREVER)
    assert rig.alerts == []  # the 08:25 copy was applied: the Mg was checked in time
    assert rig.clock.buffered() == 0


def test_a_late_copy_does_not_replace_a_buffered_one(cfg):
    rig = Rig(cfg)
    rig.arrive(kcl("o1", t("08:00")))
    rig.arrive(lab("m1", t("08:35"), code="19123-9", value=2.0))  # W is 08:25 now
    assert rig.arrive(lab("m1", t("08:20"), code="19123-9", value=2.0)) is Arrival.DUPLICATE
    assert rig.clock.watermark == t("08:25")
    rig.clock.release(FOREVER)
    # The 08:35 copy was applied: the alert fired at 08:30 and its Mg check resolved it.
    assert [row[:2] for row in rig.fired()] == [
        ("MG_NOT_CHECKED", "firing"),
        ("MG_NOT_CHECKED", "resolved"),
    ]
    assert [row[2] for row in rig.fired()] == ["2024-03-04T08:30:00Z", "2024-03-04T08:35:00Z"]


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


def test_a_restored_clock_ignores_the_stream_times_of_topics_that_are_not_its_inputs(cfg):
    # Found by review: restarted with another KMG_TOPIC_PREFIX under the same KMG_APP_ID, a
    # worker took the old topics' stream times from its table and raised W to them.
    rig = Rig(cfg)
    rig.arrive(lab("k", t("08:00")), wall=ARRIVAL)
    clock = rig.clock.snapshot() | {"stream_time": {"old.labs": t("20:00"), LABS: t("08:00")}}
    restored = PartitionClock(0, Engine(cfg), rig.store, [].extend, 10 * MIN, (LABS, MEDS))
    restored.restore(clock, [])
    assert restored.stream_time == {LABS: t("08:00")}
    assert restored.foreign == ("old.labs",)
    restored.advance(lambda name: False)
    restored.idle(lambda name: False, ARRIVAL)
    assert restored.watermark == t("07:50")
    later = rig.decode(orjson.dumps(lab("k2", t("08:05"))))
    assert restored.arrive(later, LABS, lambda name: False, ARRIVAL) is Arrival.ACCEPTED  # type: ignore[arg-type]


def test_a_restored_clock_of_foreign_topics_alone_starts_afresh(cfg):
    # Its W, last and idle clock came from those topics: the new ones' earlier events
    # would be late, or applied at the old topics' time.
    rig = Rig(cfg)
    clock = {
        "stream_time": {"old.labs": t("20:00"), "old.meds": t("21:00")},
        "watermark": t("20:50"),
        "last": t("20:49"),
        "arrival_wall": ARRIVAL,
        "final_offsets": {"old.labs": 7},
    }
    rig.clock.restore(clock, [])
    assert rig.clock.foreign == ("old.labs", "old.meds")
    rig.clock.advance(lambda name: False)
    rig.clock.idle(lambda name: False, ARRIVAL + 3600)
    assert (
        rig.clock.snapshot()
        == PartitionClock(0, Engine(cfg), rig.store, [].extend, 10 * MIN, (LABS, MEDS)).snapshot()
    )
    assert rig.arrive(lab("k", t("08:00"))) is Arrival.ACCEPTED
    assert rig.clock.watermark == t("07:50")


def test_an_id_ignored_before_the_partitions_first_event_time_outlives_the_first_prune(cfg):
    # Found by review: it was registered at time 0, dropped by the first prune, and a valid
    # event reusing the id was then taken, where RULES.md 7 (and the replay) ignore it.
    rig = Rig(cfg)
    assert rig.clock.ignored("P1", "x")  # a new partition: no event time yet
    rig.arrive(lab("k1", t("08:00")))
    rig.arrive(lab("k2", t("09:00")))  # W passes k1: its release prunes P1's state
    assert rig.store.get("P1").pruned_at == t("08:00")  # type: ignore[union-attr]
    assert rig.arrive(lab("x", t("09:05"))) is Arrival.DUPLICATE
    assert rig.store.get("P1").seen["x"] == t("08:00")  # type: ignore[union-attr]
    rig.arrive(lab("k3", t("08:00", day=12)))  # more than history_hours (168) later
    rig.clock.release(FOREVER)
    assert "x" not in rig.store.get("P1").seen  # type: ignore[union-attr]


def test_a_patient_with_only_ignored_events_keeps_a_bounded_memory(cfg):
    rig = Rig(cfg)
    rig.arrive(lab("k1", t("08:00", day=1)))
    assert rig.clock.ignored("P2", "old")
    rig.arrive(lab("k2", t("08:00", day=12)))  # more than history_hours (168) later
    assert rig.clock.ignored("P2", "new")
    assert list(rig.store.get("P2").seen) == ["new"]  # type: ignore[union-attr]
