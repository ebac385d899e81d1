"""TopicOutbox: a dead letter its topic refuses as too large still lands, cut, acknowledged."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from streams.outbox import DEAD_LETTER_HEAD_BYTES, TopicOutbox


class _Producer:
    """A producer whose broker refuses records above `limit` bytes, a little after the send."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stored: list[tuple[bytes, dict[str, bytes]]] = []

    async def send(self, topic, key, value, partition, timestamp, headers) -> Any:
        loop = asyncio.get_running_loop()
        acked = loop.create_future()
        size = len(value) + sum(len(k) + len(v) for k, v in headers or [])

        def settle() -> None:
            if size > self.limit:
                acked.set_exception(MessageSizeTooLargeError())
            else:
                self.stored.append((value, dict(headers or [])))
                acked.set_result(None)

        loop.call_later(0.01, settle)
        return acked


class _App:
    def __init__(self, limit: int) -> None:
        self.producer = _Producer(limit)


@pytest.mark.parametrize(
    ("limit", "kept"),
    [(10_000_000, 200_000), (100_000, DEAD_LETTER_HEAD_BYTES), (50_000, 0)],
    ids=["whole", "head", "headers_alone"],
)
def test_a_dead_letter_lands_whole_cut_or_as_its_headers(limit, kept):
    # Found by review: a topic under 64 KiB refused the cut one too, and the worker stopped.
    big, small = b"x" * 200_000, b"y" * 10

    async def run() -> list[tuple[bytes, dict[str, bytes]]]:
        app = _App(limit)
        outbox = TopicOutbox(app, "alerts", "dead")
        acks = [
            await outbox.dead_letter(0, b"P1", big, [("reason", b"too_large")]),
            await outbox.dead_letter(0, b"P1", small, [("reason", b"bad_json")]),
        ]
        await asyncio.gather(*acks)  # acknowledged: the batch's offsets may be committed
        return app.producer.stored

    stored = dict((headers["reason"], (value, headers)) for value, headers in asyncio.run(run()))
    assert stored[b"bad_json"][0] == small
    value, headers = stored[b"too_large"]
    assert value == big[:kept]
    if kept < len(big):
        assert headers["truncated_from_bytes"] == b"200000"
        assert headers["sha256"] == hashlib.sha256(big).hexdigest().encode()
    else:
        assert "truncated_from_bytes" not in headers


def test_headers_that_quote_a_long_input_are_cut_when_they_must_go_alone():
    # Found by review: a reason and detail quoting a 30,000-character unit exceeded the topic's
    # limit even with no value, and the dead letter was refused for good.
    unit = "x" * 30_000
    value = b'{"unit": "' + unit.encode() + b'"}'
    headers = [("reason", f"bad_unit:{unit}".encode()), ("detail", f"in {unit!r}".encode())]

    async def run() -> list[tuple[bytes, dict[str, bytes]]]:
        app = _App(50_000)
        await asyncio.gather(
            await TopicOutbox(app, "alerts", "dead").dead_letter(0, b"P1", value, headers)
        )
        return app.producer.stored

    [(stored, told)] = asyncio.run(run())
    assert stored == b""
    assert told["reason"] == f"bad_unit:{unit}".encode()[:256]
    assert told["truncated_from_bytes"] == str(len(value)).encode()
    assert told["sha256"] == hashlib.sha256(value).hexdigest().encode()
