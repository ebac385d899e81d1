"""RULES.md 4.1: each condition, severity and window edge of the episode evaluation."""

from __future__ import annotations

import pytest

from tests.alerts.feed import (
    LOW,
    NOT_CHECKED,
    REFRACTORY,
    cancel,
    fired,
    furosemide,
    hctz,
    k,
    kcl,
    med,
    mg,
    mgso4,
    removal,
    resolved,
    shift,
    t,
)
from tests.alerts.harness import assert_alerts, config, replay_alerts

T0 = t("08:00")
TAU = t("08:30")
EXPIRY = t("08:00", day=3)
KCL = kcl("e-kcl", T0)


def not_checked(severity: str) -> list:
    return [
        fired(NOT_CHECKED, severity, TAU, "e-kcl"),
        resolved(NOT_CHECKED, severity, EXPIRY, "e-kcl", "expired"),
    ]


def low(severity: str) -> list:
    return [
        fired(LOW, severity, TAU, "e-kcl"),
        resolved(LOW, severity, EXPIRY, "e-kcl", "expired"),
    ]


def case(name: str, events: list, expected: list):
    return pytest.param(events, expected, id=name)


MG_WINDOW = [
    case("no_mg_at_all", [KCL], not_checked("warning")),
    case(
        "normal_mg_collected_exactly_t0_minus_24h_qualifies",
        [mg("e-mg", 2.0, t("08:00", day=0), t("09:00", day=0)), KCL],
        [],
    ),
    case(
        "normal_mg_collected_1us_before_t0_minus_24h_does_not",
        [mg("e-mg", 2.0, t("08:00", day=0, us=-1), t("09:00", day=0)), KCL],
        not_checked("warning"),
    ),
    case(
        "normal_mg_collected_and_resulted_exactly_at_tau_qualifies",
        [KCL, mg("e-mg", 2.0, TAU, TAU)],
        [],
    ),
    case(
        "normal_mg_resulted_1us_after_tau_is_not_seen_then_resolves",
        [KCL, mg("e-mg", 2.0, t("08:10"), t("08:30", us=1))],
        [
            fired(NOT_CHECKED, "warning", TAU, "e-kcl"),
            resolved(NOT_CHECKED, "warning", t("08:30", us=1), "e-kcl", "mg_checked_normal"),
        ],
    ),
    case(
        "low_mg_collected_exactly_t0_minus_24h_qualifies",
        [mg("e-mg", 1.5, t("08:00", day=0), t("09:00", day=0)), KCL],
        low("high"),
    ),
    case(
        "low_mg_collected_1us_before_t0_minus_24h_does_not",
        [mg("e-mg", 1.5, t("08:00", day=0, us=-1), t("09:00", day=0)), KCL],
        not_checked("warning"),
    ),
    case(
        "removed_mg_result_does_not_qualify",
        [mg("e-mg", 2.0, t("07:00"), result_id="R1"), removal("e-rm", "R1", t("07:30")), KCL],
        not_checked("warning"),
    ),
]

REPLETION_WINDOW = [
    case("mgso4_exactly_t0_minus_24h", [mgso4("e-mgso4", t("08:00", day=0)), KCL], []),
    case(
        "mgso4_1us_before_t0_minus_24h",
        [mgso4("e-mgso4", t("08:00", day=0, us=-1)), KCL],
        not_checked("warning"),
    ),
    case("mgso4_within_hold", [KCL, mgso4("e-mgso4", t("08:10"))], []),
    case("mgso4_exactly_at_tau", [KCL, mgso4("e-mgso4", TAU)], []),
    case(
        "mgso4_1us_after_tau_resolves_instead",
        [KCL, mgso4("e-mgso4", t("08:30", us=1))],
        [
            fired(NOT_CHECKED, "warning", TAU, "e-kcl"),
            resolved(NOT_CHECKED, "warning", t("08:30", us=1), "e-kcl", "mg_repleted"),
        ],
    ),
    case(
        "mg_order_cancelled_is_not_a_repletion",
        [
            mgso4("e-mgso4", t("06:00"), order_id="OM"),
            cancel("e-cx", t("06:20"), "OM"),
            KCL,
        ],
        not_checked("warning"),
    ),
    case(
        "mg_administration_of_a_cancelled_order_still_counts",
        [
            mgso4("e-mgso4", t("06:00"), order_id="OM"),
            mgso4("e-mgso4-a", t("06:10"), action="administered", order_id="OM"),
            cancel("e-cx", t("06:20"), "OM"),
            KCL,
        ],
        [],
    ),
    case(
        "mg_administration_at_its_cancels_instant_still_counts",
        [
            mg("e-mg", 1.4, t("06:00"), t("06:30")),
            mgso4("e-mgso4", t("07:50"), order_id="OM"),
            cancel("e-cx", t("08:05"), "OM"),
            mgso4("e-mgso4-a", t("08:05"), action="administered", order_id="OM"),
            KCL,
        ],
        [],
    ),
    case(
        "mg_administration_after_its_cancel_still_counts",
        [
            mgso4("e-mgso4", t("06:00"), order_id="OM"),
            cancel("e-cx", t("06:20"), "OM"),
            mgso4("e-mgso4-a", t("06:40"), action="administered", order_id="OM"),
            KCL,
        ],
        [],
    ),
    case(
        "mg_order_after_its_cancel_is_withdrawn",
        [
            cancel("e-cx", t("06:00"), "OM"),
            mgso4("e-mgso4", t("06:20"), order_id="OM"),
            KCL,
        ],
        not_checked("warning"),
    ),
    case(
        "magnesium_oxide_by_name_only",
        [med("e-mgo", t("07:00"), name="Mag-Ox 400 mg tablet"), KCL],
        [],
    ),
]


@pytest.mark.parametrize(("events", "expected"), MG_WINDOW + REPLETION_WINDOW)
def test_magnesium_windows(events, expected):
    assert_alerts(replay_alerts(events), expected)


@pytest.mark.parametrize(
    ("hold", "expected"),
    [
        (30, not_checked("warning")),
        (
            60,
            [
                fired(NOT_CHECKED, "warning", t("09:00"), "e-kcl"),
                resolved(NOT_CHECKED, "warning", EXPIRY, "e-kcl", "expired"),
            ],
        ),
        (
            0,
            [
                fired(NOT_CHECKED, "warning", T0, "e-kcl"),
                resolved(NOT_CHECKED, "warning", EXPIRY, "e-kcl", "expired"),
            ],
        ),
    ],
    ids=["hold_30", "hold_60", "hold_0"],
)
def test_evaluation_is_due_at_t0_plus_hold(hold, expected):
    assert_alerts(replay_alerts([KCL], config(hold_minutes=hold)), expected)


@pytest.mark.parametrize(
    ("hold", "expected"),
    [
        (
            30,
            [
                fired(NOT_CHECKED, "warning", TAU, "e-kcl"),
                resolved(NOT_CHECKED, "warning", t("08:45"), "e-kcl", "mg_repleted"),
            ],
        ),
        (60, []),
    ],
    ids=["hold_30_pages", "hold_60_lets_the_team_add_mg"],
)
def test_the_hold_gives_time_to_add_magnesium(hold, expected):
    events = [KCL, mgso4("e-mgso4", t("08:45"))]
    assert_alerts(replay_alerts(events, config(hold_minutes=hold)), expected)


def test_with_zero_hold_an_event_at_tau_is_seen_by_the_evaluation():
    # A timer runs after every event with a <= tau, whatever the event_id order.
    events = [kcl("a-kcl", T0), mg("z-mg", 2.0, t("07:00"), T0)]
    assert_alerts(replay_alerts(events, config(hold_minutes=0)), [])


K_COLLECTED, K_RESULTED = t("07:00"), t("07:30")

NOT_CHECKED_SEVERITY = [
    case("no_k_is_unknown_warning", [KCL], not_checked("warning")),
    case("k_3_0_warning", [k("e-k", 3.0, K_COLLECTED, K_RESULTED), KCL], not_checked("warning")),
    case("k_2_99_high", [k("e-k", 2.99, K_COLLECTED, K_RESULTED), KCL], not_checked("high")),
    case(
        "k_in_meq_per_l_2_9_high",
        [k("e-k", 2.9, K_COLLECTED, K_RESULTED, unit="mEq/L"), KCL],
        not_checked("high"),
    ),
    case(
        "k_collected_exactly_tau_minus_24h_counts",
        [k("e-k", 2.8, t("08:30", day=0), t("09:00", day=0)), KCL],
        not_checked("high"),
    ),
    case(
        "k_collected_1us_before_tau_minus_24h_is_unknown",
        [k("e-k", 2.8, t("08:30", day=0, us=-1), t("09:00", day=0)), KCL],
        not_checked("warning"),
    ),
    case(
        "k_resulted_after_tau_is_not_seen",
        [KCL, k("e-k", 2.8, t("08:00"), t("08:30", us=1))],
        not_checked("warning"),
    ),
    case(
        "latest_k_is_greatest_collected_normal_after_low",
        [k("e-k1", 2.8, t("06:00"), t("06:30")), k("e-k2", 3.6, t("07:00"), t("07:20")), KCL],
        not_checked("warning"),
    ),
    case(
        "latest_k_is_greatest_collected_even_if_resulted_first",
        [k("e-k2", 2.8, t("07:00"), t("07:30")), k("e-k1", 3.6, t("06:00"), t("07:50")), KCL],
        not_checked("high"),
    ),
    case(
        "latest_k_tie_on_collected_greatest_resulted",
        [k("e-k1", 3.6, t("07:00"), t("07:20")), k("e-k2", 2.8, t("07:00"), t("07:40")), KCL],
        not_checked("high"),
    ),
    case(
        "latest_k_tie_on_collected_greatest_resulted_other_way",
        [k("e-k2", 2.8, t("07:00"), t("07:20")), k("e-k1", 3.6, t("07:00"), t("07:40")), KCL],
        not_checked("warning"),
    ),
    case(
        "latest_k_tie_on_both_greatest_event_id",
        [k("e-k1", 3.6, t("07:00"), t("07:30")), k("e-k2", 2.8, t("07:00"), t("07:30")), KCL],
        not_checked("high"),
    ),
    case(
        "removed_low_k_does_not_raise",
        [
            k("e-k", 2.8, K_COLLECTED, K_RESULTED, result_id="RK"),
            removal("e-rm", "RK", t("07:40"), code="2823-3"),
            KCL,
        ],
        not_checked("warning"),
    ),
    case(
        "hemolysed_low_k_counts_hemolysis_is_magnesium_only",
        [k("e-k", 2.8, K_COLLECTED, K_RESULTED, flags=["hemolyzed"]), KCL],
        not_checked("high"),
    ),
    case(
        "furosemide_exactly_tau_minus_168h",
        [furosemide("e-loop", t("08:30", day=-6)), KCL],
        not_checked("high"),
    ),
    case(
        "furosemide_1us_before_tau_minus_168h",
        [furosemide("e-loop", t("08:30", day=-6, us=-1)), KCL],
        not_checked("warning"),
    ),
    case(
        "furosemide_exactly_at_tau",
        [KCL, furosemide("e-loop", TAU)],
        not_checked("high"),
    ),
    case(
        "furosemide_after_tau_is_not_seen",
        [KCL, furosemide("e-loop", t("08:30", us=1))],
        not_checked("warning"),
    ),
    case("thiazide_high", [hctz("e-thz", t("06:00")), KCL], not_checked("high")),
    case(
        "diuretic_administration_high",
        [furosemide("e-loop", t("06:00"), action="administered"), KCL],
        not_checked("high"),
    ),
    case(
        "diuretic_by_name_with_local_code",
        [med("e-loop", t("06:00"), code="LOCAL-77", name="Lasix 40 mg IV push"), KCL],
        not_checked("high"),
    ),
    case(
        "cancelled_diuretic_order_is_withdrawn",
        [
            furosemide("e-loop", t("06:00"), order_id="OL"),
            cancel("e-cx", t("06:05"), "OL"),
            KCL,
        ],
        not_checked("warning"),
    ),
    case(
        "diuretic_order_after_its_cancel_is_withdrawn",
        [
            cancel("e-cx", t("06:00"), "OL"),
            furosemide("e-loop", t("06:30"), order_id="OL"),
            KCL,
        ],
        not_checked("warning"),
    ),
    case(
        "diuretic_given_at_its_cancels_instant_still_counts",
        [
            cancel("e-cx", t("06:00"), "OL"),
            furosemide("e-loop-a", t("06:00"), order_id="OL", action="administered"),
            KCL,
        ],
        not_checked("high"),
    ),
    case(
        "given_diuretic_of_a_cancelled_order_still_counts",
        [
            furosemide("e-loop", t("06:00"), order_id="OL"),
            furosemide("e-loop-a", t("06:02"), order_id="OL", action="administered"),
            cancel("e-cx", t("06:05"), "OL"),
            KCL,
        ],
        not_checked("high"),
    ),
]


@pytest.mark.parametrize(("events", "expected"), NOT_CHECKED_SEVERITY)
def test_mg_not_checked_severity(events, expected):
    assert_alerts(replay_alerts(events), expected)


MG_C, MG_R = t("07:00"), t("07:30")

LOW_SEVERITY = [
    case("mg_1_69_high", [mg("e-mg", 1.69, MG_C, MG_R), KCL], low("high")),
    case("mg_1_70_not_low", [mg("e-mg", 1.7, MG_C, MG_R), KCL], []),
    case("mg_1_20_high", [mg("e-mg", 1.2, MG_C, MG_R), KCL], low("high")),
    case("mg_1_19_critical", [mg("e-mg", 1.19, MG_C, MG_R), KCL], low("critical")),
    case(
        "k_2_5_high",
        [k("e-k", 2.5, K_COLLECTED, K_RESULTED), mg("e-mg", 1.5, MG_C, MG_R), KCL],
        low("high"),
    ),
    case(
        "k_2_49_critical",
        [k("e-k", 2.49, K_COLLECTED, K_RESULTED), mg("e-mg", 1.5, MG_C, MG_R), KCL],
        low("critical"),
    ),
    case(
        "old_k_2_0_is_unknown_high",
        [k("e-k", 2.0, t("08:00", day=0), t("08:20", day=0)), mg("e-mg", 1.5, MG_C, MG_R), KCL],
        low("high"),
    ),
    case(
        "mgso4_exactly_at_collected_corrects",
        [mgso4("e-mgso4", MG_C), mg("e-mg", 1.5, MG_C, MG_R), KCL],
        [],
    ),
    case(
        "mgso4_1us_before_collected_does_not_correct",
        [mgso4("e-mgso4", t("07:00", us=-1)), mg("e-mg", 1.5, MG_C, MG_R), KCL],
        low("high"),
    ),
    case(
        "mgso4_after_collected_within_hold_corrects",
        [mg("e-mg", 1.5, MG_C, MG_R), KCL, mgso4("e-mgso4", t("08:29"))],
        [],
    ),
    case(
        "newer_normal_mg_wins_over_older_low",
        [mg("e-mg1", 1.5, t("06:00"), t("06:30")), mg("e-mg2", 2.0, MG_C, MG_R), KCL],
        [],
    ),
    case(
        "newer_low_mg_wins_over_older_normal",
        [mg("e-mg1", 2.0, t("06:00"), t("06:30")), mg("e-mg2", 1.5, MG_C, MG_R), KCL],
        low("high"),
    ),
    case(
        "older_normal_arriving_later_does_not_win",
        [mg("e-mg2", 1.5, MG_C, MG_R), mg("e-mg1", 2.0, t("06:00"), t("07:50")), KCL],
        low("high"),
    ),
    case(
        "newer_hemolysed_normal_is_ignored",
        [
            mg("e-mg1", 1.5, t("06:00"), t("06:30")),
            mg("e-mg2", 2.2, MG_C, MG_R, flags=["hemolyzed"]),
            KCL,
        ],
        low("high"),
    ),
    case(
        "hemolysed_low_counts",
        [mg("e-mg", 1.5, MG_C, MG_R, flags=["hemolyzed"]), KCL],
        low("high"),
    ),
    case(
        "only_a_hemolysed_normal_is_not_checked",
        [mg("e-mg", 2.2, MG_C, MG_R, flags=["HEMOLYZED"]), KCL],
        not_checked("warning"),
    ),
    case(
        "low_mg_with_diuretic_stays_high_not_critical",
        [furosemide("e-loop", t("06:00")), mg("e-mg", 1.5, MG_C, MG_R), KCL],
        low("high"),
    ),
]


@pytest.mark.parametrize(("events", "expected"), LOW_SEVERITY)
def test_mg_low_uncorrected(events, expected):
    assert_alerts(replay_alerts(events), expected)


# Three KCl orders 6 h apart, each after a low K, magnesium never checked (like scenario 08).
def refractory_feed(
    k_last: float = 3.3,
    first_t0: str = t("06:00"),
    extra: tuple = (),
    with_k: bool = True,
) -> list:
    events = [
        kcl("e1", first_t0, order_id="O1"),
        kcl("e2", t("12:00"), order_id="O2"),
        kcl("e3", t("18:00"), order_id="O3"),
    ]
    if with_k:
        events += [
            k("k1", 3.1, t("05:00"), t("05:40")),
            k("k2", 3.2, t("11:00"), t("11:40")),
            k("k3", k_last, t("17:00"), t("17:40")),
        ]
    return events + list(extra)


def nc_first() -> list:
    return [
        fired(NOT_CHECKED, "warning", t("06:30"), "e1"),
        resolved(NOT_CHECKED, "warning", t("18:00", day=3), "e1", "expired"),
    ]


REFRACTORY_AT_E3 = [
    fired(REFRACTORY, "critical", t("18:30"), "e3"),
    resolved(REFRACTORY, "critical", t("18:00", day=3), "e3", "expired"),
]

REFRACTORY_CASES = [
    case("three_episodes_low_k", refractory_feed(), nc_first() + REFRACTORY_AT_E3),
    case(
        "two_episodes_are_not_enough",
        [e for e in refractory_feed() if e["event_id"] != "e1"],
        [
            fired(NOT_CHECKED, "warning", t("12:30"), "e2"),
            resolved(NOT_CHECKED, "warning", t("18:00", day=3), "e2", "expired"),
        ],
    ),
    case("k_3_5_blocks", refractory_feed(k_last=3.5), nc_first()),
    case("k_3_49_fires", refractory_feed(k_last=3.49), nc_first() + REFRACTORY_AT_E3),
    case("unknown_k_never_raises", refractory_feed(with_k=False), nc_first()),
    case(
        "withdrawn_episode_does_not_count",
        refractory_feed(extra=(cancel("cx", t("12:10"), "O2"),)),
        nc_first(),
    ),
    case(
        "episode_cancelled_after_its_evaluation_still_counts",
        refractory_feed(extra=(cancel("cx", t("12:40"), "O2"),)),
        nc_first() + REFRACTORY_AT_E3,
    ),
    case(
        "needs_the_condition_normal_mg_no_alert",
        refractory_feed(extra=(mg("m1", 2.0, t("05:00"), t("05:40")),)),
        [],
    ),
    case(
        "with_the_low_mg_condition",
        refractory_feed(extra=(mg("m1", 1.5, t("05:00"), t("05:40")),)),
        [
            fired(LOW, "high", t("06:30"), "e1"),
            resolved(LOW, "high", t("18:00", day=3), "e1", "expired"),
        ]
        + REFRACTORY_AT_E3,
    ),
]


@pytest.mark.parametrize(("events", "expected"), REFRACTORY_CASES)
def test_refractory_hypokalemia(events, expected):
    assert_alerts(replay_alerts(events), expected)


@pytest.mark.parametrize(
    ("first_t0", "refractory"),
    [(t("18:00", day=0), True), (t("18:00", day=0, us=-1), False)],
    ids=["first_episode_exactly_24h_before", "first_episode_1us_too_early"],
)
def test_refractory_window_edge(first_t0, refractory):
    events = [
        kcl("e1", first_t0, order_id="O1"),
        kcl("e2", t("06:00"), order_id="O2"),
        kcl("e3", t("18:00"), order_id="O3"),
        k("k3", 3.1, t("17:00"), t("17:40")),
    ]
    first_tau = t("18:30", day=0) if refractory else t("18:29:59.999999", day=0)
    expected = [
        fired(NOT_CHECKED, "warning", first_tau, "e1"),
        resolved(NOT_CHECKED, "warning", t("18:00", day=3), "e1", "expired"),
    ]
    if refractory:
        expected += REFRACTORY_AT_E3
    assert_alerts(replay_alerts(events), expected)


@pytest.mark.parametrize(
    ("given_at", "new_episode"),
    [
        (t("18:05"), False),  # 12 h after the order, but not after its 06:05 administration
        (t("18:05", us=1), True),
        (t("18:04"), False),
        (t("18:06"), True),
    ],
)
def test_episode_gap_is_measured_from_the_previous_event(given_at, new_episode):
    events = [
        kcl("e1", t("06:00"), order_id="O1"),
        kcl("e1-a", t("06:05"), order_id="O1", action="administered"),
        kcl("e1-b", given_at, order_id="O1", action="administered"),
    ]
    newest_t0 = given_at if new_episode else t("06:00")
    expiry = shift(newest_t0, hours=48)
    expected = [
        fired(NOT_CHECKED, "warning", t("06:30"), "e1"),
        resolved(NOT_CHECKED, "warning", expiry, "e1", "expired"),
    ]
    assert_alerts(replay_alerts(events), expected)


def test_an_administration_without_order_id_is_its_own_episode():
    events = [
        kcl("e1", t("06:00"), action="administered"),
        kcl("e2", t("07:00"), action="administered"),
        kcl("e3", t("08:00"), action="administered"),
        k("k1", 3.0, t("07:30"), t("07:50")),
    ]
    expected = [
        fired(NOT_CHECKED, "warning", t("06:30"), "e1"),
        fired(REFRACTORY, "critical", t("08:30"), "e3"),
        resolved(NOT_CHECKED, "warning", t("08:00", day=3), "e1", "expired"),
        resolved(REFRACTORY, "critical", t("08:00", day=3), "e3", "expired"),
    ]
    assert_alerts(replay_alerts(events), expected)
