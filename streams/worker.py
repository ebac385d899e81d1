"""Run one stream worker until SIGTERM (clean shutdown) or SIGKILL.

After an unclean stop (SIGKILL, a crash) the local RocksDB files may hold writes the
changelog never received, and recovery would then mix them with older changelog records.
The worker therefore keeps a marker file while it runs; finding one at start-up means the
last run did not stop cleanly, and the local table files are discarded so the table is
rebuilt from the changelog alone: a prefix of what was written, hence consistent.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import shutil
import signal
import socket
import threading
from pathlib import Path
from typing import IO

import faust
from prometheus_client import CollectorRegistry

from alerts.rule_config import ConfigError
from streams.app import build_app
from streams.log_repeats import RepeatedLines
from streams.settings import ProcessingGuarantee, Settings
from streams.topics import ensure_topics

log = logging.getLogger("kmg.worker")

RUNNING_MARKER = "kmg-worker.running"
DATA_DIR_LOCK = "kmg-worker.lock"


class UnsupportedGuarantee(ConfigError):
    """A processing guarantee this worker cannot keep."""


def check_guarantee(settings: Settings) -> None:
    """Refuse exactly_once, which faust-streaming 0.15 cannot give with a sink topic.

    Its transactional producer names a transaction after the consumer-group topic group of
    the destination topic (TransactionManager.send -> assignor.group_for_topic), and the
    alerts and dead-letter topics are written, not consumed, so every alert send would fail.
    """
    if settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE:
        raise UnsupportedGuarantee(
            "processing_guarantee=exactly_once is not supported by this worker "
            "(faust-streaming 0.15 transactions cannot write the alerts topic); "
            "use at_least_once: repeats are (alert_id, status) pairs, idempotent for consumers"
        )


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold the data directory for this process; refuse one another worker holds.

    A second worker on the same directory would take the first one's marker for an unclean
    stop and delete the table files it is using. The lock goes with the process, however it
    ends, so a crash never leaves it behind.
    """
    handle = (data_dir / DATA_DIR_LOCK).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise ConfigError(
            f"KMG_DATA_DIR {data_dir} is in use by another worker (pid {holder}): "
            "give each worker its own data directory"
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def check_web_port(settings: Settings) -> None:
    """Refuse a web port another process listens on, before anything is started."""
    with socket.socket(socket.AF_INET6 if ":" in settings.web_host else socket.AF_INET) as probe:
        # As the web server binds: connections of a stopped worker still closing (TIME-WAIT,
        # a scraper's FIN-WAIT) do not hold the port against its restart.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.web_host, settings.web_port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise ConfigError(
                    f"KMG_WEB_HOST {settings.web_host}: cannot listen there ({exc.strerror})"
                ) from None
            raise ConfigError(
                f"KMG_WEB_PORT {settings.web_port} is in use on {settings.web_host}: "
                "choose another port"
            ) from None


def discard_after_unclean_stop(data_dir: Path, tabledir: Path) -> bool:
    """Remove local table files if the last run left its marker; return whether it did."""
    marker = data_dir / RUNNING_MARKER
    if not marker.exists():
        return False
    if tabledir.exists():
        shutil.rmtree(tabledir)
    log.warning("the last worker run did not stop cleanly: rebuilding the table from its changelog")
    return True


class SentinelWorker(faust.Worker):
    """Faust's worker, whose stop has a deadline: a broker that is gone cannot hold it forever."""

    grace_seconds = 20.0

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        for handler in logger.handlers:
            handler.addFilter(RepeatedLines())  # one each: a shared one would pass a line once

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        deadline = threading.Timer(self.grace_seconds, self._stop_now)
        deadline.daemon = True
        deadline.start()
        super()._schedule_shutdown(signal)

    def _stop_now(self) -> None:
        # The producer waits on a broker that does not answer (Faust lets a record wait 20
        # minutes). Ending here is a crash the design survives: offsets are committed only
        # after acknowledgements, and the marker left behind makes the next start rebuild the
        # local table from the changelog.
        log.error(
            "the stop did not finish within %.0f s (is the broker reachable?); ending now, "
            "without the records the broker has not acknowledged: the next start takes their "
            "input again",
            self.grace_seconds,
        )
        logging.shutdown()
        os._exit(1)


def build_worker(
    app: faust.App, settings: Settings, loop: asyncio.AbstractEventLoop
) -> faust.Worker:
    """Return the Faust worker that runs the app, logging at the configured level."""
    worker = SentinelWorker(
        app,
        # A number, never a name: the logging setup reads some names (e.g. "warn") its own way.
        loglevel=settings.log_level.number,
        loop=loop,
        redirect_stdouts=False,
        quiet=True,
    )
    # The terminal spinner would lower the root logger to DEBUG for every level from WARNING
    # up (so that it spins per record): each per-message debug call then builds its record.
    worker.spinner = None
    worker.grace_seconds = settings.shutdown_grace_seconds
    return worker


def run_worker(settings: Settings) -> int:
    """Create missing topics, then run the Faust worker in this process until stopped."""
    check_guarantee(settings)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"KMG_DATA_DIR {settings.data_dir}: {exc.strerror}") from None
    held = lock_data_dir(settings.data_dir)  # noqa: F841 - held open until the process ends
    check_web_port(settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    app = build_app(settings, CollectorRegistry())
    discard_after_unclean_stop(settings.data_dir, Path(app.conf.tabledir))
    marker = settings.data_dir / RUNNING_MARKER
    marker.write_text(f"{os.getpid()}\n")
    worker = build_worker(app, settings, loop)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if not exc.code:
            marker.unlink(missing_ok=True)
        raise
    return 0  # pragma: no cover - execute_from_commandline always raises SystemExit
