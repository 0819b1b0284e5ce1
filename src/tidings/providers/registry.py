"""Every provider tidings knows, by the name used in URLs, the CLI and the API.

Adding a provider is one package under `tidings/providers/` and one line here.
"""

from __future__ import annotations

from tidings.domain.errors import NotFound
from tidings.providers import callbell, callyzer, evolution, infobip, meta, twilio
from tidings.providers.base import Provider

__all__ = ["PROVIDERS", "get_provider"]

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        evolution.PROVIDER,
        callbell.PROVIDER,
        meta.PROVIDER,
        infobip.PROVIDER,
        twilio.PROVIDER,
        callyzer.PROVIDER,
    )
}


def get_provider(name: str) -> Provider:
    """The provider called `name`; NotFound names the ones that exist."""
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise NotFound(f"unknown provider {name!r}; known providers: {known}") from None
