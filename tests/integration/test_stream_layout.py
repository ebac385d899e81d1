"""A deployment's table changelog, named after its app id, on a restart with other topics.

One worker runs first under prefix `<name>.` (one partition, a lateness of 60 days) on a single
magnesium result of 1 April 2024: the app's changelog then holds a clock whose stream time
names that prefix's labs topic, 60 days ahead of its watermark. The tests restart the same
app id under other prefixes.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.settings import Settings
from streams.topics import DEAD_LETTER_MAX_BYTES, changelog_topic, max_message_bytes
from streams.worker_processes import KMG, REPO, free_port
from tests.conftest import SCENARIOS
from tests.integration.stream_harness import Deployment, count_rows, replay_alerts

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

FIRST_LATENESS = {"KMG_ALLOWED_LATENESS_MINUTES": str(60 * 24 * 60)}
FUTURE_MG = {
    "kind": "lab_result",
    "event_id": "future-mg",
    "patient_id": "PFUT",
    "code": "19123-9",
    "value": 2.0,
    "unit": "mg/dL",
    "collected_at": "2024-04-01T08:00:00Z",
    "resulted_at": "2024-04-01T08:30:00Z",
}


@dataclass
class Renamed(Deployment):
    """The deployment `name`'s app id (its table and changelog) with topics of another prefix."""

    topic_prefix: str = ""

    @property
    def prefix(self) -> str:
        return self.topic_prefix


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Run the first worker until its clock is in the changelog; delete everything after."""
    work = tmp_path_factory.mktemp("layout")
    deployment = Deployment(work, partitions=1, extra_env=FIRST_LATENESS)
    feed = work / "future.ndjson"
    feed.write_bytes(orjson.dumps(FUTURE_MG) + b"\n")
    deployment.produce(feed, final=False)
    worker = deployment.start_worker("first")
    try:
        seen = worker.wait_for_metric("kmg_events_total", 1, timeout=90)
        assert seen >= 1, worker.log_tail()
        time.sleep(2)  # its clock's changelog write, acknowledged before the clean stop
        assert worker.stop() == 0, worker.log_tail()
        yield deployment
    finally:
        deployment.stop_workers()
        # The other prefixes start with `<name>-`, the app's own: deleted with it.
        asyncio.run(deployment.delete_topics())


def _settings(deployment: Deployment) -> Settings:
    return Settings(kafka_bootstrap=deployment.bootstrap, app_id=deployment.app_id)


async def _describe(bootstrap: str, topic: str) -> tuple[list[str], int | None]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_topics(), await max_message_bytes(admin, topic)
    finally:
        await admin.close()


def test_the_worker_makes_a_changelog_that_takes_its_largest_request(first) -> None:
    # Found by review: it kept the broker's default (about 1 MB) while the producer sends up
    # to 4 MiB, so a patient's state between the two stopped the worker at every start.
    names, limit = asyncio.run(_describe(first.bootstrap, changelog_topic(_settings(first))))
    assert changelog_topic(_settings(first)) in names
    assert limit is not None and limit >= DEAD_LETTER_MAX_BYTES  # producer_max_request_size


def test_another_prefix_and_partition_count_under_the_same_app_id_is_refused(first) -> None:
    # Found by review: such a worker started on the old changelog, gave foreign alerts and
    # crashed writing a partition the changelog does not have, at every start.
    renamed = Renamed(
        first.workdir, name=first.name, partitions=2, topic_prefix=f"{first.name}-v2."
    )
    done = subprocess.run(
        [str(KMG), "worker"],
        env=renamed.env(KMG_DATA_DIR=str(first.workdir / "data-v2"), KMG_WEB_PORT=str(free_port())),
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr.decode()[-2000:]
    [line] = done.stderr.decode().strip().splitlines()
    assert changelog_topic(_settings(first)) in line
    assert "KMG_APP_ID" in line and "KMG_PARTITIONS=1" in line
    names, _ = asyncio.run(_describe(first.bootstrap, changelog_topic(_settings(first))))
    assert not [n for n in names if n.startswith(renamed.prefix)]  # nothing was created


def test_a_restored_clock_of_other_topics_does_not_move_the_watermark(first, cfg) -> None:
    # The old clock's stream time (1 April) would set W to 1 April less 10 minutes: every
    # event of the scenario (4 March) would be late.
    renamed = Renamed(
        first.workdir, name=first.name, partitions=1, topic_prefix=f"{first.name}-v3."
    )
    scenario = SCENARIOS / "01_mg_not_checked_basic.ndjson"
    expected = replay_alerts(cfg, scenario.read_bytes().splitlines())
    renamed.produce(scenario, final=True)
    worker = renamed.start_worker("v3")
    try:
        alerts = asyncio.run(
            renamed.read_alerts(
                lambda got: len(got) >= len(expected), timeout=90, settle=2, alive=worker.alive
            )
        )
        assert count_rows(alerts) == count_rows(expected), worker.log_tail()
        assert worker.metric_total("kmg_late_events_total") == 0
        log = worker.log_path.read_text()
        assert f"not this worker's inputs ({first.prefix}labs)" in log
        assert "P01" not in log and "PFUT" not in log  # no patient id at INFO
        assert worker.stop() == 0, worker.log_tail()
    finally:
        renamed.stop_workers()
