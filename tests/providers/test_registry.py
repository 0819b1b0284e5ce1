"""The provider registry: the public provider names, each a complete adapter."""

from __future__ import annotations

import inspect
import re
import sys

import pytest

from tidings.domain.errors import NotFound
from tidings.providers.registry import PROVIDERS, get_provider


def test_message_providers_are_registered_under_their_public_names() -> None:
    assert set(PROVIDERS) == {"evolution", "callbell", "meta", "infobip", "twilio", "callyzer"}
    for name, provider in PROVIDERS.items():
        assert provider.name == name
        assert get_provider(name) is provider
        assert provider.body_format in ("json", "form")
        assert provider.auth_scheme


def test_signing_providers_do_not_take_a_token_in_the_url() -> None:
    assert not PROVIDERS["meta"].token_in_url
    assert not PROVIDERS["twilio"].token_in_url
    assert PROVIDERS["twilio"].body_format == "form"


def test_only_a_provider_that_reads_the_url_is_given_it() -> None:
    """The intake builds a request's URL only for a provider that says its signature covers
    it (`signs_url`); an adapter that read `request.url` without saying so would get an empty
    text and refuse every genuine webhook."""
    for name, provider in PROVIDERS.items():
        modules = {sys.modules[f.__module__] for f in (provider.verify, provider.handshake)}
        reads_url = any(re.search(r"\brequest\.url\b", inspect.getsource(m)) for m in modules)
        assert provider.signs_url == reads_url, name
    assert PROVIDERS["twilio"].signs_url


def test_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(NotFound, match="callbell, callyzer, evolution, infobip, meta, twilio"):
        get_provider("sendgrid")
