"""Callbell (WhatsApp Business API and QR API): webhook auth, parsing and the check reply."""

from __future__ import annotations

from tidings.providers.base import Provider
from tidings.providers.callbell import webhook

__all__ = ["PROVIDER"]

PROVIDER = Provider(
    name="callbell",
    channel="whatsapp",
    body_format="json",
    auth_scheme="token (?token=) or header (auth_header option)",
    token_in_url=True,
    verify=webhook.verify,
    parse=webhook.parse,
    reply=webhook.reply,
)
