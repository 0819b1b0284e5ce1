"""The contract every provider adapter fulfils, and the plain data it works on.

An adapter is pure: `verify` and `parse` take bytes and mappings and do no I/O, so they are
tested with plain data and can run anywhere (intake, worker, replay).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from tidings import json_text
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import ParsedItem

__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_TIMEZONE",
    "ConnectionAuth",
    "Provider",
    "Reply",
    "RequestParts",
    "check_token",
    "load_json",
    "secrets_equal",
]


class RequestParts(NamedTuple):
    """What intake saw of a webhook request. Header names are lower-case. `url` is the
    request's public URL for a provider that signs it (`Provider.signs_url`), and empty for
    the others: building it cost every webhook about a microsecond. (A named tuple: made for
    every webhook.)"""

    method: str
    url: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class ConnectionAuth:
    """What a provider needs of a connection to authenticate its webhooks."""

    name: str
    provider: str
    secret: str
    options: Mapping[str, str] = field(default_factory=dict)


Reply = tuple[int, dict[str, Any]]


def _no_reply(body: bytes) -> Reply | None:
    return None


def _no_handshake(request: RequestParts, connection: ConnectionAuth) -> str | None:
    return None


# Keys the worker adds to a connection's options for `Provider.parse_for`: the deployment's
# TIDINGS_TIMEZONE and TIDINGS_DEFAULT_REGION (no option a user can set has these names).
DEFAULT_TIMEZONE = "default_timezone"
DEFAULT_REGION = "default_region"

ParseWith = Callable[[bytes, Mapping[str, str], Mapping[str, str]], list[ParsedItem]]


@dataclass(frozen=True)
class Provider:
    """One provider: its pure webhook functions plus how intake should treat its requests.

    `reply` lets a provider that expects a set answer get it (Callbell's connection check);
    None means the standard 202 `{"receipt": id}`. `handshake` answers a GET on the intake URL
    (Meta's verification): the text to send back, None when the provider has no handshake;
    it raises SignatureError when the GET is not genuine. `parse_with` is for a provider whose
    bodies cannot be read without the connection's options (Callyzer's local times need its
    time zone): the worker calls it through `parse_for`. `signs_url`: the provider's
    signature covers the request's public URL (Twilio's), so `verify` is given it.
    """

    name: str
    channel: str
    body_format: Literal["json", "form"]
    auth_scheme: str
    token_in_url: bool
    verify: Callable[[RequestParts, ConnectionAuth], None]
    parse: Callable[[bytes, Mapping[str, str]], list[ParsedItem]]
    reply: Callable[[bytes], Reply | None] = _no_reply
    handshake: Callable[[RequestParts, ConnectionAuth], str | None] = _no_handshake
    parse_with: ParseWith | None = None
    signs_url: bool = False

    def parse_for(
        self, body: bytes, headers: Mapping[str, str], options: Mapping[str, str]
    ) -> list[ParsedItem]:
        """`parse`, given the connection's options where the provider reads them."""
        if self.parse_with is not None:
            return self.parse_with(body, headers, options)
        return self.parse(body, headers)


def load_json(body: bytes, provider: str, hint: str = "") -> Any:
    """The JSON document in a webhook body, or PayloadError naming the provider (and `hint`:
    what the provider's bodies look like)."""
    suffix = f"; {hint}" if hint else ""
    try:
        return json_text.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PayloadError(f"{provider}: body is not JSON: {exc}{suffix}") from None
    except RecursionError:
        raise PayloadError(f"{provider}: body is not JSON: nested too deeply") from None


def secrets_equal(given: str, expected: str) -> bool:
    """Compare credentials in constant time so timing does not leak the secret. An empty
    secret matches nothing: an empty password or `?token=` must not open a connection."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def check_token(request: RequestParts, connection: ConnectionAuth) -> bool:
    """True when the connection secret came as `?token=` or in the configured header.

    Raises SignatureError when a credential was given but is wrong, so the rejection log can
    tell a wrong secret from a missing one; returns False when none was given.
    """
    # Every webhook passes here: no list or generator for the usual one credential.
    in_query = request.query.get("token")
    header = connection.options.get("auth_header")
    in_header = request.headers.get(header.lower()) if header else None
    if in_query is None and in_header is None:
        return False
    secret = connection.secret
    if not secret:  # nothing to match: an empty secret must not let "" in
        raise SignatureError(
            f"{connection.provider} connection {connection.name!r} has no secret; set one"
        )
    if in_query is not None and secrets_equal(in_query, secret):
        return True
    if in_header is not None and secrets_equal(in_header, secret):
        return True
    raise SignatureError(f"wrong secret for {connection.provider} connection {connection.name!r}")
