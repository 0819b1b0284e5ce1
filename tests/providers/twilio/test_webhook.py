"""Twilio webhook adapter: every fixture, every status, the signature vectors, auth failures."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.providers.fuzzing import parsed_or_payload_error
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import (
    EventKind,
    Ignored,
    NormalizedEvent,
    ParsedItem,
)
from tidings.providers.base import ConnectionAuth, RequestParts
from tidings.providers.twilio import PROVIDER
from tidings.providers.twilio.webhook import parse, verify

FIXTURES = Path(__file__).parents[2] / "fixtures" / "twilio"
FORM = {"content-type": "application/x-www-form-urlencoded"}

TOKEN = "twilio-test-auth-token-0123456789"
CONNECTION = ConnectionAuth(name="sms-main", provider="twilio", secret=TOKEN)
URL = "https://tidings.example.com/hooks/twilio/sms-main"

ACCOUNT = "AC5ef8732a3c49700934481addd5ce1659"
SERVICE = "MG0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def params_of(name: str) -> dict[str, str]:
    return dict(parse_qsl(fixture(name).decode(), keep_blank_values=True, strict_parsing=True))


def parse_fixture(name: str) -> list[ParsedItem]:
    return parse(fixture(name), FORM)


def single(items: list[ParsedItem]) -> NormalizedEvent:
    assert len(items) == 1
    (item,) = items
    assert isinstance(item, NormalizedEvent)
    return item


def form(**params: str) -> bytes:
    return urlencode(params).encode()


def sign(url: str, body: bytes, token: str = TOKEN) -> str:
    """Twilio's documented algorithm, written independently of the adapter."""
    pairs = parse_qsl(body.decode(), keep_blank_values=True)
    signed = url + "".join(name + value for name, value in sorted(set(pairs)))
    digest = hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def request(url: str, body: bytes, signature: str | None) -> RequestParts:
    headers = dict(FORM)
    if signature is not None:
        headers["x-twilio-signature"] = signature
    return RequestParts(
        method="POST",
        url=url,
        query=dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)),
        headers=headers,
        body=body,
    )


def signed_request(body: bytes, url: str = URL) -> RequestParts:
    return request(url, body, sign(url, body))


# --- the provider ---------------------------------------------------------------------------


def test_provider_describes_twilio() -> None:
    assert PROVIDER.name == "twilio"
    assert PROVIDER.channel == "sms"
    assert PROVIDER.body_format == "form"
    assert PROVIDER.token_in_url is False
    assert PROVIDER.auth_scheme == "X-Twilio-Signature (auth token)"
    assert PROVIDER.verify is verify
    assert PROVIDER.parse is parse
    assert PROVIDER.reply(fixture("status-callback-sent-built.txt")) is None


# --- one test per fixture -------------------------------------------------------------------


def test_queued_callback() -> None:
    assert parse_fixture("status-callback-queued-built.txt") == [
        NormalizedEvent(
            provider_message_id="SM1f0e8ae6ade43cb3c0ce4525424e404f",
            kind=EventKind.QUEUED,
            raw_status="queued",
            occurred_at=None,
            channel="sms",
            recipient="+15558675310",
            details=params_of("status-callback-queued-built.txt"),
        )
    ]


def test_sent_callback() -> None:
    assert parse_fixture("status-callback-sent-built.txt") == [
        NormalizedEvent(
            provider_message_id="SM1f0e8ae6ade43cb3c0ce4525424e404f",
            kind=EventKind.SENT,
            raw_status="sent",
            channel="sms",
            recipient="+15558675310",
            details=params_of("status-callback-sent-built.txt"),
        )
    ]


def test_delivered_callback_keeps_every_parameter_in_details() -> None:
    assert parse_fixture("status-callback-delivered-built.txt") == [
        NormalizedEvent(
            provider_message_id="SM1f0e8ae6ade43cb3c0ce4525424e404f",
            kind=EventKind.DELIVERED,
            raw_status="delivered",
            channel="sms",
            recipient="+15558675310",
            details={
                "SmsSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
                "SmsStatus": "delivered",
                "MessageStatus": "delivered",
                "To": "+15558675310",
                "MessagingServiceSid": SERVICE,
                "MessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
                "AccountSid": ACCOUNT,
                "From": "+15017122661",
                "ApiVersion": "2010-04-01",
            },
        )
    ]


def test_whatsapp_read_callback() -> None:
    assert parse_fixture("status-callback-read-whatsapp-built.txt") == [
        NormalizedEvent(
            provider_message_id="SM3c7b5b1d2e0f4a9c8d7e6f5a4b3c2d1e",
            kind=EventKind.READ,
            raw_status="read",
            channel="whatsapp",
            recipient="+5511987654321",
            details=params_of("status-callback-read-whatsapp-built.txt"),
        )
    ]


def test_undelivered_30003_is_a_failure_after_send() -> None:
    assert parse_fixture("status-callback-undelivered-30003-built.txt") == [
        NormalizedEvent(
            provider_message_id="SMb2e4c6a8d0f24e6a8c0e2a4c6e8a0c2e",
            kind=EventKind.FAILED,
            raw_status="undelivered",
            channel="sms",
            recipient="+447700900123",
            failure_code="30003",
            failure_reason="Twilio error 30003: Unreachable destination handset",
            after_send=True,
            details={
                "ErrorCode": "30003",
                "SmsSid": "SMb2e4c6a8d0f24e6a8c0e2a4c6e8a0c2e",
                "SmsStatus": "undelivered",
                "MessageStatus": "undelivered",
                "To": "+447700900123",
                "MessagingServiceSid": SERVICE,
                "MessageSid": "SMb2e4c6a8d0f24e6a8c0e2a4c6e8a0c2e",
                "AccountSid": ACCOUNT,
                "From": "+15017122661",
                "ApiVersion": "2010-04-01",
            },
        )
    ]


def test_whatsapp_failed_63016_is_a_failure_before_send() -> None:
    assert parse_fixture("status-callback-failed-whatsapp-63016-built.txt") == [
        NormalizedEvent(
            provider_message_id="SM9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a",
            kind=EventKind.FAILED,
            raw_status="failed",
            channel="whatsapp",
            recipient="+31612345678",
            failure_code="63016",
            failure_reason=(
                "Twilio error 63016: Outside the allowed messaging window "
                "(for WhatsApp, use a Message Template)"
            ),
            after_send=False,
            details=params_of("status-callback-failed-whatsapp-63016-built.txt"),
        )
    ]


def test_canceled_callback_is_a_failure_before_send() -> None:
    assert parse_fixture("status-callback-canceled-built.txt") == [
        NormalizedEvent(
            provider_message_id="SM4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a",
            kind=EventKind.FAILED,
            raw_status="canceled",
            channel="sms",
            recipient="+15558675310",
            failure_code=None,
            failure_reason="Twilio: the scheduled message was canceled before it was sent",
            after_send=False,
            details=params_of("status-callback-canceled-built.txt"),
        )
    ]


def test_incoming_message_is_ignored() -> None:
    assert parse_fixture("incoming-message-received-built.txt") == [
        Ignored("inbound message status")
    ]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*-built.txt")))
def test_every_built_fixture_verifies_when_signed(name: str) -> None:
    verify(signed_request(fixture(name)), CONNECTION)


# --- statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "after_send"),
    [
        ("accepted", EventKind.QUEUED, False),
        ("scheduled", EventKind.QUEUED, False),
        ("queued", EventKind.QUEUED, False),
        ("sending", EventKind.QUEUED, False),
        ("sent", EventKind.SENT, False),
        ("delivered", EventKind.DELIVERED, False),
        ("read", EventKind.READ, False),
        ("undelivered", EventKind.FAILED, True),
        ("failed", EventKind.FAILED, False),
        ("canceled", EventKind.FAILED, False),
        ("Delivered", EventKind.DELIVERED, False),
        (" sent ", EventKind.SENT, False),
        ("partially_delivered", EventKind.UNKNOWN, False),
        ("bounced", EventKind.UNKNOWN, False),
    ],
)
def test_status_mapping(status: str, kind: EventKind, after_send: bool) -> None:
    event = single(parse(form(MessageSid="SM1", MessageStatus=status, To="+15558675310"), FORM))
    assert (event.provider_message_id, event.kind, event.raw_status) == ("SM1", kind, status)
    assert event.after_send is after_send
    assert event.occurred_at is None
    assert (event.failure_reason is not None) is (kind is EventKind.FAILED)


@pytest.mark.parametrize("status", ["received", "receiving", "RECEIVED"])
def test_inbound_statuses_are_ignored(status: str) -> None:
    body = form(MessageSid="SM1", SmsStatus=status, Body="hi", From="+15558675310")
    assert parse(body, FORM) == [Ignored("inbound message status")]


def test_sms_sid_and_sms_status_stand_in_for_the_message_ones() -> None:
    event = single(parse(form(SmsSid=" SM9 ", SmsStatus="delivered"), FORM))
    assert (event.provider_message_id, event.kind) == ("SM9", EventKind.DELIVERED)


def test_message_status_wins_over_sms_status() -> None:
    body = form(MessageSid="SM1", SmsSid="SM1", SmsStatus="sent", MessageStatus="delivered")
    assert single(parse(body, FORM)).kind is EventKind.DELIVERED


def test_blank_message_status_falls_back_to_sms_status() -> None:
    event = single(parse(form(MessageSid="SM1", MessageStatus=" ", SmsStatus="read"), FORM))
    assert (event.kind, event.raw_status) == (EventKind.READ, "read")


@pytest.mark.parametrize(
    ("params", "code", "reason"),
    [
        (
            {"ErrorCode": "30007", "ErrorMessage": " Carrier filtered the message "},
            "30007",
            "Carrier filtered the message",
        ),
        ({"ErrorCode": "30007"}, "30007", "Twilio error 30007: Message filtered"),
        ({"ErrorCode": "30006"}, "30006", "Twilio error 30006: Landline or unreachable carrier"),
        (
            {"ErrorCode": "21610"},
            "21610",
            "Twilio error 21610: Attempt to send to unsubscribed recipient",
        ),
        ({"ErrorCode": " 30008 "}, "30008", "Twilio error 30008"),
        (
            {"ErrorCode": "", "ErrorMessage": ""},
            None,
            "Twilio reported undelivered without an ErrorCode",
        ),
        ({"ErrorMessage": "Queue overflow"}, None, "Queue overflow"),
        ({}, None, "Twilio reported undelivered without an ErrorCode"),
    ],
)
def test_failure_code_and_reason(params: dict[str, str], code: str | None, reason: str) -> None:
    body = form(MessageSid="SM1", MessageStatus="undelivered", **params)
    event = single(parse(body, FORM))
    assert (event.failure_code, event.failure_reason, event.after_send) == (code, reason, True)
    assert event.failure_permanent is None


def test_failed_without_a_code_says_so() -> None:
    event = single(parse(form(MessageSid="SM1", MessageStatus="failed"), FORM))
    assert (event.failure_code, event.failure_reason) == (
        None,
        "Twilio reported failed without an ErrorCode",
    )


def test_error_code_on_a_status_that_is_not_a_failure_stays_in_details_only() -> None:
    event = single(parse(form(MessageSid="SM1", MessageStatus="sent", ErrorCode="30008"), FORM))
    assert (event.kind, event.failure_code, event.failure_reason) == (EventKind.SENT, None, None)
    assert event.details["ErrorCode"] == "30008"


@pytest.mark.parametrize(
    ("params", "channel", "recipient"),
    [
        ({"To": "+15558675310", "From": "+15017122661"}, "sms", "+15558675310"),
        (
            {"To": "whatsapp:+5511987654321", "From": "whatsapp:+14155238886"},
            "whatsapp",
            "+5511987654321",
        ),
        ({"To": " WhatsApp: +5511987654321 "}, "whatsapp", "+5511987654321"),
        ({"To": "+5511987654321", "From": "whatsapp:+14155238886"}, "whatsapp", "+5511987654321"),
        ({"To": "+5511987654321", "ChannelPrefix": "whatsapp"}, "whatsapp", "+5511987654321"),
        ({"To": "MyBrand"}, "sms", "MyBrand"),
        ({"To": "whatsapp:"}, "whatsapp", None),
        ({"To": " "}, "sms", None),
        ({}, "sms", None),
    ],
)
def test_channel_and_recipient(params: dict[str, str], channel: str, recipient: str | None) -> None:
    event = single(parse(form(MessageSid="SM1", MessageStatus="sent", **params), FORM))
    assert (event.channel, event.recipient) == (channel, recipient)


def test_repeated_and_blank_parameters_are_kept_in_details() -> None:
    body = b"MessageSid=SM1&MessageStatus=sent&Tag=a&Tag=b&Tag=a&Empty="
    event = single(parse(body, FORM))
    assert event.details == {
        "MessageSid": "SM1",
        "MessageStatus": "sent",
        "Tag": ["a", "b", "a"],
        "Empty": "",
    }


def test_parameters_twilio_adds_later_are_kept() -> None:
    body = form(MessageSid="SM1", MessageStatus="delivered", RawDlrDoneDate="2406061311")
    assert single(parse(body, FORM)).details["RawDlrDoneDate"] == "2406061311"


def test_non_ascii_values_are_decoded_as_utf8() -> None:
    body = form(MessageSid="SM1", SmsStatus="received", Body="Zażółć gęślą jaźń")
    assert parse(body, FORM) == [Ignored("inbound message status")]
    event = single(parse(form(MessageSid="SM1", MessageStatus="sent", Note="ünï"), {}))
    assert event.details["Note"] == "ünï"


# --- malformed bodies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"", FORM, "body is empty"),
        (b" \r\n", FORM, "body is empty"),
        (b"\xff\xfe\xfa=1", FORM, "body is not UTF-8 text"),
        (b"MessageSid=SM1&MessageStatus=%FF", FORM, "body is not form-encoded"),
        (b"MessageSid=SM1&&MessageStatus=sent", FORM, "body is not form-encoded"),
        (b"MessageSid", FORM, "body is not form-encoded"),
        (
            b'{"MessageSid": "SM1", "MessageStatus": "sent"}',
            {"content-type": "application/json"},
            "Content-Type was 'application/json'; Twilio sends application/x-www-form-urlencoded",
        ),
        (b"MessageSid=SM1", FORM, "no MessageStatus (or SmsStatus) parameter"),
        (b"MessageSid=SM1&MessageStatus=&SmsStatus=+", FORM, "no MessageStatus (or SmsStatus)"),
        (b"MessageStatus=sent", FORM, "no MessageSid (or SmsSid) parameter"),
        (b"MessageSid=+&MessageStatus=sent", FORM, "no MessageSid (or SmsSid) parameter"),
        (b"CallSid=CA1&CallStatus=completed", FORM, "looks like a Voice call callback"),
    ],
)
def test_malformed_bodies_raise_payload_error(
    body: bytes, headers: dict[str, str], message: str
) -> None:
    with pytest.raises(PayloadError, match=r"^twilio: ") as info:
        parse(body, headers)
    assert message in str(info.value)


def test_missing_status_lists_the_parameters_received() -> None:
    with pytest.raises(PayloadError) as info:
        parse(b"MessageSid=SM1&To=%2B1555&AccountSid=AC1", FORM)
    assert "parameters received: AccountSid, MessageSid, To" in str(info.value)
    assert "StatusCallback" in str(info.value)


def test_a_long_parameter_list_is_shortened_in_the_message() -> None:
    body = "&".join(f"P{i:02d}{'x' * 100}=1" for i in range(30)).encode()
    with pytest.raises(PayloadError) as info:
        parse(body, FORM)
    assert str(info.value).endswith(", ...")
    assert len(str(info.value)) < 1000


# --- verify: the published test vectors -----------------------------------------------------


def vectors() -> list[dict[str, str]]:
    """The vectors of signature-test-vectors.txt: `key: value` lines under `## Vector N`."""
    text = (FIXTURES / "signature-test-vectors.txt").read_text()
    found: list[dict[str, str]] = []
    for block in text.split("\n## Vector ")[1:]:
        fields: dict[str, str] = {}
        for line in block.splitlines()[1:]:
            key, separator, value = line.partition(": ")
            if separator and not line.startswith("#"):
                fields[key] = value
        found.append(fields)
    return found


VECTORS = vectors()
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_BODY = (
    b"CallSid=CA1234567890ABCDE&Digits=1234&From=%2B14158675309&To=%2B18005551212"
    b"&Caller=%2B14158675309"
)


def vector_connection(token: str = "12345") -> ConnectionAuth:
    return ConnectionAuth(name="vectors", provider="twilio", secret=token)


def test_the_vectors_file_holds_three_vectors() -> None:
    assert [sorted(v) for v in VECTORS] == [
        ["X-Twilio-Signature", "auth_token", "body", "content-type", "url"],
        ["X-Twilio-Signature", "auth_token", "body", "url"],
        ["X-Twilio-Signature", "auth_token", "body", "url"],
    ]
    assert VECTORS[0]["url"] == VECTOR_URL
    assert VECTORS[0]["body"].encode() == VECTOR_BODY


@pytest.mark.parametrize("index", range(3))
def test_published_vector_verifies(index: int) -> None:
    vector = VECTORS[index]
    parts = request(vector["url"], vector["body"].encode(), vector["X-Twilio-Signature"])
    verify(parts, vector_connection(vector["auth_token"]))


@pytest.mark.parametrize("index", range(3))
def test_published_vector_fails_with_another_token(index: int) -> None:
    vector = VECTORS[index]
    parts = request(vector["url"], vector["body"].encode(), vector["X-Twilio-Signature"])
    with pytest.raises(SignatureError, match="wrong X-Twilio-Signature"):
        verify(parts, vector_connection("54321"))


def test_repeated_names_sign_their_distinct_values_sorted() -> None:
    # Vector 2 sends Digits=5678&Digits=1234&Digits=1234 and signs Digits1234Digits5678.
    vector = VECTORS[1]
    reordered = b"Digits=1234&Sid=CA123&Digits=5678&SidAccount=AC123"
    verify(request(vector["url"], reordered, vector["X-Twilio-Signature"]), vector_connection())
    fewer = b"Sid=CA123&SidAccount=AC123&Digits=5678"
    with pytest.raises(SignatureError):
        verify(request(vector["url"], fewer, vector["X-Twilio-Signature"]), vector_connection())


def test_json_body_with_a_changed_body_fails_the_body_hash() -> None:
    vector = VECTORS[2]
    parts = request(
        vector["url"], b'{"property": "other", "boolean": true}', vector["X-Twilio-Signature"]
    )
    with pytest.raises(SignatureError, match="body does not match the bodySHA256"):
        verify(parts, vector_connection())


def test_json_body_with_a_changed_hash_in_the_url_fails_the_signature() -> None:
    vector = VECTORS[2]
    body = b'{"property": "other", "boolean": true}'
    url = VECTOR_URL + "&bodySHA256=" + hashlib.sha256(body).hexdigest()
    with pytest.raises(SignatureError, match="wrong X-Twilio-Signature"):
        verify(request(url, body, vector["X-Twilio-Signature"]), vector_connection())


# --- verify: port tolerance (signatures from the vectors file's comments) --------------------


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        # Twilio signed https://mycompany.com:443/..., we were called without the port.
        (VECTOR_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        # Twilio signed without the port, we see :443.
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        # http: signed with :80, seen without.
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        # A non-default port signed and seen as it is.
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        ("HTTPS://mycompany.com:443/myapp.php?foo=1&bar=2", None),
    ],
)
def test_default_ports_are_tolerated(url: str, signature: str | None) -> None:
    signature = signature or sign(url.replace(":443", ""), VECTOR_BODY, "12345")
    verify(request(url, VECTOR_BODY, signature), vector_connection())


def test_http_signed_without_port_is_accepted_with_port_80() -> None:
    url = "http://mycompany.com:80/myapp.php?foo=1&bar=2"
    signature = sign("http://mycompany.com/myapp.php?foo=1&bar=2", VECTOR_BODY, "12345")
    verify(request(url, VECTOR_BODY, signature), vector_connection())


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        # Unlike twilio-python, a non-default port is never dropped...
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        # ...nor added.
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        # The other scheme's default port is not this one's.
        ("https://mycompany.com:80/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        # The scheme is signed too.
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ],
)
def test_other_ports_and_schemes_are_not_tolerated(url: str, signature: str) -> None:
    with pytest.raises(SignatureError, match="wrong X-Twilio-Signature"):
        verify(request(url, VECTOR_BODY, signature), vector_connection())


@pytest.mark.parametrize(
    "authority",
    ["user:pass@tidings.example.com", "[2001:db8::1]", "127.0.0.1", "tidings.example.com"],
)
def test_port_tolerance_keeps_userinfo_and_ip_literals(authority: str) -> None:
    body = fixture("status-callback-sent-built.txt")
    seen = f"https://{authority}/hooks/twilio/sms-main?x=1"
    signed_with_port = f"https://{authority}:443/hooks/twilio/sms-main?x=1"
    verify(request(seen, body, sign(signed_with_port, body)), CONNECTION)
    verify(request(signed_with_port, body, sign(seen, body)), CONNECTION)


# --- verify: failures -----------------------------------------------------------------------


def test_signed_callback_verifies() -> None:
    verify(signed_request(fixture("status-callback-delivered-built.txt")), CONNECTION)


def test_wrong_token_is_rejected() -> None:
    body = fixture("status-callback-delivered-built.txt")
    with pytest.raises(SignatureError, match="wrong X-Twilio-Signature") as info:
        verify(request(URL, body, sign(URL, body, "another-auth-token")), CONNECTION)
    message = str(info.value)
    assert "'sms-main'" in message
    assert URL in message
    assert "TIDINGS_PUBLIC_URL" in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    "tampered",
    [
        b"MessageStatus=delivered",
        b"MessageStatus=read",
        b"ErrorCode=30003",
    ],
)
def test_tampered_body_is_rejected(tampered: bytes) -> None:
    body = fixture("status-callback-sent-built.txt")
    signature = sign(URL, body)
    changed = body.replace(b"MessageStatus=sent", tampered)
    assert changed != body
    with pytest.raises(SignatureError, match="wrong X-Twilio-Signature"):
        verify(request(URL, changed, signature), CONNECTION)


def test_an_added_parameter_is_rejected() -> None:
    body = fixture("status-callback-sent-built.txt")
    with pytest.raises(SignatureError, match="wrong X-Twilio-Signature"):
        verify(request(URL, body + b"&Extra=1", sign(URL, body)), CONNECTION)


@pytest.mark.parametrize(
    "seen",
    [
        "https://tidings.example.com/hooks/twilio/other",
        "https://tidings.example.com/hooks/twilio/sms-main?x=1",
        "https://evil.example.com/hooks/twilio/sms-main",
        "http://tidings.example.com/hooks/twilio/sms-main",
        "https://tidings.example.com/hooks/twilio/sms-main/",
    ],
)
def test_tampered_url_is_rejected(seen: str) -> None:
    body = fixture("status-callback-sent-built.txt")
    with pytest.raises(SignatureError, match="wrong X-Twilio-Signature"):
        verify(request(seen, body, sign(URL, body)), CONNECTION)


def test_the_query_string_is_signed() -> None:
    body = fixture("status-callback-sent-built.txt")
    url = URL + "?campaign=spring"
    verify(request(url, body, sign(url, body)), CONNECTION)
    with pytest.raises(SignatureError):
        verify(request(URL + "?campaign=autumn", body, sign(url, body)), CONNECTION)


@pytest.mark.parametrize("signature", [None, "", "   "])
def test_missing_header_is_rejected(signature: str | None) -> None:
    body = fixture("status-callback-sent-built.txt")
    with pytest.raises(SignatureError, match="missing X-Twilio-Signature header"):
        verify(request(URL, body, signature), CONNECTION)


def test_a_token_in_the_url_is_not_enough() -> None:
    body = fixture("status-callback-sent-built.txt")
    url = f"{URL}?token={TOKEN}"
    with pytest.raises(SignatureError, match="missing X-Twilio-Signature header"):
        verify(request(url, body, None), CONNECTION)


def test_a_connection_without_a_secret_rejects_everything() -> None:
    body = fixture("status-callback-sent-built.txt")
    empty = ConnectionAuth(name="sms-main", provider="twilio", secret="")
    with pytest.raises(SignatureError, match="no auth token"):
        verify(request(URL, body, sign(URL, body, "")), empty)


def test_garbage_signature_is_rejected() -> None:
    body = fixture("status-callback-sent-built.txt")
    with pytest.raises(SignatureError, match="wrong X-Twilio-Signature"):
        verify(request(URL, body, "not base64 ✓"), CONNECTION)


def test_a_body_that_is_not_utf8_fails_only_the_signature() -> None:
    body = b"MessageSid=SM1&MessageStatus=\xff"
    with pytest.raises(SignatureError, match="wrong X-Twilio-Signature"):
        verify(request(URL, body, sign(URL, b"MessageSid=SM1&MessageStatus=sent")), CONNECTION)


# --- properties -----------------------------------------------------------------------------

PARAM_NAMES = st.sampled_from(
    [
        "MessageSid",
        "SmsSid",
        "MessageStatus",
        "SmsStatus",
        "To",
        "From",
        "ErrorCode",
        "ErrorMessage",
        "ChannelPrefix",
        "CallSid",
    ]
) | st.text(max_size=8)
PARAM_VALUES = st.sampled_from(
    ["queued", "sent", "undelivered", "failed", "canceled", "received", "whatsapp:+1", "30003"]
) | st.text(max_size=12)


def assert_parses_or_payload_error(body: bytes) -> None:
    parsed_or_payload_error(parse, body, FORM)


@given(st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=8))
def test_arbitrary_forms_raise_only_payload_error(pairs: list[tuple[str, str]]) -> None:
    assert_parses_or_payload_error(urlencode(pairs).encode())


@given(st.binary(max_size=200), st.text(max_size=40), st.text(max_size=60))
def test_verify_raises_only_signature_error(body: bytes, signature: str, path: str) -> None:
    url = "https://tidings.example.com/" + path
    try:
        verify(request(url, body, signature), CONNECTION)
    except SignatureError:
        return
    raise AssertionError("an arbitrary signature verified")


@given(st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=8))
def test_any_form_signed_with_the_token_verifies(pairs: list[tuple[str, str]]) -> None:
    body = urlencode(pairs).encode()
    verify(signed_request(body), CONNECTION)
