"""Infobip (SMS, email, WhatsApp): webhook auth and parsing of reports and tracking events."""

from __future__ import annotations

from tidings.providers.base import Provider
from tidings.providers.infobip import webhook

__all__ = ["PROVIDER"]

# `channel` is the default only: every event names its own (sms, email or whatsapp).
PROVIDER = Provider(
    name="infobip",
    channel="sms",
    body_format="json",
    auth_scheme="token (?token=), header (auth_header option) or Basic auth (secret as password)",
    token_in_url=True,
    verify=webhook.verify,
    parse=webhook.parse,
)
