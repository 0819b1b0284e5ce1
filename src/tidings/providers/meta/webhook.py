"""Meta WhatsApp Cloud API webhooks: status parsing (the signature and handshake are in
`signature.py`).

Pure functions, no I/O, so intake, the worker and replays all get the same answer. Sources
(Meta's public documentation): the status webhook reference
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status/),
the errors webhook reference (.../webhooks/reference/messages/errors) and Webhooks "Getting
Started" (https://developers.facebook.com/docs/graph-api/webhooks/getting-started/) for the
verification request and the `X-Hub-Signature-256` header. See tests/fixtures/meta/README.md
for the payloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tidings.domain.errors import PayloadError
from tidings.domain.events import (
    BadItem,
    EventKind,
    Ignored,
    NormalizedEvent,
    ParsedItem,
)
from tidings.providers.base import load_json

__all__ = ["parse"]

_CHANNEL = "whatsapp"
_OBJECT = "whatsapp_business_account"
_FIELD = "messages"

# Meta's `statuses[].status`. The Cloud API documents sent, delivered, read and failed; the
# On-Premises API also `deleted` (the user deleted the message); newer docs mention `played`
# for voice messages. Anything else (`warning`, ...) becomes an `unknown` event.
_STATUS_KINDS: dict[str, EventKind] = {
    "sent": EventKind.SENT,
    "delivered": EventKind.DELIVERED,
    "read": EventKind.READ,
    "played": EventKind.PLAYED,
    "failed": EventKind.FAILED,
    "deleted": EventKind.DELETED,
}

# These become NormalizedEvent fields; every other key of a status is kept in `details`.
_STATUS_FIELDS = frozenset({"id", "status", "timestamp", "recipient_id"})

_NO_ERRORS = "Meta reported failed without errors[]"
_CALLBACK_DATA = "biz_opaque_callback_data"


def parse(body: bytes, headers: Mapping[str, str]) -> list[ParsedItem]:
    """Turn one Meta webhook body into events, one per status; a bad item spoils only itself.

    One POST may batch several `entry`, `changes` and `statuses`. Inbound `messages` and
    system-level `errors` are genuine but not about a message we track, so they are ignored
    with a reason. A `BadItem`'s index is its position in the returned list.

    Raises:
        PayloadError: the body is not JSON, not a WhatsApp Business Account webhook, or has
            no `entry` list.
    """
    document = _load(body)
    kind = document.get("object")
    if kind != _OBJECT:
        raise PayloadError(
            f"meta: body has object {kind!r}, expected {_OBJECT!r}; subscribe the app to the "
            "WhatsApp Business Account 'messages' field and point only that webhook here"
        )
    entries = document.get("entry")
    if not isinstance(entries, list) or not entries:
        found = "an empty list" if isinstance(entries, list) else _json_type(entries)
        raise PayloadError(
            f"meta: body has no entries (entry is {found}); expected "
            '{"object": "whatsapp_business_account", "entry": [{"id": ..., "changes": [...]}]}'
        )
    items: list[ParsedItem] = []
    for entry_index, entry in enumerate(entries):
        where = f"entry[{entry_index}]"
        if not isinstance(entry, dict):
            _bad(items, f"{where} is {_json_type(entry)}, expected an object")
            continue
        changes = entry.get("changes")
        if not isinstance(changes, list):
            _bad(items, f"{where} has no changes list (got {_json_type(changes)})")
            continue
        for change_index, change in enumerate(changes):
            _parse_change(items, f"{where}.changes[{change_index}]", entry.get("id"), change)
    if not items:
        items.append(Ignored("webhook carried no changes"))
    return items


def _load(body: bytes) -> dict[str, Any]:
    document = load_json(body, "meta")
    if not isinstance(document, dict):
        raise PayloadError(
            f"meta: body is {_json_type(document)} in JSON, expected an object like "
            '{"object": "whatsapp_business_account", "entry": [...]}'
        )
    return document


def _bad(items: list[ParsedItem], error: str) -> None:
    items.append(BadItem(index=len(items), error=f"meta: {error}"))


def _parse_change(items: list[ParsedItem], where: str, account: object, change: object) -> None:
    if not isinstance(change, dict):
        _bad(items, f"{where} is {_json_type(change)}, expected an object")
        return
    field = change.get("field")
    if field != _FIELD:
        items.append(Ignored(f"field {field!r} is not tracked"))
        return
    value = change.get("value")
    if not isinstance(value, dict):
        _bad(items, f"{where} has no value object (got {_json_type(value)})")
        return
    context = _business_context(account, value.get("metadata"))
    found = False
    for name in ("statuses", "messages", "errors"):
        if name not in value:
            continue
        found = True
        listed = value[name]
        if not isinstance(listed, list):
            _bad(items, f"{where}.value.{name} is {_json_type(listed)}, expected a list")
            continue
        for index, item in enumerate(listed):
            path = f"{where}.value.{name}[{index}]"
            if name == "statuses":
                try:
                    items.append(_status_event(path, item, context))
                except PayloadError as exc:
                    _bad(items, str(exc))
            elif name == "messages":
                items.append(Ignored("inbound message"))
            else:
                items.append(Ignored(_system_error(item)))
    if not found:
        items.append(Ignored("change carried no statuses, messages or errors"))


def _business_context(account: object, metadata: object) -> dict[str, str]:
    """Which business account and phone number the change is about, kept in every event."""
    context: dict[str, str] = {}
    if isinstance(account, str) and account:
        context["whatsapp_business_account_id"] = account
    if isinstance(metadata, dict):
        for name in ("phone_number_id", "display_phone_number"):
            text = _text(metadata.get(name))
            if text is not None:
                context[name] = text
    return context


def _status_event(path: str, status: object, context: Mapping[str, str]) -> NormalizedEvent:
    if not isinstance(status, dict):
        raise PayloadError(f"{path} is {_json_type(status)}, expected an object")
    message_id = _text(status.get("id"))
    if message_id is None:
        raise PayloadError(f"{path} has no id (the wamid the send request returned)")
    raw_status = status.get("status")
    if not isinstance(raw_status, str) or not raw_status.strip():
        raise PayloadError(f"{path} for message {message_id!r} has no status")
    kind = _STATUS_KINDS.get(raw_status.strip().lower(), EventKind.UNKNOWN)

    failure_code: str | None = None
    failure_reason: str | None = None
    if kind is EventKind.FAILED:
        failure_code, failure_reason = _failure(status.get("errors"))

    details: dict[str, Any] = dict(context)
    details.update((k, v) for k, v in status.items() if k not in _STATUS_FIELDS)
    return NormalizedEvent(
        provider_message_id=message_id,
        kind=kind,
        raw_status=raw_status,
        occurred_at=_timestamp(status.get("timestamp")),
        provider_event_id=None,
        channel=_CHANNEL,
        recipient=_recipient(status),
        failure_code=failure_code,
        failure_reason=failure_reason,
        failure_permanent=None,
        after_send=kind is EventKind.FAILED,
        metadata=_metadata(status.get(_CALLBACK_DATA)),
        details=details,
    )


def _failure(errors: object) -> tuple[str | None, str]:
    """(code of the first error, every error's text) from a failed status's `errors[]`."""
    if not isinstance(errors, list):
        return None, _NO_ERRORS
    code: str | None = None
    reasons: list[str] = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        if code is None:
            code = _code(error.get("code"))
        reason = _error_text(error)
        if reason:
            reasons.append(reason)
    return code, "; ".join(reasons) or _NO_ERRORS


def _error_text(error: Mapping[str, Any]) -> str:
    """`title: message: details`, each part once (Meta often repeats the title as message)."""
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    parts: list[str] = []
    for candidate in (error.get("title"), error.get("message"), details):
        text = _text(candidate)
        if text is not None and text not in parts:
            parts.append(text)
    return ": ".join(parts)


def _system_error(error: object) -> str:
    """The text of one `value.errors[]` item (system-level, e.g. 130429 rate limit hit)."""
    if not isinstance(error, dict):
        return f"Meta reported a system error: {_json_type(error)}"
    code = _code(error.get("code"))
    text = _error_text(error) or "no detail given"
    return f"Meta reported system error {code}: {text}" if code else f"Meta reported: {text}"


def _recipient(status: Mapping[str, Any]) -> str | None:
    """The user's number in E.164; for a group, the participant (recipient_id is the group)."""
    group = status.get("recipient_type") == "group"
    number = _text(status.get("recipient_participant_id" if group else "recipient_id"))
    if number is None and group:
        return _text(status.get("recipient_id"))
    if number is None:
        return None
    return f"+{number}" if number.isascii() and number.isdigit() else number


def _timestamp(value: object) -> datetime | None:
    """`timestamp`: Unix seconds, documented as a string; a number is accepted too."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            return datetime.fromtimestamp(int(value.strip()), tz=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC)
    except (ValueError, OverflowError, OSError):  # too many digits, out of range, NaN
        return None
    return None


def _metadata(value: object) -> dict[str, str]:
    """`biz_opaque_callback_data` as message metadata, so `campaign_key` can name it.

    The string is opaque to Meta; when it holds a JSON object, its keys become metadata too.
    """
    text = _text(value)
    if text is None:
        return {}
    metadata: dict[str, str] = {}
    if text.startswith("{"):
        try:
            decoded = json.loads(text)
        except (ValueError, RecursionError):
            decoded = None
        if isinstance(decoded, dict):
            for key, item in decoded.items():
                if item is not None:
                    metadata[str(key)] = (
                        item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
                    )
    metadata[_CALLBACK_DATA] = text
    return metadata


def _code(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
