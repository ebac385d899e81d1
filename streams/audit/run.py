"""`kmg audit`: one streaming replay pass writing episodes, alerts, figures and a report."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from alerts.alert import Alert, AlertStatus
from alerts.rule_config import RuleConfig
from alerts.timestamps import format_timestamp
from streams.audit.episodes import CSV_COLUMNS, EpisodeLedger, EpisodeRow, csv_fields, open_window
from streams.audit.feed_units import AuditInput, FeedDeadLetters, feed_lines
from streams.audit.figures import Figures, definitions
from streams.audit.report import render_report
from streams.audit.tap import AuditEngine
from streams.command_inputs import open_inputs as open_command_inputs
from streams.progress import ProgressBar
from streams.replay import NdjsonWriter, Replay

AUDIT_FORMAT = "kmg-audit/1"
OUTPUTS = ("report.html", "episodes.csv", "alerts.ndjson", "dead_letters.ndjson", "summary.json")
FORMATS = ("canonical", "hl7v2", "fhir", "mimic")


@dataclass(frozen=True)
class AuditOptions:
    """What to audit and where to write it."""

    fmt: str  # a streams.adapters.FeedFormat value
    out_dir: Path
    facility_timezone: str = "UTC"
    produced_at: str | None = None  # shown in the HTML only; never in CSV or JSON
    chunk_size: int = 400_000  # events per sorted run the replay spills to disk


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

        dead_letters = FeedDeadLetters(dead_fh)
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
                lines = feed_lines(
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
