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


def sort_for_release(events: list[Any], copies: bool = False) -> None:
    """Sort events into release order in place; `copies` when some may share (a, patient, id).

    Tuple order is the release order while (a, patient_id, event_id) decides; for copies of one
    event (its id taken again once the duplicate horizon had passed) it is not total: a set of
    classes compares by inclusion, and None against a value raises.
    """
    if copies:
        events.sort(key=release_key)
        return
    try:
        events.sort()
    except TypeError:  # copies the caller did not expect: the total order still holds
        events.sort(key=release_key)
