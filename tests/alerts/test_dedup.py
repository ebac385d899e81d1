"""RULES.md 4.3: one firing alert per (patient, rule), and the deterministic alert_id."""

from __future__ import annotations

import hashlib

import pytest

from alerts.alert import alert_id_for
from tests.alerts.feed import LOW, NOT_CHECKED, fired, kcl, mg, resolved, t
from tests.alerts.harness import assert_alerts, replay, replay_alerts


@pytest.mark.parametrize(
    ("patient", "rule", "trigger", "expected"),
    [
        ("P08", "MG_NOT_CHECKED", "s08-e02", "7d23946feaf91f166e483fcf178c5bcc"),
        (
            "P1",
            "MG_LOW_UNCORRECTED",
            "e-kcl",
            hashlib.sha256(b"P1|MG_LOW_UNCORRECTED|e-kcl").hexdigest()[:32],
        ),
        (
            "Pätient",
            "REFRACTORY_HYPOKALEMIA",
            "é|x",
            hashlib.sha256("Pätient|REFRACTORY_HYPOKALEMIA|é|x".encode()).hexdigest()[:32],
        ),
    ],
)
def test_alert_id_is_sha256_of_patient_rule_trigger(patient, rule, trigger, expected):
    assert alert_id_for(patient, rule, trigger) == expected
    assert len(expected) == 32


def test_a_second_episode_while_firing_emits_nothing_and_moves_the_expiry():
    events = [kcl("e1", t("08:00"), order_id="O1"), kcl("e2", t("14:00"), order_id="O2")]
    expected = [
        fired(NOT_CHECKED, "warning", t("08:30"), "e1"),
        resolved(NOT_CHECKED, "warning", t("14:00", day=3), "e1", "expired"),
    ]
    assert_alerts(replay_alerts(events), expected)


def test_after_resolution_a_new_episode_fires_a_new_alert():
    events = [
        kcl("e1", t("08:00"), order_id="O1"),
        mg("m1", 1.9, t("09:00"), t("09:30")),
        kcl("e2", t("10:00", day=2), order_id="O2"),
    ]
    expected = [
        fired(NOT_CHECKED, "warning", t("08:30"), "e1"),
        resolved(NOT_CHECKED, "warning", t("09:30"), "e1", "mg_checked_normal"),
        fired(NOT_CHECKED, "warning", t("10:30", day=2), "e2"),
        resolved(NOT_CHECKED, "warning", t("10:00", day=4), "e2", "expired"),
    ]
    assert_alerts(replay_alerts(events), expected)
    ids = {a["alert_id"] for a in replay_alerts(events)}
    assert len(ids) == 2


def test_rules_deduplicate_independently():
    # MG_NOT_CHECKED firing does not stop MG_LOW_UNCORRECTED, and vice versa.
    events = [
        kcl("e1", t("08:00"), order_id="O1"),
        mg("m1", 1.5, t("09:00"), t("09:30")),
    ]
    expected = [
        fired(NOT_CHECKED, "warning", t("08:30"), "e1"),
        resolved(NOT_CHECKED, "warning", t("09:30"), "e1", "superseded"),
        fired(LOW, "high", t("10:00"), "m1"),
        resolved(LOW, "high", t("08:00", day=3), "m1", "expired"),
    ]
    assert_alerts(replay_alerts(events), expected)


def test_dedup_is_per_patient():
    events = [kcl("a1", t("08:00"), patient="PA"), kcl("b1", t("08:00"), patient="PB")]
    expected = [
        fired(NOT_CHECKED, "warning", t("08:30"), "a1", patient="PA"),
        fired(NOT_CHECKED, "warning", t("08:30"), "b1", patient="PB"),
        resolved(NOT_CHECKED, "warning", t("08:00", day=3), "a1", "expired", patient="PA"),
        resolved(NOT_CHECKED, "warning", t("08:00", day=3), "b1", "expired", patient="PB"),
    ]
    assert_alerts(replay_alerts(events), expected)


def test_a_rerun_yields_the_same_ids_and_output():
    events = [kcl("e1", t("08:00")), mg("m1", 1.5, t("09:00"), t("09:30"))]
    first, second = replay(events), replay(events)
    assert first.alerts == second.alerts
    assert all(
        a["alert_id"] == alert_id_for(a["patient_id"], a["rule"], a["trigger_event_id"])
        for a in first.alerts
    )
