"""Every golden scenario, produced to Kafka, gives on the alerts topic exactly replay's alerts.

All scenarios run through one worker (their patient ids are distinct); they are interleaved
by availability so that no event is late across scenarios, then produced with `--final`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.outbox import DEAD_LETTER_HEAD_BYTES
from tests.conftest import SCENARIOS
from tests.integration.stream_harness import (
    Deployment,
    count_rows,
    merge_by_availability,
    repeated_pairs,
    replay_alerts,
)
from tests.scenario_support import load_scenarios

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _web(port: int, path: str) -> tuple[int, str]:
    """GET a page of the worker's web port; return its status and text."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_every_scenario_gives_replays_alerts_on_the_alerts_topic(cfg, tmp_path: Path) -> None:
    scenarios = load_scenarios(SCENARIOS)
    assert len(scenarios) >= 23
    lines = merge_by_availability([s.input for s in scenarios])
    expected: list[dict] = []
    for s in scenarios:
        expected.extend(replay_alerts(cfg, s.input.read_bytes().splitlines()))
    assert count_rows(expected) == count_rows(replay_alerts(cfg, lines))  # patients are distinct
    feed = tmp_path / "scenarios.ndjson"
    feed.write_bytes(b"\n".join(lines) + b"\n")

    deployment = Deployment(tmp_path)
    deployment.produce(feed, final=True)
    worker = deployment.start_worker("w1")
    try:
        want = count_rows(expected)
        alerts = asyncio.run(
            deployment.read_alerts(
                lambda got: sum(count_rows(got).values()) >= len(expected),
                timeout=180,
                settle=3,
                alive=worker.alive,
            )
        )
        assert worker.alive(), worker.log_tail()
        assert count_rows(alerts) == want, worker.log_tail()
        assert repeated_pairs(alerts) == 0
        assert _web(worker.web_port, "/metrics")[0] == 200
        assert "kmg_alerts_total" in _web(worker.web_port, "/metrics")[1]
        # Found by review: Faust's table and router pages served a patient's whole record.
        for path in ("/table/", "/table/patients/P01/", "/router/", "/router/patients/P01/"):
            status, body = _web(worker.web_port, path)
            assert status == 404 and "P01" not in body, (path, status)
        assert worker.stop() == 0, worker.log_tail()
        assert "Traceback" not in worker.log_path.read_text()
    finally:
        deployment.stop_workers()
        asyncio.run(deployment.delete_topics())


def test_a_clean_stop_and_restart_in_the_middle_changes_nothing(cfg, tmp_path: Path) -> None:
    """SIGTERM after half the input; the restarted worker reuses its local table files."""
    scenarios = load_scenarios(SCENARIOS)
    lines = merge_by_availability([s.input for s in scenarios])
    half = len(lines) // 2
    first, second = tmp_path / "first.ndjson", tmp_path / "second.ndjson"
    first.write_bytes(b"\n".join(lines[:half]) + b"\n")
    second.write_bytes(b"\n".join(lines[half:]) + b"\n")
    expected = replay_alerts(cfg, lines)

    deployment = Deployment(tmp_path)
    try:
        deployment.produce(first, final=False)
        worker = deployment.start_worker("w1")
        handled = worker.wait_for_metric("kmg_events_total", half, timeout=120)
        assert handled >= half, worker.log_tail()
        assert worker.stop() == 0, worker.log_tail()
        deployment.produce(second, final=True)
        again = deployment.start_worker("w1-again", data_dir=tmp_path / "data-w1")
        alerts = asyncio.run(
            deployment.read_alerts(
                lambda got: len(got) >= len(expected), timeout=180, settle=3, alive=again.alive
            )
        )
        assert "did not stop cleanly" not in again.log_path.read_text()
        assert count_rows(alerts) == count_rows(expected), again.log_tail()
        assert repeated_pairs(alerts) == 0
    finally:
        deployment.stop_workers()
        asyncio.run(deployment.delete_topics())


def test_a_message_near_the_brokers_size_limit_is_dead_lettered_whole(cfg, tmp_path: Path) -> None:
    # Found by review: the worker's producer refused to dead-letter it (1,000,000-byte request
    # limit), took the batch again forever and processed nothing more.
    lines = (SCENARIOS / "01_mg_not_checked_basic.ndjson").read_bytes().splitlines()
    big = lines[0][:-1] + b', "note": "' + b"x" * 1_010_000 + b'"}'
    feed = tmp_path / "feed.ndjson"
    feed.write_bytes(b"\n".join([big, *lines]) + b"\n")
    expected = replay_alerts(cfg, lines)

    deployment = Deployment(tmp_path)
    deployment.produce(feed, final=True)
    worker = deployment.start_worker("w1")
    try:
        dead = _dead_letters_after_the_alerts(deployment, worker, expected)
        assert [(r.value, dict(r.headers)["reason"]) for r in dead] == [(big, b"too_large")]
        assert worker.stop() == 0, worker.log_tail()
    finally:
        deployment.stop_workers()
        asyncio.run(deployment.delete_topics())


def test_a_result_stamped_a_year_ahead_is_dead_lettered_and_makes_nothing_late(
    cfg, tmp_path: Path
) -> None:
    # Found by review: such a result carried its partition's watermark a year on, and every
    # later event there was late: applied at once, its hold skipped. Here a potassium order
    # cancelled within its hold would then have alerted before the cancellation was read.
    lines = (SCENARIOS / "12_cancelled_kcl_before_hold.ndjson").read_bytes().splitlines()
    assert replay_alerts(cfg, lines) == []
    patient = orjson.loads(lines[0])["patient_id"]
    ahead = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stamped = orjson.dumps(
        {
            "kind": "lab_result", "event_id": "stamped-ahead", "patient_id": patient,
            "code": "2823-3", "value": 3.1, "unit": "mmol/L",
            "collected_at": ahead, "resulted_at": ahead,
        }
    )  # fmt: skip
    first, then = tmp_path / "first.ndjson", tmp_path / "then.ndjson"
    first.write_bytes(stamped + b"\n")  # on the patient's partition (same key)
    then.write_bytes(b"\n".join(lines) + b"\n")

    deployment = Deployment(tmp_path)
    deployment.produce(first, final=False)
    worker = deployment.start_worker("w1")
    try:
        # The rest arrive once the worker has read it, as a live feed's would.
        assert _wait_for_inputs(worker, 1), worker.log_tail()
        deployment.produce(then, final=True)
        assert _wait_for_inputs(worker, 1 + len(lines)), worker.log_tail()
        alerts = asyncio.run(deployment.read_alerts(lambda got: True, 30, settle=3))
        assert alerts == [], alerts
        dead: list[Any] = []
        asyncio.run(
            deployment.read_topic("dead-letter", lambda r: dead.extend(r) or bool(dead), 60)
        )
        assert [(r.value, dict(r.headers)["reason"]) for r in dead] == [
            (stamped, b"ahead_of_clock")
        ]
        assert worker.metric_total("kmg_late_events_total") == 0
        assert worker.stop() == 0, worker.log_tail()
        assert "ahead_of_clock" in worker.log_path.read_text()  # the partition's one WARNING
    finally:
        deployment.stop_workers()
        asyncio.run(deployment.delete_topics())


def _wait_for_inputs(worker: Any, count: int, timeout: float = 120) -> bool:
    """Wait until a worker has counted `count` input messages; say whether it has, exactly."""
    deadline = time.monotonic() + timeout
    while _inputs_counted(worker) < count and time.monotonic() < deadline and worker.alive():
        time.sleep(0.5)
    return _inputs_counted(worker) == count


def _inputs_counted(worker: Any) -> float:
    """Return the input messages a worker has counted (events and dead letters, not controls)."""
    total = 0.0
    for line in (worker.metrics() or b"").decode().splitlines():
        if line.startswith("kmg_events_total{") and 'kind="control"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_dead_letter_topic_too_small_for_an_input_gets_its_head(cfg, tmp_path: Path) -> None:
    # Found by review: with a dead-letter topic made before (broker defaults), an input it could
    # not hold stopped the worker at every start, and nothing was dead-lettered.
    lines = (SCENARIOS / "01_mg_not_checked_basic.ndjson").read_bytes().splitlines()
    # Random text: the topic's limit applies to the compressed batch.
    noise = base64.b64encode(random.Random(7).randbytes(300_000))
    big = lines[0][:-1] + b', "note": "' + noise + b'"}'
    feed = tmp_path / "feed.ndjson"
    feed.write_bytes(b"\n".join([big, *lines]) + b"\n")
    expected = replay_alerts(cfg, lines)

    deployment = Deployment(tmp_path)
    asyncio.run(_small_topic(deployment.bootstrap, deployment.topic("dead-letter"), 100_000))
    deployment.produce(feed, final=True)
    worker = deployment.start_worker("w1")
    try:
        dead = _dead_letters_after_the_alerts(deployment, worker, expected)
        [letter] = dead
        headers = dict(letter.headers)
        assert letter.value == big[:DEAD_LETTER_HEAD_BYTES]
        assert headers["reason"] == b"too_large"
        assert headers["truncated_from_bytes"] == str(len(big)).encode()
        assert headers["sha256"] == hashlib.sha256(big).hexdigest().encode()
        log = worker.log_path.read_text()
        assert "takes messages up to 100000 bytes" in log  # said at start, before any input
        assert worker.stop() == 0, worker.log_tail()
    finally:
        deployment.stop_workers()
        asyncio.run(deployment.delete_topics())


def _dead_letters_after_the_alerts(
    deployment: Deployment, worker: Any, expected: list[dict[str, Any]]
) -> list[Any]:
    """Wait for replay's alerts on the alerts topic; return what the dead-letter topic holds."""
    alerts = asyncio.run(
        deployment.read_alerts(lambda got: len(got) >= len(expected), 120, alive=worker.alive)
    )
    assert count_rows(alerts) == count_rows(expected), worker.log_tail()
    dead: list[Any] = []

    def take(records: list[Any]) -> bool:
        dead.extend(records)
        return bool(dead)

    asyncio.run(deployment.read_topic("dead-letter", take, 60, settle=2))
    return dead


async def _small_topic(bootstrap: str, name: str, max_bytes: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = {"max.message.bytes": str(max_bytes)}
        await admin.create_topics([NewTopic(name, 8, 1, topic_configs=config)])
    finally:
        await admin.close()
