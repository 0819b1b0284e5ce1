"""`POST /v1/messages` with `"send": true` that the connection cannot send: 422 with the
reason, and nothing recorded or sent (README "One message"), rather than a failed message
counted against the connection's health and the campaign."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import RunningApp
from tests.fakes.provider_apis import FakeEvolution, FakeInfobip, FakeProviderApi
from tidings.storage.schema import campaigns, messages, sends


@pytest.fixture
def evolution() -> Iterator[FakeEvolution]:
    with FakeEvolution() as fake:
        yield fake


@pytest.fixture
def infobip() -> Iterator[FakeInfobip]:
    with FakeInfobip() as fake:
        yield fake


def _send(app: RunningApp, **body: Any) -> httpx.Response:
    return app.api("POST", "/v1/messages", json={"send": True, "campaign": "spring", **body})


def _refused(answer: httpx.Response, says: str) -> None:
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "cannot_send"
    assert says in error["message"]


def _nothing_recorded(app: RunningApp, fake: FakeProviderApi) -> None:
    assert fake.requests == []
    with app.db.read() as conn:
        for table in (sends, messages, campaigns):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
    assert app.api("GET", "/v1/messages").json()["items"] == []
    health = app.api("GET", "/v1/connections/main").json()["health"]
    assert (health["failed_today"], health["consecutive_errors"]) == (0, 0)


def test_an_evolution_connection_without_api_key_is_refused_before_recording(
    running_app: RunningApp, evolution: FakeEvolution
) -> None:
    running_app.add_connection("evolution", "main", api_url=evolution.url)
    answer = _send(running_app, connection="main", recipient="+5531982968010", text="Olá")
    _refused(answer, "connection 'main' needs the option api_key")
    _nothing_recorded(running_app, evolution)


@pytest.mark.parametrize("provider", ["evolution", "infobip"])
def test_a_template_through_a_text_only_connection_is_refused_before_recording(
    running_app: RunningApp, evolution: FakeEvolution, infobip: FakeInfobip, provider: str
) -> None:
    fake: FakeProviderApi
    if provider == "evolution":
        fake, options = evolution, {"api_url": evolution.url, "api_key": evolution.api_key}
    else:
        fake = infobip
        options = {"api_url": infobip.url, "api_key": infobip.api_key, "from": "InfoSMS"}
    running_app.add_connection(provider, "main", **options)
    template = {"name": "order_update", "language": "en", "variables": ["1042"]}
    answer = _send(running_app, connection="main", recipient="+5531982968010", template=template)
    _refused(answer, f"{provider} sends text only: give text instead of a template")
    _nothing_recorded(running_app, fake)
