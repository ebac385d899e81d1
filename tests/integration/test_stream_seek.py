"""Records fetched, then dropped before a commit, are fetched again: against the real broker.

The worker drops a fetch that meets a rebalance or the recovery and seeks back to the commits.
aiokafka seeks only to a commit above 0, so a partition with none (a new deployment's) stayed
past the dropped records: a new deployment lost its first events and its `final` (seen as a
stalled test on a loaded machine).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.transport import _seek_to_start
from streams.worker_processes import BOOTSTRAP

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


async def _fetch_all(consumer: AIOKafkaConsumer, tp: TopicPartition, want: int) -> list[int]:
    offsets: list[int] = []
    for _ in range(20):
        got = await consumer.getmany(tp, timeout_ms=1000)
        offsets += [r.offset for r in got.get(tp, [])]
        if len(offsets) >= want:
            break
    return offsets


async def _read_drop_and_seek_back(commit: int | None) -> tuple[int, list[int], list[int]]:
    """Fetch three records, seek back to the commits; return the position, fetches before/after."""
    topic = f"kmg-it-seek-{uuid.uuid4().hex[:10]}"
    tp = TopicPartition(topic, 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id=f"{topic}-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
        await producer.start()
        try:
            for n in range(3):
                await producer.send_and_wait(topic, f"r{n}".encode(), partition=0)
        finally:
            await producer.stop()
        await consumer.start()
        consumer.assign([tp])
        if commit is not None:
            await consumer.commit({tp: commit})
        first = await _fetch_all(consumer, tp, 3)  # then dropped, as in a rebalance
        committed = await consumer.seek_to_committed()
        left_at = await consumer.position(tp)
        await _seek_to_start(consumer, committed, "earliest")
        again = await _fetch_all(consumer, tp, 3)
        return left_at, first, again
    finally:
        await consumer.stop()
        await admin.delete_topics([topic])
        await admin.close()


@pytest.mark.parametrize("commit", [None, 0], ids=["no commit", "a commit of 0"])
def test_records_dropped_before_any_commit_are_fetched_again(commit):
    left_at, first, again = asyncio.run(_read_drop_and_seek_back(commit))
    assert first == [0, 1, 2]
    assert left_at == 3  # aiokafka's seek to the commits left the partition past them
    assert again == [0, 1, 2]
