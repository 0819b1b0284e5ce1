"""Times of calls in UTC, however Callyzer wrote them. Pure (time zone rules come from the
system's tz database, which is data, not I/O that can fail per call).

Callyzer writes local times: `call_date` + `call_time` ("2026-07-28", "10:44:41") and stamps
with a zone abbreviation (`synced_at`, `modified_at`: "2026-07-28 10:44:41 IST"). Its older
API wrote dates as "15 Sep 2021". An abbreviation names a zone only when it is unambiguous:
"IST" is India's, Ireland's and Israel's, so the account's zone must say which (the
connection's `timezone` option, e.g. Asia/Kolkata). The rules, in order:

1. `Z`, `UTC`, `GMT` or a numeric offset (`+05:30`) say the offset themselves.
2. An abbreviation the account's zone uses at that time is read in that zone.
3. An abbreviation that means one offset in every zone that uses it is read at that offset.
4. Anything else (and a time without a zone) is read in the account's zone, else in the
   fallback zone (`TIDINGS_TIMEZONE`, UTC by default); an abbreviation read that way leaves
   a note saying so, so a person can set the right `timezone` option.

Dates with the day first (`28-07-2026`, `28/07/2026`) are read day first, as Callyzer's
Indian and European users write them; a year first (`2026-07-28`) is ISO.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = ["Zones", "call_start", "read_stamp", "zone_named", "zones"]


@dataclass(frozen=True)
class Zones:
    """Where a connection's local times are: the account's zone (its `timezone` option), if
    known, and the fallback for times that say nothing better."""

    account: ZoneInfo | None = None
    fallback: tzinfo = UTC

    @property
    def local(self) -> tzinfo:
        return self.account or self.fallback


def zone_named(name: str | None) -> ZoneInfo | None:
    """The IANA zone called `name` ("Asia/Kolkata"), None when there is none by that name."""
    if not name or not name.strip():
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zones(account: str | None, fallback: str | None = None) -> Zones:
    """Zones from a connection's `timezone` option and `TIDINGS_TIMEZONE` (names unknown to
    the tz database are left out: the option is checked when the connection is stored)."""
    return Zones(zone_named(account), zone_named(fallback) or UTC)


_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}

_DATE = (
    r"(?:(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})"
    r"|(?P<d2>\d{1,2})[-/.](?P<m2>\d{1,2})[-/.](?P<y2>\d{4})"
    r"|(?P<d3>\d{1,2})[ -](?P<mon>[A-Za-z]{3,9})[ ,-]+(?P<y3>\d{4}))"
)
_TIME = (
    r"(?P<h>\d{1,2}):(?P<min>\d{2})(?::(?P<s>\d{2})(?:\.(?P<frac>\d{1,6})\d*)?)?"
    r"(?:\s*(?P<ampm>[AaPp]\.?[Mm]\.?))?"
)
_ZONE = r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?|[A-Za-z]{2,6})"
_STAMP = re.compile(rf"\s*{_DATE}(?:(?:T|\s+){_TIME})?\s*{_ZONE}?\s*")
_DATE_ONLY = re.compile(rf"\s*{_DATE}\s*")
_TIME_ONLY = re.compile(rf"\s*{_TIME}\s*{_ZONE}?\s*")

_UTC_NAMES = frozenset({"Z", "UTC", "GMT", "UT"})

# Seconds since 1970 pass 1e11 only in the year 5138: a larger number is milliseconds.
_MILLISECONDS = 100_000_000_000


def read_stamp(value: object, where: Zones) -> tuple[datetime | None, str | None]:
    """A stamp ("2026-07-28 10:44:41 IST", ISO 8601, Unix seconds) in UTC, and a note when
    it could not be read or its zone was a guess. Empty means no time, without a note."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, bool | list | dict):
        return None, f"{str(value)[:40]!r} is not a time tidings can read"
    if isinstance(value, int | float):
        return _epoch(value)
    if isinstance(value, str) and _ascii_digits(value.strip()):
        # Stripped as it was judged: str.strip takes \x1c-\x1f too, which float() refuses.
        return _epoch(value.strip())
    text = str(value)
    found = _STAMP.fullmatch(text)
    if found is None:
        return None, f"{text[:40]!r} is not a time tidings can read"
    day = _date(found)
    clock = _time(found) if found.group("h") else time()
    if day is None or clock is None:
        return None, f"{text[:40]!r} is not a valid date and time"
    return _in_utc(datetime.combine(day, clock), found.group("zone"), where)


def call_start(
    call_date: object, call_time: object, where: Zones
) -> tuple[datetime | None, str | None]:
    """When a call started, from Callyzer's local `call_date` and `call_time`, in UTC; a
    note when they could not be read."""
    if call_date is None or str(call_date).strip() == "":
        return None, "the call has no call_date"
    date_text, time_text = str(call_date).strip(), str(call_time or "").strip()
    if not time_text:  # the date may carry the time itself: "2026-07-28 10:44:41"
        return read_stamp(date_text, where)
    day_found = _DATE_ONLY.fullmatch(date_text)
    time_found = _TIME_ONLY.fullmatch(time_text)
    if day_found is None or time_found is None:
        return None, f"call_date {date_text[:20]!r} call_time {time_text[:20]!r} is not readable"
    day = _date(day_found)
    clock = _time(time_found)
    if day is None or clock is None:
        return None, f"call_date {date_text[:20]!r} call_time {time_text[:20]!r} is not valid"
    return _in_utc(datetime.combine(day, clock), time_found.group("zone"), where)


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _epoch(value: int | float | str) -> tuple[datetime | None, str | None]:
    number = float(value)
    seconds = number / 1000 if number > _MILLISECONDS else number
    try:
        return datetime.fromtimestamp(seconds, tz=UTC), None
    except (ValueError, OverflowError, OSError):
        return None, f"{value!r} is not a time tidings can read"


def _date(found: re.Match[str]) -> date | None:
    groups = found.groupdict()
    try:
        if groups["y"]:
            return date(int(groups["y"]), int(groups["m"]), int(groups["d"]))
        if groups["y2"]:
            return date(int(groups["y2"]), int(groups["m2"]), int(groups["d2"]))
        month = _MONTHS.get(groups["mon"].casefold())
        if month is None:
            return None
        return date(int(groups["y3"]), month, int(groups["d3"]))
    except ValueError:
        return None


def _time(found: re.Match[str]) -> time | None:
    groups = found.groupdict()
    hour, minute = int(groups["h"]), int(groups["min"])
    second = int(groups["s"] or 0)
    micro = int((groups["frac"] or "0").ljust(6, "0"))
    ampm = (groups["ampm"] or "").replace(".", "").upper()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "PM" else 0)
    try:
        return time(hour, minute, second, micro)
    except ValueError:
        return None


def _in_utc(local: datetime, zone: str | None, where: Zones) -> tuple[datetime | None, str | None]:
    """`local` (naive) in UTC, read by the rules in the module's docstring."""
    try:
        if zone is None:
            return _aware(local, where.local), None
        name = zone.upper()
        if name in _UTC_NAMES:
            return local.replace(tzinfo=UTC), None
        if name[0] in "+-":
            return _at_offset(local, name), None
        if where.account is not None:
            for fold in (0, 1):
                candidate = local.replace(tzinfo=where.account, fold=fold)
                if candidate.tzname() == name:
                    return candidate.astimezone(UTC), None
        offsets = _offsets_of(name, local.year)
        if len(offsets) == 1:
            (offset,) = offsets
            return local.replace(tzinfo=timezone(offset)).astimezone(UTC), None
        read_in = where.local
        meaning = "is ambiguous" if offsets else "is no zone tidings knows"
        hint = "" if where.account else " (set the connection's timezone option, e.g. Asia/Kolkata)"
        note = f"the time zone {zone!r} {meaning}; read in {_zone_name(read_in)}{hint}"
        return _aware(local, read_in), note
    except (OverflowError, ValueError):
        return None, f"{local.isoformat()} {zone or ''} is out of range".strip()


def _aware(local: datetime, zone: tzinfo) -> datetime:
    return local.replace(tzinfo=zone).astimezone(UTC)


def _at_offset(local: datetime, text: str) -> datetime:
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} is out of range")
    offset = timedelta(hours=hours, minutes=minutes) * sign
    return local.replace(tzinfo=timezone(offset)).astimezone(UTC)


def _zone_name(zone: tzinfo) -> str:
    return zone.key if isinstance(zone, ZoneInfo) else str(zone)


@lru_cache(maxsize=256)
def _offsets_of(abbreviation: str, year: int) -> frozenset[timedelta]:
    """Every UTC offset that some zone of the tz database calls `abbreviation` in `year`
    (looked at in mid-January and mid-July, so both its standard and summer names count)."""
    found: set[timedelta] = set()
    samples = (datetime(year, 1, 15, 12), datetime(year, 7, 15, 12))
    for name in _zone_names():
        zone = ZoneInfo(name)
        for sample in samples:
            aware = sample.replace(tzinfo=zone)
            if aware.tzname() == abbreviation:
                offset = aware.utcoffset()
                if offset is not None:
                    found.add(offset)
    return frozenset(found)


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))
