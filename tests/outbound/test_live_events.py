"""Connection session events and dead letters, from webhooks in the documented shapes through
a running app to a verifying receiver: what a front end that shows a WhatsApp session gets."""

from __future__ import annotations

import time

from tests.conftest import RunningApp, fixture_bytes, wait_for
from tests.outbound.receiver import Receiver


def _subscribe(app: RunningApp, receiver: Receiver, **body) -> dict:
    made = app.api("POST", "/v1/subscriptions", json={"url": receiver.url, **body})
    assert made.status_code == 201, made.text
    receiver.secrets.append(made.json()["secret"])
    return made.json()


def test_evolution_session_events_are_pushed_with_the_qr_image(
    running_app: RunningApp, receiver: Receiver
):
    app = running_app
    app.add_connection("evolution", "loja-centro")
    _subscribe(app, receiver, event_types=["connection.*"], connection="loja-centro")
    started = time.monotonic()
    for name in (
        "qrcode-updated-built.json",
        "connection-update-open-built.json",
        "connection-update-close-built.json",
    ):
        answer = app.hook("evolution", "loja-centro", fixture_bytes("evolution", name))
        assert answer.status_code == 202, answer.text
    receiver.wait_for(3)
    assert time.monotonic() - started < 5
    by_type = {d.payload["type"]: d.payload for d in receiver.received}
    assert sorted(by_type) == ["connection.connected", "connection.disconnected", "connection.qr"]
    qr = by_type["connection.qr"]["data"]
    assert qr["connection"] == "loja-centro" and qr["provider"] == "evolution"
    assert qr["qrcode"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert qr["qrcode_text"].startswith("2@")
    connected = by_type["connection.connected"]["data"]
    assert connected["state"] == "open" and connected["status_reason"] == 200
    assert connected["qrcode"] is None
    assert by_type["connection.disconnected"]["data"]["status_reason"] == 401
    assert receiver.unverified == []


def test_a_dead_lettered_receipt_is_announced(running_app: RunningApp, receiver: Receiver):
    app = running_app
    app.add_connection("evolution", "evo")
    _subscribe(app, receiver, event_types=["receipt.dead_lettered"])
    # Well-formed JSON in no shape Evolution sends: dead-lettered at once.
    answer = app.hook("evolution", "evo", b'{"event": "connection.update", "data": 42}')
    assert answer.status_code == 202
    receipt = answer.json()["receipt"]
    receiver.wait_for(1)
    [delivery] = receiver.received
    assert delivery.payload["type"] == "receipt.dead_lettered"
    data = delivery.payload["data"]
    assert data["receipt"] == receipt and data["connection"] == "evo"
    assert data["provider"] == "evolution" and data["attempts"] == 1
    assert "connection.update needs data as an object" in data["error"]
    wait_for(lambda: app.api("GET", f"/v1/receipts/{receipt}").json()["status"] == "dead")
