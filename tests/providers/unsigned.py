"""A request as the intake gives it to a provider whose signature does not cover the URL."""

from __future__ import annotations

from tidings.providers.base import RequestParts


class WithoutUrl(RequestParts):
    """The intake builds the URL only for a provider that signs it (`Provider.signs_url`):
    reading it here means the provider needs it and does not say so."""

    @property  # type: ignore[misc]
    def url(self) -> str:  # type: ignore[override]
        raise AssertionError("this provider read the request's URL without `signs_url`")
