"""The shape of a synthetic feed: its size, seed and noise levels."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class FeedShape:
    """Describe the size, seed and noise levels of a synthetic feed."""

    patients: int  # distinct patients, one stay each, ids SP000001...
    days: int  # the feed covers [start, start + days)
    seed: int = 1  # same shape and seed: the same bytes
    start: datetime = field(default_factory=lambda: datetime(2024, 3, 1, tzinfo=UTC))
    invalid_rate: float = 0.001  # fraction of the lines that are deliberately invalid
    duplicate_rate: float = 0.002  # fraction of the lines that are re-sent copies
    target_events: int | None = None  # total lines wanted (lengths of stay are scaled)
    endless: bool = False  # go on past `days`: each patient readmitted after each discharge

    def __post_init__(self) -> None:
        if self.patients < 1 or self.days < 1:
            raise ValueError("patients and days must be >= 1")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if self.invalid_rate < 0.0 or self.duplicate_rate < 0.0:
            raise ValueError("rates must be >= 0")
        if self.invalid_rate + self.duplicate_rate >= 0.5:
            raise ValueError("invalid_rate + duplicate_rate must be < 0.5")
        if self.target_events is not None and self.target_events < 1:
            raise ValueError("target_events must be >= 1")
        if self.endless and self.target_events is not None:
            raise ValueError("an endless feed has no target_events")
