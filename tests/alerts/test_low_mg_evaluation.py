"""RULES.md 4.2: the low-magnesium evaluation, scheduled by collected time, due at a + hold."""

from __future__ import annotations

import pytest

from tests.alerts.feed import (
    LOW,
    NOT_CHECKED,
    cancel,
    fired,
    k,
    kcl,
    mg,
    mgso4,
    resolved,
    t,
)
from tests.alerts.harness import assert_alerts, replay_alerts

KCL = kcl("e-kcl", t("08:00"))
NORMAL_BEFORE = mg("e-mg1", 2.0, t("07:00"), t("07:30"))  # covers the episode: no 4.1 alert
EXPIRY = t("08:00", day=3)


def low_from_lab(severity: str, at: str, trigger: str = "e-mg2") -> list:
    return [fired(LOW, severity, at, trigger), resolved(LOW, severity, EXPIRY, trigger, "expired")]


def case(name: str, events: list, expected: list):
    return pytest.param(events, expected, id=name)


CASES = [
    case(
        "low_mg_after_the_episode_fires_triggered_by_the_lab",
        [NORMAL_BEFORE, KCL, mg("e-mg2", 1.5, t("10:00"), t("11:00"))],
        low_from_lab("high", t("11:30")),
    ),
    case(
        "severity_critical_by_mg_below_1_2",
        [NORMAL_BEFORE, KCL, mg("e-mg2", 1.1, t("10:00"), t("11:00"))],
        low_from_lab("critical", t("11:30")),
    ),
    case(
        "severity_critical_by_k_below_2_5",
        [
            NORMAL_BEFORE,
            KCL,
            k("e-k", 2.4, t("09:00"), t("09:30")),
            mg("e-mg2", 1.5, t("10:00"), t("11:00")),
        ],
        low_from_lab("critical", t("11:30")),
    ),
    case(
        "severity_high_with_k_2_5",
        [
            NORMAL_BEFORE,
            KCL,
            k("e-k", 2.5, t("09:00"), t("09:30")),
            mg("e-mg2", 1.5, t("10:00"), t("11:00")),
        ],
        low_from_lab("high", t("11:30")),
    ),
    case(
        "episode_t0_exactly_collected_minus_24h_schedules",
        [NORMAL_BEFORE, KCL, mg("e-mg2", 1.5, t("08:00", day=2), t("09:00", day=2))],
        low_from_lab("high", t("09:30", day=2)),
    ),
    case(
        "episode_t0_1us_before_collected_minus_24h_does_not",
        [NORMAL_BEFORE, KCL, mg("e-mg2", 1.5, t("08:00", day=2, us=1), t("09:00", day=2))],
        [],
    ),
    case(
        "no_episode_at_all_does_not_schedule",
        [mg("e-mg2", 1.5, t("10:00"), t("11:00"))],
        [],
    ),
    case(
        "withdrawn_episode_does_not_schedule",
        [
            NORMAL_BEFORE,
            kcl("e-kcl", t("08:00"), order_id="O1"),
            cancel("e-cx", t("08:10"), "O1"),
            mg("e-mg2", 1.5, t("10:00"), t("11:00")),
        ],
        [],
    ),
    case(
        "mg_repletion_during_the_hold_prevents_it",
        [
            NORMAL_BEFORE,
            KCL,
            mg("e-mg2", 1.5, t("10:00"), t("11:00")),
            mgso4("e-mgso4", t("11:10")),
        ],
        [],
    ),
    case(
        "mg_repletion_before_collection_does_not",
        [
            NORMAL_BEFORE,
            KCL,
            mgso4("e-mgso4", t("09:59")),
            mg("e-mg2", 1.5, t("10:00"), t("11:00")),
        ],
        low_from_lab("high", t("11:30")),
    ),
    case(
        "a_newer_normal_mg_during_the_hold_prevents_it",
        [
            NORMAL_BEFORE,
            KCL,
            mg("e-mg2", 1.5, t("10:00"), t("11:00")),
            mg("e-mg3", 1.9, t("10:30"), t("11:15")),
        ],
        [],
    ),
    case(
        "a_newer_hemolysed_normal_mg_does_not",
        [
            NORMAL_BEFORE,
            KCL,
            mg("e-mg2", 1.5, t("10:00"), t("11:00")),
            mg("e-mg3", 2.4, t("10:30"), t("11:15"), flags=["hemolyzed"]),
        ],
        low_from_lab("high", t("11:30")),
    ),
    case(
        "an_older_normal_mg_arriving_during_the_hold_does_not",
        [
            NORMAL_BEFORE,
            KCL,
            mg("e-mg2", 1.5, t("10:00"), t("11:00")),
            mg("e-mg3", 1.9, t("09:30"), t("11:15")),
        ],
        low_from_lab("high", t("11:30")),
    ),
]


@pytest.mark.parametrize(("events", "expected"), CASES)
def test_low_magnesium_evaluation(events, expected):
    assert_alerts(replay_alerts(events), expected)


@pytest.mark.parametrize(
    ("resulted", "scheduled"),
    [(t("08:00"), True), (t("08:00", us=-1), False)],
    ids=["episode_t0_equal_to_availability", "episode_t0_1us_after_availability"],
)
def test_upper_edge_episode_t0_up_to_the_result_availability(resulted, scheduled):
    # The Mg was collected 26 h before t0, so it does not qualify for 4.1 (MG_NOT_CHECKED fires),
    # but the episode lies in [c - 24 h, a] exactly when t0 <= a, and then 4.2 fires too.
    # Event ids order the KCl first within the instant, as release order requires.
    events = [kcl("e1-kcl", t("08:00")), mg("e2-mg", 1.5, t("06:00", day=0), resulted)]
    expected = [
        fired(NOT_CHECKED, "warning", t("08:30"), "e1-kcl"),
        resolved(NOT_CHECKED, "warning", EXPIRY, "e1-kcl", "expired"),
    ]
    if scheduled:
        expected += [
            fired(LOW, "high", t("08:30"), "e2-mg"),
            resolved(LOW, "high", EXPIRY, "e2-mg", "expired"),
        ]
    assert_alerts(replay_alerts(events), expected)


def test_alert_from_the_lab_carries_the_lab_encounter_and_location():
    events = [
        NORMAL_BEFORE,
        KCL,
        mg("e-mg2", 1.5, t("10:00"), t("11:00"), encounter="ENC-LAB", location="WARD-7"),
    ]
    alerts = replay_alerts(events)
    assert [(a["status"], a["encounter_id"], a["location"]) for a in alerts] == [
        ("firing", "ENC-LAB", "WARD-7"),
        ("resolved", "ENC-LAB", "WARD-7"),
    ]


def test_low_mg_while_mg_low_fires_is_deduplicated():
    events = [
        mg("e-mg1", 1.5, t("07:00"), t("07:30")),
        KCL,
        mg("e-mg2", 1.4, t("10:00"), t("11:00")),
    ]
    expected = [
        fired(LOW, "high", t("08:30"), "e-kcl"),
        resolved(LOW, "high", EXPIRY, "e-kcl", "expired"),
    ]
    assert_alerts(replay_alerts(events), expected)
