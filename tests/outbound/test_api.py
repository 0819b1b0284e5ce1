"""`/v1/subscriptions` and `/v1/deliveries` on a running app, with the sender running beside
it as in `tidings serve`: subscribe, receive, list deliveries with their attempts, replay,
rotate, change and delete; and every bad input answered with a clear error."""

from __future__ import annotations

import time

import pytest

from tests.conftest import RunningApp, wait_for
from tests.e2e.payloads import callbell_status
from tests.outbound.receiver import Receiver


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return error


def _subscribe(app: RunningApp, receiver: Receiver, **body) -> dict:
    made = app.api("POST", "/v1/subscriptions", json={"url": receiver.url, **body})
    assert made.status_code == 201, made.text
    receiver.secrets.append(made.json()["secret"])
    return made.json()


def test_subscribe_receive_and_list_deliveries(running_app: RunningApp, receiver: Receiver):
    app = running_app
    app.add_connection("callbell", "cb")
    sub = _subscribe(app, receiver, event_types=["message.*"], description="CRM")
    assert sub["secret"].startswith("whsec_")
    assert sub["event_types"] == ["message.*"] and sub["enabled"] is True
    started = time.monotonic()
    assert app.hook("callbell", "cb", callbell_status("m1", "delivered")).status_code == 202
    receiver.wait_for(1)
    assert time.monotonic() - started < 5
    [delivery] = receiver.received
    assert delivery.payload["type"] == "message.delivered"
    listed = app.api("GET", "/v1/subscriptions").json()["items"]
    assert [s["id"] for s in listed] == [sub["id"]]
    assert "secret" not in listed[0]

    def delivered() -> bool:
        items = app.api("GET", f"/v1/deliveries?subscription={sub['id']}").json()["items"]
        return bool(items) and items[0]["status"] == "delivered"

    wait_for(delivered)
    metrics = app.client.get("/metrics").text
    assert 'tidings_outbound_attempts_total{outcome="delivered"}' in metrics
    [item] = app.api("GET", "/v1/deliveries", params={"status": "delivered"}).json()["items"]
    assert item["webhook_id"] == delivery.webhook_id
    assert item["event_type"] == "message.delivered"
    [attempt] = item["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["response_body"] == '{"ok": true}'
    by_type = app.api("GET", "/v1/deliveries", params={"event_type": "message.read"})
    assert by_type.json()["items"] == []
    future = app.api("GET", "/v1/deliveries", params={"since": "2999-01-01T00:00:00Z"})
    assert future.json()["items"] == []
    assert app.api("GET", f"/v1/deliveries/{item['id']}").json()["id"] == item["id"]

    # Replay one delivery, then the whole range: same webhook id each time.
    replayed = app.api("POST", f"/v1/deliveries/{item['id']}/replay")
    assert replayed.status_code == 202
    receiver.wait_for(1)
    wait_for(lambda: len(receiver.received) == 2)
    ranged = app.api(
        "POST", f"/v1/subscriptions/{sub['id']}/replay", json={"since": "2000-01-01T00:00:00Z"}
    )
    assert ranged.status_code == 202 and ranged.json() == {"replayed": 1}
    wait_for(lambda: len(receiver.received) == 3)
    assert {d.webhook_id for d in receiver.received} == {delivery.webhook_id}


def test_rotate_change_disable_and_delete(running_app: RunningApp, receiver: Receiver):
    app = running_app
    sub = _subscribe(app, receiver)
    rotated = app.api("POST", f"/v1/subscriptions/{sub['id']}/rotate-secret")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != sub["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    at_once = app.api(
        "POST", f"/v1/subscriptions/{sub['id']}/rotate-secret", json={"overlap_seconds": 0}
    )
    assert at_once.json()["previous_secret_expires_at"] is None
    changed = app.api(
        "PATCH",
        f"/v1/subscriptions/{sub['id']}",
        json={"event_types": ["connection.*"], "enabled": False, "description": None},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["event_types"] == ["connection.*"] and body["enabled"] is False
    assert body["disabled_reason"] == "disabled by an operator"
    enabled = app.api("PATCH", f"/v1/subscriptions/{sub['id']}", json={"enabled": True})
    assert enabled.json()["disabled_reason"] is None
    assert app.api("DELETE", f"/v1/subscriptions/{sub['id']}").status_code == 204
    _error(app.api("GET", f"/v1/subscriptions/{sub['id']}"), 404, "not_found")
    _error(app.api("DELETE", f"/v1/subscriptions/{sub['id']}"), 404, "not_found")
    _error(app.api("POST", f"/v1/subscriptions/{sub['id']}/rotate-secret"), 404, "not_found")
    _error(app.api("POST", "/v1/deliveries/999/replay"), 404, "not_found")


REFUSED_URLS = {
    "loopback": "http://127.0.0.2/hooks",
    "private": "http://10.0.0.5/hooks",
    "link-local / metadata": "http://169.254.169.254/latest/meta-data/",
    "CGNAT": "http://100.64.0.1/",
    "multicast": "http://224.0.0.1/",
    "IPv6 loopback": "http://[::1]/hooks",
    "IPv4-mapped IPv6": "http://[::ffff:10.0.0.1]/hooks",
    "decimal": "http://2130706434/hooks",
    "octal": "http://0177.0.0.2/hooks",
    "not http": "ftp://example.com/x",
    "no host": "http:///x",
    "not a URL": "http://[::1/x",
}


@pytest.mark.parametrize("url", REFUSED_URLS.values(), ids=REFUSED_URLS.keys())
def test_subscribing_an_internal_or_bad_url_is_refused(running_app: RunningApp, url: str):
    error = _error(
        running_app.api("POST", "/v1/subscriptions", json={"url": url}), 422, "invalid_subscription"
    )
    assert "\n" not in error["message"]
    assert running_app.api("GET", "/v1/subscriptions").json()["items"] == []


def test_bad_subscription_requests_get_clear_errors(running_app: RunningApp, receiver: Receiver):
    app = running_app
    unknown = app.api(
        "POST", "/v1/subscriptions", json={"url": receiver.url, "event_types": ["message.seen"]}
    )
    assert (
        "unknown event type 'message.seen'"
        in _error(unknown, 422, "invalid_subscription")["message"]
    )
    nobody = app.api("POST", "/v1/subscriptions", json={"url": receiver.url, "connection": "nope"})
    assert "no connection named 'nope'" in _error(nobody, 422, "unknown_connection")["message"]
    malformed = app.api(
        "POST",
        "/v1/subscriptions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    _error(malformed, 422, "invalid_request")
    _error(app.api("POST", "/v1/subscriptions", json={}), 422, "invalid_request")
    sub = _subscribe(app, receiver)
    _error(
        app.api("PATCH", f"/v1/subscriptions/{sub['id']}", json={"url": None}),
        422,
        "invalid_subscription",
    )
    _error(
        app.api("PATCH", f"/v1/subscriptions/{sub['id']}", json={"url": "http://10.1.1.1/"}),
        422,
        "invalid_subscription",
    )
    backwards = app.api(
        "POST",
        f"/v1/subscriptions/{sub['id']}/replay",
        json={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    )
    _error(backwards, 422, "invalid_range")
    _error(
        app.api("POST", f"/v1/subscriptions/{sub['id']}/replay", json={}), 422, "invalid_request"
    )
    _error(app.api("GET", "/v1/deliveries", params={"status": "lost"}), 422, "invalid_request")
    _error(app.api("GET", "/v1/subscriptions/0"), 422, "invalid_request")
    unauthorised = app.client.get("/v1/subscriptions")
    assert unauthorised.status_code == 401
