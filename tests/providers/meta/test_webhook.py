"""Meta WhatsApp Cloud API adapter: every fixture, the signature, the handshake, bad input."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.providers.fuzzing import json_values, parsed_or_payload_error
from tests.providers.unsigned import WithoutUrl
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import (
    BadItem,
    EventKind,
    Ignored,
    NormalizedEvent,
    ParsedItem,
)
from tidings.providers.base import ConnectionAuth, RequestParts
from tidings.providers.meta import PROVIDER
from tidings.providers.meta.signature import handshake, verify
from tidings.providers.meta.webhook import parse

FIXTURES = Path(__file__).parents[2] / "fixtures" / "meta"

APP_SECRET = "meta-app-secret-for-tests"
VERIFY_TOKEN = "meatyhamhock"  # the token of Meta's documented verification request
CONNECTION = ConnectionAuth(
    name="waba",
    provider="meta",
    secret=APP_SECRET,
    options={"verify_token": VERIFY_TOKEN},
)

WABA = "102290129340398"
BUSINESS = {
    "whatsapp_business_account_id": WABA,
    "phone_number_id": "106540352242922",
    "display_phone_number": "15550783881",
}
WAMID_A = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
WAMID_B = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI4NEQxQzNBRjE0QjI5MEVBOTkA"
WAMID_C = "wamid.HBgLMTY1MDU1NTk4NzYVAgARGBJCNjE3RjBBRTJEOTdDMzE4RjYA"
WAMID_D = "wamid.HBgSMTIwMzYzNDAxMjM0NTY3ODkwFQIAERgSM0YyQTk5QjcxRTA1Qzg0REQ2AA=="
PRICING_V24 = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"}
CALLBACK_JSON = '{"campaign": "spring", "contact_ref": "lead-42"}'


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse_fixture(name: str) -> list[ParsedItem]:
    return parse(fixture_bytes(name), {"content-type": "application/json"})


def envelope(*values: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"value": v, "field": field} for v in values]}],
    }


def status_body(*statuses: object) -> bytes:
    return json.dumps(
        envelope({"messaging_product": "whatsapp", "statuses": list(statuses)})
    ).encode()


def status(**fields: Any) -> dict[str, Any]:
    return {"id": "wamid.X", "status": "sent", "timestamp": "1750857384", **fields}


def single(items: list[ParsedItem]) -> NormalizedEvent:
    assert len(items) == 1
    (item,) = items
    assert isinstance(item, NormalizedEvent)
    return item


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# --- the provider as declared ---------------------------------------------------------------


def test_provider_declares_its_public_surface() -> None:
    assert PROVIDER.name == "meta"
    assert PROVIDER.channel == "whatsapp"
    assert PROVIDER.body_format == "json"
    assert PROVIDER.token_in_url is False
    assert PROVIDER.auth_scheme == "X-Hub-Signature-256 (app secret) + verify_token handshake"
    assert PROVIDER.verify is verify
    assert PROVIDER.parse is parse
    assert PROVIDER.handshake is handshake
    assert PROVIDER.reply(b"{}") is None


# --- one test per fixture ---------------------------------------------------------------------


def test_sent_with_conversation_pricing_and_callback_data() -> None:
    assert parse_fixture("statuses-sent-built.json") == [
        NormalizedEvent(
            provider_message_id=WAMID_A,
            kind=EventKind.SENT,
            raw_status="sent",
            occurred_at=datetime(2025, 6, 25, 13, 16, 24, tzinfo=UTC),
            provider_event_id=None,
            channel="whatsapp",
            recipient="+16505551234",
            metadata={
                "campaign": "spring",
                "contact_ref": "lead-42",
                "biz_opaque_callback_data": CALLBACK_JSON,
            },
            details={
                **BUSINESS,
                "biz_opaque_callback_data": CALLBACK_JSON,
                "conversation": {
                    "id": "a75d17ad06104c51166f948319b03c6a",
                    "expiration_timestamp": "1750943820",
                    "origin": {"type": "marketing"},
                },
                "pricing": PRICING_V24,
            },
        )
    ]


def test_delivered_with_pricing_only() -> None:
    assert parse_fixture("statuses-delivered-built.json") == [
        NormalizedEvent(
            provider_message_id=WAMID_A,
            kind=EventKind.DELIVERED,
            raw_status="delivered",
            occurred_at=datetime(2025, 6, 25, 13, 16, 31, tzinfo=UTC),
            channel="whatsapp",
            recipient="+16505551234",
            metadata={
                "campaign": "spring",
                "contact_ref": "lead-42",
                "biz_opaque_callback_data": CALLBACK_JSON,
            },
            details={**BUSINESS, "biz_opaque_callback_data": CALLBACK_JSON, "pricing": PRICING_V24},
        )
    ]


def test_read_with_plain_callback_data() -> None:
    assert parse_fixture("statuses-read-built.json") == [
        NormalizedEvent(
            provider_message_id=WAMID_A,
            kind=EventKind.READ,
            raw_status="read",
            occurred_at=datetime(2025, 6, 25, 13, 27, 0, tzinfo=UTC),
            channel="whatsapp",
            recipient="+16505551234",
            metadata={"biz_opaque_callback_data": "spring-2025"},
            details={**BUSINESS, "biz_opaque_callback_data": "spring-2025"},
        )
    ]


def test_failed_carries_code_and_reason_from_errors() -> None:
    errors = [
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message could not be delivered to the recipient"},
            "href": "/documentation/business-messaging/whatsapp/support/error-codes",
        }
    ]
    assert parse_fixture("statuses-failed-built.json") == [
        NormalizedEvent(
            provider_message_id=WAMID_B,
            kind=EventKind.FAILED,
            raw_status="failed",
            occurred_at=datetime(2025, 6, 25, 13, 16, 42, tzinfo=UTC),
            channel="whatsapp",
            recipient="+16505551234",
            failure_code="131026",
            failure_reason="Message undeliverable: Message could not be delivered to the recipient",
            failure_permanent=None,
            after_send=True,
            details={**BUSINESS, "errors": errors},
        )
    ]


def test_a_batch_gives_one_event_per_status_across_entries() -> None:
    assert parse_fixture("statuses-batch-built.json") == [
        NormalizedEvent(
            provider_message_id=WAMID_A,
            kind=EventKind.DELIVERED,
            raw_status="delivered",
            occurred_at=datetime(2025, 6, 25, 13, 16, 31, tzinfo=UTC),
            channel="whatsapp",
            recipient="+16505551234",
            details={**BUSINESS, "pricing": PRICING_V24},
        ),
        NormalizedEvent(
            provider_message_id=WAMID_B,
            kind=EventKind.READ,
            raw_status="read",
            occurred_at=datetime(2025, 6, 25, 13, 17, 35, tzinfo=UTC),
            channel="whatsapp",
            recipient="+16505559876",
            details=BUSINESS,
        ),
        NormalizedEvent(
            provider_message_id=WAMID_C,
            kind=EventKind.SENT,
            raw_status="sent",
            occurred_at=datetime(2025, 6, 25, 13, 17, 40, tzinfo=UTC),
            channel="whatsapp",
            recipient="+447700900123",
            details={**BUSINESS, "pricing": PRICING_V24},
        ),
        NormalizedEvent(
            provider_message_id=WAMID_D,
            kind=EventKind.READ,
            raw_status="read",
            occurred_at=datetime(2025, 6, 25, 13, 17, 50, tzinfo=UTC),
            channel="whatsapp",
            recipient="+5511987654321",
            details={
                **BUSINESS,
                "recipient_type": "group",
                "recipient_participant_id": "5511987654321",
            },
        ),
    ]


def test_an_inbound_message_is_ignored() -> None:
    assert parse_fixture("messages-inbound-built.json") == [Ignored("inbound message")]


def test_the_documented_130429_errors_webhook_is_ignored_with_its_text() -> None:
    assert parse_fixture("errors-webhook-rate-limit-130429.json") == [
        Ignored(
            "Meta reported system error 130429: Rate limit hit: Message failed to send because "
            "there were too many messages sent from this phone number in a short period of time"
        )
    ]


def _syntax_status_keys() -> set[str]:
    """Every key the documented status syntax shows, at any depth under `statuses[]`."""
    text = fixture_bytes("statuses-webhook-syntax.txt").decode()
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"(?<=: )<[A-Z_?]+>", "null", text)  # unquoted placeholders
    syntax = json.loads(text)
    return _keys(syntax["entry"][0]["changes"][0]["value"]["statuses"][0])


def _keys(value: object, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        found: set[str] = set()
        for key, item in value.items():
            found.add(prefix + key)
            found |= _keys(item, prefix + key + ".")
        return found
    if isinstance(value, list):
        return set().union(*(_keys(item, prefix) for item in value)) if value else set()
    return set()


@pytest.mark.parametrize(
    "name",
    [
        "statuses-sent-built.json",
        "statuses-delivered-built.json",
        "statuses-read-built.json",
        "statuses-failed-built.json",
        "statuses-batch-built.json",
    ],
)
def test_built_statuses_use_only_documented_fields(name: str) -> None:
    documented = _syntax_status_keys()
    document = json.loads(fixture_bytes(name))
    for entry in document["entry"]:
        for change in entry["changes"]:
            for item in change["value"]["statuses"]:
                assert _keys(item) <= documented


# --- statuses, one by one ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("sent", EventKind.SENT),
        ("delivered", EventKind.DELIVERED),
        ("read", EventKind.READ),
        ("played", EventKind.PLAYED),
        ("failed", EventKind.FAILED),
        ("deleted", EventKind.DELETED),
        ("READ", EventKind.READ),
        (" delivered ", EventKind.DELIVERED),
        ("warning", EventKind.UNKNOWN),
        ("pending", EventKind.UNKNOWN),
        ("accepted", EventKind.UNKNOWN),
    ],
)
def test_status_mapping(raw: str, kind: EventKind) -> None:
    event = single(parse(status_body(status(status=raw)), {}))
    assert (event.provider_message_id, event.kind, event.raw_status) == ("wamid.X", kind, raw)
    assert event.after_send is (kind is EventKind.FAILED)
    assert (event.channel, event.provider_event_id) == ("whatsapp", None)


@pytest.mark.parametrize(
    ("errors", "code", "reason"),
    [
        (None, None, "Meta reported failed without errors[]"),
        ([], None, "Meta reported failed without errors[]"),
        ("oops", None, "Meta reported failed without errors[]"),
        ([{"code": 131047, "title": "Re-engagement message"}], "131047", "Re-engagement message"),
        (
            [{"code": "131051", "title": "Unsupported message type", "message": "Not supported"}],
            "131051",
            "Unsupported message type: Not supported",
        ),
        ([{"code": True, "message": "Something"}], None, "Something"),
        (
            [
                "junk",
                {"code": 131000, "title": "Something went wrong"},
                {
                    "code": 131053,
                    "title": "Media upload error",
                    "error_data": {"details": "Too big"},
                },
            ],
            "131000",
            "Something went wrong; Media upload error: Too big",
        ),
        ([{"code": 131000}], "131000", "Meta reported failed without errors[]"),
    ],
)
def test_failure_code_and_reason(errors: object, code: str | None, reason: str) -> None:
    event = single(parse(status_body(status(status="failed", errors=errors)), {}))
    assert (event.failure_code, event.failure_reason) == (code, reason)
    assert (event.after_send, event.failure_permanent) == (True, None)


def test_errors_on_a_status_that_did_not_fail_are_only_details() -> None:
    errors = [{"code": 131000, "title": "Something went wrong"}]
    event = single(parse(status_body(status(status="warning", errors=errors)), {}))
    assert (event.failure_code, event.failure_reason, event.after_send) == (None, None, False)
    assert event.details["errors"] == errors


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("1750857384", at(1750857384)),
        (" 1750857384 ", at(1750857384)),
        (1750857384, at(1750857384)),
        (1750857384.5, datetime(2025, 6, 25, 13, 16, 24, 500000, tzinfo=UTC)),
        ("1750857384.5", None),
        ("soon", None),
        ("", None),
        ("9" * 5000, None),
        (10**30, None),
        (True, None),
        (None, None),
    ],
)
def test_occurred_at_is_aware_utc_from_unix_seconds(
    timestamp: object, expected: datetime | None
) -> None:
    event = single(parse(status_body(status(timestamp=timestamp)), {}))
    assert event.occurred_at == expected


def test_a_status_without_timestamp_has_no_event_time() -> None:
    item = {"id": "wamid.X", "status": "read", "recipient_id": "16505551234"}
    assert single(parse(status_body(item), {})).occurred_at is None


@pytest.mark.parametrize(
    ("fields", "recipient"),
    [
        ({"recipient_id": "16505551234"}, "+16505551234"),
        ({"recipient_id": " 16505551234 "}, "+16505551234"),
        ({"recipient_id": 16505551234}, "+16505551234"),
        ({"recipient_id": "+16505551234"}, "+16505551234"),
        ({"recipient_id": "BSUID.abc"}, "BSUID.abc"),
        ({}, None),
        ({"recipient_id": ""}, None),
        (
            {
                "recipient_id": "120363401234567890",
                "recipient_type": "group",
                "recipient_participant_id": "5511987654321",
            },
            "+5511987654321",
        ),
        ({"recipient_id": "120363401234567890", "recipient_type": "group"}, "120363401234567890"),
    ],
)
def test_recipient(fields: dict[str, Any], recipient: str | None) -> None:
    assert single(parse(status_body(status(**fields)), {})).recipient == recipient


@pytest.mark.parametrize(
    ("callback", "metadata"),
    [
        ("spring", {"biz_opaque_callback_data": "spring"}),
        (
            '{"campaign": "spring", "n": 3, "vip": true, "gone": null, "tags": ["a"]}',
            {
                "campaign": "spring",
                "n": "3",
                "vip": "true",
                "tags": '["a"]',
                "biz_opaque_callback_data": (
                    '{"campaign": "spring", "n": 3, "vip": true, "gone": null, "tags": ["a"]}'
                ),
            },
        ),
        ("{not json", {"biz_opaque_callback_data": "{not json"}),
        ("[1, 2]", {"biz_opaque_callback_data": "[1, 2]"}),
        ("  ", {}),
        (None, {}),
    ],
)
def test_callback_data_becomes_metadata(callback: object, metadata: dict[str, str]) -> None:
    event = single(parse(status_body(status(biz_opaque_callback_data=callback)), {}))
    assert event.metadata == metadata


def test_unknown_status_fields_are_kept_in_details() -> None:
    item = status(recipient_id="1", recipient_identity_key_hash="Sjvjlx8G6Z0=", future={"x": 1})
    event = single(parse(status_body(item), {}))
    assert event.details == {
        "whatsapp_business_account_id": WABA,
        "recipient_identity_key_hash": "Sjvjlx8G6Z0=",
        "future": {"x": 1},
    }


# --- several items: bad ones spoil only themselves ---------------------------------------------


def test_bad_statuses_become_bad_items_and_the_others_still_parse() -> None:
    body = status_body(
        status(id="wamid.1", status="delivered"),
        {"status": "read", "timestamp": "1750857384"},
        "not a status",
        {"id": "wamid.3"},
        status(id="wamid.4", status=7),
        status(id="wamid.5", status="read"),
    )
    items = parse(body, {})
    path = "meta: entry[0].changes[0].value.statuses"
    assert items[1:5] == [
        BadItem(1, f"{path}[1] has no id (the wamid the send request returned)"),
        BadItem(2, f"{path}[2] is a string, expected an object"),
        BadItem(3, f"{path}[3] for message 'wamid.3' has no status"),
        BadItem(4, f"{path}[4] for message 'wamid.4' has no status"),
    ]
    first, last = items[0], items[5]
    assert isinstance(first, NormalizedEvent) and isinstance(last, NormalizedEvent)
    assert (first.provider_message_id, first.kind) == ("wamid.1", EventKind.DELIVERED)
    assert (last.provider_message_id, last.kind) == ("wamid.5", EventKind.READ)


def test_a_bad_item_index_is_its_position_in_the_result() -> None:
    document = envelope(
        {"messages": [{"id": "in.1"}], "statuses": [status(id="wamid.1")]},
        {"statuses": [{"status": "read"}]},
    )
    items = parse(json.dumps(document).encode(), {})
    assert [type(item) for item in items] == [NormalizedEvent, Ignored, BadItem]
    assert items[2] == BadItem(
        2,
        "meta: entry[0].changes[1].value.statuses[0] has no id (the wamid the send request "
        "returned)",
    )


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("junk", "meta: entry[0] is a string, expected an object"),
        ({"id": WABA}, "meta: entry[0] has no changes list (got null)"),
        ({"changes": {}}, "meta: entry[0] has no changes list (got an object)"),
        ({"changes": [3]}, "meta: entry[0].changes[0] is a number, expected an object"),
        (
            {"changes": [{"field": "messages"}]},
            "meta: entry[0].changes[0] has no value object (got null)",
        ),
        (
            {"changes": [{"field": "messages", "value": {"statuses": {}}}]},
            "meta: entry[0].changes[0].value.statuses is an object, expected a list",
        ),
    ],
)
def test_a_malformed_entry_is_a_bad_item_beside_good_ones(entry: object, error: str) -> None:
    document = {
        "object": "whatsapp_business_account",
        "entry": [entry, envelope({"statuses": [status()]})["entry"][0]],
    }
    items = parse(json.dumps(document).encode(), {})
    assert items[0] == BadItem(0, error)
    assert isinstance(items[1], NormalizedEvent)
    assert len(items) == 2


def test_statuses_and_messages_in_one_value_both_count() -> None:
    value = {
        "statuses": [status(id="wamid.1", status="read")],
        "messages": [{"from": "1", "id": "in.1"}, {"from": "2", "id": "in.2"}],
    }
    items = parse(json.dumps(envelope(value)).encode(), {})
    assert items[1:] == [Ignored("inbound message"), Ignored("inbound message")]
    assert single(items[:1]).kind is EventKind.READ


@pytest.mark.parametrize(
    ("errors", "reasons"),
    [
        (
            [{"code": 131056, "title": "Pair rate limit hit"}],
            ["Meta reported system error 131056: Pair rate limit hit"],
        ),
        ([{"title": "Something"}], ["Meta reported: Something"]),
        ([{}], ["Meta reported: no detail given"]),
        (["junk"], ["Meta reported a system error: a string"]),
    ],
)
def test_system_errors_are_ignored_with_their_text(errors: object, reasons: list[str]) -> None:
    body = json.dumps(envelope({"errors": errors})).encode()
    assert parse(body, {}) == [Ignored(reason) for reason in reasons]


@pytest.mark.parametrize("field", ["account_update", "message_template_status_update", None])
def test_other_fields_are_ignored(field: str | None) -> None:
    document = envelope({"event": "APPROVED"})
    document["entry"][0]["changes"][0]["field"] = field
    assert parse(json.dumps(document).encode(), {}) == [Ignored(f"field {field!r} is not tracked")]


def test_a_value_with_nothing_we_know_is_ignored() -> None:
    body = json.dumps(envelope({"messaging_product": "whatsapp"})).encode()
    assert parse(body, {}) == [Ignored("change carried no statuses, messages or errors")]


def test_an_entry_without_changes_is_ignored() -> None:
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": []}]})
    assert parse(body.encode(), {}) == [Ignored("webhook carried no changes")]


# --- malformed bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body is not JSON"),
        (b"{", "body is not JSON"),
        (b"\xff\xfe\xfa", "body is not JSON"),
        (b"hub.mode=subscribe", "body is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not JSON"),
        (b"[]", "body is a list in JSON, expected an object"),
        (b"null", "body is null in JSON, expected an object"),
        (b'{"entry": []}', "body has object None, expected 'whatsapp_business_account'"),
        (b'{"object": "page", "entry": []}', "body has object 'page'"),
        (b'{"object": "whatsapp_business_account"}', "body has no entries (entry is null)"),
        (
            b'{"object": "whatsapp_business_account", "entry": {}}',
            "body has no entries (entry is an object)",
        ),
        (
            b'{"object": "whatsapp_business_account", "entry": []}',
            "body has no entries (entry is an empty list)",
        ),
    ],
)
def test_malformed_bodies_raise_payload_error(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=r"^meta: ") as info:
        parse(body, {})
    assert message in str(info.value)


# --- verify: X-Hub-Signature-256 ------------------------------------------------------------------

# Computed independently of this code with:
#   printf '%s' '{"object":"whatsapp_business_account","entry":[]}' \
#     | openssl dgst -sha256 -hmac 'meta-app-secret-for-tests'
KNOWN_BODY = b'{"object":"whatsapp_business_account","entry":[]}'
KNOWN_SIGNATURE = "54a69490a54636f68bda6d859aea5211297e3f23d98715aa74993cd0ad02eac4"
#   openssl dgst -sha256 -hmac 'meta-app-secret-for-tests' \
#     tests/fixtures/meta/statuses-sent-built.json
SENT_FIXTURE_SIGNATURE = "5ca20daed3bb8392eba56782d229768dccd2d04ebe9aba896a1c8af1a044cb4a"


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """Meta's documented algorithm: HMAC-SHA256 of the raw body, app secret as key, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(
    body: bytes, headers: dict[str, str] | None = None, query: dict[str, str] | None = None
) -> RequestParts:
    return WithoutUrl(
        method="POST",
        url="",
        query=query or {},
        headers=headers or {},
        body=body,
    )


def test_the_documented_algorithm_gives_the_independently_computed_vector() -> None:
    assert sign(KNOWN_BODY) == f"sha256={KNOWN_SIGNATURE}"
    assert sign(fixture_bytes("statuses-sent-built.json")) == f"sha256={SENT_FIXTURE_SIGNATURE}"


def test_a_known_good_signature_is_accepted() -> None:
    verify(post(KNOWN_BODY, {"x-hub-signature-256": f"sha256={KNOWN_SIGNATURE}"}), CONNECTION)


def test_a_signed_fixture_is_accepted() -> None:
    body = fixture_bytes("statuses-sent-built.json")
    verify(post(body, {"x-hub-signature-256": f"sha256={SENT_FIXTURE_SIGNATURE}"}), CONNECTION)


@pytest.mark.parametrize(
    "header",
    [
        f"sha256={KNOWN_SIGNATURE.upper()}",
        f"  sha256={KNOWN_SIGNATURE} ",
        f"SHA256={KNOWN_SIGNATURE}",
    ],
)
def test_case_and_surrounding_space_do_not_matter(header: str) -> None:
    verify(post(KNOWN_BODY, {"x-hub-signature-256": header}), CONNECTION)


def test_header_names_are_matched_without_regard_to_case() -> None:
    verify(post(KNOWN_BODY, {"X-Hub-Signature-256": sign(KNOWN_BODY)}), CONNECTION)


def test_wrong_secret_is_rejected() -> None:
    headers = {"x-hub-signature-256": sign(KNOWN_BODY, "another-app-secret")}
    with pytest.raises(SignatureError, match="does not match the body"):
        verify(post(KNOWN_BODY, headers), CONNECTION)


@pytest.mark.parametrize(
    "tampered",
    [
        b'{"object":"whatsapp_business_account","entry":[ ]}',
        b'{"object": "whatsapp_business_account", "entry": []}',  # re-serialized
        KNOWN_BODY + b"\n",
        b"",
    ],
)
def test_tampered_body_is_rejected(tampered: bytes) -> None:
    headers = {"x-hub-signature-256": f"sha256={KNOWN_SIGNATURE}"}
    with pytest.raises(SignatureError, match="does not match the body"):
        verify(post(tampered, headers), CONNECTION)


def test_missing_header_is_rejected_even_with_a_token_in_the_url() -> None:
    with pytest.raises(SignatureError, match="missing X-Hub-Signature-256 header") as info:
        verify(post(KNOWN_BODY, query={"token": APP_SECRET}), CONNECTION)
    assert "token in the URL is not enough" in str(info.value)
    assert "waba" in str(info.value)


def test_only_the_legacy_sha1_header_is_rejected_and_named() -> None:
    legacy = "sha1=" + hmac.new(APP_SECRET.encode(), KNOWN_BODY, hashlib.sha1).hexdigest()
    with pytest.raises(SignatureError, match="only the legacy sha1 X-Hub-Signature"):
        verify(post(KNOWN_BODY, {"x-hub-signature": legacy}), CONNECTION)


@pytest.mark.parametrize(
    "header",
    [
        KNOWN_SIGNATURE,  # without sha256=
        f"sha1={KNOWN_SIGNATURE}",
        "sha256=",
        f"sha256={KNOWN_SIGNATURE[:-1]}",
        f"sha256={KNOWN_SIGNATURE}00",
        f"sha256={'g' * 64}",
        f"sha256={'é' * 64}",
        "",
    ],
)
def test_malformed_header_is_rejected(header: str) -> None:
    with pytest.raises(SignatureError, match="malformed X-Hub-Signature-256 header"):
        verify(post(KNOWN_BODY, {"x-hub-signature-256": header}), CONNECTION)


def test_a_connection_without_app_secret_rejects_everything() -> None:
    bare = ConnectionAuth(name="waba", provider="meta", secret="")
    headers = {"x-hub-signature-256": "sha256=" + hmac.new(b"", KNOWN_BODY, "sha256").hexdigest()}
    with pytest.raises(SignatureError, match="has no app secret"):
        verify(post(KNOWN_BODY, headers), bare)


# --- handshake: GET verification request --------------------------------------------------------


def get(query: dict[str, str]) -> RequestParts:
    return WithoutUrl(
        method="GET",
        url="",
        query=query,
        headers={},
        body=b"",
    )


def documented_request() -> dict[str, str]:
    """The query of Meta's sample verification request (verification-request.txt)."""
    text = "".join(
        line.strip() for line in fixture_bytes("verification-request.txt").decode().splitlines()
    )
    method, url = text.split(" ", 1)
    assert method == "GET"
    return dict(parse_qsl(urlsplit(url).query))


def test_the_documented_verification_request_gets_its_challenge() -> None:
    query = documented_request()
    assert query == {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": "meatyhamhock",
    }
    assert handshake(get(query), CONNECTION) == "1158201444"


def test_underscored_parameter_names_are_accepted_too() -> None:
    query = {"hub_mode": "subscribe", "hub_challenge": "42", "hub_verify_token": VERIFY_TOKEN}
    assert handshake(get(query), CONNECTION) == "42"


def test_wrong_verify_token_is_refused() -> None:
    query = {**documented_request(), "hub.verify_token": "meatyhamhocks"}
    with pytest.raises(SignatureError, match=r"hub\.verify_token does not match"):
        handshake(get(query), CONNECTION)


def test_a_connection_without_verify_token_refuses_the_handshake() -> None:
    bare = ConnectionAuth(name="waba", provider="meta", secret=APP_SECRET)
    with pytest.raises(SignatureError, match="no verify_token option") as info:
        handshake(get(documented_request()), bare)
    assert "--option verify_token=" in str(info.value)


def test_the_app_secret_is_not_a_verify_token() -> None:
    query = {**documented_request(), "hub.verify_token": APP_SECRET}
    with pytest.raises(SignatureError, match=r"hub\.verify_token does not match"):
        handshake(get(query), CONNECTION)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "a GET must be Meta's verification request"),
        ({"token": APP_SECRET}, "a GET must be Meta's verification request"),
        (
            {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": VERIFY_TOKEN},
            "hub.mode must be 'subscribe', got 'unsubscribe'",
        ),
        (
            {"hub.challenge": "1", "hub.verify_token": VERIFY_TOKEN},
            "hub.mode must be 'subscribe', got None",
        ),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, "has no hub.verify_token"),
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, "has no hub.challenge"),
        (
            {"hub.mode": "subscribe", "hub.challenge": "", "hub.verify_token": VERIFY_TOKEN},
            "has no hub.challenge",
        ),
    ],
)
def test_other_gets_are_refused(query: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureError, match=re.escape(message)):
        handshake(get(query), CONNECTION)


# --- properties -----------------------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "object",
        "entry",
        "id",
        "changes",
        "field",
        "value",
        "metadata",
        "statuses",
        "messages",
        "errors",
        "status",
        "timestamp",
        "recipient_id",
        "recipient_type",
        "recipient_participant_id",
        "biz_opaque_callback_data",
        "code",
        "title",
        "message",
        "error_data",
        "details",
    ]
)
JSON_VALUES = json_values(
    KEYS,
    ["whatsapp_business_account", "messages", "group", "failed", "read", "1750857384", "{"],
    max_leaves=30,
)


def assert_parses_or_payload_error(body: bytes) -> None:
    items = parsed_or_payload_error(parse, body)
    if items is not None:
        assert items
        for index, item in enumerate(items):
            if isinstance(item, BadItem):
                assert item.index == index


@given(JSON_VALUES)
def test_arbitrary_entries_raise_only_payload_error(entry: object) -> None:
    body = {"object": "whatsapp_business_account", "entry": entry}
    assert_parses_or_payload_error(json.dumps(body).encode())


@given(st.lists(JSON_VALUES, max_size=5))
def test_arbitrary_statuses_never_raise(statuses: list[object]) -> None:
    items = parse(status_body(*statuses), {})
    assert len(items) == max(len(statuses), 1)
    assert_parses_or_payload_error(status_body(*statuses))


@given(st.binary(max_size=64), st.text(max_size=20))
def test_verify_accepts_exactly_the_right_signature(body: bytes, secret: str) -> None:
    connection = ConnectionAuth(name="waba", provider="meta", secret=secret or "s")
    verify(post(body, {"x-hub-signature-256": sign(body, connection.secret)}), connection)
    with pytest.raises(SignatureError):
        verify(
            post(body + b"x", {"x-hub-signature-256": sign(body, connection.secret)}), connection
        )
