"""The deliveries page: a dead delivery to a real (loopback) subscriber, replayed from the page."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.dashboard.conftest import Dashboard
from tests.outbound.receiver import running_receiver
from tidings.config import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Loopback subscribers allowed, one quick retry, then dead."""
    return settings.model_copy(update={"outbound_allowed_hosts": "127.0.0.1",
                                       "outbound_retry_schedule": "0.1",
                                       "outbound_poll_seconds": 0.1})  # fmt: skip


def test_a_dead_delivery_is_replayed_from_the_deliveries_page(dashboard: Dashboard) -> None:
    dashboard.app.add_connection("evolution", "main")
    with running_receiver() as receiver:
        made = dashboard.app.api(
            "POST", "/v1/subscriptions", json={"url": receiver.url, "event_types": ["message.*"]}
        )
        assert made.status_code == 201, made.text
        receiver.secrets.append(made.json()["secret"])
        receiver.behaviour.fail_next = 100
        registered = dashboard.app.api(
            "POST",
            "/v1/messages",
            json={"connection": "main", "provider_message_id": "d1", "recipient": "+48601234567"},
        )
        assert registered.status_code == 201

        def dead() -> list[dict[str, object]]:
            found = dashboard.app.api("GET", "/v1/deliveries", params={"status": "dead"})
            items: list[dict[str, object]] = found.json()["items"]
            return items

        wait_for(lambda: len(dead()) == 1, 20)
        [delivery] = dead()
        page = dashboard.page("/deliveries?status=dead").text
        assert f"#{delivery['id']}" in page and "HTTP 500" in page

        receiver.behaviour.fail_next = 0
        assert dashboard.client.post(f"/deliveries/{delivery['id']}/replay",
                                     data={"csrf": "forged"}).status_code == 403  # fmt: skip
        replayed = dashboard.post(f"/deliveries/{delivery['id']}/replay")
        assert replayed.status_code == 303
        receiver.wait_for(1)
        assert not dead()
        assert dashboard.post("/deliveries/999999/replay").status_code == 404
