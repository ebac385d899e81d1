"""Summary figures of an audit: exact counts overall, per month and per location, in fixed order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from alerts.alert import Alert, AlertStatus, Resolution, Rule, Severity
from alerts.engine import MgContext
from alerts.events import MICROS_PER_HOUR, Micros
from streams.audit.episodes import (
    FOLLOW_UP,
    FOLLOW_UP_HOURS,
    NO_LOCATION,
    EpisodeRow,
    RowStatus,
    month_of,
)

_H = MICROS_PER_HOUR
_FIRING = AlertStatus.FIRING
_EVALUATED = RowStatus.EVALUATED
_NOT_CHECKED, _LOW_UNCORRECTED = MgContext.NOT_CHECKED, MgContext.LOW_UNCORRECTED


class TimeBin(NamedTuple):
    """One histogram bin of hours after t0: [start, end), the last one closed at the follow-up."""

    key: str
    label: str
    start: Micros
    end: Micros | None  # None: no such event within the follow-up


TIME_BINS = (
    TimeBin("0-1h", "0–1 h", 0, 1 * _H),
    TimeBin("1-2h", "1–2 h", 1 * _H, 2 * _H),
    TimeBin("2-4h", "2–4 h", 2 * _H, 4 * _H),
    TimeBin("4-8h", "4–8 h", 4 * _H, 8 * _H),
    TimeBin("8-24h", "8–24 h", 8 * _H, 24 * _H),
    TimeBin("24-48h", "24–48 h", 24 * _H, FOLLOW_UP),
    TimeBin("none_within_48h", f"none in {FOLLOW_UP_HOURS} h", FOLLOW_UP, None),
)
NONE_BIN = TIME_BINS[-1].key

MG_CONTEXTS = tuple(MgContext)
RULES = tuple(Rule)
SEVERITIES = tuple(Severity)
RESOLUTIONS = tuple(Resolution)


def time_bin(delta: Micros | None) -> str:
    """Return the key of the bin a time after t0 falls in (None: none within follow-up)."""
    if delta is None or delta > FOLLOW_UP:
        return NONE_BIN
    for b in TIME_BINS[:-2]:
        if delta < b.end:  # type: ignore[operator]
            return b.key
    return TIME_BINS[-2].key  # 24 h up to and including 48 h


def _pct(n: int, d: int) -> float | None:
    return None if d == 0 else round(100 * n / d, 1)


def _share(n: int, d: int) -> dict[str, Any]:
    return {"n": n, "pct": _pct(n, d)}


def _bins(counts: Counter[str]) -> dict[str, int]:
    return {b.key: counts[b.key] for b in TIME_BINS}


@dataclass
class Tally:
    """The counts of one group of episodes and alerts (all, one month, or one location)."""

    episodes: int = 0
    withdrawn: int = 0
    mg_context: Counter[str] = field(default_factory=Counter)
    refractory: int = 0
    diuretic: int = 0
    with_alert: int = 0
    mg_result: Counter[str] = field(default_factory=Counter)
    mg_result_not_checked: Counter[str] = field(default_factory=Counter)
    mg_repletion: Counter[str] = field(default_factory=Counter)
    mg_repletion_low: Counter[str] = field(default_factory=Counter)
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, severity)
    resolutions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, resolution)

    def add_row(self, row: EpisodeRow) -> None:
        o = row.outcome
        if row.status is not _EVALUATED or o is None:
            self.withdrawn += 1
            return
        self.episodes += 1
        ctx = o.mg_context
        self.mg_context[ctx] += 1
        self.refractory += o.refractory
        self.diuretic += o.diuretic
        self.with_alert += bool(row.alerts)
        result_bin = time_bin(row.to_mg_result())
        repletion_bin = time_bin(row.to_mg_repletion())
        self.mg_result[result_bin] += 1
        self.mg_repletion[repletion_bin] += 1
        if ctx is _NOT_CHECKED:
            self.mg_result_not_checked[result_bin] += 1
        elif ctx is _LOW_UNCORRECTED:
            self.mg_repletion_low[repletion_bin] += 1

    def add_alert(self, alert: Alert) -> None:
        if alert.status is _FIRING:
            self.alerts[alert.rule, alert.severity] += 1
        else:
            self.resolutions[alert.rule, str(alert.resolution)] += 1

    def as_dict(self) -> dict[str, Any]:
        """Return the group's figures as JSON-ready data in a fixed key order."""
        n = self.episodes
        fired: dict[str, Any] = {}
        per_100: dict[str, Any] = {}
        resolved: dict[str, Any] = {}
        for rule in RULES:
            counts = {str(s): self.alerts[rule, s] for s in SEVERITIES}
            total = sum(counts.values())
            fired[str(rule)] = {**counts, "total": total}
            per_100[str(rule)] = {
                **{s: _per_100(c, n) for s, c in counts.items()},
                "total": _per_100(total, n),
            }
            resolved[str(rule)] = {str(r): self.resolutions[rule, str(r)] for r in RESOLUTIONS}
        all_fired = sum(self.alerts.values())
        return {
            "episodes": n,
            "withdrawn_episodes": self.withdrawn,
            "mg_context": {str(c): _share(self.mg_context[c], n) for c in MG_CONTEXTS},
            "refractory": _share(self.refractory, n),
            "diuretic_in_lookback": _share(self.diuretic, n),
            "episodes_with_alert": _share(self.with_alert, n),
            "time_to_first_mg_result": {
                "all_episodes": _bins(self.mg_result),
                "mg_not_checked_episodes": _bins(self.mg_result_not_checked),
            },
            "time_to_first_mg_repletion": {
                "all_episodes": _bins(self.mg_repletion),
                "mg_low_uncorrected_episodes": _bins(self.mg_repletion_low),
            },
            "alerts_fired": {**fired, "total": all_fired},
            "alerts_per_100_episodes": {**per_100, "total": _per_100(all_fired, n)},
            "alerts_resolved": resolved,
        }


def _per_100(count: int, episodes: int) -> float | None:
    return None if episodes == 0 else round(100 * count / episodes, 1)


class Figures:
    """Aggregate closed episode rows and emitted alerts into overall, monthly and ward tallies."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.overall = Tally()
        self.months: dict[str, Tally] = {}
        self.locations: dict[str, Tally] = {}
        self.first_t0: Micros | None = None
        self.last_t0: Micros | None = None

    def _groups(self, at: Micros, location: str | None) -> tuple[Tally, Tally, Tally]:
        month = month_of(at, self.tz)
        m = self.months.get(month)
        if m is None:
            m = self.months[month] = Tally()
        where = location if location else NO_LOCATION
        loc = self.locations.get(where)
        if loc is None:
            loc = self.locations[where] = Tally()
        return self.overall, m, loc

    def add_row(self, row: EpisodeRow) -> None:
        """Count one closed episode row in its month (of t0) and location."""
        for tally in self._groups(row.t0, row.location):
            tally.add_row(row)
        if row.status is _EVALUATED:
            if self.first_t0 is None or row.t0 < self.first_t0:
                self.first_t0 = row.t0
            if self.last_t0 is None or row.t0 > self.last_t0:
                self.last_t0 = row.t0

    def add_alerts(self, alerts: list[Alert]) -> None:
        """Count emitted alerts in the month they were emitted and their trigger's location."""
        for alert in alerts:
            for tally in self._groups(alert.at, alert.location):
                tally.add_alert(alert)

    def as_dict(self) -> dict[str, Any]:
        """Return overall, by_month and by_location figures, months and locations sorted."""
        return {
            "overall": self.overall.as_dict(),
            "by_month": {k: self.months[k].as_dict() for k in sorted(self.months)},
            "by_location": {k: self.locations[k].as_dict() for k in sorted(self.locations)},
        }


def definitions(tz: ZoneInfo) -> dict[str, Any]:
    """Return the definitions the figures rest on, for summary.json and the report."""
    return {
        "episode": (
            "one potassium repletion order (or event without order), restarted by an "
            "administration more than episode_gap_hours after the order's previous event; "
            "t0 = its first event"
        ),
        "episodes_counted": (
            "episodes the rules evaluated at t0 + hold; episodes withdrawn by a cancel before "
            "their evaluation are listed in episodes.csv with status withdrawn and counted "
            "apart (withdrawn_episodes), never in the shares"
        ),
        "follow_up_hours": FOLLOW_UP_HOURS,
        "first_mg_result": (
            "the first magnesium result that became available (resulted_at) at or after t0 and "
            "within the follow-up, whatever its collection time; hemolysed results at or above "
            "mg_low are not counted (the rules ignore them)"
        ),
        "first_mg_repletion": (
            "the first magnesium order or administration at or after t0 and within the "
            "follow-up; an order cancelled later does not count, a dose given does"
        ),
        "time_bins": [
            {
                "key": b.key,
                "from_hours": b.start / _H,
                "to_hours": None if b.end is None else b.end / _H,
            }
            for b in TIME_BINS
        ],
        "time_bin_rule": (
            "from_hours <= time < to_hours; the 24-48h bin includes 48 h exactly; "
            "none_within_48h: no such event within the follow-up"
        ),
        "month": f"calendar month of t0 (episodes) or of the alert time, in {tz.key}",
        "location": "location of the event that started the episode or triggered the alert",
        "alerts_fired": "alerts emitted with status firing (deduplicated as in live use)",
        "alerts_per_100_episodes": "alerts fired in the group / episodes in the group x 100",
        "pct": "percent of the group's evaluated episodes, one decimal; null when none",
    }
