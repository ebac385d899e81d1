"""The topic check at start: the app's changelog must fit this layout and hold any state."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams import topics
from streams.app import build_app
from streams.settings import Settings
from streams.topics import (
    DEAD_LETTER_MAX_BYTES,
    TopicLayoutError,
    changelog_topic,
    ensure_topics,
)

BROKER_DEFAULT_BYTES = 1_048_588


class Admin:
    """The admin calls `ensure_topics` makes, over topics held as (partitions, config)."""

    topics: dict[str, tuple[int, dict[str, str]]] = {}
    created: list[str] = []

    def __init__(self, **kwargs: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return list(self.topics)

    async def create_topics(self, new: list[Any]) -> Any:
        for spec in new:
            self.topics[spec.name] = (spec.num_partitions, dict(spec.topic_configs))
            self.created.append(spec.name)
        return SimpleNamespace(topic_errors=[(spec.name, 0, None) for spec in new])

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [
            {"topic": n, "error_code": 0, "partitions": [{"leader": 1}] * self.topics[n][0]}
            for n in names
        ]

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        entries = [
            (0, 0, r.name, None, [("max.message.bytes", self._limit(r.name))]) for r in resources
        ]
        return [SimpleNamespace(resources=entries)]

    def _limit(self, name: str) -> str:
        return self.topics[name][1].get("max.message.bytes", str(BROKER_DEFAULT_BYTES))


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> type[Admin]:
    async def served(*args: Any) -> None:
        pass

    Admin.topics, Admin.created = {}, []
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", Admin)
    monkeypatch.setattr(topics, "_wait_until_served", served)
    return Admin


def test_a_changelog_of_another_partition_count_is_refused_before_anything_is_created(broker):
    # Found by review: restarted with a new KMG_TOPIC_PREFIX and KMG_PARTITIONS under the same
    # KMG_APP_ID, a worker started on the old changelog (4 partitions) and crashed writing it.
    old = Settings(app_id="ward", topic_prefix="ward.", partitions=4)
    broker.topics[changelog_topic(old)] = (4, {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)})
    new = Settings(app_id="ward", topic_prefix="ward-v2.", partitions=8)
    with pytest.raises(TopicLayoutError) as refused:
        asyncio.run(ensure_topics(new, attempts=1))
    message = str(refused.value)
    assert "\n" not in message
    assert "ward-patients-changelog" in message
    assert "KMG_APP_ID" in message and "KMG_PARTITIONS=4" in message
    assert broker.created == []


def test_a_changelog_of_the_same_partition_count_is_accepted(broker):
    settings = Settings(app_id="ward", topic_prefix="ward.", partitions=4)
    broker.topics[changelog_topic(settings)] = (4, {"max.message.bytes": "4194304"})
    created = asyncio.run(ensure_topics(settings, attempts=1))
    assert sorted(created) == sorted(spec.name for spec in topics.topic_specs(settings))


@pytest.mark.parametrize(("limit", "warned"), [(BROKER_DEFAULT_BYTES, True), (4194304, False)])
def test_a_changelog_smaller_than_a_request_is_named_in_a_warning(broker, caplog, limit, warned):
    settings = Settings(app_id="ward", topic_prefix="ward.", partitions=2)
    broker.topics[changelog_topic(settings)] = (2, {"max.message.bytes": str(limit)})
    with caplog.at_level(logging.WARNING, logger="kmg.topics"):
        asyncio.run(ensure_topics(settings, attempts=1))
    lines = [r.getMessage() for r in caplog.records if "ward-patients-changelog" in r.getMessage()]
    if warned:
        [line] = lines
        assert f"up to {limit} bytes" in line and "max.message.bytes to 4194304" in line
    else:
        assert lines == []


def test_the_table_creates_its_changelog_for_the_largest_request_the_producer_sends(tmp_path):
    # Found by review: the changelog kept the broker's default (about 1 MB) while the producer
    # sends up to 4 MiB, so a patient's state between the two stopped the worker at every start.
    settings = Settings(data_dir=tmp_path, store="memory://", app_id="ward", topic_prefix="w.")
    app: Any = build_app(settings, CollectorRegistry())
    [table] = app.tables.values()
    assert table.changelog_topic_name == changelog_topic(settings)
    limit = int(table.changelog_topic.config["max.message.bytes"])
    assert limit >= app.conf.producer_max_request_size
