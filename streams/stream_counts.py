"""What the live stream counts, and under which labels (no patient identifiers in any).

Each message by kind and outcome (an input event's arrival, an ignored or dead-lettered input, a
control message), the alerts and dead letters once they are sent for good, the rules' time per
message, and each partition's watermark lag, reorder buffer and timers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from alerts.alert import Alert
from alerts.decoder import IgnoreReason
from alerts.scheduler import FOREVER, NEVER
from streams.consumed import Consumed
from streams.dead_letter import DeadLetterRecord
from streams.metrics import StreamMetrics
from streams.watermark import Arrival, PartitionClock

KIND_OF_IGNORED = {
    IgnoreReason.OTHER_LAB_CODE: "lab_result",
    IgnoreReason.PRELIMINARY: "lab_result",
    IgnoreReason.OTHER_MEDICATION: "medication",
}
_LATE, _DUPLICATE = Arrival.LATE, Arrival.DUPLICATE
# The (kind, outcome) labels of an arrival, by (is a lab result, outcome).
COUNTED_AS = {
    (is_lab, outcome): ("lab_result" if is_lab else "medication", str(outcome))
    for is_lab in (True, False)
    for outcome in Arrival
}


def count_outcome(metrics: StreamMetrics, kind: str, outcome: str, n: int = 1) -> None:
    """Count n messages of one kind and outcome (late and duplicate events have their own)."""
    metrics.event(kind, outcome, n)
    if outcome == _LATE:
        metrics.late.inc(n)
    elif outcome == _DUPLICATE:
        metrics.duplicates.inc(n)


def count_sent(
    metrics: StreamMetrics, alerts: list[tuple[int, Alert]], letters: list[DeadLetterRecord]
) -> None:
    """Count alerts and dead letters that were sent for good."""
    for _, a in alerts:
        metrics.alert(a.rule, a.status, a.severity)
    for letter in letters:
        metrics.dead_letter(letter.reason)


def observe_messages(
    metrics: StreamMetrics,
    clocks: dict[int, PartitionClock],
    ticks: str,
    msgs: Sequence[Consumed],
    wall: float,
    seconds: float,
) -> None:
    """Observe the rules' time per message; show each ticked partition's gauges."""
    metrics.processing_seconds.observe(seconds / len(msgs), len(msgs))
    for msg in msgs:
        if msg.topic == ticks:  # every few seconds per partition is enough
            _gauges(metrics, clocks, msg.partition, wall)


def _gauges(
    metrics: StreamMetrics, clocks: dict[int, PartitionClock], partition: int, wall: float
) -> None:
    clock = clocks.get(partition)
    if clock is not None:
        w = clock.watermark
        if w <= NEVER:  # noqa: SIM108 - each case with its reason
            lag = math.nan  # no event yet: no watermark to lag behind
        else:
            lag = 0.0 if w >= FOREVER else max(0.0, wall - w / 1e6)
        metrics.partition(partition, lag, clock.buffered(), clock.pending_timers())
