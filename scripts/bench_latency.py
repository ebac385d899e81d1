"""Produce-to-alert latency: paced K-low + KCl-order pairs available "now", matched to alerts.

Each pair is a new patient: a potassium of 3.2 mmol/L resulted now, then a potassium chloride
order at the same instant. With hold and allowed lateness at 0 the episode's evaluation is due
at the order's own time and fires MG_NOT_CHECKED (no magnesium anywhere) as soon as the
partition's watermark passes it: at the next message of that partition, or at the next tick
when the partition is quiet. Latency is the alert's receive time here minus the time the
order was handed to the producer; the alert record's own timestamp (set by the worker's
producer) splits it into the worker's part and the delivery to this consumer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

_TICK_SECONDS = 0.005
_GATHER_EVERY = 2_000


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def trigger_pair(tag: str, i: int, now: float) -> tuple[bytes, bytes, bytes, str]:
    """Return (key, K-low lab, KCl order, the order's event_id) of pair i at time `now`."""
    pid = f"LAT-{tag}-{i:07d}"
    at = rfc3339(now)
    lab = {
        "kind": "lab_result",
        "event_id": f"{tag}-k{i}",
        "patient_id": pid,
        "encounter_id": f"E-{pid}",
        "location": "ICU-A",
        "code": "2823-3",
        "value": 3.2,
        "unit": "mmol/L",
        "collected_at": rfc3339(now - 600),
        "resulted_at": at,
        "status": "final",
        "result_id": None,
        "flags": None,
    }
    order_id = f"{tag}-o{i}"
    order = {
        "kind": "medication",
        "event_id": order_id,
        "patient_id": pid,
        "encounter_id": f"E-{pid}",
        "location": "ICU-A",
        "action": "ordered",
        "code": "8591",
        "name": "Potassium chloride ER 20 mEq tablet",
        "route": "PO",
        "dose": 20,
        "dose_unit": "mEq",
        "at": at,
        "order_id": f"O-{order_id}",
    }
    return pid.encode(), orjson.dumps(lab), orjson.dumps(order), order_id


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (inf stands for never received)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LatencyResult:
    pairs: int = 0
    events: int = 0
    send_seconds: float = 0.0
    sent: dict[str, float] = field(default_factory=dict)  # order event_id -> send time
    received: dict[str, tuple[float, float]] = field(default_factory=dict)  # -> (recv, stamp)
    warmup_seconds: float = 0.0

    def latencies(self) -> list[float]:
        """Return receive - send per trigger, ascending, inf for alerts never received."""
        got = self.received
        return sorted(got[t][0] - s if t in got else math.inf for t, s in self.sent.items())

    def worker_part(self) -> list[float]:
        """Return alert record timestamp - send per received trigger, ascending."""
        got = self.received
        return sorted(got[t][1] - s for t, s in self.sent.items() if t in got)

    @property
    def missing(self) -> int:
        return sum(1 for t in self.sent if t not in self.received)


class AlertReader:
    """Read the alerts topic from its start; note when each firing trigger first arrives."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.received: dict[str, tuple[float, float]] = {}

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def run(self) -> None:
        got = self.received
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batches.values():
                for r in records:
                    alert = orjson.loads(r.value or b"{}")
                    trigger = alert.get("trigger_event_id")
                    if alert.get("status") == "firing" and trigger not in got:
                        got[trigger] = (now, r.timestamp / 1000)


async def _send_pair(
    producer: AIOKafkaProducer, topics: tuple[str, str], tag: str, i: int
) -> tuple[str, float, list[asyncio.Future[Any]]]:
    key, lab, order, trigger = trigger_pair(tag, i, time.time())
    labs, meds = topics
    first = await producer.send(labs, lab, key=key)
    sent = time.time()
    second = await producer.send(meds, order, key=key)
    return trigger, sent, [first, second]


async def measure_latency(
    bootstrap: str,
    topics: tuple[str, str],
    alerts_topic: str,
    partitions: int,
    rate: float,
    seconds: float,
    drain: float,
    alive: Callable[[], bool],
    warmup_timeout: float = 180.0,
) -> LatencyResult:
    """Warm the worker up, send pairs at `rate` events/s for `seconds`, wait `drain` for alerts."""
    result = LatencyResult()
    reader = AlertReader(bootstrap, alerts_topic, partitions)
    result.received = reader.received
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await reader.start()
    await producer.start()
    reading = asyncio.create_task(reader.run())
    try:
        # Warm-up: one pair per partition's worth of patients, until all their alerts are back.
        started = time.monotonic()
        warm: list[str] = []
        for i in range(2 * partitions):
            trigger, _, futures = await _send_pair(producer, topics, "warm", i)
            warm.append(trigger)
            await asyncio.gather(*futures)
        while not all(t in reader.received for t in warm):
            if not alive() or time.monotonic() - started > warmup_timeout:
                raise RuntimeError("the worker did not alert on the warm-up pairs")
            await asyncio.sleep(0.1)
        result.warmup_seconds = time.monotonic() - started

        pairs_per_second = rate / 2
        pending: list[asyncio.Future[Any]] = []
        began = time.monotonic()
        i = 0
        while (elapsed := time.monotonic() - began) < seconds:
            due = int(elapsed * pairs_per_second) + 1
            while i < due:
                trigger, sent, futures = await _send_pair(producer, topics, "lat", i)
                result.sent[trigger] = sent
                pending.extend(futures)
                i += 1
            if len(pending) >= _GATHER_EVERY:
                await asyncio.gather(*pending)
                pending.clear()
            if not alive():
                raise RuntimeError("the worker stopped during the latency run")
            await asyncio.sleep(_TICK_SECONDS)
        await asyncio.gather(*pending)
        result.send_seconds = time.monotonic() - began
        result.pairs, result.events = i, 2 * i

        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and alive():
            if all(t in reader.received for t in result.sent):
                break
            await asyncio.sleep(0.1)
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        await producer.stop()
        await reader.stop()
    result.received = dict(reader.received)
    return result
