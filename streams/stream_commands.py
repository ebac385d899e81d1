"""`kmg worker`, `topics`, `produce` and `simulate`: the commands that talk to the broker."""

from __future__ import annotations

import argparse
import math
import os
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING

from alerts.rule_config import ConfigError
from alerts.timestamps import TimestampError, parse_timestamp
from streams.command_inputs import UsageError, open_inputs
from streams.log_repeats import broker_client_logging
from streams.rule_files import load_rule_config

if TYPE_CHECKING:
    from streams.settings import Settings


def _stream_settings() -> Settings:
    """Build the stream Settings once from KMG_* variables; bad values are a usage error."""
    from pydantic import ValidationError

    from streams.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        # The variable is named by the field; deeper parts of loc are inside its JSON value.
        where = f"KMG_{str(err['loc'][0]).upper()}" if err["loc"] else "KMG_*"
        given = err.get("input")
        shown = f" (value: {given!r})" if isinstance(given, str | int | float) else ""
        raise UsageError(f"{where}: {err['msg']}{shown}") from None
    _warn_unknown_variables(Settings)
    # Rule parameters too, before anything is created on the broker; the file and the
    # parameters come from variables, so an error names the ones to look at.
    try:
        load_rule_config(settings.rules_file)
    except ConfigError as exc:
        raise ConfigError(f"KMG_RULES_FILE: {exc}") from None
    try:
        settings.rule_config()
    except ConfigError as exc:
        names = ", ".join(f"KMG_{key.upper()}" for key in settings.rule_overrides())
        raise ConfigError(f"{exc} (set by {names})") from None
    return settings


# KMG_* variables of the project's tools, not of the stream commands.
_TOOL_VARIABLES = frozenset(
    {"KMG_KAFKA_PORT", "KMG_KAFKA_CONTROLLER_PORT", "KMG_KAFKA_DIR", "KMG_KAFKA_HEAP_OPTS",
     "KMG_KAFKA_START_TIMEOUT", "KMG_FUZZ", "KMG_SHARED_DIR", "KMG_RENDER_WIDTH",
     "KMG_RENDER_HEIGHT"}
)  # fmt: skip


def _warn_unknown_variables(settings_type: type[Settings]) -> None:
    """Say which KMG_* variables nothing reads: a misspelt one is otherwise silently ignored."""
    # Settings reads its variables in any case, so KMG_Hold_Minutes is KMG_HOLD_MINUTES.
    known = {f"KMG_{name.upper()}" for name in settings_type.model_fields} | _TOOL_VARIABLES
    names = (n for n in os.environ if n.upper().startswith("KMG_") and n.upper() not in known)
    for name in sorted(names):
        print(f"kmg: warning: {name} is no setting and is ignored (misspelt?)", file=sys.stderr)


def _unreachable(settings: Settings, exc: Exception) -> UsageError:
    name = type(exc).__name__
    return UsageError(
        f"KMG_KAFKA_BOOTSTRAP {settings.kafka_bootstrap}: the broker did not answer ({name})"
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from streams.worker import run_worker

    settings = _stream_settings()
    try:
        return run_worker(settings)
    except KafkaError as exc:  # the topics could not be made: no worker was started
        raise _unreachable(settings, exc) from None


def cmd_topics(args: argparse.Namespace) -> int:
    import asyncio

    from aiokafka.errors import KafkaError

    from streams.topics import ensure_topics, topic_specs

    settings = _stream_settings()
    try:
        with broker_client_logging():
            created = asyncio.run(ensure_topics(settings))
    except KafkaError as exc:
        raise _unreachable(settings, exc) from None
    for spec in topic_specs(settings):
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name}: {spec.partitions} partitions ({state})")
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    import asyncio

    from aiokafka.errors import KafkaError

    from streams.producer import produce

    settings = _stream_settings()
    with ExitStack() as stack:
        stack.enter_context(broker_client_logging())
        inputs = open_inputs(stack, args.files)
        lines = (line for _, fh, _ in inputs for line in fh)
        try:
            counts = asyncio.run(produce(settings, lines, final=args.final))
        except KafkaError as exc:
            raise _unreachable(settings, exc) from None
    body = ", ".join(f"{topic} {n}" for topic, n in sorted(counts.items())) or "nothing"
    print(f"produced: {body}", file=sys.stderr)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio

    from aiokafka.errors import KafkaError

    from streams.simulate import simulate

    if not 0 < args.rate < math.inf or args.patients < 1:
        raise UsageError("--rate must be a number > 0 and --patients >= 1")
    if args.duration is not None and not 0 < args.duration < math.inf:
        raise UsageError(f"--duration must be a number of seconds > 0, not {args.duration}")
    settings = _stream_settings()
    try:
        with broker_client_logging():
            counts = asyncio.run(
                simulate(settings, args.rate, args.patients, args.duration, seed=args.seed)
            )
    except KafkaError as exc:
        raise _unreachable(settings, exc) from None
    body = ", ".join(f"{topic} {n}" for topic, n in sorted(counts.items())) or "nothing"
    print(f"simulated: {body}", file=sys.stderr)
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    import asyncio

    from aiokafka.errors import KafkaError

    from streams.redrive import redrive

    since_ms = None
    if args.since is not None:
        try:
            since_ms = parse_timestamp(args.since) // 1_000
        except TimestampError:
            raise UsageError(
                f"--since {args.since!r}: an ISO 8601 time with its offset, such as "
                "2026-11-27T08:00:00Z"
            ) from None
    settings = _stream_settings()
    try:
        with broker_client_logging():
            summary = asyncio.run(
                redrive(settings, set(args.reason), since_ms=since_ms, dry_run=args.dry_run)
            )
    except KafkaError as exc:
        raise _unreachable(settings, exc) from None
    print(f"redrive: {summary.render(args.dry_run)}", file=sys.stderr)
    return 0


def add_stream_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser(
        "worker", help="run a stream worker until SIGTERM (settings from KMG_* variables)"
    )
    worker.set_defaults(func=cmd_worker)

    topics = sub.add_parser("topics", help="create the stream's topics if missing")
    topics.set_defaults(func=cmd_topics)

    produce = sub.add_parser("produce", help="send canonical NDJSON files to the input topics")
    produce.add_argument(
        "files", nargs="*", help="NDJSON inputs in arrival order (- or none: stdin)"
    )
    produce.add_argument(
        "--final",
        action="store_true",
        help="then mark the end of input: workers drain each partition (W = +infinity) once "
        "they have consumed it, as a replay does at its end (for bounded backfills)",
    )
    produce.set_defaults(func=cmd_produce)

    simulate = sub.add_parser("simulate", help="send a synthetic feed at a steady rate")
    simulate.add_argument("--rate", type=float, required=True, help="events per second")
    simulate.add_argument("--patients", type=int, required=True, help="number of patients")
    simulate.add_argument("--duration", type=float, help="seconds to run (default: until stopped)")
    simulate.add_argument("--seed", type=int, default=1, help="feed seed (default 1)")
    simulate.set_defaults(func=cmd_simulate)

    from streams.metrics import REASON_CLASSES

    redrive = sub.add_parser(
        "redrive",
        help="send dead letters of the given reasons back to the input topic they came from",
    )
    redrive.add_argument(
        "--reason",
        action="append",
        required=True,
        choices=REASON_CLASSES,
        metavar="CLASS",
        help="a reason class to send back (repeatable): " + ", ".join(REASON_CLASSES),
    )
    redrive.add_argument(
        "--since",
        metavar="TIME",
        help="only letters dead-lettered at or after TIME (ISO 8601 with offset)",
    )
    redrive.add_argument(
        "--dry-run", action="store_true", help="count what would be sent, send nothing"
    )
    redrive.set_defaults(func=cmd_redrive)
