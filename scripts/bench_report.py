"""The figures of one stream benchmark run and the table that prints them against the goals."""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_latency import LatencyResult, percentile

GOAL_EVENTS_PER_SECOND = 20_000
GOAL_SHARE_OF_FLOOR = 0.5
GOAL_P99_SECONDS = 0.100


@dataclass
class Drain:
    """One consumer's timed pass over pre-loaded topics (epoch seconds)."""

    inputs: int
    spawned: float
    cap: float
    first: float | None = None  # first message consumed
    processed: float | None = None  # every input processed (worker metrics)
    committed: float | None = None  # group's committed offsets at the end of every input
    stopped: float = 0.0
    consumed: int | None = None  # inputs processed (worker metrics; None for the relay)
    committed_count: int = 0
    peak_rss_kib: int | None = None
    processing: tuple[int, float] | None = None  # worker's (messages, seconds) in its agent

    @property
    def startup(self) -> float | None:
        return None if self.first is None else self.first - self.spawned

    def rate(self) -> float | None:
        """Inputs per second from the first message to the last commit (partial: so far)."""
        if self.first is None:
            return None
        if self.committed is not None:
            return self.inputs / max(self.committed - self.first, 1e-9)
        done = self.consumed if self.consumed is not None else self.committed_count
        return done / max(self.stopped - self.first, 1e-9)

    def processed_rate(self) -> float | None:
        if self.first is None or self.processed is None:
            return None
        return self.inputs / max(self.processed - self.first, 1e-9)

    def note(self) -> str:
        if self.first is None:
            return "never consumed"
        if self.committed is None:
            done = f"{self.committed_count:,} committed"
            if self.consumed is not None:
                done += f", {self.consumed:,} processed"
            return f"PARTIAL at the {self.cap:.0f} s cap: {done} of {self.inputs:,}"
        return f"{self.inputs:,} in {self.committed - self.first:.1f} s"


@dataclass
class Recovery:
    """A fresh worker restoring a deployment's table from its changelog (epoch seconds)."""

    changelog_records: int
    spawned: float
    read: float | None = None  # faust logs "Done reading from changelog topics"
    ready: float | None = None  # faust's recovery logs "Worker ready"
    rebuilt: float | None = None  # the processor logs "rebuilt partitions" at its first message
    peak_rss_kib: int | None = None

    def since_spawn(self, at: float | None) -> str:
        return "not seen" if at is None else f"{at - self.spawned:.1f} s"


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:,.0f} MiB"


def _ms(seconds: float, drain: float = 0.0) -> str:
    if math.isnan(seconds):
        return "n/a"
    if math.isinf(seconds):  # not received by the end of the drain, so at least that late
        return f"> {drain:,.0f} s (not received)"
    return f"{seconds * 1000:,.1f} ms"


def _per_message(processing: tuple[int, float] | None) -> str:
    if not processing or not processing[0]:
        return "n/a"
    count, seconds = processing
    return f"{seconds / count * 1000:.2f} ms mean over {count:,} messages"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


class Report:
    """Collects the figures of a run; prints them as one table."""

    def __init__(self, args: argparse.Namespace, tag: str, load_before: tuple[float, ...]) -> None:
        self.args = args
        self.tag = tag
        self.load_before = load_before
        self.load_after: tuple[float, ...] = ()
        self.phases = set(args.phases.split(","))
        self.errors: dict[str, str] = {}
        self.deployments: list[Any] = []
        self.feed: Path | None = None
        self.produced = ""
        self.produce_seconds = 0.0
        self.floor: Drain | None = None
        self.worker: Drain | None = None
        self.latency: LatencyResult | None = None
        self.latency_processing: tuple[int, float] | None = None
        self.state_load: Drain | None = None
        self.recovery: Recovery | None = None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Run one measurement; on failure note it and let the run go on."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - a benchmark prints what it could measure
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()

    def failed_logs(self) -> None:
        """Print the log tails of the workers when something failed."""
        if not self.errors:
            return
        for dep in self.deployments:
            for worker in dep.workers:
                print(f"--- {dep.name} worker {worker.label} log tail ---", file=sys.stderr)
                print(worker.log_tail(), file=sys.stderr)

    def rows(self) -> list[tuple[str, str, str, str]]:
        rows: list[tuple[str, str, str, str]] = []
        a, b = self.worker, self.floor
        a_rate = a.rate() if a else None
        b_rate = b.rate() if b else None
        if a is not None and a_rate is not None:
            goal = a_rate >= GOAL_EVENTS_PER_SECOND
            rows.append(
                (
                    "(a) worker, pre-loaded topics",
                    f"{a_rate:,.0f} events/s",
                    f">= {GOAL_EVENTS_PER_SECOND:,} events/s",
                    _verdict(goal),
                )
            )
            rows.append(("    committed offsets at end", a.note(), "", ""))
            p_rate = a.processed_rate()
            if p_rate is not None:
                rows.append(("    all processed (/metrics)", f"{p_rate:,.0f} events/s", "", ""))
            rows.append(("    worker startup (spawn -> 1st msg)", f"{a.startup:.1f} s", "", ""))
            rows.append(("    worker peak RSS after (a)", _mib(a.peak_rss_kib), "", ""))
            rows.append(("    agent time per message", _per_message(a.processing), "", ""))
        elif "a" in self.phases:
            rows.append(("(a) worker, pre-loaded topics", self.errors.get("a", "n/a"), "", ""))
        if b is not None and b_rate is not None:
            rows.append(("(b) aiokafka consume-produce floor", f"{b_rate:,.0f} events/s", "", ""))
            rows.append(("    committed offsets at end", b.note(), "", ""))
            rows.append(("    floor startup (spawn -> 1st msg)", f"{b.startup:.1f} s", "", ""))
        elif "b" in self.phases:
            rows.append(("(b) aiokafka consume-produce floor", self.errors.get("b", "n/a"), "", ""))
        if a_rate is not None and b_rate:
            share = a_rate / b_rate
            rows.append(
                (
                    "(a) / (b)",
                    f"{share:.1%}",
                    f">= {GOAL_SHARE_OF_FLOOR:.0%}",
                    _verdict(share >= GOAL_SHARE_OF_FLOOR),
                )
            )
        if "c" in self.phases:
            rows.extend(self._latency_rows())
        if "memory" in self.phases:
            rows.extend(self._state_rows())
        return rows

    def _latency_rows(self) -> list[tuple[str, str, str, str]]:
        lat = self.latency
        if lat is None:
            return [("(c) produce -> alert latency", self.errors.get("c", "n/a"), "", "")]
        values = lat.latencies()
        p99 = percentile(values, 0.99)
        rate = lat.events / lat.send_seconds if lat.send_seconds else 0.0
        got = len(values) - lat.missing
        ok = None if math.isnan(p99) else p99 < GOAL_P99_SECONDS
        part = lat.worker_part()
        drain = self.args.latency_drain
        return [
            ("(c) latency p50", _ms(percentile(values, 0.50), drain), "", ""),
            ("(c) latency p90", _ms(percentile(values, 0.90), drain), "", ""),
            (
                "(c) latency p99",
                _ms(p99, drain),
                f"< {GOAL_P99_SECONDS * 1000:.0f} ms",
                _verdict(ok),
            ),
            ("(c) latency max", _ms(percentile(values, 1.0), drain), "", ""),
            ("    alerts matched", f"{got:,} of {len(values):,} triggers", "", ""),
            (
                "    events sent",
                f"{lat.events:,} in {lat.send_seconds:.1f} s = {rate:,.0f}/s",
                "",
                "",
            ),
            (
                "    worker part p50 / p99 (received)",
                f"{_ms(percentile(part, 0.5))} / {_ms(percentile(part, 0.99))}",
                "",
                "",
            ),
            ("    warm-up (start -> first alerts)", f"{lat.warmup_seconds:.1f} s", "", ""),
            ("    agent time per message", _per_message(self.latency_processing), "", ""),
        ]

    def _state_rows(self) -> list[tuple[str, str, str, str]]:
        n = self.args.state_patients
        s, r = self.state_load, self.recovery
        if s is None:
            return [(f"memory, {n:,} patients", self.errors.get("memory", "n/a"), "", "")]
        rate = s.rate()
        patients = f"{n:,} patients"
        if s.committed is None and s.consumed is not None:
            # The feed goes patient after patient (in availability order), so this is close.
            patients = f"about {min(n, s.consumed // self.args.state_events):,} patients"
        rows = [
            (f"memory: worker peak RSS, {patients}", _mib(s.peak_rss_kib), "", ""),
            ("    state load", s.note() + (f", {rate:,.0f} events/s" if rate else ""), "", ""),
        ]
        if r is None:
            rows.append(("recovery from changelog", self.errors.get("recovery", "n/a"), "", ""))
            return rows
        rows += [
            ("recovery: spawn -> changelog read", r.since_spawn(r.read), "", ""),
            ("    spawn -> 'Worker ready'", r.since_spawn(r.ready), "", ""),
            ("    spawn -> 1st msg after rebuild", r.since_spawn(r.rebuilt), "", ""),
            ("    changelog records restored", f"{r.changelog_records:,}", "", ""),
            ("    recovering worker peak RSS", _mib(r.peak_rss_kib), "", ""),
        ]
        return rows

    def print(self) -> None:
        args = self.args
        load = " ".join(f"{x:.2f}" for x in self.load_before)
        after = " ".join(f"{x:.2f}" for x in self.load_after)
        print(
            f"kmg stream benchmark {self.tag}: one worker, {args.partitions} partitions, "
            f"broker {args.bootstrap}"
        )
        print(
            f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"load average before {load}, after {after}"
        )
        if self.feed is not None:
            print(f"(a, b) feed: {self.feed.name}; {self.produced} ({self.produce_seconds:.1f} s)")
        if "c" in self.phases:
            print(
                f"(c) {args.rate:,.0f} events/s for {args.latency_seconds:.0f} s, "
                "KMG_HOLD_MINUTES=0 KMG_ALLOWED_LATENESS_MINUTES=0"
            )
        if "memory" in self.phases:
            print(f"memory: {args.state_patients:,} patients x {args.state_events} events")
        rows = [("measure", "value", "goal", "")] + self.rows()
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for i, row in enumerate(rows):
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
            if i == 0:
                print("  ".join("-" * w for w in widths).rstrip())
        for name, error in self.errors.items():
            print(f"failed: {name}: {error}")
