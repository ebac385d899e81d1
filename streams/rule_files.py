"""Load and validate rule configuration files from config/ (TOML)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alerts.rule_config import ConfigError, RuleConfig, merge_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEFAULT_RULES = CONFIG_DIR / "rules.toml"


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; raise ConfigError naming the file on any defect."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text: {exc.reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_rule_config(
    path: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> RuleConfig:
    """Return the defaults of config/rules.toml overlaid by a file, then by overrides."""
    values = read_toml(DEFAULT_RULES)
    if path is not None:
        values = merge_config(values, read_toml(path))
    if overrides:
        values = merge_config(values, overrides)
    try:
        return RuleConfig.from_mapping(values)
    except ConfigError as exc:
        where = f" in {path}" if path is not None else ""
        raise ConfigError(f"{exc}{where}") from None
