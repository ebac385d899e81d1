"""The chemistry of the feed: K/Mg codes and units, and the other results of a panel."""

from __future__ import annotations

from typing import Final

K_SERUM: Final = "2823-3"
K_POC: Final = "6298-4"
MG_MASS: Final = "19123-9"
MG_MOLES: Final = "2601-3"
MG_MG_DL_PER_MMOL_L: Final = 2.4305
MG_MG_DL_PER_MEQ_L: Final = 1.21525

# (cumulative weight, spelling) for potassium units and magnesium reporting styles.
K_UNITS: Final = (
    (0.58, "mmol/L"),
    (0.86, "mEq/L"),
    (0.93, "meq/l"),
    (0.97, "MMOL/L"),
    (1.0, "mEq/l"),
)
# (cumulative weight, code, unit, divisor from mg/dL, decimals)
MG_STYLES: Final = (
    (0.80, MG_MASS, "mg/dL", 1.0, 1),
    (0.86, MG_MASS, "mg/dl", 1.0, 1),
    (0.95, MG_MOLES, "mmol/L", MG_MG_DL_PER_MMOL_L, 2),
    (0.97, MG_MOLES, "MMOL/L", MG_MG_DL_PER_MMOL_L, 2),
    (1.0, MG_MOLES, "mEq/L", MG_MG_DL_PER_MEQ_L, 2),
)

# Other chemistry on the same specimen (ignored by the rules): code, unit, value maker.
OTHER_LABS: Final = (
    ("2951-2", "mmol/L", lambda g: round(g(139.0, 3.5))),  # sodium
    ("2160-0", "mg/dL", lambda g: round(max(0.3, 0.8 + g(0.0, 0.55) ** 2 + g(0.0, 0.15)), 2)),
    ("2345-7", "mg/dL", lambda g: round(max(48.0, g(128.0, 34.0)))),  # glucose
    ("3094-0", "mg/dL", lambda g: round(max(4.0, g(19.0, 8.0)))),  # urea nitrogen
    ("2075-0", "mmol/L", lambda g: round(g(102.0, 4.0))),  # chloride
    ("2028-9", "mmol/L", lambda g: round(g(24.0, 3.0))),  # carbon dioxide
    ("17861-6", "mg/dL", lambda g: round(g(8.8, 0.5), 1)),  # calcium
    ("2777-1", "mg/dL", lambda g: round(max(0.8, g(3.5, 0.8)), 1)),  # phosphate
    ("2524-7", "mmol/L", lambda g: round(max(0.4, g(1.5, 0.6)), 1)),  # lactate
    ("1995-0", "mmol/L", lambda g: round(g(1.15, 0.06), 2)),  # ionized calcium
)
_OTHER_MAX: Final = len(OTHER_LABS)
_OTHER_MEAN: Final = 3.0
"""Mean number of other chemistry results per patient panel without a target."""
POOL: Final = 512
_HEMO: Final = '["hemolyzed"]'
# Reported values by hundredths / tenths: (float, its JSON text), so the hot path neither
# rounds nor formats floats.
_DEC1: Final = tuple((i / 10, repr(i / 10)) for i in range(100))
_DEC2: Final = tuple((i / 100, repr(i / 100)) for i in range(400))
