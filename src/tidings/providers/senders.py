"""Which client sends for which provider: the registry of send clients by provider name.

The integrator builds a `SenderConfig` from a stored connection (its name, options, secret
and intake URL), gives it and a shared `httpx.Client` to `make_sender`, and calls
`send(SendRequest)` on the result. Callyzer logs calls and sends nothing, so it has no entry.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tidings.providers.callbell.api import CallbellSender
from tidings.providers.evolution.api import EvolutionSender
from tidings.providers.infobip.api import InfobipSender
from tidings.providers.meta.api import MetaSender
from tidings.providers.send import SenderConfig, SendError, SendFailure
from tidings.providers.send_http import HttpSender
from tidings.providers.twilio.api import TwilioSender

__all__ = ["SENDERS", "SENDS_TEMPLATES", "SenderFactory", "make_sender"]

SenderFactory = Callable[[SenderConfig, httpx.Client | None], HttpSender]

SENDERS: dict[str, SenderFactory] = {
    "evolution": EvolutionSender,
    "callbell": CallbellSender,
    "meta": MetaSender,
    "infobip": InfobipSender,
    "twilio": TwilioSender,
}

# Providers whose client sends a template (Meta's name, Twilio's ContentSid, Callbell's
# template_uuid); Evolution and Infobip send text only.
SENDS_TEMPLATES = frozenset({"meta", "twilio", "callbell"})


def make_sender(provider: str, config: SenderConfig, http: httpx.Client | None) -> HttpSender:
    """The send client of `provider` for one connection; without `http`, it can only prepare
    and read (a campaign sends its requests over aiohttp, `tidings.send_process`).

    Raises SendError (kind CONFIG) when the provider cannot send or the connection lacks
    what its client needs (an `api_key`, an `api_url` for Evolution, Meta's
    `phone_number_id`, Twilio's `account_sid`, secret and `from`), saying which option to set.
    """
    factory = SENDERS.get(provider)
    if factory is None:
        known = ", ".join(sorted(SENDERS))
        raise SendError(
            f"tidings cannot send through {provider!r} connections; it sends through: {known}",
            provider=provider,
            kind=SendFailure.CONFIG,
        )
    return factory(config, http)
