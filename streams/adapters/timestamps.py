"""Feed timestamps -> RFC 3339 with offset, local times read in the facility time zone.

Output: "YYYY-MM-DDTHH:MM:SS[.f{1,6}]" then "Z" for a zero offset, else "+hh:mm"/"-hh:mm".
Fractional digits are kept as sent, truncated to six. A local time that a DST change skips
or repeats is resolved the zoneinfo way (fold=0: the offset in force before the change).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

# HL7 v2 TS/DTM: YYYYMMDD[HH[MM[SS[.S+]]]][+/-ZZZZ]; a trailing "^precision" is cut first.
_HL7_TS = re.compile(
    r"(\d{4})(\d{2})(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d+))?)?)?)?(?:([+-])(\d{2})(\d{2}))?",
    re.ASCII,  # digits 0-9 only: "\d" would also take Arabic-Indic and other digits
)
# ISO 8601 / FHIR dateTime / MIMIC "YYYY-MM-DD HH:MM:SS": date, optional time, optional offset.
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(?:([Zz])|([+-])(\d{2}):(\d{2}))?)?",
    re.ASCII,
)


class BadTimestamp(ValueError):
    """A timestamp that cannot be read; str() is the text as given."""


def _offset(sign: str, hours: str, minutes: str, text: str) -> tzinfo:
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise BadTimestamp(text)
    delta = timedelta(hours=h, minutes=m)
    return timezone(-delta if sign == "-" else delta)


def _build(parts: tuple[str | None, ...], frac: str | None, tz: tzinfo, text: str) -> str:
    year, month, day, hour, minute, second = (int(p) if p else 0 for p in parts)
    micro = int((frac or "")[:6].ljust(6, "0"))
    try:
        stamp = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        return format_rfc3339(stamp, frac)
    except ValueError:  # month 13, Feb 30, hour 24, second 60 ...
        raise BadTimestamp(text) from None
    except OverflowError:  # 0001-01-01 local east of UTC ("null date"): before year 1 in UTC
        raise BadTimestamp(text) from None


def format_rfc3339(stamp: datetime, frac: str | None = None) -> str:
    """Format an aware datetime; frac (digits) overrides the rendering of its microseconds."""
    offset = stamp.utcoffset()
    if offset is None:
        raise ValueError("naive datetime")
    if offset.total_seconds() % 60:  # local mean time of old dates: seconds in the offset
        stamp, offset = stamp.astimezone(UTC), timedelta(0)
    if frac is None:
        frac = f"{stamp.microsecond:06d}".rstrip("0") if stamp.microsecond else ""
    text = f"{stamp.year:04d}-{stamp:%m-%dT%H:%M:%S}" + (f".{frac[:6]}" if frac else "")
    total = int(offset.total_seconds()) // 60
    if total == 0:
        return text + "Z"
    hours, minutes = divmod(abs(total), 60)
    return f"{text}{'-' if total < 0 else '+'}{hours:02d}:{minutes:02d}"


def parse_hl7_ts(text: str, local: tzinfo) -> str:
    """HL7 v2 timestamp -> RFC 3339; without an offset it is a local time in `local`.

    Raises BadTimestamp for anything less precise than a day or not a real instant.
    """
    value = text.split("^", 1)[0].strip()
    match = _HL7_TS.fullmatch(value)
    if not match:
        raise BadTimestamp(text)
    year, month, day, hour, minute, second, frac, sign, oh, om = match.groups()
    tz = _offset(sign, oh, om, text) if sign else local
    return _build((year, month, day, hour, minute, second), frac, tz, text)


def parse_iso(text: str, local: tzinfo, *, date_only: bool = True) -> str:
    """ISO 8601 / FHIR dateTime -> RFC 3339.

    A time without offset is local to `local`; a date alone (FHIR allows "2015-01-15") is the
    start of that day in `local` when date_only is true. Year or year-month alone is refused.
    """
    match = _ISO.fullmatch(text.strip())
    if not match:
        raise BadTimestamp(text)
    year, month, day, hour, minute, second, frac, zulu, sign, oh, om = match.groups()
    if hour is None and not date_only:
        raise BadTimestamp(text)
    if zulu:
        tz: tzinfo = UTC
    elif sign:
        tz = _offset(sign, oh, om, text)
    else:
        tz = local
    return _build((year, month, day, hour, minute, second), frac, tz, text)


def sort_key(rfc3339: str) -> datetime:
    """The instant of a timestamp produced by this module (for ordering)."""
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
