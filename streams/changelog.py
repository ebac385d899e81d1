"""Table writes of a batch: into the local store, and to the changelog in whole producer batches.

A Faust table sends one changelog record per assignment through its producer buffer: a future
message, a queue hop, serialisers and a persisted-offset write to RocksDB per record, which cost
more than processing the event that changed the state. The worker writes each changed state
once per batch, so it writes them the way Kafka stores them: the partition's records appended
to producer batches, one send per batch, the persisted offset noted once when the last one is
acknowledged. Recovery reads the same records Faust would have written (raw key, raw value).

A changelog send that fails (after the producer's own retries) must not be followed by a commit
of the input offsets whose states it carried: `failure` is set, and the consumer crashes the
worker instead of committing (streams/transport.py), so a restart takes those inputs again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any, Protocol

from faust.types import TP
from rocksdict import WriteBatch

log = logging.getLogger("kmg.changelog")


class TableWriter(Protocol):
    """Where a batch's changed table entries of one partition go."""

    async def write(self, partition: int, entries: list[tuple[str, bytes]]) -> None:
        """Write the entries, in order; return once they are handed to durable storage."""
        ...


class MappingWriter:
    """Write entries into a plain mapping (unit tests, tools)."""

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self.table = table

    async def write(self, partition: int, entries: list[tuple[str, bytes]]) -> None:
        """Assign each entry."""
        table = self.table
        for key, value in entries:
            table[key] = value


class BatchProducer(Protocol):
    """What the writer needs of aiokafka's producer."""

    def create_batch(self) -> Any:
        """Return an empty record batch builder."""
        ...

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        """Queue the batch for the partition; return the future of its acknowledgement."""
        ...


class ChangelogWriter:
    """Write a Faust table's entries to its local store and its changelog topic, batch-wise."""

    def __init__(self, table: Any, producer: Any) -> None:
        # `producer` returns the started aiokafka producer (the app's, created on start).
        self.table = table
        self.producer = producer
        self.failure: BaseException | None = None
        self._topic: str | None = None

    @property
    def topic(self) -> str:
        """Return the changelog topic's name."""
        if self._topic is None:
            self._topic = self.table.changelog_topic.get_topic_name()
        return self._topic

    async def write(self, partition: int, entries: list[tuple[str, bytes]]) -> None:
        """Append the entries to the changelog partition, then store them locally."""
        if not entries:
            return
        try:
            await self._append(partition, entries)
        except BaseException as exc:
            # Some of the entries may be in the changelog or the store, some not: only a
            # restart from the last commit puts the two back in step.
            self._fail(exc)
            raise
        store = self.table.data
        db_for_partition = getattr(store, "_db_for_partition", None)
        if db_for_partition is not None and getattr(store, "use_rocksdict", False):
            # One RocksDB write for the partition, as Faust's own recovery applies records.
            batch = WriteBatch(raw_mode=True)
            for key, value in entries:
                batch.put(key.encode(), value)
            db_for_partition(partition).write(batch)
            return
        for key, value in entries:
            store[key] = value  # the store alone: Table.__setitem__ would send each record

    async def _append(self, partition: int, entries: list[tuple[str, bytes]]) -> None:
        producer: BatchProducer = self.producer()
        topic = self.topic
        batch = producer.create_batch()
        for key, value in entries:
            key_bytes = key.encode()
            if batch.append(key=key_bytes, value=value, timestamp=None) is None:
                await self._send(producer, batch, topic, partition)
                batch = producer.create_batch()
                batch.append(key=key_bytes, value=value, timestamp=None)
        last = await self._send(producer, batch, topic, partition)
        records = batch.record_count()
        last.add_done_callback(lambda fut: self._persisted(partition, fut, records))

    async def _send(
        self, producer: BatchProducer, batch: Any, topic: str, partition: int
    ) -> asyncio.Future[Any]:
        batch.close()
        fut = await producer.send_batch(batch, topic, partition=partition)
        fut.add_done_callback(self._check)
        return fut

    def _check(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            log.error("a changelog write failed (%r); the worker will not commit again", exc)

    def _persisted(self, partition: int, fut: asyncio.Future[Any], records: int) -> None:
        # Recovery after a restart with the same data dir reads the changelog from here on.
        if fut.cancelled() or fut.exception() is not None:
            return
        last_offset = fut.result().offset + records - 1
        self.table.data.set_persisted_offset(TP(self.topic, partition), last_offset)
