"""The release order of events (RULES.md 3), made total for copies that share its key."""

from __future__ import annotations

from typing import Any

from alerts.events import LabResult, Medication


def release_key(ev: LabResult | Medication) -> tuple[Any, ...]:
    """Return a key that orders any two events: (a, patient_id, event_id), then every field."""
    # None sorts before any value, and a set of classes by its sorted members, where plain
    # tuple order would raise or be partial.
    return (
        ev[0],
        ev[1],
        ev[2],
        ev[3],
        *[
            (0,) if f is None else (2, tuple(sorted(f))) if type(f) is frozenset else (1, f)
            for f in ev[4:]
        ],
    )


def sort_for_release(events: list[Any]) -> None:
    """Sort events into release order in place."""
    try:
        events.sort()  # tuple order: (a, patient_id, event_id) decides but for copies
    except TypeError:
        # Copies of one event (its id taken again once the duplicate horizon has passed) share
        # (a, patient_id, event_id), and their other fields may be None against a value.
        events.sort(key=release_key)
