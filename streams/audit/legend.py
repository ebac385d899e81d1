"""The audit report's names and colours: magnesium status, alert severity and rule."""

from __future__ import annotations

from streams.audit.charts import BLUE, ORANGE, SKY, VERMILION, YELLOW

CONTEXTS = (  # key, plain name, colour
    ("not_checked", "Mg not checked", VERMILION),
    ("low_uncorrected", "Mg low, not corrected", ORANGE),
    ("low_corrected", "Mg low, corrected", YELLOW),
    ("repleted_unchecked", "Mg given, not checked", SKY),
    ("normal", "Mg normal", BLUE),
)
SEVERITY_COLORS = (("warning", YELLOW), ("high", ORANGE), ("critical", VERMILION))
SHORT_RULE_NAMES = {
    "MG_NOT_CHECKED": "Mg not checked",
    "MG_LOW_UNCORRECTED": "Mg low",
    "REFRACTORY_HYPOKALEMIA": "Refractory",
}
RULE_NAMES = {
    "MG_NOT_CHECKED": "Magnesium not checked",
    "MG_LOW_UNCORRECTED": "Magnesium low, not corrected",
    "REFRACTORY_HYPOKALEMIA": "Refractory hypokalaemia",
}
