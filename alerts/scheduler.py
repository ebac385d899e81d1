"""Release events and timers to the engine in the total order of RULES.md section 3."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, MutableMapping
from typing import Protocol

from alerts.alert import Alert
from alerts.engine import Engine
from alerts.events import LabResult, Medication, Micros
from alerts.state import PatientState, Timer

NEVER: Micros = -(2**62)
FOREVER: Micros = 2**62


class AlertSink(Protocol):
    """Where emitted alerts go (an NDJSON file, a Kafka topic, an audit)."""

    def __call__(self, alerts: list[Alert]) -> None: ...


class EventTimeScheduler:
    """Own the order of processing: events by (a, patient_id, event_id), timers by due time.

    A timer due at tau runs after every event with a <= tau and before any event with a > tau.
    The timer heap is an index only: each patient's state holds its pending timers, so the heap
    can be rebuilt from the states after a restart or a rebalance.
    """

    def __init__(
        self,
        engine: Engine,
        states: MutableMapping[str, PatientState],
        sink: AlertSink,
    ) -> None:
        self.engine = engine
        self.states = states
        self.sink = sink
        self._heap: list[Timer] = []
        self.last: Micros = NEVER  # time of the last thing processed
        self.late = 0
        self._timers: list[Timer] = []  # reused: most events schedule nothing
        self._out: list[Alert] = []  # reused until an alert is emitted

    def state_of(self, patient_id: str) -> PatientState:
        """Return the patient's state, created empty on first sight."""
        state = self.states.get(patient_id)
        if state is None:
            state = PatientState(patient_id)
            self.states[patient_id] = state
        return state

    def rebuild_timers(self, states: Iterable[PatientState]) -> None:
        """Re-index the pending timers of the given states."""
        self._heap = [t for s in states for t in s.timers]
        heapq.heapify(self._heap)

    def process(self, ev: LabResult | Medication) -> None:
        """Release one event in order: first every timer due strictly before it."""
        a = ev[0]  # available
        heap = self._heap
        if heap and heap[0][0] < a:
            self.run_timers(a - 1)
        last = self.last
        if a < last:
            self.late += 1
            at = last
        else:
            at = self.last = a
        pid = ev[1]
        states = self.states
        state = states.get(pid)
        if state is None:
            state = PatientState(pid)
        out = self._out
        timers = self._timers
        self.engine.apply(state, ev, at, out, timers)
        if timers:
            for t in timers:
                heapq.heappush(heap, t)
            timers.clear()
        states[pid] = state  # a write, so a changelog-backed store records it
        if out:
            self._out = []  # the sink may keep the list it is given
            self.sink(out)

    def run_timers(self, until: Micros) -> None:
        """Run every timer due at or before `until`, in (tau, patient, trigger, rule) order."""
        heap = self._heap
        states = self.states
        fire = self.engine.fire
        timers = self._timers
        while heap and heap[0][0] <= until:
            timer = heapq.heappop(heap)
            state = states.get(timer.patient_id)
            if state is None or timer not in state.timers:
                continue  # withdrawn or moved since it was indexed
            at = timer.tau if timer.tau >= self.last else self.last
            self.last = at
            out = self._out
            fire(state, timer, at, out, timers)
            if timers:
                for t in timers:
                    heapq.heappush(heap, t)
                timers.clear()
            states[timer.patient_id] = state
            if out:
                self._out = []
                self.sink(out)

    def pending_timers(self) -> int:
        """Return the number of indexed timers (stale entries included)."""
        return len(self._heap)
