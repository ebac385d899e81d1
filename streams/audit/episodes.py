"""Per-episode audit facts: one row per potassium repletion episode, final once no alert names it.

A row opens when the engine starts an episode (t0), learns its magnesium context when the engine
evaluates it (t0 + hold) or that it was withdrawn (a cancel before the evaluation), collects the
first magnesium result and repletion within the follow-up (t0 + 48 h), and takes the alerts
raised for it. A low-magnesium alert (RULES.md 4.2) can name an episode long after its follow-up
(a result collected near t0 and resulted late), and a cancel can still withdraw a magnesium order
counted as its repletion, so a row stays open for the rules' whole reach after t0 (every rule
window summed, `open_window`) and is handed on once the release time has passed it. Rows leave in
(t0, patient_id, trigger_event_id) order; only the episodes of the last reach stay in memory.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from alerts.alert import Alert, Rule
from alerts.engine import EpisodeOutcome
from alerts.events import MICROS_PER_HOUR, Micros
from alerts.rule_config import RuleConfig, Windows
from alerts.timestamps import format_timestamp, parse_timestamp

FOLLOW_UP_HOURS = 48
FOLLOW_UP: Micros = FOLLOW_UP_HOURS * MICROS_PER_HOUR

_LOW = Rule.MG_LOW_UNCORRECTED
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RowStatus(StrEnum):
    """Where an episode row stands; only evaluated episodes enter the headline figures."""

    PENDING = "pending"  # started, not yet evaluated (never written out)
    EVALUATED = "evaluated"
    WITHDRAWN = "withdrawn"  # cancelled before its evaluation: the rules never judged it


_PENDING, _EVALUATED, _WITHDRAWN = RowStatus.PENDING, RowStatus.EVALUATED, RowStatus.WITHDRAWN


@dataclass(slots=True, frozen=True)
class MgGiven:
    """A magnesium repletion seen after t0; an `ordered` one is withdrawn by its order's cancel."""

    at: Micros
    order_id: str | None
    ordered: bool


@dataclass(slots=True)
class EpisodeRow:
    """What the audit knows about one potassium repletion episode."""

    patient_id: str
    trigger_event_id: str
    order_key: str
    t0: Micros
    encounter_id: str | None
    location: str | None
    status: RowStatus
    outcome: EpisodeOutcome | None = None
    first_mg_result: Micros | None = None  # availability of the first usable Mg result >= t0
    mg_given: list[MgGiven] = field(default_factory=list)
    # Firing alerts attributed to it, (alert_id, rule, severity) in the order attributed, and
    # the (rule, resolution) of those resolved while it was open.
    fired: list[tuple[str, str, str]] = field(default_factory=list)
    resolved: list[tuple[str, str]] = field(default_factory=list)
    closed: bool = False  # handed on: nothing changes it any more

    @property
    def alerts(self) -> list[str]:
        """Return the attributed alerts as "RULE:severity" labels (episodes.csv)."""
        return [f"{rule}:{severity}" for _, rule, severity in self.fired]

    @property
    def first_mg_repletion(self) -> Micros | None:
        """Return the time of the first magnesium repletion within follow-up, if any."""
        return min((g.at for g in self.mg_given), default=None)

    def to_mg_result(self) -> Micros | None:
        """Return microseconds from t0 to the first Mg result, None if none within follow-up."""
        return None if self.first_mg_result is None else self.first_mg_result - self.t0

    def to_mg_repletion(self) -> Micros | None:
        """Return microseconds from t0 to the first Mg repletion, None if none within follow-up."""
        first = self.first_mg_repletion
        return None if first is None else first - self.t0


def open_window(cfg: RuleConfig) -> Micros:
    """Return how long after t0 a row stays open: the rules' reach, at least the follow-up.

    A 4.2 alert names an episode the engine still holds, and the engine prunes episodes older
    than history_hours (behind the result's hold); every window summed bounds that with room
    to spare for the usual feed. Only an Mg result that becomes available longer than that after
    its collection can still name a closed row: such an alert is counted without an episode.
    """
    return max(FOLLOW_UP, Windows(cfg).reach)


def month_of(micros: Micros, tz: ZoneInfo) -> str:
    """Return the calendar month (YYYY-MM) of an instant in the facility's time zone."""
    return (_EPOCH + timedelta(microseconds=micros)).astimezone(tz).strftime("%Y-%m")


CSV_COLUMNS = (
    "patient_id",
    "encounter_id",
    "location",
    "month",
    "t0",
    "trigger_event_id",
    "order_key",
    "status",
    "mg_context",
    "latest_mg_mg_dl",
    "latest_k_mmol_l",
    "k_episodes_in_refractory_window",
    "diuretic_in_lookback",
    "refractory",
    "alerts",
    "hours_to_first_mg_result",
    "hours_to_first_mg_repletion",
)


def _number(value: float | None) -> str:
    # Three decimals at most, trailing zeros dropped: 1.4583 -> "1.458", 1.4 -> "1.4".
    if value is None:
        return ""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _hours(delta: Micros | None) -> str:
    return "" if delta is None else f"{delta / MICROS_PER_HOUR:.2f}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def csv_fields(row: EpisodeRow, tz: ZoneInfo) -> list[str]:
    """Return the row's CSV cells in CSV_COLUMNS order (fixed formatting, no run-dependent data)."""
    head = [
        row.patient_id,
        row.encounter_id or "",
        row.location or "",
        month_of(row.t0, tz),
        format_timestamp(row.t0),
        row.trigger_event_id,
        row.order_key,
        str(row.status),
    ]
    o = row.outcome
    if o is None:  # withdrawn: the rules never evaluated it, yet a 4.2 alert may name it
        tail = [""] * (len(CSV_COLUMNS) - len(head))
        tail[_ALERTS_CELL - len(head)] = ";".join(row.alerts)
        return head + tail
    return head + [
        str(o.mg_context),
        _number(o.latest_mg),
        _number(o.latest_k),
        str(o.episodes_in_window),
        _yes(o.diuretic),
        _yes(o.refractory),
        ";".join(row.alerts),
        _hours(row.to_mg_result()),
        _hours(row.to_mg_repletion()),
    ]


_ALERTS_CELL = CSV_COLUMNS.index("alerts")

RowSink = Callable[[EpisodeRow], None]


class EpisodeLedger:
    """Open episode rows of the last `open_for` window, closed and handed on in t0 order."""

    def __init__(self, sink: RowSink, open_for: Micros, follow_up: Micros = FOLLOW_UP) -> None:
        self.sink = sink
        self.follow_up = follow_up
        self.open_for = max(open_for, follow_up)
        self._heap: list[tuple[Micros, str, str, EpisodeRow]] = []
        self._open: dict[str, list[EpisodeRow]] = {}  # patient_id -> open rows, oldest first
        # alert_id -> the row a firing alert is attributed to, until it resolves: at most one
        # entry per alert still firing.
        self._firing: dict[str, EpisodeRow] = {}
        self.closed = 0

    def open_rows(self) -> int:
        """Return how many rows are still open (the audit's own memory)."""
        return len(self._heap)

    def oldest_open_t0(self) -> Micros | None:
        """Return the t0 of the oldest open row, None when none is open."""
        return self._heap[0][0] if self._heap else None

    # -- what the engine did ----------------------------------------------------------------

    def started(self, row: EpisodeRow) -> None:
        """Open a row for an episode the engine has just started."""
        heapq.heappush(self._heap, (row.t0, row.patient_id, row.trigger_event_id, row))
        self._open.setdefault(row.patient_id, []).append(row)

    def evaluated(self, outcome: EpisodeOutcome) -> None:
        """Record an episode evaluation (the engine's observer)."""
        row = self._row(outcome.patient_id, outcome.trigger_event_id)
        if row is not None:
            row.outcome = outcome
            row.status = _EVALUATED

    def cancelled(self, patient_id: str, order_id: str) -> None:
        """Withdraw the order's episodes not yet evaluated and its not-given Mg orders."""
        rows = self._open.get(patient_id, ())
        for row in rows:
            if row.status is _PENDING and row.order_key == order_id:
                row.status = _WITHDRAWN
                if row.fired:
                    self._move_alerts(row, rows)
            if row.mg_given:
                given = row.mg_given
                row.mg_given = [g for g in given if not (g.ordered and g.order_id == order_id)]

    def mg_result(self, patient_id: str, available: Micros) -> None:
        """Record a usable magnesium result that became available at `available`."""
        for row in self._open.get(patient_id, ()):
            if row.first_mg_result is None and row.t0 <= available <= row.t0 + self.follow_up:
                row.first_mg_result = available

    def mg_repletion(self, patient_id: str, given: MgGiven) -> None:
        """Record a magnesium order or administration."""
        for row in self._open.get(patient_id, ()):
            if row.t0 <= given.at <= row.t0 + self.follow_up:
                row.mg_given.append(given)

    def attribute(self, alert: Alert) -> EpisodeRow | None:
        """Attribute a firing alert to the episode row it was raised for; None when none is open."""
        row = self._row(alert.patient_id, alert.trigger_event_id)
        if row is None and alert.rule is _LOW:
            rows = self._open.get(alert.patient_id, ())
            named = alert.evidence.get("episode_t0")
            row = None if named is None else _newest_kept(rows, parse_timestamp(named), None)
        if row is not None:
            row.fired.append((alert.alert_id, alert.rule, alert.severity))
            self._firing[alert.alert_id] = row
        return row

    def resolve(self, alert: Alert) -> EpisodeRow | None:
        """Return the row a resolved alert's firing was attributed to (None: none); an open row
        keeps the resolution, counted when it closes, a closed one is final already."""
        row = self._firing.pop(alert.alert_id, None)
        if row is not None and not row.closed:
            row.resolved.append((alert.rule, str(alert.resolution)))
        return row

    def _move_alerts(self, withdrawn: EpisodeRow, rows: Iterable[EpisodeRow]) -> None:
        # A 4.2 alert may name an episode still pending that a cancel then withdraws: it moves
        # to the episode the engine would have named without it, the newest one not withdrawn
        # before it. With none open it stays, and counts as an alert without an episode.
        target = _newest_kept(rows, withdrawn.t0, withdrawn)
        if target is None:
            return
        for fired in withdrawn.fired:
            target.fired.append(fired)
            self._firing[fired[0]] = target
        target.resolved.extend(withdrawn.resolved)
        withdrawn.fired, withdrawn.resolved = [], []

    # -- closing -----------------------------------------------------------------------------

    def advance(self, now: Micros) -> None:
        """Close, in t0 order, every decided row whose open window ended before `now`."""
        heap, horizon = self._heap, now - self.open_for
        while heap and heap[0][0] < horizon and heap[0][3].status is not _PENDING:
            row = heapq.heappop(heap)[3]
            row.closed = True
            rows = self._open[row.patient_id]
            rows.remove(row)
            if not rows:
                del self._open[row.patient_id]
            self.closed += 1
            self.sink(row)

    def close(self) -> None:
        """Close every remaining row (end of input: every timer has run)."""
        heap = self._heap
        while heap:
            row = heapq.heappop(heap)[3]
            row.closed = True
            self.closed += 1
            self.sink(row)
        self._open.clear()

    # -- lookups -----------------------------------------------------------------------------

    def _row(self, patient_id: str, trigger_event_id: str) -> EpisodeRow | None:
        for row in self._open.get(patient_id, ()):
            if row.trigger_event_id == trigger_event_id:
                return row
        return None


def _newest_kept(
    rows: Iterable[EpisodeRow], latest: Micros, other_than: EpisodeRow | None
) -> EpisodeRow | None:
    """Return the newest row not withdrawn with t0 <= latest (ties: the last trigger id).

    A low-Mg alert (RULES.md 4.2) names its episode by t0 only: the newest episode not
    withdrawn in its window or, when it supersedes MG_NOT_CHECKED without one, the patient's
    newest episode, which may be withdrawn. Either way it belongs to this row.
    """
    found = None
    for row in rows:
        if (
            row.status is not _WITHDRAWN
            and row.t0 <= latest
            and row is not other_than
            and (
                found is None or (row.t0, row.trigger_event_id) > (found.t0, found.trigger_event_id)
            )
        ):
            found = row
    return found
