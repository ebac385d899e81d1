"""Helpers for the feed adapter tests: where the shared samples are, and a runner."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.adapters import AdapterSettings, AdapterStats, Canonical, Rejected, iter_feed

REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("KMG_SHARED_DIR", REPO.parent / "shared"))
FEEDS = SHARED / "data" / "feeds"
MIMIC = SHARED / "data" / "mimic-iv-demo"
SCENARIOS = SHARED / "scenarios"

requires_shared = pytest.mark.skipif(
    not FEEDS.is_dir(), reason=f"shared samples not found at {SHARED}; set KMG_SHARED_DIR"
)


@dataclass
class Run:
    outputs: list[Canonical | Rejected]
    stats: AdapterStats

    @property
    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(o.line) for o in self.outputs if isinstance(o, Canonical)]

    @property
    def rejected(self) -> list[Rejected]:
        return [o for o in self.outputs if isinstance(o, Rejected)]

    def only(self) -> dict[str, Any]:
        assert len(self.events) == 1, self.events
        return self.events[0]

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {e["event_id"]: e for e in self.events}


def run(fmt: str, data: bytes | Path, tz: str = "UTC", chunk: int | None = None) -> Run:
    """Run the adapter of `fmt` over bytes or a file."""
    settings = AdapterSettings(facility_timezone=tz)
    stats = AdapterStats()
    raw = data.read_bytes() if isinstance(data, Path) else data
    # _Trickle feeds the HL7 splitter tiny reads to exercise chunk boundaries
    stream = io.BytesIO(raw) if chunk is None else _Trickle(raw, chunk)
    outputs = list(iter_feed(fmt, stream, settings, stats))
    return Run(outputs, stats)


class _Trickle(io.BytesIO):
    def __init__(self, data: bytes, size: int) -> None:
        super().__init__(data)
        self._size = size

    def read(self, n: int | None = -1) -> bytes:
        return super().read(self._size)
