"""Run events through the pure core (replay, or a simulated stream) and compare alert outputs."""

from __future__ import annotations

import heapq
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from alerts.alert import Alert
from alerts.decoder import DeadLetter, Decoder, Ignored
from alerts.engine import Engine
from alerts.events import MICROS_PER_MINUTE
from alerts.rule_config import RuleConfig
from alerts.scheduler import FOREVER, EventTimeScheduler
from alerts.state import PatientState
from streams.replay import NdjsonWriter, Replay, ReplaySummary
from streams.rule_files import load_rule_config
from tests.alerts.feed import Expected, encode, micros

PROJECTED = (
    "alert_id",
    "rule",
    "status",
    "severity",
    "at",
    "trigger_event_id",
    "resolution",
)


@lru_cache(maxsize=64)
def _config(key: bytes) -> RuleConfig:
    return load_rule_config(overrides=orjson.loads(key))


def config(**overrides: Any) -> RuleConfig:
    """Return config/rules.toml overlaid by keyword overrides (cached)."""
    return _config(orjson.dumps(overrides, option=orjson.OPT_SORT_KEYS))


@dataclass
class Outcome:
    alerts: list[dict[str, Any]]
    dead: list[dict[str, Any]]
    summary: ReplaySummary
    replay: Replay


def replay(
    events: Iterable[dict[str, Any] | bytes],
    cfg: RuleConfig | None = None,
    *,
    prune: bool = True,
    chunk_size: int = 250_000,
    time_order: bool = False,
) -> Outcome:
    """Replay events given in arrival order; return the wire alerts, dead letters and summary.

    `time_order` releases the events in time order rather than patient by patient.
    """
    alerts_buf, dead_buf = io.BytesIO(), io.BytesIO()
    run = Replay(
        cfg or config(),
        NdjsonWriter(alerts_buf),
        NdjsonWriter(dead_buf),
        chunk_size=chunk_size,
    )
    if not prune:
        run.engine.prune_every = FOREVER
    run.read("test", [encode(e) for e in events], lambda n: None)
    summary = run.run(in_time_order=time_order)

    def parse(buf: io.BytesIO) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in buf.getvalue().splitlines()]

    return Outcome(parse(alerts_buf), parse(dead_buf), summary, run)


def project(alert: dict[str, Any]) -> Expected:
    """Project a wire alert onto the fields the spec fixes."""
    return tuple(alert[k] for k in PROJECTED)


def by_instant(rows: Sequence[Expected]) -> list[Counter[Expected]]:
    """Group consecutive rows with one `at` into multisets (order within an instant is free)."""
    groups: list[Counter[Expected]] = []
    last = None
    for row in rows:
        if not groups or row[4] != last:
            groups.append(Counter())
            last = row[4]
        groups[-1][row] += 1
    return groups


def assert_alerts(alerts: Sequence[dict[str, Any]], expected: Sequence[Expected]) -> None:
    """Assert the alerts are exactly the expected ones, in order up to ties within an instant.

    `expected` may be listed in any order: it is sorted by instant (stably) before comparing,
    while the actual output must already come in non-decreasing `at`.
    """
    actual = [project(a) for a in alerts]
    expected = sorted(expected, key=lambda row: micros(row[4]))
    assert by_instant(actual) == by_instant(expected), _diff(actual, expected)


def _diff(actual: Sequence[Expected], expected: Sequence[Expected]) -> str:
    show = lambda rows: "\n".join(f"  {r[1:]}" for r in rows) or "  (none)"  # noqa: E731
    return f"\nactual:\n{show(actual)}\nexpected:\n{show(expected)}"


def replay_alerts(
    events: Iterable[dict[str, Any] | bytes], cfg: RuleConfig | None = None
) -> list[dict[str, Any]]:
    """Replay events and return only the wire alerts."""
    return replay(events, cfg).alerts


def decode(event: dict[str, Any] | bytes, cfg: RuleConfig | None = None) -> Any:
    """Decode one event with a decoder of the given (or default) configuration."""
    cfg = cfg or config()
    decoder = _decoders.get(cfg.digest())
    if decoder is None:
        decoder = _decoders[cfg.digest()] = Decoder(cfg)
    return decoder.decode(encode(event))


_decoders: dict[str, Decoder] = {}


class SimulatedStream:
    """The stream's event-time discipline on one partition, without a broker.

    Arrivals are decoded and de-duplicated, wait in a reorder buffer until the watermark
    W = (largest availability seen) - allowed lateness passes them, and are then released to an
    EventTimeScheduler in the total order; timers run once W passes them (an event at exactly
    a = W is not late, so it may still arrive). `finish` sets W to +infinity, as at the end of
    a replay.
    """

    def __init__(self, cfg: RuleConfig) -> None:
        self.decoder = Decoder(cfg)
        self.lateness = round(cfg.allowed_lateness_minutes * MICROS_PER_MINUTE)
        self.states: dict[str, PatientState] = {}
        self.out: list[Alert] = []
        self.scheduler = EventTimeScheduler(
            Engine(cfg, self.decoder.codes), self.states, self._emit
        )
        self.seen: dict[tuple[str, str], int | None] = {}
        self.buffer: list[Any] = []
        self.stream_time: int | None = None
        self.late = 0
        self.released_up_to: int | None = None

    def _emit(self, alerts: list[Alert]) -> None:
        self.out.extend(alerts)

    def arrive(self, raw: bytes) -> None:
        ev = self.decoder.decode(raw)
        if isinstance(ev, DeadLetter):
            return
        if isinstance(ev, Ignored):
            self.seen.setdefault((ev[0], ev[1]), None)
            return
        key, a = (ev[1], ev[2]), ev.available
        if key in self.seen:
            # A copy earlier in release order takes the place of one still buffered.
            held = self.seen[key]
            waiting = [e for e in self.buffer if (e[1], e[2]) == key]
            watermark = self.released_up_to
            if held is None or a >= held or not waiting:
                return
            if watermark is not None and a < watermark:
                return
            self.buffer.remove(waiting[0])
            heapq.heapify(self.buffer)
        self.seen[key] = a
        if self.released_up_to is not None and a < self.released_up_to:
            self.late += 1  # the test's arrival orders must never produce this
        heapq.heappush(self.buffer, ev)
        self.stream_time = a if self.stream_time is None else max(self.stream_time, a)
        self.advance(self.stream_time - self.lateness)

    def advance(self, watermark: int) -> None:
        while self.buffer and self.buffer[0].available < watermark:
            self.scheduler.process(heapq.heappop(self.buffer))
        self.scheduler.run_timers(watermark - 1)
        if self.released_up_to is None or watermark > self.released_up_to:
            self.released_up_to = watermark

    def finish(self) -> list[dict[str, Any]]:
        self.advance(FOREVER)
        return [a.to_wire() for a in self.out]


def stream_alerts(raws: Iterable[bytes], cfg: RuleConfig | None = None) -> SimulatedStream:
    """Feed raw messages through a SimulatedStream in the given arrival order."""
    stream = SimulatedStream(cfg or config())
    for raw in raws:
        stream.arrive(raw)
    return stream
