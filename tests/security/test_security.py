"""Security checks that hold for every route and provider: hostile filter values, tokens, and
secrets that must never come back in API answers or logs."""

from __future__ import annotations

import io

import pytest

from tests.conftest import RunningApp
from tests.e2e.payloads import evolution_update
from tidings.logging import configure_logging

HOSTILE = [
    "' OR '1'='1",
    "1; DROP TABLE messages; --",
    "../../../../etc/passwd",
    "%00",
    "\u0000",
    "😀" * 50,
    "x" * 5000,
    "${jndi:ldap://127.0.0.1/a}",
]

FILTERS = {
    "/v1/messages": [
        "campaign",
        "status",
        "channel",
        "recipient",
        "connection",
        "provider_message_id",
        "cursor",
    ],
    "/v1/receipts": ["status", "connection", "cursor"],
    "/v1/campaigns": ["cursor"],
    "/v1/rejections": ["cursor"],
}


@pytest.fixture
def app(running_app: RunningApp) -> RunningApp:
    running_app.add_connection("evolution", "main", secret="very-secret-value-123")
    response = running_app.hook(
        "evolution", "main", evolution_update("S1", "READ"), token="very-secret-value-123"
    )
    assert response.status_code == 202
    running_app.wait_idle()
    return running_app


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_filter_values_never_error_or_leak(app: RunningApp, value: str) -> None:
    for path, names in FILTERS.items():
        for name in names:
            response = app.api("GET", path, params={name: value})
            assert response.status_code in (200, 400, 422), (path, name, response.text)
            if response.status_code == 200:
                assert response.json()["items"] == [], (path, name)
            else:
                assert "error" in response.json()
    # The data is still there: nothing was dropped or altered.
    assert len(app.api("GET", "/v1/messages").json()["items"]) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/v1/messages/1%20OR%201=1",
        "/v1/campaigns/..%2F..%2Fetc",
        "/v1/receipts/-1",
        "/hooks/evolution/..%2Fmain",
    ],
)
def test_path_tricks_are_not_found_or_invalid(app: RunningApp, path: str) -> None:
    response = app.client.get(path, headers={"authorization": f"Bearer {app.token}"})
    assert response.status_code in (401, 404, 405, 422), (path, response.status_code)


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer tdg_forged", "bearer"])
def test_every_api_route_wants_a_valid_token(app: RunningApp, header: str | None) -> None:
    headers = {} if header is None else {"authorization": header}
    for path in (
        "/v1/messages",
        "/v1/messages/1",
        "/v1/campaigns",
        "/v1/receipts",
        "/v1/receipts/1",
        "/v1/connections",
        "/v1/connections/main",
        "/v1/rejections",
    ):
        response = app.client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    assert app.client.post("/v1/receipts/1/replay", headers=headers).status_code == 401
    assert app.client.post("/v1/messages", json={}, headers=headers).status_code == 401


def test_secrets_never_appear_in_api_answers_or_logs(
    app: RunningApp,
) -> None:
    logs = io.StringIO()
    configure_logging("DEBUG", stream=logs)  # tidings' own handlers, as `tidings serve` installs
    # A refused webhook logs its reason; the wrong secret it carried must not be logged.
    app.hook("evolution", "main", "{}", token="wrong-secret-guess-987")
    app.hook("evolution", "main", "{}", token=None, headers={"authorization": "Bearer not.a.jwt"})
    answers = [
        app.api("GET", path).text
        for path in (
            "/v1/connections",
            "/v1/connections/main",
            "/v1/rejections",
            "/v1/receipts",
            "/v1/receipts/1",
        )
    ]
    for text in answers:
        assert "very-secret-value-123" not in text
        assert "wrong-secret-guess-987" not in text
        assert app.token not in text
    rejections = app.api("GET", "/v1/rejections").json()["items"]
    assert any(r["headers"].get("authorization") == "***" for r in rejections)
    written = logs.getvalue()
    assert "401" in written  # the refusals were logged...
    assert "very-secret-value-123" not in written  # ...without the secrets they carried
    assert "wrong-secret-guess-987" not in written
    assert "token=***" in written
