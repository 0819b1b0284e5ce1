"""`POST /v1/messages` with `"send": true`, end to end: a running app sends through a fake
provider (a real local HTTP server in the provider's format), registers the id the provider
returned, and the provider's status webhook that follows moves that same message."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningApp
from tests.e2e.payloads import callbell_status, evolution_update
from tests.e2e.test_providers import (
    META_SECRET,
    TWILIO_TOKEN,
    infobip_report,
    meta_post,
    meta_status,
    twilio_post,
)
from tests.fakes.provider_apis import (
    FakeCallbell,
    FakeEvolution,
    FakeInfobip,
    FakeMeta,
    FakeProviderApi,
    FakeTwilio,
)

Deliver = Callable[[RunningApp, str], httpx.Response]


def _evolution(app: RunningApp, pmid: str) -> httpx.Response:
    return app.hook("evolution", "evo", evolution_update(pmid, "DELIVERY_ACK"))


def _callbell(app: RunningApp, pmid: str) -> httpx.Response:
    return app.hook("callbell", "cb", callbell_status(pmid, "delivered"))


def _meta(app: RunningApp, pmid: str) -> httpx.Response:
    return meta_post(app, meta_status(pmid, "delivered", 1_900_000_000))


def _twilio(app: RunningApp, pmid: str) -> httpx.Response:
    params = {
        "MessageSid": pmid,
        "MessageStatus": "delivered",
        "To": "+15558675310",
        "AccountSid": "AC1",
    }
    return twilio_post(app, params)


def _infobip(app: RunningApp, pmid: str) -> httpx.Response:
    return app.hook("infobip", "ib", infobip_report(pmid, "DELIVERED", "spring"))


# provider: (connection name, fake, options given the fake, secret, recipient, deliver)
PROVIDERS: dict[
    str, tuple[str, type[FakeProviderApi], Callable[[Any], dict[str, str]], str, str, Deliver]
] = {
    "evolution": (
        "evo",
        FakeEvolution,
        lambda f: {"api_url": f.url, "api_key": f.api_key},
        "s3cret",
        "+55 31 98296-8010",
        _evolution,
    ),
    "callbell": (
        "cb",
        FakeCallbell,
        lambda f: {"api_url": f.url, "api_key": f.api_key},
        "s3cret",
        "+31612345678",
        _callbell,
    ),
    "meta": (
        "wa",
        FakeMeta,
        lambda f: {
            "api_url": f.url + "/v24.0",
            "api_key": f.api_key,
            "phone_number_id": "106540352242922",
        },
        META_SECRET,
        "+16505551234",
        _meta,
    ),
    "twilio": (
        "tw",
        FakeTwilio,
        lambda f: {"api_url": f.url, "account_sid": f.account_sid, "from": "+15017122661"},
        TWILIO_TOKEN,
        "+15558675310",
        _twilio,
    ),
    "infobip": (
        "ib",
        FakeInfobip,
        lambda f: {
            "api_url": f.url,
            "api_key": f.api_key,
            "from": "InfoSMS",
            "campaign_key": "campaign",
        },
        "s3cret",
        "+41793026727",
        _infobip,
    ),
}


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeProviderApi]]:
    made: dict[str, FakeProviderApi] = {}
    try:
        for provider, (_, fake_type, *_rest) in PROVIDERS.items():
            fake = fake_type() if fake_type is not FakeTwilio else FakeTwilio(token=TWILIO_TOKEN)
            made[provider] = fake
        yield made
    finally:
        for fake in made.values():
            fake.close()


@pytest.fixture
def app(running_app: RunningApp, fakes: dict[str, FakeProviderApi]) -> RunningApp:
    for provider, (name, _, options, secret, _r, _d) in PROVIDERS.items():
        running_app.add_connection(provider, name, secret=secret, **options(fakes[provider]))
    return running_app


def send(app: RunningApp, key: str | None = None, **body: Any) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return app.api("POST", "/v1/messages", json={"send": True, **body}, headers=headers)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_send_registers_the_providers_id_and_its_webhook_moves_that_message(
    app: RunningApp, fakes: dict[str, FakeProviderApi], provider: str
) -> None:
    name, _, _, _, recipient, deliver = PROVIDERS[provider]
    fake = fakes[provider]
    body = {
        "connection": name,
        "recipient": recipient,
        "text": "Hello!",
        "campaign": "spring",
        "contact_ref": "lead-7",
    }
    sent = send(app, "order-1", **body)
    assert sent.status_code == 201, sent.text
    message = sent.json()
    assert len(fake.requests) == 1
    assert message["state"] == "sent"
    assert message["campaign"] == "spring" and message["contact_ref"] == "lead-7"
    assert message["send"]["status"] == "sent" and message["send"]["idempotency_key"] == "order-1"
    pmid = message["provider_message_id"]
    assert pmid and not pmid.startswith("tidings-send-")

    again = send(app, "order-1", **body)
    assert again.status_code == 200 and again.json()["id"] == message["id"]
    assert len(fake.requests) == 1  # the same key sends once

    assert deliver(app, pmid).status_code == 202
    app.wait_idle()
    after = app.api("GET", f"/v1/messages/{message['id']}").json()
    assert after["state"] == "delivered"
    kinds = [e["kind"] for e in after["events"]]
    assert {"sent", "delivered"} <= set(kinds)
    counts = app.api("GET", "/v1/campaigns/spring").json()["counts"]
    assert (counts["total"], counts["sent"], counts["delivered"]) == (1, 1, 1)
    app.assert_no_drift()


def test_a_refused_send_is_a_failed_message_with_the_providers_words(
    app: RunningApp, fakes: dict[str, FakeProviderApi]
) -> None:
    fake = fakes["meta"]
    fake.refuse(next(iter(fake.REFUSALS)))
    refused = send(app, connection="wa", recipient="+16505551234", text="Hi", campaign="spring")
    assert refused.status_code == 201, refused.text
    message = refused.json()
    assert message["state"] == "failed"
    assert message["failure"]["code"] and message["failure"]["reason"]
    assert message["send"]["status"] == "failed"
    assert message["send"]["http_status"] and message["send"]["http_status"] >= 400
    listed = app.api("GET", "/v1/messages", params={"campaign": "spring", "status": "failed"})
    [item] = listed.json()["items"]
    assert item["recipient"] == "+16505551234"
    assert item["send"]["error_message"] == message["send"]["error_message"]
    counts = app.api("GET", "/v1/campaigns/spring").json()["counts"]
    assert (counts["total"], counts["failed"], counts["sent"]) == (1, 1, 0)
    app.assert_no_drift()


def test_no_answer_keeps_the_message_queued_with_a_note_and_never_sends_again(
    app: RunningApp, fakes: dict[str, FakeProviderApi]
) -> None:
    fake = fakes["evolution"]
    fake.drop()
    lost = send(app, "k-lost", connection="evo", recipient="+5531982968010", text="Olá")
    assert lost.status_code == 202, lost.text
    message = lost.json()
    assert message["state"] == "queued"
    assert message["send"]["status"] == "unknown"
    assert message["events"][-1]["kind"] == "unknown"
    again = send(app, "k-lost", connection="evo", recipient="+5531982968010", text="Olá")
    assert again.status_code == 200 and again.json()["id"] == message["id"]
    assert len(fake.requests) == 1


def test_infobip_names_its_message_before_the_answer_so_a_lost_answer_is_settled(
    app: RunningApp, fakes: dict[str, FakeProviderApi]
) -> None:
    fakes["infobip"].drop()
    lost = send(
        app, "ib-1", connection="ib", recipient="+41793026727", text="Hi", campaign="spring"
    )
    assert lost.status_code == 202
    message = lost.json()
    assert not message["provider_message_id"].startswith("tidings-send-")
    assert (
        app.hook(
            "infobip", "ib", infobip_report(message["provider_message_id"], "DELIVERED", "spring")
        ).status_code
        == 202
    )
    app.wait_idle()
    assert app.api("GET", f"/v1/messages/{message['id']}").json()["state"] == "delivered"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"connection": "evo", "recipient": "+5531982968010"}, "needs text or a template"),
        ({"connection": "evo", "text": "x"}, "recipient"),
        (
            {
                "connection": "evo",
                "recipient": "+5531982968010",
                "text": "x",
                "provider_message_id": "A",
            },
            "leave it out",
        ),
        (
            {
                "connection": "evo",
                "recipient": "+5531982968010",
                "text": "x",
                "template": {"name": "t"},
            },
            "not both",
        ),
        ({"connection": "evo", "recipient": "+5531982968010", "txt": "x"}, "txt"),
    ],
)
def test_an_incomplete_send_is_refused_by_name_and_sends_nothing(
    app: RunningApp, fakes: dict[str, FakeProviderApi], body: dict[str, Any], words: str
) -> None:
    answer = send(app, **body)
    assert answer.status_code == 422
    assert words in answer.json()["error"]["message"]
    assert fakes["evolution"].requests == []


def test_a_connection_that_cannot_send_says_which_option_is_missing(app: RunningApp) -> None:
    app.add_connection("callbell", "bare")  # no api_key
    answer = send(app, connection="bare", recipient="+31612345678", text="Hi")
    assert answer.status_code == 422 and "api_key" in answer.json()["error"]["message"]
    app.add_connection("callyzer", "phones")
    answer = send(app, connection="phones", recipient="+31612345678", text="Hi")
    assert answer.status_code == 422 and "cannot send" in answer.json()["error"]["message"]
    assert send(app, connection="nope", recipient="+31612345678", text="Hi").status_code == 404
    listed = app.api("GET", "/v1/messages").json()["items"]
    assert listed == []


def test_registering_without_send_still_needs_the_providers_id(app: RunningApp) -> None:
    answer = app.api("POST", "/v1/messages", json={"connection": "evo", "text": "hi"})
    assert answer.status_code == 422
    assert "provider_message_id" in answer.json()["error"]["message"]
    assert json.loads(answer.text)["error"]["code"]


def test_a_campaign_contacts_key_cannot_be_taken_by_a_request(app: RunningApp) -> None:
    answer = send(app, "campaign:1:contact:1:1", connection="evo",
                  recipient="+5531982968010", text="Hi")  # fmt: skip
    assert answer.status_code == 422 and "campaign:" in answer.json()["error"]["message"]


def test_a_key_used_again_for_another_recipient_or_campaign_is_refused(
    app: RunningApp, fakes: dict[str, FakeProviderApi]
) -> None:
    """A client that reuses a key for a new message must hear so: a 200 would look like
    success while that message is never sent."""
    body = {"connection": "wa", "recipient": "+16505551234", "text": "Hi", "campaign": "spring"}
    assert send(app, "k-1", **body).status_code == 201
    for change in ({"recipient": "+16505550000"}, {"campaign": "autumn"}):
        reused = send(app, "k-1", **{**body, **change})
        assert reused.status_code == 422, reused.text
        error = reused.json()["error"]
        assert error["code"] == "idempotency_key_reused"
        assert f"another {next(iter(change))}" in error["message"]
    assert send(app, "k-1", **body).status_code == 200  # the same message: its answer again
    assert len(fakes["meta"].requests) == 1
