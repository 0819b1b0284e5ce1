"""Callbell webhook adapter: every fixture, every status, the connection check, auth."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from tests.providers.fuzzing import json_values, parsed_or_payload_error
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import (
    EventKind,
    Ignored,
    NormalizedEvent,
    ParsedItem,
)
from tidings.providers.base import ConnectionAuth, RequestParts
from tidings.providers.callbell import PROVIDER
from tidings.providers.callbell.webhook import parse, reply, verify
from tidings.providers.registry import get_provider

FIXTURES = Path(__file__).parents[2] / "fixtures" / "callbell"

SECRET = "callbell-test-secret-0123456789"
CONNECTION = ConnectionAuth(
    name="support",
    provider="callbell",
    secret=SECRET,
    options={"auth_header": "x-tidings-token"},
)
OK = (200, {"status": "ok"})


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_bytes())
    return document


def parse_fixture(name: str) -> list[ParsedItem]:
    return parse((FIXTURES / name).read_bytes(), {"content-type": "application/json"})


def status_body(**payload: Any) -> bytes:
    return json.dumps({"event": "message_status_updated", "payload": payload}).encode()


def single(items: list[ParsedItem]) -> NormalizedEvent:
    assert len(items) == 1
    (item,) = items
    assert isinstance(item, NormalizedEvent)
    return item


# --- the provider as registered -------------------------------------------------------


def test_provider_is_registered_under_its_public_name() -> None:
    assert get_provider("callbell") is PROVIDER
    assert PROVIDER.name == "callbell"
    assert PROVIDER.channel == "whatsapp"
    assert PROVIDER.body_format == "json"
    assert PROVIDER.token_in_url is True
    assert PROVIDER.auth_scheme == "token (?token=) or header (auth_header option)"
    assert PROVIDER.verify is verify
    assert PROVIDER.parse is parse
    assert PROVIDER.reply is reply


# --- one test per fixture ---------------------------------------------------------------


def test_documented_read_event() -> None:
    payload = fixture("message-status-updated-read.json")["payload"]
    assert parse_fixture("message-status-updated-read.json") == [
        NormalizedEvent(
            provider_message_id="adf3d1216d4c4dcd908199d6700f2381",
            kind=EventKind.READ,
            raw_status="read",
            occurred_at=datetime(2023, 6, 12, 9, 58, 33, tzinfo=UTC),
            channel="whatsapp",
            recipient="+331122334455",
            metadata={},
            details={
                "contact": payload["contact"],
                "messageStatusPayload": payload["messageStatusPayload"],
            },
        )
    ]


def test_documented_read_event_2023_without_contact_uses_the_destination() -> None:
    payload = fixture("message-status-updated-read-2023-version.json")["payload"]
    assert parse_fixture("message-status-updated-read-2023-version.json") == [
        NormalizedEvent(
            provider_message_id="adf3d1216d4c4dcd908199d6700f2381",
            kind=EventKind.READ,
            raw_status="read",
            occurred_at=datetime(2023, 6, 12, 9, 58, 33, tzinfo=UTC),
            channel="whatsapp",
            recipient="+1122334455",
            details={"messageStatusPayload": payload["messageStatusPayload"]},
        )
    ]


def test_delivered_event() -> None:
    payload = fixture("message-status-updated-delivered-built.json")["payload"]
    assert parse_fixture("message-status-updated-delivered-built.json") == [
        NormalizedEvent(
            provider_message_id="7c1e9b2f4a3d4e6f8b0a1c2d3e4f5a6b",
            kind=EventKind.DELIVERED,
            raw_status="delivered",
            occurred_at=datetime(2024, 6, 6, 13, 11, 45, tzinfo=UTC),
            channel="whatsapp",
            recipient="+31612345678",
            details={
                "contact": payload["contact"],
                "messageStatusPayload": payload["messageStatusPayload"],
            },
        )
    ]


def test_failed_event_carries_the_reason_and_code_from_the_raw_payload() -> None:
    payload = fixture("message-status-updated-failed-built.json")["payload"]
    assert parse_fixture("message-status-updated-failed-built.json") == [
        NormalizedEvent(
            provider_message_id="0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c",
            kind=EventKind.FAILED,
            raw_status="failed",
            occurred_at=None,
            channel="whatsapp",
            recipient="+31600000000",
            failure_code="1002",
            failure_reason="Number Does Not Exists On WhatsApp",
            after_send=True,
            details={"messageStatusPayload": payload["messageStatusPayload"]},
        )
    ]


def test_mismatch_event_keeps_the_corrected_id() -> None:
    payload = fixture("message-status-updated-mismatch-built.json")["payload"]
    assert parse_fixture("message-status-updated-mismatch-built.json") == [
        NormalizedEvent(
            provider_message_id="3b5d7f9a1c3e4a6c8e0a2c4e6a8c0e2a",
            kind=EventKind.MISMATCH,
            raw_status="mismatch",
            occurred_at=datetime(2024, 6, 6, 13, 13, 31, tzinfo=UTC),
            channel="whatsapp",
            recipient="+5511987654321",
            details={
                "messageStatusPayload": payload["messageStatusPayload"],
                "corrected_id": "551187654321",
            },
        )
    ]


def test_sent_event_with_metadata() -> None:
    payload = fixture("message-status-updated-with-metadata-built.json")["payload"]
    assert parse_fixture("message-status-updated-with-metadata-built.json") == [
        NormalizedEvent(
            provider_message_id="e2a4c6e8a0c24e6a8c0e2a4c6e8a0c2e",
            kind=EventKind.SENT,
            raw_status="sent",
            occurred_at=datetime(2024, 6, 6, 13, 11, 39, tzinfo=UTC),
            channel="whatsapp",
            recipient="+31612345678",
            metadata={"customer_id": "123456", "sent_from": "backend_api"},
            details={
                "contact": payload["contact"],
                "messageStatusPayload": payload["messageStatusPayload"],
            },
        )
    ]


# --- statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("enqueued", EventKind.QUEUED),
        ("sent", EventKind.SENT),
        ("delivered", EventKind.DELIVERED),
        ("read", EventKind.READ),
        ("failed", EventKind.FAILED),
        ("mismatch", EventKind.MISMATCH),
        ("deleted", EventKind.DELETED),
        ("Delivered", EventKind.DELIVERED),
        ("clicked", EventKind.UNKNOWN),
        ("queued", EventKind.UNKNOWN),
    ],
)
def test_status_mapping(status: str, kind: EventKind) -> None:
    event = single(parse(status_body(uuid="U1", status=status), {}))
    assert (event.provider_message_id, event.kind, event.raw_status) == ("U1", kind, status)
    assert event.after_send is (kind is EventKind.FAILED)
    assert event.channel == "whatsapp"


@pytest.mark.parametrize(
    ("raw", "code", "reason"),
    [
        (
            {"payload": {"code": 1002, "reason": "Number Does Not Exists On WhatsApp"}},
            "1002",
            "Number Does Not Exists On WhatsApp",
        ),
        ({"payload": {"error": "Message undeliverable"}}, None, "Message undeliverable"),
        (
            {"payload": {"error": {"code": "E42", "message": "Too many attempts"}}},
            "E42",
            "Too many attempts",
        ),
        (
            {"payload": {"errors": [{"code": 131026, "title": "Message undeliverable"}]}},
            "131026",
            "Message undeliverable",
        ),
        (
            {"payload": {"errors": [{"message": "Re-engagement message"}]}},
            None,
            "Re-engagement message",
        ),
        (
            {"reason": "number does not exist on WhatsApp"},
            None,
            "number does not exist on WhatsApp",
        ),
        ({"error": "blocked", "code": 470}, "470", "blocked"),
        ({"payload": {}}, None, "Callbell reported failed (no reason given)"),
        (
            {"payload": {"code": True, "reason": "  "}},
            None,
            "Callbell reported failed (no reason given)",
        ),
        ("not an object", None, "Callbell reported failed (no reason given)"),
    ],
)
def test_failure_reason_is_found_wherever_the_raw_payload_keeps_it(
    raw: object, code: str | None, reason: str
) -> None:
    event = single(parse(status_body(uuid="U1", status="failed", messageStatusPayload=raw), {}))
    assert (event.failure_code, event.failure_reason, event.after_send) == (code, reason, True)


def test_failure_fields_stay_empty_for_other_statuses() -> None:
    raw = {"payload": {"code": 1002, "reason": "Number Does Not Exists On WhatsApp"}}
    event = single(parse(status_body(uuid="U1", status="sent", messageStatusPayload=raw), {}))
    assert (event.failure_code, event.failure_reason, event.after_send) == (None, None, False)


def test_mismatch_without_a_corrected_id_has_none_in_details() -> None:
    raw = {"type": "mismatch", "payload": {"ts": 1717679611}}
    event = single(parse(status_body(uuid="U1", status="mismatch", messageStatusPayload=raw), {}))
    assert event.details == {"messageStatusPayload": raw}


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1686563913, datetime(2023, 6, 12, 9, 58, 33, tzinfo=UTC)),
        (1686563913.5, datetime(2023, 6, 12, 9, 58, 33, 500000, tzinfo=UTC)),
        (1686563913250, datetime(2023, 6, 12, 9, 58, 33, 250000, tzinfo=UTC)),  # ms
        ("1686563913", None),
        (True, None),
        (None, None),
        (1e300, None),
    ],
)
def test_occurred_at_from_the_raw_payload_ts(ts: object, expected: datetime | None) -> None:
    raw = {"payload": {"ts": ts}}
    event = single(parse(status_body(uuid="U1", status="read", messageStatusPayload=raw), {}))
    assert event.occurred_at == expected


def test_metadata_values_are_coerced_to_text_and_nulls_dropped() -> None:
    metadata = {"customer_id": 123456, "vip": True, "note": None, "ref": "A-1", "tags": ["x"]}
    event = single(parse(status_body(uuid="U1", status="sent", metadata=metadata), {}))
    assert event.metadata == {"customer_id": "123456", "vip": "true", "ref": "A-1", "tags": '["x"]'}


@pytest.mark.parametrize("metadata", [None, [], "customer_id=1", 5])
def test_metadata_that_is_not_an_object_is_ignored(metadata: object) -> None:
    event = single(parse(status_body(uuid="U1", status="sent", metadata=metadata), {}))
    assert event.metadata == {}


@pytest.mark.parametrize(
    ("contact", "raw", "recipient"),
    [
        ({"phoneNumber": "31612345678"}, {"destination": "1122"}, "+31612345678"),
        ({"phoneNumber": "+31612345678"}, {}, "+31612345678"),
        ({"phoneNumber": 31612345678}, {}, "+31612345678"),
        ({"phoneNumber": None}, {"destination": "31612345678"}, "+31612345678"),
        ({"name": "John"}, {"destination": "31612345678"}, "+31612345678"),
        (None, {}, None),
        ("John", {"destination": ""}, None),
    ],
)
def test_recipient_from_contact_or_destination(
    contact: object, raw: object, recipient: str | None
) -> None:
    body = status_body(uuid="U1", status="read", contact=contact, messageStatusPayload=raw)
    assert single(parse(body, {})).recipient == recipient


def test_uuid_and_status_are_kept_trimmed_and_raw() -> None:
    event = single(parse(status_body(uuid=" U1 ", status=" READ "), {}))
    assert (event.provider_message_id, event.kind, event.raw_status) == (
        "U1",
        EventKind.READ,
        " READ ",
    )


# --- connection check and other events ----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"  \n",
        b"{}",
        b"[]",
        b'"ping"',
        b"null",
        b"1",
        b'{"foo": "bar"}',
        b'{"event": null}',
        b'{"event": ""}',
        b'{"status": "ok"}',
    ],
)
def test_connection_check_is_ignored_and_answered_ok(body: bytes) -> None:
    assert parse(body, {}) == [Ignored("connection check")]
    assert reply(body) == OK


@pytest.mark.parametrize("event", ["message_created", "contact_updated", "conversation_opened"])
def test_other_named_events_are_ignored_and_answered_ok(event: str) -> None:
    body = json.dumps({"event": event, "payload": {"uuid": "U1"}}).encode()
    assert parse(body, {}) == [Ignored(f"event {event} is not tracked")]
    assert reply(body) == OK


def test_a_status_event_gets_the_standard_answer() -> None:
    assert reply((FIXTURES / "message-status-updated-read.json").read_bytes()) is None


def test_a_malformed_status_event_gets_the_standard_answer_too() -> None:
    assert reply(b'{"event": "message_status_updated"}') is None


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe\xfa", b"status=ok", b"[" * 100_000])
def test_non_json_gets_no_set_answer(body: bytes) -> None:
    assert reply(body) is None


def test_reply_returns_a_fresh_dict_each_time() -> None:
    first = reply(b"")
    assert first is not None
    first[1]["status"] = "changed"
    assert reply(b"") == OK


# --- malformed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "body is not JSON"),
        (b"\xff\xfe\xfa", "body is not JSON"),
        (b"status=ok", "body is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not JSON"),
        (b'{"event": "message_status_updated"}', "no payload object"),
        (b'{"event": "message_status_updated", "payload": []}', "no payload object"),
        (b'{"event": "message_status_updated", "payload": {"status": "read"}}', "payload.uuid"),
        (
            b'{"event": "message_status_updated", "payload": {"uuid": 7, "status": "read"}}',
            "payload.uuid",
        ),
        (b'{"event": "message_status_updated", "payload": {"uuid": "U1"}}', "payload.status"),
        (
            b'{"event": "message_status_updated", "payload": {"uuid": "U1", "status": 2}}',
            "payload.status",
        ),
    ],
)
def test_malformed_bodies_raise_payload_error(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=r"^callbell: ") as info:
        parse(body, {})
    assert message in str(info.value)


# --- verify ---------------------------------------------------------------------------------


def request(
    query: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> RequestParts:
    return RequestParts(
        method="POST",
        url="https://tidings.example.com/hooks/callbell/support",
        query=query or {},
        headers=headers or {},
        body=b"{}",
    )


def test_missing_credentials_say_how_to_pass_them() -> None:
    with pytest.raises(SignatureError, match="missing credentials") as info:
        verify(request(), CONNECTION)
    assert "?token=" in str(info.value)
    assert "'x-tidings-token'" in str(info.value)


def test_a_bearer_header_is_not_a_callbell_credential() -> None:
    bare = ConnectionAuth(name="support", provider="callbell", secret=SECRET)
    with pytest.raises(SignatureError, match="missing credentials") as info:
        verify(request(headers={"authorization": f"Bearer {SECRET}"}), bare)
    assert "header" not in str(info.value)


# --- properties -----------------------------------------------------------------------------

JSON_VALUES = json_values(
    [
        "event",
        "payload",
        "uuid",
        "status",
        "metadata",
        "contact",
        "phoneNumber",
        "messageStatusPayload",
        "ts",
        "reason",
        "error",
        "errors",
        "code",
        "destination",
        "wa_id",
    ],
    ["failed", "mismatch", "read", "message_status_updated"],
)


def assert_parses_or_payload_error(body: bytes) -> None:
    parsed_or_payload_error(parse, body)
    answer = reply(body)
    assert answer is None or answer == OK


@given(JSON_VALUES)
def test_arbitrary_status_payload_raises_only_payload_error(payload: object) -> None:
    body = json.dumps({"event": "message_status_updated", "payload": payload}).encode()
    assert_parses_or_payload_error(body)
