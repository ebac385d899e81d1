"""config/feed_aliases.toml: loading, validation, lookups, agreement with config/rules.toml."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.adapters import AdapterSettings
from streams.adapters.lab_aliases import DEFAULT_ALIASES_PATH, load_aliases
from tests.streams.adapters.support import REPO

VALID = DEFAULT_ALIASES_PATH.read_text()


def test_default_file_loads_and_matches_the_rule_code_sets() -> None:
    aliases = load_aliases()
    rules = tomllib.loads((REPO / "config" / "rules.toml").read_text())
    assert aliases.k_loinc == frozenset(rules["k_codes"])
    assert aliases.mg_loinc == frozenset(rules["mg_codes"])
    assert load_aliases(None) == aliases == AdapterSettings().aliases


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("MMOLL", "mmol/L"),
        ("mmol/l", "mmol/L"),
        (" MMOL/L ", "mmol/L"),
        ("MEQ/L", "mEq/L"),
        ("meq/l", "mEq/L"),
        ("MG/DL", "mg/dL"),
        ("mg%", "mg/dL"),
        ("mmol/kg", "mmol/kg"),  # not in the table: passed through unchanged
        ("UMOLL", "UMOLL"),
        ("", None),
        (None, None),
    ],
)
def test_unit_aliases(given: str | None, canonical: str | None) -> None:
    assert load_aliases().unit(given) == canonical


@pytest.mark.parametrize(
    ("codings", "unit", "loinc"),
    [
        ([("LN", "2823-3", "Potassium")], "mmol/L", "2823-3"),
        ([("http://loinc.org", "19123-9", None)], "mmol/L", "19123-9"),  # LOINC kept as sent
        ([("L", "K", "POTASSIUM"), ("LN", "2951-2", "SODIUM")], "mmol/L", None),  # LOINC wins
        ([("WinPath", "tt-0003-02", "whatever")], "mmol/L", "2823-3"),
        ([("GH", "82312", "MAGNESIUM")], "mg/dL", "19123-9"),
        ([("OTHER", "82312", None)], "mg/dL", None),  # code alias scoped to its system
        ([(None, None, "  Potassium ")], "mmol/L", "2823-3"),
        ([(None, "X1", "K")], "mEq/L", "2823-3"),
        ([(None, None, "MG")], "mg/dL", "19123-9"),
        ([(None, None, "Magnesium")], "mmol/L", "2601-3"),
        ([(None, None, "Magnesium")], "mEq/L", "2601-3"),
        ([(None, None, "Potassium, urine")], "mmol/L", None),
        ([("MIMIC-IV", "50822", "potassium")], "mEq/L", "6298-4"),
    ],
)
def test_lab_code_resolution(
    codings: list[tuple[str | None, str | None, str | None]], unit: str, loinc: str | None
) -> None:
    assert load_aliases().lab_loinc(codings, unit) == loinc


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aliases.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda t: t + '\n[colours]\nred = "1"\n', "colours"),
        (lambda t: t.replace('"MMOLL" = "mmol/L"', '"MMOLL" = "mmol/x"'), "units.MMOLL"),
        (
            lambda t: t.replace('"GH|84132" = "potassium"', '"GH|84132" = "sodium"'),
            "lab_codes.GH|84132",
        ),
        (
            lambda t: t.replace('potassium = "2823-3"', 'potassium = "19123-9"'),
            "default_loinc.potassium",
        ),
        (lambda t: t + '"MMOL/L" = "mEq/L"\n', "units.MMOL/L"),  # folds onto "mmol/l"
        (lambda t: t.replace('"k", "k+"', '"k", "mg"'), "lab_names.mg"),
        (
            lambda t: t.replace('magnesium = ["19123-9", "2601-3"]', 'magnesium = ["2823-3"]'),
            "loinc",
        ),
        (
            lambda t: t.replace("\n[lab_names]\n", "\n[lab_names]\nsodium = []\n"),
            "lab_names.sodium",
        ),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, edit: Callable[[str], str], key: str) -> None:
    path = write(tmp_path, edit(VALID))
    with pytest.raises(ValueError, match=f"key '{key}'"):
        load_aliases(path)


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[units\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_aliases(path)


def test_settings_validate_the_time_zone_and_take_custom_aliases(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        AdapterSettings(facility_timezone="Mars/Olympus_Mons")
    custom = load_aliases(write(tmp_path, VALID + '"umol/l" = "mmol/L"\n'))
    settings = AdapterSettings(facility_timezone="Europe/Berlin", aliases=custom)
    assert settings.aliases.unit("UMOL/L") == "mmol/L"
    assert settings.tz.key == "Europe/Berlin"
