"""Callyzer (employees' call logs): webhook auth and parsing into call records."""

from __future__ import annotations

from tidings.providers.base import Provider
from tidings.providers.callyzer import webhook

__all__ = ["PROVIDER"]

PROVIDER = Provider(
    name="callyzer",
    channel="call",
    body_format="json",
    auth_scheme="token (?token=) or header (auth_header option)",
    token_in_url=True,
    verify=webhook.verify,
    parse=webhook.parse,
    parse_with=webhook.parse_with,
)
