"""`kmg simulate` runs for its duration at its rate, or on until stopped (no broker needed).

Found by a user: `--rate 300 --patients 300 --duration 60` sent 9,088 events and stopped after
about 31 s, and without `--duration` it ended by itself after 44 s: the feed had one stay per
patient (some 37 lines each), however many days it was given.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import orjson
import pytest

import streams.simulate as simulate_module
from streams.settings import Settings
from streams.synthetic_feed import generate


class FakeClock:
    """A monotonic clock that moves only when the simulator sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Stopped(Exception):
    """The user stops the run."""


class FakeProducer:
    """Accepts every record at once; keeps the lines sent, or stops the run after `stop_after`."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.lines: list[bytes] = []
        self.stop_after = stop_after

    async def start(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[None]:
        if self.stop_after is not None and len(self.lines) >= self.stop_after:
            raise Stopped
        self.lines.append(value)
        delivery = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery

    async def stop(self) -> None:
        pass


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> FakeProducer:
    fake = FakeProducer()

    async def no_topics(settings: Settings) -> list[str]:
        return []

    monkeypatch.setattr(simulate_module, "ensure_topics", no_topics)
    monkeypatch.setattr(simulate_module, "new_producer", lambda settings: fake)
    return fake


SETTINGS = Settings(topic_prefix="x.")


def run(rate: float, patients: int, duration: float | None) -> dict[str, int]:
    clock = FakeClock()
    counts = simulate_module.simulate(
        SETTINGS, rate, patients, duration, monotonic=clock, sleep=clock.sleep
    )
    return dict(asyncio.run(counts))


def distinct_event_ids(lines: list[bytes]) -> bool:
    """Whether no two different lines share an event id (a re-sent copy is the same bytes)."""
    owner: dict[object, bytes] = {}
    for line in set(lines):
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a deliberately broken line
        if isinstance(ev, dict) and owner.setdefault(ev.get("event_id"), line) != line:
            return False
    return True


@pytest.mark.parametrize(
    ("rate", "patients", "duration"),
    [
        (300, 300, 60),  # the user's run: 9,088 events before the fix
        (300, 300, 30),  # the demo's: about 7,100
        (1000, 100, 60),  # about 4,800
        (10, 1000, 60),  # far fewer events than patients: the feed is larger than needed
        (2000, 5, 0.2),
    ],
)
def test_a_run_sends_rate_events_a_second_for_its_duration(
    producer: FakeProducer, rate: float, patients: int, duration: float
) -> None:
    counts = run(rate, patients, duration)
    assert len(producer.lines) == sum(counts.values()) == math.ceil(rate * duration)
    assert set(counts) == {"x.labs", "x.meds"}
    assert distinct_event_ids(producer.lines)


def test_without_a_duration_the_run_goes_on_until_stopped(producer: FakeProducer) -> None:
    producer.stop_after = 40_000  # the bounded feed of 300 patients had about 13,000 lines
    with pytest.raises(Stopped):
        run(300, 300, None)
    assert len(producer.lines) == 40_000
    assert distinct_event_ids(producer.lines)


@pytest.mark.parametrize(
    ("rate", "patients", "duration"),
    [(300, 300, 60), (50, 1, 60), (100, 20_000, 60), (1, 1, 1)],
)
def test_a_bounded_feed_holds_the_run(rate: float, patients: int, duration: float) -> None:
    start = datetime(2025, 1, 1, 10, 17, 3, tzinfo=UTC)
    shape = simulate_module.feed_shape(rate, patients, duration, 1, start)
    assert not shape.endless
    assert sum(1 for _ in generate(shape)) >= rate * duration
    assert shape == simulate_module.feed_shape(rate, patients, duration, 1, start)


def test_an_open_run_sends_an_endless_feed() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert simulate_module.feed_shape(300, 300, None, 1, start).endless
