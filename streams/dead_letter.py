"""A dead letter of the live stream, as it goes to the dead-letter topic.

The input's own bytes and key, on the partition it came from, with headers saying why it was set
aside and where it came from (topic, partition, offset); its reason also labels the metrics.
"""

from __future__ import annotations

from typing import NamedTuple

from streams.consumed import Consumed


class DeadLetterRecord(NamedTuple):
    """One dead letter bound for its topic, counted by its reason once sent."""

    partition: int
    key: bytes | None
    value: bytes
    reason: str
    headers: list[tuple[str, bytes]]


def dead_letter_headers(msg: Consumed, reason: str, detail: str) -> list[tuple[str, bytes]]:
    """Return a dead letter's headers: its reason and detail, and the message it came from."""
    return [
        ("reason", reason.encode()),
        ("detail", detail.encode()),
        ("source_topic", msg.topic.encode()),
        ("source_partition", str(msg.partition).encode()),
        ("source_offset", str(msg.offset).encode()),
    ]
