"""The shared-secret scheme, written once and run for every provider that takes it: the
connection secret as `?token=` or in the header named by the `auth_header` option."""

from __future__ import annotations

import pytest

from tests.providers.unsigned import WithoutUrl
from tidings.domain.errors import SignatureError
from tidings.providers.base import ConnectionAuth, RequestParts
from tidings.providers.registry import PROVIDERS

TOKEN_PROVIDERS = sorted(name for name, p in PROVIDERS.items() if p.token_in_url)
SECRET = "shared-secret-0123456789abcdef0123456789"


def connection(provider: str) -> ConnectionAuth:
    return ConnectionAuth("main", provider, SECRET, {"auth_header": "x-tidings-token"})


def request(
    query: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> RequestParts:
    return WithoutUrl("POST", "", query or {}, headers or {}, b"{}")


def test_the_token_providers_are_the_ones_the_design_names() -> None:
    assert TOKEN_PROVIDERS == ["callbell", "callyzer", "evolution", "infobip"]


@pytest.mark.parametrize("provider", TOKEN_PROVIDERS)
@pytest.mark.parametrize(
    "given",
    [request(query={"token": SECRET}), request(headers={"x-tidings-token": SECRET})],
    ids=["query", "header"],
)
def test_the_secret_is_accepted(provider: str, given: RequestParts) -> None:
    PROVIDERS[provider].verify(given, connection(provider))


@pytest.mark.parametrize("provider", TOKEN_PROVIDERS)
@pytest.mark.parametrize(
    "given",
    [request(query={"token": "nope"}), request(headers={"x-tidings-token": "nope"})],
    ids=["query", "header"],
)
def test_a_wrong_secret_is_refused(provider: str, given: RequestParts) -> None:
    with pytest.raises(SignatureError, match="wrong secret"):
        PROVIDERS[provider].verify(given, connection(provider))


@pytest.mark.parametrize("provider", TOKEN_PROVIDERS)
def test_no_credentials_is_refused_with_how_to_pass_them(provider: str) -> None:
    with pytest.raises(SignatureError, match=r"\?token="):
        PROVIDERS[provider].verify(request(), connection(provider))


@pytest.mark.parametrize("provider", TOKEN_PROVIDERS)
def test_a_header_only_counts_when_configured(provider: str) -> None:
    bare = ConnectionAuth("main", provider, SECRET, {})
    with pytest.raises(SignatureError):
        PROVIDERS[provider].verify(request(headers={"x-tidings-token": SECRET}), bare)


@pytest.mark.parametrize("provider", TOKEN_PROVIDERS)
@pytest.mark.parametrize(
    "given",
    [request(query={"token": ""}), request(headers={"x-tidings-token": ""})],
    ids=["query", "header"],
)
def test_a_connection_without_a_secret_lets_nothing_in(provider: str, given: RequestParts) -> None:
    """An empty `?token=` equals an empty secret; it must not open the door."""
    bare = ConnectionAuth("main", provider, "", {"auth_header": "x-tidings-token"})
    with pytest.raises(SignatureError, match="has no secret"):
        PROVIDERS[provider].verify(given, bare)
