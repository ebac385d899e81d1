"""Benchmark one `kmg worker` through the real broker; print throughput, latency, memory, recovery.

Usage: python scripts/bench_stream.py [--events 200000] [--rate 1000] [--latency-seconds 40]
                                      [--state-patients 100000] [--phase-timeout 360]
                                      [--phases a,b,c,memory] [--keep-workdir]

(a) the worker's events/s over pre-loaded topics: a generated feed is produced (`kmg produce
    --final`) into fresh topics, then one worker starts; timed from its first consumed message
    (its /metrics) until its group's committed offsets reach the end of the inputs.
(b) the transport floor: a plain aiokafka consume-then-produce loop over the same topics,
    timed the same way (scripts/bench_transport.py).
(c) produce-to-alert latency at `--rate` events/s with hold and lateness 0
    (scripts/bench_latency.py).
Then the worker's peak RSS after loading `--state-patients` patients, and the time a fresh
worker (new data dir, same app id) takes to restore that state from the changelog.

Every topic and group is named kmg-bench-<tag>... and deleted at the end; every worker is
stopped (SIGTERM, then SIGKILL) even on failure. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError
from bench_deployment import BOOTSTRAP, REPO, BrokerProbe, Deployment, WorkerProcess
from bench_feeds import cached_feed, cached_state_feed
from bench_latency import measure_latency
from bench_report import Drain, Recovery, Report

PY = sys.executable


def progress(message: str) -> None:
    """Say on stderr what the run is doing (it takes minutes)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def time_drain(
    probe: BrokerProbe,
    group: str,
    ends: dict[Any, int],
    spawned: float,
    first_consumed: Callable[[], float | None],
    processed: Callable[[], int | None],
    alive: Callable[[], bool],
    timeout: float,
) -> Drain:
    """Time one consumer from its first message until its group committed every input offset."""
    drain = Drain(inputs=sum(ends.values()), spawned=spawned, cap=timeout)
    tps = list(ends)
    started = time.monotonic()
    next_check = next_progress = 0.0
    while (elapsed := time.monotonic() - started) < timeout:
        if not alive():
            raise RuntimeError(f"{group}: the consumer process exited")
        n = processed()
        now = time.time()
        if n is not None:
            drain.consumed = max(drain.consumed or 0, n)
        if drain.first is None:
            drain.first = first_consumed() or (now if n else None)
        if drain.processed is None and n is not None and n >= drain.inputs:
            drain.processed = now
        if drain.first is not None and elapsed >= next_check:
            try:
                committed = await probe.committed(group, tps)
            except KafkaError:  # e.g. the coordinator is still loading the group: ask again
                committed = {}
            done = sum(min(max(committed.get(tp, 0), 0), end) for tp, end in ends.items())
            drain.committed_count = max(drain.committed_count, done)
            if done >= drain.inputs:
                drain.committed = time.time()
                break
            next_check = elapsed + 0.25
        if elapsed >= next_progress:
            progress(
                f"{group}: {drain.consumed or 0:,} processed, "
                f"{drain.committed_count:,} committed of {drain.inputs:,}"
            )
            next_progress = elapsed + 30
        await asyncio.sleep(0.1 if drain.first is None else 0.2)
    drain.stopped = time.time()
    return drain


def _first_from(path: Path) -> Callable[[], float | None]:
    def first() -> float | None:
        for line in path.read_text().splitlines() if path.exists() else []:
            if line.startswith("first "):
                return float(line.split()[1])
        return None

    return first


async def transport_floor(
    probe: BrokerProbe, dep: Deployment, ends: dict[Any, int], timeout: float
) -> Drain:
    """(b): time scripts/bench_transport.py over the deployment's pre-loaded inputs."""
    output = dep.topic("relay")
    await probe.create_topic(output, dep.partitions)
    group = f"{dep.name}-relay"
    log = dep.workdir / "relay.log"
    script = Path(__file__).with_name("bench_transport.py")
    args = [PY, str(script), "--bootstrap", dep.bootstrap, "--group", group, "--output", output]
    with log.open("wb") as out:
        spawned = time.time()
        relay = subprocess.Popen([*args, *dep.inputs], stdout=out, stderr=subprocess.STDOUT)
    try:
        return await time_drain(
            probe,
            group,
            ends,
            spawned,
            _first_from(log),
            lambda: None,
            lambda: relay.poll() is None,
            timeout,
        )
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(timeout=30)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait(timeout=30)


async def worker_drain(
    probe: BrokerProbe, dep: Deployment, worker: WorkerProcess, ends: dict[Any, int], timeout: float
) -> Drain:
    """(a) and the state load: time a worker over pre-loaded inputs, note its peak memory."""
    drain = await time_drain(
        probe,
        dep.name,
        ends,
        worker.spawned,
        lambda: None,
        worker.input_events,
        worker.alive,
        timeout,
    )
    drain.peak_rss_kib = worker.status_kib("VmHWM")
    drain.processing = worker.processing()
    return drain


async def recover(dep: Deployment, probe: BrokerProbe, timeout: float) -> Recovery:
    """Start a fresh worker (new data dir, same app id); time the restore and the first message."""
    changelog = f"{dep.name}-patients-changelog"
    records = sum((await probe.end_offsets([changelog], dep.partitions)).values())
    worker = dep.start_worker("recover")
    recovery = Recovery(changelog_records=records, spawned=worker.spawned)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.alive():
        recovery.read = recovery.read or worker.log_time("Done reading from changelog topics")
        recovery.ready = recovery.ready or worker.log_time("Worker ready")
        recovery.rebuilt = worker.log_time("rebuilt partitions")
        if recovery.rebuilt is not None:
            break
        await asyncio.sleep(0.2)
    recovery.peak_rss_kib = worker.status_kib("VmHWM")
    worker.stop()
    # faust may log "Worker ready" only after the first message is processed: read it again.
    recovery.read = recovery.read or worker.log_time("Done reading from changelog topics")
    recovery.ready = recovery.ready or worker.log_time("Worker ready")
    if None in (recovery.read, recovery.ready, recovery.rebuilt):
        # Say why a marker is missing: faust's recovery and rebalance lines, in order.
        lines = worker.log_path.read_text(errors="replace").splitlines()
        shown = [x for x in lines if "Recovery" in x or "rebuilt" in x or "ebalanc" in x]
        print(
            "--- recovering worker, recovery log lines ---", *shown[-40:], sep="\n", file=sys.stderr
        )
    return recovery


async def preloaded(args: argparse.Namespace, tag: str, workdir: Path, report: Report) -> None:
    """(b) then (a), over one generated feed produced into fresh topics."""
    phases = set(args.phases.split(","))
    feed = cached_feed(args.data_dir, args.patients, args.days, args.events, args.seed)
    report.feed = feed
    dep = Deployment(workdir, f"{tag}-a", args.bootstrap, args.partitions)
    report.deployments.append(dep)
    async with BrokerProbe(args.bootstrap) as probe:
        progress(f"producing {feed.name} into {dep.prefix}labs/meds")
        started = time.monotonic()
        report.produced = dep.produce(feed)
        report.produce_seconds = time.monotonic() - started
        ends = await probe.end_offsets(dep.inputs, args.partitions)
        if "b" in phases:
            with report.phase("b"):
                progress("(b) transport floor: plain aiokafka consume-produce loop")
                report.floor = await transport_floor(probe, dep, ends, args.phase_timeout)
        if "a" in phases:
            with report.phase("a"):
                progress(
                    f"(a) one worker over the pre-loaded topics (cap {args.phase_timeout:.0f} s)"
                )
                worker = dep.start_worker("a")
                report.worker = await worker_drain(probe, dep, worker, ends, args.phase_timeout)
                worker.stop()


async def latency(args: argparse.Namespace, tag: str, workdir: Path, report: Report) -> None:
    """(c) on fresh topics, hold and allowed lateness 0."""
    zero = dict(KMG_HOLD_MINUTES="0", KMG_ALLOWED_LATENESS_MINUTES="0")
    dep = Deployment(workdir, f"{tag}-c", args.bootstrap, args.partitions, extra_env=zero)
    report.deployments.append(dep)
    progress(f"(c) latency at {args.rate:,.0f} events/s for {args.latency_seconds:.0f} s")
    dep.create_topics()
    worker = dep.start_worker("c")
    report.latency = await measure_latency(
        args.bootstrap,
        dep.inputs,
        dep.topic("alerts"),
        args.partitions,
        args.rate,
        args.latency_seconds,
        args.latency_drain,
        worker.alive,
    )
    report.latency_processing = worker.processing()
    worker.stop()


async def memory(args: argparse.Namespace, tag: str, workdir: Path, report: Report) -> None:
    """Load `--state-patients` patients into one worker, then recover them in a fresh one."""
    dep = Deployment(workdir, f"{tag}-m", args.bootstrap, args.partitions)
    report.deployments.append(dep)
    feed = cached_state_feed(args.data_dir, args.state_patients, args.state_events)
    async with BrokerProbe(args.bootstrap) as probe:
        with report.phase("memory"):
            progress(f"memory: producing {feed.name}, then one worker loads it")
            dep.produce(feed)
            ends = await probe.end_offsets(dep.inputs, args.partitions)
            worker = dep.start_worker("load")
            report.state_load = await worker_drain(probe, dep, worker, ends, args.phase_timeout)
            worker.stop()
        if report.state_load is not None:
            with report.phase("recovery"):
                progress("recovery: a fresh worker restores the table from the changelog")
                report.recovery = await recover(dep, probe, args.recovery_timeout)


async def run(args: argparse.Namespace, tag: str, workdir: Path, report: Report) -> None:
    """Run every measurement asked for in turn; a failed one is reported, the next still runs."""
    phases = set(args.phases.split(","))
    if phases & {"a", "b"}:
        await preloaded(args, tag, workdir, report)
    if "c" in phases:
        with report.phase("c"):
            await latency(args, tag, workdir, report)
    if "memory" in phases:
        await memory(args, tag, workdir, report)


async def clean_up(bootstrap: str, tag: str, deployments: list[Deployment]) -> list[str]:
    groups = [d.name for d in deployments] + [f"{d.name}-relay" for d in deployments]
    async with BrokerProbe(bootstrap) as probe:
        return await probe.delete_run(tag, groups)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--events", type=int, default=200_000, help="(a, b) pre-loaded feed size (lines)")
    add("--patients", type=int, default=10_000, help="(a, b) feed patients")
    add("--days", type=int, default=14, help="(a, b) feed days")
    add("--seed", type=int, default=1)
    add("--rate", type=float, default=1_000.0, help="(c) events per second")
    add("--latency-seconds", type=float, default=40.0, help="(c) paced run length")
    add("--latency-drain", type=float, default=20.0, help="(c) wait for late alerts")
    add("--state-patients", type=int, default=100_000, help="patients for the memory figure")
    add("--state-events", type=int, default=2, choices=(1, 2, 3, 4), help="events per patient")
    add("--phase-timeout", type=float, default=360.0, help="cap per pre-loaded drain (s)")
    add("--recovery-timeout", type=float, default=150.0)
    add("--partitions", type=int, default=8)
    add("--bootstrap", default=BOOTSTRAP)
    add("--data-dir", type=Path, default=REPO / "bench-data")
    add("--phases", default="a,b,c,memory", help="measurements to run (memory: with recovery)")
    add("--keep-workdir", action="store_true", help="keep worker logs and data dirs")
    args = parser.parse_args()

    tag = f"kmg-bench-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{tag}-"))
    report = Report(args, tag, os.getloadavg())
    # SIGTERM unwinds like Ctrl-C, so the finally below still stops workers and deletes topics.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(run(args, tag, workdir, report))
    except KeyboardInterrupt:
        report.errors["run"] = "interrupted"
    except Exception as exc:  # noqa: BLE001 - print what was measured before failing
        report.errors["run"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        for dep in report.deployments:
            dep.stop_workers()
        report.failed_logs()
        try:
            deleted = asyncio.run(clean_up(args.bootstrap, tag, report.deployments))
            print(f"cleanup: deleted {len(deleted)} topics named {tag}...", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001
            print(f"cleanup: could not delete topics {tag}...: {exc}", file=sys.stderr)
        if args.keep_workdir:
            print(f"worker logs and data kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report.load_after = os.getloadavg()
    report.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
