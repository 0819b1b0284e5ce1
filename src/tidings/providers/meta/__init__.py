"""Meta WhatsApp Cloud API: the verification handshake, signed webhooks and status parsing."""

from __future__ import annotations

from tidings.providers.base import Provider
from tidings.providers.meta import signature, webhook

__all__ = ["PROVIDER"]

PROVIDER = Provider(
    name="meta",
    channel="whatsapp",
    body_format="json",
    auth_scheme="X-Hub-Signature-256 (app secret) + verify_token handshake",
    token_in_url=False,
    verify=signature.verify,
    parse=webhook.parse,
    handshake=signature.handshake,
)
