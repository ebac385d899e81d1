"""Duplicate detection by event id over a bounded horizon of availability time."""

from __future__ import annotations

from collections.abc import Hashable

from alerts.events import Micros

# Shared and never written: only a key it holds is ever moved, and it holds none.
_NONE: dict[Hashable, Micros | None] = {}


class SeenEvents:
    """Remember event ids for at least `horizon` of availability time, and at most twice that.

    Ids live in two generations: the current one takes new ids, and when the newest
    availability has moved a horizon past the generation's start, the older generation is
    dropped whole. A copy arriving after that is no longer recognised, which is what keeps
    memory bounded on an endless feed. Each id keeps the availability of the copy that holds it
    (None for an ignored event), so the caller can let an earlier copy win (`held_at`, `move`).
    """

    __slots__ = ("_current", "_previous", "_horizon", "_started")

    def __init__(self, horizon: Micros) -> None:
        self._current: dict[Hashable, Micros | None] = {}
        # Shared and empty until the first turn: a replay holds one of these per patient.
        self._previous: dict[Hashable, Micros | None] = _NONE
        self._horizon = horizon
        self._started: Micros | None = None

    @property
    def horizon(self) -> Micros:
        """Return the availability time an id is remembered for, at least."""
        return self._horizon

    @property
    def forgotten_before(self) -> Micros | None:
        """Return an availability before which ids may have been forgotten, if any may have.

        An id is dropped with its generation two turns after it came, so its event's
        availability lies a horizon behind the current generation's start: a copy taken for a
        new event always comes from before this instant.
        """
        return None if self._started is None else self._started - self._horizon

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def first_sighting(self, key: Hashable, available: Micros | None) -> bool:
        """Register key and say whether it was new; available None means 'no newer than now'."""
        if key in self._current or key in self._previous:
            return False
        if available is not None:
            if self._started is None:
                self._started = available
            elif available - self._started >= self._horizon:
                self._previous, self._current = self._current, {}
                self._started = available
        self._current[key] = available
        return True

    def held_at(self, key: Hashable) -> Micros | None:
        """Return the availability of the copy that holds a remembered key (None: ignored)."""
        current = self._current
        return current[key] if key in current else self._previous[key]

    def move(self, key: Hashable, available: Micros) -> None:
        """Let an earlier copy hold a remembered key, in the generation that holds it."""
        (self._current if key in self._current else self._previous)[key] = available
