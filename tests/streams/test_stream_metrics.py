"""Metrics: names, label sets and the reason classes of dead letters."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.metrics import (
    EVENT_OUTCOMES,
    REASON_CLASSES,
    BatchHistogram,
    StreamMetrics,
    reason_class,
)
from streams.stream_counts import COUNTED_AS, KIND_OF_IGNORED


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("bad_json", "bad_json"),
        ("missing_field:patient_id", "missing_field"),
        ("bad_unit:mg/L", "bad_unit"),
        ("timestamp_without_offset:at", "timestamp_without_offset"),
        ("bad_timestamp:resulted_at", "bad_timestamp"),
        ("processing_error", "processing_error"),
        ("something_new:x", "other"),
        ("", "other"),
    ],
)
def test_the_reason_class_is_the_prefix_from_a_fixed_set(reason, expected):
    assert reason_class(reason) == expected
    assert expected in REASON_CLASSES


def test_the_bundle_exposes_its_metrics_on_the_injected_registry():
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    metrics.event("lab_result", "accepted")
    metrics.dead_letter("bad_unit:furlongs")
    metrics.alert("MG_NOT_CHECKED", "firing", "warning")
    metrics.late.inc()
    metrics.duplicates.inc()
    metrics.processing_seconds.observe(0.001)
    metrics.partition(3, 12.5, 4, 2)
    text = generate_latest(registry).decode()
    for line in (
        'kmg_events_total{kind="lab_result",outcome="accepted"} 1.0',
        'kmg_dead_letters_total{reason_class="bad_unit"} 1.0',
        'kmg_alerts_total{rule="MG_NOT_CHECKED",severity="warning",status="firing"} 1.0',
        "kmg_late_events_total 1.0",
        "kmg_duplicates_total 1.0",
        "kmg_event_processing_seconds_count 1.0",
        'kmg_watermark_lag_seconds{partition="3"} 12.5',
        'kmg_reorder_buffer_events{partition="3"} 4.0',
        'kmg_pending_timers{partition="3"} 2.0',
    ):
        assert line in text
    assert "furlongs" not in text  # label values come from fixed sets only


@pytest.mark.parametrize(
    "observations",
    [
        [(0.001, 1)],
        [(0.0001, 3), (0.00011, 2), (0.7, 1)],
        [(0.0, 5000), (0.1, 2), (0.1000001, 4), (2.5, 1)],
    ],
)
def test_the_batch_histogram_exposes_what_one_observation_at_a_time_would(observations):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    bounds = (0.0001, 0.001, 0.1, 0.5)
    batch = BatchHistogram("kmg_x_seconds", "x", bounds, ours)
    single = Histogram("kmg_x_seconds", "x", buckets=bounds, registry=theirs)
    for value, count in observations:
        batch.observe(value, count)
        for _ in range(count):
            single.observe(value)

    def samples(registry):
        return {
            (s.name, tuple(sorted(s.labels.items()))): round(s.value, 9)
            for metric in registry.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    assert samples(ours) == samples(theirs)
    assert samples(ours)[("kmg_x_seconds_count", ())] == sum(n for _, n in observations)


def test_a_partition_given_away_drops_its_gauges():
    # Found by review: a worker kept exporting frozen gauges of partitions another one owned.
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    for p in range(4):
        metrics.partition(p, 1.0, p, p)
    metrics.keep_partitions({2, 3})
    metrics.partition(3, 2.0, 5, 6)
    for name in ("kmg_watermark_lag_seconds", "kmg_reorder_buffer_events", "kmg_pending_timers"):
        held = [registry.get_sample_value(name, {"partition": str(p)}) for p in range(4)]
        assert [value is not None for value in held] == [False, False, True, True], name
    assert registry.get_sample_value("kmg_pending_timers", {"partition": "3"}) == 6


def test_only_the_outcomes_a_message_can_end_in_are_exported():
    # Found by a new user: pairs such as kind="lab_result",outcome="tick" were shown at 0.
    registry = CollectorRegistry()
    StreamMetrics(registry)
    exported = {
        (sample.labels["kind"], sample.labels["outcome"])
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "kmg_events_total"
    }
    assert exported == set(EVENT_OUTCOMES)
    assert ("lab_result", "tick") not in exported and ("control", "accepted") not in exported
    # Every pair the processor counts an event under is exported (a missing one would raise).
    assert set(COUNTED_AS.values()) <= exported
    assert {(kind, "ignored") for kind in KIND_OF_IGNORED.values()} <= exported
