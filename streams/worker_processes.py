"""Run `kmg worker` subprocesses of one local deployment: spawn, watch /metrics and logs, stop.

A deployment names its topics, consumer group and table `<name>...`, so deleting what starts
with the name removes all of it. The integration tests and the stream benchmark use this.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KMG = Path(sys.executable).parent / "kmg"
BOOTSTRAP = os.environ.get("KMG_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
INPUT_KINDS = ("lab_result", "medication", "unknown")  # kmg_events_total kinds of input messages
_EVENTS_LINE = re.compile(rb'^kmg_events_total\{kind="(\w+)",outcome="\w+"\} ([0-9.e+]+)$', re.M)
_PROCESSING_COUNT = re.compile(rb"^kmg_event_processing_seconds_count ([0-9.e+]+)$", re.M)
_PROCESSING_SUM = re.compile(rb"^kmg_event_processing_seconds_sum ([0-9.e+-]+)$", re.M)
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WorkerProcess:
    """One `kmg worker` subprocess, its log file and its /metrics page."""

    label: str
    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int
    spawned: float  # time.time() just before the spawn

    def alive(self) -> bool:
        """Say whether the process is still running."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, wait for the clean shutdown, SIGKILL if it does not come; return the status."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)

    def status_kib(self, field_name: str) -> int | None:
        """Return a /proc/<pid>/status memory field (VmHWM, VmRSS) in KiB, None once gone."""
        try:
            text = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for row in text.splitlines():
            if row.startswith(field_name + ":"):
                return int(row.split()[1])
        return None

    def metrics(self) -> bytes | None:
        """Return the worker's /metrics page, None while it does not answer."""
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bytes(response.read())
        except OSError:
            return None

    def metric_total(self, name: str) -> float:
        """Return the sum of a metric's samples (0 while the worker does not answer)."""
        total = 0.0
        for line in (self.metrics() or b"").decode().splitlines():
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

    def input_events(self) -> int | None:
        """Return the input messages processed so far (kmg_events_total), None if unreachable."""
        body = self.metrics()
        if body is None:
            return None
        return int(
            sum(float(v) for k, v in _EVENTS_LINE.findall(body) if k.decode() in INPUT_KINDS)
        )

    def processing(self) -> tuple[int, float] | None:
        """Return (messages, seconds) of kmg_event_processing_seconds, None if unreachable."""
        body = self.metrics()
        count = _PROCESSING_COUNT.search(body or b"")
        total = _PROCESSING_SUM.search(body or b"")
        if count is None or total is None:
            return None
        return int(float(count.group(1))), float(total.group(1))

    def log_time(self, marker: str, after: float = 0.0) -> float | None:
        """Return the time of the first log line containing `marker` stamped at or after `after`."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return None
        for line in lines:
            if marker not in line:
                continue
            found = _LOG_TIME.match(line)
            if found is None:
                continue
            stamp = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if stamp >= after:
                return stamp
        return None

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the worker's log."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


@dataclass
class LocalDeployment:
    """The topics, consumer group and workers of one run, all named `<name>...`."""

    workdir: Path
    name: str = field(default_factory=lambda: f"kmg-it-{uuid.uuid4().hex[:10]}")
    bootstrap: str = BOOTSTRAP
    partitions: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"{self.name}."

    @property
    def app_id(self) -> str:
        return self.name

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    @property
    def inputs(self) -> tuple[str, str]:
        return (self.topic("labs"), self.topic("meds"))

    def env(self, **extra: str) -> dict[str, str]:
        """Return the environment of this deployment's `kmg` commands."""
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
        """Run `kmg produce` (creating the topics) and return its summary line."""
        args = [str(KMG), "produce", str(path)] + (["--final"] if final else [])
        done = subprocess.run(
            args, env=self.env(), cwd=REPO, capture_output=True, timeout=900, check=True
        )
        return done.stderr.decode().strip().splitlines()[-1]

    def create_topics(self) -> None:
        """Run `kmg topics` (for a deployment fed live rather than pre-loaded)."""
        subprocess.run(
            [str(KMG), "topics"], env=self.env(), cwd=REPO, capture_output=True, timeout=120
        ).check_returncode()

    def start_worker(self, label: str, data_dir: Path | None = None) -> WorkerProcess:
        """Start `kmg worker` with its own data dir, web port and log file."""
        data_dir = data_dir or self.workdir / f"data-{label}"
        port = free_port()
        log_path = self.workdir / f"{label}.log"
        with log_path.open("ab") as log:
            spawned = time.time()
            process = subprocess.Popen(
                [str(KMG), "worker"],
                env=self.env(KMG_DATA_DIR=str(data_dir), KMG_WEB_PORT=str(port)),
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(label, process, log_path, port, spawned)
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        """Stop every worker this deployment started (each by its own pid)."""
        for worker in self.workers:
            worker.stop()
