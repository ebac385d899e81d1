"""A 50,000-event feed over 2,000 patients: one worker, and two in one group, equal replay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.stream_harness import (
    Deployment,
    count_rows,
    repeated_pairs,
    synthetic_feed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

READ_TIMEOUT = 700  # seconds; a loaded 2-core machine processes a few hundred events a second


@pytest.fixture(scope="module")
def feed(tmp_path_factory, cfg):
    return synthetic_feed(tmp_path_factory.mktemp("feed"), cfg)


def _run(
    deployment: Deployment, names: list[str], expected: list[dict]
) -> tuple[list[dict], list[float]]:
    """Start the workers, read the alerts until replay's count, stop; return messages handled."""
    workers = [deployment.start_worker(name) for name in names]
    alerts = asyncio.run(
        deployment.read_alerts(
            lambda got: len(got) >= len(expected),
            timeout=READ_TIMEOUT,
            settle=5,
            alive=lambda: all(w.alive() for w in workers),
        )
    )
    for w in workers:
        assert w.alive(), w.log_tail()
    handled = [w.metric_total("kmg_events_total") for w in workers]
    for w in workers:
        assert w.stop() == 0, w.log_tail()
    return alerts, handled


def test_one_worker_gives_replays_alerts(feed, tmp_path: Path) -> None:
    path, expected = feed
    assert len(expected) > 100
    deployment = Deployment(tmp_path)
    try:
        deployment.produce(path, final=True)
        alerts, _ = _run(deployment, ["w1"], expected)
        assert count_rows(alerts) == count_rows(expected)
        assert repeated_pairs(alerts) == 0
    finally:
        deployment.stop_workers()
        asyncio.run(deployment.delete_topics())


def test_two_workers_in_one_group_give_replays_alerts_once(feed, tmp_path: Path) -> None:
    path, expected = feed
    deployment = Deployment(tmp_path)
    try:
        deployment.produce(path, final=True)
        alerts, handled = _run(deployment, ["w1", "w2"], expected)
        assert all(n > 0 for n in handled), handled  # both took part
        assert count_rows(alerts) == count_rows(expected)
        assert repeated_pairs(alerts) == 0
    finally:
        deployment.stop_workers()
        asyncio.run(deployment.delete_topics())
