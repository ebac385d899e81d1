"""Table writes of a batch: into the local store, and to the changelog in whole producer batches.

A Faust table sends one changelog record per assignment through its producer buffer: a future
message, a queue hop, serialisers and a persisted-offset write to RocksDB per record, which cost
more than processing the event that changed the state. The worker writes each changed state
once per batch, so it writes them the way Kafka stores them: the partition's records appended
to producer batches, one send per batch, the persisted offset noted once when the last one is
acknowledged. Recovery reads the same records Faust would have written (raw key, raw value).

The sends run in a task of their own, so the agent goes on with its next batch meanwhile; each
write waits there for the acknowledgement of the alerts its states account for. A commit of
input offsets first waits for every queued write to be acknowledged (`settle`). A
changelog send that fails (after the producer's own retries) must not be followed by such a
commit: `failure` is set, and the consumer crashes the worker instead of committing
(streams/transport.py), so a restart rebuilds the table from the changelog and takes those
inputs again. A partition's clock goes out only once every state batch before it in the same
write, and every earlier write of the partition, is acknowledged: a clock ahead of its states
would make those inputs late on the restart. A clock that must wait is sent by a task of its
own, so the other partitions' writes go on meanwhile; a clock that lands late is only older.
A local store write that fails (a full disk) raises `LocalStoreError`, which is never retried:
RocksDB keeps refusing writes until it is reopened, so the worker crashes and its next start
rebuilds the table from the changelog.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from faust.types import TP
from rocksdict import WriteBatch

from streams.state_codec import clock_key

log = logging.getLogger("kmg.changelog")


class LocalStoreError(Exception):
    """A write to the local table store failed; the worker must crash, not retry."""


class TableWriter(Protocol):
    """Where a batch's changed table entries of one partition go."""

    async def write(
        self, partition: int, entries: list[tuple[str, bytes]], after: Awaitable[Any] | None = None
    ) -> None:
        """Write the entries, in order; durably only once `after` (if given) completes."""
        ...


class MappingWriter:
    """Write entries into a plain mapping (unit tests, tools)."""

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self.table = table

    async def write(
        self, partition: int, entries: list[tuple[str, bytes]], after: Awaitable[Any] | None = None
    ) -> None:
        """Assign each entry (a mapping has nothing to wait for)."""
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


class NotAGroupMember(RuntimeError):
    """The group no longer counts this worker a member: its partitions are another's."""


class ChangelogWriter:
    """Write a Faust table's entries to its local store, and queue them for its changelog.

    The agent never waits for the changelog (an alert's latency does not include it): each
    write is stored locally at once and queued; one task sends the queue in order. A commit
    first `settle`s: every queued write sent and acknowledged, or the first failure returned.
    """

    def __init__(
        self,
        table: Any,
        producer: Any,
        max_queued: int = 256,
        membership: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        # `producer` returns the started aiokafka producer (the app's, created on start).
        self.table = table
        self.producer = producer
        # Says whether the group still counts this worker a member (None: always, in tools).
        self.membership = membership
        # Partition writes queued before `write` waits. 16 made (c)'s p99 no better or worse
        # within noise and memory no smaller; many small batches (a caught-up worker) need room.
        self.max_queued = max_queued
        self.failure: BaseException | None = None
        self._topic: str | None = None
        self._queue: deque[tuple[int, list[tuple[str, bytes]], Awaitable[Any] | None]] = deque()
        self._pump: asyncio.Future[None] | None = None
        self._unacknowledged: set[asyncio.Future[Any]] = set()
        # Each partition's unacknowledged batches, and its clock waiting behind them (if any).
        self._in_flight: dict[int, set[asyncio.Future[Any]]] = {}
        self._clocks: dict[int, asyncio.Future[None]] = {}

    @property
    def topic(self) -> str:
        """Return the changelog topic's name."""
        if self._topic is None:
            self._topic = self.table.changelog_topic.get_topic_name()
        return self._topic

    async def write(
        self, partition: int, entries: list[tuple[str, bytes]], after: Awaitable[Any] | None = None
    ) -> None:
        """Store the entries locally; queue them for the changelog, to follow `after`.

        `after` is the acknowledgement of the alerts these states already account for: a state
        in the changelog must never run ahead of its alerts, or a restart that reads it would
        not send them again.
        """
        if not entries:
            return
        try:
            self._store(partition, entries)
        except Exception as exc:
            # RocksDB keeps a write error (a full disk) until it is reopened: a retry would
            # fail forever. Its message names the files, never a key.
            error = LocalStoreError(f"the local table store refused a write: {exc}")
            if self.failure is None:
                self.failure = error  # the consumer must not commit past this batch
            raise error from exc
        self._queue.append((partition, entries, after))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.ensure_future(self._send_queued())
        if len(self._queue) > self.max_queued:
            await asyncio.shield(self._pump)  # backpressure: memory stays bounded

    async def settle(self) -> BaseException | None:
        """Wait until every queued write is acknowledged; return the first failure, if any."""
        if self._pump is not None:
            await asyncio.wait([self._pump])
        if self._clocks:
            await asyncio.wait(list(self._clocks.values()))
        if self._unacknowledged:
            await asyncio.wait(list(self._unacknowledged))
        return self.failure

    def _store(self, partition: int, entries: list[tuple[str, bytes]]) -> None:
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

    async def _send_queued(self) -> None:
        queue = self._queue
        while queue and self.failure is None:
            partition, entries, after = queue[0]
            try:
                if after is not None:
                    await after
                if self.membership is not None and not await self.membership():
                    # Its states are older than the new owner's: never let them follow those.
                    raise NotAGroupMember(f"partition {partition} may be another worker's now")
                await self._append(partition, entries)
            except BaseException as exc:
                # The store now runs ahead of the changelog: the worker must not commit, and
                # its crash leaves the local files to be discarded (streams/worker.py).
                self._fail(exc)
                queue.clear()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            queue.popleft()

    async def _append(self, partition: int, entries: list[tuple[str, bytes]]) -> None:
        producer: BatchProducer = self.producer()
        topic = self.topic
        clock: tuple[str, bytes] | None = None
        if entries[-1][0] == clock_key(partition):
            *entries, clock = entries  # last, from PatientStore.flush
        # Batches may fail one by one (a state too large), and a batch after a refused one be
        # taken all the same: the clock goes in its states' batch, or behind all of them.
        behind = bool(self._in_flight.get(partition)) or partition in self._clocks
        batch = producer.create_batch()
        for key, value in entries:
            key_bytes = key.encode()
            if batch.append(key=key_bytes, value=value, timestamp=None) is None:
                await self._send(producer, batch, topic, partition)
                behind = True
                batch = producer.create_batch()
                batch.append(key=key_bytes, value=value, timestamp=None)
        if (
            clock is not None
            and not behind
            and batch.append(key=clock[0].encode(), value=clock[1], timestamp=None) is not None
        ):
            clock = None  # one batch is written whole: no wait
        if batch.record_count():
            await self._send(producer, batch, topic, partition, persist=True)
        if clock is not None:
            self._send_clock_behind(partition, clock)

    def _send_clock_behind(self, partition: int, clock: tuple[str, bytes]) -> None:
        before = set(self._in_flight.get(partition, ()))
        previous = self._clocks.get(partition)
        if previous is not None:
            before.add(previous)  # clocks keep their order: a later one never lands first
        task = asyncio.ensure_future(self._send_clock(partition, clock, before))
        self._clocks[partition] = task

        def done(_: asyncio.Future[None]) -> None:
            if self._clocks.get(partition) is task:
                del self._clocks[partition]

        task.add_done_callback(done)

    async def _send_clock(
        self, partition: int, clock: tuple[str, bytes], before: set[asyncio.Future[Any]]
    ) -> None:
        try:
            if before:
                await asyncio.wait(before)
            if self.failure is not None or any(
                fut.cancelled() or fut.exception() is not None for fut in before
            ):
                return  # a state before it was refused: the restart must not read this clock
            producer: BatchProducer = self.producer()
            batch = producer.create_batch()
            batch.append(key=clock[0].encode(), value=clock[1], timestamp=None)
            await self._send(producer, batch, self.topic, partition, persist=True)
        except BaseException as exc:
            self._fail(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _send(
        self, producer: BatchProducer, batch: Any, topic: str, partition: int, persist: bool = False
    ) -> asyncio.Future[Any]:
        batch.close()
        records = batch.record_count()
        fut = await producer.send_batch(batch, topic, partition=partition)
        self._unacknowledged.add(fut)
        in_flight = self._in_flight.setdefault(partition, set())
        in_flight.add(fut)
        fut.add_done_callback(self._acknowledged)
        fut.add_done_callback(in_flight.discard)
        if persist:
            # Noted once per write (a RocksDB write each): at its last batch, and at a clock's.
            fut.add_done_callback(lambda fut: self._persisted(partition, fut, records))
        return fut

    def _acknowledged(self, fut: asyncio.Future[Any]) -> None:
        self._unacknowledged.discard(fut)
        if fut.cancelled():
            self._fail(asyncio.CancelledError())
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
