"""Where a connection's webhooks go: the intake's base URL and each connection's intake URL.

Printed by `tidings connection add`, returned by the API, and given to providers that take
a callback URL with each send (Twilio's StatusCallback, Infobip's notifyUrl).
"""

from __future__ import annotations

import ipaddress

from tidings.config import Settings
from tidings.providers.registry import get_provider
from tidings.storage import store_settings
from tidings.storage.connections import StoredConnection
from tidings.storage.db import Database

__all__ = ["intake_base", "intake_url", "listen_url"]


def listen_url(host: str, port: int) -> str:
    """The URL that reaches a server bound to `host`:`port` from this machine."""
    if not host or _unspecified(host):  # every interface: loopback is one of them
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a host name
        return False


def intake_base(config: Settings, db: Database) -> str:
    """Where intake URLs start: TIDINGS_PUBLIC_URL, else where `tidings serve` last said it
    listens, else the configured host and port."""
    if config.public_url:
        return config.public_url
    with db.read() as conn:
        remembered = store_settings.recall(conn, store_settings.SERVE_URL)
    return remembered or listen_url(config.host, config.port)


def intake_url(base: str, connection: StoredConnection, with_secret: bool) -> str:
    """Where the provider should send webhooks; with `?token=` where it can only take a URL."""
    url = f"{base.rstrip('/')}/hooks/{connection.provider}/{connection.name}"
    provider = get_provider(connection.provider)
    if provider.token_in_url and with_secret:
        url += f"?token={connection.secret}"
    return url
