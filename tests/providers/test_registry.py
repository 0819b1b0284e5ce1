"""The provider registry: the public provider names, each a complete adapter."""

from __future__ import annotations

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


def test_only_twilio_is_given_the_url() -> None:
    """The intake builds a request's URL only for a provider whose signature covers it; the
    others' checks run on requests whose URL cannot be read (`tests/providers/unsigned.py`)."""
    assert [name for name, p in PROVIDERS.items() if p.signs_url] == ["twilio"]


def test_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(NotFound, match="callbell, callyzer, evolution, infobip, meta, twilio"):
        get_provider("sendgrid")
