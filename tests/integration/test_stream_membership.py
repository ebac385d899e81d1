"""A worker quiet past half its session timeout asks the group before its next changelog write.

Its commits stop while nothing arrives (no ticks: their interval is longer than the pause), so
its membership is unproven when the rest of the feed comes; the real coordinator answers and
the worker goes on, with replay's alerts.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import SCENARIOS
from tests.integration.stream_harness import Deployment, count_rows, replay_alerts

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

QUIET = {
    "KMG_SESSION_TIMEOUT_SECONDS": "6",  # membership unproven after 3 s without a commit
    "KMG_TICK_INTERVAL_SECONDS": "60",
    "KMG_IDLE_ADVANCE": "false",
}


def test_a_quiet_worker_asks_the_group_and_goes_on(tmp_path, cfg):
    lines = (SCENARIOS / "01_mg_not_checked_basic.ndjson").read_bytes().splitlines()
    first, rest = tmp_path / "first.ndjson", tmp_path / "rest.ndjson"
    first.write_bytes(lines[0] + b"\n")
    rest.write_bytes(b"\n".join(lines[1:]) + b"\n")
    expected = replay_alerts(cfg, lines)
    assert expected  # the scenarios fire: a stalled changelog would show as missing alerts

    deployment = Deployment(tmp_path, partitions=1, extra_env=QUIET)
    try:
        worker = deployment.start_worker("w")
        deployment.produce(first, final=False)
        time.sleep(10)  # quiet: no commit for more than half the session timeout
        deployment.produce(rest, final=True)
        want = set(count_rows(expected))
        alerts = asyncio.run(
            deployment.read_alerts(
                lambda got: want <= set(count_rows(got)), timeout=120, alive=worker.alive
            )
        )
        assert set(count_rows(alerts)) == want
        log = (tmp_path / "w.log").read_text(errors="replace")
        assert "the group counts this worker a member (asked after" in log
        assert "could not ask the group" not in log
        assert worker.alive()
    finally:
        deployment.stop_workers()
        asyncio.run(deployment.delete_topics())
