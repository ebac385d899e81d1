"""RULES.md sections 5 and 7: units convert without rounding; hemolysis affects magnesium only."""

from __future__ import annotations

import pytest

from alerts.decoder import DeadLetter
from alerts.events import Analyte, LabResult
from alerts.units import UnitError, denormalise, normalise
from tests.alerts.feed import LOW, NOT_CHECKED, fired, k, kcl, mg, resolved, t
from tests.alerts.harness import assert_alerts, decode, replay_alerts

MG, K = Analyte.MAGNESIUM, Analyte.POTASSIUM


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "normalised"),
    [
        (MG, 0.70, "mmol/L", 0.70 * 2.4305),
        (MG, 1.4, "mEq/L", 1.4 * 0.5 * 2.4305),
        (MG, 1.4, "meq/l", 1.4 * 0.5 * 2.4305),
        (MG, 1.4, "MEQ/L", 1.4 * 0.5 * 2.4305),
        (MG, 2.0, "mg/dL", 2.0),
        (MG, 2.0, "MG/DL", 2.0),
        (MG, 2.0, " mg/dl ", 2.0),
        (MG, 0.6, "MMOL/L", 0.6 * 2.4305),
        (K, 3.2, "mmol/L", 3.2),
        (K, 3.2, "mEq/L", 3.2),
        (K, 3.2, "MMOL/L", 3.2),
    ],
)
def test_normalise(analyte, value, unit, normalised):
    assert normalise(analyte, value, unit) == normalised
    assert denormalise(analyte, normalised, unit) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize(
    ("analyte", "unit"),
    [(K, "mg/dL"), (MG, "mg/L"), (MG, "g/dL"), (K, "mmol"), (MG, ""), (MG, "µmol/L")],
)
def test_other_units_are_rejected_with_the_unit_as_given(analyte, unit):
    with pytest.raises(UnitError) as info:
        normalise(analyte, 1.0, unit)
    assert info.value.reason == f"bad_unit:{unit}"


def test_0_70_mmol_per_l_is_1_70135_mg_per_dl_and_not_low():
    decoded = decode(mg("m1", 0.70, t("07:00"), unit="mmol/L"))
    assert isinstance(decoded, LabResult)
    assert decoded.value == pytest.approx(1.70135, abs=1e-12)
    assert decoded.value >= 1.7


CONVERSION_CASES = [
    pytest.param(0.70, "mmol/L", [], id="0.70_mmol_not_low"),
    pytest.param(1.40, "mEq/L", [], id="1.40_mEq_not_low"),
    pytest.param(0.699, "mmol/L", "high", id="0.699_mmol_low"),
    pytest.param(1.39, "mEq/L", "high", id="1.39_mEq_low"),
    pytest.param(0.49, "mmol/L", "critical", id="0.49_mmol_below_1.2_mg_dl"),
    pytest.param(0.4937, "mmol/L", "critical", id="0.4937_mmol_is_1.19994_mg_dl"),
    pytest.param(0.4938, "mmol/L", "high", id="0.4938_mmol_is_1.20018_mg_dl"),
]


@pytest.mark.parametrize(("value", "unit", "severity"), CONVERSION_CASES)
def test_thresholds_compare_converted_values(value, unit, severity):
    events = [mg("m1", value, t("07:00"), t("07:30"), unit=unit), kcl("e1", t("08:00"))]
    expected = []
    if severity:
        expected = [
            fired(LOW, severity, t("08:30"), "e1"),
            resolved(LOW, severity, t("08:00", day=3), "e1", "expired"),
        ]
    assert_alerts(replay_alerts(events), expected)


def test_evidence_reports_the_converted_value_unrounded():
    alerts = replay_alerts(
        [mg("m1", 0.6, t("07:00"), t("07:30"), unit="mmol/L"), kcl("e1", t("08:00"))]
    )
    assert alerts[0]["evidence"]["latest_mg"]["value_mg_dl"] == 0.6 * 2.4305


@pytest.mark.parametrize(
    ("value", "unit", "valid"),
    [
        (0.5, "mmol/L", True),
        (15, "mmol/L", True),
        (0.499, "mmol/L", False),
        (15.001, "mEq/L", False),
    ],
)
def test_potassium_plausible_range(value, unit, valid):
    result = decode(k("k1", value, t("07:00"), unit=unit))
    assert isinstance(result, LabResult) is valid
    if not valid:
        assert isinstance(result, DeadLetter) and result.reason == "implausible_value"


@pytest.mark.parametrize(
    ("value", "unit", "valid"),
    [
        (0.1, "mg/dL", True),
        (20, "mg/dL", True),
        (0.099, "mg/dL", False),
        (20.001, "mg/dL", False),
        (8.2, "mmol/L", True),  # 19.93 mg/dL
        (8.3, "mmol/L", False),  # 20.17 mg/dL: the range applies after conversion
        (0.05, "mmol/L", True),  # 0.1215 mg/dL
        (0.04, "mmol/L", False),  # 0.0972 mg/dL
        (0.09, "mEq/L", True),  # 0.109 mg/dL
        (0.08, "mEq/L", False),  # 0.0972 mg/dL
    ],
)
def test_magnesium_plausible_range_after_conversion(value, unit, valid):
    result = decode(mg("m1", value, t("07:00"), unit=unit))
    assert isinstance(result, LabResult) is valid
    if not valid:
        assert isinstance(result, DeadLetter) and result.reason == "implausible_value"


@pytest.mark.parametrize(
    "flags",
    [["hemolyzed"], ["HEMOLYZED"], ["Hemolyzed"], ["lipemic", "hemolyzed"], [" hemolyzed "]],
)
def test_hemolyzed_is_matched_case_insensitively(flags):
    result = decode(mg("m1", 2.2, t("07:00"), flags=flags))
    assert isinstance(result, LabResult) and result.hemolyzed is True


@pytest.mark.parametrize(
    "flags", [None, [], ["lipemic"], ["icteric", "clotted"], ["not hemolyzed"]]
)
def test_other_flags_are_not_hemolysis(flags):
    result = decode(mg("m1", 2.2, t("07:00"), flags=flags))
    assert isinstance(result, LabResult) and result.hemolyzed is False


@pytest.mark.parametrize("flag", ["hemolyzed", "HEMOLYZED", "Hemolyzed"])
def test_a_hemolysed_normal_magnesium_is_ignored_whatever_the_case(flag):
    events = [mg("m1", 2.2, t("07:00"), t("07:30"), flags=[flag]), kcl("e1", t("08:00"))]
    expected = [
        fired(NOT_CHECKED, "warning", t("08:30"), "e1"),
        resolved(NOT_CHECKED, "warning", t("08:00", day=3), "e1", "expired"),
    ]
    assert_alerts(replay_alerts(events), expected)


def test_hemolysis_does_not_affect_potassium():
    # A hemolysed K 3.8 still counts as the latest K and blocks REFRACTORY; a hemolysed K 2.8
    # still raises MG_NOT_CHECKED to high.
    for value, severity in ((3.8, "warning"), (2.8, "high")):
        events = [
            k("k1", value, t("07:00"), t("07:30"), flags=["hemolyzed"]),
            kcl("e1", t("08:00")),
        ]
        expected = [
            fired(NOT_CHECKED, severity, t("08:30"), "e1"),
            resolved(NOT_CHECKED, severity, t("08:00", day=3), "e1", "expired"),
        ]
        assert_alerts(replay_alerts(events), expected)
