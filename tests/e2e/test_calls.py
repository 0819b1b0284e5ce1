"""Calls from Callyzer end to end, through the real intake, worker, API and CLI: a webhook's
calls stored and matched to their lead, duplicates and older versions, leads imported from
CSV, the unmatched list and its retry job, statistics checked against figures computed by
hand, and what the API answers to bad or missing input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from tests.conftest import RunningApp, fixture_bytes, fixture_json
from tidings.cli import main
from tidings.config import Settings
from tidings.scheduler.jobs import JobContext, match_unmatched_calls
from tidings.storage.schema import calls, lead_phones, leads, rejections

KOLKATA = "Asia/Kolkata"


@pytest.fixture
def settings(db_url: str, request: pytest.FixtureRequest) -> Settings:
    """As the shared fixture, with days counted in Kolkata (TIDINGS_TIMEZONE) and the labels'
    language a test's `locale` mark names (TIDINGS_LOCALE)."""
    marked = request.node.get_closest_marker("locale")
    return Settings(
        locale=marked.args[0] if marked else "en",
        database_url=db_url,
        store_timeout_seconds=1.0,
        receipt_retry_schedule="0.2,0.2",
        worker_idle_seconds=0.2,
        max_body_bytes=64 * 1024,
        timezone=KOLKATA,
    )


@pytest.fixture
def app(running_app: RunningApp) -> RunningApp:
    running_app.add_connection("callyzer", "cz", timezone=KOLKATA, region="IN")
    return running_app


def post(app: RunningApp, body: Any) -> int:
    response = app.hook("callyzer", "cz", json.dumps(body))
    assert response.status_code == 202, response.text
    receipt: int = response.json()["receipt"]
    return receipt


def get(app: RunningApp, path: str, **params: Any) -> Any:
    response = app.api("GET", path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def flat(call_id: str, **fields: Any) -> dict[str, Any]:
    call = fixture_json("callyzer", "flat-call-built.json")
    return {**call, "id": call_id, **fields}


def test_a_webhook_call_is_stored_and_attached_to_its_lead(app: RunningApp) -> None:
    saved = app.api(
        "POST",
        "/v1/leads",
        json={"external_id": "L-1", "name": "Ravi", "owner": "Asha", "phones": ["+91 91234-56780"]},
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["phones"] == ["+919123456780"]
    post(app, fixture_json("callyzer", "employees-list-built.json"))
    app.wait_idle()

    register = get(app, "/v1/leads/L-1/calls")
    [call] = register["items"]
    assert register["next_cursor"] is None
    assert call["provider_call_id"] == "6641b2f0c1a2b3d4e5f60718"
    assert (call["type"], call["type_label"], call["lead"]) == ("outgoing", "Outgoing", "L-1")
    assert (call["employee"], call["employee_name"]) == ("EMP-001", "Asha Verma")
    assert call["started_at"] == "2026-07-28T05:14:41Z"
    assert (call["duration_seconds"], call["client_number"]) == (64, "+919123456780")
    assert call["match_attempts"] == 1 and call["last_match_attempt_at"] is not None

    detail = get(app, "/v1/leads/L-1", locale="pl")
    assert [c["type_label"] for c in detail["latest_calls"]] == ["Wychodzące"]
    assert (detail["name"], detail["owner"]) == ("Ravi", "Asha")

    everything = get(app, "/v1/calls")["items"]
    assert len(everything) == 3
    assert [c["type"] for c in get(app, "/v1/calls", type="incoming")["items"]] == ["incoming"]
    assert len(get(app, "/v1/calls", employee="EMP-001")["items"]) == 2
    assert get(app, "/v1/calls", employee="nobody")["items"] == []
    unmatched = get(app, "/v1/calls/unmatched")["items"]
    assert {c["provider_call_id"] for c in unmatched} == {
        "6641b2f0c1a2b3d4e5f60719",
        "6641b2f0c1a2b3d4e5f6071a",
    }

    staff = get(app, "/v1/employees")["items"]
    assert [(e["code"], e["active"], e["connection"]) for e in staff] == [
        ("EMP-001", True, "cz"),
        ("EMP-002", True, "cz"),
    ]
    assert staff[0]["last_synced_at"] is None and staff[0]["number"] == "+919876543210"


def test_the_same_call_twice_is_one_record_and_an_older_version_is_ignored(
    app: RunningApp,
) -> None:
    call = flat("c-1", duration=30, modified_at="2026-07-30 12:01:00 IST")
    post(app, call)
    post(app, [call])  # the same call again (the webhook retried, another envelope)
    post(app, {**call, "duration": 90, "modified_at": "2026-07-30 12:20:00 IST"})
    app.wait_idle()
    older = post(app, {**call, "duration": 5, "modified_at": "2026-07-30 12:10:00 IST"})
    app.wait_idle()
    [stored] = get(app, "/v1/calls")["items"]
    assert stored["duration_seconds"] == 90
    assert stored["modified_at"] == "2026-07-30T06:50:00Z"
    receipt = get(app, f"/v1/receipts/{older}")
    assert receipt["status"] == "done"
    assert any("ignored" in note for note in receipt["notes"])


@pytest.mark.parametrize(
    "fixture",
    [
        "employees-list-built.json",
        "employee-object-built.json",
        "flat-call-built.json",
        "flat-calls-list-built.json",
        "history-response-built.json",
    ],
)
def test_every_envelope_is_applied(app: RunningApp, fixture: str) -> None:
    response = app.hook("callyzer", "cz", fixture_bytes("callyzer", fixture))
    assert response.status_code == 202
    app.wait_idle()
    receipt = get(app, f"/v1/receipts/{response.json()['receipt']}")
    assert receipt["status"] == "done", receipt
    assert len(get(app, "/v1/calls")["items"]) >= 1


def test_a_body_of_no_callyzer_shape_is_dead_lettered_at_once(app: RunningApp) -> None:
    receipt = post(app, {"event": "ping"})
    app.wait_idle()
    found = get(app, f"/v1/receipts/{receipt}")
    assert (found["status"], found["attempts"]) == ("dead", 1)
    assert "none of the shapes Callyzer sends" in found["error"]


def test_the_webhook_needs_the_secret_in_the_url_or_the_configured_header(
    app: RunningApp,
) -> None:
    body = fixture_bytes("callyzer", "flat-call-built.json")
    assert app.hook("callyzer", "cz", body, token=None).status_code == 401
    assert app.hook("callyzer", "cz", body, token="wrong").status_code == 401
    app.add_connection("callyzer", "hdr", auth_header="x-callyzer-token")
    headers = {"x-callyzer-token": "s3cret"}
    assert app.hook("callyzer", "hdr", body, token=None, headers=headers).status_code == 202
    with app.db.read() as conn:
        refused = conn.execute(select(rejections.c.connection, rejections.c.status_code)).all()
    assert [tuple(r) for r in refused] == [("cz", 401), ("cz", 401)]


def test_importing_leads_attaches_the_calls_waiting_for_their_numbers(
    app: RunningApp, cli: CliRunner, tmp_path: Path
) -> None:
    post(app, flat("c-1", client_number="9123456780"))
    post(app, flat("c-2", client_number="9123456799"))
    app.wait_idle()
    waiting = get(app, "/v1/calls/unmatched")["items"]
    assert [(c["provider_call_id"], c["match_attempts"]) for c in waiting] == [
        ("c-2", 1),
        ("c-1", 1),
    ]
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text(
        "external_id,name,owner,phone,phone\nL-1,Ravi,Asha,+919123456780,+48 601 234 567\n"
    )
    result = cli.invoke(main, ["import", "leads", str(csv_file)])
    assert result.exit_code == 0, result.output
    assert "1 leads imported (1 new, 0 existing); 1 waiting calls matched" in result.stdout
    assert [c["provider_call_id"] for c in get(app, "/v1/calls/unmatched")["items"]] == ["c-2"]
    [attached] = get(app, "/v1/leads/L-1/calls")["items"]
    assert (attached["provider_call_id"], attached["match_attempts"]) == ("c-1", 2)
    assert get(app, "/v1/leads/L-1")["phones"] == ["+919123456780", "+48601234567"]

    again = cli.invoke(main, ["import", "leads", str(csv_file)])  # changes nothing
    assert again.exit_code == 0, again.output
    assert "(0 new, 1 existing); 0 waiting calls matched" in again.stdout
    assert get(app, "/v1/leads/L-1")["phones"] == ["+919123456780", "+48601234567"]


def test_a_csv_import_reports_each_bad_row_imports_the_rest_and_exits_1(
    app: RunningApp, cli: CliRunner, tmp_path: Path
) -> None:
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text(
        "L-1,Ravi,Asha,+919123456780\n"
        "L-2,Meera,,12\n"
        ",No id,,+919123456781\n"
        "\n"
        "L-3,Anna,Piotr,601234567;x\n"
        "L-4,Tom,,\n"
    )
    result = cli.invoke(main, ["import", "leads", str(csv_file), "--region", "PL"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "2 leads imported (2 new, 0 existing)" in result.stdout
    assert result.stderr.splitlines() == [
        "row 2: phone '12' is not a phone number (write it with its country code, e.g. +91...)",
        "row 3: external_id is empty",
        "row 5: phone '601234567;x' is not a phone number (write it with its country code, "
        "e.g. +91...)",
        "3 of 5 rows failed",
    ]
    with app.db.read() as conn:
        assert sorted(conn.execute(select(leads.c.external_id)).scalars()) == ["L-1", "L-4"]


def test_an_import_of_no_leads_or_an_unreadable_file_is_one_line(
    app: RunningApp, cli: CliRunner, tmp_path: Path
) -> None:
    header_only = tmp_path / "empty.csv"
    header_only.write_text("external_id,name,owner,phone\n")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00L-1")
    for path, reason in ((header_only, "has no leads"), (binary, "is not UTF-8")):
        result = cli.invoke(main, ["import", "leads", str(path)])
        assert result.exit_code == 1
        [line] = result.output.strip().splitlines()
        assert line.startswith("Error: ") and reason in line


def test_the_retry_job_attempts_waiting_calls_until_the_maximum(
    app: RunningApp, settings: Settings
) -> None:
    post(app, flat("c-1", client_number="9123456780"))
    post(app, flat("c-2", client_number="9123456799"))
    app.wait_idle()

    class NoWake:
        def wake(self) -> None:
            pass

    context = JobContext(app.db, settings, NoWake())
    # The lead's number arrives without the lead being saved through tidings (as when the
    # lead and the call were committed at the same moment): only the job finds it.
    with app.db.write() as conn:
        lead_id = conn.execute(
            insert(leads).values(external_id="L-9", created_at=_now(), updated_at=_now())
        ).inserted_primary_key[0]
        conn.execute(insert(lead_phones).values(lead_id=lead_id, number="+919123456780"))
    assert match_unmatched_calls(context) == 1
    assert attempts(app) == {"c-1": (2, lead_id), "c-2": (2, None)}
    assert match_unmatched_calls(context) == 0
    assert attempts(app) == {"c-1": (2, lead_id), "c-2": (3, None)}
    match_unmatched_calls(context)  # c-2 has had its 3 attempts: left for a person
    assert attempts(app) == {"c-1": (2, lead_id), "c-2": (3, None)}
    [waiting] = get(app, "/v1/calls/unmatched")["items"]
    assert (waiting["provider_call_id"], waiting["match_attempts"]) == ("c-2", 3)
    more = JobContext(app.db, settings.model_copy(update={"call_match_max_attempts": 4}), NoWake())
    match_unmatched_calls(more)
    assert attempts(app)["c-2"] == (4, None)
    # A lead with the number still attaches it at once, whatever its attempts.
    saved = app.api("POST", "/v1/leads", json={"external_id": "L-2", "phones": ["+919123456799"]})
    assert saved.status_code == 201 and saved.json()["matched_calls"] == 1
    assert get(app, "/v1/calls/unmatched")["items"] == []


def _now() -> datetime:
    return datetime.now(UTC)


def attempts(app: RunningApp) -> dict[str, tuple[int, int | None]]:
    with app.db.read() as conn:
        rows = conn.execute(
            select(calls.c.provider_call_id, calls.c.match_attempts, calls.c.lead_id)
        )
        return {r.provider_call_id: (r.match_attempts, r.lead_id) for r in rows}


# (id, employee, local date, local time, type, seconds); local = Asia/Kolkata.
STATS_CALLS = [
    ("s1", "EMP-001", "2026-07-28", "10:00:00", "Outgoing", 60),
    ("s2", "EMP-001", "2026-07-28", "11:00:00", "Outgoing", 0),
    ("s3", "EMP-001", "2026-07-29", "02:00:00", "Incoming", 120),  # 07-28 in UTC
    ("s4", "EMP-001", "2026-07-29", "09:00:00", "Missed", 0),
    ("s5", "EMP-001", "2026-07-29", "09:30:00", "Rejected", 0),
    ("s6", "EMP-001", "2026-07-29", "10:00:00", "Voicemail", 30),
    ("s7", "EMP-002", "2026-07-28", "12:00:00", "Incoming", 45),
]


def _stats_calls(app: RunningApp) -> None:
    body = [
        flat(
            call_id,
            emp_code=code,
            emp_name="Asha Verma" if code == "EMP-001" else "Piotr Nowak",
            call_date=day,
            call_time=at,
            call_type=kind,
            duration=seconds,
        )
        for call_id, code, day, at, kind, seconds in STATS_CALLS
    ]
    post(app, body)
    app.wait_idle()


def test_employee_statistics_match_the_figures_computed_by_hand(app: RunningApp) -> None:
    _stats_calls(app)
    found = get(app, "/v1/employees/EMP-001/stats", locale="pl")
    # 6 calls; 60 + 0 + 120 + 0 + 0 + 30 = 210 s over 3 answered calls = 70 s; 3 / 6 = 0.5.
    assert found["calls"] == 6
    assert found["by_type"] == {
        "incoming": 1,
        "outgoing": 2,
        "missed": 1,
        "rejected": 1,
        "unknown": 1,
    }
    assert (found["total_duration_seconds"], found["answered"]) == (210, 3)
    assert (found["average_duration_seconds"], found["answered_share"]) == (70.0, 0.5)
    assert found["labels"]["missed"] == "Nieodebrane"
    # Days in Kolkata: s3 started on 07-29 there (07-28 in UTC).
    assert [(d["date"], d["calls"], d["total_duration_seconds"]) for d in found["per_day"]] == [
        ("2026-07-28", 2, 60),
        ("2026-07-29", 4, 150),
    ]
    assert [(d["average_duration_seconds"], d["answered_share"]) for d in found["per_day"]] == [
        (60.0, 0.5),
        (75.0, 0.5),
    ]
    window = get(
        app, "/v1/employees/EMP-001/stats", since="2026-07-29T00:00:00+05:30",
        until="2026-07-29T09:45:00+05:30",
    )  # fmt: skip
    # s3 (120 s), s4, s5: 3 calls, 120 s, 1 answered.
    assert (window["calls"], window["total_duration_seconds"], window["answered"]) == (3, 120, 1)
    assert (window["average_duration_seconds"], window["answered_share"]) == (120.0, 0.3333)


def test_team_statistics_per_employee_and_in_total(app: RunningApp) -> None:
    _stats_calls(app)
    team = get(app, "/v1/calls/stats")
    assert [
        (e["employee"], e["calls"], e["total_duration_seconds"]) for e in team["employees"]
    ] == [
        ("EMP-001", 6, 210),
        ("EMP-002", 1, 45),
    ]
    assert (
        team["employees"][1]["average_duration_seconds"],
        team["employees"][1]["answered_share"],
    ) == (45.0, 1.0)
    total = team["total"]
    # 7 calls, 255 s over 4 answered = 63.75 s; 4 / 7 = 0.5714.
    assert (total["calls"], total["total_duration_seconds"], total["answered"]) == (7, 255, 4)
    assert (total["average_duration_seconds"], total["answered_share"]) == (63.75, 0.5714)
    assert team["labels"]["incoming"] == "Incoming"


def test_employees_can_be_known_before_their_first_call(app: RunningApp) -> None:
    body = {"code": "EMP-9", "name": "Kasia", "number": "+48 601 234 567", "tags": ["pl"]}
    created = app.api("POST", "/v1/employees", json=body)
    assert created.status_code == 201, created.text
    assert (created.json()["number"], created.json()["tags"]) == ("+48601234567", ["pl"])
    changed = app.api("POST", "/v1/employees", json={**body, "active": False})
    assert changed.status_code == 200 and changed.json()["active"] is False
    assert get(app, "/v1/employees", active="false")["items"][0]["code"] == "EMP-9"
    assert get(app, "/v1/employees", active="true")["items"] == []
    empty = get(app, "/v1/employees/EMP-9/stats")
    assert (empty["calls"], empty["average_duration_seconds"], empty["per_day"]) == (0, 0.0, [])


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/calls", None),
        ("GET", "/v1/calls/unmatched", None),
        ("GET", "/v1/calls/stats", None),
        ("GET", "/v1/employees", None),
        ("POST", "/v1/employees", {"code": "E"}),
        ("GET", "/v1/employees/E/stats", None),
        ("POST", "/v1/leads", {"external_id": "L"}),
        ("GET", "/v1/leads/L", None),
        ("GET", "/v1/leads/L/calls", None),
    ],
)
def test_every_calls_route_needs_a_token(
    app: RunningApp, method: str, path: str, body: Any
) -> None:
    response = app.client.request(method, path, json=body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "reason"),
    [
        ("POST", "/v1/leads", {"json": {"external_id": "L", "phones": ["12"]}}, "not a phone"),
        ("POST", "/v1/leads", {"json": {"external_id": ""}}, "external_id"),
        ("POST", "/v1/leads", {"json": {"external_id": "L", "phone": ["x"]}}, "phone"),
        ("POST", "/v1/leads", {"content": b"{not json"}, "body"),
        ("POST", "/v1/employees", {"json": {"code": "E", "number": "abc"}}, "not a phone"),
        ("POST", "/v1/employees", {"json": {"name": "no code"}}, "code"),
        ("POST", "/v1/employees", {"json": {"code": "   "}}, "code"),
        ("POST", "/v1/employees", {"json": {"code": "a\u0000b"}}, "code"),
        ("POST", "/v1/employees", {"json": {"code": "\u00e9\u0000"}}, "code"),
        ("POST", "/v1/employees", {"json": {"code": "a/b"}}, "code"),
        ("POST", "/v1/employees", {"json": {"code": "E", "tags": ["a\u0000b"]}}, "tags"),
        ("GET", "/v1/calls", {"params": {"type": "voicemail"}}, "type"),
        ("GET", "/v1/calls", {"params": {"since": "yesterday"}}, "since"),
        ("GET", "/v1/calls", {"params": {"locale": "xx"}}, "locale"),
        ("GET", "/v1/calls/stats", {"params": {"locale": "klingon"}}, "locale"),
        ("GET", "/v1/calls", {"params": {"limit": 0}}, "limit"),
    ],
)
def test_bad_input_is_a_422_that_says_what_is_wrong(
    app: RunningApp, method: str, path: str, kwargs: dict[str, Any], reason: str
) -> None:
    headers = {"content-type": "application/json"} if "content" in kwargs else {}
    response = app.api(method, path, headers=headers, **kwargs)
    assert response.status_code == 422, response.text
    assert reason in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "path", ["/v1/leads/nobody", "/v1/leads/nobody/calls", "/v1/employees/nobody/stats"]
)
def test_an_unknown_lead_or_employee_is_a_404(app: RunningApp, path: str) -> None:
    response = app.api("GET", path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_lists_page_with_a_cursor(app: RunningApp) -> None:
    post(app, [flat(f"p-{i}") for i in range(5)])
    app.wait_idle()
    first = get(app, "/v1/calls", limit=2)
    second = get(app, "/v1/calls", limit=2, cursor=first["next_cursor"])
    third = get(app, "/v1/calls", limit=2, cursor=second["next_cursor"])
    ids = [c["provider_call_id"] for page in (first, second, third) for c in page["items"]]
    assert ids == ["p-4", "p-3", "p-2", "p-1", "p-0"]
    assert third["next_cursor"] is None


@pytest.mark.locale("pl")
def test_tidings_locale_sets_the_labels_a_request_names_none_for(app: RunningApp) -> None:
    post(app, flat("c-1", call_type="Missed"))
    app.wait_idle()
    assert [c["type_label"] for c in get(app, "/v1/calls")["items"]] == ["Nieodebrane"]
    assert [c["type_label"] for c in get(app, "/v1/calls", locale="en")["items"]] == ["Missed"]
    assert get(app, "/v1/calls/stats")["labels"]["rejected"] == "Odrzucone"


def test_tidings_locale_must_have_labels() -> None:
    assert Settings(locale="pl_PL").locale == "pl"
    with pytest.raises(ValueError, match="has no labels"):
        Settings(locale="de")


def test_a_callyzer_connection_is_added_from_the_command_line(
    running_app: RunningApp, cli: CliRunner
) -> None:
    result = cli.invoke(
        main,
        [
            "connection", "add", "callyzer", "advisers", "--secret", "cz-secret",
            "--option", "timezone=Asia/Kolkata", "--option", "region=IN",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        result.output.strip().splitlines()[-1].endswith("/hooks/callyzer/advisers?token=cz-secret")
    )
    body = fixture_bytes("callyzer", "flat-call-built.json")
    assert running_app.hook("callyzer", "advisers", body, token="cz-secret").status_code == 202
    refused = cli.invoke(
        main, ["connection", "add", "callyzer", "other", "--option", "timezone=IST"]
    )
    assert refused.exit_code == 1
    [line] = refused.output.strip().splitlines()
    assert line.startswith("Error: ") and "no time zone of the tz database" in line
