"""Round trip through the real local broker started by ``scripts/kafka-local start``.

The test never starts a broker itself: locally run ``scripts/kafka-local start``
first; CI starts it before pytest. ``KMG_KAFKA_BOOTSTRAP`` points it at another
broker.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

BOOTSTRAP = os.environ.get("KMG_KAFKA_BOOTSTRAP", "127.0.0.1:9092")

MESSAGES = [
    (b"patient-1", b'{"k": 3.1, "mg": 0.62}'),
    (b"patient-2", b'{"k": 5.9, "mg": 0.81}'),
    (b"patient-3", b'{"k": 4.2, "mg": 0.44}'),
]


async def _round_trip(topic: str) -> list[tuple[bytes | None, bytes | None]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=15_000)
    await admin.start()
    try:
        # Several partitions, so the keys really get spread by the partitioner.
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        try:
            producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
            await producer.start()
            try:
                for key, value in MESSAGES:
                    await producer.send_and_wait(topic, value=value, key=key)
            finally:
                await producer.stop()

            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=BOOTSTRAP,
                group_id=f"{topic}-group",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            received: list[tuple[bytes | None, bytes | None]] = []
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 60
                while len(received) < len(MESSAGES) and loop.time() < deadline:
                    batches = await consumer.getmany(timeout_ms=1_000)
                    for records in batches.values():
                        received.extend((r.key, r.value) for r in records)
            finally:
                await consumer.stop()
            return received
        finally:
            await admin.delete_topics([topic])
    finally:
        await admin.close()


def test_produce_and_consume_keyed_messages() -> None:
    topic = f"kmg-it-{uuid.uuid4().hex[:12]}"
    received = asyncio.run(_round_trip(topic))
    # Order is only guaranteed within a partition, and the keys land on different ones.
    assert sorted(received) == sorted(MESSAGES)
