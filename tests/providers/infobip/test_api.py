"""Sending through Infobip: SMS as JSON and email as multipart, both with `notifyUrl` and a
`callbackData` the webhook parser reads back, tidings' own messageId for idempotent sends,
refusals inside a 200 answer, and Infobip's error bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import fixture_json
from tests.fakes.provider_apis import FakeInfobip
from tests.fakes.sending import config, shape_problems
from tidings.providers.infobip.api import InfobipSender, message_id_for
from tidings.providers.infobip.callback_data import callback_metadata
from tidings.providers.infobip.webhook import parse
from tidings.providers.send import SendError, SendFailure, SendRequest

INTAKE = "https://tidings.example.com/hooks/infobip/mail?token=s3cret"


@pytest.fixture
def fake() -> Iterator[FakeInfobip]:
    with FakeInfobip(api_key="ib-key") as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def sender(
    fake: FakeInfobip, http: httpx.Client, sender_from: str = "InfoSMS", **options: str
) -> InfobipSender:
    return InfobipSender(
        config(
            {"api_url": fake.url, "api_key": "ib-key", "from": sender_from, **options},
            callback_url=INTAKE,
        ),
        http,
    )


def test_an_sms_carries_notify_url_and_callback_data(fake: FakeInfobip, http: httpx.Client) -> None:
    request = SendRequest(
        recipient="+41 79 302 67 27",
        text="This is a sample message",
        campaign="summersale",
        contact_ref="crm-9",
        idempotency_key="k-1",
    )
    result = sender(fake, http).send(request)
    (sent,) = fake.requests
    assert sent.path == "/sms/2/text/advanced"
    assert sent.headers["authorization"] == "App ib-key"
    assert sent.json() == {
        "messages": [
            {
                "destinations": [{"to": "41793026727", "messageId": message_id_for("k-1")}],
                "from": "InfoSMS",
                "text": "This is a sample message",
                "notifyUrl": INTAKE,
                "notifyContentType": "application/json",
                "callbackData": '{"campaign":"summersale","contact_ref":"crm-9"}',
            }
        ]
    }
    documented = fixture_json("infobip", "send/sms-send-request-built.json")
    assert shape_problems(sent.json(), documented) == []
    assert result.provider_message_id == message_id_for("k-1")
    assert result.status == "PENDING_ACCEPTED"


def test_callback_data_comes_back_through_the_webhook_parser(
    fake: FakeInfobip, http: httpx.Client
) -> None:
    request = SendRequest(
        recipient="+41793026727",
        text="Hi",
        campaign="summersale",
        contact_ref="crm-9",
        metadata={"segment": "vip"},
    )
    result = sender(fake, http, campaign_key="camp").send(request)
    callback = fake.requests[0].json()["messages"][0]["callbackData"]
    assert callback_metadata(callback) == {
        "camp": "summersale",
        "contact_ref": "crm-9",
        "segment": "vip",
    }
    report = fixture_json("infobip", "sms-delivery-report-v3-delivered.json")
    report["results"][0].update(messageId=result.provider_message_id, callbackData=callback)
    (event,) = parse(json.dumps(report).encode(), {})
    assert event.metadata["camp"] == "summersale"  # type: ignore[union-attr]


def test_the_same_idempotency_key_names_the_same_message(
    fake: FakeInfobip, http: httpx.Client
) -> None:
    infobip = sender(fake, http)
    first = infobip.send(SendRequest(recipient="+41793026727", text="Hi", idempotency_key="k"))
    again = infobip.send(SendRequest(recipient="+41793026727", text="Hi", idempotency_key="k"))
    other = infobip.send(SendRequest(recipient="+41793026727", text="Hi", idempotency_key="j"))
    assert first.provider_message_id == again.provider_message_id != other.provider_message_id
    assert len(message_id_for("k")) == 40


def test_a_time_out_names_the_message_id_tidings_chose(
    fake: FakeInfobip, http: httpx.Client
) -> None:
    fake.hang()
    infobip = InfobipSender(config({"api_url": fake.url, "api_key": "ib-key"}, timeout=0.3), http)
    with pytest.raises(SendError) as caught:
        infobip.send(SendRequest(recipient="+41793026727", text="Hi", idempotency_key="k-7"))
    assert caught.value.outcome_unknown
    assert caught.value.provider_message_id == message_id_for("k-7")


def test_an_email_is_multipart_with_subject_and_callback(
    fake: FakeInfobip, http: httpx.Client
) -> None:
    request = SendRequest(
        recipient="john.smith@example.com",
        text="Mail body text",
        subject="Mail subject text",
        campaign="news",
        idempotency_key="m-1",
    )
    result = sender(fake, http, "Jane Smith <jane.smith@example.com>").send(request)
    (sent,) = fake.requests
    assert sent.path == "/email/3/send"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert sent.multipart() == [
        ("from", "Jane Smith <jane.smith@example.com>", None),
        ("to", "john.smith@example.com", None),
        ("subject", "Mail subject text", None),
        ("text", "Mail body text", None),
        ("messageId", message_id_for("m-1"), None),
        ("notifyUrl", INTAKE, None),
        ("notifyContentType", "application/json", None),
        ("callbackData", '{"campaign":"news"}', None),
    ]
    assert result.provider_message_id == message_id_for("m-1")


@pytest.mark.parametrize(
    ("request_", "options", "says"),
    [
        (
            SendRequest(recipient="a@example.com", text="x", subject="s"),
            {},
            "--option from=ADDRESS",
        ),
        (
            SendRequest(recipient="a@example.com", text="x"),
            {"from": "me@example.com"},
            "needs a subject",
        ),
        (SendRequest(recipient="+41793026727", template="t"), {}, "give text instead"),
    ],
)
def test_what_infobip_cannot_send_is_refused_before_any_request(
    fake: FakeInfobip,
    http: httpx.Client,
    request_: SendRequest,
    options: dict[str, str],
    says: str,
) -> None:
    infobip = InfobipSender(config({"api_url": fake.url, "api_key": "ib-key", **options}), http)
    with pytest.raises(SendError) as caught:
        infobip.send(request_)
    assert says in str(caught.value)
    assert fake.requests == []


def test_a_rejected_destination_in_a_200_answer_is_a_permanent_refusal(
    fake: FakeInfobip, http: httpx.Client
) -> None:
    fake.refuse("rejected_destination")
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+41793026727", text="Hi"))
    error = caught.value
    assert (error.http_status, error.code, error.kind, error.permanent) == (
        200,
        "REJECTED_DESTINATION",
        SendFailure.REFUSED,
        True,
    )
    assert error.provider_message == "Destination address is not valid"
    assert error.provider_message_id == "3350be2d4219-3af1-23343-bbbb-1362af1edfd3"


def test_no_credits_is_a_refusal_about_the_account_not_the_message(
    fake: FakeInfobip, http: httpx.Client
) -> None:
    fake.refuse("rejected_credits")
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+41793026727", text="Hi"))
    assert caught.value.code == "REJECTED_NOT_ENOUGH_CREDITS"
    assert not caught.value.permanent


@pytest.mark.parametrize(
    ("refusal", "status", "code", "kind", "permanent", "says"),
    [
        (
            "bad_request",
            400,
            "BAD_REQUEST",
            SendFailure.INVALID,
            True,
            "Bad Request (messages[0].destinations: must not be empty)",
        ),
        (
            "general_error",
            500,
            "GENERAL_ERROR",
            SendFailure.UNAVAILABLE,
            False,
            "Something went wrong. Please contact support.",
        ),
    ],
)
def test_each_documented_error(
    fake: FakeInfobip,
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
        sender(fake, http).send(SendRequest(recipient="+41793026727", text="Hi"))
    error = caught.value
    assert (error.http_status, error.code, error.kind, error.permanent) == (
        status,
        code,
        kind,
        permanent,
    )
    assert error.provider_message == says


def test_wrong_key_is_unauthorized(http: httpx.Client) -> None:
    with FakeInfobip(api_key="other") as fake, pytest.raises(SendError) as caught:
        sender(fake, http).send(SendRequest(recipient="+41793026727", text="Hi"))
    error = caught.value
    assert (error.http_status, error.code, error.kind) == (401, "UNAUTHORIZED", SendFailure.AUTH)
    assert error.provider_message == "Invalid login details"


def test_callback_data_over_4000_characters_is_refused(
    fake: FakeInfobip, http: httpx.Client
) -> None:
    with pytest.raises(SendError) as caught:
        sender(fake, http).send(
            SendRequest(recipient="+41793026727", text="Hi", metadata={"n": "x" * 4000})
        )
    assert "at most 4000 characters" in str(caught.value)
    assert fake.requests == []
