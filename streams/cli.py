"""The `kmg` command: replay, check-config, and the stream and audit commands."""

from __future__ import annotations

import argparse
import gc
import math
import os
import stat
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

from alerts.rule_config import ConfigError, RuleConfig
from streams.log_repeats import broker_client_logging
from streams.output_failure import OutputFailed
from streams.output_file import OutputFile
from streams.progress import ProgressBar
from streams.replay import NdjsonWriter, Replay
from streams.rule_files import DEFAULT_RULES, load_rule_config

if TYPE_CHECKING:
    from streams.settings import Settings


class UsageError(Exception):
    """Unusable arguments or files: reported as one line, exit status 2."""


def _open_inputs(stack: ExitStack, names: list[str]) -> list[tuple[str, IO[bytes], int | None]]:
    if not names:
        names = ["-"]
    opened: list[tuple[str, IO[bytes], int | None]] = []
    for name in names:
        if name == "-":
            opened.append(("<stdin>", sys.stdin.buffer, None))
            continue
        try:
            fh = stack.enter_context(open(name, "rb"))  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc.strerror}") from None
        opened.append((name, fh, os.fstat(fh.fileno()).st_size))
    return opened


def _stdout() -> IO[bytes]:
    if sys.stdout is None:
        raise UsageError("stdout is closed: name an output file with --out")
    return sys.stdout.buffer


def _open_output(stack: ExitStack, name: str | None) -> IO[bytes] | None:
    if name is None:
        return None
    if name == "-":
        return _stdout()
    try:
        return stack.enter_context(OutputFile(name))
    except OSError as exc:
        raise UsageError(f"cannot write {name}: {exc.strerror}") from None


def _refuse_overlaps(inputs: list[IO[bytes]], outputs: dict[str, str | None]) -> None:
    """Refuse, before any file is emptied, an output that is an input or another output."""
    taken: dict[object, str] = {}
    for fh in inputs:
        st = os.fstat(fh.fileno())
        taken[st.st_dev, st.st_ino] = "an input"
    for option, name in outputs.items():
        if name is None or name == "-":
            continue
        try:
            st = os.stat(name)
        except OSError:
            where: object = os.path.realpath(name)  # a new file: created by its own open
        else:
            if not stat.S_ISREG(st.st_mode):
                continue  # /dev/null, a pipe: shared harmlessly
            where = (st.st_dev, st.st_ino)
        if where in taken:
            raise UsageError(f"{option} {name} is also {taken[where]}")
        taken[where] = option


def cmd_replay(args: argparse.Namespace) -> int:
    cfg = load_rule_config(args.config)
    # A replay makes no reference cycles (the whole benchmark feed leaves the collector nothing
    # to free), yet re-enabling the collector between reading and releasing would trace every
    # event and state it holds: it stays off for the command, and for good when the command
    # ends the process.
    collecting = gc.isenabled() and not args.end_process
    gc.disable()
    try:
        replay = _replay(args, cfg)  # held until the end: ending the process frees nothing
    finally:
        if collecting:
            gc.enable()
    print(replay.summary.render(), file=sys.stderr)
    if args.end_process:
        _end_process(0)
    return 0


def _replay(args: argparse.Namespace, cfg: RuleConfig) -> Replay:
    """Replay the inputs into the outputs; return the finished replay, outputs closed."""
    try:
        return _replay_files(args, cfg)
    except BrokenPipeError:
        raise
    except OSError as exc:  # closing an output writes its last bytes; a spill file may fail
        if isinstance(exc.__context__, OutputFailed):
            raise exc.__context__ from None
        raise OutputFailed(f"cannot write: {exc.strerror or exc}") from None


def _replay_files(args: argparse.Namespace, cfg: RuleConfig) -> Replay:
    with ExitStack() as stack:
        inputs = _open_inputs(stack, args.files)
        outputs = {"--out": args.out, "--dead-letter": args.dead_letter,
                   "--summary-json": args.summary_json}  # fmt: skip
        _refuse_overlaps([fh for _, fh, _ in inputs], outputs)
        alerts_fh = _open_output(stack, args.out) or _stdout()
        dlq_fh = _open_output(stack, args.dead_letter)
        summary_fh = _open_output(stack, args.summary_json)  # refused now, not after the run
        replay = Replay(
            cfg, NdjsonWriter(alerts_fh, args.out), NdjsonWriter(dlq_fh, args.dead_letter)
        )
        sizes = [size for _, _, size in inputs]
        total = None if None in sizes else sum(s or 0 for s in sizes)
        bar = ProgressBar(total, "replay: reading")
        for name, fh, _ in inputs:
            try:
                replay.read(name, fh, bar.advance)
            except OutputFailed:
                raise
            except OSError as exc:  # opened, then unreadable (a device, a network file)
                raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
        bar.close(f"{sum(replay.summary.events_by_kind.values())} lines")
        summary = replay.run()
        if summary_fh is not None:
            import orjson

            try:
                summary_fh.write(
                    orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2) + b"\n"
                )
                summary_fh.flush()
            except OSError as exc:
                name = args.summary_json
                raise OutputFailed(f"cannot write {name}: {exc.strerror or exc}") from None
    return replay


def _end_process(status: int) -> NoReturn:
    """End the process now, its outputs flushed and closed, without freeing the heap.

    A replay's patients, events and ids are freed object by object at the end of an ordinary
    exit (about half a second for the benchmark feed); the operating system reclaims them at
    once.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(status)


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = load_rule_config(args.file)
    shown = args.file or DEFAULT_RULES
    print(f"{shown}: valid ({cfg.rule_version})")
    return 0


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
        inputs = _open_inputs(stack, args.files)
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


def _add_stream_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kmg", description="K/Mg Sentinel")
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser("replay", help="run the rules over canonical NDJSON files")
    replay.add_argument(
        "files", nargs="*", help="NDJSON inputs in arrival order (- or none: stdin)"
    )
    replay.add_argument("--out", help="alert NDJSON output (default: stdout)")
    replay.add_argument("--dead-letter", help="write invalid lines here as NDJSON")
    replay.add_argument("--config", type=Path, help="TOML file overriding config/rules.toml")
    replay.add_argument("--summary-json", help="also write the summary as JSON here")
    replay.set_defaults(func=cmd_replay)

    check = sub.add_parser("check-config", help="validate a rule configuration file")
    check.add_argument("file", nargs="?", type=Path, help="TOML file (default: config/rules.toml)")
    check.set_defaults(func=cmd_check_config)

    from streams.audit.run import configure_parser as configure_audit

    configure_audit(
        sub.add_parser("audit", help="retrospective audit report over historical feeds")
    )
    _add_stream_commands(sub)
    return parser


def main(argv: list[str] | None = None, *, end_process: bool = False) -> int:
    """Run the kmg command line; return the exit status.

    `end_process` (the console command) lets a command that holds a large heap end the process
    itself once its outputs are complete; called in-process, every command returns.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.end_process = end_process
    # Events and states are acyclic tuples and dicts created by the million: collecting the
    # youngest generation every 700 allocations costs more than it ever frees.
    gc.set_threshold(100_000, 20, 20)
    try:
        return int(args.func(args))
    except (UsageError, ConfigError) as exc:
        print(f"kmg: {exc}", file=sys.stderr)
        return 2
    except OutputFailed as exc:
        print(f"kmg: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`kmg replay | head`): stop quietly, as a pipeline's
        # commands do, with the status of a process ended by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def run() -> None:
    """Run the `kmg` console command."""
    sys.exit(main(end_process=True))


if __name__ == "__main__":
    run()
