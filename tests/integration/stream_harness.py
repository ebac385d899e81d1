"""Run real `kmg worker` subprocesses against a real broker and read what they publish."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from alerts.rule_config import RuleConfig
from alerts.timestamps import parse_timestamp
from streams.replay import NdjsonWriter, Replay
from streams.settings import Settings
from streams.topics import delete_deployment
from streams.worker_processes import LocalDeployment
from tests.scenario_support import COMPARED

Row = tuple[Any, ...]


def comparable(alert: dict[str, Any]) -> Row:
    """Project an alert on the compared fields, `at` as an instant."""
    return tuple(parse_timestamp(alert[k]) if k == "at" else alert[k] for k in COMPARED)


def replay_alerts(cfg: RuleConfig, lines: Iterable[bytes]) -> list[dict[str, Any]]:
    """Return what `kmg replay` emits for these lines."""
    out = io.BytesIO()
    replay = Replay(cfg, NdjsonWriter(out), NdjsonWriter(None))
    replay.read("input", lines, lambda n: None)
    replay.run()
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def merge_by_availability(files: list[Path]) -> list[bytes]:
    """Order the lines of several inputs by availability, so that no event is late.

    Ties keep file and line order; a line without a readable availability (an invalid one)
    keeps its place after its file's previous line. Replay's output does not depend on the
    order of its input, and in this order a stream's output must equal it.
    """
    rows = []
    for i, path in enumerate(files):
        last = -(2**62)
        for j, line in enumerate(path.read_bytes().splitlines()):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                field_name = "at" if obj.get("kind") == "medication" else "resulted_at"
                last = parse_timestamp(obj[field_name])
            except Exception:  # noqa: BLE001 - invalid lines travel with their neighbours
                pass
            rows.append((last, i, j, line))
    return [row[3] for row in sorted(rows)]


class Deployment(LocalDeployment):
    """A local deployment that also reads its alerts topic and deletes its topics."""

    async def read_alerts(
        self,
        done: Callable[[list[dict[str, Any]]], bool],
        timeout: float,
        settle: float = 0.0,
        alive: Callable[[], bool] = lambda: True,
    ) -> list[dict[str, Any]]:
        """Read the alerts topic from the start until done(alerts), then `settle` seconds more."""
        alerts: list[dict[str, Any]] = []

        def take(records: list[Any]) -> bool:
            alerts.extend(orjson.loads(r.value) for r in records if r.value)
            return done(alerts)

        await self.read_topic("alerts", take, timeout, settle, alive)
        return alerts

    async def read_topic(
        self,
        name: str,
        take: Callable[[list[Any]], bool],
        timeout: float,
        settle: float = 0.0,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        """Hand `take` the records of topic <prefix><name> from the start until it says done."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        try:
            topic = f"{self.prefix}{name}"
            tps = [TopicPartition(topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            settle_until: float | None = None
            while loop.time() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                finished = take([r for records in batches.values() for r in records])
                if settle_until is None and finished:
                    settle_until = loop.time() + settle
                if settle_until is not None and loop.time() >= settle_until:
                    break
                if not alive():
                    break
        finally:
            await consumer.stop()

    async def delete_topics(self) -> None:
        """Remove every topic of this deployment (inputs, outputs, changelog, assignor)."""
        # Each test's names are its own, so its group is left to expire: a stopped worker can
        # stay in it until its session times out (a minute).
        settings = Settings(
            kafka_bootstrap=self.bootstrap, app_id=self.app_id, topic_prefix=self.prefix
        )
        await delete_deployment(settings, group=False)


def count_rows(alerts: list[dict[str, Any]]) -> Counter[Row]:
    return Counter(comparable(a) for a in alerts)


def repeated_pairs(alerts: list[dict[str, Any]]) -> int:
    """Return how many alert events repeat an (alert_id, status) already seen."""
    pairs = Counter((a["alert_id"], a["status"]) for a in alerts)
    return sum(n - 1 for n in pairs.values() if n > 1)


FEED_PATIENTS = 2_000
FEED_EVENTS = 50_000
_FEEDS: dict[str, tuple[Path, list[dict[str, Any]]]] = {}


def synthetic_feed(folder: Path, cfg: RuleConfig) -> tuple[Path, list[dict[str, Any]]]:
    """Write (once per session) the 50,000-event, 2,000-patient feed and replay's alerts for it."""
    key = str(cfg.digest())
    if key not in _FEEDS:
        from streams.synthetic_feed import FeedShape, write_ndjson

        path = folder / "feed.ndjson"
        shape = FeedShape(patients=FEED_PATIENTS, days=4, seed=3, target_events=FEED_EVENTS)
        counts = write_ndjson(shape, path)
        assert counts["lines"] >= FEED_EVENTS, counts
        _FEEDS[key] = (path, replay_alerts(cfg, path.read_bytes().splitlines()))
    return _FEEDS[key]
