"""`kmg produce`: send a canonical NDJSON file to the labs and meds topics in file order.

The kind of each line decides its topic (`medication` to meds, anything else to labs, so a
line that is not JSON or has no kind reaches the worker and is dead-lettered there); the key
is the line's patient_id as UTF-8 (none: a null key). With `final`, one control message per
partition then tells the workers that the input ends at the offsets now at the end of the
inputs, so they drain as a replay does at its end (W = +infinity).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.settings import Settings
from streams.topics import ensure_topics

_GATHER_EVERY = 5_000


def route(line: bytes, settings: Settings) -> tuple[str, bytes | None]:
    """Return the topic and key of one canonical line."""
    try:
        obj: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return settings.topic_labs, None
    if not isinstance(obj, dict):
        return settings.topic_labs, None
    topic = settings.topic_meds if obj.get("kind") == "medication" else settings.topic_labs
    pid = obj.get("patient_id")
    return topic, pid.encode() if isinstance(pid, str) and pid else None


def new_producer(settings: Settings) -> AIOKafkaProducer:
    """Return an idempotent producer (file order kept per partition, even on retries)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )


async def send_lines(
    producer: AIOKafkaProducer, settings: Settings, lines: Iterable[bytes]
) -> Counter[str]:
    """Send every non-blank line to its topic, in order; return the count per topic."""
    counts: Counter[str] = Counter()
    deliveries = Deliveries()
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        topic, key = route(line, settings)
        await deliveries.add(await producer.send(topic, value=line, key=key))
        counts[topic] += 1
    await deliveries.settle()
    return counts


class Deliveries:
    """The broker's answers to records sent: awaited in bulk, so a refusal raises, never vanishes.

    aiokafka's flush() waits for its batches without raising what they failed with; only the
    future each send returns carries a refusal.
    """

    def __init__(self) -> None:
        self._pending: list[asyncio.Future[Any]] = []

    async def add(self, delivery: asyncio.Future[Any]) -> None:
        """Hold one record's delivery; every few thousand, wait for those held."""
        self._pending.append(delivery)
        if len(self._pending) >= _GATHER_EVERY:
            await self.settle()

    async def settle(self) -> None:
        """Wait for every delivery held; raise the first refusal."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)


def final_message(offsets: dict[str, int]) -> bytes:
    """Return the `final` control message naming the input offsets to consume first."""
    return orjson.dumps({"control": "final", "offsets": offsets})


async def send_final(producer: AIOKafkaProducer, settings: Settings) -> dict[int, dict[str, int]]:
    """Send one `final` per partition with the inputs' current end offsets; return them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p) for t in settings.input_topics for p in range(settings.partitions)
        ]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    per_partition: dict[int, dict[str, int]] = {}
    for p in range(settings.partitions):
        offsets = {t: ends[TopicPartition(t, p)] for t in settings.input_topics}
        per_partition[p] = offsets
        await producer.send_and_wait(
            settings.topic_ticks, value=final_message(offsets), partition=p
        )
    return per_partition


async def produce(settings: Settings, lines: Iterable[bytes], final: bool) -> Counter[str]:
    """Create missing topics, send the lines, then the `final` markers if asked."""
    await ensure_topics(settings)
    producer = new_producer(settings)
    await producer.start()
    try:
        counts = await send_lines(producer, settings, lines)
        await producer.flush()
        if final:
            await send_final(producer, settings)
            counts[settings.topic_ticks] += settings.partitions
    finally:
        await producer.stop()
    return counts
