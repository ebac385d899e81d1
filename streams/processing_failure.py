"""Setting aside what fails in the live stream, so one bad event never stops a partition.

The engine remembers the event or timer it is working on; when processing fails, that culprit,
if it is a buffered event or a timer of a stored state, is removed from its patient's state
(a buffered event goes to the dead-letter topic with reason `processing_error`), and the
message is taken again without it.
"""

from __future__ import annotations

from typing import Any

import orjson

from alerts.engine import Engine
from alerts.events import Micros
from alerts.state import PatientState, Timer
from streams.consumed import Consumed
from streams.dead_letter import DeadLetterRecord, dead_letter_headers
from streams.state_store import PatientStore

PROCESSING_ERROR = "processing_error"


class TrackedEngine(Engine):
    """The engine, remembering the event or timer it is working on (to set a failure aside)."""

    current: tuple[str, Any] | None = None

    def apply(self, state: PatientState, ev: Any, at: Micros, out: Any, timers: Any) -> None:
        self.current = ("event", ev)
        super().apply(state, ev, at, out, timers)
        self.current = None

    def fire(self, state: PatientState, timer: Timer, at: Micros, out: Any, timers: Any) -> None:
        self.current = ("timer", timer)
        super().fire(state, timer, at, out, timers)
        self.current = None


async def drop_culprit(
    store: PatientStore, msg: Consumed, what: str, item: Any, aside: list[DeadLetterRecord]
) -> bool:
    """Remove a failing buffered event or timer from its patient's stored state.

    A buffered event removed is added to aside as its dead letter. Return False when the
    culprit is in no stored state: the message's own event, which is the one set aside.
    """
    state = store.get(item.patient_id)
    if state is None:
        return False
    if what == "timer":
        if item not in state.timers:
            return False
        state.timers.discard(item)
        store.put(msg.partition, state)
        await store.flush()
        return True
    for i, entry in enumerate(state.pending):
        if entry[3] == item.event_id:
            del state.pending[i]
            store.put(msg.partition, state)
            await store.flush()  # a later failed attempt must not undo this
            headers = dead_letter_headers(
                msg, PROCESSING_ERROR, "a buffered event failed when released"
            )
            headers.append(("buffered", b"true"))
            aside.append(
                DeadLetterRecord(
                    msg.partition,
                    item.patient_id.encode(),
                    orjson.dumps(entry),
                    PROCESSING_ERROR,
                    headers,
                )
            )
            return True
    return False  # the message's own event: it is the one set aside
