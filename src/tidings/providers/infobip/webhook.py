"""Infobip webhooks (SMS, email, WhatsApp): authenticate them and turn them into events.

Pure functions, no I/O. Sources (public): Infobip's Python SDK
(infobip/infobip-api-python-client: models `sms_delivery_report.py`,
`message_general_status.py`, `message_error.py`, `email_webhook_delivery_report.py`,
`email_webhook_track_response.py`), the docs pages "Receive outbound SMS message report",
"Receive WhatsApp delivery reports", "Receive WhatsApp seen reports", "Email tracking
notifications", "Response status and error codes" and the Subscriptions API security settings.
See tests/fixtures/infobip/README.md for the payloads.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import BadItem, EventKind, Ignored, NormalizedEvent, ParsedItem
from tidings.providers.base import (
    ConnectionAuth,
    RequestParts,
    check_token,
    load_json,
    secrets_equal,
)
from tidings.providers.infobip.callback_data import callback_metadata

__all__ = ["parse", "verify"]

# status.groupName (the SDK's MessageGeneralStatus). ACCEPTED is what a send response says
# before any report; PENDING spans "accepted, not yet handed on" (PENDING_ACCEPTED) and "with
# the operator" (PENDING_ENROUTE), so it is only taken as queued.
_STATUS_KINDS: dict[str, EventKind] = {
    "ACCEPTED": EventKind.QUEUED,
    "PENDING": EventKind.QUEUED,
    "DELIVERED": EventKind.DELIVERED,
    "UNDELIVERABLE": EventKind.FAILED,
    "EXPIRED": EventKind.FAILED,
    "REJECTED": EventKind.FAILED,
}

# Infobip handed UNDELIVERABLE and EXPIRED messages on (failed after send); REJECTED ones never
# left Infobip.
_FAILED_AFTER_SEND = frozenset({"UNDELIVERABLE", "EXPIRED"})

# notificationType of the email tracking webhook (SDK EmailWebhookTrackResponse).
_TRACKING_KINDS: dict[str, EventKind] = {
    "OPENED": EventKind.OPENED,
    "CLICKED": EventKind.CLICKED,
    "UNSUBSCRIBED": EventKind.UNSUBSCRIBED,
    "COMPLAINED": EventKind.COMPLAINED,
}

# Seed 002 sends geoLocationInfo with OPENED/CLICKED and geoLocation with UNSUBSCRIBED.
_GEOLOCATION_FIELDS = ("geoLocation", "geoLocationInfo")

# Fields that only SMS reports carry (v1/v2 webhook: smsCount, mccMnc; v3: sender). Email
# reports reuse smsCount, but an email report is recognised by its recipient first.
_SMS_FIELDS = ("sender", "smsCount", "mccMnc")


# Seconds since 1970 pass 1e11 only in the year 5138: a larger number is milliseconds.
_MILLISECONDS_THRESHOLD = 100_000_000_000

_SINGLE_ITEM_FIELDS = ("messageId", "status", "seenAt", "notificationType")
_EXPECTED_SHAPE = (
    'expected a delivery or seen report {"results": [{"messageId": ..., "status": {...}}]}, '
    'one report object, or an email tracking event {"notificationType": ..., "messageId": ...}'
)


def verify(request: RequestParts, connection: ConnectionAuth) -> None:
    """Accept the secret as `?token=`, in the `auth_header` header, or as a Basic auth password.

    Per-message `notifyUrl`s carry no signature, so a token in the URL is what proves the
    request; a Subscriptions API security setting of type BASIC sends
    `Authorization: Basic` instead, and any username is accepted with the secret as password.

    Raises:
        SignatureError: no credential was given, or the one given is wrong.
    """
    token_error: SignatureError | None = None
    try:
        if check_token(request, connection):
            return
    except SignatureError as exc:
        # A wrong token may sit beside a right Basic password (e.g. auth_header=authorization).
        token_error = exc
    password = _basic_password(request, connection)
    if password is not None:
        if secrets_equal(password, connection.secret):
            return
        raise SignatureError(
            f"infobip connection {connection.name!r}: wrong Basic auth password; the password "
            "(any username) must be the connection secret"
        )
    if token_error is not None:
        raise token_error
    header = connection.options.get("auth_header")
    header_hint = f", send it in the {header!r} header" if header else ""
    raise SignatureError(
        f"infobip connection {connection.name!r}: missing credentials; put the connection secret "
        f"in the notifyUrl as ?token=<secret>{header_hint}, or configure Basic auth (any "
        "username, the connection secret as password) in the Infobip subscription's security "
        "settings"
    )


def _basic_password(request: RequestParts, connection: ConnectionAuth) -> str | None:
    """The password of an `Authorization: Basic` header; None when there is no such header."""
    authorization = request.headers.get("authorization", "").strip()
    if not authorization:
        return None
    scheme, _, credential = authorization.partition(" ")
    where = f"infobip connection {connection.name!r}"
    if scheme.lower() != "basic":
        if connection.options.get("auth_header", "").lower() == "authorization":
            return None  # the whole header is the token; check_token has judged it
        raise SignatureError(
            f"{where}: the Authorization header uses {scheme!r}; Infobip webhooks authenticate "
            "with Basic auth (the connection secret as password) or ?token=<secret>"
        )
    if not credential.strip():
        raise SignatureError(f"{where}: the Basic auth header carries no credentials")
    try:
        decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise SignatureError(f"{where}: the Basic auth credentials are not valid base64") from None
    _, colon, password = decoded.partition(":")
    if not colon:
        raise SignatureError(f"{where}: the Basic auth credentials have no 'user:password' form")
    return password


def parse(body: bytes, headers: Mapping[str, str]) -> list[ParsedItem]:
    """Turn one Infobip webhook body into events; a bad report of a batch spoils only itself.

    Raises:
        PayloadError: the body is not JSON, is not a report batch, a single report or a
            tracking event, or its single report cannot be understood.
    """
    document = _load(body)
    if not isinstance(document, dict):
        raise PayloadError(f"infobip: body is JSON {_json_type(document)}; {_EXPECTED_SHAPE}")
    if "results" in document:
        return _parse_batch(document["results"])
    if any(name in document for name in _SINGLE_ITEM_FIELDS):
        # Seed 002's SUPPRESSED_BOUNCE report and every tracking event come unwrapped.
        return [_item(document)]
    raise PayloadError(
        "infobip: body has no results, messageId, status, seenAt or notificationType; "
        + _EXPECTED_SHAPE
    )


def _load(body: bytes) -> object:
    return load_json(body, "infobip", _EXPECTED_SHAPE)


def _parse_batch(results: object) -> list[ParsedItem]:
    if not isinstance(results, list):
        raise PayloadError(f"infobip: results is {_json_type(results)}; expected a list of reports")
    if not results:
        return [Ignored("report batch with no results")]
    items: list[ParsedItem] = []
    for index, entry in enumerate(results):
        try:
            items.append(_item(entry))
        except PayloadError as exc:
            items.append(BadItem(index=index, error=str(exc)))
    return items


def _item(entry: object) -> NormalizedEvent:
    if not isinstance(entry, dict):
        raise PayloadError(f"infobip: report is {_json_type(entry)}, expected an object")
    message_id = _message_id(entry.get("messageId"))
    if "notificationType" in entry:
        return _tracking_event(message_id, entry)
    if "status" in entry:
        return _delivery_report(message_id, entry)
    if "seenAt" in entry:
        return _seen_report(message_id, entry)
    raise PayloadError(
        f"infobip: report for message {message_id!r} has no status, seenAt or notificationType"
    )


def _message_id(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise PayloadError(
        "infobip: report has no messageId (the id Infobip returned when the message was sent)"
    )


def _delivery_report(message_id: str, entry: Mapping[str, Any]) -> NormalizedEvent:
    status = entry["status"]
    group = status.get("groupName") if isinstance(status, dict) else None
    if not isinstance(group, str) or not group.strip():
        raise PayloadError(
            f"infobip: report for message {message_id!r} has no status.groupName "
            "(e.g. DELIVERED, UNDELIVERABLE)"
        )
    group_key = group.strip().upper()
    kind = _STATUS_KINDS.get(group_key, EventKind.UNKNOWN)
    failure_code: str | None = None
    failure_reason: str | None = None
    failure_permanent: bool | None = None
    if kind is EventKind.FAILED:
        failure_code, failure_reason, failure_permanent = _failure(
            entry.get("error"), status, group_key
        )
    recipient = _recipient(entry.get("to"))
    return NormalizedEvent(
        provider_message_id=message_id,
        kind=kind,
        raw_status=group,
        occurred_at=_instant(entry.get("doneAt")) or _instant(entry.get("sentAt")),
        channel=_channel(entry, recipient),
        recipient=recipient,
        failure_code=failure_code,
        failure_reason=failure_reason,
        failure_permanent=failure_permanent,
        after_send=group_key in _FAILED_AFTER_SEND,
        metadata=callback_metadata(entry.get("callbackData")),
        details=dict(entry),
    )


def _failure(
    error: object, status: Mapping[str, Any], group: str
) -> tuple[str | None, str, bool | None]:
    """(code, reason, permanent) from the `error` object, the reason else from the status.

    `error.id == 0` / `NO_ERROR` means Infobip gave no error (REJECTED reports often say so).
    """
    code: str | None = None
    reason: str | None = None
    permanent: bool | None = None
    if isinstance(error, dict) and not _no_error(error):
        code = _text(error.get("id")) or _text(error.get("name"))
        reason = _text(error.get("description")) or _text(error.get("name"))
        flag = error.get("permanent")
        permanent = flag if isinstance(flag, bool) else None
    reason = reason or _text(status.get("description")) or _text(status.get("name"))
    return code, reason or f"Infobip reported {group} (no reason given)", permanent


def _no_error(error: Mapping[str, Any]) -> bool:
    identifier = error.get("id")
    if isinstance(identifier, int) and not isinstance(identifier, bool):
        return identifier == 0
    return not error or error.get("name") == "NO_ERROR"


def _seen_report(message_id: str, entry: Mapping[str, Any]) -> NormalizedEvent:
    recipient = _recipient(entry.get("to"))
    return NormalizedEvent(
        provider_message_id=message_id,
        kind=EventKind.READ,
        raw_status="SEEN",
        occurred_at=_instant(entry.get("seenAt")),
        channel=_channel(entry, recipient),
        recipient=recipient,
        metadata=callback_metadata(entry.get("callbackData")),
        details=dict(entry),
    )


def _tracking_event(message_id: str, entry: Mapping[str, Any]) -> NormalizedEvent:
    notification = entry["notificationType"]
    if not isinstance(notification, str) or not notification.strip():
        raise PayloadError(
            f"infobip: tracking event for message {message_id!r} has no notificationType "
            "(e.g. OPENED, CLICKED)"
        )
    details: dict[str, Any] = dict(entry)
    for name in _GEOLOCATION_FIELDS:
        if isinstance(entry.get(name), dict):
            details["geolocation"] = entry[name]
            break
    return NormalizedEvent(
        provider_message_id=message_id,
        kind=_TRACKING_KINDS.get(notification.strip().upper(), EventKind.UNKNOWN),
        raw_status=notification,
        occurred_at=_instant(entry.get("sendDateTime")),
        channel="email",
        recipient=_recipient(entry.get("recipient")),
        metadata=callback_metadata(entry.get("callbackData")),
        details=details,
    )


def _channel(entry: Mapping[str, Any], recipient: str | None) -> str:
    """The report's own `channel` (pull and OMNI reports carry one), else inferred.

    Webhook reports name no channel. An email address means email; a seen report is
    WhatsApp's; a report with none of the SMS-only fields but a `messageCount` has the shape
    of the documented WhatsApp delivery report; anything else is taken as SMS.
    """
    named = entry.get("channel")
    if isinstance(named, str) and named.strip():
        return named.strip().lower()
    if recipient is not None and "@" in recipient:
        return "email"
    if "seenAt" in entry:
        return "whatsapp"
    if "messageCount" in entry and not any(name in entry for name in _SMS_FIELDS):
        return "whatsapp"
    return "sms"


def _recipient(value: object) -> str | None:
    """'41793026727' -> '+41793026727' (E.164 like the other providers); emails as given."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    return f"+{text}" if text.isascii() and text.isdigit() else text


def _instant(value: object) -> datetime | None:
    """An aware UTC time from Infobip's ISO text (`...000+0000`, `-0300`, `+05:30`) or epoch.

    Text without an offset is taken as UTC; numbers are epoch milliseconds (tracking
    `sendDateTime`) or seconds. Anything unreadable gives None: the receive time is used then.
    """
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
            if moment.tzinfo is None:
                return moment.replace(tzinfo=UTC)
            return moment.astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: year 9999 with a negative offset
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000 if abs(value) > _MILLISECONDS_THRESHOLD else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
