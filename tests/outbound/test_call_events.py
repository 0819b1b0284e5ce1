"""Call events reach subscribers: a Callyzer call created, updated and matched to its lead
(on arrival, by a lead saved later, or by the retry job), signed and verified like message
events, the client's number masked unless the subscription asked for it."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import RunningApp, fixture_json
from tests.outbound.receiver import Receiver


def _subscribe(app: RunningApp, receiver: Receiver, **body: Any) -> None:
    made = app.api("POST", "/v1/subscriptions", json={"url": receiver.url, **body})
    assert made.status_code == 201, made.text
    receiver.secrets.append(made.json()["secret"])


def _call(call_id: str, **fields: Any) -> bytes:
    call = fixture_json("callyzer", "flat-call-built.json")
    return json.dumps({**call, "id": call_id, **fields}).encode()


def _post(app: RunningApp, body: bytes) -> None:
    answer = app.hook("callyzer", "cz", body)
    assert answer.status_code == 202, answer.text
    app.wait_idle()


def test_a_call_is_announced_created_updated_and_matched(
    running_app: RunningApp, receiver: Receiver
) -> None:
    app = running_app
    app.add_connection("callyzer", "cz", timezone="Asia/Kolkata", region="IN")
    _subscribe(app, receiver, event_types=["call.*"], connection="cz")
    _post(app, _call("c-1"))  # no lead has the number yet: created, waiting
    receiver.wait_for(1)
    saved = app.api(
        "POST",
        "/v1/leads",
        json={"external_id": "L-9", "name": "Ravi", "phones": ["+919123456780"]},
    )
    assert saved.status_code == 201, saved.text  # the lead takes the waiting call at once
    receiver.wait_for(2)
    _post(app, _call("c-1", duration=95, modified_at="2026-07-30 12:30:00 IST"))
    receiver.wait_for(3)
    _post(app, _call("c-1", duration=5, modified_at="2026-07-30 12:10:00 IST"))  # older: silent
    _post(app, _call("c-2"))  # a new call of a known lead: created and matched on arrival
    receiver.wait_for(5)

    by_id = receiver.applied()
    assert len(by_id) == 5 and receiver.unverified == [] and receiver.duplicates() == 0
    seen = sorted(
        (d.payload["type"], d.payload["data"]["provider_call_id"]) for d in by_id.values()
    )
    assert seen == [
        ("call.created", "c-1"),
        ("call.created", "c-2"),
        ("call.matched", "c-1"),
        ("call.matched", "c-2"),
        ("call.updated", "c-1"),
    ]
    payloads = {
        (d.payload["type"], d.payload["data"]["provider_call_id"]): d.payload
        for d in by_id.values()
    }
    created = payloads[("call.created", "c-1")]["data"]
    assert created["lead"] is None and created["employee"] == "EMP-001"
    assert created["connection"] == "cz" and created["type"] == "outgoing"
    assert created["started_at"] == "2026-07-30T06:30:00.000000Z"
    assert created["duration_seconds"] == 30
    assert created["client_number"] != "+919123456780"  # masked: no --include-contact
    assert "56780" not in created["client_number"] or "*" in created["client_number"]
    assert payloads[("call.matched", "c-1")]["data"]["lead"] == "L-9"
    assert payloads[("call.updated", "c-1")]["data"]["duration_seconds"] == 95
    assert payloads[("call.matched", "c-2")]["data"]["lead"] == "L-9"


def test_a_subscription_with_contact_gets_the_number_and_others_get_no_call_events(
    running_app: RunningApp, receiver: Receiver
) -> None:
    app = running_app
    app.add_connection("callyzer", "cz", timezone="Asia/Kolkata", region="IN")
    _subscribe(app, receiver, event_types=["call.created"], include_contact=True)
    _subscribe(app, receiver, event_types=["message.*"])  # wants no call event
    _post(app, _call("c-7"))
    receiver.wait_for(1)
    [delivery] = receiver.received
    assert delivery.payload["type"] == "call.created"
    assert delivery.payload["data"]["client_number"] == "+919123456780"
