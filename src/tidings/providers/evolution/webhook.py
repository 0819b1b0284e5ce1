"""Evolution API (WhatsApp via Baileys) webhooks: authenticate them and turn them into events.

Pure functions, no I/O, so intake, the worker and replays all get the same answer. Sources
(public): repository EvolutionAPI/evolution-api, v2 (`main`, 2.3.6) `src/utils/renderStatus.ts`,
`src/api/integrations/channel/whatsapp/whatsapp.baileys.service.ts` (`'messages.update'`,
`prepareMessage()`, `connectionUpdate()`), `.../meta/whatsapp.business.service.ts`,
`src/api/integrations/event/webhook/webhook.controller.ts`; v1 (`v1.8`, tag `1.0.7`)
`whatsapp.baileys.service.ts`. See tests/fixtures/evolution/README.md for the payloads.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jwt

from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import (
    BadItem,
    EventKind,
    Ignored,
    NormalizedEvent,
    ParsedItem,
    SessionUpdate,
)
from tidings.providers.base import ConnectionAuth, RequestParts, check_token, load_json

__all__ = ["parse", "verify"]

_CHANNEL = "whatsapp"

# Evolution's own strings (renderStatus.ts) plus the upper-cased Meta words that its
# WHATSAPP-BUSINESS channel puts in the same `messages.update` event
# (whatsapp.business.service.ts: `status: item.status.toUpperCase()`).
_STATUS_KINDS: dict[str, EventKind] = {
    "PENDING": EventKind.QUEUED,
    "SERVER_ACK": EventKind.SENT,
    "DELIVERY_ACK": EventKind.DELIVERED,
    "READ": EventKind.READ,
    "PLAYED": EventKind.PLAYED,
    "ERROR": EventKind.FAILED,
    "DELETED": EventKind.DELETED,
    "SENT": EventKind.SENT,
    "DELIVERED": EventKind.DELIVERED,
    "FAILED": EventKind.FAILED,
}

# Baileys' numeric WebMessageInfo.Status, named as Evolution's renderStatus.ts names them
# (the same table is inlined in v1.8 and 1.0.7). This is NOT the table of original
# requirements document 001, which read 2 as delivered and 3 as read: that is off by one
# (2 is SERVER_ACK, one grey tick = sent; 3 is DELIVERY_ACK = delivered; 4 is READ).
_BAILEYS_NUMBERS: dict[int, str] = {
    0: "ERROR",
    1: "PENDING",
    2: "SERVER_ACK",
    3: "DELIVERY_ACK",
    4: "READ",
    5: "PLAYED",
}

# Neither ERROR (Baileys) nor FAILED (WHATSAPP-BUSINESS) carries a reason in the webhook.
_FAILURE_REASONS: dict[str, str] = {
    "ERROR": "WhatsApp reported ERROR (no detail given)",
    "FAILED": "WhatsApp reported FAILED (no detail given)",
}

_STATUS_EVENTS = frozenset({"messages.update", "send.message"})

# Evolution signs `{iat, exp: iat + 600, app, action}`; allow for clock drift between hosts.
_JWT_LEEWAY_SECONDS = 30


def verify(request: RequestParts, connection: ConnectionAuth) -> None:
    """Accept the connection secret as `?token=`, in the `auth_header` header, or as a JWT key.

    Evolution sends no signature of its own; v2 can add custom headers to every webhook and,
    for the special header key `jwt_key`, an `Authorization: Bearer` HS256 JWT signed with it.

    Raises:
        SignatureError: no credential was given, or the one given is wrong (the message
            says which).
    """
    if check_token(request, connection):
        return
    authorization = request.headers.get("authorization", "").strip()
    if authorization:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise SignatureError(
                f"evolution connection {connection.name!r}: the Authorization header is not "
                "'Bearer <JWT>'; Evolution sends a bearer JWT when its webhook headers set jwt_key"
            )
        _verify_jwt(credential.strip(), connection)
        return
    header = connection.options.get("auth_header")
    header_hint = (
        f"send it in the {header!r} header"
        if header
        else "send it in a header named with --option auth_header=NAME"
    )
    raise SignatureError(
        f"evolution connection {connection.name!r}: missing credentials; put the connection "
        f"secret in the webhook URL as ?token=<secret>, {header_hint}, or set it as jwt_key in "
        "the instance's webhook headers so Evolution sends Authorization: Bearer <HS256 JWT>"
    )


def _verify_jwt(token: str, connection: ConnectionAuth) -> None:
    """Check an Evolution webhook JWT: HS256 only, signed with the secret, not expired."""
    where = f"evolution connection {connection.name!r}"
    try:
        with warnings.catch_warnings():
            # A short secret is the operator's choice, made once at `connection add`; a
            # warning on every webhook would say nothing new.
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            jwt.decode(
                token,
                connection.secret,
                algorithms=["HS256"],
                leeway=_JWT_LEEWAY_SECONDS,
                options={"require": ["exp"]},
            )
    except jwt.ExpiredSignatureError:
        raise SignatureError(
            f"{where}: the bearer JWT has expired (Evolution's tokens last 600 s; "
            "check the clocks of both hosts)"
        ) from None
    except jwt.InvalidSignatureError:
        raise SignatureError(
            f"{where}: the bearer JWT is not signed with the connection secret "
            "(jwt_key in Evolution must equal the connection secret)"
        ) from None
    except jwt.InvalidAlgorithmError:
        raise SignatureError(
            f"{where}: the bearer JWT does not use HS256, the only algorithm Evolution signs with"
        ) from None
    except jwt.MissingRequiredClaimError as exc:
        raise SignatureError(f"{where}: the bearer JWT has no {exc.claim!r} claim") from None
    except jwt.PyJWTError as exc:
        raise SignatureError(f"{where}: the bearer JWT is not valid: {exc}") from None


def parse(body: bytes, headers: Mapping[str, str]) -> list[ParsedItem]:
    """Turn one Evolution webhook body into events; a bad item of a list spoils only itself.

    Raises:
        PayloadError: the body is not a JSON object with an `event`, or a single-item body
            cannot be understood.
    """
    envelope = _load(body)
    raw_name = envelope.get("event")
    if not isinstance(raw_name, str) or not raw_name.strip():
        raise PayloadError(
            'evolution: body has no "event" name; expected an Evolution API webhook such as '
            '{"event": "messages.update", "instance": ..., "data": {...}}'
        )
    # Bodies say "messages.update"; webhook config (and some proxies) say "MESSAGES_UPDATE";
    # byEvents URLs use "messages-update".
    name = raw_name.strip().lower().replace("_", ".").replace("-", ".")
    instance = envelope.get("instance")
    data = envelope.get("data")
    if name in _STATUS_EVENTS:
        return _parse_statuses(name, instance, data)
    if name == "connection.update":
        return [_connection_update(data)]
    if name == "qrcode.updated":
        return [_qrcode_updated(data)]
    return [Ignored(f"event {name} is not tracked")]


def _load(body: bytes) -> dict[str, Any]:
    document = load_json(body, "evolution")
    if not isinstance(document, dict):
        raise PayloadError(
            f"evolution: body is JSON {type(document).__name__}, expected an object "
            'like {"event": "messages.update", "data": {...}}'
        )
    return document


def _parse_statuses(name: str, instance: object, data: object) -> list[ParsedItem]:
    if isinstance(data, dict):
        return [_status_item(name, instance, data)]
    if isinstance(data, list):
        if not data:
            return [Ignored(f"event {name} carried an empty list")]
        items: list[ParsedItem] = []
        for index, entry in enumerate(data):
            try:
                items.append(_status_item(name, instance, entry))
            except PayloadError as exc:
                items.append(BadItem(index=index, error=str(exc)))
        return items
    raise PayloadError(
        f"evolution: {name} needs data as an object or a list of objects, got {_json_type(data)}"
    )


def _status_item(name: str, instance: object, item: object) -> NormalizedEvent | Ignored:
    """One status, in any of the shapes Evolution (v1, v2) or a raw Baileys relay sends."""
    if not isinstance(item, dict):
        raise PayloadError(f"evolution: {name} item is {_json_type(item)}, expected an object")
    key = item.get("key")
    key = key if isinstance(key, dict) else {}
    from_me = item["fromMe"] if "fromMe" in item else key.get("fromMe")
    # v2 also reports READ for messages others sent us (fromMe false); v1.8 skips those.
    if from_me is False:
        return Ignored("status update for a message we did not send (fromMe false)")
    message_id = _message_id(item, key)
    if message_id is None:
        raise PayloadError(
            f"evolution: {name} item has no message id "
            "(expected data.keyId (v2), data.key.id or data.id (v1))"
        )
    value = _status_value(item)
    if value is None:  # an edit, a reaction, a poll vote: real traffic with no delivery state
        return Ignored(f"{name} for message {message_id!r} carries no status")
    raw_status, status_name = _classify(value)
    kind = _STATUS_KINDS.get(status_name, EventKind.UNKNOWN) if status_name else EventKind.UNKNOWN
    details: dict[str, Any] = {"event": name, "data": item}
    if isinstance(instance, str):
        details["instance"] = instance
    if status_name is not None and raw_status != status_name:
        details["status_name"] = status_name  # a Baileys number, named for people
    jid = item.get("remoteJid", key.get("remoteJid"))
    return NormalizedEvent(
        provider_message_id=message_id,
        kind=kind,
        raw_status=raw_status,
        occurred_at=_v1_datetime(item.get("datetime")),
        channel=_CHANNEL,
        recipient=_recipient(jid) if isinstance(jid, str) and jid else None,
        failure_reason=_FAILURE_REASONS.get(status_name or ""),
        after_send=kind is EventKind.FAILED,
        details=details,
    )


def _message_id(item: Mapping[str, Any], key: Mapping[str, Any]) -> str | None:
    # v2 `messages.update`: data.keyId (data.messageId is Evolution's database id, not
    # WhatsApp's). Baileys and `send.message`: data.key.id. v1: data.id (key spread in).
    for candidate in (item.get("keyId"), key.get("id"), item.get("id")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


def _status_value(item: Mapping[str, Any]) -> object:
    update = item.get("update")
    if isinstance(update, dict) and update.get("status") is not None:
        return update["status"]
    return item.get("status")


def _classify(value: object) -> tuple[str, str | None]:
    """The provider's own word as a string, and the Evolution status name when known."""
    if isinstance(value, bool):  # bool is an int in Python; never a Baileys number
        return json.dumps(value), None
    if isinstance(value, int):
        return str(value), _BAILEYS_NUMBERS.get(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 3:
            return value, _BAILEYS_NUMBERS.get(int(text))
        upper = text.upper()
        return value, upper if upper in _STATUS_KINDS else None
    return json.dumps(value, ensure_ascii=False, sort_keys=True), None


def _v1_datetime(value: object) -> datetime | None:
    """v1 puts `Date.now()` (ms, UTC) in data.datetime; v2 gives no status time at all.

    The envelope's `date_time` is local wall-clock time with a `Z` suffix
    (`new Date(Date.now() - tzoffset).toISOString()`), so it is never used.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _recipient(jid: str) -> str:
    """'553198296801@s.whatsapp.net' -> '+553198296801'; group and @lid JIDs stay as given."""
    user, at, domain = jid.partition("@")
    if at and domain != "s.whatsapp.net":
        return jid
    user = user.split(":", 1)[0]  # a device suffix ("5531...:12") names no other person
    return f"+{user}" if user.isascii() and user.isdigit() else user


def _connection_update(data: object) -> SessionUpdate:
    # whatsapp.baileys.service.ts connectionUpdate(): {instance, state, statusReason, wuid?,
    # profileName?, profilePictureUrl?}; state is open, close, connecting or refused.
    if not isinstance(data, dict):
        raise PayloadError(
            f"evolution: connection.update needs data as an object, got {_json_type(data)}"
        )
    state = data.get("state")
    if not isinstance(state, str) or not state:
        raise PayloadError('evolution: connection.update has no data.state (e.g. "open")')
    return SessionUpdate(state=state, details=data)


def _qrcode_updated(data: object) -> SessionUpdate:
    # data.qrcode = {instance, pairingCode, code, base64}; when the QR limit is reached
    # Evolution sends {message, statusCode} instead and no code.
    if not isinstance(data, dict):
        raise PayloadError(
            f"evolution: qrcode.updated needs data as an object, got {_json_type(data)}"
        )
    qrcode = data.get("qrcode")
    image: str | None = None
    if isinstance(qrcode, dict):
        for field in ("base64", "code"):
            candidate = qrcode.get(field)
            if isinstance(candidate, str) and candidate:
                image = candidate
                break
    return SessionUpdate(state="qrcode", qrcode=image, details=data)


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
