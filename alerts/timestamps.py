"""RFC 3339 timestamps to integer microseconds and back, as strict as RULES.md section 7."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from alerts.events import Micros

# T separator (t accepted), seconds required, any fraction, offset Z/z or +hh:mm / -hh:mm.
_WITH_OFFSET = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_WITHOUT_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?", re.ASCII)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICRO = timedelta(microseconds=1)
_ONE_DAY = timedelta(days=1)
_DAY_MICROS = 86_400_000_000


class TimestampError(ValueError):
    """A malformed timestamp (bad_timestamp) or one without offset (timestamp_without_offset)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _is_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


_day_cache: dict[str, int] = {}


def _day_micros(text: str) -> int:
    key = text[:10]
    cached = _day_cache.get(key)
    if cached is not None:
        return cached
    y, m, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
    if not 1 <= m <= 12 or y < 1:
        raise TimestampError("bad_timestamp")
    last = 29 if m == 2 and _is_leap(y) else _DAYS_IN_MONTH[m - 1]
    if not 1 <= d <= last:
        raise TimestampError("bad_timestamp")
    value = _days_from_civil(y, m, d) * _DAY_MICROS
    if len(_day_cache) < 100_000:
        _day_cache[key] = value
    return value


FIRST_INSTANT = _days_from_civil(1, 1, 1) * _DAY_MICROS
LAST_INSTANT = (_days_from_civil(9999, 12, 31) + 1) * _DAY_MICROS - 1
_SECONDS = {f"{n:02d}": n * 1_000_000 for n in range(60)}
_minute_cache: dict[str, int] = {}
_CACHE_LIMIT = 200_000


def parse_timestamp(text: str) -> Micros:
    """Parse an RFC 3339 timestamp with offset into UTC microseconds; raise TimestampError."""
    # Fast path for the forms feeds send, "YYYY-MM-DDTHH:MM:SSZ" and "...:SS+hh:mm": the text
    # without its seconds keys a minute that was fully validated when it entered the cache,
    # and the seconds table holds only 00..59. An offset shifts by whole minutes, so the
    # range check a cached minute passed holds for every second in it.
    size = len(text)
    if size == 20:
        base = _minute_cache.get(text[:16]) if text[19] == "Z" or text[19] == "z" else None
    elif size == 25:
        base = _minute_cache.get(text[:16] + text[19:])
    else:
        base = None
    if base is not None and text[16] == ":":
        seconds = _SECONDS.get(text[17:19])
        if seconds is not None:
            return base + seconds
    micros = _parse(text)
    # Only the forms without a fraction are cached (a 25-character text may be "SS.ffffZ").
    if size == 20 or (size == 25 and text[19] in "+-"):
        if len(_minute_cache) >= _CACHE_LIMIT:
            _minute_cache.clear()
        key = text[:16] if size == 20 else text[:16] + text[19:]
        _minute_cache[key] = micros - _SECONDS[text[17:19]]
    return micros


def _parse(text: str) -> Micros:
    match = _WITH_OFFSET.fullmatch(text)
    if match is None:
        if _WITHOUT_OFFSET.fullmatch(text):
            raise TimestampError("timestamp_without_offset")
        raise TimestampError("bad_timestamp")
    # The pattern fixes the positions of every field up to the seconds.
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    # :60 leap seconds are rejected: they have no instant of their own in UTC arithmetic.
    if hour > 23 or minute > 59 or second > 59:
        raise TimestampError("bad_timestamp")
    micros = _day_micros(text) + ((hour * 60 + minute) * 60 + second) * 1_000_000
    frac, off = match.group(1, 2)
    if frac:
        # More than six digits are truncated, never rounded (RULES.md section 7).
        micros += int((frac + "00000")[:6])
    if off != "Z" and off != "z":
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            raise TimestampError("bad_timestamp")
        shift = (oh * 60 + om) * 60_000_000
        micros += -shift if off[0] == "+" else shift
        # An offset can carry year 1 or 9999 out of the representable range of UTC instants.
        if not FIRST_INSTANT <= micros <= LAST_INSTANT:
            raise TimestampError("bad_timestamp")
    return micros


_date_prefixes: dict[int, str] = {}
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))  # a format spec costs more than an index


def format_timestamp(micros: Micros) -> str:
    """Format UTC microseconds as YYYY-MM-DDTHH:MM:SS[.ffffff]Z."""
    # Every alert's evidence prints several instants: the date part is looked up per day
    # and the time of day is integer arithmetic, without building a datetime.
    day, rest = divmod(micros, _DAY_MICROS)
    prefix = _date_prefixes.get(day)
    if prefix is None:
        dt = _EPOCH + day * _ONE_DAY
        prefix = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T"
        if len(_date_prefixes) < 100_000:
            _date_prefixes[day] = prefix
    seconds, fraction = divmod(rest, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    clock = f"{prefix}{_TWO_DIGITS[hour]}:{_TWO_DIGITS[minute]}:{_TWO_DIGITS[second]}"
    return f"{clock}.{fraction:06d}Z" if fraction else f"{clock}Z"


def from_datetime(dt: datetime) -> Micros:
    """Convert an aware datetime to UTC microseconds."""
    if dt.tzinfo is None:
        raise TimestampError("timestamp_without_offset")
    return (dt - _EPOCH) // _ONE_MICRO
