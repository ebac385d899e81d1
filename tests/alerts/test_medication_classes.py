"""RULES.md section 7, name matching: keywords, the potassium-sparing exclusion, code + name."""

from __future__ import annotations

import pytest

from alerts.decoder import Ignored, IgnoreReason
from alerts.events import MedClass, Medication
from tests.alerts.feed import LOW, NOT_CHECKED, fired, kcl, med, mg, resolved, t
from tests.alerts.harness import assert_alerts, config, decode, replay_alerts

K_REP = MedClass.POTASSIUM_REPLETION
MG_REP = MedClass.MAGNESIUM_REPLETION
LOOP = MedClass.LOOP_DIURETIC
THIAZIDE = MedClass.THIAZIDE_DIURETIC


def classes(code: str | None, name: str | None) -> frozenset[MedClass] | None:
    result = decode(med("e1", t("08:00"), code=code, name=name))
    if isinstance(result, Ignored):
        assert result.why is IgnoreReason.OTHER_MEDICATION
        return frozenset()
    assert isinstance(result, Medication), result
    return result.classes


@pytest.mark.parametrize(
    ("code", "name", "expected"),
    [
        (None, "Potassium Chloride 20 mEq", {K_REP}),
        (None, "POTASSIUM   CHLORIDE\t20 mEq", {K_REP}),
        (None, "  potassium\n chloride  ", {K_REP}),
        (None, "KCl 10 mEq/100 mL IV", {K_REP}),
        (None, "K-Dur 20", {K_REP}),
        (None, "Klor-Con M20", {K_REP}),
        (None, "Potassium phosphate 15 mmol", {K_REP}),
        (None, "Effer-K 25 mEq", {K_REP}),
        (None, "Magnesium Sulfate 2 g", {MG_REP}),
        (None, "MgSO4 4 g IV", {MG_REP}),
        (None, "Magnesium oxide 400 mg", {MG_REP}),
        (None, "Magnesium citrate oral solution", {MG_REP}),
        (None, "Magnesium hydroxide (milk of magnesia)", set()),
        (None, "Potassium iodide (SSKI)", set()),
        (None, "Potassium permanganate soak", set()),
        (None, "Potassium", set()),
        (None, "Furosemide 40 mg", {LOOP}),
        (None, "LASIX", {LOOP}),
        (None, "Bumex 1 mg", {LOOP}),
        (None, "Hydrochlorothiazide 25 mg", {THIAZIDE}),
        (None, "HCTZ", {THIAZIDE}),
        (None, "Metolazone 5 mg", {THIAZIDE}),
        (None, "Acetaminophen", set()),
        # Potassium-sparing combinations are never potassium repletion by name.
        (None, "Spironolactone / potassium chloride", set()),
        (None, "Amiloride with KCl", set()),
        (None, "TRIAMTERENE-HCTZ and potassium chloride", {THIAZIDE}),
        (None, "Eplerenone; potassium citrate", set()),
        # A known code's classes stay; the exclusion removes only a potassium class found by name.
        ("8591", "Spironolactone / potassium chloride", {K_REP}),
        ("8591", None, {K_REP}),
        ("8591", "some local name", {K_REP}),
        ("6585", None, {MG_REP}),
        ("4603", None, {LOOP}),
        ("5487", None, {THIAZIDE}),
        ("LOCAL-1", "Lasix", {LOOP}),
        # Code and name classes are united.
        ("6585", "Potassium chloride 20 mEq in magnesium sulfate", {K_REP, MG_REP}),
        ("6585", "potassium chloride", {K_REP, MG_REP}),
        ("4603", "KCl", {K_REP, LOOP}),
        ("8591", "Amiloride", {K_REP}),
        ("999999", "unknown drug", set()),
    ],
)
def test_medication_classes(code, name, expected):
    assert classes(code, name) == frozenset(expected)


def test_a_configured_keyword_list_replaces_the_default():
    cfg = config(med_keywords={"magnesium_repletion": ["magnesium hydroxide"]})
    result = decode(med("e1", t("08:00"), name="Magnesium hydroxide"), cfg)
    assert isinstance(result, Medication) and result.classes == frozenset({MG_REP})
    gone = decode(med("e2", t("08:00"), name="Magnesium sulfate"), cfg)
    assert isinstance(gone, Ignored)


def test_a_potassium_sparing_combination_starts_no_episode():
    events = [med("e1", t("08:00"), name="Spironolactone / potassium chloride 25 mg")]
    assert replay_alerts(events) == []


def test_magnesium_hydroxide_is_not_a_repletion():
    events = [
        mg("m1", 1.5, t("07:00"), t("07:30")),
        med("mh", t("07:45"), name="Magnesium hydroxide 400 mg/5 mL"),
        kcl("e1", t("08:00")),
    ]
    expected = [
        fired(LOW, "high", t("08:30"), "e1"),
        resolved(LOW, "high", t("08:00", day=3), "e1", "expired"),
    ]
    assert_alerts(replay_alerts(events), expected)


def test_potassium_iodide_is_not_repletion():
    assert replay_alerts([med("e1", t("08:00"), name="Potassium iodide 65 mg")]) == []


def test_a_k_mg_premix_is_an_episode_and_a_repletion():
    premix = med("e1", t("08:00"), name="Potassium chloride 20 mEq + Magnesium sulfate 2 g")
    assert replay_alerts([mg("m1", 1.5, t("07:00"), t("07:30")), premix]) == []
    # Alone, the bag is a K episode whose own Mg repletion lies in its window: no alert either.
    assert replay_alerts([premix]) == []


def test_a_name_found_potassium_with_a_diuretic_name_keeps_the_diuretic():
    events = [med("e1", t("08:00"), name="Furosemide 20 mg"), kcl("e2", t("09:00"))]
    expected = [
        fired(NOT_CHECKED, "high", t("09:30"), "e2"),
        resolved(NOT_CHECKED, "high", t("09:00", day=3), "e2", "expired"),
    ]
    assert_alerts(replay_alerts(events), expected)
