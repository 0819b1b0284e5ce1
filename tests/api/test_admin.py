"""`/v1/connections` (add, change, remove) and `/v1/tokens` (list, revoke), over HTTP against a
running app: the same checks as the CLI, each refusal a `{"error": {...}}` with its status."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx

from tests.conftest import RunningApp, wait_for
from tests.e2e.payloads import evolution_update
from tidings.storage import tokens


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return str(error["message"])


def test_add_answers_201_with_the_intake_url(running_app: RunningApp) -> None:
    app = running_app
    made = app.api("POST", "/v1/connections", json={"provider": "callbell", "name": "cb"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"] and body["intake_url"] == (
        f"{app.base_url}/hooks/callbell/cb?token={body['secret']}"
    )
    given = app.api(
        "POST",
        "/v1/connections",
        json={"provider": "meta", "name": "m", "secret": "app", "options": {"verify_token": "v"}},
    )
    assert given.status_code == 201 and given.json()["secret"] is None
    assert given.json()["intake_url"] == f"{app.base_url}/hooks/meta/m"
    assert given.json()["options"] == {"verify_token": "***"}
    again = app.api("POST", "/v1/connections", json={"provider": "evolution", "name": "cb"})
    assert "already exists" in _error(again, 409, "conflict")


def test_add_refuses_what_cannot_work(running_app: RunningApp) -> None:
    cases = [
        ({"provider": "meta", "name": "m", "options": {"verify_token": "v"}}, "needs --secret"),
        ({"provider": "meta", "name": "m", "secret": "s"}, "verify_token"),
        ({"provider": "twilio", "name": "t"}, "twilio connection needs --secret"),
        ({"provider": "infobip", "name": "i", "options": {"nope": "1"}}, "it knows: api_key"),
        ({"provider": "evolution", "name": "a b"}, "cannot be a connection name"),
        ({"provider": "whatsapp", "name": "w"}, "known providers: callbell"),
    ]
    for body, says in cases:
        response = running_app.api("POST", "/v1/connections", json=body)
        assert says in _error(response, 422, "invalid_connection")
    assert running_app.api("GET", "/v1/connections").json()["items"] == []


def test_patch_merges_options_and_applies_the_checks(running_app: RunningApp) -> None:
    app = running_app
    app.add_connection("evolution", "evo", instance="a")
    patched = app.api(
        "PATCH", "/v1/connections/evo", json={"options": {"instance": None, "from": "+55"}}
    )
    assert patched.status_code == 200 and patched.json()["options"] == {"from": "+55"}
    bad = app.api("PATCH", "/v1/connections/evo", json={"options": {"verify_token": "v"}})
    assert "does not know the option verify_token" in _error(bad, 422, "invalid_connection")
    missing = app.api("PATCH", "/v1/connections/nope", json={"secret": "x"})
    _error(missing, 404, "not_found")


def test_delete_turns_intake_away_and_keeps_the_messages(running_app: RunningApp) -> None:
    app = running_app
    app.add_connection("evolution", "evo")
    assert app.hook("evolution", "evo", evolution_update("KEEP1", "READ")).status_code == 202
    app.wait_idle()
    [message] = app.api("GET", "/v1/messages").json()["items"]
    assert app.api("DELETE", "/v1/connections/evo").status_code == 204
    started = time.monotonic()
    wait_for(lambda: app.hook("evolution", "evo", "{}").status_code == 404, 1.5)
    assert time.monotonic() - started < 1.5
    kept = app.api("GET", f"/v1/messages/{message['id']}")
    assert kept.status_code == 200 and kept.json()["connection"] == "evo"
    assert app.api("GET", "/v1/connections").json()["items"] == []
    _error(app.api("DELETE", "/v1/connections/evo"), 404, "not_found")
    reused = app.api("POST", "/v1/connections", json={"provider": "callbell", "name": "evo"})
    assert reused.status_code == 201


def test_tokens_are_listed_without_secrets_and_revoked_at_once(running_app: RunningApp) -> None:
    app = running_app
    with app.db.write() as conn:
        other = tokens.create_token(conn, "other", datetime.now(UTC))
    listed = app.api("GET", "/v1/tokens")
    assert [t["name"] for t in listed.json()["items"]] == ["other", "tests"]
    assert other not in listed.text and app.token not in listed.text
    as_other = {"authorization": f"Bearer {other}"}
    assert app.client.get("/v1/tokens", headers=as_other).status_code == 200
    assert app.api("DELETE", "/v1/tokens/other").status_code == 204
    refused = app.client.get("/v1/tokens", headers=as_other)
    _error(refused, 401, "unauthorized")
    _error(app.api("DELETE", "/v1/tokens/other"), 404, "not_found")
