"""Classification of lab codes and medications by the configured code sets and name keywords."""

from __future__ import annotations

import re

from alerts.events import Analyte, MedClass
from alerts.rule_config import RuleConfig

_SPACES = re.compile(r"\s+")
_NAME_CACHE_LIMIT = 50_000


def normalise_name(name: str) -> str:
    """Lower-case and collapse white space, as name matching requires."""
    return _SPACES.sub(" ", name.strip().lower())


class CodeSets:
    """Lookups built once from a RuleConfig; medication names are classified once and cached."""

    def __init__(self, cfg: RuleConfig) -> None:
        self.lab: dict[str, Analyte] = {code: Analyte.POTASSIUM for code in cfg.k_codes}
        self.lab.update({code: Analyte.MAGNESIUM for code in cfg.mg_codes})
        by_code: dict[str, set[MedClass]] = {}
        for med_class, codes in cfg.med_codes.items():
            for code in codes:
                by_code.setdefault(code, set()).add(med_class)
        self.med_by_code = {code: frozenset(classes) for code, classes in by_code.items()}
        self.keywords = {
            med_class: tuple(normalise_name(k) for k in words)
            for med_class, words in cfg.med_keywords.items()
        }
        self.k_sparing = tuple(normalise_name(k) for k in cfg.k_sparing_keywords)
        self._names: dict[str, frozenset[MedClass]] = {}

    def lab_analyte(self, code: str) -> Analyte | None:
        """Return the analyte of a LOINC code, or None for a code the rules do not read."""
        return self.lab.get(code)

    def classes_by_name(self, name: str) -> frozenset[MedClass]:
        """Classify a drug name by keyword; a potassium-sparing name is never K repletion."""
        cached = self._names.get(name)
        if cached is not None:
            return cached
        text = normalise_name(name)
        found = {c for c, words in self.keywords.items() if any(w in text for w in words)}
        if MedClass.POTASSIUM_REPLETION in found and any(k in text for k in self.k_sparing):
            found.discard(MedClass.POTASSIUM_REPLETION)
        result = frozenset(found)
        if len(self._names) < _NAME_CACHE_LIMIT:
            self._names[name] = result
        return result

    def med_classes(self, code: str | None, name: str | None) -> frozenset[MedClass]:
        """Return the classes of a known code united with those its name matches."""
        by_code = self.med_by_code.get(code, frozenset()) if code is not None else frozenset()
        if name is None:
            return by_code
        return by_code | self.classes_by_name(name)
