"""Twilio Programmable Messaging (SMS, MMS, WhatsApp): status callback auth and parsing."""

from __future__ import annotations

from tidings.providers.base import Provider
from tidings.providers.twilio import webhook

__all__ = ["PROVIDER"]

PROVIDER = Provider(
    name="twilio",
    channel="sms",
    body_format="form",
    auth_scheme="X-Twilio-Signature (auth token)",
    token_in_url=False,
    verify=webhook.verify,
    parse=webhook.parse,
    signs_url=True,
)
