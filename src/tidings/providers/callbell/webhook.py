"""Callbell webhooks: authenticate them, turn status events into events, answer the check.

Pure functions, no I/O. Source: callbellchat/callbell-public-docs,
`docs/api/reference/webhooks/message_events/message_status_updated.md` and
`docs/api/reference/webhooks/introduction.md` (docs.callbell.eu). See
tests/fixtures/callbell/README.md for the payloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import EventKind, Ignored, NormalizedEvent, ParsedItem
from tidings.providers.base import ConnectionAuth, Reply, RequestParts, check_token, load_json

__all__ = ["parse", "reply", "verify"]

_CHANNEL = "whatsapp"
_STATUS_EVENT = "message_status_updated"
_CONNECTION_CHECK = "connection check"
_NO_REASON = "Callbell reported failed (no reason given)"

# Documented values of payload.status; mismatch and deleted are not lifecycle steps.
_STATUS_KINDS: dict[str, EventKind] = {
    "enqueued": EventKind.QUEUED,
    "sent": EventKind.SENT,
    "delivered": EventKind.DELIVERED,
    "read": EventKind.READ,
    "failed": EventKind.FAILED,
    "mismatch": EventKind.MISMATCH,
    "deleted": EventKind.DELETED,
}

# Where a `mismatch` may carry the corrected WhatsApp id inside messageStatusPayload.payload.
# The docs only say "the corrected phone number identifier will be present inside the inner
# payload"; these are the names Gupshup-style raw events use.
_CORRECTED_ID_FIELDS = ("wa_id", "waId", "newDestination", "new_destination", "destination")

# Seconds since 1970 pass 1e11 only in the year 5138: a larger `ts` is milliseconds.
_MILLISECONDS_THRESHOLD = 100_000_000_000


def verify(request: RequestParts, connection: ConnectionAuth) -> None:
    """Accept the connection secret as `?token=` or in the `auth_header` header.

    Callbell's webhook introduction documents no signature or auth header to check, so a
    secret in the URL is what proves a request came from the configured subscription.

    Raises:
        SignatureError: no credential was given, or the one given is wrong.
    """
    if check_token(request, connection):
        return
    header = connection.options.get("auth_header")
    header_hint = f" or send it in the {header!r} header" if header else ""
    raise SignatureError(
        f"callbell connection {connection.name!r}: missing credentials; put the connection "
        f"secret in the webhook URL as ?token=<secret>{header_hint}"
    )


def parse(body: bytes, headers: Mapping[str, str]) -> list[ParsedItem]:
    """Turn one Callbell webhook body into events; anything but a status event is a no-op.

    Callbell checks the endpoint periodically with a request whose shape is not documented
    (introduction.md), so an empty body or any JSON that is not a status event is taken as
    that check rather than rejected.

    Raises:
        PayloadError: the body is not JSON, or a `message_status_updated` lacks what it needs.
    """
    if not body.strip():
        return [Ignored(_CONNECTION_CHECK)]
    document = _load(body)
    if not isinstance(document, dict):
        return [Ignored(_CONNECTION_CHECK)]
    event = document.get("event")
    if not isinstance(event, str) or not event:
        return [Ignored(_CONNECTION_CHECK)]
    if event != _STATUS_EVENT:
        return [Ignored(f"event {event} is not tracked")]
    return [_status_event(document.get("payload"))]


def reply(body: bytes) -> Reply | None:
    """Answer Callbell's connection check with the documented 200 `{"status": "ok"}`.

    Status events get the standard 202; a body that is not JSON gets None too, so intake
    quarantines it and answers 400.
    """
    if not body.strip():
        return 200, {"status": "ok"}
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, dict) and document.get("event") == _STATUS_EVENT:
        return None
    return 200, {"status": "ok"}


def _load(body: bytes) -> object:
    return load_json(body, "callbell")


def _status_event(payload: object) -> NormalizedEvent:
    if not isinstance(payload, dict):
        raise PayloadError(f"callbell: {_STATUS_EVENT} has no payload object")
    uuid = payload.get("uuid")
    if not isinstance(uuid, str) or not uuid.strip():
        raise PayloadError(
            f"callbell: {_STATUS_EVENT} has no payload.uuid (the id POST /messages/send returned)"
        )
    raw_status = payload.get("status")
    if not isinstance(raw_status, str) or not raw_status.strip():
        raise PayloadError(f"callbell: {_STATUS_EVENT} for message {uuid!r} has no payload.status")
    kind = _STATUS_KINDS.get(raw_status.strip().lower(), EventKind.UNKNOWN)
    # "the raw message status payload": not specified further, so read it defensively.
    raw = payload.get("messageStatusPayload")
    inner = raw if isinstance(raw, dict) else {}
    inner_payload = inner.get("payload")
    inner_payload = inner_payload if isinstance(inner_payload, dict) else {}

    details: dict[str, Any] = {
        name: payload[name] for name in ("contact", "messageStatusPayload") if name in payload
    }
    failure_code: str | None = None
    failure_reason: str | None = None
    if kind is EventKind.FAILED:
        failure_code, failure_reason = _failure(inner)
    elif kind is EventKind.MISMATCH:
        corrected = _first_text(inner_payload, _CORRECTED_ID_FIELDS)
        if corrected is not None:
            details["corrected_id"] = corrected

    return NormalizedEvent(
        provider_message_id=uuid.strip(),
        kind=kind,
        raw_status=raw_status,
        occurred_at=_timestamp(inner_payload.get("ts")),
        channel=_CHANNEL,
        recipient=_recipient(payload.get("contact"), inner),
        failure_code=failure_code,
        failure_reason=failure_reason,
        after_send=kind is EventKind.FAILED,
        metadata=_metadata(payload.get("metadata")),
        details=details,
    )


def _failure(inner: Mapping[str, Any]) -> tuple[str | None, str]:
    """(code, reason) from wherever the raw payload keeps them; the field is undocumented.

    Gupshup-style events put `{code, reason}` in `payload`; Meta-style ones an `errors` list
    of `{code, title, message}`; some relays a bare `reason` or `error` at the top.
    """
    code: str | None = None
    reason: str | None = None
    for container in (inner.get("payload"), inner):
        if not isinstance(container, dict):
            continue
        errors = container.get("errors")
        first_error = errors[0] if isinstance(errors, list) and errors else None
        candidates = (container.get("reason"), container.get("error"), first_error)
        for candidate in candidates:
            if reason is None:
                reason = _reason_text(candidate)
        for candidate in (container, container.get("error"), first_error):
            if code is None and isinstance(candidate, dict):
                code = _code(candidate.get("code"))
    return code, reason or _NO_REASON


def _reason_text(candidate: object) -> str | None:
    if isinstance(candidate, str):
        return candidate.strip() or None
    if isinstance(candidate, dict):
        return _first_text(candidate, ("reason", "title", "message", "details"))
    return None


def _code(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _first_text(source: Mapping[str, Any], fields: tuple[str, ...]) -> str | None:
    for field in fields:
        value = source.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def _timestamp(value: object) -> datetime | None:
    """messageStatusPayload.payload.ts, Unix seconds in the docs' example."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000 if value > _MILLISECONDS_THRESHOLD else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _recipient(contact: object, inner: Mapping[str, Any]) -> str | None:
    number: object = None
    if isinstance(contact, dict):
        number = contact.get("phoneNumber")
    if not _usable_number(number):
        number = inner.get("destination")
    if not _usable_number(number):
        return None
    text = str(number).strip()
    return f"+{text}" if text.isascii() and text.isdigit() else text


def _usable_number(value: object) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, int) and not isinstance(value, bool)


def _metadata(value: object) -> dict[str, str]:
    """Your own key/value pairs from send time; values coerced to text, nulls dropped."""
    if not isinstance(value, dict):
        return {}
    result: dict[str, str] = {}
    for key, item in value.items():
        if item is None:
            continue
        result[str(key)] = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
    return result
