"""Releasing patient by patient gives exactly the time-ordered release's alerts, in its order."""

from __future__ import annotations

import pytest
from hypothesis import given

from alerts.alert import Alert
from alerts.decoder import Decoder
from alerts.engine import Engine
from alerts.events import LabResult, Medication
from alerts.patient_release import is_quiet, release_by_patient
from alerts.scheduler import FOREVER, EventTimeScheduler
from alerts.state import PatientState
from tests.alerts.feed import (
    cancel,
    encode,
    furosemide,
    k,
    kcl,
    mg,
    mgso4,
    micros,
    removal,
    t,
)
from tests.alerts.harness import config, replay
from tests.alerts.test_properties import FEED_PROFILE
from tests.strategies import FeedEvent, feeds

CFG = config()


def decoded(feed: list[dict]) -> list[LabResult | Medication]:
    decode = Decoder(CFG).decode
    events = [decode(encode(e)) for e in feed]
    return [ev for ev in events if type(ev) in (LabResult, Medication)]


def in_time_order(events: list[LabResult | Medication]) -> tuple[list[Alert], dict]:
    states: dict[str, PatientState] = {}
    alerts: list[Alert] = []
    scheduler = EventTimeScheduler(Engine(CFG), states, alerts.extend)
    for ev in sorted(events):
        scheduler.process(ev)
    scheduler.run_timers(FOREVER)
    return alerts, states


def by_patient(events: list[LabResult | Medication]) -> tuple[list[Alert], dict]:
    states: dict[str, PatientState] = {}
    alerts: list[Alert] = []
    release_by_patient(Engine(CFG), states, list(events), alerts.extend)
    return alerts, states


def as_stored(states: dict[str, PatientState]) -> dict:
    return {pid: s.to_dict() for pid, s in states.items()}


# P0's order arrives first but its alerts come last; at 08:30 P9's Mg result (an event) resolves
# P9's alert before P0's evaluation (a timer due at 08:30) fires, although P0 < P9.
TIE = [
    kcl("p0-kcl", t("08:00"), patient="P0"),
    kcl("p9-kcl", t("07:30"), patient="P9"),
    mg("p9-mg", 2.0, t("08:10"), t("08:30"), patient="P9"),
]


def test_alerts_come_in_the_time_ordered_release_order_not_by_patient():
    alerts, _ = by_patient(decoded(TIE))
    shown = [(a.patient_id, a.rule, a.status, a.at) for a in alerts]
    assert [(p, str(r), str(s)) for p, r, s, _ in shown] == [
        ("P9", "MG_NOT_CHECKED", "firing"),
        ("P9", "MG_NOT_CHECKED", "resolved"),
        ("P0", "MG_NOT_CHECKED", "firing"),
        ("P0", "MG_NOT_CHECKED", "resolved"),  # expired, at the end of the replay
    ]
    assert [at for *_, at in shown] == sorted(at for *_, at in shown)
    assert alerts == in_time_order(decoded(TIE))[0]


# The low Mg is collected within the lookback of the only episode (day 2, 11:00) but resulted
# more than alert_ttl (48 h) after it began: the low-Mg evaluation fires at 13:11 on day 4 and
# sets the alert's expiry due at that same instant. The expiry's
# timer sorts before the evaluation's by kind ("expiry" < "low_mg") but runs after it.
EXPIRES_AS_IT_FIRES = [
    kcl("kcl", t("11:00", day=2)),
    mg("mg-low", 1.4, t("10:41", day=3), t("12:41", day=4)),
]


def test_a_timer_set_due_at_its_own_step_comes_after_that_step():
    alerts, _ = by_patient(decoded(EXPIRES_AS_IT_FIRES))
    low = [a for a in alerts if a.rule == "MG_LOW_UNCORRECTED"]
    assert [(str(a.status), a.resolution, a.at) for a in low] == [
        ("firing", None, micros(t("13:11", day=4))),
        ("resolved", "expired", micros(t("13:11", day=4))),
    ]
    assert alerts == in_time_order(decoded(EXPIRES_AS_IT_FIRES))[0]


def test_the_events_handed_over_are_released_and_let_go():
    events = decoded(TIE)
    states: dict[str, PatientState] = {}
    emitted: list[list[Alert]] = []
    release_by_patient(Engine(CFG), states, events, emitted.append)
    assert events == []
    assert len(emitted) == 1 and len(emitted[0]) == 4
    assert sorted(states) == ["P0", "P9"]


def test_a_state_holding_timers_has_them_run_without_new_events():
    engine = Engine(CFG)
    states: dict[str, PatientState] = {}
    EventTimeScheduler(engine, states, lambda alerts: None).process(decoded(TIE[:1])[0])
    assert states["P0"].timers  # its evaluation is pending, as in a stream's table
    alerts: list[Alert] = []
    release_by_patient(engine, states, decoded(TIE[1:]), alerts.extend)
    assert not states["P0"].timers
    assert alerts == in_time_order(decoded(TIE))[0]


@pytest.mark.parametrize("arrival", [TIE, TIE[::-1]], ids=["as-listed", "reversed"])
def test_arrival_order_changes_nothing(arrival):
    assert by_patient(decoded(arrival))[0] == by_patient(decoded(TIE))[0]


@FEED_PROFILE
@given(feed=feeds(max_patients=5, max_events=60))
def test_equal_to_the_time_ordered_release_alerts_order_and_states(feed: list[FeedEvent]):
    events = decoded([fe.event for fe in feed])
    alerts, states = by_patient(events)
    expected_alerts, expected_states = in_time_order(events)
    assert alerts == expected_alerts
    assert as_stored(states) == as_stored(expected_states)


@FEED_PROFILE
@given(feed=feeds(max_patients=5, max_events=60))
def test_replay_gives_the_same_bytes_either_way(feed: list[FeedEvent]):
    lines = [fe.event for fe in feed]
    patient_major = replay(lines)
    forced = replay(lines, time_order=True)
    assert patient_major.alerts == forced.alerts
    assert patient_major.summary == forced.summary


@pytest.mark.parametrize(
    ("feed", "quiet"),
    [
        ([k("k", 2.9, t("06:00")), mg("mg", 1.1, t("06:00"))], True),
        ([mgso4("mgso4", t("07:00")), furosemide("furo", t("07:00"))], True),
        ([mg("mg", 1.1, t("06:00")), cancel("cx", t("07:00"), "ord-1")], True),
        ([mg("mg", 1.1, t("06:00")), kcl("kcl", t("07:00"))], False),
        ([kcl("kcl", t("07:00"), action="administered")], False),
        ([mg("mg", 1.1, t("06:00")), removal("rm", "r-unknown", t("07:00"))], False),
        ([removal("rm", "r-1", t("07:00"), code="2823-3", status="cancelled")], False),
    ],
    ids=[
        "labs-only",
        "mg-repletion-and-diuretic",
        "cancel-without-code",
        "potassium-order",
        "potassium-administration",
        "mg-removal",
        "k-removal",
    ],
)
def test_quiet_means_no_potassium_repletion_and_no_removal(feed: list[dict], quiet: bool):
    assert is_quiet(decoded(feed)) is quiet


@FEED_PROFILE
@given(feed=feeds(max_patients=5, max_events=60))
def test_skipping_quiet_patients_changes_no_alert_and_no_count(feed: list[FeedEvent]):
    events = decoded([fe.event for fe in feed])
    full_engine, skipping_engine = Engine(CFG), Engine(CFG)
    full: dict[str, PatientState] = {}
    kept: dict[str, PatientState] = {}
    full_alerts: list[Alert] = []
    kept_alerts: list[Alert] = []
    release_by_patient(full_engine, full, list(events), full_alerts.extend)
    skipped = release_by_patient(
        skipping_engine, kept, list(events), kept_alerts.extend, skip_quiet=True
    )
    assert kept_alerts == full_alerts
    assert skipping_engine.unknown_removals == full_engine.unknown_removals
    assert as_stored(kept) == {pid: s.to_dict() for pid, s in full.items() if pid in kept}
    assert skipped == len(full) - len(kept)
    for pid in full.keys() - kept.keys():
        assert not full[pid].firing and not full[pid].timers
        assert not any(a.patient_id == pid for a in full_alerts)
