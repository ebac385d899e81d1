"""Duplicate detection by event id over a bounded horizon of availability time."""

from __future__ import annotations

from collections.abc import Hashable

from alerts.events import Micros


class SeenEvents:
    """Remember event ids seen within `horizon` of the newest availability, and no longer.

    The first valid copy of an event wins; a copy arriving after the horizon has passed is
    no longer recognised, which is what keeps memory bounded on an endless feed.
    """

    __slots__ = ("_seen", "_horizon", "_newest", "_next_prune")

    def __init__(self, horizon: Micros) -> None:
        self._seen: dict[Hashable, Micros] = {}
        self._horizon = horizon
        self._newest: Micros = 0
        self._next_prune: Micros = 0

    def __len__(self) -> int:
        return len(self._seen)

    def first_sighting(self, key: Hashable, available: Micros | None) -> bool:
        """Register key and say whether it was new; available None means 'now'."""
        if key in self._seen:
            return False
        if available is None or available < self._newest:
            available = self._newest
        else:
            self._newest = available
        self._seen[key] = available
        if available >= self._next_prune:
            cutoff = available - self._horizon
            self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}
            self._next_prune = available + self._horizon // 4
        return True
