"""Sending through Evolution: the documented v1 and v2 bodies, `key.id`, and each error
Evolution answers with what it means for the message."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import fixture_json
from tests.fakes.provider_apis import Answer, FakeEvolution
from tests.fakes.sending import config, shape_problems
from tidings.providers.evolution.api import EvolutionSender
from tidings.providers.send import SendError, SendFailure, SendRequest

TEXT = SendRequest(recipient="+55 31 98296-8010", text="Olá!", campaign="black-friday")


@pytest.fixture
def fake() -> Iterator[FakeEvolution]:
    with FakeEvolution(api_key="evo-key") as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def sender(fake: FakeEvolution, http: httpx.Client, **options: str) -> EvolutionSender:
    return EvolutionSender(config({"api_url": fake.url, "api_key": "evo-key", **options}), http)


def test_v2_sends_the_documented_body_to_the_instance_and_returns_key_id(
    fake: FakeEvolution, http: httpx.Client
) -> None:
    result = sender(fake, http).send(TEXT)
    (request,) = fake.requests
    assert request.path == "/message/sendText/sales"  # the connection name by default
    assert request.headers["apikey"] == "evo-key"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"number": "5531982968010", "text": "Olá!"}
    documented = fixture_json("evolution", "send/send-text-request-v2.json")
    assert shape_problems(request.json(), documented) == []
    assert result.provider_message_id == "BAE5000000000001"
    assert result.status == "PENDING"
    assert result.http_status == 201
    assert result.raw["key"]["remoteJid"] == "553198296801@s.whatsapp.net"


def test_v1_sends_text_message_text(fake: FakeEvolution, http: httpx.Client) -> None:
    sender(fake, http, api_version="v1", instance="loja 1").send(TEXT)
    (request,) = fake.requests
    assert request.path == "/message/sendText/loja%201"
    assert request.json() == {"number": "5531982968010", "textMessage": {"text": "Olá!"}}
    documented = fixture_json("evolution", "send/send-text-request-v1.json")
    assert shape_problems(request.json(), documented) == []


def test_a_jid_is_sent_as_it_is(fake: FakeEvolution, http: httpx.Client) -> None:
    sender(fake, http).send(SendRequest(recipient="120363025246125244@g.us", text="hi"))
    assert fake.requests[0].json()["number"] == "120363025246125244@g.us"


def test_a_number_not_on_whatsapp_is_a_permanent_refusal(
    fake: FakeEvolution, http: httpx.Client
) -> None:
    fake.refuse("not_on_whatsapp")
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(TEXT)
    error = caught.value
    assert (error.kind, error.http_status, error.code) == (
        SendFailure.REFUSED,
        400,
        "not_on_whatsapp",
    )
    assert error.permanent and not error.outcome_unknown
    assert error.provider_message == ("the number is not on WhatsApp (553198296801@s.whatsapp.net)")
    assert "55********01@s.whatsapp.net" in str(error)  # masked when logged


def test_a_body_evolution_does_not_accept_is_invalid_and_permanent(
    fake: FakeEvolution, http: httpx.Client
) -> None:
    fake.refuse("validation")
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(TEXT)
    error = caught.value
    assert (error.kind, error.code, error.permanent) == (SendFailure.INVALID, "Bad Request", True)
    assert error.provider_message == 'instance requires property "text"'


def test_an_instance_not_connected_to_whatsapp_is_not_permanent(
    fake: FakeEvolution, http: httpx.Client
) -> None:
    fake.refuse("not_connected")
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(TEXT)
    error = caught.value
    assert error.kind is SendFailure.UNAVAILABLE
    assert not error.permanent and not error.outcome_unknown
    assert "not connected to WhatsApp: SessionError: No sessions" in error.reason


def test_a_database_error_after_the_send_leaves_the_outcome_unknown(
    fake: FakeEvolution, http: httpx.Client
) -> None:
    fake.refuse("stored_after_send")
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(TEXT)
    error = caught.value
    assert error.outcome_unknown
    assert error.kind is SendFailure.BAD_ANSWER and error.http_status == 400
    assert error.provider_message is not None
    assert error.provider_message.startswith("PrismaClientKnownRequestError")


def test_an_unknown_instance_points_at_the_connection_options(
    fake: FakeEvolution, http: httpx.Client
) -> None:
    fake.refuse("instance_not_found")
    with pytest.raises(SendError) as caught:
        sender(fake, http, instance="sales").send(TEXT)
    error = caught.value
    assert (error.kind, error.http_status, error.permanent) == (SendFailure.CONFIG, 404, False)
    assert 'The "sales" instance does not exist' in str(error)
    assert "api_url" in str(error)


def test_a_2xx_without_key_id_leaves_the_outcome_unknown(
    fake: FakeEvolution, http: httpx.Client
) -> None:
    fake.answer(Answer(201, {"status": "PENDING"}))
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(TEXT)
    assert caught.value.kind is SendFailure.BAD_ANSWER
    assert caught.value.outcome_unknown


def test_a_template_is_refused_before_any_request(fake: FakeEvolution, http: httpx.Client) -> None:
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+5531982968010", template="promo"))
    assert caught.value.kind is SendFailure.INVALID and caught.value.permanent
    assert fake.requests == []


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({}, "--option api_url=URL"),
        ({"api_url": "http://evo", "api_version": "v3"}, "use v1 or v2"),
    ],
)
def test_a_connection_that_cannot_send_says_what_to_set(
    options: dict[str, str], says: str, http: httpx.Client
) -> None:
    with pytest.raises(SendError) as caught:
        EvolutionSender(config(options), http)
    assert caught.value.kind is SendFailure.CONFIG
    assert says in str(caught.value)
