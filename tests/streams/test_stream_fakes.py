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
from streams.consumed import InputMessage
from streams.metrics import StreamMetrics
from streams.processor import StreamProcessor
from streams.producer import final_message
from streams.state_codec import clock_key, decode_value
from streams.state_store import PatientStore
from streams.watermark import DEFAULT_MAX_EVENT_LEAD_HOURS, DEFAULT_MAX_PATIENT_EVENTS
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

    async def publish_alerts(self, records: list[tuple[int, bytes, bytes]]) -> Any:
        for _, key, value in records:
            self.keys.append(key)
            self.alerts.append(orjson.loads(value))
        return _acknowledged()

    async def dead_letter(
        self, partition: int, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Any:
        self.dead.append((partition, key, value, dict(headers)))
        return _acknowledged()


def _acknowledged() -> asyncio.Future[None]:
    """What the broker's acknowledgement is once it has arrived."""
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


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

    def refresh(self) -> None:
        """Read the end offsets live: the fake broker's are exact at every message."""


class LoggedTable(dict[str, bytes]):
    """A dict that also keeps every write in order, like a changelog partition.

    Like a Faust table it reads and writes in the partition of the "current event", which a
    batch sets with `scope`; reading or writing a key of another partition fails.
    """

    def __init__(self, partitions: int | None = None) -> None:
        super().__init__()
        self.log: list[tuple[str, bytes]] = []
        self.partitions = partitions
        self.current: int | None = None

    def scope(self, partition: int) -> None:
        self.current = partition

    def get(self, key: str, default: Any = None) -> Any:
        # A Faust table reads a key from the current event's partition only.
        if self.partitions is not None and self.current is not None and key in self:
            owner = decode_value(self[key]).partition
            assert owner == self.current, f"{key} of partition {owner} read in {self.current}"
        return super().get(key, default)

    def __setitem__(self, key: str, value: bytes) -> None:
        if self.partitions is not None and self.current is not None:
            owner = decode_value(value).partition
            if key != clock_key(owner):
                assert owner == partition_of(key.encode(), self.partitions), key
            assert owner == self.current, f"{key} of partition {owner} written in {self.current}"
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
    batch_max: int = 1  # above 1: batches of 1..batch_max messages interleaving partitions
    max_patient_events: int = DEFAULT_MAX_PATIENT_EVENTS
    max_event_lead_hours: float = DEFAULT_MAX_EVENT_LEAD_HOURS

    def __post_init__(self) -> None:
        if self.table.partitions is None:
            self.table.partitions = self.broker.partitions
        self.backlog = Backlog(self.broker)
        self.metrics = StreamMetrics(self.registry)
        self.processor = self.new_processor()

    def new_processor(self) -> StreamProcessor:
        return StreamProcessor(
            self.cfg,
            PatientStore(self.table, cache_size=0 if self.batch_max > 1 else 64),
            self.outbox,
            self.backlog,
            self.metrics,
            inputs=INPUTS,
            ticks=TICKS,
            idle_advance=self.idle_advance,
            max_patient_events=self.max_patient_events,
            max_event_lead_hours=self.max_event_lead_hours,
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
            if self.batch_max > 1:
                handled += await self._batch(rng, live, limit, handled)
                continue
            tp = rng.choice(sorted(live))
            for _ in range(rng.randint(1, 40)):
                offset = self.positions[tp]
                if offset >= self.broker.end(*tp) or (limit is not None and handled >= limit):
                    break
                key, value = self.broker.logs[tp][offset]
                self.table.scope(tp[1])  # a Faust table's current event is the message's
                await self.processor.handle(InputMessage(tp[0], tp[1], offset, key, value))
                self.positions[tp] = offset + 1
                handled += 1
        return handled

    async def _batch(
        self, rng: random.Random, live: list[tuple[str, int]], limit: int | None, handled: int
    ) -> int:
        """Hand one batch over: the next messages of random partitions, each in its order."""
        size = rng.randint(1, self.batch_max)
        if limit is not None:
            size = min(size, limit - handled)
        batch: list[InputMessage] = []
        taken: dict[tuple[str, int], int] = defaultdict(int)
        for _ in range(size):
            open_tps = [tp for tp in live if self.positions[tp] + taken[tp] < self.broker.end(*tp)]
            if not open_tps:
                break
            tp = rng.choice(sorted(open_tps))
            offset = self.positions[tp] + taken[tp]
            key, value = self.broker.logs[tp][offset]
            batch.append(InputMessage(tp[0], tp[1], offset, key, value))
            taken[tp] += 1
        self.table.current = -1  # no partition: the batch must say where it writes
        await self.processor.handle_batch(batch, self.table.scope)
        for tp, n in taken.items():
            self.positions[tp] += n
        self.last_batch = [(m.topic, m.partition) for m in batch]
        return len(batch)

    def tick(self, seconds: float = 0.0) -> None:
        """Let wall time pass and deliver one tick to every partition."""
        self.wall += seconds

        async def ticks() -> None:
            for p in range(self.broker.partitions):
                self.broker.append(TICKS, p, None, b'{"control":"tick"}')
                offset = self.broker.end(TICKS, p) - 1
                message = InputMessage(TICKS, p, offset, None, b'{"control":"tick"}')
                self.table.scope(p)
                await self.processor.handle(message)
                self.positions[TICKS, p] = offset + 1

        asyncio.run(ticks())

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value
