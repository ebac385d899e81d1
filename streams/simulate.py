"""`kmg simulate`: a realistic synthetic feed sent at a steady rate, starting now.

The feed (streams/synthetic_feed.py) starts at the current time, so availability times begin
at the wall clock; at a rate above the feed's natural one (a few events per patient a day)
event time then runs ahead of the wall clock, which the workers handle like any fast feed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from streams.producer import Deliveries, new_producer, route
from streams.settings import Settings
from streams.synthetic_feed import FeedShape, generate
from streams.topics import ensure_topics

# Roughly what the generator makes per patient and day; only sizes the number of days.
_EVENTS_PER_PATIENT_DAY = 5
_ENDLESS_DAYS = 365
_BURST_SECONDS = 0.01


def feed_days(rate: float, patients: int, duration: float | None) -> int:
    """Return enough feed days to last `duration` seconds at `rate` events a second."""
    if duration is None:
        return _ENDLESS_DAYS
    needed = rate * duration / (patients * _EVENTS_PER_PATIENT_DAY)
    return max(1, math.ceil(needed * 1.5))


def paced(
    lines: Iterator[bytes],
    rate: float,
    duration: float | None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Iterator[tuple[float, bytes]]:
    """Yield (seconds to wait first, line) so that `rate` lines a second leave, for `duration`."""
    started = monotonic()
    for sent, line in enumerate(lines):
        due = sent / rate
        if duration is not None and due >= duration:
            return
        ahead = due - (monotonic() - started)
        yield (ahead if ahead > _BURST_SECONDS else 0.0), line


async def simulate(
    settings: Settings,
    rate: float,
    patients: int,
    duration: float | None,
    seed: int = 1,
) -> Counter[str]:
    """Send the synthetic feed at `rate` events a second until `duration` or the feed ends."""
    start = datetime.now(UTC).replace(microsecond=0)
    shape = FeedShape(
        patients=patients, days=feed_days(rate, patients, duration), seed=seed, start=start
    )
    await ensure_topics(settings)
    producer = new_producer(settings)
    await producer.start()
    counts: Counter[str] = Counter()
    deliveries = Deliveries()
    try:
        lines = (line for _, line in generate(shape))
        for wait, line in paced(lines, rate, duration):
            if wait:
                await asyncio.sleep(wait)
            topic, key = route(line, settings)
            await deliveries.add(await producer.send(topic, value=line, key=key))
            counts[topic] += 1
        await deliveries.settle()  # a record the broker refused fails the command
    finally:
        await producer.stop()
    return counts
