"""Sending through Callbell: the documented body with `metadata` carrying campaign and
contact, `message.uuid`, templates, and Callbell's error answers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import fixture_json
from tests.fakes.provider_apis import FakeCallbell
from tests.fakes.sending import config, shape_problems
from tidings.providers.callbell.api import CallbellSender
from tidings.providers.send import SendError, SendFailure, SendRequest

CHANNEL = "35f6f8cc-b550-4278-a2ea-099f3a4e0730"


@pytest.fixture
def fake() -> Iterator[FakeCallbell]:
    with FakeCallbell(api_key="cb-token") as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def sender(fake: FakeCallbell, http: httpx.Client, **options: str) -> CallbellSender:
    return CallbellSender(
        config({"api_url": fake.url, "api_key": "cb-token", "from": CHANNEL, **options}), http
    )


def test_sends_the_documented_body_and_returns_the_uuid(
    fake: FakeCallbell, http: httpx.Client
) -> None:
    result = sender(fake, http).send(SendRequest(recipient="+31612345678", text="Hello!"))
    (request,) = fake.requests
    assert request.path == "/v1/messages/send"
    assert request.headers["authorization"] == "Bearer cb-token"
    documented = fixture_json("callbell", "send/send-message-request.json")
    assert request.json() == documented  # the documented example, field for field
    assert result.provider_message_id == f"{1:032x}"
    assert result.status == "enqueued"


def test_campaign_and_contact_travel_in_metadata_under_the_connection_keys(
    fake: FakeCallbell, http: httpx.Client
) -> None:
    request = SendRequest(
        recipient="+31612345678",
        text="Hello!",
        campaign="spring-sale",
        contact_ref="crm-42",
        metadata={"customer_id": "123456"},
    )
    sender(fake, http, campaign_key="camp", contact_ref_key="lead").send(request)
    body = fake.requests[0].json()
    assert body["metadata"] == {"camp": "spring-sale", "lead": "crm-42", "customer_id": "123456"}
    documented = fixture_json("callbell", "send/send-message-request-with-metadata.json")
    # metadata keys are the sender's own: only the rest of the body is held to the example
    without_keys = {**body, "metadata": {}}
    assert shape_problems(without_keys, {**documented, "channel_uuid": CHANNEL}) == []
    assert all(isinstance(v, str) for v in body["metadata"].values())


def test_metadata_uses_campaign_and_contact_ref_when_the_connection_names_no_keys(
    fake: FakeCallbell, http: httpx.Client
) -> None:
    sender(fake, http).send(
        SendRequest(recipient="+31612345678", text="Hi", campaign="c1", contact_ref="r1")
    )
    assert fake.requests[0].json()["metadata"] == {"campaign": "c1", "contact_ref": "r1"}


def test_an_api_url_given_with_v1_is_not_doubled(fake: FakeCallbell, http: httpx.Client) -> None:
    CallbellSender(config({"api_url": fake.url + "/v1/", "api_key": "cb-token"}), http).send(
        SendRequest(recipient="+31612345678", text="Hi")
    )
    assert fake.requests[0].path == "/v1/messages/send"
    assert "channel_uuid" not in fake.requests[0].json()  # the account's main channel


def test_a_template_with_several_variables(fake: FakeCallbell, http: httpx.Client) -> None:
    sender(fake, http).send(
        SendRequest(
            recipient="+31612345678",
            template="d980fb66fd5043d3ace1aa06ba044342",
            variables=("Jack", "template", "Cheers"),
        )
    )
    body = fake.requests[0].json()
    assert body["template_uuid"] == "d980fb66fd5043d3ace1aa06ba044342"
    assert body["optin_contact"] is True
    assert body["content"] == {"text": "Jack"}
    assert body["template_values"] == ["Jack", "template", "Cheers"]


def test_too_much_metadata_is_refused_before_any_request(
    fake: FakeCallbell, http: httpx.Client
) -> None:
    metadata = {f"k{i}": "v" for i in range(10)}  # with the campaign: 11 pairs
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(
            SendRequest(recipient="+31612345678", text="Hi", campaign="c", metadata=metadata)
        )
    assert caught.value.kind is SendFailure.INVALID and caught.value.permanent
    assert "11 metadata pairs (Callbell keeps at most 10)" in str(caught.value)
    assert fake.requests == []


def test_an_empty_wallet_is_a_refusal_that_passes_when_credit_is_added(
    fake: FakeCallbell, http: httpx.Client
) -> None:
    fake.refuse("wallet_depleted")
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+31612345678", template="t1"))
    error = caught.value
    assert (error.http_status, error.code, error.kind) == (
        402,
        "whatsapp_wallet_depleted_credit",
        SendFailure.REFUSED,
    )
    assert not error.permanent
    assert error.provider_message is not None
    assert error.provider_message.startswith("Your WhatsApp wallet is out of credit.")


def test_an_invalid_number_is_a_permanent_refusal(fake: FakeCallbell, http: httpx.Client) -> None:
    fake.refuse("invalid_number")
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+3161234567", text="Hi"))
    error = caught.value
    assert (error.http_status, error.code, error.kind, error.permanent) == (
        422,
        "invalid_phone_number",
        SendFailure.REFUSED,
        True,
    )
    assert error.provider_message == "The phone number +3161234567 is not valid"
    assert "+3161234567" not in str(error) and "+31******67" in str(error)


def test_a_server_error_is_not_permanent(fake: FakeCallbell, http: httpx.Client) -> None:
    fake.refuse("server_error")
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+31612345678", text="Hi"))
    assert caught.value.kind is SendFailure.UNAVAILABLE
    assert not caught.value.permanent and not caught.value.outcome_unknown


def test_a_connection_without_its_token_cannot_send(http: httpx.Client) -> None:
    with pytest.raises(SendError) as caught:
        CallbellSender(config({}), http)
    assert caught.value.kind is SendFailure.CONFIG
    assert "needs the option api_key (the API token" in str(caught.value)
