"""The `kmg` command: replay, check-config, and the stream and audit commands."""

from __future__ import annotations

import argparse
import gc
import os
import stat
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, NoReturn

from alerts.rule_config import ConfigError, RuleConfig
from streams.command_inputs import UsageError, open_inputs
from streams.output_failure import OutputFailed
from streams.output_file import OutputFile
from streams.progress import ProgressBar
from streams.replay import NdjsonWriter, Replay
from streams.rule_files import DEFAULT_RULES, load_rule_config
from streams.stream_commands import add_stream_commands


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
        inputs = open_inputs(stack, args.files)
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
    add_stream_commands(sub)
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
