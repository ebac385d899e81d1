"""Where the live stream's alerts and dead letters go: the outbox the processor sends to, and
its Kafka implementation, the topics through the worker's producer."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

from aiokafka.errors import MessageSizeTooLargeError

log = logging.getLogger("kmg.outbox")

# What a dead letter keeps of an input its topic refuses whole: enough to see what it was.
DEAD_LETTER_HEAD_BYTES = 65_536
_HEADER_BYTES = 256  # of each header, when the headers must go alone

Acknowledged = Awaitable[Any]
"""Completes once the broker has acknowledged what was sent (or fails if it will not)."""


class Outbox(Protocol):
    """Where the agent's outputs go (Kafka topics in the worker, lists in tests)."""

    async def publish_alerts(self, records: list[tuple[int, bytes, bytes]]) -> Acknowledged:
        """Send (partition, key, value) alert records; return their acknowledgement."""
        ...

    async def dead_letter(
        self, partition: int, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Acknowledged:
        """Send one dead letter; return its acknowledgement."""
        ...


class TopicOutbox:
    """Alerts and dead letters to their Kafka topics, through the app's producer."""

    def __init__(self, app: Any, alerts: str, dead_letters: str) -> None:
        # The producer itself, not Faust's topic objects: their per-record bookkeeping (future
        # messages, attachments) cost more than the record.
        self.app = app
        self.alerts = alerts
        self.dead_letters = dead_letters

    async def publish_alerts(self, records: list[tuple[int, bytes, bytes]]) -> Acknowledged:
        """Send the alerts; return what completes once the broker has acknowledged every one."""
        send, topic = self.app.producer.send, self.alerts
        pending = [
            await send(topic, key, value, partition, None, None)
            for partition, key, value in records
        ]
        return asyncio.gather(*pending)

    async def dead_letter(
        self, partition: int, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Acknowledged:
        """Send one dead letter; return what completes once the broker has acknowledged it.

        A dead-letter topic made with a smaller `max.message.bytes` than its inputs' refuses
        the largest inputs: then the head of the input goes (or, should the topic refuse even
        that, its headers alone), with its full size and digest in the headers, rather than
        the worker stopping on it at every start. Such a dead letter may land after ones sent
        later.
        """
        try:
            sent = await self._send(partition, key, value, headers)
        except MessageSizeTooLargeError:  # larger than the producer's own request limit
            sent = None
        return asyncio.ensure_future(self._settled(sent, partition, key, value, headers))

    async def _settled(
        self,
        sent: Any,
        partition: int,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]],
    ) -> Any:
        if sent is not None:
            try:
                return await sent
            except MessageSizeTooLargeError:  # the broker refused it for the topic
                pass
        told = [
            *headers,
            ("truncated_from_bytes", str(len(value)).encode()),
            ("sha256", hashlib.sha256(value).hexdigest().encode()),
        ]
        if len(value) > DEAD_LETTER_HEAD_BYTES:
            self._refused(len(value), DEAD_LETTER_HEAD_BYTES)
            try:
                head = value[:DEAD_LETTER_HEAD_BYTES]
                return await (await self._send(partition, key, head, told))
            except MessageSizeTooLargeError:
                pass
        # A topic smaller still: the headers alone, each cut short (a reason or detail may
        # quote the input), say what it was.
        self._refused(len(value), 0)
        short = [(name, text[:_HEADER_BYTES]) for name, text in told]
        return await (await self._send(partition, key, b"", short))

    def _refused(self, size: int, kept: int) -> None:
        log.error(
            "the dead-letter topic %s refused a dead letter of %d bytes as too large; sending "
            "its first %d bytes (raise the topic's max.message.bytes to keep them)",
            self.dead_letters,
            size,
            kept,
        )

    async def _send(
        self, partition: int, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Any:
        return await self.app.producer.send(self.dead_letters, key, value, partition, None, headers)
