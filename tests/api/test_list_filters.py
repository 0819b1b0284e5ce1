"""List routes: `since`/`until` bound each list by its own time (messages: created, receipts
and rejections: received), naive times are UTC, bad ones 422; `next_cursor` only when another
page exists."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import RunningApp, wait_for
from tests.e2e.payloads import evolution_update


@pytest.fixture
def app(running_app: RunningApp) -> RunningApp:
    running_app.add_connection("evolution", "main")
    return running_app


def items(app: RunningApp, path: str, **params: Any) -> list[dict[str, Any]]:
    response = app.api("GET", path, params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def register(app: RunningApp, message_id: str, campaign: str | None = None) -> dict[str, Any]:
    body = {"connection": "main", "provider_message_id": message_id, "campaign": campaign}
    response = app.api("POST", "/v1/messages", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def spellings(stamp: str) -> list[str]:
    """One instant written three ways: as returned (Z), naive (so UTC), and at -03:00."""
    instant = datetime.fromisoformat(stamp)
    naive = instant.replace(tzinfo=None).isoformat()
    offset = instant.astimezone(timezone(timedelta(hours=-3))).isoformat()
    return [stamp, naive, offset]


def test_messages_since_and_until_bound_created_at(app: RunningApp) -> None:
    register(app, "M1")
    second = register(app, "M2")["created_at"]
    for stamp in spellings(second):
        ids = [m["provider_message_id"] for m in items(app, "/v1/messages", since=stamp)]
        assert ids == ["M2"], stamp
        ids = [m["provider_message_id"] for m in items(app, "/v1/messages", until=stamp)]
        assert ids == ["M1"], stamp


def test_receipts_since_and_until_bound_received_at(app: RunningApp) -> None:
    for status in ("SERVER_ACK", "DELIVERY_ACK"):
        assert app.hook("evolution", "main", evolution_update("R1", status)).status_code == 202
    app.wait_idle()
    first, second = sorted(r["received_at"] for r in items(app, "/v1/receipts"))
    assert first != second
    for stamp in spellings(second):
        assert [r["received_at"] for r in items(app, "/v1/receipts", since=stamp)] == [second]
        assert [r["received_at"] for r in items(app, "/v1/receipts", until=stamp)] == [first]


def test_rejections_since_and_until_bound_received_at(app: RunningApp) -> None:
    assert app.hook("evolution", "main", "{}", token="wrong").status_code == 401
    wait_for(lambda: len(items(app, "/v1/rejections")) == 1)
    received = items(app, "/v1/rejections")[0]["received_at"]
    later = (datetime.fromisoformat(received) + timedelta(seconds=1)).isoformat()
    assert len(items(app, "/v1/rejections", since=received)) == 1
    assert items(app, "/v1/rejections", since=later) == []
    assert items(app, "/v1/rejections", until=received) == []
    assert len(items(app, "/v1/rejections", until=later)) == 1


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/receipts", "/v1/rejections"])
@pytest.mark.parametrize(
    "value",
    ["yesterday", "2024-13-01T00:00:00", "2024-07-16T25:00:00Z", "9999-12-31T23:59:59-05:00"],
)
@pytest.mark.parametrize("name", ["since", "until"])
def test_a_bad_time_is_refused(app: RunningApp, path: str, value: str, name: str) -> None:
    response = app.api("GET", path, params={name: value})
    assert response.status_code == 422, response.text
    assert name in response.json()["error"]["message"]


def pages(app: RunningApp, path: str, limit: int) -> list[int]:
    """Walk a list; the size of each page it took."""
    sizes: list[int] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        body = app.api("GET", path, params=params).json()
        sizes.append(len(body["items"]))
        if body["next_cursor"] is None:
            return sizes
        params["cursor"] = body["next_cursor"]


def test_a_full_last_page_has_no_next_cursor(app: RunningApp) -> None:
    register(app, "N1", campaign="c1")
    register(app, "N2", campaign="c2")
    for status in ("SERVER_ACK", "DELIVERY_ACK"):
        app.hook("evolution", "main", evolution_update("N1", status))
        app.hook("evolution", "main", "{}", token=f"wrong-{status}")
    app.wait_idle()
    wait_for(lambda: len(items(app, "/v1/rejections")) == 2)
    for path in ("/v1/messages", "/v1/campaigns", "/v1/receipts", "/v1/rejections"):
        assert pages(app, path, 2) == [2], path
        assert pages(app, path, 1) == [1, 1], path
        assert pages(app, path, 3) == [2], path
