"""Feed adapters: hospital feeds (HL7 v2, FHIR R4, MIMIC-IV extracts) -> canonical events.

Every adapter exposes ``iter_canonical(stream, settings, stats=None)`` yielding, in input
order, ``Canonical`` (one canonical event, RULES.md section 1, as compact JSON bytes) or
``Rejected`` (the original bytes of a message/resource that could not be mapped, with a short
machine reason). Adapters map; they do not validate what they map (units, ranges, ordering of
times): the validator downstream dead-letters bad canonical events with RULES.md 7 reasons.
Input that is valid but carries no K/Mg lab and no medication is skipped and counted in
``AdapterStats.skipped`` by message or resource type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import BinaryIO, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from streams.adapters.lab_aliases import FeedAliases, load_aliases


class Canonical(NamedTuple):
    """One canonical event, JSON-encoded, without trailing newline."""

    line: bytes


class Rejected(NamedTuple):
    """Input that could not be mapped: its original bytes, a machine reason, a human detail."""

    raw: bytes
    reason: str
    detail: str


AdapterOutput = Canonical | Rejected


class FeedFormat(StrEnum):
    CANONICAL = "canonical"
    HL7V2 = "hl7v2"
    FHIR = "fhir"
    MIMIC = "mimic"


@dataclass
class AdapterStats:
    """What an adapter run produced; pass one in to read it afterwards."""

    emitted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # by reason
    skipped: Counter[str] = field(default_factory=Counter)  # by message/resource type

    def skip(self, what: str) -> None:
        self.skipped[what] += 1

    def count(self, out: AdapterOutput) -> AdapterOutput:
        if isinstance(out, Canonical):
            self.emitted += 1
        else:
            self.rejected[out.reason] += 1
        return out


class AdapterSettings(BaseModel):
    """Facility time zone (IANA name) and the feed aliases (config/feed_aliases.toml)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    facility_timezone: str = "UTC"
    aliases: FeedAliases = Field(default_factory=load_aliases)

    @field_validator("facility_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"facility_timezone {value!r} is not an IANA time zone") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.facility_timezone)  # ZoneInfo caches instances by key


def iter_canonical(
    stream: BinaryIO, settings: AdapterSettings, stats: AdapterStats | None = None
) -> Iterator[AdapterOutput]:
    """Canonical NDJSON: each non-empty line unchanged (validation happens downstream)."""
    stats = stats if stats is not None else AdapterStats()
    for line in stream:
        body = line.rstrip(b"\r\n")
        if body.strip():
            yield stats.count(Canonical(body))


def iter_feed(
    fmt: FeedFormat | str,
    stream: BinaryIO,
    settings: AdapterSettings,
    stats: AdapterStats | None = None,
) -> Iterator[AdapterOutput]:
    """Dispatch to the adapter of `fmt`; every adapter counts its outputs in `stats`."""
    fmt = FeedFormat(fmt)
    if fmt is FeedFormat.CANONICAL:
        adapter = iter_canonical
    elif fmt is FeedFormat.HL7V2:
        from streams.adapters.hl7v2 import iter_canonical as adapter
    elif fmt is FeedFormat.FHIR:
        from streams.adapters.fhir import iter_canonical as adapter
    else:
        from streams.adapters.mimic import iter_canonical as adapter
    return adapter(stream, settings, stats)


__all__ = [
    "AdapterOutput",
    "AdapterSettings",
    "AdapterStats",
    "Canonical",
    "FeedAliases",
    "FeedFormat",
    "Rejected",
    "iter_canonical",
    "iter_feed",
    "load_aliases",
]
