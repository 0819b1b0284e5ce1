"""Evolution webhook adapter: every fixture, every status shape, every way auth fails."""

from __future__ import annotations

import base64
import json
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.providers.fuzzing import json_values, parsed_or_payload_error
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import (
    BadItem,
    EventKind,
    Ignored,
    NormalizedEvent,
    ParsedItem,
    SessionUpdate,
)
from tidings.providers.base import ConnectionAuth, RequestParts
from tidings.providers.evolution import PROVIDER
from tidings.providers.evolution.webhook import parse, verify
from tidings.providers.registry import get_provider

FIXTURES = Path(__file__).parents[2] / "fixtures" / "evolution"

SECRET = "evolution-test-secret-0123456789abcdef"  # >= 32 bytes: HS256 key-length advice
CONNECTION = ConnectionAuth(
    name="loja-centro",
    provider="evolution",
    secret=SECRET,
    options={"auth_header": "x-tidings-token"},
)


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_bytes())
    return document


def parse_fixture(name: str) -> list[ParsedItem]:
    return parse((FIXTURES / name).read_bytes(), {"content-type": "application/json"})


def parse_json(document: object) -> list[ParsedItem]:
    return parse(json.dumps(document).encode(), {})


def status_body(data: object, event: str = "messages.update") -> dict[str, Any]:
    return {"event": event, "instance": "loja-centro", "data": data}


def single(items: list[ParsedItem]) -> NormalizedEvent:
    assert len(items) == 1
    (item,) = items
    assert isinstance(item, NormalizedEvent)
    return item


# --- the provider as registered -------------------------------------------------------


def test_provider_is_registered_under_its_public_name() -> None:
    assert get_provider("evolution") is PROVIDER
    assert PROVIDER.name == "evolution"
    assert PROVIDER.channel == "whatsapp"
    assert PROVIDER.body_format == "json"
    assert PROVIDER.token_in_url is True
    assert PROVIDER.verify is verify
    assert PROVIDER.parse is parse
    assert PROVIDER.reply(b"{}") is None


# --- one test per fixture ---------------------------------------------------------------


def test_seed_numeric_status_2_is_sent_not_delivered() -> None:
    data = fixture("messages-update-status-2-seed-001.json")["data"]
    assert parse_fixture("messages-update-status-2-seed-001.json") == [
        NormalizedEvent(
            provider_message_id="SEU_MESSAGE_ID_REAL",
            kind=EventKind.SENT,
            raw_status="2",
            channel="whatsapp",
            details={
                "event": "messages.update",
                "data": data,
                "instance": "seu_instance_name",
                "status_name": "SERVER_ACK",
            },
        )
    ]


def test_seed_docstring_numeric_status_2_is_sent() -> None:
    data = fixture("messages-update-status-2-docstring-seed-001.json")["data"]
    assert parse_fixture("messages-update-status-2-docstring-seed-001.json") == [
        NormalizedEvent(
            provider_message_id="3EB0B431E4B3F7E7BE49E97F7B8E5C8B",
            kind=EventKind.SENT,
            raw_status="2",
            channel="whatsapp",
            details={
                "event": "messages.update",
                "data": data,
                "instance": "tenant_abc_inst_1",
                "status_name": "SERVER_ACK",
            },
        )
    ]


def test_v2_shape_from_source_reads_key_id_and_keeps_placeholder_status_as_unknown() -> None:
    data = fixture("messages-update-v2-shape-from-source.json")["data"]
    assert parse_fixture("messages-update-v2-shape-from-source.json") == [
        NormalizedEvent(
            provider_message_id="<WhatsApp message id = key.id returned by sendText>",
            kind=EventKind.UNKNOWN,
            raw_status="<ERROR|PENDING|SERVER_ACK|DELIVERY_ACK|READ|PLAYED|DELETED>",
            channel="whatsapp",
            recipient="<jid>",
            details={"event": "messages.update", "data": data, "instance": "<instance name>"},
        )
    ]


def test_v1_shape_from_source_reads_id_and_ignores_a_non_numeric_datetime() -> None:
    data = fixture("messages-update-v1-shape-from-source.json")["data"]
    assert parse_fixture("messages-update-v1-shape-from-source.json") == [
        NormalizedEvent(
            provider_message_id="<WhatsApp message id = key.id returned by sendText>",
            kind=EventKind.UNKNOWN,
            raw_status="<ERROR|PENDING|SERVER_ACK|DELIVERY_ACK|READ|PLAYED>",
            occurred_at=None,
            channel="whatsapp",
            recipient="<jid>",
            details={"event": "messages.update", "data": data, "instance": "<instance name>"},
        )
    ]


def test_v2_delivery_ack_is_delivered_and_ignores_the_envelope_date_time() -> None:
    data = fixture("messages-update-v2-delivery-ack-built.json")["data"]
    assert parse_fixture("messages-update-v2-delivery-ack-built.json") == [
        NormalizedEvent(
            provider_message_id="BAE594145F4C59B4",
            kind=EventKind.DELIVERED,
            raw_status="DELIVERY_ACK",
            occurred_at=None,
            channel="whatsapp",
            recipient="+553198296801",
            details={"event": "messages.update", "data": data, "instance": "loja-centro"},
        )
    ]


def test_v2_error_is_a_failure_after_send_without_detail() -> None:
    data = fixture("messages-update-v2-error-built.json")["data"]
    assert parse_fixture("messages-update-v2-error-built.json") == [
        NormalizedEvent(
            provider_message_id="BAE5F0E1D2C3B4A5",
            kind=EventKind.FAILED,
            raw_status="ERROR",
            channel="whatsapp",
            recipient="+553198296802",
            failure_reason="WhatsApp reported ERROR (no detail given)",
            after_send=True,
            details={"event": "messages.update", "data": data, "instance": "loja-centro"},
        )
    ]


def test_whatsapp_business_channel_failed_is_a_failure_after_send() -> None:
    data = fixture("messages-update-business-failed-built.json")["data"]
    assert parse_fixture("messages-update-business-failed-built.json") == [
        NormalizedEvent(
            provider_message_id="wamid.HBgMNTUzMTk4Mjk2ODAzFQIAERgSQjE0RTc4RjA5QTFCMkMzRDRFAA==",
            kind=EventKind.FAILED,
            raw_status="FAILED",
            channel="whatsapp",
            recipient="+553198296803",
            failure_reason="WhatsApp reported FAILED (no detail given)",
            after_send=True,
            details={"event": "messages.update", "data": data, "instance": "loja-centro"},
        )
    ]


def test_fromme_false_is_ignored() -> None:
    assert parse_fixture("messages-update-fromme-false-built.json") == [
        Ignored("status update for a message we did not send (fromMe false)")
    ]


def test_v1_read_takes_its_time_from_datetime_milliseconds() -> None:
    data = fixture("messages-update-v1-read-built.json")["data"]
    assert parse_fixture("messages-update-v1-read-built.json") == [
        NormalizedEvent(
            provider_message_id="BAE5A1C3D2E4F607",
            kind=EventKind.READ,
            raw_status="READ",
            occurred_at=datetime(2024, 6, 6, 13, 11, 42, 519000, tzinfo=UTC),
            channel="whatsapp",
            recipient="+553198296801",
            details={"event": "messages.update", "data": data, "instance": "loja-centro"},
        )
    ]


def test_baileys_list_parses_every_item_in_its_own_shape() -> None:
    data = fixture("messages-update-baileys-list-built.json")["data"]
    assert parse_fixture("messages-update-baileys-list-built.json") == [
        NormalizedEvent(
            provider_message_id="3EB0B431E4B3F7E7BE49",
            kind=EventKind.DELIVERED,
            raw_status="3",
            channel="whatsapp",
            recipient="+553198296801",
            details={
                "event": "messages.update",
                "data": data[0],
                "instance": "loja-centro",
                "status_name": "DELIVERY_ACK",
            },
        ),
        NormalizedEvent(
            provider_message_id="3EB0C5D6E7F8091A2B3C",
            kind=EventKind.READ,
            raw_status="READ",
            channel="whatsapp",
            recipient="+5531987654321",
            details={"event": "messages.update", "data": data[1], "instance": "loja-centro"},
        ),
        NormalizedEvent(
            provider_message_id="3EB0D4E5F6A7B8C9D0E1",
            kind=EventKind.SENT,
            raw_status="2",
            channel="whatsapp",
            recipient="+5521912345678",
            details={
                "event": "messages.update",
                "data": data[2],
                "instance": "loja-centro",
                "status_name": "SERVER_ACK",
            },
        ),
    ]


def test_send_message_pending_is_queued() -> None:
    data = fixture("send-message-pending-built.json")["data"]
    assert parse_fixture("send-message-pending-built.json") == [
        NormalizedEvent(
            provider_message_id="BAE594145F4C59B4",
            kind=EventKind.QUEUED,
            raw_status="PENDING",
            channel="whatsapp",
            recipient="+553198296801",
            details={"event": "send.message", "data": data, "instance": "loja-centro"},
        )
    ]


def test_connection_update_open_is_a_session_update() -> None:
    data = fixture("connection-update-open-built.json")["data"]
    assert parse_fixture("connection-update-open-built.json") == [
        SessionUpdate(state="open", details=data)
    ]


def test_qrcode_updated_carries_the_base64_image() -> None:
    data = fixture("qrcode-updated-built.json")["data"]
    assert parse_fixture("qrcode-updated-built.json") == [
        SessionUpdate(state="qrcode", qrcode=data["qrcode"]["base64"], details=data)
    ]


# --- status values and shapes -----------------------------------------------------------

BAILEYS_TABLE = [
    (0, EventKind.FAILED),
    (1, EventKind.QUEUED),
    (2, EventKind.SENT),
    (3, EventKind.DELIVERED),
    (4, EventKind.READ),
    (5, EventKind.PLAYED),
]


@pytest.mark.parametrize(("number", "kind"), BAILEYS_TABLE)
def test_baileys_numbers_in_update_status(number: int, kind: EventKind) -> None:
    event = single(parse_json(status_body({"key": {"id": "M1"}, "update": {"status": number}})))
    assert (event.kind, event.raw_status) == (kind, str(number))
    assert event.after_send is (kind is EventKind.FAILED)


@pytest.mark.parametrize(("number", "kind"), BAILEYS_TABLE)
def test_baileys_numbers_in_data_status(number: int, kind: EventKind) -> None:
    event = single(parse_json(status_body({"key": {"id": "M1"}, "status": number})))
    assert (event.kind, event.raw_status) == (kind, str(number))


@pytest.mark.parametrize(("number", "kind"), BAILEYS_TABLE)
def test_baileys_numbers_sent_as_digit_strings(number: int, kind: EventKind) -> None:
    event = single(parse_json(status_body({"keyId": "M1", "status": str(number)})))
    assert (event.kind, event.raw_status) == (kind, str(number))


def test_numbers_follow_baileys_not_the_seed_off_by_one_table() -> None:
    two = single(parse_json(status_body({"key": {"id": "M1"}, "update": {"status": 2}})))
    three = single(parse_json(status_body({"key": {"id": "M1"}, "update": {"status": 3}})))
    assert two.kind is EventKind.SENT  # the seed said delivered
    assert three.kind is EventKind.DELIVERED  # the seed said read


def test_numeric_error_carries_the_failure_reason() -> None:
    event = single(parse_json(status_body({"key": {"id": "M1"}, "update": {"status": 0}})))
    assert event.failure_reason == "WhatsApp reported ERROR (no detail given)"
    assert event.details["status_name"] == "ERROR"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("PENDING", EventKind.QUEUED),
        ("SERVER_ACK", EventKind.SENT),
        ("DELIVERY_ACK", EventKind.DELIVERED),
        ("READ", EventKind.READ),
        ("PLAYED", EventKind.PLAYED),
        ("ERROR", EventKind.FAILED),
        ("DELETED", EventKind.DELETED),
        ("SENT", EventKind.SENT),
        ("DELIVERED", EventKind.DELIVERED),
        ("FAILED", EventKind.FAILED),
        ("read", EventKind.READ),
    ],
)
@pytest.mark.parametrize(
    "shape",
    [
        lambda s: {"keyId": "M1", "status": s},  # v2
        lambda s: {"id": "M1", "status": s},  # v1
        lambda s: {"key": {"id": "M1"}, "update": {"status": s}},  # Baileys, string
    ],
    ids=["v2", "v1", "baileys"],
)
def test_status_strings_in_every_shape(status: str, kind: EventKind, shape: Any) -> None:
    event = single(parse_json(status_body(shape(status))))
    assert event.provider_message_id == "M1"
    assert (event.kind, event.raw_status) == (kind, status)
    assert event.after_send is (kind is EventKind.FAILED)
    assert event.channel == "whatsapp"


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        ("CLICKED", "CLICKED"),
        (9, "9"),
        (-1, "-1"),
        (True, "true"),
        (2.5, "2.5"),
        ({"a": 1}, '{"a": 1}'),
    ],
)
def test_unknown_status_value_is_kept_as_unknown(value: object, raw: str) -> None:
    event = single(parse_json(status_body({"keyId": "M1", "status": value})))
    assert (event.kind, event.raw_status) == (EventKind.UNKNOWN, raw)


def test_update_status_wins_over_data_status() -> None:
    body = status_body({"key": {"id": "M1"}, "status": "PENDING", "update": {"status": 4}})
    assert single(parse_json(body)).kind is EventKind.READ


@pytest.mark.parametrize(
    "data",
    [
        {"keyId": "M1", "fromMe": False, "status": "READ"},
        {"key": {"id": "M1", "fromMe": False}, "update": {"status": 4}},
    ],
)
def test_fromme_false_anywhere_is_ignored(data: dict[str, Any]) -> None:
    assert parse_json(status_body(data)) == [
        Ignored("status update for a message we did not send (fromMe false)")
    ]


@pytest.mark.parametrize("from_me", [True, None, "false"])
def test_only_an_explicit_false_fromme_is_ignored(from_me: object) -> None:
    event = single(parse_json(status_body({"keyId": "M1", "fromMe": from_me, "status": "READ"})))
    assert event.kind is EventKind.READ


@pytest.mark.parametrize(
    ("jid", "recipient"),
    [
        ("553198296801@s.whatsapp.net", "+553198296801"),
        ("553198296801:12@s.whatsapp.net", "+553198296801"),
        ("553198296801", "+553198296801"),
        ("120363025246125244@g.us", "120363025246125244@g.us"),
        ("187743636676218@lid", "187743636676218@lid"),
    ],
)
def test_recipient_from_remote_jid(jid: str, recipient: str) -> None:
    event = single(parse_json(status_body({"keyId": "M1", "remoteJid": jid, "status": "READ"})))
    assert event.recipient == recipient


def test_recipient_from_key_remote_jid() -> None:
    data = {"key": {"id": "M1", "remoteJid": "5511999998888@s.whatsapp.net"}, "status": 3}
    assert single(parse_json(status_body(data))).recipient == "+5511999998888"


@pytest.mark.parametrize("millis", ["NaN", "Infinity", "1e300", '"1717679502519"'])
def test_unusable_v1_datetime_leaves_the_time_to_the_worker(millis: str) -> None:
    body = (
        '{"event": "messages.update", "data": '
        f'{{"id": "M1", "status": "READ", "datetime": {millis}}}}}'
    ).encode()
    assert single(parse(body, {})).occurred_at is None


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("MESSAGES_UPDATE", EventKind.READ),
        ("messages-update", EventKind.READ),
        ("SEND_MESSAGE", EventKind.READ),
        (" Messages.Update ", EventKind.READ),
    ],
)
def test_event_names_are_normalized(event: str, expected: EventKind) -> None:
    body = status_body({"keyId": "M1", "status": "READ"}, event=event)
    assert single(parse_json(body)).kind is expected


def test_upper_snake_session_events_are_understood() -> None:
    assert parse_json({"event": "CONNECTION_UPDATE", "data": {"state": "close"}}) == [
        SessionUpdate(state="close", details={"state": "close"})
    ]
    assert parse_json({"event": "QRCODE_UPDATED", "data": {"qrcode": {"code": "2@abc"}}}) == [
        SessionUpdate(state="qrcode", qrcode="2@abc", details={"qrcode": {"code": "2@abc"}})
    ]


def test_qrcode_limit_reached_has_no_code() -> None:
    data = {"message": "QR code limit reached, please login again", "statusCode": 500}
    assert parse_json({"event": "qrcode.updated", "data": data}) == [
        SessionUpdate(state="qrcode", qrcode=None, details=data)
    ]


@pytest.mark.parametrize(
    "event", ["messages.upsert", "contacts.update", "MESSAGES_DELETE", "presence.update"]
)
def test_untracked_events_are_ignored(event: str) -> None:
    name = event.lower().replace("_", ".")
    assert parse_json({"event": event, "data": {"anything": 1}}) == [
        Ignored(f"event {name} is not tracked")
    ]


# --- lists --------------------------------------------------------------------------------


def test_a_bad_item_in_a_list_spoils_only_itself() -> None:
    data = [
        {"key": {"id": "A"}, "update": {"status": 3}},
        "not an object",
        {"key": {}, "update": {"status": 4}},
        {"key": {"id": "D"}},
        {"key": {"id": "E", "fromMe": False}, "update": {"status": 4}},
        {"keyId": "F", "status": "READ"},
    ]
    items = parse_json(status_body(data))
    assert [type(item) for item in items] == [
        NormalizedEvent,
        BadItem,
        BadItem,
        Ignored,
        Ignored,
        NormalizedEvent,
    ]
    first, bad_type, bad_id, bad_status, _, last = items
    assert isinstance(first, NormalizedEvent)
    assert (first.provider_message_id, first.kind) == ("A", EventKind.DELIVERED)
    assert isinstance(last, NormalizedEvent)
    assert (last.provider_message_id, last.kind) == ("F", EventKind.READ)
    assert bad_type == BadItem(
        index=1, error="evolution: messages.update item is a string, expected an object"
    )
    assert isinstance(bad_id, BadItem)
    assert bad_id.index == 2
    assert "no message id" in bad_id.error
    assert bad_status == Ignored("messages.update for message 'D' carries no status")


@pytest.mark.parametrize(
    "data",
    [
        {"keyId": "M1"},
        {"keyId": "M1", "status": None},
        {"key": {"id": "M1", "fromMe": True}, "update": {"message": {"editedMessage": {}}}},
    ],
)
def test_an_update_without_a_status_is_a_no_op(data: dict[str, object]) -> None:
    """Evolution sends messages.update for edits and reactions too; they carry no delivery
    state, so they are applied as nothing rather than retried."""
    body = json.dumps({"event": "messages.update", "data": data}).encode()
    assert parse(body, {}) == [Ignored("messages.update for message 'M1' carries no status")]


def test_an_empty_list_is_ignored() -> None:
    assert parse_json(status_body([])) == [Ignored("event messages.update carried an empty list")]


# --- malformed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body is not JSON"),
        (b"{", "body is not JSON"),
        (b"\xff\xfe\xfa", "body is not JSON"),
        (b"event=messages.update", "body is not JSON"),
        (b"[]", "expected an object"),
        (b'"messages.update"', "expected an object"),
        (b"null", "expected an object"),
        (b"{}", 'no "event"'),
        (b'{"event": 3}', 'no "event"'),
        (b'{"event": ""}', 'no "event"'),
        (b'{"event": "messages.update"}', "got null"),
        (b'{"event": "messages.update", "data": "x"}', "got a string"),
        (b'{"event": "messages.update", "data": {"status": "READ"}}', "no message id"),
        (b'{"event": "send.message", "data": {"key": {"id": ""}, "status": 1}}', "no message id"),
        (b'{"event": "connection.update", "data": {}}', "no data.state"),
        (b'{"event": "connection.update", "data": [1]}', "got a list"),
        (b'{"event": "qrcode.updated"}', "got null"),
    ],
)
def test_malformed_bodies_raise_payload_error(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=r"^evolution: ") as info:
        parse(body, {})
    assert message in str(info.value)


def test_deeply_nested_json_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        parse(b"[" * 100_000 + b"]" * 100_000, {})


# --- verify ---------------------------------------------------------------------------------


def request(
    query: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> RequestParts:
    return RequestParts(
        method="POST",
        url="https://tidings.example.com/hooks/evolution/loja-centro",
        query=query or {},
        headers=headers or {},
        body=b"{}",
    )


def evolution_jwt(key: str = SECRET, *, issued: float | None = None, **extra: Any) -> str:
    """A token as Evolution's webhook controller builds it."""
    iat = int(time.time() if issued is None else issued)
    claims = {"iat": iat, "exp": iat + 600, "app": "evolution", "action": "webhook", **extra}
    return jwt.encode(claims, key, algorithm="HS256")


def test_missing_credentials_say_how_to_pass_them() -> None:
    with pytest.raises(SignatureError, match="missing credentials") as info:
        verify(request(), CONNECTION)
    message = str(info.value)
    assert "?token=" in message
    assert "'x-tidings-token'" in message
    assert "jwt_key" in message
    assert SECRET not in message


def test_header_only_counts_when_configured() -> None:
    bare = ConnectionAuth(name="loja-centro", provider="evolution", secret=SECRET)
    with pytest.raises(SignatureError, match="missing credentials"):
        verify(request(headers={"x-tidings-token": SECRET}), bare)


def test_valid_jwt_bearer_is_accepted() -> None:
    verify(request(headers={"authorization": f"Bearer {evolution_jwt()}"}), CONNECTION)


def test_bearer_scheme_is_case_insensitive() -> None:
    verify(request(headers={"authorization": f"bearer {evolution_jwt()}"}), CONNECTION)


def test_jwt_just_past_expiry_is_accepted_within_leeway() -> None:
    token = evolution_jwt(issued=time.time() - 610)  # expired 10 s ago, leeway is 30 s
    verify(request(headers={"authorization": f"Bearer {token}"}), CONNECTION)


def test_expired_jwt_is_rejected() -> None:
    token = evolution_jwt(issued=time.time() - 700)  # expired 100 s ago
    with pytest.raises(SignatureError, match="expired"):
        verify(request(headers={"authorization": f"Bearer {token}"}), CONNECTION)


def test_jwt_signed_with_another_key_is_rejected() -> None:
    token = evolution_jwt("another-key-that-is-long-enough-0123456789")
    with pytest.raises(SignatureError, match="not signed with the connection secret"):
        verify(request(headers={"authorization": f"Bearer {token}"}), CONNECTION)


def test_jwt_with_alg_none_is_rejected() -> None:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"}
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(SignatureError, match="HS256"):
        verify(request(headers={"authorization": f"Bearer {token}"}), CONNECTION)


def test_hand_made_unsigned_jwt_is_rejected() -> None:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    token = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'iat': now, 'exp': now + 600})}."
    with pytest.raises(SignatureError):
        verify(request(headers={"authorization": f"Bearer {token}"}), CONNECTION)


def test_jwt_with_another_hmac_algorithm_is_rejected() -> None:
    now = int(time.time())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)  # HS512 wants 64 bytes
        token = jwt.encode({"iat": now, "exp": now + 600}, SECRET, algorithm="HS512")
    with pytest.raises(SignatureError, match="HS256"):
        verify(request(headers={"authorization": f"Bearer {token}"}), CONNECTION)


def test_jwt_without_exp_is_rejected() -> None:
    token = jwt.encode({"iat": int(time.time())}, SECRET, algorithm="HS256")
    with pytest.raises(SignatureError, match="'exp'"):
        verify(request(headers={"authorization": f"Bearer {token}"}), CONNECTION)


def test_short_secret_jwt_is_verified_without_a_warning() -> None:
    # pytest turns warnings into errors here, so this also proves verify stays quiet.
    short = ConnectionAuth(name="loja-centro", provider="evolution", secret="short")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        token = evolution_jwt("short")
    verify(request(headers={"authorization": f"Bearer {token}"}), short)


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("Bearer not-a-jwt", "not valid"),
        ("Bearer ", "not 'Bearer <JWT>'"),
        ("Basic dXNlcjpwYXNz", "not 'Bearer <JWT>'"),
    ],
)
def test_unusable_authorization_header_is_rejected(authorization: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(request(headers={"authorization": authorization}), CONNECTION)


def test_a_wrong_token_is_not_rescued_by_a_valid_jwt() -> None:
    parts = request(query={"token": "nope"}, headers={"authorization": f"Bearer {evolution_jwt()}"})
    with pytest.raises(SignatureError, match="wrong secret"):
        verify(parts, CONNECTION)


# --- properties -----------------------------------------------------------------------------

JSON_VALUES = json_values(
    [
        "keyId",
        "key",
        "id",
        "status",
        "update",
        "fromMe",
        "remoteJid",
        "datetime",
        "state",
        "qrcode",
        "base64",
        "code",
    ],
    ["PENDING", "READ", "ERROR", "keyId", "key", "id", "status", "update"],
)
EVENTS = st.sampled_from(
    [
        "messages.update",
        "MESSAGES_UPDATE",
        "send.message",
        "connection.update",
        "qrcode.updated",
        "messages.upsert",
    ]
)


def assert_parses_or_payload_error(body: bytes) -> None:
    parsed_or_payload_error(parse, body)


@given(EVENTS, JSON_VALUES)
def test_arbitrary_data_under_a_known_event_raises_only_payload_error(
    event: str, data: object
) -> None:
    assert_parses_or_payload_error(json.dumps({"event": event, "data": data}).encode())
