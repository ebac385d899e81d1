"""The Kafka transport of the worker: Faust's aiokafka driver, with the input read in batches.

Faust turns every fetched record into a message, an event and a stream step, and delivers it
through `wait_first`, which creates four tasks and an `asyncio.wait` per message. On this
service's input that costs more than the rules engine. So each fetch of the input topics is
handed whole to one batch handler (the stream's agent body, concurrency 1), and the records'
offsets are acknowledged in Faust's own bookkeeping once it returns: Faust still owns the
group, the assignment, table recovery (which pauses the partitions it restores) and the
commits. Records of every other topic (the table's changelog during recovery) take Faust's
own path. A batch being handled holds a rebalance back in `wait_empty`, as an unacknowledged
message does in Faust.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import faust
from aiokafka.errors import IllegalStateError
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, TransportT

from streams.changelog import LocalStoreError
from streams.consumed import Consumed
from streams.outbox import Acknowledged

log = logging.getLogger("kmg.transport")

_FIRST_ASK_SECONDS = 0.5
_LAST_ASK_SECONDS = 5.0
# aiokafka's member id before a join, and after the group refused the worker's.
_NO_MEMBER_ID = ""


async def _ask_group(coordinator: Any) -> bool | None:
    """Heartbeat once: True a member, False no longer one, None no answer (run in its loop)."""
    if coordinator.member_id == _NO_MEMBER_ID:
        return False  # the group already refused this member (the heartbeat task saw it)
    await coordinator.ensure_coordinator_known()
    if await coordinator._do_heartbeat():
        return True
    # A refused member id or generation resets the member id; any other failure (the
    # coordinator moving, a request timing out) says nothing about membership.
    return False if coordinator.member_id == _NO_MEMBER_ID else None


async def _seek_to_start(consumer: Any, uncommitted: Mapping[Any, int | None], reset: str) -> None:
    """Seek partitions aiokafka left where the fetch was: to 0, or by the reset policy."""
    for tp, offset in uncommitted.items():
        if offset == 0:
            consumer.seek(tp, 0)
    fresh = [tp for tp, offset in uncommitted.items() if offset is None or offset < 0]
    if fresh:
        await (consumer.seek_to_end if reset == "latest" else consumer.seek_to_beginning)(*fresh)


class BatchHandler(Protocol):
    """The agent body: handle one fetch of input records, in partition order."""

    async def __call__(self, msgs: Sequence[Consumed]) -> Acknowledged | None:
        """Handle the records; return what completes once their offsets may be committed."""
        ...


class BatchConsumer(driver.Consumer):
    """Faust's aiokafka consumer that hands each fetch of the input topics to a batch handler."""

    _idle: asyncio.Event | None = None
    # A commit or heartbeat the group accepted this recently proves the worker still a member;
    # the app sets it to half the session timeout. Monotonic time of the last such proof.
    member_for_seconds = 30.0
    _confirmed_at = -math.inf
    _unacknowledged: set[asyncio.Future[Any]] | None = None
    _pending: deque[tuple[asyncio.Future[Any], dict[TP, list[int]]]] | None = None

    @property
    def unacknowledged(self) -> set[asyncio.Future[Any]]:
        """Return the handled batches whose outputs the broker has not acknowledged yet."""
        if self._unacknowledged is None:
            self._unacknowledged = set()
        return self._unacknowledged

    @property
    def _in_order(self) -> deque[tuple[asyncio.Future[Any], dict[TP, list[int]]]]:
        if self._pending is None:
            self._pending = deque()
        return self._pending

    @property
    def idle(self) -> asyncio.Event:
        """Return the event that is set while no batch is being handled."""
        if self._idle is None:
            self._idle = asyncio.Event()
            self._idle.set()
        return self._idle

    async def wait_empty(self) -> None:
        """Wait for the batch being handled and its acknowledgement, then for Faust's own."""
        while not self.idle.is_set() and not self.should_stop:
            try:
                await asyncio.wait_for(self.idle.wait(), timeout=1.0)
            except TimeoutError:
                self.log.info("wait_empty: waiting for the batch being handled")
        if self.unacknowledged:
            await asyncio.wait(list(self.unacknowledged))
        await super().wait_empty()

    def acknowledge(self, offsets: dict[TP, list[int]]) -> None:
        """Mark handled offsets as acknowledged, as Faust's `ack` does one message at a time."""
        committed_offsets = self._committed_offset
        for tp, handled in offsets.items():
            committed = committed_offsets[tp]
            if committed is not None:
                handled = [o for o in handled if o >= committed]
            index = self._acked_index[tp]
            fresh = [o for o in handled if o not in index]
            index.update(fresh)
            self._acked[tp].extend(fresh)
            self._n_acked += len(fresh)

    def split(
        self, records: Mapping[TP, list[Any]], active: set[TP] | None, batch_topics: frozenset[str]
    ) -> tuple[list[Consumed], dict[TP, list[int]], list[tuple[TP, Any]]]:
        """Split a fetch into input records (with their offsets) and other topics' records.

        Input records stay grouped by topic partition, each in offset order: partitions are
        independent (each has its own clock), so no interleaving is needed between them.
        """
        msgs: list[Consumed] = []
        offsets: dict[TP, list[int]] = {}
        others: list[tuple[TP, Any]] = []
        read_offset = self._read_offset
        buffered = self._buffered_partitions
        for tp, batch in records.items():
            if not batch or (active is not None and tp not in active and tp not in buffered):
                continue  # paused or revoked since the fetch
            last = read_offset[tp]
            if last is not None and batch[0].offset < last:
                batch = [r for r in batch if r.offset >= last]  # handled before a seek
                if not batch:
                    continue
            read_offset[tp] = batch[-1].offset
            if tp.topic in batch_topics:
                msgs.extend(batch)
                offsets[tp] = [r.offset for r in batch]
            else:
                others.extend((tp, r) for r in batch)
        return msgs, offsets, others

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        """Commit, unless a changelog write failed since the last commit: then crash."""
        app: SentinelApp = self.app  # type: ignore[assignment]
        failure = await app.changelog_settle()  # every table write so far acknowledged, or not
        if failure is not None:
            # The inputs whose states did not reach the changelog must be taken again.
            await self.crash(failure)
            return False
        asked = time.monotonic()  # before the request: a pause after the answer proves nothing
        committed = await super()._commit_offsets(offsets, start_new_transaction)
        if committed:
            self._confirmed_at = asked  # the group checks a commit's generation
        return committed

    async def confirm_membership(self) -> bool:
        """Say whether the group still counts this worker a member, asking it if not lately.

        A worker frozen past its session timeout (a long pause, a partition from the group's
        coordinator) comes back still holding its partitions as it sees them, while another
        worker owns them: the states it would then write are older than the new owner's, and
        a rebuild from the changelog would take them for the latest.
        """
        if time.monotonic() - self._confirmed_at < self.member_for_seconds:
            return True
        thread: Any = self._thread
        wait = _FIRST_ASK_SECONDS
        while True:
            asked = time.monotonic()
            try:
                coordinator = thread._ensure_consumer()._coordinator
                member = await thread.call_thread(_ask_group, coordinator)
            except Exception as exc:  # noqa: BLE001 - no answer: ask again
                log.warning("could not ask the group whether the worker is a member (%r)", exc)
                member = None
            if member is not None:
                if member:
                    since = asked - self._confirmed_at
                    log.info(
                        "the group counts this worker a member (asked %s)",
                        f"after {since:.0f} s without a commit" if since < math.inf else "first",
                    )
                    self._confirmed_at = asked
                return member
            if self.should_stop:
                return False  # unproven at a stop: the writes wait for the next start's rebuild
            # The coordinator moves or restarts (a broker restart): the worker may well still
            # be a member, and the group says so once it answers again.
            await asyncio.sleep(wait)
            wait = min(wait * 2, _LAST_ASK_SECONDS)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - broker-driven
        """Fetch records; hand input batches to the handler, other records to the conductor."""
        app: SentinelApp = self.app  # type: ignore[assignment]
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                generation = app.consumer_generation_id
                records, active = await self._wait_next_records(1.0)
                # _wait_next_records may return at once many times in a row: let others run.
                await asyncio.sleep(0)
                if self.should_stop:
                    break
                if not records:
                    continue
                if not self.flow_active or app.consumer_generation_id != generation:
                    await self.read_again_from_commits()  # a rebalance began
                    continue
                await self._gaps(records)
                msgs, offsets, others = self.split(records, active, app.batch_topics)
                if msgs:
                    await self._handle(app.batch_handler, msgs, offsets)
                await self._deliver(others)
                # No commit here: it would hold the next fetch until the changelog writes it
                # covers are acknowledged. Faust's commit timer commits beside this loop.
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)
            self.idle.set()

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its commit; an input partition with none, too."""
        app: SentinelApp = self.app  # type: ignore[assignment]
        committed: Mapping[Any, int | None] = await super().seek_to_committed()
        # aiokafka seeks only to a commit above 0: a partition with no commit (a new
        # deployment's) or a commit of 0 stays where the fetch left it, past records that were
        # fetched, then dropped because a rebalance or the recovery began. Those would be lost.
        uncommitted = {
            tp: offset
            for tp, offset in committed.items()
            if tp.topic in app.batch_topics and not (offset and offset > 0)
        }
        if uncommitted:
            thread: Any = self._thread
            await thread.call_thread(
                _seek_to_start,
                thread._ensure_consumer(),
                uncommitted,
                app.conf.consumer_auto_offset_reset,
            )
        return committed  # type: ignore[return-value]

    async def read_again_from_commits(self) -> None:
        """Seek every assigned partition to its committed offset; tolerate a revoked one."""
        try:
            await self.perform_seek()
        except IllegalStateError as exc:
            # The assignment changed between reading the commits and seeking (a rebalance in
            # progress): the fetched records are dropped all the same, and recovery seeks the
            # new assignment to its commits before the flow resumes, as in Faust's own fetch.
            log.info("seek skipped while the assignment changes (%s)", exc)

    async def _handle(
        self, handler: BatchHandler, msgs: Sequence[Consumed], offsets: dict[TP, list[int]]
    ) -> None:
        self.idle.clear()
        task = asyncio.ensure_future(handler(msgs))
        try:
            try:
                sent = await asyncio.shield(task)
            except asyncio.CancelledError:
                # A stop while a batch is half done: what it published must also be written
                # and acknowledged, or a restart would publish its alerts a second time.
                sent = await task
                if sent is not None:
                    await sent
                self.acknowledge(offsets)
                raise
            if sent is None and not self._in_order:
                self.acknowledge(offsets)
            else:
                # Even a batch with nothing to send waits behind earlier batches whose outputs
                # (a dead letter, say) the broker has not acknowledged yet.
                self._acknowledge_once_sent(sent if sent is not None else _nothing(), offsets)
        except LocalStoreError as exc:
            # Unacknowledged, never committed (a stop's included): the next start rebuilds the
            # table from the changelog (the running marker stays) and takes the batch again.
            # Raised on, it ends the fetch loop too: no later batch is taken meanwhile.
            await self.crash(exc)
            raise
        finally:
            self.idle.set()

    def _acknowledge_once_sent(self, sent: Acknowledged, offsets: dict[TP, list[int]]) -> None:
        # The next batch is taken meanwhile. Offsets are acknowledged strictly in batch order
        # (Faust commits up to the first run of consecutive acknowledged offsets, whatever
        # lies before it), so no commit ever covers a batch whose outputs are unacknowledged.
        fut = asyncio.ensure_future(sent)
        self.unacknowledged.add(fut)
        self._in_order.append((fut, offsets))
        fut.add_done_callback(self._acknowledge_in_order)

    def _acknowledge_in_order(self, _: asyncio.Future[Any]) -> None:
        queue = self._in_order
        while queue and queue[0][0].done():
            fut, offsets = queue.popleft()
            self.unacknowledged.discard(fut)
            exc = None if fut.cancelled() else fut.exception()
            if fut.cancelled() or exc is not None:
                # Outputs the broker refused: never commit past them. A restart takes them
                # again from the last commit (the changelog holds nothing past them either).
                reason = exc if exc is not None else asyncio.CancelledError()
                self.log.error("a batch's alerts were not acknowledged (%r)", reason)
                queue.clear()
                asyncio.ensure_future(self.crash(reason))
                return
            self.acknowledge(offsets)

    async def _gaps(self, records: Mapping[TP, list[Any]]) -> None:
        # Offsets skipped by the broker (compaction, transaction markers) still count as read.
        acks_enabled_for = self.app.topics.acks_enabled_for
        for tp, batch in records.items():
            last = self._read_offset[tp]
            if not batch or not acks_enabled_for(tp.topic):
                continue
            first = batch[0].offset
            if batch[-1].offset - first == len(batch) - 1 and not (last and first - last > 1):
                continue  # consecutive offsets, following the last one read: no gap
            for record in batch:
                offset = record.offset
                if last and offset - last > 1:
                    await self._add_gap(tp, last + 1, offset)
                last = offset

    async def _deliver(self, others: Iterable[tuple[TP, Any]]) -> None:
        callback, to_message = self.callback, self._to_message
        for tp, record in others:
            message = to_message(tp, record)
            if self.suspend_flow.is_set():
                await self.wait_first(callback(message), self.suspend_flow.wait())
            else:
                await callback(message)


class BatchTransport(driver.Transport):
    """The aiokafka transport with the batch consumer."""

    Consumer = BatchConsumer


async def _settled() -> BaseException | None:
    return None


async def _no_handler(msgs: Sequence[Consumed]) -> Acknowledged | None:
    raise RuntimeError("input records arrived before a batch handler was set")


class SentinelApp(faust.App):
    """The Faust app, reading its input topics in batches through the batch transport."""

    batch_topics: frozenset[str] = frozenset()
    batch_handler: BatchHandler = staticmethod(_no_handler)
    changelog_settle: Callable[[], Awaitable[BaseException | None]] = staticmethod(_settled)

    def consume_in_batches(self, topics: Iterable[str], handler: BatchHandler) -> None:
        """Hand every fetch of these (subscribed) topics to the handler."""
        self.batch_topics = frozenset(topics)
        self.batch_handler = handler

    def _new_transport(self) -> TransportT:
        return BatchTransport(self.conf.broker_consumer, self)


async def _nothing() -> None:
    """Stand for the outputs of a batch that sent none."""
