"""`make run`'s demo, run twice against the real broker: the second run starts afresh."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.topics import delete_deployment
from streams.worker_processes import BOOTSTRAP, REPO, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

COUNTER = re.compile(r'^kmg_events_total\{kind="(\w+)",outcome="(\w+)"\} (\S+)$', re.M)


def run_demo(env: dict[str, str]) -> str:
    done = subprocess.run(
        ["scripts/demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def counters(output: str) -> Counter[tuple[str, str]]:
    """Return the event counters the demo printed (only those above zero are printed)."""
    return Counter({(kind, outcome): int(float(n)) for kind, outcome, n in COUNTER.findall(output)})


def test_a_second_demo_processes_its_own_feed_not_the_first_ones(tmp_path: Path):
    name = f"kmg-it-{uuid.uuid4().hex[:10]}"
    env = dict(os.environ)
    env.update(
        KMG_KAFKA_BOOTSTRAP=BOOTSTRAP,
        # What a real deployment's names in the caller's environment must not change.
        KMG_TOPIC_PREFIX="kmg.",
        KMG_APP_ID="kmg-sentinel",
        DEMO_SECONDS="10",
        DEMO_TOPIC_PREFIX=f"{name}.",
        DEMO_APP_ID=name,
        DEMO_DATA_DIR=str(tmp_path / "worker"),
        DEMO_WEB_PORT=str(free_port()),
        DEMO_LOG_DIR=str(tmp_path),
    )
    try:
        first = run_demo(env)
        second = run_demo(env)
    finally:
        settings = Settings(kafka_bootstrap=BOOTSTRAP, app_id=name, topic_prefix=f"{name}.")
        asyncio.run(delete_deployment(settings))
    for output in (first, second):
        seen = counters(output)
        accepted = seen[("lab_result", "accepted")] + seen[("medication", "accepted")]
        duplicates = seen[("lab_result", "duplicate")] + seen[("medication", "duplicate")]
        # The feed repeats a few events on purpose; a stale demo counted every one a duplicate.
        assert accepted > 1_000 and duplicates < accepted / 20, seen
        # A stale demo made its events late or duplicates by the thousand. The simulator runs
        # event time far ahead of the wall clock, so a moment's stall of one topic's producer
        # on a loaded machine can make a handful late; those are counted, not lost.
        late = seen[("lab_result", "late")] + seen[("medication", "late")]
        assert late <= accepted / 100, seen
        shown = re.search(r"^alerts by rule and status: (.*)$", output, re.M)
        assert shown is not None and "MG_NOT_CHECKED firing" in shown.group(1), output
        published = r'^kmg_alerts_total\{rule="MG_NOT_CHECKED",[^}]*status="firing"\} [1-9]'
        assert re.search(published, output, re.M), output
    assert "deleted 0 topics" in first
    # The first demo's five topics, its changelog and its assignor topic.
    assert "deleted 7 topics of the previous demo" in second
    assert f"  {name}-patients-changelog" in second
