"""Call records: what Callyzer says about one finished phone call, in tidings' own terms.

A call is not a message: it has no lifecycle, only a latest version (its `modified_at`). The
parser turns Callyzer's fields into a `CallRecord` with numbers in E.164 and times in UTC
(`domain.call_numbers`, `domain.call_times`); the call kind's rules (`domain.call_changes`)
decide what a record changes. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "LOCALES",
    "CallRecord",
    "CallType",
    "Employee",
    "call_type",
    "duration_seconds",
    "label",
    "labels",
    "locale_of",
]


class CallType(StrEnum):
    """The four kinds of call Callyzer reports (its `call_types` filter values), and `unknown`
    for any other word, which is kept as the record's raw type."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"
    MISSED = "missed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Employee:
    """The adviser whose phone made or took the call. `code` identifies them: Callyzer's
    `emp_code`, or their number when the account gives employees no code."""

    code: str
    name: str | None = None
    number: str | None = None  # E.164 when it could be read, else as sent
    country_code: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallRecord:
    """One call as Callyzer last described it.

    `modified_at` orders two versions of one call (a later one wins); `synced_at` is when the
    phone uploaded it. `client_number` is E.164 when the number could be read, else the text
    as sent (a short code, "Unknown"), which never matches a lead. `notes` say what could
    not be read and are kept on the receipt."""

    call_id: str
    type: CallType
    raw_type: str
    duration_seconds: int = 0
    started_at: datetime | None = None
    employee: Employee | None = None
    client_name: str | None = None
    client_number: str | None = None
    note: str | None = None
    recording_url: str | None = None
    crm_status: str | None = None
    synced_at: datetime | None = None
    modified_at: datetime | None = None
    notes: tuple[str, ...] = ()


_TYPES = {t.value: t for t in CallType if t is not CallType.UNKNOWN}


def call_type(raw: object) -> tuple[CallType, str]:
    """The call type and the provider's own word for it ("Incoming" → incoming)."""
    text = "" if raw is None else str(raw).strip()
    return _TYPES.get(text.casefold(), CallType.UNKNOWN), text


# "1:02:03", "2:03", "0h 1m 4s", "1m 4s", "64s", "64", 64, 64.0
_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})")
_UNITS = re.compile(
    r"(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*(?:(\d+)\s*s(?:ec)?)?", re.IGNORECASE
)


def duration_seconds(raw: object) -> int | None:
    """Seconds in Callyzer's `duration` (a number of seconds today; "0h 0m 44s" in its older
    API, "00:00:44" in some exports). None when it is none of these; empty means 0."""
    if raw is None or isinstance(raw, bool):
        return 0 if raw is None else None
    if isinstance(raw, int | float):
        return int(raw) if 0 <= raw < 10**9 else None
    text = str(raw).strip()
    if not text:
        return 0
    if text.isascii() and text.isdigit():
        return int(text) if len(text) < 10 else None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return int(number) if 0 <= number < 10**9 else None
    clock = _CLOCK.fullmatch(text)
    if clock:
        hours, minutes, seconds = (int(part or 0) for part in clock.groups())
        return hours * 3600 + minutes * 60 + seconds
    units = _UNITS.fullmatch(text)
    if units and any(units.groups()):
        hours, minutes, seconds = (int(part or 0) for part in units.groups())
        return hours * 3600 + minutes * 60 + seconds
    return None


# Display labels of each call type, per locale (Polish from the original requirements).
LOCALES: Mapping[str, Mapping[CallType, str]] = {
    "en": {
        CallType.INCOMING: "Incoming",
        CallType.OUTGOING: "Outgoing",
        CallType.MISSED: "Missed",
        CallType.REJECTED: "Rejected",
        CallType.UNKNOWN: "Unknown",
    },
    "pl": {
        CallType.INCOMING: "Przychodzące",
        CallType.OUTGOING: "Wychodzące",
        CallType.MISSED: "Nieodebrane",
        CallType.REJECTED: "Odrzucone",
        CallType.UNKNOWN: "Nieznane",
    },
}


def locale_of(value: str) -> str | None:
    """The locale tidings has labels for that `value` names ("pl", "pl-PL", "pl_PL" → "pl");
    None when it has none."""
    language = value.strip().replace("_", "-").split("-", 1)[0].casefold()
    return language if language in LOCALES else None


def label(kind: CallType | str, locale: str = "en") -> str:
    """How a call type is shown to a person in `locale` (English when it has no labels)."""
    found = LOCALES[locale_of(locale) or "en"]
    try:
        return found[CallType(kind)]
    except ValueError:
        return found[CallType.UNKNOWN]


def labels(locale: str = "en") -> dict[str, str]:
    """Every call type's label in `locale`, by type."""
    return {kind.value: label(kind, locale) for kind in CallType}
