"""Evolution API, the WhatsApp (Baileys) gateway: webhook verification and parsing."""

from __future__ import annotations

from tidings.providers.base import Provider
from tidings.providers.evolution import webhook

__all__ = ["PROVIDER"]

PROVIDER = Provider(
    name="evolution",
    channel="whatsapp",
    body_format="json",
    auth_scheme="token (?token=), header (auth_header option) or HS256 JWT bearer (v2 jwt_key)",
    token_in_url=True,
    verify=webhook.verify,
    parse=webhook.parse,
)
