"""`kmg audit`: one streaming replay pass writing episodes, alerts, figures and a report."""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from alerts.alert import Alert, AlertStatus
from alerts.decoder import DeadLetter
from alerts.rule_config import RuleConfig
from alerts.timestamps import format_timestamp
from streams.audit.episodes import CSV_COLUMNS, EpisodeLedger, EpisodeRow, csv_fields, open_window
from streams.audit.figures import Figures, definitions
from streams.audit.report import render_report
from streams.audit.tap import AuditEngine
from streams.command_inputs import open_inputs as open_command_inputs
from streams.progress import ProgressBar
from streams.replay import NdjsonWriter, Replay, dead_letter_record

AUDIT_FORMAT = "kmg-audit/1"
OUTPUTS = ("report.html", "episodes.csv", "alerts.ndjson", "dead_letters.ndjson", "summary.json")
_PROGRESS_EVERY = 4096
FORMATS = ("canonical", "hl7v2", "fhir", "mimic")


@dataclass(frozen=True)
class AuditInput:
    """One named byte stream; size None when unknown (stdin)."""

    name: str
    stream: BinaryIO
    size: int | None


@dataclass(frozen=True)
class AuditOptions:
    """What to audit and where to write it."""

    fmt: str  # a streams.adapters.FeedFormat value
    out_dir: Path
    facility_timezone: str = "UTC"
    produced_at: str | None = None  # shown in the HTML only; never in CSV or JSON
    chunk_size: int = 400_000  # events per sorted run the replay spills to disk


@dataclass(frozen=True)
class _Unit:
    """The source message or line an adapter output came from."""

    position: dict[str, Any]  # {"message": n} (HL7 v2) or {"line": n} (FHIR), 1-based
    raw: bytes | None  # its bytes; None when it holds several resources (a FHIR Bundle)


class _DeadLetters(NdjsonWriter):
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


def _feed_lines(
    fmt: str,
    source: AuditInput,
    facility_timezone: str,
    dead_letters: _DeadLetters,
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
    outputs: Iterable[Any], unit: _Unit, dead_letters: _DeadLetters, rejected: Counter[str]
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
    dead_letters: _DeadLetters,
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


def run_audit(
    cfg: RuleConfig,
    inputs: list[AuditInput],
    options: AuditOptions,
    progress_stream: TextIO | None = None,
) -> dict[str, Any]:
    """Run the audit; write every output into options.out_dir and return the summary."""
    tz = ZoneInfo(options.facility_timezone)
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    figures = Figures(tz)
    open_for = open_window(cfg)
    rejected: Counter[str] = Counter()
    with ExitStack() as stack:
        alerts_fh = stack.enter_context(open(out / "alerts.ndjson", "wb"))  # noqa: SIM115
        dead_fh = stack.enter_context(open(out / "dead_letters.ndjson", "wb"))  # noqa: SIM115
        csv_fh = stack.enter_context(open(out / "episodes.csv", "w", newline="", encoding="utf-8"))  # noqa: SIM115
        # RFC 4180: CRLF ends a record, so the writer quotes every field holding a CR or LF
        # (a bare CR in a location would otherwise split the record when read back).
        table = csv.writer(csv_fh, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        table.writerow(CSV_COLUMNS)

        def closed(row: EpisodeRow) -> None:
            table.writerow(csv_fields(row, tz))
            figures.add_row(row)

        ledger = EpisodeLedger(closed, open_for)

        def emitted(alerts: list[Alert]) -> None:
            for alert in alerts:
                if alert.status is AlertStatus.FIRING:
                    figures.fired(alert, ledger.attribute(alert))
                else:
                    figures.resolved(alert, ledger.resolve(alert))

        dead_letters = _DeadLetters(dead_fh)
        replay = Replay(
            cfg,
            NdjsonWriter(alerts_fh),
            dead_letters,
            chunk_size=options.chunk_size,
            on_alerts=emitted,
        )
        sizes = [s.size for s in inputs]
        total = None if None in sizes else sum(s or 0 for s in sizes)
        bar = ProgressBar(total, "audit: reading", progress_stream)
        for source in inputs:
            if options.fmt == "canonical":
                replay.read(source.name, source.stream, bar.advance)
            else:
                lines = _feed_lines(
                    options.fmt,
                    source,
                    options.facility_timezone,
                    dead_letters,
                    rejected,
                    bar.advance,
                )
                replay.read(source.name, lines, lambda n: None)
        read = replay.summary
        bar.close(f"{sum(read.events_by_kind.values()):,} events")
        released = (
            sum(read.events_by_kind.values())
            - read.events_by_kind.get("invalid", 0)
            - sum(read.ignored.values())
            - read.duplicates
        )
        rules_bar = ProgressBar(released, "audit: rules  ", progress_stream)
        # The replay's engine, plus the episode facts the audit needs (see streams.audit.tap).
        tick = rules_bar.advance if rules_bar.enabled else None
        summary = replay.run(AuditEngine(cfg, replay.engine.codes, ledger, tick))
        ledger.close()
        rules_bar.close(f"{ledger.closed:,} episodes")
    doc = {
        "audit": AUDIT_FORMAT,
        "rule_version": cfg.rule_version,
        "config": cfg.model_dump(mode="json"),
        "definitions": definitions(tz, open_for),
        "input": {
            "format": options.fmt,
            "files": [s.name for s in inputs],
            "facility_timezone": options.facility_timezone,
            **_plain_keys(summary.as_dict()),
            "adapter_rejected": dict(sorted(rejected.items())),
            "dead_letters": sum(summary.invalid.values()) + sum(rejected.values()),
        },
        "period": {
            "first_t0": None if figures.first_t0 is None else format_timestamp(figures.first_t0),
            "last_t0": None if figures.last_t0 is None else format_timestamp(figures.last_t0),
        },
        **figures.as_dict(),
    }
    (out / "summary.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    (out / "report.html").write_text(render_report(doc, options.produced_at), encoding="utf-8")
    return doc


def open_inputs(stack: ExitStack, names: list[str]) -> list[AuditInput]:
    """Open the named files (or stdin for '-' or none); the name recorded is the base name."""
    return [
        AuditInput(os.path.basename(name), cast(BinaryIO, fh), size)
        for name, fh, size in open_command_inputs(stack, names)
    ]


def produced_now() -> str:
    """Return the current UTC time for the report footer."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `kmg audit` arguments to its subparser."""
    parser.add_argument(
        "files", nargs="*", help="historical feed files in arrival order (- or none: stdin)"
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=FORMATS,
        default="canonical",
        help="input format (default: canonical NDJSON; mimic: the MIMIC-IV demo's labs.csv "
        "and meds.csv)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--config", type=Path, help="TOML file overriding config/rules.toml")
    parser.add_argument(
        "--facility-timezone",
        default="UTC",
        help="IANA time zone for months and for feed times without offset (default: UTC)",
    )
    parser.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Run `kmg audit` from parsed arguments; print where the outputs went."""
    from streams.rule_files import load_rule_config

    try:
        ZoneInfo(args.facility_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return _usage(f"unknown time zone {args.facility_timezone!r}")
    if args.out.exists() and not args.out.is_dir():
        return _usage(f"--out {args.out} is a file: name a folder (created if missing)")
    cfg = load_rule_config(args.config)
    options = AuditOptions(args.fmt, args.out, args.facility_timezone, produced_now())
    with ExitStack() as stack:
        inputs = open_inputs(stack, args.files)  # one that cannot be read: UsageError
        try:
            doc = run_audit(cfg, inputs, options)
        except OSError as exc:
            return _usage(f"cannot write {exc.filename or args.out}: {exc.strerror}")
    o = doc["overall"]
    dead = doc["input"]["dead_letters"]
    # Every input refused (the wrong --format, say) must not read as an empty period.
    print(
        f"audit: {_count(o['episodes'], 'episode')}, "
        f"{o['mg_context']['not_checked']['n']:,} with Mg not checked, "
        f"{_count(o['alerts_fired']['total'], 'alert')}, {_count(dead, 'dead letter')}; "
        f"wrote {', '.join(OUTPUTS)} to {args.out}",
        file=sys.stderr,
    )
    read = doc["input"]["events_by_kind"]
    if dead and not read.get("lab_result", 0) + read.get("medication", 0):
        print(
            f"kmg: every input was refused (dead_letters.ndjson says why): is --format "
            f"{options.fmt} right?",
            file=sys.stderr,
        )
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _usage(message: str) -> int:
    print(f"kmg: {message}", file=sys.stderr)
    return 2


def _plain_keys(data: dict[str, Any]) -> dict[str, Any]:
    # ReplaySummary counts some reasons under StrEnum keys, which orjson refuses as keys.
    return {str(k): _plain_keys(v) if isinstance(v, dict) else v for k, v in data.items()}
