"""Shared fixtures: the rule configuration, the shared spec folder, scenario loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alerts.rule_config import RuleConfig
from streams.rule_files import load_rule_config

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KMG_SHARED_DIR", REPO.parent / "shared"))
SCENARIOS = SHARED / "scenarios"


@pytest.fixture(scope="session")
def cfg() -> RuleConfig:
    return load_rule_config()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared folder not found at {SHARED}; set KMG_SHARED_DIR")
    return SHARED
