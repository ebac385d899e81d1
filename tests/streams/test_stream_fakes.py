"""Fakes for driving StreamProcessor without Kafka: a broker (same partitioner), outbox, table.

No tests here: the test_stream_* modules import these.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from prometheus_client import CollectorRegistry

from alerts.rule_config import RuleConfig
from alerts.timestamps import parse_timestamp
from streams.metrics import StreamMetrics
from streams.processor import InputMessage, StreamProcessor
from streams.producer import final_message
from streams.state_store import PatientStore
from tests.scenario_support import COMPARED

LABS, MEDS, TICKS = "t.labs", "t.meds", "t.ticks"
INPUTS = (LABS, MEDS)


def partition_of(key: bytes | None, partitions: int) -> int:
    """Kafka's default partitioner for keyed messages (murmur2); keyless ones go to 0 here."""
    if not key:
        return 0
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def rows(alerts: Iterable[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    """Count alerts projected on the compared fields, `at` as an instant."""
    return Counter(
        tuple(parse_timestamp(a[k]) if k == "at" else a[k] for k in COMPARED) for a in alerts
    )


class Broker:
    """Topic partitions as lists of (key, value)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.logs: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = defaultdict(list)

    def produce_line(self, line: bytes) -> None:
        """Route a canonical line as `kmg produce` does."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        topic = MEDS if isinstance(obj, dict) and obj.get("kind") == "medication" else LABS
        pid = obj.get("patient_id") if isinstance(obj, dict) else None
        key = pid.encode() if isinstance(pid, str) and pid else None
        self.append(topic, partition_of(key, self.partitions), key, line)

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes) -> None:
        self.logs[topic, partition].append((key, value))

    def produce_final(self) -> None:
        for p in range(self.partitions):
            offsets = {t: len(self.logs[t, p]) for t in INPUTS}
            self.append(TICKS, p, None, final_message(offsets))

    def end(self, topic: str, partition: int) -> int:
        return len(self.logs[topic, partition])


class Outbox:
    """Collects what the processor publishes."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.keys: list[bytes] = []
        self.dead: list[tuple[int, bytes | None, bytes, dict[str, bytes]]] = []

    async def publish_alerts(self, partition: int, records: list[tuple[bytes, bytes]]) -> None:
        for key, value in records:
            self.keys.append(key)
            self.alerts.append(orjson.loads(value))

    async def dead_letter(
        self, partition: int, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        self.dead.append((partition, key, value, dict(headers)))


@dataclass
class Backlog:
    """The consumer's view: a topic partition is behind until its log is read to the end."""

    broker: Broker
    committed: dict[tuple[str, int], int] = field(default_factory=dict)

    def behind(self, topic: str, partition: int, next_offset: int | None) -> bool:
        return self.position(topic, partition, next_offset) < self.broker.end(topic, partition)

    def position(self, topic: str, partition: int, next_offset: int | None) -> int:
        if next_offset is not None:
            return next_offset
        return self.committed.get((topic, partition), 0)

    def assigned(self) -> set[int]:
        return set(range(self.broker.partitions))


class LoggedTable(dict[str, bytes]):
    """A dict that also keeps every write in order, like a changelog partition."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, bytes]] = []

    def __setitem__(self, key: str, value: bytes) -> None:
        super().__setitem__(key, value)
        self.log.append((key, value))


@dataclass
class Rig:
    """A broker, a table and one processor consuming in a random interleaving of partitions."""

    cfg: RuleConfig
    broker: Broker
    table: LoggedTable = field(default_factory=LoggedTable)
    outbox: Outbox = field(default_factory=Outbox)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    wall: float = 1_900_000_000.0
    idle_advance: bool = True
    positions: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))

    def __post_init__(self) -> None:
        self.backlog = Backlog(self.broker)
        self.metrics = StreamMetrics(self.registry)
        self.processor = self.new_processor()

    def new_processor(self) -> StreamProcessor:
        return StreamProcessor(
            self.cfg,
            PatientStore(self.table, cache_size=64),
            self.outbox,
            self.backlog,
            self.metrics,
            inputs=INPUTS,
            ticks=TICKS,
            idle_advance=self.idle_advance,
            wall=lambda: self.wall,
        )

    def consume(self, rng: random.Random, limit: int | None = None) -> int:
        """Read in random bursts from random topic partitions; return how many were handled."""
        return asyncio.run(self._consume(rng, limit))

    async def _consume(self, rng: random.Random, limit: int | None) -> int:
        handled = 0
        while limit is None or handled < limit:
            live = [tp for tp in self.broker.logs if self.positions[tp] < self.broker.end(*tp)]
            if not live:
                break
            tp = rng.choice(sorted(live))
            for _ in range(rng.randint(1, 40)):
                offset = self.positions[tp]
                if offset >= self.broker.end(*tp) or (limit is not None and handled >= limit):
                    break
                key, value = self.broker.logs[tp][offset]
                await self.processor.handle(InputMessage(tp[0], tp[1], offset, key, value))
                self.positions[tp] = offset + 1
                handled += 1
        return handled

    def tick(self, seconds: float = 0.0) -> None:
        """Let wall time pass and deliver one tick to every partition."""
        self.wall += seconds

        async def ticks() -> None:
            for p in range(self.broker.partitions):
                self.broker.append(TICKS, p, None, b'{"control":"tick"}')
                offset = self.broker.end(TICKS, p) - 1
                message = InputMessage(TICKS, p, offset, None, b'{"control":"tick"}')
                await self.processor.handle(message)
                self.positions[TICKS, p] = offset + 1

        asyncio.run(ticks())

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value
