"""RULES.md 4.4: every resolution reason, its `at`, linked REFRACTORY resolutions and expiry."""

from __future__ import annotations

import pytest

from tests.alerts.feed import (
    LOW,
    NOT_CHECKED,
    REFRACTORY,
    cancel,
    fired,
    k,
    kcl,
    med,
    mg,
    mgso4,
    removal,
    resolved,
    t,
)
from tests.alerts.harness import assert_alerts, replay_alerts

KCL = kcl("e-kcl", t("08:00"))
EXPIRY = t("08:00", day=3)
NC_FIRED = fired(NOT_CHECKED, "warning", t("08:30"), "e-kcl")
NC_EXPIRED = resolved(NOT_CHECKED, "warning", EXPIRY, "e-kcl", "expired")
LOW_MG = mg("e-mg", 1.5, t("07:00"), t("07:30"), result_id="R1")
LOW_FIRED = fired(LOW, "high", t("08:30"), "e-kcl")
LOW_EXPIRED = resolved(LOW, "high", EXPIRY, "e-kcl", "expired")


def nc_resolved(reason: str, at: str) -> list:
    return [NC_FIRED, resolved(NOT_CHECKED, "warning", at, "e-kcl", reason)]


def low_resolved(reason: str, at: str) -> list:
    return [LOW_FIRED, resolved(LOW, "high", at, "e-kcl", reason)]


def case(name: str, events: list, expected: list):
    return pytest.param(events, expected, id=name)


NOT_CHECKED_CASES = [
    case(
        "mg_checked_normal_at_the_result_availability",
        [KCL, mg("m2", 1.9, t("09:00"), t("10:00"))],
        nc_resolved("mg_checked_normal", t("10:00")),
    ),
    case(
        "mg_checked_normal_exactly_mg_low",
        [KCL, mg("m2", 1.7, t("09:00"), t("10:00"))],
        nc_resolved("mg_checked_normal", t("10:00")),
    ),
    case(
        "old_result_collected_exactly_t0_minus_24h_resolves",
        [KCL, mg("m2", 2.0, t("08:00", day=0), t("10:00"))],
        nc_resolved("mg_checked_normal", t("10:00")),
    ),
    case(
        "old_result_collected_1us_before_t0_minus_24h_does_not",
        [KCL, mg("m2", 2.0, t("08:00", day=0, us=-1), t("10:00"))],
        [NC_FIRED, NC_EXPIRED],
    ),
    case(
        "hemolysed_normal_result_does_not_resolve",
        [KCL, mg("m2", 2.3, t("09:00"), t("10:00"), flags=["Hemolyzed"])],
        [NC_FIRED, NC_EXPIRED],
    ),
    case(
        "superseded_by_a_low_result_then_mg_low_from_the_lab",
        [KCL, mg("m2", 1.5, t("09:00"), t("10:00"))],
        nc_resolved("superseded", t("10:00"))
        + [
            fired(LOW, "high", t("10:30"), "m2"),
            resolved(LOW, "high", EXPIRY, "m2", "expired"),
        ],
    ),
    case(
        # 4.2's own window ends 24 h after the specimen, here before the episode; 4.4 still
        # schedules its evaluation, so the superseded alert is followed, not left in silence.
        "superseded_by_a_low_result_collected_30h_after_the_episode",
        [KCL, mg("m2", 1.5, t("14:00", day=2), t("15:00", day=2))],
        nc_resolved("superseded", t("15:00", day=2))
        + [
            fired(LOW, "high", t("15:30", day=2), "m2"),
            resolved(LOW, "high", EXPIRY, "m2", "expired"),
        ],
    ),
    case(
        "a_normal_result_collected_30h_after_the_episode_resolves_without_evaluation",
        [KCL, mg("m2", 1.9, t("14:00", day=2), t("15:00", day=2))],
        nc_resolved("mg_checked_normal", t("15:00", day=2)),
    ),
    case(
        "a_hemolysed_low_result_counts_and_supersedes",
        [KCL, mg("m2", 1.5, t("09:00"), t("10:00"), flags=["hemolyzed"])],
        nc_resolved("superseded", t("10:00"))
        + [
            fired(LOW, "high", t("10:30"), "m2"),
            resolved(LOW, "high", EXPIRY, "m2", "expired"),
        ],
    ),
    case(
        "mg_repleted_by_an_order",
        [KCL, mgso4("r1", t("09:00"))],
        nc_resolved("mg_repleted", t("09:00")),
    ),
    case(
        "mg_repleted_by_an_administration",
        [KCL, mgso4("r1", t("09:00"), action="administered", order_id="OM")],
        nc_resolved("mg_repleted", t("09:00")),
    ),
    case(
        "mg_repleted_by_name_only",
        [KCL, med("r1", t("09:00"), name="slow-mag 64 mg")],
        nc_resolved("mg_repleted", t("09:00")),
    ),
    case(
        "mg_repleted_by_a_k_mg_premix_which_is_also_an_episode",
        [
            KCL,
            med(
                "r1",
                t("09:00"),
                code=None,
                name="Potassium chloride 20 mEq / magnesium sulfate 1 g in 100 mL",
            ),
        ],
        nc_resolved("mg_repleted", t("09:00")),
    ),
    case(
        "expired_at_the_newest_episode_t0_plus_48h",
        [KCL],
        [NC_FIRED, NC_EXPIRED],
    ),
    case(
        "a_removed_result_resolves_nothing",
        [
            KCL,
            k("k1", 3.1, t("08:40"), t("09:00"), result_id="RK"),
            removal("rm", "RK", t("09:30"), code="2823-3"),
        ],
        [NC_FIRED, NC_EXPIRED],
    ),
    case(
        "a_cancel_after_the_evaluation_changes_nothing",
        [kcl("e-kcl", t("08:00"), order_id="O1"), cancel("cx", t("08:40"), "O1")],
        [NC_FIRED, NC_EXPIRED],
    ),
]


@pytest.mark.parametrize(("events", "expected"), NOT_CHECKED_CASES)
def test_mg_not_checked_resolutions(events, expected):
    assert_alerts(replay_alerts(events), expected)


# The low result corrected to a hemolysed normal at 09:00 (not evidence, but a replacement).
HEMOLYSED_CORRECTION = [
    LOW_MG,
    KCL,
    mg(
        "e-mg-c",
        2.0,
        t("09:00"),
        t("09:10"),
        status="corrected",
        result_id="R1",
        flags=["hemolyzed"],
    ),
]

LOW_CASES = [
    case(
        "mg_repleted",
        [LOW_MG, KCL, mgso4("r1", t("09:00"))],
        low_resolved("mg_repleted", t("09:00")),
    ),
    case(
        "mg_normalized_by_a_newer_normal",
        [LOW_MG, KCL, mg("m2", 1.9, t("09:00"), t("09:40"))],
        low_resolved("mg_normalized", t("09:40")),
    ),
    case(
        "mg_normalized_at_exactly_mg_low",
        [LOW_MG, KCL, mg("m2", 1.7, t("09:00"), t("09:40"))],
        low_resolved("mg_normalized", t("09:40")),
    ),
    case(
        "normal_with_the_same_collected_time_does_not_normalize",
        [LOW_MG, KCL, mg("m2", 1.9, t("07:00"), t("09:40"))],
        [LOW_FIRED, LOW_EXPIRED],
    ),
    case(
        "normal_collected_earlier_does_not_normalize",
        [LOW_MG, KCL, mg("m2", 1.9, t("06:00"), t("09:40"))],
        [LOW_FIRED, LOW_EXPIRED],
    ),
    case(
        "hemolysed_normal_does_not_normalize",
        [LOW_MG, KCL, mg("m2", 2.1, t("09:00"), t("09:40"), flags=["hemolyzed"])],
        [LOW_FIRED, LOW_EXPIRED],
    ),
    case(
        # Found by the oracle: the correction replaces the low result, so a normal result
        # collected between the two no longer normalises the alert (the safer reading).
        "a_hemolysed_normal_correction_is_what_a_normal_result_must_follow",
        [
            *HEMOLYSED_CORRECTION,
            mg("m3", 1.9, t("08:00"), t("10:00")),
        ],
        [LOW_FIRED, LOW_EXPIRED],
    ),
    case(
        "a_normal_result_after_a_hemolysed_normal_correction_normalises",
        [
            *HEMOLYSED_CORRECTION,
            mg("m3", 1.9, t("09:30"), t("10:00")),
        ],
        low_resolved("mg_normalized", t("10:00")),
    ),
    case(
        "a_newer_low_result_does_not_resolve",
        [LOW_MG, KCL, mg("m2", 1.6, t("09:00"), t("09:40"))],
        [LOW_FIRED, LOW_EXPIRED],
    ),
    case(
        # Chosen reading (safer): once a newer low result's evaluation holds, the alert rests
        # on it; correcting or retracting the older one leaves magnesium low, and the alert on.
        "a_newer_low_result_carries_the_alert_past_a_correction_of_the_first",
        [
            LOW_MG,
            KCL,
            mg("m2", 1.6, t("09:00"), t("09:40")),
            mg("e-mg-c", 1.9, t("07:00"), t("10:40"), status="corrected", result_id="R1"),
        ],
        [LOW_FIRED, LOW_EXPIRED],
    ),
    case(
        "a_newer_low_result_carries_the_alert_past_a_retraction_of_the_first",
        [LOW_MG, KCL, mg("m2", 1.6, t("09:00"), t("09:40")), removal("rm", "R1", t("10:40"))],
        [LOW_FIRED, LOW_EXPIRED],
    ),
    case(
        "a_normal_result_older_than_the_newer_low_does_not_normalise",
        [
            LOW_MG,
            KCL,
            mg("m2", 1.6, t("09:00"), t("09:40")),
            mg("m3", 2.0, t("08:00"), t("11:00")),
        ],
        [LOW_FIRED, LOW_EXPIRED],
    ),
    case(
        "then_the_newer_results_own_correction_resolves",
        [
            LOW_MG,
            KCL,
            mg("m2", 1.6, t("09:00"), t("09:40")),
            mg("e-mg-c", 1.9, t("07:00"), t("10:40"), status="corrected", result_id="R1"),
            mg("m2-c", 1.9, t("09:00"), t("11:00"), status="corrected", result_id="m2"),
        ],
        low_resolved("result_corrected", t("11:00")),
    ),
    case(
        "a_correction_before_the_newer_results_evaluation_resolves_then_it_fires",
        [
            LOW_MG,
            KCL,
            mg("m2", 1.6, t("09:00"), t("09:40")),
            mg("e-mg-c", 1.9, t("07:00"), t("09:50"), status="corrected", result_id="R1"),
        ],
        low_resolved("result_corrected", t("09:50"))
        + [fired(LOW, "high", t("10:10"), "m2"), resolved(LOW, "high", EXPIRY, "m2", "expired")],
    ),
    case(
        "result_corrected_to_normal",
        [
            LOW_MG,
            KCL,
            mg("e-mg-c", 1.9, t("07:00"), t("09:40"), status="corrected", result_id="R1"),
        ],
        low_resolved("result_corrected", t("09:40")),
    ),
    case(
        "final_reusing_the_result_id_is_a_correction",
        [LOW_MG, KCL, mg("e-mg-c", 1.9, t("07:00"), t("09:40"), result_id="R1")],
        low_resolved("result_corrected", t("09:40")),
    ),
    case(
        "result_corrected_to_another_low_value_stays",
        [
            LOW_MG,
            KCL,
            mg("e-mg-c", 1.3, t("07:00"), t("09:40"), status="corrected", result_id="R1"),
        ],
        [LOW_FIRED, LOW_EXPIRED],
    ),
    case(
        "result_retracted_entered_in_error",
        [LOW_MG, KCL, removal("rm", "R1", t("09:40"))],
        low_resolved("result_retracted", t("09:40")),
    ),
    case(
        "result_retracted_cancelled",
        [LOW_MG, KCL, removal("rm", "R1", t("09:40"), status="cancelled")],
        low_resolved("result_retracted", t("09:40")),
    ),
    case(
        "removing_another_result_resolves_nothing",
        [
            mg("e-mg0", 2.0, t("05:00"), t("05:30"), result_id="R0"),
            LOW_MG,
            KCL,
            removal("rm", "R0", t("09:40")),
        ],
        [LOW_FIRED, LOW_EXPIRED],
    ),
    case(
        "removal_of_an_unknown_result_id_is_a_no_op",
        [LOW_MG, KCL, removal("rm", "R-unknown", t("09:40"))],
        [LOW_FIRED, LOW_EXPIRED],
    ),
]


@pytest.mark.parametrize(("events", "expected"), LOW_CASES)
def test_mg_low_uncorrected_resolutions(events, expected):
    assert_alerts(replay_alerts(events), expected)


# REFRACTORY: three KCl orders with low K and no Mg (as scenario 08), then one resolving event.
def refractory(extra: list, mg_before: dict | None = None) -> list:
    events = [
        kcl("e1", t("06:00"), order_id="O1"),
        kcl("e2", t("12:00"), order_id="O2"),
        kcl("e3", t("18:00"), order_id="O3"),
        k("k1", 3.1, t("05:00"), t("05:40")),
        k("k3", 3.3, t("17:00"), t("17:40")),
    ]
    if mg_before is not None:
        events.append(mg_before)
    return events + extra


END = t("18:00", day=3)
R_FIRED = fired(REFRACTORY, "critical", t("18:30"), "e3")
R_EXPIRED = resolved(REFRACTORY, "critical", END, "e3", "expired")
NC1_FIRED = fired(NOT_CHECKED, "warning", t("06:30"), "e1")
NC1_EXPIRED = resolved(NOT_CHECKED, "warning", END, "e1", "expired")
LOW1_FIRED = fired(LOW, "high", t("06:30"), "e1")
LOW1_EXPIRED = resolved(LOW, "high", END, "e1", "expired")
MG_LOW_EARLY = mg("m0", 1.5, t("05:00"), t("05:30"), result_id="R0")

REFRACTORY_CASES = [
    case(
        "expires_with_the_newest_episode",
        refractory([]),
        [NC1_FIRED, R_FIRED, NC1_EXPIRED, R_EXPIRED],
    ),
    case(
        "k_normalized_by_k_collected_after_t0",
        refractory([k("k4", 3.6, t("19:00"), t("19:30"))]),
        [
            NC1_FIRED,
            R_FIRED,
            resolved(REFRACTORY, "critical", t("19:30"), "e3", "k_normalized"),
            NC1_EXPIRED,
        ],
    ),
    case(
        "k_normalized_at_exactly_k_low",
        refractory([k("k4", 3.5, t("19:00"), t("19:30"))]),
        [
            NC1_FIRED,
            R_FIRED,
            resolved(REFRACTORY, "critical", t("19:30"), "e3", "k_normalized"),
            NC1_EXPIRED,
        ],
    ),
    case(
        "k_collected_at_t0_is_not_after_it",
        refractory([k("k4", 3.6, t("18:00"), t("19:30"))]),
        [NC1_FIRED, R_FIRED, NC1_EXPIRED, R_EXPIRED],
    ),
    case(
        "k_collected_before_t0_does_not_normalize",
        refractory([k("k4", 3.6, t("17:30"), t("19:30"))]),
        [NC1_FIRED, R_FIRED, NC1_EXPIRED, R_EXPIRED],
    ),
    case(
        "low_k_after_t0_does_not_normalize",
        refractory([k("k4", 3.4, t("19:00"), t("19:30"))]),
        [NC1_FIRED, R_FIRED, NC1_EXPIRED, R_EXPIRED],
    ),
    case(
        "linked_not_checked_mg_repleted_same_at",
        refractory([mgso4("r1", t("20:00"))]),
        [
            NC1_FIRED,
            R_FIRED,
            resolved(NOT_CHECKED, "warning", t("20:00"), "e1", "mg_repleted"),
            resolved(REFRACTORY, "critical", t("20:00"), "e3", "mg_repleted"),
        ],
    ),
    case(
        "linked_not_checked_mg_checked_normal_same_at",
        refractory([mg("m1", 2.0, t("19:00"), t("20:00"))]),
        [
            NC1_FIRED,
            R_FIRED,
            resolved(NOT_CHECKED, "warning", t("20:00"), "e1", "mg_checked_normal"),
            resolved(REFRACTORY, "critical", t("20:00"), "e3", "mg_checked_normal"),
        ],
    ),
    case(
        "linked_not_checked_superseded_same_at",
        refractory([mg("m1", 1.5, t("19:00"), t("20:00"))]),
        [
            NC1_FIRED,
            R_FIRED,
            resolved(NOT_CHECKED, "warning", t("20:00"), "e1", "superseded"),
            resolved(REFRACTORY, "critical", t("20:00"), "e3", "superseded"),
            fired(LOW, "high", t("20:30"), "m1"),
            resolved(LOW, "high", END, "m1", "expired"),
        ],
    ),
    case(
        "linked_low_mg_repleted_same_at",
        refractory([mgso4("r1", t("20:00"))], MG_LOW_EARLY),
        [
            LOW1_FIRED,
            R_FIRED,
            resolved(LOW, "high", t("20:00"), "e1", "mg_repleted"),
            resolved(REFRACTORY, "critical", t("20:00"), "e3", "mg_repleted"),
        ],
    ),
    case(
        "linked_low_result_corrected_same_at",
        refractory(
            [mg("m0c", 1.9, t("05:00"), t("20:00"), status="corrected", result_id="R0")],
            MG_LOW_EARLY,
        ),
        [
            LOW1_FIRED,
            R_FIRED,
            resolved(LOW, "high", t("20:00"), "e1", "result_corrected"),
            resolved(REFRACTORY, "critical", t("20:00"), "e3", "result_corrected"),
        ],
    ),
    case(
        "linked_low_result_retracted_same_at",
        refractory([removal("rm", "R0", t("20:00"))], MG_LOW_EARLY),
        [
            LOW1_FIRED,
            R_FIRED,
            resolved(LOW, "high", t("20:00"), "e1", "result_retracted"),
            resolved(REFRACTORY, "critical", t("20:00"), "e3", "result_retracted"),
        ],
    ),
    case(
        "linked_low_mg_normalized_same_at",
        refractory([mg("m1", 2.0, t("19:00"), t("20:00"))], MG_LOW_EARLY),
        [
            LOW1_FIRED,
            R_FIRED,
            resolved(LOW, "high", t("20:00"), "e1", "mg_normalized"),
            resolved(REFRACTORY, "critical", t("20:00"), "e3", "mg_normalized"),
        ],
    ),
]


@pytest.mark.parametrize(("events", "expected"), REFRACTORY_CASES)
def test_refractory_resolutions(events, expected):
    assert_alerts(replay_alerts(events), expected)


EXPIRY_CASES = [
    case(
        "a_newer_episode_moves_the_expiry",
        [KCL, kcl("e2", t("20:00"))],
        [NC_FIRED, resolved(NOT_CHECKED, "warning", t("20:00", day=3), "e-kcl", "expired")],
    ),
    case(
        "a_newer_episode_moves_the_mg_low_expiry_too",
        [LOW_MG, KCL, kcl("e2", t("20:00"))],
        [LOW_FIRED, resolved(LOW, "high", t("20:00", day=3), "e-kcl", "expired")],
    ),
    case(
        "a_withdrawn_episode_still_moves_the_expiry",
        [KCL, kcl("e2", t("20:00"), order_id="O2"), cancel("cx", t("20:10"), "O2")],
        [NC_FIRED, resolved(NOT_CHECKED, "warning", t("20:00", day=3), "e-kcl", "expired")],
    ),
    case(
        "an_episode_withdrawn_by_an_earlier_cancel_still_moves_the_expiry",
        [KCL, cancel("cx", t("19:55"), "O2"), kcl("e2", t("20:00"), order_id="O2")],
        [NC_FIRED, resolved(NOT_CHECKED, "warning", t("20:00", day=3), "e-kcl", "expired")],
    ),
    case(
        "a_later_event_of_the_same_order_does_not_move_it",
        [
            kcl("e-kcl", t("08:00"), order_id="O1"),
            kcl("e-kcl-a", t("19:00"), order_id="O1", action="administered"),
        ],
        [NC_FIRED, NC_EXPIRED],
    ),
    case(
        "a_result_after_the_expiry_changes_nothing",
        [KCL, mg("m2", 1.9, t("09:00", day=3), t("09:30", day=3))],
        [NC_FIRED, NC_EXPIRED],
    ),
    case(
        "a_repletion_exactly_at_the_expiry_is_processed_first",
        [KCL, mgso4("r1", EXPIRY)],
        [NC_FIRED, resolved(NOT_CHECKED, "warning", EXPIRY, "e-kcl", "mg_repleted")],
    ),
]


@pytest.mark.parametrize(("events", "expected"), EXPIRY_CASES)
def test_expiry(events, expected):
    assert_alerts(replay_alerts(events), expected)
