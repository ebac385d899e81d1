"""One Kafka partition's event time: stream time, watermark, reorder buffer and timers.

Release rule (RULES.md section 3): an event that arrives when W > a is late, applied at once
with at = max(a, last) and its due timers run. So an event at exactly a = W is not late and may
still arrive: buffered events and timers run only once W > a (W > tau), which keeps such an
event in the total order with the rest of its instant.

How W moves:
- Stream time per input topic: the largest availability seen on that topic's partition.
  While an input topic's partition still has unread messages (the consumer lags behind its
  high watermark), W may not pass that topic's stream time minus the allowed lateness: a
  pre-loaded topic consumed faster than the other must not make the other's events late.
  Once every input is caught up, W = (largest availability seen) - allowed lateness, the
  contract's rule.
- Idle advance (ticks): when every input of the partition is caught up, W moves at wall-clock
  rate from its last event-driven value: W = S - lateness + (now - wall time of the last
  event), and never past now - lateness, since an event arriving now with availability now
  must not be late. Repeats, ignored events and dead letters carry no time the rules read:
  they neither raise S nor restart that clock. A backlog, or a partition never seen, does not
  advance.
- A `final` control message (end of a bounded backfill) sets W = +infinity once the input
  offsets it names are consumed: everything buffered is released and every timer runs, as
  at the end of a replay. Events arriving later on that partition are late.

The buffer lives in each patient's state (`state.pending`); the heap here is only an index,
rebuilt from the states by `restore`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any

from alerts.engine import Engine
from alerts.events import MICROS_PER_HOUR, LabResult, Medication, Micros
from alerts.scheduler import FOREVER, NEVER, AlertSink, EventTimeScheduler
from alerts.state import UNTIMED, PatientState
from streams.state_codec import buffered_available, buffered_id, decode_event, encode_event
from streams.state_store import PatientStore

_MICROS = 1_000_000


class Arrival(StrEnum):
    ACCEPTED = "accepted"  # buffered until the watermark passes it (or released at once)
    LATE = "late"
    DUPLICATE = "duplicate"


_ACCEPTED, _LATE, _DUPLICATE = Arrival.ACCEPTED, Arrival.LATE, Arrival.DUPLICATE

# Events of one patient remembered (within the duplicate horizon) before more are refused:
# some 25 times a heavily monitored patient's week, and about 5 MiB of state.
DEFAULT_MAX_PATIENT_EVENTS = 50_000
# How far ahead of the worker's clock an event's time may be: one stamped by an analyser whose
# clock is set days wrong would carry W with it and make every later event of its partition
# late. A day lets through any local time written as UTC by mistake (offsets reach 14 h).
DEFAULT_MAX_EVENT_LEAD_HOURS = 24.0

Behind = Callable[[str], bool]
"""Whether an input topic (of this partition) still has messages this worker has not read."""


class PartitionClock:
    """Watermark, reorder buffer and timers of one partition, over the patients' states."""

    def __init__(
        self,
        partition: int,
        engine: Engine,
        store: PatientStore,
        sink: AlertSink,
        lateness: Micros,
        inputs: tuple[str, ...],
        max_patient_events: int = DEFAULT_MAX_PATIENT_EVENTS,
    ) -> None:
        self.partition = partition
        self.max_patient_events = max_patient_events
        self.states = store.view(partition)
        self.scheduler = EventTimeScheduler(engine, self.states, sink)
        self.lateness = lateness
        self.inputs = inputs
        self.stream_time: dict[str, Micros] = {}
        self.watermark: Micros = NEVER
        self.arrival_wall: float | None = None  # wall seconds of the last event (not a repeat)
        self.final_offsets: dict[str, int] | None = None
        # Topics the restored clock had a stream time for that are not inputs here.
        self.foreign: tuple[str, ...] = ()
        self._buffer: list[tuple[Micros, str, str]] = []

    # -- persistence ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return the partition's clock as JSON-ready data (kept in the state table)."""
        return {
            "stream_time": self.stream_time,
            "watermark": self.watermark,
            "last": self.scheduler.last,
            "arrival_wall": self.arrival_wall,
            "final_offsets": self.final_offsets,
        }

    def restore(self, clock: Mapping[str, Any] | None, states: Iterable[PatientState]) -> None:
        """Load a snapshot and rebuild the buffer and timer indices from the partition's states."""
        self.foreign = ()
        if clock is not None:
            # A clock saved under another KMG_TOPIC_PREFIX (same KMG_APP_ID) names the old
            # topics: their times would raise W, and the new topics' events behind them would
            # be late. They are dropped, and named in `foreign` for the caller to report.
            saved: Mapping[str, Micros] = clock["stream_time"]
            self.stream_time = {t: a for t, a in saved.items() if t in self.inputs}
            self.foreign = tuple(sorted(t for t in saved if t not in self.inputs))
            if self.foreign and not self.stream_time:
                # Its W and last were those topics' too: the clock starts afresh. A lower W
                # only holds the states' buffered events and timers longer.
                clock = None
        if clock is not None:
            self.watermark = clock["watermark"]
            self.scheduler.last = clock["last"]
            self.arrival_wall = clock["arrival_wall"]
            self.final_offsets = clock["final_offsets"]
        states = list(states)
        self._buffer = [
            (buffered_available(e), s.patient_id, buffered_id(e)) for s in states for e in s.pending
        ]
        heapq.heapify(self._buffer)
        self.scheduler.rebuild_timers(states)

    # -- messages -------------------------------------------------------------------------

    def arrive(
        self, ev: LabResult | Medication, source: str, behind: Behind, wall: float
    ) -> Arrival:
        """Take one decoded event from input topic `source`; release what the new W allows."""
        a = ev.available
        states = self.states
        state = states.get(ev.patient_id)
        if state is None:
            state = PatientState(ev.patient_id)
        held = state.seen.get(ev.event_id)
        if held is not None and not self._takes_over(state, ev, held):
            # A repeat is ignored (RULES.md 1): its time moves neither S nor the idle clock.
            self.advance(behind)
            return _DUPLICATE
        self.arrival_wall = wall
        seen = self.stream_time.get(source)
        if seen is None or a > seen:
            self.stream_time[source] = a
        state.seen[ev.event_id] = a
        states[ev.patient_id] = state
        if a < self.watermark:
            self.scheduler.process(ev)
            self.scheduler.run_timers(self.watermark - 1)
            outcome = _LATE
        else:
            state.pending.append(encode_event(ev))
            heapq.heappush(self._buffer, (a, ev.patient_id, ev.event_id))
            # A copy that took another's place: one of the two was a duplicate.
            outcome = _ACCEPTED if held is None else _DUPLICATE
        self.advance(behind)
        return outcome

    def _takes_over(self, state: PatientState, ev: LabResult | Medication, held: Micros) -> bool:
        """Say whether a copy replaces the one of its id still buffered: it is released first.

        Which copy wins must not depend on the arrival order (RULES.md 3 and 7), as long as
        neither is late: the one earlier in release order, which this one is when its time is
        before the buffered copy's and not before W. The copy it replaces leaves the buffer with
        its index entry.
        """
        a = ev.available
        if not self.watermark <= a < held or _take(state.pending, ev.event_id) is None:
            return False
        try:  # its index entry too, so that the gauge counts what waits (takeovers are rare)
            self._buffer.remove((held, ev.patient_id, ev.event_id))
        except ValueError:
            return True
        heapq.heapify(self._buffer)
        return True

    def overloaded(self, patient_id: str) -> int | None:
        """Return the patient's events in memory if at the limit (their messages are refused).

        A feed that floods one patient (an interface resending results under new ids) would
        grow the state until the changelog refuses it, and the worker would stop at every
        start: the whole partition's patients would go unwatched. Dead-lettered instead, the
        flood stops at the limit, and the patient is taken again once the history ages out.
        """
        state = self.states.get(patient_id)
        if state is None or len(state.seen) < self.max_patient_events:
            return None
        engine = self.scheduler.engine
        # At W: the refused messages move neither S nor the idle clock, so W still moves with
        # the other patients' events, or at wall-clock rate on a partition with no others.
        pruning_at = self.watermark
        if pruning_at - state.pruned_at >= MICROS_PER_HOUR:
            # At most once an hour of event time: a prune reads the whole state.
            state.prune(pruning_at, engine.w, engine.cfg.mg_low)
            self.states[patient_id] = state
            if len(state.seen) < self.max_patient_events:
                return None
        return len(state.seen)

    def ignored(self, patient_id: str, event_id: str) -> bool:
        """Register an ignored event's id (later copies are duplicates); False if seen before.

        An ignored event carries no time the rules read, so, like a dead letter, it does not
        restart the idle clock: a feed of other lab codes must not hold W back.
        """
        state = self.states.get(patient_id)
        if state is None:
            state = PatientState(patient_id)
        if event_id in state.seen:
            return False
        # Before the partition's first event time, the id waits for the first prune to date it
        # (time 0 was pruned at once, and a valid copy was then taken: RULES.md 7 says not).
        now = max(self.stream_time.values(), default=UNTIMED)
        state.seen[event_id] = now
        engine = self.scheduler.engine
        # Pruned at W, not S: timers due between W and S still read their lookbacks.
        pruning_at = min(now, self.watermark)
        if pruning_at - state.pruned_at >= engine.prune_every:
            # A patient who only ever gets ignored events is never pruned by the engine.
            state.prune(pruning_at, engine.w, engine.cfg.mg_low)
        self.states[patient_id] = state
        return True

    # -- time -----------------------------------------------------------------------------

    def event_watermark(self, behind: Behind) -> Micros | None:
        """Return the W the events seen allow, or None while a lagging input was never seen."""
        times = self.stream_time
        lagging = [times.get(t) for t in self.inputs if behind(t)]
        if lagging:
            if None in lagging:
                return None
            return min(lagging) - self.lateness  # type: ignore[type-var, operator]
        if not times:
            return None
        return max(times.values()) - self.lateness

    def advance(self, behind: Behind) -> None:
        """Raise W to what the events seen allow and release what it passes."""
        w = self.event_watermark(behind)
        if w is not None and w > self.watermark:
            self.release(w)

    def idle(self, behind: Behind, wall: float) -> None:
        """On a tick: advance at wall-clock rate since the last message, if caught up."""
        self.advance(behind)
        if self.arrival_wall is None or not self.stream_time:
            return
        if any(behind(t) for t in self.inputs):
            return
        elapsed = round((wall - self.arrival_wall) * _MICROS)
        if elapsed <= 0:
            return
        target = max(self.stream_time.values()) - self.lateness + elapsed
        target = min(target, round(wall * _MICROS) - self.lateness)
        if target > self.watermark:
            self.release(target)

    def finish_after(self, offsets: Mapping[str, int]) -> None:
        """Remember the input offsets after which this partition is drained (`final`)."""
        self.final_offsets = {t: int(o) for t, o in offsets.items()}

    def maybe_finish(self, position: Callable[[str], int]) -> bool:
        """Drain (W = +infinity) once every input offset named by `final` is consumed."""
        offsets = self.final_offsets
        if offsets is None or self.watermark >= FOREVER:
            return False
        if any(position(t) < o for t, o in offsets.items()):
            return False
        self.release(FOREVER)
        return True

    def release(self, w: Micros) -> None:
        """Set W and run, in the total order, every buffered event and timer due before W.

        Strictly before: an event at exactly a = W is not late, so one may still arrive, and
        it must run before the other events of its instant that sort after it.
        """
        self.watermark = w
        buffer, states, process = self._buffer, self.states, self.scheduler.process
        while buffer and buffer[0][0] < w:
            _, pid, eid = heapq.heappop(buffer)
            state = states.get(pid)
            if state is None:
                continue
            entry = _take(state.pending, eid)
            if entry is None:
                continue  # index entry outlived its event (released before a restart)
            states[pid] = state
            process(decode_event(entry))
        self.scheduler.run_timers(w - 1)

    # -- gauges ---------------------------------------------------------------------------

    def buffered(self) -> int:
        """Return the number of indexed buffered events."""
        return len(self._buffer)

    def pending_timers(self) -> int:
        """Return the number of indexed timers."""
        return self.scheduler.pending_timers()


def _take(pending: list[Any], event_id: str) -> list[Any] | None:
    for i, entry in enumerate(pending):
        if entry[3] == event_id:
            return pending.pop(i)
    return None
