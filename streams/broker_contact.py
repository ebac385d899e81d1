"""Whether the broker still takes this worker's records: the readiness the web port reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any


class BrokerContact:
    """When the broker last acknowledged this worker's ticks, and whether more may be sent.

    A worker sends each of its partitions a tick every few seconds; while the broker is gone
    none is acknowledged. Then no more are queued (they would only wait in the producer), and
    the worker is not ready once `patience` has passed without an acknowledgement.
    """

    def __init__(self, patience: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.patience = patience
        self.clock = clock
        self.acked_at: float | None = None
        self.assigned = False  # the group has given this worker its partitions (perhaps none)
        self._pending: list[asyncio.Future[Any]] = []

    def joined(self) -> None:
        """Note that the consumer group has assigned this worker its partitions."""
        self.assigned = True

    def may_send(self) -> bool:
        """Say whether the last ticks are settled (acknowledged or failed), so more may go."""
        self._pending = [f for f in self._pending if not f.done()]
        return not self._pending

    def sent(self, futures: Sequence[asyncio.Future[Any]]) -> None:
        """Watch the acknowledgements of ticks just sent."""
        for future in futures:
            future.add_done_callback(self._settled)
        self._pending.extend(futures)

    def _settled(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.acked_at = self.clock()

    def age(self) -> float:
        """Return seconds since the last acknowledgement (infinity before the first)."""
        return float("inf") if self.acked_at is None else self.clock() - self.acked_at

    def ready(self, partitions: int) -> bool:
        """Say whether the worker is ready: the broker answers it, or, once the group has
        assigned it nothing, there is nothing it could fail to do."""
        if partitions == 0:
            return self.assigned
        return self.age() <= self.patience
