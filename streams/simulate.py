"""`kmg simulate`: a realistic synthetic feed sent at a steady rate, starting now.

The feed (streams/synthetic_feed/) starts at the current time, so availability times begin
at the wall clock; at a rate above the feed's natural one (a few events per patient a day)
event time then runs ahead of the wall clock, which the workers handle like any fast feed.

The rate decides how many lines leave, not the shape: each patient has one stay in a bounded
feed, so its length comes from the lines wanted (``target_events``), not from its days. A run
of ``duration`` seconds sends a feed of a little more than ``rate * duration`` lines, cut at
the duration; a run without one sends an endless feed (patients readmitted after each
discharge, event ids never repeated) until stopped.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

from streams.producer import Deliveries, new_producer, route
from streams.settings import Settings
from streams.synthetic_feed import FeedShape, generate
from streams.topics import ensure_topics

# Fewer lines per patient-day than the generator's natural 7.4 (and far below the 12 or so
# its volume control reaches when every patient is in house): a feed of this many days holds
# the run's lines with the patients in house for part of the window.
_EVENTS_PER_PATIENT_DAY = 5
_FIRST_STAYS_DAYS = 7  # an endless feed: the window of the first stays
_SPARE_EVENTS = 0.01  # lines asked beyond rate * duration (the target lands within a fraction)
_BURST_SECONDS = 0.01


def feed_days(rate: float, patients: int, duration: float) -> int:
    """Return enough feed days for `duration` seconds at `rate` events a second."""
    needed = rate * duration / (patients * _EVENTS_PER_PATIENT_DAY)
    return max(1, math.ceil(needed * 1.5))


def feed_events(rate: float, duration: float) -> int:
    """Return the lines to ask of the generator for `duration` seconds at `rate` a second."""
    return math.ceil(rate * duration * (1.0 + _SPARE_EVENTS)) + 100


def feed_shape(
    rate: float, patients: int, duration: float | None, seed: int, start: datetime
) -> FeedShape:
    """Return the feed of a run: `rate * duration` lines and a few more, or without a duration
    one that never ends."""
    if duration is None:
        return FeedShape(
            patients=patients, days=_FIRST_STAYS_DAYS, seed=seed, start=start, endless=True
        )
    return FeedShape(
        patients=patients,
        days=feed_days(rate, patients, duration),
        seed=seed,
        start=start,
        target_events=feed_events(rate, duration),
    )


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
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Counter[str]:
    """Send the synthetic feed at `rate` events a second for `duration` seconds, or until
    stopped without one (`monotonic` and `sleep`: the clock, for tests)."""
    start = datetime.now(UTC).replace(microsecond=0)
    shape = feed_shape(rate, patients, duration, seed, start)
    await ensure_topics(settings)
    producer = new_producer(settings)
    await producer.start()
    counts: Counter[str] = Counter()
    deliveries = Deliveries()
    try:
        lines = (line for _, line in generate(shape))
        for wait, line in paced(lines, rate, duration, monotonic):
            if wait:
                await sleep(wait)
            topic, key = route(line, settings)
            await deliveries.add(await producer.send(topic, value=line, key=key))
            counts[topic] += 1
        await deliveries.settle()  # a record the broker refused fails the command
    finally:
        await producer.stop()
    return counts
