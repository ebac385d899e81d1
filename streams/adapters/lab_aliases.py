"""Local lab codes, names and unit spellings -> LOINC and canonical units (feed_aliases.toml)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_ALIASES_PATH = Path(__file__).resolve().parents[2] / "config" / "feed_aliases.toml"

POTASSIUM = "potassium"
MAGNESIUM = "magnesium"
ANALYTES = (POTASSIUM, MAGNESIUM)
CANONICAL_UNITS = ("mmol/L", "mEq/L", "mg/dL")
MOLAR_UNITS = frozenset({"mmol/l", "meq/l"})
LOINC_SYSTEMS = frozenset({"ln", "loinc", "http://loinc.org", "2.16.840.1.113883.6.1"})
SECTIONS = ("loinc", "default_loinc", "lab_codes", "lab_names", "units")

Coding = tuple[str | None, str | None, str | None]
"""(system, code, text) of one coding; any part may be missing."""


def fold(text: str) -> str:
    """Return the matching key of a name, code or unit: trimmed, case-folded, spaces collapsed."""
    return " ".join(text.split()).casefold()


def is_loinc_system(system: str | None) -> bool:
    return system is not None and fold(system) in LOINC_SYSTEMS


@dataclass(frozen=True)
class FeedAliases:
    """Validated alias tables; build with load_aliases()."""

    k_loinc: frozenset[str]
    mg_loinc: frozenset[str]
    default_k: str
    default_mg_mass: str
    default_mg_molar: str
    codes: Mapping[str, str]  # folded "system|code" or "code" -> analyte or LOINC
    names: Mapping[str, str]  # folded name -> analyte
    units: Mapping[str, str]  # folded unit -> canonical unit

    def analyte_of(self, loinc: str) -> str | None:
        if loinc in self.k_loinc:
            return POTASSIUM
        if loinc in self.mg_loinc:
            return MAGNESIUM
        return None

    def unit(self, raw: str | None) -> str | None:
        """Canonical spelling of a unit; a unit not in the table is returned unchanged."""
        if raw is None or not raw.strip():
            return None
        return self.units.get(fold(raw), raw)

    def lab_loinc(self, codings: Iterable[Coding], unit: str | None) -> str | None:
        """LOINC code of a K/Mg result, or None when the codings name something else.

        unit is the canonical unit (after unit()); it picks the Mg code for a local alias.
        """
        codings = list(codings)
        loinc = [c for s, c, _ in codings if c and is_loinc_system(s)]
        if loinc:
            return next((c for c in loinc if self.analyte_of(c)), None)
        for system, code, _ in codings:
            if not code:
                continue
            keys = ([fold(f"{system}|{code}")] if system else []) + [fold(code)]
            target = next((self.codes[k] for k in keys if k in self.codes), None)
            if target is not None:
                return self._to_loinc(target, unit)
        for _, _, text in codings:
            if text and fold(text) in self.names:
                return self._to_loinc(self.names[fold(text)], unit)
        return None

    def _to_loinc(self, target: str, unit: str | None) -> str:
        if target == POTASSIUM:
            return self.default_k
        if target == MAGNESIUM:
            molar = unit is not None and fold(unit) in MOLAR_UNITS
            return self.default_mg_molar if molar else self.default_mg_mass
        return target


def _fail(key: str, message: str) -> ValueError:
    return ValueError(f"feed aliases: key {key!r}: {message}")


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise _fail(key, "must be a table")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, f"must be a non-empty string, got {value!r}")
    return value.strip()


def _string_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _fail(key, f"must be a list of strings, got {value!r}")
    return [_string(f"{key}[{i}]", v) for i, v in enumerate(value)]


def _fold_unique(key: str, items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Fold the keys of (key, value) pairs, refusing two spellings with different values."""
    out: dict[str, str] = {}
    for name, value in items:
        folded = fold(name)
        if out.get(folded, value) != value:
            raise _fail(f"{key}.{name}", f"maps to {value!r} and, folded, to {out[folded]!r}")
        out[folded] = value
    return out


def aliases_from_mapping(raw: Mapping[str, Any]) -> FeedAliases:
    """Validate a parsed feed_aliases document; ValueError names the first bad key."""
    for key in raw:
        if key not in SECTIONS:
            raise _fail(key, f"unknown section (expected one of {', '.join(SECTIONS)})")
    loinc = _table(raw, "loinc")
    for key in loinc:
        if key not in ANALYTES:
            raise _fail(f"loinc.{key}", "must be potassium or magnesium")
    k_loinc = frozenset(_string_list("loinc.potassium", loinc.get(POTASSIUM, [])))
    mg_loinc = frozenset(_string_list("loinc.magnesium", loinc.get(MAGNESIUM, [])))
    if not k_loinc or not mg_loinc:
        raise _fail("loinc", "needs non-empty potassium and magnesium lists")
    if k_loinc & mg_loinc:
        raise _fail("loinc", f"codes in both lists: {sorted(k_loinc & mg_loinc)}")

    defaults = _table(raw, "default_loinc")
    wanted = {"potassium": k_loinc, "magnesium_mass": mg_loinc, "magnesium_molar": mg_loinc}
    for key in defaults:
        if key not in wanted:
            raise _fail(f"default_loinc.{key}", f"unknown (expected {', '.join(wanted)})")
    chosen: dict[str, str] = {}
    for key, allowed in wanted.items():
        code = _string(f"default_loinc.{key}", defaults.get(key))
        if code not in allowed:
            raise _fail(f"default_loinc.{key}", f"{code!r} is not in the matching [loinc] list")
        chosen[key] = code

    codes = _table(raw, "lab_codes")
    for key, value in codes.items():
        target = _string(f"lab_codes.{key}", value)
        if target not in ANALYTES and target not in k_loinc | mg_loinc:
            raise _fail(f"lab_codes.{key}", f"{target!r} is neither an analyte nor a [loinc] code")
    folded_codes = _fold_unique("lab_codes", ((k, v.strip()) for k, v in codes.items()))

    names = _table(raw, "lab_names")
    pairs: list[tuple[str, str]] = []
    for key, value in names.items():
        if key not in ANALYTES:
            raise _fail(f"lab_names.{key}", "must be potassium or magnesium")
        pairs += [(name, key) for name in _string_list(f"lab_names.{key}", value)]
    folded_names = _fold_unique("lab_names", pairs)

    units = _table(raw, "units")
    for key, value in units.items():
        if _string(f"units.{key}", value) not in CANONICAL_UNITS:
            raise _fail(f"units.{key}", f"{value!r} is not one of {', '.join(CANONICAL_UNITS)}")
    folded_units = _fold_unique("units", units.items())

    return FeedAliases(
        k_loinc=k_loinc,
        mg_loinc=mg_loinc,
        default_k=chosen["potassium"],
        default_mg_mass=chosen["magnesium_mass"],
        default_mg_molar=chosen["magnesium_molar"],
        codes=folded_codes,
        names=folded_names,
        units=folded_units,
    )


def load_aliases(path: str | Path | None = None) -> FeedAliases:
    """Load and validate feed_aliases.toml (default: config/feed_aliases.toml of this repo)."""
    path = Path(path) if path is not None else DEFAULT_ALIASES_PATH
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"feed aliases: {path}: not valid TOML: {exc}") from None
    return aliases_from_mapping(raw)
