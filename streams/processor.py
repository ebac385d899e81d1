"""Process Kafka messages of the live stream: decode, buffer, release, emit, write state.

This is the body of the Faust agent, kept free of Faust so it can be driven directly in tests.
Per batch of messages, in this order: everything in memory is changed first; then the alerts
and dead letters are sent; then the changed states are written to the local table and queued
for the changelog behind the acknowledgement of those outputs, which the batch returns (its
offsets are acknowledged once it completes), so a state never runs ahead of the alerts it
emitted, and the next batch need not wait for the broker.
An exception while processing leaves no trace: unflushed changes are dropped, the indices are
rebuilt from the table, and the batch is taken again one message at a time, where the message
(or the buffered event or timer) that fails is set aside with reason `processing_error`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

import orjson

from alerts.alert import Alert
from alerts.codes import CodeSets
from alerts.decoder import DeadLetter, Decoder, Ignored
from alerts.events import LabResult, Medication
from alerts.rule_config import RuleConfig, Windows
from alerts.scheduler import AlertSink
from streams.admission import Admission, Refusal
from streams.consumed import Backlog, Consumed, PartitionScope
from streams.dead_letter import DeadLetterRecord, dead_letter_headers
from streams.metrics import StreamMetrics
from streams.outbox import Acknowledged, Outbox
from streams.processing_failure import PROCESSING_ERROR, TrackedEngine, drop_culprit
from streams.state_store import PatientStore
from streams.stream_counts import (
    COUNTED_AS,
    KIND_OF_IGNORED,
    count_outcome,
    count_sent,
    observe_messages,
)
from streams.watermark import (
    DEFAULT_MAX_EVENT_LEAD_HOURS,
    DEFAULT_MAX_PATIENT_EVENTS,
    Behind,
    PartitionClock,
)

log = logging.getLogger("kmg.stream")

TICK = b'{"control":"tick"}'
_ATTEMPTS = 3
_CLOCK_WRITE_SECONDS = 1.0
_NEVER = float("-inf")


class StreamProcessor:
    """The live stream's per-message logic over a state table, shared by every partition."""

    def __init__(
        self,
        cfg: RuleConfig,
        store: PatientStore,
        outbox: Outbox,
        backlog: Backlog,
        metrics: StreamMetrics,
        *,
        inputs: tuple[str, ...],
        ticks: str,
        idle_advance: bool = True,
        max_patient_events: int = DEFAULT_MAX_PATIENT_EVENTS,
        max_event_lead_hours: float = DEFAULT_MAX_EVENT_LEAD_HOURS,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """Build the processor; `max_event_lead_hours` 0 accepts events of any time ahead."""
        codes = CodeSets(cfg)
        self.decode = Decoder(cfg, codes).decode
        self.engine = TrackedEngine(cfg, codes)
        self.lateness = Windows(cfg).allowed_lateness
        self.store = store
        self.outbox = outbox
        self.backlog = backlog
        self.metrics = metrics
        self.inputs = inputs
        self.ticks = ticks
        self.idle_advance = idle_advance
        self.admission = Admission(max_event_lead_hours, max_patient_events)
        self.wall = wall
        self.clocks: dict[int, PartitionClock] = {}
        self._stale = True
        self._next_offset: dict[tuple[str, int], int] = {}
        self._behinds: dict[int, Behind] = {}
        self._clock_written: dict[int, float] = {}
        self._out: list[tuple[int, Alert]] = []
        self._letters: list[DeadLetterRecord] = []
        # buffered events set aside while handling this message
        self._aside: list[DeadLetterRecord] = []
        self._emitted: tuple[list[tuple[int, Alert]], list[DeadLetterRecord]] = ([], [])

    def on_rebalance(self) -> None:
        """Forget what is in memory: after a rebalance the table is the only truth.

        Unflushed writes go too: a batch whose outputs could not be sent is taken again, and
        it must not read its own half-applied states (it would find its events duplicates and
        its alerts already fired, and send nothing).
        """
        self._stale = True
        self._next_offset.clear()
        self.store.discard()
        try:
            held = self.backlog.assigned()
        except Exception:  # noqa: BLE001 - no consumer yet: the next message tells
            return
        # A worker left with no partition gets no message that would drop its gauges.
        self.metrics.keep_partitions(held)

    # -- messages -------------------------------------------------------------------------

    async def handle_batch(
        self, msgs: Sequence[Consumed], scope: PartitionScope
    ) -> Acknowledged | None:
        """Process consumed messages in order; write each changed state once at the end.

        The batch's outputs are sent, and its states written locally and queued for the
        changelog behind their acknowledgement, which is returned: the batch's offsets may be
        acknowledged once it completes, and the next batch need not wait for it. If processing
        fails, the batch is undone and taken again one message at a time, which names and sets
        aside the failing message or buffered event.
        """
        if not msgs:
            return None
        started = time.perf_counter()
        wall = self.wall()
        self.backlog.refresh()
        counted: list[tuple[str, str]] = []
        self._out, self._letters, self._aside = [], [], []
        positions = dict(self._next_offset)  # the retry must see the backlog as it was
        scoped = -1
        try:
            for msg in msgs:
                if msg.partition != scoped:  # table reads, too, look in the event's partition
                    scope(msg.partition)
                    scoped = msg.partition
                self._next_offset[msg.topic, msg.partition] = msg.offset + 1
                counted.append(self._process(msg, wall))
            if self.idle_advance:
                self._idle_after(msgs, scope)
        except Exception:  # noqa: BLE001 - retried below, message by message
            log.debug("batch failed; taking it one message at a time", exc_info=True)
            self.store.discard()
            self._stale = True
            self._out, self._letters = [], []
            self._next_offset = positions
            for msg in msgs:
                scope(msg.partition)
                await self.handle(msg)
            return None
        sent = await self._emit()
        await self.store.flush(scope, after=sent)
        # Counted once written: a batch that fails before this is taken again, counted then.
        self._count_emitted()
        for (kind, outcome), n in Counter(counted).items():
            count_outcome(self.metrics, kind, outcome, n)
        observe_messages(
            self.metrics, self.clocks, self.ticks, msgs, wall, time.perf_counter() - started
        )
        return sent

    async def handle(self, msg: Consumed) -> None:
        """Process one message; never raises on bad input or an engine failure."""
        started = time.perf_counter()
        wall = self.wall()
        self._next_offset[msg.topic, msg.partition] = msg.offset + 1
        counted: tuple[str, str] | None = None
        self._aside = []
        for attempt in range(_ATTEMPTS):
            self._out, self._letters = [], []
            try:
                counted = self._process(msg, wall)
                break
            except Exception as exc:  # noqa: BLE001 - the stream must not stop on one message
                if not await self._set_aside(msg, exc, attempt):
                    counted = ("unknown", "processing_error")
                    break
        sent = await self._emit()
        if sent is not None:
            await sent  # one message at a time: its outputs before its state
        await self.store.flush()
        # Counted once written: a message that fails before this is taken again, counted then.
        self._count_emitted()
        if counted is not None:
            count_outcome(self.metrics, *counted)
        observe_messages(
            self.metrics, self.clocks, self.ticks, [msg], wall, time.perf_counter() - started
        )

    def _idle_after(self, msgs: Sequence[Consumed], scope: PartitionScope) -> None:
        """Let the batch's caught-up partitions' W move on at wall-clock rate (section 3).

        W advances at wall-clock rate while a partition receives nothing; ticks apply that
        every few seconds on a quiet partition. Applied at the end of each batch too, a timer
        due at the time of the batch's last message runs now, not a batch later.
        """
        now = self.wall()
        for p in {m.partition for m in msgs if m.topic != self.ticks}:
            scope(p)
            self.clocks[p].idle(self._behind(p), now)

    def _process(self, msg: Consumed, wall: float) -> tuple[str, str]:
        self.engine.current = None
        p = msg.partition
        clock = self._clock(p)
        force_write = False
        if msg.topic == self.ticks:
            counted = self._control(clock, msg, wall)
            force_write = counted[1] == "final"
        else:
            counted = self._input(clock, msg, wall)
        final = clock.final_offsets
        # Only a control message, or a message at or past its topic's final offset, can be
        # the one that completes the drain: the others leave their own topic short of it.
        if (
            final is not None
            and (msg.topic == self.ticks or msg.offset + 1 >= final.get(msg.topic, 0))
            and clock.maybe_finish(
                lambda t: self.backlog.position(t, p, self._next_offset.get((t, p)))
            )
        ):
            log.info("partition %d drained by a final control message", p)
            force_write = True
        if force_write or wall - self._clock_written.get(p, _NEVER) >= _CLOCK_WRITE_SECONDS:
            # A clock restored older than the states is safe: a lower W only holds events longer.
            self.store.put_clock(p, clock.snapshot())
            self._clock_written[p] = wall
        return counted

    def _behind(self, p: int) -> Behind:
        behind = self._behinds.get(p)
        if behind is None:
            backlog = self.backlog
            # _next_offset is read at each call: a failed batch puts back an older one.
            behind = self._behinds[p] = lambda t: backlog.behind(
                t, p, self._next_offset.get((t, p))
            )
        return behind

    def _input(self, clock: PartitionClock, msg: Consumed, wall: float) -> tuple[str, str]:
        ev = self.decode(msg.value if msg.value is not None else b"")
        kind = type(ev)
        if kind is DeadLetter:
            dead: DeadLetter = ev  # type: ignore[assignment]
            headers = dead_letter_headers(msg, dead.reason, dead.detail)
            self._letters.append(
                DeadLetterRecord(msg.partition, msg.key, dead.raw, dead.reason, headers)
            )
            return ("unknown", "dead_letter")
        refusal = self.admission.refusal(msg.key, msg.partition, ev, clock, wall)  # type: ignore[arg-type]
        if refusal is not None:
            return self._refuse(msg, refusal)
        if kind is Ignored:
            ign: Ignored = ev  # type: ignore[assignment]
            label = KIND_OF_IGNORED[ign.why]
            fresh = clock.ignored(ign.patient_id, ign.event_id)
            return (label, "ignored" if fresh else "duplicate")
        event: LabResult | Medication = ev  # type: ignore[assignment]
        outcome = clock.arrive(event, msg.topic, self._behind(msg.partition), wall)
        return COUNTED_AS[kind is LabResult, outcome]

    def _control(self, clock: PartitionClock, msg: Consumed, wall: float) -> tuple[str, str]:
        try:
            data = orjson.loads(msg.value or b"")
            control = data["control"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return self._bad_control(msg, "not a JSON object with a control field")
        behind = self._behind(msg.partition)
        if control == "tick":
            if self.idle_advance:
                clock.idle(behind, wall)
            else:
                clock.advance(behind)
            return ("control", "tick")
        if control == "final":
            offsets = data.get("offsets")
            if not isinstance(offsets, dict) or not all(
                isinstance(v, int) for v in offsets.values()
            ):
                return self._bad_control(msg, "final without integer offsets")
            clock.finish_after({t: o for t, o in offsets.items() if t in self.inputs})
            return ("control", "final")
        return self._bad_control(msg, "unknown control")

    def _refuse(self, msg: Consumed, refusal: Refusal) -> tuple[str, str]:
        """Dead-letter a message the worker will not take, with its original bytes."""
        headers = dead_letter_headers(msg, refusal.reason, refusal.detail)
        value = msg.value if msg.value is not None else b""
        self._letters.append(
            DeadLetterRecord(msg.partition, msg.key, value, refusal.reason, headers)
        )
        return ("unknown", "dead_letter")

    def _bad_control(self, msg: Consumed, detail: str) -> tuple[str, str]:
        """Dead-letter a control message the worker cannot read (its text is never logged)."""
        log.warning("dead-lettering a control message (%s) at offset %d", detail, msg.offset)
        self._refuse(msg, Refusal("bad_control", detail))
        return ("control", "invalid")

    # -- partitions -----------------------------------------------------------------------

    def _clock(self, partition: int) -> PartitionClock:
        if self._stale:
            self._stale = False
            self.clocks.clear()
            self._clock_written.clear()
            self.store.forget_cache()
            held = self.backlog.assigned() | {partition}
            self._rebuild(held)
            self.metrics.keep_partitions(held)
        clock = self.clocks.get(partition)
        if clock is None:
            self._rebuild({partition})
            clock = self.clocks[partition]
        return clock

    def _rebuild(self, partitions: set[int]) -> None:
        states, clocks = self.store.scan(partitions)
        for p in partitions:
            clock = PartitionClock(
                p,
                self.engine,
                self.store,
                self._sink_for(p),
                self.lateness,
                self.inputs,
                self.admission.max_patient_events,
            )
            clock.restore(clocks.get(p), states[p])
            self.clocks[p] = clock
        foreign = {p: self.clocks[p].foreign for p in partitions if self.clocks[p].foreign}
        if foreign:
            log.warning(
                "partitions %s: their saved clocks hold stream times of topics that are not "
                "this worker's inputs (%s): ignored, and a clock of those topics alone starts "
                "afresh (was KMG_TOPIC_PREFIX changed under the same KMG_APP_ID?)",
                sorted(foreign),
                ", ".join(sorted({t for names in foreign.values() for t in names})),
            )
        log.info(
            "rebuilt partitions %s: %d buffered events, %d timers",
            sorted(partitions),
            sum(self.clocks[p].buffered() for p in partitions),
            sum(self.clocks[p].pending_timers() for p in partitions),
        )

    def _sink_for(self, partition: int) -> AlertSink:
        def sink(alerts: list[Alert]) -> None:
            self._out.extend((partition, a) for a in alerts)

        return sink

    # -- outputs --------------------------------------------------------------------------

    async def _emit(self) -> Acknowledged | None:
        """Send the alerts and dead letters; return their acknowledgement, if any was sent."""
        alerts, letters = self._out, self._aside + self._letters
        self._out, self._letters, self._aside = [], [], []
        pending: list[Acknowledged] = []
        if alerts:
            records = [(p, a.patient_id.encode(), orjson.dumps(a.to_wire())) for p, a in alerts]
            pending.append(await self.outbox.publish_alerts(records))
        for letter in letters:
            pending.append(
                await self.outbox.dead_letter(
                    letter.partition, letter.key, letter.value, letter.headers
                )
            )
        self._emitted = (alerts, letters)  # counted by the caller once they are sent
        return asyncio.gather(*pending) if pending else None

    def _count_emitted(self) -> None:
        """Count the alerts and dead letters of the last _emit, once they are sent for good."""
        alerts, letters = self._emitted
        self._emitted = ([], [])
        count_sent(self.metrics, alerts, letters)

    # -- failures -------------------------------------------------------------------------

    async def _set_aside(self, msg: Consumed, exc: Exception, attempt: int) -> bool:
        """Undo the failed attempt; return True to retry the message without the culprit."""
        culprit = self.engine.current
        self.store.discard()
        self._stale = True
        self._out, self._letters = [], []
        self.metrics.processing_errors.inc()
        log.error(
            "processing failed (%s) on %s[%d] offset %d",
            type(exc).__name__,
            msg.topic,
            msg.partition,
            msg.offset,
        )
        log.debug("processing failure detail", exc_info=True)
        if (
            culprit is not None
            and attempt < _ATTEMPTS - 1
            and await drop_culprit(self.store, msg, *culprit, self._aside)
        ):
            return True
        if msg.topic != self.ticks:
            value = msg.value if msg.value is not None else b""
            detail = f"{type(exc).__name__} while processing"
            headers = dead_letter_headers(msg, PROCESSING_ERROR, detail)
            self._letters = [
                DeadLetterRecord(msg.partition, msg.key, value, PROCESSING_ERROR, headers)
            ]
        return False
