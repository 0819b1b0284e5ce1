"""Registration takes only what it documents: unknown fields, recipients that are neither a
phone number nor an email, and values longer than their column are refused with 422 naming
the field, never stored half-right or answered with a 500. Phone numbers are stored and found
in E.164 whatever their spelling."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunningApp
from tidings.config import Settings
from tidings.storage import schema
from tidings.storage.limits import column_limit

E164 = "+5531982968010"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This module's app reads numbers without a country code as Brazilian."""
    return settings.model_copy(update={"default_region": "BR"})


@pytest.fixture
def app(running_app: RunningApp) -> RunningApp:
    running_app.add_connection("evolution", "main")
    return running_app


def register(app: RunningApp, message_id: str, **extra: Any) -> Any:
    body = {"connection": "main", "provider_message_id": message_id, **extra}
    return app.api("POST", "/v1/messages", json=body)


def error_of(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    error: dict[str, str] = response.json()["error"]
    return error


def found(app: RunningApp, **params: str) -> list[str]:
    response = app.api("GET", "/v1/messages", params=params)
    assert response.status_code == 200, response.text
    return [m["provider_message_id"] for m in response.json()["items"]]


def test_an_unknown_field_is_refused_by_name(app: RunningApp) -> None:
    error = error_of(register(app, "U1", recipent=E164))
    assert "recipent" in error["message"]
    assert found(app) == []  # nothing was stored


@pytest.mark.parametrize("recipient", ["nobody", "12", "joao@", "joao at example.com", "+55 abc"])
def test_a_recipient_neither_phone_nor_email_is_refused(app: RunningApp, recipient: str) -> None:
    error = error_of(register(app, "R1", recipient=recipient))
    assert error["code"] == "invalid_recipient"
    assert "recipient" in error["message"]
    assert found(app) == []


def test_phone_numbers_are_stored_in_e164(app: RunningApp) -> None:
    created = register(app, "P1", recipient="+55 (31) 98296-8010")
    assert created.status_code == 201, created.text
    assert created.json()["recipient"] == E164


@pytest.mark.parametrize(
    "query", [E164, "+55 31 98296-8010", "55 31 98296-8010", "5531982968010", "(31) 98296-8010"]
)
def test_the_recipient_filter_finds_any_spelling(app: RunningApp, query: str) -> None:
    register(app, "P1", recipient="55 31 98296-8010")
    register(app, "P2", recipient="+5531982968011")
    assert found(app, recipient=query) == ["P1"]


def test_email_domains_are_stored_and_found_lower_case(app: RunningApp) -> None:
    created = register(app, "E1", recipient="Joao@Example.COM")
    assert created.json()["recipient"] == "Joao@example.com"
    assert found(app, recipient="Joao@EXAMPLE.com") == ["E1"]


def test_a_recipient_filter_that_is_no_recipient_is_refused(app: RunningApp) -> None:
    response = app.api("GET", "/v1/messages", params={"recipient": "nobody"})
    assert error_of(response)["code"] == "invalid_recipient"


def _limit(table: Any, column: str) -> int:
    limit = column_limit(table, column)
    assert limit is not None
    return limit


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("connection", _limit(schema.connections, "name")),
        ("provider_message_id", _limit(schema.messages, "provider_message_id")),
        ("campaign", _limit(schema.campaigns, "key")),
        ("recipient", _limit(schema.messages, "recipient")),
        ("contact_ref", _limit(schema.messages, "contact_ref")),
        ("channel", _limit(schema.messages, "channel")),
    ],
)
def test_a_field_longer_than_its_column_is_refused(app: RunningApp, field: str, limit: int) -> None:
    body = {"connection": "main", "provider_message_id": "L1", field: "9" * (limit + 1)}
    error = error_of(app.api("POST", "/v1/messages", json=body))
    assert f"body.{field}" in error["message"] and str(limit) in error["message"]
    just_fits = {**body, field: "9" * limit} if field not in ("connection", "recipient") else None
    if just_fits is not None:
        assert app.api("POST", "/v1/messages", json=just_fits).status_code == 201


def test_the_default_region_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_DEFAULT_REGION", "br")
    assert Settings().default_region == "BR"
    monkeypatch.setenv("TIDINGS_DEFAULT_REGION", "Brazil")
    with pytest.raises(ValueError, match="region"):
        Settings()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"connection": "main", "provider_message_id": }', "Expecting value"),
        (b'{"connection": "main",', "Expecting property name"),
    ],
)
def test_a_body_that_is_not_json_says_so_and_where(
    app: RunningApp, content: bytes, why: str
) -> None:
    answer = app.api(
        "POST", "/v1/messages", content=content, headers={"content-type": "application/json"}
    )
    error = error_of(answer)
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("body: not valid JSON at character ")
    assert why in error["message"]
