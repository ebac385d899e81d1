"""Hospital feeds read unit by unit for an audit: each dead letter names its source message."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from alerts.decoder import DeadLetter
from streams.replay import NdjsonWriter, dead_letter_record

_PROGRESS_EVERY = 4096


@dataclass(frozen=True)
class AuditInput:
    """One named byte stream; size None when unknown (stdin)."""

    name: str
    stream: BinaryIO
    size: int | None


@dataclass(frozen=True)
class _Unit:
    """The source message or line an adapter output came from."""

    position: dict[str, Any]  # {"message": n} (HL7 v2) or {"line": n} (FHIR), 1-based
    raw: bytes | None  # its bytes; None when it holds several resources (a FHIR Bundle)


class FeedDeadLetters(NdjsonWriter):
    """dead_letters.ndjson: while a feed is read, a mapped event the validator refuses is
    named by the source message or line it came from, with that message's original bytes."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__(stream, "dead_letters.ndjson")
        self.source = ""
        self.unit: _Unit | None = None  # the unit of the canonical line the replay is reading

    def adapter(self, dead: DeadLetter, unit: _Unit) -> None:
        """Write an input the adapter could not map (its raw is the original bytes already)."""
        super().write(
            dead_letter_record(dead, {"source": self.source, **unit.position, "stage": "adapter"})
        )

    def write(self, obj: Any) -> None:
        """Write a dead letter of the replay; a feed's one is moved onto its source unit."""
        unit = self.unit
        if unit is None:  # canonical input: the replay's own line numbers are the source's
            super().write(obj)
            return
        # The replay numbers the canonical lines it was given and keeps the mapped event as
        # raw: the source message or line, and its bytes, say where to look in the feed.
        mapped = obj.get("raw")
        raw = unit.raw if unit.raw is not None else (mapped or "").encode()
        where = {"mapped": mapped, "source": self.source, **unit.position, "stage": "validation"}
        super().write(dead_letter_record(DeadLetter(obj["reason"], obj["detail"], raw), where))


class _CountedLines:
    """A binary stream as the FHIR reader takes it (lines, then perhaps the rest whole),
    counting the lines it took so that a document can be given its line number."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.number = 0  # lines taken one by one
        self.last = b""
        self.rest: bytes | None = None  # what read() took after line `number`

    def __iter__(self) -> _CountedLines:
        return self

    def __next__(self) -> bytes:
        self.last = next(self._stream)
        self.number += 1
        return self.last

    def read(self, size: int = -1) -> bytes:
        self.rest = self._stream.read(size)
        return self.rest


def _hl7_units(stream: BinaryIO) -> Iterator[tuple[_Unit, bytes]]:
    # A message is a block opening with MSH; batch header and trailer segments (FHS, BHS, BTS,
    # FTS) and text before the first message are not, and are named by the message before.
    from streams.adapters.hl7_parse import split_blocks

    messages = 0
    for block in split_blocks(stream):
        if block[:3] == b"MSH":
            messages += 1
            yield _Unit({"message": messages}, block), block
        else:
            yield _Unit({"message": None, "after_message": messages}, block), block


def _fhir_units(stream: BinaryIO) -> Iterator[tuple[_Unit, bytes]]:
    # NDJSON: a document per line, read one by one. One JSON document (a Bundle, a pretty-
    # printed resource) is read whole and named by its first line; a file read whole that is
    # neither is read line by line from memory, numbered here the way the reader splits it.
    from streams.adapters.fhir_read import read_documents

    lines = _CountedLines(stream)
    numbered: Iterator[tuple[int, bytes]] | None = None
    for raw, doc in read_documents(cast(BinaryIO, lines)):
        number = lines.number
        if lines.rest is not None:
            if numbered is None:
                numbered = enumerate((lines.last + lines.rest).splitlines(), lines.number)
            for n, body in numbered:
                if body.rstrip(b"\r\n") == raw:
                    number = n
                    break
        several = isinstance(doc, dict) and doc.get("resourceType") == "Bundle"
        yield _Unit({"line": number}, None if several else raw), raw


def feed_lines(
    fmt: str,
    source: AuditInput,
    facility_timezone: str,
    dead_letters: FeedDeadLetters,
    rejected: Counter[str],
    progress: Callable[[int], None],
) -> Iterator[bytes]:
    """Yield canonical lines from a hospital feed; write its unmappable messages as dead letters.

    Each source message (HL7 v2) or document (FHIR) is mapped on its own, so that every dead
    letter, the adapter's or the validator's, names the message or line it came from.
    """
    from streams.adapters import AdapterSettings, iter_feed

    settings = AdapterSettings(facility_timezone=facility_timezone)
    stream, done = source.stream, 0
    dead_letters.source = source.name
    if fmt == "mimic":
        yield from _mimic_lines(source, settings, dead_letters, rejected, progress)
        return
    units = _hl7_units(stream) if fmt == "hl7v2" else _fhir_units(stream)
    for number, (unit, raw) in enumerate(units, 1):
        if number % _PROGRESS_EVERY == 0 and source.size is not None:
            pos = stream.tell()
            progress(pos - done)
            done = pos
        yield from _mapped(iter_feed(fmt, io.BytesIO(raw), settings), unit, dead_letters, rejected)
    dead_letters.unit = None
    if source.size is not None:
        progress(source.size - done)


def _mapped(
    outputs: Iterable[Any], unit: _Unit, dead_letters: FeedDeadLetters, rejected: Counter[str]
) -> Iterator[bytes]:
    """Yield the canonical lines of one unit's adapter outputs; dead-letter the others."""
    from streams.adapters import Canonical

    for out in outputs:
        if isinstance(out, Canonical):
            dead_letters.unit = unit
            yield out.line
            continue
        rejected[out.reason] += 1
        dead_letters.adapter(DeadLetter(out.reason, out.detail, out.raw), unit)


def _mimic_lines(
    source: AuditInput,
    settings: Any,
    dead_letters: FeedDeadLetters,
    rejected: Counter[str],
    progress: Callable[[int], None],
) -> Iterator[bytes]:
    """Yield the canonical lines of one MIMIC-IV demo CSV, read whole (it sorts its rows)."""
    from streams.adapters import iter_feed

    # A row is named by its own bytes, which the adapter keeps: the CSV has no message ids.
    outputs = iter_feed("mimic", source.stream, settings)
    yield from _mapped(outputs, _Unit({}, None), dead_letters, rejected)
    dead_letters.unit = None
    if source.size is not None:
        progress(source.size)
