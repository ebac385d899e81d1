"""One patient's engine state: plain, serialisable data, pruned so memory stays bounded."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from alerts.alert import Rule, Severity
from alerts.events import Micros
from alerts.rule_config import Windows

# The time of an ignored event's id registered while its stream partition has no event time
# yet (an ignored event carries none the rules read).
UNTIMED: Micros = -(2**62) + 1

ORDER_MEMORY = 512
CANCELS_KEPT = 8  # an order's latest cancel times (an order is seldom cancelled twice)
"""Orders per patient remembered whole; beyond it, orders quiet for history_hours are dropped."""


class TimerKind(StrEnum):
    EPISODE = "episode"  # 4.1, due at t0 + hold
    LOW_MG = "low_mg"  # 4.2, due at availability of a low Mg + hold
    EXPIRY = "expiry"  # 4.4, due at the newest episode's t0 + alert_ttl


_LOW_MG = TimerKind.LOW_MG
_UNBOUNDED = 2**63  # beyond every instant (year 9999 is about 2.5e17 microseconds)
_INFINITY = float("inf")


# Sort keys of the timer kinds within (tau, patient, trigger): an episode evaluation is not
# one rule but all three, so it gets a key of its own that sorts first.
EPISODE_RULE_KEY = "EPISODE"


class Timer(NamedTuple):
    """A due instant; tuple order is the tie order of RULES.md section 3."""

    tau: Micros
    patient_id: str
    trigger_event_id: str
    rule_key: str
    kind: TimerKind


class LabRecord(NamedTuple):
    value: float
    collected: Micros
    available: Micros
    event_id: str
    hemolyzed: bool
    encounter_id: str | None
    location: str | None


class MgRepletion(NamedTuple):
    at: Micros
    event_id: str
    order_id: str | None
    ordered: bool  # an `ordered` event can be withdrawn by a cancel; an administration cannot


# Old magnesium orders kept beyond the newest old administration (see _repletions_kept).
OLD_MG_ORDERS = 8


def _repletions_kept(repletions: list[MgRepletion], horizon: Micros) -> list[MgRepletion]:
    """Keep the repletions in the history window and the old ones a late result can still read.

    A low Mg result asks whether any repletion has `at` >= its collected_at, however long
    before its result that was (RULES.md 4.1, 4.2): only the newest old repletion that no
    cancel can withdraw answers that. An administration is never withdrawn, so the newest old
    one stands for every older one; old orders newer than it are kept too (a cancel may still
    withdraw any of them), the newest OLD_MG_ORDERS of them.
    """
    old = [r for r in repletions if r.at < horizon]
    if not old:
        return repletions
    given = [r.at for r in old if not r.ordered]
    newest_given = max(given, default=None)
    orders = sorted(
        (r for r in old if r.ordered and (newest_given is None or r.at > newest_given)),
        key=lambda r: r.at,
    )[-OLD_MG_ORDERS:]
    keep = set(orders)
    return [
        r
        for r in repletions
        if r.at >= horizon or r in keep or (not r.ordered and r.at == newest_given)
    ]


class DiureticExposure(NamedTuple):
    at: Micros
    order_id: str | None
    ordered: bool


class EpisodeStatus(StrEnum):
    PENDING = "pending"
    EVALUATED = "evaluated"
    WITHDRAWN = "withdrawn"


_PENDING = EpisodeStatus.PENDING


@dataclass(slots=True)
class Episode:
    """A potassium repletion episode: one order (or one event), restarted after the gap."""

    t0: Micros
    trigger_event_id: str
    order_key: str
    encounter_id: str | None
    location: str | None
    status: EpisodeStatus


@dataclass(slots=True)
class Firing:
    """An alert now firing, with what its resolutions need to read."""

    alert_id: str
    rule: Rule
    severity: Severity
    trigger_event_id: str
    encounter_id: str | None
    location: str | None
    fired_at: Micros
    episode_t0: Micros | None
    rests_on: str | None = None  # MG_LOW_UNCORRECTED: result_id of the low Mg
    rests_collected: Micros | None = None
    linked_alert_id: str | None = None  # REFRACTORY_HYPOKALEMIA: the Mg alert whose condition held


class PatientState:
    """Everything the rules know about one patient (RULES.md section 2)."""

    __slots__ = (
        "patient_id",
        "k",
        "mg",
        "episodes",
        "order_last",
        "cancelled",
        "mg_repletions",
        "diuretics",
        "firing",
        "timers",
        "newest_t0",
        "seen",
        "pruned_at",
        "pending",
    )

    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        self.k: dict[str, LabRecord] = {}  # by result_id
        self.mg: dict[str, LabRecord] = {}
        self.episodes: list[Episode] = []
        self.order_last: dict[str, Micros] = {}  # order key -> its previous ordered/given event
        # order_id -> availability of its cancel, or of its latest cancels in order when there
        # were several (the stored form of a single cancel stays what it always was)
        self.cancelled: dict[str, Micros | list[Micros]] = {}
        self.mg_repletions: list[MgRepletion] = []
        self.diuretics: list[DiureticExposure] = []
        self.firing: dict[Rule, Firing] = {}
        self.timers: set[Timer] = set()
        self.newest_t0: Micros | None = None
        # event_id -> availability, for duplicates in a stream (UNTIMED: registered before any)
        self.seen: dict[str, Micros] = {}
        self.pruned_at: Micros = 0
        self.pending: list[Any] = []  # the stream's reorder buffer: wire dicts waiting for W

    def is_idle(self) -> bool:
        """Say whether nothing is pending, firing or buffered (the state may then be compacted)."""
        return not self.timers and not self.firing and not self.pending

    def prune(self, now: Micros, w: Windows, mg_low: float) -> None:
        """Drop history beyond the history window that no timer, open alert or lookback reads."""
        horizon = now - w.history
        firing = self.firing.values()
        if self.k:
            self.k = {rid: r for rid, r in self.k.items() if r.collected >= horizon}
        mg = self.mg
        if mg:
            # "Latest Mg" has no age limit, so the latest one is kept however old it is.
            keep_mg = {f.rests_on for f in firing if f.rests_on is not None}
            latest_mg = latest_record(mg.values(), None, None, ignore_hemolyzed_at=mg_low)
            if latest_mg is not None:
                keep_mg.add(_result_id_of(mg, latest_mg))
            self.mg = {rid: r for rid, r in mg.items() if r.collected >= horizon or rid in keep_mg}
        if self.episodes:
            self.episodes = self._episodes_kept(horizon, w)
        # An order's later events read its previous event and its cancel however long ago
        # (a standing order modified after a week, a cancel remembered before its order), so
        # per-order memory is kept whole unless one patient carries very many orders.
        if len(self.order_last) > ORDER_MEMORY:
            self.order_last = {k: t for k, t in self.order_last.items() if t >= horizon}
        if len(self.cancelled) > ORDER_MEMORY:
            self.cancelled = {
                k: t for k, t in self.cancelled.items() if cancel_times(t)[-1] >= horizon
            }
        if self.mg_repletions:
            self.mg_repletions = _repletions_kept(self.mg_repletions, horizon)
        if self.diuretics:
            self.diuretics = [d for d in self.diuretics if d.at >= horizon]
        if self.seen:
            # An id registered before its partition had any event time is remembered from the
            # first prune that has one: it must outlive the history like any other.
            self.seen = {
                k: now if t == UNTIMED else t
                for k, t in self.seen.items()
                if t >= horizon or t == UNTIMED
            }
        self.pruned_at = now

    def _episodes_kept(self, horizon: Micros, w: Windows) -> list[Episode]:
        # Evidence counts the episodes in the refractory window before an alert's episode; a
        # pending low-Mg evaluation reads episodes back from its result's collection time,
        # which a delayed result can put far behind the horizon.
        windows = [
            (f.episode_t0 - w.refractory_window, f.episode_t0)
            for f in self.firing.values()
            if f.episode_t0 is not None
        ]
        low_mg = [t for t in self.timers if t.kind is _LOW_MG]
        if low_mg:
            collected = {r.event_id: r.collected for r in self.mg.values()}
            for t in low_mg:
                if t.trigger_event_id in collected:
                    lo = collected[t.trigger_event_id] - w.mg_lookback - w.refractory_window
                    windows.append((lo, t.tau))
        newest = self.episodes[-1]
        if not windows:
            return [
                e for e in self.episodes if e.t0 >= horizon or e.status is _PENDING or e is newest
            ]
        return [
            e
            for e in self.episodes
            if e.t0 >= horizon
            or e.status is _PENDING
            or e is newest
            or any(lo <= e.t0 <= hi for lo, hi in windows)
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON-ready data (for a changelog-backed table)."""
        # Written for every changed patient of a stream batch, and most collections of a state
        # are empty: a comprehension costs a function call even over an empty one.
        k, mg, episodes, firing = self.k, self.mg, self.episodes, self.firing
        repletions, diuretics, timers = self.mg_repletions, self.diuretics, self.timers
        return {
            "patient_id": self.patient_id,
            "k": {rid: list(r) for rid, r in k.items()} if k else {},
            "mg": {rid: list(r) for rid, r in mg.items()} if mg else {},
            "episodes": [
                [e.t0, e.trigger_event_id, e.order_key, e.encounter_id, e.location, e.status]
                for e in episodes
            ]
            if episodes
            else [],
            "order_last": self.order_last,
            "cancelled": self.cancelled,
            "mg_repletions": [list(r) for r in repletions] if repletions else [],
            "diuretics": [list(d) for d in diuretics] if diuretics else [],
            "firing": [
                [
                    f.alert_id,
                    f.rule,
                    f.severity,
                    f.trigger_event_id,
                    f.encounter_id,
                    f.location,
                    f.fired_at,
                    f.episode_t0,
                    f.rests_on,
                    f.rests_collected,
                    f.linked_alert_id,
                ]
                for f in firing.values()
            ]
            if firing
            else [],
            "timers": sorted([list(t) for t in timers]) if timers else [],
            "newest_t0": self.newest_t0,
            "seen": self.seen,
            "pruned_at": self.pruned_at,
            "pending": self.pending,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatientState:
        """Rebuild a state from to_dict() output."""
        s = cls(data["patient_id"])
        # Empty collections keep the ones __init__ made; _make checks each row's length as
        # the constructor would, without unpacking it into arguments.
        k, mg, episodes = data["k"], data["mg"], data["episodes"]
        repletions, diuretics, firing, timers = (
            data["mg_repletions"],
            data["diuretics"],
            data["firing"],
            data["timers"],
        )
        if k:
            s.k = {rid: _lab_record(r) for rid, r in k.items()}
        if mg:
            s.mg = {rid: _lab_record(r) for rid, r in mg.items()}
        if episodes:
            s.episodes = [
                Episode(t0, trig, key, enc, loc, EpisodeStatus(st))
                for t0, trig, key, enc, loc, st in episodes
            ]
        s.order_last = dict(data["order_last"])
        s.cancelled = dict(data["cancelled"])
        if repletions:
            s.mg_repletions = [_mg_repletion(r) for r in repletions]
        if diuretics:
            s.diuretics = [_diuretic_exposure(d) for d in diuretics]
        for row in firing:
            f = Firing(row[0], Rule(row[1]), Severity(row[2]), *row[3:])
            s.firing[f.rule] = f
        if timers:
            s.timers = {
                Timer(tau, pid, trig, key, TimerKind(kind)) for tau, pid, trig, key, kind in timers
            }
        s.newest_t0 = data["newest_t0"]
        s.seen = dict(data["seen"])
        s.pruned_at = data["pruned_at"]
        s.pending = list(data["pending"])
        return s


def cancel_times(stored: Micros | list[Micros]) -> tuple[Micros, ...] | list[Micros]:
    """Return an order's cancel times, oldest first, from their stored form."""
    return (stored,) if type(stored) is int else stored  # type: ignore[return-value]


_lab_record = LabRecord._make
_mg_repletion = MgRepletion._make
_diuretic_exposure = DiureticExposure._make


def _result_id_of(table: dict[str, LabRecord], record: LabRecord) -> str:
    for rid, r in table.items():
        if r is record:
            return rid
    raise KeyError(record.event_id)


def latest_record(
    records: Any,
    tau: Micros | None,
    not_before: Micros | None,
    ignore_hemolyzed_at: float | None,
) -> LabRecord | None:
    """Return the latest result by (collected, available, event_id) among those visible at tau.

    Visible: available <= tau (any when tau is None), collected >= not_before (when given),
    and not a hemolysed result at or above ignore_hemolyzed_at (the rules ignore those).
    """
    until = _UNBOUNDED if tau is None else tau
    since = -_UNBOUNDED if not_before is None else not_before
    hemolysed_from = _INFINITY if ignore_hemolyzed_at is None else ignore_hemolyzed_at
    best: LabRecord | None = None
    best_c = best_a = 0
    best_e = ""
    for r in records:
        value, collected, available, event_id, hemolyzed, _, _ = r
        if available > until or collected < since or (hemolyzed and value >= hemolysed_from):
            continue
        # The tuple order (collected, available, event_id), compared field by field.
        if (
            best is None
            or collected > best_c
            or (
                collected == best_c
                and (available > best_a or (available == best_a and event_id > best_e))
            )
        ):
            best, best_c, best_a, best_e = r, collected, available, event_id
    return best
