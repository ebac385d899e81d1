"""The feed's clock: times in seconds from the start day's UTC midnight, written as RFC 3339."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from streams.synthetic_feed.patients import Patient

DAY: Final = 86_400
HOUR: Final = 3_600
_TS_DAYS: Final = 4


class Clock:
    """Timestamp formatting by minute tables that follow the day being generated."""

    midnight: datetime  # time 0
    a0: int  # time 0 in epoch micros
    dayp: list[str]  # "YYYY-MM-DDT" of the first calendar days
    hm: list[str]  # "HH:MM:" of every minute of a day
    ts_base: int
    ts_table: list[str]
    ts: Callable[[int, Patient], str]

    def _day_prefix(self, d: int) -> str:
        if 0 <= d < len(self.dayp):
            return self.dayp[d]
        return (self.midnight + timedelta(days=d)).strftime("%Y-%m-%dT")

    def _set_day(self, B: int) -> None:
        """Point ts at a minute table for the calendar days from B's day on (4 days)."""
        day0 = B // DAY
        base = day0 * DAY
        hm = self.hm
        table = [day + m for day in map(self._day_prefix, range(day0, day0 + _TS_DAYS)) for m in hm]
        self.ts_base, self.ts_table = base, table

        def ts(s: int, p: Patient) -> str:
            """Format a time (seconds, >= B) as RFC 3339 in the patient's offset (Z or +01:00)."""
            m, sec = divmod(s + p.off - base, 60)
            try:
                return table[m] + p.ss[sec]
            except IndexError:  # beyond the table: a line far in the future
                d, mm = divmod(s + p.off, DAY)
                return self._day_prefix(d) + hm[mm // 60] + p.ss[mm % 60]

        self.ts = ts
