"""Every count of summary.json against figures worked out by hand from the golden scenarios.

Default configuration: hold 30 min, Mg lookback 24 h, mg_low 1.7 mg/dL, k_low 3.5, refractory
3 episodes in 24 h, follow-up 48 h. "Result" is the first usable Mg result that became available
at or after t0; "repletion" the first Mg order or dose at or after t0 (both within 48 h).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

import pytest

from streams.audit.figures import TIME_BINS
from tests.conftest import SCENARIOS
from tests.streams.audit.support import concatenated, run, scenario, scenario_inputs

pytestmark = pytest.mark.skipif(not SCENARIOS.is_dir(), reason=f"no scenarios at {SCENARIOS}")

NC, LU, LC, NO, RU = (
    "not_checked",
    "low_uncorrected",
    "low_corrected",
    "normal",
    "repleted_unchecked",
)
MNC, MLU, REF = "MG_NOT_CHECKED", "MG_LOW_UNCORRECTED", "REFRACTORY_HYPOKALEMIA"


class Hand(NamedTuple):
    """What one scenario gives, worked out by hand (only the non-zero counts)."""

    episodes: int
    withdrawn: int
    contexts: dict[str, int]
    refractory: int
    diuretic: int
    with_alert: int
    fired: dict[tuple[str, str], int]  # (rule, severity) -> firing alerts
    result: dict[str, int]  # time to first Mg result, all episodes
    repletion: dict[str, int]  # time to first Mg repletion, all episodes
    result_nc: dict[str, int]  # ... of the Mg-not-checked episodes
    repletion_lu: dict[str, int]  # ... of the Mg-low-uncorrected episodes


NONE = "none_within_48h"
HAND: dict[str, Hand] = {
    # KCl ordered 08:00 (given 08:20 under the same order: same episode); no Mg at all.
    "01": Hand(1, 0, {NC: 1}, 0, 0, 1, {(MNC, "warning"): 1}, {NONE: 1}, {NONE: 1}, {NONE: 1}, {}),
    # Mg 2.0 collected 05:30, resulted 06:20 (before t0 08:00): normal; nothing after t0.
    "02": Hand(1, 0, {NO: 1}, 0, 0, 0, {}, {NONE: 1}, {NONE: 1}, {}, {}),
    # The only Mg was collected 25 h before t0: not checked.
    "03": Hand(1, 0, {NC: 1}, 0, 0, 1, {(MNC, "warning"): 1}, {NONE: 1}, {NONE: 1}, {NONE: 1}, {}),
    # Mg 1.4 before the order, never repleted: low uncorrected, high.
    "04": Hand(1, 0, {LU: 1}, 0, 0, 1, {(MLU, "high"): 1}, {NONE: 1}, {NONE: 1}, {}, {NONE: 1}),
    # Mg 1.5, MgSO4 ordered 08:10 (10 min after t0, inside the hold): low corrected, no alert;
    # first repletion 0.17 h -> 0-1h.
    "05": Hand(1, 0, {LC: 1}, 0, 0, 0, {}, {NONE: 1}, {"0-1h": 1}, {}, {}),
    # Mg 1.5 uncorrected at 08:30 (alert); MgSO4 ordered 09:05 = 1.08 h after t0 -> 1-2h.
    "06": Hand(1, 0, {LU: 1}, 0, 0, 1, {(MLU, "high"): 1}, {NONE: 1}, {"1-2h": 1}, {}, {"1-2h": 1}),
    # Not checked at 08:30 (alert); Mg 1.5 resulted 09:20 = 1.33 h -> 1-2h; its low-Mg
    # evaluation (RULES 4.2) fires MG_LOW_UNCORRECTED high at 09:50, counted for this episode.
    "07": Hand(
        1,
        0,
        {NC: 1},
        0,
        0,
        1,
        {(MNC, "warning"): 1, (MLU, "high"): 1},
        {"1-2h": 1},
        {NONE: 1},
        {"1-2h": 1},
        {},
    ),
    # Three KCl orders 06:00, 12:00, 18:00, K 3.1-3.3, Mg never checked: three not-checked
    # episodes; the first alerts (warning), the second is deduplicated, the third is the
    # refractory pattern (3 episodes in 24 h, K < 3.5): REFRACTORY critical. 2 with an alert.
    "08": Hand(
        3,
        0,
        {NC: 3},
        1,
        0,
        2,
        {(MNC, "warning"): 1, (REF, "critical"): 1},
        {NONE: 3},
        {NONE: 3},
        {NONE: 3},
        {},
    ),
    # Lasix 3 days earlier (in the 168 h lookback): diuretic, MG_NOT_CHECKED high.
    "09": Hand(1, 0, {NC: 1}, 0, 1, 1, {(MNC, "high"): 1}, {NONE: 1}, {NONE: 1}, {NONE: 1}, {}),
    # K 2.3 (< k_severe) and Mg 1.5: MG_LOW_UNCORRECTED critical.
    "10": Hand(1, 0, {LU: 1}, 0, 0, 1, {(MLU, "critical"): 1}, {NONE: 1}, {NONE: 1}, {}, {NONE: 1}),
    # Two KCl orders 08:00 and 10:00, both not checked; the second alert is deduplicated.
    "11": Hand(2, 0, {NC: 2}, 0, 0, 1, {(MNC, "warning"): 1}, {NONE: 2}, {NONE: 2}, {NONE: 2}, {}),
    # Cancelled 15 min after the order: withdrawn, never evaluated, in no share.
    "12": Hand(0, 1, {}, 0, 0, 0, {}, {}, {}, {}, {}),
    # A: Mg 1.4 corrected to 2.1 at 08:10 (before the 08:30 evaluation): normal. B: 2.0
    # corrected to 1.3 at 08:10: low uncorrected, high. Both corrections are results that
    # became available 10 min after t0 -> 0-1h.
    "13": Hand(
        2,
        0,
        {NO: 1, LU: 1},
        0,
        0,
        1,
        {(MLU, "high"): 1},
        {"0-1h": 2},
        {NONE: 2},
        {},
        {NONE: 1},
    ),
    # A hemolysed Mg 2.2 is ignored: not checked.
    "14": Hand(1, 0, {NC: 1}, 0, 0, 1, {(MNC, "warning"): 1}, {NONE: 1}, {NONE: 1}, {NONE: 1}, {}),
    # Not checked; the Mg resulted 49.5 h after t0 is outside the 48 h follow-up.
    "15": Hand(1, 0, {NC: 1}, 0, 0, 1, {(MNC, "warning"): 1}, {NONE: 1}, {NONE: 1}, {NONE: 1}, {}),
    # A: Mg 0.6 mmol/L = 1.46 mg/dL low uncorrected (high). B: 1.6 mEq/L = 1.94 mg/dL normal.
    "16": Hand(
        2, 0, {LU: 1, NO: 1}, 0, 0, 1, {(MLU, "high"): 1}, {NONE: 2}, {NONE: 2}, {}, {NONE: 1}
    ),
    # Only the valid lines count (the MgSO4 without offset is a dead letter): not checked.
    "17": Hand(1, 0, {NC: 1}, 0, 0, 1, {(MNC, "warning"): 1}, {NONE: 1}, {NONE: 1}, {NONE: 1}, {}),
    # Standing order given on 3 days: day 1 normal (Mg 2.0), day 2 not checked (alert),
    # day 3 not checked (deduplicated). No Mg after any t0.
    "18": Hand(
        3,
        0,
        {NO: 1, NC: 2},
        0,
        0,
        1,
        {(MNC, "warning"): 1},
        {NONE: 3},
        {NONE: 3},
        {NONE: 2},
        {},
    ),
    # A: K + Mg premix is a Mg repletion at t0 itself: low corrected, repletion 0 h -> 0-1h.
    # B: the same bag without Mg: low uncorrected, high.
    "19": Hand(
        2,
        0,
        {LC: 1, LU: 1},
        0,
        0,
        1,
        {(MLU, "high"): 1},
        {NONE: 2},
        {"0-1h": 1, NONE: 1},
        {},
        {NONE: 1},
    ),
    # Low uncorrected (high); the correction to 1.9 resulted 10:15 = 2.25 h -> 2-4h.
    "20": Hand(1, 0, {LU: 1}, 0, 0, 1, {(MLU, "high"): 1}, {"2-4h": 1}, {NONE: 1}, {}, {NONE: 1}),
    # Low uncorrected (high); entered-in-error is a removal, not a result.
    "21": Hand(1, 0, {LU: 1}, 0, 0, 1, {(MLU, "high"): 1}, {NONE: 1}, {NONE: 1}, {}, {NONE: 1}),
    # Cancelled (message without code or name) before the evaluation: withdrawn.
    "22": Hand(0, 1, {}, 0, 0, 0, {}, {}, {}, {}, {}),
    # Not checked at 08:30 day 1; the Mg collected 07:00 day 1 resulted 09:00 day 2 = 25 h after
    # t0 -> 24-48h; its 4.2 evaluation fires MG_LOW_UNCORRECTED high, counted for the episode.
    "23": Hand(
        1,
        0,
        {NC: 1},
        0,
        0,
        1,
        {(MNC, "warning"): 1, (MLU, "high"): 1},
        {"24-48h": 1},
        {NONE: 1},
        {"24-48h": 1},
        {},
    ),
}


def _share(n: int, d: int) -> dict[str, Any]:
    return {"n": n, "pct": None if d == 0 else round(100 * n / d, 1)}


def _bins(counts: dict[str, int]) -> dict[str, int]:
    return {b.key: counts.get(b.key, 0) for b in TIME_BINS}


def expected_block(h: Hand) -> dict[str, Any]:
    """Return the figures block the hand counts imply (shares and rates from the counts)."""
    n = h.episodes
    per_100 = lambda c: None if n == 0 else round(100 * c / n, 1)  # noqa: E731
    rules = (MNC, MLU, REF)
    fired = {r: {s: h.fired.get((r, s), 0) for s in ("warning", "high", "critical")} for r in rules}
    for counts in fired.values():
        counts["total"] = sum(counts.values())
    total = sum(c["total"] for c in fired.values())
    return {
        "episodes": n,
        "withdrawn_episodes": h.withdrawn,
        "mg_context": {c: _share(h.contexts.get(c, 0), n) for c in (NC, LU, LC, NO, RU)},
        "refractory": _share(h.refractory, n),
        "diuretic_in_lookback": _share(h.diuretic, n),
        "episodes_with_alert": _share(h.with_alert, n),
        "time_to_first_mg_result": {
            "all_episodes": _bins(h.result),
            "mg_not_checked_episodes": _bins(h.result_nc),
        },
        "time_to_first_mg_repletion": {
            "all_episodes": _bins(h.repletion),
            "mg_low_uncorrected_episodes": _bins(h.repletion_lu),
        },
        "alerts_fired": {**fired, "total": total},
        "alerts_fired_without_episode": 0,  # every scenario alert belongs to an episode
        "alerts_per_100_episodes": {
            **{r: {k: per_100(v) for k, v in fired[r].items()} for r in rules},
            "total": per_100(total),
        },
    }


# Resolutions are checked on the whole folder; exact hours need exact times, not the hand bins.
_NOT_BY_HAND = ("alerts_resolved", "hours_to_first_mg_result", "hours_to_first_mg_repletion")


def _without_resolutions(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k not in _NOT_BY_HAND}


@pytest.mark.parametrize("key", sorted(HAND))
def test_one_scenario_gives_its_hand_counts(cfg, tmp_path, key):
    audit = run(cfg, scenario(key).read_bytes(), tmp_path)
    assert _without_resolutions(audit.overall) == expected_block(HAND[key])
    # One month and one ward in every scenario: both breakdowns equal the whole.
    months, wards = audit.doc["by_month"], audit.doc["by_location"]
    assert list(months) == ["2024-03"] and list(wards) == ["ICU-A"]
    assert months["2024-03"] == wards["ICU-A"] == audit.overall


def test_hand_table_adds_up_to_the_folder_totals():
    # The per-scenario derivations above and the literal folder totals below must agree.
    total = Counter[str]()
    for h in HAND.values():
        total["episodes"] += h.episodes
        total["withdrawn"] += h.withdrawn
        total.update({f"ctx {c}": n for c, n in h.contexts.items()})
        total["fired"] += sum(h.fired.values())
    assert total == {
        "episodes": 29,
        "withdrawn": 2,
        "ctx not_checked": 15,
        "ctx low_uncorrected": 8,
        "ctx low_corrected": 2,
        "ctx normal": 4,
        "fired": 22,
    }


def test_whole_folder_as_one_input(cfg, tmp_path):
    audit = run(cfg, concatenated(scenario_inputs()), tmp_path, name="scenarios.ndjson")
    o = audit.overall
    # Episodes: 1 each in 01-07, 09, 10, 14, 15, 17, 20, 21, 23 (15); 2 each in 11, 13, 16, 19
    # (8); 3 each in 08 and 18 (6): 29. Withdrawn: 12 and 22.
    assert (o["episodes"], o["withdrawn_episodes"]) == (29, 2)
    # Not checked: 01, 03, 07, 08 x3, 09, 11 x2, 14, 15, 17, 18 x2 (days 2, 3), 23 = 15.
    # Low uncorrected: 04, 06, 10, 13B, 16A, 19B, 20, 21 = 8. Low corrected: 05, 19A = 2.
    # Normal: 02, 13A, 16B, 18 day 1 = 4. Given, not checked: none.
    assert o["mg_context"] == {
        "not_checked": {"n": 15, "pct": 51.7},
        "low_uncorrected": {"n": 8, "pct": 27.6},
        "low_corrected": {"n": 2, "pct": 6.9},
        "normal": {"n": 4, "pct": 13.8},
        "repleted_unchecked": {"n": 0, "pct": 0.0},
    }
    assert o["refractory"] == {"n": 1, "pct": 3.4}  # 08, third order
    assert o["diuretic_in_lookback"] == {"n": 1, "pct": 3.4}  # 09, Lasix
    # With an alert: every not-checked or low-uncorrected episode except the deduplicated
    # ones (08 second, 11 second, 18 day 3): 15 + 8 - 3 = 20.
    assert o["episodes_with_alert"] == {"n": 20, "pct": 69.0}
    # Result: 13A, 13B 0.17 h; 07 1.33 h; 20 2.25 h; 23 25 h; none for the other 24.
    assert o["time_to_first_mg_result"] == {
        "all_episodes": _bins({"0-1h": 2, "1-2h": 1, "2-4h": 1, "24-48h": 1, NONE: 24}),
        "mg_not_checked_episodes": _bins({"1-2h": 1, "24-48h": 1, NONE: 13}),
    }
    # Repletion: 05 0.17 h, 19A 0 h, 06 1.08 h; none for the other 26.
    assert o["time_to_first_mg_repletion"] == {
        "all_episodes": _bins({"0-1h": 2, "1-2h": 1, NONE: 26}),
        "mg_low_uncorrected_episodes": _bins({"1-2h": 1, NONE: 7}),
    }
    # Alerts as in the expected files: MG_NOT_CHECKED warning in 01, 03, 07, 08, 11, 14, 15,
    # 17, 18, 23 (10) and high in 09; MG_LOW_UNCORRECTED high in 04, 06, 07, 13B, 16A, 19B, 20,
    # 21, 23 (9) and critical in 10; REFRACTORY critical in 08. 22 in all.
    assert o["alerts_fired"] == {
        MNC: {"warning": 10, "high": 1, "critical": 0, "total": 11},
        MLU: {"warning": 0, "high": 9, "critical": 1, "total": 10},
        REF: {"warning": 0, "high": 0, "critical": 1, "total": 1},
        "total": 22,
    }
    # Per 100 episodes: 10/29 = 34.5, 1/29 = 3.4, 11/29 = 37.9, 9/29 = 31.0, 22/29 = 75.9.
    assert o["alerts_per_100_episodes"] == {
        MNC: {"warning": 34.5, "high": 3.4, "critical": 0.0, "total": 37.9},
        MLU: {"warning": 0.0, "high": 31.0, "critical": 3.4, "total": 34.5},
        REF: {"warning": 0.0, "high": 0.0, "critical": 3.4, "total": 3.4},
        "total": 75.9,
    }
    # Resolutions: superseded in 07 and 23, the other 9 not-checked alerts expire; mg_repleted
    # in 06, result_corrected in 20, result_retracted in 21, the other 7 low alerts expire.
    resolved = {r: {k: v for k, v in c.items() if v} for r, c in o["alerts_resolved"].items()}
    assert resolved == {
        MNC: {"superseded": 2, "expired": 9},
        MLU: {"mg_repleted": 1, "result_corrected": 1, "result_retracted": 1, "expired": 7},
        REF: {"expired": 1},
    }
    assert audit.doc["by_month"] == {"2024-03": o}
    assert audit.doc["by_location"] == {"ICU-A": o}
    assert audit.doc["period"] == {
        "first_t0": "2024-03-04T06:00:00Z",  # 08, first order
        "last_t0": "2024-03-06T08:05:00Z",  # 18, day 3
    }


def test_whole_folder_input_counts(cfg, tmp_path):
    audit = run(cfg, concatenated(scenario_inputs()), tmp_path, name="scenarios.ndjson")
    inp = audit.doc["input"]
    # 106 lines. Lab results: 13 in 01-07, 08: 3, 09-12: 5, 13: 6, 14-16: 8, 17: 1 valid,
    # 18: 3, 19: 4, 20-21: 6, 22: 1, 23: 2 = 52. Medications: 45 valid + the duplicate in 17
    # = 46. Invalid: the 8 lines of 17.dlq.json.
    assert inp["events_by_kind"] == {"invalid": 8, "lab_result": 52, "medication": 46}
    assert inp["duplicates"] == 1
    assert inp["ignored"] == {}
    assert inp["invalid"] == {
        "bad_json": 1,
        "bad_unit:mg/L": 1,
        "implausible_value": 1,
        "missing_code_and_name": 1,
        "missing_field:patient_id": 1,
        "resulted_before_collected": 1,
        "timestamp_without_offset:at": 1,
        "timestamp_without_offset:collected_at": 1,
    }
    assert inp["dead_letters"] == 8 and inp["adapter_rejected"] == {}
    # 23 scenario patients, three scenarios with an A and a B patient.
    assert inp["patients"] == 26
    assert inp["alerts"] == {
        f"{MLU} firing": 10,
        f"{MLU} resolved": 10,
        f"{MNC} firing": 11,
        f"{MNC} resolved": 11,
        f"{REF} firing": 1,
        f"{REF} resolved": 1,
    }
    dead = (tmp_path / "dead_letters.ndjson").read_bytes().splitlines()
    assert len(dead) == 8


@pytest.mark.parametrize(
    ("key", "trigger", "expected"),
    [
        # the 4.2 alert is listed with the episode it names; first Mg result 80 min after t0
        (
            "07",
            "s07-e02",
            {
                "mg_context": "not_checked",
                "alerts": "MG_NOT_CHECKED:warning;MG_LOW_UNCORRECTED:high",
                "hours_to_first_mg_result": "1.33",
                "hours_to_first_mg_repletion": "",
            },
        ),
        # third order of three in 24 h: refractory, K 3.3, no Mg value
        (
            "08",
            "s08-e06",
            {
                "mg_context": "not_checked",
                "latest_mg_mg_dl": "",
                "latest_k_mmol_l": "3.3",
                "k_episodes_in_refractory_window": "3",
                "refractory": "yes",
                "alerts": "REFRACTORY_HYPOKALEMIA:critical",
            },
        ),
        ("09", "s09-e03", {"diuretic_in_lookback": "yes", "alerts": "MG_NOT_CHECKED:high"}),
        # withdrawn: listed, every evaluated fact empty
        (
            "12",
            "s12-e02",
            {"status": "withdrawn", "mg_context": "", "alerts": "", "refractory": ""},
        ),
        # 0.6 mmol/L x 2.4305 = 1.4583 mg/dL, shown with three decimals at most
        ("16", "s16-a03", {"latest_mg_mg_dl": "1.458", "mg_context": "low_uncorrected"}),
        # standing order day 2: its own episode, t0 = the day-2 dose, order key = the order
        (
            "18",
            "s18-e06",
            {"t0": "2024-03-05T08:10:00Z", "order_key": "O-18-1", "month": "2024-03"},
        ),
        ("19", "s19-a03", {"mg_context": "low_corrected", "hours_to_first_mg_repletion": "0.00"}),
        ("23", "s23-e02", {"hours_to_first_mg_result": "25.00"}),
    ],
)
def test_episode_rows(cfg, tmp_path, key, trigger, expected):
    row = run(cfg, scenario(key).read_bytes(), tmp_path).row(trigger)
    assert {k: row[k] for k in expected} == expected


def test_rows_leave_in_t0_order_and_every_episode_once(cfg, tmp_path):
    audit = run(cfg, concatenated(scenario_inputs()), tmp_path)
    rows = audit.rows()
    keys = [(r["t0"], r["patient_id"], r["trigger_event_id"]) for r in rows]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(rows) == 31  # 29 evaluated + 2 withdrawn
    assert Counter(r["status"] for r in rows) == {"evaluated": 29, "withdrawn": 2}
