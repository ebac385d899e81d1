"""`kmg produce` routing and `kmg simulate` pacing (no broker needed)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from streams.producer import final_message, route
from streams.settings import Settings
from streams.simulate import feed_days, paced

SETTINGS = Settings(topic_prefix="x.")


@pytest.mark.parametrize(
    ("line", "topic", "key"),
    [
        (b'{"kind": "medication", "patient_id": "P1"}', "x.meds", b"P1"),
        (b'{"kind": "lab_result", "patient_id": "P2"}', "x.labs", b"P2"),
        (b'{"kind": "alert", "patient_id": "P3"}', "x.labs", b"P3"),
        (b'{"patient_id": "P4"}', "x.labs", b"P4"),
        (b'{"kind": "medication"}', "x.meds", None),
        (b'{"kind": "lab_result", "patient_id": 12}', "x.labs", None),
        (b'{"kind": "lab_result", "patient_id": ""}', "x.labs", None),
        (b'{"kind":"lab_result","patient_id":"P5",', "x.labs", None),
        (b"[1, 2]", "x.labs", None),
        ('{"kind": "medication", "patient_id": "Zoë"}'.encode(), "x.meds", "Zoë".encode()),
    ],
)
def test_kind_decides_the_topic_and_patient_id_the_key(line, topic, key):
    assert route(line, SETTINGS) == (topic, key)


def test_the_final_message_names_the_offsets():
    assert orjson.loads(final_message({"x.labs": 3, "x.meds": 0})) == {
        "control": "final",
        "offsets": {"x.labs": 3, "x.meds": 0},
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_pacing_sends_rate_lines_a_second_and_stops_at_the_duration():
    clock = FakeClock()
    sent = []
    for wait, line in paced(iter(range(1000)), rate=100, duration=2.0, monotonic=clock):
        clock.now += wait  # the caller sleeps this long
        sent.append((clock.now, line))
    assert len(sent) == 200
    # Line n leaves at n / rate seconds, give or take one burst.
    assert all(abs(at - n / 100) <= 0.011 for at, n in sent)


@pytest.mark.parametrize(
    ("rate", "patients", "duration", "at_least"),
    [(100, 10, 60, 1), (1000, 100, 3600, 7200)],
)
def test_the_feed_is_long_enough_for_the_run(rate, patients, duration, at_least):
    days = feed_days(rate, patients, duration)
    assert days >= at_least
    assert days * patients * 5 >= rate * duration


class _RefusingProducer:
    """Refuses every fifth record, as a broker does after the client's retries; flush() hides it."""

    def __init__(self) -> None:
        self.deliveries: list[asyncio.Future[None]] = []

    async def start(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[None]:
        delivery = asyncio.get_running_loop().create_future()
        if len(self.deliveries) % 5 == 4:
            delivery.set_exception(RuntimeError("record refused"))
        else:
            delivery.set_result(None)
        self.deliveries.append(delivery)
        return delivery

    async def flush(self) -> None:
        await asyncio.wait(self.deliveries)  # aiokafka's flush: waits, never raises

    async def stop(self) -> None:
        await self.flush()


def test_simulate_fails_when_the_broker_refuses_a_record(monkeypatch):
    # Found by review: refused records were counted as sent and silently lost.
    import streams.simulate as simulate_module

    producer = _RefusingProducer()

    async def no_topics(settings: Settings) -> list[str]:
        return []

    monkeypatch.setattr(simulate_module, "ensure_topics", no_topics)
    monkeypatch.setattr(simulate_module, "new_producer", lambda settings: producer)
    with pytest.raises(RuntimeError, match="record refused"):
        asyncio.run(simulate_module.simulate(Settings(), rate=2000, patients=5, duration=0.2))
    assert len(producer.deliveries) >= 5
