"""Infobip webhook adapter: every fixture, every status group, callbackData, auth."""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
)
from tidings.providers.base import ConnectionAuth, RequestParts
from tidings.providers.infobip import PROVIDER
from tidings.providers.infobip.webhook import parse, verify

FIXTURES = Path(__file__).parents[2] / "fixtures" / "infobip"

SECRET = "infobip-test-secret-0123456789"
CONNECTION = ConnectionAuth(
    name="mkt-email",
    provider="infobip",
    secret=SECRET,
    options={"auth_header": "x-tidings-token"},
)


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_bytes())
    return document


def parse_fixture(name: str) -> list[ParsedItem]:
    return parse((FIXTURES / name).read_bytes(), {"content-type": "application/json"})


def results_of(name: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = fixture(name)["results"]
    return results


def report(**fields: Any) -> dict[str, Any]:
    """A minimal delivery report; keyword arguments add or replace fields (None removes)."""
    base: dict[str, Any] = {
        "messageId": "M1",
        "to": "41793026727",
        "sender": "InfoSMS",
        "doneAt": "2024-05-14T09:30:12.000+0000",
        "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET"},
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def body(*reports: dict[str, Any]) -> bytes:
    return json.dumps({"results": list(reports)}).encode()


def single(items: list[ParsedItem]) -> NormalizedEvent:
    assert len(items) == 1
    (item,) = items
    assert isinstance(item, NormalizedEvent)
    return item


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- the provider ---------------------------------------------------------------------------------


def test_provider_describes_infobip() -> None:
    assert PROVIDER.name == "infobip"
    assert PROVIDER.channel == "sms"
    assert PROVIDER.body_format == "json"
    assert PROVIDER.token_in_url is True
    assert PROVIDER.auth_scheme == (
        "token (?token=), header (auth_header option) or Basic auth (secret as password)"
    )
    assert PROVIDER.verify is verify
    assert PROVIDER.parse is parse
    assert PROVIDER.reply(b"{}") is None
    assert PROVIDER.handshake(request(), CONNECTION) is None


# --- documented fixtures --------------------------------------------------------------------------


def test_documented_sms_delivery_report() -> None:
    (result,) = results_of("sms-delivery-report-v3-delivered.json")
    assert parse_fixture("sms-delivery-report-v3-delivered.json") == [
        NormalizedEvent(
            provider_message_id="MESSAGE-ID-123-xyz",
            kind=EventKind.DELIVERED,
            raw_status="DELIVERED",
            occurred_at=utc(2023, 8, 1, 10, 40),  # 16:10 at +05:30
            channel="sms",
            recipient="+41793026727",
            details=result,
        )
    ]


def test_documented_whatsapp_delivery_report() -> None:
    (result,) = results_of("whatsapp-delivery-report-delivered.json")
    assert parse_fixture("whatsapp-delivery-report-delivered.json") == [
        NormalizedEvent(
            provider_message_id="fb469d73-d362-463f-b30f-1e959b53badc",
            kind=EventKind.DELIVERED,
            raw_status="DELIVERED",
            occurred_at=datetime(2019, 4, 9, 19, 1, 56, 494000, tzinfo=UTC),
            channel="whatsapp",
            recipient="+41793026731",
            details=result,
        )
    ]


def test_documented_whatsapp_seen_report_is_read_at_seen_at() -> None:
    (result,) = results_of("whatsapp-seen-report.json")
    assert parse_fixture("whatsapp-seen-report.json") == [
        NormalizedEvent(
            provider_message_id="1215f543ab19-345f-adbd-12ad31451ed25f35",
            kind=EventKind.READ,
            raw_status="SEEN",
            occurred_at=datetime(2018, 12, 12, 11, 21, 58, 251000, tzinfo=UTC),
            channel="whatsapp",
            recipient="+41793026731",
            details=result,
        )
    ]


def test_documented_email_pull_report_names_its_channel() -> None:
    (result,) = results_of("email-reports-pull-response.json")
    assert parse_fixture("email-reports-pull-response.json") == [
        NormalizedEvent(
            provider_message_id="bbcc6960-1fcb-497c-b7ea-83ccba41492e",
            kind=EventKind.DELIVERED,
            raw_status="DELIVERED",
            occurred_at=datetime(2016, 8, 31, 13, 25, 50, 893000, tzinfo=UTC),
            channel="email",
            recipient="recipient@infobip.com",
            details=result,
        )
    ]


# --- seed fixtures (requirements document 002) ----------------------------------------------------


def test_seed_email_delivered() -> None:
    (result,) = results_of("email-dlr-delivered-seed-002.json")
    assert parse_fixture("email-dlr-delivered-seed-002.json") == [
        NormalizedEvent(
            provider_message_id="yfkgy9xol5kpl33u384n",
            kind=EventKind.DELIVERED,
            raw_status="DELIVERED",
            occurred_at=datetime(2024, 7, 16, 20, 26, 54, 966000, tzinfo=UTC),
            channel="email",
            recipient="joao.madero@quite.com.br",
            metadata={"qj_contact_id": "3"},
            details=result,
        )
    ]


def test_seed_email_undeliverable_keeps_the_error() -> None:
    (result,) = results_of("email-dlr-undeliverable-seed-002.json")
    assert parse_fixture("email-dlr-undeliverable-seed-002.json") == [
        NormalizedEvent(
            provider_message_id="vzl7uvqhq7lt1fa66718",
            kind=EventKind.FAILED,
            raw_status="UNDELIVERABLE",
            occurred_at=datetime(2024, 7, 16, 20, 15, 21, 288000, tzinfo=UTC),
            channel="email",
            recipient="joao.madero@quite.com.br",
            failure_code="6012",
            failure_reason="Sending address invalid, possible syntax error",
            failure_permanent=True,
            after_send=True,
            metadata={"qj_contact_id": "3"},
            details=result,
        )
    ]


def test_seed_suppressed_bounce_without_results_wrapper() -> None:
    result = fixture("email-dlr-suppressed-bounce-seed-002.json")
    assert parse_fixture("email-dlr-suppressed-bounce-seed-002.json") == [
        NormalizedEvent(
            provider_message_id="1955tld5lqf3mn9ou3tz",
            kind=EventKind.FAILED,
            raw_status="UNDELIVERABLE",
            occurred_at=datetime(2024, 9, 3, 18, 10, 44, 395000, tzinfo=UTC),
            channel="email",
            recipient="paulorobetovlopes@hotmail.com",
            failure_code="6034",
            failure_reason="Recipient address suppressed due to bounce",
            failure_permanent=True,
            after_send=True,
            metadata={
                "qj_approach_flow_id": "35",
                "qj_approach_flow_name": "[EMAIL] L - Fluxo Sem Interações",
                "qj_approach_flow_campaign": "Setembro/2024_sem_interações",
                "qj_contact_id": "310372388",
                "qj_creditor_id": "2",
                "qj_creditor_name": "Quite",
                "qj_customer_id": "43816741",
                "qj_stimulus_hot": "1",
                "qj_approach_offset": "1",
                "qj_snapshot": "6892059880",
                "qj_subject": (
                    "Paulo, você foi contemplado com uma condição especial Geru! \U0001f381"
                ),
                "qj_deal_id": "88921261",
                "qj_stimulus_history_id": "408",
                "qj_firing_id": "485456",
            },
            details=result,
        )
    ]


# (messageId, doneAt in UTC, to, contact, customer, snapshot, first name, deal)
_PYTHON_LITERAL_BATCH = [
    ("jymy9kls8qx59blkizg4", 621, "xbbvalle@mail.com", "124127953", "39100489",
     "11038928605", "Alexandre", "173084073"),
    ("e8d7z6zlm8o88t7k58qi", 547, "thiagocsfoz@mail.com", "111372120", "33463879",
     "5901886909", "Thiago", "193175357"),
    ("1ruocbp8ccqv1sx2k7uy", 564, "lgg.noia@mail.com", "208821129", "45895586",
     "2079960083", "Luis", "122268724"),
    ("rap1yuru9sy6rktvgq77", 575, "thiagogiatti0@mail.com", "277652016", "41771150",
     "46348910857", "Thiago", "181035514"),
    ("hikah5b6b3hfqocz5bux", 582, "luisgomes@mail.com", "261041888", "41263238",
     "38043996814", "Kevim", "197563808"),
]  # fmt: skip


def test_seed_batch_with_python_literal_callback_data() -> None:
    name = "email-dlr-delivered-batch-python-literal-callbackdata-seed-002.json"
    results = results_of(name)
    expected = [
        NormalizedEvent(
            provider_message_id=message_id,
            kind=EventKind.DELIVERED,
            raw_status="DELIVERED",
            occurred_at=datetime(2024, 8, 7, 11, 43, 7, millis * 1000, tzinfo=UTC),
            channel="email",
            recipient=to,
            metadata={
                "qj_approach_flow_id": "1783",
                "qj_approach_flow_name": "[aquecimento]",
                "qj_approach_flow_campaign": "aquecimento",
                "qj_contact_id": contact,
                "qj_creditor_id": "13",
                "qj_creditor_name": "Geru",
                "qj_customer_id": customer,
                "qj_stimulus_hot": "1",
                "qj_approach_offset": "1",
                "qj_snapshot": snapshot,
                "qj_subject": (
                    f"{first_name}, agora você pode contar com a QuiteJá para dar adeus a "
                    "pendência Geru!"
                ),
                "qj_deal_id": deal,
                "qj_stimulus_history_id": "1546277",
                "qj_firing_id": "489166",
            },
            details=result,
        )
        for (message_id, millis, to, contact, customer, snapshot, first_name, deal), result in zip(
            _PYTHON_LITERAL_BATCH, results, strict=True
        )
    ]
    assert parse_fixture(name) == expected


def test_seed_tracking_opened() -> None:
    event = fixture("email-tracking-opened-seed-002.json")
    assert parse_fixture("email-tracking-opened-seed-002.json") == [
        NormalizedEvent(
            provider_message_id="3nghqee2ktl9c6ta3z56",
            kind=EventKind.OPENED,
            raw_status="OPENED",
            occurred_at=datetime(2024, 7, 16, 20, 24, 4, 325000, tzinfo=UTC),
            channel="email",
            recipient="joao.madero@quite.com.br",
            metadata={"qj_contact_id": "3"},
            details={
                **event,
                "geolocation": {"countryName": "United States", "city": "Mountain View"},
            },
        )
    ]


def test_seed_tracking_clicked_keeps_the_url_and_device() -> None:
    event = fixture("email-tracking-clicked-seed-002.json")
    (parsed,) = parse_fixture("email-tracking-clicked-seed-002.json")
    assert parsed == NormalizedEvent(
        provider_message_id="yfkgy9xol5kpl33u384n",
        kind=EventKind.CLICKED,
        raw_status="CLICKED",
        occurred_at=datetime(2024, 7, 16, 20, 27, 20, 510000, tzinfo=UTC),
        channel="email",
        recipient="joao.madero@quite.com.br",
        metadata={"qj_contact_id": "3"},
        details={**event, "geolocation": {"countryName": "Brazil", "city": "Sao Paulo"}},
    )
    assert isinstance(parsed, NormalizedEvent)
    assert parsed.details["url"] == "www.google.com?utm_medium=email"
    assert parsed.details["recipientInfo"] == {
        "deviceType": "Desktop",
        "os": "Unknown",
        "deviceName": "PC",
    }


def test_seed_tracking_unsubscribed_with_geo_location_key() -> None:
    event = fixture("email-tracking-unsubscribed-seed-002.json")
    assert parse_fixture("email-tracking-unsubscribed-seed-002.json") == [
        NormalizedEvent(
            provider_message_id="14b734recsf69n8zkao5",
            kind=EventKind.UNSUBSCRIBED,
            raw_status="UNSUBSCRIBED",
            occurred_at=utc(2024, 1, 1, 11, 0),
            channel="email",
            recipient="john.doe@some-domain.com",
            metadata={"qj_contact_id": "3"},
            details={
                **event,
                "geolocation": {"city": "Los Angeles", "countryName": "United States"},
            },
        )
    ]


def test_seed_tracking_complained_without_device_or_location() -> None:
    event = fixture("email-tracking-complained-seed-002.json")
    assert parse_fixture("email-tracking-complained-seed-002.json") == [
        NormalizedEvent(
            provider_message_id="14b734recsf69n8zkao5",
            kind=EventKind.COMPLAINED,
            raw_status="COMPLAINED",
            occurred_at=utc(2024, 1, 1, 11, 0),
            channel="email",
            recipient="john.doe@some-domain.com",
            metadata={"qj_contact_id": "3"},
            details=event,
        )
    ]


# --- built fixtures -------------------------------------------------------------------------------


def test_built_rejected_is_failed_before_send_with_the_status_as_reason() -> None:
    (result,) = results_of("sms-delivery-report-rejected-built.json")
    assert parse_fixture("sms-delivery-report-rejected-built.json") == [
        NormalizedEvent(
            provider_message_id="2034072219640523073",
            kind=EventKind.FAILED,
            raw_status="REJECTED",
            occurred_at=datetime(2024, 5, 14, 9, 30, 12, 410000, tzinfo=UTC),
            channel="sms",
            recipient="+385981178111",
            failure_code=None,
            failure_reason="Not enough credits",
            failure_permanent=None,
            after_send=False,
            metadata={"qj_contact_id": "42", "campaign": "spring-sms"},
            details=result,
        )
    ]


def test_built_expired_is_failed_after_send_and_not_permanent() -> None:
    (result,) = results_of("sms-delivery-report-expired-built.json")
    assert parse_fixture("sms-delivery-report-expired-built.json") == [
        NormalizedEvent(
            provider_message_id="2034072219640523074",
            kind=EventKind.FAILED,
            raw_status="EXPIRED",
            occurred_at=datetime(2024, 5, 16, 9, 30, 13, 2000, tzinfo=UTC),
            channel="sms",
            recipient="+385981178112",
            failure_code="6",
            failure_reason="Absent Subscriber",
            failure_permanent=False,
            after_send=True,
            metadata={"qj_contact_id": "43", "campaign": "spring-sms"},
            details=result,
        )
    ]


def test_built_pending_is_queued() -> None:
    (result,) = results_of("sms-delivery-report-pending-built.json")
    assert parse_fixture("sms-delivery-report-pending-built.json") == [
        NormalizedEvent(
            provider_message_id="2034072219640523075",
            kind=EventKind.QUEUED,
            raw_status="PENDING",
            occurred_at=datetime(2024, 5, 14, 9, 30, 14, 120000, tzinfo=UTC),
            channel="sms",
            recipient="+385981178113",
            metadata={"qj_contact_id": "44", "campaign": "spring-sms"},
            details=result,
        )
    ]


def test_built_unknown_group_is_an_unknown_event_at_sent_at() -> None:
    (result,) = results_of("sms-delivery-report-unknown-group-built.json")
    assert parse_fixture("sms-delivery-report-unknown-group-built.json") == [
        NormalizedEvent(
            provider_message_id="2034072219640523076",
            kind=EventKind.UNKNOWN,
            raw_status="SCHEDULED",
            occurred_at=datetime(2024, 5, 14, 9, 30, 12, 345000, tzinfo=UTC),  # no doneAt
            channel="sms",
            recipient="+385981178114",
            details=result,
        )
    ]


def test_built_batch_with_a_bad_item_still_parses_the_others() -> None:
    results = results_of("sms-delivery-report-batch-with-bad-item-built.json")
    assert parse_fixture("sms-delivery-report-batch-with-bad-item-built.json") == [
        NormalizedEvent(
            provider_message_id="2034072219640523081",
            kind=EventKind.DELIVERED,
            raw_status="DELIVERED",
            occurred_at=datetime(2024, 5, 14, 10, 0, 3, 512000, tzinfo=UTC),
            channel="sms",
            recipient="+385981178115",
            metadata={"qj_contact_id": "45", "campaign": "spring-sms"},
            details=results[0],
        ),
        BadItem(
            index=1,
            error=(
                "infobip: report has no messageId "
                "(the id Infobip returned when the message was sent)"
            ),
        ),
        NormalizedEvent(
            provider_message_id="2034072219640523083",
            kind=EventKind.FAILED,
            raw_status="UNDELIVERABLE",
            occurred_at=datetime(2024, 5, 14, 10, 0, 5, 700000, tzinfo=UTC),
            channel="sms",
            recipient="+385981178117",
            failure_code="1",
            failure_reason="Unknown Subscriber",
            failure_permanent=True,
            after_send=True,
            metadata={"qj_contact_id": "47", "campaign": "spring-sms"},
            details=results[2],
        ),
    ]


# --- status groups --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "kind", "after_send"),
    [
        ("ACCEPTED", EventKind.QUEUED, False),
        ("PENDING", EventKind.QUEUED, False),
        ("DELIVERED", EventKind.DELIVERED, False),
        ("UNDELIVERABLE", EventKind.FAILED, True),
        ("EXPIRED", EventKind.FAILED, True),
        ("REJECTED", EventKind.FAILED, False),
        ("delivered", EventKind.DELIVERED, False),
        (" Expired ", EventKind.FAILED, True),
        ("SEEN", EventKind.UNKNOWN, False),
        ("CANCELLED", EventKind.UNKNOWN, False),
    ],
)
def test_status_group_mapping(group: str, kind: EventKind, after_send: bool) -> None:
    event = single(parse(body(report(status={"groupName": group})), {}))
    assert (event.kind, event.raw_status, event.after_send) == (kind, group, after_send)
    if kind is EventKind.FAILED:
        assert event.failure_reason == f"Infobip reported {group.strip().upper()} (no reason given)"
    else:
        assert (event.failure_code, event.failure_reason) == (None, None)


def test_status_and_error_objects_are_kept_in_details() -> None:
    status = {"groupId": 2, "groupName": "UNDELIVERABLE", "id": 9, "name": "UNDELIVERABLE_X"}
    error = {"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 1, "name": "EC_UNKNOWN_SUBSCRIBER"}
    event = single(parse(body(report(status=status, error=error)), {}))
    assert event.details["status"] == status
    assert event.details["error"] == error


# --- the error object -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "reason", "permanent"),
    [
        (
            {
                "id": 6012,
                "name": "EC_X",
                "description": "Sending address invalid",
                "permanent": True,
            },
            "6012",
            "Sending address invalid",
            True,
        ),
        (
            {"id": 27, "name": "EC_ABSENT_SUBSCRIBER", "permanent": False},
            "27",
            "EC_ABSENT_SUBSCRIBER",
            False,
        ),
        (
            {"name": "EC_SUPPRESSED_BOUNCE", "description": "suppressed"},
            "EC_SUPPRESSED_BOUNCE",
            "suppressed",
            None,
        ),
        (
            {"id": "6034", "description": "suppressed", "permanent": "yes"},
            "6034",
            "suppressed",
            None,
        ),
        ({"id": 77}, "77", "Message not delivered", None),
        (
            {"id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": False},
            None,
            "Message not delivered",
            None,
        ),
        ({"name": "NO_ERROR", "description": "No Error"}, None, "Message not delivered", None),
        ({}, None, "Message not delivered", None),
        ("EC_SOMETHING", None, "Message not delivered", None),
        (None, None, "Message not delivered", None),
    ],
)
def test_error_object_becomes_the_failure(
    error: object, code: str | None, reason: str, permanent: bool | None
) -> None:
    status = {
        "groupName": "UNDELIVERABLE",
        "name": "UNDELIVERABLE_NOT_DELIVERED",
        "description": "Message not delivered",
    }
    event = single(parse(body(report(status=status, error=error)), {}))
    assert (event.failure_code, event.failure_reason, event.failure_permanent) == (
        code,
        reason,
        permanent,
    )


def test_failure_reason_falls_back_to_the_status_name() -> None:
    status = {"groupName": "REJECTED", "name": "REJECTED_DESTINATION"}
    event = single(parse(body(report(status=status)), {}))
    assert (event.failure_code, event.failure_reason) == (None, "REJECTED_DESTINATION")


def test_an_error_on_a_delivered_report_is_not_a_failure() -> None:
    error = {"id": 6012, "name": "EC_X", "description": "odd", "permanent": True}
    event = single(parse(body(report(error=error)), {}))
    assert (event.failure_code, event.failure_reason, event.failure_permanent) == (None, None, None)
    assert event.details["error"] == error


# --- callbackData ---------------------------------------------------------------------------------


def metadata_of(callback_data: object) -> dict[str, str]:
    return dict(single(parse(body(report(callbackData=callback_data)), {})).metadata)


@pytest.mark.parametrize(
    ("callback_data", "metadata"),
    [
        ('{"qj_contact_id": 3}', {"qj_contact_id": "3"}),
        (
            "{'qj_contact_id': '3', 'campaign': 'spring'}",
            {"qj_contact_id": "3", "campaign": "spring"},
        ),
        (
            "{'qj_subject': 'voc\\u00ea', 'qj_firing_id': 489166}",
            {"qj_subject": "você", "qj_firing_id": "489166"},
        ),
        (
            "  {'a': True, 'b': None, 'c': 1.5, 'd': [1, 'x'], 'e': {'f': 1}}  ",
            {"a": "true", "c": "1.5", "d": '[1, "x"]', "e": '{"f": 1}'},
        ),
        ("{1: 'one', (2, 3): {4, 5}}", {"1": "one", "(2, 3)": "{4, 5}"}),
        ("{'path': 'C:\\d\\e'}", {"path": "C:\\d\\e"}),
        ({"qj_contact_id": 7, "skip": None}, {"qj_contact_id": "7"}),
        ("campaign=spring;contact=7", {"callbackData": "campaign=spring;contact=7"}),
        ("{not json, not python}", {"callbackData": "{not json, not python}"}),
        ("{'unterminated': 'x'", {"callbackData": "{'unterminated': 'x'"}),
        ("3", {"callbackData": "3"}),
        ('"quoted"', {"callbackData": '"quoted"'}),
        ("[1, 2]", {"callbackData": "[1, 2]"}),
        ("{'a', 'b'}", {"callbackData": "{'a', 'b'}"}),
        (42, {"callbackData": "42"}),
        ("", {}),
        ("   ", {}),
        (None, {}),
    ],
)
def test_callback_data_becomes_metadata(callback_data: object, metadata: dict[str, str]) -> None:
    assert metadata_of(callback_data) == metadata


@pytest.mark.parametrize(
    "code",
    [
        "{'x': __import__('sys').modules.__setitem__('tidings_infobip_pwned', 1)}",
        "__import__('sys').modules.__setitem__('tidings_infobip_pwned', 1)",
        "{'x': (lambda: __import__('sys').modules.__setitem__('tidings_infobip_pwned', 1))()}",
        "{**__import__('sys').modules.__setitem__('tidings_infobip_pwned', 1)}",
    ],
)
def test_callback_data_code_is_never_run(code: str) -> None:
    assert metadata_of(code) == {"callbackData": code}
    assert "tidings_infobip_pwned" not in sys.modules


def test_oversized_python_literal_is_kept_as_text() -> None:
    text = "{'note': '" + "x" * 30_000 + "'}"
    assert metadata_of(text) == {"callbackData": text}


def test_deeply_nested_callback_data_is_kept_as_text() -> None:
    text = "{'a': " + "[" * 5_000 + "]" * 5_000 + "}"
    assert metadata_of(text) == {"callbackData": text}


def test_callback_data_of_a_tracking_event_and_a_seen_report() -> None:
    tracking = {"notificationType": "OPENED", "messageId": "M1", "callbackData": "{'k': 'v'}"}
    seen = {"messageId": "M2", "seenAt": "2024-01-01T00:00:00.000+0000", "callbackData": "{'k': 1}"}
    assert single(parse(json.dumps(tracking).encode(), {})).metadata == {"k": "v"}
    assert single(parse(body(seen), {})).metadata == {"k": "1"}


# --- event time -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("done_at", "sent_at", "expected"),
    [
        ("2019-11-09T16:00:00.000+0000", None, utc(2019, 11, 9, 16, 0)),
        (
            "2024-07-16T17:26:54.966-0300",
            None,
            datetime(2024, 7, 16, 20, 26, 54, 966000, tzinfo=UTC),
        ),
        ("2023-08-01T16:10:00+05:30", None, utc(2023, 8, 1, 10, 40)),
        ("2023-08-01T16:10:00Z", None, utc(2023, 8, 1, 16, 10)),
        ("2023-08-01T16:10:00", None, utc(2023, 8, 1, 16, 10)),  # no offset: UTC
        (" 2023-08-01T16:10:00.5+0000 ", None, datetime(2023, 8, 1, 16, 10, 0, 500000, tzinfo=UTC)),
        (None, "2023-08-01T16:09:00.000+0000", utc(2023, 8, 1, 16, 9)),
        ("yesterday", "2023-08-01T16:09:00.000+0000", utc(2023, 8, 1, 16, 9)),
        ("9999-12-31T23:59:59-0100", None, None),  # beyond datetime's range in UTC
        ("yesterday", None, None),
        (1690906200000, None, utc(2023, 8, 1, 16, 10)),
        (True, None, None),
        (None, None, None),
    ],
)
def test_event_time_is_done_at_else_sent_at_in_utc(
    done_at: object, sent_at: object, expected: datetime | None
) -> None:
    event = single(parse(body(report(doneAt=done_at, sentAt=sent_at)), {}))
    assert event.occurred_at == expected
    if expected is not None:
        assert event.occurred_at is not None and event.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("send_date_time", "expected"),
    [
        (1704106800000, utc(2024, 1, 1, 11, 0)),
        (1704106800, utc(2024, 1, 1, 11, 0)),  # seconds, tolerated
        ("2024-01-01T11:00:00.000+0000", utc(2024, 1, 1, 11, 0)),
        (1e300, None),
        (None, None),
    ],
)
def test_tracking_time_is_send_date_time(send_date_time: object, expected: datetime | None) -> None:
    tracking = {"notificationType": "OPENED", "messageId": "M1", "sendDateTime": send_date_time}
    assert single(parse(json.dumps(tracking).encode(), {})).occurred_at == expected


# --- channel and recipient ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "channel"),
    [
        ({"channel": "EMAIL", "to": "41793026727"}, "email"),
        ({"channel": "WHATSAPP", "sender": "InfoSMS"}, "whatsapp"),
        ({"channel": "SMS", "to": "a@b.example"}, "sms"),
        ({"to": "someone@example.com", "smsCount": 1}, "email"),
        ({"sender": None, "messageCount": 1}, "whatsapp"),
        ({"sender": None, "messageCount": 1, "mccMnc": "22801"}, "sms"),
        ({"sender": None, "smsCount": 1}, "sms"),
        ({"sender": None}, "sms"),
        ({"channel": "", "sender": None}, "sms"),
    ],
)
def test_channel_named_or_inferred(fields: dict[str, Any], channel: str) -> None:
    assert single(parse(body(report(**fields)), {})).channel == channel


def test_seen_report_channel_can_be_named() -> None:
    seen = {"messageId": "M1", "seenAt": "2024-01-01T00:00:00Z", "channel": "VIBER"}
    assert single(parse(body(seen), {})).channel == "viber"


@pytest.mark.parametrize(
    ("to", "recipient"),
    [
        ("41793026727", "+41793026727"),
        (" +41793026727 ", "+41793026727"),
        (41793026727, "+41793026727"),
        ("Joao.Madero@quite.com.br", "Joao.Madero@quite.com.br"),
        ("a42fa0e0-1d5f-44f6-a321-0e40300f7712", "a42fa0e0-1d5f-44f6-a321-0e40300f7712"),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_recipient(to: object, recipient: str | None) -> None:
    assert single(parse(body(report(to=to)), {})).recipient == recipient


def test_message_id_is_trimmed_and_numbers_accepted() -> None:
    assert single(parse(body(report(messageId=" M1 ")), {})).provider_message_id == "M1"
    assert single(parse(body(report(messageId=1688025180464000014)), {})).provider_message_id == (
        "1688025180464000014"
    )


# --- tracking events ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notification", "kind"),
    [
        ("OPENED", EventKind.OPENED),
        ("CLICKED", EventKind.CLICKED),
        ("UNSUBSCRIBED", EventKind.UNSUBSCRIBED),
        ("COMPLAINED", EventKind.COMPLAINED),
        ("opened", EventKind.OPENED),
        ("BOUNCED", EventKind.UNKNOWN),
        ("DELIVERED", EventKind.UNKNOWN),
    ],
)
def test_tracking_notification_types(notification: str, kind: EventKind) -> None:
    tracking = {"notificationType": notification, "messageId": "M1", "recipient": "a@b.example"}
    event = single(parse(json.dumps(tracking).encode(), {}))
    assert (event.kind, event.raw_status, event.channel, event.after_send) == (
        kind,
        notification,
        "email",
        False,
    )
    assert (event.failure_code, event.failure_reason) == (None, None)


def test_tracking_events_inside_results_parse_too() -> None:
    tracking = {"notificationType": "CLICKED", "messageId": "M1", "url": "https://example.com"}
    event = single(parse(body(tracking), {}))
    assert (event.kind, event.details["url"]) == (EventKind.CLICKED, "https://example.com")


# --- batches and malformed bodies -----------------------------------------------------------------


def test_empty_results_are_ignored() -> None:
    assert parse(b'{"results": []}', {}) == [Ignored("report batch with no results")]


def test_bad_items_are_reported_by_index() -> None:
    items = parse(
        body(
            "not a report",  # type: ignore[arg-type]
            report(messageId="M2"),
            {"messageId": "M3"},
            report(messageId="M4", status={"name": "DELIVERED_TO_HANDSET"}),
            report(messageId="M5", status="DELIVERED"),
            {"messageId": "M6", "notificationType": None},
        ),
        {},
    )
    assert items[1] == single(parse(body(report(messageId="M2")), {}))
    assert [item for item in items if isinstance(item, BadItem)] == [
        BadItem(0, "infobip: report is a string, expected an object"),
        BadItem(2, "infobip: report for message 'M3' has no status, seenAt or notificationType"),
        BadItem(
            3,
            "infobip: report for message 'M4' has no status.groupName "
            "(e.g. DELIVERED, UNDELIVERABLE)",
        ),
        BadItem(
            4,
            "infobip: report for message 'M5' has no status.groupName "
            "(e.g. DELIVERED, UNDELIVERABLE)",
        ),
        BadItem(
            5,
            "infobip: tracking event for message 'M6' has no notificationType "
            "(e.g. OPENED, CLICKED)",
        ),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "body is not JSON"),
        (b"{", "body is not JSON"),
        (b"\xff\xfe\xfa", "body is not JSON"),
        (b"results=1", "body is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not JSON"),
        (b"[]", "body is JSON a list"),
        (b'"DELIVERED"', "body is JSON a string"),
        (b"null", "body is JSON null"),
        (b"3", "body is JSON a number"),
        (b"{}", "body has no results, messageId, status, seenAt or notificationType"),
        (
            b'{"event": "messages.update"}',
            "body has no results, messageId, status, seenAt or notificationType",
        ),
        (b'{"results": {"messageId": "M1"}}', "results is an object; expected a list of reports"),
        (b'{"results": null}', "results is null"),
        (b'{"status": {"groupName": "DELIVERED"}}', "report has no messageId"),
        (b'{"messageId": "M1"}', "has no status, seenAt or notificationType"),
        (b'{"messageId": "M1", "status": {}}', "has no status.groupName"),
        (b'{"notificationType": "OPENED"}', "report has no messageId"),
    ],
)
def test_malformed_bodies_raise_payload_error(raw: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=r"^infobip: ") as info:
        parse(raw, {})
    assert message in str(info.value)


def test_payload_error_says_what_is_expected() -> None:
    with pytest.raises(PayloadError) as info:
        parse(b"[1, 2]", {})
    assert '{"results": [' in str(info.value)
    assert "notificationType" in str(info.value)


# --- verify ---------------------------------------------------------------------------------------


def request(
    query: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> RequestParts:
    return RequestParts(
        method="POST",
        url="https://tidings.example.com/hooks/infobip/mkt-email",
        query=query or {},
        headers=headers or {},
        body=b"{}",
    )


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


@pytest.mark.parametrize("user", ["infobip", "", "any:user-name"])
def test_basic_auth_with_the_secret_as_password_is_accepted(user: str) -> None:
    headers = basic(user.split(":")[0], SECRET)
    verify(request(headers=headers), CONNECTION)


def test_basic_scheme_is_case_insensitive() -> None:
    header = basic("infobip", SECRET)["authorization"].replace("Basic", "BASIC")
    verify(request(headers={"authorization": header}), CONNECTION)


def test_basic_auth_with_a_wrong_password_is_rejected() -> None:
    with pytest.raises(SignatureError, match="wrong Basic auth password"):
        verify(request(headers=basic("infobip", "nope")), CONNECTION)


def test_basic_auth_with_the_secret_as_username_is_rejected() -> None:
    with pytest.raises(SignatureError, match="wrong Basic auth password"):
        verify(request(headers=basic(SECRET, "")), CONNECTION)


def test_a_right_basic_password_beside_a_wrong_token_is_accepted() -> None:
    verify(request(query={"token": "stale"}, headers=basic("infobip", SECRET)), CONNECTION)


def test_wrong_token_and_wrong_basic_password_are_rejected() -> None:
    with pytest.raises(SignatureError, match="wrong Basic auth password"):
        verify(request(query={"token": "stale"}, headers=basic("infobip", "nope")), CONNECTION)


def test_auth_header_named_authorization_takes_the_secret_or_basic_auth() -> None:
    connection = ConnectionAuth(
        name="sms", provider="infobip", secret=SECRET, options={"auth_header": "Authorization"}
    )
    verify(request(headers={"authorization": SECRET}), connection)
    verify(request(headers=basic("infobip", SECRET)), connection)
    with pytest.raises(SignatureError, match="wrong secret"):
        verify(request(headers={"authorization": "Bearer nope"}), connection)


def test_missing_credentials_say_how_to_authenticate() -> None:
    with pytest.raises(SignatureError, match="missing credentials") as info:
        verify(request(), CONNECTION)
    message = str(info.value)
    assert "'mkt-email'" in message
    assert "?token=" in message
    assert "'x-tidings-token'" in message
    assert "Basic auth" in message


def test_missing_credentials_without_a_header_option() -> None:
    bare = ConnectionAuth(name="sms", provider="infobip", secret=SECRET)
    with pytest.raises(SignatureError, match="missing credentials") as info:
        verify(request(headers={"x-tidings-token": SECRET}), bare)
    assert "header" not in str(info.value)


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (f"App {SECRET}", "uses 'App'"),
        (f"Bearer {SECRET}", "uses 'Bearer'"),
        ("Basic not-base64!", "not valid base64"),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "not valid base64"),
        ("Basic " + base64.b64encode(SECRET.encode()).decode(), "no 'user:password' form"),
        ("Basic", "carries no credentials"),
        ("Basic   ", "carries no credentials"),
    ],
)
def test_unusable_authorization_headers_are_rejected(authorization: str, message: str) -> None:
    with pytest.raises(SignatureError, match=r"^infobip connection 'mkt-email': ") as info:
        verify(request(headers={"authorization": authorization}), CONNECTION)
    assert message in str(info.value)


# --- properties -----------------------------------------------------------------------------------

_KEYS = [
    "results",
    "messageId",
    "to",
    "status",
    "groupName",
    "error",
    "id",
    "name",
    "description",
    "permanent",
    "doneAt",
    "sentAt",
    "seenAt",
    "callbackData",
    "notificationType",
    "sendDateTime",
    "channel",
    "recipient",
    "geoLocation",
    "messageCount",
]

JSON_VALUES = json_values(
    _KEYS,
    [
        "DELIVERED",
        "UNDELIVERABLE",
        "OPENED",
        "2019-11-09T16:00:00.000+0000",
        "{'a': 1}",
        '{"a": 1}',
        "a@b.example",
    ],
)


def assert_parses_or_payload_error(raw: bytes) -> None:
    parsed_or_payload_error(parse, raw)


@given(JSON_VALUES)
def test_arbitrary_results_raise_only_payload_error(value: object) -> None:
    assert_parses_or_payload_error(json.dumps({"results": value}).encode())


@given(st.lists(JSON_VALUES, max_size=4))
def test_arbitrary_report_items_raise_only_payload_error(items: list[object]) -> None:
    assert_parses_or_payload_error(json.dumps({"results": items}).encode())


@given(st.text(max_size=60) | st.text(alphabet="{}[]()'\":,\\ 0123456789abcux_.", max_size=60))
def test_arbitrary_callback_data_becomes_text_metadata(text: str) -> None:
    metadata = metadata_of(text)
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in metadata.items())


def test_an_empty_basic_password_never_matches_an_empty_secret() -> None:
    """A connection left without a secret must not take anyone's empty password."""
    bare = ConnectionAuth(CONNECTION.name, CONNECTION.provider, "", CONNECTION.options)
    with pytest.raises(SignatureError, match="wrong Basic auth password"):
        verify(request(headers=basic("anyone", "")), bare)
