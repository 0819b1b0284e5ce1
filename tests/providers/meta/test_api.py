"""Sending through Meta's WhatsApp Cloud API: text and template bodies, the wamid, the
callback data our webhook parser reads back, and each kind of Graph API error."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import fixture_json
from tests.fakes.provider_apis import FakeMeta
from tests.fakes.sending import config, shape_problems
from tidings.providers.meta.api import DEFAULT_API_URL, MetaSender
from tidings.providers.meta.webhook import parse
from tidings.providers.send import SendError, SendFailure, SendRequest

NUMBER_ID = "106540352242922"


@pytest.fixture
def fake() -> Iterator[FakeMeta]:
    with FakeMeta(api_key="EAAG-token") as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def sender(fake: FakeMeta, http: httpx.Client, **options: str) -> MetaSender:
    return MetaSender(
        config(
            {
                "api_url": fake.url + "/v24.0",
                "api_key": "EAAG-token",
                "phone_number_id": NUMBER_ID,
                **options,
            }
        ),
        http,
    )


def test_a_text_message_gets_its_wamid(fake: FakeMeta, http: httpx.Client) -> None:
    result = sender(fake, http).send(SendRequest(recipient="+1 650-555-1234", text="Hello"))
    (request,) = fake.requests
    assert request.path == f"/v24.0/{NUMBER_ID}/messages"
    assert request.headers["authorization"] == "Bearer EAAG-token"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"body": "Hello"},
    }
    documented = fixture_json("meta", "send/send-text-request-built.json")
    assert shape_problems(request.json(), documented) == []
    assert result.provider_message_id == "wamid.HBgL" + "1".zfill(24)
    assert result.status == "accepted"


def test_a_template_with_positional_variables(fake: FakeMeta, http: httpx.Client) -> None:
    sender(fake, http).send(
        SendRequest(
            recipient="+16505551234",
            template="order_confirmation",
            language="en_US",
            variables=("Jessica", "#1042"),
        )
    )
    body = fake.requests[0].json()
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "order_confirmation",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Jessica"},
                    {"type": "text", "text": "#1042"},
                ],
            }
        ],
    }
    documented = fixture_json("meta", "send/send-template-request-built.json")
    assert shape_problems(body, documented) == []


def test_a_template_with_named_variables_and_none(fake: FakeMeta, http: httpx.Client) -> None:
    meta = sender(fake, http)
    meta.send(
        SendRequest(
            recipient="+16505551234",
            template="order_confirmation",
            language="pt_BR",
            variables={"customer_name": "Jessica"},
        )
    )
    meta.send(SendRequest(recipient="+16505551234", template="hello_world", language="en_US"))
    named, bare = (r.json()["template"] for r in fake.requests)
    assert named["components"][0]["parameters"] == [
        {"type": "text", "parameter_name": "customer_name", "text": "Jessica"}
    ]
    assert "components" not in bare


def test_campaign_and_contact_come_back_through_the_webhook_parser(
    fake: FakeMeta, http: httpx.Client
) -> None:
    request = SendRequest(
        recipient="+16505551234",
        text="Hi",
        campaign="spring",
        contact_ref="crm-7",
        metadata={"segment": "vip"},
    )
    result = sender(fake, http).send(request)
    opaque = fake.requests[0].json()["biz_opaque_callback_data"]
    assert json.loads(opaque) == {"campaign": "spring", "contact_ref": "crm-7", "segment": "vip"}
    # Meta echoes the string in the status webhook; our parser reads its keys as metadata.
    webhook = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": NUMBER_ID,
                            },
                            "statuses": [
                                {
                                    "id": result.provider_message_id,
                                    "status": "sent",
                                    "timestamp": "1764842400",
                                    "recipient_id": "16505551234",
                                    "biz_opaque_callback_data": opaque,
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    (event,) = parse(json.dumps(webhook).encode(), {})
    assert event.metadata["campaign"] == "spring"  # type: ignore[union-attr]
    assert event.metadata["contact_ref"] == "crm-7"  # type: ignore[union-attr]


def test_callback_data_longer_than_meta_carries_is_refused_before_sending(
    fake: FakeMeta, http: httpx.Client
) -> None:
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(
            SendRequest(recipient="+16505551234", text="Hi", metadata={"note": "x" * 600})
        )
    assert caught.value.kind is SendFailure.INVALID
    assert "at most 512 characters" in str(caught.value)
    assert fake.requests == []


def test_a_template_needs_its_language(fake: FakeMeta, http: httpx.Client) -> None:
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+16505551234", template="hello_world"))
    assert caught.value.kind is SendFailure.INVALID and caught.value.permanent
    assert fake.requests == []


@pytest.mark.parametrize(
    ("refusal", "status", "code", "kind", "permanent", "says"),
    [
        (
            "not_allowed",
            400,
            "131030",
            SendFailure.REFUSED,
            True,
            "(#131030) Recipient phone number not in allowed list: Recipient phone number not "
            "in allowed list: Add recipient phone number to recipient list and try again.",
        ),
        (
            "outside_window",
            400,
            "131047",
            SendFailure.REFUSED,
            True,
            "(#131047) Re-engagement message: Message failed to send because more than 24 "
            "hours have passed since the customer last replied to this number.",
        ),
        (
            "throughput",
            400,
            "130429",
            SendFailure.RATE_LIMITED,
            False,
            "(#130429) Rate limit hit: Cloud API message throughput has been reached.",
        ),
        (
            "unavailable",
            503,
            "131016",
            SendFailure.UNAVAILABLE,
            False,
            "(#131016) Service unavailable: A service is temporarily unavailable. Please retry "
            "your request later.",
        ),
        (
            "bad_parameter",
            400,
            "100",
            SendFailure.INVALID,
            True,
            "(#100) Invalid parameter: Parameter value is not valid: the phone number is not a "
            "valid WhatsApp number format",
        ),
    ],
)
def test_each_documented_error_is_classified_by_its_code(
    fake: FakeMeta,
    http: httpx.Client,
    refusal: str,
    status: int,
    code: str,
    kind: SendFailure,
    permanent: bool,
    says: str,
) -> None:
    fake.refuse(refusal)
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+16505551234", text="Hi"))
    error = caught.value
    assert (error.http_status, error.code, error.kind, error.permanent) == (
        status,
        code,
        kind,
        permanent,
    )
    assert error.provider_message == says
    assert not error.outcome_unknown
    assert error.raw["error"]["fbtrace_id"]
    assert len(fake.requests) == 1  # a 503 without Retry-After is not retried


def test_an_expired_token_is_an_auth_failure(http: httpx.Client) -> None:
    with FakeMeta(api_key="new-token") as fake, pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+16505551234", text="Hi"))
    error = caught.value
    assert (error.http_status, error.code, error.kind) == (401, "190", SendFailure.AUTH)
    assert not error.permanent


def test_the_default_api_url_is_the_versioned_graph_api() -> None:
    assert DEFAULT_API_URL.startswith("https://graph.facebook.com/v")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({}, "the option api_key (the Cloud API access token) and the option phone_number_id"),
        ({"api_key": "t"}, "needs the option phone_number_id (the sending number's id)"),
    ],
)
def test_a_connection_that_cannot_send_says_what_to_set(
    options: dict[str, str], says: str, http: httpx.Client
) -> None:
    with pytest.raises(SendError) as caught:
        MetaSender(config(options), http)
    assert caught.value.kind is SendFailure.CONFIG
    assert says in str(caught.value)
