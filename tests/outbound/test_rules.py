"""Event types, filters, masking, webhook ids and the retry schedule, with plain data."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tidings.domain.errors import Invalid
from tidings.domain.events import EventKind
from tidings.domain.outbound import (
    EVENT_TYPES,
    EventFilter,
    RetryPolicy,
    masked_for,
    message_event_type,
    parse_event_types,
    session_event_type,
    webhook_id,
)
from tidings.logging import mask_text
from tidings.outbound import signing


def test_event_types_parse_with_wildcards_and_default_to_all():
    assert parse_event_types([]) == ("*",)
    assert parse_event_types(["message.*", " message.read ", "message.*"]) == (
        "message.*",
        "message.read",
    )
    assert parse_event_types(["*"]) == ("*",)
    assert parse_event_types(["message.*", "call.*"]) == ("message.*", "call.*")  # as documented


@pytest.mark.parametrize("pattern", ["message.seen", "messages.*", "message", "calls.*", ".*"])
def test_unknown_event_types_are_refused_with_the_known_ones(pattern):
    with pytest.raises(Invalid, match="unknown event type") as raised:
        parse_event_types([pattern])
    assert "message.delivered" in str(raised.value)


def test_filters_match_type_connection_and_campaign():
    wanted = EventFilter(("message.delivered", "connection.*"), connection_id=3, campaign=None)
    assert wanted.matches("message.delivered", 3, "spring")
    assert wanted.matches("connection.qr", 3, None)
    assert not wanted.matches("message.read", 3, None)
    assert not wanted.matches("message.delivered", 4, None)
    by_campaign = EventFilter(("*",), None, "spring")
    assert by_campaign.matches("message.read", 1, "spring")
    assert not by_campaign.matches("message.read", 1, "autumn")
    assert not by_campaign.matches("connection.connected", 1, None)


def test_every_forwarded_kind_and_state_has_a_known_type():
    for kind in EventKind:
        found = message_event_type(kind)
        assert found is None or found in EVENT_TYPES
    assert message_event_type(EventKind.DELIVERED) == "message.delivered"
    assert message_event_type(EventKind.UNKNOWN) is None
    assert session_event_type("open") == "connection.connected"
    assert session_event_type("close") == "connection.disconnected"
    assert session_event_type("qrcode") == "connection.qr"
    assert session_event_type("connecting") is None


def test_webhook_ids_are_stable_and_distinct():
    assert webhook_id("message", 1, "m1", "delivered") == webhook_id(
        "message", 1, "m1", "delivered"
    )
    assert webhook_id("message", 1, "m1", "delivered") != webhook_id("message", 1, "m1", "read")
    assert webhook_id("a", "b").startswith("msg_")


def test_recipients_are_masked_unless_asked_for():
    data = {"recipient": "+5531999990000", "contact_ref": "lead-1"}
    masked = masked_for(data, False, mask_text)
    assert masked["recipient"] != data["recipient"]
    assert masked["recipient"].startswith("+55") and masked["recipient"].endswith("00")
    assert masked["contact_ref"] == "lead-1"
    assert masked_for(data, True, mask_text) == data


def test_retry_delays_follow_the_schedule_with_bounded_jitter():
    policy = RetryPolicy([5, 300], jitter=0.1)
    assert policy.next_delay(1, 0.0) == 5
    assert policy.next_delay(1, 0.999) == pytest.approx(5.4995)
    assert policy.next_delay(2, 0.5) == pytest.approx(315)
    assert policy.next_delay(3, 0.5) is None


def _now_stamp() -> int:
    """Now, when the test runs: the verifying library refuses a timestamp five minutes old,
    and a module-level "now" is taken when the suite is collected, minutes earlier."""
    return int(datetime.now(UTC).timestamp())


def test_signatures_verify_with_the_standard_webhooks_library():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    body = b'{"type":"message.read","data":{"x":"\xc3\xa9"}}'
    stamp = _now_stamp()
    headers = signing.headers([signing.secret_bytes(secret)], "msg_1", stamp, body)
    assert Webhook(secret).verify(body, headers) == {"type": "message.read", "data": {"x": "é"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_two_secrets_both_sign_and_either_verifies():
    old, new = signing.new_secret(), signing.new_secret()
    body = b"{}"
    stamp = _now_stamp()
    headers = signing.headers(
        [signing.secret_bytes(new), signing.secret_bytes(old)], "msg_2", stamp, body
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_!!!", ""])
def test_a_malformed_secret_is_refused(secret):
    with pytest.raises(signing.SecretError):
        signing.secret_bytes(secret)
