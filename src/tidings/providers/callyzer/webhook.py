"""Callyzer webhooks: authenticate them and turn their call logs into call records.

Pure functions, no I/O. Callyzer documents neither the webhook's envelope nor how it
authenticates (tests/fixtures/callyzer/README.md). What real integrations receive, and what is
accepted here:

- a list of employees, each `{emp_name, emp_code, emp_country_code, emp_number, emp_tags,
  call_logs: [call, ...]}` (what Connectors > API & Webhook sends today);
- one such employee object;
- one flat call (`{id, call_type, call_date, ..., emp_name, ...}`), or a list of them (the
  shape of the history API's `result[]`, which older set-ups forward);
- any of these wrapped once as `{"result": ...}` or `{"data": ...}` (the history API's answer
  `{"message", "result", "total_records"}`, and relays that forward it whole).

A body that is none of these cannot become one by retrying: PayloadError, dead-lettered at
once. One bad call among good ones is a BadItem; the others still apply.

`parse_call` turns one call as the history API lists it into a record, for the poll.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidings.domain.call_numbers import e164
from tidings.domain.call_times import Zones, call_start, read_stamp, zones
from tidings.domain.calls import CallRecord, Employee, call_type, duration_seconds
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import BadItem, Ignored, ParsedItem
from tidings.domain.recipients import REGIONS
from tidings.providers.base import (
    DEFAULT_REGION,
    DEFAULT_TIMEZONE,
    ConnectionAuth,
    RequestParts,
    check_token,
    load_json,
)

__all__ = [
    "CallContext",
    "call_context",
    "parse",
    "parse_call",
    "parse_with",
    "verify",
]

_SHAPES = (
    "a list of employees each with call_logs[], one employee with call_logs[], one call "
    "(an object with id and call_type), or a list of calls"
)
_WRAPPERS = ("result", "data")
_CALL_FIELDS = frozenset(
    {"call_type", "call_date", "call_time", "client_number", "duration", "modified_at"}
)
_ID_FIELDS = ("id", "unique_id")
_TEXT_LIMIT = 2000  # a note or a URL longer than this is cut (with a note): not a call's data


@dataclass(frozen=True)
class CallContext:
    """What reading a connection's calls needs of it: where its local times are, and the
    region of numbers written without a country code."""

    zones: Zones = field(default_factory=Zones)
    region: str | None = None


def call_context(options: Mapping[str, str]) -> CallContext:
    """The context of a connection with these options (`timezone`, `region`, plus the
    deployment defaults under DEFAULT_TIMEZONE and DEFAULT_REGION)."""
    region = (options.get("region") or options.get(DEFAULT_REGION) or "").strip().upper()
    return CallContext(
        zones(options.get("timezone"), options.get(DEFAULT_TIMEZONE)),
        region if region in REGIONS else None,
    )


def verify(request: RequestParts, connection: ConnectionAuth) -> None:
    """Accept the connection secret as `?token=` or in the `auth_header` header.

    Callyzer documents no signature; the webhook URL typed in Connectors > API & Webhook is
    what it can be given, so the secret travels in it.

    Raises:
        SignatureError: no credential was given, or the one given is wrong.
    """
    if check_token(request, connection):
        return
    header = connection.options.get("auth_header")
    header_hint = f" or send it in the {header!r} header" if header else ""
    raise SignatureError(
        f"callyzer connection {connection.name!r}: missing credentials; put the connection "
        f"secret in the webhook URL as ?token=<secret>{header_hint}"
    )


def parse(body: bytes, headers: Mapping[str, str]) -> list[ParsedItem]:
    """Call records in a webhook body, with times read in UTC and no default region (the
    worker calls `parse_with` and the connection's options instead).

    Raises:
        PayloadError: the body is not JSON, or is none of the shapes Callyzer sends.
    """
    return parse_with(body, headers, {})


def parse_with(
    body: bytes, headers: Mapping[str, str], options: Mapping[str, str]
) -> list[ParsedItem]:
    """Call records in a webhook body, read with the connection's `options`.

    Raises:
        PayloadError: the body is not JSON, or is none of the shapes Callyzer sends.
    """
    document = load_json(body, "callyzer", f"Callyzer sends {_SHAPES}")
    document = _unwrapped(document)
    context = call_context(options)
    if isinstance(document, dict):
        entries: Sequence[Any] = [document]
        if not _is_employee(document) and not _is_call(document):
            raise PayloadError(
                f"callyzer: the body is none of the shapes Callyzer sends ({_SHAPES}); "
                f"it has the keys {_keys(document)}"
            )
    elif isinstance(document, list):
        entries = document
        if entries and not any(_is_employee(e) or _is_call(e) for e in entries):
            raise PayloadError(
                f"callyzer: the body is a list of {len(entries)} items, none of them an "
                f"employee with call_logs or a call ({_SHAPES})"
            )
    else:
        raise PayloadError(f"callyzer: the body is a JSON {type(document).__name__}, not {_SHAPES}")
    items: list[ParsedItem] = []
    for entry in entries:
        if _is_employee(entry):
            items.extend(_employee_calls(entry, context, len(items)))
        elif _is_call(entry):
            items.append(_call_item(entry, None, context, len(items)))
        else:
            items.append(BadItem(len(items), f"neither an employee nor a call: {_shape(entry)}"))
    return items or [Ignored("the body carries no call logs")]


def parse_call(
    call: Mapping[str, Any],
    options: Mapping[str, str],
    employee: Mapping[str, Any] | None = None,
) -> CallRecord:
    """One call (a webhook's `call_logs[]` entry, or the history API's `result[]` entry,
    which carries its employee's `emp_*` fields itself) as a record, read with a
    connection's `options` (`timezone`, `region`).

    Raises:
        PayloadError: the call has no id.
    """
    return _record(call, employee, call_context(options))


def _unwrapped(document: Any) -> Any:
    """The body inside one `{"result": …}` or `{"data": …}` wrapper, if it has one."""
    if isinstance(document, dict) and not _is_employee(document) and not _is_call(document):
        for key in _WRAPPERS:
            inner = document.get(key)
            if isinstance(inner, list | dict):
                return inner
    return document


def _is_employee(entry: object) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("call_logs"), list)


def _is_call(entry: object) -> bool:
    if not isinstance(entry, dict) or "call_logs" in entry:
        return False
    return any(key in entry for key in _ID_FIELDS) and not _CALL_FIELDS.isdisjoint(entry)


def _employee_calls(entry: Mapping[str, Any], context: CallContext, first: int) -> list[ParsedItem]:
    items: list[ParsedItem] = []
    for call in entry["call_logs"]:
        index = first + len(items)
        if not isinstance(call, dict):
            items.append(BadItem(index, f"a call_logs entry is {_shape(call)}, not a call"))
        else:
            items.append(_call_item(call, entry, context, index))
    return items


def _call_item(
    call: Mapping[str, Any], employee: Mapping[str, Any] | None, context: CallContext, index: int
) -> ParsedItem:
    try:
        return _record(call, employee, context)
    except PayloadError as error:
        return BadItem(index, str(error))


def _record(
    call: Mapping[str, Any], employee: Mapping[str, Any] | None, context: CallContext
) -> CallRecord:
    call_id = _call_id(call)
    notes: list[str] = []
    kind, raw_type = call_type(call.get("call_type"))
    if not raw_type:
        notes.append("the call has no call_type")
    seconds = duration_seconds(call.get("duration"))
    if seconds is None:
        notes.append(f"duration {str(call.get('duration'))[:20]!r} is not a number of seconds")
        seconds = 0
    started_at, note = call_start(call.get("call_date"), call.get("call_time"), context.zones)
    _add(notes, "call_date/call_time", note)
    synced_at, note = read_stamp(call.get("synced_at"), context.zones)
    _add(notes, "synced_at", note)
    modified_at, note = read_stamp(call.get("modified_at"), context.zones)
    _add(notes, "modified_at", note)
    client_raw = _text(call.get("client_number"))
    client_number = e164(client_raw, call.get("client_country_code"), context.region)
    if client_raw and client_number is None:
        client_number = client_raw[:40]
    return CallRecord(
        call_id=call_id,
        type=kind,
        raw_type=raw_type[:100],
        duration_seconds=seconds,
        started_at=started_at,
        employee=_employee(employee if employee is not None else call, context),
        client_name=_limited(call.get("client_name"), 200, "client_name", notes),
        client_number=client_number,
        note=_limited(call.get("note"), _TEXT_LIMIT, "note", notes),
        # The live field is call_recording_url; the published docs say recording_url.
        recording_url=_limited(
            call.get("call_recording_url") or call.get("recording_url"),
            _TEXT_LIMIT,
            "call_recording_url",
            notes,
        ),
        crm_status=_limited(call.get("crm_status"), 200, "crm_status", notes),
        synced_at=synced_at,
        modified_at=modified_at,
        notes=tuple(f"call {call_id}: {note}" for note in notes),
    )


def _call_id(call: Mapping[str, Any]) -> str:
    for key in _ID_FIELDS:
        value = call.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.strip()):
            text = str(value).strip()
            if len(text) > 200:
                raise PayloadError(f"callyzer: call id {text[:20]!r}... is over 200 characters")
            return text
    raise PayloadError(f"callyzer: a call without an id (keys: {_keys(call)})")


def _employee(source: Mapping[str, Any], context: CallContext) -> Employee | None:
    """The employee of a call: from its employee object, or the `emp_*` fields of a flat
    call; None when neither names one."""
    raw_number = _text(source.get("emp_number"))
    country_code = _text(source.get("emp_country_code"))
    number = e164(raw_number, country_code, context.region) if raw_number else None
    code = _text(source.get("emp_code")) or number or raw_number
    if not code:
        return None
    return Employee(
        code=code[:100],
        name=_text(source.get("emp_name"))[:200] or None,
        number=(number or raw_number)[:40] or None,
        country_code=country_code[:10] or None,
        tags=_tags(source.get("emp_tags")),
    )


def _tags(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        parts: list[object] = list(value.split(","))
    elif isinstance(value, list):
        parts = value
    else:
        return ()
    tags = (_text(part)[:100] for part in parts if isinstance(part, str | int))
    return tuple(tag for tag in tags if tag)


def _text(value: object) -> str:
    if value is None or isinstance(value, bool | dict | list):
        return ""
    return str(value).strip()


def _limited(value: object, limit: int, name: str, notes: list[str]) -> str | None:
    text = _text(value)
    if len(text) > limit:
        notes.append(f"{name} cut to {limit} characters")
        text = text[:limit]
    return text or None


def _add(notes: list[str], name: str, note: str | None) -> None:
    if note:
        notes.append(f"{name}: {note}")


def _keys(document: Mapping[str, Any]) -> str:
    names = sorted(str(key)[:30] for key in document)
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f"[{shown}]"


def _shape(value: object) -> str:
    if isinstance(value, dict):
        return f"an object with the keys {_keys(value)}"
    return f"a JSON {type(value).__name__}"
