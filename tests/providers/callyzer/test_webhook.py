"""Callyzer webhook parsing: every envelope real senders use, numbers with and without their
country code, local times with zone abbreviations, unknown call types, and the bodies that
are no Callyzer shape (PayloadError: dead-lettered at once)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fixture_bytes, fixture_json
from tests.providers.fuzzing import json_values, parsed_or_payload_error
from tidings.domain.calls import CallRecord, CallType, Employee
from tidings.domain.errors import PayloadError
from tidings.domain.events import BadItem, Ignored
from tidings.providers.base import DEFAULT_TIMEZONE
from tidings.providers.callyzer.webhook import parse, parse_call, parse_with
from tidings.providers.registry import PROVIDERS

KOLKATA = {"timezone": "Asia/Kolkata"}


def records(body: bytes, options: dict[str, str] | None = None) -> list[CallRecord]:
    items = parse_with(body, {}, KOLKATA if options is None else options)
    assert all(isinstance(i, CallRecord) for i in items), items
    return [i for i in items if isinstance(i, CallRecord)]


def test_a_list_of_employees_gives_every_call_with_its_employee() -> None:
    found = records(fixture_bytes("callyzer", "employees-list-built.json"))
    assert [(r.call_id, r.type, r.employee and r.employee.code) for r in found] == [
        ("6641b2f0c1a2b3d4e5f60718", CallType.OUTGOING, "EMP-001"),
        ("6641b2f0c1a2b3d4e5f60719", CallType.MISSED, "EMP-001"),
        ("6641b2f0c1a2b3d4e5f6071a", CallType.INCOMING, "EMP-002"),
    ]
    first = found[0]
    assert first.employee == Employee(
        code="EMP-001",
        name="Asha Verma",
        number="+919876543210",
        country_code="91",
        tags=("north", "inside-sales"),
    )
    assert first.client_name == "Ravi Kumar"
    assert first.client_number == "+919123456780"
    assert first.duration_seconds == 64
    assert first.raw_type == "Outgoing"
    assert first.note == "Asked for a quote"
    assert first.crm_status == "Interested"
    assert first.recording_url is None  # empty is normal: recording is per device
    # 10:44:41 in Kolkata (UTC+05:30) is 05:14:41 UTC.
    assert first.started_at == datetime(2026, 7, 28, 5, 14, 41, tzinfo=UTC)
    assert first.synced_at == first.modified_at == datetime(2026, 7, 28, 5, 15, 2, tzinfo=UTC)
    assert first.notes == ()
    assert found[1].client_number == "+919123456781"  # the trunk 0 dropped
    assert found[2].employee is not None and found[2].employee.number == "+48601234567"
    assert found[2].client_number == "+48512345678"
    assert found[2].recording_url == ("https://recordings.example.com/6641b2f0c1a2b3d4e5f6071a.mp3")


def test_one_employee_object() -> None:
    [found] = records(fixture_bytes("callyzer", "employee-object-built.json"))
    assert found.call_id == "6641b2f0c1a2b3d4e5f6071b"
    assert found.type is CallType.REJECTED
    assert found.employee is not None and found.employee.code == "EMP-001"


def test_one_flat_call_carries_its_employee_fields() -> None:
    [found] = records(fixture_bytes("callyzer", "flat-call-built.json"))
    assert found.employee == Employee("EMP-001", "Asha Verma", "+919876543210", "91", ("north",))
    assert found.client_number == "+919123456780"  # "+91 91234 56780"
    assert found.crm_status == "Follow up"


def test_a_list_of_flat_calls_keeps_an_unknown_type_with_its_word() -> None:
    found = records(fixture_bytes("callyzer", "flat-calls-list-built.json"))
    assert [(r.type, r.raw_type) for r in found] == [
        (CallType.OUTGOING, "Outgoing"),
        (CallType.UNKNOWN, "Voicemail"),
    ]


@pytest.mark.parametrize("wrapper", ["result", "data"])
def test_a_wrapped_body_is_read_inside_its_wrapper(wrapper: str) -> None:
    inner = fixture_json("callyzer", "employees-list-built.json")
    body = json.dumps({"message": "Success", wrapper: inner, "total_records": 3}).encode()
    assert len(records(body)) == 3


def test_the_history_api_answer_parses_like_a_webhook() -> None:
    [found] = records(fixture_bytes("callyzer", "history-response-built.json"))
    assert found.call_id == "6641b2f0c1a2b3d4e5f6071f"
    assert found.employee is not None and found.employee.code == "EMP-001"


def test_parse_call_reads_one_history_entry_with_the_connection_options() -> None:
    entry = fixture_json("callyzer", "history-response-built.json")["result"][0]
    found = parse_call(entry, {"timezone": "Asia/Kolkata"})
    assert found.started_at == datetime(2026, 7, 31, 4, 30, tzinfo=UTC)
    assert found.duration_seconds == 95
    assert found.client_number == "+919123456780"
    employee = {"emp_code": "X9", "emp_number": "601234567", "emp_country_code": "48"}
    other = parse_call({**entry, "emp_code": "ignored"}, {}, employee)
    assert other.employee == Employee("X9", None, "+48601234567", "48", ())


def test_parse_call_refuses_a_call_without_an_id() -> None:
    with pytest.raises(PayloadError, match="without an id"):
        parse_call({"call_type": "Incoming"}, {})


def call(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "c1",
        "call_date": "2026-07-28",
        "call_time": "10:44:41",
        "call_type": "Incoming",
        "client_number": "9123456780",
        "duration": 10,
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    ("fields", "options", "expected"),
    [
        ({"client_country_code": "91"}, {}, "+919123456780"),
        ({"client_country_code": "+91"}, {}, "+919123456780"),
        ({"client_country_code": 91}, {}, "+919123456780"),
        ({"client_number": "919123456780", "client_country_code": "91"}, {}, "+919123456780"),
        ({"client_number": "+919123456780"}, {}, "+919123456780"),
        ({"client_number": "00919123456780"}, {}, "+919123456780"),
        ({}, {"region": "IN"}, "+919123456780"),  # the connection's default region
        ({"client_number": "601234567"}, {"region": "pl"}, "+48601234567"),
        (
            {"client_number": "Unknown (09123456780)", "client_country_code": "91"},
            {},
            "+919123456780",
        ),
        ({"client_number": "121"}, {}, "121"),  # a short code: kept as sent, never matched
        ({"client_number": ""}, {}, None),
        ({"client_number": None}, {}, None),
    ],
)
def test_client_numbers_in_e164(
    fields: dict[str, Any], options: dict[str, str], expected: str | None
) -> None:
    [found] = records(json.dumps(call(**fields)).encode(), options)
    assert found.client_number == expected


def test_without_a_zone_option_ist_is_ambiguous_and_read_in_the_fallback_with_a_note() -> None:
    body = json.dumps(call(modified_at="2026-07-28 10:45:02 IST")).encode()
    [utc] = records(body, {})
    assert utc.modified_at == datetime(2026, 7, 28, 10, 45, 2, tzinfo=UTC)
    assert any("'IST' is ambiguous" in note and "timezone option" in note for note in utc.notes)
    [warsaw] = records(body, {DEFAULT_TIMEZONE: "Europe/Warsaw"})
    assert warsaw.modified_at == datetime(2026, 7, 28, 8, 45, 2, tzinfo=UTC)  # CEST, UTC+2
    assert warsaw.started_at == datetime(2026, 7, 28, 8, 44, 41, tzinfo=UTC)


def test_an_unambiguous_abbreviation_or_an_offset_says_the_zone_itself() -> None:
    body = json.dumps(
        call(synced_at="2026-01-10 10:00:00 CET", modified_at="2026-01-10T10:00:00+05:30")
    ).encode()
    [found] = records(body, {})
    assert found.synced_at == datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
    assert found.modified_at == datetime(2026, 1, 10, 4, 30, tzinfo=UTC)
    assert found.notes == ()


def test_the_parse_without_options_reads_times_in_utc() -> None:
    body = json.dumps(call(modified_at="2026-07-28 10:45:02 UTC")).encode()
    [found] = parse(body, {})
    assert isinstance(found, CallRecord)
    assert found.modified_at == datetime(2026, 7, 28, 10, 45, 2, tzinfo=UTC)
    assert PROVIDERS["callyzer"].parse_for(body, {}, KOLKATA) == parse_with(body, {}, KOLKATA)


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [(64, 64), ("64", 64), ("00:01:04", 64), ("0h 1m 4s", 64), ("", 0), (None, 0), (64.9, 64)],
)
def test_durations_in_seconds(duration: object, seconds: int) -> None:
    [found] = records(json.dumps(call(duration=duration)).encode())
    assert found.duration_seconds == seconds
    assert found.notes == ()


def test_what_cannot_be_read_is_a_note_not_a_failure() -> None:
    body = json.dumps(call(duration="long", call_date="yesterday", synced_at="soon")).encode()
    [found] = records(body)
    assert found.duration_seconds == 0
    assert found.started_at is None
    assert found.synced_at is None
    assert len(found.notes) == 3
    assert all(note.startswith("call c1: ") for note in found.notes)


def test_a_bad_call_among_good_ones_is_a_bad_item() -> None:
    document = fixture_json("callyzer", "employees-list-built.json")
    document[0]["call_logs"].insert(1, {"call_type": "Incoming"})
    document[0]["call_logs"].append("oops")
    items = parse_with(json.dumps(document).encode(), {}, KOLKATA)
    assert [type(i).__name__ for i in items] == [
        "CallRecord",
        "BadItem",
        "CallRecord",
        "BadItem",
        "CallRecord",
    ]
    bad = items[1]
    assert isinstance(bad, BadItem) and bad.index == 1 and "without an id" in bad.error


@pytest.mark.parametrize("body", [b"[]", b'{"result": []}', b'[{"call_logs": []}]'])
def test_a_body_without_calls_is_a_no_op(body: bytes) -> None:
    assert parse(body, {}) == [Ignored("the body carries no call logs")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"event": "ping"}', "none of the shapes Callyzer sends"),
        (b"{}", "none of the shapes Callyzer sends"),
        (b'{"id": "c1"}', "none of the shapes Callyzer sends"),  # an id alone is no call
        (b"[1, 2]", "none of them an employee"),
        (b'"text"', "JSON str"),
        (b"42", "JSON int"),
        (b"{not json", "not JSON"),
    ],
)
def test_no_callyzer_shape_is_a_payload_error_naming_the_shapes(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason) as raised:
        parse(body, {})
    assert str(raised.value).startswith("callyzer")


CALLYZER_JSON = json_values(
    [
        "id", "call_logs", "emp_code", "emp_number", "emp_country_code", "emp_tags", "call_type",
        "call_date", "call_time", "client_number", "client_country_code", "duration",
        "synced_at", "modified_at", "result", "data",
    ],
    ["Incoming", "Missed", "2026-07-28", "10:44:41", "2026-07-28 10:44:41 IST", "91", "0912"],
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(value=CALLYZER_JSON, zone=st.sampled_from([{}, KOLKATA, {"region": "IN"}]))
def test_any_json_gives_records_notes_or_a_payload_error(
    value: object, zone: dict[str, str]
) -> None:
    parsed_or_payload_error(
        lambda body, headers: parse_with(body, headers, zone), json.dumps(value).encode()
    )
