"""Answers are counted for Prometheus without a scrape: the intake adds them up and passes them
on within about a second (another process of `tidings serve` may be the one scraped)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.conftest import RunningApp, wait_for


def _answered(provider: str, status: str) -> float:
    labels = {"provider": provider, "status": status}
    return REGISTRY.get_sample_value("tidings_webhooks_received_total", labels) or 0.0


def test_answers_reach_the_counter_within_a_second_unscraped(running_app: RunningApp) -> None:
    running_app.add_connection("callbell", "counted")
    accepted, refused = _answered("callbell", "202"), _answered("callbell", "401")
    body = '{"event": "message_status_updated", "payload": {"uuid": "U1", "status": "sent"}}'
    for _ in range(3):
        assert running_app.hook("callbell", "counted", body).status_code == 202
    assert running_app.hook("callbell", "counted", body, token="wrong").status_code == 401
    wait_for(lambda: _answered("callbell", "202") == accepted + 3, 5)
    assert _answered("callbell", "401") == refused + 1
