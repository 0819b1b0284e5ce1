"""Every message provider end to end through a running app: authentication per scheme (401 and a
rejection row), malformed bodies per content type, unknown statuses, and one campaign fed by
several providers at once. `recount` shows zero drift after each."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from tests.conftest import RunningApp, fixture_bytes
from tests.e2e.payloads import callbell_status, evolution_update
from tidings.storage import inbox
from tidings.storage.schema import rejections

META_SECRET = "meta-app-secret"
TWILIO_TOKEN = "twilio-auth-token"


@pytest.fixture
def app(running_app: RunningApp) -> RunningApp:
    running_app.add_connection("evolution", "evo")
    running_app.add_connection("callbell", "cb", campaign_key="campaign")
    running_app.add_connection(
        "infobip", "ib", campaign_key="campaign", contact_ref_key="qj_contact_id"
    )
    running_app.add_connection(
        "meta", "wa", secret=META_SECRET, verify_token="vt-123", campaign_key="campaign"
    )
    running_app.add_connection("twilio", "tw", secret=TWILIO_TOKEN)
    return running_app


def meta_post(app: RunningApp, body: dict[str, Any] | bytes, secret: str = META_SECRET) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return app.client.post(
        "/hooks/meta/wa",
        content=raw,
        headers={"content-type": "application/json", "x-hub-signature-256": signature},
    )


def meta_status(wamid: str, status: str, ts: int, campaign: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(ts),
        "recipient_id": "5511999990000",
    }
    if campaign:
        item["biz_opaque_callback_data"] = json.dumps({"campaign": campaign})
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": "1"},
        "statuses": [item],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "w1", "changes": [{"field": "messages", "value": value}]}],
    }


def twilio_post(app: RunningApp, params: dict[str, str], token: str = TWILIO_TOKEN) -> Any:
    url = f"{app.base_url}/hooks/twilio/tw"
    signed = url + "".join(k + params[k] for k in sorted(params))
    signature = base64.b64encode(
        hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    ).decode()
    return app.client.post(
        "/hooks/twilio/tw",
        content=urlencode(params),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": signature,
        },
    )


def infobip_report(message_id: str, group: str, campaign: str) -> str:
    return json.dumps(
        {
            "results": [
                {
                    "messageId": message_id,
                    "to": "41793026727",
                    "doneAt": "2024-07-16T17:26:54.966+0000",
                    "callbackData": str({"campaign": campaign, "qj_contact_id": "77"}),
                    "status": {"groupName": group, "name": group + "_X"},
                }
            ]
        }
    )


def message(app: RunningApp, connection: str, provider_message_id: str) -> Any:
    items = app.api(
        "GET",
        "/v1/messages",
        params={"connection": connection, "provider_message_id": provider_message_id},
    ).json()["items"]
    assert len(items) == 1
    return app.api("GET", f"/v1/messages/{items[0]['id']}").json()


def rejection_codes(app: RunningApp) -> list[tuple[str, int]]:
    with app.db.read() as conn:
        return [
            (r.connection, r.status_code)
            for r in conn.execute(select(rejections).order_by(rejections.c.id))
        ]


def test_one_campaign_fed_by_every_provider(app: RunningApp) -> None:
    for mid in ("E1",):
        app.api(
            "POST",
            "/v1/messages",
            json={"connection": "evo", "provider_message_id": mid, "campaign": "mix"},
        )
    app.api(
        "POST",
        "/v1/messages",
        json={"connection": "tw", "provider_message_id": "SM1", "campaign": "mix"},
    )
    answers = [
        app.hook("evolution", "evo", evolution_update("E1", "READ")),
        app.hook("callbell", "cb", callbell_status("C1", "delivered", campaign="mix")),
        app.hook("infobip", "ib", infobip_report("I1", "UNDELIVERABLE", "mix")),
        meta_post(app, meta_status("wamid.M1", "delivered", 1_700_000_000, campaign="mix")),
        twilio_post(
            app,
            {
                "MessageSid": "SM1",
                "MessageStatus": "undelivered",
                "To": "+15005550006",
                "ErrorCode": "30003",
                "AccountSid": "AC1",
            },
        ),
    ]
    assert [a.status_code for a in answers] == [202] * 5, [a.text for a in answers]
    app.wait_idle()
    counts = app.api("GET", "/v1/campaigns/mix").json()["counts"]
    # E1 read; C1 and M1 delivered; I1 and SM1 failed after send (both count as sent).
    assert (
        counts["total"],
        counts["sent"],
        counts["delivered"],
        counts["read"],
        counts["failed"],
    ) == (5, 5, 3, 1, 2)
    assert message(app, "ib", "I1")["contact_ref"] == "77"
    assert message(app, "tw", "SM1")["failure"]["code"] == "30003"
    app.assert_no_drift()


@pytest.mark.parametrize("provider", ["evolution", "callbell", "infobip"])
def test_token_providers_refuse_a_wrong_token(app: RunningApp, provider: str) -> None:
    name = {"evolution": "evo", "callbell": "cb", "infobip": "ib"}[provider]
    assert app.hook(provider, name, "{}", token="wrong").status_code == 401
    assert app.hook(provider, name, "{}", token=None).status_code == 401
    assert rejection_codes(app) == [(name, 401), (name, 401)]


def test_infobip_basic_auth(app: RunningApp) -> None:
    body = infobip_report("I9", "DELIVERED", "basic")
    good = app.client.post(
        "/hooks/infobip/ib",
        content=body,
        auth=("infobip", "s3cret"),
        headers={"content-type": "application/json"},
    )
    bad = app.client.post(
        "/hooks/infobip/ib",
        content=body,
        auth=("infobip", "nope"),
        headers={"content-type": "application/json"},
    )
    assert (good.status_code, bad.status_code) == (202, 401)


def test_meta_signature_and_handshake(app: RunningApp) -> None:
    body = meta_status("wamid.S1", "sent", 1_700_000_000)
    assert meta_post(app, body, secret="wrong").status_code == 401
    tampered = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(META_SECRET.encode(), tampered, hashlib.sha256).hexdigest()
    response = app.client.post(
        "/hooks/meta/wa",
        content=tampered.replace(b"sent", b"read"),
        headers={"x-hub-signature-256": signature},
    )
    assert response.status_code == 401
    missing = app.client.post("/hooks/meta/wa?token=s3cret", content=tampered)
    assert missing.status_code == 401  # a token is not enough for Meta
    assert meta_post(app, body).status_code == 202
    challenge = app.client.get(
        "/hooks/meta/wa",
        params={
            "hub.mode": "subscribe",
            "hub.challenge": "1158201444",
            "hub.verify_token": "vt-123",
        },
    )
    assert (challenge.status_code, challenge.text) == (200, "1158201444")
    wrong = app.client.get(
        "/hooks/meta/wa",
        params={"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "nope"},
    )
    assert wrong.status_code == 403
    assert rejection_codes(app) == [("wa", 401), ("wa", 401), ("wa", 401), ("wa", 403)]


def test_twilio_signature_covers_url_and_params(app: RunningApp) -> None:
    params = {"MessageSid": "SM2", "MessageStatus": "delivered", "To": "+15005550006"}
    assert twilio_post(app, params, token="wrong").status_code == 401
    unsigned = app.client.post(
        "/hooks/twilio/tw",
        content=urlencode(params),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert unsigned.status_code == 401
    assert twilio_post(app, params).status_code == 202
    app.wait_idle()
    assert message(app, "tw", "SM2")["state"] == "delivered"


def test_malformed_bodies_of_each_content_type_are_quarantined(app: RunningApp) -> None:
    json_bad = app.hook("infobip", "ib", b'{"results": [')
    signature = "sha256=" + hmac.new(META_SECRET.encode(), b"{oops", hashlib.sha256).hexdigest()
    meta_bad = app.client.post(
        "/hooks/meta/wa", content=b"{oops", headers={"x-hub-signature-256": signature}
    )
    form_bad = twilio_post(app, {})  # an empty form is not a status callback
    assert [r.status_code for r in (json_bad, meta_bad, form_bad)] == [400, 400, 400]
    with app.db.read() as conn:  # those the worker has not yet taken from the landing file too
        statuses = [r.status for r in inbox.list_receipts(conn, None, None, None, 10)]
    assert statuses == ["quarantined"] * 3


def test_unknown_statuses_are_recorded_and_never_move_state(
    app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    app.api(
        "POST",
        "/v1/messages",
        json={"connection": "tw", "provider_message_id": "SM3", "campaign": "u"},
    )
    caplog.set_level("WARNING", logger="tidings")
    assert (
        twilio_post(
            app, {"MessageSid": "SM3", "MessageStatus": "teleported", "To": "+15005550006"}
        ).status_code
        == 202
    )
    assert app.hook("infobip", "ib", infobip_report("I3", "LOST_IN_SPACE", "u")).status_code == 202
    app.wait_idle()
    assert message(app, "tw", "SM3")["state"] == "sent"
    assert message(app, "ib", "I3")["state"] == "queued"
    kinds = [(e["kind"], e["raw_status"]) for e in message(app, "tw", "SM3")["events"]]
    assert ("unknown", "teleported") in kinds
    assert "teleported" in caplog.text and "LOST_IN_SPACE" in caplog.text
    app.assert_no_drift()


def test_documented_infobip_email_payloads_and_email_view(app: RunningApp) -> None:
    for name in (
        "email-dlr-delivered-seed-002.json",
        "email-tracking-opened-seed-002.json",
        "email-tracking-clicked-seed-002.json",
    ):
        assert app.hook("infobip", "ib", fixture_bytes("infobip", name)).status_code == 202
    app.wait_idle()
    emails = app.api("GET", "/v1/messages", params={"channel": "email"}).json()["items"]
    assert emails, "email reports show in the email view"
    for item in emails:
        assert "@" in item["recipient"] and item["provider_message_id"] and item["created_at"]
    app.assert_no_drift()


def test_an_item_the_store_cannot_hold_does_not_stop_the_others(app: RunningApp) -> None:
    body = json.dumps(
        {
            "results": [
                {"messageId": "OK1", "to": "41793026727", "status": {"groupName": "DELIVERED"}},
                {
                    "messageId": "BAD\u0000",
                    "to": "41793026727",
                    "status": {"groupName": "DELIVERED"},
                },
                {"messageId": "X" * 300, "to": "41793026727", "status": {"groupName": "DELIVERED"}},
            ]
        }
    )
    response = app.hook("infobip", "ib", body)
    assert response.status_code == 202
    app.wait_idle()
    receipt = app.api("GET", f"/v1/receipts/{response.json()['receipt']}").json()
    assert receipt["status"] == "done"
    assert len(receipt["notes"]) == 2
    assert message(app, "ib", "OK1")["state"] == "delivered"
