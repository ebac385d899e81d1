"""The worker's Prometheus metrics, as one bundle over an injected CollectorRegistry."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from alerts.alert import AlertStatus, Rule, Severity

# What each kind of message can end in: an input event is buffered (accepted), applied late, a
# duplicate or ignored; an input that is no valid event (kind unknown) is dead-lettered or set
# aside as a processing error; a control message is a tick, the end of a backfill, or invalid.
EVENT_OUTCOMES = (
    *[(kind, o) for kind in ("lab_result", "medication")
      for o in ("accepted", "late", "duplicate", "ignored")],
    ("unknown", "dead_letter"),
    ("unknown", "processing_error"),
    ("control", "tick"),
    ("control", "final"),
    ("control", "invalid"),
)  # fmt: skip
# The reason of a dead letter up to its ':' (RULES.md section 7), so labels stay a small set.
REASON_CLASSES = (
    "bad_json",
    "not_an_object",
    "unknown_kind",
    "missing_field",
    "bad_type",
    "bad_status",
    "bad_action",
    "missing_code_and_name",
    "bad_timestamp",
    "timestamp_without_offset",
    "resulted_before_collected",
    "non_finite_value",
    "bad_unit",
    "implausible_value",
    "too_large",
    "bad_control",
    "key_mismatch",
    "patient_overloaded",
    "ahead_of_clock",
    "processing_error",
    "other",
)
_REASON_CLASS_SET = frozenset(REASON_CLASSES)
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


def reason_class(reason: str) -> str:
    """Return the label value of a dead-letter reason: its prefix before ':', from a fixed set."""
    head = reason.split(":", 1)[0]
    return head if head in _REASON_CLASS_SET else "other"


class BatchHistogram(Collector):
    """A histogram that takes many equal observations in one call (a batch's per-message time).

    prometheus_client's Histogram takes one observation per call, under a lock; the agent
    observes every message of a batch with the same value, thousands at a time.
    """

    def __init__(
        self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float, count: int = 1) -> None:
        """Record `count` observations of `value`."""
        self.counts[bisect_left(self.bounds, value)] += count
        self.sum += value * count

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """Yield the histogram with cumulative buckets, as Prometheus reads it."""
        cumulative, buckets = 0, []
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            cumulative += n
            buckets.append((bound, float(cumulative)))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=self.sum
        )


class StreamMetrics:
    """Counters, histogram and gauges of one worker; label children resolved once."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        events = Counter(
            "kmg_events_total",
            "Input and control messages by kind and outcome",
            ["kind", "outcome"],
            registry=registry,
        )
        # Only the pairs a message can end in are exported (at 0 until counted).
        self._events = {pair: events.labels(*pair) for pair in EVENT_OUTCOMES}
        dead = Counter(
            "kmg_dead_letters_total",
            "Messages sent to the dead-letter topic, by reason class",
            ["reason_class"],
            registry=registry,
        )
        self._dead = {c: dead.labels(c) for c in REASON_CLASSES}
        alerts = Counter(
            "kmg_alerts_total",
            "Alert events published, by rule, status and severity",
            ["rule", "status", "severity"],
            registry=registry,
        )
        self._alerts = {
            (str(r), str(st), str(sv)): alerts.labels(r, st, sv)
            for r in Rule
            for st in AlertStatus
            for sv in Severity
        }
        self.late = Counter(
            "kmg_late_events_total", "Events that arrived behind the watermark", registry=registry
        )
        self.duplicates = Counter(
            "kmg_duplicates_total", "Events ignored as repeats of an event_id", registry=registry
        )
        self.processing_errors = Counter(
            "kmg_processing_errors_total",
            "Exceptions raised while processing a message, an event or a timer",
            registry=registry,
        )
        self.batch_retries = Counter(
            "kmg_batch_retries_total",
            "Batches taken again because their alerts or states could not be written",
            registry=registry,
        )
        self.processing_seconds = BatchHistogram(
            "kmg_event_processing_seconds",
            "Time to process one message through the rules, until its alerts, dead letters and "
            "state are handed to the producer (the broker's acknowledgement comes after)",
            _LATENCY_BUCKETS,
            registry,
        )
        self._lag = Gauge(
            "kmg_watermark_lag_seconds",
            "Wall clock minus the partition's watermark (NaN before its first event)",
            ["partition"],
            registry=registry,
        )
        self._buffered = Gauge(
            "kmg_reorder_buffer_events",
            "Events waiting for the partition's watermark",
            ["partition"],
            registry=registry,
        )
        self._timers = Gauge(
            "kmg_pending_timers",
            "Indexed timers of the partition (withdrawn ones included until due)",
            ["partition"],
            registry=registry,
        )
        self._partition_children: dict[int, tuple[Any, Any, Any]] = {}
        self.broker_ack_age = Gauge(
            "kmg_broker_ack_age_seconds",
            "Seconds since the broker last acknowledged this worker's ticks (+Inf before one)",
            registry=registry,
        )

    def event(self, kind: str, outcome: str, count: int = 1) -> None:
        """Count messages of one kind and outcome."""
        self._events[kind, outcome].inc(count)

    def dead_letter(self, reason: str) -> None:
        """Count one dead letter by its reason class."""
        self._dead[reason_class(reason)].inc()

    def alert(self, rule: str, status: str, severity: str) -> None:
        """Count one published alert event."""
        self._alerts[rule, status, severity].inc()

    def partition(self, partition: int, lag_seconds: float, buffered: int, timers: int) -> None:
        """Set the gauges of one partition."""
        children = self._partition_children.get(partition)
        if children is None:
            label = str(partition)
            children = (
                self._lag.labels(label),
                self._buffered.labels(label),
                self._timers.labels(label),
            )
            self._partition_children[partition] = children
        lag, buf, tim = children
        lag.set(lag_seconds)
        buf.set(buffered)
        tim.set(timers)

    def keep_partitions(self, partitions: set[int]) -> None:
        """Drop the gauges of partitions this worker no longer holds (another one reports them)."""
        for partition in set(self._partition_children) - partitions:
            del self._partition_children[partition]
            for gauge in (self._lag, self._buffered, self._timers):
                gauge.remove(str(partition))
