"""Every golden scenario gives exactly its expected output and dead-letters exactly its lines."""

from __future__ import annotations

import io

import orjson
import pytest

from streams.replay import NdjsonWriter, Replay
from tests.conftest import SCENARIOS
from tests.scenario_support import grouped_by_instant, load_scenarios

SCENARIO_LIST = load_scenarios(SCENARIOS) if SCENARIOS.is_dir() else []


def run_replay(cfg, path):
    alerts, dead = io.BytesIO(), io.BytesIO()
    replay = Replay(cfg, NdjsonWriter(alerts), NdjsonWriter(dead))
    with path.open("rb") as fh:
        replay.read(path.name, fh, lambda n: None)
    replay.run()
    parse = lambda b: [orjson.loads(line) for line in b.getvalue().splitlines()]  # noqa: E731
    return parse(alerts), parse(dead)


def test_the_scenario_folder_is_there():
    assert len(SCENARIO_LIST) >= 23, SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIO_LIST, ids=lambda s: s.name)
def test_scenario_gives_exactly_its_expected_alerts(cfg, scenario):
    alerts, _ = run_replay(cfg, scenario.input)
    assert grouped_by_instant(alerts) == grouped_by_instant(scenario.expected)


@pytest.mark.parametrize("scenario", SCENARIO_LIST, ids=lambda s: s.name)
def test_scenario_dead_letters_exactly_its_lines(cfg, scenario):
    _, dead = run_replay(cfg, scenario.input)
    expected = scenario.dead_lines if scenario.dead_lines is not None else []
    assert sorted(d["line"] for d in dead) == sorted(expected)
    assert all(d["reason"] and "raw" in d for d in dead)
