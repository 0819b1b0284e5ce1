"""Twilio status callbacks: check `X-Twilio-Signature`, turn `MessageStatus` into events.

Pure functions, no I/O. Sources (public): Twilio's helper library, repository
twilio/twilio-python, `twilio/request_validator.py` and `tests/unit/test_request_validator.py`
(the signature algorithm and its test vectors), `twilio/rest/api/v2010/account/message/__init__.py`
(`MessageInstance.Status`); https://www.twilio.com/docs/messaging/guides/track-outbound-message-status
and https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks
(the callback); https://www.twilio.com/docs/api/errors (error codes). See
tests/fixtures/twilio/README.md for the payloads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import EventKind, Ignored, NormalizedEvent, ParsedItem
from tidings.providers.base import ConnectionAuth, RequestParts, secrets_equal

__all__ = ["parse", "verify"]

_SIGNATURE_HEADER = "x-twilio-signature"
_FORM_TYPE = "application/x-www-form-urlencoded"
# A JSON-bodied Twilio webhook signs only its URL, which carries the body's hex SHA-256.
_BODY_HASH_PARAM = "bodySHA256"
_DEFAULT_PORTS = {"https": 443, "http": 80}
_WHATSAPP_PREFIX = "whatsapp:"
_EXAMPLE = "MessageSid=SM...&MessageStatus=delivered&To=%2B15558675310&..."

# Every value of the SDK enum `MessageInstance.Status` except the inbound ones below and
# `partially_delivered`, whose meaning Twilio does not document: it stays `unknown` (recorded,
# never moves state). `accepted` and `scheduled` are the initial statuses with a Messaging
# Service; `sending` means Twilio is still handing the message to the carrier.
_STATUS_KINDS: dict[str, EventKind] = {
    "accepted": EventKind.QUEUED,
    "scheduled": EventKind.QUEUED,
    "queued": EventKind.QUEUED,
    "sending": EventKind.QUEUED,
    "sent": EventKind.SENT,
    "delivered": EventKind.DELIVERED,
    "read": EventKind.READ,
    "undelivered": EventKind.FAILED,
    "failed": EventKind.FAILED,
    "canceled": EventKind.FAILED,
}
# `undelivered`: the carrier had the message and could not deliver it. `failed` (Twilio could
# not send it) and `canceled` (a scheduled message withdrawn) never left Twilio.
_FAILED_AFTER_SEND = frozenset({"undelivered"})
# Statuses of messages sent *to* a Twilio number: an incoming-message webhook pointed here.
_INBOUND = frozenset({"receiving", "received"})

# The few error titles confirmed on https://www.twilio.com/docs/api/errors/<code>; any other
# code is reported as "Twilio error <code>" (look it up at the same address).
_ERROR_TITLES: dict[str, str] = {
    "21610": "Attempt to send to unsubscribed recipient",
    "30003": "Unreachable destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered",
    "63016": "Outside the allowed messaging window (for WhatsApp, use a Message Template)",
}

_NAMES_SHOWN = 12
_NAME_CHARS = 40


def verify(request: RequestParts, connection: ConnectionAuth) -> None:
    """Check `X-Twilio-Signature` against the connection's auth token.

    The signature is base64(HMAC-SHA1(auth token, URL + every POST parameter, names sorted,
    each name followed by its value; a repeated name contributes its distinct values sorted)).
    It covers the full URL Twilio requested, query string included, so intake hands us the
    public URL (`TIDINGS_PUBLIC_URL`) when tidings sits behind a proxy. Twilio's own validators
    accept the URL with and without the scheme's default port, because Twilio sometimes signs
    `https://host/...` as `https://host:443/...` and the other way round; we do the same for
    :443 (https) and :80 (http) only. A non-default port is never dropped: a signature made
    for one port should not open another. A JSON-bodied webhook carries `bodySHA256` in its
    URL instead of signed parameters; then the body must hash to it.

    Raises:
        SignatureError: the header is missing, or the signature (or body hash) does not match.
    """
    where = f"twilio connection {connection.name!r}"
    given = request.headers.get(_SIGNATURE_HEADER, "").strip()
    if not given:
        raise SignatureError(
            f"{where}: missing X-Twilio-Signature header; Twilio signs every webhook it "
            "sends, so this request did not come from Twilio (or a proxy dropped the header)"
        )
    if not connection.secret:
        raise SignatureError(
            f"{where}: no auth token to check X-Twilio-Signature with; set the connection "
            "secret to the auth token of the Twilio account"
        )
    body_hash = _body_hash_param(request.url)
    params = {} if body_hash is not None else _signed_params(request.body)
    if not any(
        secrets_equal(given, _signature(connection.secret, url, params))
        for url in _url_variants(request.url)
    ):
        raise SignatureError(
            f"{where}: wrong X-Twilio-Signature for {request.url}; check that the connection "
            "secret is the auth token of the Twilio account that sends these callbacks and "
            "that Twilio calls exactly this URL (behind a proxy, set TIDINGS_PUBLIC_URL to "
            "the address Twilio uses)"
        )
    if body_hash is not None and not secrets_equal(
        hashlib.sha256(request.body).hexdigest(), body_hash.strip().lower()
    ):
        raise SignatureError(
            f"{where}: the body does not match the {_BODY_HASH_PARAM} in the signed URL "
            "(the body was changed after Twilio signed the request)"
        )


def parse(body: bytes, headers: Mapping[str, str]) -> list[ParsedItem]:
    """Turn one form-encoded Twilio status callback into one event.

    Twilio's callback carries no event time, so `occurred_at` is None (tidings uses the
    receive time). Every parameter received is kept in `details`: Twilio adds parameters
    without notice, and they vary by channel.

    Raises:
        PayloadError: the body is empty or not form-encoded, or lacks MessageSid or
            MessageStatus.
    """
    params = _form(body, headers)
    raw_status = _first(params, "MessageStatus", "SmsStatus")
    if raw_status is None:
        raise PayloadError(_missing("MessageStatus (or SmsStatus)", params))
    status = raw_status.strip().lower()
    if status in _INBOUND:
        return [Ignored("inbound message status")]
    sid = _first(params, "MessageSid", "SmsSid")
    if sid is None:
        raise PayloadError(_missing("MessageSid (or SmsSid)", params))
    kind = _STATUS_KINDS.get(status, EventKind.UNKNOWN)
    to = _first(params, "To")
    failure_code: str | None = None
    failure_reason: str | None = None
    if kind is EventKind.FAILED:
        failure_code, failure_reason = _failure(status, params)
    return [
        NormalizedEvent(
            provider_message_id=sid.strip(),
            kind=kind,
            raw_status=raw_status,
            occurred_at=None,
            channel=_channel(params, (to, _first(params, "From"))),
            recipient=_recipient(to),
            failure_code=failure_code,
            failure_reason=failure_reason,
            after_send=status in _FAILED_AFTER_SEND,
            details=_details(params),
        )
    ]


# --- signature ------------------------------------------------------------------------------


def _signature(token: str, url: str, params: Mapping[str, Iterable[str]]) -> str:
    signed = url + "".join(
        name + value for name in sorted(params) for value in sorted(set(params[name]))
    )
    digest = hmac.new(token.encode(), signed.encode(), "sha1").digest()
    return base64.b64encode(digest).decode("ascii")


def _signed_params(body: bytes) -> dict[str, list[str]]:
    """The POST parameters as Twilio signed them: URL-decoded, blank values kept.

    Lenient on purpose: a body that is not valid form data simply fails the signature, and
    intake then tells the sender what is wrong with it.
    """
    grouped: dict[str, list[str]] = {}
    text = body.decode("utf-8", errors="replace")
    for name, value in parse_qsl(text, keep_blank_values=True):
        grouped.setdefault(name, []).append(value)
    return grouped


def _body_hash_param(url: str) -> str | None:
    try:
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return None
    values = query.get(_BODY_HASH_PARAM)
    return values[0] if values else None


def _url_variants(url: str) -> list[str]:
    """The URL as given, then with the scheme's default port added or removed.

    Only the authority is rewritten, by string, so path and query keep their exact bytes.
    """
    scheme, separator, rest = url.partition("://")
    default = _DEFAULT_PORTS.get(scheme.lower())
    if not separator or default is None:
        return [url]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    host, port = hostport, ""
    if not hostport.endswith("]"):  # a bare IPv6 literal has colons but no port
        before, colon, after = hostport.rpartition(":")
        if colon:
            host, port = before, after
    if not host:
        return [url]
    if not port:
        other = f"{host}:{default}"
    elif port.isdigit() and int(port) == default:
        other = host
    else:
        return [url]
    return [url, f"{scheme}{separator}{userinfo}{at}{other}{tail}"]


# --- parsing --------------------------------------------------------------------------------


def _form(body: bytes, headers: Mapping[str, str]) -> list[tuple[str, str]]:
    if not body.strip():
        raise PayloadError(
            f"twilio: body is empty; expected a form-encoded status callback like {_EXAMPLE}"
        )
    hint = _content_type_hint(headers)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"twilio: body is not UTF-8 text ({exc}){hint}") from None
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as exc:  # UnicodeDecodeError from a %-escape is a ValueError too
        raise PayloadError(
            f"twilio: body is not form-encoded ({exc}){hint}; expected a status callback "
            f"like {_EXAMPLE}"
        ) from None


def _content_type_hint(headers: Mapping[str, str]) -> str:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media and media != _FORM_TYPE:
        return f" (Content-Type was {media!r}; Twilio sends {_FORM_TYPE})"
    return ""


def _first(params: Sequence[tuple[str, str]], *names: str) -> str | None:
    """The first non-blank value among `names`, in the order the names are given."""
    for wanted in names:
        for name, value in params:
            if name == wanted and value.strip():
                return value
    return None


def _missing(what: str, params: Sequence[tuple[str, str]]) -> str:
    names = sorted({name for name, _ in params})
    shown = ", ".join(name[:_NAME_CHARS] for name in names[:_NAMES_SHOWN])
    if len(names) > _NAMES_SHOWN:
        shown += ", ..."
    voice = (
        "; this looks like a Voice call callback (CallSid), and only Messaging status "
        "callbacks are tracked"
        if "CallSid" in names
        else ""
    )
    return (
        f"twilio: no {what} parameter{voice}; point a message's StatusCallback (or a "
        "Messaging Service's Delivery Status Callback) at this URL; parameters received: "
        f"{shown or 'none'}"
    )


def _failure(status: str, params: Sequence[tuple[str, str]]) -> tuple[str | None, str]:
    raw_code = _first(params, "ErrorCode")
    code = raw_code.strip() if raw_code is not None else None
    message = _first(params, "ErrorMessage")
    if message is not None:
        return code, message.strip()
    if code is not None:
        title = _ERROR_TITLES.get(code)
        return code, f"Twilio error {code}: {title}" if title else f"Twilio error {code}"
    if status == "canceled":
        return None, "Twilio: the scheduled message was canceled before it was sent"
    return None, f"Twilio reported {status} without an ErrorCode"


def _channel(params: Sequence[tuple[str, str]], addresses: Iterable[str | None]) -> str:
    prefix = (_first(params, "ChannelPrefix") or "").strip().lower()
    if prefix == "whatsapp" or any(
        (address or "").strip().lower().startswith(_WHATSAPP_PREFIX) for address in addresses
    ):
        return "whatsapp"
    return "sms"


def _recipient(to: str | None) -> str | None:
    if to is None:
        return None
    text = to.strip()
    if text.lower().startswith(_WHATSAPP_PREFIX):
        text = text[len(_WHATSAPP_PREFIX) :].strip()
    return text or None


def _details(params: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Every parameter as received; a repeated name keeps all its values, in order."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}
