"""`kmg redrive`: send dead letters of chosen reasons back to the input topic they came from.

Once what refused them is mended (a source's clock, a flood, a unit added to the code sets, a
processing error fixed), their original bytes and key go back to their source topic, where the
workers take them as any late arrival. Only what the dead-letter topic held when the command
started is read, so a letter refused again is not sent twice by the same run. A letter sent
again is a duplicate to the workers while they remember its event_id (`history_hours`); `since`
keeps a later run from sending an earlier run's letters again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.metrics import reason_class
from streams.producer import Deliveries, new_producer
from streams.settings import Settings

_FETCH_MS = 1_000


class Skip(StrEnum):
    """Why a dead letter is not sent back (counted in the summary)."""

    OTHER_REASON = "other reason"
    NOT_AN_INPUT = "not from an input topic"
    TRUNCATED = "only its head was kept"


OTHER_REASON, NOT_AN_INPUT, TRUNCATED = Skip.OTHER_REASON, Skip.NOT_AN_INPUT, Skip.TRUNCATED


@dataclass
class RedriveSummary:
    """What a redrive read, sent back by topic and left by why."""

    read: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def render(self, dry_run: bool) -> str:
        """Return the one-line summary printed on stderr."""
        verb = "would send" if dry_run else "sent"
        sent = ", ".join(f"{t} {n}" for t, n in sorted(self.sent.items())) or "nothing"
        skipped = ", ".join(f"{why} {n}" for why, n in sorted(self.skipped.items())) or "none"
        return f"read {self.read} dead letters; {verb}: {sent}; left: {skipped}"


def destination(
    headers: Sequence[tuple[str, bytes]], reasons: Collection[str], inputs: Collection[str]
) -> str | Skip:
    """Return the topic a dead letter goes back to, or why it stays."""
    found = dict(headers)
    reason = found.get("reason", b"").decode("utf-8", "replace")
    if reason_class(reason) not in reasons:
        return OTHER_REASON
    if "truncated_from_bytes" in found:
        # Its value is a head of the original message, which the broker could not hold whole.
        return TRUNCATED
    source = found.get("source_topic", b"").decode("utf-8", "replace")
    if source not in inputs:
        return NOT_AN_INPUT  # a control message of the ticks topic, or a foreign record
    return source


async def redrive(
    settings: Settings,
    reasons: Collection[str],
    *,
    since_ms: int | None = None,
    dry_run: bool = False,
) -> RedriveSummary:
    """Send the chosen dead letters back to their source topics; return what was done.

    `since_ms` (Unix milliseconds) leaves the letters written to the topic before it.
    """
    summary = RedriveSummary()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    producer = None if dry_run else new_producer(settings)
    await consumer.start()
    try:
        partitions = await _partitions(settings.kafka_bootstrap, settings.topic_dead_letter)
        tps = [TopicPartition(settings.topic_dead_letter, p) for p in partitions]
        if not tps:
            return summary
        consumer.assign(tps)
        # Explicit offsets, each partition sought to its own: no reset policy decides.
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        if since_ms is not None:
            found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
            # None: nothing was written there since; the partition is not read.
            starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        if producer is not None:
            await producer.start()
        deliveries = Deliveries()
        open_tps = {tp for tp in tps if starts[tp] < ends[tp]}
        while open_tps:
            batches = await consumer.getmany(*open_tps, timeout_ms=_FETCH_MS)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    summary.read += 1
                    await _one(record, reasons, settings, producer, deliveries, summary)
            open_tps = {tp for tp in open_tps if await consumer.position(tp) < ends[tp]}
        await deliveries.settle()  # a record the broker refused fails the command
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    return summary


async def _one(
    record: Any,
    reasons: Collection[str],
    settings: Settings,
    producer: Any,
    deliveries: Deliveries,
    summary: RedriveSummary,
) -> None:
    where = destination(record.headers, reasons, settings.input_topics)
    if isinstance(where, Skip):
        summary.skipped[where] += 1
        return
    if producer is not None:
        origin = f"{record.topic}:{record.partition}:{record.offset}".encode()
        sent = await producer.send(
            where, value=record.value, key=record.key, headers=[("redriven_from", origin)]
        )
        await deliveries.add(sent)
    summary.sent[where] += 1


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    """Return the topic's partitions as the broker describes them (none if it has no topic)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        part["partition"]
        for entry in described
        if not entry.get("error_code", 0)
        for part in entry["partitions"]
    )
