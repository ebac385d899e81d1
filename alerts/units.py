"""Unit normalisation and plausible ranges for potassium (mmol/L) and magnesium (mg/dL)."""

from __future__ import annotations

from alerts.events import Analyte

MG_DL_PER_MMOL_L = 2.4305
MMOL_PER_MEQ_MG = 0.5

# Factors into the normalised unit, keyed by the unit as matched: trimmed and lower-cased.
_K_FACTORS = {"mmol/l": 1.0, "meq/l": 1.0}
_MG_FACTORS = {
    "mg/dl": 1.0,
    "mmol/l": MG_DL_PER_MMOL_L,
    "meq/l": MMOL_PER_MEQ_MG * MG_DL_PER_MMOL_L,
}
FACTORS: dict[Analyte, dict[str, float]] = {
    Analyte.POTASSIUM: _K_FACTORS,
    Analyte.MAGNESIUM: _MG_FACTORS,
}
NORMALISED_UNIT = {Analyte.POTASSIUM: "mmol/L", Analyte.MAGNESIUM: "mg/dL"}


class UnitError(ValueError):
    """A unit not accepted for the analyte; the reason names it as given."""

    def __init__(self, unit: str) -> None:
        super().__init__(f"bad_unit:{unit}")
        self.reason = f"bad_unit:{unit}"


def unit_factor(analyte: Analyte, unit: str) -> float:
    """Return the factor from unit into the analyte's normalised unit; raise UnitError."""
    factor = FACTORS[analyte].get(unit.strip().lower())
    if factor is None:
        raise UnitError(unit)
    return factor


def normalise(analyte: Analyte, value: float, unit: str) -> float:
    """Convert value in unit into the normalised unit, without rounding."""
    return value * unit_factor(analyte, unit)


def denormalise(analyte: Analyte, value: float, unit: str) -> float:
    """Convert a normalised value back into unit."""
    return value / unit_factor(analyte, unit)
