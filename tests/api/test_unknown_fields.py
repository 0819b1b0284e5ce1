"""A misspelt field in a request body is refused by name (422 `invalid_request`), as a
registration's is, and nothing changes: a PATCH that answered 200 having ignored `"secrt"`
would leave the user believing the secret was changed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import RunningApp
from tidings.config import Settings
from tidings.storage import connections


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Subscriptions may point at loopback (nothing is delivered in these tests)."""
    return settings.model_copy(update={"outbound_allowed_hosts": "127.0.0.1"})


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert f"body.{field}: Extra inputs are not permitted" in error["message"]


def test_a_misspelt_connection_field_is_refused_and_changes_nothing(
    running_app: RunningApp,
) -> None:
    app = running_app
    app.add_connection("evolution", "main", instance="a")
    _refused(app.api("PATCH", "/v1/connections/main", json={"secrt": "x"}), "secrt")
    both = {"options": {"instance": "b"}, "secrt": "x"}
    _refused(app.api("PATCH", "/v1/connections/main", json=both), "secrt")
    with app.db.read() as conn:
        stored = connections.get_connection(conn, "main")
    assert (stored.secret, dict(stored.options)) == ("s3cret", {"instance": "a"})

    added = {"provider": "callbell", "name": "cb", "optons": {"api_key": "k"}}
    _refused(app.api("POST", "/v1/connections", json=added), "optons")
    assert [c["name"] for c in app.api("GET", "/v1/connections").json()["items"]] == ["main"]


def test_a_misspelt_subscription_field_is_refused_and_changes_nothing(
    running_app: RunningApp,
) -> None:
    app = running_app
    url = "http://127.0.0.1:9/hooks"
    misspelt = {"url": url, "evnt_types": []}
    _refused(app.api("POST", "/v1/subscriptions", json=misspelt), "evnt_types")
    assert app.api("GET", "/v1/subscriptions").json()["items"] == []
    made = app.api("POST", "/v1/subscriptions", json={"url": url})
    assert made.status_code == 201, made.text
    path = f"/v1/subscriptions/{made.json()['id']}"
    assert app.api("PATCH", path, json={"enabled": False}).json()["enabled"] is False

    _refused(app.api("PATCH", path, json={"enabld": True}), "enabld")
    assert app.api("GET", path).json()["enabled"] is False

    bodies: list[tuple[str, dict[str, Any], str]] = [
        ("rotate-secret", {"overlap": 0}, "overlap"),
        ("replay", {"since": "2000-01-01T00:00:00Z", "untill": "2001-01-01T00:00:00Z"}, "untill"),
    ]
    secret_expiry = app.api("GET", path).json()["previous_secret_expires_at"]
    for action, body, field in bodies:
        _refused(app.api("POST", f"{path}/{action}", json=body), field)
    assert app.api("GET", path).json()["previous_secret_expires_at"] == secret_expiry
