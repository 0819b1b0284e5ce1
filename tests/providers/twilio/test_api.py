"""Sending through Twilio's Messages API: the form body with `StatusCallback`, Basic auth,
WhatsApp senders, Messaging Services, Content templates, and Twilio's error answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest

from tests.conftest import fixture_bytes
from tests.fakes.provider_apis import FakeTwilio
from tests.fakes.sending import config
from tidings.providers.send import SendError, SendFailure, SendRequest
from tidings.providers.twilio.api import TwilioSender

SID = "AC" + "0" * 31 + "1"
INTAKE = "https://tidings.example.com/hooks/twilio/sms"
DOCUMENTED_FIELDS = set(
    parse_qs(fixture_bytes("twilio", "send/message-create-request-built.txt").decode().strip())
)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=SID, token="tw-token") as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def sender(fake: FakeTwilio, http: httpx.Client, sender_from: str = "+15017122661") -> TwilioSender:
    return TwilioSender(
        config(
            {"api_url": fake.url, "account_sid": SID, "from": sender_from},
            secret="tw-token",
            callback_url=INTAKE,
        ),
        http,
    )


def test_an_sms_goes_as_a_form_with_the_intake_url_as_status_callback(
    fake: FakeTwilio, http: httpx.Client
) -> None:
    result = sender(fake, http).send(
        SendRequest(recipient="+15558675310", text="Join Earth's mightiest heroes.")
    )
    (request,) = fake.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form() == {
        "To": "+15558675310",
        "From": "+15017122661",
        "Body": "Join Earth's mightiest heroes.",
        "StatusCallback": INTAKE,
    }
    assert set(request.form()) <= DOCUMENTED_FIELDS
    assert result.provider_message_id == f"SM{1:032x}"
    assert result.status == "queued"
    assert result.http_status == 201


def test_a_whatsapp_sender_prefixes_the_recipient(fake: FakeTwilio, http: httpx.Client) -> None:
    sender(fake, http, "whatsapp:+14155238886").send(
        SendRequest(recipient="+15558675310", text="Hi")
    )
    form = fake.requests[0].form()
    assert (form["From"], form["To"]) == ("whatsapp:+14155238886", "whatsapp:+15558675310")


def test_a_messaging_service_is_named_as_such(fake: FakeTwilio, http: httpx.Client) -> None:
    service = "MG" + "a" * 32
    sender(fake, http, service).send(SendRequest(recipient="+15558675310", text="Hi"))
    form = fake.requests[0].form()
    assert form["MessagingServiceSid"] == service
    assert "From" not in form


def test_a_template_is_a_content_sid_with_numbered_variables(
    fake: FakeTwilio, http: httpx.Client
) -> None:
    sender(fake, http).send(
        SendRequest(
            recipient="+15558675310", template="HX" + "b" * 32, variables=("Jessica", "#1042")
        )
    )
    form = fake.requests[0].form()
    assert form["ContentSid"] == "HX" + "b" * 32
    assert json.loads(form["ContentVariables"]) == {"1": "Jessica", "2": "#1042"}
    assert "Body" not in form
    assert set(form) <= DOCUMENTED_FIELDS


@pytest.mark.parametrize(
    ("refusal", "code", "kind", "permanent", "says"),
    [
        (
            "invalid_to",
            "21211",
            SendFailure.REFUSED,
            True,
            "The 'To' number 5551234567 is not a valid phone number.",
        ),
        (
            "unsubscribed",
            "21610",
            SendFailure.REFUSED,
            True,
            "Attempt to send to unsubscribed recipient",
        ),
        (
            "bad_from",
            "21606",
            SendFailure.CONFIG,
            False,
            "The From phone number +15017122661 is not a valid, SMS-capable inbound phone "
            "number or short code for your account.",
        ),
    ],
)
def test_each_documented_error(
    fake: FakeTwilio,
    http: httpx.Client,
    refusal: str,
    code: str,
    kind: SendFailure,
    permanent: bool,
    says: str,
) -> None:
    fake.refuse(refusal)
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+15558675310", text="Hi"))
    error = caught.value
    assert (error.http_status, error.code, error.kind, error.permanent) == (
        400,
        code,
        kind,
        permanent,
    )
    assert error.provider_message == says
    assert error.raw["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


def test_wrong_credentials_are_twilio_20003(http: httpx.Client) -> None:
    with (
        FakeTwilio(account_sid=SID, token="the-real-one") as fake,
        pytest.raises(SendError) as caught,
    ):
        sender(fake, http).send(SendRequest(recipient="+15558675310", text="Hi"))
    error = caught.value
    assert (error.http_status, error.code, error.kind) == (401, "20003", SendFailure.AUTH)
    assert error.provider_message == "Authenticate"


def test_a_rate_limit_says_20429(fake: FakeTwilio, http: httpx.Client) -> None:
    fake.rate_limit("60")
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+15558675310", text="Hi"))
    error = caught.value
    assert (error.code, error.kind, error.retry_after) == ("20429", SendFailure.RATE_LIMITED, 60.0)


def test_without_a_callback_url_no_status_callback_is_sent(
    fake: FakeTwilio, http: httpx.Client
) -> None:
    TwilioSender(
        config(
            {"api_url": fake.url + "/2010-04-01", "account_sid": SID, "from": "+15017122661"},
            secret="tw-token",
        ),
        http,
    ).send(SendRequest(recipient="+15558675310", text="Hi"))
    assert "StatusCallback" not in fake.requests[0].form()
    assert fake.requests[0].path == f"/2010-04-01/Accounts/{SID}/Messages.json"


def test_a_connection_that_cannot_send_names_every_missing_setting(http: httpx.Client) -> None:
    with pytest.raises(SendError) as caught:
        TwilioSender(config({}), http)
    message = str(caught.value)
    assert caught.value.kind is SendFailure.CONFIG
    for needed in ("--option account_sid=AC...", "--secret", "--option from=NUMBER"):
        assert needed in message
