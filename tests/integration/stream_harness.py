"""Run real `kmg worker` subprocesses against a real broker and read what they publish."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from alerts.rule_config import RuleConfig
from alerts.timestamps import parse_timestamp
from streams.replay import NdjsonWriter, Replay
from tests.scenario_support import COMPARED

REPO = Path(__file__).resolve().parents[2]
KMG = Path(sys.executable).parent / "kmg"
BOOTSTRAP = os.environ.get("KMG_KAFKA_BOOTSTRAP", "127.0.0.1:9092")

Row = tuple[Any, ...]


def comparable(alert: dict[str, Any]) -> Row:
    """Project an alert on the compared fields, `at` as an instant."""
    return tuple(parse_timestamp(alert[k]) if k == "at" else alert[k] for k in COMPARED)


def replay_alerts(cfg: RuleConfig, lines: Iterable[bytes]) -> list[dict[str, Any]]:
    """Return what `kmg replay` emits for these lines."""
    out = io.BytesIO()
    replay = Replay(cfg, NdjsonWriter(out), NdjsonWriter(None))
    replay.read("input", lines, lambda n: None)
    replay.run()
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def merge_by_availability(files: list[Path]) -> list[bytes]:
    """Order the lines of several inputs by availability, so that no event is late.

    Ties keep file and line order; a line without a readable availability (an invalid one)
    keeps its place after its file's previous line. Replay's output does not depend on the
    order of its input, and in this order a stream's output must equal it.
    """
    rows = []
    for i, path in enumerate(files):
        last = -(2**62)
        for j, line in enumerate(path.read_bytes().splitlines()):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                field_name = "at" if obj.get("kind") == "medication" else "resulted_at"
                last = parse_timestamp(obj[field_name])
            except Exception:  # noqa: BLE001 - invalid lines travel with their neighbours
                pass
            rows.append((last, i, j, line))
    return [row[3] for row in sorted(rows)]


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Worker:
    """One `kmg worker` subprocess."""

    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait for the clean shutdown; return the exit status."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)

    def metric_total(self, name: str) -> float:
        """Return the sum of a metric's samples from the worker's /metrics (0 if unreachable)."""
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_for_metric(self, name: str, at_least: float, timeout: float) -> float:
        """Poll /metrics until the metric reaches `at_least`; return its last value."""
        deadline = time.monotonic() + timeout
        value = 0.0
        while time.monotonic() < deadline and self.alive():
            value = self.metric_total(name)
            if value >= at_least:
                break
            time.sleep(1)
        return value

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class Deployment:
    """Topics, consumer group and table of one test, all named uniquely."""

    workdir: Path
    bootstrap: str = BOOTSTRAP
    partitions: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    workers: list[Worker] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"kmg-it-{self.tag}."

    @property
    def app_id(self) -> str:
        return f"kmg-it-{self.tag}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KMG_KAFKA_BOOTSTRAP=self.bootstrap,
            KMG_APP_ID=self.app_id,
            KMG_TOPIC_PREFIX=self.prefix,
            KMG_PARTITIONS=str(self.partitions),
            KMG_LOG_LEVEL="info",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def produce(self, path: Path, final: bool = True) -> str:
        """Run `kmg produce` and return its summary line."""
        args = [str(KMG), "produce", str(path)] + (["--final"] if final else [])
        done = subprocess.run(
            args, env=self.env(), cwd=REPO, capture_output=True, timeout=300, check=True
        )
        return done.stderr.decode().strip().splitlines()[-1]

    def start_worker(self, name: str, data_dir: Path | None = None) -> Worker:
        """Start `kmg worker` with its own data dir and web port."""
        data_dir = data_dir or self.workdir / f"data-{name}"
        port = free_port()
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("ab")
        process = subprocess.Popen(
            [str(KMG), "worker"],
            env=self.env(KMG_DATA_DIR=str(data_dir), KMG_WEB_PORT=str(port)),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        worker = Worker(process, log_path, port)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for w in self.workers:
            if w.alive():
                w.stop()

    async def read_alerts(
        self,
        done: Callable[[list[dict[str, Any]]], bool],
        timeout: float,
        settle: float = 0.0,
        alive: Callable[[], bool] = lambda: True,
    ) -> list[dict[str, Any]]:
        """Read the alerts topic from the start until done(alerts), then `settle` seconds more."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        alerts: list[dict[str, Any]] = []
        try:
            topic = f"{self.prefix}alerts"
            tps = [TopicPartition(topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            settle_until: float | None = None
            while loop.time() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    alerts.extend(orjson.loads(r.value) for r in records if r.value)
                if settle_until is None and done(alerts):
                    settle_until = loop.time() + settle
                if settle_until is not None and loop.time() >= settle_until:
                    break
                if not alive():
                    break
        finally:
            await consumer.stop()
        return alerts

    async def delete_topics(self) -> None:
        """Remove every topic of this deployment (inputs, outputs, changelog, assignor)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=15_000)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(f"kmg-it-{self.tag}")]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()


def count_rows(alerts: list[dict[str, Any]]) -> Counter[Row]:
    return Counter(comparable(a) for a in alerts)


def repeated_pairs(alerts: list[dict[str, Any]]) -> int:
    """Return how many alert events repeat an (alert_id, status) already seen."""
    pairs = Counter((a["alert_id"], a["status"]) for a in alerts)
    return sum(n - 1 for n in pairs.values() if n > 1)


FEED_PATIENTS = 2_000
FEED_EVENTS = 50_000
_FEEDS: dict[str, tuple[Path, list[dict[str, Any]]]] = {}


def synthetic_feed(folder: Path, cfg: RuleConfig) -> tuple[Path, list[dict[str, Any]]]:
    """Write (once per session) the 50,000-event, 2,000-patient feed and replay's alerts for it."""
    key = str(cfg.digest())
    if key not in _FEEDS:
        from streams.synthetic_feed import FeedShape, write_ndjson

        path = folder / "feed.ndjson"
        shape = FeedShape(patients=FEED_PATIENTS, days=4, seed=3, target_events=FEED_EVENTS)
        counts = write_ndjson(shape, path)
        assert counts["lines"] >= FEED_EVENTS, counts
        _FEEDS[key] = (path, replay_alerts(cfg, path.read_bytes().splitlines()))
    return _FEEDS[key]
