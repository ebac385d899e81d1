"""The input side of the live stream's processor, as the agent hands it over.

A consumed record, what the consumer knows of the records not yet read, and the scope that
directs the table's reads and writes to a partition: protocols, so the processor is driven by
Faust's Kafka consumer in the worker and by plain lists in tests.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class Consumed(Protocol):
    """One consumed record, as the agent reads it: the Kafka client's record, or a test's."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class InputMessage(NamedTuple):
    """One consumed record, built by hand (tests, tools)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Backlog(Protocol):
    """What the consumer knows about unread messages (high watermarks, committed offsets)."""

    def behind(self, topic: str, partition: int, next_offset: int | None) -> bool:
        """Say whether the topic's partition has messages at or after next_offset unread."""
        ...

    def position(self, topic: str, partition: int, next_offset: int | None) -> int:
        """Return the next offset this worker will process on the topic's partition."""
        ...

    def assigned(self) -> set[int]:
        """Return the partitions now assigned to this worker."""
        ...

    def refresh(self) -> None:
        """Take the high watermarks afresh: each batch reads them as of its fetch."""
        ...


class PartitionScope(Protocol):
    """Make the table's reads and writes that follow use a partition (Faust reads it per call)."""

    def __call__(self, partition: int) -> None:
        """Direct the next table reads and writes to this partition's store and changelog."""
        ...
