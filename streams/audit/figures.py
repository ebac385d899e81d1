"""Summary figures of an audit: exact counts overall, per month and per location, in fixed order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from alerts.alert import Alert, Resolution, Rule, Severity
from alerts.engine import MgContext
from alerts.events import MICROS_PER_HOUR, MICROS_PER_MINUTE, Micros
from streams.audit.episodes import (
    FOLLOW_UP,
    FOLLOW_UP_HOURS,
    EpisodeRow,
    RowStatus,
    month_of,
)

# The by_location key of episodes without a location. A feed's empty location is no location
# too (episodes.csv writes both as an empty cell), so no named location can take this key.
NO_LOCATION = ""

_H = MICROS_PER_HOUR
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


def _minute(delta: Micros | None) -> int | None:
    """Return whole minutes from t0 (floored), None when there is none within the follow-up."""
    if delta is None or delta > FOLLOW_UP:
        return None
    return delta // MICROS_PER_MINUTE


def quantiles(minutes: Counter[int]) -> dict[str, Any]:
    """Return n, median and 90th percentile (nearest rank, in hours) of times in whole minutes.

    The nearest-rank percentile p of n sorted times is the one at rank ceil(p * n / 100): an
    observed time, exact and the same on every run (the median of an even n is the lower one).
    """
    n = sum(minutes.values())
    wanted = {"median": (n + 1) // 2, "p90": -(-9 * n // 10)}
    found: dict[str, float | None] = dict.fromkeys(wanted)
    seen = 0
    for minute in sorted(minutes):
        seen += minutes[minute]
        for key, rank in wanted.items():
            if found[key] is None and seen >= rank:
                found[key] = round(minute / 60, 2)
    return {"n": n, **{f"{k}_hours": v for k, v in found.items()}}


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
    # Whole minutes from t0 to each first Mg result / repletion within the follow-up: at most
    # 2,881 keys, so exact quantiles in bounded memory.
    result_minutes: Counter[int] = field(default_factory=Counter)
    result_minutes_not_checked: Counter[int] = field(default_factory=Counter)
    repletion_minutes: Counter[int] = field(default_factory=Counter)
    repletion_minutes_low: Counter[int] = field(default_factory=Counter)
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, severity)
    without_episode: int = 0  # alerts in `alerts` of no evaluated episode (overall only)
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
        self.with_alert += bool(row.fired)
        to_result, to_repletion = row.to_mg_result(), row.to_mg_repletion()
        result_bin, repletion_bin = time_bin(to_result), time_bin(to_repletion)
        result_minute, repletion_minute = _minute(to_result), _minute(to_repletion)
        self.mg_result[result_bin] += 1
        self.mg_repletion[repletion_bin] += 1
        if result_minute is not None:
            self.result_minutes[result_minute] += 1
        if repletion_minute is not None:
            self.repletion_minutes[repletion_minute] += 1
        if ctx is _NOT_CHECKED:
            self.mg_result_not_checked[result_bin] += 1
            if result_minute is not None:
                self.result_minutes_not_checked[result_minute] += 1
        elif ctx is _LOW_UNCORRECTED:
            self.mg_repletion_low[repletion_bin] += 1
            if repletion_minute is not None:
                self.repletion_minutes_low[repletion_minute] += 1

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
            "hours_to_first_mg_result": {
                "all_episodes": quantiles(self.result_minutes),
                "mg_not_checked_episodes": quantiles(self.result_minutes_not_checked),
            },
            "hours_to_first_mg_repletion": {
                "all_episodes": quantiles(self.repletion_minutes),
                "mg_low_uncorrected_episodes": quantiles(self.repletion_minutes_low),
            },
            "alerts_fired": {**fired, "total": all_fired},
            "alerts_fired_without_episode": self.without_episode,
            "alerts_per_100_episodes": {**per_100, "total": _per_100(all_fired, n)},
            "alerts_resolved": resolved,
        }


def _per_100(count: int, episodes: int) -> float | None:
    return None if episodes == 0 else round(100 * count / episodes, 1)


class Figures:
    """Aggregate closed episode rows and their alerts into overall, monthly and ward tallies.

    An alert counts in the month (of t0) and location of the episode row it is attributed to,
    as episodes.csv lists it, when that row closes, so that alerts per 100 episodes divides one
    population by itself; its resolution follows it there. An alert attributed to no evaluated
    episode (none open for it, or only a withdrawn one) counts overall only.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.overall = Tally()
        self.months: dict[str, Tally] = {}
        self.locations: dict[str, Tally] = {}
        self.first_t0: Micros | None = None
        self.last_t0: Micros | None = None

    def _groups(self, row: EpisodeRow) -> tuple[Tally, Tally, Tally]:
        month = month_of(row.t0, self.tz)
        m = self.months.get(month)
        if m is None:
            m = self.months[month] = Tally()
        where = row.location or NO_LOCATION
        loc = self.locations.get(where)
        if loc is None:
            loc = self.locations[where] = Tally()
        return self.overall, m, loc

    def _alert_groups(self, row: EpisodeRow) -> tuple[Tally, ...]:
        # Only evaluated episodes are in the denominators: a withdrawn row's alerts (a 4.2
        # alert that named it before its cancel) count overall, as without an episode.
        return self._groups(row) if row.status is _EVALUATED else (self.overall,)

    def add_row(self, row: EpisodeRow) -> None:
        """Count one closed episode row, its alerts and their resolutions in its month and
        location."""
        for tally in self._groups(row):
            tally.add_row(row)
        groups = self._alert_groups(row)
        if row.status is not _EVALUATED:
            self.overall.without_episode += len(row.fired)
        for _, rule, severity in row.fired:
            for tally in groups:
                tally.alerts[rule, severity] += 1
        for rule, resolution in row.resolved:
            for tally in groups:
                tally.resolutions[rule, resolution] += 1
        if row.status is _EVALUATED:
            if self.first_t0 is None or row.t0 < self.first_t0:
                self.first_t0 = row.t0
            if self.last_t0 is None or row.t0 > self.last_t0:
                self.last_t0 = row.t0

    def fired(self, alert: Alert, row: EpisodeRow | None) -> None:
        """Count a firing alert attributed to no row (the others count when their row closes)."""
        if row is None:
            self.overall.without_episode += 1
            self.overall.alerts[alert.rule, alert.severity] += 1

    def resolved(self, alert: Alert, row: EpisodeRow | None) -> None:
        """Count a resolution whose firing counted already: without a row, or its row closed."""
        if row is None or row.closed:
            groups = (self.overall,) if row is None else self._alert_groups(row)
            for tally in groups:
                tally.resolutions[alert.rule, str(alert.resolution)] += 1

    def as_dict(self) -> dict[str, Any]:
        """Return overall, by_month and by_location figures, months and locations sorted."""
        return {
            "overall": self.overall.as_dict(),
            "by_month": {k: self.months[k].as_dict() for k in sorted(self.months)},
            "by_location": {k: self.locations[k].as_dict() for k in sorted(self.locations)},
        }


def definitions(tz: ZoneInfo, open_for: Micros) -> dict[str, Any]:
    """Return the definitions the figures rest on, for summary.json and the report.

    `open_for` is how long after t0 an episode row takes alerts and cancels (open_window).
    """
    open_hours = f"{open_for / _H:g}"
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
        "episode_open_hours": open_for / _H,
        "first_mg_result": (
            "the first magnesium result that became available (resulted_at) at or after t0 and "
            "within the follow-up, whatever its collection time; hemolysed results at or above "
            "mg_low are not counted (the rules ignore them)"
        ),
        "first_mg_repletion": (
            "the first magnesium order or administration at or after t0 and within the "
            "follow-up; an order cancelled up to episode_open_hours "
            f"({open_hours} h) after t0 does not count, a dose given does"
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
        "hours_to_first": (
            "n: episodes with a first Mg result (repletion) within the follow-up; median and "
            "p90: nearest-rank 50th and 90th percentiles of their times in whole minutes "
            "(floored), in hours to two decimals (the lower middle value for an even n); null "
            "when n is 0"
        ),
        "month": f"calendar month of the episode's t0, in {tz.key}",
        "location": (
            'location of the event that started the episode; the key "" (shown as \'no '
            "location') holds the episodes whose event had none or an empty one"
        ),
        "alert_attribution": (
            "a firing alert belongs to the episode it was raised for, as episodes.csv's alerts "
            "column lists it: MG_NOT_CHECKED and REFRACTORY_HYPOKALEMIA the episode they "
            "evaluated; MG_LOW_UNCORRECTED from an episode evaluation that episode, from a "
            "low result (RULES.md 4.2) the newest episode not withdrawn at or before the "
            f"evidence's episode_t0 that started at most {open_hours} h before (an episode "
            "withdrawn after the alert named it passes it on the same way); alerts and their "
            "resolutions count in that episode's month and location"
        ),
        "alerts_fired": "alerts emitted with status firing (deduplicated as in live use)",
        "alerts_fired_without_episode": (
            "firing alerts attributed to no evaluated episode (none open for them, or only one "
            "withdrawn after the alert named it): in the overall figures only, in no month or "
            "location"
        ),
        "alerts_per_100_episodes": (
            "alerts fired for the group's episodes / evaluated episodes in the group x 100"
        ),
        "pct": "percent of the group's evaluated episodes, one decimal; null when none",
    }
