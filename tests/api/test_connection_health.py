"""`GET /v1/connections[/{name}]` show each sending connection's health, from webhooks a
running app took in: today's counts in TIDINGS_TIMEZONE, the run of errors, the score against
TIDINGS_HEALTH_THRESHOLD; a Callyzer connection, which logs calls, has none."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import RunningApp
from tests.e2e.payloads import evolution_batch, evolution_update
from tidings.config import Settings
from tidings.domain.health import day_bounds

ZONE = "America/Sao_Paulo"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with days in São Paulo and a demanding threshold."""
    return settings.model_copy(update={"timezone": ZONE, "health_threshold": 0.96})


def _health(app: RunningApp, name: str) -> dict[str, Any]:
    response = app.api("GET", f"/v1/connections/{name}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["health"]
    return found


def test_health_follows_the_webhooks(running_app: RunningApp) -> None:
    app = running_app
    app.add_connection("evolution", "evo")
    app.add_connection("callyzer", "cz")
    before = datetime.now(UTC)
    # 20 messages: 18 delivered, one read, and the newest failed. (One batch: the ids sort
    # in the order of the messages, as PostgreSQL creates a batch's messages in that order.)
    updates = [(f"m{i:02}", "DELIVERY_ACK") for i in range(18)]
    updates += [("m18", "READ"), ("m19", "ERROR")]
    assert app.hook("evolution", "evo", evolution_batch(updates)).status_code == 202
    app.wait_idle()
    found = _health(app, "evo")
    starts = {day_bounds(at, ZONE)[0] for at in (before, datetime.now(UTC))}
    assert datetime.fromisoformat(found.pop("today_starts_at")) in starts
    assert found == {
        "delivered_today": 19,
        "read_today": 1,
        "failed_today": 1,
        "consecutive_errors": 1,
        "score": 0.95,
        "outcomes": 20,
        "healthy": False,  # 0.95 is under the threshold of 0.96
    }
    # The failed message turns out delivered: no error in a row, every outcome a delivery.
    assert app.hook("evolution", "evo", evolution_update("m19", "DELIVERY_ACK")).status_code == 202
    app.wait_idle()
    again = _health(app, "evo")
    assert (again["consecutive_errors"], again["score"], again["healthy"]) == (0, 1.0, True)
    assert (again["delivered_today"], again["failed_today"]) == (20, 0)
    listed = {c["name"]: c["health"] for c in app.api("GET", "/v1/connections").json()["items"]}
    assert listed["cz"] is None
    assert listed["evo"] == again


def test_a_new_connection_is_healthy_and_so_answered_on_add_and_change(
    running_app: RunningApp,
) -> None:
    app = running_app
    made = app.api("POST", "/v1/connections", json={"provider": "callbell", "name": "cb"})
    assert made.status_code == 201, made.text
    assert made.json()["health"]["score"] == 1.0 and made.json()["health"]["outcomes"] == 0
    changed = app.api("PATCH", "/v1/connections/cb", json={"options": {"campaign_key": "c"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["health"]["healthy"] is True
    calls = app.api("POST", "/v1/connections", json={"provider": "callyzer", "name": "calls"})
    assert calls.status_code == 201, calls.text
    assert calls.json()["health"] is None
