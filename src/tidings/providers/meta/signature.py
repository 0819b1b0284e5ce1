"""Meta WhatsApp Cloud API: the `X-Hub-Signature-256` check and the verification handshake.

Pure, no I/O. Source: Meta's Webhooks "Getting Started" (the verification request and the
signature header), https://developers.facebook.com/docs/graph-api/webhooks/getting-started/.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from tidings.domain.errors import SignatureError
from tidings.providers.base import ConnectionAuth, RequestParts, secrets_equal

__all__ = ["handshake", "verify"]

_SIGNATURE_HEADER = "x-hub-signature-256"
_LEGACY_SIGNATURE_HEADER = "x-hub-signature"  # sha1=..., older Graph webhooks; not accepted
_SIGNATURE_PREFIX = "sha256="
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def verify(request: RequestParts, connection: ConnectionAuth) -> None:
    """Check `X-Hub-Signature-256: sha256=<hex>`, an HMAC-SHA256 of the raw body.

    The key is the app secret (the connection secret). Meta signs every POST, so a token in
    the URL proves nothing here.

    Raises:
        SignatureError: the connection has no app secret, or the header is missing, malformed
            or does not match the body.
    """
    where = f"meta connection {connection.name!r}"
    if not connection.secret:
        raise SignatureError(
            f"{where} has no app secret; recreate it with --secret set to the App Secret "
            "(App Dashboard > App settings > Basic)"
        )
    header = _header(request.headers, _SIGNATURE_HEADER)
    if header is None:
        legacy = _header(request.headers, _LEGACY_SIGNATURE_HEADER) is not None
        hint = " (only the legacy sha1 X-Hub-Signature was sent)" if legacy else ""
        raise SignatureError(
            f"{where}: missing X-Hub-Signature-256 header{hint}; Meta signs every webhook "
            "POST with the app secret, and a token in the URL is not enough"
        )
    value = header.strip()
    if not value.lower().startswith(_SIGNATURE_PREFIX):
        raise SignatureError(
            f"{where}: malformed X-Hub-Signature-256 header; expected 'sha256=<64 hex digits>'"
        )
    given = value[len(_SIGNATURE_PREFIX) :]
    if not _HEX_DIGEST.fullmatch(given):
        raise SignatureError(
            f"{where}: malformed X-Hub-Signature-256 header; expected 'sha256=' followed by "
            "64 hex digits"
        )
    expected = hmac.new(connection.secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise SignatureError(
            f"{where}: X-Hub-Signature-256 does not match the body; check that --secret is "
            "this app's App Secret"
        )


def handshake(request: RequestParts, connection: ConnectionAuth) -> str | None:
    """Answer Meta's verification GET with `hub.challenge` when `hub.verify_token` matches.

    Meta sends `?hub.mode=subscribe&hub.challenge=<n>&hub.verify_token=<token>` when the
    callback URL is saved in the App Dashboard; the token is the connection's `verify_token`
    option. Any other GET on a Meta intake URL is refused.

    Raises:
        SignatureError: not a verification request, no `verify_token` option, or a wrong token.
    """
    where = f"meta connection {connection.name!r}"
    mode = _hub(request.query, "mode")
    token = _hub(request.query, "verify_token")
    challenge = _hub(request.query, "challenge")
    if mode is None and token is None and challenge is None:
        raise SignatureError(
            f"{where}: a GET must be Meta's verification request "
            "(hub.mode, hub.verify_token, hub.challenge); deliver webhooks with POST"
        )
    if mode != "subscribe":
        raise SignatureError(f"{where}: hub.mode must be 'subscribe', got {mode!r}")
    expected = connection.options.get("verify_token", "")
    if not expected:
        raise SignatureError(
            f"{where} has no verify_token option; add --option verify_token=<the Verify Token "
            "typed in the App Dashboard>"
        )
    if token is None:
        raise SignatureError(f"{where}: the verification request has no hub.verify_token")
    if not secrets_equal(token, expected):
        raise SignatureError(
            f"{where}: hub.verify_token does not match the connection's verify_token option"
        )
    if not challenge:
        raise SignatureError(f"{where}: the verification request has no hub.challenge")
    return challenge


def _hub(query: Mapping[str, str], name: str) -> str | None:
    # Meta sends hub.mode etc.; a PHP front end rewrites the dots to underscores.
    value = query.get(f"hub.{name}")
    return value if value is not None else query.get(f"hub_{name}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    if name in headers:
        return headers[name]
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
