"""Messages, campaigns and timelines through HTTP against a running app: duplicates, out of
order, unknown messages registered later, batches. `recount` shows zero drift after each."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunningApp, fixture_bytes
from tests.e2e.payloads import callbell_status, evolution_batch, evolution_update


@pytest.fixture
def app(running_app: RunningApp) -> RunningApp:
    running_app.add_connection("evolution", "main")
    running_app.add_connection("callbell", "cb", campaign_key="campaign", contact_ref_key="contact")
    return running_app


def register(app: RunningApp, message_id: str, campaign: str = "spring", **extra: Any) -> Any:
    body = {"connection": "main", "provider_message_id": message_id, "campaign": campaign, **extra}
    return app.api("POST", "/v1/messages", json=body)


def message(app: RunningApp, provider_message_id: str, connection: str = "main") -> Any:
    found = app.api(
        "GET",
        "/v1/messages",
        params={"provider_message_id": provider_message_id, "connection": connection},
    ).json()["items"]
    assert len(found) == 1, found
    return app.api("GET", f"/v1/messages/{found[0]['id']}").json()


def counts(app: RunningApp, campaign: str = "spring") -> dict[str, int]:
    response = app.api("GET", f"/v1/campaigns/{campaign}")
    assert response.status_code == 200, response.text
    result: dict[str, int] = response.json()["counts"]
    return result


def send(app: RunningApp, *bodies: str, provider: str = "evolution", name: str = "main") -> None:
    for body in bodies:
        response = app.hook(provider, name, body)
        assert response.status_code == 202, response.text
    app.wait_idle()


def test_registered_message_moves_through_its_lifecycle(app: RunningApp) -> None:
    created = register(
        app, "M1", recipient="+5511999990000", contact_ref="lead-7", metadata={"batch": "b1"}
    )
    assert created.status_code == 201
    assert created.json()["state"] == "sent"
    send(app, evolution_update("M1", "DELIVERY_ACK"), evolution_update("M1", "READ"))
    detail = message(app, "M1")
    assert detail["state"] == "read"
    assert detail["campaign"] == "spring" and detail["contact_ref"] == "lead-7"
    assert detail["channel"] == "whatsapp"  # the provider's channel when none is given
    assert detail["sent_at"] <= detail["delivered_at"] <= detail["read_at"]
    kinds = [(e["kind"], e["receipt"] is not None) for e in detail["events"]]
    assert kinds == [("sent", False), ("delivered", True), ("read", True)]
    assert counts(app) == {
        "total": 1,
        "queued": 0,
        "sent": 1,
        "delivered": 1,
        "read": 1,
        "failed": 0,
        "opened": 0,
        "clicked": 0,
        "unsubscribed": 0,
        "complained": 0,
    }
    campaign = app.api("GET", "/v1/campaigns/spring").json()
    assert campaign["rates"]["delivery"] == 1.0 and campaign["rates"]["read"] == 1.0
    app.assert_no_drift()


def test_duplicates_apply_once(app: RunningApp) -> None:
    register(app, "D1")
    body = evolution_update("D1", "DELIVERY_ACK")
    send(app, body, body, body)
    detail = message(app, "D1")
    assert [e["kind"] for e in detail["events"]] == ["sent", "delivered"]
    assert counts(app)["delivered"] == 1
    app.assert_no_drift()


def test_read_before_delivered(app: RunningApp) -> None:
    register(app, "R1")
    send(app, evolution_update("R1", "READ", v1_ms=1_700_000_002_000))
    send(app, evolution_update("R1", "DELIVERY_ACK", v1_ms=1_700_000_001_000))
    detail = message(app, "R1")
    assert detail["state"] == "read"
    # The late delivered event brought older evidence: delivered_at moved earlier.
    assert detail["delivered_at"].startswith("2023-11-14T22:13:21")
    assert detail["read_at"].startswith("2023-11-14T22:13:22")
    assert counts(app)["read"] == 1 and counts(app)["delivered"] == 1
    app.assert_no_drift()


def test_failed_after_read_changes_nothing(app: RunningApp) -> None:
    register(app, "F1")
    send(app, evolution_update("F1", "READ"), evolution_update("F1", "ERROR"))
    detail = message(app, "F1")
    assert detail["state"] == "read"
    assert "failed" in [e["kind"] for e in detail["events"]]
    assert counts(app)["failed"] == 0
    app.assert_no_drift()


def test_delivered_after_failed_wins(app: RunningApp) -> None:
    register(app, "F2")
    send(app, evolution_update("F2", "ERROR"))
    assert message(app, "F2")["state"] == "failed"
    assert counts(app)["failed"] == 1
    send(app, evolution_update("F2", "DELIVERY_ACK"))
    detail = message(app, "F2")
    assert detail["state"] == "delivered"
    assert detail["failed_at"] is not None and detail["failure"]["reason"]
    c = counts(app)
    assert (c["failed"], c["delivered"], c["sent"]) == (0, 1, 1)
    app.assert_no_drift()


def test_unknown_message_then_registration(app: RunningApp) -> None:
    send(app, evolution_update("U1", "DELIVERY_ACK"))
    auto = message(app, "U1")
    assert auto["state"] == "delivered" and auto["campaign"] is None
    assert app.api("GET", "/v1/campaigns/spring").status_code == 404
    response = register(app, "U1", recipient="+48601234567")
    assert response.status_code == 201  # first registration of a message seen before
    assert response.json()["state"] == "delivered"
    c = counts(app)
    assert (c["total"], c["sent"], c["delivered"]) == (1, 1, 1)
    again = register(app, "U1")
    assert again.status_code == 200
    conflict = register(app, "U1", campaign="autumn")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "campaign_conflict"
    app.assert_no_drift()


def test_batch_payload_applies_each_item(app: RunningApp) -> None:
    for m in ("B1", "B2", "B3"):
        register(app, m)
    send(app, evolution_batch([("B1", "DELIVERY_ACK"), ("B2", "READ"), ("B3", "ERROR")]))
    assert [message(app, m)["state"] for m in ("B1", "B2", "B3")] == ["delivered", "read", "failed"]
    c = counts(app)
    assert (c["total"], c["delivered"], c["read"], c["failed"]) == (3, 2, 1, 1)
    app.assert_no_drift()


def test_baileys_numbers_follow_the_baileys_table(app: RunningApp) -> None:
    register(app, "N2")
    register(app, "N3")
    send(app, evolution_update("N2", 2), evolution_update("N3", 3))
    assert message(app, "N2")["state"] == "sent"  # 2 = SERVER_ACK, not delivered
    assert message(app, "N3")["state"] == "delivered"  # 3 = DELIVERY_ACK, not read


def test_unknown_status_is_recorded_and_never_moves_state(app: RunningApp) -> None:
    register(app, "K1")
    send(app, evolution_update("K1", "SOMETHING_NEW"))
    detail = message(app, "K1")
    assert detail["state"] == "sent"
    assert [(e["kind"], e["raw_status"]) for e in detail["events"]][-1] == (
        "unknown",
        "SOMETHING_NEW",
    )
    app.assert_no_drift()


def test_callbell_metadata_names_campaign_and_contact(app: RunningApp) -> None:
    send(
        app,
        callbell_status("cb-1", "delivered", ts=1_700_000_000, campaign="winter", contact="c-9"),
        provider="callbell",
        name="cb",
    )
    detail = message(app, "cb-1", connection="cb")
    assert (detail["campaign"], detail["contact_ref"], detail["state"]) == (
        "winter",
        "c-9",
        "delivered",
    )
    assert detail["delivered_at"].startswith("2023-11-14T22:13:20")
    assert counts(app, "winter")["delivered"] == 1
    app.assert_no_drift()


def test_documented_callbell_payload_end_to_end(app: RunningApp) -> None:
    send(
        app,
        fixture_bytes("callbell", "message-status-updated-read.json").decode(),
        provider="callbell",
        name="cb",
    )
    detail = message(app, "adf3d1216d4c4dcd908199d6700f2381", connection="cb")
    assert detail["state"] == "read"


def test_session_state_from_evolution(app: RunningApp) -> None:
    send(app, fixture_bytes("evolution", "qrcode-updated-built.json").decode())
    conn = app.api("GET", "/v1/connections/main").json()
    assert conn["session_state"] == "qrcode" and conn["session_qrcode"]
    send(app, fixture_bytes("evolution", "connection-update-open-built.json").decode())
    conn = app.api("GET", "/v1/connections/main").json()
    assert conn["session_state"] == "open"
    assert conn["last_event_at"] is not None
    assert "secret" not in conn and "s3cret" not in str(conn)
    listed = app.api("GET", "/v1/connections").json()["items"]
    assert {c["name"] for c in listed} == {"main", "cb"}


def test_fromme_false_is_ignored_with_a_note(app: RunningApp) -> None:
    response = app.hook(
        "evolution", "main", fixture_bytes("evolution", "messages-update-fromme-false-built.json")
    )
    app.wait_idle()
    receipt = app.api("GET", f"/v1/receipts/{response.json()['receipt']}").json()
    assert receipt["status"] == "done"
    assert any("fromMe" in n for n in receipt["notes"])
    assert app.api("GET", "/v1/messages").json()["items"] == []


def test_a_body_of_no_shape_the_provider_sends_is_dead_at_once_and_replayable(
    app: RunningApp,
) -> None:
    response = app.hook("evolution", "main", '{"no_event": true}')
    assert response.status_code == 202
    receipt_id = response.json()["receipt"]

    def status() -> Any:
        return app.api("GET", f"/v1/receipts/{receipt_id}").json()

    from tests.conftest import wait_for

    wait_for(lambda: status()["status"] == "dead", 15)
    dead = status()
    assert dead["attempts"] == 1 and 'no "event" name' in dead["error"]
    replayed = app.api("POST", f"/v1/receipts/{receipt_id}/replay")
    assert replayed.status_code == 202
    wait_for(lambda: status()["attempts"] == 1 and status()["status"] == "dead", 15)


def test_replay_of_applied_receipt_changes_nothing(app: RunningApp) -> None:
    register(app, "P1")
    response = app.hook("evolution", "main", evolution_update("P1", "READ"))
    app.wait_idle()
    before = message(app, "P1")
    assert app.api("POST", f"/v1/receipts/{response.json()['receipt']}/replay").status_code == 202
    app.wait_idle()
    after = message(app, "P1")
    assert after == before
    app.assert_no_drift()


def test_pagination_and_filters(app: RunningApp) -> None:
    for i in range(5):
        register(app, f"P{i}", campaign="paged")
    send(app, evolution_update("P0", "READ"))
    first = app.api("GET", "/v1/messages", params={"campaign": "paged", "limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    seen = [m["provider_message_id"] for m in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = app.api(
            "GET", "/v1/messages", params={"campaign": "paged", "limit": 2, "cursor": cursor}
        ).json()
        seen += [m["provider_message_id"] for m in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == [f"P{i}" for i in range(5)]
    read = app.api("GET", "/v1/messages", params={"campaign": "paged", "status": "read"}).json()
    assert [m["provider_message_id"] for m in read["items"]] == ["P0"]
    bad = app.api("GET", "/v1/messages", params={"cursor": "garbage!"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    too_big = app.api("GET", "/v1/messages", params={"limit": 1001})
    assert too_big.status_code == 422


def test_api_requires_a_valid_token(app: RunningApp) -> None:
    assert app.client.get("/v1/messages").status_code == 401
    wrong = app.client.get("/v1/messages", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert app.client.get("/openapi.json").status_code == 200
    assert app.client.get("/healthz").json() == {"status": "ok"}
    assert app.client.get("/readyz").json() == {"status": "ok"}


def test_register_validation_errors_are_clear(app: RunningApp) -> None:
    missing = app.api("POST", "/v1/messages", json={"connection": "main"})
    assert (
        missing.status_code == 422 and "provider_message_id" in missing.json()["error"]["message"]
    )
    unknown = app.api(
        "POST", "/v1/messages", json={"connection": "nope", "provider_message_id": "x"}
    )
    assert unknown.status_code == 404
    sending = app.api(
        "POST",
        "/v1/messages",
        json={"connection": "main", "provider_message_id": "x", "send": True, "text": "hi"},
    )
    assert sending.status_code == 422  # a send gets its id from the provider
    assert "provider_message_id" in sending.json()["error"]["message"]


def test_sent_at_needs_its_offset_and_cursors_their_range(app: RunningApp) -> None:
    naive = register(app, "T1", sent_at="2026-01-01T10:00:00")
    assert naive.status_code == 422
    aware = register(app, "T1", sent_at="2026-01-01T10:00:00-03:00")
    assert aware.status_code == 201
    assert aware.json()["sent_at"].startswith("2026-01-01T13:00:00")
    import base64

    huge = base64.urlsafe_b64encode(b"id:99999999999999999999").decode().rstrip("=")
    for path in ("/v1/messages", "/v1/receipts", "/v1/campaigns", "/v1/rejections"):
        assert app.api("GET", path, params={"cursor": huge}).status_code == 400
