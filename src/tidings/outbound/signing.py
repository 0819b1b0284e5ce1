"""Standard Webhooks signatures (https://www.standardwebhooks.com/): what a subscriber checks
with any Standard Webhooks library.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}` over the exact bytes sent,
HMAC-SHA256 with the secret's bytes (the base64 after `whsec_`), sent as
`webhook-signature: v1,<base64>`; while a rotated secret overlaps with the new one, both sign,
space-separated, and a receiver holding either verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

__all__ = ["PREFIX", "SecretError", "headers", "new_secret", "secret_bytes", "sign"]

PREFIX = "whsec_"
_SECRET_BYTES = 32  # the specification asks for 24 to 64


class SecretError(ValueError):
    """A signing secret that is not `whsec_` followed by base64."""


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and the base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key a secret stands for (the base64 part decoded)."""
    text = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("a signing secret is whsec_ followed by base64") from None
    if not key:
        raise SecretError("a signing secret cannot be empty")
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `body` as sent with this id and timestamp."""
    content = b"%s.%d.%s" % (webhook_id.encode(), timestamp, body)
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, one signature per key (newest first)."""
    signature = " ".join(sign(key, webhook_id, timestamp, body) for key in keys)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
