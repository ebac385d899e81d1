"""Offline replay: canonical NDJSON in, alerts and dead letters out, through the stream's engine."""

from __future__ import annotations

import base64
import gc
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from alerts.alert import Alert
from alerts.codes import CodeSets
from alerts.decoder import MAX_MESSAGE_BYTES, DeadLetter, Decoder, Ignored, IgnoreReason
from alerts.dedup import SeenEvents
from alerts.engine import Engine, EpisodeObserver
from alerts.events import LabResult, Medication
from alerts.patient_release import release_by_patient
from alerts.rule_config import RuleConfig, Windows
from alerts.scheduler import FOREVER, EventTimeScheduler
from alerts.state import PatientState
from streams.external_sort import ExternalSorter
from streams.output_failure import OutputFailed

_FLUSH_BYTES = 1 << 20
_OTHER_MEDICATION = IgnoreReason.OTHER_MEDICATION


@dataclass
class ReplaySummary:
    """What a replay read, ignored, rejected and emitted."""

    events_by_kind: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    unknown_removals: int = 0
    patients: int = 0
    sorted_runs: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as plain JSON-ready data with sorted keys."""
        return {
            "events_by_kind": _plain(self.events_by_kind),
            "duplicates": self.duplicates,
            "ignored": _plain(self.ignored),
            "invalid": _plain(self.invalid),
            "alerts": _plain(self.alerts),
            "unknown_removals": self.unknown_removals,
            "patients": self.patients,
        }

    def render(self) -> str:
        """Return the short human summary printed on stderr."""

        def line(title: str, counts: Counter[str] | dict[str, int]) -> str:
            body = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
            return f"{title}: {body}"

        return "\n".join(
            [
                line("events read", self.events_by_kind),
                f"duplicates: {self.duplicates}",
                line("ignored", self.ignored),
                line("invalid", self.invalid),
                line("alerts", self.alerts),
                f"patients: {self.patients}",
            ]
        )


def _pause_collector() -> bool:
    """Pause the cyclic garbage collector; return whether it was running.

    A replay allocates events, records and timers by the million and keeps many of them: the
    collector would trace them over and over, yet they hold no reference cycles (a whole replay
    of the benchmark feed leaves nothing for it to collect), and it runs again afterwards.
    """
    running = gc.isenabled()
    gc.disable()
    return running


def _plain(counts: Counter[str]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(counts.items())}


def dead_letter_record(dead: DeadLetter, source: dict[str, Any]) -> dict[str, Any]:
    """Return the dead-letter JSON object: reason, detail, original bytes, where it came from."""
    record: dict[str, Any] = {"reason": dead.reason, "detail": dead.detail}
    try:
        record["raw"] = dead.raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw"] = None
        record["raw_base64"] = base64.b64encode(dead.raw).decode("ascii")
    record.update(source)
    return record


class NdjsonWriter:
    """Buffered NDJSON output of JSON-ready objects."""

    def __init__(self, stream: IO[bytes] | None, name: str | None = None) -> None:
        self.stream = stream
        self.name = name or "stdout"
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, obj: Any) -> None:
        if self.stream is None:
            return
        line = orjson.dumps(obj) + b"\n"
        self._parts.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.stream is not None and self._parts:
            try:
                self.stream.write(b"".join(self._parts))
                self.stream.flush()
            except BrokenPipeError:
                raise  # the reader went away: the command ends quietly
            except OSError as exc:
                raise OutputFailed(f"cannot write {self.name}: {exc.strerror or exc}") from None
        self._parts, self._size = [], 0


Source = tuple[str, Iterable[bytes]]
"""A named source of raw lines (file name, lines)."""


class Replay:
    """Read every line, sort into release order, run the engine with W = +infinity at the end."""

    def __init__(
        self,
        cfg: RuleConfig,
        alerts_out: NdjsonWriter,
        dead_letters_out: NdjsonWriter,
        chunk_size: int = 600_000,
        on_alerts: Callable[[list[Alert]], None] | None = None,
        observer: EpisodeObserver | None = None,
    ) -> None:
        codes = CodeSets(cfg)
        self.decoder = Decoder(cfg, codes, share_names=True)
        self.engine = Engine(cfg, codes, observer)
        self.alerts_out = alerts_out
        self.dead_letters_out = dead_letters_out
        self.summary = ReplaySummary()
        # Each patient's event ids, remembered over that patient's own availability times, so
        # that no other patient's events decide when a copy is still recognised (RULES.md 2).
        self.seen: dict[str, SeenEvents] = {}
        self.seen_horizon = Windows(cfg).history
        self.sorter = ExternalSorter(chunk_size)
        # (patient_id, event_id, a) of copies a copy earlier in release order took over.
        self.superseded: Counter[tuple[str, str, int]] = Counter()
        self.states: dict[str, PatientState] = {}
        self.on_alerts = on_alerts

    def read(self, name: str, lines: Iterable[bytes], progress: Callable[[int], None]) -> None:
        """Decode, validate and de-duplicate one source in arrival order."""
        decode, add, seen = self.decoder.decode, self.sorter.add, self.seen
        # A file name is bytes to the system: one that is not UTF-8 is still shown, readably.
        source = os.fsencode(name).decode("utf-8", "replace")
        horizon = self.seen_horizon
        summary = self.summary
        ignored = summary.ignored
        labs = medications = invalid = duplicates = 0
        read_bytes = 0
        collecting = _pause_collector()
        try:
            for number, raw in enumerate(lines, 1):
                size = len(raw)
                read_bytes += size
                if not number & 4095:
                    progress(read_bytes)
                    read_bytes = 0
                if size > MAX_MESSAGE_BYTES:
                    raw = raw.rstrip(b"\r\n")  # its line end must not make a message too large
                if not raw or raw.isspace():
                    continue
                # Decoded with its line end (JSON allows whitespace after the value), which
                # saves copying every line without it.
                ev: Any = decode(raw)  # one of four tuples, told apart by its exact type
                kind = type(ev)
                if kind is Ignored:  # the most common: codes the rules do not read
                    why = ev[2]
                    if why is _OTHER_MEDICATION:
                        medications += 1
                    else:
                        labs += 1
                    ids = seen.get(ev[0])
                    if ids is None:
                        ids = seen[ev[0]] = SeenEvents(horizon)
                    if ids.first_sighting(ev[1], None):
                        ignored[why] += 1
                    else:
                        duplicates += 1
                elif kind is LabResult or kind is Medication:
                    if kind is LabResult:
                        labs += 1
                    else:
                        medications += 1
                    ids = seen.get(ev[1])
                    if ids is None:
                        ids = seen[ev[1]] = SeenEvents(horizon)
                    if not ids.first_sighting(ev[2], ev[0]):
                        duplicates += 1
                        held = ids.held_at(ev[2])
                        if held is None or ev[0] >= held:
                            continue
                        # The copy first in release order wins, whatever the arrival order
                        # (RULES.md 3 and 7): the one held is dropped at release.
                        ids.move(ev[2], ev[0])
                        self.superseded[(ev[1], ev[2], held)] += 1
                    forgotten = ids.forgotten_before
                    if forgotten is not None and ev[0] < forgotten:
                        # Perhaps a copy of a forgotten event: (a, patient_id, event_id) may
                        # be shared, and only the total order keeps output steady; set before
                        # the add, which may spill and merge runs.
                        self.sorter.copies = True
                    add(ev)
                else:
                    # Decoded again without its line end: the dead letter holds the line itself
                    # and names its defect as the line alone reads.
                    line = raw.rstrip(b"\r\n")
                    again = decode(line)
                    ev = again if type(again) is DeadLetter else ev._replace(raw=line)
                    invalid += 1
                    summary.invalid[ev.reason] += 1
                    where = {"source": source, "line": number}
                    self.dead_letters_out.write(dead_letter_record(ev, where))
        finally:
            if collecting:
                gc.enable()
            kinds = summary.events_by_kind
            for kind_name, count in (("lab_result", labs), ("medication", medications),
                                     ("invalid", invalid)):  # fmt: skip
                if count:
                    kinds[kind_name] += count
            summary.duplicates += duplicates
        progress(read_bytes)

    def run(self, engine: Engine | None = None, *, in_time_order: bool = False) -> ReplaySummary:
        """Release every event and timer in order and flush the outputs.

        `engine` replaces the replay's own for this run: an audit passes a subclass that also
        reports what each event changed, step by step in time order. Otherwise, when every
        event is in memory, patients are released one at a time (alerts.patient_release),
        unless `in_time_order` asks for the time-ordered release; the output is the same.
        """
        if engine is not None:
            self.engine = engine
        self.summary.sorted_runs = self.sorter.runs
        # Every source has been read: the ids seen are no longer needed, and their memory is.
        self.seen = {}
        # Patient by patient when the whole feed is in memory and nothing watches the engine's
        # steps as they happen (an audit's ledger and an episode observer read them in time
        # order); otherwise in time order, merging the sorted runs.
        by_patient = not (
            in_time_order or engine is not None or self.engine.observer or self.sorter.runs
        )
        collecting = _pause_collector()
        quiet = 0
        try:
            if by_patient:
                # A replay keeps no state past its end, so patients who cannot alert are skipped.
                copies = self.sorter.copies
                quiet = release_by_patient(
                    self.engine,
                    self.states,
                    self._kept(self.sorter.take()),
                    self._emit,
                    skip_quiet=True,
                    copies=copies,
                )
            else:
                self._release_in_time_order()
        finally:
            if collecting:
                gc.enable()
        self.alerts_out.flush()
        self.dead_letters_out.flush()
        self.summary.unknown_removals = self.engine.unknown_removals
        self.summary.patients = len(self.states) + quiet
        return self.summary

    def _release_in_time_order(self) -> None:
        scheduler = EventTimeScheduler(self.engine, self.states, self._emit)
        process = scheduler.process
        for block in self.sorter.blocks():
            for ev in self._kept(block):
                process(ev)
        scheduler.run_timers(FOREVER)

    def _kept(self, events: list[LabResult | Medication]) -> list[LabResult | Medication]:
        """Return the events without the copies an earlier copy took over (most often all)."""
        superseded = self.superseded
        if not superseded:
            return events
        kept = []
        for ev in events:
            key = (ev[1], ev[2], ev[0])
            if superseded[key]:  # one copy per copy taken over: others at `a` are other events
                superseded[key] -= 1
                continue
            kept.append(ev)
        return kept

    def _emit(self, alerts: list[Alert]) -> None:
        counts = self.summary.alerts
        for alert in alerts:
            counts[f"{alert.rule} {alert.status}"] += 1
            self.alerts_out.write(alert.to_wire())
        if self.on_alerts is not None:
            self.on_alerts(alerts)
